/*
 * table_insert.h
 *	  Rows of a transform inserted straight into its output table.
 */
#ifndef STREAM_EXT_TABLE_INSERT_H
#define STREAM_EXT_TABLE_INSERT_H

#include "access/heapam.h"
#include "tcop/dest.h"
#include "utils/rel.h"

extern bool stream_table_insert_direct(Oid table, Oid owner, int ncolumns);
extern void stream_multi_insert(Relation rel, TupleTableSlot **slots, int n, CommandId cid,
								BulkInsertState bistate, MemoryContext scratch);
extern DestReceiver *stream_table_insert_receiver(Oid table);

#endif
