/*
 * row_query.c
 *	  The rows of a view's query over a batch, tagged with their writer.
 *
 * A continuous view without aggregates or GROUP BY keeps the rows of its
 * query (its WHERE, expressions and joins).  For the events of one batch,
 * workers run
 *	 SELECT event_xid8(xmin), <the view's columns> FROM stream [JOIN ...]
 *	 WHERE ...
 * (with one_writer, $1 instead of each event's xmin), and the rows go to
 * the view's delta table like an aggregating view's partial states: they
 * become visible when their writer commits, and never if it aborts.  This
 * is the one path that writes a query's rows; anything else that writes
 * them (a transform into a table) plans them here.
 */
#include "postgres.h"

#include "nodes/makefuncs.h"
#include "parser/parsetree.h"

#include "analyze/joins.h"
#include "analyze/row_query.h"
#include "stream/read_guard.h"

/*
 * Plan the workers' query of a view that keeps rows (shape->keeps_rows):
 * its rows are the writer, then each column of the view.  Must run inside
 * a transaction, as the view's owner.
 */
PlannedStmt *
stream_plan_view_rows(ViewShape *shape, const char *sql, bool one_writer)
{
	Query	   *q = copyObject(shape->query);
	RangeTblEntry *rte PG_USED_FOR_ASSERTS_ONLY = rt_fetch(shape->stream_rti, q->rtable);
	List	   *tlist = NIL;
	AttrNumber	resno = 1;
	ListCell   *lc;

	Assert(shape->keeps_rows);
	/*
	 * The worker reads the batch itself, as the view's owner, who must
	 * still be allowed to read the stream (as a table it joins): a REVOKE
	 * stops the view's batches (42501, recorded) as it would a SELECT.
	 */
	Assert(rte->requiredPerms & ACL_SELECT);

	tlist = lappend(tlist, makeTargetEntry(stream_writer_xid_expr(shape, one_writer), resno++,
										   pstrdup("writer_xid"), false));
	foreach(lc, shape->keys)
		tlist = lappend(tlist, makeTargetEntry(copyObject(((TargetEntry *) lfirst(lc))->expr),
											   resno++, NULL, false));
	q->targetList = tlist;

	/* views it joins expanded, as the view's owner (the caller) reads them */
	q = stream_rewrite_view_query(q, shape->stream);
	return stream_plan_batch_query(q, sql);
}
