/*
 * processes.c
 *	  SQL functions behind stream_ext.workers, stream_ext.combiner and
 *	  stream_ext.waiting_writers: the state of this database's processes
 *	  and writers in shared memory (read through ipc/status.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "guc.h"
#include "ipc/status.h"

PG_FUNCTION_INFO_V1(stream_ext_worker_status);
PG_FUNCTION_INFO_V1(stream_ext_combiner_status);
PG_FUNCTION_INFO_V1(stream_ext_waiting_writers);

/*
 * One row per batch worker of this database: worker, pid, state,
 * queue_bytes, queue_size, writers_waiting_queue, writers_waiting_commit.
 */
Datum
stream_ext_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StreamGroupStatus status;

	stream_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	stream_group_status(MyDatabaseId, &status);
	for (int i = 0; i < status.nprocesses; i++)
	{
		StreamProcessStatus *p = &status.processes[i];
		Datum		values[7];
		bool		nulls[7] = {0};

		if (p->combiner)
			continue;
		values[0] = Int32GetDatum(p->worker);
		values[1] = Int32GetDatum(p->pid);
		nulls[1] = p->pid == 0;
		values[2] = CStringGetTextDatum(p->state);
		values[3] = Int64GetDatum(p->queue_bytes);
		values[4] = Int64GetDatum(p->queue_size);
		values[5] = Int32GetDatum(p->writers_waiting_queue);
		values[6] = Int32GetDatum(p->writers_waiting_commit);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * One row for this database's combiner: pid, state, pending_merges,
 * last_merge_at, workers_failed_since (the launcher could not start the
 * database's processes since then; NULL when it could).  No row when the
 * database has no workers.
 */
Datum
stream_ext_combiner_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StreamGroupStatus status;
	StreamProcessStatus *p;
	Datum		values[5];
	bool		nulls[5] = {0};

	stream_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	stream_group_status(MyDatabaseId, &status);
	if (!status.served)
		return (Datum) 0;
	p = &status.processes[status.nprocesses - 1];
	values[0] = Int32GetDatum(p->pid);
	nulls[0] = p->pid == 0;
	values[1] = CStringGetTextDatum(p->state);
	values[2] = Int64GetDatum((int64) status.pending_merges);
	values[3] = TimestampTzGetDatum(status.last_merge_at);
	nulls[3] = status.last_merge_at == 0;
	values[4] = TimestampTzGetDatum(status.start_failed_since);
	nulls[4] = status.start_failed_since == 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* The writers of this database waiting now: pid, waiting_for, worker, since */
Datum
stream_ext_waiting_writers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	stream_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, stream_waiting_writers(MyDatabaseId))
	{
		StreamWaitingWriter *w = lfirst(lc);
		Datum		values[4];
		bool		nulls[4] = {0};

		values[0] = Int32GetDatum(w->pid);
		values[1] = CStringGetTextDatum(w->waiting_for);
		values[2] = Int32GetDatum(w->worker);
		nulls[2] = w->worker < 0;
		values[3] = TimestampTzGetDatum(w->since);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
