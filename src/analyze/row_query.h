/*
 * row_query.h
 *	  The workers' plan of a continuous view that keeps its query's rows.
 */
#ifndef STREAM_EXT_ROW_QUERY_H
#define STREAM_EXT_ROW_QUERY_H

#include "analyze/view_query.h"

extern PlannedStmt *stream_plan_view_rows(ViewShape *shape, const char *sql, bool one_writer);

#endif
