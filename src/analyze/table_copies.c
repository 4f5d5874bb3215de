/*
 * table_copies.c
 *	  Lookups of a joined table in a view's batch plan, answered from a copy
 *	  of the table a worker keeps in memory while the table does not change.
 *
 * A view that joins its stream with a table is planned, like any query, as a
 * nested loop probing the table's index once per event: about 1.3 us per
 * event, six times what the rest of a simple view costs.  Hashing the table
 * once per batch costs as much as the probes (a batch holds 20,000 events, a
 * reference table often more rows).  What pays is a hash of the table built
 * once and kept for the batches that follow, if it can be told exactly when
 * it no longer holds what a batch's snapshot sees.  That test:
 *
 * - At the build, with snapshot S1, every tuple on every page (visible or
 *   not) must be settled: its inserting and its deleting transaction (if
 *   any, lock-only ones aside) finished as S1 sees it (committed or
 *   aborted), or frozen.  The copy notes those transactions (the newest,
 *   and up to 64 of them), each page's LSN read under the page's lock, the
 *   relation's number of blocks and its file node.
 * - A later batch's snapshot S2 sees every noted transaction finished too
 *   (all precede its xmin, or none is in progress for it), and finds the
 *   same file node, the same number of blocks and every page at the same
 *   LSN.  Every change to a page of a permanent heap relation is WAL-logged
 *   and moves its LSN (hint bits and the all-visible flag aside, which
 *   change no answer), so the pages hold the same tuples, written by the
 *   same transactions, which S1 and S2 both see finished, with the same
 *   outcome: S2 sees what S1 saw.  A change made after the build moved the
 *   LSN of its page, whether it has committed or not.
 * A copy whose build found an unsettled tuple serves only the batch that
 * built it.
 *
 * The plan keeps the index scan as its child, and uses it whenever the copy
 * is not worth its cost or not allowed: the copy is built when the index
 * probes made since the last usable copy (counted, plus this batch's events)
 * reach a quarter of the table's rows, checked only by batches with at least
 * an eighth as many events as the table has pages, and never beyond
 * stream_ext.join_cache_size per worker (least recently used copies go
 * first).  A build gives up (and the index answers) past that size or past a
 * quarter of stream_ext.view_time_limit, so that it never costs the view its
 * batch; after a build that gave up or failed, the table is not copied again
 * until its size changes.  A copy in use by the current transaction is never
 * rebuilt or evicted: its rows may be in a slot of an executor still running.
 *
 * What is rewritten (table_copies_in_plan): an index scan that is the inner
 * side of a nested loop (or under its Memoize), with one index condition
 * `column op expression` where op is strict with hash support, the
 * expression reads no column of the table (the nested loop's parameters),
 * on a permanent heap table without row security, through an index without
 * a predicate, reading no system column.  The custom scan's filter is the
 * index condition and the scan's own filter: a copy finds the tuples of the
 * probed value's hash, the filter keeps the equal ones.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_am_d.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/nodeCustom.h"
#include "nodes/extensible.h"
#include "nodes/nodeFuncs.h"
#include "miscadmin.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "storage/bufmgr.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "analyze/table_copies.h"
#include "guc.h"
#include "stream/fdw.h"

#define TABLE_COPY_SCAN_NAME "Table Copy Lookup"

/* Building a copy per row costs about a quarter of an index probe ... */
#define PROBES_PER_ROW_BUILT 4
/* ... and checking it per page an eighth of one. */
#define PROBES_PER_PAGE_CHECKED 8

/* Transactions noted per copy, beyond which all must precede a snapshot's xmin */
#define MAX_NOTED_XIDS 64

/* What a copy is of: a table, hashed on one column by one hash function. */
typedef struct CopyKey
{
	Oid			relid;
	AttrNumber	attno;
	Oid			hash_fn;
	Oid			collation;
} CopyKey;

/*
 * The hash table: open addressing, linear probing, at most half full, each
 * entry a row's hash and number, so that a lookup touches one cache line of
 * it and then the row's.
 */
typedef struct CopyEntry
{
	uint32		hash;
	int32		row;			/* -1: empty */
} CopyEntry;

/* a copied tuple while building */
typedef struct CopiedTuple
{
	HeapTupleData tuple;		/* data in a block of the copy's context */
	uint32		hash;
	bool		null_key;
} CopiedTuple;

