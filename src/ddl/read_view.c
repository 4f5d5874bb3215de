/*
 * read_view.c
 *	  The SELECT of the view users query.
 *
 * Its rows are the view's state rows plus the deltas of committed writers,
 * combined per group and finalized with stream_ext_internal.finalize_agg;
 * the defining query's select list and HAVING are rewritten over them.
 * Windows change the grouping:
 *	 sliding	the steps inside the window, combined per group;
 *	 hopping	each slice counted in every window it belongs to
 *				(window_start, window_end);
 *	 session	partial sessions of a group chained while they are closer than
 *				the gap (session_start, session_end);
 * and ttl hides expired rows at once, before the reaper deletes them (a
 * NULL bucket never expires).
 */
#include "postgres.h"

#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"

#include "ddl/read_view.h"
#include "window/session.h"
#include "window/sliding.h"

#define INTERNAL_SCHEMA "stream_ext_internal"

/* The SQL of "now" for windows and ttl: stream_ext.read_time() */
#define READ_TIME "stream_ext.read_time()"

typedef struct ReadViewContext
{
	ViewShape  *shape;
	Oid			finalize_agg;
} ReadViewContext;

/* "p.k1, p.k2, p.a1, p.a2": the key and state columns, quoted */
char *
stream_state_columns_sql(ViewShape *shape, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;
	bool		first = true;

	initStringInfo(&buf);
	foreach(lc, shape->key_names)
	{
		appendStringInfo(&buf, "%s%s%s", first ? "" : ", ", prefix, quote_identifier(lfirst(lc)));
		first = false;
	}
	foreach(lc, shape->agg_names)
	{
		appendStringInfo(&buf, "%s%s%s", first ? "" : ", ", prefix, quote_identifier(lfirst(lc)));
		first = false;
	}
	return buf.data;
}

/* finalize_agg('agg'::regprocedure, <state column>, NULL::result) */
static Node *
finalize_call(ReadViewContext *ctx, Aggref *aggref, int aggno)
{
	Aggref	   *f = makeNode(Aggref);
	Oid			state_type = list_nth_oid(ctx->shape->agg_state_types, aggno);
	Oid			state_coll = type_is_collatable(state_type) ? aggref->inputcollid : InvalidOid;
	AttrNumber	attno = list_length(ctx->shape->keys) + aggno + 1;
	Const	   *agg = makeConst(REGPROCEDUREOID, -1, InvalidOid, sizeof(Oid),
								ObjectIdGetDatum(aggref->aggfnoid), false, true);
	Var		   *state = makeVar(1, attno, state_type, -1, state_coll, 0);
	Const	   *result = makeNullConst(aggref->aggtype, exprTypmod((Node *) aggref),
									   aggref->aggcollid);

	f->aggfnoid = ctx->finalize_agg;
	f->aggtype = aggref->aggtype;
	f->aggcollid = aggref->aggcollid;
	f->inputcollid = state_coll;
	f->aggargtypes = list_make3_oid(REGPROCEDUREOID, state_type, aggref->aggtype);
	f->args = list_make3(makeTargetEntry((Expr *) agg, 1, NULL, false),
						 makeTargetEntry((Expr *) state, 2, NULL, false),
						 makeTargetEntry((Expr *) result, 3, NULL, false));
	f->aggkind = AGGKIND_NORMAL;
	f->aggsplit = AGGSPLIT_SIMPLE;
	f->location = -1;
	return (Node *) f;
}

/* Rewrite an expression of the defining query over the state columns. */
static Node *
read_view_mutator(Node *node, ReadViewContext *ctx)
{
	ListCell   *lc;
	int			i = 0;

	if (node == NULL)
		return NULL;
	foreach(lc, ctx->shape->keys)
	{
		Node	   *key = (Node *) ((TargetEntry *) lfirst(lc))->expr;

		i++;
		if (i > ctx->shape->nhidden_keys && equal(node, key))
			return (Node *) makeVar(1, i, exprType(key), exprTypmod(key), exprCollation(key), 0);
	}
	if (IsA(node, Aggref))
	{
		i = 0;
		foreach(lc, ctx->shape->aggs)
		{
			if (equal(node, lfirst(lc)))
				return finalize_call(ctx, (Aggref *) node, i);
			i++;
		}
		elog(ERROR, "aggregate not found in continuous view shape");
	}
	return expression_tree_mutator(node, read_view_mutator, (void *) ctx);
}

