/*
 * writer_apply.c
 *	  A writer applies its stream's transforms into tables itself, in its
 *	  own transaction.
 *
 * A transform into a table applied by a worker must stage its rows (the
 * writer has not committed when its batch is applied) for the combiner to
 * move into the table once the writer commits: a second write, a delete and
 * a per-row insert per event.  The writer has no such problem: rows it
 * inserts into the table commit or roll back with its own transaction, as a
 * trigger's do.  So when every transform into a table of the stream can be
 * applied this way, stream/insert.c hands the writer's events to
 * writer_apply() before sending them on: the transforms run over them, as
 * their owners, in a security-restricted operation, with the settings
 * workers pin (search_path, no JIT) and the workers' values of those the
 * results depend on (TimeZone, DateStyle, ...: worker/settings.c), and their
 * rows go straight into the tables (table_insert.c).  The records that carry the events to a worker
 * for the stream's other views are flagged so that the worker skips the
 * transforms into tables; a stream with no other view sends nothing.
 *
 * The apply runs in a subtransaction.  When it fails, the subtransaction is
 * rolled back and the events go to the workers unflagged, whose staging
 * sets rejected rows aside one by one and records the errors (apply.c,
 * combiner.c): the writer's own statement fails only on a transient error
 * (a cancel, a deadlock, out of memory).
 *
 * A transform is left to the workers when it joins tables (a worker's batch
 * sees them as committed; the writer would see its own changes), sends
 * notifications, or its table is not one table_insert.c covers; then all of
 * the stream's transforms into tables are, so that one flag says which
 * events the workers skip them for.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "guc.h"
#include "stream/insert.h"
#include "worker/apply.h"
#include "worker/settings.h"
#include "worker/table_insert.h"
#include "worker/view_cache.h"
#include "worker/writer_apply.h"

/* Counts of writers go to view_counters under worker numbers from here */
#define WRITER_COUNTER_WORKER_BASE 2000

/*
 * Pin the settings workers pin that matter here (worker/settings.c), until
 * AtEOXact_GUC(false, the level returned), which also drops any setting
 * the owners' code changed (set_config(..., false) would otherwise outlive
 * the apply in the writer's session): the extension's search_path
 * (guc.c: the catalog's SQL and the views' planning resolve nothing through
 * the writer's path, nor find its temporary objects first), and no JIT for
 * plans run once.  The writer's own role stays: reading the catalog needs
 * no privilege (catalog_rows() is a security definer function), the views'
 * plans run as their owners (apply.c), and counts are written by heap
 * access.
 */
static int
pin_worker_settings(void)
{
	int			nestlevel = stream_pin_internal_search_path();

	(void) set_config_option("jit_above_cost", "-1", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/* Columns of the rows a plan returns */
static int
plan_columns(PlannedStmt *plan)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, plan->planTree->targetlist)
		if (!((TargetEntry *) lfirst(lc))->resjunk)
			n++;
	return n;
}

/* Can the writer apply transform view (into a table) itself? */
static bool
transform_direct(CachedView *view)
{
	PlannedStmt *plan;
	StreamRunAs as;
	ListCell   *lc;

	if (view->notify)
		return false;

	/*
	 * The owner's code would run in this session, whose state the writer
	 * controls: its temporary objects (types, relations found through
	 * pg_temp), the functions it compiled under its own search_path
	 * (PL/pgSQL keeps their variables' types).  Only a writer with the
	 * owner's rights may have it run here, in a session of a role with them
	 * too (not another role's call of the writer's SECURITY DEFINER
	 * function); others leave it to the workers.
	 */
	if (!has_privs_of_role(GetUserId(), view->owner) ||
		!has_privs_of_role(GetSessionUserId(), view->owner))
		return false;
	/* planned as the owner, as a worker plans it (apply.c) */
	stream_begin_as_owner(&as, view->owner);
	plan = view_cache_plan(view, false);
	stream_end_as_owner(&as);
	foreach(lc, view->plan_relations)
		if (lfirst_oid(lc) != view->stream)
			return false;
	/* the rows: the writer, then the columns the transform fills */
	return stream_table_insert_direct(view->output_table, view->owner, plan_columns(plan) - 1);
}

/*
 * After the writer's own work (deciding, applying) failed with edata, in a
 * subtransaction rolled back since: a transient error (a cancel, a
 * statement_timeout, a deadlock) fails the statement, as anywhere else in
 * it; any other leaves the events to the workers, noted at DEBUG1 with
 * what (they will say why, if it is about the view).
 */
static void
leave_to_workers(ErrorData *edata, const char *what)
{
	if (stream_error_is_transient(edata->sqlerrcode))
		ReThrowError(edata);
	ereport(DEBUG1,
			(errmsg_internal("stream_ext: %s, the workers take the writer's events: %s",
							 what, edata->message)));
	FreeErrorData(edata);
}

typedef struct AppliesCheck
{
	Oid			stream;
	WriterApplies result;
} AppliesCheck;

