/*
 * read_view.c
 *	  The SELECT of the view users query.
 *
 * Its rows are the view's state rows plus the deltas of committed writers,
 * combined per group and finalized with stream_ext_internal.finalize_agg;
 * the defining query's select list and HAVING are rewritten over them.  A
 * view without a window keeps each aggregate's result in a result table
 * (ViewShape.final_names): its read takes them for the groups no visible
 * delta changes, and finalizes only the others, so that reading it costs
 * about what reading a table of its rows does.  A view with grouping sets
 * groups by its hidden key too, reads its GROUPING() calls from it, reads
 * a set made twice twice, and its kept results one set at a time
 * (analyze/grouping_sets.c).
 * What the view's window changes (which rows, extra columns and grouping,
 * ttl) comes from window/read_sql.c.
 * A view that keeps rows reads its kept rows and the rows of committed
 * writers the combiner has not moved yet, as they are: a UNION ALL the
 * planner pushes a reader's conditions into, so that the indexes of the
 * kept-rows table serve them (ddl/view_index.c).
 */
#include "postgres.h"

#include "catalog/pg_aggregate.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "analyze/grouping_sets.h"
#include "analyze/input_aggs.h"
#include "catalog/catalog.h"
#include "ddl/changed_keys.h"
#include "ddl/read_view.h"
#include "window/read_sql.h"

typedef struct ReadViewContext
{
	ViewShape  *shape;
	bool		kept_results;	/* rows carry each aggregate's result */
	Oid			delta;			/* the view's delta table */
} ReadViewContext;

/* "p.c1, p.c2": each column of names, quoted, after prefix */
static char *
prefixed_columns_sql(List *names, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix, quote_identifier(lfirst(lc)));
	return buf.data;
}

/* "p.k1, p.k2, p.a1, p.a2": the key and state columns, quoted */
char *
stream_state_columns_sql(ViewShape *shape, const char *prefix)
{
	char	   *keys = prefixed_columns_sql(shape->key_names, prefix);
	char	   *states = prefixed_columns_sql(shape->agg_names, prefix);

	return psprintf("%s%s%s", keys, *keys && *states ? ", " : "", states);
}

/* "k1, k2": every key column, quoted */
char *
stream_key_columns_sql(ViewShape *shape)
{
	return prefixed_columns_sql(shape->key_names, "");
}

/*
 * May the view's aggregates run in parallel workers?  Then so may its read
 * (finalize_agg is parallel safe; finalize_agg_parallel_unsafe is not).
 */
static bool
aggregates_parallel_safe(ViewShape *shape)
{
	ListCell   *lc;

	foreach(lc, shape->aggs)
		if (func_parallel(((Aggref *) lfirst(lc))->aggfnoid) != PROPARALLEL_SAFE)
			return false;
	return true;
}

/*
 * finalize_agg('agg'::regprocedure, state, NULL::result): the result of the
 * view's aggregate aggno over the partial states state takes in a group;
 * for an aggregate kept as its inputs, the original aggregate over them
 * (analyze/input_aggs.c).  The one place that finalizes a view's states:
 * its reads, and roll-ups of its columns (ddl/rollup.c).
 */
