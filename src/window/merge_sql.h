/*
 * merge_sql.h
 *	  The combiner's statement that folds a view's committed deltas into its
 *	  state table, which depends on the view's window.
 */
#ifndef STREAM_EXT_WINDOW_MERGE_SQL_H
#define STREAM_EXT_WINDOW_MERGE_SQL_H

#include "nodes/pg_list.h"
#include "window/spec.h"

extern bool stream_window_merge_needs_unique_key(WindowSpec *spec);
extern char *stream_window_merge_sql(int id, List *columns, int key_count, WindowSpec *spec,
									 int chunk, const char *also);
extern char *stream_window_move_rows_sql(int id, List *columns, int chunk, const char *into,
										 const char *notify);

#endif
