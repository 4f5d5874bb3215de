/*
 * state_tables.h
 *	  The state and delta tables of a new continuous view, laid out for its
 *	  window.
 */
#ifndef STREAM_EXT_WINDOW_STATE_TABLES_H
#define STREAM_EXT_WINDOW_STATE_TABLES_H

#include "window/spec.h"

extern void stream_window_create_state_tables(int id, const char *columns, const char *keys,
											  const char *several_keys_null,
											  const char *results, WindowSpec *w);
extern void stream_window_store_uncompressed(int id, const char *column);
extern void stream_window_create_row_tables(int id, const char *columns, WindowSpec *w);

#endif