/* The view's own keys, "k1, k2", or NULL when it has none */
static char *
user_keys_sql(ViewShape *shape, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;
	int			i = 0;

	initStringInfo(&buf);
	foreach(lc, shape->key_names)
	{
		if (i++ < shape->nhidden_keys)
			continue;
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix, quote_identifier(lfirst(lc)));
	}
	return buf.len ? buf.data : NULL;
}

/*
 * The rows of a sliding window read: the steps from the oldest step to now,
 * taking whole blocks where the view keeps them (window/sliding.c).
 */
static char *
sliding_rows_sql(ViewShape *shape, int id, const char *cols)
{
	WindowSpec *w = shape->window;
	Oid			type = exprType((Node *) shape->time_expr);
	Interval   *lengths[SLIDING_LEVELS];
	char	   *bound[SLIDING_REAP_BEFORE];
	char	   *deltas;

	for (int i = 0; i < SLIDING_REAP_BEFORE; i++)
		bound[i] = stream_sliding_bound_sql((SlidingBound) i, w, type);
	deltas = psprintf("SELECT %s FROM " INTERNAL_SCHEMA ".delta_%d"
					  " WHERE " INTERNAL_SCHEMA ".xid_visible(writer_xid)"
					  " AND _step >= %s AND _step <= %s",
					  cols, id, bound[SLIDING_OLDEST_STEP], bound[SLIDING_NOW]);
	if (stream_sliding_levels(w, lengths) == 1)
		return psprintf("SELECT %s FROM " INTERNAL_SCHEMA ".state_%d WHERE _step >= %s AND _step <= %s"
						" UNION ALL %s", cols, id, bound[SLIDING_OLDEST_STEP], bound[SLIDING_NOW],
						deltas);
	/* big blocks [F2, G2); blocks [F1, F2) and [G2, G1); steps [L, F1) and [G1, H] */
	return psprintf("SELECT %s FROM " INTERNAL_SCHEMA ".state_%d WHERE _level = 2 AND _step >= %s AND _step < %s"
					" UNION ALL SELECT %s FROM " INTERNAL_SCHEMA ".state_%d WHERE _level = 1 AND"
					" (_step >= %s AND _step < %s OR _step >= %s AND _step < %s)"
					" UNION ALL SELECT %s FROM " INTERNAL_SCHEMA ".state_%d WHERE _level = 0 AND"
					" (_step >= %s AND _step < %s OR _step >= %s AND _step <= %s)"
					" UNION ALL %s",
					cols, id, bound[SLIDING_FIRST_BIG], bound[SLIDING_BIGS_END],
					cols, id, bound[SLIDING_FIRST_BLOCK], bound[SLIDING_FIRST_BIG],
					bound[SLIDING_BIGS_END], bound[SLIDING_BLOCKS_END],
					cols, id, bound[SLIDING_OLDEST_STEP], bound[SLIDING_FIRST_BLOCK],
					bound[SLIDING_BLOCKS_END], bound[SLIDING_NOW], deltas);
}

/*
 * The rows to combine, as subquery s: state rows and visible deltas; for
 * sessions numbered by the session each belongs to (_session).
 */
