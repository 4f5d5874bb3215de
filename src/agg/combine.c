/*
 * combine.c
 *	  SQL-callable plumbing over aggregate partial states.
 *
 *	 combine_agg(agg, state)		 aggregate: merges partial states of agg
 *	 finalize_agg(agg, state, result-typed NULL) aggregate: merges, finalizes
 *	 combine_states(agg, a, b)		 merges two partial states
 *	 finalize_state(agg, state, result-typed NULL) the result of one state
 *
 * They work for any aggregate with a combine function, by looking up its
 * pg_aggregate row: transition type, combine function, (de)serialization
 * functions for internal states, final function and initial value.  States of
 * internal type travel as agg_state (agg_state.c: the aggregate's serialized
 * form, marked with the aggregate; inputs_agg's as bytea).  The
 * aggregate's own support functions are called with our aggregate's context,
 * so those that need AggCheckCallContext find the right memory context.
 *
 * Any role may call finalize_agg (every read of a view does), so the types
 * of its arguments are checked against the aggregate's pg_aggregate row
 * before any of its support functions sees a value: a state of another type
 * would reach them as a wrongly typed pointer.  The caller must have EXECUTE
 * on the aggregate, as for calling it.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/nodeAgg.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/makefuncs.h"
#include "parser/parse_agg.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "agg/agg_state.h"
#include "agg/combine.h"

PG_FUNCTION_INFO_V1(stream_ext_combine_agg_trans);
PG_FUNCTION_INFO_V1(stream_ext_combine_agg_final);
PG_FUNCTION_INFO_V1(stream_ext_finalize_agg_final);
PG_FUNCTION_INFO_V1(stream_ext_combine_states);
PG_FUNCTION_INFO_V1(stream_ext_finalize_state);

/* What we need to know about one aggregate; lives in fn_mcxt. */
typedef struct AggSupport
{
	Oid			aggfnoid;
	Oid			transtype;		/* resolved; INTERNALOID for internal */
	int16		translen;
	bool		transbyval;
	FmgrInfo	combinefn;
	bool		has_serial;
	bool		marked;			/* its states are agg_state, not bytea */
	AggStateMark mark;			/* theirs, when marked */
	FmgrInfo	serialfn;
	FmgrInfo	deserialfn;
	bool		has_final;
	FmgrInfo	finalfn;
	int			final_nargs;
	Datum		initval;
	bool		initval_isnull;
} AggSupport;

/* Transition state of combine_agg and finalize_agg */
typedef struct MergeState
{
	AggSupport *support;
	Datum		value;
	bool		isnull;
} MergeState;

/* A placeholder argument of the given type, as parse_agg.c makes them. */
static Node *
typed_arg(Oid type, Oid collation)
{
	Param	   *p = makeNode(Param);

	p->paramkind = PARAM_EXEC;
	p->paramid = -1;
	p->paramtype = type;
	p->paramtypmod = -1;
	p->paramcollid = collation;
	p->location = -1;
	return (Node *) p;
}

/*
 * Error unless a partial state of type state_type (agg_state or bytea for an
 * internal state, stream_internal_state_type) and, when valid, a result of
 * type result_type are those of the aggregate agg (aggfnoid): the exact
 * types for an aggregate of fixed types, types fitting its declared ones
 * for a polymorphic aggregate (a result type declared the same as the
 * transition type must equal the state type).
 */
static void
check_state_types(Oid aggfnoid, Form_pg_aggregate agg, Oid state_type, Oid result_type)
{
	Oid			transtype = agg->aggtranstype;
	Oid			rettype = get_func_rettype(aggfnoid);
	Oid			stored_type = transtype;
	bool		fits;

	if (transtype == INTERNALOID)
	{
		if (!OidIsValid(agg->aggserialfn) || !OidIsValid(agg->aggdeserialfn))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s has no serialization functions", format_procedure(aggfnoid)),
					 errdetail("Its internal state cannot be stored as a partial state.")));
		stored_type = stream_internal_state_type(agg->aggdeserialfn);
		fits = (state_type == stored_type);
	}
	else if (IsPolymorphicType(transtype))
		fits = check_generic_type_consistency(&state_type, &transtype, 1);
	else
		fits = (state_type == transtype);
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("a partial state of aggregate %s cannot have type %s",
						format_procedure(aggfnoid), format_type_be(state_type)),
				 errdetail("The aggregate's partial state has type %s.",
						   format_type_be(stored_type))));

	if (!OidIsValid(result_type))
		return;
	if (!IsPolymorphicType(rettype))
		fits = (result_type == rettype);
	else if (rettype == transtype)
		fits = (result_type == state_type);
	else if (IsPolymorphicType(transtype))
		fits = check_generic_type_consistency((Oid[]) {state_type, result_type},
											  (Oid[]) {transtype, rettype}, 2);
	else
		fits = check_generic_type_consistency(&result_type, &rettype, 1);
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("aggregate %s cannot return type %s from a partial state of type %s",
						format_procedure(aggfnoid), format_type_be(result_type),
						format_type_be(state_type)),
				 errdetail("The aggregate returns %s.", format_type_be(rettype))));
}

