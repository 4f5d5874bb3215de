/*
 * fdw.c
 *	  The foreign-data wrapper "stream_ext": a stream is a foreign table of
 *	  its server.
 *
 * Writing (INSERT, COPY FROM) hands events to the workers (see insert.c).
 * Reading is only possible inside a worker, where a scan of the stream
 * returns the events of the batch being applied; every other plan that
 * reads a stream is refused when it is made (read_guard.c).
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "guc.h"
#include "stream/column_fill.h"
#include "stream/fdw.h"
#include "stream/insert.h"
#include "stream/read_guard.h"

PG_FUNCTION_INFO_V1(stream_ext_fdw_handler);
PG_FUNCTION_INFO_V1(stream_ext_fdw_validator);

StreamBatchEvents *stream_scan_source = NULL;

typedef struct StreamScanState
{
	StreamBatchEvents *source;
	int			next;
} StreamScanState;

typedef struct StreamModifyState
{
	int			arrival_attno;
	bool		check_constraints;	/* the stream has NOT NULL or CHECK ones */
	bool		after_row;		/* AFTER ROW triggers get the stamped event */
	/* the event with its arrival time, for either of the above; or NULL */
	TupleTableSlot *stamped;
} StreamModifyState;

/* Is relid a foreign table of the server stream_ext? */
bool
stream_is_stream_relation(Oid relid)
{
	HeapTuple	tuple;
	bool		result = false;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		return false;
	tuple = SearchSysCache1(FOREIGNTABLEREL, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_foreign_table ft = (Form_pg_foreign_table) GETSTRUCT(tuple);
		ForeignServer *server = GetForeignServer(ft->ftserver);
		ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

		result = (strcmp(fdw->fdwname, "stream_ext") == 0);
		ReleaseSysCache(tuple);
	}
	return result;
}

/*
 * A foreign table of another wrapper made on stream_ext's handler is no
 * stream: no view reads it, no worker takes its events.  Refused rather
 * than taking events that would go nowhere.
 */
static void
check_stream_relation(Oid relid)
{
	if (!stream_is_stream_relation(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("foreign table \"%s\" is not a stream", get_rel_name(relid)),
				 errdetail("Its foreign-data wrapper uses stream_ext's handler, but only foreign tables of the wrapper stream_ext are streams."),
				 errhint("Create streams with CREATE FOREIGN TABLE ... SERVER stream_ext.")));
}

/*
 * The events a batch is planned for.  A batch holds from one event to
 * stream_ext.batch_size; a view that joins tables is planned for a small one
 * (a lookup join), so that each event finds its rows through an index of
 * the table where there is one, instead of every batch reading the whole
 * table into a hash: many small batches come from many small transactions.
 * Tables without a usable index are still hashed once per batch.
 */
#define STREAM_BATCH_ROWS			1000
#define STREAM_JOINED_BATCH_ROWS	100

static void
streamGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	check_stream_relation(foreigntableid);
	/* all_baserels is set before the sizes of base relations are estimated */
	baserel->rows = bms_membership(root->all_baserels) == BMS_MULTIPLE ?
		STREAM_JOINED_BATCH_ROWS : STREAM_BATCH_ROWS;
}

static void
streamGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	Cost		total = baserel->rows * cpu_tuple_cost;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows,
									 0, total, NIL, NULL, NULL, NIL));
}

static ForeignScan *
streamGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					 ForeignPath *best_path, List *tlist, List *scan_clauses,
					 Plan *outer_plan)
{
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid,
							NIL, NIL, NIL, NIL, outer_plan);
}

/* The batch a scan of rel reads: only workers applying a batch have one. */
static StreamBatchEvents *
scan_source(Relation rel)
{
	if (stream_scan_source == NULL ||
		stream_scan_source->stream != RelationGetRelid(rel))
		stream_refuse_read(RelationGetRelid(rel));
	return stream_scan_source;
}

