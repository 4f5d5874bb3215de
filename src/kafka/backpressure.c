/*
 * backpressure.c
 *	  The bound on a Kafka producer's staged events.  A running producer
 *	  publishes in its slot how many events of its stream are staged
 *	  (committed, not yet acknowledged by the brokers; producer.c counts them
 *	  about every second, up to the bound).  Before a statement writes into a
 *	  stream (INSERT, COPY FROM: stream/insert.c's admission hook), the writer
 *	  waits while a producer of that stream has stream_ext.kafka_sink_max_pending
 *	  or more, at most stream_ext.kafka_sink_full_wait, then fails.
 *
 * The check is per statement, so the bound is soft: statements admitted
 * before the producer reached it still write all their events.  A Kafka
 * consumer of the stream checks before each batch and pauses its partitions
 * meanwhile (consumer.c): its messages wait in Kafka.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "kafka/backpressure.h"
#include "kafka/kafka_guc.h"
#include "kafka/slots.h"
#include "stream/insert.h"

#define FULL_POLL_MS 10

static stream_write_admit_hook_type prev_admit_hook = NULL;

/*
 * A producer of stream (in this database) that is full: its id, and its
 * staged count in *pending; 0 when none is.  A producer counts while its
 * worker runs, and also while the worker waits to be started again after
 * failing (with the count it made when it last started: a worker that
 * fails at each start, say because its role lost its rights, still holds
 * writers back); not when it was stopped.
 */
int
kafka_full_producer(Oid stream, int64 *pending)
{
	int			id = 0;

	LWLockAcquire(KafkaShared->lock, LW_SHARED);
	for (int s = 0; s < KafkaShared->nslots && id == 0; s++)
	{
		KafkaSlot  *slot = &KafkaShared->slots[s];

		if (!slot->producer || slot->dboid != MyDatabaseId || slot->stream != stream ||
			(slot->pid == 0 && slot->failures == 0))
			continue;
		SpinLockAcquire(&slot->mutex);
		if (slot->lag_known && slot->lag >= stream_ext_kafka_sink_max_pending)
		{
			id = slot->consumer_id;
			*pending = slot->lag;
		}
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(KafkaShared->lock);
	return id;
}

static void
admit_writer(Relation rel)
{
	TimestampTz start = 0;
	int64		pending = 0;
	int			id;

	if (prev_admit_hook)
		prev_admit_hook(rel);
	if (KafkaShared == NULL)
		return;
	while ((id = kafka_full_producer(RelationGetRelid(rel), &pending)) != 0)
	{
		if (start == 0)
			start = GetCurrentTimestamp();
		else if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
											stream_ext_kafka_sink_full_wait_ms))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("stream \"%s\" has too many events waiting for Kafka producer %d",
							RelationGetRelationName(rel), id),
					 errdetail("%lld or more events are staged; stream_ext.kafka_sink_max_pending is %d.",
							   (long long) pending, stream_ext_kafka_sink_max_pending),
					 errhint("See the producer's state and last error in stream_ext.kafka_producers; "
							 "try again once the brokers have caught up.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 FULL_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* From _PG_init: writers of streams check the producers' bound. */
void
kafka_backpressure_init(void)
{
	prev_admit_hook = stream_write_admit_hook;
	stream_write_admit_hook = admit_writer;
}
