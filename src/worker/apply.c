/*
 * apply.c
 *	  Apply a batch of events to every continuous view of their streams, in
 *	  one transaction.
 *
 * For each view the worker runs its partial-aggregation plan; the stream scan
 * in that plan returns the batch's events, and the resulting rows (writer
 * transaction, group keys, partial states) are inserted into the view's
 * delta table.  The plan runs as the view's owner, in a restricted security
 * context.
 *
 * The fast path uses no subtransactions.  If it fails, the caller retries the
 * batch carefully: each view in its own subtransaction, and when a view
 * fails, every event is tried alone to find the ones its expressions fail on
 * (say, a division by zero); those are skipped for that view and recorded in
 * stream_ext_internal.view_errors, and the rest are applied.  A view whose
 * run needs a lock someone holds is not run: its events are held back
 * (held_back.c), and the combiner applies them later through
 * stream_apply_held_events.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "nodes/params.h"
#include "storage/lmgr.h"
#include "tcop/dest.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/xid8.h"

#include "agg/agg_state.h"
#include "agg/combine.h"
#include "guc.h"
#include "ipc/pending_keys.h"
#include "ipc/record.h"
#include "catalog/catalog.h"
#include "analyze/view_query.h"
#include "catalog/view_errors.h"
#include "stream/event_text.h"
#include "window/lateness.h"
#include "worker/apply.h"
#include "worker/counters.h"
#include "worker/forward.h"
#include "worker/held_back.h"
#include "worker/key_size.h"
#include "worker/table_insert.h"
#include "worker/time_limit.h"
#include "worker/view_cache.h"

stream_worker_stage_sinks_hook_type stream_worker_stage_sinks_hook = NULL;

/*
 * Did the writers of events apply view to them themselves: a transform into
 * a table (writer_apply.c), a Kafka producer's staging view
 * (kafka/sink_stage.c)?
 */
static bool
applied_by_writers(StreamBatchEvents *events, CachedView *view)
{
	if (OidIsValid(view->output_table))
		return (events->writer_applied & STREAM_FLAG_TABLES_APPLIED) != 0;
	if (view->sink_id > 0)
		return (events->writer_applied & STREAM_FLAG_SINKS_STAGED) != 0;
	return false;
}

/*
 * DestReceiver that appends the plan's rows to a delta table, in groups of up
 * to DELTA_INSERT_ROWS rows (or DELTA_INSERT_BYTES) by heap_multi_insert: one
 * WAL record per page filled instead of one per row.  Delta tables have no
 * indexes (window/state_tables.c says why).
 */
#define DELTA_INSERT_ROWS	1000
#define DELTA_INSERT_BYTES	(1024 * 1024)

typedef struct DeltaReceiver
{
	DestReceiver pub;
	PlannedStmt *plan;			/* the plan whose rows it takes: set before
								 * each run (run_view_plan_timed) */
	Oid			relid;
	MemoryContext cxt;			/* the receiver's maker's: slots and rows */
	MemoryContext flush_cxt;	/* stream_multi_insert's scratch */
	Relation	rel;
	TupleDesc	desc;			/* unpinned copy of the delta table's */
	TupleTableSlot **slots;		/* DELTA_INSERT_ROWS, made as needed */
	int			nslots;			/* slots made */
	int			nbuffered;		/* rows waiting in slots[0 .. nbuffered - 1] */
	Size		buffered_bytes;
	BulkInsertState bistate;
	CommandId	cid;
	AggStateMark *marks;		/* per column, the mark of the serialized
								 * state (bytea) it stores as agg_state, or
								 * InvalidOid aggfnoid */
	bool		marking;		/* some column is marked */
	Datum	   *values;			/* a row with its states marked */
	KeySizeCheck keys;			/* its rows' keys fit the state table's indexes */
	int			key_count;		/* the view's keys: columns 2 .. key_count + 1 */
	bool		tracks_keys;	/* notes the keys it writes (ipc/pending_keys.c) */
	PendingKeyHash key_hash;	/* how, when it does */
	PendingKeyNote *key_notes;	/* of the rows in slots[0 .. nbuffered - 1] */
} DeltaReceiver;

/*
 * Do the delta table's columns take the plan's rows: as many, of the same
 * types (the writer, an xid8, into a writer_xact; a serialized state of
 * aggregate marks[i], a bytea, into an agg_state)?  (A row formed for other
 * types would be read as garbage.)  Fills in marks (zeroed by the caller).
 */
static bool
delta_table_matches(TupleDesc table, TupleDesc rows, PlannedStmt *plan, AggStateMark *marks)
{
	Oid			agg_state = stream_agg_state_typid();

	if (table->natts != rows->natts || table->natts == 0)
		return false;
	if (TupleDescAttr(table, 0)->atttypid != stream_writer_xact_typid() ||
		TupleDescAttr(rows, 0)->atttypid != XID8OID)
		return false;
	for (int i = 1; i < table->natts; i++)
	{
		Form_pg_attribute t = TupleDescAttr(table, i);
		Oid			row_type = TupleDescAttr(rows, i)->atttypid;

		if (t->attisdropped)
			return false;
		if (t->atttypid == agg_state && row_type == BYTEAOID)
		{
			Oid			aggfnoid = stream_plan_state_aggregate(plan, i + 1);

			if (!OidIsValid(aggfnoid))
				return false;
			marks[i] = stream_agg_state_mark(aggfnoid);
		}
		else if (t->atttypid != row_type)
			return false;
	}
	return true;
}

static void
delta_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	DeltaReceiver *r = (DeltaReceiver *) self;

	r->rel = table_open(r->relid, RowExclusiveLock);
	if (r->marks != NULL)
		pfree(r->marks);
	r->marks = MemoryContextAllocZero(r->cxt, Max(typeinfo->natts, 1) * sizeof(AggStateMark));
	if (r->plan == NULL ||
		!delta_table_matches(RelationGetDescr(r->rel), typeinfo, r->plan, r->marks))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("delta table \"%s\" does not match its continuous view",
						RelationGetRelationName(r->rel))));
	r->marking = false;
	for (int i = 0; i < typeinfo->natts; i++)
		r->marking |= OidIsValid(r->marks[i].aggfnoid);
	if (r->slots == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(r->cxt);

		/* the keys' tracking first: slots set mean the receiver is ready */
		r->desc = CreateTupleDescCopy(RelationGetDescr(r->rel));
		r->key_notes = NULL;
		r->tracks_keys = stream_pending_key_hash_init(&r->key_hash, r->desc, r->key_count, r->cxt);
		if (r->tracks_keys)
			r->key_notes = palloc(DELTA_INSERT_ROWS * sizeof(PendingKeyNote));
		r->values = palloc(r->desc->natts * sizeof(Datum));
		r->slots = palloc0(DELTA_INSERT_ROWS * sizeof(TupleTableSlot *));
		MemoryContextSwitchTo(old);
	}
	r->nbuffered = 0;
	r->buffered_bytes = 0;
	r->bistate = GetBulkInsertState();
	r->cid = GetCurrentCommandId(true);
}

