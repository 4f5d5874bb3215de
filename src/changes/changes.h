/*
 * changes.h
 *	  Change streams of continuous views: the SQL that notes which groups a
 *	  merge changed, and the SQL that turns those groups into change events.
 */
#ifndef STREAM_EXT_CHANGES_H
#define STREAM_EXT_CHANGES_H

#include "catalog/catalog.h"
#include "window/spec.h"

extern int	stream_changes_pin_text(void);
extern char *stream_changes_note_sql(int id, List *columns, int key_count, WindowSpec *window);
extern bool stream_changes_follow_time(WindowSpec *window);
/* The statements of one emission (change_sql.c) */
typedef struct EmitSql
{
	char	   *diff;			/* the rows that changed */
	char	   *close;			/* the rows that became final, or NULL */
} EmitSql;

extern List *stream_changes_own_keys(ContinuousViewRow *row);
extern char *stream_changes_key_columns_sql(List *keys);
extern char *stream_changes_groups_sql(ContinuousViewRow *row, List *keys, const char *watermark,
									   int limit);
extern EmitSql *stream_changes_emit_sql(ContinuousViewRow *row, List *keys, char **groups,
										const char *watermark);

#endif
