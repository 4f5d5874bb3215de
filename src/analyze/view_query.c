/*
 * view_query.c
 *	  What a continuous view computes.
 *
 * A continuous view is an aggregate query over one stream, which it may
 * join with tables (joins.c); one without aggregates or GROUP BY keeps the
 * rows of its query instead (row_query.c plans them).  Its combine state is one row per group: the
 * GROUP BY keys plus the partial state of each distinct aggregate.  Workers
 * compute those partial states for a batch with PostgreSQL's own partial
 * aggregation (AGGSPLIT_INITIAL_SERIAL, as the partial side of a parallel
 * aggregate does), grouped additionally by the transaction that inserted
 * each event (the event tuple's xmin), so that a delta becomes visible
 * exactly when its transaction commits.  A view with grouping sets has a
 * row per group of each set, told apart by a hidden key (grouping_sets.c).
 * An aggregate whose partial states cannot be merged is kept as the multiset
 * of its inputs (input_aggs.c): workers compute inputs_agg in its place.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "parser/parse_agg.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "parser/parsetree.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "agg/agg_state.h"
#include "analyze/grouping_sets.h"
#include "analyze/input_aggs.h"
#include "analyze/joins.h"
#include "analyze/row_query.h"
#include "analyze/table_copies.h"
#include "analyze/view_query.h"
#include "stream/fdw.h"
#include "stream/read_guard.h"
#include "window/sliding.h"
#include "window/time_expr.h"

static void
reject(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s is not supported in continuous views", what),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * Error when expr, which workers evaluate once per event as it arrives
 * (the WHERE clause, an aggregate's arguments), is volatile: the view would
 * keep what it computed then, however a read later re-evaluated it.
 */
static void
reject_volatile(Node *expr, const char *what)
{
	if (!contain_volatile_functions(expr))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s of a continuous view must not be volatile", what),
			 errdetail("Continuous views evaluate such expressions once per event, when the event arrives: a condition on the current time such as clock_timestamp() would not drop events as time passes."),
			 errhint("Use WITH (continuous, sliding_window = '1 second') to keep only recent events. A function whose result depends only on its arguments can be marked IMMUTABLE or STABLE.")));
}

/* Parse analysis of a SELECT given as a raw statement. */
Query *
stream_analyze_select(RawStmt *raw, const char *sql)
{
	Query	   *query;

	if (!IsA(raw->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("a continuous view must be defined by a SELECT")));
	query = parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("a continuous view must be defined by a SELECT")));

	/*
	 * GROUP BY () and HAVING group without a key: the batch query returns
	 * one group of every event (a row even over none), which kept rows
	 * cannot give.  (Checked here, when a view is created or restored, not
	 * in stream_view_shape, which the workers run for every view.)
	 */
	if (!query->hasAggs && query->groupClause == NIL &&
		(query->groupingSets != NIL || query->havingQual != NULL))
		reject("GROUP BY () or HAVING without an aggregate",
			   "Add an aggregate, such as count(*), or leave the clause out to keep the rows.");
	return query;
}

static bool
collect_aggrefs_walker(Node *node, List **aggs)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		if (!list_member(*aggs, node))
			*aggs = lappend(*aggs, node);
		return false;			/* aggregates do not nest */
	}
	return expression_tree_walker(node, collect_aggrefs_walker, (void *) aggs);
}

/*
 * Check that an aggregate can be computed in parts and merged; one that
 * cannot is kept as the multiset of its inputs (input_aggs.c), and the
 * Aggref workers compute for it is returned instead.
 */
static Aggref *
check_aggregate(Aggref *aggref)
{
	if (stream_agg_keeps_inputs(aggref))
		return stream_inputs_aggref(aggref);
	return aggref;
}

/* The type a state column of this aggregate has. */
static Oid
aggregate_state_type(Aggref *aggref)
{
	HeapTuple	tuple;
	Oid			transtype;
	Oid			deserialfn;
	Oid			inputTypes[FUNC_MAX_ARGS];
	int			nargs;

	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	transtype = ((Form_pg_aggregate) GETSTRUCT(tuple))->aggtranstype;
	deserialfn = ((Form_pg_aggregate) GETSTRUCT(tuple))->aggdeserialfn;
	ReleaseSysCache(tuple);

	nargs = get_aggregate_argtypes(aggref, inputTypes);
	transtype = resolve_aggregate_transtype(aggref->aggfnoid, transtype, inputTypes, nargs);
	return (transtype == INTERNALOID) ? stream_internal_state_type(deserialfn) : transtype;
}

/* Column names the extension uses beside a view's own keys and aggregates */
static const char *const reserved_names[] = {
	"writer_xid", "_one", "_level", "_step", "_slice", "_session_start", "_session_end",
	"_session", "_new", STREAM_GROUPING_KEY_NAME, "window_start", "window_end",
	"session_start", "session_end", "_kept", NULL
};

