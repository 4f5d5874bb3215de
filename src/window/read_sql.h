/*
 * read_sql.h
 *	  The parts of a continuous view's SELECT that depend on its window.
 */
#ifndef STREAM_EXT_WINDOW_READ_SQL_H
#define STREAM_EXT_WINDOW_READ_SQL_H

#include "nodes/pg_list.h"
#include "window/spec.h"

/*
 * The read of a view is
 *	 SELECT <columns> <the view's own columns> FROM (<rows>) s <join>
 *	 [WHERE <where>] GROUP BY <group>, <the view's keys> [HAVING <having>]
 * with these parts from its window (each list holds SQL strings).
 */
typedef struct WindowReadSql
{
	char	   *columns;		/* leading output columns with a trailing
								 * ", ", or "" */
	char	   *rows;			/* the rows to combine: a SELECT */
	char	   *join;			/* after the rows, or "" */
	List	   *where;
	List	   *group;
	List	   *having;
} WindowReadSql;

extern WindowReadSql *stream_window_read_sql(WindowSpec *w, int id, const char *state_columns,
											 const char *user_keys, Oid time_type);

#endif
