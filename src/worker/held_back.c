/*
 * held_back.c
 *	  Holding back a continuous view's events while someone holds a lock its
 *	  run needs, so that the other views and streams go on.
 *
 * A worker applies the views of its batch one after another, and its
 * writers wait for the batch: a view whose run waited for a lock (its
 * owner's open transaction that altered it, a LOCK of a table it joins or
 * of its stream, a VACUUM FULL of its tables) would hold up every stream of
 * the worker's queue for as long as the lock is held.  Instead, its events
 * go into stream_ext_internal.held_events, in the batch's transaction
 * (catalog/held_events.c), and the batch commits: the events are as safe
 * there as in the view's deltas, and their writers are acknowledged.  The
 * view's events are held back when
 *   - a lock the run takes first is not free now (taken without waiting:
 *     the stream, the view, the relations its plan reads, its delta table);
 *   - its run in this process waited stream_ext.view_time_limit for some
 *     other lock (an advisory lock its function takes, a row lock) in the
 *     last HOLD_AFTER_WAIT_MS: the careful retry of the batch, and the
 *     batches after it, do not wait again;
 *   - it holds back events already (as far as this process knows): what
 *     comes later waits behind them, so that its watermark meets events in
 *     the order they came.
 * The combiner's job applies them (stream_apply_held_events), a chunk of
 * stream_ext.batch_size events at a time, oldest first, in a transaction
 * that also deletes them, as soon as the view's locks are free; their
 * lateness is judged then.  A chunk whose run waits for a lock anyway fails
 * after the time limit, and the view's next try waits 1 s, doubling up to
 * 16 s.  The view's events meanwhile count in view_stats.held_events.
 */
#include "postgres.h"

#include "access/xact.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "catalog/held_events.h"
#include "guc.h"
#include "ipc/queue.h"
#include "jobs/jobs.h"
#include "worker/apply.h"
#include "worker/counters.h"
#include "worker/held_back.h"
#include "worker/view_cache.h"

/* A run that waited out the time limit for a lock: hold back this long */
#define HOLD_AFTER_WAIT_MS 1000

/* The combiner's tries of a view whose held events wait for a lock */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 16000

/* A view this process held events of, or saw wait for a lock */
typedef struct HeldView
{
	int			view_id;
	TimestampTz blocked_at;		/* when its run last waited, or 0 */
	int			retry_ms;		/* the combiner: its next try's wait, or 0 */
	TimestampTz retry_at;
} HeldView;

static List *held_views = NIL;	/* HeldView *, in TopMemoryContext */

static HeldView *
find_held(int view_id)
{
	ListCell   *lc;

	foreach(lc, held_views)
		if (((HeldView *) lfirst(lc))->view_id == view_id)
			return lfirst(lc);
	return NULL;
}

static HeldView *
note_held(int view_id)
{
	HeldView   *h = find_held(view_id);

	if (h == NULL)
	{
		h = MemoryContextAllocZero(TopMemoryContext, sizeof(HeldView));
		h->view_id = view_id;
		held_views = lappend(held_views, h);	/* list cells in TopMemoryContext */
	}
	return h;
}

static void
forget_held(HeldView *h)
{
	held_views = list_delete_ptr(held_views, h);
	pfree(h);
}

/*
 * Take the locks a run of view takes first, without waiting; false when
 * one of them is not free.  Those taken are kept to the end of the
 * transaction, as the run would.
 */
bool
stream_view_locks_free(CachedView *view)
{
	ListCell   *lc;

	if (!ConditionalLockRelationOid(view->stream, AccessShareLock) ||
		!ConditionalLockRelationOid(view->view, AccessShareLock))
		return false;
	foreach(lc, view->plan_relations)
		if (!ConditionalLockRelationOid(lfirst_oid(lc), AccessShareLock))
			return false;
	return ConditionalLockRelationOid(view->delta_table, RowExclusiveLock);
}

/* The view's run waited out its time limit for a lock. */
void
stream_view_note_blocked(int view_id)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	note_held(view_id)->blocked_at = GetCurrentTimestamp();
	MemoryContextSwitchTo(old);
}

/*
 * Are view's events to be held back now rather than applied?  In a
 * transaction with a snapshot.
 */
bool
stream_view_held_back(CachedView *view)
{
	HeldView   *h = find_held(view->id);

	if (h != NULL)
	{
		if (h->blocked_at != 0 &&
			!TimestampDifferenceExceeds(h->blocked_at, GetCurrentTimestamp(), HOLD_AFTER_WAIT_MS))
			return true;
		if (stream_held_events_exist(view->id))
			return true;
		forget_held(h);
	}
	return !stream_view_locks_free(view);
}

/* Hold back events (all of them, none judged late yet) from view. */
void
stream_hold_back(CachedView *view, StreamBatchEvents *events)
{
	MemoryContext old;

	stream_held_events_add(view->id, events->events, events->nevents);
	old = MemoryContextSwitchTo(TopMemoryContext);
	(void) note_held(view->id);
	MemoryContextSwitchTo(old);
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
	StreamBatchEvents *events;

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
	events = palloc0(sizeof(StreamBatchEvents));
	events->stream = view->stream;
	events->only = -1;
	events->nevents = stream_held_events_take(view->id, view->stream, stream_ext_batch_size,
											  &events->events);
	events->capacity = Max(events->nevents, 1);
	if (events->nevents == 0)
		return;
	stream_apply_held_events(view, events, COMBINER_COUNTER_WORKER, d->careful);
	d->taken = events->nevents;
}

/* The next try of a view that waited for a lock */
static void
note_retry(int view_id, bool ok)
{
	HeldView   *h = find_held(view_id);
	MemoryContext old;

	if (ok)
	{
		if (h != NULL)
			forget_held(h);
		return;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	h = note_held(view_id);
	h->retry_ms = h->retry_ms == 0 ? RETRY_FIRST_MS : Min(h->retry_ms * 2, RETRY_MAX_MS);
	h->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), h->retry_ms);
	MemoryContextSwitchTo(old);
}

/*
 * Apply a chunk of view_id's held events; on an error, once more with care.
 * Returns whether it applied a whole chunk (there may be more).
 */
static bool
drain_view(int view_id, MemoryContext cxt)
{
	Drain		d = {view_id, false, false, 0};
	HeldView   *h = find_held(view_id);
	ErrorData  *edata;

	if (h != NULL && h->retry_at != 0 && GetCurrentTimestamp() < h->retry_at)
		return false;
	edata = stream_job_in_transaction(drain_in_transaction, &d, cxt);
	if (edata != NULL && edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
	{
		d.careful = true;
		edata = stream_job_in_transaction(drain_in_transaction, &d, cxt);
	}
	/* a lock not free now is no failure: the view is tried again next time */
	if (d.blocked)
		return false;
	note_retry(view_id, edata == NULL);
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

/* The job: a chunk of each view's held events; again while chunks were whole */
static bool
held_events_job(MemoryContext cxt)
{
	HeldList	held = {cxt, NIL};
	ListCell   *lc;
	bool		more = false;

	if (stream_job_in_transaction(list_held_views, &held, cxt) != NULL)
		return false;
	foreach(lc, held.ids)
		more |= drain_view(lfirst_int(lc), cxt);
	return more;
}

/* Register the job with the combiner; from _PG_init. */
void
stream_held_back_init(void)
{
	stream_job_register("events held back", held_events_job);
}
