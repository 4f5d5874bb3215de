/*
 * table_insert.c
 *	  Rows of a transform inserted straight into its output table, for a
 *	  writer applying its own events (writer_apply.c).
 *
 * The receiver takes the rows of the transform's plan (the writer, then the
 * columns the transform fills, already of the output's types: ddl/
 * transform.c fits them at CREATE), fills the output's other columns with
 * their defaults, checks NOT NULL and CHECK constraints, and inserts them
 * as COPY FROM does: in groups by table_multi_insert (one WAL record per
 * page filled), then each row into the table's indexes, whose unique and
 * exclusion constraints are checked there.
 *
 * Only what this covers may use it (stream_table_insert_direct): a plain
 * table, not a partition, without triggers, rules, row-level security or
 * generated columns, that the transform's owner may insert into.  Others
 * go through the workers' staging and the combiner's INSERT (combiner.c).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "stream/insert.h"
#include "worker/table_insert.h"

/* Rows inserted at once, as COPY FROM does */
#define TABLE_INSERT_ROWS	1000
#define TABLE_INSERT_BYTES	(1024 * 1024)

typedef struct TableInsertReceiver
{
	DestReceiver pub;
	Oid			relid;
	MemoryContext cxt;			/* the receiver's maker's */
	MemoryContext flush_cxt;	/* stream_multi_insert's scratch */
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	AttrNumber *target;			/* for each row column but the writer: its
								 * attribute number in the table */
	int			ntarget;
	ExprState **defaults;		/* per table column: its default, or NULL */
	Datum	   *values;
	bool	   *isnull;
	TupleTableSlot **slots;		/* TABLE_INSERT_ROWS, made as needed */
	int			nslots;
	int			nbuffered;
	Size		buffered_bytes;
	BulkInsertState bistate;
	CommandId	cid;
} TableInsertReceiver;

/*
 * Is rel a table this receiver covers, that owner may insert into?  The
 * receiver asks again once it holds its lock (table_insert_startup): a
 * trigger, a rule or row security added, or the privilege revoked, since
 * the writer decided (a function of its statement may do it, another
 * session too) must not be bypassed.
 */
static bool
table_takes_rows(Relation rel, Oid owner)
{
	Form_pg_class form = rel->rd_rel;
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConstr *constr = desc->constr;

	/* an identity column made GENERATED ALWAYS since: INSERT refuses it */
	for (int i = 0; i < desc->natts; i++)
		if (TupleDescAttr(desc, i)->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			return false;
	return form->relkind == RELKIND_RELATION && !form->relispartition &&
		rel->trigdesc == NULL && !form->relhasrules && !form->relrowsecurity &&
		!(constr != NULL && constr->has_generated_stored) &&
		pg_class_aclcheck(RelationGetRelid(rel), owner, ACL_INSERT) == ACLCHECK_OK;
}

/*
 * Can the transform's rows go straight into table (for owner, filling its
 * first ncolumns columns) through this receiver?
 */
bool
stream_table_insert_direct(Oid table, Oid owner, int ncolumns)
{
	Relation	rel = table_open(table, AccessShareLock);
	bool		ok;

	ok = table_takes_rows(rel, owner) &&
		list_length(stream_output_columns(rel)) >= ncolumns;
	table_close(rel, AccessShareLock);
	return ok;
}

/* The range table entry of the insert (what errors of constraints show) */
static RangeTblEntry *
insert_rte(Relation rel, List *attnos)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	ListCell   *lc;

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	foreach(lc, attnos)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	return rte;
}

static void
table_insert_startup(DestReceiver *self, int operation, TupleDesc rows)
{
	TableInsertReceiver *r = (TableInsertReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	TupleDesc	desc;
	List	   *attnos;
	bool	   *filled;
	int			natts;

	r->rel = table_open(r->relid, RowExclusiveLock);
	if (!table_takes_rows(r->rel, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" no longer takes the rows of its transform directly",
						RelationGetRelationName(r->rel)),
				 errdetail("A trigger, a rule or row security was added to it, or the privilege to insert into it revoked, since the statement began."),
				 errhint("The workers apply the statement's events to the transform instead.")));
	desc = RelationGetDescr(r->rel);
	natts = desc->natts;
	attnos = stream_output_columns(r->rel);
	r->ntarget = rows->natts - 1;
	if (r->ntarget < 1 || r->ntarget > list_length(attnos))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("table \"%s\" no longer fits its transform",
						RelationGetRelationName(r->rel))));
	r->target = palloc(sizeof(AttrNumber) * r->ntarget);
	filled = palloc0(sizeof(bool) * natts);
	for (int i = 0; i < r->ntarget; i++)
	{
		AttrNumber	attno = list_nth_int(attnos, i);
		Form_pg_attribute att = TupleDescAttr(desc, attno - 1);

		if (att->atttypid != TupleDescAttr(rows, i + 1)->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" no longer fits its transform",
							NameStr(att->attname), RelationGetRelationName(r->rel))));
		r->target[i] = attno;
		filled[attno - 1] = true;
	}

	r->estate = CreateExecutorState();
	r->estate->es_snapshot = GetActiveSnapshot();
	ExecInitRangeTable(r->estate, list_make1(insert_rte(r->rel, list_truncate(attnos, r->ntarget))));
	r->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(r->rri, r->rel, 1, NULL, 0);
	ExecOpenIndices(r->rri, false);

	/* the columns the transform does not fill get their defaults */
	r->defaults = palloc0(sizeof(ExprState *) * natts);
	for (int i = 0; i < natts; i++)
	{
		Node	   *expr;

		if (filled[i] || TupleDescAttr(desc, i)->attisdropped)
			continue;
		expr = build_column_default(r->rel, i + 1);
		if (expr != NULL)
			r->defaults[i] = ExecPrepareExpr((Expr *) expr, r->estate);
	}
	r->values = palloc(sizeof(Datum) * natts);
	r->isnull = palloc(sizeof(bool) * natts);
	r->slots = palloc0(sizeof(TupleTableSlot *) * TABLE_INSERT_ROWS);
	r->bistate = GetBulkInsertState();
	r->cid = GetCurrentCommandId(true);
	MemoryContextSwitchTo(old);
}