/* ... of a view that keeps rows: its delta table's writer, the combiner's _one */
static const char *const reserved_row_names[] = {"writer_xid", "_one", NULL};

/* base, or base_2, base_3 ...: a name neither reserved nor taken */
static char *
unique_name_among(const char *base, List *taken, const char *const *reserved)
{
	char	   *name = pstrdup(base);
	int			n = 1;
	ListCell   *lc;

	for (;;)
	{
		bool		clash = false;

		for (const char *const *r = reserved; *r; r++)
			if (strcmp(name, *r) == 0)
				clash = true;

		foreach(lc, taken)
			if (strcmp((char *) lfirst(lc), name) == 0)
				clash = true;
		if (!clash)
			return name;
		name = psprintf("%s_%d", base, ++n);
	}
}

static char *
unique_name(const char *base, List *taken)
{
	return unique_name_among(base, taken, reserved_names);
}

/* A key the window adds, grouped with the type's default operators. */
static void
add_hidden_key(ViewShape *shape, Expr *expr, const char *name, List **names)
{
	SortGroupClause *sgc = makeNode(SortGroupClause);
	bool		hashable;

	get_sort_group_operators(exprType((Node *) expr), true, true, false,
							 &sgc->sortop, &sgc->eqop, NULL, &hashable);
	sgc->hashable = hashable;
	shape->keys = lappend(shape->keys, makeTargetEntry(expr, 0, pstrdup(name), true));
	shape->key_clauses = lappend(shape->key_clauses, sgc);
	shape->key_names = lappend(shape->key_names, pstrdup(name));
	*names = lappend(*names, pstrdup(name));
	shape->nhidden_keys++;
}

static void
add_hidden_aggregate(ViewShape *shape, Aggref *agg, const char *name, List **names)
{
	shape->aggs = lappend(shape->aggs, agg);
	shape->input_aggs = lappend(shape->input_aggs, NULL);
	shape->agg_names = lappend(shape->agg_names, pstrdup(name));
	shape->agg_state_types = lappend_oid(shape->agg_state_types, agg->aggtype);
	*names = lappend(*names, pstrdup(name));
	shape->nhidden_aggs++;
}

/*
 * The columns a window adds to the combine state, ahead of the view's own:
 *	 sliding: key _step, the step an event falls in (and _level, 0 for
 *	 steps, when the view keeps blocks: window/sliding.c);
 *	 hopping: key _slice, the slice of hop_slide an event falls in;
 *	 session: _session_start and _session_end, min and max event time of the
 *	 partial session, and for the workers only a group key that cuts a batch
 *	 into pieces no wider than the gap (events in one piece are always in one
 *	 session).
 * Events without a time belong to no window.
 */
static void
add_window_columns(ViewShape *shape, List **names)
{
	WindowSpec *w = shape->window;

	if (w->kind == WINDOW_NONE && w->time_column == NULL)
		return;
	shape->time_expr = stream_window_time_expr(w, shape->stream, shape->stream_rti);
	if (w->kind == WINDOW_NONE)
		return;

	shape->query->jointree->quals =
		(Node *) stream_window_and_not_null((Expr *) shape->query->jointree->quals,
											shape->time_expr);
	if (w->kind == WINDOW_SLIDING)
	{
		Interval   *lengths[SLIDING_LEVELS];

		/* steps are written with _level 0; the combiner adds the blocks */
		if (stream_sliding_levels(w, lengths) > 1)
			add_hidden_key(shape, (Expr *) makeConst(INT2OID, -1, InvalidOid, sizeof(int16),
													 Int16GetDatum(0), false, true),
						   "_level", names);
		add_hidden_key(shape, stream_window_bucket(shape->time_expr, w->step), "_step", names);
	}
	else if (w->kind == WINDOW_HOPPING)
		add_hidden_key(shape, stream_window_bucket(shape->time_expr, w->step), "_slice", names);
	else
	{
		add_hidden_aggregate(shape, stream_window_time_aggregate("min", shape->time_expr),
							 "_session_start", names);
		add_hidden_aggregate(shape, stream_window_time_aggregate("max", shape->time_expr),
							 "_session_end", names);
		shape->session_bucket = stream_window_bucket(shape->time_expr, w->size);
	}
	Assert(shape->nhidden_keys == stream_window_hidden_keys(w));
}

/*
 * A view with grouping sets: the key that tells its sets apart, after the
 * window's keys and before the view's own (grouping_sets.c).  Not a hidden
 * key: reads group by it.
 */
