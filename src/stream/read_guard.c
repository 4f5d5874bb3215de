/*
 * read_guard.c
 *	  Reads of streams: refused in every plan but the workers' own.
 *
 * A stream stores nothing, so no query can read it.  A planner hook refuses
 * every plan that scans a stream, with one error, whatever the plan would do
 * when run: WHERE false, LIMIT 0, EXPLAIN, a cursor, a prepared statement, a
 * view over the stream, a SQL or PL/pgSQL function all fail the same way,
 * so a client's probe never succeeds on a stream that its real reads fail
 * on.  The only plans that scan streams are the ones batch workers and Kafka
 * consumers make for a view's query (stream_plan_batch_query), whose scans
 * return the batch being applied (fdw.c).  INSERT into a stream names it as
 * the plan's result relation, which is not a read; COPY FROM and
 * CREATE VIEW ... WITH (continuous) do not plan a scan of it.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/planner.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "stream/fdw.h"
#include "stream/read_guard.h"

static planner_hook_type prev_planner_hook = NULL;

/* Set by stream_plan_batch_query() for the one planner call it makes */
static bool planning_batch_query = false;

/*
 * Refuse a read of stream: the error of every SELECT of a stream, at
 * planning and, should a plan get there, at the start of its scan.
 */
void
stream_refuse_read(Oid stream)
{
	char	   *name = get_rel_name(stream);
	char	   *schema = get_namespace_name(get_rel_namespace(stream));

	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot read from stream \"%s\"", name ? name : "?"),
			 errdetail("A stream does not store events; continuous views aggregate them as they arrive."),
			 errhint("Query a continuous view of the stream, created with CREATE VIEW ... WITH (continuous) AS SELECT ... FROM %s.",
					 quote_qualified_identifier(schema, name))));
}

/* Is rte a stream? */
static bool
is_stream_rte(RangeTblEntry *rte)
{
	return rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_FOREIGN_TABLE &&
		stream_is_stream_relation(rte->relid);
}

/*
 * Error if the query, its subqueries, CTEs or sublinks name a stream other
 * than as the relation they insert into: checked before planning, so that
 * the outcome does not depend on what the planner proves (WHERE false,
 * LIMIT 0, a sublink folded away).
 */
static bool
refuse_stream_reads(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		int			excluded = query->onConflict ? query->onConflict->exclRelIndex : 0;
		ListCell   *lc;
		int			rti = 0;

		foreach(lc, query->rtable)
		{
			rti++;
			/* INSERT into the stream; ON CONFLICT is refused by fdw.c */
			if (rti != query->resultRelation && rti != excluded && is_stream_rte(lfirst(lc)))
				stream_refuse_read(((RangeTblEntry *) lfirst(lc))->relid);
		}
		return query_tree_walker(query, refuse_stream_reads, context, 0);
	}
	return expression_tree_walker(node, refuse_stream_reads, context);
}

/*
 * Error if the plan scans a stream the query did not name: a stream that
 * is an inheritance child or partition of a table the query reads.
 */
static void
refuse_stream_scans(PlannedStmt *pstmt)
{
	ListCell   *lc;
	int			rti = 0;

	foreach(lc, pstmt->rtable)
	{
		rti++;
		if (!list_member_int(pstmt->resultRelations, rti) && is_stream_rte(lfirst(lc)))
			stream_refuse_read(((RangeTblEntry *) lfirst(lc))->relid);
	}
}

/* planner_hook: refuse queries and plans that read a stream, around the chain */
static PlannedStmt *
stream_read_guard_planner(Query *parse, const char *query_string, int cursorOptions,
						  ParamListInfo boundParams)
{
	bool		batch = planning_batch_query;
	PlannedStmt *result;

	/* planning nested in this one (a function folded) is not the batch's */
	planning_batch_query = false;
	if (!batch)
		refuse_stream_reads((Node *) parse, NULL);
	if (prev_planner_hook)
		result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	else
		result = standard_planner(parse, query_string, cursorOptions, boundParams);
	planning_batch_query = batch;
	if (!batch)
		refuse_stream_scans(result);
	return result;
}

void
stream_read_guard_init(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = stream_read_guard_planner;
}

/*
 * Plan a view's query over a stream for a worker, whose scan of the stream
 * reads the batch being applied.  Only workers call this.
 */
PlannedStmt *
stream_plan_batch_query(Query *query, const char *sql)
{
	PlannedStmt *result;

	planning_batch_query = true;
	PG_TRY();
	{
		result = pg_plan_query(query, sql, 0, NULL);
	}
	PG_FINALLY();
	{
		planning_batch_query = false;
	}
	PG_END_TRY();
	return result;
}
