/*
 * rate.h
 *	  A rate over recent time: event counts in a ring of fixed-width time
 *	  buckets, kept in shared memory by the caller (under its own lock).
 */
#ifndef STREAM_EXT_RATE_H
#define STREAM_EXT_RATE_H

#include "datatype/timestamp.h"

#define STREAM_RATE_BUCKETS 64

/*
 * bucket[i] counts the events of the time bucket epoch[i] (seconds since
 * 2000-01-01 divided by width_s); a bucket is reused when its epoch comes
 * round again.  Not locked here: the caller serialises writers and readers.
 */
typedef struct StreamRate
{
	uint32		width_s;		/* bucket width in seconds */
	uint32		epoch[STREAM_RATE_BUCKETS];
	uint32		count[STREAM_RATE_BUCKETS];
} StreamRate;

extern void stream_rate_init(StreamRate *rate, int width_s);
extern void stream_rate_add(StreamRate *rate, TimestampTz now, uint64 n);
extern double stream_rate_per_second(const StreamRate *rate, TimestampTz now, int seconds);

#endif