static void
streamBeginForeignScan(ForeignScanState *node, int eflags)
{
	StreamScanState *state;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	state = palloc0(sizeof(StreamScanState));
	state->source = scan_source(node->ss.ss_currentRelation);
	state->next = (state->source->only >= 0) ? state->source->only : 0;
	node->fdw_state = state;
}

static TupleTableSlot *
streamIterateForeignScan(ForeignScanState *node)
{
	StreamScanState *state = node->fdw_state;
	StreamBatchEvents *source;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	int			end;

	/*
	 * A kept executor was rescanned at the end of its last run, over that
	 * run's batch.  A batch of rows that transforms wrote into this stream
	 * (worker/forward.c) is a new one each time: the previous one is gone.
	 */
	if (state->source != stream_scan_source)
	{
		state->source = scan_source(node->ss.ss_currentRelation);
		state->next = (state->source->only >= 0) ? state->source->only : 0;
	}
	source = state->source;
	end = (source->only >= 0) ? source->only + 1 : source->nevents;

	while (state->next < end)
	{
		int			i = state->next++;

		if (source->skip != NULL && source->skip[i])
			continue;
		ExecStoreHeapTuple(&source->events[i], slot, false);
		if (source->values != NULL)
		{
			/* columns deformed once per batch: the slot need not deform again */
			memcpy(slot->tts_values, source->values + (size_t) i * source->natts,
				   sizeof(Datum) * source->natts);
			memcpy(slot->tts_isnull, source->isnull + (size_t) i * source->natts,
				   sizeof(bool) * source->natts);
			slot->tts_nvalid = source->natts;
		}
		return slot;
	}
	return ExecClearTuple(slot);
}

static void
streamReScanForeignScan(ForeignScanState *node)
{
	StreamScanState *state = node->fdw_state;

	/* a worker's kept executor is rescanned for each new batch */
	state->source = scan_source(node->ss.ss_currentRelation);
	state->next = (state->source->only >= 0) ? state->source->only : 0;
}

static void
streamEndForeignScan(ForeignScanState *node)
{
}

static int
streamIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT);
}

static List *
streamPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
						Index resultRelation, int subplan_index)
{
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);

	check_stream_relation(rte->relid);
	if (plan->returningLists != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("RETURNING is not supported for stream \"%s\"",
						get_rel_name(rte->relid)),
				 errdetail("A stream does not store the events inserted into it.")));
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ON CONFLICT is not supported for streams")));
	return NIL;
}

static void
begin_insert(ResultRelInfo *rinfo)
{
	StreamModifyState *state = palloc0(sizeof(StreamModifyState));

	TriggerDesc *triggers = rinfo->ri_TrigDesc;

	stream_admit_writer(rinfo->ri_RelationDesc);
	state->arrival_attno = stream_arrival_attno(rinfo->ri_RelationDesc);
	state->check_constraints = stream_has_constraints(rinfo->ri_RelationDesc);
	state->after_row = state->arrival_attno > 0 && triggers != NULL &&
		triggers->trig_insert_after_row;
	if (state->check_constraints || state->after_row)
		state->stamped = MakeSingleTupleTableSlot(RelationGetDescr(rinfo->ri_RelationDesc),
												  &TTSOpsVirtual);
	rinfo->ri_FdwState = state;
}

/*
 * The event in slot with the arrival time it is given (the executor's slot
 * has NULL there), in state->stamped: what the stream's constraints check
 * and AFTER ROW triggers get.
 */
static TupleTableSlot *
stamped_event(StreamModifyState *state, TupleTableSlot *slot, TimestampTz arrival)
{
	TupleTableSlot *stamped = state->stamped;
	int			natts = stamped->tts_tupleDescriptor->natts;

	slot_getallattrs(slot);
	ExecClearTuple(stamped);
	memcpy(stamped->tts_values, slot->tts_values, sizeof(Datum) * natts);
	memcpy(stamped->tts_isnull, slot->tts_isnull, sizeof(bool) * natts);
	if (state->arrival_attno > 0)
	{
		stamped->tts_values[state->arrival_attno - 1] = TimestampTzGetDatum(arrival);
		stamped->tts_isnull[state->arrival_attno - 1] = false;
	}
	return ExecStoreVirtualTuple(stamped);
}

