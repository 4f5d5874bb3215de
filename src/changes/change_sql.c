/*
 * change_sql.c
 *	  The SQL of change streams: noting the groups a merge changes, and
 *	  turning them into change events.
 *
 * A view with a change stream has two more tables (catalog/names.c):
 *	 changed_<id> (_gid)			the groups merges touched since the last
 *									emission: ROW(the view's own keys, each
 *									through key_identity.c)::text
 *	 emitted_<id> (_rid, _gid, last, _final_at)	every row of the view as
 *									its last change event gave it, by
 *									identity (its group and window, as
 *									text), and when its window ends
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

#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "parser/parse_type.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "analyze/view_query.h"
#include "changes/changes.h"
#include "ddl/read_view.h"
#include "window/sliding.h"
#include "window/time_expr.h"

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
 * AtEOXact_GUC(false, the returned level) (false: any setting the view's code
 * changed meanwhile goes too).
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

/* The view's own keys among its state table's columns (StateColumn *) */
static List *
own_keys(List *columns, int key_count, WindowSpec *window)
{
	List	   *keys = NIL;
	ListCell   *lc;

	foreach(lc, columns)
	{
		int			i = foreach_current_index(lc);

		if (i >= stream_window_hidden_keys(window) && i < key_count)
			keys = lappend(keys, lfirst(lc));
	}
	return keys;
}

/* "prefix.k1, prefix.k2": the view's own keys, by their state table names */
static char *
own_keys_sql(List *keys, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, keys)
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix,
						 ((StateColumn *) lfirst(lc))->name);
	return buf.data;
}

/* "ROW(key_identity(prefix.k1), ...)": the group of the keys, named as read_view.c names it */
static char *
own_keys_identity_sql(List *keys, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "ROW(");
	foreach(lc, keys)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "",
						 stream_key_identity_sql(psprintf("%s%s", prefix,
														  ((StateColumn *) lfirst(lc))->name)));
	appendStringInfoString(&buf, ")");
	return buf.data;
}

/*
 * The own keys of the view of row among its state table's columns
 * (StateColumn *), for the functions below (SPI connected): read once per
 * emission.
 */
List *
stream_changes_own_keys(ContinuousViewRow *row)
{
	return own_keys(stream_catalog_state_columns(row->id), row->key_count,
					stream_window_spec_from_text(&row->window));
}

/*
 * ", _k1 type COLLATE c, ...": the columns of changed_<id> and
 * emitted_<id> holding the view's own keys (keys: stream_changes_own_keys).
 */
