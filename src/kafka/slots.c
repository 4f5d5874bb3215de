/*
 * slots.c
 *	  Shared-memory slots of the Kafka consumer and producer workers (see
 *	  slots.h).
 *
 * The supervisor (in each database's combiner, supervisor.c) fills a slot
 * when it registers a worker; the worker sets its pid when it attaches and
 * clears it when it exits; kafka_stop finds workers here to signal them.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "kafka/kafka_guc.h"
#include "kafka/slots.h"

KafkaSharedState *KafkaShared = NULL;

static Size
kafka_shmem_size(void)
{
	return add_size(offsetof(KafkaSharedState, slots),
					mul_size(stream_ext_kafka_max_workers, sizeof(KafkaSlot)));
}

void
kafka_shmem_request(void)
{
	RequestAddinShmemSpace(kafka_shmem_size());
	RequestNamedLWLockTranche("stream_ext kafka", 1);
}

void
kafka_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	KafkaShared = ShmemInitStruct("stream_ext kafka", kafka_shmem_size(), &found);
	if (!found)
	{
		memset(KafkaShared, 0, kafka_shmem_size());
		KafkaShared->lock = &(GetNamedLWLockTranche("stream_ext kafka"))->lock;
		KafkaShared->nslots = stream_ext_kafka_max_workers;
		pg_atomic_init_u64(&KafkaShared->kicks, 0);
		for (int i = 0; i < KafkaShared->nslots; i++)
			SpinLockInit(&KafkaShared->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The slot of a worker, or NULL.  Caller holds KafkaShared->lock. */
KafkaSlot *
kafka_slot_find(Oid dboid, bool producer, int id, int index)
{
	for (int i = 0; i < KafkaShared->nslots; i++)
	{
		KafkaSlot  *slot = &KafkaShared->slots[i];

		if (slot->consumer_id == id && slot->dboid == dboid &&
			slot->producer == producer && slot->index == index)
			return slot;
	}
	return NULL;
}

/*
 * Set a slot's state (kafka_slot_set_error: its last error).  Caller is the
 * slot's attached worker, or the supervisor holding KafkaShared->lock
 * exclusive while no worker is attached (see slots.h).  A consumer retrying
 * after a broker failure does not know its lag (lag.c); a producer's lag is
 * its staged count, from its own table, which writers' backpressure needs
 * most while the brokers are down (backpressure.c).
 */
void
kafka_slot_set_state(KafkaSlot *slot, const char *state)
{
	SpinLockAcquire(&slot->mutex);
	strlcpy(slot->state, state, sizeof(slot->state));
	if (strcmp(state, "retrying") == 0 && !slot->producer)
		slot->lag_known = false;
	SpinLockRelease(&slot->mutex);
}

void
kafka_slot_set_error(KafkaSlot *slot, const char *error)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&slot->mutex);
	strlcpy(slot->last_error, error, sizeof(slot->last_error));
	slot->last_error_at = now;
	SpinLockRelease(&slot->mutex);
}
