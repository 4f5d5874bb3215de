/*
 * delta_writes.c
 *	  Rows written into a delta table by a statement, not by a batch worker.
 *
 * Batch workers raise the pending-key slot of every delta row they write
 * (ipc/pending_keys.c); a statement that writes one itself does not: a
 * restore's COPY (its writer read back as frozen, agg/writer_xact.c), or
 * the owner's INSERT, UPDATE or MERGE.  Reads of one group would skip those
 * rows until the combiner merged them, so such a statement's transaction
 * is counted (stream_pending_keys_unnoted_write) before it writes: while it
 * runs every key may have deltas, and its commit drops the cleared ids of
 * its database.  The workers and the combiner do not go through here (they
 * write with table_multi_insert, or only delete), but for the combiner's
 * settling of writers, an UPDATE of rows whose keys were noted, which
 * ipc/pending_keys.c does not count.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "utils/acl.h"

#include "catalog/catalog.h"
#include "ddl/delta_writes.h"
#include "ipc/pending_keys.h"

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

/*
 * A COPY FROM into a delta table is about to run: counted if the role may
 * insert into it (else the COPY fails, and counts for nothing)
 */
void
stream_note_delta_copy(CopyStmt *stmt)
{
	Oid			relid;

	if (!stmt->is_from || stmt->relation == NULL)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (OidIsValid(relid) && stream_is_view_relation(relid, VIEW_DELTA_TABLE) &&
		(pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) == ACLCHECK_OK ||
		 pg_attribute_aclcheck_all(relid, GetUserId(), ACL_INSERT, ACLMASK_ANY) == ACLCHECK_OK))
		stream_pending_keys_unnoted_write();
}

/*
 * Does plan (the root of a statement's plan or of one of its subplans, where
 * a ModifyTable is, a WITH's too) insert, update or merge into a delta
 * table?  Deletes are the combiner's and the Kafka sink's: they leave no row.
 */
static bool
writes_delta_rows(Plan *plan, PlannedStmt *stmt)
{
	ModifyTable *modify = (ModifyTable *) plan;
	ListCell   *lc;

	if (plan == NULL || !IsA(plan, ModifyTable) || modify->operation == CMD_DELETE)
		return false;
	foreach(lc, modify->resultRelations)
		if (stream_is_view_relation(rt_fetch(lfirst_int(lc), stmt->rtable)->relid,
									VIEW_DELTA_TABLE))
			return true;
	return false;
}

/*
 * ExecutorStart_hook: a statement that writes rows into a delta table, once
 * its privileges were checked (a role that may not write there counts for
 * nothing); it writes no row before it runs.
 */
static void
delta_writes_executor_start(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (stmt->resultRelations != NIL && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		bool		writes = writes_delta_rows(stmt->planTree, stmt);
		ListCell   *lc;

		foreach(lc, stmt->subplans)
			writes = writes || writes_delta_rows(lfirst(lc), stmt);
		if (writes)
			stream_pending_keys_unnoted_write();
	}
}

void
stream_delta_writes_init(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = delta_writes_executor_start;
}
