/*
 * consumer.h
 *	  The Kafka consumer worker: one background worker per consumer and
 *	  parallelism index.  See src/kafka/README.md.
 */
#ifndef STREAM_EXT_KAFKA_CONSUMER_H
#define STREAM_EXT_KAFKA_CONSUMER_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "kafka/decode.h"
#include "kafka/slots.h"
#include "nodes/pg_list.h"
#include "utils/palloc.h"

/* bgw_extra of a consumer worker */
typedef struct KafkaWorkerArgs
{
	Oid			dboid;
	int			consumer_id;
	int			index;
} KafkaWorkerArgs;

/* The consumer's catalog row, as the worker uses it */
typedef struct KafkaConsumerConfig
{
	int			id;
	Oid			stream;
	char	   *topic;
	char	   *brokers;
	char	   *group_id;		/* NULL: partitions by p % parallelism */
	char	   *start;
	int			parallelism;
	List	   *option_names;	/* librdkafka configuration */
	List	   *option_values;
	KafkaFormatOptions format;
} KafkaConsumerConfig;

/* State of the worker process (consumer.c), used by assign.c and batch.c */
extern KafkaConsumerConfig kafka_cfg;
extern rd_kafka_t *kafka_rk;
extern KafkaSlot *kafka_my_slot;
extern int	kafka_my_slotno;
extern int	kafka_my_index;
extern MemoryContext kafka_worker_cxt;	/* lives as long as the worker */

extern void kafka_report_problem(const char *what);
extern void kafka_consumer_sleep(long ms);
extern char *kafka_spi_text(int row, int col);

extern PGDLLEXPORT void stream_ext_kafka_main(Datum arg);

#endif
