/*
 * combiner.c
 *	  The combiner of a database: it folds the deltas of committed
 *	  transactions into each view's combine-state table, at most every
 *	  stream_ext.combine_interval, and deletes the deltas of aborted ones.
 *
 * Per view, in one transaction, it runs the view's merge statement
 * (window/merge_sql.c): readers see either the deltas or the merged rows,
 * never both.  It keeps the tables it writes in shape (vacuum of delta
 * tables, analyze of state tables), and runs the jobs other modules
 * registered (jobs/jobs.c: expiry of windowed views' rows, supervision of
 * Kafka consumers).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/vacuum.h"
#include "nodes/makefuncs.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "guc.h"
#include "ipc/queue.h"
#include "jobs/jobs.h"
#include "window/merge_sql.h"
#include "window/spec.h"
#include "worker/worker.h"

/* Every this often the combiner merges and cleans up without being asked. */
#define FULL_ROUND_MS 5000

/* How often a delta table that received merges is vacuumed */
#define DELTA_VACUUM_MS 2000

/* A state table is analyzed once this many rows were merged into it... */
#define STATE_ANALYZE_ROWS 1000
/* ...and at most this often */
#define STATE_ANALYZE_MS 10000

typedef struct CombinePlan
{
	int			id;
	SPIPlanPtr	merge;
	SPIPlanPtr	cleanup;
	bool		merged;			/* rows moved since the last vacuum */
	TimestampTz last_vacuum;
	uint64		merged_rows;	/* rows written to the state table since ANALYZE */
	TimestampTz last_analyze;
} CombinePlan;

static List *combine_plans = NIL;	/* in TopMemoryContext */

/* The merge statement of view id (SPI connected) */
static char *
merge_sql(int id, int key_count, WindowSpec *spec)
{
	return stream_window_merge_sql(id, stream_catalog_state_columns(id), key_count, spec);
}

/* The prepared statements of view id, or NULL */
static CombinePlan *
find_plan(int id)
{
	ListCell   *lc;

	foreach(lc, combine_plans)
		if (((CombinePlan *) lfirst(lc))->id == id)
			return lfirst(lc);
	return NULL;
}

static CombinePlan *
plan_for_view(int id, int key_count, WindowSpec *spec)
{
	CombinePlan *plan = find_plan(id);
	MemoryContext old;

	if (plan != NULL)
		return plan;
	plan = MemoryContextAllocZero(TopMemoryContext, sizeof(CombinePlan));
	plan->id = id;
	plan->merge = SPI_prepare(merge_sql(id, key_count, spec), 0, NULL);
	plan->cleanup = SPI_prepare(psprintf("DELETE FROM %s "
										 "WHERE " STREAM_INTERNAL_SCHEMA ".xid_aborted(writer_xid)",
										 stream_view_relation_sql(id, VIEW_DELTA_TABLE)),
								0, NULL);
	if (plan->merge == NULL || plan->cleanup == NULL)
		elog(ERROR, "could not prepare the combiner's statements for view %d", id);
	SPI_keepplan(plan->merge);
	SPI_keepplan(plan->cleanup);
	old = MemoryContextSwitchTo(TopMemoryContext);
	combine_plans = lappend(combine_plans, plan);
	MemoryContextSwitchTo(old);
	return plan;
}

static void
forget_plan(int id)
{
	ListCell   *lc;

	foreach(lc, combine_plans)
	{
		CombinePlan *plan = lfirst(lc);

		if (plan->id == id)
		{
			SPI_freeplan(plan->merge);
			SPI_freeplan(plan->cleanup);
			combine_plans = foreach_delete_current(combine_plans, lc);
			pfree(plan);
			return;
		}
	}
}

/* In PG_CATCH: log the error, abort the transaction, go on with the next view. */
static void
log_error_and_abort(MemoryContext cxt)
{
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
}

