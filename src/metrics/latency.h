/*
 * latency.h
 *	  Commit-to-visible latency of each database's writers over the last
 *	  minute, as a histogram in shared memory.
 */
#ifndef STREAM_EXT_LATENCY_H
#define STREAM_EXT_LATENCY_H

#include "datatype/timestamp.h"

extern void stream_latency_shmem_request(void);
extern void stream_latency_shmem_startup(void);
extern void stream_latency_note(int groupno, const TimestampTz *sent_at, int n,
								TimestampTz visible_at);

#endif
