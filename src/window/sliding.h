/*
 * sliding.h
 *	  Steps and blocks of sliding windows.
 */
#ifndef STREAM_EXT_WINDOW_SLIDING_H
#define STREAM_EXT_WINDOW_SLIDING_H

#include "window/spec.h"

/* Levels of state rows: _level 0 steps, 1 blocks, 2 big blocks */
#define SLIDING_LEVELS 3

/* Which bound stream_ext_internal.sliding_bound computes */
typedef enum SlidingBound
{
	SLIDING_OLDEST_STEP = 0,	/* L: the step holding read_time - window */
	SLIDING_NOW = 1,			/* H: read_time */
	SLIDING_FIRST_BLOCK = 2,	/* F1: start of the first block inside [L, H] */
	SLIDING_BLOCKS_END = 3,		/* G1: end of the last block inside [L, H] */
	SLIDING_FIRST_BIG = 4,		/* F2: start of the first big block inside [L, H] */
	SLIDING_BIGS_END = 5,		/* G2: end of the last big block inside [L, H] */
	SLIDING_REAP_BEFORE = 6		/* what every reader has left behind */
} SlidingBound;

extern int	stream_sliding_levels(WindowSpec *spec, Interval *lengths[SLIDING_LEVELS]);
extern int	stream_window_hidden_keys(WindowSpec *spec);
extern char *stream_sliding_bound_sql(SlidingBound which, WindowSpec *spec, Oid type);

#endif