typedef struct TableCopy
{
	CopyKey		key;
	MemoryContext cxt;			/* everything below; NULL: no copy */
	RelFileNode node;
	BlockNumber nblocks;
	XLogRecPtr *lsns;			/* of each page, read at the build */
	TransactionId max_xid;		/* newest transaction that wrote a tuple */
	TransactionId xids[MAX_NOTED_XIDS]; /* the transactions that did */
	int			nxids;			/* how many, or -1 if too many to note */
	bool		reusable;		/* every tuple was settled at the build */
	int			ntuples;
	int			natts;			/* columns of each tuple, deformed once */
	Size		row_size;		/* a row: natts Datums, then natts isnull flags */
	char	   *rows;			/* ntuples rows; by-reference values point
								 * into the copied tuples */
	CopyEntry  *entries;
	uint32		mask;			/* entries - 1 */
	Size		bytes;
	double		probes_owed;	/* index probes since a copy was last usable */
	BlockNumber failed_at;		/* nblocks at which a build failed or overflowed */
	bool		building;		/* a build is under way (a hash function or a
								 * detoast ran SQL that looks the table up) */
	LocalTransactionId used_lxid;	/* last transaction that used the copy */
	uint64		used_tick;		/* for least recently used */
} TableCopy;

static MemoryContext copies_cxt = NULL;
static List *copies = NIL;
static Size copies_bytes = 0;
static uint64 copies_tick = 0;

typedef struct TableCopyScanState
{
	CustomScanState css;
	CopyKey		key;
	ExprState  *probe;			/* the value looked up */
	FmgrInfo	probe_hash;		/* its hash function */
	PlanState  *index_scan;		/* the plan's own lookup */
	TableCopy  *copy;			/* the registry's entry for the key */
	bool		use_copy;		/* this run reads it */
	bool		positioned;		/* hash computed for the current probe */
	uint32		hash;
	uint32		next;			/* next entry to look at */
	bool		done;			/* no more candidates for this probe */
	double		index_probes;	/* through the index in this run */
} TableCopyScanState;

static Node *create_table_copy_scan_state(CustomScan *cscan);
static void begin_table_copy_scan(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *exec_table_copy_scan(CustomScanState *node);
static void end_table_copy_scan(CustomScanState *node);
static void rescan_table_copy_scan(CustomScanState *node);
static void explain_table_copy_scan(CustomScanState *node, List *ancestors,
									ExplainState *es);

static const CustomScanMethods table_copy_plan_methods = {
	.CustomName = TABLE_COPY_SCAN_NAME,
	.CreateCustomScanState = create_table_copy_scan_state,
};

static const CustomExecMethods table_copy_exec_methods = {
	.CustomName = TABLE_COPY_SCAN_NAME,
	.BeginCustomScan = begin_table_copy_scan,
	.ExecCustomScan = exec_table_copy_scan,
	.EndCustomScan = end_table_copy_scan,
	.ReScanCustomScan = rescan_table_copy_scan,
	.ExplainCustomScan = explain_table_copy_scan,
};

void
stream_table_copies_init(void)
{
	RegisterCustomScanMethods(&table_copy_plan_methods);
}

/* ---- the plan ---- */

static bool
reads_system_column_walker(Node *node, Index *scanrelid)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return ((Var *) node)->varno == *scanrelid && ((Var *) node)->varattno < 0;
	return expression_tree_walker(node, reads_system_column_walker, scanrelid);
}

/*
 * Can values of the expression's type be hashed?  The hash operator family
 * of arrays, records and ranges holds their equality whatever the element
 * types, whose hash functions may be missing (money[]); the type cache
 * knows, as for a hash join.
 */
static bool
hashable_input(Node *expr)
{
	TypeCacheEntry *tc = lookup_type_cache(exprType(expr), TYPECACHE_HASH_PROC);

	return OidIsValid(tc->hash_proc);
}

