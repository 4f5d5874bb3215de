/*
 * internal_guard.c
 *	  DDL on the relations of schema stream_ext_internal.
 *
 * A view's owner owns its state and delta tables (reads of the view read
 * them with the owner's rights), so PostgreSQL would let the owner alter
 * them.  But the workers write them with a layout of their own, and the
 * combiner rewrites them: a column of another type would hand the workers
 * a tuple they form wrongly, a trigger or rule would run inside their
 * statements.  So:
 *	 - triggers and rules on these relations are refused to everyone (but
 *	   the install script);
 *	 - ALTER, RENAME, SET SCHEMA, DROP, TRUNCATE and CREATE INDEX of them
 *	   are refused to anyone but a superuser, and so are CREATE STATISTICS
 *	   (the combiner's ANALYZE would run its expressions) and CREATE
 *	   POLICY, and LOCK, CLUSTER,
 *	   REINDEX and VACUUM FULL, whose locks would stall the workers (a
 *	   worker waiting for one view's table holds up every stream whose
 *	   events share its queue) (the extension's own code runs
 *	   its DDL on them as one; a superuser repairing them knows why), but
 *	   for DROP INDEX of an index CREATE INDEX on a view made
 *	   (ddl/view_index.c), which PostgreSQL lets its owner drop.
 *	   LOCK of a view locks the relations its query reads, views' too: so
 *	   LOCK of a continuous view, or of a view over one, is refused too;
 *	 - and, but to a superuser, links from another table that would make
 *	   these relations part of it: INHERITS, ATTACH PARTITION, INHERIT and
 *	   a foreign key referencing one.  Through the link the other table's
 *	   owner (the view's owner, who owns both) would reach them with every
 *	   statement refused above: ALTER TABLE of a parent recurses into its
 *	   partitions, LOCK, TRUNCATE and DROP of it do too, and triggers of a
 *	   partitioned table are cloned onto them; a child's rows would be read
 *	   and deleted with the delta rows; a foreign key puts its triggers on
 *	   the referenced table.
 * A name is judged before the statement runs; PostgreSQL looks it up again
 * when it locks the relation (refuse() says why that matters), and an ALTER
 * TABLE looks up the names of its links only after expressions of its other
 * subcommands ran (which may change the search path): so the links such a
 * statement leaves are checked again once it ran.  VACUUM FULL
 * and REINDEX without a relation reach every table their role owns, these
 * too: not refused (a plain maintenance command), documented with the other
 * lock waits that hold up the workers.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablespace.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "catalog/catalog.h"
#include "ddl/internal_guard.h"
#include "ddl/view_index.h"

/* The relation, if it is one of stream_ext_internal; else InvalidOid */
static Oid
internal_relid(RangeVar *relation)
{
	Oid			relid;

	if (relation == NULL)
		return InvalidOid;
	relid = RangeVarGetRelid(relation, NoLock, true);
	return stream_is_internal_relation(relid) ? relid : InvalidOid;
}

/* Is stream_ext_internal on the search path, where names resolve? */
static bool
internal_on_search_path(void)
{
	Oid			internal = get_namespace_oid(STREAM_INTERNAL_SCHEMA, true);
	List	   *path;
	bool		on;

	if (!OidIsValid(internal))
		return false;
	path = fetch_search_path(false);
	on = list_member_oid(path, internal);
	list_free(path);
	return on;
}

/*
 * Is relation a temporary one that stays what the name means: no other
 * session can drop it, and no relation of ours can take the name over
 * (pg_temp is searched before our schema)?
 */
static bool
temporary(RangeVar *relation, Oid relid)
{
	Oid			internal = get_namespace_oid(STREAM_INTERNAL_SCHEMA, true);
	List	   *path;
	ListCell   *lc;
	bool		temp_first = false;

	if (relation->relpersistence != RELPERSISTENCE_TEMP &&
		(!OidIsValid(relid) || get_rel_persistence(relid) != RELPERSISTENCE_TEMP))
		return false;
	path = fetch_search_path(true);
	foreach(lc, path)
	{
		if (lfirst_oid(lc) == internal)
			break;
		if (isTempNamespace(lfirst_oid(lc)))
		{
			temp_first = true;
			break;
		}
	}
	list_free(path);
	return temp_first;
}

/*
 * Refuse what on relation, a relation of stream_ext_internal: to everyone,
 * or but to a superuser.
 *
 * The statement looks the name up again once it locks the relation, and
 * again after invalidations (a relation dropped meanwhile, one created since
 * this backend last read the catalog): a name that means none of ours now
 * could then mean one.  So a name in our schema is refused whether or not it
 * resolves, and, with our schema on the search path, an unqualified name
 * too, unless it is of a temporary relation.
 */
