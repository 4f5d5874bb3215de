/*
 * create_view.c
 *	  CREATE VIEW ... WITH (continuous) and stream_ext.create_continuous_view.
 *
 * A continuous view is made of:
 *	 - stream_ext_internal.state_<id>: one row per group, the group keys and
 *	   each aggregate's partial state; unique on the keys (NULLs equal);
 *	 - stream_ext_internal.delta_<id>: partial states written by workers, each
 *	   row tagged with the transaction that inserted its events;
 *	   (a view without aggregates or GROUP BY keeps the rows of its query
 *	   there instead: src/analyze/row_query.c);
 *	 - for a view without a window, with keys that hash,
 *	   stream_ext_internal.result_<id>: each group's aggregate results, which
 *	   the combiner keeps beside the states (ddl/read_view.c reads them);
 *	 - the view the user named, which combines state rows with the deltas of
 *	   committed transactions and finalizes the aggregates;
 *	 - a row in stream_ext_internal.continuous_views.
 * The view depends on the stream and the tables it joins (and the columns
 * and functions it uses), so DROP of any of them needs CASCADE; DROP VIEW
 * removes the rest through the extension's sql_drop event trigger.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_ts_config.h"
#include "catalog/pg_ts_dict.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "analyze/input_aggs.h"
#include "analyze/joins.h"
#include "analyze/view_query.h"
#include "catalog/catalog.h"
#include "catalog/held_events.h"
#include "catalog/view_errors.h"
#include "ddl/create_view.h"
#include "guc.h"
#include "stream/fdw.h"
#include "ddl/read_view.h"
#include "ddl/restore.h"
#include "ddl/transform.h"
#include "metrics/view_rates.h"
#include "window/lateness.h"
#include "window/spec.h"
#include "window/state_tables.h"

PG_FUNCTION_INFO_V1(stream_ext_create_continuous_view);
PG_FUNCTION_INFO_V1(stream_ext_truncate_continuous_view);
PG_FUNCTION_INFO_V1(stream_ext_query_definition);

static void
spi_exec(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "SPI_execute failed (%d): %s", rc, sql);
}

/*
 * Run the view's own CREATE VIEW.  Its errors are about the user's names (a
 * column named twice, more names than columns): they are said without the
 * generated statement SPI gives as context, which is long and names the
 * extension's internal tables; the context of the caller stays.
 */
static void
create_user_view(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		spi_exec(sql, SPI_OK_UTILITY);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->context != NULL && strncmp(edata->context, "SQL statement \"", 15) == 0)
		{
			char	   *rest = strchr(edata->context, '\n');

			edata->context = rest ? pstrdup(rest + 1) : NULL;
		}
		edata->internalquery = NULL;
		edata->internalpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
}

static char *
column_type_sql(Oid type, int32 typmod, Oid collation)
{
	char	   *sql = format_type_with_typemod(type, typmod);

	if (OidIsValid(collation) && type_is_collatable(type))
		sql = psprintf("%s COLLATE %s", sql, generate_collation_name(collation));
	return sql;
}

/* "k1 type, k2 type, ": the definitions of the key columns */
static void
append_key_columns(StringInfo buf, ViewShape *shape)
{
	ListCell   *lc,
			   *lc2;

	forboth(lc, shape->keys, lc2, shape->key_names)
	{
		Node	   *expr = (Node *) ((TargetEntry *) lfirst(lc))->expr;

		appendStringInfo(buf, "%s %s, ", quote_identifier(lfirst(lc2)),
						 column_type_sql(exprType(expr), exprTypmod(expr), exprCollation(expr)));
	}
}

/*
 * The columns of the result table of a view that keeps its results (NULL
 * for other views): its keys, each aggregate's result.
 */