/* VACUUM or ANALYZE a table of view id (options: VACOPT_*), skipping it if locked. */
static void
maintain_table(int id, ViewRelation which, int options, MemoryContext cxt)
{
	PG_TRY();
	{
		Oid			relid;
		VacuumParams params;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		relid = stream_view_relation_relid(id, which, true);
		if (OidIsValid(relid))
		{
			/* VACUUM commits and starts transactions: keep its input in cxt */
			MemoryContext old = MemoryContextSwitchTo(cxt);
			List	   *rels = list_make1(makeVacuumRelation(makeRangeVar(STREAM_INTERNAL_SCHEMA,
																		  stream_view_relation_name(id, which),
																		  -1),
															 relid, NIL));

			MemoryContextSwitchTo(old);
			memset(&params, 0, sizeof(params));
			params.options = options | VACOPT_SKIP_LOCKED;
			params.freeze_min_age = -1;
			params.freeze_table_age = -1;
			params.multixact_freeze_min_age = -1;
			params.multixact_freeze_table_age = -1;
			params.log_min_duration = -1;
			params.index_cleanup = VACOPTVALUE_UNSPECIFIED;
			params.truncate = VACOPTVALUE_UNSPECIFIED;
			params.nworkers = -1;
			vacuum(rels, &params, NULL, true);
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		log_error_and_abort(cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * Vacuum a view's delta table, as autovacuum would, if rows were merged out
 * of it since the last time and DELTA_VACUUM_MS passed.  Every merge leaves
 * the moved rows dead, and the next merge scans the whole table: left to
 * autovacuum (once a minute at most), a busy delta table would bloat and
 * every merge would slow down.
 *
 * Vacuum and analyze its state table once STATE_ANALYZE_ROWS rows were
 * merged into it (at most every STATE_ANALYZE_MS): reads of windowed views
 * filter state rows by time and group them, and without statistics the
 * planner guesses a few hundred rows and sorts sixty thousand; every merge
 * updates rows, and reads would follow their chains of dead versions.
 */
static void
maintain_view_tables(int id, MemoryContext cxt)
{
	CombinePlan *plan = find_plan(id);
	TimestampTz now = GetCurrentTimestamp();

	if (plan == NULL)
		return;
	if (plan->merged && TimestampDifferenceExceeds(plan->last_vacuum, now, DELTA_VACUUM_MS))
	{
		plan->merged = false;
		plan->last_vacuum = now;
		maintain_table(id, VIEW_DELTA_TABLE, VACOPT_VACUUM, cxt);
	}
	if (plan->merged_rows >= STATE_ANALYZE_ROWS &&
		TimestampDifferenceExceeds(plan->last_analyze, now, STATE_ANALYZE_MS))
	{
		plan->merged_rows = 0;
		plan->last_analyze = now;
		maintain_table(id, VIEW_STATE_TABLE, VACOPT_VACUUM | VACOPT_ANALYZE, cxt);
	}
}

/*
 * Lock view id's state table for the merge, before the merge statement locks
 * its delta table: DROP VIEW drops the state table and then the delta table
 * (on_sql_drop), so the other order can deadlock with a DROP.  Returns false
 * if the view was dropped meanwhile.
 */
static bool
lock_state_table(int id)
{
	Oid			state = stream_view_relation_relid(id, VIEW_STATE_TABLE, true);

	if (!OidIsValid(state))
		return false;
	LockRelationOid(state, RowExclusiveLock);
	return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(state));
}

/* Merge the committed deltas of one view; one transaction. */
static void
combine_view(int id, int key_count, WindowSpec *spec, bool cleanup, MemoryContext cxt)
{
	PG_TRY();
	{
		CombinePlan *plan;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (lock_state_table(id))
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			plan = plan_for_view(id, key_count, spec);
			if (SPI_execute_plan(plan->merge, NULL, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "merge of continuous view %d failed", id);
			if (SPI_processed > 0)
				plan->merged = true;
			plan->merged_rows += SPI_processed;
			if (cleanup &&
				SPI_execute_plan(plan->cleanup, NULL, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "cleanup of continuous view %d failed", id);
			SPI_finish();
			PopActiveSnapshot();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		log_error_and_abort(cxt);
		forget_plan(id);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

typedef struct ViewToCombine
{
	int			id;
	int			key_count;
	WindowSpec *window;
} ViewToCombine;

/* The views of the database, allocated in cxt; false when the extension is gone. */
static bool
views_to_combine(MemoryContext cxt, List **views)
{
	bool		present;

	*views = NIL;
	StartTransactionCommand();
	present = stream_worker_extension_present();
	if (present)
	{
		ListCell   *lc;

		PushActiveSnapshot(GetTransactionSnapshot());
		foreach(lc, stream_catalog_views())
		{
			ContinuousViewRow *row = lfirst(lc);
			MemoryContext old = MemoryContextSwitchTo(cxt);
			ViewToCombine *v = palloc(sizeof(ViewToCombine));

			v->id = row->id;
			v->key_count = row->key_count;
			v->window = stream_window_spec_from_text(&row->window);
			*views = lappend(*views, v);
			MemoryContextSwitchTo(old);
		}
		PopActiveSnapshot();
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return present;
}

/*
 * Milliseconds until the next turn of the loop: when a merge is due (if
 * writers committed), and at least every STREAM_JOB_TICK_MS for the jobs.
 */
static long
wait_ms(TimestampTz last_merge, bool merge_pending)
{
	long		ms = STREAM_JOB_TICK_MS;

	if (merge_pending)
	{
		long		secs;
		int			usecs;

		TimestampDifference(GetCurrentTimestamp(),
							TimestampTzPlusMilliseconds(last_merge, stream_ext_combine_interval_ms),
							&secs, &usecs);
		ms = Min(ms, secs * 1000 + usecs / 1000);
	}
	return Max(ms, 1);
}

/*
 * The combiner's loop.  A merge round runs when writers committed since the
 * last one (the group's mergeable counter moved) and combine_interval has
 * passed since it; a full round, which also deletes the deltas of aborted
 * writers and sees what no counter does (COMMIT PREPARED in another
 * session, writers that crashed), runs every FULL_ROUND_MS or
 * combine_interval, whichever is longer.
 */
void
stream_combiner_loop(int slotno)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext combiner",
											  ALLOCSET_DEFAULT_SIZES);
	uint64		last_mergeable = 0;
	TimestampTz last_merge = 0;
	TimestampTz last_full = 0;

	for (;;)
	{
		List	   *views;
		ListCell   *lc;
		uint64		mergeable = stream_mergeable_count(slotno);
		TimestampTz now = GetCurrentTimestamp();
		bool		due = TimestampDifferenceExceeds(last_merge, now, stream_ext_combine_interval_ms);
		bool		full = TimestampDifferenceExceeds(last_full, now,
													  Max(FULL_ROUND_MS, stream_ext_combine_interval_ms));

		stream_worker_handle_interrupts();
		MemoryContextReset(cxt);

		if ((mergeable != last_mergeable && due) || full)
		{
			if (!views_to_combine(cxt, &views))
				proc_exit(0);
			foreach(lc, views)
			{
				ViewToCombine *v = lfirst(lc);

				combine_view(v->id, v->key_count, v->window, full, cxt);
				maintain_view_tables(v->id, cxt);
			}
			last_mergeable = mergeable;
			last_merge = now;
			if (full)
				last_full = now;
		}

		/* what other modules registered: expiry, Kafka supervision */
		MemoryContextReset(cxt);
		stream_jobs_run(stream_worker_handle_interrupts, cxt);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms(last_merge, stream_mergeable_count(slotno) != last_mergeable),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