Node *
stream_finalize_states_call(ViewShape *shape, int aggno, Expr *state)
{
	Aggref	   *aggref = list_nth(shape->aggs, aggno);	/* what workers compute */
	Aggref	   *original = list_nth(shape->input_aggs, aggno);
	Node	   *union_count = original ? stream_count_distinct_union_call(original, state) : NULL;
	Aggref	   *f;
	Oid			state_type = exprType((Node *) state);
	Oid			state_coll = type_is_collatable(state_type) ? aggref->inputcollid : InvalidOid;
	Const	   *agg;
	Const	   *result;
	char	   *name;

	if (union_count != NULL)
		return union_count;		/* count(DISTINCT x) of the group's sets */
	f = makeNode(Aggref);
	agg = makeConst(REGPROCEDUREOID, -1, InvalidOid, sizeof(Oid),
					ObjectIdGetDatum(aggref->aggfnoid), false, true);
	result = makeNullConst(aggref->aggtype, exprTypmod((Node *) aggref), aggref->aggcollid);
	name = aggregates_parallel_safe(shape) ? "finalize_agg" : "finalize_agg_parallel_unsafe";
	f->aggfnoid = LookupFuncName(list_make2(makeString(STREAM_INTERNAL_SCHEMA), makeString(name)),
								 3, (Oid[]) {REGPROCEDUREOID, ANYELEMENTOID, ANYCOMPATIBLEOID},
								 false);
	f->aggtype = aggref->aggtype;
	f->aggcollid = aggref->aggcollid;
	f->inputcollid = state_coll;
	f->aggargtypes = list_make3_oid(REGPROCEDUREOID, state_type, aggref->aggtype);
	f->args = list_make3(makeTargetEntry((Expr *) agg, 1, NULL, false),
						 makeTargetEntry(state, 2, NULL, false),
						 makeTargetEntry((Expr *) result, 3, NULL, false));
	f->aggkind = AGGKIND_NORMAL;
	f->aggsplit = AGGSPLIT_SIMPLE;
	f->location = -1;
	if (original != NULL)
		return stream_finalize_inputs_expr(original, (Node *) f);
	return (Node *) f;
}

/*
 * The result of the view's aggregate aggno from one partial state, state (a
 * group's state row read alone): finalize_state('agg'::regprocedure, state,
 * NULL::result), or for an aggregate kept as its inputs its finalization
 * over that state (analyze/input_aggs.c: count(DISTINCT x) from the state's
 * header alone).
 */
static Node *
finalize_one_state_call(ViewShape *shape, int aggno, Expr *state)
{
	Aggref	   *aggref = list_nth(shape->aggs, aggno);
	Aggref	   *original = list_nth(shape->input_aggs, aggno);
	Oid			state_type = exprType((Node *) state);
	Const	   *agg;
	Const	   *result;
	Oid			fn;

	if (original != NULL)
		return stream_finalize_inputs_expr(original, (Node *) state);
	agg = makeConst(REGPROCEDUREOID, -1, InvalidOid, sizeof(Oid),
					ObjectIdGetDatum(aggref->aggfnoid), false, true);
	result = makeNullConst(aggref->aggtype, exprTypmod((Node *) aggref), aggref->aggcollid);
	fn = LookupFuncName(list_make2(makeString(STREAM_INTERNAL_SCHEMA), makeString("finalize_state")),
						3, (Oid[]) {REGPROCEDUREOID, ANYELEMENTOID, ANYCOMPATIBLEOID}, false);
	return (Node *) makeFuncExpr(fn, aggref->aggtype, list_make3(agg, state, result),
								 aggref->aggcollid,
								 type_is_collatable(state_type) ? aggref->inputcollid : InvalidOid,
								 COERCE_EXPLICIT_CALL);
}

/* The state column of aggregate aggno in the read's rows */
static Expr *
state_var(ReadViewContext *ctx, int aggno)
{
	Aggref	   *aggref = list_nth(ctx->shape->aggs, aggno);
	Oid			state_type = list_nth_oid(ctx->shape->agg_state_types, aggno);
	AttrNumber	attno = list_length(ctx->shape->keys) + aggno + 1;

	return (Expr *) makeVar(1, attno, state_type, -1,
							type_is_collatable(state_type) ? aggref->inputcollid : InvalidOid,
							0);
}

/* The finalization of aggregate aggno over the state column of the read */
static Node *
finalize_call(ReadViewContext *ctx, int aggno)
{
	return stream_finalize_states_call(ctx->shape, aggno, state_var(ctx, aggno));
}

/*
 * The result-table column number of aggregate aggno's kept result: after
 * the keys (ddl/create_view.c).
 */
static AttrNumber
kept_result_attno(ViewShape *shape, int aggno)
{
	return list_length(shape->keys) + aggno + 1;
}

