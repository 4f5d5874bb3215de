/*
 * view_index.c
 *	  CREATE INDEX on a continuous view that keeps rows.
 *
 * A view that keeps rows reads its kept-rows table (the state table) and
 * the visible rows of its delta table, a UNION ALL the planner pushes a
 * reader's conditions into (ddl/read_view.c).  So an index on the kept-rows
 * table serves a condition on the view: CREATE INDEX ON view (columns) is
 * taken as CREATE INDEX ON that table, with the view's column names turned
 * into the table's, and passed down the ProcessUtility chain.  The delta
 * table is not indexed: the combiner keeps it small.
 *
 * The index lives beside its table in stream_ext_internal, where the view's
 * owner may not create anything: the statement runs as the bootstrap
 * superuser once the caller is found to own the view (the index is the
 * table's owner's, and PostgreSQL builds it as that owner).  The view's
 * owner may drop it again (ddl/internal_guard.c asks stream_is_view_index).
 * Unique indexes are refused: a duplicate row would reach the combiner
 * after its writer committed, when nobody can be told.  So are CONCURRENTLY
 * (its own commits would leave an error's abort to restore the superuser)
 * and names the extension gives its own relations (names.c), which an index
 * there could otherwise take before a later view needs them.
 */
#include "postgres.h"

#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_utilcmd.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "catalog/catalog.h"
#include "ddl/view_index.h"

/* The kept-rows table's name of the view's column name (same attnum) */
static char *
kept_column_name(Oid view, Oid kept, const char *name)
{
	AttrNumber	attnum = get_attnum(view, name);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" does not exist", name)));
	return get_attname(kept, attnum, false);
}

typedef struct ColumnRenaming
{
	Oid			view;
	Oid			kept;
} ColumnRenaming;

/* Each column a raw expression names, by its name in the kept-rows table */
static bool
rename_column_refs(Node *node, void *context)
{
	ColumnRenaming *r = context;

	if (node == NULL)
		return false;
	if (IsA(node, ColumnRef))
	{
		ColumnRef  *ref = (ColumnRef *) node;

		/* view.column names the table's column alone, the view being gone */
		if (list_length(ref->fields) == 2 && IsA(linitial(ref->fields), String) &&
			IsA(lsecond(ref->fields), String) &&
			strcmp(strVal(linitial(ref->fields)), get_rel_name(r->view)) == 0)
			ref->fields = list_make1(lsecond(ref->fields));
		if (list_length(ref->fields) == 1 && IsA(linitial(ref->fields), String))
			linitial(ref->fields) = makeString(kept_column_name(r->view, r->kept,
															   strVal(linitial(ref->fields))));
		return false;
	}
	return raw_expression_tree_walker(node, rename_column_refs, context);
}

/*
 * Name the kept-rows table's columns in elems (IndexElem: a column, or an
 * expression's column references) as the view's: the view's columns may
 * have been renamed since it was made, the table's were not.
 */
static void
rename_columns(List *elems, ColumnRenaming *r)
{
	ListCell   *lc;

	foreach(lc, elems)
	{
		IndexElem  *elem = lfirst(lc);

		if (elem->name != NULL)
			elem->name = kept_column_name(r->view, r->kept, elem->name);
		else
			(void) rename_column_refs(elem->expr, r);
	}
}

/* An index name after the view's, free in stream_ext_internal */
static char *
index_name_for(Oid view, IndexStmt *stmt)
{
	IndexElem  *first = linitial(stmt->indexParams);
	char	   *name = get_rel_name(view);

	if (stream_is_reserved_internal_name(name))
		name = psprintf("view_%s", name);
	return ChooseRelationName(name, first->name ? first->name : "expr", "idx",
							  get_namespace_oid(STREAM_INTERNAL_SCHEMA, false), false);
}