/*
 * Look up an aggregate's support functions, once the types of the call are
 * known to fit the aggregate.  Each FmgrInfo gets a call expression with
 * the actual argument types, so that polymorphic support functions (say, of
 * range_intersect_agg) can resolve them.
 */
static AggSupport *
lookup_agg_support(Oid aggfnoid, Oid state_type, Oid result_type, Oid collation,
				   MemoryContext mcxt)
{
	HeapTuple	tuple;
	Form_pg_aggregate agg;
	AggSupport *s;
	MemoryContext old;
	Datum		textInitVal;
	bool		isnull;

	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("function %s is not an aggregate", format_procedure(aggfnoid))));
	agg = (Form_pg_aggregate) GETSTRUCT(tuple);
	if (pg_proc_aclcheck(aggfnoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_AGGREGATE, get_func_name(aggfnoid));
	if (!OidIsValid(agg->aggcombinefn))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate %s has no combine function", format_procedure(aggfnoid))));
	check_state_types(aggfnoid, agg, state_type, result_type);

	/*
	 * The aggregate's owner may call its support functions, as PostgreSQL's
	 * executor checks before it runs an aggregate (nodeAgg.c): a role that
	 * may run the aggregate reaches them only through it.
	 */
	{
		HeapTuple	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(aggfnoid));
		Oid			owner;
		Oid			support[4] = {agg->aggcombinefn, agg->aggfinalfn,
			agg->aggtranstype == INTERNALOID ? agg->aggserialfn : InvalidOid,
		agg->aggtranstype == INTERNALOID ? agg->aggdeserialfn : InvalidOid};

		if (!HeapTupleIsValid(proc))
			elog(ERROR, "cache lookup failed for function %u", aggfnoid);
		owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
		ReleaseSysCache(proc);
		for (int i = 0; i < lengthof(support); i++)
			if (OidIsValid(support[i]) &&
				pg_proc_aclcheck(support[i], owner, ACL_EXECUTE) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(support[i]));
	}

	old = MemoryContextSwitchTo(mcxt);
	s = palloc0(sizeof(AggSupport));
	s->aggfnoid = aggfnoid;
	s->transtype = (agg->aggtranstype == INTERNALOID) ? INTERNALOID : state_type;
	s->marked = (s->transtype == INTERNALOID && state_type != BYTEAOID);
	if (s->marked)
		s->mark = stream_agg_state_mark(aggfnoid);
	get_typlenbyval(s->transtype, &s->translen, &s->transbyval);
	fmgr_info_cxt(agg->aggcombinefn, &s->combinefn, mcxt);
	fmgr_info_set_expr((Node *) makeFuncExpr(agg->aggcombinefn, s->transtype,
											 list_make2(typed_arg(s->transtype, collation),
														typed_arg(s->transtype, collation)),
											 InvalidOid, collation, COERCE_EXPLICIT_CALL),
					   &s->combinefn);
	if (s->transtype == INTERNALOID)
	{
		Expr	   *expr;

		s->has_serial = true;
		fmgr_info_cxt(agg->aggserialfn, &s->serialfn, mcxt);
		build_aggregate_serialfn_expr(agg->aggserialfn, &expr);
		fmgr_info_set_expr((Node *) expr, &s->serialfn);
		fmgr_info_cxt(agg->aggdeserialfn, &s->deserialfn, mcxt);
		build_aggregate_deserialfn_expr(agg->aggdeserialfn, &expr);
		fmgr_info_set_expr((Node *) expr, &s->deserialfn);
	}
	if (OidIsValid(agg->aggfinalfn))
	{
		Oid		   *argtypes;
		int			nargs;
		Expr	   *expr;

		s->has_final = true;
		fmgr_info_cxt(agg->aggfinalfn, &s->finalfn, mcxt);
		s->final_nargs = agg->aggfinalextra ? get_func_nargs(agg->aggfinalfn) : 1;
		(void) get_func_signature(aggfnoid, &argtypes, &nargs);
		build_aggregate_finalfn_expr(argtypes, s->final_nargs, s->transtype,
									 OidIsValid(result_type) ? result_type : get_func_rettype(aggfnoid),
									 collation, agg->aggfinalfn, &expr);
		fmgr_info_set_expr((Node *) expr, &s->finalfn);
	}
	textInitVal = SysCacheGetAttr(AGGFNOID, tuple, Anum_pg_aggregate_agginitval, &isnull);
	s->initval_isnull = isnull || s->transtype == INTERNALOID;
	if (!s->initval_isnull)
	{
		Oid			typinput;
		Oid			typioparam;
		char	   *str = TextDatumGetCString(textInitVal);

		getTypeInputInfo(s->transtype, &typinput, &typioparam);
		s->initval = OidInputFunctionCall(typinput, str, typioparam, -1);
	}
	MemoryContextSwitchTo(old);
	ReleaseSysCache(tuple);
	return s;
}

