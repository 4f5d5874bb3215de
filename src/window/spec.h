/*
 * spec.h
 *	  The time window of a continuous view: which clock it uses, how its
 *	  events are bucketed, how long its rows live and how late an event may
 *	  arrive.  Given by the options of CREATE VIEW ... WITH (continuous, ...)
 *	  and kept in stream_ext_internal.continuous_views.
 */
#ifndef STREAM_EXT_WINDOW_SPEC_H
#define STREAM_EXT_WINDOW_SPEC_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "catalog/catalog.h"

typedef enum WindowKind
{
	WINDOW_NONE,				/* plain view; tumbling windows are GROUP BY a bucket */
	WINDOW_SLIDING,				/* the last `size`, kept in steps of `step` */
	WINDOW_HOPPING,				/* windows of `size` starting every `step` */
	WINDOW_SESSION				/* per key, events closer than `size` */
} WindowKind;

typedef struct WindowSpec
{
	WindowKind	kind;
	char	   *time_column;	/* event-time column; NULL: arrival_timestamp */
	Interval   *size;			/* sliding window, hop size or session gap */
	Interval   *step;			/* sliding step or hop slide */
	Interval   *ttl;			/* rows older than this expire; or NULL */
	char	   *ttl_column;		/* WINDOW_NONE: the view column ttl applies to */
	Interval   *lateness;		/* allowed lateness; NULL without time_column */
	bool		keep_late;		/* keep late events in stream_ext.late_events */
} WindowSpec;

extern WindowSpec *stream_window_spec_from_options(List *options);
extern WindowSpec *stream_window_spec_from_text(WindowSpecText *text);
extern void stream_window_spec_to_text(WindowSpec *spec, WindowSpecText *text);
extern bool stream_window_has_event_time(WindowSpec *spec);
extern const char *stream_window_kind_name(WindowKind kind);
extern int64 stream_interval_usecs(Interval *interval);
extern char *stream_interval_sql(Interval *interval);

#endif
