/*
 * counters.h
 *	  Per view and worker counters of applied events
 *	  (stream_ext_internal.view_counters).
 */
#ifndef STREAM_EXT_COUNTERS_H
#define STREAM_EXT_COUNTERS_H

#include "nodes/pg_list.h"

/* What one batch applied to one view */
typedef struct ViewCount
{
	int			view_id;
	int64		events;
	int64		errors;
} ViewCount;

/* The combiner's number in view_counters (workers count from 0, Kafka
 * workers from 1000, writers from 2000 on) */
#define COMBINER_COUNTER_WORKER (-1)

extern void stream_counters_record(List *counts, int worker_no);
extern void stream_counters_record_merge_errors(int view_id, int64 errors);
extern void stream_counters_record_nowait(List *counts, int worker_no);

#endif