static void
delta_flush(DeltaReceiver *r)
{
	if (r->nbuffered == 0)
		return;
	if (r->tracks_keys)
		stream_pending_keys_raise(r->key_notes, r->nbuffered);
	stream_multi_insert(r->rel, r->slots, r->nbuffered, r->cid, r->bistate, r->flush_cxt);
	for (int i = 0; i < r->nbuffered; i++)
		ExecClearTuple(r->slots[i]);
	r->nbuffered = 0;
	r->buffered_bytes = 0;
}

/*
 * Note the pending-key slot of the row's key, raised when the rows are
 * flushed, before the batch commits: reads of one group then know it may
 * have deltas.  To the writer's id, or the batch's own when higher: with
 * commit_mode async a writer may have ended long before its events are
 * applied (worker/pending_clear.c).
 */
static void
note_key_written(DeltaReceiver *r, TupleTableSlot *in)
{
	MemoryContext old = MemoryContextSwitchTo(r->flush_cxt);
	uint32		hash = stream_pending_key_hash(&r->key_hash, in->tts_values + 1, in->tts_isnull + 1);
	FullTransactionId writer = DatumGetFullTransactionId(in->tts_values[0]);
	FullTransactionId batch = GetTopFullTransactionId();

	MemoryContextSwitchTo(old);
	r->key_notes[r->nbuffered] = stream_pending_key_note(r->relid, hash,
														 FullTransactionIdFollows(batch, writer) ?
														 batch : writer);
}

