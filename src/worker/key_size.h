/*
 * key_size.h
 *	  Refusing events whose group key a view's state table could not index.
 */
#ifndef STREAM_EXT_KEY_SIZE_H
#define STREAM_EXT_KEY_SIZE_H

#include "executor/tuptable.h"
#include "nodes/pg_list.h"

/* The check of one view's delta rows; its indexes are looked up when needed */
typedef struct KeySizeCheck
{
	Oid			state_table;
	const char *view_name;
	MemoryContext cxt;			/* where the indexes' descriptions go */
	bool		loaded;
	List	   *indexes;
} KeySizeCheck;

extern void stream_key_size_init(KeySizeCheck *c, Oid state_table, const char *view_name,
								 MemoryContext cxt);
extern void stream_check_key_size(KeySizeCheck *c, TupleTableSlot *slot);

#endif
