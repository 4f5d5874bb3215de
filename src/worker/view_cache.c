/*
 * view_cache.c
 *	  The continuous views a worker applies events to, loaded from
 *	  stream_ext_internal.continuous_views and kept until an invalidation of
 *	  that catalog (sent by every DDL that changes it) or of a stream.
 *
 * Invalidation callbacks only mark the cache stale; it is rebuilt at the next
 * lookup, never while a batch is using it.  A view's plans are also made
 * again, alone, when a relation they read besides the stream (a joined
 * table, an index of it, a view it expands) changes: as PostgreSQL's plan
 * cache does, the relations are locked before each run and the plan is
 * checked after; and when a function they use is replaced or its
 * privileges change, or a role's memberships or attributes do.  Callers
 * run inside a transaction.
 */
#include "postgres.h"

#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "analyze/view_query.h"
#include "catalog/catalog.h"
#include "stream/fdw.h"
#include "worker/view_cache.h"

static MemoryContext cache_context = NULL;
static List *cached_views = NIL;
static bool cache_valid = false;
static Oid	catalog_relid = InvalidOid;

/* The view whose plans plan_view is making, or NULL */
static CachedView *planning = NULL;

static void
invalidate_view_cache(Datum arg, Oid relid)
{
	ListCell   *lc;

	/* what it reads is not known yet: any change may be one of them */
	if (planning != NULL)
		planning->plan_stale = true;

	if (!OidIsValid(relid) || relid == catalog_relid)
	{
		cache_valid = false;
		return;
	}
	foreach(lc, cached_views)
	{
		CachedView *v = lfirst(lc);

		if (v->stream == relid || v->view == relid || v->output_stream == relid)
			cache_valid = false;
		else if (list_member_oid(v->plan_relations, relid))
			v->plan_stale = true;
	}
}

/*
 * A function the plans use was replaced (its body, which the planner may
 * have inlined or folded) or its privileges changed (EXECUTE is checked
 * when an executor starts, and a view's executor is kept from batch to
 * batch): plan again, as PostgreSQL's plan cache does.  hashvalue 0: any.
 */
static void
invalidate_plan_items(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	if (planning != NULL)
		planning->plan_stale = true;

	foreach(lc, cached_views)
	{
		CachedView *v = lfirst(lc);
		ListCell   *li;

		foreach(li, v->plan_inval_items)
		{
			PlanInvalItem *item = lfirst(li);

			if (item->cacheId == cacheid && (hashvalue == 0 || item->hashValue == hashvalue))
				v->plan_stale = true;
		}
	}
}

/*
 * A role's memberships or attributes changed: what a plan of the owner's
 * may use (a function's EXECUTE through a role, row security bypassed or
 * not) may have too.  Rare: plan every view again.
 */
static void
invalidate_all_plans(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	foreach(lc, cached_views)
		((CachedView *) lfirst(lc))->plan_stale = true;
}

void
view_cache_init(void)
{
	cache_context = AllocSetContextCreate(TopMemoryContext, "stream_ext view cache",
										  ALLOCSET_DEFAULT_SIZES);
	CacheRegisterRelcacheCallback(invalidate_view_cache, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, invalidate_plan_items, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, invalidate_plan_items, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, invalidate_all_plans, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, invalidate_all_plans, (Datum) 0);
}

static char *
copy_text(const char *s)
{
	return s ? MemoryContextStrdup(cache_context, s) : NULL;
}

/* Collect the relations a query reads (rtable entries, at any depth) */
static bool
collect_relations(Node *node, List **relids)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			*relids = list_append_unique_oid(*relids, rte->relid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_relations, relids,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, collect_relations, relids);
}

/* A view of the catalog, with its own copies of what it needs, in cache_context */
static CachedView *
cache_row(ContinuousViewRow *row)
{
	MemoryContext old = MemoryContextSwitchTo(cache_context);
	CachedView *v = palloc0(sizeof(CachedView));

	v->id = row->id;
	v->view = row->view;
	v->stream = row->stream;
	v->state_table = row->state_table;
	v->delta_table = row->delta_table;
	v->owner = row->owner;
	v->key_count = row->keeps_rows ? 0 : row->key_count;
	if (OidIsValid(row->output) && stream_is_stream_relation(row->output))
		v->output_stream = row->output;
	else
		v->output_table = row->output;
	v->notify = row->notify != NULL;
	v->sink_id = stream_kafka_sink_id(row->view);
	v->name = copy_text(row->name);
	v->definition = copy_text(row->definition);
	v->query = copy_text(row->query);
	v->window = stream_window_spec_from_text(&row->window);
	MemoryContextSwitchTo(old);
	/* the query tree in the caller's context; the list in the cache's */
	{
		List	   *relids = NIL;

		(void) collect_relations(stringToNode(row->query), &relids);
		old = MemoryContextSwitchTo(cache_context);
		v->query_relations = list_copy(relids);
		MemoryContextSwitchTo(old);
	}
	return v;
}

