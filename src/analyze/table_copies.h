/*
 * table_copies.h
 *	  Lookups of a joined table in a view's batch plan, answered from a copy
 *	  of the table kept in memory while the table does not change.
 */
#ifndef STREAM_EXT_TABLE_COPIES_H
#define STREAM_EXT_TABLE_COPIES_H

#include "nodes/plannodes.h"

extern void stream_table_copies_init(void);
extern void stream_table_copies_in_plan(PlannedStmt *pstmt);

#endif
