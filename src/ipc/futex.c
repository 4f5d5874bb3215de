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

bool
stream_futex_wait(pg_atomic_uint32 *word, uint32 expected, long timeout_ms,
				  uint32 wait_event_info)
{
#ifdef USE_FUTEX
	struct timespec timeout;
	bool		ok = true;

	Assert(timeout_ms > 0);
	timeout.tv_sec = timeout_ms / 1000;
	timeout.tv_nsec = (timeout_ms % 1000) * 1000000L;

	/*
	 * Not FUTEX_PRIVATE_FLAG: the word is in memory that every backend
	 * shares.  With a timeout the sleep ends with EINTR when a signal
	 * handler runs, although PostgreSQL installs them with SA_RESTART (a
	 * sleep without one would be restarted, and miss the signal); EAGAIN
	 * means the word had changed already.
	 */
	pgstat_report_wait_start(wait_event_info);
	if (syscall(SYS_futex, &word->value, FUTEX_WAIT, expected, &timeout, NULL, 0) != 0 &&
		errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
		ok = false;
	pgstat_report_wait_end();
	return ok;
#else
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, wait_event_info);
	ResetLatch(MyLatch);
	return true;
#endif
}

void
stream_futex_wake(pg_atomic_uint32 *word, int pgprocno)
{
#ifdef USE_FUTEX
	/* one sleeper at most; the call cannot fail on a valid word */
	(void) syscall(SYS_futex, &word->value, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
#else
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
#endif
}
