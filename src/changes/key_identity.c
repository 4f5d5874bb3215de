/*
 * key_identity.c
 *	  stream_ext_internal.key_identity(key): the value of a group key that
 *	  stands for every value equal to it.
 *
 * Change streams name a view's groups by the text of their keys (change_sql.c,
 * ddl/read_view.c), so that NULL keys match and every type compares.  But
 * some types have equal values that print differently: a merge would note
 * group 1.00 while the view's row, grouped with 1.0, says 1.0, and the
 * change would be lost.  Keys go through this function first: numerics lose
 * trailing zeros, -0 becomes 0, intervals are justified (of equal length,
 * they print alike).  Text under a nondeterministic collation has no such
 * form: create_change_stream refuses such keys.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(stream_ext_key_identity);

Datum
stream_ext_key_identity(PG_FUNCTION_ARGS)
{
	Oid		   *cached = fcinfo->flinfo->fn_extra;
	Oid			type;

	/* the argument's base type, looked up once per call site */
	if (cached == NULL)
	{
		cached = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
		*cached = getBaseType(get_fn_expr_argtype(fcinfo->flinfo, 0));
		fcinfo->flinfo->fn_extra = cached;
	}
	type = *cached;

	switch (type)
	{
		case NUMERICOID:
			return DirectFunctionCall1(numeric_trim_scale, PG_GETARG_DATUM(0));
		case FLOAT8OID:
			if (PG_GETARG_FLOAT8(0) == 0)
				PG_RETURN_FLOAT8(0.0);
			break;
		case FLOAT4OID:
			if (PG_GETARG_FLOAT4(0) == 0)
				PG_RETURN_FLOAT4(0.0f);
			break;
		case INTERVALOID:
			return DirectFunctionCall1(interval_justify_interval, PG_GETARG_DATUM(0));
		default:
			break;
	}
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}