static char *
result_columns_sql(ViewShape *shape)
{
	StringInfoData buf;
	ListCell   *lc,
			   *lc2;

	if (shape->final_names == NIL)
		return NULL;
	initStringInfo(&buf);
	append_key_columns(&buf, shape);
	forboth(lc, shape->aggs, lc2, shape->final_names)
	{
		Aggref	   *aggref = lfirst(lc);

		appendStringInfo(&buf, "%s %s, ", quote_identifier(lfirst(lc2)),
						 column_type_sql(aggref->aggtype, exprTypmod((Node *) aggref), aggref->aggcollid));
	}
	buf.data[buf.len -= 2] = '\0';
	return buf.data;
}

/*
 * "k1 IS NULL OR k2 IS NULL ..." (stream_key_null_sql, as reads test
 * them), or NULL for fewer than two keys
 */
static char *
several_keys_null_sql(ViewShape *shape)
{
	StringInfoData buf;
	ListCell   *lc,
			   *lc2;

	if (list_length(shape->key_names) < 2)
		return NULL;
	initStringInfo(&buf);
	forboth(lc, shape->key_names, lc2, shape->keys)
		appendStringInfo(&buf, "%s%s", buf.len ? " OR " : "",
						 stream_key_null_sql(quote_identifier(lfirst(lc)),
											 exprType((Node *) ((TargetEntry *) lfirst(lc2))->expr)));
	return buf.data;
}

/*
 * Create the state and delta tables of view id: a column per key and per
 * aggregate state, laid out for the view's window (window/state_tables.c).
 */
static void
create_state_tables(ViewShape *shape, int id)
{
	StringInfoData cols;
	ListCell   *lc,
			   *lc2;
	int			i = 0;

	initStringInfo(&cols);
	append_key_columns(&cols, shape);
	if (shape->keeps_rows)
	{
		cols.data[cols.len - 2] = '\0';
		stream_window_create_row_tables(id, cols.data, shape->window);
		return;
	}
	forboth(lc, shape->aggs, lc2, shape->agg_names)
	{
		Aggref	   *aggref = lfirst(lc);
		Oid			type = list_nth_oid(shape->agg_state_types, i++);

		appendStringInfo(&cols, "%s %s, ", quote_identifier(lfirst(lc2)),
						 column_type_sql(type, -1, aggref->inputcollid));
	}
	cols.data[cols.len - 2] = '\0';
	stream_window_create_state_tables(id, cols.data, stream_key_columns_sql(shape),
									  stream_shape_one_row_per_group(shape) ?
									  several_keys_null_sql(shape) : NULL,
									  result_columns_sql(shape),
									  shape->window);
	/* states whose reads fetch slices of them (analyze/input_aggs.c) */
	forboth(lc, shape->input_aggs, lc2, shape->agg_names)
		if (lfirst(lc) != NULL && stream_inputs_read_in_slices(lfirst(lc)))
			stream_window_store_uncompressed(id, lfirst(lc2));
}

/* Record view id in the catalog (and its watermark for event time). */
static void
insert_catalog_row(int id, Oid view, ViewShape *shape, Oid state, Oid delta, Query *original,
				   Oid output, const char *notify)
{
	ContinuousViewRow row = {0};
	List	   *aggregates = NIL;
	ListCell   *lc;

	foreach(lc, shape->aggs)
		aggregates = lappend_oid(aggregates, ((Aggref *) lfirst(lc))->aggfnoid);
	row.id = id;
	row.view = view;
	row.stream = shape->stream;
	row.state_table = state;
	row.delta_table = delta;
	row.definition = stream_portable_query_text(original);
	row.query = nodeToString(original);
	/* a view that keeps rows: neither keys nor aggregates (catalog/view_rows.c) */
	row.key_count = shape->keeps_rows ? 0 : list_length(shape->keys);
	row.output = output;
	row.notify = (char *) notify;
	stream_window_spec_to_text(shape->window, &row.window);
	stream_catalog_insert_view(&row, aggregates);
	if (stream_window_has_event_time(shape->window))
		stream_lateness_add_view(id);
}

