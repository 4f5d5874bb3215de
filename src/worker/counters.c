/*
 * counters.c
 *	  Add a batch's counts to stream_ext_internal.view_counters.
 *
 * The table has one row per view and worker, and only that worker writes
 * it, so a batch updates its rows in place with heap access, in the batch's
 * own transaction: the counts commit exactly when the deltas they count do.
 * This runs once per view and batch; through SPI the planning-free UPDATE
 * still cost an executor start-up and a fifth of a worker's time on small
 * batches.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

#include "catalog/catalog.h"
#include "metrics/view_rates.h"
#include "worker/counters.h"

/* Columns of view_counters */
enum
{
	COL_VIEW_ID,
	COL_WORKER,
	COL_EVENTS,
	COL_BATCHES,
	COL_ERRORS,
	COL_LAST_APPLIED,
	NUM_COLS
};

/*
 * Has another transaction, still in progress, written the row the keys
 * select?  Only a prepared transaction can have: a writer's number
 * (worker/writer_apply.c) is its process number, which a session's prepared
 * transaction keeps while the session, or the next to get that number,
 * writes on.
 */
static bool
counts_row_held(Relation rel, Oid pkey, ScanKey key)
{
	SnapshotData dirty;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		held = false;

	InitDirtySnapshot(dirty);
	scan = systable_beginscan(rel, pkey, true, &dirty, 2, key);
	while (!held && (tuple = systable_getnext(scan)) != NULL)
		held = TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax);
	systable_endscan(scan);
	return held;
}

/*
 * Add events, errors and batches (one, or none for errors the combiner
 * found) to the row of view_id and worker_no, inserting it at the view's
 * first count on this worker.  With nowait, fail (55006) rather than wait
 * for another transaction that holds the row.
 */
static void
add_counts(Relation rel, Oid pkey, int view_id, int worker_no, int64 events, int64 errors,
		   int64 batches, bool nowait)
{
	TupleDesc	desc = RelationGetDescr(rel);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	old;
	Datum		values[NUM_COLS];
	bool		nulls[NUM_COLS];
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	ScanKeyInit(&key[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(view_id));
	ScanKeyInit(&key[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(worker_no));
	if (nowait && counts_row_held(rel, pkey, key))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("counters of continuous view %d for worker number %d are held by another transaction",
						view_id, worker_no),
				 errdetail("A prepared transaction of a session with the same process number holds them.")));
	scan = systable_beginscan(rel, pkey, true, GetActiveSnapshot(), 2, key);
	old = systable_getnext(scan);
	if (HeapTupleIsValid(old))
	{
		bool		repl[NUM_COLS] = {0};
		HeapTuple	new;

		heap_deform_tuple(old, desc, values, nulls);
		values[COL_EVENTS] = Int64GetDatum(DatumGetInt64(values[COL_EVENTS]) + events);
		values[COL_BATCHES] = Int64GetDatum(DatumGetInt64(values[COL_BATCHES]) + batches);
		values[COL_ERRORS] = Int64GetDatum(DatumGetInt64(values[COL_ERRORS]) + errors);
		values[COL_LAST_APPLIED] = TimestampTzGetDatum(now);
		nulls[COL_LAST_APPLIED] = false;
		repl[COL_EVENTS] = repl[COL_BATCHES] = repl[COL_ERRORS] = true;
		repl[COL_LAST_APPLIED] = (batches > 0);
		new = heap_modify_tuple(old, desc, values, nulls, repl);
		CatalogTupleUpdate(rel, &old->t_self, new);
		heap_freetuple(new);
	}
	else
	{
		HeapTuple	new;

		memset(nulls, 0, sizeof(nulls));
		values[COL_VIEW_ID] = Int32GetDatum(view_id);
		values[COL_WORKER] = Int32GetDatum(worker_no);
		values[COL_EVENTS] = Int64GetDatum(events);
		values[COL_BATCHES] = Int64GetDatum(batches);
		values[COL_ERRORS] = Int64GetDatum(errors);
		values[COL_LAST_APPLIED] = TimestampTzGetDatum(now);
		nulls[COL_LAST_APPLIED] = (batches == 0);
		new = heap_form_tuple(desc, values, nulls);
		CatalogTupleInsert(rel, new);
		heap_freetuple(new);
	}
	systable_endscan(scan);
}

/*
 * Add counts (ViewCount *) to the rows of worker_no, each as batches batches
 * (one for a batch; none for errors the combiner found, which are not
 * applied events and note no rate).
 */
static void
record_counts(List *counts, int worker_no, int64 batches, bool nowait)
{
	Oid			relid;
	Relation	rel;
	Oid			pkey;
	ListCell   *lc;

	if (counts == NIL)
		return;
	relid = stream_internal_relid("view_counters", false);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"stream_ext_internal.view_counters\" does not exist")));
	rel = table_open(relid, RowExclusiveLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkey))
		elog(ERROR, "stream_ext_internal.view_counters has no primary key");
	foreach(lc, counts)
	{
		ViewCount  *c = lfirst(lc);

		add_counts(rel, pkey, c->view_id, worker_no, c->events, c->errors, batches, nowait);
		if (batches > 0)
			stream_view_rates_note(c->view_id, c->events);
	}
	table_close(rel, NoLock);
}

/*
 * Count errors the combiner found in view_id's deltas (it set them aside),
 * under the combiner's own number, in its transaction.
 */
void
stream_counters_record_merge_errors(int view_id, int64 errors)
{
	ViewCount	count = {view_id, 0, errors};

	record_counts(list_make1(&count), COMBINER_COUNTER_WORKER, 0, false);
}

/* Add a batch's counts (ViewCount *) to the rows of worker_no. */
void
stream_counters_record(List *counts, int worker_no)
{
	record_counts(counts, worker_no, 1, false);
}

/*
 * The same for a writer's own apply, under its writer's number: fails (55006)
 * instead of waiting when a prepared transaction holds one of the rows.
 */
void
stream_counters_record_nowait(List *counts, int worker_no)
{
	record_counts(counts, worker_no, 1, true);
}
