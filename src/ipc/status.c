/*
 * status.c
 *	  Reading the shared state of a database's processes and writers for
 *	  the metrics views: queue fill, waiting writers, the combiner's
 *	  backlog.  Follows the locking rules of queue.h; what writers publish
 *	  about their waits is read without a lock and may be a moment stale.
 */
#include "postgres.h"

#include "storage/proc.h"

#include "guc.h"
#include "ipc/queue.h"
#include "ipc/status.h"

/* The writers of dboid waiting now, kind by kind, per worker index. */
static void
count_waiting(Oid dboid, StreamProcessStatus *processes, int nbatch)
{
	for (int i = 0; i < StreamShared->nwaits; i++)
	{
		StreamWriterWait *w = &StreamShared->waits[i];
		uint32		kind = pg_atomic_read_u32(&w->kind);
		int			index;

		if (kind != WRITER_WAITS_FOR_QUEUE && kind != WRITER_WAITS_FOR_COMMIT)
			continue;
		pg_read_barrier();
		if (w->dboid != dboid || w->slotno < 0 || ProcGlobal->allProcs[i].pid != w->pid)
			continue;
		index = w->slotno % StreamShared->slots_per_group;
		if (index >= nbatch)
			continue;
		if (kind == WRITER_WAITS_FOR_QUEUE)
			processes[index].writers_waiting_queue++;
		else
			processes[index].writers_waiting_commit++;
	}
}

/* Fill *status for the processes of dboid (palloc'd). */
void
stream_group_status(Oid dboid, StreamGroupStatus *status)
{
	int			per_group = StreamShared->slots_per_group;
	int			groupno = -1;

	memset(status, 0, sizeof(StreamGroupStatus));
	LWLockAcquire(StreamShared->lock, LW_SHARED);
	for (int g = 0; g < StreamShared->ngroups; g++)
		if (StreamShared->groups[g].dboid == dboid)
			groupno = g;
	if (groupno >= 0)
	{
		StreamDatabaseGroup *group = &StreamShared->groups[groupno];

		status->served = true;
		status->start_failed_since = group->start_failed_since;
		status->nprocesses = per_group;
		status->processes = palloc0(sizeof(StreamProcessStatus) * per_group);
		for (int s = 0; s < per_group; s++)
		{
			StreamWorkerSlot *slot = stream_slot(stream_group_slot(groupno, s));
			StreamProcessStatus *p = &status->processes[s];

			p->worker = s;
			p->combiner = (s == per_group - 1);
			p->state = slot->state == SLOT_RUNNING ? "running" :
				slot->state == SLOT_STARTING ? "starting" : "not running";
			p->pid = slot->state == SLOT_RUNNING ? slot->pid : 0;
			if (!p->combiner)
			{
				LWLockAcquire(slot->ring_lock, LW_SHARED);
				p->queue_bytes = (int64) (slot->write_pos - slot->read_pos);
				LWLockRelease(slot->ring_lock);
				p->queue_size = (int64) StreamShared->ring_size;
			}
		}
	}
	LWLockRelease(StreamShared->lock);
	if (groupno < 0)
		return;

	{
		StreamDatabaseGroup *group = &StreamShared->groups[groupno];
		uint64		mergeable = pg_atomic_read_u64(&group->mergeable);
		uint64		merged = pg_atomic_read_u64(&group->merged);

		status->pending_merges = mergeable > merged ? mergeable - merged : 0;
		status->last_merge_at = (TimestampTz) pg_atomic_read_u64(&group->last_merge_at);
	}
	count_waiting(dboid, status->processes, per_group - 1);
}

/* The writers of dboid waiting now (StreamWaitingWriter *, palloc'd). */
List *
stream_waiting_writers(Oid dboid)
{
	List	   *result = NIL;

	for (int i = 0; i < StreamShared->nwaits; i++)
	{
		StreamWriterWait *w = &StreamShared->waits[i];
		uint32		kind = pg_atomic_read_u32(&w->kind);
		StreamWaitingWriter *ww;

		if (kind == WRITER_NOT_WAITING)
			continue;
		pg_read_barrier();
		if (w->dboid != dboid || ProcGlobal->allProcs[i].pid != w->pid)
			continue;
		ww = palloc(sizeof(StreamWaitingWriter));
		ww->pid = w->pid;
		ww->waiting_for = kind == WRITER_WAITS_FOR_QUEUE ? "queue" :
			kind == WRITER_WAITS_FOR_COMMIT ? "commit" : "workers";
		ww->worker = kind == WRITER_WAITS_FOR_WORKERS ? -1 :
			w->slotno % StreamShared->slots_per_group;
		ww->since = w->since;
		result = lappend(result, ww);
	}
	return result;
}
