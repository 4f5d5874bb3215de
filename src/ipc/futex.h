/*
 * futex.h
 *	  One process sleeping until another changes what it waits for, and
 *	  the other waking it (futex.c).
 */
#ifndef STREAM_EXT_IPC_FUTEX_H
#define STREAM_EXT_IPC_FUTEX_H

#include "port/atomics.h"

/*
 * In shared memory, beside what a process waits for.  The sleeper
 * announces its sleep (stream_sleeper_announce), then looks at what it
 * waits for, and sleeps if it is not there yet (stream_sleeper_sleep); the
 * waker changes it, then wakes the sleeper if one announced itself
 * (stream_sleeper_wake).  A full barrier after each side's write: either
 * the waker sees the announcement, or the sleeper sees the change.
 */
typedef struct StreamSleeper
{
	pg_atomic_uint32 sleeping;	/* a process may sleep on wake */
	pg_atomic_uint32 wake;		/* bumped to wake it */
} StreamSleeper;

extern void stream_sleeper_init(StreamSleeper *s);
extern uint32 stream_sleeper_announce(StreamSleeper *s);
extern void stream_sleeper_sleep(StreamSleeper *s, uint32 wake, bool sleep, long timeout_ms,
								 uint32 wait_event_info);
extern void stream_sleeper_wake(StreamSleeper *s, int pgprocno);
extern void stream_sleeper_interrupt(StreamSleeper *s);

#endif
