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

extern void stream_counters_record(List *counts, int worker_no);
extern void stream_counters_record_nowait(List *counts, int worker_no);

#endif
