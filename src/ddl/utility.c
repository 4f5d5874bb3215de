/*
 * utility.c
 *	  The ProcessUtility hook of stream_ext.
 *
 *	 CREATE VIEW v WITH (continuous) AS SELECT ...	 creates a continuous view
 *	 CREATE FOREIGN TABLE s (...) SERVER stream_ext	 gains arrival_timestamp,
 *	   a name no other column of a stream may take
 *	 DROP DATABASE, CREATE DATABASE ... TEMPLATE t,	 stop the workers of the
 *	 ALTER DATABASE ... RENAME TO or SET TABLESPACE	 database concerned (its
 *	   Kafka workers leave too) while the command runs, since it must be
 *	   unused;
 *	 DROP EXTENSION stream_ext						 likewise: it locks every
 *	   view's tables in its own order, which could deadlock with a worker.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog/catalog.h"
#include "ddl/delta_writes.h"
#include "ddl/drop_behavior.h"
#include "ddl/create_view.h"
#include "ddl/internal_guard.h"
#include "ddl/utility.h"
#include "ddl/view_index.h"
#include "ipc/queue.h"
#include "stream/copy.h"
#include "stream/fdw.h"
#include "stream/insert.h"
#include "window/spec.h"

PG_FUNCTION_INFO_V1(stream_ext_run_utility);

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

stream_column_change_hook_type stream_column_change_hook = NULL;

/* A statement stream_ext runs itself, on its way down the chain */
typedef struct OwnStatement
{
	Node	   *stmt;			/* ViewStmt or CopyStmt */
	const char *queryString;
	int			stmt_location;
	int			stmt_len;
	QueryCompletion *qc;
	bool		taken;			/* run_utility() has taken it */
} OwnStatement;

static OwnStatement *own_statement = NULL;

/*
 * Is this a CREATE VIEW with the continuous option?  Rejects CREATE OR
 * REPLACE of an existing continuous view.  A false continuous option is
 * removed (the statement makes an ordinary view).  The other options of a
 * continuous view are its window (window/spec.c checks them).
 */
static bool
is_continuous_view(ViewStmt *stmt)
{
	ListCell   *lc;
	bool		continuous = false;
	bool		mentioned = false;

	foreach(lc, stmt->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "continuous") == 0)
		{
			if (mentioned)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("option \"%s\" specified more than once", def->defname)));
			continuous = defGetBoolean(def);
			mentioned = true;
		}
	}
	if (stmt->replace)
	{
		Oid			existing = RangeVarGetRelid(stmt->view, NoLock, true);

		if (OidIsValid(existing) && stream_continuous_view_id(existing) >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("CREATE OR REPLACE is not supported for continuous views"),
					 errdetail("\"%s\" is a continuous view.", stmt->view->relname),
					 errhint("Drop the view and create it again.")));
	}
	if (!continuous)
	{
		if (mentioned)
		{
			List	   *options = NIL;

			foreach(lc, stmt->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "continuous") != 0)
					options = lappend(options, lfirst(lc));
			stmt->options = options;
		}
		return false;
	}

	if (stmt->replace)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("CREATE OR REPLACE is not supported for continuous views"),
				 errhint("Drop the view and create it again.")));
	if (stmt->withCheckOption != NO_CHECK_OPTION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("WITH CHECK OPTION is not supported for continuous views")));
	return true;
}

#define ARRIVAL_COLUMN "arrival_timestamp"
#define ARRIVAL_DETAIL "stream_ext adds a column arrival_timestamp timestamptz to every stream, holding the time each event arrived."

/* Error: a column of a stream cannot be called arrival_timestamp. */
static void
arrival_name_conflict(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_COLUMN),
			 errmsg("column name \"%s\" conflicts with the column stream_ext adds to streams",
					ARRIVAL_COLUMN),
			 errdetail(ARRIVAL_DETAIL),
			 errhint("Give the column another name.")));
}

/*
 * Is col the arrival_timestamp column of a stream?  False for another name;
 * true for the column as pg_dump writes it back (a timestamptz generated
 * column); any other column of that name is an error.
 */
