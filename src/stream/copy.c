/*
 * copy.c
 *	  COPY ... FROM into a stream, without the executor's per-row insert path.
 *
 * The executor's COPY into a foreign table goes row by row through
 * ExecForeignInsert, after forming each row once more to compute the
 * generated arrival_timestamp column.  For a stream without triggers and
 * without COPY's WHERE clause, we read the rows with PostgreSQL's own COPY
 * parser (BeginCopyFrom/NextCopyFrom, the API file_fdw uses) and form each
 * event once, directly in the writer's buffer.  Everything else about the
 * statement (options, formats, permissions, errors) is as for COPY.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/defrem.h"
#include "commands/progress.h"
#include "pgstat.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "parser/parse_node.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "stream/column_fill.h"
#include "stream/copy.h"
#include "stream/fast_input.h"
#include "stream/fdw.h"
#include "stream/insert.h"

/* The checks DoCopy makes before copying from a file or program, and INSERT rights. */
static void
check_copy_permissions(CopyStmt *stmt, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *attnums;
	ListCell   *lc;

	if (stmt->filename != NULL)
	{
		if (stmt->is_program &&
			!has_privs_of_role(GetUserId(), ROLE_PG_EXECUTE_SERVER_PROGRAM))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"),
					 errhint("Anyone can COPY to stdout or from stdin. psql's \\copy command also works for anyone.")));
		if (!stmt->is_program &&
			!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be superuser or have privileges of the pg_read_server_files role to COPY from a file"),
					 errhint("Anyone can COPY to stdout or from stdin. psql's \\copy command also works for anyone.")));
	}

	if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_INSERT) == ACLCHECK_OK)
		return;
	attnums = CopyGetAttnums(desc, rel, stmt->attlist);
	foreach(lc, attnums)
	{
		AttrNumber	attnum = lfirst_int(lc);

		if (pg_attribute_aclcheck(RelationGetRelid(rel), attnum, GetUserId(),
								  ACL_INSERT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FOREIGN_TABLE,
						   RelationGetRelationName(rel));
	}
}

/*
 * Give COPY's text and csv parsing the exact shortcuts of fast_input.c for
 * event-time columns.  The input functions live in the COPY state, one per
 * attribute, set up by BeginCopyFrom.
 */
static void
use_fast_input(CopyFromState cstate, TupleDesc desc)
{
	if (cstate->opts.binary)
		return;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			stream_fast_input_install(&cstate->in_functions[i], att->atttypid);
	}
}

/* Do COPY's options ask for FREEZE? */
static bool
asks_freeze(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "freeze") == 0 && defGetBoolean(def))
			return true;
	}
	return false;
}

/*
 * Is this a COPY FROM into a stream that stream_copy_from runs?  A stream
 * with triggers or generated columns (the executor computes them), a COPY
 * with WHERE and COPY TO go PostgreSQL's way.
 */
bool
stream_copy_handles(CopyStmt *stmt)
{
	Oid			relid;
	Relation	rel;
	bool		handles;

	if (!stmt->is_from || stmt->relation == NULL || stmt->whereClause != NULL)
		return false;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid) || !stream_is_stream_relation(relid))
		return false;
	rel = table_open(relid, RowExclusiveLock);
	/* (FREEZE and constraints are refused and checked by COPY's own path) */
	handles = (rel->trigdesc == NULL && !stream_has_generated_columns(rel) &&
			   !stream_has_constraints(rel) && !asks_freeze(stmt->options));
	table_close(rel, NoLock);
	return handles;
}

/*
 * Run a COPY FROM into a stream (stream_copy_handles said yes); returns
 * the number of events copied.
 */
uint64
stream_copy_from(CopyStmt *stmt, const char *queryString)
{
	Oid			relid;
	Relation	rel;
	ParseState *pstate;
	CopyFromState cstate;
	EState	   *estate;
	ExprContext *econtext;
	Datum	   *values;
	bool	   *nulls;
	int			arrival_attno;
	ErrorContextCallback errcallback;
	MemoryContext oldcxt;
	uint64		count = 0;

	relid = RangeVarGetRelid(stmt->relation, RowExclusiveLock, false);
	if (!stream_is_stream_relation(relid))
		elog(ERROR, "\"%s\" is not a stream", stmt->relation->relname);
	rel = table_open(relid, RowExclusiveLock);

	PreventCommandIfReadOnly("COPY FROM");
	PreventCommandIfParallelMode("COPY FROM");
	check_copy_permissions(stmt, rel);
	stream_admit_writer(rel);

	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = queryString;
	cstate = BeginCopyFrom(pstate, rel, NULL, stmt->filename, stmt->is_program,
						   NULL, stmt->attlist, stmt->options);

	use_fast_input(cstate, RelationGetDescr(rel));

	estate = CreateExecutorState();
	econtext = GetPerTupleExprContext(estate);
	values = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	nulls = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	arrival_attno = stream_arrival_attno(rel);

	errcallback.callback = CopyFromErrorCallback;
	errcallback.arg = (void *) cstate;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	for (;;)
	{
		bool		found;

		CHECK_FOR_INTERRUPTS();
		ResetPerTupleExprContext(estate);
		oldcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
		found = NextCopyFrom(cstate, econtext, values, nulls);
		if (found)
			stream_insert_values(rel, values, nulls, arrival_attno);
		MemoryContextSwitchTo(oldcxt);
		if (!found)
			break;
		/* pg_stat_progress_copy, as COPY into a table reports it */
		pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, ++count);
	}

	error_context_stack = errcallback.previous;
	EndCopyFrom(cstate);
	stream_insert_statement_done();
	FreeExecutorState(estate);
	free_parsestate(pstate);
	table_close(rel, NoLock);
	return count;
}
