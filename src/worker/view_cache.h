/*
 * view_cache.h
 *	  A worker's cache of the continuous views of its database, with the
 *	  partial-aggregation plan of each.
 */
#ifndef STREAM_EXT_VIEW_CACHE_H
#define STREAM_EXT_VIEW_CACHE_H

#include "nodes/plannodes.h"
#include "window/spec.h"
#include "worker/kept_executor.h"

typedef struct CachedView
{
	int			id;
	Oid			view;
	Oid			stream;
	Oid			state_table;
	Oid			delta_table;
	Oid			owner;
	int			key_count;		/* leading key columns of its state and delta
								 * tables; 0 for a view that keeps rows */
	Oid			output_stream;	/* a transform's output, if a stream: its
								 * rows are that stream's events */
	Oid			output_table;	/* a transform's output, if a table */
	bool		notify;			/* its moved rows are notified */
	int			sink_id;		/* the Kafka producer whose staging view it
								 * is, or 0 */
	char	   *name;
	char	   *definition;
	char	   *query;			/* nodeToString of the defining query */
	WindowSpec *window;		/* its window, ttl and lateness */
	PlannedStmt *plan;			/* built on first use */
	PlannedStmt *plan_one_writer;	/* the same for one writer ($1), or NULL */
	MemoryContext plan_cxt;		/* holds both plans */
	List	   *plan_relations; /* Oid: what they read, locked before each run */
	List	   *plan_inval_items;	/* PlanInvalItem: the functions (and
									 * domains) they use */
	List	   *query_relations;	/* Oid: what its query names, before it is
									 * planned (joined tables, the stream) */
	bool		plan_stale;		/* one of those changed since they were made */
	KeptExecutor *kept[2];		/* executors of plan and plan_one_writer */
} CachedView;

extern void view_cache_init(void);
extern List *view_cache_views_of_stream(Oid stream);
extern PlannedStmt *view_cache_plan(CachedView *view, bool one_writer);
extern bool view_cache_is_valid(void);

#endif
