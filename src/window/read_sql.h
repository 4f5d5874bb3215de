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
	bool		one_row_per_group;	/* rows are groups, with their kept
									 * results: no GROUP BY, HAVING as WHERE */
	char	   *identity;		/* which of a group's rows a row is (its
								 * window), stable from read to read, or
								 * NULL: one row per group */
} WindowReadSql;

/*
 * The columns of a view that keeps its aggregates' results in its state
 * rows (ViewShape.final_names), or reads them from its state rows alone,
 * each list quoted and comma separated; for
 * a view with grouping sets, those of one set (the keys it rolls up are
 * NULL in all its rows, and neither matched nor taken for NULL keys).
 */
typedef struct KeptResultsSql
{
	const char *keys;			/* the keys: "k1, k2" */
	const char *keys_match;		/* delta d's keys equal row t's: "d.k1
								 * OPERATOR(pg_catalog.=) t.k1 AND ..." */
	const char *row_columns;	/* every key and state column of row t:
								 * "t.k1, t.a1, ..." */
	const char *any_key_null;	/* "t.k1 IS NULL OR ...", or "false" */
	const char *set;			/* the set's rows: "_grouping = 3", or NULL */
	const char *empty_row;		/* a row of no states for a set that has
								 * its row without events, or NULL */
	const char *results;		/* the kept results: "a1_count_final, ..." */
	const char *finalize;		/* each result from combined states, named
								 * as kept: "finalize_agg(...) AS ..., ..." */
	bool		from_states;	/* no result table: the state rows hold the
								 * results, each state finalized alone
								 * ("finalize_state(...) AS ..." in results) */
	const char *delta_columns;	/* the delta table's attribute numbers of
								 * the matched keys, as an int2[] literal
								 * ("'{2,3}'"), or NULL: a key's equality
								 * does not hash (ddl/changed_keys.c) */
	const char *key_args;		/* the matched keys of row s: ", s.k1, ..." */
} KeptResultsSql;

extern bool stream_window_reads_whole_stream(WindowSpec *w);
extern WindowReadSql *stream_window_read_sql(WindowSpec *w, int id, const char *state_columns,
											 const char *user_keys, Oid time_type,
											 List *kept);

#endif
