/*
 * retry.h
 *	  Per-view waits between a job's failed tries, doubling from a first
 *	  wait up to a longest one.
 */
#ifndef STREAM_EXT_RETRY_H
#define STREAM_EXT_RETRY_H

#include "nodes/pg_list.h"

typedef struct StreamRetries
{
	int			first_ms;
	int			max_ms;
	List	   *failed;			/* of views whose last try failed, in
								 * TopMemoryContext */
} StreamRetries;

#define STREAM_RETRIES(first_ms, max_ms) {(first_ms), (max_ms), NIL}

extern bool stream_retry_due(StreamRetries *retries, int view_id);
extern bool stream_retry_waiting(StreamRetries *retries, int view_id);
extern int	stream_retry_failures(StreamRetries *retries, int view_id);
extern void stream_retry_note(StreamRetries *retries, int view_id, bool ok);

#endif