/*
 * "OPERATOR(schema.=)": the equality that groups values of type, qualified
 * so that the view means the same under any search_path.
 */
static char *
group_equality_sql(Oid type)
{
	Oid			eqop;
	HeapTuple	tuple;
	Form_pg_operator op;
	char	   *sql;

	get_sort_group_operators(type, false, true, false, NULL, &eqop, NULL, NULL);
	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(eqop));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for operator %u", eqop);
	op = (Form_pg_operator) GETSTRUCT(tuple);
	sql = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
				   NameStr(op->oprname));
	ReleaseSysCache(tuple);
	return sql;
}

/*
 * The partial state of aggregate aggno over no input, as SQL, for a row that
 * must change nothing when combined: NULL, which combining skips, unless the
 * aggregate's combine function is not strict (it would take the NULL as a
 * state); then its initial value (INITCOND), which combining starts from
 * too, as in PostgreSQL's parallel aggregation.  Converted from text when
 * the view is read, as combining converts it, so that the settings of the
 * session that created the view (TimeZone, DateStyle) do not stay in it.
 */
static char *
no_input_state_sql(ViewShape *shape, int aggno)
{
	Aggref	   *aggref = list_nth(shape->aggs, aggno);
	Oid			state_type = list_nth_oid(shape->agg_state_types, aggno);
	HeapTuple	tuple;
	Form_pg_aggregate agg;
	Datum		initval;
	bool		isnull;
	char	   *sql = "NULL";

	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	agg = (Form_pg_aggregate) GETSTRUCT(tuple);
	initval = SysCacheGetAttr(AGGFNOID, tuple, Anum_pg_aggregate_agginitval, &isnull);
	if (!isnull && agg->aggtranstype != INTERNALOID && OidIsValid(agg->aggcombinefn) &&
		!func_strict(agg->aggcombinefn))
		sql = psprintf("%s::pg_catalog.text::%s", quote_literal_cstr(TextDatumGetCString(initval)),
					   format_type_be_qualified(state_type));
	ReleaseSysCache(tuple);
	return sql;
}

/*
 * "SELECT NULL, ..., mask, state, ...": for a view with grouping sets read
 * over the whole stream (or sliding window), the row of the set that rolls
 * up every key, which has its row even without events, as in a batch query:
 * its keys NULL, each state one that changes nothing combined with the
 * set's other rows, or alone (no_input_state_sql); NULL when the view has
 * no such set.
 */
static char *
empty_set_row_sql(ViewShape *shape)
{
	int			nkeys = list_length(shape->keys) - shape->grouping_key - 1;
	int			all = (int) (((uint32) 1 << nkeys) - 1);
	StringInfoData buf;

	if (shape->grouping_key < 0 || !list_member_int(shape->grouping_masks, all) ||
		!stream_window_reads_whole_stream(shape->window))
		return NULL;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	for (int i = 0; i < list_length(shape->keys); i++)
	{
		if (i == shape->grouping_key)
			appendStringInfo(&buf, "%s%d", i ? ", " : "", all);
		else
		{
			/* typed: UNION ALL would take a domain's base type for NULL's */
			TargetEntry *key = list_nth(shape->keys, i);

			appendStringInfo(&buf, "%sNULL::%s", i ? ", " : "",
							 format_type_be_qualified(exprType((Node *) key->expr)));
		}
	}
	for (int i = 0; i < list_length(shape->aggs); i++)
		appendStringInfo(&buf, ", %s", no_input_state_sql(shape, i));
	return buf.data;
}

/*
 * The columns of a view that keeps its results, for the grouping set of
 * mask (-1: the view has no grouping sets): its keys are matched, and
 * checked for NULL, but for those the set rolls up (NULL in all its rows);
 * the hidden key of sets is matched too.
 */
