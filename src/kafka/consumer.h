/*
 * consumer.h
 *	  The Kafka consumer worker: one background worker per consumer and
 *	  parallelism index.  See src/kafka/README.md.
 */
#ifndef STREAM_EXT_KAFKA_CONSUMER_H
#define STREAM_EXT_KAFKA_CONSUMER_H

#include "postgres.h"

#include "kafka/kafka_worker.h"

/* bgw_extra of a consumer worker */
typedef struct KafkaWorkerArgs
{
	Oid			dboid;
	int			consumer_id;
	int			index;
} KafkaWorkerArgs;

extern void kafka_report_problem(KafkaWorker *w, const char *what);
extern void kafka_consumer_sleep(KafkaWorker *w, long ms);
extern char *kafka_spi_text(int row, int col);

extern PGDLLEXPORT void stream_ext_kafka_main(Datum arg);

#endif
