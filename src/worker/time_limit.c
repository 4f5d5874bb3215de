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
 *
 * The limit is on the time a run is charged with: its time on a CPU and its
 * waits (a lock, the disk, a sleep its code asked for), not the time the
 * host kept it waiting for a CPU (the kernel's run queue delay of the
 * thread, /proc/thread-self/schedstat).  On a host loaded far beyond its
 * cores a batch's usual run takes several times as long in wall-clock time,
 * and its events, which are no fault of the view's, would be lost to it.
 * There is no cap in wall-clock time: cutting a starved run would lose its
 * events and free nothing, as the runs after it would starve as well.  (A
 * cap of ten times the limit lost a whole batch on a host that gave the
 * worker a few percent of a CPU.)  A run could keep its own thread from
 * a CPU with parallel workers of its own, which settings.c rules out
 * (every query these processes plan is serial); otherwise only code a
 * superuser installed can (threads or processes of its own that spin), and
 * even then the thread's share of the CPU is charged.  Load a view's owner
 * makes elsewhere (other sessions) starves its runs as any other load.
 * A run's limit is a deadline (StreamViewDeadline) on the charged clock,
 * looked at by a tick every TICK_MS from the limit on in wall-clock time;
 * the careful retry's budgets (apply.c) are deadlines of the same kind.
 * Where the kernel does not tell the delay (or a read of it fails: from
 * then on), the charged clock is wall-clock time.  Time a hypervisor gives
 * the CPU to others (steal) is charged.  The ticks go on after a cut and
 * cancel again: code that catches the cancel once is cut at the next one.
 * Code that catches it every time (a loop around an EXCEPTION WHEN
 * query_canceled block) would hold the worker for ever: where the process
 * has said what to do then (stream_view_time_limit_on_ignored_cancel: the
 * batch workers, worker.c; the combiner and Kafka consumer workers,
 * paused_views.c), a run still going IGNORED_CANCEL_MS after its cut, or
 * its limit if longer, on the charged clock, ends the process (FATAL, as
 * pg_terminate_backend would), the only error a PL/pgSQL block cannot
 * catch; and so it does, noted or not, when the process was asked to stop.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "guc.h"
#include "worker/time_limit.h"
#include "worker/worker.h"

/* How often a run past its limit in wall-clock time is charged again (ms) */
#define TICK_MS 50

/* A run still going this long after its cut (at least) ignores the cancel */
#define IGNORED_CANCEL_MS 1000

static bool registered = false;
static TimeoutId limit_timeout;
static volatile sig_atomic_t exceeded = false;
static volatile sig_atomic_t exceeded_in_lock_wait = false;

/* /proc/thread-self/schedstat of this process's thread, -1 if not open (yet) */
static int	schedstat_fd = -1;
static bool schedstat_tried = false;

/* The current run's limit, a deadline (below) */
static StreamViewDeadline run_deadline;

/* After a cut: when the run ignores the cancel, and what to do then */
static StreamViewDeadline ignored_deadline;
static bool (*on_ignored_cancel) (void) = NULL;

/* Did the last run of stream_view_time_limited fail for the limit? */
static bool last_run_timed_out = false;

/* The last delay read: a read that fails counts none since (wall-clock time) */
static volatile int64 last_cpu_wait_us = 0;

/*
 * The thread's delay before the file was opened, not counted: the charged
 * clock goes on from wall-clock time without a jump (a deadline set before
 * the open would move by the thread's whole delay so far)
 */
static int64 cpu_wait_base_us = 0;

/*
 * Read the microseconds this thread waited for a CPU while it could run,
 * since it began, into *us.  Async-signal-safe (a pread and digits).
 */
