/*
 * restore.h
 *	  Continuous views across pg_dump and pg_restore.
 */
#ifndef STREAM_EXT_RESTORE_H
#define STREAM_EXT_RESTORE_H

#include "nodes/parsenodes.h"

extern char *stream_portable_query_text(Query *query);

#endif
