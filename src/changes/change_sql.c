/*
 * change_sql.c
 *	  The SQL of change streams: noting the groups a merge changes, and
 *	  turning them into change events.
 *
 * A view with a change stream has two more tables (catalog/names.c):
 *	 changed_<id> (_gid)			the groups merges touched since the last
 *									emission: ROW(the view's own keys)::text
 *	 emitted_<id> (_rid, _gid, last)	every row of the view as its last
 *									change event gave it, by identity: its
 *									group and window, as text
 * The combiner's merge notes the groups of the deltas it moves in
 * changed_<id>, in the merge's own statement (window/merge_sql.c, also).
 * Its job (worker/change_events.c) then reads the view's current rows of
 * those groups (ddl/read_view.c, with their identity), compares them with
 * emitted_<id>, writes the differences back there and returns them as
 * events: the old row (NULL for a new row), the new row (NULL for a row
 * that left the view).  So each event's old row is, by construction, the
 * previous event's new row for that row of the view, and once every merge
 * was followed by an emission the last new rows are the view.  Views whose
 * rows change with time alone (a sliding window, ttl) are also compared
 * whole, from time to time.
 *
 * Identities are text, so that NULL keys match and every type compares:
 * they are written with the text forms pinned (stream_changes_pin_text),
 * so that the merge and the emission spell a group the same way.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "analyze/view_query.h"
#include "changes/changes.h"
#include "ddl/read_view.h"
#include "window/sliding.h"

/* The settings that decide the text of values in identities */
static const char *const pinned_settings[][2] = {
	{"TimeZone", "UTC"},
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
};

/*
 * Pin the settings that decide how values are written as text, until
 * AtEOXact_GUC(true, the returned level).
 */
int
stream_changes_pin_text(void)
{
	int			level = NewGUCNestLevel();

	for (int i = 0; i < lengthof(pinned_settings); i++)
		(void) set_config_option(pinned_settings[i][0], pinned_settings[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * "changed AS (INSERT INTO changed_<id> ...)": the common table expression
 * that notes the groups of the deltas a merge of view id moves, for its
 * merge statement (columns: its state table's, key_count of them keys);
 * NULL when the view has no change stream.
 */
char *
stream_changes_note_sql(int id, List *columns, int key_count, WindowSpec *window)
{
	StringInfoData keys;
	ListCell   *lc;

	if (!OidIsValid(stream_view_relation_relid(id, VIEW_CHANGED_GROUPS, true)))
		return NULL;
	initStringInfo(&keys);
	foreach(lc, columns)
	{
		int			i = foreach_current_index(lc);

		if (i >= stream_window_hidden_keys(window) && i < key_count)
			appendStringInfo(&keys, "%sm.%s", keys.len ? ", " : "",
							 ((StateColumn *) lfirst(lc))->name);
	}
	return psprintf("changed AS (INSERT INTO %s SELECT ROW(%s)::pg_catalog.text FROM moved m "
					"GROUP BY 1 ON CONFLICT DO NOTHING)",
					stream_view_relation_sql(id, VIEW_CHANGED_GROUPS), keys.data);
}

/*
 * Do the view's rows change with time alone (a sliding window, ttl)?  Then
 * its emissions compare it whole now and then.
 */
bool
stream_changes_follow_time(WindowSpec *window)
{
	return window->kind == WINDOW_SLIDING || window->ttl != NULL;
}

/*
 * The statement that emits the changes of the view of row: its result is
 * the events of the change stream, each "writer (this transaction), old,
 * new, final", and it brings emitted_<id> up to date.  It compares the
 * rows of the groups noted in changed_<id> (and empties it), or with all
 * every row.  Run with the text forms pinned, as the view's owner.
 */
char *
stream_changes_emit_sql(ContinuousViewRow *row, bool all)
{
	ViewShape  *shape = stream_view_shape((Query *) stringToNode(row->query),
										  stream_window_spec_from_text(&row->window));
	char	   *read = stream_read_view_identified_sql(shape, row->id, row->state_table);
	char	   *type = format_type_be_qualified(get_rel_type_id(row->view));
	char	   *emitted = stream_view_relation_sql(row->id, VIEW_EMITTED_ROWS);
	StringInfoData aliases;
	StringInfoData fields;
	TupleDesc	desc;
	int			ncolumns;

	/*
	 * The read gives the view's columns, window columns (window_start and
	 * window_end, session_start and session_end) included: count them from
	 * its row type, not from the query's target list.
	 */
	desc = lookup_rowtype_tupdesc(get_rel_type_id(row->view), -1);
	ncolumns = desc->natts;
	ReleaseTupleDesc(desc);
	initStringInfo(&aliases);
	initStringInfo(&fields);
	for (int n = 1; n <= ncolumns; n++)
	{
		appendStringInfo(&aliases, ", _c%d", n);
		appendStringInfo(&fields, "%sr._c%d", n > 1 ? ", " : "", n);
	}
	return psprintf("WITH cand AS (DELETE FROM %s RETURNING _gid), "
					"cur AS (SELECT r._gid, r._rid, ROW(%s)::%s AS new "
					"FROM (%s) r(_gid, _rid%s)%s), "
					"prev AS (SELECT e._gid, e._rid, e.last FROM %s e%s), "
					"diff AS (SELECT COALESCE(c._rid, p._rid) AS _rid, "
					"COALESCE(c._gid, p._gid) AS _gid, p.last AS old, c.new, "
					"c._rid IS NOT NULL AS has_new "
					"FROM cur c FULL JOIN prev p ON p._rid OPERATOR(pg_catalog.=) c._rid "
					"WHERE p._rid IS NULL OR c._rid IS NULL "
					"OR NOT (p.last OPERATOR(pg_catalog.*=) c.new)), "
					"gone AS (DELETE FROM %s e USING diff d "
					"WHERE NOT d.has_new AND e._rid OPERATOR(pg_catalog.=) d._rid), "
					"kept AS (INSERT INTO %s AS e SELECT _rid, _gid, new FROM diff WHERE has_new "
					"ON CONFLICT (_rid) DO UPDATE SET last = excluded.last) "
					"SELECT pg_catalog.pg_current_xact_id(), old, new, false FROM diff",
					stream_view_relation_sql(row->id, VIEW_CHANGED_GROUPS),
					fields.data, type, read, aliases.data,
					all ? "" : " WHERE EXISTS (SELECT FROM cand k WHERE k._gid OPERATOR(pg_catalog.=) r._gid)",
					emitted,
					all ? "" : " WHERE EXISTS (SELECT FROM cand k WHERE k._gid OPERATOR(pg_catalog.=) e._gid)",
					emitted, emitted);
}

/* The change streams of the database (ChangeStream *, in cxt), SPI connected */
List *
stream_change_streams(MemoryContext cxt)
{
	List	   *streams = NIL;

	if (SPI_execute("SELECT c.view_id, c.stream FROM " STREAM_CHANGE_STREAMS_TABLE " c "
					"JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.stream "
					"ORDER BY c.view_id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read " STREAM_CHANGE_STREAMS_TABLE);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		ChangeStream *c = palloc(sizeof(ChangeStream));
		bool		isnull;

		c->view_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		c->stream = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		streams = lappend(streams, c);
		MemoryContextSwitchTo(old);
	}
	return streams;
}