static bool
is_arrival_column(ColumnDef *col)
{
	ListCell   *lc;

	if (strcmp(col->colname, ARRIVAL_COLUMN) != 0)
		return false;
	if (typenameTypeId(NULL, col->typeName) == TIMESTAMPTZOID)
		foreach(lc, col->constraints)
			if (((Constraint *) lfirst(lc))->contype == CONSTR_GENERATED)
				return true;
	arrival_name_conflict();
	return false;				/* not reached */
}

/*
 * Append the generated arrival_timestamp column to a new stream, unless it
 * is given (a stream restored from a dump).
 */
static void
add_arrival_timestamp(CreateForeignTableStmt *stmt)
{
	ListCell   *lc;
	ColumnDef  *col;
	Constraint *gen;
	TypeCast   *null_ts;
	int			ncolumns = 0;

	foreach(lc, stmt->base.tableElts)
	{
		Node	   *elt = lfirst(lc);

		if (!IsA(elt, ColumnDef))
			continue;
		if (is_arrival_column((ColumnDef *) elt))
			return;
		ncolumns++;
	}
	if (ncolumns >= MaxHeapAttributeNumber)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("streams can have at most %d columns", MaxHeapAttributeNumber - 1),
				 errdetail("stream_ext adds a column arrival_timestamp to every stream, and tables can have at most %d columns.",
						   MaxHeapAttributeNumber)));

	null_ts = makeNode(TypeCast);
	null_ts->arg = (Node *) makeNode(A_Const);
	((A_Const *) null_ts->arg)->isnull = true;
	((A_Const *) null_ts->arg)->location = -1;
	null_ts->typeName = SystemTypeName("timestamptz");
	null_ts->location = -1;

	gen = makeNode(Constraint);
	gen->contype = CONSTR_GENERATED;
	gen->generated_when = ATTRIBUTE_IDENTITY_ALWAYS;
	gen->raw_expr = (Node *) null_ts;
	gen->location = -1;

	col = makeColumnDef(ARRIVAL_COLUMN, TIMESTAMPTZOID, -1, InvalidOid);
	col->constraints = list_make1(gen);
	stmt->base.tableElts = lappend(stmt->base.tableElts, col);
}

/* The stream a statement names, or InvalidOid when it names none */
static Oid
named_stream(RangeVar *relation)
{
	Oid			relid = relation ? RangeVarGetRelid(relation, NoLock, true) : InvalidOid;

	return (OidIsValid(relid) && stream_is_stream_relation(relid)) ? relid : InvalidOid;
}

/*
 * A stream is no parent, child or partition of another relation: its views
 * read its own events, which a plan over an inheritance tree would mix with
 * the other relations' rows (or fail on another stream, which cannot be
 * read).
 */
static void
refuse_stream_hierarchy(Oid stream)
{
	if (OidIsValid(stream))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("stream \"%s\" cannot take part in inheritance or partitioning",
						get_rel_name(stream)),
				 errdetail("A continuous view reads the events of its stream alone.")));
}

/* CREATE [FOREIGN] TABLE ... INHERITS / PARTITION OF a stream, or a stream so (or temporary) */
static void
check_stream_create(CreateStmt *stmt, bool is_stream)
{
	ListCell   *lc;

	if (is_stream && (stmt->relation->relpersistence == RELPERSISTENCE_TEMP ||
					  isAnyTempNamespace(RangeVarGetCreationNamespace(stmt->relation))))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("streams cannot be temporary"),
				 errdetail("Background workers, not the session, read a stream's events.")));
	if (is_stream && (stmt->inhRelations != NIL || stmt->partbound != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a stream cannot inherit from or be a partition of another relation"),
				 errdetail("A continuous view reads the events of its stream alone.")));
	foreach(lc, stmt->inhRelations)
		refuse_stream_hierarchy(named_stream(lfirst(lc)));
}

/*
 * Errors unless an ALTER of a stream keeps its arrival_timestamp column as
 * it is: no other column may take the name (ADD COLUMN, RENAME TO), and the
 * column keeps its name and type, which views read it by.
 */
