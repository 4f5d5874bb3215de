/*
 * jobs.h
 *	  Periodic jobs that each database's combiner runs besides merging:
 *	  registered at load time by the module that owns each one; and how
 *	  background processes log an error they go on after.
 */
#ifndef STREAM_EXT_JOBS_H
#define STREAM_EXT_JOBS_H

#include "datatype/timestamp.h"
#include "utils/palloc.h"

/*
 * A job runs outside a transaction (it starts its own) in the combiner of
 * a database, at every turn of the combiner's loop, so at least every
 * STREAM_JOB_TICK_MS; it decides itself whether anything is due.  It
 * returns true when more work is ready at once: the combiner checks for
 * interrupts and calls it again.  cxt is reset between turns.
 */
typedef bool (*StreamJobRun) (MemoryContext cxt);

/* The combiner's loop turns at least this often */
#define STREAM_JOB_TICK_MS 200

extern void stream_job_register(const char *name, StreamJobRun run);
extern void stream_jobs_run(void (*check_interrupts) (void), MemoryContext cxt);
extern void stream_log_error_and_abort(MemoryContext cxt);
extern ErrorData *stream_job_in_transaction(void (*work) (void *arg), void *arg,
											MemoryContext cxt);
extern void stream_job_every(TimestampTz *next_round, int interval_ms, int retry_ms,
							 void (*work) (void *arg), MemoryContext cxt);

#endif