static bool
delta_receive(TupleTableSlot *in, DestReceiver *self)
{
	DeltaReceiver *r = (DeltaReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	HeapTuple	tuple;

	if (r->nbuffered == r->nslots)
		r->slots[r->nslots++] = MakeSingleTupleTableSlot(r->desc, &TTSOpsHeapTuple);
	slot_getallattrs(in);
	stream_check_key_size(&r->keys, in);
	if (r->tracks_keys)
		note_key_written(r, in);
	if (!r->marking)
		tuple = heap_form_tuple(r->desc, in->tts_values, in->tts_isnull);
	else
	{
		for (int i = 0; i < r->desc->natts; i++)
			r->values[i] = (OidIsValid(r->marks[i].aggfnoid) && !in->tts_isnull[i]) ?
				stream_agg_state_make(r->marks[i], in->tts_values[i]) : in->tts_values[i];
		tuple = heap_form_tuple(r->desc, r->values, in->tts_isnull);
		for (int i = 0; i < r->desc->natts; i++)
			if (r->values[i] != in->tts_values[i])
				pfree(DatumGetPointer(r->values[i]));
	}
	ExecStoreHeapTuple(tuple, r->slots[r->nbuffered++], true);
	MemoryContextSwitchTo(old);
	r->buffered_bytes += tuple->t_len;
	if (r->nbuffered == DELTA_INSERT_ROWS || r->buffered_bytes >= DELTA_INSERT_BYTES)
		delta_flush(r);
	return true;
}

static void
delta_shutdown(DestReceiver *self)
{
	DeltaReceiver *r = (DeltaReceiver *) self;

	delta_flush(r);
	FreeBulkInsertState(r->bistate);
	table_close(r->rel, NoLock);
}

static void
delta_destroy(DestReceiver *self)
{
	DeltaReceiver *r = (DeltaReceiver *) self;

	for (int i = 0; i < r->nslots; i++)
		ExecDropSingleTupleTableSlot(r->slots[i]);
	if (r->slots != NULL)
	{
		pfree(r->slots);
		pfree(r->values);
		FreeTupleDesc(r->desc);
	}
	if (r->marks != NULL)
		pfree(r->marks);
	if (r->key_notes != NULL)
	{
		pfree(r->key_notes);
		pfree(r->key_hash.procs);
		pfree(r->key_hash.collations);
	}
	MemoryContextDelete(r->flush_cxt);
	pfree(self);
}

/*
 * The receiver of a trial run (one event alone, a prefix of the batch): it
 * keeps no row, but refuses the keys the delta receiver would
 * (key_size.c), so that the trial finds the events that fail there too.
 */
typedef struct TrialReceiver
{
	DestReceiver pub;
	KeySizeCheck keys;
} TrialReceiver;

static void
trial_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static bool
trial_receive(TupleTableSlot *in, DestReceiver *self)
{
	TrialReceiver *r = (TrialReceiver *) self;

	slot_getallattrs(in);
	stream_check_key_size(&r->keys, in);
	return true;
}

static void
trial_shutdown(DestReceiver *self)
{
}

static void
trial_destroy(DestReceiver *self)
{
}

/*
 * The receiver of view's trial runs, valid until the batch's end.  A
 * transform into a stream forms its rows as events, as a kept run would
 * (filling the columns it does not give: a generated column's expression
 * may fail for a row), but no trial run is kept (each frees the last's).
 */
static DestReceiver *
make_trial_receiver(CachedView *view)
{
	TrialReceiver *r;

	if (OidIsValid(view->output_stream))
		return stream_forward_trial_receiver(view->output_stream);
	r = palloc0(sizeof(TrialReceiver));
	r->pub.receiveSlot = trial_receive;
	r->pub.rStartup = trial_startup;
	r->pub.rShutdown = trial_shutdown;
	r->pub.rDestroy = trial_destroy;
	r->pub.mydest = DestNone;
	stream_key_size_init(&r->keys, view->state_table, view->name, CurrentMemoryContext);
	return (DestReceiver *) r;
}

static DestReceiver *
make_delta_receiver(CachedView *view)
{
	DeltaReceiver *r = palloc0(sizeof(DeltaReceiver));

	r->pub.receiveSlot = delta_receive;
	r->pub.rStartup = delta_startup;
	r->pub.rShutdown = delta_shutdown;
	r->pub.rDestroy = delta_destroy;
	r->pub.mydest = DestNone;
	r->relid = view->delta_table;
	r->key_count = view->key_count;
	r->cxt = CurrentMemoryContext;
	r->flush_cxt = AllocSetContextCreate(r->cxt, "stream_ext delta insert", ALLOCSET_DEFAULT_SIZES);
	stream_key_size_init(&r->keys, view->state_table, view->name, r->cxt);
	return (DestReceiver *) r;
}

/*
 * Where the rows of the view's plan go: its delta table, or for a transform
 * into a stream, events of that stream added to *outputs once kept
 * (worker/forward.c).
 */
static DestReceiver *
make_view_receiver(CachedView *view, List **outputs)
{
	if (OidIsValid(view->output_stream))
		return stream_forward_receiver(view->output_stream, outputs, true);
	return make_delta_receiver(view);
}

/* Does the view's plan read relations besides its stream (tables it joins)? */
static bool
joins_tables(CachedView *view)
{
	ListCell   *lc;

	foreach(lc, view->plan_relations)
		if (lfirst_oid(lc) != view->stream)
			return true;
	return false;
}

/*
 * Run the view's plan over events, sending its rows to dest; with keep, in
 * the view's kept executor (see kept_executor.c) when it can be.
 */
static void
run_view_plan_timed(CachedView *view, StreamBatchEvents *events, DestReceiver *dest, bool keep)
{
	PlannedStmt *plan = NULL;
	ParamListInfo params = NULL;
	QueryDesc  *qd;
	StreamRunAs as;
	bool		one_writer = false;
	bool		fresh_snapshot;

	/*
	 * As the view's owner from here on: planning evaluates the view's
	 * immutable functions of constants, and the plan runs its expressions.
	 */
	stream_begin_as_owner(&as, view->owner);
	if (TransactionIdIsValid(events->writer))
		plan = view_cache_plan(view, true);
	if (plan != NULL)
	{
		one_writer = true;
		/* $1: the one writer of every event */
		params = makeParamList(1);
		params->numParams = 1;
		params->params[0].value = FullTransactionIdGetDatum(stream_recent_full_xid(events->writer));
		params->params[0].isnull = false;
		params->params[0].pflags = PARAM_FLAG_CONST;
		params->params[0].ptype = XID8OID;
	}
	else
		plan = view_cache_plan(view, false);

	if (dest->rStartup == delta_startup)
		((DeltaReceiver *) dest)->plan = plan;

	/*
	 * The tables the plan joins are locked now (view_cache_plan): a
	 * snapshot taken after that sees what a transaction the locks waited
	 * for committed, as a statement's does (a joined table truncated and
	 * filled again read empty under the batch's older snapshot).
	 */
	fresh_snapshot = joins_tables(view);
	if (fresh_snapshot)
		PushActiveSnapshot(GetTransactionSnapshot());
	stream_scan_source = events;
	if (!keep || !view_cache_is_valid() ||
		!kept_executor_run(&view->kept[one_writer ? 1 : 0], plan, view->definition, params, dest,
						   events->nevents))
	{
		qd = CreateQueryDesc(plan, view->definition, GetActiveSnapshot(), InvalidSnapshot,
							 dest, params, NULL, 0);
		ExecutorStart(qd, 0);
		ExecutorRun(qd, ForwardScanDirection, 0, true);
		ExecutorFinish(qd);
		ExecutorEnd(qd);
		FreeQueryDesc(qd);
	}
	stream_scan_source = NULL;
	if (fresh_snapshot)
		PopActiveSnapshot();
	stream_end_as_owner(&as);
}

typedef struct TimedPlanRun
{
	CachedView *view;
	StreamBatchEvents *events;
	DestReceiver *dest;
	bool		keep;
} TimedPlanRun;

static void
run_view_plan_work(void *arg)
{
	TimedPlanRun *r = arg;

	run_view_plan_timed(r->view, r->events, r->dest, r->keep);
}

/*
 * Run the view's plan over events, sending its rows to dest, within
 * stream_ext.view_time_limit: a run that takes longer fails with an error
 * of the view (54000), not a cancel; one that waited that long for a lock
 * (an advisory or row lock its function waits for: the relations it reads
 * and writes were locked without waiting first) fails with 55P03, and the
 * view's events are held back (apply_view), never lost.
 */
static void
run_view_plan(CachedView *view, StreamBatchEvents *events, DestReceiver *dest, bool keep)
{
	TimedPlanRun r = {view, events, dest, keep};

	stream_view_time_limited(view->name, run_view_plan_work, &r);
}


/*
 * Run work(arg) in an internal subtransaction.  Returns NULL when it
 * succeeded, else its error, the subtransaction rolled back.  The caller's
 * memory context and resource owner are current again either way.
 */
ErrorData *
stream_try_in_subtransaction(void (*work) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}

typedef struct ViewPlanRun
{
	CachedView *view;
	StreamBatchEvents *events;
	DestReceiver *dest;
} ViewPlanRun;

static void
run_view_plan_once(void *arg)
{
	ViewPlanRun *run = arg;

	run_view_plan(run->view, run->events, run->dest, false);
}

/*
 * Run the view's plan in a subtransaction.  Returns NULL on success, else
 * the error, which has been cleaned up.
 */
static ErrorData *
try_view_plan(CachedView *view, StreamBatchEvents *events, DestReceiver *dest)
{
	ViewPlanRun run = {view, events, dest};
	ErrorData  *edata = stream_try_in_subtransaction(run_view_plan_once, &run);

	stream_scan_source = NULL;
	return edata;
}

static bool view_error_is_transient(CachedView *view, ErrorData *edata);

/*
 * Run the view's plan, writing nothing, over the events neither in bad nor
 * at or after upto.  Returns the error, or NULL.
 */
static ErrorData *
try_prefix(CachedView *view, StreamBatchEvents *events, const bool *bad, int upto,
		   bool *scratch, DestReceiver *trial)
{
	bool	   *skip = events->skip;
	ErrorData  *e;

	for (int i = 0; i < events->nevents; i++)
		scratch[i] = bad[i] || i >= upto;
	events->skip = scratch;
	e = try_view_plan(view, events, trial);
	events->skip = skip;
	if (e != NULL && view_error_is_transient(view, e))
		ReThrowError(e);
	return e;
}

/*
 * For an error no event causes alone (a float sum overflowing over two
 * events, say): the event whose transition makes the view's plan fail, the
 * last of the shortest failing prefix of the events not in bad.  -1 when
 * even all of them together do not fail without writing (the error is not
 * the events': a full disk, a dropped table); -2 when the search is not done
 * by end (0: no end).  The prefix of the first floor events is known not to
 * fail (the events before the last culprit).
 */
static int
find_culprit(CachedView *view, StreamBatchEvents *events, const bool *bad, int floor,
			 const StreamViewDeadline *end, DestReceiver *trial)
{
	bool	   *scratch = palloc(sizeof(bool) * events->nevents);
	int			ok = floor;		/* a prefix that does not fail */
	int			fails = events->nevents;	/* one that does */

	if (try_prefix(view, events, bad, fails, scratch, trial) == NULL)
	{
		pfree(scratch);
		return -1;
	}
	while (fails - ok > 1)
	{
		int			mid = ok + (fails - ok) / 2;

		if (stream_view_deadline_passed(end))
		{
			pfree(scratch);
			return -2;
		}
		if (try_prefix(view, events, bad, mid, scratch, trial) != NULL)
			fails = mid;
		else
			ok = mid;
	}
	pfree(scratch);
	return bad[fails - 1] ? -1 : fails - 1;
}

/*
 * Is an error one that applying the same events again may not meet: out of
 * resources (a full disk, memory), an I/O error, operator intervention (a
 * cancel), a deadlock or serialization failure, a lock not available?
 */
bool
stream_error_is_transient(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_INSUFFICIENT_RESOURCES ||
		category == ERRCODE_SYSTEM_ERROR ||
		category == ERRCODE_OPERATOR_INTERVENTION ||
		category == ERRCODE_TRANSACTION_ROLLBACK ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/*
 * Was error e raised by a RAISE of a PL/pgSQL function (the view's code, its
 * aggregates' support functions), rather than met by the server (a deadlock
 * with another session, memory or disk running out, a lock another session
 * holds, a cancel)?  A RAISE that re-throws a caught error keeps where the
 * error came from.
 */
bool
stream_error_raised_by_code(ErrorData *e)
{
	return e->funcname != NULL && strcmp(e->funcname, "exec_stmt_raise") == 0;
}

/*
 * The view whose run raised the last transient error of a batch (0: none),
 * and the views whose transient errors may be their events' rather than
 * the batch's: a view's code may RAISE any SQLSTATE for an event (a
 * deadlock's, a full disk's, a cancel's, a lock not available), every
 * time, and retrying for ever would stall every writer behind the batch,
 * or hold the view's events back for ever.  A view owns such errors for a
 * batch that failed in its run that way over and over
 * (STREAM_TRANSIENT_TRIES, worker.c, held_back.c, kafka/batch.c), and, in
 * this process, for OWNED_FOR_MS after it set an event aside for one.
 * Only an error its code raised (stream_error_raised_by_code) is ever
 * owned, never one the server met: that one is the batch's, to be applied
 * again or held back.  An owned error is then the view's as any other
 * error of its code: an event that fails the view's run alone, or ends
 * the shortest failing prefix, is set aside; one that fails it without
 * events costs the view the batch.
 */
static int	last_transient_view = 0;
static const int *owning_views = NULL;
static int	n_owning_views = 0;

/* A view that set an event aside for a transient error owns them this long */
#define OWNED_FOR_MS (10 * 60 * 1000)

typedef struct OwnedLately
{
	int			view_id;
	TimestampTz until;
} OwnedLately;

static List *owned_lately = NIL;	/* OwnedLately *, in TopMemoryContext */

/*
 * Note how a try of a set of events failed (sqlerrcode): after
 * STREAM_TRANSIENT_TRIES transient failures in a row in the same view's
 * run, that view owns its code's transient errors for the later tries.
 * Returns whether this failure was that view's last before it owns them.
 */
bool
stream_transient_tries_note(StreamTransientTries *tries, int sqlerrcode)
{
	int			view = stream_error_is_transient(sqlerrcode) ? last_transient_view : 0;

	/* the same view's run failed that way again, or another's first */
	if (view != 0 && view == tries->view)
		tries->failures++;
	else
	{
		tries->view = view;
		tries->failures = view != 0 ? 1 : 0;
	}
	if (tries->failures != STREAM_TRANSIENT_TRIES)
		return false;
	if (tries->nowning < lengthof(tries->owning))
		tries->owning[tries->nowning++] = view;
	return true;
}

/* Is view_id one of views (n of them)? */
static bool
view_listed(const int *views, int n, int view_id)
{
	for (int i = 0; i < n; i++)
		if (views[i] == view_id)
			return true;
	return false;
}

void
stream_apply_views_own_transient_errors(const int *views, int n)
{
	owning_views = views;
	n_owning_views = n;
}

/* view set an event aside for a transient error: it owns them for a while */
static void
note_owned(CachedView *view)
{
	TimestampTz now = GetCurrentTimestamp();
	OwnedLately *found = NULL;
	ListCell   *lc;

	foreach(lc, owned_lately)
	{
		OwnedLately *o = lfirst(lc);

		if (o->view_id == view->id)
			found = o;
		else if (o->until < now)
		{
			owned_lately = foreach_delete_current(owned_lately, lc);
			pfree(o);
		}
	}
	if (found == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		found = palloc0(sizeof(OwnedLately));
		found->view_id = view->id;
		owned_lately = lappend(owned_lately, found);
		MemoryContextSwitchTo(old);
	}
	found->until = TimestampTzPlusMilliseconds(now, OWNED_FOR_MS);
}

/* May view's run own (as its events') the transient error e? */
static bool
owns_transient_error(CachedView *view, ErrorData *e)
{
	ListCell   *lc;

	if (!stream_error_raised_by_code(e))
		return false;
	if (view_listed(owning_views, n_owning_views, view->id))
		return true;
	foreach(lc, owned_lately)
	{
		OwnedLately *o = lfirst(lc);

		if (o->view_id == view->id)
			return o->until >= GetCurrentTimestamp();
	}
	return false;
}

/*
 * Is an error of view's run to propagate as transient (the batch's, or, for
 * a lock not available, to hold the view's events back)?  Not a
 * configuration limit the run reached (temp_file_limit): the same events
 * reach it again at every try while the setting stays, and the batch, with
 * every writer behind it, would wait for ever.  It is the view's error: the
 * careful retry runs the events one by one, sets aside for the view those
 * that reach the limit alone, and applies the others in parts small enough
 * (apply_in_parts).
 */
static bool
view_error_is_transient(CachedView *view, ErrorData *edata)
{
	if (!stream_error_is_transient(edata->sqlerrcode) ||
		edata->sqlerrcode == ERRCODE_CONFIGURATION_LIMIT_EXCEEDED)
		return false;
	if (owns_transient_error(view, edata))
		return false;
	/* a lock not available holds the view's events back, apply_view */
	if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		last_transient_view = view->id;
	return true;
}

/*
 * Does the view's plan fail with every event skipped?  Then its error is not
 * the events' (a privilege lost, a table it joins unreadable).
 */
static bool
fails_without_events(CachedView *view, StreamBatchEvents *events, DestReceiver *trial)
{
	bool	   *none = palloc0(sizeof(bool) * Max(events->nevents, 1));
	bool	   *scratch = palloc(sizeof(bool) * Max(events->nevents, 1));
	bool		fails = (try_prefix(view, events, none, 0, scratch, trial) != NULL);

	pfree(none);
	pfree(scratch);
	return fails;
}

/* At most this many culprits of errors no event causes alone, per view and batch */
#define MAX_CULPRIT_SEARCHES 64

/*
 * A view's search for the events that fail only with others takes at most
 * this many times stream_ext.view_time_limit per batch: then it skips the
 * rest of the batch
 */
#define CULPRIT_BUDGET_LIMITS 4

/* Did a run that failed with error e take longer than the time limit? */
static bool
timed_out(ErrorData *e)
{
	return e->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED &&
		stream_view_time_limit_last_run_timed_out();
}

/* The careful retry applying a batch in parts (apply_in_parts) */
typedef struct Parts
{
	CachedView *view;
	StreamBatchEvents *events;
	bool	   *bad;			/* events set aside, as in apply_view_carefully */
	List	   *done;			/* the receivers of the parts applied */
	List	  **outputs;
	ViewErrorLog *log;
	const StreamViewDeadline *end;	/* the view's budget */
	DestReceiver *trial;
	int			searches;		/* culprit searches left, as in the rounds */
	bool		out_of_time;
} Parts;

/*
 * Apply the events in [lo, hi) not in p->bad, by halves while a run of them
 * together fails: a limit of the configuration the events reach together
 * and none alone (temp_file_limit: a run's spill grows with its events)
 * costs none of them.  An event that fails alone, or that an error the
 * part's events cause together blames (find_culprit, as in the rounds), is
 * set aside in p->bad, recorded; past the view's budget the rest is.
 * Returns how many were.  The receivers of the parts applied go to p->done,
 * for the caller to keep once every part is done: a transient error of a
 * later part holds all of the view's events back, and the rows a transform
 * wrote for the earlier parts must not be kept then.
 */
static int
apply_in_parts(Parts *p, int lo, int hi)
{
	StreamBatchEvents *events = p->events;
	bool	   *excluded = events->skip;
	bool	   *skip;
	int			n = 0;
	int			last = -1;
	int			nbad = 0;
	int			mid;
	DestReceiver *dest;
	ErrorData  *e;

	for (int i = lo; i < hi; i++)
		if (!p->bad[i])
		{
			n++;
			last = i;
		}
	if (n == 0)
		return 0;
	if (stream_view_deadline_passed(p->end))
	{
		if (!p->out_of_time)
			stream_view_errors_record_reason(p->log, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
											 psprintf("applying the batch in parts took longer than %d ms; the rest of the batch is skipped",
													  CULPRIT_BUDGET_LIMITS * stream_ext_view_time_limit_ms));
		p->out_of_time = true;
		for (int i = lo; i < hi; i++)
			if (!p->bad[i])
			{
				p->bad[i] = true;
				nbad++;
			}
		return nbad;
	}
	skip = palloc(sizeof(bool) * events->nevents);
	for (int i = 0; i < events->nevents; i++)
		skip[i] = p->bad[i] || i < lo || i >= hi;
	dest = make_view_receiver(p->view, p->outputs);
	events->skip = skip;
	e = try_view_plan(p->view, events, dest);
	events->skip = excluded;
	if (e == NULL)
	{
		pfree(skip);
		p->done = lappend(p->done, dest);
		return 0;
	}
	dest->rDestroy(dest);
	if (view_error_is_transient(p->view, e))
		ReThrowError(e);
	if (n == 1)
	{
		p->bad[last] = true;
		stream_view_errors_record(p->log, e, stream_event_as_text(events->stream,
																  &events->events[last]));
		pfree(skip);
		return 1;
	}
	if (e->sqlerrcode != ERRCODE_CONFIGURATION_LIMIT_EXCEEDED && !timed_out(e) &&
		p->searches-- > 0)
	{
		int			culprit = find_culprit(p->view, events, skip, lo, p->end, p->trial);

		if (culprit >= 0)
		{
			p->bad[culprit] = true;
			stream_view_errors_record(p->log, e, stream_event_as_text(events->stream,
																	  &events->events[culprit]));
			pfree(skip);
			return 1 + apply_in_parts(p, lo, hi);
		}
	}
	pfree(skip);
	mid = lo + (hi - lo) / 2;
	nbad = apply_in_parts(p, lo, mid);
	return nbad + apply_in_parts(p, mid, hi);
}

/* The events of a batch the view was to apply: not excluded (late ones) */
static int
applicable_events(StreamBatchEvents *events)
{
	int			n = events->nevents;

	if (events->skip != NULL)
		for (int i = 0; i < events->nevents; i++)
			n -= events->skip[i] ? 1 : 0;
	return n;
}

/*
 * Apply events to a view, skipping the events its expressions fail on (and
 * those events->skip already excludes) and recording them (at most
 * stream_ext.max_view_errors).  An event fails alone (a division by zero)
 * or with the events before it (an overflowing sum): each round tries every
 * event alone, then the shortest failing prefix names one more.  An error
 * that is not the events' costs the view this batch (recorded without an
 * event), unless it is transient: that one propagates (a lock not available
 * holds the events back, apply_view; anything else has the batch applied
 * again later).  Returns the number of events skipped for an error.
 */
static int
apply_view_carefully(CachedView *view, StreamBatchEvents *events, List **outputs)
{
	ErrorData  *edata;
	bool	   *excluded = events->skip;
	bool	   *bad;
	int			nbad = 0;
	ViewErrorLog log;
	StreamViewDeadline deadline = {0};
	StreamViewDeadline culprit_end = {0};
	int			floor = 0;
	bool		slow;
	DestReceiver *dest = make_view_receiver(view, outputs);
	DestReceiver *trial;
	MemoryContext trial_cxt;

	edata = try_view_plan(view, events, dest);
	if (edata == NULL)
	{
		stream_forward_keep(dest);
		return 0;
	}
	slow = timed_out(edata);	/* before another run resets it */
	/* planning it, too, may have waited for a lock (or run out of memory) */
	if (view_error_is_transient(view, edata))
		ReThrowError(edata);
	trial = make_trial_receiver(view);
	stream_view_errors_begin(&log, view->id);
	if (view->plan == NULL || fails_without_events(view, events, trial))
	{
		/*
		 * The view cannot be planned, or its plan fails even without events
		 * (its owner may no longer read a table it joins): nothing
		 * event-specific.
		 */
		stream_view_errors_record(&log, edata, NULL);
		stream_view_errors_end(&log);
		return applicable_events(events);
	}

	/*
	 * Trying each event alone may cost as much as the view's whole run: a
	 * view over its time limit gets twice the limit for it, then skips the
	 * batch.
	 */
	if (slow)
		deadline = stream_view_deadline_after(2 * stream_ext_view_time_limit_ms);
	bad = palloc0(sizeof(bool) * events->nevents);

	/*
	 * Each trial in memory of its own, freed after it: a failed run leaves
	 * its executor behind (no ExecutorEnd), and a batch may try 20,000.
	 */
	trial_cxt = AllocSetContextCreate(CurrentMemoryContext, "stream_ext event trial",
									  ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < events->nevents; i++)
	{
		ErrorData  *e;
		MemoryContext old;

		if (stream_view_deadline_passed(&deadline))
		{
			/* the view is slow, not an event: it skips this batch */
			events->only = -1;
			stream_view_errors_record(&log, edata, NULL);
			stream_view_errors_end(&log);
			return applicable_events(events);
		}
		if (excluded != NULL && excluded[i])
		{
			bad[i] = true;
			continue;
		}
		events->only = i;
		old = MemoryContextSwitchTo(trial_cxt);
		e = try_view_plan(view, events, trial);
		if (e != NULL && view_error_is_transient(view, e))
		{
			events->only = -1;
			ReThrowError(e);
		}
		if (e != NULL)
		{
			bad[i] = true;
			nbad++;
			if (stream_error_is_transient(e->sqlerrcode) && stream_error_raised_by_code(e))
				note_owned(view);
			if (!stream_view_errors_full(&log))
				stream_view_errors_record(&log, e, stream_event_as_text(events->stream,
																		&events->events[i]));
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(trial_cxt);
	}
	events->only = -1;
	MemoryContextDelete(trial_cxt);

	if (stream_ext_view_time_limit_ms > 0)
		culprit_end = stream_view_deadline_after(CULPRIT_BUDGET_LIMITS * stream_ext_view_time_limit_ms);
	for (int round = 0;; round++)
	{
		int			culprit = -1;
		bool		search;

		events->skip = bad;
		dest = make_view_receiver(view, outputs);
		edata = try_view_plan(view, events, dest);
		events->skip = excluded;
		if (edata == NULL)
		{
			stream_forward_keep(dest);
			break;
		}
		/* a transient error the view's code did not raise is the batch's */
		if (view_error_is_transient(view, edata))
			ReThrowError(edata);
		/* a limit the events reach only together: no culprit, but fewer at once */
		if (edata->sqlerrcode == ERRCODE_CONFIGURATION_LIMIT_EXCEEDED)
		{
			Parts		parts = {view, events, bad, NIL, outputs, &log, &culprit_end, trial,
			MAX_CULPRIT_SEARCHES - round, false};
			ListCell   *lc;

			nbad += apply_in_parts(&parts, 0, events->nevents);
			foreach(lc, parts.done)
			{
				DestReceiver *done = lfirst(lc);

				stream_forward_keep(done);
				done->rDestroy(done);
			}
			break;
		}

		/*
		 * A time limit is not found by prefix: the longest prefix would be
		 * blamed.  Nor is a culprit searched for past the view's budget.
		 */
		search = round < MAX_CULPRIT_SEARCHES && !timed_out(edata);
		if (search)
			culprit = find_culprit(view, events, bad, floor, &culprit_end, trial);
		if (culprit == -2)
			stream_view_errors_record_reason(&log, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
											 psprintf("searching for the events that fail only with others took longer than %d ms; the rest of the batch is skipped",
													  CULPRIT_BUDGET_LIMITS * stream_ext_view_time_limit_ms));
		if (culprit < 0)
		{
			/* not an event's fault: the view skips this batch */
			stream_view_errors_record(&log, edata, NULL);
			for (int i = 0; i < events->nevents; i++)
				if (!bad[i])
					nbad++;
			break;
		}
		bad[culprit] = true;
		nbad++;
		floor = culprit + 1;
		stream_view_errors_record(&log, edata, stream_event_as_text(events->stream,
																	&events->events[culprit]));
	}
	stream_view_errors_end(&log);
	return nbad;
}

/* The xmin every event carries, or InvalidTransactionId when they differ. */
static TransactionId
common_writer(StreamBatchEvents *events)
{
	TransactionId writer;

	if (events->nevents == 0)
		return InvalidTransactionId;
	writer = HeapTupleHeaderGetRawXmin(events->events[0].t_data);
	for (int i = 1; i < events->nevents; i++)
		if (HeapTupleHeaderGetRawXmin(events->events[i].t_data) != writer)
			return InvalidTransactionId;
	return writer;
}

/*
 * Deform every event of a stream once, for all its views: each view's scan
 * then hands its plan slots whose columns are already extracted.  The arrays
 * live in the batch's transaction.
 */
static void
deform_events(StreamBatchEvents *events)
{
	Relation	rel = table_open(events->stream, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	events->natts = desc->natts;
	events->values = palloc(sizeof(Datum) * desc->natts * Max(events->nevents, 1));
	events->isnull = palloc(sizeof(bool) * desc->natts * Max(events->nevents, 1));
	for (int i = 0; i < events->nevents; i++)
		heap_deform_tuple(&events->events[i], desc,
						  events->values + (size_t) i * desc->natts,
						  events->isnull + (size_t) i * desc->natts);
	table_close(rel, AccessShareLock);
}

/* Show in pg_stat_activity which view this process applies events to. */
static void
report_view_activity(CachedView *view, int nevents)
{
	char		activity[NAMEDATALEN * 2 + 64];

	snprintf(activity, sizeof(activity), "stream_ext: applying %d events to continuous view %s",
			 nevents, view->name);
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* A careful run of one view, in a subtransaction of its own */
typedef struct CarefulRun
{
	CachedView *view;
	StreamBatchEvents *events;
	List	  **outputs;
	ViewCount  *count;
} CarefulRun;

/* Judge which events are late for view, unless that was done as they were held */
static void
mark_late_events(CachedView *view, StreamBatchEvents *events, ViewCount *count)
{
	int			nlate = 0;

	if (!events->late_judged)
		events->skip = stream_mark_late_events(view->id, view->name, view->window, events,
											   false, &nlate);
	count->events = events->nevents - nlate;
}

static void
apply_view_carefully_work(void *arg)
{
	CarefulRun *r = arg;

	mark_late_events(r->view, r->events, r->count);
	r->count->errors = apply_view_carefully(r->view, r->events, r->outputs);
}

/*
 * Apply events to one view, adding its ViewCount to *counts and the rows of
 * a transform into a stream to *outputs.  A run that waited out its time
 * limit for a lock holds the events back instead (held_back.c), unless
 * draining: then they are the view's held events, and the lock error
 * propagates.  Carefully, the view's lateness and run are one
 * subtransaction: a run that waited for a lock leaves no trace but its
 * held events.
 */
static void
apply_view(CachedView *view, StreamBatchEvents *events, bool careful, bool draining,
		   List **outputs, List **counts)
{
	ViewCount  *count = palloc0(sizeof(ViewCount));

	count->view_id = view->id;
	report_view_activity(view, events->nevents);
	if (careful)
	{
		CarefulRun	run = {view, events, outputs, count};
		ErrorData  *e = stream_try_in_subtransaction(apply_view_carefully_work, &run);

		events->skip = NULL;
		events->only = -1;
		if (e != NULL)
		{
			if (draining || e->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
				ReThrowError(e);
			stream_view_note_blocked(view->id);
			stream_hold_back(view, events, true);
			return;
		}
	}
	else
	{
		DestReceiver *dest = make_view_receiver(view, outputs);

		mark_late_events(view, events, count);
		PG_TRY();
		{
			run_view_plan(view, events, dest, true);
		}
		PG_CATCH();
		{
			/*
			 * The careful retry holds the view's events back at once; a drain
			 * is not tried again at once.
			 */
			if (geterrcode() == ERRCODE_LOCK_NOT_AVAILABLE)
				stream_view_note_blocked(view->id);
			PG_RE_THROW();
		}
		PG_END_TRY();
		stream_forward_keep(dest);
		dest->rDestroy(dest);
		events->skip = NULL;
	}
	*counts = lappend(*counts, count);
}

/*
 * The staging views of events' stream that their writers did not stage,
 * staged by the hook when it can (kafka/sink_stage.c formats the messages
 * and puts them in the outbox, tagged with each event's writer), instead of
 * a delta row per event.  Returns whether it did.
 */
static bool
stage_sinks(StreamBatchEvents *events, List *views)
{
	List	   *sinks = NIL;
	ListCell   *lv;
	bool		staged;

	if (stream_worker_stage_sinks_hook == NULL ||
		(events->writer_applied & STREAM_FLAG_SINKS_STAGED) != 0)
		return false;
	foreach(lv, views)
	{
		CachedView *view = lfirst(lv);

		if (view->sink_id == 0)
			continue;
		if (stream_view_held_back(view))
		{
			list_free(sinks);
			return false;		/* held events go first, by the plan */
		}
		sinks = lappend(sinks, view);
	}
	staged = sinks != NIL && stream_worker_stage_sinks_hook(events, sinks);
	list_free(sinks);
	return staged;
}

/* How many of views will run their plans over events */
static int
plans_to_run(StreamBatchEvents *events, List *views, bool sinks_staged)
{
	ListCell   *lv;
	int			n = 0;

	foreach(lv, views)
	{
		CachedView *view = lfirst(lv);

		if (!applied_by_writers(events, view) && !(sinks_staged && view->sink_id > 0))
			n++;
	}
	return n;
}

/*
 * The view whose events apply_streams is on (0: none), for the time limit's
 * signal handler (worker.c); and the views that skip their events of the
 * batch instead (stream_apply_skip_views).
 */
static volatile sig_atomic_t running_view = 0;
static const int *skipped_views = NULL;
static int	n_skipped_views = 0;

int
stream_apply_running_view(void)
{
	return running_view;
}

/*
 * Forget the view an error left running_view set to (the combiner, before
 * each unit of its work: paused_views.c reads it).
 */
void
stream_apply_forget_running_view(void)
{
	running_view = 0;
}

/*
 * Have views (n of them; none: NULL, 0) skip their events of the batches
 * applied from now on, each recorded in view_errors as one error: their
 * code went on after the time limit cancelled their run over them, and the
 * worker was ended for it (worker.c).
 */
void
stream_apply_skip_views(const int *views, int n)
{
	skipped_views = views;
	n_skipped_views = n;
}

static void
skip_events(CachedView *view, StreamBatchEvents *events, List **counts)
{
	ViewCount  *count = palloc0(sizeof(ViewCount));
	ViewErrorLog log;

	count->view_id = view->id;
	count->events = events->nevents;
	count->errors = events->nevents;
	*counts = lappend(*counts, count);
	stream_view_errors_begin(&log, view->id);
	stream_view_errors_record_reason(&log, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
									 psprintf("the view's code went on after stream_ext.view_time_limit (%d ms) cancelled its run (it catches the cancel): the worker was ended, and the view skipped its %d events of the batch",
											  stream_ext_view_time_limit_ms, events->nevents));
	stream_view_errors_end(&log);
}

static void
held_events_wait(int view_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("held events of continuous view %d cannot be applied now", view_id),
			 errdetail("Another transaction holds a lock the view's run needs, or the view changed.")));
}

/*
 * Apply the events of streams to their views, adding a ViewCount per view
 * to *counts; then, in the same transaction, the rows that transforms wrote
 * into streams to those streams' views, and so on down the chain.  With
 * drain_id, streams is one stream's events held back from that view, and
 * are applied to it alone (or an error says why not).
 */
static void
apply_streams(List *streams, bool careful, int drain_id, List **counts, int depth)
{
	List	   *outputs = NIL;	/* StreamBatchEvents * that transforms wrote */
	bool		drained = false;
	ListCell   *lc;

	if (depth > STREAM_MAX_TRANSFORM_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transforms into streams chain deeper than %d", STREAM_MAX_TRANSFORM_DEPTH),
				 errhint("Drop a transform of the chain: two made concurrently may form a cycle.")));
	foreach(lc, streams)
	{
		StreamBatchEvents *events = lfirst(lc);
		List	   *views = view_cache_views_of_stream(events->stream);
		ListCell   *lv;
		bool		sinks_staged;

		/*
		 * DDL on the stream in an open transaction: its views hold the
		 * events back (the writers of other streams go on, and this
		 * stream's in flight are acknowledged, so the DDL is not kept
		 * waiting for them).  Their lateness is judged when they are
		 * applied: judging reads the stream.
		 */
		if (!ConditionalLockRelationOid(events->stream, AccessShareLock))
		{
			if (drain_id != 0)
				held_events_wait(drain_id);
			foreach(lv, views)
			{
				CachedView *view = lfirst(lv);

				if (!applied_by_writers(events, view))
					stream_hold_back(view, events, false);
			}
			continue;
		}
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(events->stream)))
			continue;			/* the stream was dropped */
		events->writer = common_writer(events);
		events->values = NULL;
		sinks_staged = drain_id == 0 && stage_sinks(events, views);
		if (drain_id == 0 && plans_to_run(events, views, sinks_staged) > 1)
			deform_events(events);
		foreach(lv, views)
		{
			CachedView *view = lfirst(lv);

			if (drain_id != 0 && view->id != drain_id)
				continue;
			if (applied_by_writers(events, view))
				continue;		/* writer_apply.c, kafka/sink_stage.c */
			if (sinks_staged && view->sink_id > 0)
				continue;		/* stage_sinks */
			if (drain_id == 0 && view_listed(skipped_views, n_skipped_views, view->id))
			{
				/* recorded while the view is there (a DROP may be under way) */
				if (ConditionalLockRelationOid(view->view, AccessShareLock) &&
					SearchSysCacheExists1(RELOID, ObjectIdGetDatum(view->view)))
					skip_events(view, events, counts);
				else
					ereport(LOG,
							(errmsg("continuous view %d skipped %d events of a batch, not recorded: it is locked or gone",
									view->id, events->nevents)));
				continue;
			}
			running_view = view->id;
			if (drain_id != 0 && !stream_view_locks_free(view))
				held_events_wait(drain_id);
			if (drain_id == 0 && stream_view_held_back(view))
			{
				stream_hold_back(view, events, true);
				continue;
			}
			if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(view->view)))
				continue;		/* dropped since the cache was loaded */
			apply_view(view, events, careful, drain_id != 0, &outputs, counts);
			drained = true;
			CommandCounterIncrement();
		}
		events->values = NULL;
	}
	running_view = 0;
	/* held events not applied stay held: their deletion rolls back */
	if (drain_id != 0 && !drained)
		held_events_wait(drain_id);
	if (outputs != NIL)
		apply_streams(outputs, careful, 0, counts, depth + 1);
}