static void
check_stream_alter(Node *parsetree)
{
	ListCell   *lc;
	Oid			stream;

	/* (ALTER TYPE ... RENAME ATTRIBUTE renames a stream's column too) */
	if (IsA(parsetree, RenameStmt) &&
		(((RenameStmt *) parsetree)->renameType == OBJECT_COLUMN ||
		 ((RenameStmt *) parsetree)->renameType == OBJECT_ATTRIBUTE))
	{
		RenameStmt *stmt = (RenameStmt *) parsetree;

		if (!OidIsValid(stream = named_stream(stmt->relation)))
			return;
		if (strcmp(stmt->subname, ARRIVAL_COLUMN) != 0 && strcmp(stmt->newname, ARRIVAL_COLUMN) != 0)
		{
			if (stream_column_change_hook)
				stream_column_change_hook(stream, stmt->subname, false);
			return;
		}
		if (strcmp(stmt->newname, ARRIVAL_COLUMN) == 0)
			arrival_name_conflict();
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot rename column \"%s\" of stream \"%s\"", ARRIVAL_COLUMN,
						get_rel_name(stream)),
				 errdetail(ARRIVAL_DETAIL)));
	}
	if (!IsA(parsetree, AlterTableStmt))
		return;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		bool		add = (cmd->subtype == AT_AddColumn &&
						   strcmp(((ColumnDef *) cmd->def)->colname, ARRIVAL_COLUMN) == 0);
		bool		retype = (cmd->subtype == AT_AlterColumnType);

		if (cmd->subtype == AT_AddInherit || cmd->subtype == AT_AttachPartition)
		{
			RangeVar   *other = cmd->subtype == AT_AddInherit ? (RangeVar *) cmd->def :
			((PartitionCmd *) cmd->def)->name;

			refuse_stream_hierarchy(named_stream(((AlterTableStmt *) parsetree)->relation));
			refuse_stream_hierarchy(named_stream(other));
			continue;
		}
		if ((cmd->subtype == AT_DropColumn || cmd->subtype == AT_DropExpression ||
			 cmd->subtype == AT_ColumnDefault) &&
			cmd->name != NULL && strcmp(cmd->name, ARRIVAL_COLUMN) == 0 &&
			OidIsValid(stream = named_stream(((AlterTableStmt *) parsetree)->relation)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot alter column \"%s\" of stream \"%s\"", ARRIVAL_COLUMN,
							get_rel_name(stream)),
					 errdetail(ARRIVAL_DETAIL)));
		if (cmd->subtype == AT_DropColumn && stream_column_change_hook &&
			OidIsValid(stream = named_stream(((AlterTableStmt *) parsetree)->relation)))
			stream_column_change_hook(stream, cmd->name, true);
		if (!add && !retype)
			continue;
		if (!OidIsValid(stream = named_stream(((AlterTableStmt *) parsetree)->relation)))
			continue;			/* a later INHERIT may still name a stream */
		if (add)
			(void) is_arrival_column((ColumnDef *) cmd->def);
		else if (strcmp(cmd->name, ARRIVAL_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot alter the type of column \"%s\" of stream \"%s\"",
							ARRIVAL_COLUMN, get_rel_name(stream)),
					 errdetail(ARRIVAL_DETAIL)));
		else

			/*
			 * Events already written (async ones not applied yet, a queue's
			 * backlog) are tuples of the old type, which the workers would
			 * read with the new one.
			 */
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot alter the type of column \"%s\" of stream \"%s\"",
							cmd->name, get_rel_name(stream)),
					 errdetail("Events written before the change and not applied yet would be read with the new type."),
					 errhint("Drop the column and add it again with the new type.")));
	}
}

/*
 * A continuous view's options are its definition's (CREATE VIEW ... WITH):
 * ALTER VIEW ... SET or RESET of options would leave its workers and reads
 * at odds with them (security_invoker would make readers need rights on its
 * internal tables).  But security_barrier, which only says how the view's
 * reads are planned, as for any view.
 */
