/*
 * supervisor.c
 *	  Keeps the Kafka consumer and producer workers of a database running,
 *	  as a job of its combiner (jobs/jobs.c): about every 200 ms it reads
 *	  stream_ext_internal.kafka_consumers and kafka_producers and (re)starts
 *	  the workers of every enabled consumer and producer that are not running, after a backoff when they exited with an error (1 s doubling
 *	  to 64 s), and stops workers whose consumer was disabled or dropped.
 *
 * Because the catalog drives it, consumers start again by themselves after
 * a server restart (the combiner starts with the database's workers) or a
 * worker crash.  A worker being stopped by a transaction in progress
 * (kafka_stop, kafka_reset, kafka_consume of an existing consumer: stop_xid)
 * is left alone until that transaction ends; then the catalog decides.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ipc/queue.h"
#include "jobs/jobs.h"
#include "kafka/consumer.h"
#include "kafka/process.h"
#include "kafka/slots.h"
#include "kafka/supervisor.h"

#define SUPERVISE_INTERVAL_MS 200

/* A worker that has not attached this long after registration is gone */
#define START_TIMEOUT_MS 30000

/*
 * Another database's slot whose worker has been gone this long, with no
 * combiner of that database running, is taken when no slot is free: longer
 * than a combiner's restart or a database's processes stopped for a copy or
 * a rename take.
 */
#define ORPHANED_AFTER_MS 60000

typedef struct WantedConsumer
{
	bool		producer;		/* a producer (one worker), else a consumer */
	int			id;
	int			parallelism;
} WantedConsumer;

static TimestampTz last_round = 0;
static uint64 last_kicks = 0;
static int	last_no_room = 0;	/* workers not started for want of a slot */
static BackgroundWorkerHandle **handles = NULL; /* per slot, registered by us */

/*
 * Stop the consumers and producers enabled in another database: this one is
 * a copy of it (CREATE DATABASE ... TEMPLATE), which must not read or write
 * the source's topics until someone starts them here.  Once per process
 * (copies_stopped, once it committed): rows are enabled in this database
 * from then on (the install script's note_database trigger), and
 * read_wanted takes only those.  SPI connected.
 */
static bool copies_stopped = false;

static void
stop_copied(Oid dboid)
{
	const char *tables[2] = {"kafka_consumers", "kafka_producers"};

	for (int t = 0; t < 2; t++)
	{
		if (SPI_execute(psprintf("UPDATE stream_ext_internal.%s SET enabled = false "
								 "WHERE enabled AND enabled_in IS DISTINCT FROM %u "
								 "RETURNING id, topic", tables[t], dboid),
						false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not stop the Kafka workers of another database");
		for (uint64 i = 0; i < SPI_processed; i++)
			ereport(LOG,
					(errmsg("stream_ext stopped Kafka %s %s of topic \"%s\": it was started in another database",
							t == 0 ? "consumer" : "producer",
							SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
							SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)),
					 errdetail("This database is a copy of it; start it here with stream_ext.kafka_start or kafka_start_producer.")));
	}
}

/* Enabled consumers and producers of this database: palloc'd array, count in *n. */
static WantedConsumer *
read_wanted(int *n)
{
	WantedConsumer *wanted = NULL;

	*n = 0;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!copies_stopped)
		stop_copied(MyDatabaseId);
	if (SPI_execute(psprintf("SELECT false, id, parallelism FROM stream_ext_internal.kafka_consumers "
							 "WHERE enabled AND enabled_in = %u "
							 "UNION ALL SELECT true, id, 1 FROM stream_ext_internal.kafka_producers "
							 "WHERE enabled AND enabled_in = %u", MyDatabaseId, MyDatabaseId),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the Kafka consumers");
	if (SPI_processed > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		wanted = palloc(sizeof(WantedConsumer) * SPI_processed);
		MemoryContextSwitchTo(old);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			wanted[i].producer = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));
			wanted[i].id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc, 2, &isnull));
			wanted[i].parallelism = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc, 3, &isnull));
		}
		*n = (int) SPI_processed;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	copies_stopped = true;
	return wanted;
}

static bool
is_wanted(KafkaSlot *slot, WantedConsumer *wanted, int n)
{
	for (int i = 0; i < n; i++)
		if (wanted[i].id == slot->consumer_id && wanted[i].producer == slot->producer)
			return slot->index < wanted[i].parallelism;
	return false;
}

