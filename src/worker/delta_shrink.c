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
 * free: not while a vacuum or a DDL statement has it), it reads the end
 * backwards to the last page in use; if the empty end is worth it, it tries
 * the ACCESS EXCLUSIVE lock once, reads the end again under it (deltas may
 * have gone there) and truncates what it found empty.  As VACUUM does, it
 * stops reading as soon as another backend waits for its lock (a reader of
 * the view, a DROP, a worker: held_back.c waits for this lock rather than
 * hold the view's events back), and under the exclusive lock also after
 * SHRINK_LOCKED_MS, and then cuts what it verified.  The caller tries again
 * later (combiner.c, backing off) when a lock was not free, it stopped
 * early, or the end holds only merged deltas a vacuum could not remove yet
 * (a snapshot older than the merge was open).
 *
 * Not done while old_snapshot_threshold is on (as VACUUM does not
 * truncate then: a scan could not tell that a cut page's rows were gone).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/storage.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog/catalog.h"
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

/* Look for waiters this often (ms) while reading, as VACUUM does */
#define SHRINK_WAITERS_CHECK_MS 20

/* Read no longer than this (ms) holding the exclusive lock; cut what was read */
#define SHRINK_LOCKED_MS 200

/* Pages read ahead (backwards) */
#define SHRINK_PREFETCH_PAGES 32

static bool
worth_cutting(BlockNumber nblocks, BlockNumber keep)
{
	BlockNumber empty = nblocks - keep;

	return empty >= SHRINK_MIN_PAGES &&
		(empty >= SHRINK_ANY_PAGES || empty >= nblocks / SHRINK_FRACTION);
}

typedef enum PageUse
{
	PAGE_EMPTY,					/* no line pointer in use */
	PAGE_DELETED,				/* only tuples some transaction deleted */
	PAGE_LIVE
} PageUse;

/*
 * How a page is used: a page with any line pointer in use (a tuple, dead or
 * alive, or a redirect) is not empty; of those, one whose tuples all have a
 * deleter (merged deltas a vacuum could not remove yet: a snapshot older
 * than the merge was open) may be once vacuumed.
 */
static PageUse
page_use(Page page)
{
	OffsetNumber off,
				maxoff;
	PageUse		use = PAGE_EMPTY;

	if (PageIsNew(page) || PageIsEmpty(page))
		return PAGE_EMPTY;
	maxoff = PageGetMaxOffsetNumber(page);
	for (off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
	{
		ItemId		item = PageGetItemId(page, off);
		HeapTupleHeader tuple;

		if (!ItemIdIsUsed(item))
			continue;
		if (!ItemIdIsNormal(item))
			return PAGE_LIVE;
		tuple = (HeapTupleHeader) PageGetItem(page, item);
		if ((tuple->t_infomask & HEAP_XMAX_INVALID) ||
			HEAP_XMAX_IS_LOCKED_ONLY(tuple->t_infomask) ||
			!TransactionIdIsValid(HeapTupleHeaderGetRawXmax(tuple)))
			return PAGE_LIVE;
		use = PAGE_DELETED;
	}
	return use;
}

/* What a backward read of a table's end found */
typedef struct EndRead
{
	BlockNumber empty_from;		/* pages from here on are empty */
	BlockNumber vacuumed_from;	/* and would be once vacuumed */
	bool		stopped;		/* someone waited for our lock, or time ran out */
} EndRead;

/*
 * Read pages nblocks-1 down to from, backwards, until a live page.  held:
 * the lock of ours that others may wait for; as long as one does, or (under
 * the exclusive lock) after SHRINK_LOCKED_MS, stop: what was read so far
 * counts.
 */
static EndRead
read_end(Relation rel, BlockNumber from, BlockNumber nblocks,
		 BufferAccessStrategy strategy, LOCKMODE held)
{
	EndRead		end = {nblocks, nblocks, false};
	BlockNumber blkno = nblocks;
	BlockNumber prefetched = nblocks;
	instr_time	started,
				checked;

	INSTR_TIME_SET_CURRENT(started);
	checked = started;
	while (blkno > from)
	{
		Buffer		buf;
		PageUse		use;

		CHECK_FOR_INTERRUPTS();
		if (blkno % SHRINK_PREFETCH_PAGES == 0)
		{
			instr_time	now,
						since;

			INSTR_TIME_SET_CURRENT(now);
			since = now;
			INSTR_TIME_SUBTRACT(since, checked);
			if (INSTR_TIME_GET_MILLISEC(since) >= SHRINK_WAITERS_CHECK_MS)
			{
				since = now;
				INSTR_TIME_SUBTRACT(since, started);
				if (LockHasWaitersRelation(rel, held) ||
					(held == AccessExclusiveLock &&
					 INSTR_TIME_GET_MILLISEC(since) >= SHRINK_LOCKED_MS))
				{
					end.stopped = true;
					return end;
				}
				checked = now;
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
		use = page_use(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		if (use == PAGE_LIVE)
			return end;
		if (use == PAGE_EMPTY && end.empty_from == blkno + 1)
			end.empty_from = blkno;
		end.vacuumed_from = blkno;
	}
	return end;
}

/*
 * Cut the empty end of rel (held SHARE UPDATE EXCLUSIVE, at least
 * SHRINK_MIN_PAGES long) if it is worth it; see stream_delta_table_shrink.
 */
static BlockNumber
cut_end(Relation rel, bool *again)
{
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
	BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
	BlockNumber cut = 0;
	EndRead		end = read_end(rel, 0, nblocks, strategy, ShareUpdateExclusiveLock);

	if (end.stopped)
		*again = true;
	else if (!worth_cutting(nblocks, end.empty_from))
		*again = worth_cutting(nblocks, end.vacuumed_from);
	else if (!ConditionalLockRelation(rel, AccessExclusiveLock))
		*again = true;
	else
	{
		/* pages from empty_from on may have been used, or added, since */
		BlockNumber from = end.empty_from;

		nblocks = RelationGetNumberOfBlocks(rel);
		end = read_end(rel, from, nblocks, strategy, AccessExclusiveLock);
		/* stopped: what was read is empty, as VACUUM cuts what it verified */
		if (end.stopped ? nblocks - end.empty_from >= SHRINK_MIN_PAGES :
			worth_cutting(nblocks, end.empty_from))
		{
			RelationTruncate(rel, end.empty_from);
			cut = nblocks - end.empty_from;
		}
		/* as VACUUM does: readers need not wait for our commit */
		UnlockRelation(rel, AccessExclusiveLock);
		*again = end.stopped;
	}
	FreeAccessStrategy(strategy);
	return cut;
}

/*
 * Truncate the empty end of delta table relid if it is worth it, without
 * waiting for a lock (the caller is in a transaction that holds no other
 * lock of it).  Returns the number of pages cut; *again is set when an end
 * worth cutting is left: a lock was not free, someone came for it, or the
 * end's deltas are merged but not yet vacuumed away.
 */
BlockNumber
stream_delta_table_shrink(Oid relid, bool *again)
{
	Relation	rel;
	BlockNumber cut = 0;

	*again = false;
	if (old_snapshot_threshold >= 0)
		return 0;
	if (!stream_lock_if_free(relid, ShareUpdateExclusiveLock))
	{
		/* (or dropped meanwhile: the caller then finds no table to try again) */
		*again = true;
		return 0;
	}
	rel = relation_open(relid, NoLock);
	if (RelationGetNumberOfBlocks(rel) >= SHRINK_MIN_PAGES)
		cut = cut_end(rel, again);
	relation_close(rel, NoLock);
	UnlockRelationOid(relid, ShareUpdateExclusiveLock);
	return cut;
}
