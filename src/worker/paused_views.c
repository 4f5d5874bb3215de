/*
 * paused_views.c
 *	  Views the combiner, or a Kafka consumer worker, leaves alone for a
 *	  while: their code caught the time limit's cancel, over and over, and
 *	  the process before it was ended.
 *
 * Code that catches the cancel in a loop (a PL/pgSQL block with EXCEPTION
 * WHEN query_canceled: a view's combine or final function, a HAVING, a
 * function of a view's expression) would hold the process for ever: in the
 * combiner no view of the database would be merged again and no change
 * stream would emit; in a consumer worker its partitions would stall.  As
 * in a batch worker (worker.c), the time limit ends the process a second
 * after the cut (time_limit.c), first noting here, in its shared slot,
 * which view's code runs: the view whose plan runs over events (apply.c),
 * else the one the combiner works for (it merges it, scans it for reads of
 * one group, emits its change stream or drains its held events).  The
 * process started again in the slot leaves that view alone for
 * PAUSE_FIRST_MS from its start, doubling each time the view ends it again
 * within a pause's length after its last pause, up to PAUSE_MAX_MS.
 * Meanwhile, in the combiner, its deltas wait (reads count them), its
 * changed groups stay noted, its held events stay held; the events either
 * process has for it are held back (held_back.c), to be applied by the
 * combiner once it no longer leaves the view alone (where the same code
 * may end the combiner in turn).  Nothing is lost, and the other views go
 * on.  Each pause is recorded in view_errors and logged.  With every entry
 * in use, the one whose pause ends first is taken.
 *
 * Pauses are kept per slot: the workers of a Kafka consumer in a group
 * (parallelism above 1) each meet the view's code once before holding it
 * back, as the group moves the partitions between them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/errcodes.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "catalog/view_errors.h"
#include "guc.h"
#include "jobs/jobs.h"
#include "worker/apply.h"
#include "worker/paused_views.h"
#include "worker/time_limit.h"

/* A pause whose record failed is tried again after this long */
#define RECORD_RETRY_MS 5000

/* The first pause of a view, and the longest */
#define PAUSE_FIRST_MS 10000
#define PAUSE_MAX_MS (3600 * 1000)

static StreamPausedViews *my_pv = NULL;
static const char *my_process = NULL;	/* "combiner", "Kafka consumer worker" */
static const char *my_waits = NULL; /* what of a view waits while it is paused */

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
	return my_pv->entries[i].until != 0 &&
		now > my_pv->entries[i].until + pause_ms(my_pv->entries[i].times) * 1000;
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
		if (my_pv->entries[i].view == view)
			return i;
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
	{
		if (my_pv->entries[i].view == 0 || forgotten(i, now))
			return i;
		if (my_pv->entries[i].until != 0 &&
			(my_pv->entries[first].until == 0 ||
			 my_pv->entries[i].until < my_pv->entries[first].until))
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
	static bool noted = false;
	int			view = stream_apply_running_view();
	TimestampTz now = GetCurrentTimestamp();
	int			entry;
	int			times = 1;

	/* once: the ticks go on while the process ends */
	if (noted)
		return true;
	if (view == 0)
		view = working_for;
	if (view == 0)
		return false;
	noted = true;
	entry = entry_for(view, now);
	if (my_pv->entries[entry].view == view && !forgotten(entry, now))
		times = my_pv->entries[entry].times + 1;
	my_pv->entries[entry].view = 0;
	pg_write_barrier();
	my_pv->entries[entry].times = times;
	my_pv->entries[entry].recorded = false;
	my_pv->entries[entry].until = 0;	/* from the next process's start */
	pg_write_barrier();
	my_pv->entries[entry].view = view;
	return true;
}

/*
 * At the start of process (the combiner, a Kafka consumer worker): take the
 * pauses its predecessors in the slot noted in pv (another database's are
 * dropped), and note the next.  waits: what of a view waits while it is
 * left alone, for view_errors.
 */
