/*
 * rollup.c
 *	  stream_ext.combine(column): a continuous view's aggregate column rolled
 *	  up to coarser groups.
 *
 * SELECT date_trunc('hour', minute), combine(p95) FROM per_minute GROUP BY 1
 * is, in each of its groups, the view's aggregate over the events of all the
 * view's groups it takes: avg from the groups' sums and counts, a sketch
 * from the groups' sketches, never an average of averages.  A column
 * computed from aggregates (max(x) - min(x), hll_cardinality(hll_add_agg(..)))
 * is computed from them so rolled up.  A planner hook
 * rewrites each use before planning.  The rewriter has made the view a
 * subquery; it becomes the same read followed by each group's combined
 * partial states (ddl/read_view.c), and combine(p95) the finalization of
 * the states of the groups it takes, as the view's own read finalizes them.
 * So the other columns of the view keep their meaning in such a query.
 * Whatever the rewrite does not cover (a column that is not computed from
 * aggregates alone, not a continuous view's, combine(DISTINCT ...)) is an
 * error at planning.
 *
 * Privileges: the reader's SELECT on the view is checked as for any read of
 * it (the view's permission entry moves into the new subquery); the
 * internal tables are read with the rights of the view's owner, as the
 * view reads them.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteDefine.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "analyze/view_query.h"
#include "catalog/catalog.h"
#include "ddl/read_view.h"
#include "ddl/rollup.h"
#include "window/spec.h"

static planner_hook_type prev_planner_hook = NULL;

/* A continuous view's subquery in the query being planned, rewritten */
typedef struct RolledUpView
{
	RangeTblEntry *rte;
	ViewShape  *shape;
	int			ncolumns;		/* the view's own columns, before the states */
} RolledUpView;

typedef struct RollupContext
{
	Oid			combine;		/* stream_ext.combine(anyelement) */
	List	   *views;			/* RolledUpView * */
} RollupContext;

/* stream_ext.combine(anyelement), or InvalidOid without the extension */
static Oid
combine_function(void)
{
	Oid			schema = get_namespace_oid("stream_ext", true);

	if (!OidIsValid(schema))
		return InvalidOid;
	return LookupFuncName(list_make2(makeString("stream_ext"), makeString("combine")), 1,
						  (Oid[]) {ANYELEMENTOID}, true);
}

/*
 * Does the query call aggregate fn (any aggregate, for InvalidOid),
 * directly, as a window function or in an inner query?
 */
static bool
uses_aggregate_walker(Node *node, Oid *fn)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref) && (*fn == InvalidOid || ((Aggref *) node)->aggfnoid == *fn))
		return true;
	if (IsA(node, WindowFunc) && (*fn == InvalidOid || ((WindowFunc *) node)->winfnoid == *fn))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, uses_aggregate_walker, fn, 0);
	return expression_tree_walker(node, uses_aggregate_walker, fn);
}

static void
refuse(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("stream_ext.combine() takes an aggregate column of a continuous view"),
			 errdetail_internal("%s", detail),
			 errhint("Write stream_ext.combine(column) over the view in FROM, where column is, in "
					 "the view's definition, computed from aggregates only, such as avg(x) or "
					 "max(x) - min(x).")));
}

/*
 * The read of view id with each group's states, analyzed as its owner and
 * reading the internal tables with the owner's rights; the reader's
 * permission entry of the view (the view query's first entry, its OLD)
 * joins its range table, so that the reader's SELECT is still checked.
 */
