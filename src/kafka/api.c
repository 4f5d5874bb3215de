/*
 * api.c
 *	  SQL-callable functions of the Kafka consumers that need shared memory:
 *	  stopping a consumer's workers and reporting their status.  The rest of
 *	  the API (kafka_consume, kafka_stop, kafka_start, kafka_reset) is SQL in
 *	  the install script; it calls these.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "guc.h"
#include "ipc/queue.h"
#include "kafka/slots.h"

/* kafka_consumers.rate: messages per second over the last this many seconds */
#define KAFKA_RATE_SECONDS 10

PG_FUNCTION_INFO_V1(stream_ext_kafka_stop_workers);
PG_FUNCTION_INFO_V1(stream_ext_kafka_worker_status);
PG_FUNCTION_INFO_V1(stream_ext_kafka_free_slots);
PG_FUNCTION_INFO_V1(stream_ext_kafka_note_invoker);
PG_FUNCTION_INFO_V1(stream_ext_kafka_take_invoker);
PG_FUNCTION_INFO_V1(stream_ext_kafka_ensure_supervisor);
PG_FUNCTION_INFO_V1(stream_ext_kafka_lock_stream);
PG_FUNCTION_INFO_V1(stream_ext_in_security_restricted_operation);

/*
 * Are we inside a security-restricted operation?  Then the session user is
 * not the role that asked (a worker runs a view's expressions as its owner
 * in one), and kafka_check_caller refuses.
 */
Datum
stream_ext_in_security_restricted_operation(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(InSecurityRestrictedOperation());
}

/* How long kafka_stop waits for the workers to exit */
#define STOP_TIMEOUT_MS 30000

/*
 * Stop the workers of a consumer (or, with producer, of a producer) of this
 * database and wait until they have exited.  Until the calling transaction ends, the supervisor does not start
 * them again; then the catalog decides (a committed kafka_stop disabled the
 * consumer).  Offsets stay as the last committed batch left them.
 */
Datum
stream_ext_kafka_stop_workers(PG_FUNCTION_ARGS)
{
	int			consumer_id = PG_GETARG_INT32(0);
	bool		producer = PG_GETARG_BOOL(1);
	TransactionId xid = GetTopTransactionId();
	TimestampTz start = GetCurrentTimestamp();

	stream_require_preload();
	for (;;)
	{
		bool		running = false;
		List	   *pids = NIL;
		ListCell   *lc;

		LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
		for (int s = 0; s < KafkaShared->nslots; s++)
		{
			KafkaSlot  *slot = &KafkaShared->slots[s];

			if (slot->consumer_id != consumer_id || slot->dboid != MyDatabaseId ||
				slot->producer != producer)
				continue;
			slot->stop_xid = xid;
			if (slot->pid != 0)
				pids = lappend_int(pids, slot->pid);
			if (slot->pid != 0 || slot->starting)
				running = true;
		}
		LWLockRelease(KafkaShared->lock);
		if (!running)
			break;
		foreach(lc, pids)
			kill(lfirst_int(lc), SIGTERM);
		list_free(pids);
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), STOP_TIMEOUT_MS))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("workers of Kafka %s %d did not stop",
							producer ? "producer" : "consumer", consumer_id),
					 errdetail("They were still running after %d seconds.", STOP_TIMEOUT_MS / 1000)));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 20L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_VOID();
}

/*
 * One row per worker slot of this database (see the kafka_consumers and
 * kafka_producers views).
 */
Datum
stream_ext_kafka_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	stream_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(KafkaShared->lock, LW_SHARED);
	for (int s = 0; s < KafkaShared->nslots; s++)
	{
		KafkaSlot  *slot = &KafkaShared->slots[s];
		KafkaSlot	copy;
		Datum		values[11];
		bool		nulls[11];
		Datum	   *parts;

		if (slot->consumer_id == 0 || slot->dboid != MyDatabaseId)
			continue;
		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(KafkaSlot));
		SpinLockRelease(&slot->mutex);

		/* consumer_id, worker, pid, state, partitions, messages, lag, rate, last_error, last_error_at */
		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(copy.consumer_id);
		values[1] = Int32GetDatum(copy.index);
		values[2] = Int32GetDatum(copy.pid);
		nulls[2] = copy.pid == 0;
		values[3] = CStringGetTextDatum(copy.pid == 0 ? (copy.starting ? "starting" : "stopped") :
										copy.state);
		parts = palloc(sizeof(Datum) * Max(copy.npartitions, 1));
		for (int i = 0; i < copy.npartitions; i++)
			parts[i] = Int32GetDatum(copy.partitions[i]);
		values[4] = PointerGetDatum(construct_array(parts, copy.npartitions, INT4OID, 4, true,
													TYPALIGN_INT));
		values[5] = Int64GetDatum(copy.messages);
		values[6] = Int64GetDatum(copy.lag);
		nulls[6] = !copy.lag_known || copy.pid == 0;
		values[7] = Float8GetDatum(stream_rate_per_second(&copy.rate, GetCurrentTimestamp(),
														   KAFKA_RATE_SECONDS));
		values[8] = CStringGetTextDatum(copy.last_error);
		nulls[8] = copy.last_error[0] == '\0';
		values[9] = TimestampTzGetDatum(copy.last_error_at);
		nulls[9] = copy.last_error_at == 0;
		values[10] = BoolGetDatum(copy.producer);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(KafkaShared->lock);
	return (Datum) 0;
}

