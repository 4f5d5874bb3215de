/*
 * delta_writes.h
 *	  Rows written into a delta table by a statement (see delta_writes.c).
 */
#ifndef STREAM_EXT_DELTA_WRITES_H
#define STREAM_EXT_DELTA_WRITES_H

#include "nodes/parsenodes.h"

extern void stream_note_delta_copy(CopyStmt *stmt);
extern void stream_delta_writes_init(void);

#endif