/* Load the views from the catalog (catalog/view_rows.c) into cache_context. */
static void
load_views(void)
{
	ListCell   *lc;

	foreach(lc, cached_views)
	{
		CachedView *v = lfirst(lc);

		kept_executor_end(&v->kept[0]);
		kept_executor_end(&v->kept[1]);
	}
	MemoryContextReset(cache_context);	/* plan contexts with it */
	cached_views = NIL;
	catalog_relid = stream_catalog_relid(false);
	/* invalidations that arrive while loading make the next lookup load again */
	cache_valid = true;

	PG_TRY();
	{
		foreach(lc, stream_catalog_views())
		{
			CachedView *v = cache_row(lfirst(lc));
			MemoryContext old = MemoryContextSwitchTo(cache_context);

			cached_views = lappend(cached_views, v);
			MemoryContextSwitchTo(old);
		}
	}
	PG_CATCH();
	{
		cache_valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Has no invalidation come since the views were loaded? */
bool
view_cache_is_valid(void)
{
	return cache_valid;
}

/* The views over a stream; the list and its members stay valid for the batch. */
List *
view_cache_views_of_stream(Oid stream)
{
	List	   *result = NIL;
	ListCell   *lc;

	if (!cache_valid)
		load_views();
	foreach(lc, cached_views)
	{
		CachedView *v = lfirst(lc);

		if (v->stream == stream)
			result = lappend(result, v);
	}
	return result;
}

/* Plan the view (both plans), into a context of its own under cache_context. */
static void
plan_view(CachedView *view)
{
	MemoryContext plan_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "stream_ext planning",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(plan_cxt);
	Query	   *query;
	ViewShape  *shape;
	PlannedStmt *plan;
	PlannedStmt *plan_one = NULL;

	/* an invalidation that comes while it plans makes the plans stale */
	view->plan_stale = false;
	planning = view;
	PG_TRY();
	{
		query = (Query *) stringToNode(view->query);
		shape = stream_view_shape(query, view->window);
		plan = stream_plan_view_batch(shape, view->definition, false);
		if (shape->keys != NIL)
			plan_one = stream_plan_view_batch(stream_view_shape(stringToNode(view->query),
																view->window),
											  view->definition, true);
	}
	PG_FINALLY();
	{
		planning = NULL;
	}
	PG_END_TRY();
	view->plan_cxt = AllocSetContextCreate(cache_context, "stream_ext view plan",
										   ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(view->plan_cxt);
	view->plan = copyObject(plan);
	view->plan_one_writer = plan_one ? copyObject(plan_one) : NULL;
	view->plan_relations = list_copy(plan->relationOids);
	view->plan_inval_items = copyObject(plan->invalItems);
	if (plan_one != NULL)
		view->plan_inval_items = list_concat(view->plan_inval_items,
											 copyObject(plan_one->invalItems));
	MemoryContextSwitchTo(old);
	MemoryContextDelete(plan_cxt);
}

/* Forget the view's plans and their kept executors. */
static void
forget_plan(CachedView *view)
{
	kept_executor_end(&view->kept[0]);
	kept_executor_end(&view->kept[1]);
	if (view->plan_cxt != NULL)
		MemoryContextDelete(view->plan_cxt);
	view->plan_cxt = NULL;
	view->plan = NULL;
	view->plan_one_writer = NULL;
	view->plan_relations = NIL;
	view->plan_inval_items = NIL;
}

/*
 * The view's plan (partial aggregation, or its rows), planned on first use; with
 * one_writer, the plan for a batch whose events all come from one
 * transaction (passed as $1), or NULL when the view has no group keys (its
 * plan would make a row even for no events).  Every relation the plans read
 * is locked (AccessShareLock) until the end of the transaction; plans that
 * a change of one of them made stale are made again.
 */
PlannedStmt *
view_cache_plan(CachedView *view, bool one_writer)
{
	for (;;)
	{
		ListCell   *lc;

		if (view->plan == NULL)
			plan_view(view);
		foreach(lc, view->plan_relations)
			LockRelationOid(lfirst_oid(lc), AccessShareLock);
		if (!view->plan_stale)
			break;
		forget_plan(view);
	}
	return one_writer ? view->plan_one_writer : view->plan;
}
