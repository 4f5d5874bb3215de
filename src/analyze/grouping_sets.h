/*
 * grouping_sets.h
 *	  GROUP BY GROUPING SETS, ROLLUP and CUBE in continuous views: the sets a
 *	  view's query expands to, the hidden key that tells them apart, the
 *	  workers' grouping sets and GROUPING() over the stored rows.
 */
#ifndef STREAM_EXT_GROUPING_SETS_H
#define STREAM_EXT_GROUPING_SETS_H

#include "nodes/parsenodes.h"

/* The hidden key of a view with grouping sets: GROUPING() of all its keys */
#define STREAM_GROUPING_KEY_NAME "_grouping"

extern List *stream_grouping_masks(Query *query);
extern GroupingFunc *stream_grouping_key_expr(Query *query);
extern int	stream_grouping_copies(List *masks, int mask);
extern bool stream_grouping_set_has_key(int mask, int key, int nkeys);
extern bool stream_grouping_key_in_every_set(List *masks, int key, int nkeys);
extern List *stream_worker_grouping_sets(List *masks, List *always_refs, List *key_refs);
extern Node *stream_grouping_value(GroupingFunc *g, Query *query, List *masks, Var *mask);

#endif