static Query *
states_query(ContinuousViewRow *row, ViewShape *shape, RangeTblEntry *permission)
{
	char	   *sql = stream_read_view_states_sql(shape, row->id,
												  stream_view_relation_relid(row->id,
																			 VIEW_STATE_TABLE,
																			 false));
	Oid			saved_user;
	int			saved_sec;
	Query	   *query;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(row->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	query = parse_analyze_fixedparams(linitial_node(RawStmt, raw_parser(sql, RAW_PARSE_DEFAULT)),
									  sql, NULL, 0, NULL);
	SetUserIdAndSecContext(saved_user, saved_sec);
	setRuleCheckAsUser((Node *) query, row->owner);
	query->rtable = lappend(query->rtable, copyObject(permission));
	return query;
}

/*
 * The view behind rte, rewritten to read its groups' states (once per
 * range table entry).
 */
static RolledUpView *
rolled_up_view(RollupContext *ctx, RangeTblEntry *rte)
{
	RolledUpView *v;
	ContinuousViewRow *row;
	RangeTblEntry *permission;
	ListCell   *lc;
	int			id;

	foreach(lc, ctx->views)
		if (((RolledUpView *) lfirst(lc))->rte == rte)
			return lfirst(lc);

	id = (rte->rtekind == RTE_SUBQUERY && OidIsValid(rte->relid)) ?
		stream_continuous_view_id(rte->relid) : 0;
	if (id <= 0)
		refuse("Its argument is not a column of a continuous view in the FROM clause of "
			   "the query that calls it.");
	row = stream_catalog_view(id);
	v = palloc0(sizeof(RolledUpView));
	v->rte = rte;
	v->shape = stream_view_shape((Query *) stringToNode(row->query),
								 stream_window_spec_from_text(&row->window));
	if (v->shape->keeps_rows)
		refuse(psprintf("Continuous view %s keeps rows; it has no aggregates.", row->name));
	v->ncolumns = list_length(rte->eref->colnames);
	permission = rt_fetch(PRS2_OLD_VARNO, rte->subquery->rtable);
	Assert(permission->relid == rte->relid);
	rte->subquery = states_query(row, v->shape, permission);
	foreach(lc, v->shape->agg_names)
		rte->eref->colnames = lappend(rte->eref->colnames, makeString(lfirst(lc)));
	ctx->views = lappend(ctx->views, v);
	return v;
}

/*
 * The expression of column attno of the view, in its definition, by
 * position (ALTER VIEW ... RENAME COLUMN renames the view's columns, not
 * the definition's); NULL for the columns a window adds ahead of the
 * definition's.  *name: the column's name now.
 */
static Expr *
column_expression(RolledUpView *v, AttrNumber attno, char **name)
{
	List	   *columns = NIL;
	ListCell   *lc;
	int			leading;

	*name = get_attname(v->rte->relid, attno, false);
	foreach(lc, v->shape->query->targetList)
		if (!((TargetEntry *) lfirst(lc))->resjunk)
			columns = lappend(columns, ((TargetEntry *) lfirst(lc))->expr);
	{
		Relation	view = relation_open(v->rte->relid, AccessShareLock);

		leading = RelationGetNumberOfAttributes(view) - list_length(columns);
		relation_close(view, AccessShareLock);
	}
	if (attno <= leading)
		return NULL;
	return list_nth(columns, attno - leading - 1);
}

typedef struct FinalizeContext
{
	RolledUpView *view;
	Index		varno;			/* of the view in the query rolling it up */
	bool		has_aggregate;
	bool		has_key;
} FinalizeContext;

/*
 * A column's expression over the states of the groups rolled up: each
 * aggregate call finalized from the states of every group taken.  A
 * reference to the stream outside an aggregate is a group key, which
 * differs between the groups: noted, the caller refuses it.
 */
static Node *
finalize_mutator(Node *node, FinalizeContext *ctx)
{
	ListCell   *lc;

	if (node == NULL)
		return NULL;
	if (IsA(node, Aggref))
	{
		foreach(lc, ctx->view->shape->aggs)
		{
			int			aggno = foreach_current_index(lc);
			Aggref	   *aggref = lfirst(lc);
			Oid			state_type = list_nth_oid(ctx->view->shape->agg_state_types, aggno);
			Var		   *states;

			if (!equal(node, stream_shape_query_agg(ctx->view->shape, aggno)))
				continue;
			states = makeVar(ctx->varno, ctx->view->ncolumns + aggno + 1, state_type, -1,
							 type_is_collatable(state_type) ? aggref->inputcollid : InvalidOid, 0);
			ctx->has_aggregate = true;
			return (Node *) stream_finalize_states_call(ctx->view->shape, aggno, (Expr *) states);
		}
		elog(ERROR, "aggregate not found in continuous view shape");
	}
	if (IsA(node, Var) || IsA(node, GroupingFunc))
	{
		ctx->has_key = true;
		return node;
	}
	return expression_tree_mutator(node, finalize_mutator, (void *) ctx);
}

/* combine(column) of the query whose range table is rtable, rewritten */
static Node *
rewrite_combine(RollupContext *ctx, Aggref *combine, List *rtable)
{
	Var		   *var;
	FinalizeContext fin = {0};
	Expr	   *expr;
	char	   *name;
	Node	   *result;

	if (combine->aggdistinct != NIL || combine->aggorder != NIL || combine->aggfilter != NULL)
		refuse("It takes neither DISTINCT, ORDER BY nor FILTER.");
	if (combine->agglevelsup != 0)
		refuse("It cannot be an aggregate of an outer query.");
	var = (Var *) ((TargetEntry *) linitial(combine->args))->expr;
	if (!IsA(var, Var) || var->varlevelsup != 0 || var->varattno <= 0)
		refuse("Its argument is not a column.");
	fin.view = rolled_up_view(ctx, rt_fetch(var->varno, rtable));
	fin.varno = var->varno;
	expr = column_expression(fin.view, var->varattno, &name);
	result = expr ? finalize_mutator((Node *) expr, &fin) : NULL;
	if (!fin.has_aggregate || fin.has_key)
		refuse(psprintf("Column \"%s\" of continuous view %s is %s.", name,
						get_rel_name(fin.view->rte->relid),
						fin.has_aggregate ? "computed from its group keys too" :
						"not an aggregate"));
	return result;
}

typedef struct LevelContext
{
	RollupContext *rollup;
	List	   *rtable;
} LevelContext;

static bool rewrite_query(Query *query, RollupContext *ctx);

/* The expressions of one query level: its combine() calls rewritten */
static Node *
rewrite_level_mutator(Node *node, LevelContext *level)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Aggref) && ((Aggref *) node)->aggfnoid == level->rollup->combine)
		return rewrite_combine(level->rollup, (Aggref *) node, level->rtable);
	if (IsA(node, WindowFunc) && ((WindowFunc *) node)->winfnoid == level->rollup->combine)
		refuse("It is not a window function.");
	if (IsA(node, Query))
	{
		/* a sublink's query: a level of its own */
		Query	   *sub = (Query *) node;

		rewrite_query(sub, level->rollup);
		return (Node *) sub;
	}
	return expression_tree_mutator(node, rewrite_level_mutator, (void *) level);
}