static bool
being_stopped(KafkaSlot *slot)
{
	return TransactionIdIsValid(slot->stop_xid) && TransactionIdIsInProgress(slot->stop_xid);
}

static void
clear_slot(KafkaSlot *slot)
{
	slot->consumer_id = 0;
	slot->producer = false;
	slot->stream = InvalidOid;
	slot->dboid = InvalidOid;
	slot->index = 0;
	slot->pid = 0;
	slot->starting = false;
	slot->stop_xid = InvalidTransactionId;
	slot->failures = 0;
	slot->retry_at = 0;
	memset(&slot->transient, 0, sizeof(slot->transient));
	memset(&slot->paused, 0, sizeof(slot->paused));
	slot->exited_at = 0;
	SpinLockAcquire(&slot->mutex);
	slot->state[0] = '\0';
	slot->npartitions = 0;
	slot->messages = 0;
	slot->lag = 0;
	slot->lag_known = false;
	stream_rate_init(&slot->rate, 1);
	slot->last_error[0] = '\0';
	slot->last_error_at = 0;
	SpinLockRelease(&slot->mutex);
}

static bool
register_worker(int slotno, KafkaSlot *slot)
{
	BackgroundWorker worker;
	KafkaWorkerArgs args;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "stream_ext");
	if (slot->producer)
	{
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "stream_ext_kafka_producer_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "stream_ext kafka producer %d for database %u",
				 slot->consumer_id, slot->dboid);
		snprintf(worker.bgw_type, BGW_MAXLEN, "stream_ext kafka producer");
	}
	else
	{
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "stream_ext_kafka_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "stream_ext kafka consumer %d/%d for database %u",
				 slot->consumer_id, slot->index, slot->dboid);
		snprintf(worker.bgw_type, BGW_MAXLEN, "stream_ext kafka consumer");
	}
	worker.bgw_main_arg = Int32GetDatum(slotno);
	memset(&args, 0, sizeof(args));
	args.dboid = slot->dboid;
	args.producer = slot->producer;
	args.consumer_id = slot->consumer_id;
	args.index = slot->index;
	memcpy(worker.bgw_extra, &args, sizeof(args));
	if (handles[slotno] != NULL)
	{
		pfree(handles[slotno]);
		handles[slotno] = NULL;
	}
	return RegisterDynamicBackgroundWorker(&worker, &handles[slotno]);
}

/*
 * Per slot: is it another database's, its process gone, and nobody to look
 * after it?  That is when its database has no place among the served ones
 * (dropped, its extension dropped, or past stream_ext.max_databases), or
 * when no combiner of it has run for ORPHANED_AFTER_MS since the worker
 * left.  Such a slot is taken when no slot is free.
 */
static bool *
orphaned_slots(void)
{
	bool	   *orphaned = palloc0(sizeof(bool) * KafkaShared->nslots);
	Oid		   *dboids = palloc0(sizeof(Oid) * KafkaShared->nslots);
	bool	   *gone_long = palloc0(sizeof(bool) * KafkaShared->nslots);
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(KafkaShared->lock, LW_SHARED);
	for (int s = 0; s < KafkaShared->nslots; s++)
	{
		KafkaSlot  *slot = &KafkaShared->slots[s];

		if (slot->consumer_id == 0 || slot->dboid == MyDatabaseId || slot->pid != 0 ||
			slot->starting)
			continue;
		dboids[s] = slot->dboid;
		gone_long[s] = TimestampDifferenceExceeds(Max(slot->exited_at, slot->registered_at),
												  now, ORPHANED_AFTER_MS);
	}
	LWLockRelease(KafkaShared->lock);
	for (int s = 0; s < KafkaShared->nslots; s++)
		orphaned[s] = OidIsValid(dboids[s]) &&
			(stream_group_of_database(dboids[s]) < 0 ||
			 (gone_long[s] && !stream_database_combiner_running(dboids[s])));
	pfree(dboids);
	pfree(gone_long);
	return orphaned;
}