/*
 * table_multi_insert of slots[0 .. n - 1] into rel, in scratch, which is
 * reset after: heap_multi_insert leaves its array of the rows (and the
 * copies it toasts) in the current context, which for the receivers of a
 * kept executor lives as long as the executor (8 bytes a row, for good).
 */
void
stream_multi_insert(Relation rel, TupleTableSlot **slots, int n, CommandId cid,
					BulkInsertState bistate, MemoryContext scratch)
{
	MemoryContext old = MemoryContextSwitchTo(scratch);

	table_multi_insert(rel, slots, n, cid, 0, bistate);
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
}

/* Insert the buffered rows, then their index entries. */
static void
table_insert_flush(TableInsertReceiver *r)
{
	if (r->nbuffered == 0)
		return;
	stream_multi_insert(r->rel, r->slots, r->nbuffered, r->cid, r->bistate, r->flush_cxt);
	for (int i = 0; i < r->nbuffered; i++)
	{
		if (r->rri->ri_NumIndices > 0)
		{
			List	   *recheck;

			ResetPerTupleExprContext(r->estate);
			recheck = ExecInsertIndexTuples(r->rri, r->slots[i], r->estate, false, false,
											NULL, NIL);
			list_free(recheck);
		}
		ExecClearTuple(r->slots[i]);
	}
	r->nbuffered = 0;
	r->buffered_bytes = 0;
}

static bool
table_insert_receive(TupleTableSlot *in, DestReceiver *self)
{
	TableInsertReceiver *r = (TableInsertReceiver *) self;
	TupleDesc	desc = RelationGetDescr(r->rel);
	ExprContext *econtext = GetPerTupleExprContext(r->estate);
	MemoryContext old;
	TupleTableSlot *slot;
	HeapTuple	tuple;

	slot_getallattrs(in);
	ResetPerTupleExprContext(r->estate);
	for (int i = 0; i < desc->natts; i++)
	{
		r->isnull[i] = true;
		r->values[i] = (Datum) 0;
		if (r->defaults[i] != NULL)
			r->values[i] = ExecEvalExprSwitchContext(r->defaults[i], econtext, &r->isnull[i]);
	}
	for (int i = 0; i < r->ntarget; i++)
	{
		r->values[r->target[i] - 1] = in->tts_values[i + 1];
		r->isnull[r->target[i] - 1] = in->tts_isnull[i + 1];
	}

	old = MemoryContextSwitchTo(r->cxt);
	if (r->nbuffered == r->nslots)
		r->slots[r->nslots++] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	slot = r->slots[r->nbuffered];
	tuple = heap_form_tuple(desc, r->values, r->isnull);
	ExecStoreHeapTuple(tuple, slot, true);
	MemoryContextSwitchTo(old);

	if (desc->constr != NULL)
		ExecConstraints(r->rri, slot, r->estate);
	r->nbuffered++;
	r->buffered_bytes += tuple->t_len;
	if (r->nbuffered == TABLE_INSERT_ROWS || r->buffered_bytes >= TABLE_INSERT_BYTES)
		table_insert_flush(r);
	return true;
}

static void
table_insert_shutdown(DestReceiver *self)
{
	TableInsertReceiver *r = (TableInsertReceiver *) self;

	table_insert_flush(r);
	FreeBulkInsertState(r->bistate);
	r->bistate = NULL;
	ExecCloseIndices(r->rri);
	ExecResetTupleTable(r->estate->es_tupleTable, false);
	FreeExecutorState(r->estate);
	r->estate = NULL;
	for (int i = 0; i < r->nslots; i++)
		ExecDropSingleTupleTableSlot(r->slots[i]);
	r->nslots = 0;
	table_close(r->rel, NoLock);
	r->rel = NULL;
}

static void
table_insert_destroy(DestReceiver *self)
{
	MemoryContextDelete(((TableInsertReceiver *) self)->flush_cxt);
	pfree(self);
}

/*
 * A receiver inserting a transform's rows into table; the caller checked
 * stream_table_insert_direct.  Its memory is the caller's context.
 */
DestReceiver *
stream_table_insert_receiver(Oid table)
{
	TableInsertReceiver *r = palloc0(sizeof(TableInsertReceiver));

	r->pub.receiveSlot = table_insert_receive;
	r->pub.rStartup = table_insert_startup;
	r->pub.rShutdown = table_insert_shutdown;
	r->pub.rDestroy = table_insert_destroy;
	r->pub.mydest = DestNone;
	r->relid = table;
	r->cxt = CurrentMemoryContext;
	r->flush_cxt = AllocSetContextCreate(r->cxt, "stream_ext table insert", ALLOCSET_DEFAULT_SIZES);
	return (DestReceiver *) r;
}
