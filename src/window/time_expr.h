/*
 * time_expr.h
 *	  Expressions over a view's event time: the time itself, the bucket an
 *	  event falls in, and the first and last time of a group.
 */
#ifndef STREAM_EXT_WINDOW_TIME_EXPR_H
#define STREAM_EXT_WINDOW_TIME_EXPR_H

#include "nodes/primnodes.h"
#include "window/spec.h"

extern AttrNumber stream_window_time_attnum(WindowSpec *spec, Oid stream);
extern Expr *stream_window_time_expr(WindowSpec *spec, Oid stream, Index rti);
extern Expr *stream_window_time_value(Expr *time_expr);
extern Expr *stream_window_bucket(Expr *time, Interval *width);
extern Aggref *stream_window_time_aggregate(const char *name, Expr *time);
extern Expr *stream_window_and_not_null(Expr *qual, Expr *time);

#endif