/* Rewrite the combine() calls of query and of the queries it contains */
static bool
rewrite_query(Query *query, RollupContext *ctx)
{
	LevelContext level = {ctx, query->rtable};
	ListCell   *lc;

	/* inner queries first: subqueries in FROM and WITH */
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_SUBQUERY)
			rewrite_query(rte->subquery, ctx);
	}
	foreach(lc, query->cteList)
		rewrite_query((Query *) ((CommonTableExpr *) lfirst(lc))->ctequery, ctx);

	query->targetList = (List *) rewrite_level_mutator((Node *) query->targetList, &level);
	query->havingQual = rewrite_level_mutator(query->havingQual, &level);
	query->jointree = (FromExpr *) rewrite_level_mutator((Node *) query->jointree, &level);
	query->returningList = (List *) rewrite_level_mutator((Node *) query->returningList, &level);
	return false;
}

/*
 * The transition function of stream_ext.combine(): it runs only where the
 * planner did not rewrite a call, which it refuses first.
 */
PG_FUNCTION_INFO_V1(stream_ext_combine_unrewritten);
Datum
stream_ext_combine_unrewritten(PG_FUNCTION_ARGS)
{
	refuse("It was not rewritten when the query was planned.");
	PG_RETURN_NULL();
}

/* planner_hook: combine() calls rewritten, around the chain */
static PlannedStmt *
stream_rollup_planner(Query *parse, const char *query_string, int cursorOptions,
					  ParamListInfo boundParams)
{
	Oid			any = InvalidOid;
	Oid			combine;

	/* the catalog is looked up only for queries with aggregates */
	if (uses_aggregate_walker((Node *) parse, &any) &&
		OidIsValid(combine = combine_function()) &&
		uses_aggregate_walker((Node *) parse, &combine))
	{
		RollupContext ctx = {combine, NIL};

		rewrite_query(parse, &ctx);
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

void
stream_rollup_init(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = stream_rollup_planner;
}
