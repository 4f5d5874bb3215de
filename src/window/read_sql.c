/*
 * read_sql.c
 *	  What a view's window adds to the SELECT of the view users query
 *	  (ddl/read_view.c writes the rest).
 *
 * The rows to combine are the view's state rows plus the deltas of
 * committed writers.  Windows change which rows, and the grouping:
 *	 sliding	the steps inside the window, taking whole blocks where the
 *				view keeps them (window/sliding.c);
 *	 hopping	each slice counted in every window it belongs to
 *				(window_start, window_end);
 *	 session	partial sessions of a group chained while they are closer than
 *				the gap (session_start, session_end; window/session.c);
 * and ttl hides expired rows at once, before the reaper deletes them (a
 * NULL bucket never expires).  A view without a window that keeps its
 * aggregates' results reads them where no delta changes them.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "catalog/catalog.h"
#include "window/clock.h"
#include "window/read_sql.h"
#include "window/session.h"
#include "window/sliding.h"

/* Visible deltas of view id: "SELECT cols FROM delta WHERE xid_visible(...)" */
static char *
visible_deltas_sql(int id, const char *cols)
{
	return psprintf("SELECT %s FROM %s WHERE " STREAM_INTERNAL_SCHEMA ".xid_visible(writer_xid)",
					cols, stream_view_relation_sql(id, VIEW_DELTA_TABLE));
}

/*
 * The rows of a view that keeps its results: one per group.  A group whose
 * keys are not NULL and that no visible delta changes is its row of the
 * result table (a narrow table, read about as fast as a table of the
 * view's rows).  The other groups are combined from their state rows and
 * visible deltas and finalized: those some visible delta changes (the
 * distinct keys of the visible deltas joined to their state rows: a read of
 * one key whose deltas the gate rules out, ddl/delta_gate.c, then skips the
 * state row's probe too when the planner puts the gated scan outside, as it
 * did in every plan of large views seen; an EXISTS per state row probed it
 * first), and those with a NULL key (which equality
 * cannot match; they are few, and found in an index).  With grouping
 * sets, the rows of the set k describes; its empty_row joins the rows to
 * combine while the set has no result row.
 *
 * Which result rows a read takes is decided in the read's WHERE, on the
 * rows' _kept, so that the scan of the result table is a plain member of
 * the read's UNION ALL, filtered by delta_changes_key
 * (ddl/changed_keys.c): part (set) j's rows are 2j+1, and, for readers who
 * may not call it (reading through another role's view), 2j+2: those the
 * anti-join with the visible deltas keeps.  delta_read_allowed picks one of
 * the two when the read is planned.  Combined rows are 0; *where gets
 * part j's arms of the CASE.  When a key's equality does not hash, the
 * part is the anti-join alone, its rows 0.
 */
