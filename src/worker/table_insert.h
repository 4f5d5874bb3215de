/*
 * table_insert.h
 *	  Rows of a transform inserted straight into its output table.
 */
#ifndef STREAM_EXT_TABLE_INSERT_H
#define STREAM_EXT_TABLE_INSERT_H

#include "tcop/dest.h"

extern bool stream_table_insert_direct(Oid table, Oid owner, int ncolumns);
extern DestReceiver *stream_table_insert_receiver(Oid table);

#endif