static bool
read_cpu_wait_us(int64 *us)
{
	char		buf[96];
	ssize_t		n;
	char	   *p;
	uint64		ns = 0;

	n = pread(schedstat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "time on a CPU" "time waiting on a run queue" "time slices", in ns */
	for (p = buf; *p != '\0' && *p != ' '; p++)
		;
	for (; *p == ' '; p++)
		;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		ns = ns * 10 + (uint64) (*p - '0');
	*us = (int64) (ns / 1000);
	return true;
}

/*
 * Microseconds this thread waited for a CPU while it could run, since the
 * file was opened; none where the kernel does not tell.  Async-signal-safe.
 */
static int64
cpu_wait_us(void)
{
	int64		us;

	if (schedstat_fd >= 0 && read_cpu_wait_us(&us))
		last_cpu_wait_us = us - cpu_wait_base_us;
	return last_cpu_wait_us;
}

/*
 * The charged clock: wall-clock time less the time this process waited
 * for a CPU (see the top of the file), as a TimestampTz to compare with
 * another reading of it.
 */
static TimestampTz
charged_clock(void)
{
	return GetCurrentTimestamp() - cpu_wait_us();
}

/*
 * The deadline ms from now on the charged clock: a run's limit, and the
 * careful retry's budgets (apply.c).
 */
StreamViewDeadline
stream_view_deadline_after(int ms)
{
	StreamViewDeadline d;

	d.charged = TimestampTzPlusMilliseconds(charged_clock(), ms);
	return d;
}

/*
 * Has deadline passed?  (Never, for a deadline of zeros.)  Async-signal-safe:
 * the limit's handler asks it.
 */
bool
stream_view_deadline_passed(const StreamViewDeadline *deadline)
{
	if (deadline->charged == 0)
		return false;
	return charged_clock() > deadline->charged;
}

/* Signal handler of the timeout: cancel what runs, like statement_timeout */
static void
limit_handler(void)
{
	if (!exceeded)
	{
		if (!stream_view_deadline_passed(&run_deadline))
			return;				/* kept from a CPU: charged again at the next tick */
		exceeded = true;
		exceeded_in_lock_wait = (MyProc != NULL && MyProc->waitLock != NULL);
		ignored_deadline =
			stream_view_deadline_after(Max(stream_ext_view_time_limit_ms, IGNORED_CANCEL_MS));
	}
	else if (on_ignored_cancel != NULL && !ProcDiePending &&
			 stream_view_deadline_passed(&ignored_deadline) &&
			 (on_ignored_cancel() || stream_worker_stop_requested))
		ProcDiePending = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * Have this process end (FATAL) when a run goes on after its cut as long as
 * the limit, at least IGNORED_CANCEL_MS: code that catches the cancel.
 * callback runs first, in the signal handler (async-signal-safe only), and
 * says whether to: when it cannot note what to skip, the process goes on
 * cancelling, unless it was asked to stop (a fast shutdown: such code would
 * hold it back for ever).
 */
void
stream_view_time_limit_on_ignored_cancel(bool (*callback) (void))
{
	on_ignored_cancel = callback;
}

/* Start timing a run that may take limit_ms (0: no limit) */
static void
limit_start_ms(int limit_ms)
{
	if (!registered)
	{
		limit_timeout = RegisterTimeout(USER_TIMEOUT, limit_handler);
		registered = true;
	}
	if (!schedstat_tried)
	{
		ReserveExternalFD();
		schedstat_fd = BasicOpenFile("/proc/thread-self/schedstat", O_RDONLY | PG_BINARY);
		/* out of descriptors: try again at the next run */
		schedstat_tried = schedstat_fd >= 0 || (errno != EMFILE && errno != ENFILE);
		if (schedstat_fd >= 0)
		{
			int64		us;

			if (read_cpu_wait_us(&us))
				cpu_wait_base_us = us - last_cpu_wait_us;
			else
			{
				close(schedstat_fd);
				schedstat_fd = -1;
			}
		}
		if (schedstat_fd < 0)
			ReleaseExternalFD();
	}
	exceeded = false;
	exceeded_in_lock_wait = false;
	if (limit_ms > 0)
	{
		run_deadline = stream_view_deadline_after(limit_ms);
		enable_timeout_every(limit_timeout,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), limit_ms),
							 Min(TICK_MS, limit_ms));
	}
}

/* Start timing a run of a view's plan */
void
stream_view_time_limit_start(void)
{
	limit_start_ms(stream_ext_view_time_limit_ms);
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
	stream_view_time_limited_times(view_name, 1, work, arg);
}

/*
 * The same within times stream_ext.view_time_limit: for work that runs the
 * owner's code beside work of its own, whose time no view controls (an
 * ANALYZE samples the table).
 */
void
stream_view_time_limited_times(const char *view_name, int times, void (*work) (void *arg),
							   void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			limit_ms = (int) Min((int64) stream_ext_view_time_limit_ms * times, INT_MAX);

	last_run_timed_out = false;
	limit_start_ms(limit_ms);
	PG_TRY();
	{
		work(arg);
	}
	PG_CATCH();
	{
		char	   *limit;

		if (!stream_view_time_limit_stop())
			PG_RE_THROW();
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		limit = times > 1 ?
			psprintf("%d times stream_ext.view_time_limit (%d ms)", times, limit_ms) :
			psprintf("stream_ext.view_time_limit (%d ms)", limit_ms);
		if (exceeded_in_lock_wait)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("continuous view \"%s\" waited longer than %s for a lock",
							view_name, limit),
					 errdetail("Another transaction holds a lock the view's run needs; the run is tried again later.")));
		last_run_timed_out = true;
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("continuous view \"%s\" took longer than %s", view_name, limit),
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
