/*
 * key_size.h
 *	  Refusing events whose group key a view's state table could not index.
 */
#ifndef STREAM_EXT_KEY_SIZE_H
#define STREAM_EXT_KEY_SIZE_H

#include "nodes/pg_list.h"

extern List *stream_key_indexes(Oid state, MemoryContext cxt);
extern void stream_check_key_size(List *indexes, const char *view_name, Datum *values,
								  bool *isnull);

#endif
