/*
 * session.h
 *	  Chaining partial sessions into sessions, in SQL.
 */
#ifndef STREAM_EXT_WINDOW_SESSION_H
#define STREAM_EXT_WINDOW_SESSION_H

#include "datatype/timestamp.h"

extern char *stream_sessionize_sql(const char *keys, Interval *gap, const char *rows);

#endif
