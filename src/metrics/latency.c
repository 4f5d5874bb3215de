/*
 * latency.c
 *	  Commit-to-visible latency, for stream_ext.commit_latency.
 *
 * A writer stamps the record it sends at COMMIT (sync mode) or at the end of
 * a statement (async mode) with the time; the worker that applies it notes,
 * once its batch committed, how long that record waited.  That is the time
 * from the writer's COMMIT to its events being in the views: the writer's
 * own commit record follows at once in sync mode, and in async mode the
 * events are visible from then on (the writer has committed by then, or
 * commits after).
 *
 * Each database group has a histogram per 10-second window, the last six
 * kept: a read covers the last minute.  Buckets grow by 2^(1/4) (19 %);
 * a percentile is reported as its bucket's geometric middle, so within
 * about 10 % of the true value.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "guc.h"
#include "ipc/queue.h"
#include "metrics/latency.h"

#define WINDOW_SECS 10
#define NWINDOWS 6
#define NBUCKETS 128			/* 2^(128/4) us: 71 minutes and above */

typedef struct LatencyWindow
{
	uint32		epoch;			/* seconds since 2000 / WINDOW_SECS */
	uint32		count;
	int64		max_us;
	uint32		bucket[NBUCKETS];
} LatencyWindow;

/* One database group's windows, all under mutex */
typedef struct GroupLatency
{
	slock_t		mutex;
	LatencyWindow windows[NWINDOWS];
} GroupLatency;

/* stream_ext.max_databases entries, indexed like the database groups */
static GroupLatency *latencies = NULL;

static Size
latency_shmem_size(void)
{
	return mul_size(stream_ext_max_databases, sizeof(GroupLatency));
}

void
stream_latency_shmem_request(void)
{
	RequestAddinShmemSpace(latency_shmem_size());
}

void
stream_latency_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	latencies = ShmemInitStruct("stream_ext commit latency", latency_shmem_size(), &found);
	if (!found)
	{
		memset(latencies, 0, latency_shmem_size());
		for (int g = 0; g < stream_ext_max_databases; g++)
			SpinLockInit(&latencies[g].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static int
bucket_of(int64 us)
{
	int			b;

	if (us < 1)
		return 0;
	b = (int) floor(4.0 * log2((double) us));
	return Min(Max(b, 0), NBUCKETS - 1);
}

/* The middle of a bucket, in milliseconds */
static double
bucket_ms(int b)
{
	return pow(2.0, (b + 0.5) / 4.0) / 1000.0;
}

/*
 * Note that n records sent at sent_at[] became visible at visible_at, for
 * the database group groupno.
 */
void
stream_latency_note(int groupno, const TimestampTz *sent_at, int n, TimestampTz visible_at)
{
	GroupLatency *g = &latencies[groupno];
	uint32		epoch = (uint32) (visible_at / USECS_PER_SEC / WINDOW_SECS);
	LatencyWindow *w = &g->windows[epoch % NWINDOWS];

	if (n == 0)
		return;
	SpinLockAcquire(&g->mutex);
	if (w->epoch != epoch)
	{
		memset(w, 0, sizeof(LatencyWindow));
		w->epoch = epoch;
	}
	for (int i = 0; i < n; i++)
	{
		int64		us = Max(visible_at - sent_at[i], 0);

		w->bucket[bucket_of(us)]++;
		w->count++;
		w->max_us = Max(w->max_us, us);
	}
	SpinLockRelease(&g->mutex);
}

/* The last minute's windows of a group, summed into *sum. */
static void
last_minute(int groupno, LatencyWindow *sum)
{
	GroupLatency *g = &latencies[groupno];
	uint32		now = (uint32) (GetCurrentTimestamp() / USECS_PER_SEC / WINDOW_SECS);

	memset(sum, 0, sizeof(LatencyWindow));
	SpinLockAcquire(&g->mutex);
	for (int i = 0; i < NWINDOWS; i++)
	{
		LatencyWindow *w = &g->windows[i];

		if (w->epoch + NWINDOWS <= now || w->epoch > now)
			continue;
		sum->count += w->count;
		sum->max_us = Max(sum->max_us, w->max_us);
		for (int b = 0; b < NBUCKETS; b++)
			sum->bucket[b] += w->bucket[b];
	}
	SpinLockRelease(&g->mutex);
}

static double
percentile_ms(const LatencyWindow *sum, double fraction)
{
	uint64		rank = (uint64) ceil(fraction * sum->count);
	uint64		seen = 0;

	for (int b = 0; b < NBUCKETS; b++)
	{
		seen += sum->bucket[b];
		if (seen >= Max(rank, 1))
			return Min(bucket_ms(b), sum->max_us / 1000.0);
	}
	return sum->max_us / 1000.0;
}

PG_FUNCTION_INFO_V1(stream_ext_commit_latency);

/* commits, p50_ms, p99_ms, max_ms of this database over the last minute */
Datum
stream_ext_commit_latency(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			groupno;
	LatencyWindow sum;
	Datum		values[4];
	bool		nulls[4] = {0};

	stream_require_preload();
	groupno = stream_group_of_database(MyDatabaseId);
	InitMaterializedSRF(fcinfo, 0);
	if (groupno >= 0)
		last_minute(groupno, &sum);
	else
		memset(&sum, 0, sizeof(sum));
	values[0] = Int64GetDatum(sum.count);
	values[1] = Float8GetDatum(percentile_ms(&sum, 0.5));
	values[2] = Float8GetDatum(percentile_ms(&sum, 0.99));
	values[3] = Float8GetDatum(sum.max_us / 1000.0);
	nulls[1] = nulls[2] = nulls[3] = (sum.count == 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
