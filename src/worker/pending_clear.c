/*
 * pending_clear.c
 *	  The combiner publishes, per delta table, the writer id below which no
 *	  delta is left (ipc/pending_keys.c uses it to spare reads of one group
 *	  the delta table's scans).
 *
 * After merging a view, the combiner takes R, the oldest transaction id
 * still running, and then a snapshot, in which it scans the delta table:
 * it raises every row's pending-key slot to the row's writer (so that rows
 * no worker noted, restored ones or those written before the server
 * restarted, count as well), and takes M, the lower of R and the lowest
 * writer it saw.  Every delta of a writer below M is gone in that snapshot:
 * a delta it does not see either was deleted by a transaction that had
 * committed, or was written by a batch that had not committed, whose writer
 * (sync commit) or batch (async commit, where workers note their own id
 * too) was still running or not yet started when R was taken, so is at or
 * above R.  Snapshots older than the scan may still see deleted deltas:
 * M is published once every snapshot that can read the table is newer
 * than the scan (the table's horizon, as VACUUM computes it: this
 * database's snapshots, reached the next transaction id read after the
 * scan), as VACUUM waits before removing rows.  The combiner checks that
 * at every turn of its loop, and for a second after a scan, turns every
 * PUBLISH_POLL_MS: the sooner M is published, the fewer groups look
 * pending.  (An old transaction of the database holds every publication
 * back: then the combiner does not spin.)  A table is scanned again only
 * after deltas were moved out of it.
 *
 * The scan hashes keys by their types' hash functions, which may be user
 * code: the combiner runs it as the view's owner, under the view's time
 * limit; a scan that fails is not tried again for SCAN_RETRY_MS.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "agg/combine.h"
#include "ipc/pending_keys.h"
#include "jobs/jobs.h"
#include "worker/pending_clear.h"

/* A delta table's cleared id, waiting for older snapshots to end */
typedef struct WaitingClear
{
	Oid			delta;
	FullTransactionId below;	/* M */
	FullTransactionId after;	/* the next id after the scan */
	TimestampTz scanned_at;
} WaitingClear;

static List *waiting = NIL;		/* in TopMemoryContext */

static WaitingClear *
find_waiting(Oid delta)
{
	ListCell   *lc;

	foreach(lc, waiting)
		if (((WaitingClear *) lfirst(lc))->delta == delta)
			return lfirst(lc);
	return NULL;
}

/* How long the combiner polls fast for a publication */
#define PUBLISH_FAST_MS 1000

/* A delta table whose scan failed, and when to try again */
typedef struct FailedScan
{
	Oid			delta;
	TimestampTz retry_at;
} FailedScan;

#define SCAN_RETRY_MS 60000

static List *failed = NIL;		/* in TopMemoryContext */

static FailedScan *
find_failed(Oid delta)
{
	ListCell   *lc;

	foreach(lc, failed)
		if (((FailedScan *) lfirst(lc))->delta == delta)
			return lfirst(lc);
	return NULL;
}

/* Delta tables this process scanned (publishing their cleared id or not) */
static List *scanned = NIL;		/* OIDs, in TopMemoryContext */

/*
 * Is a scan of delta due?  Not while its last cleared id waits, nor for a
 * while after a scan failed; and only once deltas were moved out of it
 * since the last (new deltas leave a cleared id true: a rescan could only
 * raise it), or if this process never scanned it.
 */
bool
stream_pending_clear_due(Oid delta, bool moved)
{
	FailedScan *f = find_failed(delta);

	if (f != NULL && GetCurrentTimestamp() < f->retry_at)
		return false;
	if (find_waiting(delta) != NULL)
		return false;
	return moved || !list_member_oid(scanned, delta);
}

/* The scan of delta failed (its error was reported): try again later */
void
stream_pending_clear_failed(Oid delta)
{
	FailedScan *f = find_failed(delta);

	if (f == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		f = palloc(sizeof(FailedScan));
		f->delta = delta;
		failed = lappend(failed, f);
		MemoryContextSwitchTo(old);
	}
	f->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SCAN_RETRY_MS);
}

