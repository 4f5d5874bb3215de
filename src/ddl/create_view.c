/*
 * create_view.c
 *	  CREATE VIEW ... WITH (continuous) and stream_ext.create_continuous_view.
 *
 * A continuous view is made of:
 *	 - stream_ext_internal.state_<id>: one row per group, the group keys and
 *	   each aggregate's partial state; unique on the keys (NULLs equal);
 *	 - stream_ext_internal.delta_<id>: partial states written by workers, each
 *	   row tagged with the transaction that inserted its events;
 *	 - the view the user named, which combines state rows with the deltas of
 *	   committed transactions and finalizes the aggregates;
 *	 - a row in stream_ext_internal.continuous_views.
 * The view depends on the stream (and the columns and functions it uses), so
 * DROP of the stream needs CASCADE; DROP VIEW removes the rest through the
 * extension's sql_drop event trigger.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "rewrite/rewriteSupport.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "analyze/view_query.h"
#include "ddl/create_view.h"
#include "ddl/read_view.h"
#include "window/spec.h"

PG_FUNCTION_INFO_V1(stream_ext_create_continuous_view);
PG_FUNCTION_INFO_V1(stream_ext_truncate_continuous_view);
PG_FUNCTION_INFO_V1(stream_ext_query_definition);
PG_FUNCTION_INFO_V1(stream_ext_catalog_changed);

#define INTERNAL_SCHEMA "stream_ext_internal"

/* The relation name of schema stream_ext_internal, or InvalidOid. */
Oid
stream_internal_relid(const char *name, bool missing_ok)
{
	Oid			nsp = get_namespace_oid(INTERNAL_SCHEMA, missing_ok);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(name, nsp);
}

Oid
stream_catalog_relid(bool missing_ok)
{
	return stream_internal_relid("continuous_views", missing_ok);
}

static void
spi_exec(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute failed (%d): %s", rc, sql);
}

static char *
column_type_sql(Oid type, int32 typmod, Oid collation)
{
	char	   *sql = format_type_with_typemod(type, typmod);

	if (OidIsValid(collation) && type_is_collatable(type))
		sql = psprintf("%s COLLATE %s", sql, generate_collation_name(collation));
	return sql;
}

static void
create_state_tables(ViewShape *shape, int id)
{
	StringInfoData cols;
	StringInfoData keys;
	ListCell   *lc,
			   *lc2;
	int			i = 0;

	initStringInfo(&cols);
	initStringInfo(&keys);
	forboth(lc, shape->keys, lc2, shape->key_names)
	{
		Node	   *expr = (Node *) ((TargetEntry *) lfirst(lc))->expr;

		appendStringInfo(&cols, "%s %s, ", quote_identifier(lfirst(lc2)),
						 column_type_sql(exprType(expr), exprTypmod(expr), exprCollation(expr)));
		appendStringInfo(&keys, "%s%s", i++ ? ", " : "", quote_identifier(lfirst(lc2)));
	}
	i = 0;
	forboth(lc, shape->aggs, lc2, shape->agg_names)
	{
		Aggref	   *aggref = lfirst(lc);
		Oid			type = list_nth_oid(shape->agg_state_types, i++);

		appendStringInfo(&cols, "%s %s, ", quote_identifier(lfirst(lc2)),
						 column_type_sql(type, -1, aggref->inputcollid));
	}
	cols.data[cols.len - 2] = '\0';

	if (shape->window->kind == WINDOW_SESSION)
	{
		/* several sessions per group; the combiner finds them by group */
		spi_exec(psprintf("CREATE TABLE " INTERNAL_SCHEMA ".state_%d (%s)", id, cols.data),
				 SPI_OK_UTILITY);
		spi_exec(psprintf("CREATE INDEX state_%d_session ON " INTERNAL_SCHEMA ".state_%d "
						  "(%s%s_session_end)", id, id, keys.data, keys.len ? ", " : ""),
				 SPI_OK_UTILITY);
	}
	else if (shape->keys == NIL)
		spi_exec(psprintf("CREATE TABLE " INTERNAL_SCHEMA ".state_%d (%s, "
						  "_one boolean NOT NULL DEFAULT true CHECK (_one) UNIQUE)",
						  id, cols.data), SPI_OK_UTILITY);
	else
	{
		spi_exec(psprintf("CREATE TABLE " INTERNAL_SCHEMA ".state_%d (%s)", id, cols.data),
				 SPI_OK_UTILITY);
		spi_exec(psprintf("CREATE UNIQUE INDEX state_%d_key ON " INTERNAL_SCHEMA ".state_%d "
						  "(%s) NULLS NOT DISTINCT", id, id, keys.data), SPI_OK_UTILITY);
	}
	/* the reaper finds expired rows by this column */
	if (shape->window->ttl_column != NULL)
		spi_exec(psprintf("CREATE INDEX state_%d_ttl ON " INTERNAL_SCHEMA ".state_%d (%s)",
						  id, id, quote_identifier(shape->window->ttl_column)), SPI_OK_UTILITY);
	spi_exec(psprintf("CREATE TABLE " INTERNAL_SCHEMA ".delta_%d "
					  "(writer_xid pg_catalog.xid8 NOT NULL, %s) "
					  "WITH (autovacuum_vacuum_threshold = 1000, "
					  "autovacuum_vacuum_scale_factor = 0)", id, cols.data),
			 SPI_OK_UTILITY);
}

