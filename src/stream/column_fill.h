/*
 * column_fill.h
 *	  Defaults and stored generated columns of events formed outside the
 *	  executor.
 */
#ifndef STREAM_COLUMN_FILL_H
#define STREAM_COLUMN_FILL_H

#include "nodes/bitmapset.h"
#include "utils/relcache.h"

typedef struct StreamColumnFill StreamColumnFill;

extern bool stream_has_generated_columns(Relation rel);
extern bool stream_has_constraints(Relation rel);
extern StreamColumnFill *stream_column_fill_begin(Relation rel, Bitmapset *given);
extern void stream_column_fill(StreamColumnFill *fill, Datum *values, bool *isnull);
extern void stream_column_fill_end(StreamColumnFill *fill);

#endif