/*
 * Revoke what ALTER DEFAULT PRIVILEGES of the role that created view id's
 * relations granted on them: they are their owner's only, so that no other
 * role reads them or is shown them as readable (information_schema, the
 * lists BI tools make).  SPI connected by the caller.
 */
static void
keep_view_relations_private(int id)
{
	for (int which = VIEW_STATE_TABLE; which <= VIEW_LAST_RELATION; which++)
	{
		const char *rel = stream_view_relation_sql(id, (ViewRelation) which);
		bool		isnull;
		Datum		grantees;

		if (!OidIsValid(stream_view_relation_relid(id, (ViewRelation) which, true)))
			continue;			/* no result table, no change stream */

		/*
		 * Not read-only: the snapshot must see the new tables.  Operators
		 * qualified: this runs as the extension's owner.
		 */
		if (SPI_execute(psprintf("SELECT pg_catalog.string_agg(DISTINCT CASE "
								 "WHEN a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC' "
								 "ELSE pg_catalog.quote_ident(r.rolname) END, ', ') "
								 "FROM pg_catalog.pg_class c "
								 "CROSS JOIN pg_catalog.aclexplode(c.relacl) a "
								 "LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee "
								 "WHERE c.oid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass "
								 "AND a.grantee OPERATOR(pg_catalog.<>) c.relowner",
								 quote_literal_cstr(rel)),
						false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read the privileges of %s", rel);
		grantees = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			spi_exec(psprintf("REVOKE ALL ON %s FROM %s", rel, TextDatumGetCString(grantees)),
					 SPI_OK_UTILITY);
	}
}

/* ALTER TABLE ... OWNER TO of view id's relations */
static void
give_view_relations_to(int id, Oid owner)
{
	const char *role = quote_identifier(GetUserNameFromId(owner, false));

	for (int which = VIEW_STATE_TABLE; which <= VIEW_LAST_RELATION; which++)
		if (OidIsValid(stream_view_relation_relid(id, (ViewRelation) which, true)))
			spi_exec(psprintf("ALTER TABLE %s OWNER TO %s",
							  stream_view_relation_sql(id, (ViewRelation) which), role),
					 SPI_OK_UTILITY);
}

/*
 * Write the definition of every continuous view of the database again from
 * its stored query, after a statement that renamed or moved something: the
 * views refer to what they read by OID and follow it, but their text, which
 * a restore parses again, named it as it was.
 */
void
stream_refresh_view_definitions(void)
{
	List	   *rows;
	ListCell   *lc;
	StreamRunAs as;
	Oid			argtypes[2] = {TEXTOID, INT4OID};

	if (!OidIsValid(get_extension_oid("stream_ext", true)))
		return;
	CommandCounterIncrement();
	rows = stream_catalog_views();
	if (rows == NIL)
		return;
	stream_begin_as_extension(&as);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, rows)
	{
		ContinuousViewRow *row = lfirst(lc);
		char	   *text = stream_portable_query_text((Query *) stringToNode(row->query));
		Datum		values[2] = {CStringGetTextDatum(text), Int32GetDatum(row->id)};

		if (strcmp(text, row->definition) == 0)
			continue;
		if (SPI_execute_with_args("UPDATE " STREAM_INTERNAL_SCHEMA ".continuous_views "
								  "SET definition = $1 WHERE id OPERATOR(pg_catalog.=) $2",
								  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update the definition of continuous view %d", row->id);
	}
	SPI_finish();
	stream_end_as_extension(&as);
	stream_catalog_changed();
}

/*
 * Make view id's relations owner's only (SPI connected; run as the
 * extension's owner, which made them): for relations added to an existing
 * view (src/changes/create.c).
 */
void
stream_hand_over_view_relations(int id, Oid owner)
{
	keep_view_relations_private(id);
	give_view_relations_to(id, owner);
}

/*
 * A view that keeps rows (no aggregates, no GROUP BY) names the columns of
 * its kept rows as its own: CREATE VIEW v (a, b) renames its query's
 * columns, so that its tables, its indexes and its stored query say a, b.
 * (CREATE VIEW refuses more names than columns.)
 */
static void
name_kept_columns(Query *query, List *aliases)
{
	ListCell   *lc;
	ListCell   *alias = list_head(aliases);

	if (aliases == NIL || query->hasAggs || query->groupClause != NIL)
		return;
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->resjunk || alias == NULL)
			continue;
		tle->resname = pstrdup(strVal(lfirst(alias)));
		alias = lnext(aliases, alias);
	}
}

/*
 * The options of CREATE VIEW ... WITH (continuous, ...) but continuous
 * (DefElem *): output, notify, security_barrier (the view's own, as for any
 * view), and the window's.
 */
ContinuousViewOptions *
stream_view_options(List *defs)
{
	ContinuousViewOptions *options = palloc0(sizeof(ContinuousViewOptions));
	List	   *window = NIL;
	bool		barrier_given = false;
	ListCell   *lc;

	foreach(lc, defs)
	{
		DefElem    *def = lfirst(lc);
		const char **value = NULL;

		if (def->defnamespace != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized continuous view option \"%s.%s\"",
							def->defnamespace, def->defname)));
		if (strcmp(def->defname, "security_barrier") == 0)
		{
			if (barrier_given)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("option \"%s\" specified more than once", def->defname)));
			barrier_given = true;
			options->security_barrier = defGetBoolean(def);
			continue;
		}
		if (strcmp(def->defname, "output") == 0)
			value = &options->output;
		else if (strcmp(def->defname, "notify") == 0)
			value = &options->notify;
		else
		{
			window = lappend(window, def);
			continue;
		}
		if (*value != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("option \"%s\" specified more than once", def->defname)));
		*value = defGetString(def);
	}
	options->window = stream_window_spec_from_options(window);
	if (options->notify != NULL &&
		(options->notify[0] == '\0' || strlen(options->notify) >= NAMEDATALEN))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid notify channel \"%s\"", options->notify),
				 errdetail("A channel name has 1 to %d bytes.", NAMEDATALEN - 1)));
	return options;
}

