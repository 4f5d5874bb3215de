/*
 * paused_views.h
 *	  Views the combiner leaves alone for a while: code run for them caught
 *	  the time limit's cancel, over and over, and the combiner was ended.
 */
#ifndef STREAM_EXT_PAUSED_VIEWS_H
#define STREAM_EXT_PAUSED_VIEWS_H

#include "ipc/queue.h"

extern void stream_paused_views_start(StreamWorkerSlot *slot);
extern void stream_paused_views_record(MemoryContext cxt);
extern void stream_paused_views_forget(void);
extern void stream_combiner_works_for(int view_id);
extern bool stream_view_paused(int view_id);

#endif