char *
stream_changes_key_columns_sql(List *keys)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, keys)
	{
		StateColumn *c = lfirst(lc);

		appendStringInfo(&buf, ", _k%d %s%s%s", foreach_current_index(lc) + 1, c->type,
						 c->collation ? " COLLATE " : "", c->collation ? c->collation : "");
	}
	return buf.data;
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
	List	   *keys;
	char	   *moved;

	if (!OidIsValid(stream_view_relation_relid(id, VIEW_CHANGED_GROUPS, true)))
		return NULL;
	keys = own_keys(columns, key_count, window);
	moved = own_keys_sql(keys, "m.");
	if (keys == NIL)
		return psprintf("changed AS (INSERT INTO %s SELECT DISTINCT ROW()::pg_catalog.text "
						"FROM moved m ON CONFLICT DO NOTHING)",
						stream_view_relation_sql(id, VIEW_CHANGED_GROUPS));
	return psprintf("changed AS (INSERT INTO %s SELECT %s::pg_catalog.text, %s "
					"FROM moved m GROUP BY %s ON CONFLICT DO NOTHING)",
					stream_view_relation_sql(id, VIEW_CHANGED_GROUPS),
					own_keys_identity_sql(keys, "m."), moved, moved);
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
 * start + width as SQL, or infinity when that would pass (within a day, for
 * the time zone's shift) the last time PostgreSQL has: a window ending past
 * it is never final, where the sum would fail every emission of the view.
 */
static char *
window_end_sql(const char *start, Interval *width, bool with_zone)
{
	const char *type = with_zone ? "pg_catalog.timestamptz" : "pg_catalog.timestamp";
	char	   *w = stream_interval_sql(width);

	return psprintf("(CASE WHEN %s IS NULL THEN NULL::%s WHEN %s OPERATOR(pg_catalog.<=) "
					"('294276-12-30 23:59:59.999999%s'::%s OPERATOR(pg_catalog.-) %s) "
					"THEN %s OPERATOR(pg_catalog.+) %s ELSE 'infinity'::%s END)",
					start, type, start, with_zone ? "+00" : "", type, w, start, w, type);
}

/*
 * SQL of the time at which row r of the read (its columns _c1, ...) is
 * final: its window ends then, so once the view's watermark passes it
 * nothing changes it (README, "Lateness and watermarks").  NULL for views
 * whose rows are never final: without event time, sliding windows, and
 * views without a date_bin bucket of their time as a column.  A time
 * without time zone is taken in UTC, as the workers take it for the
 * watermark (window/lateness.c).
 */
static char *
final_at_sql(ViewShape *shape, WindowSpec *window)
{
	char	   *end = NULL;
	ListCell   *lc;
	int			n = 0;
	bool		with_zone = exprType((Node *) shape->time_expr) == TIMESTAMPTZOID;

	if (!stream_window_has_event_time(window))
		return NULL;
	if (window->kind == WINDOW_HOPPING)
		end = "r._c2";			/* window_start, window_end, ... */
	else if (window->kind == WINDOW_SESSION)
		end = window_end_sql("r._c2", window->size, with_zone);	/* session_end */
	else if (window->kind == WINDOW_NONE)
	{
		/* a tumbling view: GROUP BY date_bin(width, time, origin) AS bucket */
		foreach(lc, shape->query->targetList)
		{
			TargetEntry *tle = lfirst(lc);
			FuncExpr   *f = (FuncExpr *) tle->expr;

			if (tle->resjunk)
				continue;
			n++;
			if (IsA(f, FuncExpr) && tle->ressortgroupref != 0 &&
				(f->funcid == F_DATE_BIN_INTERVAL_TIMESTAMPTZ_TIMESTAMPTZ ||
				 f->funcid == F_DATE_BIN_INTERVAL_TIMESTAMP_TIMESTAMP) &&
				IsA(linitial(f->args), Const) && !((Const *) linitial(f->args))->constisnull &&
				equal(lsecond(f->args), stream_window_time_value(shape->time_expr)))
			{
				end = window_end_sql(psprintf("r._c%d", n),
									 DatumGetIntervalP(((Const *) linitial(f->args))->constvalue),
									 with_zone);
				break;
			}
		}
	}
	if (end == NULL)
		return NULL;
	if (!with_zone)
		end = psprintf("pg_catalog.timezone('UTC', %s)", end);
	return end;
}

/*
 * May keys of type c->type be listed, as a text array, in the prefilter of
 * groups_condition_sql (= ANY, pg_catalog's operator)?  Not an array (the
 * list would stack them into an array of more dimensions, or fail on NULL
 * or unequal arrays), and only when the type's default equality is
 * pg_catalog's (an extension's type, such as ltree or hstore, has its own
 * in its schema).  The _gid test alone takes the rows otherwise.
 */
static bool
key_listable(StateColumn *c)
{
	Oid			typid;
	int32		typmod;
	TypeCacheEntry *tc;
	HeapTuple	op;
	bool		listable;

	parseTypeString(c->type, &typid, &typmod, false);
	if (type_is_array(getBaseType(typid)))
		return false;
	tc = lookup_type_cache(typid, TYPECACHE_EQ_OPR);
	if (!OidIsValid(tc->eq_opr))
		return false;
	op = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
	if (!HeapTupleIsValid(op))
		return false;
	listable = ((Form_pg_operator) GETSTRUCT(op))->oprnamespace == PG_CATALOG_NAMESPACE;
	ReleaseSysCache(op);
	return listable;
}

/*
 * The query that takes the groups to compare in an emission of the view of
 * row: it takes at most limit noted groups out of changed_<id> and returns
 * one row: the number of groups (those taken, and those of rows final at
 * watermark, a literal or NULL), their _gid as a text array, and as many
 * text arrays again, of each of their
 * own keys (keys: stream_changes_own_keys; NULL for a key that is not
 * key_listable): what stream_changes_emit_sql takes.
 */
char *
stream_changes_groups_sql(ContinuousViewRow *row, List *keys, const char *watermark, int limit)
{
	char	   *changed = stream_view_relation_sql(row->id, VIEW_CHANGED_GROUPS);
	StringInfoData columns;
	StringInfoData arrays;

	initStringInfo(&columns);
	initStringInfo(&arrays);
	for (int i = 1; i <= list_length(keys); i++)
	{
		appendStringInfo(&columns, ", _k%d", i);
		if (key_listable(list_nth(keys, i - 1)))
			appendStringInfo(&arrays, ", pg_catalog.array_agg(_k%d)::pg_catalog.text", i);
		else
			appendStringInfoString(&arrays, ", NULL::pg_catalog.text");
	}
	return psprintf("WITH cand AS (DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY "
					"(ARRAY(SELECT ctid FROM %s LIMIT %d)) RETURNING _gid%s), "
					"g AS (SELECT * FROM cand%s) "
					"SELECT pg_catalog.count(*), pg_catalog.array_agg(_gid)::pg_catalog.text%s FROM g",
					changed, changed, limit, columns.data,
					watermark ? psprintf(" UNION SELECT _gid%s FROM %s "
										 "WHERE _final_at OPERATOR(pg_catalog.<=) %s::pg_catalog.timestamptz",
										 columns.data,
										 stream_view_relation_sql(row->id, VIEW_EMITTED_ROWS),
										 watermark) : "",
					arrays.data);
}

/*
 * The condition that takes the rows of the groups of an emission from the
 * view's read r: their own keys among those listed (a condition on the
 * read's grouping columns, which the planner pushes down to the state
 * table's scan and its index), then their _gid.  groups: the arrays of
 * stream_changes_groups_sql, as text.
 */
static char *
groups_condition_sql(List *keys, char **groups)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, keys)
	{
		StateColumn *c = lfirst(lc);
		int			i = foreach_current_index(lc) + 1;

		if (groups[i] == NULL)
			continue;			/* not key_listable */
		appendStringInfo(&buf, "(r._k%d OPERATOR(pg_catalog.=) ANY (%s::%s[]%s%s) OR r._k%d IS NULL) AND ",
						 i, quote_literal_cstr(groups[i]), c->type,
						 c->collation ? " COLLATE " : "", c->collation ? c->collation : "", i);
	}
	appendStringInfo(&buf, "r._gid OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.text[])",
					 quote_literal_cstr(groups[0]));
	return buf.data;
}