static void
add_grouping_key(ViewShape *shape, List **names)
{
	SortGroupClause *sgc = makeNode(SortGroupClause);
	bool		hashable;

	shape->grouping_key = -1;
	shape->grouping_masks = stream_grouping_masks(shape->query);
	if (shape->grouping_masks == NIL)
		return;
	get_sort_group_operators(INT4OID, true, true, false,
							 &sgc->sortop, &sgc->eqop, NULL, &hashable);
	sgc->hashable = hashable;
	shape->grouping_key = list_length(shape->keys);
	shape->keys = lappend(shape->keys,
						  makeTargetEntry((Expr *) stream_grouping_key_expr(shape->query), 0,
										  pstrdup(STREAM_GROUPING_KEY_NAME), true));
	shape->key_clauses = lappend(shape->key_clauses, sgc);
	shape->key_names = lappend(shape->key_names, pstrdup(STREAM_GROUPING_KEY_NAME));
	*names = lappend(*names, pstrdup(STREAM_GROUPING_KEY_NAME));
}

/*
 * Is each of the view's groups one state row (no window, some keys), whose
 * keys hash and whose aggregates have results of real types?  Then a read
 * can take a group's results from that row alone while no visible delta
 * changes it (ddl/read_view.c): from a result the view keeps (below), or
 * by finalizing the row's states one by one.
 */
bool
stream_shape_one_row_per_group(ViewShape *shape)
{
	ListCell   *lc;

	if (shape->window->kind != WINDOW_NONE || shape->keys == NIL || shape->keeps_rows)
		return false;
	foreach(lc, shape->keys)
	{
		Oid			type = exprType((Node *) ((TargetEntry *) lfirst(lc))->expr);

		if (!OidIsValid(lookup_type_cache(type, TYPECACHE_HASH_EXTENDED_PROC)->hash_extended_proc))
			return false;
	}
	foreach(lc, shape->aggs)
		if (get_typtype(((Aggref *) lfirst(lc))->aggtype) == TYPTYPE_PSEUDO)
			return false;
	return true;
}

/* Does the view keep an aggregate as the multiset of its inputs? */
bool
stream_shape_keeps_inputs(ViewShape *shape)
{
	ListCell   *lc;

	foreach(lc, shape->input_aggs)
		if (lfirst(lc) != NULL)
			return true;
	return false;
}

/*
 * Can the view keep its aggregates' results in its state rows?  When it has
 * one state row per group whose keys hash (the hash of a group's keys finds
 * the state row a delta belongs to; ddl/read_view.c), and no aggregate kept
 * as its inputs (the combiner would have to run the aggregates).
 */
static bool
keeps_finals(ViewShape *shape)
{
	return stream_shape_one_row_per_group(shape) && !stream_shape_keeps_inputs(shape);
}

/* ttl_column must name a time-typed group key of the view. */
static void
check_ttl_column(ViewShape *shape)
{
	ListCell   *lc;
	const char *column = shape->window->ttl_column;

	if (column == NULL)
		return;
	foreach(lc, shape->keys)
	{
		TargetEntry *tle = lfirst(lc);
		Oid			type = exprType((Node *) tle->expr);

		if (tle->resjunk || tle->resname == NULL || strcmp(tle->resname, column) != 0)
			continue;
		if (type != TIMESTAMPTZOID && type != TIMESTAMPOID && type != DATEOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("ttl_column \"%s\" has type %s", column, format_type_be(type)),
					 errhint("ttl applies to a time bucket column of type timestamptz, timestamp or date.")));
		if (shape->grouping_masks != NIL &&
			!stream_grouping_key_in_every_set(shape->grouping_masks,
											  foreach_current_index(lc) - shape->grouping_key - 1,
											  list_length(shape->query->groupClause)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("ttl_column \"%s\" must be in every grouping set of the view", column),
					 errdetail("Rows of a grouping set without the ttl column would hold events of every time bucket, and could never expire."),
					 errhint("Group by the time bucket outside ROLLUP or CUBE, for example GROUP BY minute, ROLLUP (url, country).")));
		return;
	}
	if (shape->keeps_rows)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("ttl_column \"%s\" is not a column of the view", column),
				 errhint("Name a column of type timestamptz, timestamp or date of the view's select list.")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("ttl_column \"%s\" is not a GROUP BY column of the view", column),
			 errhint("Name the view's time bucket column, for example date_bin('1 minute', ts, '2000-01-01') AS minute.")));
}

/*
 * The shape of a view that keeps its query's rows (it neither aggregates
 * nor groups): each output column is a "key" of the shape, a column of the
 * kept-rows table, never grouped.  Windows are refused (there is nothing to
 * window); ttl applies to a time-typed output column.
 */
