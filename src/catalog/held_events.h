/*
 * held_events.h
 *	  stream_ext_internal.held_events: events held back from a continuous
 *	  view while a lock its run needs is held by someone.
 */
#ifndef STREAM_EXT_HELD_EVENTS_H
#define STREAM_EXT_HELD_EVENTS_H

#include "access/htup.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/palloc.h"

extern void stream_held_events_add(int view_id, const HeapTupleData *events, const bool *late,
								   int nevents, bool judged, const TimestampTz *times,
								   const bool *has);
extern List *stream_held_events_views(MemoryContext cxt);
extern bool stream_held_events_any(int view_id);
extern int	stream_held_events_take(int view_id, Oid stream, int max, HeapTupleData **events,
									bool **judged);
extern void stream_held_events_forget(int view_id);

#endif
