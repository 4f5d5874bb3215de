/*
 * futex.h
 *	  Sleeping on a 32-bit word in shared memory until another process
 *	  changes it (futex.c).
 */
#ifndef STREAM_EXT_IPC_FUTEX_H
#define STREAM_EXT_IPC_FUTEX_H

#include "postgres.h"

#include "port/atomics.h"

/*
 * Sleep while *word still holds expected, at most timeout_ms; a signal
 * (a cancel, a termination, the postmaster's death) ends the sleep early.
 * Returns without sleeping when *word no longer holds expected.  The
 * caller checks what it waits for, and its interrupts, afterwards.
 */
extern void stream_futex_wait(pg_atomic_uint32 *word, uint32 expected, long timeout_ms);

/* Wake every process sleeping on word (after the caller changed it). */
extern void stream_futex_wake(pg_atomic_uint32 *word);

#endif
