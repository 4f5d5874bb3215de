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
#include "access/htup.h"
#include "access/tupdesc.h"
#include "nodes/pg_list.h"

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

/* Text form of each field, as the catalog stores it (NULL when unset). */
typedef struct WindowSpecText
{
	char	   *kind;
	char	   *time_column;
	char	   *size;
	char	   *step;
	char	   *ttl;
	char	   *ttl_column;
	char	   *lateness;
	char	   *keep_late;
} WindowSpecText;

/*
 * The columns of stream_ext_internal.continuous_views (aliased v) that a
 * view's WindowSpec is read from, in the order stream_window_spec_from_row
 * expects them.
 */
#define WINDOW_SPEC_COLUMNS \
	"v.window_kind, stream_ext_internal.time_column(v.stream, v.time_attnum), " \
	"v.window_size::text, v.window_step::text, v.ttl::text, v.ttl_column, " \
	"v.allowed_lateness::text, v.keep_late::text"

extern WindowSpec *stream_window_spec_from_options(List *options);
extern WindowSpec *stream_window_spec_from_row(HeapTuple tuple, TupleDesc desc, int first);
extern WindowSpec *stream_window_spec_from_text(WindowSpecText *text);
extern WindowSpecText *stream_window_spec_to_text(WindowSpec *spec);
extern bool stream_window_has_event_time(WindowSpec *spec);
extern const char *stream_window_kind_name(WindowKind kind);
extern int64 stream_interval_usecs(Interval *interval);
extern char *stream_interval_sql(Interval *interval);

#endif
