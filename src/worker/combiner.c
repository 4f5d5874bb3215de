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

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "commands/vacuum.h"
#include "nodes/makefuncs.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "agg/combine.h"
#include "catalog/catalog.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "catalog/view_errors.h"
#include "changes/changes.h"
#include "guc.h"
#include "ipc/pending_keys.h"
#include "ipc/queue.h"
#include "stream/fdw.h"
#include "stream/insert.h"
#include "jobs/jobs.h"
#include "jobs/retry.h"
#include "window/merge_sql.h"
#include "window/spec.h"
#include "worker/apply.h"
#include "worker/counters.h"
#include "worker/delta_shrink.h"
#include "worker/paused_views.h"
#include "worker/pending_clear.h"
#include "worker/time_limit.h"
#include "worker/view_cache.h"
#include "worker/worker.h"

/* Every this often the combiner merges and cleans up without being asked. */
#define FULL_ROUND_MS 5000

/* How often a delta table that received merges is vacuumed */
#define DELTA_VACUUM_MS 2000

/* The longest wait before trying again to cut a delta table's end */
#define SHRINK_WAIT_MAX_MS 64000

/* A state table is analyzed once this many rows were merged into it... */
#define STATE_ANALYZE_ROWS 1000
/* ...and at most this often */
#define STATE_ANALYZE_MS 10000
/*
 * An ANALYZE may take this many times stream_ext.view_time_limit (it samples
 * the table besides running the owner's code); one cut waits a minute
 * before the next, doubling to an hour while they are cut (autovacuum
 * analyzes the table too, in a process of its own)
 */
#define STATE_ANALYZE_LIMITS 10
#define ANALYZE_WAIT_FIRST_MS 60000
#define ANALYZE_WAIT_MAX_MS (3600 * 1000)

typedef struct CombinePlan
{
	int			id;
	SPIPlanPtr	merge;
	SPIPlanPtr	cleanup;
	bool		notes_changes;	/* the merge notes changed groups */
	bool		merged;			/* rows moved since the last vacuum */
	bool		shrink_again;	/* an empty end to cut is left (delta_shrink.c) */
	int			shrink_wait_ms; /* before trying again: doubles while it is left */
	TimestampTz last_vacuum;
	uint64		merged_rows;	/* rows written to the state table since ANALYZE */
	TimestampTz last_analyze;
	int			analyze_wait_ms;	/* after a cut ANALYZE: doubles while cut */
} CombinePlan;

static List *combine_plans = NIL;	/* in TopMemoryContext */

/* Deltas one merge statement moves at most, in one transaction */
#define MERGE_CHUNK_ROWS 10000

/*
 * A view's merges in one round take at most this many chunks: a view with
 * a backlog (a bulk COPY, ingestion as fast as the merges) leaves the
 * others, the jobs (change streams, expiry, Kafka supervision) their turn;
 * the next round comes at once.
 */
#define ROUND_CHUNKS 10

/*
 * Merging a view's deltas one at a time after an error (set_aside_unmergeable)
 * takes at most this many times stream_ext.view_time_limit (at least 1 s),
 * on the charged clock (time_limit.c): each merge is limited, their sum
 * too; the rest waits for the next try
 */
#define ASIDE_BUDGET_LIMITS 4

/*
 * Plan what follows, until the caller's GUC nest level ends, with
 * enable_seqscan off.  A merge statement finds its chunk of deltas by ctid
 * (ctid = ANY (ARRAY(...)), or ctid = $1); its plan is kept, and was made
 * when the delta table may have been nearly empty, when a sequential scan
 * filtering on the array looks as cheap as a TID scan: on a million deltas
 * it compared each with the 10,000 of the chunk.  Disabled sequential scans
 * make the TID scan the plan whatever the statistics were.
 */
static void
prefer_tid_scans(void)
{
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Check the deferred constraints of the tables a merge writes into (a
 * transform's output table) at the end of each statement, for the rest of
 * the transaction: a deferred trigger cannot fire in a security-restricted
 * operation (the merge ran into that error forever), and a violation is
 * then one delta's, set aside like any row the table rejects.
 */
static void
check_constraints_at_once(void)
{
	ConstraintsSetStmt *immediate = makeNode(ConstraintsSetStmt);

	immediate->constraints = NIL;
	immediate->deferred = false;
	AfterTriggerSetState(immediate);
}

/*
 * Begin a merge's statements: as the view's owner (stream_begin_as_owner),
 * with the settings above; stream_end_as_owner ends them.
 */
static void
begin_merge_as_owner(StreamRunAs *as, Oid owner)
{
	stream_begin_as_owner(as, owner);
	prefer_tid_scans();
	check_constraints_at_once();
}

typedef struct ViewToCombine
{
	int			id;
	bool		aside_out_of_time;	/* set_aside_unmergeable stopped at its
									 * budget */
	bool		owns_transient; /* its merges failed transiently over and
								 * over: set_aside_unmergeable sets aside a
								 * delta whose merge alone raised one */
	bool		deltas_left;	/* its round ended at ROUND_CHUNKS */
	char	   *name;			/* the view, as regclass text */
	Oid			owner;
	int			key_count;
	Oid			delta_table;
	bool		keeps_rows;		/* its state table keeps its query's rows */
	Oid			output;			/* a transform's output table, whose rows
								 * are moved there; else InvalidOid */
	char	   *notify;			/* the channel its moved rows are sent on */
	WindowSpec *window;
} ViewToCombine;

/*
 * "table (c1, c2, ...)": where the merge of transform v inserts its rows,
 * the output's first columns as many as the transform has (SPI connected).
 */
static char *
output_target_sql(ViewToCombine *v, int ncolumns)
{
	Relation	rel = table_open(v->output, AccessShareLock);
	StringInfoData buf;
	ListCell   *lc;
	int			n = 0;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s (",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	foreach(lc, stream_output_columns(rel))
	{
		if (n == ncolumns)
			break;
		appendStringInfo(&buf, "%s%s", n++ ? ", " : "",
						 quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(rel),
																lfirst_int(lc) - 1)->attname)));
	}
	appendStringInfoChar(&buf, ')');
	table_close(rel, NoLock);
	return buf.data;
}