static void
refuse(RangeVar *relation, const char *what, bool superuser_may)
{
	Oid			relid;

	if (relation == NULL || (superuser_may && superuser()))
		return;
	relid = RangeVarGetRelid(relation, NoLock, true);
	if (stream_is_internal_relation(relid) ||
		(relation->schemaname != NULL &&
		 strcmp(relation->schemaname, STREAM_INTERNAL_SCHEMA) == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot %s relation \"%s.%s\"", what, STREAM_INTERNAL_SCHEMA,
						OidIsValid(relid) ? get_rel_name(relid) : relation->relname),
				 errdetail("Relations in schema %s are written by stream_ext's workers and combiner.",
						   STREAM_INTERNAL_SCHEMA)));
	if (relation->schemaname == NULL && !superuser() && internal_on_search_path() &&
		!temporary(relation, relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot %s relation \"%s\" by an unqualified name while schema %s is on search_path",
						what, relation->relname, STREAM_INTERNAL_SCHEMA),
				 errdetail("The name could come to mean a relation of %s, which stream_ext's workers and combiner write, before the statement locks it.",
						   STREAM_INTERNAL_SCHEMA),
				 errhint("Qualify the name with its schema.")));
}

/*
 * ALTER TABLE|INDEX|MATERIALIZED VIEW ALL IN TABLESPACE moves the relations
 * of a kind in a tablespace that roles (those whose rights the current one
 * has, when none is named) own: refused but to a superuser when that takes relations of
 * stream_ext_internal (the tables of someone's continuous views, rewritten
 * under an exclusive lock the workers would wait for).
 */
static void
refuse_move_all(AlterTableMoveAllStmt *stmt)
{
	Oid			internal = get_namespace_oid(STREAM_INTERNAL_SCHEMA, true);
	Oid			space = get_tablespace_oid(stmt->orig_tablespacename, true);
	List	   *owners = NIL;
	char		kinds[3] = {0};
	ListCell   *lc;
	Relation	pg_class;
	TableScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	if (superuser() || !OidIsValid(internal) || !OidIsValid(space))
		return;					/* (PostgreSQL says what is wrong with the space) */
	if (space == MyDatabaseTableSpace)
		space = InvalidOid;		/* as pg_class writes the database's default */
	foreach(lc, stmt->roles)
		owners = lappend_oid(owners, get_rolespec_oid(lfirst(lc), false));
	switch (stmt->objtype)
	{
		case OBJECT_TABLE:
			kinds[0] = RELKIND_RELATION;
			kinds[1] = RELKIND_PARTITIONED_TABLE;
			break;
		case OBJECT_INDEX:
			kinds[0] = RELKIND_INDEX;
			kinds[1] = RELKIND_PARTITIONED_INDEX;
			break;
		default:
			kinds[0] = RELKIND_MATVIEW;
	}
	pg_class = table_open(RelationRelationId, AccessShareLock);
	scan = table_beginscan_catalog(pg_class, 0, NULL);
	while (!found && (tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_class rel = (Form_pg_class) GETSTRUCT(tuple);

		found = rel->relnamespace == internal && rel->reltablespace == space &&
			strchr(kinds, rel->relkind) != NULL && rel->relkind != '\0' &&
			(owners == NIL ? has_privs_of_role(GetUserId(), rel->relowner) :
			 list_member_oid(owners, rel->relowner));
	}
	table_endscan(scan);
	table_close(pg_class, AccessShareLock);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot move relations of schema %s", STREAM_INTERNAL_SCHEMA),
				 errdetail("Relations in schema %s are written by stream_ext's workers and combiner.",
						   STREAM_INTERNAL_SCHEMA),
				 errhint("Move the other relations one by one, or ask a superuser.")));
}

/*
 * Refuse a foreign key constraint that references a relation of ours; true
 * if node is a foreign key
 */
static bool
refuse_reference(Node *node)
{
	if (node == NULL || !IsA(node, Constraint) ||
		((Constraint *) node)->contype != CONSTR_FOREIGN)
		return false;
	refuse(((Constraint *) node)->pktable, "reference", true);
	return true;
}

/* ... nor one among a column's constraints, or the elements of a table */
static bool
refuse_references(List *elements)
{
	ListCell   *lc;
	ListCell   *lc2;
	bool		any = false;

	foreach(lc, elements)
	{
		Node	   *element = lfirst(lc);

		if (IsA(element, ColumnDef))
			foreach(lc2, ((ColumnDef *) element)->constraints)
				any |= refuse_reference(lfirst(lc2));
		else
			any |= refuse_reference(element);
	}
	return any;
}

