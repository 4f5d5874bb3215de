/*
 * view_cache.c
 *	  The continuous views a worker applies events to, loaded from
 *	  stream_ext_internal.continuous_views and kept until an invalidation of
 *	  that catalog (sent by every DDL that changes it) or of a stream.
 *
 * Invalidation callbacks only mark the cache stale; it is rebuilt at the next
 * lookup, never while a batch is using it.  Callers run inside a transaction.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "nodes/readfuncs.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "analyze/view_query.h"
#include "ddl/create_view.h"
#include "worker/view_cache.h"

static MemoryContext cache_context = NULL;
static List *cached_views = NIL;
static bool cache_valid = false;
static Oid	catalog_relid = InvalidOid;

static void
invalidate_view_cache(Datum arg, Oid relid)
{
	ListCell   *lc;

	if (!OidIsValid(relid) || relid == catalog_relid)
	{
		cache_valid = false;
		return;
	}
	foreach(lc, cached_views)
	{
		CachedView *v = lfirst(lc);

		if (v->stream == relid || v->view == relid)
			cache_valid = false;
	}
}

void
view_cache_init(void)
{
	cache_context = AllocSetContextCreate(TopMemoryContext, "stream_ext view cache",
										  ALLOCSET_DEFAULT_SIZES);
	CacheRegisterRelcacheCallback(invalidate_view_cache, (Datum) 0);
}

static char *
getstr(HeapTuple tuple, TupleDesc desc, int col)
{
	char	   *s = SPI_getvalue(tuple, desc, col);

	return s ? MemoryContextStrdup(cache_context, s) : NULL;
}

static Oid
getoid(HeapTuple tuple, TupleDesc desc, int col)
{
	bool		isnull;

	return DatumGetObjectId(SPI_getbinval(tuple, desc, col, &isnull));
}

static void
load_views(void)
{
	int			rc;
	ListCell   *lc;

	foreach(lc, cached_views)
	{
		CachedView *v = lfirst(lc);

		kept_executor_end(&v->kept[0]);
		kept_executor_end(&v->kept[1]);
	}
	MemoryContextReset(cache_context);
	cached_views = NIL;
	catalog_relid = stream_catalog_relid(false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute("SELECT v.id, v.view::oid, v.stream::oid, v.state_table::oid, "
					 "v.delta_table::oid, c.relowner, v.view::text, v.definition, v.query, "
					 WINDOW_SPEC_COLUMNS " "
					 "FROM stream_ext_internal.continuous_views v "
					 "JOIN pg_catalog.pg_class c ON c.oid = v.view ORDER BY v.id",
					 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the continuous view catalog");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		CachedView *v = MemoryContextAllocZero(cache_context, sizeof(CachedView));
		MemoryContext old;

		v->id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
		v->view = getoid(tuple, desc, 2);
		v->stream = getoid(tuple, desc, 3);
		v->state_table = getoid(tuple, desc, 4);
		v->delta_table = getoid(tuple, desc, 5);
		v->owner = getoid(tuple, desc, 6);
		v->name = getstr(tuple, desc, 7);
		v->definition = getstr(tuple, desc, 8);
		v->query = getstr(tuple, desc, 9);
		old = MemoryContextSwitchTo(cache_context);
		v->window = stream_window_spec_from_row(tuple, desc, 10);
		cached_views = lappend(cached_views, v);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	cache_valid = true;
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

/*
 * The view's partial-aggregation plan, planned on first use; with
 * one_writer, the plan for a batch whose events all come from one
 * transaction (passed as $1), or NULL when the view has no group keys (its
 * plan would make a row even for no events).
 */
PlannedStmt *
view_cache_plan(CachedView *view, bool one_writer)
{
	if (view->plan == NULL)
	{
		MemoryContext plan_cxt = AllocSetContextCreate(CurrentMemoryContext,
													   "stream_ext planning",
													   ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(plan_cxt);
		Query	   *query = (Query *) stringToNode(view->query);
		ViewShape  *shape = stream_view_shape(query, view->window);
		PlannedStmt *plan = stream_plan_partial_aggregation(shape, view->definition, false);
		PlannedStmt *plan_one = NULL;

		if (shape->keys != NIL)
			plan_one = stream_plan_partial_aggregation(stream_view_shape(stringToNode(view->query),
																		 view->window),
													   view->definition, true);
		MemoryContextSwitchTo(cache_context);
		view->plan = copyObject(plan);
		view->plan_one_writer = plan_one ? copyObject(plan_one) : NULL;
		MemoryContextSwitchTo(old);
		MemoryContextDelete(plan_cxt);
	}
	return one_writer ? view->plan_one_writer : view->plan;
}