static void
shape_kept_rows(ViewShape *shape)
{
	List	   *names = NIL;
	ListCell   *lc;

	shape->keeps_rows = true;
	if (shape->window->kind != WINDOW_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view without aggregates cannot have a time window"),
				 errdetail("A view without aggregates or GROUP BY keeps the rows of its query; windows group events."),
				 errhint("Use ttl and ttl_column to keep recent rows only.")));
	if (shape->window->time_column != NULL)
		shape->time_expr = stream_window_time_expr(shape->window, shape->stream,
												   shape->stream_rti);
	foreach(lc, shape->query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		char	   *name;

		/*
		 * Volatile expressions are welcome (clock_timestamp() AS seen):
		 * the row a batch's transaction writes is the one kept.
		 */
		if (tle->resjunk)
			continue;
		name = unique_name_among(tle->resname ? tle->resname : "column", names,
								 reserved_row_names);
		names = lappend(names, name);
		shape->keys = lappend(shape->keys, tle);
		shape->key_names = lappend(shape->key_names, name);
	}
	check_ttl_column(shape);
}

/* Error when query selects no column (SELECT FROM s ...) */
static void
require_columns(Query *query)
{
	ListCell   *lc;

	foreach(lc, query->targetList)
		if (!((TargetEntry *) lfirst(lc))->resjunk)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("a continuous view must have columns")));
}

/*
 * Validate a continuous view's query and describe its combine state.
 * Errors name the construct that is not supported.
 */
ViewShape *
stream_view_shape(Query *query, WindowSpec *window)
{
	ViewShape  *shape = palloc0(sizeof(ViewShape));
	List	   *names = NIL;
	ListCell   *lc;
	int			i;

	shape->query = query;
	shape->window = window ? window : palloc0(sizeof(WindowSpec));

	if (query->cteList != NIL)
		reject("WITH", NULL);
	if (query->setOperations != NULL)
		reject("UNION, INTERSECT or EXCEPT", "Define one continuous view per stream.");
	if (query->hasSubLinks)
		reject("a subquery", NULL);
	if (query->hasWindowFuncs)
		reject("a window function", NULL);
	if (query->hasTargetSRFs)
		reject("a set-returning function", NULL);
	if (query->distinctClause != NIL)
		reject("SELECT DISTINCT", NULL);
	if (query->sortClause != NIL)
		reject("ORDER BY", "Sort when querying the view.");
	if (query->limitCount != NULL || query->limitOffset != NULL)
		reject("LIMIT or OFFSET", "Apply LIMIT when querying the view.");
	if (query->rowMarks != NIL)
		reject("FOR UPDATE or FOR SHARE", NULL);
	/* u.name with GROUP BY u.id, where id is the primary key of u */
	if (query->constraintDeps != NIL)
		reject("a column that is not grouped (functionally dependent on a primary key)",
			   "Add the column to GROUP BY.");

	require_columns(query);

	shape->stream_rti = stream_view_stream_rti(query);
	shape->stream = rt_fetch(shape->stream_rti, query->rtable)->relid;

	reject_volatile(query->jointree->quals, "the WHERE clause");
	if (!query->hasAggs && query->groupClause == NIL)
	{
		shape_kept_rows(shape);
		return shape;
	}
	add_window_columns(shape, &names);
	add_grouping_key(shape, &names);

	/* Group keys */
	i = 0;
	foreach(lc, query->groupClause)
	{
		SortGroupClause *sgc = lfirst(lc);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, query->targetList);
		Oid			type = exprType((Node *) tle->expr);
		char	   *base;

		i++;
		if (contain_volatile_functions((Node *) tle->expr))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("GROUP BY expressions of a continuous view must not be volatile"),
					 errdetail("Key %d calls a volatile function.", i)));
		if (!OidIsValid(GetDefaultOpClass(type, BTREE_AM_OID)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot group a continuous view by type %s", format_type_be(type)),
					 errdetail("Group keys need a default btree operator class.")));
		if (get_typtype(type) == TYPTYPE_PSEUDO)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot group a continuous view by type %s", format_type_be(type)),
					 errdetail("Key %d is an anonymous row: the view stores its keys in a table.", i),
					 errhint("Group by the row's columns, or cast the row to a composite type.")));
		base = (!tle->resjunk && tle->resname) ? tle->resname : psprintf("key%d", i);
		base = unique_name(base, names);
		names = lappend(names, base);
		shape->keys = lappend(shape->keys, tle);
		shape->key_clauses = lappend(shape->key_clauses, sgc);
		shape->key_names = lappend(shape->key_names, base);
	}
	/* the keys (the window's and grouping sets' hidden ones too) are an index's columns */
	if (list_length(names) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a continuous view has at most %d group keys", INDEX_MAX_KEYS),
				 errdetail("This one has %d: %d of its GROUP BY and %d its window or grouping sets add.",
						   list_length(names), i, list_length(names) - i)));
	check_ttl_column(shape);

	/* Aggregates, each distinct one once */
	foreach(lc, query->targetList)
		collect_aggrefs_walker((Node *) ((TargetEntry *) lfirst(lc))->expr, &shape->aggs);
	collect_aggrefs_walker(query->havingQual, &shape->aggs);
	i = 0;
	foreach(lc, shape->aggs)
	{
		Aggref	   *aggref = lfirst(lc);
		char	   *base;

		Aggref	   *partial;

		i++;
		if (i <= shape->nhidden_aggs)
			continue;			/* named by add_window_columns */
		if (aggref->aggfilter && contain_volatile_functions((Node *) aggref->aggfilter))
			reject("a volatile aggregate FILTER", NULL);
		reject_volatile((Node *) aggref->args,
						psprintf(aggref->aggorder != NIL ?
								 "the arguments and ORDER BY of aggregate %s" :
								 "the arguments of aggregate %s",
								 format_procedure(aggref->aggfnoid)));
		partial = check_aggregate(aggref);
		shape->input_aggs = lappend(shape->input_aggs, partial != aggref ? aggref : NULL);
		lfirst(lc) = partial;
		base = unique_name(psprintf("a%d_%s", i - shape->nhidden_aggs,
									get_func_name(aggref->aggfnoid)), names);
		names = lappend(names, base);
		shape->agg_names = lappend(shape->agg_names, base);
		shape->agg_state_types = lappend_oid(shape->agg_state_types,
											 aggregate_state_type(partial));
	}
	if (keeps_finals(shape))
		foreach(lc, shape->agg_names)
		{
			char	   *name = unique_name(psprintf("%s_final", (char *) lfirst(lc)), names);

			names = lappend(names, name);
			shape->final_names = lappend(shape->final_names, name);
		}
	return shape;
}

