/*
 * view_query.h
 *	  Analysis of a continuous view's defining query: validation, the group
 *	  keys and aggregates that make up its combine state (or the columns of
 *	  the rows it keeps), and the plan the workers run over each batch.
 */
#ifndef STREAM_EXT_VIEW_QUERY_H
#define STREAM_EXT_VIEW_QUERY_H

#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "window/spec.h"

typedef struct ViewShape
{
	Query	   *query;			/* analyzed defining query */
	Oid			stream;			/* the stream it reads */
	Index		stream_rti;		/* its range table index */
	WindowSpec *window;			/* its time window (kind WINDOW_NONE if none) */
	Expr	   *time_expr;		/* event time, for windows and lateness */
	int			nhidden_keys;	/* leading keys the window adds (_step, _slice) */
	int			nhidden_aggs;	/* leading aggregates it adds (session bounds) */
	Expr	   *session_bucket; /* session views: group key of the workers only */
	List	   *keys;			/* TargetEntry of each key, hidden ones first */
	List	   *key_clauses;	/* SortGroupClause of each key */
	List	   *key_names;		/* state-table column name of each key */
	List	   *aggs;			/* each distinct Aggref */
	List	   *agg_names;		/* state-table column name of each aggregate */
	List	   *agg_state_types;	/* Oid: state column type of each aggregate */
	List	   *input_aggs;		/* Aggref of the query for each aggregate kept
								 * as its inputs (aggs has its inputs_agg),
								 * NULL for the others (input_aggs.c) */

	/*
	 * Views with grouping sets: the GROUPING() value of all the view's own
	 * keys in each set (grouping_sets.c), and the position in keys of the
	 * key holding it, right after the hidden ones (-1 without grouping sets).
	 */
	List	   *grouping_masks;
	int			grouping_key;

	/*
	 * Views of one state row per group (no window, some keys, hashable keys)
	 * keep each aggregate's result beside its state, and a hash of the keys:
	 * the state-table column name of each result (NIL for other views).
	 */
	List	   *final_names;

	/*
	 * A view without aggregates or GROUP BY keeps the rows of its query:
	 * keys are then its output columns (not grouped), key_names the columns
	 * of its kept-rows table, and it has no aggregates (row_query.c).
	 */
	bool		keeps_rows;
} ViewShape;

extern Aggref *stream_shape_query_agg(ViewShape *shape, int aggno);
extern bool stream_shape_one_row_per_group(ViewShape *shape);
extern bool stream_shape_keeps_inputs(ViewShape *shape);
extern Query *stream_analyze_select(RawStmt *raw, const char *sql);
extern ViewShape *stream_view_shape(Query *query, WindowSpec *window);
extern PlannedStmt *stream_plan_partial_aggregation(ViewShape *shape, const char *sql,
													 bool one_writer);
extern Expr *stream_writer_xid_expr(ViewShape *shape, bool one_writer);
extern PlannedStmt *stream_plan_view_batch(ViewShape *shape, const char *sql, bool one_writer);
extern Oid	stream_plan_state_aggregate(PlannedStmt *plan, AttrNumber resno);

#endif