/*
 * notify is for the views whose rows the combiner moves: views that keep
 * rows, transforms into tables.
 */
static void
check_notify(ViewShape *shape, Oid output)
{
	if (!shape->keeps_rows)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("option \"notify\" is for continuous views without aggregates"),
				 errhint("To be told when an aggregate changes, make a change stream of this view "
						 "(stream_ext.create_change_stream) and a view with notify over it.")));
	if (OidIsValid(output) && stream_is_stream_relation(output))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("option \"notify\" cannot be given to a transform into a stream"),
				 errhint("Give it to a view over that stream.")));
}

/*
 * Is object (found in syscache cache by its OID: a type, say a domain, a
 * composite or an enum, a collation ...) in a temporary schema?
 */
static bool
is_temporary_object(int cache, Oid object)
{
	HeapTuple	tuple;
	bool		isnull;
	Datum		nsp;
	AttrNumber	nsp_att;

	switch (cache)
	{
		case TYPEOID:
			nsp_att = Anum_pg_type_typnamespace;
			break;
		case COLLOID:
			nsp_att = Anum_pg_collation_collnamespace;
			break;
		case OPEROID:
			nsp_att = Anum_pg_operator_oprnamespace;
			break;
		case TSCONFIGOID:
			nsp_att = Anum_pg_ts_config_cfgnamespace;
			break;
		case TSDICTOID:
			nsp_att = Anum_pg_ts_dict_dictnamespace;
			break;
		default:
			elog(ERROR, "unexpected cache %d", cache);
	}
	tuple = SearchSysCache1(cache, ObjectIdGetDatum(object));
	if (!HeapTupleIsValid(tuple))
		return false;
	nsp = SysCacheGetAttr(cache, tuple, nsp_att, &isnull);
	ReleaseSysCache(tuple);
	return !isnull && isAnyTempNamespace(DatumGetObjectId(nsp));
}