/* Record counts, one per view: a chain may reach a view twice */
static void
record_counts(List *counts, int worker_no)
{
	List	   *merged = NIL;
	ListCell   *lc;

	foreach(lc, counts)
	{
		ViewCount  *c = lfirst(lc);
		ListCell   *lm;
		bool		found = false;

		foreach(lm, merged)
		{
			ViewCount  *m = lfirst(lm);

			if (m->view_id == c->view_id)
			{
				m->events += c->events;
				m->errors += c->errors;
				found = true;
			}
		}
		if (!found)
			merged = lappend(merged, c);
	}
	stream_counters_record(merged, worker_no);
}

/*
 * Apply the events of streams (a list of StreamBatchEvents) to their views
 * and count them, inside the caller's transaction, which must have an active
 * snapshot.  Rows of transforms into streams are applied to those streams'
 * views in the same transaction (worker/forward.c).  Errors propagate; the
 * caller aborts and may retry with careful = true.
 */
void
stream_apply_events(List *streams, int worker_no, bool careful)
{
	List	   *counts = NIL;

	last_transient_view = 0;
	running_view = 0;			/* an error may have left it set */
	apply_streams(streams, careful, 0, &counts, 0);
	record_counts(counts, worker_no);
}

/*
 * Apply runs of events that view_id held back (held_back.c: a list of
 * StreamBatchEvents, oldest first) to it alone, and what its transform into
 * a stream writes to that stream's views, as stream_apply_events does,
 * counted as one batch.  A lock of the view's that someone holds, or the
 * view gone from the stream, fails with 55P03: the events stay held.
 */