static Node *
strip_relabel(Node *node)
{
	while (node != NULL && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node;
}

/*
 * The custom scan standing for an index scan that a table copy can answer,
 * or NULL if it cannot (see the header comment).
 */
static CustomScan *
table_copy_scan_for(IndexScan *is, PlannedStmt *pstmt, int *last_node_id)
{
	Index		scanrelid = is->scan.scanrelid;
	RangeTblEntry *rte = rt_fetch(scanrelid, pstmt->rtable);
	OpExpr	   *clause;
	Node	   *left,
			   *right,
			   *probe;
	Var		   *column;
	Oid			left_hash,
				right_hash;
	Relation	rel,
				index;
	bool		fits;
	CustomScan *cs;

	if (is->indexorderby != NIL || list_length(is->indexqualorig) != 1 ||
		rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_RELATION)
		return NULL;
	clause = (OpExpr *) linitial(is->indexqualorig);
	if (!IsA(clause, OpExpr) || list_length(clause->args) != 2)
		return NULL;
	left = strip_relabel(linitial(clause->args));
	right = strip_relabel(lsecond(clause->args));
	if (IsA(left, Var) && ((Var *) left)->varno == scanrelid)
	{
		column = (Var *) left;
		probe = lsecond(clause->args);
	}
	else if (IsA(right, Var) && ((Var *) right)->varno == scanrelid)
	{
		column = (Var *) right;
		probe = linitial(clause->args);
	}
	else
		return NULL;
	if (column->varattno <= 0 || column->varlevelsup != 0 ||
		contain_var_clause(probe) || contain_volatile_functions(probe) ||
		contain_subplans(probe) || contain_subplans((Node *) is->scan.plan.qual) ||
		reads_system_column_walker((Node *) is->scan.plan.targetlist, &scanrelid) ||
		reads_system_column_walker((Node *) is->scan.plan.qual, &scanrelid) ||
		!op_strict(clause->opno) ||
		!get_op_hash_functions(clause->opno, &left_hash, &right_hash) ||
		!hashable_input(linitial(clause->args)) || !hashable_input(lsecond(clause->args)))
		return NULL;

	rel = relation_open(rte->relid, AccessShareLock);
	index = relation_open(is->indexid, AccessShareLock);
	/* not a catalog: in-place updates change its pages without a commit */
	fits = rel->rd_rel->relam == HEAP_TABLE_AM_OID &&
		RelationGetRelid(rel) >= FirstUnpinnedObjectId &&
		rel->rd_rel->relpersistence == RELPERSISTENCE_PERMANENT &&
		!rel->rd_rel->relrowsecurity &&
		RelationGetIndexPredicate(index) == NIL;
	relation_close(index, AccessShareLock);
	relation_close(rel, AccessShareLock);
	if (!fits)
		return NULL;

	cs = makeNode(CustomScan);
	cs->scan.plan = is->scan.plan;
	cs->scan.plan.type = T_CustomScan;
	cs->scan.plan.targetlist = copyObject(is->scan.plan.targetlist);
	cs->scan.plan.qual = list_concat(copyObject(is->indexqualorig),
									 copyObject(is->scan.plan.qual));
	cs->scan.plan.plan_node_id = ++(*last_node_id);
	cs->scan.plan.parallel_aware = false;
	cs->scan.plan.initPlan = NIL;	/* the child's, if any */
	cs->scan.scanrelid = scanrelid;
	cs->custom_plans = list_make1(is);
	cs->custom_exprs = list_make1(copyObject(probe));
	cs->custom_private = list_make4(makeInteger(column->varattno),
									makeInteger((int) (column == (Var *) left ?
													   left_hash : right_hash)),
									makeInteger((int) (column == (Var *) left ?
													   right_hash : left_hash)),
									makeInteger((int) clause->inputcollid));
	cs->custom_relids = bms_make_singleton(scanrelid);
	cs->methods = &table_copy_plan_methods;
	return cs;
}

/* Visit every node of a plan tree, each after the nodes below it */
static void
visit_plan_tree(Plan *plan, void (*visit) (Plan *plan, void *arg), void *arg)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	visit_plan_tree(plan->lefttree, visit, arg);
	visit_plan_tree(plan->righttree, visit, arg);
	if (IsA(plan, Append))
		foreach(lc, ((Append *) plan)->appendplans)
			visit_plan_tree(lfirst(lc), visit, arg);
	else if (IsA(plan, MergeAppend))
		foreach(lc, ((MergeAppend *) plan)->mergeplans)
			visit_plan_tree(lfirst(lc), visit, arg);
	else if (IsA(plan, SubqueryScan))
		visit_plan_tree(((SubqueryScan *) plan)->subplan, visit, arg);
	visit(plan, arg);
}

