/*
 * time_limit.h
 *	  stream_ext.view_time_limit: how long one run of a view's plan may take.
 */
#ifndef STREAM_EXT_TIME_LIMIT_H
#define STREAM_EXT_TIME_LIMIT_H

#include "datatype/timestamp.h"

extern void stream_view_time_limit_start(void);
extern bool stream_view_time_limit_stop(void);
extern void stream_view_time_limited(const char *view_name, void (*work) (void *arg), void *arg);
extern void stream_view_time_limited_times(const char *view_name, int times,
										   void (*work) (void *arg), void *arg);
extern bool stream_view_time_limit_last_run_timed_out(void);
extern void stream_view_time_limit_on_ignored_cancel(bool (*callback) (void));

/* A deadline on the charged clock (time_limit.c); zero: none */
typedef struct StreamViewDeadline
{
	TimestampTz charged;
} StreamViewDeadline;

extern StreamViewDeadline stream_view_deadline_after(int ms);
extern bool stream_view_deadline_passed(const StreamViewDeadline *deadline);

#endif