/* Cached per call site in fn_extra */
static AggSupport *
agg_support_for_call(FunctionCallInfo fcinfo, Oid aggfnoid, int state_argno, int result_argno)
{
	AggSupport *s = (AggSupport *) fcinfo->flinfo->fn_extra;

	if (s == NULL || s->aggfnoid != aggfnoid)
	{
		Oid			state_type = get_fn_expr_argtype(fcinfo->flinfo, state_argno);
		Oid			result_type = (result_argno >= 0) ?
			get_fn_expr_argtype(fcinfo->flinfo, result_argno) : InvalidOid;

		s = lookup_agg_support(aggfnoid, state_type, result_type, PG_GET_COLLATION(),
							   fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = s;
	}
	return s;
}

static Datum
call2(FmgrInfo *fn, Oid collation, fmNodePtr context,
	  Datum a, bool anull, Datum b, bool bnull, bool *isnull)
{
	LOCAL_FCINFO(fc, 2);
	Datum		result;

	InitFunctionCallInfoData(*fc, fn, 2, collation, context, NULL);
	fc->args[0].value = a;
	fc->args[0].isnull = anull;
	fc->args[1].value = b;
	fc->args[1].isnull = bnull;
	result = FunctionCallInvoke(fc);
	*isnull = fc->isnull;
	return result;
}

/*
 * Deserialize a stored state into an internal one.
 *
 * PostgreSQL hands a deserialization function only what the serialization
 * function just returned: a plain in-memory bytea.  Ours come from state and
 * delta tables, compressed or stored out of line once they pass TOAST's
 * threshold (about 2 kB), or with a short header when small; deserialization
 * functions that do not detoast their argument (tdigest's, for one) would
 * read the compressed bytes as a state.  So they get the plain form.
 */
static Datum
deserialize_state(AggSupport *s, Oid collation, fmNodePtr context, Datum bytes)
{
	bool		isnull;

	if (s->marked)
		bytes = stream_agg_state_bytes(s->mark, bytes);
	else
		bytes = PointerGetDatum(PG_DETOAST_DATUM(bytes));
	return call2(&s->deserialfn, collation, context, bytes, false, (Datum) 0, false, &isnull);
}

/* The stored form of an internal state: serialized, marked when agg_state. */
static Datum
serialize_state(AggSupport *s, Oid collation, fmNodePtr context, Datum value, bool *isnull)
{
	Datum		bytes = call2(&s->serialfn, collation, context, value, false, (Datum) 0, false,
							  isnull);

	if (*isnull || !s->marked)
		return bytes;
	return stream_agg_state_make(s->mark, bytes);
}

/*
 * Merge one input state into the value and isnull pointed to, the way nodeAgg combines
 * partial aggregates.  New by-reference values are copied into aggcxt.
 */
static void
merge_state(AggSupport *s, Oid collation, fmNodePtr context, MemoryContext aggcxt,
			Datum *value, bool *isnull, Datum input, bool input_isnull)
{
	Datum		result;
	bool		result_isnull;

	if (s->transtype == INTERNALOID)
	{
		/* Combine functions of internal states are never strict. */
		if (input_isnull)
			return;
		input = deserialize_state(s, collation, context, input);
		result = call2(&s->combinefn, collation, context, *value, *isnull,
					   input, false, &result_isnull);
		*value = result;
		*isnull = result_isnull;
		return;
	}

	if (s->combinefn.fn_strict)
	{
		if (input_isnull)
			return;
		if (*isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(aggcxt);

			*value = datumCopy(input, s->transbyval, s->translen);
			MemoryContextSwitchTo(old);
			*isnull = false;
			return;
		}
	}
	result = call2(&s->combinefn, collation, context, *value, *isnull,
				   input, input_isnull, &result_isnull);
	if (!s->transbyval && !result_isnull && DatumGetPointer(result) != DatumGetPointer(*value))
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		result = datumCopy(result, false, s->translen);
		MemoryContextSwitchTo(old);
	}
	*value = result;
	*isnull = result_isnull;
}

