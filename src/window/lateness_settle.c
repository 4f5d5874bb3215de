/*
 * lateness_settle.c
 *	  Settling the writers that pending watermarks and kept late events
 *	  carry.
 *
 * A view's batches note each writer's highest event time and late events
 * in watermark_pending, and keep its late events in late_events with their
 * writer (lateness.c); the view's next batch after the writer ended folds
 * the pending row into the view's watermark, and deletes the late events
 * of a writer that aborted.  A view whose stream goes quiet has no next
 * batch, and a kept late event keeps its writer's id after the fold: rows
 * that hold a transaction id for as long as they last.  Once VACUUM has
 * frozen every table past a writer, PostgreSQL truncates the commit log
 * holding its status, and every read of view_stats, view_watermark and
 * late_events would fail on such a row.  So a job of each database's
 * combiner, every SETTLE_INTERVAL_MS, settles the rows of the writers that
 * every snapshot sees as ended (older than the oldest snapshot's horizon):
 * a late event of a committed writer is shown to everyone (writer NULL),
 * one of an aborted writer deleted; pending rows are folded into their
 * view's watermark as the view's next batch would, unless a worker has the
 * watermark row locked (it folds them itself then).  No snapshot sees a
 * difference.  Rows others have locked are left for the next round: the
 * combiner waits for no one.  The job also deletes the queued writers
 * (lateness.c) that aborted, or whose rings a crash lost: their pending
 * rows are folded (or dropped) then.
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/procarray.h"
#include "utils/xid8.h"

#include "agg/combine.h"
#include "catalog/catalog.h"
#include "ipc/queue.h"
#include "jobs/jobs.h"
#include "window/lateness.h"

#define SETTLE_INTERVAL_MS 10000

/* After an error, the next round waits this long (each is logged) */
#define SETTLE_RETRY_MS 60000

#define LATE_EVENTS STREAM_INTERNAL_SCHEMA ".late_events"

/*
 * Fold the pending rows of ended writers older than $1 into their views'
 * watermarks, as lateness.c's fold does, for the views whose watermark row
 * no one has locked.
 */
#define FOLD_SETTLED_SQL \
	"WITH free AS (SELECT view_id FROM " STREAM_INTERNAL_SCHEMA ".view_watermarks " \
	"WHERE view_id IN (SELECT view_id FROM " STREAM_INTERNAL_SCHEMA ".watermark_pending " \
	"WHERE writer_xid < $1) FOR UPDATE SKIP LOCKED), " \
	"done AS (DELETE FROM " STREAM_INTERNAL_SCHEMA ".watermark_pending p USING free f " \
	"WHERE p.view_id = f.view_id AND p.writer_xid < $1 " \
	"AND (" STREAM_INTERNAL_SCHEMA ".xid_aborted(p.writer_xid) " \
	"OR " STREAM_INTERNAL_SCHEMA ".xid_committed(p.writer_xid) AND " STREAM_FOLDABLE("p") ") " \
	"RETURNING p.view_id, p.writer_xid, p.max_event_time, p.late_events, " \
	STREAM_INTERNAL_SCHEMA ".xid_committed(p.writer_xid) AS committed), " \
	"forgotten AS (DELETE FROM " LATE_EVENTS " l USING done d " \
	"WHERE l.view_id = d.view_id AND NOT d.committed AND l.writer_xid = d.writer_xid) " \
	"UPDATE " STREAM_INTERNAL_SCHEMA ".view_watermarks w " \
	"SET max_event_time = greatest(w.max_event_time, d.max_time), late_events = w.late_events + d.late " \
	"FROM (SELECT view_id, max(max_event_time) FILTER (WHERE committed) AS max_time, " \
	"coalesce(sum(late_events) FILTER (WHERE committed), 0)::int8 AS late " \
	"FROM done GROUP BY view_id) d WHERE w.view_id = d.view_id"

/* Delete the queued writers that aborted, or whose rings ($1) are gone */
#define FORGET_QUEUED_SQL \
	"DELETE FROM " STREAM_INTERNAL_SCHEMA ".queued_writers WHERE ctid = ANY (ARRAY(" \
	"SELECT ctid FROM " STREAM_INTERNAL_SCHEMA ".queued_writers " \
	"WHERE rings <> $1 OR " STREAM_INTERNAL_SCHEMA ".xid_aborted(writer) " \
	"FOR UPDATE SKIP LOCKED))"

static void
settle_rows(void *arg)
{
	Oid			pending = stream_internal_relid("watermark_pending", true);
	Oid			late = stream_internal_relid("late_events", true);
	Datum		horizon[1];
	uint64		deleted;
	uint64		settled;

	if (!OidIsValid(pending) || !OidIsValid(late) ||
		!stream_lock_if_free(pending, RowExclusiveLock) ||
		!stream_lock_if_free(late, RowExclusiveLock))
		return;					/* being dropped, or locked: next round */
	/* ended for every snapshot of every database: the shared horizon */
	horizon[0] = FullTransactionIdGetDatum(
		stream_recent_full_xid(GetOldestNonRemovableTransactionId(NULL)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(FORGET_QUEUED_SQL, 1, (Oid[]) {TIMESTAMPTZOID},
							  (Datum[]) {TimestampTzGetDatum(stream_rings_made())}, NULL, false, 0) !=
		SPI_OK_DELETE)
		elog(ERROR, "could not forget the queued writers that ended");
	if (SPI_execute_with_args(FOLD_SETTLED_SQL, 1, (Oid[]) {XID8OID}, horizon, NULL, false, 0) !=
		SPI_OK_UPDATE)
		elog(ERROR, "could not fold the pending watermarks of ended writers");
	stream_settle_writer_rows(LATE_EVENTS, "writer_xid < $1", "NULL", horizon, &deleted, &settled);
	SPI_finish();
}

static bool
settle_job(MemoryContext cxt)
{
	static TimestampTz next_round = 0;

	stream_job_every(&next_round, SETTLE_INTERVAL_MS, SETTLE_RETRY_MS, settle_rows, cxt);
	return false;
}

/* Give the combiner of every database the settling job; from _PG_init. */
void
stream_lateness_settle_init(void)
{
	stream_job_register("settlement of pending watermarks and late events", settle_job);
}