void
stream_paused_views_start(StreamPausedViews *pv, const char *process, const char *waits)
{
	TimestampTz now = GetCurrentTimestamp();

	my_pv = pv;
	my_process = process;
	my_waits = waits;
	if (pv->dboid != MyDatabaseId)
	{
		memset(pv, 0, sizeof(StreamPausedViews));
		pv->dboid = MyDatabaseId;
	}

	/*
	 * A pause runs from the start of the process after the one it ended,
	 * however long that took (a Kafka consumer worker is started again after
	 * a backoff).
	 */
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
		if (pv->entries[i].view != 0 && pv->entries[i].until == 0)
			pv->entries[i].until = now + pause_ms(pv->entries[i].times) * 1000;
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
		if (pv->entries[i].view != 0 && pv->entries[i].until > now)
			ereport(LOG,
					(errmsg("stream_ext %s leaves continuous view %d alone for %ld s",
							process, pv->entries[i].view,
							(long) ((pv->entries[i].until - now) / USECS_PER_SEC)),
					 errdetail("Its code went on after stream_ext.view_time_limit cancelled it: it catches the cancel.")));
	stream_view_time_limit_on_ignored_cancel(note_pause);
}

/* The extension is gone: its view ids will be given again */
void
stream_paused_views_forget(void)
{
	if (my_pv != NULL)
		memset(my_pv->entries, 0, sizeof(my_pv->entries));
}

/* A pause, checked and recorded in a transaction */
typedef struct PauseCheck
{
	int			i;
	bool		gone;			/* out: the view is gone */
	bool		later;			/* out: its lock is not free now */
} PauseCheck;

static void
check_pause(void *arg)
{
	PauseCheck *c = arg;
	ContinuousViewRow *row = stream_catalog_view(my_pv->entries[c->i].view);
	ViewErrorLog log;

	c->gone = row == NULL;
	if (c->gone)
		return;
	/* a DROP of the view under way: recorded later, or gone */
	c->later = !ConditionalLockRelationOid(row->view, AccessShareLock);
	if (c->later)
		return;
	c->gone = !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(row->view));
	if (c->gone)
		return;

	/*
	 * Rows of view_errors an open truncate_continuous_view deleted would
	 * have the trim wait: not for long (55P03, tried again later)
	 */
	(void) set_config_option("lock_timeout", "100", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	stream_view_errors_begin(&log, row->id);
	stream_view_errors_record_reason(&log, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
									 psprintf("the view's code went on after stream_ext.view_time_limit (%d ms) cancelled it (it catches the cancel): the %s was ended, and leaves the view alone for %ld s (%s; nothing is lost)",
											  stream_ext_view_time_limit_ms, my_process,
											  (long) (pause_ms(my_pv->entries[c->i].times) / 1000),
											  my_waits));
	stream_view_errors_end(&log);
}

/*
 * Record the pauses not recorded yet in view_errors (each in a transaction
 * of its own; one that fails is tried again RECORD_RETRY_MS later),
 * dropping those of views that are gone; forget the entries forgotten.
 */
void
stream_paused_views_record(MemoryContext cxt)
{
	static TimestampTz retry_at = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (now < retry_at)
		return;
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
	{
		PauseCheck	c = {i, false, false};

		if (my_pv->entries[i].view == 0)
			continue;
		if (my_pv->entries[i].recorded)
		{
			if (forgotten(i, now))
				my_pv->entries[i].view = 0;
			continue;
		}
		if (stream_job_in_transaction(check_pause, &c, cxt) != NULL || c.later)
		{
			retry_at = TimestampTzPlusMilliseconds(now, RECORD_RETRY_MS);
			continue;
		}
		if (c.gone)
			my_pv->entries[i].view = 0;
		else
			my_pv->entries[i].recorded = true;
	}
}

/*
 * The combiner works for view_id from now on (0: for none), and no plan of
 * a view runs over events yet (an error may have left apply.c's mark).
 */
void
stream_paused_views_work_for(int view_id)
{
	stream_apply_forget_running_view();
	working_for = view_id;
}

/* Does this process leave view_id alone now (never: a batch worker, a writer)? */
bool
stream_view_paused(int view_id)
{
	TimestampTz now;

	if (my_pv == NULL)
		return false;
	now = GetCurrentTimestamp();
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
		if (my_pv->entries[i].view == view_id && now < my_pv->entries[i].until)
			return true;
	return false;
}
