/*
 * kafka_worker.h
 *	  The state of a Kafka worker process, in one struct: consumer.c (or
 *	  producer.c) owns it and passes it to process.c, assign.c and batch.c
 *	  (and, through the handle's opaque pointer, to librdkafka's callbacks).
 *	  A producer uses the common fields and cfg; the assignment and
 *	  watermark fields are the consumer's.
 */
#ifndef STREAM_EXT_KAFKA_WORKER_H
#define STREAM_EXT_KAFKA_WORKER_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "kafka/decode.h"
#include "kafka/slots.h"
#include "nodes/pg_list.h"
#include "utils/palloc.h"

/* The consumer's (or producer's) catalog row, as the worker uses it */
typedef struct KafkaConsumerConfig
{
	int			id;
	Oid			stream;
	char	   *topic;
	char	   *brokers;
	char	   *group_id;		/* NULL: partitions by p % parallelism */
	char	   *start;
	int			parallelism;
	char	   *created_by;		/* consumers: the role they act for (rights.c) */
	Oid			staging;		/* producers: the staging view, whose owner they act for */
	List	   *option_names;	/* librdkafka configuration */
	List	   *option_values;
	KafkaFormatOptions format;
} KafkaConsumerConfig;

/*
 * What a consumer worker process knows: process-local (its shared-memory
 * slot follows the rules in slots.h).
 */
typedef struct KafkaWorker
{
	/* set at start (process.c) */
	bool		producer;		/* a producer (producer.c), else a consumer */
	int			index;			/* worker index within the consumer */
	KafkaSlot  *slot;			/* our shared-memory slot */
	int			slotno;
	MemoryContext cxt;			/* lives as long as the worker */
	KafkaConsumerConfig cfg;	/* in cxt */

	/*
	 * The slot counted failures when we attached: the first good batch
	 * resets them (batch.c)
	 */
	bool		failures_to_reset;

	/* librdkafka (consumer.c) */
	rd_kafka_t *rk;
	rd_kafka_queue_t *rkq;		/* messages, errors, rebalances */
	rd_kafka_queue_t *logq;		/* librdkafka's log lines */
	/* what the error callback handed us, reported from the loop */
	char		pending_error[256];
	bool		has_pending_error;

	/* partitions assigned to this worker (assign.c), arrays in cxt */
	int			nassigned;
	int32	   *assigned_partitions;
	int64	   *assigned_next;	/* the next offset expected of each */
	int			topic_partition_count;
	bool		assignment_revoked; /* in group mode, since the batch began */
	bool		assignment_failed;

	/* the brokers' watermarks (lag.c) */
	TimestampTz lag_checked_at;
	int			lag_failing;	/* the last probe: 0 answered, 1 no answer,
								 * 2 a partition without a leader */
} KafkaWorker;

#endif
