/*
 * counters.h
 *	  Per view and worker counters of applied events
 *	  (stream_ext_internal.view_counters).
 */
#ifndef STREAM_EXT_COUNTERS_H
#define STREAM_EXT_COUNTERS_H

extern void stream_counters_add(int view_id, int worker_no, int64 events, int64 errors);

#endif