static void
note_plan_node_id(Plan *plan, void *arg)
{
	int		   *last_node_id = arg;

	*last_node_id = Max(*last_node_id, plan->plan_node_id);
}

/* The inner side of a nested loop, rewritten if a table copy can answer it */
static Plan *
inner_lookup(Plan *inner, PlannedStmt *pstmt, int *last_node_id)
{
	CustomScan *cs;

	if (IsA(inner, Memoize) && IsA(inner->lefttree, IndexScan))
	{
		cs = table_copy_scan_for((IndexScan *) inner->lefttree, pstmt, last_node_id);
		if (cs != NULL)
			inner->lefttree = (Plan *) cs;
		return inner;
	}
	if (IsA(inner, IndexScan))
	{
		cs = table_copy_scan_for((IndexScan *) inner, pstmt, last_node_id);
		if (cs != NULL)
			return (Plan *) cs;
	}
	return inner;
}

typedef struct RewriteContext
{
	PlannedStmt *pstmt;
	int			last_node_id;	/* of the plan, and of the nodes added */
} RewriteContext;

static void
rewrite_nested_loop(Plan *plan, void *arg)
{
	RewriteContext *cxt = arg;

	if (IsA(plan, NestLoop))
		plan->righttree = inner_lookup(plan->righttree, cxt->pstmt, &cxt->last_node_id);
}

/*
 * Rewrite, in place, the index lookups of a worker's batch plan that a copy
 * of their table kept across batches can answer.  Plans that lock rows or
 * run in parallel are left as they are.
 */
void
stream_table_copies_in_plan(PlannedStmt *pstmt)
{
	RewriteContext cxt = {pstmt, -1};
	ListCell   *lc;

	if (pstmt->rowMarks != NIL || pstmt->parallelModeNeeded)
		return;
	visit_plan_tree(pstmt->planTree, note_plan_node_id, &cxt.last_node_id);
	foreach(lc, pstmt->subplans)
		visit_plan_tree(lfirst(lc), note_plan_node_id, &cxt.last_node_id);
	visit_plan_tree(pstmt->planTree, rewrite_nested_loop, &cxt);
}

/* ---- the copies ---- */

/*
 * Did the transaction that wrote xid finish before the snapshot was taken?
 * If so, note it in the copy.
 */
static bool
xid_settled(TableCopy *copy, TransactionId xid, Snapshot snapshot)
{
	if (!TransactionIdIsNormal(xid))
		return true;
	if (TransactionIdIsCurrentTransactionId(xid) || XidInMVCCSnapshot(xid, snapshot))
		return false;
	if (!TransactionIdIsValid(copy->max_xid) || TransactionIdFollows(xid, copy->max_xid))
		copy->max_xid = xid;
	if (copy->nxids >= 0)
	{
		for (int i = copy->nxids - 1; i >= 0; i--)
			if (copy->xids[i] == xid)
				return true;
		if (copy->nxids == MAX_NOTED_XIDS)
			copy->nxids = -1;
		else
			copy->xids[copy->nxids++] = xid;
	}
	return true;
}

/* Will every snapshot that sees its writers finished see the tuple as snapshot does? */
static bool
tuple_settled(TableCopy *copy, HeapTupleHeader tuple, Snapshot snapshot)
{
	uint16		infomask = tuple->t_infomask;

	if (!HeapTupleHeaderXminFrozen(tuple) && !HeapTupleHeaderXminInvalid(tuple) &&
		!xid_settled(copy, HeapTupleHeaderGetRawXmin(tuple), snapshot))
		return false;
	if ((infomask & HEAP_XMAX_INVALID) || HEAP_XMAX_IS_LOCKED_ONLY(infomask))
		return true;
	if (infomask & HEAP_XMAX_IS_MULTI)
		return false;
	return xid_settled(copy, HeapTupleHeaderGetRawXmax(tuple), snapshot);
}

/* Does snapshot see every transaction that wrote a tuple of the copy finished? */
static bool
writers_settled(TableCopy *copy, Snapshot snapshot)
{
	if (!TransactionIdIsValid(copy->max_xid) ||
		TransactionIdPrecedes(copy->max_xid, snapshot->xmin))
		return true;
	if (copy->nxids < 0)
		return false;
	for (int i = 0; i < copy->nxids; i++)
		if (TransactionIdIsCurrentTransactionId(copy->xids[i]) ||
			XidInMVCCSnapshot(copy->xids[i], snapshot))
			return false;
	return true;
}