static Oid
event_xid8_function(void)
{
	List	   *name = list_make2(makeString("stream_ext_internal"), makeString("event_xid8"));
	Oid			argtypes[1] = {XIDOID};

	return LookupFuncName(name, 1, argtypes, false);
}

/*
 * The writer transaction of an event, as the first column of the workers'
 * rows: with one_writer $1 (every event of the batch comes from that one
 * transaction), else event_xid8(xmin) of the stream's tuple.
 */
Expr *
stream_writer_xid_expr(ViewShape *shape, bool one_writer)
{
	Var		   *xmin;

	if (one_writer)
	{
		Param	   *param = makeNode(Param);

		param->paramkind = PARAM_EXTERN;
		param->paramid = 1;
		param->paramtype = XID8OID;
		param->paramtypmod = -1;
		param->location = -1;
		return (Expr *) param;
	}
	xmin = makeVar(shape->stream_rti, MinTransactionIdAttributeNumber, XIDOID, -1, InvalidOid, 0);
	return (Expr *) makeFuncExpr(event_xid8_function(), XID8OID, list_make1(xmin), InvalidOid,
								 InvalidOid, COERCE_EXPLICIT_CALL);
}

/* Mark the aggregation of a planned query as the partial (serializing) phase. */
static void
partialize_plan(Plan *plan)
{
	Agg		   *agg;
	ListCell   *lc;

	if (plan == NULL || !IsA(plan, Agg))
		elog(ERROR, "unexpected plan shape for a continuous view's partial aggregation");
	agg = (Agg *) plan;
	agg->aggsplit = AGGSPLIT_INITIAL_SERIAL;
	foreach(lc, plan->targetlist)
	{
		TargetEntry *tle = lfirst(lc);

		if (IsA(tle->expr, Aggref))
			mark_partial_aggref((Aggref *) tle->expr, AGGSPLIT_INITIAL_SERIAL);
	}
}

/*
 * A group key of the workers' plan, compared byte by byte.  A batch groups
 * its events, often by sorting them (aggregates with big states, such as
 * hll's, are not hashed), and under a deterministic collation two strings
 * are equal exactly when their bytes are: so the "C" collation groups them
 * the same, and sorts them several times faster than a linguistic one.
 * Only for text, varchar and char, whose equality is the collation's.
 */
static Expr *
key_compared_bytewise(Expr *key)
{
	Oid			type = exprType((Node *) key);
	Oid			collation = exprCollation((Node *) key);

	if ((type != TEXTOID && type != VARCHAROID && type != BPCHAROID) ||
		!OidIsValid(collation) || collation == C_COLLATION_OID ||
		!get_collation_isdeterministic(collation))
		return key;
	return (Expr *) makeRelabelType(key, type, exprTypmod((Node *) key), C_COLLATION_OID,
									COERCE_IMPLICIT_CAST);
}

