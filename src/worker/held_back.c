/*
 * held_back.c
 *	  Holding back a continuous view's events while someone holds a lock its
 *	  run needs, so that the other views and streams go on.
 *
 * A worker applies the views of its batch one after another, and its
 * writers wait for the batch: a view whose run waited for a lock (its
 * owner's open transaction that altered it, a LOCK of a table it joins, a
 * VACUUM FULL of its tables, DDL on its stream) would hold up every stream
 * of the worker's queue for as long as the lock is held.  Instead, its
 * events go into stream_ext_internal.held_events, in the batch's
 * transaction (catalog/held_events.c), and the batch commits: the events
 * are as safe there as in the view's deltas, and their writers are
 * acknowledged.  A view's events are held back when
 *   - a lock its run takes first is not free now, taken without waiting:
 *     the stream, the view, the relations its query names or its plan
 *     reads, its delta table (stream_view_locks_free), except a lock held
 *     only to cut a table's empty end, by VACUUM or, on a delta table, by
 *     the combiner (worker/delta_shrink.c): it is waited for, since both
 *     let go as soon as someone waits (for about a second at most);
 *   - its run in this process waited stream_ext.view_time_limit for some
 *     other lock (an advisory or row lock its function waits for) less than
 *     hold_ms ago: 1 s after a first wait, doubling at each wait that
 *     follows within 10 minutes, up to a minute, so that a lock taken and
 *     released over and over costs the queue a wait now and then, not at
 *     every batch.
 * Their lateness is judged as they are held, in a subtransaction, as a run
 * would: the late ones are recorded and not held, and the others' times
 * are kept with them, the view's watermark waiting at the earliest
 * (stream_ext_internal.view_watermark) until they are applied.  When the
 * stream is locked (judging reads it), or the watermark row is (an open
 * truncate_continuous_view; the judgement waits for it at most the view's
 * time limit, not at all when the delta table is locked too), they are
 * judged when they are applied.
 *
 * The combiner's job applies them (stream_apply_held_events), a chunk of
 * stream_ext.batch_size events at a time, oldest first, in a transaction
 * that also deletes them, as soon as the view's locks are free, for at most
 * DRAIN_BUDGET_MS per turn of its loop (its merges go on between).  A chunk
 * whose run waits for a lock anyway fails after the time limit, and the
 * view's next try waits 1 s, doubling up to 16 s.  After
 * STREAM_TRANSIENT_TRIES failures in a row, a transient error (a lock not
 * available included) that the view's code raises for one event alone sets
 * that event aside for the view, recorded (apply.c), so that such an event
 * does not hold the view's events for ever.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "catalog/held_events.h"
#include "guc.h"
#include "ipc/queue.h"
#include "ipc/status.h"
#include "jobs/jobs.h"
#include "jobs/retry.h"
#include "window/lateness.h"
#include "window/spec.h"
#include "worker/apply.h"
#include "worker/counters.h"
#include "worker/held_back.h"
#include "worker/paused_views.h"
#include "worker/time_limit.h"
#include "worker/view_cache.h"

/*
 * How long a worker waits for a lock held to cut a table's end (ms): the
 * cut lets go within about 20 ms of seeing a waiter, unless its last
 * truncation takes longer (then the worker looks again, up to this many
 * times)
 */
#define CUT_WAIT_MS 100
#define CUT_WAIT_TRIES 10

/* After a run waited out its time limit for a lock: hold back this long */
#define HOLD_FIRST_MS 1000
#define HOLD_MAX_MS 60000
/* ... doubling when it waits again within this long of the last */
#define HOLD_AGAIN_MS (10 * 60 * 1000)

/* The combiner's tries of a view whose held events wait for a lock */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 16000

/* The combiner applies held events for at most this long per turn */
#define DRAIN_BUDGET_MS 100

/* A view whose run waited for a lock */
typedef struct HeldView
{
	int			view_id;
	TimestampTz blocked_at;		/* its run last waited for a lock */
	int			hold_ms;		/* its events are held back this long after */
} HeldView;

static List *held_views = NIL;	/* HeldView *, in TopMemoryContext */

/* The combiner's tries of views whose held events waited for a lock */
static StreamRetries drain_retries = STREAM_RETRIES(RETRY_FIRST_MS, RETRY_MAX_MS);

static HeldView *
find_held(int view_id)
{
	ListCell   *lc;

	foreach(lc, held_views)
		if (((HeldView *) lfirst(lc))->view_id == view_id)
			return lfirst(lc);
	return NULL;
}