/* CREATE TABLE (or FOREIGN TABLE) inheriting from or referencing ours */
static void
refuse_create_links(CreateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
		refuse(lfirst(lc), stmt->partbound ? "create a partition of" : "inherit from", true);
	refuse_references(stmt->tableElts);
	refuse_references(stmt->constraints);
}

/*
 * ALTER TABLE of another table that would link it to ours.  The names in
 * such a subcommand are looked up while the statement runs, after
 * expressions of its other subcommands (a default, a partition bound) ran,
 * which may change the search path; so the links the table has afterwards
 * are checked too: what to check is set in *check (stream_guard_check_links).
 */
static void
refuse_alter_links(AlterTableStmt *stmt, StreamLinkCheck *check)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_AttachPartition:
				refuse(((PartitionCmd *) cmd->def)->name, "attach", true);
				check->attaches = true;
				break;
			case AT_AddInherit:
				refuse((RangeVar *) cmd->def, "inherit from", true);
				check->inherits = true;
				break;
			case AT_AddConstraint:
				check->references |= refuse_reference(cmd->def);
				break;
			case AT_AddColumn:
				check->references |= refuse_references(list_make1(cmd->def));
				break;
			default:
				break;
		}
	}
	if (check->attaches || check->inherits || check->references)
		check->relid = RangeVarGetRelid(stmt->relation, NoLock, true);
}

static void
refuse_link(Oid relid, Oid linked, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s relation \"%s.%s\"", what,
					STREAM_INTERNAL_SCHEMA, get_rel_name(linked)),
			 errdetail("Relation \"%s\" would be linked to it; relations in schema %s are written by stream_ext's workers and combiner.",
					   get_rel_name(relid), STREAM_INTERNAL_SCHEMA)));
}

/*
 * After an ALTER TABLE that may have linked check.relid to another table
 * ran: refuse (rolling it back) a partition, a parent or a referenced table
 * of ours, as its subcommands could make.
 */
