/*
 * delta_shrink.c
 *	  Give back the empty end of a view's delta table.
 *
 * A delta table is a queue: workers insert deltas, merges delete them, and
 * the combiner's vacuum (combiner.c, every 2 s) makes their space free for
 * the next ones.  After a burst (a COPY of millions of events) the table is
 * left hundreds of megabytes long and nearly empty, and stays so: every read
 * of the view looks for unmerged deltas and scans those empty pages, several
 * times per read (reads of a view of 1,000,000 groups took twice as long as
 * with the table cut back).
 *
 * VACUUM's own truncation is off for delta tables (vacuum_truncate = false,
 * window/state_tables.c): it retries its ACCESS EXCLUSIVE lock for up to 5 s,
 * and under readers the combiner would merge nothing meanwhile.  After
 * vacuuming a delta table the combiner calls delta_table_shrink instead:
 * it finds the table's last page in use without the lock and, if the empty
 * end is worth it, tries the lock once, without waiting; holding it, it
 * checks the end again (deltas may have gone there) and truncates.  While it
 * holds the lock (a few milliseconds: the end's pages are in shared buffers,
 * just read) readers wait, and a worker that comes holds that view's events
 * of that batch back (held_back.c); failing to get it costs nothing, the
 * next vacuum tries again.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/storage.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/rel.h"

#include "worker/delta_shrink.h"

/*
 * An empty end is cut when it has at least this many pages (1 MB) and at
 * least 1000 pages or a sixteenth of the table, as VACUUM's rule is.
 */
#define SHRINK_MIN_PAGES 128
#define SHRINK_ANY_PAGES 1000
#define SHRINK_FRACTION 16

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
 * The number of pages to keep: one past the last page in use among pages
 * from..nblocks-1, read backwards; from if none is.
 */
static BlockNumber
pages_to_keep(Relation rel, BlockNumber from, BlockNumber nblocks,
			  BufferAccessStrategy strategy)
{
	BlockNumber blkno = nblocks;

	while (blkno > from)
	{
		Buffer		buf;
		bool		used;

		CHECK_FOR_INTERRUPTS();
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
 * Truncate the empty end of delta table relid if it is worth it and the
 * table's ACCESS EXCLUSIVE lock is free at once; the lock is kept to the
 * end of the transaction (the caller's, which commits right after).
 * Returns the number of pages cut.
 */
BlockNumber
delta_table_shrink(Oid relid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	BufferAccessStrategy strategy;
	BlockNumber nblocks,
				keep,
				cut = 0;

	if (rel == NULL)
		return 0;
	nblocks = RelationGetNumberOfBlocks(rel);
	if (nblocks < SHRINK_MIN_PAGES)
	{
		relation_close(rel, AccessShareLock);
		return 0;
	}
	strategy = GetAccessStrategy(BAS_BULKREAD);
	keep = pages_to_keep(rel, 0, nblocks, strategy);
	if (worth_cutting(nblocks, keep) && ConditionalLockRelation(rel, AccessExclusiveLock))
	{
		/* pages from keep on may have been used, or added, since */
		nblocks = RelationGetNumberOfBlocks(rel);
		keep = pages_to_keep(rel, keep, nblocks, strategy);
		if (worth_cutting(nblocks, keep))
		{
			RelationTruncate(rel, keep);
			cut = nblocks - keep;
		}
	}
	FreeAccessStrategy(strategy);
	relation_close(rel, NoLock);
	return cut;
}
