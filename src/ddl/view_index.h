/*
 * view_index.h
 *	  Indexes on continuous views that keep rows.
 */
#ifndef STREAM_EXT_VIEW_INDEX_H
#define STREAM_EXT_VIEW_INDEX_H

#include "nodes/parsenodes.h"

extern IndexStmt *stream_redirect_view_index(IndexStmt *stmt, const char *queryString);
extern bool stream_is_view_index(Oid index);

#endif
