/*
 * backpressure.h
 *	  Writers of a stream wait while a Kafka producer of it has too many
 *	  events staged (backpressure.c).
 */
#ifndef STREAM_EXT_KAFKA_BACKPRESSURE_H
#define STREAM_EXT_KAFKA_BACKPRESSURE_H

#include "postgres.h"

extern void kafka_backpressure_init(void);

/*
 * A producer of stream (in this database) with stream_ext.kafka_sink_max_pending
 * events staged or more: its id, and their count in *pending; 0 when none is.
 */
extern int	kafka_full_producer(Oid stream, int64 *pending);

#endif
