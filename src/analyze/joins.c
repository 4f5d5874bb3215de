/*
 * joins.c
 *	  Stream-table joins: which FROM clauses a continuous view may have, and
 *	  the tables behind them.
 *
 * A continuous view reads one stream, joined (INNER, LEFT, or as a comma
 * list with conditions in WHERE) with any number of tables, views over
 * tables, partitioned tables, materialized views and foreign tables.  Every
 * row the query makes must come from an event: the stream is never on the
 * nullable side of an outer join, so that a batch adds rows only for its
 * events.  Workers plan the query over each batch like any join, so each
 * event meets the tables as the batch's snapshot sees them, through their
 * indexes when the planner finds that cheaper (it does for a batch against
 * an indexed table; stream/fdw.c).
 *
 * Views in FROM are expanded by the rewriter when the workers plan (the
 * stored query keeps the view, as an ordinary view's rule does), so a
 * redefined view takes effect at the next plan; whatever they expand to must
 * not read a stream.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lockdefs.h"
#include "utils/lsyscache.h"

#include "analyze/joins.h"
#include "stream/fdw.h"

static void
reject_from_item(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s is not supported in continuous views", what),
			 hint ? errhint("%s", hint) : 0));
}

static void
reject_two_streams(Oid first, Oid second)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("a join of two streams is not supported in continuous views"),
			 errdetail("The view reads streams \"%s\" and \"%s\".",
					   get_rel_name(first), get_rel_name(second)),
			 errhint("Join one stream with tables; each event is joined with the tables as they are when it is applied.")));
}

/* Error unless rte is a relation a view may join with its stream. */
static void
check_joined_relation(RangeTblEntry *rte)
{
	if (rte->rtekind == RTE_SUBQUERY)
		reject_from_item("a subquery", NULL);
	if (rte->rtekind == RTE_FUNCTION || rte->rtekind == RTE_TABLEFUNC)
		reject_from_item("a set-returning function", "A continuous view reads a stream.");
	if (rte->rtekind == RTE_VALUES)
		reject_from_item("VALUES", "A continuous view reads a stream.");
	if (rte->rtekind != RTE_RELATION)
		reject_from_item("this FROM item", NULL);
	if (rte->tablesample != NULL)
		reject_from_item("TABLESAMPLE", NULL);
	switch (rte->relkind)
	{
		case RELKIND_RELATION:
		case RELKIND_PARTITIONED_TABLE:
		case RELKIND_VIEW:
		case RELKIND_MATVIEW:
		case RELKIND_FOREIGN_TABLE:
			return;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot join \"%s\" in a continuous view", get_rel_name(rte->relid)),
					 errdetail("Only tables, views, materialized views and foreign tables can be joined with a stream.")));
	}
}

/*
 * Check one FROM item and what it joins, noting the stream's range table
 * index in *stream_rti.  nullable: the item is on the nullable side of an
 * outer join above it.
 */
static void
check_from_item(Query *query, Node *item, bool nullable, Index *stream_rti)
{
	if (IsA(item, RangeTblRef))
	{
		Index		rti = ((RangeTblRef *) item)->rtindex;
		RangeTblEntry *rte = rt_fetch(rti, query->rtable);

		if (rte->rtekind == RTE_RELATION && stream_is_stream_relation(rte->relid))
		{
			if (*stream_rti != 0)
				reject_two_streams(rt_fetch(*stream_rti, query->rtable)->relid, rte->relid);
			if (rte->tablesample != NULL)
				reject_from_item("TABLESAMPLE", NULL);
			if (nullable)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("stream \"%s\" is on the nullable side of an outer join",
								get_rel_name(rte->relid)),
						 errdetail("A continuous view adds rows for the events it receives only; it cannot add rows for table rows that no event matched."),
						 errhint("Use an inner join, or a LEFT JOIN with the stream on its left.")));
			*stream_rti = rti;
		}
		else
			check_joined_relation(rte);
	}
	else if (IsA(item, JoinExpr))
	{
		JoinExpr   *join = (JoinExpr *) item;

		if (join->quals != NULL && contain_volatile_functions(join->quals))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the join condition of a continuous view must not be volatile"),
					 errdetail("Continuous views evaluate it once per event, when the event arrives.")));
		check_from_item(query, join->larg,
						nullable || join->jointype == JOIN_RIGHT || join->jointype == JOIN_FULL,
						stream_rti);
		check_from_item(query, join->rarg,
						nullable || join->jointype == JOIN_LEFT || join->jointype == JOIN_FULL,
						stream_rti);
	}
	else
		elog(ERROR, "unexpected FROM item of node type %d", (int) nodeTag(item));
}

/*
 * The range table index of the one stream a continuous view's query reads;
 * errors name what is not supported: a second stream, the stream on the
 * nullable side of an outer join, FROM items that are not relations, a
 * volatile join condition.  A query without a stream errors too.
 */
