/*
 * read_estimates.c
 *	  What the planner assumes about the tables behind a view's read.
 *
 * A delta table churns: the combiner empties it every combine_interval and
 * writers fill it again.  The planner sizes a table by its length on disk
 * times the density of rows its last VACUUM or ANALYZE saw, so a read
 * planned while the delta table is empty, or after a VACUUM that found it
 * empty, counts on one delta row, and may scan the delta table once per
 * result row (a nested loop): with thousands of deltas a read of a million
 * groups then takes hours, and a cached plan (a prepared statement) is
 * reused while the table fills.  So a delta table is planned as holding at
 * least a page of rows, which a whole read hashes once.
 */
#include "postgres.h"

#include "optimizer/plancat.h"

#include "catalog/catalog.h"
#include "ddl/read_estimates.h"

/* The fewest delta rows a plan counts on: about one page */
#define MIN_DELTA_TABLE_ROWS	100

static get_relation_info_hook_type prev_get_relation_info_hook = NULL;

static void
plan_delta_table_as_a_page_at_least(PlannerInfo *root, Oid relid, bool inhparent,
									RelOptInfo *rel)
{
	if (prev_get_relation_info_hook)
		prev_get_relation_info_hook(root, relid, inhparent, rel);
	if (rel->tuples < MIN_DELTA_TABLE_ROWS && stream_is_view_relation(relid, VIEW_DELTA_TABLE))
	{
		rel->pages = Max(rel->pages, 1);
		rel->tuples = MIN_DELTA_TABLE_ROWS;
	}
}

void
stream_read_estimates_init(void)
{
	prev_get_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = plan_delta_table_as_a_page_at_least;
}
