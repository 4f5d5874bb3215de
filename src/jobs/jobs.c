/*
 * jobs.c
 *	  The registry of the combiner's periodic jobs.
 *
 * The combiner of each database merges deltas (worker/combiner.c); other
 * modules give it work of their own without the combiner knowing them:
 * window/reaper.c deletes expired rows, kafka/supervisor.c keeps the Kafka
 * consumer workers running.  Each registers a job from _PG_init, in the
 * postmaster, so every process has the same list.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "jobs/jobs.h"

#define MAX_JOBS 8

typedef struct StreamJob
{
	const char *name;
	StreamJobRun run;
} StreamJob;

static StreamJob jobs[MAX_JOBS];
static int	njobs = 0;

/* Register a job; called from _PG_init.  name must be a constant string. */
void
stream_job_register(const char *name, StreamJobRun run)
{
	if (njobs == MAX_JOBS)
		elog(ERROR, "too many stream_ext combiner jobs");
	jobs[njobs].name = name;
	jobs[njobs].run = run;
	njobs++;
}

/*
 * Run every job once, and again while it has more work ready; interrupts
 * are checked between runs.  Called by the combiner outside a transaction.
 */
void
stream_jobs_run(void (*check_interrupts) (void), MemoryContext cxt)
{
	for (int i = 0; i < njobs; i++)
	{
		while (jobs[i].run(cxt))
			check_interrupts();
		check_interrupts();
	}
}

/*
 * In PG_CATCH of a background process: log the error, clear it and abort
 * the transaction if one is open, then go on in cxt.
 */
void
stream_log_error_and_abort(MemoryContext cxt)
{
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
}

/*
 * Run work(arg) in a transaction of its own with a snapshot.  An error is
 * logged and the transaction aborted; returns it (copied into cxt), or NULL
 * when work committed.  Leaves cxt as the current memory context.
 */
ErrorData *
stream_job_in_transaction(void (*work) (void *arg), void *arg, MemoryContext cxt)
{
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		work(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		stream_log_error_and_abort(cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return edata;
}

/*
 * Run work(NULL) in a transaction of its own when *next_round has come, and
 * set the next round interval_ms later, or retry_ms after an error (logged).
 */
void
stream_job_every(TimestampTz *next_round, int interval_ms, int retry_ms,
				 void (*work) (void *arg), MemoryContext cxt)
{
	TimestampTz now = GetCurrentTimestamp();
	ErrorData  *failed;

	if (now < *next_round)
		return;
	failed = stream_job_in_transaction(work, NULL, cxt);
	*next_round = TimestampTzPlusMilliseconds(now, failed ? retry_ms : interval_ms);
	if (failed)
		FreeErrorData(failed);
}