static bool
only_security_barrier(AlterTableCmd *cmd)
{
	ListCell   *lc;

	if (cmd->subtype == AT_ReplaceRelOptions || !IsA(cmd->def, List))
		return false;
	foreach(lc, (List *) cmd->def)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "security_barrier") != 0 ||
			((DefElem *) lfirst(lc))->defnamespace != NULL)
			return false;
	return true;
}

static void
check_continuous_view_options(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableType t = ((AlterTableCmd *) lfirst(lc))->subtype;
		Oid			relid;

		if (t != AT_SetRelOptions && t != AT_ResetRelOptions && t != AT_ReplaceRelOptions)
			continue;
		if (only_security_barrier(lfirst(lc)))
			continue;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (OidIsValid(relid) && stream_continuous_view_id(relid) >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot change the options of continuous view \"%s\"",
							get_rel_name(relid)),
					 errhint("Drop the view and create it again with the options; only security_barrier may be set or reset.")));
	}
}

/* The change stream relation names, or InvalidOid */
static Oid
named_change_stream(RangeVar *relation)
{
	Oid			stream = named_stream(relation);

	return (OidIsValid(stream) && stream_changes_of(stream) != NULL) ? stream : InvalidOid;
}

/* A change stream's columns are what the combiner writes into it */
static void
refuse_change_stream_columns(Oid stream)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot change the columns of change stream \"%s\"", get_rel_name(stream)),
			 errdetail("Its columns (old, new, final) are what the combiner writes into it."),
			 errhint("Compute other columns in the views and transforms that read it.")));
}

/*
 * A continuous view's rule is its query, and what the view depends on (its
 * stream, columns, aggregates, tables) is recorded on that rule: CREATE OR
 * REPLACE RULE "_RETURN" would drop those records, and with them what keeps
 * the catalog's definition of the view valid.  No other rule belongs on it.
 */
static void
check_continuous_view_rule(RuleStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

	if (OidIsValid(relid) && stream_continuous_view_id(relid) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot create a rule on continuous view \"%s\"", get_rel_name(relid)),
				 errdetail("A continuous view's query is its own rule, which stream_ext keeps."),
				 errhint("Drop the view and create it again to change its query.")));
}

/*
 * A change stream's events come from the combiner: a row trigger on it
 * would never fire, and its changes_of option (what makes it a change
 * stream, refusing INSERT) is the extension's to set.
 */
static void
check_change_stream_ddl(Node *parsetree)
{
	Oid			stream;
	ListCell   *lc;

	if (IsA(parsetree, CreateTrigStmt))
	{
		stream = named_change_stream(((CreateTrigStmt *) parsetree)->relation);
		if (OidIsValid(stream))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot create a trigger on change stream \"%s\"", get_rel_name(stream)),
					 errdetail("Its events come from the combiner, not from INSERT: a trigger would never fire."),
					 errhint("Filter or enrich its events in the views and transforms that read it.")));
		return;
	}
	if (IsA(parsetree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) parsetree;

		if (stmt->renameType == OBJECT_COLUMN &&
			OidIsValid(stream = named_change_stream(stmt->relation)))
			refuse_change_stream_columns(stream);
		return;
	}
	if (!IsA(parsetree, AlterTableStmt))
		return;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		ListCell   *lo;

		if ((cmd->subtype == AT_AddColumn || cmd->subtype == AT_DropColumn ||
			 cmd->subtype == AT_ColumnDefault || cmd->subtype == AT_SetNotNull ||
			 cmd->subtype == AT_AddConstraint) &&
			OidIsValid(stream = named_change_stream(((AlterTableStmt *) parsetree)->relation)))
			refuse_change_stream_columns(stream);
		if (cmd->subtype != AT_GenericOptions)
			continue;
		foreach(lo, (List *) cmd->def)
			if (strcmp(((DefElem *) lfirst(lo))->defname, STREAM_CHANGES_OF_OPTION) == 0 &&
				OidIsValid(stream = named_stream(((AlterTableStmt *) parsetree)->relation)))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot change option \"%s\" of stream \"%s\"", STREAM_CHANGES_OF_OPTION,
								get_rel_name(stream)),
						 errdetail("It marks the change stream of a continuous view, which stream_ext.create_change_stream makes.")));
	}
}