/*
 * A hash of a variable-length group key, consistent with its grouping
 * equality, or NULL when the key is not one: see sort_by_hashes_first.
 */
static Expr *
key_hash(Expr *key, SortGroupClause *sgc)
{
	Oid			type = exprType((Node *) key);
	Oid			collation = exprCollation((Node *) key);
	RegProcedure hash;
	RegProcedure right_hash;

	/*
	 * (An array's or a record's equality hashes whatever their elements'
	 * types: the type cache says whether those can be hashed, money[] not.)
	 */
	if (get_typlen(type) != -1 || !OidIsValid(sgc->eqop) ||
		(OidIsValid(collation) && collation != C_COLLATION_OID &&
		 !get_collation_isdeterministic(collation)) ||
		!OidIsValid(lookup_type_cache(type, TYPECACHE_HASH_PROC)->hash_proc) ||
		!get_op_hash_functions(sgc->eqop, &hash, &right_hash) || hash != right_hash ||
		get_func_rettype(hash) != INT4OID)
		return NULL;
	return (Expr *) makeFuncExpr(hash, INT4OID, list_make1(copyObject(key)), InvalidOid,
								 collation, COERCE_EXPLICIT_CALL);
}

/*
 * Add to q, grouped as groupClause (the writer first when refs_from is 2,
 * its keys after it), a hidden group key per variable-length key: its hash,
 * ahead of the keys.  The groups are the same (equal keys have equal
 * hashes), but a sort of the batch compares two int4 first and the keys
 * themselves almost only within a group.  Sorting a batch of 20,000 events
 * by their url text took a third of a worker's time on an hll view (hll's
 * 128 kB states keep the planner from hashing the groups).  Returns the
 * new group clause.
 */
static List *
sort_by_hashes_first(Query *q, List *groupClause, bool writer_first)
{
	List	   *hashes = NIL;
	ListCell   *lc;
	Index		ref = 0;
	AttrNumber	resno = list_length(q->targetList) + 1;

	foreach(lc, q->targetList)
		ref = Max(ref, ((TargetEntry *) lfirst(lc))->ressortgroupref);
	foreach(lc, groupClause)
	{
		SortGroupClause *sgc = lfirst(lc);
		TargetEntry *key = get_sortgroupclause_tle(sgc, q->targetList);
		Expr	   *hash = key_hash(key->expr, sgc);
		SortGroupClause *hash_sgc;
		TargetEntry *tle;
		bool		hashable;

		if (hash == NULL)
			continue;
		tle = makeTargetEntry(hash, resno++, pstrdup("_key_hash"), true);
		tle->ressortgroupref = ++ref;
		q->targetList = lappend(q->targetList, tle);
		hash_sgc = makeNode(SortGroupClause);
		get_sort_group_operators(INT4OID, true, true, false,
								 &hash_sgc->sortop, &hash_sgc->eqop, NULL, &hashable);
		hash_sgc->hashable = hashable;
		hash_sgc->tleSortGroupRef = ref;
		hashes = lappend(hashes, hash_sgc);
	}
	if (hashes == NIL)
		return groupClause;
	if (writer_first)
	{
		List	   *result = list_make1(linitial(groupClause));

		result = list_concat(result, hashes);
		return list_concat(result, list_delete_first(groupClause));
	}
	return list_concat(hashes, groupClause);
}

/* Does the plan group a batch by sorting it? */
static bool
groups_by_sorting(PlannedStmt *pstmt)
{
	return IsA(pstmt->planTree, Agg) &&
		((Agg *) pstmt->planTree)->aggstrategy == AGG_SORTED;
}

/*
 * Plan the workers' query for a view: for the events of one batch,
 *	 SELECT event_xid8(xmin), keys..., partial(agg)... FROM stream WHERE ...
 *	 GROUP BY 1, keys...
 * whose rows are the view's deltas; with one_writer, for a batch whose
 * events all come from one transaction, SELECT $1, keys, ... GROUP BY keys.
 * A view with grouping sets groups by each of them, extended by the writer
 * and the window's keys, and computes its hidden key with GROUPING().
 * Must run inside a transaction.
 */
