/*
 * read_estimates.h
 *	  What the planner assumes about the tables behind a view's read.
 */
#ifndef STREAM_EXT_READ_ESTIMATES_H
#define STREAM_EXT_READ_ESTIMATES_H

extern void stream_read_estimates_init(void);

#endif