static bool
changes_owner(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
		if (((AlterTableCmd *) lfirst(lc))->subtype == AT_ChangeOwner)
			return true;
	return false;
}

static Oid
template_database(CreatedbStmt *stmt)
{
	ListCell   *lc;
	const char *name = "template1";

	foreach(lc, stmt->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "template") == 0 && def->arg != NULL)
			name = defGetString(def);
	}
	return get_database_oid(name, true);
}

/*
 * May the caller run parsetree, which would stop the processes of database
 * dboid?  A role that may not gets PostgreSQL's error, without the workers
 * of another's database stopped meanwhile: the owner of the database (or
 * of the extension, for DROP EXTENSION, which PostgreSQL checks), or for a
 * copy one who may create databases from that template.
 */
static bool
may_quiet_database(Node *parsetree, Oid dboid)
{
	HeapTuple	tuple;
	bool		is_template;

	if (superuser())
		return true;
	if (IsA(parsetree, DropStmt))
		return pg_extension_ownercheck(get_extension_oid("stream_ext", false), GetUserId());
	if (pg_database_ownercheck(dboid, GetUserId()))
		return true;
	if (!IsA(parsetree, CreatedbStmt))
		return false;
	tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (!HeapTupleIsValid(tuple))
		return false;
	is_template = ((Form_pg_database) GETSTRUCT(tuple))->datistemplate;
	ReleaseSysCache(tuple);
	return is_template && have_createdb_privilege();
}

/* Does stmt move the database (ALTER DATABASE ... SET TABLESPACE)? */
static bool
moves_database(AlterDatabaseStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
			return true;
	return false;
}

/* Does stmt drop this extension (DROP EXTENSION ... stream_ext ...)? */
static bool
drops_stream_ext(DropStmt *stmt)
{
	ListCell   *lc;

	if (stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
		if (strcmp(strVal(lfirst(lc)), "stream_ext") == 0)
			return true;
	return false;
}

/* The rest of the ProcessUtility chain. */
static void
run_next_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params,
			  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * The rest of the chain; for a statement that drops (drop_behavior.c says
 * which), with its behavior kept while it runs, for the drops of views'
 * tables it sets off
 */
static void
run_keeping_drop_behavior(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						  ProcessUtilityContext context, ParamListInfo params,
						  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	bool		saved;

	if (!stream_drop_behavior_begin(pstmt->utilityStmt, &saved))
	{
		run_next_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}
	PG_TRY();
	{
		run_next_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		stream_drop_behavior_end(saved);
	}
	PG_END_TRY();
}

/* CREATE VIEW ... WITH (continuous, options...) AS query */
static void
create_continuous_view(OwnStatement *own)
{
	ViewStmt   *stmt = (ViewStmt *) own->stmt;
	RawStmt    *raw = makeNode(RawStmt);
	List	   *options = NIL;
	ListCell   *lc;

	raw->stmt = stmt->query;
	raw->stmt_location = own->stmt_location;
	raw->stmt_len = own->stmt_len;
	foreach(lc, stmt->options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "continuous") != 0)
			options = lappend(options, lfirst(lc));
	(void) stream_create_continuous_view(stmt->view, stmt->aliases, raw, own->queryString,
										 stream_view_options(options));
	if (own->qc)
		SetQueryCompletion(own->qc, CMDTAG_CREATE_VIEW, 0);
}

/*
 * stream_ext_internal.run_utility(): run the statement the utility hook
 * sent down the chain.  Called any other way, it refuses.
 */
Datum
stream_ext_run_utility(PG_FUNCTION_ARGS)
{
	OwnStatement *own = own_statement;

	if (own == NULL || own->taken)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("stream_ext_internal.run_utility() cannot be called directly"),
				 errdetail("It runs the CREATE VIEW and COPY statements that stream_ext handles.")));
	own->taken = true;
	own_statement = NULL;
	if (IsA(own->stmt, ViewStmt))
		create_continuous_view(own);
	else
	{
		uint64		processed = stream_copy_from((CopyStmt *) own->stmt, own->queryString);

		if (own->qc)
			SetQueryCompletion(own->qc, CMDTAG_COPY, processed);
	}
	PG_RETURN_VOID();
}