/* One round; caller is outside a transaction. */
static void
supervise_round(void)
{
	int			n;
	WantedConsumer *wanted = read_wanted(&n);
	bool	   *orphaned = orphaned_slots();
	TimestampTz now = GetCurrentTimestamp();
	List	   *to_signal = NIL;
	ListCell   *lc;
	int			no_room = 0;

	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);

	/* Our slots: notice workers that never attached, stop unwanted ones */
	for (int s = 0; s < KafkaShared->nslots; s++)
	{
		KafkaSlot  *slot = &KafkaShared->slots[s];

		if (slot->consumer_id == 0 || slot->dboid != MyDatabaseId)
			continue;
		if (slot->starting && slot->pid == 0)
		{
			pid_t		pid;
			bool		gone;

			if (handles[s] != NULL)
				gone = GetBackgroundWorkerPid(handles[s], &pid) == BGWH_STOPPED;
			else
				gone = TimestampDifferenceExceeds(slot->registered_at, now, START_TIMEOUT_MS);
			if (gone)
			{
				slot->starting = false;
				slot->failures++;
				slot->retry_at = TimestampTzPlusMilliseconds(now, 1000 << Min(slot->failures - 1, 6));
			}
		}
		if (being_stopped(slot) || is_wanted(slot, wanted, n))
			continue;
		if (slot->pid != 0)
			to_signal = lappend_int(to_signal, slot->pid);
		else if (!slot->starting)
			clear_slot(slot);
	}

	/* Wanted workers without a running process */
	for (int i = 0; i < n; i++)
	{
		for (int index = 0; index < wanted[i].parallelism; index++)
		{
			KafkaSlot  *slot = kafka_slot_find(MyDatabaseId, wanted[i].producer,
											   wanted[i].id, index);
			int			slotno;

			if (slot == NULL)
			{
				for (int s = 0; s < KafkaShared->nslots && slot == NULL; s++)
					if (KafkaShared->slots[s].consumer_id == 0)
						slot = &KafkaShared->slots[s];
				for (int s = 0; s < KafkaShared->nslots && slot == NULL; s++)
				{
					KafkaSlot  *other = &KafkaShared->slots[s];

					/* still as it was when found orphaned */
					if (orphaned[s] && other->pid == 0 && !other->starting &&
						other->dboid != MyDatabaseId)
						slot = other;
				}
				if (slot == NULL)
				{
					no_room++;
					continue;
				}
				clear_slot(slot);
				slot->dboid = MyDatabaseId;
				slot->producer = wanted[i].producer;
				slot->consumer_id = wanted[i].id;
				slot->index = index;
			}
			if (slot->pid != 0 || slot->starting || being_stopped(slot) ||
				now < slot->retry_at)
				continue;
			slotno = slot - KafkaShared->slots;
			slot->stop_xid = InvalidTransactionId;
			slot->starting = true;
			slot->registered_at = now;
			if (!register_worker(slotno, slot))
			{
				slot->starting = false;
				slot->retry_at = TimestampTzPlusMilliseconds(now, 5000);
				kafka_slot_set_error(slot, "no background worker slot free: raise max_worker_processes");
				no_room++;
			}
		}
	}
	LWLockRelease(KafkaShared->lock);

	foreach(lc, to_signal)
		kill(lfirst_int(lc), SIGTERM);
	/* once per condition, not every round (the slots' states say it too) */
	if (no_room > 0 && no_room != last_no_room)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start %d Kafka consumer workers", no_room),
				 errhint("Raise max_worker_processes or stream_ext.kafka_max_workers.")));
	last_no_room = no_room;
	if (wanted)
		pfree(wanted);
	pfree(orphaned);
}

/*
 * The combiner's job (jobs/jobs.c), run at every turn of its loop outside a
 * transaction: a round at most once per SUPERVISE_INTERVAL_MS, or at once
 * when a consumer changed (kicks).  Errors are logged and the round is
 * skipped.
 */
static bool
supervise_job(MemoryContext cxt)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		kicks = pg_atomic_read_u64(&KafkaShared->kicks);

	if (kicks == last_kicks &&
		!TimestampDifferenceExceeds(last_round, now, SUPERVISE_INTERVAL_MS))
		return false;
	last_round = now;
	last_kicks = kicks;
	if (handles == NULL)
		handles = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(BackgroundWorkerHandle *) * KafkaShared->nslots);
	PG_TRY();
	{
		supervise_round();
	}
	PG_CATCH();
	{
		stream_log_error_and_abort(cxt);
		if (LWLockHeldByMe(KafkaShared->lock))
			LWLockRelease(KafkaShared->lock);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return false;
}

/* Give the combiner of every database the supervision job; from _PG_init. */
void
kafka_supervisor_init(void)
{
	stream_job_register("Kafka consumer supervision", supervise_job);
}

