/*
 * outbox_settle.c
 *	  Settling the writers of the outbox rows that batch workers staged.
 *
 * A batch worker's outbox row carries the transaction whose events it holds
 * (writer_xid, README "Producers"): the producer takes it once that
 * transaction committed.  A job of every database's combiner (jobs/jobs.c),
 * about every second, settles the rows whose writer ended: clears the tag
 * of those whose writer committed (they are then rows like any other), and
 * deletes those whose writer aborted (rolled back, to a savepoint too, or
 * cut by a crash), unsent.  So whether or not a producer runs, no row keeps
 * a transaction id past its end for long: the status of one old enough
 * would no longer be known (the commit log is truncated behind the oldest
 * unfrozen row, and an id kept in a column does not hold it back).  Rows a
 * producer has locked (it is deleting them) are left for the next round,
 * and so is the whole round when the outbox is locked (VACUUM FULL, an
 * index built): the combiner waits for no one.  With wal_level = logical,
 * clearing a tag logs the row's old image (the outbox's replica identity is
 * FULL), about the size of its messages.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "jobs/jobs.h"
#include "kafka/outbox_settle.h"

#define SETTLE_INTERVAL_MS 1000

/* After an error, the next round waits this long (each is logged) */
#define SETTLE_RETRY_MS 60000

static TimestampTz next_round = 0;

#define OUTBOX STREAM_INTERNAL_SCHEMA ".kafka_outbox"

static void
settle_rows(void *arg)
{
	Oid			outbox = stream_internal_relid("kafka_outbox", true);
	uint64		deleted;
	uint64		settled;

	if (!OidIsValid(outbox) || !stream_lock_if_free(outbox, RowExclusiveLock))
		return;					/* being dropped, or locked: next round */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	stream_settle_writer_rows(OUTBOX, "writer_xid IS NOT NULL", "NULL", NULL, &deleted, &settled);
	SPI_finish();
}

static bool
settle_job(MemoryContext cxt)
{
	stream_job_every(&next_round, SETTLE_INTERVAL_MS, SETTLE_RETRY_MS, settle_rows, cxt);
	return false;
}

/* Give the combiner of every database the settling job; from _PG_init. */
void
kafka_outbox_settle_init(void)
{
	stream_job_register("Kafka outbox settlement", settle_job);
}