static KeptResultsSql *
kept_set_sql(ViewShape *shape, Oid delta, int mask, const char *results,
			 const char *finalize, bool from_states)
{
	KeptResultsSql *k = palloc0(sizeof(KeptResultsSql));
	StringInfoData match;
	StringInfoData any_null;
	StringInfoData columns;
	StringInfoData args;
	bool		hashable = OidIsValid(delta);
	int			nkeys = list_length(shape->keys) - shape->grouping_key - 1;
	ListCell   *lc;

	initStringInfo(&match);
	initStringInfo(&any_null);
	initStringInfo(&columns);
	initStringInfo(&args);
	foreach(lc, shape->key_names)
	{
		int			i = foreach_current_index(lc);
		Node	   *key = (Node *) ((TargetEntry *) list_nth(shape->keys, i))->expr;
		const char *col = quote_identifier(lfirst(lc));

		if (mask >= 0 && i > shape->grouping_key &&
			!stream_grouping_set_has_key(mask, i - shape->grouping_key - 1, nkeys))
			continue;
		appendStringInfo(&match, "%sd.%s %s t.%s", match.len ? " AND " : "", col,
						 group_equality_sql(exprType(key)), col);
		if (i != shape->grouping_key)
			appendStringInfo(&any_null, "%s%s", any_null.len ? " OR " : "",
							 stream_key_null_sql(psprintf("t.%s", col), exprType(key)));
		if (hashable && !stream_changed_keys_hashable(exprType(key)))
			hashable = false;
		if (hashable)
			appendStringInfo(&columns, "%s%d", columns.len ? "," : "",
							 get_attnum(delta, lfirst(lc)));
		appendStringInfo(&args, ", s.%s", col);
	}
	k->keys = stream_key_columns_sql(shape);
	k->keys_match = match.data;
	k->row_columns = stream_state_columns_sql(shape, "t.");
	k->any_key_null = any_null.len ? any_null.data : "false";
	if (hashable && match.len > 0)
	{
		k->delta_columns = psprintf("'{%s}'", columns.data);
		k->key_args = args.data;
	}
	k->results = results;
	k->finalize = finalize;
	k->from_states = from_states;
	if (mask >= 0)
	{
		k->set = psprintf("%s = %d", quote_identifier(STREAM_GROUPING_KEY_NAME), mask);
		if (mask == (int) (((uint32) 1 << nkeys) - 1))
			k->empty_row = empty_set_row_sql(shape);
	}
	return k;
}

/*
 * Does the view read a group's results from its state row alone (each
 * state finalized on its own) while no visible delta changes the group?
 * When it has one state row per group but keeps no results beside it
 * because some aggregate keeps its inputs (analyze/view_query.c): reading
 * such a state alone skips the aggregation of the group's rows, and for
 * count(DISTINCT x) reads only the state's header.  Not when some aggregate
 * is not parallel safe.
 */
static bool
reads_states_as_results(ViewShape *shape)
{
	/*
	 * finalize_state is parallel safe: it may not run the final function of
	 * an aggregate that is not (finalize_agg_parallel_unsafe does)
	 */
	return shape->final_names == NIL && stream_shape_one_row_per_group(shape) &&
		stream_shape_keeps_inputs(shape) && aggregates_parallel_safe(shape);
}

/*
 * The columns of a view that keeps its results, or reads them from its
 * state rows (reads_states_as_results), for window/read_sql.c
 * (KeptResultsSql, one per grouping set), or NIL: each result finalized
 * from combined states is finalize_call's SQL.  Results read from state
 * rows are named as the state columns they come from, so that the select
 * list, deparsed over the state table, finds them.
 */
