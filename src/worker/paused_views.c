/*
 * paused_views.c
 *	  Views the combiner leaves alone for a while: code run for them caught
 *	  the time limit's cancel, over and over, and the combiner was ended.
 *
 * Code that catches the cancel in a loop (a PL/pgSQL block with EXCEPTION
 * WHEN query_canceled: a view's combine or final function, a HAVING, a
 * function of a view over a change stream) would hold the combiner for
 * ever: no view of the database would be merged again, deltas would pile
 * up, no change stream would emit.  As in a batch worker (worker.c), the
 * time limit ends the process a second after the cut (time_limit.c), first
 * noting here, in the combiner's slot, which view the combiner was working
 * for: the view it merged (or scanned for reads of one group), whose
 * changes it emitted (the views over its change stream run in the same
 * transaction), or whose held events it applied.  The launcher starts the
 * combiner again, which leaves that view alone for PAUSE_FIRST_MS, doubling
 * each time the view ends the combiner again within a pause's length after
 * its last pause, up to PAUSE_MAX_MS.  Meanwhile its deltas wait (reads
 * count them), its changed groups stay noted for the change stream, its
 * held events stay held: nothing is lost, and the other views of the
 * database are merged as usual.  Each pause is recorded in view_errors for
 * the view whose code went on, and logged.
 *
 * With every entry of the slot in use by a pause that is not over, a ninth
 * view's code holds the combiner as before (the ticks go on cancelling).
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/errcodes.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "catalog/view_errors.h"
#include "guc.h"
#include "jobs/jobs.h"
#include "worker/apply.h"
#include "worker/paused_views.h"
#include "worker/time_limit.h"

/* The first pause of a view, and the longest */
#define PAUSE_FIRST_MS 10000
#define PAUSE_MAX_MS (3600 * 1000)

static StreamWorkerSlot *my_slot = NULL;

/* The view the combiner works for now (0: none), for the signal handler */
static volatile sig_atomic_t working_for = 0;

static int64
pause_ms(int times)
{
	int64		ms = PAUSE_FIRST_MS;

	for (int i = 1; i < times && ms < PAUSE_MAX_MS; i++)
		ms *= 2;
	return Min(ms, PAUSE_MAX_MS);
}

/*
 * Has the entry's view kept quiet for a pause's length after its pause?
 * Then a new pause starts again from the first.
 */
static bool
forgotten(int i, TimestampTz now)
{
	return now > my_slot->paused[i].until + pause_ms(my_slot->paused[i].times) * 1000;
}

/*
 * The entry for a new pause of view: its own, a free one, one forgotten,
 * else the one whose pause ends first (its doubling is lost, not the
 * combiner).
 */
static int
entry_for(int view, TimestampTz now)
{
	int			first = 0;

	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
		if (my_slot->paused[i].view == view)
			return i;
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
	{
		if (my_slot->paused[i].view == 0 || forgotten(i, now))
			return i;
		if (my_slot->paused[i].until < my_slot->paused[first].until)
			first = i;
	}
	return first;
}

/*
 * In the time limit's signal handler: note a pause of the view whose code
 * runs, the one whose plan runs over events (apply.c), else the one the
 * combiner works for; false when there is none.
 */
static bool
note_pause(void)
{
	int			view = stream_apply_running_view();
	TimestampTz now = GetCurrentTimestamp();
	int			entry;
	int			times = 1;

	if (view == 0)
		view = working_for;
	if (view == 0)
		return false;
	entry = entry_for(view, now);
	if (my_slot->paused[entry].view == view && !forgotten(entry, now))
		times = my_slot->paused[entry].times + 1;
	my_slot->paused[entry].view = 0;
	pg_write_barrier();
	my_slot->paused[entry].times = times;
	my_slot->paused[entry].recorded = false;
	my_slot->paused[entry].relid = InvalidOid;
	my_slot->paused[entry].until = now + pause_ms(times) * 1000;
	pg_write_barrier();
	my_slot->paused[entry].view = view;
	return true;
}

/*
 * At the combiner's start: take the pauses its predecessors noted (another
 * database's are dropped), and note the next.
 */
void
stream_paused_views_start(StreamWorkerSlot *slot)
{
	TimestampTz now = GetCurrentTimestamp();

	my_slot = slot;
	if (slot->ignored_cancel_db != MyDatabaseId)
	{
		memset(slot->paused, 0, sizeof(slot->paused));
		slot->ignored_cancel_db = MyDatabaseId;
	}
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
		if (slot->paused[i].view != 0 && slot->paused[i].until > now)
			ereport(LOG,
					(errmsg("stream_ext combiner leaves continuous view %d alone for %ld s",
							slot->paused[i].view,
							(long) ((slot->paused[i].until - now) / USECS_PER_SEC)),
					 errdetail("Its code went on after stream_ext.view_time_limit cancelled it: it catches the cancel.")));
	stream_view_time_limit_on_ignored_cancel(note_pause);
}

/* The extension is gone: its view ids will be given again */
void
stream_paused_views_forget(void)
{
	if (my_slot != NULL)
		memset(my_slot->paused, 0, sizeof(my_slot->paused));
}

/* A pause, checked and recorded in a transaction */
typedef struct PauseCheck
{
	int			i;
	bool		gone;			/* out: the view is gone, or its id is
								 * another's now (the extension was made
								 * again) */
} PauseCheck;

static void
check_pause(void *arg)
{
	PauseCheck *c = arg;
	ContinuousViewRow *row = stream_catalog_view(my_slot->paused[c->i].view);
	ViewErrorLog log;

	c->gone = row == NULL ||
		(OidIsValid(my_slot->paused[c->i].relid) && row->view != my_slot->paused[c->i].relid);
	if (c->gone || my_slot->paused[c->i].recorded)
		return;
	stream_view_errors_begin(&log, row->id);
	stream_view_errors_record_reason(&log, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
									 psprintf("the view's code went on after stream_ext.view_time_limit (%d ms) cancelled it (it catches the cancel): the combiner was ended, and leaves the view alone for %ld s (its merges, change stream and held events, and its events from the combiner, wait; nothing is lost)",
											  stream_ext_view_time_limit_ms,
											  (long) (pause_ms(my_slot->paused[c->i].times) / 1000)));
	stream_view_errors_end(&log);
	my_slot->paused[c->i].relid = row->view;
}

/*
 * Record the pauses not recorded yet in view_errors, and drop those of
 * views that are gone, each in a transaction of its own; one that fails is
 * tried again at the next call (every full round).
 */
void
stream_paused_views_record(MemoryContext cxt)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
	{
		PauseCheck	c = {i, false};

		if (my_slot->paused[i].view == 0)
			continue;
		if (my_slot->paused[i].recorded && forgotten(i, now))
		{
			my_slot->paused[i].view = 0;
			continue;
		}
		if (stream_job_in_transaction(check_pause, &c, cxt) != NULL)
			continue;
		if (c.gone)
			my_slot->paused[i].view = 0;
		else
			my_slot->paused[i].recorded = true;
	}
}

/*
 * The combiner works for view_id from now on (0: for none); no plan of a
 * view runs over events yet.
 */
void
stream_combiner_works_for(int view_id)
{
	stream_apply_forget_running_view();
	working_for = view_id;
}

/* Does the combiner leave view_id alone now? */
bool
stream_view_paused(int view_id)
{
	TimestampTz now;

	if (my_slot == NULL)
		return false;
	now = GetCurrentTimestamp();
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
		if (my_slot->paused[i].view == view_id && now < my_slot->paused[i].until)
			return true;
	return false;
}
