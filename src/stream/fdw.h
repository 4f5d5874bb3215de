/*
 * fdw.h
 *	  The foreign-data wrapper behind streams, and the batch a worker exposes
 *	  to its stream scans.
 */
#ifndef STREAM_EXT_FDW_H
#define STREAM_EXT_FDW_H

#include "access/htup.h"

/* Events of one stream in the batch a worker is applying. */
typedef struct StreamBatchEvents
{
	Oid			stream;
	int			nevents;
	int			capacity;
	HeapTupleData *events;
	bool	   *skip;			/* events excluded from the current scan, or NULL */
	int			only;			/* scan just this event when >= 0 */
	TransactionId writer;		/* the xmin of every event, if they share one */
	int			natts;			/* with values: columns of each event */
	Datum	   *values;			/* every event's columns, deformed once for */
	bool	   *isnull;			/* all the views of the stream, or NULL */
	uint16		writer_applied; /* what their writers applied of the
								 * stream's views themselves: record
								 * flags STREAM_FLAGS_WRITER_APPLIED */
	bool		late_judged;	/* events held back whose lateness was judged
								 * when they were (worker/held_back.c) */
	bool		held;			/* events held back, applied now: their batch
								 * folds no pending watermark (lateness.c) */
} StreamBatchEvents;

/* Set by a worker while it runs a view's plan; NULL elsewhere. */
extern StreamBatchEvents *stream_scan_source;

/* The option that marks a change stream (src/changes/create.c) */
#define STREAM_CHANGES_OF_OPTION "changes_of"

extern bool stream_is_stream_relation(Oid relid);
extern char *stream_changes_of(Oid relid);

#endif