Index
stream_view_stream_rti(Query *query)
{
	Index		stream_rti = 0;
	ListCell   *lc;

	/* a single FROM item that is not a stream: say so, whatever it is */
	if (list_length(query->rtable) == 1 && list_length(query->jointree->fromlist) == 1)
	{
		RangeTblEntry *rte = linitial(query->rtable);

		if (rte->rtekind == RTE_RELATION && !stream_is_stream_relation(rte->relid))
			stream_error_not_a_stream(get_rel_name(rte->relid));
	}
	foreach(lc, query->jointree->fromlist)
		check_from_item(query, lfirst(lc), false, &stream_rti);
	if (stream_rti == 0)
		stream_error_not_a_stream(NULL);
	return stream_rti;
}

/* The error of a view whose FROM item name (or, NULL, no FROM item) is no stream. */
void
stream_error_not_a_stream(const char *name)
{
	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a continuous view must read from a stream"),
				 errhint("A stream is a foreign table of server stream_ext: CREATE FOREIGN TABLE name (...) SERVER stream_ext.")));
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not a stream", name),
			 errhint("A stream is a foreign table of server stream_ext: CREATE FOREIGN TABLE name (...) SERVER stream_ext.")));
}

/* Does a query's or a plan's range table hold relations besides its stream? */
bool
stream_rtable_joins_tables(List *rtable)
{
	ListCell   *lc;
	int			relations = 0;

	foreach(lc, rtable)
		if (((RangeTblEntry *) lfirst(lc))->rtekind == RTE_RELATION)
			relations++;
	return relations > 1;
}

/* Does the query read relations besides its stream? */
bool
stream_view_joins_tables(Query *query)
{
	return stream_rtable_joins_tables(query->rtable);
}

/*
 * Error unless the current user may read every relation the query joins
 * with its stream (the columns it uses), as ExecutorStart checks: a
 * continuous view's owner must be able to read what it joins, and workers
 * check it again, as the owner, whenever they apply a batch.
 */
void
stream_check_join_privileges(Query *query, Index stream_rti)
{
	List	   *tables = NIL;
	ListCell   *lc;

	foreach(lc, query->rtable)
		if (foreach_current_index(lc) + 1 != stream_rti &&
			((RangeTblEntry *) lfirst(lc))->rtekind == RTE_RELATION)
			tables = lappend(tables, lfirst(lc));
	(void) ExecCheckRTPerms(tables, true);
}

typedef struct StreamSearch
{
	Oid			stream;			/* the view's stream */
	int			found;			/* scans of streams seen */
} StreamSearch;

/* Count the scans of streams in rte, and in its inheritance children. */
static void
count_stream_scans(RangeTblEntry *rte, StreamSearch *search)
{
	ListCell   *lc;

	if (rte->rtekind != RTE_RELATION)
		return;
	if (stream_is_stream_relation(rte->relid))
	{
		if (rte->relid != search->stream)
			reject_two_streams(search->stream, rte->relid);
		if (++search->found > 1)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a continuous view cannot read stream \"%s\" twice",
							get_rel_name(rte->relid)),
					 errdetail("A view it joins reads the stream.")));
	}
	if (!rte->inh || (rte->relkind != RELKIND_RELATION &&
					  rte->relkind != RELKIND_PARTITIONED_TABLE))
		return;
	foreach(lc, find_all_inheritors(rte->relid, AccessShareLock, NULL))
		if (lfirst_oid(lc) != rte->relid && stream_is_stream_relation(lfirst_oid(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a join of two streams is not supported in continuous views"),
					 errdetail("Stream \"%s\" is a partition or child of \"%s\".",
							   get_rel_name(lfirst_oid(lc)), get_rel_name(rte->relid))));
}

static bool
count_stream_scans_walker(Node *node, StreamSearch *search)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		count_stream_scans((RangeTblEntry *) node, search);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, count_stream_scans_walker, search,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, count_stream_scans_walker, search);
}

/*
 * The query with the views it reads expanded (and row security applied for
 * the current user), its relations locked: what the planner takes.  Errors
 * if what it reads, expanded, scans a stream besides its own one scan of
 * stream (a view or partitioned table holding a stream).
 */
Query *
stream_rewrite_view_query(Query *query, Oid stream)
{
	List	   *rewritten;
	StreamSearch search = {stream, 0};

	AcquireRewriteLocks(query, true, false);
	rewritten = QueryRewrite(query);
	if (list_length(rewritten) != 1)
		elog(ERROR, "a continuous view's query was rewritten into %d queries",
			 list_length(rewritten));
	query = linitial(rewritten);
	(void) count_stream_scans_walker((Node *) query, &search);
	return query;
}