static void
init_merge_state(MergeState *st, AggSupport *s, MemoryContext aggcxt)
{
	st->support = s;
	st->isnull = s->initval_isnull;
	st->value = (Datum) 0;
	if (!st->isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		st->value = datumCopy(s->initval, s->transbyval, s->translen);
		MemoryContextSwitchTo(old);
	}
}

/* Transition function of combine_agg and finalize_agg. */
Datum
stream_ext_combine_agg_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	MergeState *st;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "combine_agg_trans called in non-aggregate context");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("aggregate of a partial state must not be null")));

	st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	if (st != NULL && st->support->aggfnoid != PG_GETARG_OID(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the aggregate argument must be the same in every row of a group")));
	if (st == NULL)
	{
		AggSupport *s = agg_support_for_call(fcinfo, PG_GETARG_OID(1), 2,
											  PG_NARGS() > 3 ? 3 : -1);

		st = MemoryContextAllocZero(aggcxt, sizeof(MergeState));
		init_merge_state(st, s, aggcxt);
	}
	merge_state(st->support, PG_GET_COLLATION(), fcinfo->context, aggcxt,
				&st->value, &st->isnull, PG_GETARG_DATUM(2), PG_ARGISNULL(2));
	PG_RETURN_POINTER(st);
}

/* Final function of combine_agg: the merged state, serialized if internal. */
Datum
stream_ext_combine_agg_final(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	AggSupport *s;
	bool		isnull;
	Datum		result;

	if (st == NULL || st->isnull)
		PG_RETURN_NULL();
	s = st->support;
	if (s->transtype != INTERNALOID)
		PG_RETURN_DATUM(st->value);
	result = serialize_state(s, PG_GET_COLLATION(), fcinfo->context, st->value, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/* The aggregate OID given as a constant to this finalize_agg call. */
static Oid
aggregate_of_call(FunctionCallInfo fcinfo)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	TargetEntry *tle;

	if (aggref == NULL)			/* a window function's frame of no rows */
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("finalize_agg over no rows cannot be computed as a window function"),
				 errhint("Use finalize_agg as a plain aggregate.")));
	if (list_length(aggref->args) < 2)
		elog(ERROR, "finalize_agg called with %d arguments", list_length(aggref->args));
	tle = linitial(aggref->args);
	if (!IsA(tle->expr, Const) || ((Const *) tle->expr)->constisnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the aggregate argument of finalize_agg must be a constant")));
	return DatumGetObjectId(((Const *) tle->expr)->constvalue);
}

/*
 * The aggregate's result from a merged state (value, isnull), by its final
 * function if it has one.
 */
static Datum
final_result(AggSupport *s, Oid collation, fmNodePtr context, Datum value, bool isnull,
			 bool *result_isnull)
{
	LOCAL_FCINFO(fc, FUNC_MAX_ARGS);
	Datum		result;

	*result_isnull = isnull;
	if (!s->has_final)
		return value;
	/* as PostgreSQL: FINALFUNC_EXTRA's arguments are NULLs a strict one is not given */
	if (s->finalfn.fn_strict && (isnull || s->final_nargs > 1))
	{
		*result_isnull = true;
		return (Datum) 0;
	}
	InitFunctionCallInfoData(*fc, &s->finalfn, s->final_nargs, collation, context, NULL);
	fc->args[0].value = value;
	fc->args[0].isnull = isnull;
	for (int i = 1; i < s->final_nargs; i++)
	{
		fc->args[i].value = (Datum) 0;
		fc->args[i].isnull = true;
	}
	result = FunctionCallInvoke(fc);
	*result_isnull = fc->isnull;
	return result;
}

/* Final function of finalize_agg: the aggregate's result. */
Datum
stream_ext_finalize_agg_final(PG_FUNCTION_ARGS)
{
	MergeState *st = PG_ARGISNULL(0) ? NULL : (MergeState *) PG_GETARG_POINTER(0);
	MergeState	empty;
	MemoryContext aggcxt;
	Datum		result;
	bool		isnull;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "finalize_agg_final called in non-aggregate context");

	if (st == NULL)
	{
		/* No rows: the aggregate over no input (count gives 0, sum NULL). */
		AggSupport *s = agg_support_for_call(fcinfo, aggregate_of_call(fcinfo), 2, 3);

		init_merge_state(&empty, s, aggcxt);
		st = &empty;
	}
	result = final_result(st->support, PG_GET_COLLATION(), fcinfo->context,
						  st->value, st->isnull, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * Support functions of internal states insist on an aggregate context; one
 * whose memory is the current context, for the scalar functions below.
 * What else of the aggregate API a third party's support function may call
 * (AggGetTempMemoryContext, AggRegisterCallback) finds memory there too; a
 * callback it registers is not called (the memory goes with the context).
 */
static fmNodePtr
scalar_agg_context(void)
{
	ExprContext *econtext = makeNode(ExprContext);
	AggState   *context = makeNode(AggState);

	econtext->ecxt_per_tuple_memory = CurrentMemoryContext;
	econtext->ecxt_per_query_memory = CurrentMemoryContext;
	context->curaggcontext = econtext;
	context->tmpcontext = econtext;
	return (fmNodePtr) context;
}

/*
 * finalize_state(agg, state, NULL::result): the aggregate's result from one
 * partial state.  State tables keep it beside the state, as a generated
 * column, so that reads of groups without deltas need not finalize.
 */
Datum
stream_ext_finalize_state(PG_FUNCTION_ARGS)
{
	AggSupport *s;
	fmNodePtr	context;
	Datum		value = PG_GETARG_DATUM(1);
	bool		isnull = PG_ARGISNULL(1);
	Datum		result;
	bool		result_isnull;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = agg_support_for_call(fcinfo, PG_GETARG_OID(0), 1, 2);
	context = scalar_agg_context();
	if (s->transtype == INTERNALOID && !isnull)
		value = deserialize_state(s, PG_GET_COLLATION(), context, value);
	result = final_result(s, PG_GET_COLLATION(), context, value, isnull, &result_isnull);
	if (result_isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * combine_states(agg, a, b): a and b merged, as a state of the same form.
 * Used by the combiner to fold a batch of deltas into an existing row.
 */
Datum
stream_ext_combine_states(PG_FUNCTION_ARGS)
{
	AggSupport *s;
	fmNodePtr	context;
	Datum		value;
	bool		isnull;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1) && PG_ARGISNULL(2))
		PG_RETURN_NULL();
	s = agg_support_for_call(fcinfo, PG_GETARG_OID(0), 1, -1);
	context = scalar_agg_context();

	if (s->transtype == INTERNALOID)
	{
		bool		rnull;

		if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		{
			Datum		state = PG_GETARG_DATUM(PG_ARGISNULL(1) ? 2 : 1);

			if (s->marked)
				stream_agg_state_check(s->mark, state);
			PG_RETURN_DATUM(state);
		}
		value = deserialize_state(s, PG_GET_COLLATION(), context, PG_GETARG_DATUM(1));
		isnull = false;
		merge_state(s, PG_GET_COLLATION(), context, CurrentMemoryContext,
					&value, &isnull, PG_GETARG_DATUM(2), false);
		value = serialize_state(s, PG_GET_COLLATION(), context, value, &rnull);
		if (rnull)
			PG_RETURN_NULL();
		PG_RETURN_DATUM(value);
	}

	/* Work on a copy: combine functions may update their first argument. */
	isnull = PG_ARGISNULL(1);
	value = isnull ? (Datum) 0 : datumCopy(PG_GETARG_DATUM(1), s->transbyval, s->translen);
	merge_state(s, PG_GET_COLLATION(), context, CurrentMemoryContext,
				&value, &isnull, PG_GETARG_DATUM(2), PG_ARGISNULL(2));
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(value);
}
