/*
 * create_view.h
 *	  Creating, resetting and describing continuous views.
 */
#ifndef STREAM_EXT_CREATE_VIEW_H
#define STREAM_EXT_CREATE_VIEW_H

#include "analyze/view_query.h"
#include "nodes/parsenodes.h"
#include "window/spec.h"

extern Oid	stream_create_continuous_view(RangeVar *name, List *aliases,
										  RawStmt *raw, const char *sql,
										  WindowSpec *window, const char *output);
extern void stream_follow_view_owner(Oid view);
extern void stream_hand_over_view_relations(int id, Oid owner);
extern void stream_record_view_dependencies(Oid view, Query *original, ViewShape *shape);

#endif
