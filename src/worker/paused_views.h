/*
 * paused_views.h
 *	  Views the combiner, or a Kafka consumer worker, leaves alone for a
 *	  while: their code caught the time limit's cancel, over and over, and
 *	  the process before it was ended.
 */
#ifndef STREAM_EXT_PAUSED_VIEWS_H
#define STREAM_EXT_PAUSED_VIEWS_H

#include "ipc/queue.h"

extern void stream_paused_views_start(StreamPausedViews *pv, const char *process,
									  const char *waits);
extern void stream_paused_views_record(MemoryContext cxt);
extern void stream_paused_views_forget(void);
extern void stream_paused_views_work_for(int view_id);
extern bool stream_view_paused(int view_id);

#endif
