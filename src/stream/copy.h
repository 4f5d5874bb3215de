/*
 * copy.h
 *	  COPY ... FROM into a stream.
 */
#ifndef STREAM_EXT_COPY_H
#define STREAM_EXT_COPY_H

#include "nodes/parsenodes.h"

extern bool stream_copy_handles(CopyStmt *stmt);
extern uint64 stream_copy_from(CopyStmt *stmt, const char *queryString);

#endif
