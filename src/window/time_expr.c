/*
 * time_expr.c
 *	  Expressions over a view's event time.
 *
 * The time of an event is its time_column (timestamptz, timestamp, or date
 * taken as a timestamp at midnight), or arrival_timestamp.  Buckets are
 * date_bin(width, time, '2000-01-01'), so every view agrees on where a step,
 * a slice or a session bucket starts.
 */
#include "postgres.h"

#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"

#include "window/time_expr.h"

static Oid
catalog_function(const char *name, int nargs, Oid *argtypes)
{
	return LookupFuncName(list_make2(makeString("pg_catalog"), makeString(pstrdup(name))),
						  nargs, argtypes, false);
}

/* The attribute number of the view's time column in the stream. */
AttrNumber
stream_window_time_attnum(WindowSpec *spec, Oid stream)
{
	const char *column = spec->time_column ? spec->time_column : "arrival_timestamp";
	AttrNumber	attnum = get_attnum(stream, column);
	Oid			type;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("time_column \"%s\" is not a column of stream \"%s\"",
						column, get_rel_name(stream))));
	type = get_atttype(stream, attnum);
	if (type != TIMESTAMPTZOID && type != TIMESTAMPOID && type != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("time_column \"%s\" has type %s", column, format_type_be(type)),
				 errhint("The time column of a view must be of type timestamptz, timestamp or date.")));
	return attnum;
}

/*
 * "time >= bound" (ge) or "time < bound" of type, for the bound given in
 * microseconds (timestamp and timestamptz count alike)
 */
static Expr *
time_compared(Expr *time, Oid type, bool ge, int64 bound)
{
	const char *name = type == TIMESTAMPTZOID ? (ge ? "timestamptz_ge" : "timestamptz_lt") :
		(ge ? "timestamp_ge" : "timestamp_lt");

	return (Expr *) makeFuncExpr(catalog_function(name, 2, (Oid[]) {type, type}), BOOLOID,
								 list_make2(copyObject(time),
											makeConst(type, -1, InvalidOid, sizeof(int64),
													  Int64GetDatum(bound), false,
													  FLOAT8PASSBYVAL)),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

/*
 * The event's time, as timestamptz or timestamp (a date becomes a
 * timestamp); NULL for infinity and -infinity, which, like a NULL time,
 * fall in no window (a hopping window's slices or a session's gap cannot
 * be counted from them).  NULL too, for a hopping view, within hop_size of
 * either end of the timestamps PostgreSQL has: the windows of such a time
 * would start or end past it (every read of the view would fail).
 */
Expr *
stream_window_time_expr(WindowSpec *spec, Oid stream, Index rti)
{
	AttrNumber	attnum = stream_window_time_attnum(spec, stream);
	Oid			type;
	int32		typmod;
	Oid			collation;
	Expr	   *time;
	CaseExpr   *finite = makeNode(CaseExpr);
	CaseWhen   *when = makeNode(CaseWhen);

	/* the column as the parser makes it (typmod too: a view's date_bin of it is equal) */
	get_atttypetypmodcoll(stream, attnum, &type, &typmod, &collation);
	time = (Expr *) makeVar(rti, attnum, type, typmod, InvalidOid, 0);

	if (type == DATEOID)
	{
		time = (Expr *) makeFuncExpr(catalog_function("timestamp", 1, (Oid[]) {DATEOID}),
									 TIMESTAMPOID, list_make1(time), InvalidOid, InvalidOid,
									 COERCE_EXPLICIT_CAST);
		type = TIMESTAMPOID;
	}
	when->expr = (Expr *) makeFuncExpr(catalog_function("isfinite", 1, (Oid[]) {type}), BOOLOID,
									   list_make1(time), InvalidOid, InvalidOid,
									   COERCE_EXPLICIT_CALL);
	if (spec->kind == WINDOW_HOPPING)
	{
		int64		size = stream_interval_usecs(spec->size);

		when->expr = make_andclause(list_make3(when->expr,
											   time_compared(time, type, true, MIN_TIMESTAMP + size),
											   time_compared(time, type, false, END_TIMESTAMP - size)));
	}
	when->result = (Expr *) copyObject(time);
	when->location = -1;
	finite->casetype = type;
	finite->casecollid = InvalidOid;
	finite->arg = NULL;
	finite->args = list_make1(when);
	finite->defresult = (Expr *) makeNullConst(type, -1, InvalidOid);
	finite->location = -1;
	return (Expr *) finite;
}

/*
 * The time column's value in a time expression of stream_window_time_expr
 * (the result of its CASE): what a view's own date_bin(width, time, origin)
 * takes.
 */
Expr *
stream_window_time_value(Expr *time_expr)
{
	CaseExpr   *finite = castNode(CaseExpr, time_expr);

	return ((CaseWhen *) linitial(finite->args))->result;
}

/* date_bin(width, time, '2000-01-01') */
Expr *
stream_window_bucket(Expr *time, Interval *width)
{
	Oid			type = exprType((Node *) time);
	Interval   *copy = palloc(sizeof(Interval));
	Const	   *stride;
	Const	   *origin;

	memcpy(copy, width, sizeof(Interval));
	stride = makeConst(INTERVALOID, -1, InvalidOid, sizeof(Interval),
					   PointerGetDatum(copy), false, false);
	/* 2000-01-01 00:00 (UTC for timestamptz) is zero in both types */
	origin = makeConst(type, -1, InvalidOid, sizeof(int64), Int64GetDatum(0), false, FLOAT8PASSBYVAL);
	return (Expr *) makeFuncExpr(catalog_function("date_bin", 3, (Oid[]) {INTERVALOID, type, type}),
								 type, list_make3(stride, copyObject(time), origin),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
}

/* min(time) or max(time), as the parser would make it */
Aggref *
stream_window_time_aggregate(const char *name, Expr *time)
{
	Oid			type = exprType((Node *) time);
	Aggref	   *agg = makeNode(Aggref);

	agg->aggfnoid = catalog_function(name, 1, &type);
	agg->aggtype = type;
	agg->aggargtypes = list_make1_oid(type);
	agg->args = list_make1(makeTargetEntry(copyObject(time), 1, NULL, false));
	agg->aggkind = AGGKIND_NORMAL;
	agg->aggsplit = AGGSPLIT_SIMPLE;
	agg->location = -1;
	return agg;
}

/* qual AND time IS NOT NULL: events without a time belong to no window. */
Expr *
stream_window_and_not_null(Expr *qual, Expr *time)
{
	NullTest   *test = makeNode(NullTest);

	test->arg = copyObject(time);
	test->nulltesttype = IS_NOT_NULL;
	test->location = -1;
	if (qual == NULL)
		return (Expr *) test;
	return make_andclause(list_make2(qual, test));
}
