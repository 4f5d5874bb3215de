/*
 * supervisor.h
 *	  Starting and restarting the Kafka consumer workers of a database.
 */
#ifndef STREAM_EXT_KAFKA_SUPERVISOR_H
#define STREAM_EXT_KAFKA_SUPERVISOR_H

extern void kafka_supervisor_init(void);

#endif
