/*
 * backpressure.h
 *	  Writers of a stream wait while a Kafka producer of it has too many
 *	  events staged (backpressure.c).
 */
#ifndef STREAM_EXT_KAFKA_BACKPRESSURE_H
#define STREAM_EXT_KAFKA_BACKPRESSURE_H

extern void kafka_backpressure_init(void);

#endif
