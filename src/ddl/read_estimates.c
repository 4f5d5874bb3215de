/*
 * read_estimates.c
 *	  What the planner assumes about the tables behind a view's read.
 *
 * A delta table churns: the combiner empties it every combine_interval and
 * writers fill it again.  The planner sizes a table by its length on disk,
 * so a read planned while the delta table is empty counts on one delta
 * row, and may scan the delta table once per result row (a nested loop):
 * harmless at once, but a cached plan (a prepared statement, a view read
 * from a function) runs again a moment later, when the table holds
 * thousands of rows, and a million result rows then take hours.  So an
 * empty delta table is planned as one page of rows: hashed once for a
 * whole read, found through its index for a key.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "optimizer/plancat.h"
#include "utils/lsyscache.h"

#include "catalog/catalog.h"
#include "ddl/read_estimates.h"

/* Delta rows assumed in an empty delta table: about one page */
#define EMPTY_DELTA_TABLE_ROWS	100

static get_relation_info_hook_type prev_get_relation_info_hook = NULL;

static bool
is_delta_table(Oid relid)
{
	Oid			internal = get_namespace_oid(STREAM_INTERNAL_SCHEMA, true);
	char	   *name;
	bool		delta;

	if (!OidIsValid(internal) || get_rel_namespace(relid) != internal)
		return false;
	name = get_rel_name(relid);
	delta = (name != NULL && strncmp(name, "delta_", 6) == 0);
	if (name != NULL)
		pfree(name);
	return delta;
}

static void
plan_empty_delta_table_as_a_page(PlannerInfo *root, Oid relid, bool inhparent,
								 RelOptInfo *rel)
{
	if (prev_get_relation_info_hook)
		prev_get_relation_info_hook(root, relid, inhparent, rel);
	if (rel->pages == 0 && rel->tuples < EMPTY_DELTA_TABLE_ROWS && is_delta_table(relid))
	{
		rel->pages = 1;
		rel->tuples = EMPTY_DELTA_TABLE_ROWS;
	}
}

void
stream_read_estimates_init(void)
{
	prev_get_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = plan_empty_delta_table_as_a_page;
}
