/*
 * view_index.h
 *	  Indexes on continuous views that keep rows.
 */
#ifndef STREAM_EXT_VIEW_INDEX_H
#define STREAM_EXT_VIEW_INDEX_H

#include "nodes/parsenodes.h"

extern bool stream_redirect_view_index(IndexStmt *stmt);
extern IndexStmt *stream_view_index_analyzed(IndexStmt *stmt, const char *queryString);
extern bool stream_is_view_index(Oid index);

#endif
