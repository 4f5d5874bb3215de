/*
 * grouping_sets.c
 *	  GROUP BY GROUPING SETS, ROLLUP and CUBE in continuous views.
 *
 * A view whose GROUP BY expands to several grouping sets keeps the rows of
 * every set in its state table, told apart by a hidden key, _grouping: the
 * value of GROUPING() over all its keys (bit 1 << (n - 1 - k) set when key
 * k is not in the row's set), so that a key a set rolls up (NULL) is never
 * taken for a NULL key of another set.  Workers aggregate each batch with
 * the same sets, each extended by the keys every row has (the writer's
 * transaction, a window's step or slice, a session's bucket), and compute
 * _grouping with GROUPING() itself; reads group by _grouping and the keys,
 * and rewrite the query's own GROUPING() calls over _grouping.
 * A set the query makes more than once (GROUPING SETS ((a), (a)),
 * GROUP BY a, ROLLUP (a)) is stored once, and read as many times as the
 * query makes it.
 */
#include "postgres.h"

#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_agg.h"

#include "analyze/grouping_sets.h"

/* GROUPING() holds one bit per argument in an int4 */
#define GROUPING_MAX_KEYS 31

/* The position of the key whose sort-group reference is ref */
static int
key_index(Query *query, Index ref)
{
	ListCell   *lc;

	foreach(lc, query->groupClause)
		if (((SortGroupClause *) lfirst(lc))->tleSortGroupRef == ref)
			return foreach_current_index(lc);
	elog(ERROR, "grouping set refers to no GROUP BY key");
	return -1;					/* keep compiler quiet */
}

static int
key_bit(int key, int nkeys)
{
	return 1 << (nkeys - 1 - key);
}

/*
 * The grouping sets of a view's query, each as the GROUPING() value of all
 * the query's keys (an int List, in the order PostgreSQL expands them, a set
 * made twice there twice); NIL when the query has one grouping set at most
 * (a plain GROUP BY).
 */
List *
stream_grouping_masks(Query *query)
{
	List	   *sets;
	List	   *masks = NIL;
	int			nkeys = list_length(query->groupClause);
	ListCell   *lc;

	if (query->groupingSets == NIL)
		return NIL;
	sets = expand_grouping_sets(query->groupingSets, query->groupDistinct, 4096);
	if (list_length(sets) < 2)
		return NIL;
	if (nkeys > GROUPING_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a continuous view with grouping sets can have at most %d GROUP BY keys",
						GROUPING_MAX_KEYS)));
	foreach(lc, sets)
	{
		int			mask = (int) (((uint32) 1 << nkeys) - 1);
		ListCell   *lc2;

		foreach(lc2, (List *) lfirst(lc))
			mask &= ~key_bit(key_index(query, lfirst_int(lc2)), nkeys);
		masks = lappend_int(masks, mask);
	}
	return masks;
}

/* GROUPING() of every key of query, in GROUP BY order: the hidden key */
GroupingFunc *
stream_grouping_key_expr(Query *query)
{
	GroupingFunc *g = makeNode(GroupingFunc);
	ListCell   *lc;

	foreach(lc, query->groupClause)
	{
		SortGroupClause *sgc = lfirst(lc);

		g->args = lappend(g->args,
						  copyObject(get_sortgroupclause_expr(sgc, query->targetList)));
		g->refs = lappend_int(g->refs, sgc->tleSortGroupRef);
	}
	g->agglevelsup = 0;
	g->location = -1;
	return g;
}

/* Does the grouping set of mask group by key (of nkeys)? */
bool
stream_grouping_set_has_key(int mask, int key, int nkeys)
{
	return (mask & key_bit(key, nkeys)) == 0;
}

/* Is key (of nkeys) in every grouping set of masks? */
bool
stream_grouping_key_in_every_set(List *masks, int key, int nkeys)
{
	ListCell   *lc;

	foreach(lc, masks)
		if (lfirst_int(lc) & key_bit(key, nkeys))
			return false;
	return true;
}

/* How many times the query makes the set of mask */
int
stream_grouping_copies(List *masks, int mask)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, masks)
		n += (lfirst_int(lc) == mask);
	return n;
}

/*
 * The groupingSets of the workers' query: one set per distinct mask, with
 * the sort-group references always_refs (in every set) and those of
 * key_refs (the view's keys, in GROUP BY order) that the mask keeps.
 */
List *
stream_worker_grouping_sets(List *masks, List *always_refs, List *key_refs)
{
	List	   *sets = NIL;
	List	   *done = NIL;
	int			nkeys = list_length(key_refs);
	ListCell   *lc;

	foreach(lc, masks)
	{
		List	   *content = list_copy(always_refs);
		ListCell   *lc2;

		if (list_member_int(done, lfirst_int(lc)))
			continue;
		done = lappend_int(done, lfirst_int(lc));

		foreach(lc2, key_refs)
			if (!(lfirst_int(lc) & key_bit(foreach_current_index(lc2), nkeys)))
				content = lappend_int(content, lfirst_int(lc2));
		sets = lappend(sets, makeGroupingSet(content ? GROUPING_SET_SIMPLE : GROUPING_SET_EMPTY,
											 content, -1));
	}
	return list_make1(makeGroupingSet(GROUPING_SET_SETS, sets, -1));
}

/* GROUPING(g's arguments) in the set whose mask is given */
static int
grouping_of(GroupingFunc *g, Query *query, int mask)
{
	int			nkeys = list_length(query->groupClause);
	int			nargs = list_length(g->refs);
	int			value = 0;
	ListCell   *lc;

	foreach(lc, g->refs)
	{
		int			key = key_index(query, lfirst_int(lc));

		if (mask & key_bit(key, nkeys))
			value |= 1 << (nargs - 1 - foreach_current_index(lc));
	}
	return value;
}

/*
 * A GROUPING() call g of the view's query, over the hidden key mask of a
 * stored row: the hidden key itself when g names every key in order, else
 * CASE mask WHEN m1 THEN v1 ... END over the view's masks.
 */
Node *
stream_grouping_value(GroupingFunc *g, Query *query, List *masks, Var *mask)
{
	CaseExpr   *c = makeNode(CaseExpr);
	bool		same = true;
	List	   *done = NIL;
	ListCell   *lc;

	foreach(lc, masks)
		same = same && grouping_of(g, query, lfirst_int(lc)) == lfirst_int(lc);
	if (same)
		return (Node *) mask;
	c->casetype = INT4OID;
	c->arg = (Expr *) mask;
	foreach(lc, masks)
	{
		CaseWhen   *w = makeNode(CaseWhen);
		CaseTestExpr *t = makeNode(CaseTestExpr);

		if (list_member_int(done, lfirst_int(lc)))
			continue;
		done = lappend_int(done, lfirst_int(lc));
		t->typeId = INT4OID;
		t->typeMod = -1;
		w->expr = make_opclause(Int4EqualOperator, BOOLOID, false, (Expr *) t,
								(Expr *) makeConst(INT4OID, -1, InvalidOid, sizeof(int32),
												   Int32GetDatum(lfirst_int(lc)), false, true),
								InvalidOid, InvalidOid);
		w->result = (Expr *) makeConst(INT4OID, -1, InvalidOid, sizeof(int32),
									   Int32GetDatum(grouping_of(g, query, lfirst_int(lc))),
									   false, true);
		w->location = -1;
		c->args = lappend(c->args, w);
	}
	c->defresult = (Expr *) makeNullConst(INT4OID, -1, InvalidOid);
	c->location = -1;
	return (Node *) c;
}
