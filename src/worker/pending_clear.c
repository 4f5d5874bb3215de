/*
 * pending_clear.c
 *	  The combiner publishes, per delta table, the writer id below which no
 *	  delta is left (ipc/pending_keys.c uses it to spare reads of one group
 *	  the delta table's scans).
 *
 * After merging a view, the combiner takes R, the oldest transaction id
 * of this database still running (oldest_running_here), and then a
 * snapshot, in which it scans the delta table:
 * it raises every row's pending-key slot to the row's writer (so that rows
 * no worker noted, restored ones or those written before the server
 * restarted, count as well), and takes M, the lower of R and the lowest
 * writer it saw.  Every delta of a writer below M is gone in that snapshot:
 * a delta it does not see either was deleted by a transaction that had
 * committed, or was written by a batch that had not committed, whose writer
 * (sync commit) or batch (async commit, where workers note their own id
 * too) was still running or not yet started when R was taken, so is at or
 * above R.  A reader's snapshot that has seen every transaction end that
 * the scan's snapshot saw end sees no more deltas than the scan did, but
 * for those of batches not committed then: M is published at once for
 * such snapshots, with the scan snapshot's xmax and running ids
 * (ipc/pending_keys.c checks a reader's snapshot against them), when they
 * are at most 64.  Older snapshots may still see deleted deltas: for
 * them, M is published once every snapshot that can read the table is newer
 * than the scan (the table's horizon, as VACUUM computes it: this
 * database's snapshots, reached the next transaction id read after the
 * scan), as VACUUM waits before removing rows.  The combiner checks that
 * at every turn of its loop, and for a second after a scan, turns every
 * PUBLISH_POLL_MS: the sooner M is published, the fewer groups look
 * pending.  (A snapshot held open holds that publication back, and only
 * that one: the combiner does not spin on it, and meanwhile the scans after
 * later merges publish their M for newer snapshots, leaving the M that
 * waits as it is.)  A table is scanned again only after deltas were moved
 * out of it.
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
#include "access/twophase.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "agg/combine.h"
#include "ipc/pending_keys.h"
#include "jobs/jobs.h"
#include "worker/pending_clear.h"

/*
 * What the combiner knows of one delta table: whether it scanned it, the
 * cleared id of its last scan while that waits for older snapshots to end,
 * and when to scan it again after a scan failed.
 */
typedef struct ClearState
{
	Oid			delta;
	bool		scanned;		/* by this process */
	bool		moved;			/* deltas moved out since the last scan */
	uint64		scanned_epoch;	/* the epoch of the last scan */
	bool		waiting;		/* below and after wait to be published */
	FullTransactionId below;	/* M */
	FullTransactionId after;	/* the next id after the scan */
	uint64		epoch;			/* ipc/pending_keys.c's, before the scan */
	TimestampTz scanned_at;		/* of below and after */
	TimestampTz last_scan_at;
	TimestampTz retry_at;		/* after a failed scan; 0 if none */
} ClearState;

static List *tables = NIL;		/* ClearState, in TopMemoryContext */

/* How long the combiner polls fast for a publication */
#define PUBLISH_FAST_MS 1000

/*
 * How often a table is scanned while its cleared id waits: the snapshot it
 * waits for keeps VACUUM from removing the merged deltas, which each scan
 * reads again
 */
#define SCAN_WAITING_MS 1000

/* How long a delta table whose scan failed is left alone */
#define SCAN_RETRY_MS 60000

/* The state of delta, made (in TopMemoryContext) when it has none */
static ClearState *
table_state(Oid delta)
{
	ListCell   *lc;
	ClearState *t;
	MemoryContext old;

	foreach(lc, tables)
		if (((ClearState *) lfirst(lc))->delta == delta)
			return lfirst(lc);
	old = MemoryContextSwitchTo(TopMemoryContext);
	t = palloc0(sizeof(ClearState));
	t->delta = delta;
	tables = lappend(tables, t);
	MemoryContextSwitchTo(old);
	return t;
}

/*
 * Is a scan of delta due?  Not for a while after a scan failed; and only
 * once deltas were moved out of it since the last (new deltas leave a
 * cleared id true: a rescan could only raise it), or if this process never
 * scanned it.  A scan while the last one's cleared id waits for older
 * snapshots (at most every SCAN_WAITING_MS) publishes its own for newer
 * snapshots at once, and leaves the one that waits as it is (its wait ends
 * first).
 */
bool
stream_pending_clear_due(Oid delta, bool moved)
{
	ClearState *t = table_state(delta);
	TimestampTz now = GetCurrentTimestamp();

	t->moved |= moved;
	if (t->retry_at != 0 && now < t->retry_at)
		return false;
	/* a restore committed since the last scan: what it cleared was dropped */
	if (t->scanned && t->scanned_epoch != stream_pending_keys_epoch())
		return true;
	if (t->waiting && now < TimestampTzPlusMilliseconds(t->last_scan_at, SCAN_WAITING_MS))
		return false;
	return t->moved || !t->scanned;
}

