/*
 * drop_lock.h
 *	  The lock that lets kafka_drop_producer finish under writers that never
 *	  pause (drop_lock.c).
 */
#ifndef STREAM_EXT_KAFKA_DROP_LOCK_H
#define STREAM_EXT_KAFKA_DROP_LOCK_H

#include "postgres.h"

/*
 * May this writer stage events for producer id?  Takes the producer's lock
 * in share mode, kept until the writer's transaction ends; false (nothing
 * taken) while a drop of the producer holds or waits for it.
 */
extern bool kafka_producer_lock_for_staging(int id);

#endif
