/*
 * time_limit.c
 *	  A time limit on one run of a view's plan in a worker
 *	  (stream_ext.view_time_limit).
 *
 * A worker applies the views of a batch one after another, so a view whose
 * expressions are slow holds up every stream whose events share the
 * worker's queue.  The limit is a timeout of our own: when it fires it
 * cancels the run as a statement timeout would, and apply.c turns the
 * cancel into an error of the view (54000), which costs the view the
 * events it was running on, never the batch: unlike a cancel by an
 * operator, it is not retried.  A run that was waiting for a lock when the
 * limit came (a key of a transform's table that another transaction
 * inserted and has not committed, a LOCK or VACUUM FULL of a table it
 * writes) is no fault of the view's code: it fails as a lock not
 * available, which is transient (apply.c): the merge is tried again later,
 * and a worker holds the view's events back (held_back.c) rather than
 * drop them, which would break what their writers were told.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "guc.h"
#include "worker/time_limit.h"

static bool registered = false;
static TimeoutId limit_timeout;
static volatile sig_atomic_t exceeded = false;
static volatile sig_atomic_t exceeded_in_lock_wait = false;

/* Did the last run of stream_view_time_limited fail for the limit? */
static bool last_run_timed_out = false;

/* Signal handler of the timeout: cancel what runs, like statement_timeout */
static void
limit_handler(void)
{
	exceeded = true;
	exceeded_in_lock_wait = (MyProc != NULL && MyProc->waitLock != NULL);
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* Start timing a run of a view's plan */
void
stream_view_time_limit_start(void)
{
	if (!registered)
	{
		limit_timeout = RegisterTimeout(USER_TIMEOUT, limit_handler);
		registered = true;
	}
	exceeded = false;
	exceeded_in_lock_wait = false;
	if (stream_ext_view_time_limit_ms > 0)
		enable_timeout_after(limit_timeout, stream_ext_view_time_limit_ms);
}

/*
 * Stop timing; returns whether the limit was reached.  A cancel the limit
 * asked for and nothing served yet is withdrawn.
 */
bool
stream_view_time_limit_stop(void)
{
	bool		hit;

	if (!registered)
		return false;
	disable_timeout(limit_timeout, false);
	hit = exceeded;
	if (hit)
	{
		exceeded = false;
		QueryCancelPending = false;
	}
	return hit;
}

/*
 * Run work(arg), owner code of continuous view view_name, within
 * stream_ext.view_time_limit: a run that takes longer fails with an error
 * of the view (54000), not a cancel; one stopped while it waited for a
 * lock fails with 55P03.
 */
void
stream_view_time_limited(const char *view_name, void (*work) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;

	last_run_timed_out = false;
	stream_view_time_limit_start();
	PG_TRY();
	{
		work(arg);
	}
	PG_CATCH();
	{
		if (!stream_view_time_limit_stop())
			PG_RE_THROW();
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		if (exceeded_in_lock_wait)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("continuous view \"%s\" waited longer than stream_ext.view_time_limit (%d ms) for a lock",
							view_name, stream_ext_view_time_limit_ms),
					 errdetail("Another transaction holds a lock the view's run needs; the run is tried again later.")));
		last_run_timed_out = true;
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("continuous view \"%s\" took longer than stream_ext.view_time_limit (%d ms)",
						view_name, stream_ext_view_time_limit_ms),
				 errhint("Make the view's expressions and aggregates cheaper, or raise stream_ext.view_time_limit.")));
	}
	PG_END_TRY();
	(void) stream_view_time_limit_stop();
}

/*
 * Did the last run of stream_view_time_limited fail because it took longer
 * than the limit (not with a 54000 its code raised)?
 */
bool
stream_view_time_limit_last_run_timed_out(void)
{
	return last_run_timed_out;
}
