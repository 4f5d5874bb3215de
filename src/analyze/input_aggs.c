/*
 * input_aggs.c
 *	  Aggregates a continuous view keeps as the multiset of their inputs.
 *
 * An aggregate with DISTINCT or ORDER BY inside, an ordered-set or
 * hypothetical-set aggregate (WITHIN GROUP), or one without a combine
 * function (or with an internal state it cannot serialize) cannot be
 * computed from merged partial states.  Its state column is then
 * stream_ext_internal.inputs_agg over the rows it would read: the
 * expressions of its arguments and ORDER BY keys that are not constants
 * (agg/inputs.c keeps them sorted, each distinct row once with its count).
 * Workers compute that partial state like any other (its FILTER stays on
 * it), so the combiner, windows, transactions and expiry treat it as any
 * other state.
 *
 * Its result is the original aggregate run over those rows: a query
 *	 SELECT agg(direct args) WITHIN GROUP (ORDER BY c1 USING op NULLS ...)
 *	   FROM stream_ext_internal.inputs_rows($1, distinct) AS t(c1 type, ...)
 * (agg/inputs_final.c runs it), written here from the original Aggref, so
 * that the state column's finalization is a function of the view's query
 * alone and anything that knows (view, column) can rebuild it
 * (stream_finalize_inputs_expr).  Constants among the arguments (string_agg's
 * separator) and the direct arguments of ordered-set aggregates are written
 * into the query; direct arguments must therefore be constants or
 * expressions of constants.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parse_agg.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "access/htup_details.h"

#include "agg/agg_state.h"
#include "agg/inputs.h"
#include "analyze/input_aggs.h"
#include "guc.h"

#define INTERNAL_SCHEMA "stream_ext_internal"

/*
 * Does aggregate fn declare a polymorphic or "any" argument?  With
 * FINALFUNC_EXTRA its final function is told the actual argument types,
 * which a state finalized apart from its aggregate call does not know: such
 * an aggregate is run whole, over its inputs.
 */
static bool
polymorphic_inputs(Oid fn)
{
	Oid		   *argtypes;
	int			nargs;

	(void) get_func_signature(fn, &argtypes, &nargs);
	for (int i = 0; i < nargs; i++)
		if (IsPolymorphicType(argtypes[i]) || argtypes[i] == ANYOID)
			return true;
	return false;
}

/*
 * Must aggref keep its inputs?  When it has DISTINCT or ORDER BY inside, is
 * ordered-set or hypothetical, has no combine function or no way to
 * serialize its internal state, or a final function told polymorphic
 * argument types (above).
 */
bool
stream_agg_keeps_inputs(Aggref *aggref)
{
	HeapTuple	tuple;
	Form_pg_aggregate agg;
	bool		keeps;

	if (aggref->aggkind != AGGKIND_NORMAL || aggref->aggdistinct != NIL ||
		aggref->aggorder != NIL)
		return true;
	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	agg = (Form_pg_aggregate) GETSTRUCT(tuple);
	keeps = !OidIsValid(agg->aggcombinefn) ||
		(agg->aggtranstype == INTERNALOID &&
		 (!OidIsValid(agg->aggserialfn) || !OidIsValid(agg->aggdeserialfn))) ||
		(agg->aggfinalextra && OidIsValid(agg->aggfinalfn) && polymorphic_inputs(aggref->aggfnoid));
	ReleaseSysCache(tuple);
	return keeps;
}

/* Is argument tle written into the finalization query rather than kept? */
static bool
arg_is_constant(TargetEntry *tle)
{
	return IsA(tle->expr, Const);
}

/* The argument TargetEntries whose values the state keeps, in order */
static List *
kept_args(Aggref *aggref)
{
	List	   *kept = NIL;
	ListCell   *lc;

	foreach(lc, aggref->args)
		if (!arg_is_constant(lfirst(lc)))
			kept = lappend(kept, lfirst(lc));
	return kept;
}