static char *
kept_results_rows_sql(int id, const char *state_columns, KeptResultsSql *k, int j,
					  StringInfo where)
{
	char	   *delta = stream_view_relation_sql(id, VIEW_DELTA_TABLE);
	char	   *state = stream_view_relation_sql(id, VIEW_STATE_TABLE);
	char	   *result = stream_view_relation_sql(id, k->from_states ? VIEW_STATE_TABLE :
												  VIEW_RESULT_TABLE);
	char	   *changed = psprintf("EXISTS (SELECT 1 FROM %s d WHERE %s AND "
								   STREAM_INTERNAL_SCHEMA ".xid_visible(d.writer_xid))",
								   delta, k->keys_match);
	char	   *in_set = k->set ? psprintf("t.%s AND ", k->set) : "";
	char	   *deltas = visible_deltas_sql(id, state_columns);
	char	   *empty = "";
	char	   *taken = "";
	int			anti_join_rows = 0;

	if (k->set)
		deltas = psprintf("%s AND %s", deltas, k->set);
	if (k->empty_row)
		empty = psprintf(" UNION ALL %s WHERE NOT EXISTS (SELECT 1 FROM %s t WHERE %s)",
						 k->empty_row, result, k->set);
	if (k->delta_columns)
	{
		char	   *regclass = psprintf("%s::pg_catalog.regclass",
										quote_literal_cstr(delta));

		taken = psprintf("SELECT %s, %s, %d AS _kept FROM %s t UNION ALL ",
						 k->keys, k->results, 2 * j + 1, result);
		anti_join_rows = 2 * j + 2;
		appendStringInfo(where, " WHEN %d THEN %s%s" STREAM_INTERNAL_SCHEMA
						 ".delta_read_allowed(%s) AND NOT " STREAM_INTERNAL_SCHEMA
						 ".delta_changes_key(%s, %s%s)"
						 " WHEN %d THEN NOT " STREAM_INTERNAL_SCHEMA ".delta_read_allowed(%s)",
						 2 * j + 1, k->set ? psprintf("s.%s", k->set) : "",
						 k->set ? " AND " : "", regclass, regclass, k->delta_columns,
						 k->key_args, anti_join_rows, regclass);
	}
	return psprintf("%sSELECT %s, %s, %d AS _kept FROM %s t WHERE %sNOT (%s) AND NOT %s "
					"UNION ALL SELECT %s, %s, 0 AS _kept FROM ("
					"SELECT %s FROM %s t WHERE %s(%s) "
					"UNION ALL SELECT %s FROM (SELECT DISTINCT %s FROM (%s) d) d "
					"JOIN %s t ON %s%s "
					"UNION ALL %s%s) u GROUP BY %s",
					taken, k->keys, k->results, anti_join_rows, result, in_set,
					k->any_key_null, changed,
					k->keys, k->finalize,
					state_columns, state, in_set, k->any_key_null,
					k->row_columns, k->keys, deltas, state, in_set, k->keys_match,
					deltas, empty, k->keys);
}

/*
 * The rows of a sliding window read: the steps from the oldest step to now,
 * taking whole blocks where the view keeps them.
 */
static char *
sliding_rows_sql(WindowSpec *w, int id, const char *cols, Oid time_type)
{
	char	   *state = stream_view_relation_sql(id, VIEW_STATE_TABLE);
	Interval   *lengths[SLIDING_LEVELS];
	char	   *bound[SLIDING_REAP_BEFORE];
	char	   *deltas;

	for (int i = 0; i < SLIDING_REAP_BEFORE; i++)
		bound[i] = stream_sliding_bound_sql((SlidingBound) i, w, time_type);
	deltas = psprintf("%s AND _step >= %s AND _step <= %s", visible_deltas_sql(id, cols),
					  bound[SLIDING_OLDEST_STEP], bound[SLIDING_NOW]);
	if (stream_sliding_levels(w, lengths) == 1)
		return psprintf("SELECT %s FROM %s WHERE _step >= %s AND _step <= %s UNION ALL %s",
						cols, state, bound[SLIDING_OLDEST_STEP], bound[SLIDING_NOW], deltas);
	/* big blocks [F2, G2); blocks [F1, F2) and [G2, G1); steps [L, F1) and [G1, H] */
	return psprintf("SELECT %s FROM %s WHERE _level = 2 AND _step >= %s AND _step < %s"
					" UNION ALL SELECT %s FROM %s WHERE _level = 1 AND"
					" (_step >= %s AND _step < %s OR _step >= %s AND _step < %s)"
					" UNION ALL SELECT %s FROM %s WHERE _level = 0 AND"
					" (_step >= %s AND _step < %s OR _step >= %s AND _step <= %s)"
					" UNION ALL %s",
					cols, state, bound[SLIDING_FIRST_BIG], bound[SLIDING_BIGS_END],
					cols, state, bound[SLIDING_FIRST_BLOCK], bound[SLIDING_FIRST_BIG],
					bound[SLIDING_BIGS_END], bound[SLIDING_BLOCKS_END],
					cols, state, bound[SLIDING_OLDEST_STEP], bound[SLIDING_FIRST_BLOCK],
					bound[SLIDING_BLOCKS_END], bound[SLIDING_NOW], deltas);
}

/*
 * The rows to combine: state rows and visible deltas; for sessions
 * numbered by the session each belongs to (_session).
 */