/*
 * How many of the server's Kafka worker slots (stream_ext.kafka_max_workers)
 * no database holds.  With none free, a consumer or producer of this
 * database that has no slot waits for one: the views say so.
 */
Datum
stream_ext_kafka_free_slots(PG_FUNCTION_ARGS)
{
	int			free_slots = 0;

	stream_require_preload();
	LWLockAcquire(KafkaShared->lock, LW_SHARED);
	for (int s = 0; s < KafkaShared->nslots; s++)
		if (KafkaShared->slots[s].consumer_id == 0)
			free_slots++;
	LWLockRelease(KafkaShared->lock);
	PG_RETURN_INT32(free_slots);
}

/*
 * The role a consumer or producer being configured acts for: the
 * current_user of the caller of kafka_note_invoker (a public function,
 * invoker's rights), which the SECURITY DEFINER function it calls next takes
 * with kafka_take_invoker, once, in the same (sub)transaction: a note left
 * by a call that failed and was caught is never taken by a later one.
 */
static Oid	noted_invoker = InvalidOid;
static LocalTransactionId noted_in = InvalidLocalTransactionId;
static SubTransactionId noted_in_sub = InvalidSubTransactionId;

Datum
stream_ext_kafka_note_invoker(PG_FUNCTION_ARGS)
{
	stream_require_preload();

	noted_invoker = GetUserId();
	noted_in = MyProc->lxid;
	noted_in_sub = GetCurrentSubTransactionId();
	PG_RETURN_VOID();
}

Datum
stream_ext_kafka_take_invoker(PG_FUNCTION_ARGS)
{
	Oid			role = (noted_in == MyProc->lxid &&
						noted_in_sub == GetCurrentSubTransactionId()) ? noted_invoker : InvalidOid;
	char	   *name;

	stream_require_preload();
	noted_invoker = InvalidOid;
	noted_in = InvalidLocalTransactionId;
	noted_in_sub = InvalidSubTransactionId;
	name = OidIsValid(role) ? GetUserNameFromId(role, true) : NULL;
	if (name == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(namein, CStringGetDatum(name)));
}

static bool kick_at_commit = false;
static bool kick_callback_registered = false;

/* At commit: let the combiner's supervisor see the change at once. */
static void
kick_supervisor_at_commit(XactEvent event, void *arg)
{
	if (!kick_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		pg_atomic_fetch_add_u64(&KafkaShared->kicks, 1);
		stream_wake_combiner(MyDatabaseId);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		kick_at_commit = false;
}

/*
 * Make sure the database's workers run: their combiner supervises the
 * consumers.  Waits for them to start (as a writer does).  When the calling
 * transaction commits, the combiner is woken up to act on the change.
 */
Datum
stream_ext_kafka_ensure_supervisor(PG_FUNCTION_ARGS)
{
	stream_require_preload();

	(void) stream_batch_slot_for_backend();
	if (!kick_callback_registered)
	{
		RegisterXactCallback(kick_supervisor_at_commit, NULL);
		kick_callback_registered = true;
	}
	kick_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * kafka_lock_stream(stream regclass): lock the stream a consumer or
 * producer is being made for until the transaction ends, as a statement
 * that reads it would (ACCESS SHARE), and check it still exists.  A DROP of
 * the stream then waits for the new catalog row to commit, and its
 * clean-up (kafka_on_sql_drop) sees and drops it; a DROP that came first
 * has dropped the stream by now.  Unlocked, both committed: a consumer of a
 * stream that no longer exists, its workers failing for ever in slots other
 * consumers need.
 */
Datum
stream_ext_kafka_lock_stream(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);

	stream_require_preload();
	LockRelationOid(relid, AccessShareLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("stream with OID %u does not exist", relid),
				 errdetail("It was dropped while its Kafka consumer or producer was being made.")));
	PG_RETURN_VOID();
}
