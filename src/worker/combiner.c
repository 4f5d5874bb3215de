/*
 * combiner.c
 *	  The combiner of a database: every stream_ext.combine_interval it folds
 *	  the deltas of committed transactions into each view's combine-state
 *	  table, and deletes the deltas of aborted ones.
 *
 * Per view, in one transaction:
 *	 WITH moved AS (DELETE FROM delta WHERE xid_committed(writer_xid)
 *					RETURNING keys, states)
 *	 INSERT INTO state SELECT keys, combine_agg(agg, state)... FROM moved
 *	   GROUP BY keys
 *	 ON CONFLICT (keys) DO UPDATE SET state = combine_states(agg, old, new)...
 * Readers see either the deltas or the merged rows, never both, because the
 * move is one transaction and readers only count deltas of transactions that
 * committed before their snapshot.  Session windows chain the moved partial
 * sessions with the stored sessions they touch (window/session.c).
 *
 * Every stream_ext.reap_interval the combiner also deletes the expired rows
 * of windowed views (window/reaper.c).
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

#include "ddl/create_view.h"
#include "guc.h"
#include "ipc/queue.h"
#include "kafka/supervisor.h"
#include "window/reaper.h"
#include "window/session.h"
#include "window/sliding.h"
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

/* Build the merge statement of view id from its state table's columns. */
static char *
merge_sql(int id, int key_count, WindowSpec *spec)
{
	StringInfoData keys,
				aggs_select,
				aggs_update,
				returning,
				session_eq,
				session_null,
				any_null,
				old_returning,
				blocks[SLIDING_LEVELS];
	char	   *sql;
	char	   *source = "moved";
	Interval   *lengths[SLIDING_LEVELS];
	int			levels = stream_sliding_levels(spec, lengths);
	int			rc;

	initStringInfo(&keys);
	initStringInfo(&aggs_select);
	initStringInfo(&aggs_update);
	initStringInfo(&returning);
	initStringInfo(&session_eq);
	initStringInfo(&session_null);
	initStringInfo(&any_null);
	initStringInfo(&old_returning);
	for (int l = 1; l < SLIDING_LEVELS; l++)
		initStringInfo(&blocks[l]);

	rc = SPI_execute(psprintf("SELECT a.attname, a.attnum, v.aggregates[a.attnum - v.key_count]::oid, "
							  "pg_catalog.format_type(a.atttypid, a.atttypmod) "
							  "FROM stream_ext_internal.continuous_views v "
							  "JOIN pg_catalog.pg_attribute a ON a.attrelid = v.state_table "
							  "WHERE v.id = %d AND a.attnum > 0 AND NOT a.attisdropped "
							  "AND a.attname <> '_one' ORDER BY a.attnum", id),
					 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the columns of continuous view %d", id);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		const char *col = quote_identifier(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));

		appendStringInfo(&returning, "%sd.%s", i ? ", " : "", col);
		appendStringInfo(&old_returning, "%st.%s", i ? ", " : "", col);
		for (int l = 1; l < levels; l++)
		{
			/* a step's row of level l: the block of level l holding it */
			if (strcmp(col, "_level") == 0)
				appendStringInfo(&blocks[l], "%d::pg_catalog.int2", l);
			else if (strcmp(col, "_step") == 0)
				appendStringInfo(&blocks[l], ", pg_catalog.date_bin(%s, m._step, "
								 "CAST('2000-01-01 00:00:00+00' AS %s))",
								 stream_interval_sql(lengths[l]),
								 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4));
			else
				appendStringInfo(&blocks[l], ", m.%s", col);
		}
		if ((int) i < key_count)
		{
			appendStringInfo(&keys, "%s%s", i ? ", " : "", col);
			appendStringInfo(&session_eq, "m.%s = t.%s AND ", col, col);
			appendStringInfo(&session_null, "m.%s IS NOT DISTINCT FROM t.%s AND ", col, col);
			appendStringInfo(&any_null, "%st.%s IS NULL", i ? " OR " : "", col);
		}
		else
		{
			char	   *agg = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);

			appendStringInfo(&aggs_select, ", stream_ext_internal.combine_agg(%s::pg_catalog.regprocedure, %s)",
							 agg, col);
			appendStringInfo(&aggs_update, "%s%s = stream_ext_internal.combine_states(%s::pg_catalog.regprocedure, t.%s, excluded.%s)",
							 aggs_update.len ? ", " : "", col, agg, col, col);
		}
	}

	if (spec->kind == WINDOW_SESSION)
	{
		/*
		 * Sessions: the moved partial sessions and the stored sessions of
		 * their groups within a gap of them are chained again, and replace
		 * those stored sessions.  Groups are matched with = (an index or hash
		 * join), and groups with a NULL key separately.
		 */
		char	   *gap = stream_interval_sql(spec->size);
		char	   *near = psprintf("t._session_end > m._session_start - %s AND "
									"t._session_start < m._session_end + %s",
									gap, gap);
		char	   *old_null = "";

		if (key_count > 0)
			old_null = psprintf(", old_null AS (DELETE FROM stream_ext_internal.state_%d t "
								"WHERE (%s) AND EXISTS (SELECT 1 FROM moved m WHERE %s%s) RETURNING %s)",
								id, any_null.data, session_null.data, near, old_returning.data);
		sql = psprintf("WITH moved AS (DELETE FROM stream_ext_internal.delta_%d d "
					   "WHERE stream_ext_internal.xid_committed(d.writer_xid) RETURNING %s), "
					   "old AS (DELETE FROM stream_ext_internal.state_%d t WHERE EXISTS ("
					   "SELECT 1 FROM moved m WHERE %s%s) RETURNING %s)%s, "
					   "u AS (SELECT * FROM moved UNION ALL SELECT * FROM old%s) "
					   "INSERT INTO stream_ext_internal.state_%d "
					   "SELECT %s%s FROM (%s) s GROUP BY %s%s_session",
					   id, returning.data, id, session_eq.data, near, old_returning.data,
					   old_null, key_count > 0 ? " UNION ALL SELECT * FROM old_null" : "",
					   id, keys.data, aggs_select.data + (key_count > 0 ? 0 : 2),
					   stream_sessionize_sql(keys.data, spec->size, "u"), keys.data,
					   key_count > 0 ? ", " : "");
	}
	else if (key_count > 0)
	{
		/* a sliding view's steps also go into their blocks (window/sliding.c) */
		if (levels > 1)
			source = psprintf("(SELECT * FROM moved UNION ALL SELECT %s FROM moved m"
							  " UNION ALL SELECT %s FROM moved m) moved", blocks[1].data, blocks[2].data);
		sql = psprintf("WITH moved AS (DELETE FROM stream_ext_internal.delta_%d d "
					   "WHERE stream_ext_internal.xid_committed(d.writer_xid) RETURNING %s) "
					   "INSERT INTO stream_ext_internal.state_%d AS t "
					   "SELECT %s%s FROM %s GROUP BY %s "
					   "ON CONFLICT (%s) DO UPDATE SET %s",
					   id, returning.data, id, keys.data, aggs_select.data, source, keys.data,
					   keys.data, aggs_update.data);
	}
	else
		sql = psprintf("WITH moved AS (DELETE FROM stream_ext_internal.delta_%d d "
					   "WHERE stream_ext_internal.xid_committed(d.writer_xid) RETURNING %s) "
					   "INSERT INTO stream_ext_internal.state_%d AS t "
					   "SELECT %s, true FROM moved HAVING pg_catalog.count(*) > 0 "
					   "ON CONFLICT (_one) DO UPDATE SET %s",
					   id, returning.data, id, aggs_select.data + 2, aggs_update.data);
	return sql;
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
	plan->cleanup = SPI_prepare(psprintf("DELETE FROM stream_ext_internal.delta_%d "
										 "WHERE stream_ext_internal.xid_aborted(writer_xid)", id),
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

/* VACUUM or ANALYZE one internal table (options: VACOPT_*), skipping it if locked. */
static void
maintain_table(const char *name, int options, MemoryContext cxt)
{
	PG_TRY();
	{
		Oid			relid;
		VacuumParams params;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		relid = stream_internal_relid(name, false);
		if (OidIsValid(relid))
		{
			/* VACUUM commits and starts transactions: keep its input in cxt */
			MemoryContext old = MemoryContextSwitchTo(cxt);
			List	   *rels = list_make1(makeVacuumRelation(makeRangeVar("stream_ext_internal",
																		  pstrdup(name), -1),
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
		maintain_table(psprintf("delta_%d", id), VACOPT_VACUUM, cxt);
	}
	if (plan->merged_rows >= STATE_ANALYZE_ROWS &&
		TimestampDifferenceExceeds(plan->last_analyze, now, STATE_ANALYZE_MS))
	{
		plan->merged_rows = 0;
		plan->last_analyze = now;
		maintain_table(psprintf("state_%d", id), VACOPT_VACUUM | VACOPT_ANALYZE, cxt);
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
	Oid			state = stream_internal_relid(psprintf("state_%d", id), true);

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

/*
 * Delete the expired rows of a windowed view, a bounded batch per
 * transaction, until none is left or the combiner is asked to stop.
 */
static void
reap_view(int id, WindowSpec *spec, MemoryContext cxt)
{
	uint64		deleted = REAP_BATCH_ROWS;

	while (deleted == REAP_BATCH_ROWS && !stream_worker_stop_requested)
	{
		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			deleted = stream_reap_batch(id, spec);
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			log_error_and_abort(cxt);
			deleted = 0;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		stream_worker_handle_interrupts();
	}
}

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
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT v.id, v.key_count, " WINDOW_SPEC_COLUMNS
						" FROM stream_ext_internal.continuous_views v ORDER BY v.id",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the continuous view catalog");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			MemoryContext old = MemoryContextSwitchTo(cxt);
			ViewToCombine *v = palloc(sizeof(ViewToCombine));

			v->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			v->key_count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			v->window = stream_window_spec_from_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
			*views = lappend(*views, v);
			MemoryContextSwitchTo(old);
		}
		SPI_finish();
		PopActiveSnapshot();
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return present;
}

void
stream_combiner_loop(int slotno)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext combiner",
											  ALLOCSET_DEFAULT_SIZES);
	uint64		last_mergeable = 0;
	TimestampTz last_full = 0;
	TimestampTz last_reap = 0;

	for (;;)
	{
		List	   *views;
		ListCell   *lc;
		uint64		mergeable = stream_mergeable_count(slotno);
		TimestampTz now = GetCurrentTimestamp();
		bool		full = TimestampDifferenceExceeds(last_full, now, FULL_ROUND_MS);
		bool		reap = TimestampDifferenceExceeds(last_reap, now, stream_ext_reap_interval_ms);

		stream_worker_handle_interrupts();
		MemoryContextReset(cxt);

		/*
		 * Deltas become mergeable when their writer commits.  Writers (and
		 * workers, for async writers) bump the counter; a full round also
		 * runs every FULL_ROUND_MS for what no counter sees (COMMIT PREPARED
		 * in another session, deltas of aborted or crashed writers).
		 */
		if (mergeable != last_mergeable || full || reap)
		{
			if (!views_to_combine(cxt, &views))
				proc_exit(0);
			foreach(lc, views)
			{
				ViewToCombine *v = lfirst(lc);

				combine_view(v->id, v->key_count, v->window, full, cxt);
				maintain_view_tables(v->id, cxt);
				if (reap && stream_window_expires(v->window))
					reap_view(v->id, v->window, cxt);
			}
			last_mergeable = mergeable;
			if (full)
				last_full = now;
			if (reap)
				last_reap = now;
		}

		/* Kafka consumer workers of the database (src/kafka/supervisor.c) */
		kafka_supervise();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(stream_ext_combine_interval_ms, 200), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
