/*
 * futex.c
 *	  Sleeping on a word of shared memory, and waking its sleeper: a Linux
 *	  futex.  A latch wakes its process with a signal, which the sleeper
 *	  reads through epoll and a signalfd; on the 2-core VMs of the
 *	  benchmarks that cost about 14 us of CPU per wake-up against 5 for a
 *	  futex, paid twice per acknowledged transaction (queue.c).
 *
 * Only on 64-bit Linux, where the futex system call takes the struct
 * timespec of the C library; elsewhere the word is ignored and the sleep
 * and the wake-up are the process's latch, as PostgreSQL's own waits are.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/wait_event.h"

#if defined(__linux__) && SIZEOF_VOID_P == 8
#define USE_FUTEX
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#include "ipc/futex.h"

void
stream_sleeper_init(StreamSleeper *s)
{
	pg_atomic_init_u32(&s->sleeping, 0);
	pg_atomic_init_u32(&s->wake, 0);
}

/*
 * Sleeper side, before its last look at what it waits for: returns the
 * word to pass to stream_sleeper_sleep.
 */
uint32
stream_sleeper_announce(StreamSleeper *s)
{
	uint32		wake = pg_atomic_read_u32(&s->wake);

	pg_atomic_write_u32(&s->sleeping, 1);
	pg_memory_barrier();
	return wake;
}

/*
 * Sleeper side, after that look: if sleep (what it waits for is not there),
 * sleep while the word still holds wake, at most timeout_ms (> 0),
 * reporting wait_event_info meanwhile; then end the announcement.  The
 * sleep ends early when a signal handler runs during it; a signal that came
 * just before it is seen at the timeout at the latest, so callers test
 * their interrupts before sleeping and keep the timeout short.
 */
void
stream_sleeper_sleep(StreamSleeper *s, uint32 wake, bool sleep, long timeout_ms,
					 uint32 wait_event_info)
{
	bool		ok = true;

	Assert(timeout_ms > 0);
	if (sleep)
	{
#ifdef USE_FUTEX
		struct timespec timeout;

		timeout.tv_sec = timeout_ms / 1000;
		timeout.tv_nsec = (timeout_ms % 1000) * 1000000L;

		/*
		 * Not FUTEX_PRIVATE_FLAG: the word is in memory that every backend
		 * shares.  With a timeout the sleep ends with EINTR when a signal
		 * handler runs, although PostgreSQL installs them with SA_RESTART
		 * (a sleep without one would be restarted, and miss the signal);
		 * EAGAIN means the word had changed already.
		 */
		pgstat_report_wait_start(wait_event_info);
		if (syscall(SYS_futex, &s->wake.value, FUTEX_WAIT, wake, &timeout, NULL, 0) != 0 &&
			errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
			ok = false;
		pgstat_report_wait_end();
#else
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, wait_event_info);
		ResetLatch(MyLatch);
#endif
	}
	pg_atomic_write_u32(&s->sleeping, 0);
	if (!ok)
		elog(ERROR, "could not sleep on a futex: %m");
}

/*
 * Waker side, after it changed what the sleeper waits for: wake it if it
 * announced a sleep; pgprocno is the sleeper (its latch is set where there
 * are no futexes), or -1.
 */
void
stream_sleeper_wake(StreamSleeper *s, int pgprocno)
{
	pg_memory_barrier();
	if (!pg_atomic_read_u32(&s->sleeping))
		return;
	pg_atomic_fetch_add_u32(&s->wake, 1);
#ifdef USE_FUTEX
	/* one sleeper at most; the call cannot fail on a valid word */
	(void) syscall(SYS_futex, &s->wake.value, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
#else
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
#endif
}

/*
 * From a signal handler of the sleeper: end its sleep now, or make the
 * next one not start (it compares the word it read when it announced).
 */
void
stream_sleeper_interrupt(StreamSleeper *s)
{
	pg_atomic_fetch_add_u32(&s->wake, 1);
}
