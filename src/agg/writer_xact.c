/*
 * writer_xact.c
 *	  The writer transaction of delta rows: its status, and its text form.
 *
 * Every delta row (and every pending watermark) carries the 64-bit id of the
 * transaction that inserted its events, in a column of type
 * stream_ext_internal.writer_xact: an xid8 (binary coercible both ways)
 * whose text form is what the row means outside this cluster.
 *
 *	 event_xid8(xid)		 the full id of a recent event's xmin (workers)
 *	 xid_visible(xid8)		 committed, as the current snapshot sees it (reads)
 *	 xid_committed(xid8)	 committed / aborted, now (the combiner)
 *	 xid_aborted(xid8)
 *	 writer_xact_out		 "<id> visible" or "<id> invisible"
 *	 writer_xact_in
 *
 * A transaction id means nothing in another cluster, or in this one after a
 * restore.  So the text form of a writer carries, instead of a meaning, the
 * writer's visibility in the snapshot it is written out with: pg_dump copies
 * the delta tables in its one snapshot, and a restored delta row is exactly
 * what a read in that snapshot counted.  Read back, "visible" becomes
 * FrozenTransactionId (committed for every snapshot; the combiner merges
 * it) and "invisible" InvalidTransactionId (aborted; the combiner deletes
 * it).  Workers never go through the text form.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "fmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "agg/combine.h"

PG_FUNCTION_INFO_V1(stream_ext_xid_visible);
PG_FUNCTION_INFO_V1(stream_ext_xid_committed);
PG_FUNCTION_INFO_V1(stream_ext_xid_aborted);
PG_FUNCTION_INFO_V1(stream_ext_event_xid8);
PG_FUNCTION_INFO_V1(stream_ext_writer_xact_in);
PG_FUNCTION_INFO_V1(stream_ext_writer_xact_out);

/* The 64-bit id of a recent transaction id (one not older than 2^31 xids). */
FullTransactionId
stream_recent_full_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

/* event_xid8(xid): the full id of a recent transaction id. */
typedef struct EventXidCache
{
	TransactionId xid;
	FullTransactionId full;
} EventXidCache;