static List *
kept_results_sql(ReadViewContext *ctx, List *dpcontext)
{
	StringInfoData results;
	StringInfoData finalize;
	List	   *sets = NIL;
	List	   *done = NIL;
	ListCell   *lc;
	bool		from_states = reads_states_as_results(ctx->shape);
	List	   *names = from_states ? ctx->shape->agg_names : ctx->shape->final_names;

	if (names == NIL)
		return NIL;
	initStringInfo(&results);
	initStringInfo(&finalize);
	foreach(lc, names)
	{
		int			i = foreach_current_index(lc);
		Node	   *f = finalize_call(ctx, i);
		const char *name = quote_identifier(lfirst(lc));

		if (from_states)
			appendStringInfo(&results, "%s%s AS %s", i ? ", " : "",
							 deparse_expression(finalize_one_state_call(ctx->shape, i,
																		state_var(ctx, i)),
												dpcontext, false, false),
							 name);
		else
			appendStringInfo(&results, "%s%s", i ? ", " : "", name);
		appendStringInfo(&finalize, "%s%s AS %s", i ? ", " : "",
						 deparse_expression(f, dpcontext, false, false), name);
	}
	if (ctx->shape->grouping_key < 0)
		return list_make1(kept_set_sql(ctx->shape, ctx->delta, -1, results.data,
									   finalize.data, from_states));
	foreach(lc, ctx->shape->grouping_masks)
	{
		int			mask = lfirst_int(lc);

		if (!list_member_int(done, mask))
			sets = lappend(sets, kept_set_sql(ctx->shape, ctx->delta, mask, results.data,
											  finalize.data, from_states));
		done = lappend_int(done, mask);
	}
	return sets;
}

/* Rewrite an expression of the defining query over the state columns. */
static Node *
read_view_mutator(Node *node, ReadViewContext *ctx)
{
	ListCell   *lc;
	int			i = 0;

	if (node == NULL)
		return NULL;
	if (IsA(node, GroupingFunc) && ctx->shape->grouping_key >= 0)
		return stream_grouping_value((GroupingFunc *) node, ctx->shape->query,
									 ctx->shape->grouping_masks,
									 makeVar(1, ctx->shape->grouping_key + 1, INT4OID, -1,
											 InvalidOid, 0));
	if (IsA(node, GroupingFunc))
		return (Node *) makeConst(INT4OID, -1, InvalidOid, sizeof(int32), Int32GetDatum(0),
								  false, true);	/* one grouping set: keeps every key */
	foreach(lc, ctx->shape->keys)
	{
		Node	   *key = (Node *) ((TargetEntry *) lfirst(lc))->expr;

		i++;
		if (i > ctx->shape->nhidden_keys && equal(node, key))
			return (Node *) makeVar(1, i, exprType(key), exprTypmod(key), exprCollation(key), 0);
	}
	if (IsA(node, Aggref))
	{
		foreach(lc, ctx->shape->aggs)
		{
			i = foreach_current_index(lc);
			if (!equal(node, stream_shape_query_agg(ctx->shape, i)))
				continue;
			if (ctx->kept_results)
				return (Node *) makeVar(1, kept_result_attno(ctx->shape, i),
										((Aggref *) node)->aggtype, exprTypmod(node),
										((Aggref *) node)->aggcollid, 0);
			return finalize_call(ctx, i);
		}
		elog(ERROR, "aggregate not found in continuous view shape");
	}
	return expression_tree_mutator(node, read_view_mutator, (void *) ctx);
}

/*
 * The view's own keys, "k1, k2", or NULL when it has none; as_identity,
 * each as change streams name its group (stream_key_identity_sql).
 */
static char *
user_keys_list_sql(ViewShape *shape, const char *prefix, bool as_identity)
{
	StringInfoData buf;
	ListCell   *lc;
	int			i = 0;

	initStringInfo(&buf);
	foreach(lc, shape->key_names)
	{
		char	   *key;

		if (i++ < shape->nhidden_keys)
			continue;
		key = psprintf("%s%s", prefix, quote_identifier(lfirst(lc)));
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "",
						 as_identity ? stream_key_identity_sql(key) : key);
	}
	return buf.len ? buf.data : NULL;
}

static char *
user_keys_sql(ViewShape *shape, const char *prefix)
{
	return user_keys_list_sql(shape, prefix, false);
}

/*
 * For a view whose query makes a grouping set more than once (stored once):
 * " CROSS JOIN LATERAL generate_series(1, CASE s._grouping WHEN m THEN 2
 * ... ELSE 1 END) AS _gcopy(_stream_ext_copy)", each row read once per copy of its set
 * (grouped by _gcopy._stream_ext_copy too); "" for other views.
 */