static void
forget_copy(TableCopy *copy)
{
	if (copy->cxt != NULL)
	{
		copies_bytes -= copy->bytes;
		MemoryContextDelete(copy->cxt);
	}
	copy->cxt = NULL;
	copy->lsns = NULL;
	copy->rows = NULL;
	copy->entries = NULL;
	copy->bytes = 0;
}

/* Make room for bytes more, forgetting copies no transaction uses now. */
static bool
make_room(Size bytes, Size limit, TableCopy *keep)
{
	while (copies_bytes + bytes > limit)
	{
		TableCopy  *oldest = NULL;
		ListCell   *lc;

		foreach(lc, copies)
		{
			TableCopy  *c = lfirst(lc);

			if (c != keep && c->cxt != NULL && c->used_lxid != MyProc->lxid &&
				(oldest == NULL || c->used_tick < oldest->used_tick))
				oldest = c;
		}
		if (oldest == NULL)
			return false;
		forget_copy(oldest);
	}
	return true;
}

/* Throw away a build that failed or does not fit (cxt is not copy->cxt yet) */
static void
discard_build(TableCopy *copy, MemoryContext cxt)
{
	copy->lsns = NULL;
	copy->rows = NULL;
	copy->entries = NULL;
	MemoryContextDelete(cxt);
}

/* Tuples are copied into blocks of this size, not one allocation each */
#define COPY_BLOCK_SIZE (64 * 1024)

/*
 * Copy the tuples of rel that snapshot sees, into copy, hashed on its key
 * column.  False, with nothing kept, if the copy would take more than budget
 * bytes, or the build more than a quarter of stream_ext.view_time_limit (the
 * view's batch must not fail for it: the index answers instead).  The hash
 * function runs after each page's lock is released.
 */
