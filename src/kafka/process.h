/*
 * process.h
 *	  What the Kafka consumer and producer worker processes share: signals,
 *	  attaching to and releasing their shared-memory slot, reporting
 *	  problems, serving librdkafka's log queue and errors, and creating a
 *	  handle with the configuration passthrough.
 */
#ifndef STREAM_EXT_KAFKA_PROCESS_H
#define STREAM_EXT_KAFKA_PROCESS_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "kafka/kafka_worker.h"

/* bgw_extra of a consumer or producer worker */
typedef struct KafkaWorkerArgs
{
	Oid			dboid;
	bool		producer;
	int			consumer_id;	/* the consumer's or the producer's id */
	int			index;
} KafkaWorkerArgs;

extern void kafka_worker_main(KafkaWorker *w,
							  void (*body) (KafkaWorker *w, KafkaWorkerArgs *args));
extern void kafka_report_problem(KafkaWorker *w, const char *what);
extern void kafka_serve_callback_reports(KafkaWorker *w);
extern void kafka_consumer_sleep(KafkaWorker *w, long ms);
extern void kafka_serve_interrupts(void);
extern char *kafka_spi_text(int row, int col);
extern void kafka_load_options(KafkaWorker *w, const char *catalog);
extern void kafka_set_conf(KafkaWorker *w, rd_kafka_conf_t *conf, const char *name,
						   const char *value);
extern void kafka_create_handle(KafkaWorker *w, rd_kafka_conf_t *conf, rd_kafka_type_t type);

#endif
