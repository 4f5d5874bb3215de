/*
 * merge_sql.c
 *	  The statement that merges a view's committed deltas into its state
 *	  table, in one transaction:
 *
 *	 WITH moved AS (DELETE FROM delta WHERE ctid = ANY (ARRAY(
 *					  SELECT ctid FROM delta WHERE xid_committed(writer_xid)
 *					  LIMIT chunk))
 *					RETURNING keys, states),
 *		  merged AS (INSERT INTO state SELECT keys, combine_agg(agg, state)...
 *					   FROM moved GROUP BY keys
 *					 ON CONFLICT (keys) DO UPDATE
 *					   SET state = combine_states(agg, old, new)...
 *					 RETURNING 1)
 *	 SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM merged)
 *
 * A view that keeps rows moves its committed rows as they are (no
 * grouping, no conflict): stream_window_move_rows_sql; a transform into a
 * table moves them into that table the same way.
 * A view that keeps its results (a result table: ddl/read_view.c) has the
 * merged rows return their keys and results (finalize_state), and
 * upserts them into the result table in the same statement.
 *
 * It moves at most `chunk` deltas, so that a merge needs bounded space (a
 * full disk is recovered from with the space of one chunk); the combiner
 * repeats it, a transaction each, while it moves a full chunk.
 * Readers see either the deltas or the merged rows, never both, because the
 * move is one transaction and readers only count deltas of transactions that
 * committed before their snapshot.  A sliding view's steps also go into the
 * blocks holding them (window/sliding.c); session windows chain the moved
 * partial sessions with the stored sessions they touch (window/session.c).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "catalog/catalog.h"
#include "window/merge_sql.h"
#include "window/session.h"
#include "window/sliding.h"

/* A notification's payload is shorter than this (commands/async.c) */
#define NOTIFY_PAYLOAD_LIMIT (BLCKSZ - NAMEDATALEN - 128)

/* The statement's result: deltas moved, state rows written */
#define MERGE_COUNTS \
	"SELECT (SELECT pg_catalog.count(*) FROM moved), (SELECT pg_catalog.count(*) FROM merged)"

/* The pieces of SQL built from the state table's columns */
typedef struct MergeColumns
{
	StringInfoData keys;		/* k1, k2 */
	StringInfoData aggs_select; /* , combine_agg(agg, a1)... */
	StringInfoData aggs_update; /* a1 = combine_states(agg, t.a1, excluded.a1)... */
	StringInfoData returning;	/* d.k1, ..., d.a1 ... */
	StringInfoData old_returning;	/* t.k1, ..., t.a1 ... */
	StringInfoData session_eq;	/* m.k1 = t.k1 AND ... */
	StringInfoData session_null;	/* m.k1 IS NOT DISTINCT FROM t.k1 AND ... */
	StringInfoData any_null;	/* t.k1 IS NULL OR ... (StateColumn.null_test) */
	StringInfoData blocks[SLIDING_LEVELS];	/* a step's row as a block's */
	StringInfoData kept;		/* t.k1, ..., finalize_state(agg, t.a1,
								 * NULL::type) AS r1 ... (with a result
								 * table) */
	StringInfoData kept_update; /* r1 = excluded.r1, ...; "" without a
								 * result table */
} MergeColumns;

static void
build_columns(MergeColumns *m, List *columns, int key_count, WindowSpec *spec)
{
	Interval   *lengths[SLIDING_LEVELS];
	int			levels = stream_sliding_levels(spec, lengths);
	ListCell   *lc;

	initStringInfo(&m->keys);
	initStringInfo(&m->aggs_select);
	initStringInfo(&m->aggs_update);
	initStringInfo(&m->returning);
	initStringInfo(&m->old_returning);
	initStringInfo(&m->session_eq);
	initStringInfo(&m->session_null);
	initStringInfo(&m->any_null);
	initStringInfo(&m->kept);
	initStringInfo(&m->kept_update);
	for (int l = 1; l < SLIDING_LEVELS; l++)
		initStringInfo(&m->blocks[l]);

	foreach(lc, columns)
	{
		StateColumn *c = lfirst(lc);
		const char *col = c->name;
		int			i = foreach_current_index(lc);

		appendStringInfo(&m->returning, "%sd.%s", i ? ", " : "", col);
		appendStringInfo(&m->old_returning, "%st.%s", i ? ", " : "", col);
		for (int l = 1; l < levels; l++)
		{
			/* a step's row of level l: the block of level l holding it */
			if (strcmp(col, "_level") == 0)
				appendStringInfo(&m->blocks[l], "%d::pg_catalog.int2", l);
			else if (strcmp(col, "_step") == 0)
				appendStringInfo(&m->blocks[l], ", pg_catalog.date_bin(%s, m._step, "
								 "CAST('2000-01-01 00:00:00+00' AS %s))",
								 stream_interval_sql(lengths[l]), c->type);
			else
				appendStringInfo(&m->blocks[l], ", m.%s", col);
		}
		if (i < key_count)
		{
			appendStringInfo(&m->keys, "%s%s", i ? ", " : "", col);
			appendStringInfo(&m->session_eq, "m.%s = t.%s AND ", col, col);
			appendStringInfo(&m->session_null, "m.%s IS NOT DISTINCT FROM t.%s AND ", col, col);
			appendStringInfo(&m->any_null, "%s%s", i ? " OR " : "", c->null_test);
			appendStringInfo(&m->kept, "%st.%s", i ? ", " : "", col);
		}
		else
		{
			appendStringInfo(&m->aggs_select,
							 ", " STREAM_INTERNAL_SCHEMA ".combine_agg(%s::pg_catalog.regprocedure, %s)",
							 c->aggregate, col);
			appendStringInfo(&m->aggs_update,
							 "%s%s = " STREAM_INTERNAL_SCHEMA ".combine_states(%s::pg_catalog.regprocedure, t.%s, excluded.%s)",
							 m->aggs_update.len ? ", " : "", col, c->aggregate, col, col);
			if (c->result != NULL)
			{
				/* after the keys, which come before the first state */
				appendStringInfo(&m->kept, ", " STREAM_INTERNAL_SCHEMA
								 ".finalize_state(%s::pg_catalog.regprocedure, t.%s, NULL::%s) AS %s",
								 c->aggregate, col, c->result_type, c->result);
				appendStringInfo(&m->kept_update, "%s%s = excluded.%s",
								 m->kept_update.len ? ", " : "", c->result, c->result);
			}
		}
	}
}