static bool
build_copy(TableCopy *copy, Relation rel, Snapshot snapshot, BlockNumber nblocks,
		   Size budget)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			natts = desc->natts;
	TimestampTz deadline = stream_ext_view_time_limit_ms > 0 ?
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), stream_ext_view_time_limit_ms / 4) : 0;
	MemoryContext cxt = AllocSetContextCreate(copies_cxt, "stream_ext table copy",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext work_cxt = NULL;
	bool		fits = true;

	PG_TRY();
	{
		MemoryContext page_cxt;
		MemoryContext old;
		FmgrInfo	hash_fn;
		CopiedTuple *tuples;
		int			capacity = 1024;
		int			ntuples = 0;
		char	   *block = NULL;
		Size		block_left = 0;
		bool		reusable = true;
		uint32		nentries;

		work_cxt = AllocSetContextCreate(CurrentMemoryContext, "stream_ext table copy build",
										 ALLOCSET_DEFAULT_SIZES);
		page_cxt = AllocSetContextCreate(work_cxt, "stream_ext table copy page",
										 ALLOCSET_SMALL_SIZES);
		fmgr_info_cxt(copy->key.hash_fn, &hash_fn, work_cxt);
		copy->max_xid = InvalidTransactionId;
		copy->nxids = 0;
		copy->lsns = MemoryContextAllocHuge(cxt, sizeof(XLogRecPtr) * Max(nblocks, 1));
		tuples = MemoryContextAlloc(work_cxt, sizeof(CopiedTuple) * capacity);

		for (BlockNumber blk = 0; blk < nblocks && fits; blk++)
		{
			Buffer		buf;
			Page		page;
			OffsetNumber maxoff;
			int			first = ntuples;

			CHECK_FOR_INTERRUPTS();
			buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk, RBM_NORMAL, NULL);
			heap_page_prune_opt(rel, buf);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			copy->lsns[blk] = PageGetLSN(page);
			maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				ItemId		item = PageGetItemId(page, off);
				HeapTupleData tuple;
				HeapTuple	t;

				if (!ItemIdIsNormal(item))
					continue;
				tuple.t_data = (HeapTupleHeader) PageGetItem(page, item);
				tuple.t_len = ItemIdGetLength(item);
				tuple.t_tableOid = RelationGetRelid(rel);
				ItemPointerSet(&tuple.t_self, blk, off);
				if (reusable && !tuple_settled(copy, tuple.t_data, snapshot))
					reusable = false;
				if (!HeapTupleSatisfiesVisibility(&tuple, snapshot, buf))
					continue;
				if (ntuples == capacity)
				{
					capacity *= 2;
					tuples = repalloc_huge(tuples, sizeof(CopiedTuple) * capacity);
				}
				if (MAXALIGN(tuple.t_len) > block_left)
				{
					block_left = Max(COPY_BLOCK_SIZE, MAXALIGN(tuple.t_len));
					block = MemoryContextAlloc(cxt, block_left);
				}
				t = &tuples[ntuples++].tuple;
				*t = tuple;
				t->t_data = (HeapTupleHeader) block;
				memcpy(block, tuple.t_data, tuple.t_len);
				block += MAXALIGN(tuple.t_len);
				block_left -= MAXALIGN(tuple.t_len);
			}
			UnlockReleaseBuffer(buf);

			/* hash this page's tuples */
			old = MemoryContextSwitchTo(page_cxt);
			for (int i = first; i < ntuples; i++)
			{
				Datum		value = heap_getattr(&tuples[i].tuple, copy->key.attno, desc,
												 &tuples[i].null_key);

				tuples[i].hash = tuples[i].null_key ? 0 :
					DatumGetUInt32(FunctionCall1Coll(&hash_fn, copy->key.collation, value));
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(page_cxt);

			/* what the rows and the hash table will add, about a third more */
			if (MemoryContextMemAllocated(cxt, true) +
				(Size) ntuples * (MAXALIGN(natts * (sizeof(Datum) + sizeof(bool))) +
								  2 * sizeof(CopyEntry)) > budget ||
				ntuples > INT_MAX / 4 ||
				(deadline != 0 && blk % 64 == 63 && GetCurrentTimestamp() > deadline))
				fits = false;
		}

		if (fits)
		{
			/* every row's columns deformed once; the hash table, without NULL keys */
			for (nentries = 16; nentries < (uint32) ntuples * 2; nentries <<= 1)
				;
			copy->row_size = MAXALIGN(natts * (sizeof(Datum) + sizeof(bool)));
			copy->rows = MemoryContextAllocHuge(cxt, copy->row_size * Max(ntuples, 1));
			copy->entries = MemoryContextAllocHuge(cxt, sizeof(CopyEntry) * nentries);
			memset(copy->entries, -1, sizeof(CopyEntry) * nentries);
			copy->mask = nentries - 1;
			for (int i = 0; i < ntuples; i++)
			{
				Datum	   *values = (Datum *) (copy->rows + copy->row_size * i);
				uint32		at;

				heap_deform_tuple(&tuples[i].tuple, desc, values, (bool *) (values + natts));
				if (tuples[i].null_key)
					continue;
				for (at = tuples[i].hash & copy->mask; copy->entries[at].row >= 0;
					 at = (at + 1) & copy->mask)
					;
				copy->entries[at].hash = tuples[i].hash;
				copy->entries[at].row = i;
			}
			copy->reusable = reusable;
			copy->ntuples = ntuples;
		}
	}
	PG_CATCH();
	{
		discard_build(copy, cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextDelete(work_cxt);

	if (!fits || MemoryContextMemAllocated(cxt, true) > budget)
	{
		discard_build(copy, cxt);
		return false;
	}
	copy->cxt = cxt;
	copy->node = rel->rd_node;
	copy->nblocks = nblocks;
	copy->natts = natts;
	copy->bytes = MemoryContextMemAllocated(cxt, true);
	copies_bytes += copy->bytes;
	return true;
}

/* Does the copy hold what snapshot sees of rel (header comment)? */
static bool
copy_still_valid(TableCopy *copy, Relation rel, Snapshot snapshot, BlockNumber nblocks)
{
	if (!copy->reusable || !RelFileNodeEquals(copy->node, rel->rd_node) ||
		copy->nblocks != nblocks || copy->natts != RelationGetDescr(rel)->natts ||
		!writers_settled(copy, snapshot))
		return false;
	for (BlockNumber blk = 0; blk < nblocks; blk++)
	{
		Buffer		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk, RBM_NORMAL, NULL);
		XLogRecPtr	lsn = BufferGetLSNAtomic(buf);

		ReleaseBuffer(buf);
		if (lsn != copy->lsns[blk])
			return false;
	}
	return true;
}