static FullTransactionId
full_min(FullTransactionId a, FullTransactionId b)
{
	return FullTransactionIdPrecedes(a, b) ? a : b;
}

/*
 * Scan delta (its first column the writer, key_count keys after it) as
 * described above, unless its last cleared id still waits.  Runs in a
 * transaction, as the combiner.
 */
void
stream_pending_clear_scan(Oid delta, int key_count)
{
	TransactionId oldest_running;
	FullTransactionId below;
	Snapshot	snapshot;
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	PendingKeyHash hash;
	MemoryContext row_cxt;
	MemoryContext old;
	WaitingClear *w;

	if (key_count <= 0)
		return;
	/* the view may just have been dropped */
	rel = try_table_open(delta, AccessShareLock);
	if (rel == NULL)
		return;
	if (!stream_pending_key_hash_init(&hash, RelationGetDescr(rel), key_count,
									  CurrentMemoryContext) ||
		!stream_pending_keys_reserve(delta))
	{
		table_close(rel, AccessShareLock);
		return;
	}
	oldest_running = GetOldestActiveTransactionId();
	below = stream_recent_full_xid(oldest_running);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "stream_ext pending clear",
									ALLOCSET_SMALL_SIZES);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		FullTransactionId writer;

		CHECK_FOR_INTERRUPTS();
		slot_getsomeattrs(slot, key_count + 1);
		if (slot->tts_isnull[0])
			continue;
		writer = DatumGetFullTransactionId(slot->tts_values[0]);
		old = MemoryContextSwitchTo(row_cxt);
		stream_pending_key_written(delta,
								   stream_pending_key_hash(&hash, slot->tts_values + 1,
														   slot->tts_isnull + 1),
								   writer);
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
		below = full_min(below, writer);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	MemoryContextDelete(row_cxt);

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!list_member_oid(scanned, delta))
		scanned = lappend_oid(scanned, delta);
	w = palloc(sizeof(WaitingClear));
	w->delta = delta;
	w->below = below;
	w->after = ReadNextFullTransactionId();
	w->scanned_at = GetCurrentTimestamp();
	waiting = lappend(waiting, w);
	MemoryContextSwitchTo(old);
}

/* What stream_pending_clear_publish does in its transaction */
static void
publish_work(void *arg)
{
	bool	   *poll_fast = arg;
	TimestampTz fast_since = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), -PUBLISH_FAST_MS);
	ListCell   *lc;

	foreach(lc, waiting)
	{
		WaitingClear *w = lfirst(lc);
		Relation	rel = try_table_open(w->delta, AccessShareLock);
		TransactionId horizon;

		/* a dropped view's table has nothing to publish */
		if (rel != NULL)
		{
			/*
			 * The horizon of the table's rows: this database's snapshots
			 * (only they can read it), not a logical slot's catalog_xmin
			 * or other databases' transactions.
			 */
			horizon = GetOldestNonRemovableTransactionId(rel);
			table_close(rel, AccessShareLock);
			if (!TransactionIdFollowsOrEquals(horizon, XidFromFullTransactionId(w->after)))
			{
				*poll_fast |= w->scanned_at > fast_since;
				continue;
			}
			stream_pending_keys_cleared(w->delta, w->below);
		}
		waiting = foreach_delete_current(waiting, lc);
		pfree(w);
	}
}

/*
 * Publish the cleared ids no running snapshot predates (in a transaction of
 * its own: the horizon is the table's); true while one scanned less than
 * PUBLISH_FAST_MS ago still waits.
 */
bool
stream_pending_clear_publish(MemoryContext cxt)
{
	bool		poll_fast = false;

	if (waiting == NIL)
		return false;
	(void) stream_job_in_transaction(publish_work, &poll_fast, cxt);
	return poll_fast;
}
