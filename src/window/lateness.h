/*
 * lateness.h
 *	  Late events of event-time views, and their watermarks.
 */
#ifndef STREAM_EXT_WINDOW_LATENESS_H
#define STREAM_EXT_WINDOW_LATENESS_H

#include "stream/fdw.h"
#include "window/spec.h"

/*
 * A (sub)transaction of a batch's events whose writer may have committed
 * before the workers applied all of its records (async mode), and that
 * writer's top-level transaction.
 */
typedef struct StreamQueuedXmin
{
	TransactionId xmin;
	TransactionId top;
} StreamQueuedXmin;

/*
 * An SQL condition on a pending watermark row (alias p) of a committed
 * writer: it may be folded, its writer's records having all been applied,
 * and the view holding back no events unjudged (whose writers, whatever
 * (sub)transaction wrote them, may be this one's: lateness.c)
 */
#define STREAM_FOLDABLE(p) \
	"NOT EXISTS (SELECT FROM stream_ext_internal.queued_writers q " \
	"WHERE q.writer = " p ".queued_writer) " \
	"AND NOT EXISTS (SELECT FROM stream_ext_internal.held_events h " \
	"WHERE h.view_id = " p ".view_id AND NOT h.judged)"

extern void stream_lateness_queued_xmins(StreamQueuedXmin *xmins, int n);
extern void stream_lateness_note_queued(const TransactionId *tops, const int32 *lasts,
										const int32 *last_of, int n);
extern bool *stream_mark_late_events(int view_id, const char *view_name, WindowSpec *w,
									 StreamBatchEvents *events, bool nowait, int *nlate);
extern void stream_lateness_event_times(WindowSpec *w, StreamBatchEvents *events,
										TimestampTz *times, bool *has);
extern void stream_lateness_add_view(int view_id);
extern void stream_lateness_reset_view(int view_id);
extern char *stream_lateness_watermark_literal(int view_id);
extern char *stream_lateness_settled_watermark_literal(int view_id);
extern void stream_lateness_settle_init(void);

#endif
