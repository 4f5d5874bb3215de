/*
 * read_guard.h
 *	  Reads of streams: refused in every plan but the workers' own.
 */
#ifndef STREAM_EXT_READ_GUARD_H
#define STREAM_EXT_READ_GUARD_H

#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"

extern void stream_read_guard_init(void);
extern PlannedStmt *stream_plan_batch_query(Query *query, const char *sql);
extern void stream_refuse_read(Oid stream) pg_attribute_noreturn();

#endif