static PlannedStmt *
plan_partial_aggregation(ViewShape *shape, const char *sql, bool one_writer, bool key_hashes)
{
	Query	   *q = copyObject(shape->query);
	RangeTblEntry *rte PG_USED_FOR_ASSERTS_ONLY = rt_fetch(shape->stream_rti, q->rtable);
	List	   *tlist = NIL;
	List	   *groupClause = NIL;
	List	   *always_refs = NIL;	/* in every grouping set */
	List	   *key_refs = NIL;		/* the view's own keys */
	GroupingFunc *grouping = NULL;
	AttrNumber	resno = 1;
	Index		ref = 1;
	ListCell   *lc,
			   *lc2;
	bool		hashable;
	PlannedStmt *pstmt;

	/*
	 * The worker reads the batch itself, as the view's owner, who must
	 * still be allowed to read the stream (as a table it joins): a REVOKE
	 * stops the view's batches (42501, recorded) as it would a SELECT.
	 */
	Assert(rte->requiredPerms & ACL_SELECT);

	if (one_writer)
	{
		/*
		 * Every event of the batch comes from one writer, passed as $1: no
		 * need to read and group by each event's xmin.
		 */
		Assert(shape->keys != NIL); /* else no events would still make a row */
		tlist = lappend(tlist, makeTargetEntry(stream_writer_xid_expr(shape, true), resno++,
											   pstrdup("writer_xid"), false));
	}
	else
	{
		TargetEntry *tle = makeTargetEntry(stream_writer_xid_expr(shape, false), resno++,
										   pstrdup("writer_xid"), false);
		SortGroupClause *xid_sgc = makeNode(SortGroupClause);

		tle->ressortgroupref = ref;
		tlist = lappend(tlist, tle);
		get_sort_group_operators(XID8OID, true, true, false,
								 &xid_sgc->sortop, &xid_sgc->eqop, NULL, &hashable);
		xid_sgc->hashable = hashable;
		always_refs = lappend_int(always_refs, ref);
		xid_sgc->tleSortGroupRef = ref++;
		groupClause = lappend(groupClause, xid_sgc);
	}

	forboth(lc, shape->keys, lc2, shape->key_clauses)
	{
		SortGroupClause *sgc = copyObject(lfirst(lc2));
		TargetEntry *tle = makeTargetEntry(key_compared_bytewise(copyObject(((TargetEntry *) lfirst(lc))->expr)),
										   resno++, NULL, false);
		int			i = foreach_current_index(lc);

		tlist = lappend(tlist, tle);
		if (i == shape->grouping_key)
		{
			/* computed by the Agg node; its refs are set below */
			grouping = (GroupingFunc *) tle->expr;
			continue;
		}
		if (i < shape->nhidden_keys)
			always_refs = lappend_int(always_refs, ref);
		else
			key_refs = lappend_int(key_refs, ref);
		tle->ressortgroupref = ref;
		sgc->tleSortGroupRef = ref++;
		groupClause = lappend(groupClause, sgc);
	}
	foreach(lc, shape->aggs)
		tlist = lappend(tlist, makeTargetEntry(copyObject(lfirst(lc)), resno++, NULL, false));
	if (shape->session_bucket != NULL)
	{
		/* grouped by, not written: junk columns are filtered from the output */
		SortGroupClause *sgc = makeNode(SortGroupClause);
		TargetEntry *tle = makeTargetEntry(copyObject(shape->session_bucket), resno++,
										   pstrdup("_bucket"), true);

		get_sort_group_operators(exprType((Node *) shape->session_bucket), true, true, false,
								 &sgc->sortop, &sgc->eqop, NULL, &hashable);
		sgc->hashable = hashable;
		always_refs = lappend_int(always_refs, ref);
		tle->ressortgroupref = ref;
		sgc->tleSortGroupRef = ref++;
		tlist = lappend(tlist, tle);
		groupClause = lappend(groupClause, sgc);
	}

	q->targetList = tlist;
	q->groupClause = key_hashes ? sort_by_hashes_first(q, groupClause, !one_writer) : groupClause;
	q->groupingSets = NIL;
	q->groupDistinct = false;
	if (grouping != NULL)
	{
		grouping->refs = key_refs;
		q->groupingSets = stream_worker_grouping_sets(shape->grouping_masks, always_refs,
													  key_refs);
	}
	q->havingQual = NULL;
	q->hasAggs = true;

	/* views it joins expanded, as the view's owner (the caller) reads them */
	q = stream_rewrite_view_query(q, shape->stream);
	pstmt = stream_plan_batch_query(q, sql);
	partialize_plan(pstmt->planTree);
	return pstmt;
}

/*
 * Are the transition states of the view's aggregates small and of fixed
 * shape (no internal state, no declared transition space), so that a batch's
 * groups hash in memory as other views' do (hash_mem, beyond which PostgreSQL
 * spills them)?
 */
static bool
states_are_small(ViewShape *shape)
{
	ListCell   *lc;

	foreach(lc, shape->aggs)
	{
		Aggref	   *agg = lfirst(lc);
		HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(agg->aggfnoid));
		Form_pg_aggregate form;
		bool		small;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for aggregate %u", agg->aggfnoid);
		form = (Form_pg_aggregate) GETSTRUCT(tup);
		small = form->aggtranstype != INTERNALOID && form->aggtransspace <= 0;
		ReleaseSysCache(tup);
		if (!small)
			return false;
	}
	return true;
}

