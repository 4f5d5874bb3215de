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
extern Oid	stream_internal_relid(const char *name, bool missing_ok);
extern Oid	stream_catalog_relid(bool missing_ok);
extern int	stream_continuous_view_id(Oid relid);
extern int	stream_owned_continuous_view_id(Oid view);
extern void stream_follow_view_owner(Oid view);

#endif
