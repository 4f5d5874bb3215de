/*
 * lateness.h
 *	  Late events of event-time views, and their watermarks.
 */
#ifndef STREAM_EXT_WINDOW_LATENESS_H
#define STREAM_EXT_WINDOW_LATENESS_H

#include "stream/fdw.h"
#include "worker/view_cache.h"

extern bool *stream_mark_late_events(CachedView *view, StreamBatchEvents *events, int *nlate);

#endif