static void
end_insert(ResultRelInfo *rinfo)
{
	StreamModifyState *state = rinfo->ri_FdwState;

	if (state != NULL && state->stamped != NULL)
	{
		ExecDropSingleTupleTableSlot(state->stamped);
		state->stamped = NULL;
	}
	stream_insert_statement_done();
}

static void
streamBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
						 List *fdw_private, int subplan_index, int eflags)
{
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	begin_insert(rinfo);
}

static TupleTableSlot *
streamExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
						TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	StreamModifyState *state = rinfo->ri_FdwState;
	TimestampTz arrival;

	/*
	 * A stream's constraints hold as for a table (PostgreSQL leaves a
	 * foreign table's to its wrapper): checked on the event as it is sent,
	 * arrival time included, which is sent stamped already.
	 */
	if (state->check_constraints)
	{
		TupleTableSlot *event = stamped_event(state, slot, stream_arrival_now());

		ExecConstraints(rinfo, event, estate);
		stream_insert_values(rinfo->ri_RelationDesc, event->tts_values, event->tts_isnull, 0);
		return state->after_row ? event : slot;
	}
	arrival = stream_insert_event(rinfo->ri_RelationDesc, slot, state->arrival_attno);
	return state->after_row ? stamped_event(state, slot, arrival) : slot;
}

static void
streamEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	if (rinfo->ri_FdwState != NULL)
		end_insert(rinfo);
}

static void
streamBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	check_stream_relation(RelationGetRelid(rinfo->ri_RelationDesc));
	begin_insert(rinfo);
}

static void
streamEndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	end_insert(rinfo);
}

static void
streamExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ExplainPropertyText("Stream", "events of the current batch", es);
}

Datum
stream_ext_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	stream_require_preload();
	routine->GetForeignRelSize = streamGetForeignRelSize;
	routine->GetForeignPaths = streamGetForeignPaths;
	routine->GetForeignPlan = streamGetForeignPlan;
	routine->BeginForeignScan = streamBeginForeignScan;
	routine->IterateForeignScan = streamIterateForeignScan;
	routine->ReScanForeignScan = streamReScanForeignScan;
	routine->EndForeignScan = streamEndForeignScan;
	routine->ExplainForeignScan = streamExplainForeignScan;

	routine->IsForeignRelUpdatable = streamIsForeignRelUpdatable;
	routine->PlanForeignModify = streamPlanForeignModify;
	routine->BeginForeignModify = streamBeginForeignModify;
	routine->ExecForeignInsert = streamExecForeignInsert;
	routine->EndForeignModify = streamEndForeignModify;
	routine->BeginForeignInsert = streamBeginForeignInsert;
	routine->EndForeignInsert = streamEndForeignInsert;

	PG_RETURN_POINTER(routine);
}

/*
 * Streams, their server and the wrapper take no options, but a change
 * stream's mark: changes_of, the view whose changes it carries
 * (src/changes/create.c).
 */
Datum
stream_ext_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (catalog == ForeignTableRelationId &&
			strcmp(def->defname, STREAM_CHANGES_OF_OPTION) == 0)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", def->defname),
				 errhint("Streams of stream_ext take no options.")));
	}
	PG_RETURN_VOID();
}

/*
 * The view whose changes stream relid carries (its changes_of option), or
 * NULL for other streams.
 */
char *
stream_changes_of(Oid relid)
{
	ListCell   *lc;

	foreach(lc, GetForeignTable(relid)->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, STREAM_CHANGES_OF_OPTION) == 0)
			return defGetString(def);
	}
	return NULL;
}