static void
reject_construct(Aggref *aggref, const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s in aggregate %s is not supported in continuous views",
					what, format_procedure(aggref->aggfnoid)),
			 detail ? errdetail("%s", detail) : 0));
}

/*
 * Error, naming the construct, unless aggref can be kept as its inputs:
 * its direct arguments are constant, its kept values have types with binary
 * send and receive functions (the state's format), and it is not called
 * with VARIADIC.
 */
static void
check_keeps_inputs(Aggref *aggref)
{
	ListCell   *lc;

	if (aggref->aggvariadic)
		reject_construct(aggref, "VARIADIC", NULL);
	if (contain_var_clause((Node *) aggref->aggdirectargs) ||
		contain_volatile_functions((Node *) aggref->aggdirectargs) ||
		contain_agg_clause((Node *) aggref->aggdirectargs))
		reject_construct(aggref, "a direct argument that is not constant",
						 "Continuous views evaluate the direct arguments of ordered-set aggregates when they are read, so they must not depend on the events.");
	if (contain_volatile_functions((Node *) aggref->args))
		reject_construct(aggref, "a volatile argument or ORDER BY expression",
						 "Continuous views evaluate an aggregate's arguments once per event, when the event arrives.");
	foreach(lc, kept_args(aggref))
	{
		Oid			type = exprType((Node *) ((TargetEntry *) lfirst(lc))->expr);
		HeapTuple	tuple;
		Form_pg_type typ;
		bool		ok;

		if (stream_type_holds_agg_state(type))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s over type %s is not supported in continuous views",
							format_procedure(aggref->aggfnoid), format_type_be(type)),
					 errdetail("The view would keep partial aggregate states as its inputs, and read them back.")));
		if (type == RECORDOID || get_typtype(type) == TYPTYPE_PSEUDO)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s over type %s is not supported in continuous views",
							format_procedure(aggref->aggfnoid), format_type_be(type)),
					 errdetail("The view keeps the aggregate's inputs, which must have a named type."),
					 errhint("Cast the value to a named composite type.")));
		tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for type %u", type);
		typ = (Form_pg_type) GETSTRUCT(tuple);
		ok = OidIsValid(typ->typsend) && OidIsValid(typ->typreceive);
		ReleaseSysCache(tuple);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s over type %s is not supported in continuous views",
							format_procedure(aggref->aggfnoid), format_type_be(type)),
					 errdetail("The view keeps the aggregate's inputs in binary form, and type %s has no binary send and receive functions.",
							   format_type_be(type))));
	}
}

static Oid
inputs_agg_oid(void)
{
	return LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA), makeString("inputs_agg")),
						  -1, NULL, false);
}

/*
 * The Aggref workers compute for aggref, which keeps its inputs:
 * inputs_agg(kept values...) FILTER (its filter).  Errors name what cannot
 * be kept.
 */
Aggref *
stream_inputs_aggref(Aggref *aggref)
{
	Aggref	   *a = makeNode(Aggref);
	List	   *kept;
	ListCell   *lc;
	AttrNumber	resno = 1;

	check_keeps_inputs(aggref);
	kept = kept_args(aggref);
	a->aggfnoid = inputs_agg_oid();
	a->aggtype = BYTEAOID;
	a->aggcollid = InvalidOid;
	a->inputcollid = aggref->inputcollid;
	a->aggtranstype = InvalidOid;	/* the planner fills it in */
	if (kept == NIL)
	{
		/* only constants: one column that counts the rows */
		a->aggargtypes = list_make1_oid(BOOLOID);
		a->args = list_make1(makeTargetEntry((Expr *) makeBoolConst(true, false), 1, NULL,
											 false));
	}
	foreach(lc, kept)
	{
		Expr	   *expr = copyObject(((TargetEntry *) lfirst(lc))->expr);

		a->aggargtypes = lappend_oid(a->aggargtypes, exprType((Node *) expr));
		a->args = lappend(a->args, makeTargetEntry(expr, resno++, NULL, false));
	}
	a->aggfilter = copyObject(aggref->aggfilter);
	a->aggstar = false;
	a->aggvariadic = false;
	a->aggkind = AGGKIND_NORMAL;
	a->agglevelsup = 0;
	a->aggsplit = AGGSPLIT_SIMPLE;
	a->aggno = a->aggtransno = -1;
	a->location = -1;
	return a;
}