void
stream_apply_held_events(int view_id, List *runs, int worker_no, bool careful)
{
	List	   *counts = NIL;
	ListCell   *lc;

	running_view = 0;			/* an error may have left it set */
	foreach(lc, runs)
		apply_streams(list_make1(lfirst(lc)), careful, view_id, &counts, 0);
	record_counts(counts, worker_no);
}

/*
 * For a writer applying its own events (writer_apply.c): run the stream's
 * transforms into tables over events, their rows inserted straight into
 * the output tables (table_insert.c), counted under worker_no, in the
 * caller's transaction, which must have an active snapshot.  Errors
 * propagate.  No executor is kept: a session goes on to run anything, and
 * must not hold relations open between its transactions.
 */
void
stream_apply_table_transforms(StreamBatchEvents *events, int worker_no)
{
	List	   *counts = NIL;
	ListCell   *lv;

	foreach(lv, view_cache_views_of_stream(events->stream))
	{
		CachedView *view = lfirst(lv);
		DestReceiver *dest;
		ViewCount  *count;

		if (!OidIsValid(view->output_table))
			continue;
		LockRelationOid(view->view, AccessShareLock);
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(view->view)))
			continue;			/* dropped since the cache was loaded */
		dest = stream_table_insert_receiver(view->output_table);
		run_view_plan(view, events, dest, false);
		dest->rDestroy(dest);
		count = palloc0(sizeof(ViewCount));
		count->view_id = view->id;
		count->events = events->nevents;
		counts = lappend(counts, count);
		CommandCounterIncrement();
	}
	stream_counters_record_nowait(counts, worker_no);
}

