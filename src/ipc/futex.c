/*
 * futex.c
 *	  Sleeping on a word of shared memory, and waking its sleepers: a Linux
 *	  futex.  A latch wakes its process with a signal, which the sleeper
 *	  reads through epoll and a signalfd; on the 2-core VMs of the
 *	  benchmarks that cost about 14 us of CPU per wake-up against 5 for a
 *	  futex, paid once per acknowledged transaction (queue.c).  Elsewhere
 *	  than Linux the sleep is a short timed latch wait, which polls.
 */
#include "postgres.h"

#ifdef __linux__
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#include "miscadmin.h"
#include "storage/latch.h"

#include "ipc/futex.h"

void
stream_futex_wait(pg_atomic_uint32 *word, uint32 expected, long timeout_ms)
{
#ifdef __linux__
	struct timespec timeout;

	timeout.tv_sec = timeout_ms / 1000;
	timeout.tv_nsec = (timeout_ms % 1000) * 1000000L;

	/*
	 * A sleep with a timeout ends with EINTR when a signal handler ran
	 * (SA_RESTART does not restart it), so the caller sees a pending
	 * interrupt at once.  EAGAIN: the word had changed already.
	 */
	if (syscall(SYS_futex, &word->value, FUTEX_WAIT, expected, &timeout, NULL, 0) != 0 &&
		errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
		elog(ERROR, "futex wait failed: %m");
#else
	if (pg_atomic_read_u32(word) == expected)
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(timeout_ms, 1L), 0);
	ResetLatch(MyLatch);
#endif
}

void
stream_futex_wake(pg_atomic_uint32 *word)
{
#ifdef __linux__
	/* it cannot fail on a valid word; a sleeper's timeout would cover it */
	(void) syscall(SYS_futex, &word->value, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
#endif
}