/* "schema.name" of a catalog object, quoted */
static char *
qualified(Oid nspid, const char *name)
{
	return quote_qualified_identifier(get_namespace_name(nspid), name);
}

/* "schema.name" of collation coll, quoted */
static char *
collation_sql(Oid coll)
{
	HeapTuple	tuple = SearchSysCache1(COLLOID, ObjectIdGetDatum(coll));
	Form_pg_collation c;
	char	   *sql;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for collation %u", coll);
	c = (Form_pg_collation) GETSTRUCT(tuple);
	sql = qualified(c->collnamespace, NameStr(c->collname));
	ReleaseSysCache(tuple);
	return sql;
}

/* "t.cN" or the constant of argument tle, as the query reads it */
static char *
arg_sql(Aggref *aggref, TargetEntry *tle)
{
	int			col = 0;
	ListCell   *lc;

	if (arg_is_constant(tle))
		return deparse_expression((Node *) tle->expr, NIL, false, false);
	foreach(lc, kept_args(aggref))
	{
		col++;
		if (lfirst(lc) == tle)
			break;
	}
	return psprintf("t.c%d", col);
}

/* "x USING OPERATOR(schema.<) NULLS LAST, ..." of sort clauses */
static char *
order_sql(Aggref *aggref, List *clauses)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, clauses)
	{
		SortGroupClause *sgc = lfirst(lc);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, aggref->args);
		HeapTuple	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(sgc->sortop));
		Form_pg_operator op;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for operator %u", sgc->sortop);
		op = (Form_pg_operator) GETSTRUCT(tuple);
		appendStringInfo(&buf, "%s%s USING OPERATOR(%s.%s) NULLS %s", buf.len ? ", " : "",
						 arg_sql(aggref, tle),
						 quote_identifier(get_namespace_name(op->oprnamespace)),
						 NameStr(op->oprname), sgc->nulls_first ? "FIRST" : "LAST");
		ReleaseSysCache(tuple);
	}
	return buf.data;
}

/*
 * The query that computes aggref (which keeps its inputs) from its state,
 * passed as $1; see the file's comment.  Written with the search_path it
 * is analyzed with (pg_catalog, pg_temp: agg/inputs_final.c), not the
 * reader's, so that every name outside it is qualified.
 */
