/*
 * view_rates.c
 *	  Recent events per second of each continuous view, for
 *	  stream_ext.view_stats (rate_10s, rate_1m, rate_5m).
 *
 * A worker (batch or Kafka) notes what a batch applied to each view; the
 * counts reach shared memory when the batch's transaction commits, so an
 * aborted batch that is applied again is counted once.  Entries live in a
 * fixed-size shared hash table keyed by database and view; when it is full,
 * an entry idle for longer than the longest window (a dropped view, say)
 * is reused, and a view that finds none is not tracked (its rates are NULL).
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "guc.h"
#include "metrics/rate.h"
#include "metrics/view_rates.h"

/* Views tracked per database served (stream_ext.max_databases) */
#define VIEWS_PER_DATABASE 128

/* An entry not counted for this long may be reused */
#define IDLE_REUSE_SECS 600

typedef struct ViewRateKey
{
	Oid			dboid;
	int			view_id;
} ViewRateKey;

/*
 * One view.  The key is written when the entry is made (under the table's
 * lock exclusive); the rest under mutex.
 */
typedef struct ViewRateEntry
{
	ViewRateKey key;
	slock_t		mutex;
	TimestampTz last_at;		/* last counted */
	StreamRate	seconds;		/* 1 s buckets: the last 10 s and minute */
	StreamRate	fives;			/* 5 s buckets: the last 5 minutes */
} ViewRateEntry;

/*
 * To find an entry hold lock shared; to add or reuse one, exclusive.  The
 * counters of an entry are under its mutex.
 */
static LWLock *rates_lock = NULL;
static HTAB *rates = NULL;

/* Counts of the current transaction, added at commit */
typedef struct PendingCount
{
	int			view_id;
	int64		events;
} PendingCount;

static PendingCount *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static bool callback_registered = false;

static long
max_entries(void)
{
	return (long) stream_ext_max_databases * VIEWS_PER_DATABASE;
}

void
stream_view_rates_shmem_request(void)
{
	RequestAddinShmemSpace(hash_estimate_size(max_entries(), sizeof(ViewRateEntry)));
	RequestNamedLWLockTranche("stream_ext view rates", 1);
}

void
stream_view_rates_shmem_startup(void)
{
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rates_lock = &(GetNamedLWLockTranche("stream_ext view rates"))->lock;
	info.keysize = sizeof(ViewRateKey);
	info.entrysize = sizeof(ViewRateEntry);
	/* fixed: a shared hash table would otherwise grow into the memory left */
	rates = ShmemInitHash("stream_ext view rates", max_entries(), max_entries(),
						  &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

static void
init_entry(ViewRateEntry *entry, const ViewRateKey *key)
{
	entry->key = *key;
	SpinLockInit(&entry->mutex);
	entry->last_at = 0;
	stream_rate_init(&entry->seconds, 1);
	stream_rate_init(&entry->fives, 5);
}

/*
 * Forget the rates of view id of this database: a new view takes an id a
 * dropped view had (ids start again after DROP and CREATE EXTENSION), and
 * must not show its events.
 */
void
stream_view_rates_forget(int view_id)
{
	ViewRateKey key;

	if (rates == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dboid = MyDatabaseId;
	key.view_id = view_id;
	LWLockAcquire(rates_lock, LW_EXCLUSIVE);
	hash_search(rates, &key, HASH_REMOVE, NULL);
	LWLockRelease(rates_lock);
}

/* An entry idle for IDLE_REUSE_SECS, removed.  Lock held exclusive. */
static bool
remove_idle_entry(TimestampTz now)
{
	HASH_SEQ_STATUS scan;
	ViewRateEntry *entry;

	hash_seq_init(&scan, rates);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (!TimestampDifferenceExceeds(entry->last_at, now, IDLE_REUSE_SECS * 1000))
			continue;
		hash_seq_term(&scan);
		hash_search(rates, &entry->key, HASH_REMOVE, NULL);
		return true;
	}
	return false;
}

static void
add_to_entry(ViewRateEntry *entry, int64 events, TimestampTz now)
{
	SpinLockAcquire(&entry->mutex);
	stream_rate_add(&entry->seconds, now, events);
	stream_rate_add(&entry->fives, now, events);
	entry->last_at = now;
	SpinLockRelease(&entry->mutex);
}

/*
 * Add the transaction's counts to their entries: those that exist under
 * the lock shared, the others (a view's first batch) made under it
 * exclusive.  A view that finds no room is not counted.
 */
static void
add_pending_counts(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		missing = false;

	LWLockAcquire(rates_lock, LW_SHARED);
	for (int i = 0; i < npending; i++)
	{
		ViewRateKey key = {MyDatabaseId, pending[i].view_id};
		ViewRateEntry *entry = hash_search(rates, &key, HASH_FIND, NULL);

		if (entry != NULL)
		{
			add_to_entry(entry, pending[i].events, now);
			pending[i].events = 0;
		}
		else
			missing = true;
	}
	LWLockRelease(rates_lock);
	if (!missing)
		return;

	LWLockAcquire(rates_lock, LW_EXCLUSIVE);
	for (int i = 0; i < npending; i++)
	{
		ViewRateKey key = {MyDatabaseId, pending[i].view_id};
		ViewRateEntry *entry;
		bool		found;

		if (pending[i].events == 0)
			continue;
		entry = hash_search(rates, &key, HASH_ENTER_NULL, &found);
		if (entry == NULL && remove_idle_entry(now))
			entry = hash_search(rates, &key, HASH_ENTER_NULL, &found);
		if (entry == NULL)
			continue;
		if (!found)
			init_entry(entry, &key);
		add_to_entry(entry, pending[i].events, now);
	}
	LWLockRelease(rates_lock);
}

static void
at_transaction_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && npending > 0 && rates != NULL)
		add_pending_counts();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		npending = 0;
}

/*
 * Count events applied to a view in the current transaction; they count
 * when (and if) it commits.
 */
void
stream_view_rates_note(int view_id, int64 events)
{
	if (!callback_registered)
	{
		RegisterXactCallback(at_transaction_end, NULL);
		callback_registered = true;
	}
	if (npending == maxpending)
	{
		maxpending = Max(16, maxpending * 2);
		pending = pending == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(PendingCount) * maxpending) :
			repalloc(pending, sizeof(PendingCount) * maxpending);
	}
	pending[npending].view_id = view_id;
	pending[npending].events = events;
	npending++;
}

PG_FUNCTION_INFO_V1(stream_ext_view_rates);

/* view_id, rate_10s, rate_1m, rate_5m of the views of this database */
Datum
stream_ext_view_rates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS scan;
	ViewRateEntry *entry;

	stream_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(rates_lock, LW_SHARED);
	hash_seq_init(&scan, rates);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		Datum		values[4];
		bool		nulls[4] = {0};
		StreamRate	seconds;
		StreamRate	fives;

		if (entry->key.dboid != MyDatabaseId)
			continue;
		SpinLockAcquire(&entry->mutex);
		seconds = entry->seconds;
		fives = entry->fives;
		SpinLockRelease(&entry->mutex);
		values[0] = Int32GetDatum(entry->key.view_id);
		values[1] = Float8GetDatum(stream_rate_per_second(&seconds, now, 10));
		values[2] = Float8GetDatum(stream_rate_per_second(&seconds, now, 60));
		values[3] = Float8GetDatum(stream_rate_per_second(&fives, now, 300));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(rates_lock);
	return (Datum) 0;
}
