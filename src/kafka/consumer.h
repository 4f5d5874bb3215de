/*
 * consumer.h
 *	  The Kafka consumer worker: one background worker per consumer and
 *	  parallelism index.  See src/kafka/README.md.
 */
#ifndef STREAM_EXT_KAFKA_CONSUMER_H
#define STREAM_EXT_KAFKA_CONSUMER_H

#include "postgres.h"

#include "kafka/kafka_worker.h"

extern PGDLLEXPORT void stream_ext_kafka_main(Datum arg);

#endif
