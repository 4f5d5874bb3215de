/*
 * transform.h
 *	  Checking a continuous transform (a view with output) at CREATE, and
 *	  its dependencies on its output.
 */
#ifndef STREAM_EXT_TRANSFORM_H
#define STREAM_EXT_TRANSFORM_H

#include "nodes/parsenodes.h"
#include "window/spec.h"

extern Oid	stream_transform_output(const char *output);
extern void stream_transform_fit_columns(Query *query, Oid output);
extern void stream_transform_check(Oid stream, Oid output, WindowSpec *window);
extern void stream_transform_record_dependencies(Oid view, Oid output);

#endif