char *
stream_inputs_final_sql(Aggref *aggref)
{
	StringInfoData buf;
	StringInfoData cols;
	List	   *kept = kept_args(aggref);
	ListCell   *lc;
	bool		first = true;
	int			col = 0;
	int			guc_level = stream_pin_internal_search_path();

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s(",
					 qualified(get_func_namespace(aggref->aggfnoid),
							   get_func_name(aggref->aggfnoid)));
	if (aggref->aggkind != AGGKIND_NORMAL)
	{
		foreach(lc, aggref->aggdirectargs)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "",
							 deparse_expression(lfirst(lc), NIL, false, false));
		appendStringInfo(&buf, ") WITHIN GROUP (ORDER BY %s)",
						 order_sql(aggref, aggref->aggorder));
	}
	else
	{
		if (aggref->aggdistinct != NIL)
			appendStringInfoString(&buf, "DISTINCT ");
		if (aggref->aggstar)
			appendStringInfoString(&buf, "*");
		foreach(lc, aggref->args)
		{
			TargetEntry *tle = lfirst(lc);

			if (tle->resjunk)
				continue;
			appendStringInfo(&buf, "%s%s", first ? "" : ", ", arg_sql(aggref, tle));
			first = false;
		}
		if (aggref->aggorder != NIL)
			appendStringInfo(&buf, " ORDER BY %s", order_sql(aggref, aggref->aggorder));
		appendStringInfoChar(&buf, ')');
	}

	initStringInfo(&cols);
	if (kept == NIL)
		appendStringInfoString(&cols, "c1 pg_catalog.bool");
	foreach(lc, kept)
	{
		Node	   *expr = (Node *) ((TargetEntry *) lfirst(lc))->expr;
		Oid			coll = exprCollation(expr);

		appendStringInfo(&cols, "%sc%d %s", col ? ", " : "", col + 1,
						 format_type_extended(exprType(expr), exprTypmod(expr),
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
		if (OidIsValid(coll))
			appendStringInfo(&cols, " COLLATE %s", collation_sql(coll));
		col++;
	}
	appendStringInfo(&buf, " FROM %s.inputs_rows($1, %s) AS t(%s)", INTERNAL_SCHEMA,
					 aggref->aggdistinct != NIL ? "true" : "false", cols.data);
	AtEOXact_GUC(true, guc_level);
	return buf.data;
}

/*
 * Is aggref count(DISTINCT x) over a type whose equality is the identity of
 * its binary form (text only under a deterministic collation)?  Then it is
 * the number of non-NULL entries of its state.
 */
static bool
counts_distinct_entries(Aggref *aggref)
{
	Oid			type;

	if (aggref->aggfnoid != F_COUNT_ANY || aggref->aggdistinct == NIL ||
		list_length(aggref->args) != 1 || kept_args(aggref) == NIL)
		return false;
	type = exprType((Node *) ((TargetEntry *) linitial(aggref->args))->expr);
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case BOOLOID:
		case CHAROID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case UUIDOID:
		case BYTEAOID:
			return true;
		case TEXTOID:
		case VARCHAROID:
			return OidIsValid(aggref->inputcollid) &&
				get_collation_isdeterministic(aggref->inputcollid);
		default:
			return false;
	}
}

/*
 * Is aggref percentile_cont or percentile_disc of one fraction WITHIN GROUP
 * (ORDER BY x) of a float8 x, ascending?  Then agg/inputs_final.c computes
 * it from the state's (value, count) entries; *continuous says which.
 */
static bool
percentile_of_float8(Aggref *aggref, bool *continuous)
{
	TargetEntry *tle;

	if (aggref->aggfnoid == F_PERCENTILE_CONT_FLOAT8_FLOAT8)
		*continuous = true;
	else if (aggref->aggfnoid == F_PERCENTILE_DISC_FLOAT8_ANYELEMENT)
		*continuous = false;
	else
		return false;
	if (list_length(aggref->args) != 1 || list_length(aggref->aggorder) != 1 ||
		list_length(aggref->aggdirectargs) != 1 ||
		exprType(linitial(aggref->aggdirectargs)) != FLOAT8OID)
		return false;
	tle = linitial(aggref->args);
	return !arg_is_constant(tle) && exprType((Node *) tle->expr) == FLOAT8OID &&
		((SortGroupClause *) linitial(aggref->aggorder))->sortop == Float8LessOperator;
}

/*
 * Is aggref count(DISTINCT x) read from its state's entries (above) over a
 * type whose values all have one binary size?  Then a group's entries lie
 * at known offsets, and a read can look values up in a stored state
 * (agg/distinct_union.c).
 */
static bool
counts_distinct_fixed_width(Aggref *aggref)
{
	Oid			type;

	if (!counts_distinct_entries(aggref))
		return false;
	type = exprType((Node *) ((TargetEntry *) linitial(aggref->args))->expr);
	return stream_inputs_fixed_width(type) != 0;
}

/*
 * Does the finalization of aggref, which keeps its inputs, read slices of
 * a state stored uncompressed rather than all of it?  percentile_cont and
 * percentile_disc of a float8 do (agg/inputs_final.c): the entries up to
 * the rows they pick, from the nearer end; and count(DISTINCT x) of a
 * fixed-width x, whose reads of a group with unmerged deltas look the
 * deltas' values up in its state (agg/distinct_union.c).  Those of text,
 * varchar and bytea read only the header, which a compressed state yields
 * as cheaply, so they stay compressed.
 */