/* The merge statement of view v for chunk deltas, or the one at $1 (SPI connected) */
static char *
merge_sql(ViewToCombine *v, int chunk)
{
	List	   *columns = stream_catalog_state_columns(v->id);

	if (v->keeps_rows)
		return stream_window_move_rows_sql(v->id, columns, chunk,
										   OidIsValid(v->output) ?
										   output_target_sql(v, list_length(columns)) : NULL,
										   v->notify);
	/* with a change stream, the merge notes the groups it changes */
	return stream_window_merge_sql(v->id, columns, v->key_count, v->window, chunk,
								   stream_changes_note_sql(v->id, columns, v->key_count, v->window));
}

/*
 * Has view v a change stream?  Its merges note the groups they change, in
 * identities spelled with the text forms pinned (changes/change_sql.c).
 */
static bool
has_change_stream(ViewToCombine *v)
{
	return !v->keeps_rows &&
		OidIsValid(stream_view_relation_relid(v->id, VIEW_CHANGED_GROUPS, true));
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
plan_for_view(ViewToCombine *v)
{
	int			id = v->id;
	CombinePlan *plan = find_plan(id);
	MemoryContext old;

	if (plan != NULL)
		return plan;
	plan = MemoryContextAllocZero(TopMemoryContext, sizeof(CombinePlan));
	plan->id = id;
	plan->notes_changes = has_change_stream(v);
	plan->merge = SPI_prepare(merge_sql(v, MERGE_CHUNK_ROWS), 0, NULL);
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

/* VACUUM or ANALYZE a table of view id (options: VACOPT_*), skipping it if locked */
static void
vacuum_table(int id, ViewRelation which, int options, MemoryContext cxt)
{
	Oid			relid = stream_view_relation_relid(id, which, true);
	VacuumParams params;
	List	   *rels;
	MemoryContext old;

	if (!OidIsValid(relid))
		return;
	/* VACUUM commits and starts transactions: keep its input in cxt */
	old = MemoryContextSwitchTo(cxt);
	rels = list_make1(makeVacuumRelation(makeRangeVar(STREAM_INTERNAL_SCHEMA,
													  stream_view_relation_name(id, which), -1),
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

/* What analyze_state_work needs */
typedef struct AnalyzeState
{
	int			id;
	MemoryContext cxt;
} AnalyzeState;

static void
analyze_state_work(void *arg)
{
	AnalyzeState *a = arg;

	vacuum_table(a->id, VIEW_STATE_TABLE, VACOPT_ANALYZE, a->cxt);
}

/*
 * In a transaction of its own, VACUUM a table of view v (options), or with
 * VACOPT_ANALYZE ANALYZE its state table: that runs its owner's code (the
 * expressions of indexes made through the view, the comparisons of its key
 * types), so within STATE_ANALYZE_LIMITS times the view's time limit, as a
 * merge runs within the limit, so that it cannot hold up the combiner.
 * Returns false, the error logged, when it failed.
 *
 * VACUUM makes its memory context under PortalContext, which it deletes
 * when it ends, but not when it fails: here, under maintenance_cxt, reset
 * after each call.
 */
static bool
maintain_table(ViewToCombine *v, ViewRelation which, int options, MemoryContext cxt)
{
	static MemoryContext maintenance_cxt = NULL;
	MemoryContext old_portal = PortalContext;
	volatile bool done = false;

	if (maintenance_cxt == NULL)
		maintenance_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext maintenance",
												ALLOCSET_SMALL_SIZES);
	PortalContext = maintenance_cxt;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (options & VACOPT_ANALYZE)
		{
			AnalyzeState a = {v->id, cxt};

			Assert(which == VIEW_STATE_TABLE && !(options & VACOPT_VACUUM));
			/* ANALYZE alone runs in this transaction: its code needs a snapshot */
			PushActiveSnapshot(GetTransactionSnapshot());
			stream_view_time_limited_times(v->name, STATE_ANALYZE_LIMITS, analyze_state_work, &a);
			PopActiveSnapshot();
		}
		else
			vacuum_table(v->id, which, options, cxt);
		CommitTransactionCommand();
		done = true;
	}
	PG_CATCH();
	{
		stream_log_error_and_abort(cxt);
	}
	PG_END_TRY();
	PortalContext = old_portal;
	MemoryContextReset(maintenance_cxt);
	MemoryContextSwitchTo(cxt);
	return done;
}

static void
shrink_in_transaction(void *arg)
{
	CombinePlan *plan = arg;
	Oid			relid = stream_view_relation_relid(plan->id, VIEW_DELTA_TABLE, true);
	BlockNumber cut;

	if (!OidIsValid(relid))
	{
		plan->shrink_again = false;
		return;
	}
	cut = stream_delta_table_shrink(relid, &plan->shrink_again);
	plan->shrink_wait_ms = plan->shrink_again ?
		Min(Max(plan->shrink_wait_ms * 2, DELTA_VACUUM_MS), SHRINK_WAIT_MAX_MS) : 0;
	if (cut > 0)
	{
		elog(DEBUG1, "cut %u empty pages off the end of the delta table of view %d",
			 cut, plan->id);
		/* the next vacuum sets pg_class.relpages, for the planner */
		plan->merged = true;
	}
}

/* Cut the empty end of a view's delta table, if it may (delta_shrink.c) */
static void
shrink_delta_table(CombinePlan *plan, MemoryContext cxt)
{
	ErrorData  *edata = stream_job_in_transaction(shrink_in_transaction, plan, cxt);

	if (edata != NULL)
	{
		plan->shrink_again = false;
		FreeErrorData(edata);
	}
}

/*
 * Vacuum a view's delta table, as autovacuum would, if rows were merged out
 * of it since the last time and DELTA_VACUUM_MS passed.  Every merge leaves
 * the moved rows dead, and the next merge scans the whole table: left to
 * autovacuum (once a minute at most), a busy delta table would bloat and
 * every merge would slow down.  Then cut its empty end (delta_shrink.c); while
 * an end is left to cut, vacuum and try again after 2 s, 4 s ... 64 s.
 *
 * Vacuum and analyze its state table once STATE_ANALYZE_ROWS rows were
 * merged into it (at most every STATE_ANALYZE_MS): reads of windowed views
 * filter state rows by time and group them, and without statistics the
 * planner guesses a few hundred rows and sorts sixty thousand; every merge
 * updates rows, and reads would follow their chains of dead versions.
 */
static void
maintain_view_tables(ViewToCombine *v, MemoryContext cxt)
{
	CombinePlan *plan = find_plan(v->id);
	TimestampTz now = GetCurrentTimestamp();

	if (plan == NULL)
		return;
	/* (an end left to cut is tried again, merges or not) */
	if ((plan->merged && TimestampDifferenceExceeds(plan->last_vacuum, now, DELTA_VACUUM_MS)) ||
		(plan->shrink_again &&
		 TimestampDifferenceExceeds(plan->last_vacuum, now, plan->shrink_wait_ms)))
	{
		plan->merged = false;
		plan->last_vacuum = now;
		(void) maintain_table(v, VIEW_DELTA_TABLE, VACOPT_VACUUM, cxt);
		shrink_delta_table(plan, cxt);
	}
	if (plan->merged_rows >= STATE_ANALYZE_ROWS &&
		TimestampDifferenceExceeds(plan->last_analyze, now,
								   Max(STATE_ANALYZE_MS, plan->analyze_wait_ms)))
	{
		plan->merged_rows = 0;
		(void) maintain_table(v, VIEW_STATE_TABLE, VACOPT_VACUUM, cxt);
		if (maintain_table(v, VIEW_STATE_TABLE, VACOPT_ANALYZE, cxt))
			plan->analyze_wait_ms = 0;
		else
			plan->analyze_wait_ms = plan->analyze_wait_ms == 0 ? ANALYZE_WAIT_FIRST_MS :
				Min(plan->analyze_wait_ms * 2, ANALYZE_WAIT_MAX_MS);
		/* from its end: a slow one does not follow itself at once */
		plan->last_analyze = GetCurrentTimestamp();
	}
}

/* Has the relation a valid unique index (the merge's ON CONFLICT needs it)? */
static bool
has_unique_index(Oid relid)
{
	Relation	rel = relation_open(relid, NoLock);
	List	   *indexes = RelationGetIndexList(rel);
	bool		found = false;
	ListCell   *lc;

	foreach(lc, indexes)
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tuple))
			continue;
		if (((Form_pg_index) GETSTRUCT(tuple))->indisunique &&
			((Form_pg_index) GETSTRUCT(tuple))->indisvalid)
			found = true;
		ReleaseSysCache(tuple);
	}
	relation_close(rel, NoLock);
	return found;
}

