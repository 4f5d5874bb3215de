/*
 * view_query.h
 *	  Analysis of a continuous view's defining query: validation, the group
 *	  keys and aggregates that make up its combine state, and the partial
 *	  aggregation plan the workers run over each batch.
 */
#ifndef STREAM_EXT_VIEW_QUERY_H
#define STREAM_EXT_VIEW_QUERY_H

#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"

typedef struct ViewShape
{
	Query	   *query;			/* analyzed defining query */
	Oid			stream;			/* the stream it reads */
	Index		stream_rti;		/* its range table index */
	List	   *keys;			/* TargetEntry of each GROUP BY key, in order */
	List	   *key_names;		/* state-table column name of each key */
	List	   *aggs;			/* each distinct Aggref */
	List	   *agg_names;		/* state-table column name of each aggregate */
	List	   *agg_state_types;	/* Oid: state column type of each aggregate */
} ViewShape;

extern Query *stream_analyze_select(RawStmt *raw, const char *sql);
extern ViewShape *stream_view_shape(Query *query);
extern PlannedStmt *stream_plan_partial_aggregation(ViewShape *shape, const char *sql);

#endif
