/*
 * futex.h
 *	  Sleeping on a 32-bit word in shared memory until another process
 *	  changes it (futex.c).
 */
#ifndef STREAM_EXT_IPC_FUTEX_H
#define STREAM_EXT_IPC_FUTEX_H

#include "port/atomics.h"

/*
 * Sleep while *word still holds expected, at most timeout_ms (> 0),
 * reporting wait_event_info meanwhile.  Returns at once when *word no
 * longer holds expected, and early when a signal handler runs during the
 * sleep; a signal that came just before it is seen at the timeout at the
 * latest, so callers test their interrupts before sleeping and keep the
 * timeout short.  Returns false (errno set) when the sleep failed.
 */
extern bool stream_futex_wait(pg_atomic_uint32 *word, uint32 expected, long timeout_ms,
							  uint32 wait_event_info);

/*
 * Wake the process sleeping on word, after the caller changed it; pgprocno
 * is that process (its latch is set where there are no futexes), or -1.
 */
extern void stream_futex_wake(pg_atomic_uint32 *word, int pgprocno);

#endif
