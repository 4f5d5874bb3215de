/*
 * route.c
 *	  Which batch worker of its database each record of a writer's
 *	  transaction goes to (see README.md, "Commit protocol").
 *
 * The choice reads ring positions without the ring's lock: a stale value
 * only makes a worse choice, never a wrong one, since any worker of the
 * database applies any record.
 */
#include "postgres.h"

#include "guc.h"
#include "ipc/queue.h"
#include "ipc/route.h"

/* Bytes queued in a worker's ring: an unlocked read, good enough to choose. */
static uint64
ring_backlog(int slotno)
{
	StreamWorkerSlot *slot = stream_slot(slotno);

	return slot->write_pos - slot->read_pos;
}

/* Index (0 .. stream_ext.workers - 1) of a batch worker within its database */
int
stream_worker_index(int slotno)
{
	return slotno % StreamShared->slots_per_group;
}

/* Slot of batch worker index of the database that any_slot belongs to */
int
stream_worker_slot(int any_slot, int index)
{
	return stream_group_slot(stream_slot_group(any_slot), index);
}

/*
 * The worker for the first record of a transaction, starting the
 * database's workers if need be: the first running worker of the database
 * with less than a sixteenth of its queue waiting, else the backend's own.
 * Small transactions of many backends thus share one worker's batches
 * while it keeps up; a batch costs a transaction, an executor start per
 * view and a wake-up of the worker whatever its size, so the more commits
 * a batch holds, the less CPU each of them takes from the writers.  (With
 * two workers taking turns, a batch held 1.6 commits of 16 pgbench
 * clients.)  The writer holds its database's group of workers until
 * stream_writer_leave_group.
 */
int
stream_route_first_record(void)
{
	int			own_slot = stream_writer_join_group();

	for (int i = 0; i < stream_ext_workers_per_database; i++)
	{
		int			slotno = stream_worker_slot(own_slot, i);

		if (stream_slot(slotno)->state == SLOT_RUNNING &&
			ring_backlog(slotno) <= StreamShared->ring_size / 16)
			return slotno;
	}
	return own_slot;
}

/*
 * The worker for a later record of a transaction whose first went to
 * home_slot.  Records go to the home worker while it keeps up; when more
 * than half of its queue is waiting (the views of a large COPY cost more
 * than one core), they go to the running worker of the database with the
 * least queued, so that the views are aggregated on several cores.  Each
 * worker writes its own deltas, tagged with the writer's transaction id.
 * Spreading only when needed keeps the other workers from taking CPU from
 * a writer that is itself the bottleneck.
 */
int
stream_route_next_record(int home_slot)
{
	int			best = home_slot;
	uint64		best_backlog = ring_backlog(home_slot);

	if (best_backlog <= StreamShared->ring_size / 2)
		return home_slot;
	for (int i = 0; i < stream_ext_workers_per_database; i++)
	{
		int			slotno = stream_worker_slot(home_slot, i);
		uint64		backlog;

		if (slotno == home_slot || stream_slot(slotno)->state != SLOT_RUNNING)
			continue;
		backlog = ring_backlog(slotno);
		if (backlog < best_backlog)
		{
			best = slotno;
			best_backlog = backlog;
		}
	}
	return best;
}