/*
 * Lock view id's tables for the merge, in the order DROP VIEW takes them,
 * before the merge statement locks them: another order can deadlock with a
 * DROP, which then fails.  A DROP of the view locks its change stream's
 * table of changed groups (a dependent object) first, then, in its event
 * trigger (on_sql_drop), the delta table, then the state table; a DROP of
 * a transform's output table CASCADE locks that table first.  Each only if
 * it is free at once: the combiner merges every view of the database, so
 * one view's open DDL or truncate_continuous_view must not stall the
 * merges of all, and a session that holds one of them and then takes
 * another must not find us holding that one.  Returns false if the view
 * was dropped meanwhile, if one of its tables is busy, or if its merge
 * needs the state table's unique index and it has none yet (pg_restore
 * creates indexes after it loads the data): its deltas wait for a later
 * round.  Takes the view's owner again, as of the lock (the merge runs as
 * the owner).
 */
static bool
lock_state_table(ViewToCombine *v)
{
	Oid			state = stream_view_relation_relid(v->id, VIEW_STATE_TABLE, true);
	Oid			delta = stream_view_relation_relid(v->id, VIEW_DELTA_TABLE, true);
	Oid			changed = v->keeps_rows ? InvalidOid :
		stream_view_relation_relid(v->id, VIEW_CHANGED_GROUPS, true);
	Oid			result;
	HeapTuple	tuple;

	if (!OidIsValid(state) || !OidIsValid(delta))
		return false;
	if ((OidIsValid(v->output) && !stream_lock_if_free(v->output, RowExclusiveLock)) ||
		(OidIsValid(changed) && !stream_lock_if_free(changed, RowExclusiveLock)) ||
		!stream_lock_if_free(delta, RowExclusiveLock) ||
		!ConditionalLockRelationOid(state, RowExclusiveLock))
		return false;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(state));
	if (!HeapTupleIsValid(tuple))
		return false;
	/* the view's owner now (ALTER VIEW ... OWNER TO hands its tables over) */
	v->owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	if (v->keeps_rows || !stream_window_merge_needs_unique_key(v->window))
		return true;
	/* the merge upserts the state table and any result table (locked so too) */
	result = stream_view_relation_relid(v->id, VIEW_RESULT_TABLE, true);
	if (OidIsValid(result) && !ConditionalLockRelationOid(result, RowExclusiveLock))
		return false;
	return has_unique_index(state) && (!OidIsValid(result) || has_unique_index(result));
}

