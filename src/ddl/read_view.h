/*
 * read_view.h
 *	  The SELECT behind the view users query.
 */
#ifndef STREAM_EXT_READ_VIEW_H
#define STREAM_EXT_READ_VIEW_H

#include "analyze/view_query.h"

extern char *stream_state_columns_sql(ViewShape *shape, const char *prefix);
extern char *stream_key_columns_sql(ViewShape *shape);
extern char *stream_read_view_sql(ViewShape *shape, int id, Oid state_relid);
extern char *stream_read_view_states_sql(ViewShape *shape, int id, Oid state_relid);
extern char *stream_read_view_identified_sql(ViewShape *shape, int id, Oid state_relid);
extern Node *stream_finalize_states_call(ViewShape *shape, int aggno, Expr *state);

#endif