/*
 * Does node use an object of a temporary schema: call a function or
 * operator, yield a type, or name a relation, type or function in a
 * constant ('t'::regclass)?
 */
static bool
calls_temporary_code(Node *node, void *context)
{
	Oid			fn = InvalidOid;

	if (node == NULL)
		return false;
	if (IsA(node, Var) || IsA(node, Const) || IsA(node, FuncExpr) || IsA(node, OpExpr) ||
		IsA(node, Aggref) || IsA(node, RelabelType) || IsA(node, CoerceViaIO) ||
		IsA(node, CoerceToDomain) || IsA(node, ArrayCoerceExpr) || IsA(node, RowExpr) ||
		IsA(node, ConvertRowtypeExpr) || IsA(node, CaseExpr) || IsA(node, ArrayExpr) ||
		IsA(node, FieldSelect) || IsA(node, CoalesceExpr) || IsA(node, MinMaxExpr))
	{
		if (is_temporary_object(TYPEOID, exprType(node)))
			return true;
	}
	if (IsA(node, CollateExpr) && is_temporary_object(COLLOID, ((CollateExpr *) node)->collOid))
		return true;
	if (IsA(node, Const) && !((Const *) node)->constisnull)
	{
		Const	   *c = (Const *) node;
		Oid			object = DatumGetObjectId(c->constvalue);

		if ((c->consttype == REGTYPEOID && is_temporary_object(TYPEOID, object)) ||
			(c->consttype == REGCLASSOID && isAnyTempNamespace(get_rel_namespace(object))) ||
			((c->consttype == REGPROCOID || c->consttype == REGPROCEDUREOID) &&
			 isAnyTempNamespace(get_func_namespace(object))) ||
			((c->consttype == REGOPEROID || c->consttype == REGOPERATOROID) &&
			 is_temporary_object(OPEROID, object)) ||
			(c->consttype == REGCONFIGOID && is_temporary_object(TSCONFIGOID, object)) ||
			(c->consttype == REGDICTIONARYOID && is_temporary_object(TSDICTOID, object)) ||
			(c->consttype == REGCOLLATIONOID && is_temporary_object(COLLOID, object)) ||
			(c->consttype == REGNAMESPACEOID && OidIsValid(object) && isAnyTempNamespace(object)))
			return true;
	}
	if (IsA(node, FuncExpr))
		fn = ((FuncExpr *) node)->funcid;
	else if (IsA(node, Aggref))
		fn = ((Aggref *) node)->aggfnoid;
	else if (IsA(node, WindowFunc))
		fn = ((WindowFunc *) node)->winfnoid;
	else if (IsA(node, OpExpr) || IsA(node, DistinctExpr) || IsA(node, NullIfExpr))
		fn = get_opcode(((OpExpr *) node)->opno);
	else if (IsA(node, ScalarArrayOpExpr))
		fn = get_opcode(((ScalarArrayOpExpr *) node)->opno);
	if (OidIsValid(fn) && isAnyTempNamespace(get_func_namespace(fn)))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, calls_temporary_code, context, 0);
	return expression_tree_walker(node, calls_temporary_code, context);
}

/*
 * A continuous view outlives sessions: it may use no temporary relation
 * (the stream included), function or operator, nor be one.  (PostgreSQL
 * drops a session's temporary objects, and what depends on them, without
 * the DDL event that lets stream_ext forget a view.)
 */