/*
 * Sessions: the moved partial sessions and the stored sessions of their
 * groups within a gap of them are chained again, and replace those stored
 * sessions.  Groups are matched with = (an index or hash join), and groups
 * with a NULL key separately.
 */
static char *
session_merge_sql(MergeColumns *m, const char *moved, const char *state, int key_count,
				  WindowSpec *spec)
{
	char	   *gap = stream_interval_sql(spec->size);
	char	   *near = psprintf("t._session_end > m._session_start - %s AND "
								"t._session_start < m._session_end + %s",
								gap, gap);
	char	   *old_null = "";

	if (key_count > 0)
		old_null = psprintf(", old_null AS (DELETE FROM %s t "
							"WHERE (%s) AND EXISTS (SELECT 1 FROM moved m WHERE %s%s) RETURNING %s)",
							state, m->any_null.data, m->session_null.data, near,
							m->old_returning.data);
	return psprintf("WITH %s, "
					"old AS (DELETE FROM %s t WHERE EXISTS ("
					"SELECT 1 FROM moved m WHERE %s%s) RETURNING %s)%s, "
					"u AS (SELECT * FROM moved UNION ALL SELECT * FROM old%s), "
					"merged AS (INSERT INTO %s "
					"SELECT %s%s FROM (%s) s GROUP BY %s%s_session RETURNING 1) " MERGE_COUNTS,
					moved, state, m->session_eq.data, near, m->old_returning.data,
					old_null, key_count > 0 ? " UNION ALL SELECT * FROM old_null" : "",
					state, m->keys.data, m->aggs_select.data + (key_count > 0 ? 0 : 2),
					stream_sessionize_sql(m->keys.data, spec->size, "u"), m->keys.data,
					key_count > 0 ? ", " : "");
}

/*
 * The committed deltas to move, as "moved AS (DELETE ... RETURNING
 * returning)": at most chunk, or with chunk 0 the one at ctid $1.
 */
static char *
moved_deltas_sql(const char *delta, const char *returning, int chunk)
{
	if (chunk > 0)
		return psprintf("moved AS (DELETE FROM %s d WHERE d.ctid = ANY (ARRAY("
						"SELECT c.ctid FROM %s c "
						"WHERE " STREAM_INTERNAL_SCHEMA ".xid_committed(c.writer_xid) LIMIT %d)) "
						"RETURNING %s)",
						delta, delta, chunk, returning);
	return psprintf("moved AS (DELETE FROM %s d WHERE d.ctid = $1 "
					"AND " STREAM_INTERNAL_SCHEMA ".xid_committed(d.writer_xid) "
					"RETURNING %s)",
					delta, returning);
}

/*
 * ", notified AS (...)": each moved row sent on channel with pg_notify, as
 * JSON (row_to_json: the view's column names); a row whose JSON does not fit
 * in a notification (PostgreSQL takes less than 8000 bytes) is sent as
 * {"truncated": true, "bytes": its length, "md5": of its JSON}: PostgreSQL
 * delivers equal payloads of one transaction once, which two different
 * long rows must not be.  The notifications go out when the move commits,
 * and only then.
 */
static char *
notified_rows_sql(const char *channel)
{
	return psprintf(", notified AS (SELECT pg_catalog.pg_notify(%s, "
					"CASE WHEN pg_catalog.octet_length(j) < %d THEN j "
					"ELSE pg_catalog.json_build_object('truncated', true, 'bytes', "
					"pg_catalog.octet_length(j), 'md5', pg_catalog.md5(j))::pg_catalog.text END) "
					"FROM (SELECT pg_catalog.row_to_json(m)::pg_catalog.text AS j FROM moved m) r)",
					quote_literal_cstr(channel), NOTIFY_PAYLOAD_LIMIT);
}

