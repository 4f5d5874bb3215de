/*
 * retry.c
 *	  Per-view waits between a job's failed tries.
 *
 * A view whose try failed (its change emission, the application of its
 * held events, a merge past the time limit) waits before the next: the
 * first wait, doubling after each
 * failure up to the longest, so that an error that persists is met (and
 * logged) that often, not at every turn of the combiner.  A success
 * forgets the view.
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "jobs/retry.h"

typedef struct FailedTry
{
	int			view_id;
	int			wait_ms;
	int			failures;		/* in a row */
	TimestampTz retry_at;
} FailedTry;

static FailedTry *
find_failed(StreamRetries *retries, int view_id)
{
	ListCell   *lc;

	foreach(lc, retries->failed)
		if (((FailedTry *) lfirst(lc))->view_id == view_id)
			return lfirst(lc);
	return NULL;
}

/* May view_id be tried now? */
bool
stream_retry_due(StreamRetries *retries, int view_id)
{
	FailedTry  *f = find_failed(retries, view_id);

	return f == NULL || GetCurrentTimestamp() >= f->retry_at;
}

/* Did the last try of view_id fail (is it waiting to be tried again)? */
bool
stream_retry_waiting(StreamRetries *retries, int view_id)
{
	return find_failed(retries, view_id) != NULL;
}

/* How many tries of view_id in a row failed */
int
stream_retry_failures(StreamRetries *retries, int view_id)
{
	FailedTry  *f = find_failed(retries, view_id);

	return f == NULL ? 0 : f->failures;
}

/* Note how a try of view_id ended */
void
stream_retry_note(StreamRetries *retries, int view_id, bool ok)
{
	FailedTry  *f = find_failed(retries, view_id);
	MemoryContext old;

	if (ok)
	{
		if (f != NULL)
		{
			retries->failed = list_delete_ptr(retries->failed, f);
			pfree(f);
		}
		return;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (f == NULL)
	{
		f = palloc0(sizeof(FailedTry));
		f->view_id = view_id;
		retries->failed = lappend(retries->failed, f);
	}
	f->failures++;
	f->wait_ms = f->wait_ms == 0 ? retries->first_ms : Min(f->wait_ms * 2, retries->max_ms);
	f->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), f->wait_ms);
	MemoryContextSwitchTo(old);
}
