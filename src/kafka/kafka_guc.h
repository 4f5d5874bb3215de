/*
 * kafka_guc.h
 *	  Configuration parameters of the Kafka consumers and producers
 *	  (stream_ext.kafka_*).
 */
#ifndef STREAM_EXT_KAFKA_GUC_H
#define STREAM_EXT_KAFKA_GUC_H

extern int	stream_ext_kafka_max_workers;
extern int	stream_ext_kafka_error_payload_limit;
extern int	stream_ext_kafka_max_errors;
extern int	stream_ext_kafka_batch_wait_ms;
extern int	stream_ext_kafka_sink_max_pending;
extern int	stream_ext_kafka_sink_full_wait_ms;

extern void stream_kafka_define_gucs(void);

#endif
