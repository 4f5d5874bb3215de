/*
 * delta_shrink.c
 *	  Give back the empty end of a view's delta table.
 *
 * A delta table is a queue: workers insert deltas, merges delete them, and
 * the combiner's vacuum (combiner.c: after merges, at most every 2 s) makes
 * their space free for the next ones.  After a burst (a COPY of millions of
 * events) the table is left hundreds of megabytes long and nearly empty,
 * and stays so: every read of the view looks for unmerged deltas and scans
 * those empty pages, several times per read (reads of a view of 1,000,000
 * groups took three times as long as with the table cut back), and so does
 * every merge.
 *
 * VACUUM's own truncation is off for delta tables (vacuum_truncate = false,
 * window/state_tables.c): it retries its ACCESS EXCLUSIVE lock for up to
 * 5 s, and under readers the combiner would merge nothing meanwhile.  The
 * combiner calls stream_delta_table_shrink instead, which never waits for a
 * lock: holding the table in SHARE UPDATE EXCLUSIVE mode (taken only if
 * free: not while a vacuum or a DDL statement has it), it finds the last
 * page in use; if the empty end is worth it, it tries the ACCESS EXCLUSIVE
 * lock once, reads the end again under it (deltas may have gone there),
 * backwards, and truncates what it found empty.  As VACUUM does, it stops
 * reading, cuts what it verified and lets go as soon as another backend
 * waits for the lock (a reader of the view; a worker does not wait: it
 * holds that view's events of its batch back, held_back.c).  When the lock
 * was not free, or it stopped early, the caller tries again later.
 *
 * Not done while old_snapshot_threshold is on (as VACUUM does not
 * truncate then: a scan could not tell that a cut page's rows were gone).
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/storage.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "worker/delta_shrink.h"

/*
 * An empty end is cut when it has at least SHRINK_MIN_PAGES (1 MB: less is
 * not worth an exclusive lock) and half the table or SHRINK_ANY_PAGES (64
 * MB).  Under steady ingestion a delta table's end comes and goes by a few
 * hundred pages between vacuums; VACUUM's rule (1000 pages or a sixteenth)
 * cut such ends every few seconds, each cut an exclusive lock that holds
 * the view's events back, for nothing.  What a burst leaves is most of the
 * table.
 */
#define SHRINK_MIN_PAGES 128
#define SHRINK_ANY_PAGES 8192
#define SHRINK_FRACTION 2

/* Under the lock, look for waiters this often (ms), as VACUUM does */
#define SHRINK_WAITERS_CHECK_MS 20

/* Pages read ahead (backwards) */
#define SHRINK_PREFETCH_PAGES 32

static bool
worth_cutting(BlockNumber nblocks, BlockNumber keep)
{
	BlockNumber empty = nblocks - keep;

	return empty >= SHRINK_MIN_PAGES &&
		(empty >= SHRINK_ANY_PAGES || empty >= nblocks / SHRINK_FRACTION);
}

/* Has the page a line pointer in use (a tuple, dead or alive, or a redirect)? */
static bool
page_in_use(Page page)
{
	OffsetNumber off,
				maxoff;

	if (PageIsNew(page) || PageIsEmpty(page))
		return false;
	maxoff = PageGetMaxOffsetNumber(page);
	for (off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
	{
		if (ItemIdIsUsed(PageGetItemId(page, off)))
			return true;
	}
	return false;
}

/*
 * Read pages nblocks-1 down to from, and return one past the last page in
 * use (from if none is): pages from there to nblocks are empty.  With
 * lock_held (our ACCESS EXCLUSIVE lock), stop as soon as another backend
 * waits for it, returning the lowest page read so far (*stopped set).
 */
static BlockNumber
empty_from(Relation rel, BlockNumber from, BlockNumber nblocks,
		   BufferAccessStrategy strategy, bool lock_held, bool *stopped)
{
	BlockNumber blkno = nblocks;
	BlockNumber prefetched = nblocks;
	instr_time	checked;

	INSTR_TIME_SET_CURRENT(checked);
	while (blkno > from)
	{
		Buffer		buf;
		bool		used;

		CHECK_FOR_INTERRUPTS();
		if (lock_held && blkno % SHRINK_PREFETCH_PAGES == 0)
		{
			instr_time	now;

			INSTR_TIME_SET_CURRENT(now);
			INSTR_TIME_SUBTRACT(now, checked);
			if (INSTR_TIME_GET_MILLISEC(now) >= SHRINK_WAITERS_CHECK_MS)
			{
				if (LockHasWaitersRelation(rel, AccessExclusiveLock))
				{
					*stopped = true;
					return blkno;
				}
				INSTR_TIME_SET_CURRENT(checked);
			}
		}
		if (prefetched >= blkno)
		{
			BlockNumber first = blkno - Min(blkno - from, SHRINK_PREFETCH_PAGES);

			for (BlockNumber b = first; b < blkno; b++)
				PrefetchBuffer(rel, MAIN_FORKNUM, b);
			prefetched = first;
		}
		blkno--;
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		used = page_in_use(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		if (used)
			return blkno + 1;
	}
	return from;
}

/*
 * Truncate the empty end of delta table relid if it is worth it, without
 * waiting for a lock (the caller is in a transaction that holds no other
 * lock of it).  Returns the number of pages cut; *again is set when an end
 * worth cutting is left (a lock was not free, or a reader came meanwhile).
 */
BlockNumber
stream_delta_table_shrink(Oid relid, bool *again)
{
	Relation	rel;
	BufferAccessStrategy strategy;
	BlockNumber nblocks,
				keep,
				cut = 0;
	bool		stopped = false;

	*again = false;
	if (old_snapshot_threshold >= 0)
		return 0;
	if (!ConditionalLockRelationOid(relid, ShareUpdateExclusiveLock))
	{
		*again = true;
		return 0;
	}
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
	{
		UnlockRelationOid(relid, ShareUpdateExclusiveLock);
		return 0;
	}
	nblocks = RelationGetNumberOfBlocks(rel);
	strategy = GetAccessStrategy(BAS_BULKREAD);
	keep = nblocks < SHRINK_MIN_PAGES ? nblocks :
		empty_from(rel, 0, nblocks, strategy, false, &stopped);
	if (worth_cutting(nblocks, keep))
	{
		if (ConditionalLockRelation(rel, AccessExclusiveLock))
		{
			/* pages from keep on may have been used, or added, since */
			nblocks = RelationGetNumberOfBlocks(rel);
			keep = empty_from(rel, keep, nblocks, strategy, true, &stopped);
			if (worth_cutting(nblocks, keep))
			{
				RelationTruncate(rel, keep);
				cut = nblocks - keep;
			}
			/* as VACUUM does: readers need not wait for our commit */
			UnlockRelation(rel, AccessExclusiveLock);
			*again = stopped;
		}
		else
			*again = true;
	}
	FreeAccessStrategy(strategy);
	relation_close(rel, NoLock);
	UnlockRelationOid(relid, ShareUpdateExclusiveLock);
	return cut;
}
