/*
 * create_view.h
 *	  Creating, resetting and describing continuous views.
 */
#ifndef STREAM_EXT_CREATE_VIEW_H
#define STREAM_EXT_CREATE_VIEW_H

#include "analyze/view_query.h"
#include "nodes/parsenodes.h"
#include "window/spec.h"

/* What CREATE VIEW ... WITH (continuous, ...) says besides its query */
typedef struct ContinuousViewOptions
{
	WindowSpec *window;
	const char *output;			/* a transform's table or stream, or NULL */
	const char *notify;			/* the channel of its rows, or NULL */
	bool		security_barrier;	/* the view is a security barrier */
} ContinuousViewOptions;

extern ContinuousViewOptions *stream_view_options(List *defs);
extern Oid	stream_create_continuous_view(RangeVar *name, List *aliases,
										  RawStmt *raw, const char *sql,
										  ContinuousViewOptions *options);
extern void stream_follow_view_owner(Oid view);
extern void stream_refuse_xact_snapshot(const char *what);
extern void stream_hand_over_view_relations(int id, Oid owner);
extern void stream_record_view_dependencies(Oid view, Query *original, ViewShape *shape);

extern void stream_refresh_view_definitions(void);

#endif
