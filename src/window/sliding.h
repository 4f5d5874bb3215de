/*
 * sliding.h
 *	  Steps and blocks of sliding windows.
 */
#ifndef STREAM_EXT_WINDOW_SLIDING_H
#define STREAM_EXT_WINDOW_SLIDING_H

#include "window/spec.h"

/* Which bound stream_ext_internal.sliding_bound computes */
typedef enum SlidingBound
{
	SLIDING_OLDEST_STEP = 0,	/* L: the step holding read_time - window */
	SLIDING_NOW = 1,			/* H: read_time */
	SLIDING_FIRST_BLOCK = 2,	/* F: start of the first block inside [L, H] */
	SLIDING_BLOCKS_END = 3,		/* G: end of the last block inside [L, H] */
	SLIDING_REAP_BEFORE = 4		/* what every reader has left behind */
} SlidingBound;

extern Interval *stream_sliding_block(WindowSpec *spec);
extern char *stream_sliding_bound_sql(SlidingBound which, WindowSpec *spec, Oid type);

#endif
