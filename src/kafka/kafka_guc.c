/*
 * kafka_guc.c
 *	  Defines the stream_ext.kafka_* configuration parameters.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "kafka/kafka_guc.h"

int			stream_ext_kafka_max_workers = 16;
int			stream_ext_kafka_error_payload_limit = 1024;
int			stream_ext_kafka_batch_wait_ms = 100;

void
stream_kafka_define_gucs(void)
{
	DefineCustomIntVariable("stream_ext.kafka_max_workers",
							gettext_noop("Maximum number of Kafka consumer workers on the server."),
							gettext_noop("Each consumer runs parallelism workers; each is a background worker."),
							&stream_ext_kafka_max_workers,
							16, 1, 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.kafka_error_payload_limit",
							gettext_noop("Bytes of an undecodable Kafka message kept in kafka_errors."),
							NULL,
							&stream_ext_kafka_error_payload_limit,
							1024, 0, 1024 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.kafka_batch_wait",
							gettext_noop("Longest time a Kafka consumer waits to fill a batch."),
							gettext_noop("A batch is applied when it has stream_ext.batch_size messages or this time passed."),
							&stream_ext_kafka_batch_wait_ms,
							100, 1, 10000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}