/* The view's entry, made if need be; forgets those long past (dropped views) */
static HeldView *
note_held(int view_id, TimestampTz now)
{
	HeldView   *h = find_held(view_id);
	MemoryContext old;
	ListCell   *lc;

	foreach(lc, held_views)
	{
		HeldView   *other = lfirst(lc);

		if (other != h &&
			TimestampDifferenceExceeds(other->blocked_at, now, other->hold_ms + HOLD_AGAIN_MS))
		{
			held_views = foreach_delete_current(held_views, lc);
			pfree(other);
		}
	}
	if (h != NULL)
		return h;
	old = MemoryContextSwitchTo(TopMemoryContext);
	h = palloc0(sizeof(HeldView));
	h->view_id = view_id;
	held_views = lappend(held_views, h);
	MemoryContextSwitchTo(old);
	return h;
}

/* Is the view within the hold that its run's last lock wait began? */
static bool
recently_blocked(int view_id, TimestampTz now)
{
	HeldView   *h = find_held(view_id);

	return h != NULL && !TimestampDifferenceExceeds(h->blocked_at, now, h->hold_ms);
}

/*
 * Is the lock on relid that conflicts with mode held, and only by processes
 * cutting the table's empty end, which let go as soon as they see a waiter:
 * a VACUUM (lazy_truncate_heap looks every 20 ms) or, on a delta table,
 * this database's combiner (worker/delta_shrink.c)?  Held back rather than
 * waiting for them, the events of writers the batch acknowledges would be
 * missing from reads until the combiner drains them.  No conflicting holder:
 * the lock was let go since it was refused (the caller asks again), or a
 * request queued before ours has it next; then the events are held back, as
 * the request may be a DDL statement's, waiting for a writer that waits for
 * this batch.
 */
static bool
held_for_a_cut(Oid relid, LOCKMODE mode, bool delta_table)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;
	int			combiner_pid = 0;
	int			nholders;
	bool		cutting;

	if (delta_table)
	{
		StreamGroupStatus status;

		stream_group_status(MyDatabaseId, &status);
		if (status.served)
		{
			combiner_pid = status.processes[status.nprocesses - 1].pid;
			pfree(status.processes);
		}
	}
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	holders = GetLockConflicts(&tag, mode, &nholders);
	cutting = nholders > 0;
	for (int i = 0; i < nholders && cutting; i++)
	{
		PGPROC	   *proc = BackendIdGetProc(holders[i].backendId);

		cutting = proc != NULL &&
			((proc->statusFlags & PROC_IN_VACUUM) != 0 ||
			 (combiner_pid != 0 && proc->pid == combiner_pid));
	}
	pfree(holders);
	return cutting;
}

typedef struct CutWait
{
	Oid			relid;
	LOCKMODE	mode;
} CutWait;

/* Wait for a cut's lock at most CUT_WAIT_MS: past it, 55P03 */
static void
wait_for_cut(void *arg)
{
	CutWait    *w = arg;
	int			saved = LockTimeout;

	LockTimeout = CUT_WAIT_MS;
	PG_TRY();
	{
		LockRelationOid(w->relid, w->mode);
	}
	PG_FINALLY();
	{
		LockTimeout = saved;
	}
	PG_END_TRY();

	/*
	 * Granted as the timeout fired: its cancel, still pending, would fail
	 * the view's run with 55P03 (and hold its events back) instead
	 */
	if (get_timeout_indicator(LOCK_TIMEOUT, true))
		QueryCancelPending = false;
}

/*
 * Lock relid in mode if it is free, or held only to cut its end (above):
 * then wait for it, CUT_WAIT_MS at a time while only cutters hold it, at
 * most CUT_WAIT_TRIES times (a request queued meanwhile, a DDL statement's,
 * has the lock before us when the cut ends: then the events are held back).
 */