void
stream_guard_check_links(StreamLinkCheck check)
{
	Oid			relid = check.relid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	ListCell   *lc;

	if (!OidIsValid(relid) || superuser() ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return;
	CommandCounterIncrement();
	if (check.attaches)
	{
		List	   *children = find_inheritance_children(relid, NoLock);

		foreach(lc, children)
			if (stream_is_internal_relation(lfirst_oid(lc)))
				refuse_link(relid, lfirst_oid(lc), "attach");
	}
	if (check.inherits)
	{
		rel = table_open(InheritsRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(relid));
		scan = systable_beginscan(rel, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
		while (HeapTupleIsValid(tuple = systable_getnext(scan)))
		{
			Oid			parent = ((Form_pg_inherits) GETSTRUCT(tuple))->inhparent;

			if (stream_is_internal_relation(parent))
				refuse_link(relid, parent, "inherit from");
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	if (check.references)
	{
		rel = table_open(ConstraintRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(relid));
		scan = systable_beginscan(rel, ConstraintRelidTypidNameIndexId, true, NULL, 1, &key);
		while (HeapTupleIsValid(tuple = systable_getnext(scan)))
		{
			Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);

			if (con->contype == CONSTRAINT_FOREIGN &&
				stream_is_internal_relation(con->confrelid))
				refuse_link(relid, con->confrelid, "reference");
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
}

/* Context of reads_internal_walker */
typedef struct ReadsInternal
{
	Oid			internal;		/* the namespace stream_ext_internal */
	List	   *views;			/* the views being walked (a cycle stops) */
	Oid			found;			/* an internal relation read, or InvalidOid */
} ReadsInternal;

static bool reads_internal_view(Oid view, ReadsInternal *ctx);

static bool
reads_internal_walker(Node *node, ReadsInternal *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind != RTE_RELATION)
			return false;
		if (get_rel_namespace(rte->relid) == ctx->internal)
		{
			ctx->found = rte->relid;
			return true;
		}
		return rte->relkind == RELKIND_VIEW && reads_internal_view(rte->relid, ctx);
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, reads_internal_walker, (void *) ctx,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, reads_internal_walker, (void *) ctx);
}

/* Does view read a relation of stream_ext_internal, itself or through views? */
static bool
reads_internal_view(Oid view, ReadsInternal *ctx)
{
	Relation	rel;
	bool		found;

	if (list_member_oid(ctx->views, view))
		return false;
	ctx->views = lappend_oid(ctx->views, view);
	rel = table_open(view, AccessShareLock);
	found = reads_internal_walker((Node *) get_view_query(rel), ctx);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * LOCK of a view locks what its query reads (LockViewRecurse): refuse it,
 * but to a superuser, when that reaches a relation of stream_ext_internal.
 */
static void
refuse_lock_through_view(RangeVar *relation)
{
	ReadsInternal ctx = {0};
	Oid			relid;

	if (superuser())
		return;
	relid = RangeVarGetRelid(relation, NoLock, true);
	ctx.internal = get_namespace_oid(STREAM_INTERNAL_SCHEMA, true);
	if (!OidIsValid(relid) || !OidIsValid(ctx.internal) ||
		get_rel_relkind(relid) != RELKIND_VIEW || !reads_internal_view(relid, &ctx))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot lock view \"%s\"", get_rel_name(relid)),
			 errdetail("Locking it would lock relation \"%s.%s\", which stream_ext's workers and combiner write.",
					   STREAM_INTERNAL_SCHEMA, get_rel_name(ctx.found)),
			 errhint("Reads of a continuous view need no lock: each sees a consistent snapshot.")));
}

/*
 * Refuse parsetree if it is DDL on an internal relation that is not
 * allowed.  Returns the links to check once it ran
 * (stream_guard_check_links).
 */
StreamLinkCheck
stream_guard_internal_relations(Node *parsetree)
{
	StreamLinkCheck check = {InvalidOid, false, false, false};
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_CreateTrigStmt:
			/* the install script's own (ddl/restore.c) */
			if (!creating_extension)
				refuse(((CreateTrigStmt *) parsetree)->relation, "create a trigger on", false);
			break;
		case T_RuleStmt:
			refuse(((RuleStmt *) parsetree)->relation, "create a rule on", false);
			break;
		case T_AlterTableMoveAllStmt:
			refuse_move_all((AlterTableMoveAllStmt *) parsetree);
			break;
		case T_AlterTableStmt:
			refuse(((AlterTableStmt *) parsetree)->relation, "alter", true);
			refuse_alter_links((AlterTableStmt *) parsetree, &check);
			break;
		case T_CreateStmt:
			refuse_create_links((CreateStmt *) parsetree);
			break;
		case T_CreateForeignTableStmt:
			refuse_create_links(&((CreateForeignTableStmt *) parsetree)->base);
			break;
		case T_RenameStmt:
			refuse(((RenameStmt *) parsetree)->relation, "rename", true);
			break;
		case T_AlterObjectSchemaStmt:
			refuse(((AlterObjectSchemaStmt *) parsetree)->relation, "move", true);
			break;
		case T_IndexStmt:
			refuse(((IndexStmt *) parsetree)->relation, "index", true);
			break;
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
				refuse(lfirst(lc), "truncate", true);
			break;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				if (stmt->removeType != OBJECT_TABLE && stmt->removeType != OBJECT_INDEX)
					break;
				foreach(lc, stmt->objects)
				{
					RangeVar   *rel = makeRangeVarFromNameList(lfirst(lc));

					/* what CREATE INDEX on a view made, its owner drops */
					if (stmt->removeType == OBJECT_INDEX &&
						stream_is_view_index(internal_relid(rel)))
						continue;
					refuse(rel, "drop", true);
				}
				break;
			}
		case T_LockStmt:
			foreach(lc, ((LockStmt *) parsetree)->relations)
			{
				refuse(lfirst(lc), "lock", true);
				refuse_lock_through_view(lfirst(lc));
			}
			break;
		case T_ClusterStmt:
			refuse(((ClusterStmt *) parsetree)->relation, "cluster", true);
			break;
		case T_CreateStatsStmt:
			/* ANALYZE, which the combiner runs, would evaluate its expressions */
			foreach(lc, ((CreateStatsStmt *) parsetree)->relations)
				if (IsA(lfirst(lc), RangeVar))
					refuse(lfirst(lc), "create statistics on", true);
			break;
		case T_CreatePolicyStmt:
			refuse(((CreatePolicyStmt *) parsetree)->table, "create a policy on", true);
			break;
		case T_ReindexStmt:
			refuse(((ReindexStmt *) parsetree)->relation, "reindex", true);
			break;
		case T_VacuumStmt:
			{
				VacuumStmt *stmt = (VacuumStmt *) parsetree;
				bool		full = false;

				foreach(lc, stmt->options)
					if (strcmp(((DefElem *) lfirst(lc))->defname, "full") == 0)
						full = defGetBoolean(lfirst(lc));
				if (!full)
					break;
				foreach(lc, stmt->rels)
					refuse(((VacuumRelation *) lfirst(lc))->relation, "vacuum full", true);
				break;
			}
		default:
			break;
	}
	return check;
}
