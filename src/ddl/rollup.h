/*
 * rollup.h
 *	  stream_ext.combine(column): roll-ups of a continuous view's aggregates.
 */
#ifndef STREAM_EXT_ROLLUP_H
#define STREAM_EXT_ROLLUP_H

extern void stream_rollup_init(void);

#endif