static List *
lappend_with_cxt(MemoryContext cxt, List *list, void *datum)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	list = lappend(list, datum);
	MemoryContextSwitchTo(old);
	return list;
}

static TableCopy *
registry_entry(CopyKey *key)
{
	ListCell   *lc;
	TableCopy  *copy;

	if (copies_cxt == NULL)
		copies_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext table copies",
										   ALLOCSET_SMALL_SIZES);
	foreach(lc, copies)
	{
		copy = lfirst(lc);
		if (memcmp(&copy->key, key, sizeof(CopyKey)) == 0)
			return copy;
	}
	copy = MemoryContextAllocZero(copies_cxt, sizeof(TableCopy));
	copy->key = *key;
	copy->failed_at = InvalidBlockNumber;
	copies = lappend_with_cxt(copies_cxt, copies, copy);
	return copy;
}

/*
 * May this run read copy, valid for snapshot (checked, or built now)?
 * False sends it through the index.
 */
static bool
copy_for_run(TableCopy *copy, Relation rel, Snapshot snapshot)
{
	Size		limit = (Size) stream_ext_join_cache_kb * 1024;
	double		probes = 1;
	BlockNumber nblocks;
	double		rows;
	bool		built;

	if (limit == 0 || snapshot == NULL || snapshot->snapshot_type != SNAPSHOT_MVCC ||
		old_snapshot_threshold >= 0 || copy->building ||
		rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		return false;
	if (stream_scan_source != NULL && stream_scan_source->only < 0)
		probes = Max(stream_scan_source->nevents, 1);
	nblocks = RelationGetNumberOfBlocks(rel);

	if (copy->cxt != NULL && copy->reusable)
	{
		if (probes * PROBES_PER_PAGE_CHECKED < nblocks)
			return false;
		if (copy_still_valid(copy, rel, snapshot, nblocks))
		{
			copy->used_lxid = MyProc->lxid;
			copy->used_tick = ++copies_tick;
			copy->probes_owed = 0;
			return true;
		}
	}

	/*
	 * Build it again, if it is not in use, if the probes owed pay for it, and
	 * if no build failed or overflowed at this size of the table.
	 */
	if (copy->used_lxid == MyProc->lxid ||
		(Size) nblocks * BLCKSZ > limit || nblocks == copy->failed_at)
		return false;
	rows = copy->cxt != NULL ? copy->ntuples : rel->rd_rel->reltuples;
	if (rows < 0)
		rows = (double) nblocks * (BLCKSZ / 128);
	if ((copy->probes_owed + probes) * PROBES_PER_ROW_BUILT < rows)
		return false;
	forget_copy(copy);
	if (!make_room((Size) nblocks * BLCKSZ, limit, copy))
		return false;

	/* if the build fails (an error), the next batches go to the index */
	copy->failed_at = nblocks;
	copy->probes_owed = 0;
	copy->building = true;
	PG_TRY();
	{
		built = build_copy(copy, rel, snapshot, nblocks, limit - copies_bytes);
	}
	PG_FINALLY();
	{
		copy->building = false;
	}
	PG_END_TRY();
	if (!built)
		return false;
	elog(DEBUG1, "stream_ext: copied table \"%s\" for lookups: %d rows in %u pages%s",
		 RelationGetRelationName(rel), copy->ntuples, nblocks,
		 copy->reusable ? "" : ", for this batch only (some rows not yet settled)");
	copy->failed_at = InvalidBlockNumber;
	copy->used_lxid = MyProc->lxid;
	copy->used_tick = ++copies_tick;
	return true;
}

/* ---- the scan ---- */

static Node *
create_table_copy_scan_state(CustomScan *cscan)
{
	TableCopyScanState *state = palloc0(sizeof(TableCopyScanState));

	NodeSetTag(state, T_CustomScanState);
	state->css.methods = &table_copy_exec_methods;
	return (Node *) state;
}

static void
begin_table_copy_scan(CustomScanState *node, EState *estate, int eflags)
{
	TableCopyScanState *state = (TableCopyScanState *) node;
	CustomScan *cs = (CustomScan *) node->ss.ps.plan;

	state->key.relid = RelationGetRelid(node->ss.ss_currentRelation);
	state->key.attno = intVal(linitial(cs->custom_private));
	state->key.hash_fn = (Oid) intVal(lsecond(cs->custom_private));
	state->key.collation = (Oid) intVal(lfourth(cs->custom_private));
	fmgr_info((Oid) intVal(lthird(cs->custom_private)), &state->probe_hash);
	state->probe = ExecInitExpr(linitial(cs->custom_exprs), &node->ss.ps);
	state->index_scan = ExecInitNode(linitial(cs->custom_plans), estate, eflags);
	node->custom_ps = list_make1(state->index_scan);
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	state->copy = registry_entry(&state->key);
	state->use_copy = copy_for_run(state->copy, node->ss.ss_currentRelation,
								   estate->es_snapshot);
}

/* The next row of the copy with the probed value's hash */
static TupleTableSlot *
next_copied(ScanState *ss)
{
	TableCopyScanState *state = (TableCopyScanState *) ss;
	TableCopy  *copy = state->copy;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;

	if (!state->positioned)
	{
		ExprContext *econtext = ss->ps.ps_ExprContext;
		MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
		bool		isnull;
		Datum		value = ExecEvalExpr(state->probe, econtext, &isnull);

		state->positioned = true;
		state->done = isnull;	/* a strict operator matches no NULL */
		if (!isnull)
		{
			state->hash = DatumGetUInt32(FunctionCall1Coll(&state->probe_hash,
														   state->key.collation, value));
			state->next = state->hash & copy->mask;
		}
		MemoryContextSwitchTo(old);
	}
	while (!state->done)
	{
		CopyEntry  *e = &copy->entries[state->next];

		state->next = (state->next + 1) & copy->mask;
		if (e->row < 0)
			state->done = true;
		else if (e->hash == state->hash)
		{
			Datum	   *values = (Datum *) (copy->rows + copy->row_size * e->row);

			ExecClearTuple(slot);
			memcpy(slot->tts_values, values, sizeof(Datum) * copy->natts);
			memcpy(slot->tts_isnull, values + copy->natts, sizeof(bool) * copy->natts);
			return ExecStoreVirtualTuple(slot);
		}
	}
	return ExecClearTuple(slot);
}

static bool
recheck_copied(ScanState *ss, TupleTableSlot *slot)
{
	return true;				/* the filter holds the index condition */
}

static TupleTableSlot *
exec_table_copy_scan(CustomScanState *node)
{
	TableCopyScanState *state = (TableCopyScanState *) node;

	TupleTableSlot *in,
			   *out;

	if (state->use_copy)
		return ExecScan(&node->ss, next_copied, recheck_copied);

	/*
	 * The index scan's row, in our own (virtual) result slot: the plan above
	 * was compiled for that kind of slot.  Its values stay the index scan's
	 * until its next row, as they would be in its own slot.
	 */
	in = ExecProcNode(state->index_scan);
	out = node->ss.ps.ps_ResultTupleSlot;
	ExecClearTuple(out);
	if (TupIsNull(in))
		return out;
	slot_getallattrs(in);
	memcpy(out->tts_values, in->tts_values, sizeof(Datum) * in->tts_nvalid);
	memcpy(out->tts_isnull, in->tts_isnull, sizeof(bool) * in->tts_nvalid);
	return ExecStoreVirtualTuple(out);
}

static void
rescan_table_copy_scan(CustomScanState *node)
{
	TableCopyScanState *state = (TableCopyScanState *) node;

	state->positioned = false;
	if (state->use_copy)
	{
		ExecScanReScan(&node->ss);
		return;
	}
	if (node->ss.ps.chgParam != NULL)
		UpdateChangedParamSet(state->index_scan, node->ss.ps.chgParam);
	ExecReScan(state->index_scan);
	state->index_probes++;
}

static void
end_table_copy_scan(CustomScanState *node)
{
	TableCopyScanState *state = (TableCopyScanState *) node;

	if (state->copy != NULL && !state->use_copy)
		state->copy->probes_owed += state->index_probes;
	ExecEndNode(state->index_scan);
}

static void
explain_table_copy_scan(CustomScanState *node, List *ancestors, ExplainState *es)
{
	TableCopyScanState *state = (TableCopyScanState *) node;
	Relation	rel = node->ss.ss_currentRelation;

	ExplainPropertyText("Copy Hashed On",
						get_attname(RelationGetRelid(rel), state->key.attno, false), es);
	if (es->analyze)
		ExplainPropertyText("Lookups Through", state->use_copy ? "copy" : "index", es);
}
