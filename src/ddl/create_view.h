/*
 * create_view.h
 *	  Creating, resetting and describing continuous views.
 */
#ifndef STREAM_EXT_CREATE_VIEW_H
#define STREAM_EXT_CREATE_VIEW_H

#include "nodes/parsenodes.h"
#include "window/spec.h"

extern Oid	stream_create_continuous_view(RangeVar *name, List *aliases,
										  RawStmt *raw, const char *sql,
										  WindowSpec *window);
extern void stream_follow_view_owner(Oid view);

#endif