/*
 * The redirected statement (on table kept) analyzed as the caller (the
 * index is then made as the bootstrap superuser, ddl/utility.c): the input
 * functions of its constants and the lookups of its names run with the
 * caller's rights, and the caller must be allowed to create in its
 * tablespace (as DefineIndex checks, the database's own needs no right).
 */
static IndexStmt *
analyzed_as_caller(IndexStmt *stmt, Oid kept, const char *queryString)
{
	LockRelationOid(kept, stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock);
	if (stmt->tableSpace != NULL)
	{
		Oid			tablespace = get_tablespace_oid(stmt->tableSpace, false);

		if (tablespace != MyDatabaseTableSpace &&
			pg_tablespace_aclcheck(tablespace, GetUserId(), ACL_CREATE) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLESPACE, stmt->tableSpace);
	}
	return transformIndexStmt(kept, stmt, queryString);
}

/*
 * If stmt creates an index on a continuous view, the statement that
 * creates the index on the view's kept-rows table, analyzed as the caller;
 * the caller runs it as a superuser.  Errors when the view does not keep
 * rows, the caller does not own it, or the index is unique.  NULL for any
 * other relation.
 */
IndexStmt *
stream_redirect_view_index(IndexStmt *stmt, const char *queryString)
{
	Oid			view = RangeVarGetRelid(stmt->relation, NoLock, true);
	int			id;
	ContinuousViewRow *row;
	Oid			kept;
	ColumnRenaming renaming;

	if (!OidIsValid(view) || (id = stream_continuous_view_id(view)) < 0)
		return NULL;
	row = stream_catalog_view(id);
	if (row == NULL || !row->keeps_rows)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot create an index on continuous view \"%s\"", get_rel_name(view)),
				 errdetail("Only continuous views that keep rows (without aggregates or GROUP BY) can be indexed."),
				 errhint("Reads of an aggregating view use the indexes stream_ext makes.")));
	if (!pg_class_ownercheck(view, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(view));
	if (stmt->unique || stmt->primary || stmt->isconstraint || stmt->excludeOpNames != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("unique indexes on continuous views are not supported"),
				 errdetail("A continuous view keeps every row its query makes; a duplicate could not be refused to the transaction that wrote its event.")));

	/*
	 * CONCURRENTLY commits inside DefineIndex: an error after that would
	 * abort a transaction begun as the superuser the index is made as.
	 */
	if (stmt->concurrent)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("CREATE INDEX CONCURRENTLY is not supported on continuous views"),
				 errhint("Use CREATE INDEX: it blocks only the combiner's merges of the view while it builds.")));
	if (stmt->idxname != NULL && stream_is_reserved_internal_name(stmt->idxname))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("index name \"%s\" is reserved for the internal tables of continuous views",
						stmt->idxname),
				 errhint("Choose another name, or leave it out.")));

	renaming.view = view;
	renaming.kept = kept = row->state_table;
	rename_columns(stmt->indexParams, &renaming);
	rename_columns(stmt->indexIncludingParams, &renaming);
	(void) rename_column_refs(stmt->whereClause, &renaming);
	if (stmt->idxname == NULL)
		stmt->idxname = index_name_for(view, stmt);
	stmt->relation = makeRangeVar(STREAM_INTERNAL_SCHEMA, get_rel_name(kept), -1);
	return analyzed_as_caller(stmt, kept, queryString);
}

/* Is index one that CREATE INDEX on a view that keeps rows made? */
bool
stream_is_view_index(Oid index)
{
	Oid			table = IndexGetRelation(index, true);
	ListCell   *lc;

	if (!OidIsValid(table))
		return false;
	foreach(lc, stream_catalog_views())
	{
		ContinuousViewRow *row = lfirst(lc);

		if (row->keeps_rows && row->state_table == table)
			return !(strcmp(get_rel_name(index),
							psprintf("%s_ttl", stream_view_relation_name(row->id, VIEW_STATE_TABLE))) == 0);
	}
	return false;
}
