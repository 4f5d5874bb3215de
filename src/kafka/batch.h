/*
 * batch.h
 *	  Applying a batch of Kafka messages in one transaction.
 */
#ifndef STREAM_EXT_KAFKA_BATCH_H
#define STREAM_EXT_KAFKA_BATCH_H

#include <librdkafka/rdkafka.h>

#include "datatype/timestamp.h"
#include "kafka/kafka_worker.h"

extern void kafka_batch_init(void);
extern void kafka_process_batch(KafkaWorker *w, rd_kafka_message_t **msgs, int n,
								MemoryContext cxt, TimestampTz batch_start);

#endif