static void
insert_catalog_row(int id, Oid view, ViewShape *shape, Oid state, Oid delta, char *query)
{
	Oid			argtypes[17] = {INT4OID, OIDOID, OIDOID, OIDOID, OIDOID, TEXTOID, TEXTOID,
		INT4OID, REGPROCEDUREARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID};
	char	   *time_attnum = NULL;
	Datum		values[17];
	char		nulls[17];
	int			naggs = list_length(shape->aggs);
	Datum	   *aggoids = palloc(sizeof(Datum) * Max(naggs, 1));
	WindowSpecText *w = stream_window_spec_to_text(shape->window);
	char	   *wtext[8];
	ListCell   *lc;
	int			i = 0;
	int			rc;

	foreach(lc, shape->aggs)
		aggoids[i++] = ObjectIdGetDatum(((Aggref *) lfirst(lc))->aggfnoid);

	/* the time column by number, so that renaming it changes nothing */
	if (w->time_column != NULL)
		time_attnum = psprintf("%d", (int) get_attnum(shape->stream, w->time_column));
	wtext[0] = w->kind;
	wtext[1] = time_attnum;
	wtext[2] = w->size;
	wtext[3] = w->step;
	wtext[4] = w->ttl;
	wtext[5] = w->ttl_column;
	wtext[6] = w->lateness;
	wtext[7] = w->keep_late;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int32GetDatum(id);
	values[1] = ObjectIdGetDatum(view);
	values[2] = ObjectIdGetDatum(shape->stream);
	values[3] = ObjectIdGetDatum(state);
	values[4] = ObjectIdGetDatum(delta);
	values[5] = CStringGetTextDatum(pg_get_querydef(shape->query, false));
	values[6] = CStringGetTextDatum(query);
	values[7] = Int32GetDatum(list_length(shape->keys));
	values[8] = PointerGetDatum(construct_array(aggoids, naggs, REGPROCEDUREOID,
												sizeof(Oid), true, TYPALIGN_INT));
	for (i = 0; i < 8; i++)
	{
		values[9 + i] = wtext[i] ? CStringGetTextDatum(wtext[i]) : (Datum) 0;
		nulls[9 + i] = wtext[i] ? ' ' : 'n';
	}
	rc = SPI_execute_with_args("INSERT INTO " INTERNAL_SCHEMA ".continuous_views "
							   "(id, view, stream, state_table, delta_table, definition, "
							   "query, key_count, aggregates, window_kind, time_attnum, "
							   "window_size, window_step, ttl, ttl_column, allowed_lateness, keep_late) "
							   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::pg_catalog.int2, "
							   "$12::pg_catalog.interval, $13::pg_catalog.interval, "
							   "$14::pg_catalog.interval, $15, $16::pg_catalog.interval, "
							   "$17::pg_catalog.bool)",
							   17, argtypes, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record continuous view: %d", rc);
	if (stream_window_has_event_time(shape->window) &&
		SPI_execute_with_args("INSERT INTO " INTERNAL_SCHEMA ".view_watermarks (view_id) VALUES ($1)",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the watermark of continuous view %d", id);
}

/*
 * Create a continuous view named name over the SELECT in raw (whose text is
 * sql).  Returns the view's OID.
 */
Oid
stream_create_continuous_view(RangeVar *name, List *aliases, RawStmt *raw, const char *sql,
							  WindowSpec *window)
{
	Query	   *query;
	Query	   *original;
	ViewShape  *shape;
	Oid			nspid;
	Oid			saved_user;
	int			saved_sec;
	int			id;
	Oid			state_relid;
	Oid			delta_relid;
	Oid			view_relid;
	char	   *qualified;
	StringInfoData create;
	ObjectAddress viewaddr;
	AclResult	acl;
	bool		isnull;

	if (name->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views cannot be temporary")));

	query = stream_analyze_select(copyObject(raw), sql);
	original = copyObject(query);
	shape = stream_view_shape(query, window);

	acl = pg_class_aclcheck(shape->stream, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FOREIGN_TABLE, get_rel_name(shape->stream));

	nspid = RangeVarGetCreationNamespace(name);
	qualified = quote_qualified_identifier(get_namespace_name(nspid), name->relname);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* Internal objects are made by the extension's owner, then handed over. */
	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_execute("SELECT pg_catalog.nextval('" INTERNAL_SCHEMA ".continuous_views_id_seq')",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not allocate a continuous view id");
	id = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	create_state_tables(shape, id);
	spi_exec(psprintf("ALTER TABLE " INTERNAL_SCHEMA ".state_%d OWNER TO %s", id,
					  quote_identifier(GetUserNameFromId(saved_user, false))), SPI_OK_UTILITY);
	spi_exec(psprintf("ALTER TABLE " INTERNAL_SCHEMA ".delta_%d OWNER TO %s", id,
					  quote_identifier(GetUserNameFromId(saved_user, false))), SPI_OK_UTILITY);
	SetUserIdAndSecContext(saved_user, saved_sec);

	state_relid = stream_internal_relid(psprintf("state_%d", id), false);
	delta_relid = stream_internal_relid(psprintf("delta_%d", id), false);

	/* The view itself belongs to the user, in the user's schema. */
	initStringInfo(&create);
	appendStringInfo(&create, "CREATE VIEW %s", qualified);
	if (aliases != NIL)
	{
		ListCell   *lc;
		bool		first = true;

		appendStringInfoString(&create, " (");
		foreach(lc, aliases)
		{
			appendStringInfo(&create, "%s%s", first ? "" : ", ", quote_identifier(strVal(lfirst(lc))));
			first = false;
		}
		appendStringInfoString(&create, ")");
	}
	appendStringInfo(&create, " AS %s", stream_read_view_sql(shape, id, state_relid));
	spi_exec(create.data, SPI_OK_UTILITY);
	CommandCounterIncrement();
	view_relid = get_relname_relid(name->relname, nspid);

	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	insert_catalog_row(id, view_relid, shape, state_relid, delta_relid, nodeToString(original));
	SetUserIdAndSecContext(saved_user, saved_sec);

	/*
	 * The view's rule depends on the stream, the columns and functions it
	 * uses, as if it read them itself: DROP and ALTER ... TYPE of those are
	 * refused the way they are for an ordinary view.
	 */
	ObjectAddressSet(viewaddr, RewriteRelationId, get_rewrite_oid(view_relid, ViewSelectRuleName, false));
	recordDependencyOnExpr(&viewaddr, (Node *) original, NIL, DEPENDENCY_NORMAL);
	if (shape->time_expr != NULL)
		recordDependencyOnExpr(&viewaddr, (Node *) shape->time_expr, list_make1(original->rtable),
							   DEPENDENCY_NORMAL);

	SPI_finish();
	CacheInvalidateRelcacheByRelid(stream_catalog_relid(false));
	return view_relid;
}

/* The id of a continuous view, or -1 when relid is not one. */
int
stream_continuous_view_id(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	Oid			catalog = stream_catalog_relid(true);
	int			id = -1;

	if (!OidIsValid(catalog) || get_rel_relkind(relid) != RELKIND_VIEW)
		return -1;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT id FROM " INTERNAL_SCHEMA ".continuous_views WHERE view = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the continuous view catalog");
	if (SPI_processed == 1)
	{
		bool		isnull;

		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	return id;
}

/*
 * The id of a continuous view the current user owns; errors when view is
 * not a continuous view or belongs to someone else.
 */
int
stream_owned_continuous_view_id(Oid view)
{
	int			id;

	if (!pg_class_ownercheck(view, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(view));
	id = stream_continuous_view_id(view);
	if (id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a continuous view", get_rel_name(view))));
	return id;
}

/*
 * The state and delta tables of a continuous view belong to the view's
 * owner (reading the view reads them with the owner's rights); follow an
 * ALTER VIEW ... OWNER TO.
 */
void
stream_follow_view_owner(Oid view)
{
	int			id = stream_continuous_view_id(view);
	HeapTuple	tuple;
	Oid			owner;
	Oid			saved_user;
	int			saved_sec;

	if (id < 0)
		return;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(view));
	if (!HeapTupleIsValid(tuple))
		return;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_exec(psprintf("ALTER TABLE " INTERNAL_SCHEMA ".state_%d OWNER TO %s", id,
					  quote_identifier(GetUserNameFromId(owner, false))), SPI_OK_UTILITY);
	spi_exec(psprintf("ALTER TABLE " INTERNAL_SCHEMA ".delta_%d OWNER TO %s", id,
					  quote_identifier(GetUserNameFromId(owner, false))), SPI_OK_UTILITY);
	SPI_finish();
	SetUserIdAndSecContext(saved_user, saved_sec);
}

/* stream_ext.create_continuous_view(name text, query text) */
Datum
stream_ext_create_continuous_view(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	List	   *options = NIL;
	List	   *names = stringToQualifiedNameList(name);
	List	   *stmts = raw_parser(sql, RAW_PARSE_DEFAULT);

	if (list_length(stmts) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the query of a continuous view must be a single SELECT")));
	if (!PG_ARGISNULL(2))
	{
		ArrayType  *array = PG_GETARG_ARRAYTYPE_P(2);
		Datum	   *elems;
		bool	   *elnulls;
		int			n;

		/* 'option=value' strings, as reloptions are written */
		deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elnulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *opt = elnulls[i] ? "" : TextDatumGetCString(elems[i]);
			char	   *eq = strchr(opt, '=');

			if (eq == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid continuous view option \"%s\"", opt),
						 errhint("Write each option as name=value, for example 'sliding_window=5 minutes'.")));
			*eq = '\0';
			options = lappend(options, makeDefElem(pstrdup(opt), (Node *) makeString(pstrdup(eq + 1)), -1));
		}
	}
	PG_RETURN_OID(stream_create_continuous_view(makeRangeVarFromNameList(names), NIL,
												linitial(stmts), sql,
												stream_window_spec_from_options(options)));
}

/* stream_ext.truncate_continuous_view(view): forget everything it aggregated. */
Datum
stream_ext_truncate_continuous_view(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	int			id;
	Oid			saved_user;
	int			saved_sec;

	id = stream_owned_continuous_view_id(view);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* deltas first: the combiner takes its row locks in the same order */
	spi_exec(psprintf("DELETE FROM " INTERNAL_SCHEMA ".delta_%d", id), SPI_OK_DELETE);
	spi_exec(psprintf("DELETE FROM " INTERNAL_SCHEMA ".state_%d", id), SPI_OK_DELETE);
	/* the watermark starts over too; catalog rows are the extension's */
	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	spi_exec(psprintf("UPDATE " INTERNAL_SCHEMA ".view_watermarks SET max_event_time = NULL, "
					  "late_events = 0 WHERE view_id = %d", id), SPI_OK_UPDATE);
	spi_exec(psprintf("DELETE FROM " INTERNAL_SCHEMA ".watermark_pending WHERE view_id = %d", id),
			 SPI_OK_DELETE);
	SetUserIdAndSecContext(saved_user, saved_sec);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * stream_ext_internal.query_definition(view): the defining query of a
 * continuous view, from the Query tree the catalog stores (only the
 * extension writes it); NULL when view is not a continuous view.
 */
Datum
stream_ext_query_definition(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {PG_GETARG_DATUM(0)};
	MemoryContext caller_cxt = CurrentMemoryContext;
	char	   *stored = NULL;
	text	   *definition;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT query FROM " INTERNAL_SCHEMA ".continuous_views WHERE view = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the continuous view catalog");
	if (SPI_processed == 1)
		stored = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (stored == NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	/* the result outlives SPI_finish */
	MemoryContextSwitchTo(caller_cxt);
	definition = cstring_to_text(pg_get_querydef((Query *) stringToNode(stored), true));
	SPI_finish();
	PG_RETURN_TEXT_P(definition);
}

/* Tell workers to reload the set of continuous views at their next batch. */
Datum
stream_ext_catalog_changed(PG_FUNCTION_ARGS)
{
	CacheInvalidateRelcacheByRelid(stream_catalog_relid(false));
	PG_RETURN_VOID();
}