/*
 * Send a statement stream_ext runs itself (stmt, of pstmt) down the chain
 * as CALL stream_ext_internal.run_utility().
 */
static void
run_own_statement(Node *stmt, PlannedStmt *pstmt, const char *queryString,
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	List	   *name = list_make2(makeString("stream_ext_internal"), makeString("run_utility"));
	ObjectWithArgs *proc = makeNode(ObjectWithArgs);
	Oid			procid;
	CallStmt   *call = makeNode(CallStmt);
	PlannedStmt *call_pstmt = makeNode(PlannedStmt);
	OwnStatement own = {0};
	OwnStatement *volatile outer = own_statement;

	proc->objname = name;
	procid = LookupFuncWithArgs(OBJECT_PROCEDURE, proc, false);
	call->funccall = makeFuncCall(name, NIL, COERCE_EXPLICIT_CALL, -1);
	call->funcexpr = makeFuncExpr(procid, VOIDOID, NIL, InvalidOid, InvalidOid,
								  COERCE_EXPLICIT_CALL);
	memcpy(call_pstmt, pstmt, sizeof(PlannedStmt));
	call_pstmt->utilityStmt = (Node *) call;

	own.stmt = stmt;
	own.queryString = queryString;
	own.stmt_location = pstmt->stmt_location;
	own.stmt_len = pstmt->stmt_len;
	own.qc = qc;
	own_statement = &own;
	PG_TRY();
	{
		run_next_hook(call_pstmt, queryString, false, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		own_statement = outer;
	}
	PG_END_TRY();
	if (!own.taken)
		elog(ERROR, "a ProcessUtility hook did not run stream_ext's statement");
}

/*
 * Run CREATE INDEX on a view that keeps rows, redirected to its kept-rows
 * table and analyzed as the caller (ddl/view_index.c), as the bootstrap
 * superuser: the table's schema is the extension's.
 */
static void
run_view_index(PlannedStmt *pstmt, const char *queryString, ProcessUtilityContext context,
			   ParamListInfo params, QueryEnvironment *queryEnv, DestReceiver *dest,
			   QueryCompletion *qc)
{
	Oid			saved_user;
	int			saved_sec;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		run_next_hook(pstmt, queryString, false, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
}

static void
stream_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile Oid quiet_db = InvalidOid;
	bool		creates_stream;
	StreamLinkCheck check_links;

	if (IsA(parsetree, ViewStmt) && readOnlyTree)
	{
		pstmt = copyObject(pstmt);
		parsetree = pstmt->utilityStmt;
		readOnlyTree = false;
	}
	if (IsA(parsetree, ViewStmt) && is_continuous_view((ViewStmt *) parsetree))
	{
		if (!OidIsValid(get_extension_oid("stream_ext", true)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"stream_ext\" is not installed in this database"),
					 errhint("Run CREATE EXTENSION stream_ext first.")));
		run_own_statement(parsetree, pstmt, queryString, context, params, queryEnv, dest, qc);
		return;
	}

	if (IsA(parsetree, CopyStmt) && stream_copy_handles((CopyStmt *) parsetree))
	{
		run_own_statement(parsetree, pstmt, queryString, context, params, queryEnv, dest, qc);
		return;
	}

	check_links = stream_guard_internal_relations(parsetree);
	if (IsA(parsetree, RuleStmt))
		check_continuous_view_rule((RuleStmt *) parsetree);
	if (IsA(parsetree, CreateForeignServerStmt) &&
		strcmp(((CreateForeignServerStmt *) parsetree)->fdwname, "stream_ext") == 0 &&
		!creating_extension)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("foreign data wrapper \"stream_ext\" has one server, \"stream_ext\""),
				 errdetail("Every stream is a foreign table of server stream_ext."),
				 errhint("Create streams with CREATE FOREIGN TABLE ... SERVER stream_ext.")));
	if (IsA(parsetree, CopyStmt))
		stream_note_delta_copy((CopyStmt *) parsetree);

	if (IsA(parsetree, IndexStmt))
	{
		PlannedStmt *copy = copyObject(pstmt);
		IndexStmt  *redirected = stream_redirect_view_index((IndexStmt *) copy->utilityStmt,
														   queryString);

		if (redirected != NULL)
		{
			copy->utilityStmt = (Node *) redirected;
			run_view_index(copy, queryString, context, params, queryEnv, dest, qc);
			return;
		}
	}

	creates_stream = IsA(parsetree, CreateForeignTableStmt) &&
		strcmp(((CreateForeignTableStmt *) parsetree)->servername, "stream_ext") == 0;
	if (IsA(parsetree, CreateStmt))
		check_stream_create((CreateStmt *) parsetree, false);
	if (IsA(parsetree, CreateForeignTableStmt))
		check_stream_create(&((CreateForeignTableStmt *) parsetree)->base, creates_stream);
	if (creates_stream)
	{
		if (readOnlyTree)
		{
			pstmt = copyObject(pstmt);
			parsetree = pstmt->utilityStmt;
			readOnlyTree = false;
		}
		add_arrival_timestamp((CreateForeignTableStmt *) parsetree);
	}

	if (IsA(parsetree, AlterTableStmt) || IsA(parsetree, RenameStmt))
		check_stream_alter(parsetree);
	if (IsA(parsetree, AlterTableStmt))
		check_continuous_view_options((AlterTableStmt *) parsetree);
	if (IsA(parsetree, AlterTableStmt) || IsA(parsetree, CreateTrigStmt) ||
		IsA(parsetree, RenameStmt))
		check_change_stream_ddl(parsetree);
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		stream_insert_finishing_prepared();

	if (IsA(parsetree, DropdbStmt))
		quiet_db = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		quiet_db = get_database_oid(((RenameStmt *) parsetree)->subname, true);
	else if (IsA(parsetree, AlterDatabaseStmt) &&
			 moves_database((AlterDatabaseStmt *) parsetree))
		quiet_db = get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true);
	else if (IsA(parsetree, CreatedbStmt))
		quiet_db = template_database((CreatedbStmt *) parsetree);
	else if (IsA(parsetree, DropStmt) && drops_stream_ext((DropStmt *) parsetree))
		quiet_db = MyDatabaseId;	/* its lock walk could deadlock with them */
	if (OidIsValid(quiet_db) && !may_quiet_database(parsetree, quiet_db))
		quiet_db = InvalidOid;	/* PostgreSQL refuses the command */

	if (OidIsValid(quiet_db) && StreamShared != NULL)
	{
		PlannedStmt *volatile stmt = pstmt;
		volatile bool read_only = readOnlyTree;

		stream_stop_database(quiet_db);
		PG_TRY();
		{
			run_next_hook(stmt, queryString, read_only, context, params, queryEnv, dest, qc);
		}
		PG_FINALLY();
		{
			stream_resume_database(quiet_db);
		}
		PG_END_TRY();
		return;
	}

	run_keeping_drop_behavior(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							  dest, qc);
	stream_guard_check_links(check_links);

	/* the views' text names what they read as it is now (pg_dump takes it) */
	if (IsA(parsetree, RenameStmt) || IsA(parsetree, AlterObjectSchemaStmt) ||
		(IsA(parsetree, AlterEnumStmt) && ((AlterEnumStmt *) parsetree)->oldVal != NULL))
		stream_refresh_view_definitions();

	if (IsA(parsetree, AlterTableStmt) && changes_owner((AlterTableStmt *) parsetree))
	{
		Oid			relid = RangeVarGetRelid(((AlterTableStmt *) parsetree)->relation,
											 NoLock, true);

		if (OidIsValid(relid))
			stream_follow_view_owner(relid);
	}
}

void
stream_utility_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = stream_ProcessUtility;
}