bool
stream_inputs_read_in_slices(Aggref *aggref)
{
	bool		continuous;

	return percentile_of_float8(aggref, &continuous) || counts_distinct_fixed_width(aggref);
}

/*
 * count(DISTINCT x) of the input sets a group's rows hold, for aggref when
 * it is read from its state's entries:
 *	 count_distinct_union(state)
 * an aggregate that counts the union without merging a large stored state
 * (agg/distinct_union.c); NULL for other aggregates.
 */
Node *
stream_count_distinct_union_call(Aggref *aggref, Expr *state)
{
	Aggref	   *f;

	if (!counts_distinct_entries(aggref))
		return NULL;
	f = makeNode(Aggref);
	f->aggfnoid = LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA),
											makeString("count_distinct_union")),
								 1, (Oid[]) {BYTEAOID}, false);
	f->aggtype = INT8OID;
	f->aggargtypes = list_make1_oid(BYTEAOID);
	f->args = list_make1(makeTargetEntry(state, 1, NULL, false));
	f->aggkind = AGGKIND_NORMAL;
	f->aggsplit = AGGSPLIT_SIMPLE;
	f->location = -1;
	return (Node *) f;
}

static Node *finalize_by_query(Aggref *aggref, Node *state);

/*
 * The result of aggregate aggref, which keeps its inputs, from the bytea
 * expression state (its combined state, or NULL when no event reached it):
 *	 finalize_inputs(state, 'query', 'aggregate'::regprocedure, NULL::result),
 * or for count(DISTINCT x) of some types inputs_count_distinct(state), for
 * percentile_cont/disc of a float8 inputs_percentile_float8(state, fraction,
 * continuous).
 * The one place a read, or a roll-up of a view's column, finalizes such a
 * state.
 */
Node *
stream_finalize_inputs_expr(Aggref *aggref, Node *state)
{
	bool		continuous;

	if (counts_distinct_entries(aggref))
	{
		Oid			bytea_type = BYTEAOID;
		Oid			fn = LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA),
												   makeString("inputs_count_distinct")),
										1, &bytea_type, false);

		return (Node *) makeFuncExpr(fn, INT8OID, list_make1(state), InvalidOid, InvalidOid,
									 COERCE_EXPLICIT_CALL);
	}
	if (percentile_of_float8(aggref, &continuous))
	{
		Oid			argtypes[3] = {BYTEAOID, FLOAT8OID, BOOLOID};
		Oid			fn = LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA),
												   makeString("inputs_percentile_float8")),
										3, argtypes, false);

		return (Node *) makeFuncExpr(fn, FLOAT8OID,
									 list_make3(state, copyObject(linitial(aggref->aggdirectargs)),
												makeBoolConst(continuous, false)),
									 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	}
	return finalize_by_query(aggref, state);
}

/* finalize_inputs(state, 'query', 'aggregate'::regprocedure, NULL::result) */
static Node *
finalize_by_query(Aggref *aggref, Node *state)
{
	Oid			argtypes[4] = {BYTEAOID, TEXTOID, REGPROCEDUREOID, ANYELEMENTOID};
	Oid			fn = LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA),
											   makeString("finalize_inputs")),
									4, argtypes, false);
	Const	   *query = makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
								  CStringGetTextDatum(stream_inputs_final_sql(aggref)),
								  false, false);
	Const	   *result = makeNullConst(aggref->aggtype, exprTypmod((Node *) aggref),
									   aggref->aggcollid);

	Const	   *aggregate = makeConst(REGPROCEDUREOID, -1, InvalidOid, sizeof(Oid),
									  ObjectIdGetDatum(aggref->aggfnoid), false, true);

	return (Node *) makeFuncExpr(fn, aggref->aggtype, list_make4(state, query, aggregate, result),
								 aggref->aggcollid, InvalidOid, COERCE_EXPLICIT_CALL);
}
