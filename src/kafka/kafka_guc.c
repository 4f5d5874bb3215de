/*
 * kafka_guc.c
 *	  Defines the stream_ext.kafka_* configuration parameters.
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "kafka/kafka_guc.h"

int			stream_ext_kafka_max_workers = 16;
int			stream_ext_kafka_error_payload_limit = 1024;
int			stream_ext_kafka_max_errors = 1000;
int			stream_ext_kafka_batch_wait_ms = 100;
int			stream_ext_kafka_sink_max_pending = 1000000;
int			stream_ext_kafka_sink_full_wait_ms = 10000;

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

	DefineCustomIntVariable("stream_ext.kafka_max_errors",
							gettext_noop("Set-aside messages kept per Kafka consumer and per Kafka producer."),
							gettext_noop("The newest are kept in kafka_errors and kafka_sink_errors; the errors columns count them all."),
							&stream_ext_kafka_max_errors,
							1000, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.kafka_batch_wait",
							gettext_noop("Longest time a Kafka consumer waits to fill a batch."),
							gettext_noop("A batch is applied when it has stream_ext.batch_size messages or this time passed."),
							&stream_ext_kafka_batch_wait_ms,
							100, 1, 10000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.kafka_sink_max_pending",
							gettext_noop("Events a running Kafka producer may have staged before writers of its stream wait."),
							gettext_noop("Staged events are committed to the stream and not yet acknowledged by the brokers."),
							&stream_ext_kafka_sink_max_pending,
							1000000, 1, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.kafka_sink_full_wait",
							gettext_noop("Longest time a writer waits for a full Kafka producer of its stream, then fails."),
							NULL,
							&stream_ext_kafka_sink_full_wait_ms,
							10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
}