static void
check_transforms(void *arg)
{
	AppliesCheck *check = arg;
	ListCell   *lc;
	int			tables = 0;
	int			others = 0;

	foreach(lc, view_cache_views_of_stream(check->stream))
	{
		CachedView *view = lfirst(lc);

		if (!OidIsValid(view->output_table))
			others++;
		else if (transform_direct(view))
			tables++;
		else
			return;				/* the workers apply them all */
	}
	if (tables > 0)
		check->result = WRITER_APPLIES_TABLES | (others > 0 ? 0 : WRITER_APPLIES_ALL);
}

/* Has the stream a transform into a table? */
static bool
has_transform_into_table(Oid stream)
{
	ListCell   *lc;

	foreach(lc, view_cache_views_of_stream(stream))
		if (OidIsValid(((CachedView *) lfirst(lc))->output_table))
			return true;
	return false;
}

/*
 * stream_writer_applies_hook: what the writer applies itself of the
 * stream's views, for the statement writing into it.  Cheap for a stream
 * without transforms into tables (its views are looked up in the view
 * cache, which reads the catalog only after a change of it).  Finding out
 * runs in a subtransaction (it may plan the transforms); if that fails,
 * nothing: the workers will say why.  A transient error (a cancel, a
 * statement_timeout) fails the statement, as anywhere else in it.
 */
static WriterApplies
writer_applies(Oid stream)
{
	static bool cache_ready = false;
	AppliesCheck check = {stream, WRITER_APPLIES_NOTHING};
	int			nestlevel = 0;
	ErrorData  *edata;

	if (!cache_ready || !view_cache_is_valid())
		nestlevel = pin_worker_settings();	/* the view cache reads the catalog */
	if (!cache_ready)
	{
		view_cache_init();
		cache_ready = true;
	}
	if (has_transform_into_table(stream))
	{
		if (nestlevel == 0)
			nestlevel = pin_worker_settings();
		edata = stream_try_in_subtransaction(check_transforms, &check);
		AtEOXact_GUC(false, nestlevel);
		if (edata != NULL)
		{
			leave_to_workers(edata, "deciding what the writer applies itself failed");
			check.result = WRITER_APPLIES_NOTHING;
		}
	}
	else if (nestlevel > 0)
		AtEOXact_GUC(false, nestlevel);
	return check.result;
}

typedef struct OwnApply
{
	StreamBatchEvents *events;
	WriterApplies applies;		/* decided again at the apply */
} OwnApply;

/*
 * Decide again (the views of the stream may have changed since the
 * statement decided: one created by a function of the statement, or in
 * another session, is in the view cache now), then apply.
 */
static void
apply_in_subtransaction(void *arg)
{
	OwnApply   *apply = arg;
	AppliesCheck check = {apply->events->stream, WRITER_APPLIES_NOTHING};

	if (!stream_adopt_worker_settings())
		return;					/* none published yet: the workers apply */
	check_transforms(&check);
	if (check.result == WRITER_APPLIES_NOTHING)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("transforms into tables of stream \"%s\" changed since the statement began",
						get_rel_name(apply->events->stream))));
	stream_apply_table_transforms(apply->events, WRITER_COUNTER_WORKER_BASE + MyProc->pgprocno);
	apply->applies = check.result;
}

/*
 * stream_writer_apply_hook: apply the stream's transforms into tables to
 * the writer's events.  Returns what it applied, WRITER_APPLIES_NOTHING
 * when that failed (rolled back: the workers take them); a transient error
 * fails the writer's statement.
 */
static WriterApplies
writer_apply(Oid stream, HeapTupleData *tuples, int nevents)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "stream_ext writer apply",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	StreamBatchEvents *events = palloc0(sizeof(StreamBatchEvents));
	OwnApply	apply = {events, WRITER_APPLIES_NOTHING};
	int			nestlevel;
	ErrorData  *edata;

	events->stream = stream;
	events->only = -1;
	events->nevents = nevents;
	events->capacity = nevents;
	events->events = tuples;

	/*
	 * A snapshot that sees what the statement wrote so far, the rows and
	 * counts of earlier applies of a COPY included; the statement's own
	 * scans keep theirs.
	 */
	CommandCounterIncrement();
	if (ActiveSnapshotSet())
		PushCopiedSnapshot(GetActiveSnapshot());
	else
		PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	nestlevel = pin_worker_settings();
	edata = stream_try_in_subtransaction(apply_in_subtransaction, &apply);
	AtEOXact_GUC(false, nestlevel);
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	if (edata != NULL)
	{
		leave_to_workers(edata, "the writer's apply of transforms into tables failed");
		apply.applies = WRITER_APPLIES_NOTHING;
	}
	MemoryContextDelete(cxt);
	return apply.applies;
}

void
stream_writer_apply_init(void)
{
	stream_writer_applies_hook = writer_applies;
	stream_writer_apply_hook = writer_apply;
}