static char *
rows_sql(WindowSpec *w, int id, const char *cols, const char *user_keys, Oid time_type,
		 List *kept, List **where)
{
	char	   *rows = psprintf("SELECT %s FROM %s UNION ALL %s", cols,
								stream_view_relation_sql(id, VIEW_STATE_TABLE),
								visible_deltas_sql(id, cols));

	if (kept != NIL)
	{
		StringInfoData buf;
		StringInfoData arms;
		ListCell   *lc;

		/* one part per grouping set */
		initStringInfo(&buf);
		initStringInfo(&arms);
		foreach(lc, kept)
			appendStringInfo(&buf, "%s%s", buf.len ? " UNION ALL " : "",
							 kept_results_rows_sql(id, cols, lfirst(lc),
												   foreach_current_index(lc), &arms));
		if (arms.len > 0)
			*where = lappend(*where, psprintf("CASE s._kept%s ELSE true END", arms.data));
		return buf.data;
	}
	if (w->kind == WINDOW_SLIDING)
		return sliding_rows_sql(w, id, cols, time_type);
	if (w->kind != WINDOW_SESSION)
		return rows;
	return stream_sessionize_sql(user_keys ? user_keys : "", w->size, psprintf("(%s)", rows));
}

/*
 * Does a read of a view with window w group its rows by the view's keys
 * alone, over every event of the stream or of its sliding window (so that
 * a view without keys reads one row even without events)?  Hopping and
 * session windows add their own grouping.
 */
bool
stream_window_reads_whole_stream(WindowSpec *w)
{
	return w->kind == WINDOW_NONE || w->kind == WINDOW_SLIDING;
}

/*
 * The parts of view id's read that its window w decides.  state_columns:
 * every key and state column, quoted, comma separated; user_keys: the
 * view's own keys likewise, or NULL; time_type: the type of its time;
 * kept: the columns of a view (without a window) that keeps its results
 * (KeptResultsSql, one per grouping set), or NIL.
 */
WindowReadSql *
stream_window_read_sql(WindowSpec *w, int id, const char *state_columns,
					   const char *user_keys, Oid time_type, List *kept)
{
	WindowReadSql *r = palloc0(sizeof(WindowReadSql));

	Assert(kept == NIL || w->kind == WINDOW_NONE);
	r->columns = "";
	r->join = "";
	r->rows = rows_sql(w, id, state_columns, user_keys, time_type, kept, &r->where);
	r->one_row_per_group = (kept != NIL);
	switch (w->kind)
	{
		case WINDOW_NONE:
			if (w->ttl)
				r->where = lappend(r->where,
								   psprintf("(s.%s > %s OR s.%s IS NULL)",
											quote_identifier(w->ttl_column), stream_ttl_cutoff_sql(w->ttl),
											quote_identifier(w->ttl_column)));
			break;
		case WINDOW_SLIDING:
			break;				/* sliding_rows_sql reads the window's steps */
		case WINDOW_HOPPING:
			{
				Interval   *span = palloc0(sizeof(Interval));

				r->columns = psprintf("w.window_start, w.window_start + %s AS window_end, ",
									  stream_interval_sql(w->size));
				/* slice s is in the windows starting at s - (size - slide) ... s */
				span->time = stream_interval_usecs(w->size) - stream_interval_usecs(w->step);
				r->join = psprintf(" CROSS JOIN LATERAL pg_catalog.generate_series(s._slice - %s, "
								   "s._slice, %s) AS w(window_start)",
								   stream_interval_sql(span), stream_interval_sql(w->step));
				r->group = lappend(r->group, "w.window_start");
				r->identity = "w.window_start";
				if (w->ttl)
					r->where = lappend(r->where,
									   psprintf("w.window_start + %s > %s",
												stream_interval_sql(w->size),
												stream_ttl_cutoff_sql(w->ttl)));
				break;
			}
		case WINDOW_SESSION:
			r->columns = "pg_catalog.min(s._session_start) AS session_start, "
				"pg_catalog.max(s._session_end) AS session_end, ";
			r->group = lappend(r->group, "s._session");
			/* _session only numbers one read's sessions; their start names them */
			r->identity = "pg_catalog.min(s._session_start)";
			if (w->ttl)
				r->having = lappend(r->having,
									psprintf("pg_catalog.max(s._session_end) > %s",
											 stream_ttl_cutoff_sql(w->ttl)));
			break;
	}
	return r;
}
