/*
 * lag.h
 *	  A consumer worker's lag, from the brokers' high watermarks.
 */
#ifndef STREAM_EXT_KAFKA_LAG_H
#define STREAM_EXT_KAFKA_LAG_H

#include "kafka/kafka_worker.h"

extern void kafka_refresh_lag(KafkaWorker *w);
extern bool kafka_brokers_failing(KafkaWorker *w);
extern void kafka_producer_probe_brokers(KafkaWorker *w);

#endif