/*
 * The batch's streams in the order of their OIDs (a stream's runs keeping
 * theirs): every worker then locks the watermark rows of event-time views
 * (lateness.c, held to the commit) in one order, and two batches over the
 * same streams do not deadlock on them.
 */
static List *
streams_in_oid_order(List *streams)
{
	int			n = list_length(streams);
	StreamBatchEvents **sorted;
	List	   *result = NIL;

	if (n < 2)
		return streams;
	sorted = palloc(sizeof(StreamBatchEvents *) * n);
	for (int i = 0; i < n; i++)
		sorted[i] = list_nth(streams, i);
	/* insertion sort, stable: a batch has few streams */
	for (int i = 1; i < n; i++)
	{
		StreamBatchEvents *e = sorted[i];
		int			j = i;

		for (; j > 0 && sorted[j - 1]->stream > e->stream; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = e;
	}
	for (int i = 0; i < n; i++)
		result = lappend(result, sorted[i]);
	pfree(sorted);
	return result;
}

static int
queued_writer_cmp(const void *a, const void *b)
{
	TransactionId x = ((const BatchQueuedWriter *) a)->top;
	TransactionId y = ((const BatchQueuedWriter *) b)->top;

	return x < y ? -1 : x > y ? 1 : 0;
}

static int
queued_xmin_cmp(const void *a, const void *b)
{
	TransactionId x = ((const StreamQueuedXmin *) a)->xmin;
	TransactionId y = ((const StreamQueuedXmin *) b)->xmin;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Merge the batch's entries of writers of QUEUED records into one per
 * writer, in the order of their ids, and keep those that may have records
 * outside the batch (with their events' (sub)transactions, in the order of
 * those): a writer whose first record and only LAST record are both in the
 * batch sent every record of its transaction to this worker, and all of
 * them are here.
 */
static void
merge_queued_writers(StreamBatch *batch)
{
	int			n = 0;
	int			nx = 0;

	if (batch->queued_merged || batch->nqueued == 0)
		return;
	qsort(batch->queued, batch->nqueued, sizeof(BatchQueuedWriter), queued_writer_cmp);
	for (int i = 0; i < batch->nqueued; i++)
	{
		BatchQueuedWriter *w = &batch->queued[i];

		if (n > 0 && batch->queued[n - 1].top == w->top)
		{
			BatchQueuedWriter *m = &batch->queued[n - 1];

			m->first |= w->first;
			m->lasts += w->lasts;
			m->last_of = Max(m->last_of, w->last_of);
		}
		else
			batch->queued[n++] = *w;
	}
	batch->nqueued = 0;
	for (int i = 0; i < n; i++)
	{
		BatchQueuedWriter *w = &batch->queued[i];

		if (!(w->first && w->last_of == 1 && w->lasts == 1))
			batch->queued[batch->nqueued++] = *w;
	}
	qsort(batch->queued_xmins, batch->nqueued_xmins, sizeof(StreamQueuedXmin), queued_xmin_cmp);
	for (int i = 0; i < batch->nqueued_xmins; i++)
	{
		StreamQueuedXmin *x = &batch->queued_xmins[i];
		BatchQueuedWriter key = {.top = x->top};

		if (nx > 0 && batch->queued_xmins[nx - 1].xmin == x->xmin)
			continue;
		if (bsearch(&key, batch->queued, batch->nqueued, sizeof(BatchQueuedWriter),
					queued_writer_cmp) != NULL)
			batch->queued_xmins[nx++] = *x;
	}
	batch->nqueued_xmins = nx;
	batch->queued_merged = true;
}

/* Note the LAST records of the batch's tracked writers (window/lateness.c) */
static void
note_queued_writers(StreamBatch *batch)
{
	TransactionId *tops;
	int32	   *lasts;
	int32	   *last_of;

	if (batch->nqueued == 0)
		return;
	tops = palloc(sizeof(TransactionId) * batch->nqueued);
	lasts = palloc(sizeof(int32) * batch->nqueued);
	last_of = palloc(sizeof(int32) * batch->nqueued);
	for (int i = 0; i < batch->nqueued; i++)
	{
		tops[i] = batch->queued[i].top;
		lasts[i] = batch->queued[i].lasts;
		last_of[i] = batch->queued[i].last_of;
	}
	stream_lateness_note_queued(tops, lasts, last_of, batch->nqueued);
}

/*
 * A batch that could not be applied is discarded: its LAST records of
 * tracked writers are counted all the same, in a transaction of their own
 * (their events will not come again).  Errors propagate.
 */
void
stream_apply_discarded_batch(StreamBatch *batch)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(batch));

	merge_queued_writers(batch);
	MemoryContextSwitchTo(old);
	if (batch->nqueued == 0)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	note_queued_writers(batch);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Apply the batch in one transaction; errors propagate to the caller, which
 * aborts and may retry with careful = true.
 */
void
stream_apply_batch(StreamBatch *batch, int worker_no, bool careful)
{
	MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(batch));

	/* (in the batch's memory: a careful retry applies it again) */
	batch->streams = streams_in_oid_order(batch->streams);
	merge_queued_writers(batch);
	MemoryContextSwitchTo(old);
	last_transient_view = 0;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	stream_lateness_queued_xmins(batch->queued_xmins, batch->nqueued_xmins);
	PG_TRY();
	{
		stream_apply_events(batch->streams, worker_no, careful);
		note_queued_writers(batch);
	}
	PG_FINALLY();
	{
		stream_lateness_queued_xmins(NULL, 0);
	}
	PG_END_TRY();
	PopActiveSnapshot();
	CommitTransactionCommand();
}