/* The scan of delta failed (its error was reported): try again later */
void
stream_pending_clear_failed(Oid delta)
{
	table_state(delta)->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															   SCAN_RETRY_MS);
}

/*
 * The oldest transaction id that a backend or prepared transaction of this
 * database still runs, or the next id if none.  Only they write into this
 * database's streams (writers, and the workers, combiner and Kafka workers
 * of this database, which are connected to it), so a transaction of another
 * database, however old, holds no key of this one pending.  As
 * GetOldestActiveTransactionId, over this database: the next id is read
 * first, under XidGenLock, so that every id below it is in the proc array
 * or has ended.  The proc array's own list is private to procarray.c: a
 * PGPROC is in it while its id is mirrored at its pgxactoff (a prepared
 * transaction's dummy PGPROC keeps its id after it leaves the array, but
 * that id has ended, and no one else's slot holds it).
 */
static TransactionId
oldest_running_here(void)
{
	/* prepared transactions' PGPROCs follow the others' */
	int			procs = ProcGlobal->allProcCount + max_prepared_xacts;
	TransactionId oldest;

	LWLockAcquire(XidGenLock, LW_SHARED);
	oldest = XidFromFullTransactionId(ShmemVariableCache->nextXid);
	LWLockRelease(XidGenLock);

	LWLockAcquire(ProcArrayLock, LW_SHARED);
	for (int i = 0; i < procs; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		TransactionId xid = *(volatile TransactionId *) &proc->xid;

		if (!TransactionIdIsNormal(xid) || proc->databaseId != MyDatabaseId ||
			proc->pgxactoff < 0 || proc->pgxactoff >= procs ||
			((volatile TransactionId *) ProcGlobal->xids)[proc->pgxactoff] != xid)
			continue;
		if (TransactionIdPrecedes(xid, oldest))
			oldest = xid;
	}
	LWLockRelease(ProcArrayLock);
	return oldest;
}

static FullTransactionId
full_min(FullTransactionId a, FullTransactionId b)
{
	return FullTransactionIdPrecedes(a, b) ? a : b;
}

/*
 * Scan delta (its first column the writer, key_count keys after it) as
 * described above.  Runs in a transaction, as the view's owner (the
 * caller, when stream_pending_clear_due says so).
 */
void
stream_pending_clear_scan(Oid delta, int key_count)
{
	TransactionId oldest_running;
	uint64		epoch;
	FullTransactionId below;
	Snapshot	snapshot;
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	PendingKeyHash hash;
	MemoryContext row_cxt;
	MemoryContext old;
	ClearState *t;

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
	epoch = stream_pending_keys_epoch();
	pg_memory_barrier();
	oldest_running = oldest_running_here();
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
	stream_pending_keys_scan_cleared(delta, below, snapshot, epoch);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	MemoryContextDelete(row_cxt);

	t = table_state(delta);
	t->scanned = true;
	t->moved = false;
	t->scanned_epoch = epoch;
	t->last_scan_at = GetCurrentTimestamp();
	/* a candidate of an epoch gone is replaced (publish_work drops it) */
	if (t->waiting && t->epoch == epoch)
		return;
	t->waiting = true;
	t->epoch = epoch;
	t->below = below;
	t->after = ReadNextFullTransactionId();
	t->scanned_at = t->last_scan_at;
}

/* What stream_pending_clear_publish does in its transaction */
static void
publish_work(void *arg)
{
	bool	   *poll_fast = arg;
	TimestampTz fast_since = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), -PUBLISH_FAST_MS);
	ListCell   *lc;

	foreach(lc, tables)
	{
		ClearState *t = lfirst(lc);
		Relation	rel;
		TransactionId horizon;

		if (!t->waiting)
			continue;
		/* dropped by a restore's commit: the next scan makes another */
		if (t->epoch != stream_pending_keys_epoch())
		{
			t->waiting = false;
			continue;
		}
		/* a dropped view's table has nothing to publish, nor to scan */
		rel = try_table_open(t->delta, AccessShareLock);
		if (rel == NULL)
		{
			tables = foreach_delete_current(tables, lc);
			pfree(t);
			continue;
		}

		/*
		 * The horizon of the table's rows: this database's snapshots (only
		 * they can read it), not a logical slot's catalog_xmin or other
		 * databases' transactions.
		 */
		horizon = GetOldestNonRemovableTransactionId(rel);
		table_close(rel, AccessShareLock);
		if (!TransactionIdFollowsOrEquals(horizon, XidFromFullTransactionId(t->after)))
		{
			*poll_fast |= t->scanned_at > fast_since;
			continue;
		}
		stream_pending_keys_cleared(t->delta, t->below, t->epoch);
		t->waiting = false;
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
	ListCell   *lc;

	foreach(lc, tables)
		if (((ClearState *) lfirst(lc))->waiting)
		{
			(void) stream_job_in_transaction(publish_work, &poll_fast, cxt);
			break;
		}
	return poll_fast;
}
