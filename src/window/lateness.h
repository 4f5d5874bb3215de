/*
 * lateness.h
 *	  Late events of event-time views, and their watermarks.
 */
#ifndef STREAM_EXT_WINDOW_LATENESS_H
#define STREAM_EXT_WINDOW_LATENESS_H

#include "stream/fdw.h"
#include "window/spec.h"

extern bool *stream_mark_late_events(int view_id, const char *view_name, WindowSpec *w,
									 StreamBatchEvents *events, bool nowait, int *nlate);
extern void stream_lateness_event_times(WindowSpec *w, StreamBatchEvents *events,
										TimestampTz *times, bool *has);
extern void stream_lateness_add_view(int view_id);
extern void stream_lateness_reset_view(int view_id);
extern char *stream_lateness_watermark_literal(int view_id);
extern void stream_lateness_settle_init(void);

#endif