static char *
grouping_copies_sql(ViewShape *shape)
{
	StringInfoData buf;
	List	   *done = NIL;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, shape->grouping_masks)
	{
		int			copies = stream_grouping_copies(shape->grouping_masks, lfirst_int(lc));

		if (copies < 2 || list_member_int(done, lfirst_int(lc)))
			continue;
		done = lappend_int(done, lfirst_int(lc));
		appendStringInfo(&buf, " WHEN %d THEN %d", lfirst_int(lc), copies);
	}
	if (buf.len == 0)
		return "";
	return psprintf(" CROSS JOIN LATERAL pg_catalog.generate_series(1, CASE s.%s%s ELSE 1 END) "
					"AS _gcopy(_stream_ext_copy)", quote_identifier(STREAM_GROUPING_KEY_NAME), buf.data);
}

/* Append items (char *) to buf after keyword, separated by sep */
static void
append_list_sql(StringInfo buf, const char *keyword, List *items, const char *sep)
{
	ListCell   *lc;

	if (items == NIL)
		return;
	appendStringInfo(buf, " %s ", keyword);
	foreach(lc, items)
		appendStringInfo(buf, "%s%s", foreach_current_index(lc) ? sep : "", (char *) lfirst(lc));
}

/*
 * ", combine_agg('agg'::regprocedure, s.state), ...": each aggregate's
 * partial states combined per group, after the view's columns.
 */
static char *
combined_states_sql(ViewShape *shape)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, shape->agg_names)
		appendStringInfo(&buf, ", " STREAM_INTERNAL_SCHEMA ".combine_agg(%u::pg_catalog.oid::"
						 "pg_catalog.regprocedure, s.%s)",
						 ((Aggref *) list_nth(shape->aggs, foreach_current_index(lc)))->aggfnoid,
						 quote_identifier(lfirst(lc)));
	return buf.data;
}

/* What a read returns besides the view's columns */
typedef enum ReadViewExtra
{
	READ_VIEW_ONLY,				/* the view's columns */
	READ_WITH_STATES,			/* then each aggregate's combined states */
	READ_WITH_IDENTITY			/* first the row's group and identity */
} ReadViewExtra;

/*
 * "ROW(s.k1, s.k2, ...)::text AS _gid, ROW(s.k1, ..., window)::text AS
 * _rid, s.k1, s.k2, " (the keys of _gid and _rid through key_identity,
 * stream_key_identity_sql): which group of the view's own keys a row is of, and
 * which row it is among the group's (its window), as text, then those keys
 * (src/changes/).
 */
static char *
identity_columns_sql(ViewShape *shape, WindowReadSql *w)
{
	char	   *keys = user_keys_sql(shape, "s.");
	char	   *ids = user_keys_list_sql(shape, "s.", true);
	char	   *copies = grouping_copies_sql(shape)[0] != '\0' ? "_gcopy._stream_ext_copy" : NULL;
	StringInfoData rid;

	if (ids == NULL)
		ids = "";
	initStringInfo(&rid);
	appendStringInfo(&rid, "ROW(%s", ids);
	if (w->identity != NULL)
		appendStringInfo(&rid, "%s%s", keys ? ", " : "", w->identity);
	if (copies != NULL)
		appendStringInfo(&rid, "%s%s", keys || w->identity ? ", " : "", copies);
	return psprintf("ROW(%s)::pg_catalog.text AS _gid, %s)::pg_catalog.text AS _rid, %s%s",
					ids, rid.data, keys ? keys : "", keys ? ", " : "");
}

/*
 * The SELECT of the view users query; READ_WITH_STATES, the same rows,
 * without the results the view keeps, followed by one column per aggregate
 * of the shape with the group's combined partial states (for roll-ups);
 * READ_WITH_IDENTITY, the view's rows after their identity_columns_sql.
 */