/*
 * The plan of a view that joins tables, made with sorts disabled, if its
 * batch then groups by hashing: such a view is planned for a batch of a
 * hundred events (stream/fdw.c: lookups by index), for which sorting looks
 * cheaper than hashing, while batches hold up to stream_ext.batch_size.
 * NULL when sorting stays (grouping sets, or states that are not small).
 */
static PlannedStmt *
plan_joined_hashed(ViewShape *shape, const char *sql, bool one_writer)
{
	PlannedStmt *volatile pstmt = NULL;
	int			nest_level;

	if (shape->grouping_key >= 0 || !enable_hashagg || !states_are_small(shape))
		return NULL;
	nest_level = NewGUCNestLevel();
	PG_TRY();
	{
		(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		pstmt = plan_partial_aggregation(shape, sql, one_writer, false);
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(false, nest_level);
	}
	PG_END_TRY();
	/* a sort it could not avoid (disable_cost in every path) makes no choice */
	return IsA(pstmt->planTree, Agg) &&
		((Agg *) pstmt->planTree)->aggstrategy == AGG_HASHED &&
		pstmt->planTree->total_cost < disable_cost ? pstmt : NULL;
}

/*
 * The workers' plan of a view's partial aggregation (above); when it groups
 * a batch by sorting it, for a view that joins tables planned again to hash
 * its groups if their states are small (plan_joined_hashed), else with the
 * keys' hashes sorted first (sort_by_hashes_first), but for grouping sets.
 */
PlannedStmt *
stream_plan_partial_aggregation(ViewShape *shape, const char *sql, bool one_writer)
{
	PlannedStmt *pstmt = plan_partial_aggregation(shape, sql, one_writer, false);
	PlannedStmt *hashed;

	if (shape->grouping_key < 0 && groups_by_sorting(pstmt))
	{
		hashed = stream_rtable_joins_tables(pstmt->rtable) ?
			plan_joined_hashed(shape, sql, one_writer) : NULL;
		pstmt = hashed ? hashed : plan_partial_aggregation(shape, sql, one_writer, true);
	}
	return pstmt;
}

/*
 * A plan scans the view's stream once, which gives the batch: a function
 * the planner inlined (through a view the query joins) may have added a
 * scan of a stream the rewritten query did not show (stream_rewrite_view_query
 * counted those), which would give the batch again, or fail.
 */
static void
refuse_inlined_stream_scans(PlannedStmt *pstmt)
{
	int			nstreams = 0;
	ListCell   *lc;

	foreach(lc, pstmt->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION && stream_is_stream_relation(rte->relid))
			nstreams++;
	}
	if (nstreams > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view's plan must scan one stream once"),
				 errdetail("A SQL function the view's query calls, inlined into its plan, reads a stream."),
				 errhint("Read streams only through continuous views.")));
}

/*
 * The plan workers run over a batch for a view: its partial aggregation, or
 * for a view that keeps rows the rows of its query (row_query.c); its
 * lookups of joined tables answered from kept copies when they can be
 * (table_copies.c).
 */
PlannedStmt *
stream_plan_view_batch(ViewShape *shape, const char *sql, bool one_writer)
{
	PlannedStmt *pstmt;

	if (shape->keeps_rows)
		pstmt = stream_plan_view_rows(shape, sql, one_writer);
	else
		pstmt = stream_plan_partial_aggregation(shape, sql, one_writer);
	refuse_inlined_stream_scans(pstmt);
	stream_table_copies_in_plan(pstmt);
	return pstmt;
}

/*
 * The aggregate whose partial state column resno of a view's batch plan
 * holds, or InvalidOid when it holds none (the writer, a key, a kept row).
 */
Oid
stream_plan_state_aggregate(PlannedStmt *plan, AttrNumber resno)
{
	TargetEntry *tle;

	if (!IsA(plan->planTree, Agg))
		return InvalidOid;
	tle = get_tle_by_resno(plan->planTree->targetlist, resno);
	if (tle == NULL || !IsA(tle->expr, Aggref))
		return InvalidOid;
	return ((Aggref *) tle->expr)->aggfnoid;
}

/*
 * Aggregate aggno of the view as its query has it: the one its column
 * keeps the inputs of, or the one workers compute.
 */
Aggref *
stream_shape_query_agg(ViewShape *shape, int aggno)
{
	Aggref	   *original = shape->input_aggs ? list_nth(shape->input_aggs, aggno) : NULL;

	return original ? original : list_nth(shape->aggs, aggno);
}
