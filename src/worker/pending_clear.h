/*
 * pending_clear.h
 *	  The combiner's part in telling reads of one group whether its delta
 *	  table may hold deltas of it (see pending_clear.c).
 */
#ifndef STREAM_EXT_PENDING_CLEAR_H
#define STREAM_EXT_PENDING_CLEAR_H

/* A table waiting turns the combiner's loop this often, for a second */
#define PUBLISH_POLL_MS 10

extern bool stream_pending_clear_due(Oid delta, bool moved);
extern void stream_pending_clear_scan(Oid delta, int key_count);
extern void stream_pending_clear_failed(Oid delta);
extern bool stream_pending_clear_publish(MemoryContext cxt);

#endif