/*
 * The statement that moves the committed rows of view id, which keeps its
 * query's rows, from its delta table into its kept-rows table (the state
 * table: the same columns, without the writer): at most chunk rows, or with
 * chunk 0 the one whose ctid is $1.  columns: the kept-rows table's
 * (StateColumn *).  Like a merge, it returns one row: the rows moved, the
 * rows written.  A transform's rows go instead into its output: into is
 * then "table (column, ...)", the output and its columns in the order of
 * the kept-rows table's (ddl/transform.c makes them match), and the
 * table's triggers and constraints apply to each row.  With notify, each
 * moved row is also sent on that channel (notified_rows_sql).
 */
char *
stream_window_move_rows_sql(int id, List *columns, int chunk, const char *into,
							const char *notify)
{
	StringInfoData returning;
	ListCell   *lc;

	initStringInfo(&returning);
	foreach(lc, columns)
		appendStringInfo(&returning, "%sd.%s", returning.len ? ", " : "",
						 ((StateColumn *) lfirst(lc))->name);
	return psprintf("WITH %s, merged AS (INSERT INTO %s SELECT * FROM moved RETURNING 1)%s "
					MERGE_COUNTS "%s",
					moved_deltas_sql(stream_view_relation_sql(id, VIEW_DELTA_TABLE),
									 returning.data, chunk),
					into ? into : stream_view_relation_sql(id, VIEW_STATE_TABLE),
					notify ? notified_rows_sql(notify) : "",
					notify ? ", (SELECT pg_catalog.count(*) FROM notified)" : "");
}

/*
 * Does the merge statement of a view with this window upsert on its state
 * table's unique key?  (Sessions replace the stored sessions they touch.)
 */
bool
stream_window_merge_needs_unique_key(WindowSpec *spec)
{
	return spec->kind != WINDOW_SESSION;
}

/*
 * The merge statement of view id, moving at most chunk deltas, or with
 * chunk 0 the one delta whose ctid is $1 (if committed).  columns:
 * its state table's columns (StateColumn *, from
 * stream_catalog_state_columns), the first key_count of them keys.  It
 * returns one row: the deltas moved, the state rows written.  also, when
 * not NULL, is one more common table expression over the moved deltas
 * ("name AS (...)"), run with the merge: src/changes/ notes the groups a
 * merge changes so.
 */
char *
stream_window_merge_sql(int id, List *columns, int key_count, WindowSpec *spec, int chunk,
						const char *also)
{
	MergeColumns m;
	char	   *state = stream_view_relation_sql(id, VIEW_STATE_TABLE);
	char	   *delta = stream_view_relation_sql(id, VIEW_DELTA_TABLE);
	char	   *moved;
	char	   *source = "moved";
	Interval   *lengths[SLIDING_LEVELS];

	build_columns(&m, columns, key_count, spec);
	moved = moved_deltas_sql(delta, m.returning.data, chunk);
	if (also != NULL)
		moved = psprintf("%s, %s", moved, also);

	if (spec->kind == WINDOW_SESSION)
		return session_merge_sql(&m, moved, state, key_count, spec);
	if (key_count == 0)
		return psprintf("WITH %s, merged AS (INSERT INTO %s AS t "
						"SELECT %s, true FROM moved HAVING pg_catalog.count(*) > 0 "
						"ON CONFLICT (_one) DO UPDATE SET %s RETURNING 1) " MERGE_COUNTS,
						moved, state, m.aggs_select.data + 2, m.aggs_update.data);
	/* a sliding view's steps also go into their blocks (window/sliding.c) */
	if (stream_sliding_levels(spec, lengths) > 1)
		source = psprintf("(SELECT * FROM moved UNION ALL SELECT %s FROM moved m"
						  " UNION ALL SELECT %s FROM moved m) moved",
						  m.blocks[1].data, m.blocks[2].data);
	if (m.kept_update.len > 0)
		return psprintf("WITH %s, merged AS (INSERT INTO %s AS t "
						"SELECT %s%s FROM %s GROUP BY %s "
						"ON CONFLICT (%s) DO UPDATE SET %s RETURNING %s), "
						"kept AS (INSERT INTO %s AS r SELECT * FROM merged "
						"ON CONFLICT (%s) DO UPDATE SET %s) " MERGE_COUNTS,
						moved, state, m.keys.data, m.aggs_select.data, source, m.keys.data,
						m.keys.data, m.aggs_update.data, m.kept.data,
						stream_view_relation_sql(id, VIEW_RESULT_TABLE), m.keys.data,
						m.kept_update.data);
	/* a view of keys alone (SELECT k ... GROUP BY k) has nothing to combine */
	return psprintf("WITH %s, merged AS (INSERT INTO %s AS t "
					"SELECT %s%s FROM %s GROUP BY %s "
					"ON CONFLICT (%s) DO %s%s RETURNING 1) " MERGE_COUNTS,
					moved, state, m.keys.data, m.aggs_select.data, source, m.keys.data,
					m.keys.data, m.aggs_update.len > 0 ? "UPDATE SET " : "NOTHING",
					m.aggs_update.data);
}
