/*
 * producer.h
 *	  The Kafka producer worker: one background worker per producer, which
 *	  sends a stream's committed events to a topic.  See src/kafka/README.md.
 */
#ifndef STREAM_EXT_KAFKA_PRODUCER_H
#define STREAM_EXT_KAFKA_PRODUCER_H

#include "postgres.h"

extern PGDLLEXPORT void stream_ext_kafka_producer_main(Datum arg);

#endif
