/*
 * clock.h
 *	  "Now" for windows and ttl: stream_ext.read_time().
 */
#ifndef STREAM_EXT_WINDOW_CLOCK_H
#define STREAM_EXT_WINDOW_CLOCK_H

#include "datatype/timestamp.h"
#include "utils/timestamp.h"

/* The SQL of "now" in generated statements */
#define STREAM_READ_TIME_SQL "stream_ext.read_time()"

extern TimestampTz stream_window_read_time(void);
extern char *stream_ttl_cutoff_sql(Interval *ttl);

#endif