static bool
lock_if_free(Oid relid, LOCKMODE mode, bool delta_table)
{
	CutWait		w = {relid, mode};

	if (ConditionalLockRelationOid(relid, mode))
		return true;
	for (int try = 0; try < CUT_WAIT_TRIES; try++)
	{
		ErrorData  *e;

		/*
		 * No holder but cutters: let go since we asked (taken now), or a
		 * request queued before ours has it next (still refused)
		 */
		if (!held_for_a_cut(relid, mode, delta_table))
			return ConditionalLockRelationOid(relid, mode);
		e = stream_try_in_subtransaction(wait_for_cut, &w);
		if (e == NULL)
			return true;
		if (e->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(e);
		FreeErrorData(e);
	}
	return false;
}

/*
 * Take the locks a run of view takes first, without waiting (but for a cut
 * of a table's end, above); false when one of them is not free.  Those
 * taken are kept to the end of the transaction, as the run would.
 */
bool
stream_view_locks_free(CachedView *view)
{
	ListCell   *lc;

	if (!lock_if_free(view->stream, AccessShareLock, false) ||
		!lock_if_free(view->view, AccessShareLock, false))
		return false;
	foreach(lc, view->query_relations)
		if (!lock_if_free(lfirst_oid(lc), AccessShareLock, false))
			return false;
	foreach(lc, view->plan_relations)
		if (!lock_if_free(lfirst_oid(lc), AccessShareLock, false))
			return false;
	return lock_if_free(view->delta_table, RowExclusiveLock, true);
}

/* The view's run waited out its time limit for a lock. */
void
stream_view_note_blocked(int view_id)
{
	TimestampTz now = GetCurrentTimestamp();
	HeldView   *h = note_held(view_id, now);

	if (h->hold_ms != 0 &&
		!TimestampDifferenceExceeds(h->blocked_at, now, h->hold_ms + HOLD_AGAIN_MS))
		h->hold_ms = Min(h->hold_ms * 2, HOLD_MAX_MS);
	else
		h->hold_ms = HOLD_FIRST_MS;
	h->blocked_at = now;
}

/*
 * Are view's events to be held back now rather than applied: a lock of its
 * run is not free, or was not a short while ago, or (in the combiner or a
 * Kafka consumer worker) the view is paused (paused_views.c)?  In a
 * transaction.
 */
bool
stream_view_held_back(CachedView *view)
{
	return recently_blocked(view->id, GetCurrentTimestamp()) || stream_view_paused(view->id) ||
		!stream_view_locks_free(view);
}

/* Judging the lateness of events about to be held back */
typedef struct Judgement
{
	CachedView *view;
	StreamBatchEvents *events;
	bool		nowait;
	bool	   *late;			/* out */
} Judgement;

static void
judge_lateness_work(void *arg)
{
	Judgement  *j = arg;
	int			nlate;

	j->late = stream_mark_late_events(j->view->id, j->view->name, j->view->window, j->events,
									  j->nowait, &nlate);
}

/* ... within the view's time limit: a wait for its watermark past it is 55P03 */
static void
judge_lateness(void *arg)
{
	Judgement  *j = arg;

	stream_view_time_limited(j->view->name, judge_lateness_work, j);
}

/*
 * Hold back events from view.  With judge (the stream is locked), their
 * lateness is judged now, as a run would: the late ones are recorded as
 * late, not held, and the others' times noted (the view's watermark waits
 * for them).  When the delta table is not free (an open
 * truncate_continuous_view locks it before the watermark), the judgement
 * does not wait for the watermark either, and otherwise waits for it at
 * most stream_ext.view_time_limit (another process's run of the view may
 * hold it while it waits for the same lock): if it is locked, the events
 * are judged when they are applied.
 */
void
stream_hold_back(CachedView *view, StreamBatchEvents *events, bool judge)
{
	bool		judged = !stream_window_has_event_time(view->window);
	bool	   *late = NULL;
	TimestampTz *times = NULL;
	bool	   *has = NULL;

	if (judge && !judged)
	{
		Judgement	j = {view, events,
			!ConditionalLockRelationOid(view->delta_table, RowExclusiveLock), NULL};
		ErrorData  *e = stream_try_in_subtransaction(judge_lateness, &j);

		if (e == NULL)
		{
			late = j.late;
			judged = true;
			times = palloc(sizeof(TimestampTz) * Max(events->nevents, 1));
			has = palloc(sizeof(bool) * Max(events->nevents, 1));
			stream_lateness_event_times(view->window, events, times, has);
		}
		else if (e->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE &&
				 e->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			ReThrowError(e);
		else
			FreeErrorData(e);
	}
	stream_held_events_add(view->id, events->events, late, events->nevents, judged, times, has);
}

/* One view's chunk of held events, for stream_job_in_transaction */
typedef struct Drain
{
	int			view_id;
	bool		careful;
	bool		blocked;		/* out: a lock is not free */
	int			taken;			/* out: events applied */
} Drain;

static CachedView *
cached_view(int view_id, Oid stream)
{
	ListCell   *lc;

	foreach(lc, view_cache_views_of_stream(stream))
		if (((CachedView *) lfirst(lc))->id == view_id)
			return lfirst(lc);
	return NULL;
}

static void
drain_in_transaction(void *arg)
{
	Drain	   *d = arg;
	ContinuousViewRow *row = stream_catalog_view(d->view_id);
	CachedView *view;
	HeapTupleData *tuples;
	bool	   *judged;
	List	   *runs = NIL;
	int			n;

	d->blocked = false;
	d->taken = 0;
	if (row == NULL)
	{
		/* held while its DROP had not committed */
		stream_held_events_forget(d->view_id);
		return;
	}
	view = cached_view(d->view_id, row->stream);
	if (view == NULL || !stream_view_locks_free(view))
	{
		d->blocked = true;
		return;
	}
	n = stream_held_events_take(d->view_id, row->stream, stream_ext_batch_size, &tuples, &judged);

	/*
	 * Each run of events judged alike in turn, oldest first; by id: taking
	 * the locks may have had the view cache made again.
	 */
	for (int start = 0, end; start < n; start = end)
	{
		StreamBatchEvents *events = palloc0(sizeof(StreamBatchEvents));

		for (end = start + 1; end < n && judged[end] == judged[start]; end++)
			;
		events->stream = row->stream;
		events->only = -1;
		events->events = tuples + start;
		events->nevents = end - start;
		events->capacity = events->nevents;
		events->late_judged = judged[start];
		events->held = true;
		runs = lappend(runs, events);
	}
	if (runs != NIL)
		stream_apply_held_events(d->view_id, runs, COMBINER_COUNTER_WORKER, d->careful);
	d->taken = n;
}

/*
 * Apply a chunk of view_id's held events; on an error, once more with care
 * (a view downstream that waited for a lock then holds its events back),
 * unless the view itself waited for one.  Returns whether it applied a
 * whole chunk (there may be more).
 */
static bool
drain_view(int view_id, MemoryContext cxt)
{
	Drain		d = {view_id, false, false, 0};
	ErrorData  *edata;
	bool		owning;

	if (!stream_retry_due(&drain_retries, view_id) || stream_view_paused(view_id))
		return false;
	stream_paused_views_work_for(view_id);
	edata = stream_job_in_transaction(drain_in_transaction, &d, cxt);

	/*
	 * After tries that failed over and over, the careful one lets the view
	 * own the transient errors its code raises for one event (apply.c): a
	 * lock not available as well, which would hold its events for ever.
	 */
	owning = stream_retry_failures(&drain_retries, view_id) >= STREAM_TRANSIENT_TRIES;
	if (edata != NULL &&
		(owning || !(edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
					 recently_blocked(view_id, GetCurrentTimestamp()))))
	{
		d.careful = true;
		if (owning)
			stream_apply_views_own_transient_errors(&view_id, 1);
		edata = stream_job_in_transaction(drain_in_transaction, &d, cxt);
		stream_apply_views_own_transient_errors(NULL, 0);
	}
	stream_paused_views_work_for(0);
	/* a lock not free now is no failure: the view is tried again next turn */
	if (d.blocked && edata == NULL)
		return false;
	stream_retry_note(&drain_retries, view_id, edata == NULL);
	if (edata == NULL && d.taken > 0)
		stream_note_mergeable(stream_batch_slot_for_backend());
	return edata == NULL && d.taken >= stream_ext_batch_size;
}

typedef struct HeldList
{
	MemoryContext cxt;
	List	   *ids;
} HeldList;

static void
list_held_views(void *arg)
{
	HeldList   *l = arg;

	l->ids = stream_held_events_views(l->cxt);
}

/*
 * The job: chunks of each view's held events, round by round while some
 * view had a whole chunk, for at most DRAIN_BUDGET_MS; what remains waits
 * for the next turn, so that merges go on meanwhile.
 */
static bool
held_events_job(MemoryContext cxt)
{
	HeldList	held = {cxt, NIL};
	TimestampTz start = GetCurrentTimestamp();
	bool		more = true;

	if (stream_job_in_transaction(list_held_views, &held, cxt) != NULL)
		return false;
	while (more && held.ids != NIL)
	{
		ListCell   *lc;

		more = false;
		foreach(lc, held.ids)
		{
			if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), DRAIN_BUDGET_MS))
				return false;
			more |= drain_view(lfirst_int(lc), cxt);
		}
	}
	return false;
}

/* Register the job with the combiner; from _PG_init. */
void
stream_held_back_init(void)
{
	stream_job_register("events held back", held_events_job);
}