/*
 * Can deltas be the cause of a merge error (an overflow, a combine function
 * that raises)?  Not when it is transient, nor, as a rule, when it is about
 * the relations or privileges (class 42: a missing column or index, a
 * revoked function, a name the owner's code does not find on the
 * combiner's search_path), which no delta causes: those keep the deltas
 * until fixed.  But a class 42 error can be one row's too, when a
 * transform's rows go into its table (a row a row-security policy of the
 * table rejects, 42501): set_aside_unmergeable tells them apart by whether
 * the merge fails with no delta at all.  That tells nothing for the states
 * of an aggregating view, whose code runs only on a row: its deltas wait.
 */
static bool
deltas_may_cause(int sqlerrcode)
{
	return !stream_error_is_transient(sqlerrcode) &&
		ERRCODE_TO_CATEGORY(sqlerrcode) != ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION;
}

/*
 * Run the merge statement of view v once (at most MERGE_CHUNK_ROWS deltas)
 * and, with cleanup, delete the deltas of aborted writers.  The statements
 * run as the view's owner in a security-restricted operation, as REFRESH
 * MATERIALIZED VIEW runs a view's query: the aggregates' combine
 * functions, and anything the owner attached to the state table, never run
 * with the combiner's rights.  Returns the number of deltas moved.
 */