Datum
stream_ext_event_xid8(PG_FUNCTION_ARGS)
{
	TransactionId xid = DatumGetTransactionId(PG_GETARG_DATUM(0));
	EventXidCache *cache = (EventXidCache *) fcinfo->flinfo->fn_extra;

	/* Events come in runs of one transaction: spare XidGenLock. */
	if (cache != NULL && cache->xid == xid)
		PG_RETURN_FULLTRANSACTIONID(cache->full);
	if (cache == NULL)
	{
		cache = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(EventXidCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	cache->xid = xid;
	cache->full = stream_recent_full_xid(xid);
	PG_RETURN_FULLTRANSACTIONID(cache->full);
}

/*
 * Has writer's id been assigned?  A delta row's writer always has been, but
 * on a standby replay may not have reached it yet (the delta row is written
 * before the writer commits), and these functions take any xid8: an id not
 * assigned is neither committed nor aborted, and its status must not be
 * looked up (its commit log page may not exist).  Nor is one whose low 32
 * bits are a special id in an epoch after the first: no transaction gets
 * those.  The next id is read again only for a writer at or past the one
 * read last (it only grows).
 */
static bool
writer_assigned(FullTransactionId writer)
{
	static FullTransactionId assigned_below = {0};

	if (!TransactionIdIsNormal(XidFromFullTransactionId(writer)))
		return false;
	if (!FullTransactionIdPrecedes(writer, assigned_below))
	{
		assigned_below = ReadNextFullTransactionId();
		if (!FullTransactionIdPrecedes(writer, assigned_below))
			return false;
	}
	return true;
}

/* Is writer one of the special ids (of the first epoch): frozen, invalid? */
static bool
writer_special(FullTransactionId writer)
{
	return U64FromFullTransactionId(writer) < FirstNormalTransactionId;
}

/*
 * Did writer commit, as the current snapshot sees it?  A restored writer
 * (FrozenTransactionId) did; an invalid one did not.
 */
bool
stream_writer_visible(FullTransactionId writer)
{
	TransactionId xid = XidFromFullTransactionId(writer);
	Snapshot	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();

	if (U64FromFullTransactionId(writer) == FrozenTransactionId)
		return true;
	if (!TransactionIdIsNormal(xid) || TransactionIdIsCurrentTransactionId(xid))
		return false;
	if (XidInMVCCSnapshot(xid, snapshot) || !writer_assigned(writer))
		return false;
	return TransactionIdDidCommit(xid);
}

/*
 * xid_visible(xid8): did the transaction that inserted these events commit,
 * as seen by the current snapshot?  Readers use it on delta rows.
 */
Datum
stream_ext_xid_visible(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(stream_writer_visible(PG_GETARG_FULLTRANSACTIONID(0)));
}

/* Status of a writer transaction for the combiner; cached for repeated ids. */
typedef enum WriterStatus
{
	WRITER_IN_PROGRESS,
	WRITER_COMMITTED,
	WRITER_ABORTED
} WriterStatus;

typedef struct StatusCache
{
	FullTransactionId writer;
	WriterStatus status;
} StatusCache;

static WriterStatus
writer_status(FunctionCallInfo fcinfo)
{
	FullTransactionId writer = PG_GETARG_FULLTRANSACTIONID(0);
	TransactionId xid = XidFromFullTransactionId(writer);
	StatusCache *cache = (StatusCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(StatusCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	else if (FullTransactionIdEquals(cache->writer, writer) && TransactionIdIsValid(xid))
		return cache->status;

	/*
	 * In-progress first: clog says committed before the procarray forgets.
	 * (Clog answers for the special ids too: frozen committed, invalid
	 * aborted.)
	 */
	if (!writer_special(writer) && !writer_assigned(writer))
		cache->status = WRITER_IN_PROGRESS;
	else if (TransactionIdIsInProgress(xid))
		cache->status = WRITER_IN_PROGRESS;
	else if (TransactionIdDidCommit(xid))
		cache->status = WRITER_COMMITTED;
	else
		cache->status = WRITER_ABORTED;
	cache->writer = writer;
	return cache->status;
}

Datum
stream_ext_xid_committed(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(writer_status(fcinfo) == WRITER_COMMITTED);
}

Datum
stream_ext_xid_aborted(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(writer_status(fcinfo) == WRITER_ABORTED);
}

/* writer_xact_out: "<id> visible" or "<id> invisible", in the current snapshot */
Datum
stream_ext_writer_xact_out(PG_FUNCTION_ARGS)
{
	FullTransactionId writer = PG_GETARG_FULLTRANSACTIONID(0);

	PG_RETURN_CSTRING(psprintf(UINT64_FORMAT " %s", U64FromFullTransactionId(writer),
							   stream_writer_visible(writer) ? "visible" : "invisible"));
}

/*
 * writer_xact_in: a writer written out by writer_xact_out, perhaps in
 * another cluster: visible ones are committed here, the rest aborted.
 */
Datum
stream_ext_writer_xact_in(PG_FUNCTION_ARGS)
{
	char	   *text = PG_GETARG_CSTRING(0);
	char	   *end;
	const char *word;

	errno = 0;
	(void) strtou64(text, &end, 10);
	word = end;
	while (*word == ' ')
		word++;
	if (errno != 0 || end == text || word == end ||
		(strcmp(word, "visible") != 0 && strcmp(word, "invisible") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"", "writer_xact", text),
				 errdetail("A writer is written as a transaction id followed by \"visible\" or \"invisible\".")));
	PG_RETURN_FULLTRANSACTIONID(FullTransactionIdFromEpochAndXid(0, strcmp(word, "visible") == 0
																 ? FrozenTransactionId
																 : InvalidTransactionId));
}