static char *
rows_sql(ViewShape *shape, int id)
{
	char	   *cols = stream_state_columns_sql(shape, "");
	char	   *rows = psprintf("SELECT %s FROM " INTERNAL_SCHEMA ".state_%d"
								" UNION ALL SELECT %s FROM " INTERNAL_SCHEMA ".delta_%d"
								" WHERE " INTERNAL_SCHEMA ".xid_visible(writer_xid)",
								cols, id, cols, id);
	char	   *keys;

	if (shape->window->kind == WINDOW_SLIDING)
		return sliding_rows_sql(shape, id, cols);
	if (shape->window->kind != WINDOW_SESSION)
		return rows;
	keys = user_keys_sql(shape, "");
	return stream_sessionize_sql(keys ? keys : "", shape->window->size, psprintf("(%s)", rows));
}

/* The SELECT of the view users query. */
char *
stream_read_view_sql(ViewShape *shape, int id, Oid state_relid)
{
	ReadViewContext ctx;
	WindowSpec *w = shape->window;
	List	   *dpcontext = deparse_context_for("s", state_relid);
	StringInfoData buf;
	ListCell   *lc;
	char	   *keys = user_keys_sql(shape, "s.");
	List	   *where = NIL;
	List	   *having = NIL;
	List	   *group = NIL;

	ctx.shape = shape;
	ctx.finalize_agg = LookupFuncName(list_make2(makeString(INTERNAL_SCHEMA),
												 makeString("finalize_agg")),
									  3, (Oid[]) {REGPROCEDUREOID, ANYELEMENTOID, ANYCOMPATIBLEOID},
									  false);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	if (w->kind == WINDOW_HOPPING)
		appendStringInfo(&buf, "w.window_start, w.window_start + %s AS window_end, ",
						 stream_interval_sql(w->size));
	else if (w->kind == WINDOW_SESSION)
		appendStringInfoString(&buf, "pg_catalog.min(s._session_start) AS session_start, "
							   "pg_catalog.max(s._session_end) AS session_end, ");
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
	appendStringInfo(&buf, " FROM (%s) s", rows_sql(shape, id));

	switch (w->kind)
	{
		case WINDOW_NONE:
			if (w->ttl)
				where = lappend(where, psprintf("(s.%s > " READ_TIME " - %s OR s.%s IS NULL)",
												quote_identifier(w->ttl_column), stream_interval_sql(w->ttl),
												quote_identifier(w->ttl_column)));
			break;
		case WINDOW_SLIDING:
			break;				/* sliding_rows_sql reads the window's steps */
		case WINDOW_HOPPING:
			{
				Interval   *span = palloc0(sizeof(Interval));

				/* slice s is in the windows starting at s - (size - slide) ... s */
				span->time = stream_interval_usecs(w->size) - stream_interval_usecs(w->step);
				appendStringInfo(&buf, " CROSS JOIN LATERAL pg_catalog.generate_series(s._slice - %s, "
								 "s._slice, %s) AS w(window_start)",
								 stream_interval_sql(span), stream_interval_sql(w->step));
				group = lappend(group, "w.window_start");
				if (w->ttl)
					where = lappend(where, psprintf("w.window_start + %s > " READ_TIME " - %s",
													stream_interval_sql(w->size), stream_interval_sql(w->ttl)));
				break;
			}
		case WINDOW_SESSION:
			group = lappend(group, "s._session");
			if (w->ttl)
				having = lappend(having, psprintf("pg_catalog.max(s._session_end) > " READ_TIME " - %s",
												  stream_interval_sql(w->ttl)));
			break;
	}

	if (where)
	{
		appendStringInfoString(&buf, " WHERE ");
		foreach(lc, where)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? " AND " : "", (char *) lfirst(lc));
	}
	if (keys)
		group = lappend(group, keys);
	if (group)
	{
		appendStringInfoString(&buf, " GROUP BY ");
		foreach(lc, group)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "", (char *) lfirst(lc));
	}
	if (shape->query->havingQual != NULL)
		having = lappend(having, psprintf("(%s)",
										  deparse_expression(read_view_mutator(shape->query->havingQual, &ctx),
															 dpcontext, false, false)));
	if (having)
	{
		appendStringInfoString(&buf, " HAVING ");
		foreach(lc, having)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? " AND " : "", (char *) lfirst(lc));
	}
	return buf.data;
}