static char *
read_view_sql(ViewShape *shape, int id, Oid state_relid, ReadViewExtra extra)
{
	bool		with_states = (extra == READ_WITH_STATES);
	ReadViewContext ctx;
	List	   *dpcontext = deparse_context_for("s", state_relid);
	Oid			result_relid = stream_view_relation_relid(id, VIEW_RESULT_TABLE, true);
	StringInfoData buf;
	ListCell   *lc;
	char	   *keys = user_keys_sql(shape, "s.");
	WindowReadSql *w;
	List	   *group;
	List	   *having;
	char	   *empty_row;

	ctx.shape = shape;
	ctx.kept_results = false;
	ctx.delta = stream_view_relation_relid(id, VIEW_DELTA_TABLE, true);
	w = stream_window_read_sql(shape->window, id, stream_state_columns_sql(shape, ""),
							   user_keys_sql(shape, ""), exprType((Node *) shape->time_expr),
							   with_states ? NIL : kept_results_sql(&ctx, dpcontext));
	group = w->group;
	having = w->having;
	ctx.kept_results = w->one_row_per_group;
	/*
	 * the select list is over the result table's columns, then (or over
	 * results named as the state columns they come from)
	 */
	if (ctx.kept_results && OidIsValid(result_relid))
		dpcontext = deparse_context_for("s", result_relid);

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s%s",
					 extra == READ_WITH_IDENTITY ? identity_columns_sql(shape, w) : "", w->columns);
	foreach(lc, shape->query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Node	   *expr;

		if (tle->resjunk)
			continue;
		expr = read_view_mutator((Node *) tle->expr, &ctx);
		appendStringInfo(&buf, "%s AS %s, ", deparse_expression(expr, dpcontext, false, false),
						 quote_identifier(tle->resname));
	}
	buf.data[buf.len -= 2] = '\0';
	if (with_states)
		appendStringInfoString(&buf, combined_states_sql(shape));
	empty_row = w->one_row_per_group ? NULL : empty_set_row_sql(shape);
	appendStringInfo(&buf, " FROM (%s%s%s) s%s%s", w->rows, empty_row ? " UNION ALL " : "",
					 empty_row ? empty_row : "", w->join, grouping_copies_sql(shape));
	if (shape->query->havingQual != NULL)
		having = lappend(having, psprintf("(%s)",
										  deparse_expression(read_view_mutator(shape->query->havingQual, &ctx),
															 dpcontext, false, false)));
	if (w->one_row_per_group || shape->keeps_rows)
	{
		/* each row is a group already, or a kept row */
		append_list_sql(&buf, "WHERE", list_concat(w->where, having), " AND ");
		return buf.data;
	}
	append_list_sql(&buf, "WHERE", w->where, " AND ");
	if (grouping_copies_sql(shape)[0] != '\0')
		group = lappend(group, "_gcopy._stream_ext_copy");
	if (keys)
		group = lappend(group, keys);
	append_list_sql(&buf, "GROUP BY", group, ", ");
	append_list_sql(&buf, "HAVING", having, " AND ");
	return buf.data;
}

/* The SELECT of the view users query. */
char *
stream_read_view_sql(ViewShape *shape, int id, Oid state_relid)
{
	return read_view_sql(shape, id, state_relid, READ_VIEW_ONLY);
}

/*
 * The rows of the view users query, each followed by its group's combined
 * partial state of every aggregate of shape (ddl/rollup.c).
 */
char *
stream_read_view_states_sql(ViewShape *shape, int id, Oid state_relid)
{
	return read_view_sql(shape, id, state_relid, READ_WITH_STATES);
}

/*
 * The rows of the view users query, each after its group (_gid) and its
 * identity within the group (_rid), as text, and the view's own keys
 * (src/changes/change_sql.c).
 */
char *
stream_read_view_identified_sql(ViewShape *shape, int id, Oid state_relid)
{
	return read_view_sql(shape, id, state_relid, READ_WITH_IDENTITY);
}
