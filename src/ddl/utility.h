/*
 * utility.h
 *	  The ProcessUtility hook: CREATE VIEW ... WITH (continuous), streams'
 *	  arrival_timestamp column, and commands that need a database's workers
 *	  out of the way.
 */
#ifndef STREAM_EXT_UTILITY_H
#define STREAM_EXT_UTILITY_H

#include "postgres.h"

extern void stream_utility_init(void);

/*
 * Called before a column of a stream is renamed or dropped (drop), to
 * refuse it when something outside the stream's views names the column
 * (kafka/mapped_columns.c: a Kafka consumer's mapped columns).
 */
typedef void (*stream_column_change_hook_type) (Oid stream, const char *column, bool drop);
extern PGDLLIMPORT stream_column_change_hook_type stream_column_change_hook;

#endif
