/*
 * held_back.h
 *	  Holding back a continuous view's events while someone holds a lock its
 *	  run needs; the combiner's job that applies them later.
 */
#ifndef STREAM_EXT_HELD_BACK_H
#define STREAM_EXT_HELD_BACK_H

#include "stream/fdw.h"
#include "worker/view_cache.h"

extern bool stream_view_locks_free(CachedView *view);
extern void stream_view_note_blocked(int view_id);
extern bool stream_view_held_back(CachedView *view);
extern void stream_hold_back(CachedView *view, StreamBatchEvents *events, bool judge);
extern void stream_held_back_init(void);

#endif
