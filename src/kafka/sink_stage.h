/*
 * sink_stage.h
 *	  A writer stages its own events for its stream's Kafka producers
 *	  (sink_stage.c).
 */
#ifndef STREAM_EXT_KAFKA_SINK_STAGE_H
#define STREAM_EXT_KAFKA_SINK_STAGE_H

extern void kafka_sink_stage_init(void);

#endif