static void
refuse_temporary_objects(RangeVar *name, Query *query)
{
	if (name->relpersistence == RELPERSISTENCE_TEMP ||
		isAnyTempNamespace(RangeVarGetCreationNamespace(name)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("continuous views cannot be temporary")));
	if (isQueryUsingTempRelation(query) || calls_temporary_code((Node *) query, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view cannot use temporary objects"),
				 errdetail("Temporary objects (tables, views, streams, types, collations, functions, operators, ...) end with their session; the view would not."),
				 errhint("Use permanent ones.")));
}

/*
 * Create a continuous view named name over the SELECT in raw (whose text is
 * sql), with options: an output (a relation's name) makes it a transform
 * whose rows go into that table or stream (transform.c); notify a view
 * whose rows are sent on that channel as the combiner moves them
 * (window/merge_sql.c).  Returns the view's OID.
 */
Oid
stream_create_continuous_view(RangeVar *name, List *aliases, RawStmt *raw, const char *sql,
							  ContinuousViewOptions *options)
{
	WindowSpec *window = options->window;
	const char *output = options->output;
	Query	   *query;
	Query	   *original;
	ViewShape  *shape;
	Oid			nspid;
	StreamRunAs as;
	int			id;
	Oid			state_relid;
	Oid			delta_relid;
	Oid			view_relid;
	char	   *qualified;
	StringInfoData create;
	AclResult	acl;
	Oid			output_relid = InvalidOid;

	query = stream_analyze_select(copyObject(raw), sql);
	refuse_temporary_objects(name, query);
	name_kept_columns(query, aliases);
	if (output != NULL)
	{
		output_relid = stream_transform_output(output);
		stream_transform_fit_columns(query, output_relid);
	}
	original = copyObject(query);
	shape = stream_view_shape(query, window);
	if (output != NULL)
		stream_transform_check(shape->stream, output_relid, window);
	if (options->notify != NULL)
		check_notify(shape, output_relid);

	acl = pg_class_aclcheck(shape->stream, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FOREIGN_TABLE, get_rel_name(shape->stream));
	if (stream_view_joins_tables(original))
	{
		/* what workers will read as the owner: readable, and no stream */
		stream_check_join_privileges(original, shape->stream_rti);
		(void) stream_rewrite_view_query(copyObject(original), shape->stream);
	}

	nspid = RangeVarGetCreationNamespace(name);
	qualified = quote_qualified_identifier(get_namespace_name(nspid), name->relname);

	/* before anything is made for it */
	if (OidIsValid(get_relname_relid(name->relname, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", name->relname)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* Internal objects are made by the extension's owner, then handed over. */
	stream_begin_as_extension(&as);
	id = stream_catalog_next_view_id();
	stream_view_rates_forget(id);
	create_state_tables(shape, id);
	stream_hand_over_view_relations(id, as.user);
	stream_end_as_extension(&as);

	state_relid = stream_view_relation_relid(id, VIEW_STATE_TABLE, false);
	delta_relid = stream_view_relation_relid(id, VIEW_DELTA_TABLE, false);

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
	if (options->security_barrier)
		appendStringInfoString(&create, " WITH (security_barrier)");
	appendStringInfo(&create, " AS %s", stream_read_view_sql(shape, id, state_relid));
	create_user_view(create.data);
	CommandCounterIncrement();
	view_relid = get_relname_relid(name->relname, nspid);

	stream_begin_as_extension(&as);
	insert_catalog_row(id, view_relid, shape, state_relid, delta_relid, original, output_relid,
					   options->notify);
	stream_end_as_extension(&as);

	stream_record_view_dependencies(view_relid, original, shape);
	if (OidIsValid(output_relid))
		stream_transform_record_dependencies(view_relid, output_relid);

	SPI_finish();
	stream_catalog_changed();
	return view_relid;
}

/*
 * The view's rule depends on the stream, the columns and functions its
 * defining query (original) uses, as if it read them itself: DROP and
 * ALTER ... TYPE of those are refused the way they are for an ordinary view.
 */
void
stream_record_view_dependencies(Oid view, Query *original, ViewShape *shape)
{
	ObjectAddress viewaddr;

	ObjectAddressSet(viewaddr, RewriteRelationId, get_rewrite_oid(view, ViewSelectRuleName, false));
	recordDependencyOnExpr(&viewaddr, (Node *) original, NIL, DEPENDENCY_NORMAL);
	if (shape->time_expr != NULL)
		recordDependencyOnExpr(&viewaddr, (Node *) shape->time_expr, original->rtable,
							   DEPENDENCY_NORMAL);
}

/*
 * Error in a REPEATABLE READ or SERIALIZABLE transaction: what (a function
 * that takes a lock and then reads the view and its emitted rows) must see
 * them as committed when it holds the lock.
 */
void
stream_refuse_xact_snapshot(const char *what)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run in a REPEATABLE READ or SERIALIZABLE transaction", what),
				 errdetail("It reads the continuous view and its change stream's rows as committed once it holds its locks; this transaction's snapshot is older."),
				 errhint("Run it in a READ COMMITTED transaction.")));
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
	StreamRunAs as;

	if (id < 0)
		return;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(view));
	if (!HeapTupleIsValid(tuple))
		return;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	stream_begin_as_extension(&as);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	give_view_relations_to(id, owner);
	SPI_finish();
	stream_end_as_extension(&as);
}