/*
 * The statements that emit the changes of the view of row.  Each returns
 * events of the change stream, "writer (this transaction), old, new,
 * final", and brings emitted_<id> up to date:
 *	 diff compares the rows of the groups listed (groups: the arrays of
 *	 stream_changes_groups_sql; NULL: every row of the view) with their
 *	 emitted rows;
 *	 close (NULL when the view's rows are never final) then emits the rows
 *	 final at watermark once more, with final true, and marks them closed
 *	 (_final_at NULL; a change after all, from a transaction that was
 *	 applying when the watermark passed, sets it again).
 * keys are the view's own (stream_changes_own_keys); watermark is the
 * view's, as a literal, or NULL.  Run with the text forms pinned, as the
 * view's owner, one after the other.
 */
EmitSql *
stream_changes_emit_sql(ContinuousViewRow *row, List *keys, char **groups,
						const char *watermark)
{
	WindowSpec *window = stream_window_spec_from_text(&row->window);
	ViewShape  *shape = stream_view_shape((Query *) stringToNode(row->query), window);
	char	   *read = stream_read_view_identified_sql(shape, row->id, row->state_table);
	Oid			type = get_rel_type_id(row->view);
	TupleDesc	desc = lookup_rowtype_tupdesc(type, -1);
	char	   *emitted = stream_view_relation_sql(row->id, VIEW_EMITTED_ROWS);
	char	   *final_at = final_at_sql(shape, window);
	EmitSql    *sql = palloc0(sizeof(EmitSql));
	StringInfoData aliases;
	StringInfoData fields;
	StringInfoData key_columns;
	StringInfoData read_keys;

	initStringInfo(&aliases);
	initStringInfo(&fields);
	initStringInfo(&key_columns);
	initStringInfo(&read_keys);
	for (int i = 1; i <= list_length(keys); i++)
	{
		appendStringInfo(&aliases, ", _k%d", i);
		appendStringInfo(&key_columns, ", _k%d", i);
		appendStringInfo(&read_keys, ", r._k%d", i);
	}
	for (int i = 1; i <= desc->natts; i++)
	{
		appendStringInfo(&aliases, ", _c%d", i);
		appendStringInfo(&fields, "%sr._c%d", i > 1 ? ", " : "", i);
	}
	ReleaseTupleDesc(desc);
	if (final_at != NULL && watermark != NULL)
		sql->close = psprintf("WITH closed AS (UPDATE %s e SET _final_at = NULL "
							  "WHERE e._final_at OPERATOR(pg_catalog.<=) %s::pg_catalog.timestamptz "
							  "RETURNING e.last) "
							  "SELECT pg_catalog.pg_current_xact_id(), last, last, true FROM closed",
							  emitted, watermark);
	sql->diff = psprintf("WITH cur AS (SELECT r._gid, r._rid%s, ROW(%s)::%s AS new, %s AS final_at "
						 "FROM (%s) r(_gid, _rid%s)%s%s), "
						 "prev AS (SELECT e._gid, e._rid, e.last FROM %s e%s%s), "
						 "diff AS (SELECT c.*, p._rid AS old_rid, p._gid AS old_gid, p.last AS old "
						 "FROM cur c FULL JOIN prev p ON p._rid OPERATOR(pg_catalog.=) c._rid "
						 "WHERE p._rid IS NULL OR c._rid IS NULL "
						 "OR NOT (p.last OPERATOR(pg_catalog.*=) c.new)), "
						 "gone AS (DELETE FROM %s e USING diff d "
						 "WHERE d._rid IS NULL AND e._rid OPERATOR(pg_catalog.=) d.old_rid), "
						 "kept AS (INSERT INTO %s AS e SELECT _rid, _gid, new, final_at%s FROM diff "
						 "WHERE _rid IS NOT NULL ON CONFLICT (_rid) DO UPDATE SET last = excluded.last, "
						 "_final_at = excluded._final_at) "
						 "SELECT pg_catalog.pg_current_xact_id(), old, new, false FROM diff",
						 read_keys.data, fields.data, format_type_be_qualified(type),
						 final_at ? final_at : "NULL::pg_catalog.timestamptz", read, aliases.data,
						 groups ? " WHERE " : "", groups ? groups_condition_sql(keys, groups) : "",
						 emitted, groups ? " WHERE e._gid OPERATOR(pg_catalog.=) ANY " : "",
						 groups ? psprintf("(%s::pg_catalog.text[])", quote_literal_cstr(groups[0])) : "",
						 emitted, emitted, key_columns.data);
	return sql;
}