static uint64
merge_chunk(ViewToCombine *v, bool cleanup)
{
	CombinePlan *plan;
	StreamRunAs as;
	bool		isnull;
	uint64		moved;
	uint64		written;

	/* a change stream made or dropped since the plan was: plan again */
	plan = find_plan(v->id);
	if (plan != NULL && plan->notes_changes != has_change_stream(v))
		forget_plan(v->id);

	/* planning too: it folds the owner's immutable index expressions */
	begin_merge_as_owner(&as, v->owner);
	plan = plan_for_view(v);
	if (plan->notes_changes)
		(void) stream_changes_pin_text();
	if (SPI_execute_plan(plan->merge, NULL, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "merge of continuous view %d failed", v->id);
	moved = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	written = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (moved > 0)
		plan->merged = true;
	plan->merged_rows += written;
	if (cleanup &&
		SPI_execute_plan(plan->cleanup, NULL, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "cleanup of continuous view %d failed", v->id);
	stream_end_as_owner(&as);
	return moved;
}

/* One delta and the statement that merges it, for stream_try_in_subtransaction */
typedef struct OneDelta
{
	SPIPlanPtr	merge;
	ItemPointer tid;
	const char *view_name;
} OneDelta;

static void
merge_one_delta_work(void *arg)
{
	OneDelta   *d = arg;
	Datum		args[1] = {PointerGetDatum(d->tid)};

	if (SPI_execute_plan(d->merge, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not merge one delta");
}

static void
merge_one_delta(void *arg)
{
	stream_view_time_limited(((OneDelta *) arg)->view_name, merge_one_delta_work, arg);
}

/* A delta set aside: its row as text, and why it could not be merged */
typedef struct AsideDelta
{
	char	   *row;
	ErrorData  *edata;
} AsideDelta;

/*
 * After a merge failed with an error that is not transient (a sum
 * overflowing across transactions, say), merge the committed deltas of a
 * chunk one at a time, each in a subtransaction, as the view's owner, and
 * set aside those that cannot be merged: deleted, and recorded in
 * view_errors (as the combiner, which may write that table).  The error
 * thus costs the deltas of the groups it affects, never the view's other
 * groups or its reads (which combine the same states).  A delta whose
 * merge alone runs out of time is not set aside: committed and seen by
 * reads, it waits with the rest for the view's next try.  Runs in the
 * caller's transaction, SPI connected.
 */
static void
set_aside_unmergeable(void *arg)
{
	ViewToCombine *v = arg;
	char	   *delta = stream_view_relation_sql(v->id, VIEW_DELTA_TABLE);
	bool		notes_changes = has_change_stream(v);
	StreamRunAs as;
	OneDelta	one;
	SPIPlanPtr	remove;
	ItemPointerData *tids;
	uint64		ntids;
	List	   *aside = NIL;
	ListCell   *lc;
	ViewErrorLog log;
	bool		class42_checked = false;
	char	   *out_of_time = NULL;
	int			budget_ms = ASIDE_BUDGET_LIMITS * Max(stream_ext_view_time_limit_ms, 1000);
	StreamViewDeadline budget_end = stream_view_deadline_after(budget_ms);

	v->aside_out_of_time = false;
	if (!lock_state_table(v))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	begin_merge_as_owner(&as, v->owner);
	if (notes_changes)
		(void) stream_changes_pin_text();
	if (SPI_execute(psprintf("SELECT ctid FROM %s WHERE " STREAM_INTERNAL_SCHEMA
							 ".xid_committed(writer_xid) LIMIT %d", delta, MERGE_CHUNK_ROWS),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the deltas of continuous view %d", v->id);
	ntids = SPI_processed;
	tids = palloc(sizeof(ItemPointerData) * Max(ntids, 1));
	for (uint64 i = 0; i < ntids; i++)
	{
		bool		isnull;

		tids[i] = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc, 1,
															   &isnull));
	}
	one.view_name = v->name;
	one.merge = SPI_prepare(merge_sql(v, 0), 1, (Oid[]) {TIDOID});
	remove = SPI_prepare(psprintf("DELETE FROM %s d WHERE d.ctid = $1 "
								  "RETURNING pg_catalog.left(d::text, 1000)", delta),
						 1, (Oid[]) {TIDOID});
	if (one.merge == NULL || remove == NULL)
		elog(ERROR, "could not prepare the merge of one delta of continuous view %d", v->id);
	for (uint64 i = 0; i < ntids; i++)
	{
		ErrorData  *edata;
		AsideDelta *d;
		Datum		args[1] = {PointerGetDatum(&tids[i])};

		if (stream_view_deadline_passed(&budget_end))
		{
			/* one merge at a time is slow too: the rest waits, as a slow view's */
			out_of_time =
				psprintf("merging the deltas of continuous view %s one at a time took longer than %d ms; the other %llu wait",
						 v->name, budget_ms, (unsigned long long) (ntids - i));
			v->aside_out_of_time = true;
			break;
		}
		one.tid = &tids[i];
		edata = stream_try_in_subtransaction(merge_one_delta, &one);
		if (edata == NULL)
			continue;

		/*
		 * One delta's merge that ran out of time is no fault of the delta's
		 * (the view's code is slow, or the host): committed and seen by
		 * reads, it is kept, and the rest waits as a slow view's merges do.
		 */
		if (edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED &&
			stream_view_time_limit_last_run_timed_out())
		{
			out_of_time =
				psprintf("merging one delta of continuous view %s took longer than stream_ext.view_time_limit (%d ms); its deltas wait, to be merged later",
						 v->name, stream_ext_view_time_limit_ms);
			v->aside_out_of_time = true;
			break;
		}
		/* the view's code may raise a transient SQLSTATE for a delta, every time */
		if (stream_error_is_transient(edata->sqlerrcode) &&
			!(v->owns_transient && stream_error_raised_by_code(edata)))
			ReThrowError(edata);
		/*
		 * A class 42 error: the relations' or privileges' (none set aside)
		 * for an aggregating view, and for a transform into a table if the
		 * merge fails without any delta too, as a privilege check does;
		 * else the delta's own (a row-security policy refusing it).
		 */
		if (!deltas_may_cause(edata->sqlerrcode) && !class42_checked)
		{
			ItemPointerData none;

			if (!OidIsValid(v->output) && !stream_error_raised_by_code(edata) &&
				ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION)
				ReThrowError(edata);
			ItemPointerSet(&none, InvalidBlockNumber, 0);
			one.tid = &none;
			if (stream_try_in_subtransaction(merge_one_delta, &one) != NULL)
				ReThrowError(edata);
			class42_checked = true;
		}
		if (SPI_execute_plan(remove, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "could not set aside a delta of continuous view %d", v->id);
		d = palloc(sizeof(AsideDelta));
		d->row = SPI_processed == 1 ?
			SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
		d->edata = edata;
		aside = lappend(aside, d);
	}
	stream_end_as_owner(&as);

	stream_view_errors_begin(&log, v->id);
	foreach(lc, aside)
		stream_view_errors_record(&log, ((AsideDelta *) lfirst(lc))->edata,
								  ((AsideDelta *) lfirst(lc))->row);
	if (out_of_time != NULL)
		stream_view_errors_record_reason(&log, ERRCODE_PROGRAM_LIMIT_EXCEEDED, out_of_time);
	stream_view_errors_end(&log);
	if (aside != NIL)
		stream_counters_record_merge_errors(v->id, list_length(aside));
	SPI_finish();
	if (aside != NIL)
		ereport(LOG,
				(errmsg("stream_ext combiner set aside %d deltas of continuous view %d that could not be merged",
						list_length(aside), v->id),
				 errdetail("They are recorded in stream_ext.view_errors.")));
}

/* One chunk of a view's merge, for stream_job_in_transaction */
typedef struct MergeChunk
{
	ViewToCombine *view;
	bool		cleanup;
	uint64		moved;
} MergeChunk;

static void
merge_chunk_work(void *arg)
{
	MergeChunk *chunk = arg;

	chunk->moved = merge_chunk(chunk->view, chunk->cleanup);
}

static void
merge_chunk_in_transaction(void *arg)
{
	MergeChunk *chunk = arg;

	chunk->moved = 0;
	if (!lock_state_table(chunk->view))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	stream_view_time_limited(chunk->view->name, merge_chunk_work, chunk);
	SPI_finish();
}

/*
 * Views whose merge ran past stream_ext.view_time_limit (or whose every
 * delta fails alike) wait before the next try, 1 s doubling to 64 s, so that
 * one view's slow code (its owner's combine or final functions) costs the
 * other views' merges a little time now and then, not every round's.
 */
static StreamRetries slow_merges = STREAM_RETRIES(1000, 64000);

/*
 * A view's rounds of merges that failed, in a row (a round that merged a
 * chunk and then failed counts as failed; a transient error beside an
 * ordinary one as well): after
 * STREAM_TRANSIENT_TRIES, a delta whose merge alone fails with a transient
 * SQLSTATE that the view's code raised (a RAISE in its combine or final
 * function: stream_error_raised_by_code) is set aside as any other error's
 * delta, rather than the merge being tried at every round for ever (apply.c
 * does the same for events); one the server met (a full disk, a deadlock)
 * still is.  Counted only: no wait of its own.
 */
static StreamRetries transient_merges = STREAM_RETRIES(0, 0);

/* A view whose merges wait, and why */
typedef struct WaitingMerge
{
	ViewToCombine *view;
	ErrorData  *edata;
} WaitingMerge;

/*
 * Record in view_errors (without an event) why the view's merges wait: an
 * error of its relations or privileges that every delta meets (its owner
 * lost INSERT on a transform's table, say).  Its deltas are kept until
 * that is fixed; the merge is tried again after a backoff of up to a
 * minute, so this is noted at most about once a minute.  Runs in its own
 * transaction.
 */
static void
note_waiting_merge(void *arg)
{
	WaitingMerge *w = arg;
	ViewErrorLog log;

	stream_view_errors_begin(&log, w->view->id);
	stream_view_errors_record(&log, w->edata, NULL);
	stream_view_errors_end(&log);
}

/*
 * Merge the committed deltas of one view: a transaction per chunk, until a
 * chunk is not full.  A merge that fails with an error that is not
 * transient is followed by a transaction that sets aside the deltas that
 * cannot be merged; the next round merges the rest.  Errors are logged and
 * end the view's round; when every delta fails alike (a revoked privilege)
 * the view's merges wait as a slow view's do.  Returns whether deltas were
 * moved.
 */
static bool
combine_view(ViewToCombine *v, bool full, MemoryContext cxt)
{
	MergeChunk	chunk = {v, full, MERGE_CHUNK_ROWS};
	char		activity[NAMEDATALEN * 2 + 64];
	bool		moved = false;
	bool		failed = false;
	int			chunks = 0;

	if (!stream_retry_due(&slow_merges, v->id))
		return false;
	snprintf(activity, sizeof(activity), "stream_ext: merging deltas of continuous view %s",
			 v->name);
	pgstat_report_activity(STATE_RUNNING, activity);

	while (chunk.moved == MERGE_CHUNK_ROWS)
	{
		ErrorData  *edata;
		bool		wait = false;

		if (chunks++ == ROUND_CHUNKS)
		{
			v->deltas_left = true;
			break;
		}
		edata = stream_job_in_transaction(merge_chunk_in_transaction, &chunk, cxt);

		if (edata != NULL)
		{
			bool		transient = stream_error_is_transient(edata->sqlerrcode);

			/* past the time limit, or waiting that long for a lock */
			wait = (edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
					edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE);
			forget_plan(v->id);
			chunk.moved = 0;
			failed = true;
			stream_retry_note(&transient_merges, v->id, false);
			v->owns_transient =
				stream_retry_failures(&transient_merges, v->id) >= STREAM_TRANSIENT_TRIES;
			if (!transient || v->owns_transient)
			{
				ErrorData  *aside = stream_job_in_transaction(set_aside_unmergeable, v, cxt);

				/* merging one delta at a time ran out of time: a slow view */
				if (aside == NULL && v->aside_out_of_time)
					wait = true;
				/* every delta fails alike: wait for a fix as for a slow view */
				if (aside != NULL && !stream_error_is_transient(aside->sqlerrcode) &&
					!deltas_may_cause(aside->sqlerrcode))
				{
					WaitingMerge waiting = {v, aside};

					wait = true;
					(void) stream_job_in_transaction(note_waiting_merge, &waiting, cxt);
				}
			}
		}
		stream_retry_note(&slow_merges, v->id, !wait);
		chunk.cleanup = false;
		moved |= chunk.moved > 0;
		stream_worker_handle_interrupts();
	}
	if (!failed)
		stream_retry_note(&transient_merges, v->id, true);
	return moved;
}

/*
 * The deltas of a view whose merges wait (every delta fails alike, or the
 * view is slow: slow_merges) may stay for as long as that lasts, and their
 * writers' commit status with them: once VACUUM has frozen every table past
 * a writer, PostgreSQL truncates the commit log holding it, and every read,
 * merge and dump of the view would fail on that delta.  So, at most every
 * SETTLE_MS, the writers of such deltas that every snapshot of the database
 * sees as ended (older than the table's horizon, as VACUUM computes it) are
 * settled: a committed one becomes FrozenTransactionId (committed for every
 * snapshot, as a restored delta is: agg/writer_xact.c), the deltas of an
 * aborted one are deleted, as the merge's cleanup would.  No snapshot sees
 * a difference, and the rows' keys were noted when they were written (not
 * unnoted writes: ipc/pending_keys.c).  Only if the delta table's lock is
 * free at once, rows others have locked skipped, under the view's time
 * limit; no user code runs (the combiner's own role).
 */
#define SETTLE_MS 60000

static void
settle_waiting_writers_work(void *arg)
{
	ViewToCombine *v = arg;
	char	   *delta = stream_view_relation_sql(v->id, VIEW_DELTA_TABLE);
	Oid			relid = stream_view_relation_relid(v->id, VIEW_DELTA_TABLE, true);
	Relation	rel;
	Datum		horizon[1];
	uint64		frozen;
	uint64		deleted;

	rel = table_open(relid, NoLock);
	horizon[0] = FullTransactionIdGetDatum(
		stream_recent_full_xid(GetOldestNonRemovableTransactionId(rel)));
	table_close(rel, NoLock);
	stream_settle_writer_rows(delta, "writer_xid < $1",
							  psprintf("'%u'::pg_catalog.xid8", FrozenTransactionId), horizon,
							  &deleted, &frozen);
	if (frozen > 0 || deleted > 0)
		ereport(LOG,
				(errmsg("stream_ext combiner settled the writers of " UINT64_FORMAT " deltas and deleted " UINT64_FORMAT " deltas of aborted writers of continuous view %s, whose merges wait",
						frozen, deleted, v->name),
				 errdetail("Their writers' commit status would be lost when the commit log is truncated.")));
}

static void
settle_waiting_writers(void *arg)
{
	ViewToCombine *v = arg;
	Oid			relid = stream_view_relation_relid(v->id, VIEW_DELTA_TABLE, true);

	if (!OidIsValid(relid) || !stream_lock_if_free(relid, RowExclusiveLock))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	stream_pending_keys_settling(true);
	PG_TRY();
	{
		stream_view_time_limited(v->name, settle_waiting_writers_work, v);
	}
	PG_FINALLY();
	{
		stream_pending_keys_settling(false);
	}
	PG_END_TRY();
	SPI_finish();
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
		ListCell   *lc;

		PushActiveSnapshot(GetTransactionSnapshot());
		foreach(lc, stream_catalog_views())
		{
			ContinuousViewRow *row = lfirst(lc);
			MemoryContext old = MemoryContextSwitchTo(cxt);
			ViewToCombine *v = palloc0(sizeof(ViewToCombine));

			v->id = row->id;
			v->name = pstrdup(row->name);
			v->owner = row->owner;
			v->key_count = row->key_count;
			v->delta_table = row->delta_table;
			v->keeps_rows = row->keeps_rows;
			/* a stream output is written by the workers (worker/forward.c) */
			v->output = (OidIsValid(row->output) && !stream_is_stream_relation(row->output)) ?
				row->output : InvalidOid;
			v->notify = row->notify ? pstrdup(row->notify) : NULL;
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
 * While views with notify exist, the combiner looks for commits this
 * often, and moves those views' rows at once: their listeners wait for
 * them, not combine_interval.
 */
#define PROMPT_POLL_MS 5

/*
 * Milliseconds until the next turn of the loop: when a merge is due (if
 * writers committed), and at least every STREAM_JOB_TICK_MS for the jobs
 * (PROMPT_POLL_MS with views to notify, PUBLISH_POLL_MS while a delta
 * table's cleared id waits to be published).
 */
static long
wait_ms(TimestampTz last_merge, bool merge_pending, bool prompt, bool publish_pending)
{
	long		ms = prompt ? PROMPT_POLL_MS : STREAM_JOB_TICK_MS;

	if (publish_pending)
		ms = Min(ms, PUBLISH_POLL_MS);

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

static void
scan_for_pending_clear_work(void *arg)
{
	ViewToCombine *v = arg;

	stream_pending_clear_scan(v->delta_table, v->key_count);
}

/*
 * After a view's merges: what reads of one group may skip (pending_clear.c).
 * The scan hashes the keys by their types' hash functions: user code, run
 * as the view's owner in a security-restricted operation, under the view's
 * time limit, as merges are.
 */
static void
scan_for_pending_clear(void *arg)
{
	ViewToCombine *v = arg;
	StreamRunAs as;

	stream_begin_as_owner(&as, v->owner);
	stream_view_time_limited(v->name, scan_for_pending_clear_work, v);
	stream_end_as_owner(&as);
}

/*
 * Merge the views of a round (all, or only those with notify); *deltas_left
 * when a view left deltas for want of chunks.  False when the extension is
 * gone.
 */
static bool
merge_round(bool full, bool only_notify, bool *has_notify, bool *deltas_left, MemoryContext cxt)
{
	List	   *views;
	ListCell   *lc;

	static TimestampTz last_settle = 0;
	TimestampTz now = GetCurrentTimestamp();
	bool		settle = full && TimestampDifferenceExceeds(last_settle, now, SETTLE_MS);

	if (!views_to_combine(cxt, &views))
		return false;
	if (settle)
		last_settle = now;
	*has_notify = false;
	*deltas_left = false;
	foreach(lc, views)
	{
		ViewToCombine *v = lfirst(lc);
		bool		moved;
		bool		paused;

		if (v->notify != NULL)
			*has_notify = true;
		if (only_notify && v->notify == NULL)
			continue;
		paused = stream_view_paused(v->id);
		stream_paused_views_work_for(v->id);
		moved = !paused && combine_view(v, full, cxt);
		*deltas_left |= v->deltas_left;
		if (settle && (paused || stream_retry_waiting(&slow_merges, v->id)))
			(void) stream_job_in_transaction(settle_waiting_writers, v, cxt);
		/* (not while a backlog is merged: each round would scan what is left) */
		if (!paused && !v->keeps_rows && v->key_count > 0 &&
			stream_pending_clear_due(v->delta_table, moved) && !v->deltas_left &&
			stream_job_in_transaction(scan_for_pending_clear, v, cxt) != NULL)
			stream_pending_clear_failed(v->delta_table);
		if (!paused)
			maintain_view_tables(v, cxt);
		stream_paused_views_work_for(0);
		stream_worker_report_done();
	}
	return true;
}

/*
 * The combiner's loop.  A merge round runs when writers committed since the
 * last one (the group's mergeable counter moved) and combine_interval has
 * passed since it; a full round, which also deletes the deltas of aborted
 * writers and sees what no counter does (COMMIT PREPARED in another
 * session, writers that crashed), runs every FULL_ROUND_MS or
 * combine_interval, whichever is longer.  Views with notify are merged as
 * soon as the counter moves (a prompt round, up to every PROMPT_POLL_MS).
 * The jobs run after every other round, and at least every
 * STREAM_JOB_TICK_MS.
 */
void
stream_combiner_loop(int slotno)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext combiner",
											  ALLOCSET_DEFAULT_SIZES);
	uint64		last_mergeable = 0;
	uint64		last_prompt = 0;
	TimestampTz last_merge = 0;
	TimestampTz last_full = 0;
	TimestampTz last_jobs = 0;
	bool		has_notify = false;
	bool		deltas_left = false;	/* a view left deltas: the next round at once */

	/* the events of change streams are applied here (change_events.c) */
	view_cache_init();

	/* views whose code ended the combiners before: left alone a while */
	stream_paused_views_start(&stream_slot(slotno)->paused, "combiner",
							  "its merges, change stream and held events, and the events the combiner has for it, wait");

	for (;;)
	{
		uint64		mergeable = stream_mergeable_count(slotno);
		TimestampTz now = GetCurrentTimestamp();
		bool		due = TimestampDifferenceExceeds(last_merge, now, stream_ext_combine_interval_ms);
		bool		full = TimestampDifferenceExceeds(last_full, now,
													  Max(FULL_ROUND_MS, stream_ext_combine_interval_ms));
		bool		merged = false;
		long		timeout;

		stream_worker_handle_interrupts();
		MemoryContextReset(cxt);

		if ((mergeable != last_mergeable && due) || full || deltas_left)
		{
			if (full)			/* the first round is one */
				stream_paused_views_record(cxt);
			if (!merge_round(full, false, &has_notify, &deltas_left, cxt))
			{
				stream_paused_views_forget();
				proc_exit(0);
			}
			/* (a round a backlog cut short merged not all those commits) */
			stream_note_merge_round(slotno, mergeable, !deltas_left);
			last_mergeable = last_prompt = mergeable;
			last_merge = now;
			if (full)
				last_full = now;
			merged = true;
		}
		else if (has_notify && mergeable != last_prompt)
		{
			/* only views that keep rows: no change stream to emit after it */
			if (!merge_round(false, true, &has_notify, &deltas_left, cxt))
			{
				stream_paused_views_forget();
				proc_exit(0);
			}
			last_prompt = mergeable;
		}

		/* what other modules registered: expiry, Kafka supervision, change streams */
		if (merged || TimestampDifferenceExceeds(last_jobs, now, STREAM_JOB_TICK_MS))
		{
			MemoryContextReset(cxt);
			stream_jobs_run(stream_worker_handle_interrupts, cxt);
			last_jobs = now;
		}

		stream_worker_report_idle();
		timeout = wait_ms(last_merge, stream_mergeable_count(slotno) != last_mergeable,
						  has_notify, stream_pending_clear_publish(cxt));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 deltas_left ? 0 : timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