/* stream_ext.create_continuous_view(name text, query text) */
Datum
stream_ext_create_continuous_view(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *sql;
	List	   *options = NIL;
	List	   *names;
	List	   *stmts;

	stream_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the %s of a continuous view cannot be NULL",
						PG_ARGISNULL(0) ? "name" : "query")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	names = stringToQualifiedNameList(name);
	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
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
		if (ARR_NDIM(array) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("the options of a continuous view must be a one-dimensional array")));
		deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elnulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *opt;
			char	   *eq;
			bool		on;

			if (elnulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("a continuous view option cannot be NULL")));
			opt = TextDatumGetCString(elems[i]);
			eq = strchr(opt, '=');
			if (eq == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid continuous view option \"%s\"", opt),
						 errhint("Write each option as name=value, for example 'sliding_window=5 minutes'.")));
			*eq = '\0';
			/* continuous=true, as in CREATE VIEW: what this function makes */
			if (strcmp(opt, "continuous") == 0)
			{
				if (!parse_bool(eq + 1, &on) || !on)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("invalid value for option \"continuous\" of create_continuous_view: \"%s\"",
									eq + 1),
							 errdetail("The function creates continuous views.")));
				continue;
			}
			options = lappend(options, makeDefElem(pstrdup(opt), (Node *) makeString(pstrdup(eq + 1)), -1));
		}
	}
	PG_RETURN_OID(stream_create_continuous_view(makeRangeVarFromNameList(names), NIL,
												linitial(stmts), sql,
												stream_view_options(options)));
}

/*
 * Note every group the change stream of view id has emitted rows of as
 * changed, so that its next emission compares them all (src/changes/): the
 * columns of changed_<id> are the group's, which emitted_<id> has too.
 */
static void
note_every_emitted_group(int id)
{
	Relation	rel = table_open(stream_view_relation_relid(id, VIEW_CHANGED_GROUPS, false),
								 AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData columns;

	initStringInfo(&columns);
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			appendStringInfo(&columns, "%s%s", columns.len ? ", " : "",
							 quote_identifier(NameStr(TupleDescAttr(desc, i)->attname)));
	table_close(rel, AccessShareLock);
	spi_exec(psprintf("INSERT INTO %s (%s) SELECT DISTINCT ON (_gid) %s FROM %s ON CONFLICT DO NOTHING",
					  stream_view_relation_sql(id, VIEW_CHANGED_GROUPS), columns.data, columns.data,
					  stream_view_relation_sql(id, VIEW_EMITTED_ROWS)),
			 SPI_OK_INSERT);
}

/*
 * The writers of stream in progress finish first, so that a transaction's
 * events are all forgotten or all counted, never some.  A caller who may
 * lock the stream in SHARE mode (LOCK TABLE's rule: UPDATE, DELETE or
 * TRUNCATE on it) also holds new writers until it commits, as TRUNCATE of a
 * table does; another (a view's owner who may only read the stream) must
 * not be able to stop its writers, and only waits for those in progress.
 */
static void
wait_for_stream_writers(Oid stream)
{
	LOCKTAG		tag;

	if (pg_class_aclmask(stream, GetUserId(), ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE,
						 ACLMASK_ANY) != 0)
	{
		LockRelationOid(stream, ShareLock);
		return;
	}
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, stream);
	WaitForLockers(tag, ShareLock, false);
}

/* stream_ext.truncate_continuous_view(view): forget everything it aggregated. */
Datum
stream_ext_truncate_continuous_view(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	int			id;
	ContinuousViewRow *row;
	StreamRunAs as;

	stream_require_preload();
	id = stream_owned_continuous_view_id(view);

	row = stream_catalog_view(id);
	/* (again below, under the lock: a change stream may come meanwhile) */
	if (OidIsValid(stream_view_relation_relid(id, VIEW_CHANGED_GROUPS, true)))
		stream_refuse_xact_snapshot("stream_ext.truncate_continuous_view of a view with a change stream");
	wait_for_stream_writers(row->stream);

	/*
	 * An event-time view's watermark row, which this locks, is locked by
	 * every run of the view: until this commits, the workers hold the view's
	 * events back rather than wait for it, so that an owner's open
	 * transaction does not hold up the other streams of their queues
	 * (src/worker/held_back.c).  It waits for a batch writing deltas now.
	 */
	if (stream_window_has_event_time(stream_window_spec_from_text(&row->window)))
		LockRelationOid(stream_view_relation_relid(id, VIEW_DELTA_TABLE, false), ExclusiveLock);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* deltas first: the combiner takes its row locks in the same order */
	spi_exec(psprintf("DELETE FROM %s", stream_view_relation_sql(id, VIEW_DELTA_TABLE)),
			 SPI_OK_DELETE);
	spi_exec(psprintf("DELETE FROM %s", stream_view_relation_sql(id, VIEW_STATE_TABLE)),
			 SPI_OK_DELETE);
	if (OidIsValid(stream_view_relation_relid(id, VIEW_RESULT_TABLE, true)))
		spi_exec(psprintf("DELETE FROM %s", stream_view_relation_sql(id, VIEW_RESULT_TABLE)),
				 SPI_OK_DELETE);
	/*
	 * A change stream sees every row leave (src/changes/change_sql.c): note
	 * every emitted row's group.  An emission under way may have read the
	 * rows from before the truncation and be adding rows to emitted_<id>
	 * that this statement would not see: wait for it, and keep the next
	 * emission from starting until this commits.
	 */
	if (OidIsValid(stream_view_relation_relid(id, VIEW_CHANGED_GROUPS, true)))
	{
		LockRelationOid(stream_view_relation_relid(id, VIEW_EMITTED_ROWS, false), ExclusiveLock);
		stream_refuse_xact_snapshot("stream_ext.truncate_continuous_view of a view with a change stream");
		note_every_emitted_group(id);
	}
	/* the watermark starts over too; catalog rows are the extension's */
	stream_begin_as_extension(&as);
	stream_lateness_reset_view(id);
	stream_view_errors_forget(id);
	stream_held_events_forget(id);
	stream_end_as_extension(&as);
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
	Oid			view = PG_GETARG_OID(0);
	ListCell   *lc;

	foreach(lc, stream_catalog_views())
	{
		ContinuousViewRow *row = lfirst(lc);

		if (row->view == view)
			PG_RETURN_TEXT_P(cstring_to_text(pg_get_querydef((Query *) stringToNode(row->query),
															 true)));
	}
	PG_RETURN_NULL();
}
