/*
 * queue.c
 *	  Shared memory of stream_ext: worker slots grouped by database, one
 *	  event ring per batch worker, and per-backend commit acknowledgements.
 *
 * Writers append whole records to a worker's ring under the ring's LWLock and
 * wait on space_cv when it is full (backpressure).  The worker reads records
 * in place and releases them only after the transaction that applied them
 * has committed, so a worker that restarts finds unapplied events still in
 * its ring.  The protocol is described in src/ipc/README.md.
 */
#include "postgres.h"

#include "access/twophase.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "commands/dbcommands.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "ipc/queue.h"
#include "ipc/record_format.h"

#define STREAM_TRANCHE "stream_ext"

/* How long a writer waits for workers of its database to start */
#define WORKER_START_TIMEOUT_MS 30000

/*
 * A writer fails at once when the launcher could not start its database's
 * workers for this long (at server start, workers of databases without the
 * extension hold background worker slots for a moment), and the launcher
 * tries again this often.
 */
#define START_FAILURE_GRACE_MS 1000
#define START_RETRY_MS 250
/* processes in a row that stop before attaching until a group gives up */
#define MAX_EARLY_EXITS 60
/* starts in a row whose processes stop before attaching until writers fail */
#define FAIL_EARLY_EXIT_LAUNCHES 2
/* the longest a group waits before it starts processes again after one */
#define EARLY_EXIT_BACKOFF_MAX_MS 10000

/* A group whose processes could not start is kept this long after the last try */
#define START_FAILURE_KEEP_MS 10000

StreamExtShared *StreamShared = NULL;

static int
total_slots(void)
{
	return stream_ext_max_databases * (stream_ext_workers_per_database + 1);
}

static int
total_ack_slots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
ring_size(void)
{
	return MAXALIGN_DOWN((Size) stream_ext_queue_size_kb * 1024);
}

static Size
stream_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(StreamExtShared));
	size = add_size(size, MAXALIGN(mul_size(stream_ext_max_databases,
											sizeof(StreamDatabaseGroup))));
	size = add_size(size, MAXALIGN(mul_size(total_slots(),
											sizeof(StreamWorkerSlot))));
	size = add_size(size, MAXALIGN(mul_size(mul_size(total_ack_slots(),
													 stream_ext_workers_per_database),
											sizeof(StreamBackendAck))));
	size = add_size(size, MAXALIGN(mul_size(total_ack_slots(), sizeof(StreamWriterWait))));
	size = add_size(size, mul_size(mul_size(stream_ext_max_databases,
											stream_ext_workers_per_database),
								   ring_size()));
	return size;
}

/* Called from shmem_request_hook. */
void
stream_shmem_request(void)
{
	RequestAddinShmemSpace(stream_shmem_size());
	RequestNamedLWLockTranche(STREAM_TRANCHE, 1 + total_slots());
}

/*
 * When the rings were made: records sent to rings made at another time (before
 * a crash restart) are gone.
 */
TimestampTz
stream_rings_made(void)
{
	return StreamShared->rings_made;
}

/* Called from shmem_startup_hook: lay out (or attach to) the shared area. */
void
stream_shmem_startup(void)
{
	bool		found;
	char	   *ptr;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ptr = ShmemInitStruct("stream_ext", stream_shmem_size(), &found);
	StreamShared = (StreamExtShared *) ptr;
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(STREAM_TRANCHE);
		int			nslots = total_slots();
		int			nacks = total_ack_slots() * stream_ext_workers_per_database;
		int			ring_no = 0;

		memset(ptr, 0, stream_shmem_size() - mul_size(mul_size(stream_ext_max_databases,
															   stream_ext_workers_per_database),
													  ring_size()));
		ptr += MAXALIGN(sizeof(StreamExtShared));
		StreamShared->lock = &locks[0].lock;
		StreamShared->launcher_pgprocno = -1;
		StreamShared->ngroups = stream_ext_max_databases;
		StreamShared->slots_per_group = stream_ext_workers_per_database + 1;
		StreamShared->ring_size = ring_size();
		StreamShared->rings_made = GetCurrentTimestamp();

		StreamShared->groups = (StreamDatabaseGroup *) ptr;
		ptr += MAXALIGN(mul_size(stream_ext_max_databases, sizeof(StreamDatabaseGroup)));
		StreamShared->slots = (StreamWorkerSlot *) ptr;
		ptr += MAXALIGN(mul_size(nslots, sizeof(StreamWorkerSlot)));
		StreamShared->acks = (StreamBackendAck *) ptr;
		ptr += MAXALIGN(mul_size(nacks, sizeof(StreamBackendAck)));
		StreamShared->waits = (StreamWriterWait *) ptr;
		StreamShared->nwaits = total_ack_slots();
		ptr += MAXALIGN(mul_size(total_ack_slots(), sizeof(StreamWriterWait)));

		for (int g = 0; g < stream_ext_max_databases; g++)
		{
			pg_atomic_init_u64(&StreamShared->groups[g].mergeable, 0);
			pg_atomic_init_u32(&StreamShared->groups[g].writers, 0);
			pg_atomic_init_u64(&StreamShared->groups[g].merged, 0);
			pg_atomic_init_u64(&StreamShared->groups[g].last_merge_at, 0);
		}
		for (int i = 0; i < StreamShared->nwaits; i++)
			pg_atomic_init_u32(&StreamShared->waits[i].kind, WRITER_NOT_WAITING);
		for (int i = 0; i < nacks; i++)
		{
			pg_atomic_init_u64(&StreamShared->acks[i].request_seq, 0);
			pg_atomic_init_u64(&StreamShared->acks[i].done_seq, 0);
			pg_atomic_init_u64(&StreamShared->acks[i].failed_seq, 0);
			stream_sleeper_init(&StreamShared->acks[i].sleeper);
		}

		for (int i = 0; i < nslots; i++)
		{
			StreamWorkerSlot *slot = &StreamShared->slots[i];

			slot->state = SLOT_FREE;
			slot->ring_lock = &locks[1 + i].lock;
			ConditionVariableInit(&slot->space_cv);
			stream_sleeper_init(&slot->sleeper);
			if (stream_slot_role(i) == ROLE_BATCH)
			{
				slot->ring = ptr + ring_no * StreamShared->ring_size;
				ring_no++;
			}
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The slot this process works on once attached (stream_slot_attach) */
static StreamWorkerSlot *my_slot = NULL;

/* What backend procno waits for from the worker with index worker_index. */
static StreamBackendAck *
backend_ack(int procno, int worker_index)
{
	return &StreamShared->acks[procno * stream_ext_workers_per_database + worker_index];
}

StreamWorkerSlot *
stream_slot(int slotno)
{
	return &StreamShared->slots[slotno];
}

/* Slot number of process s (0 = first batch worker) of group groupno */
int
stream_group_slot(int groupno, int s)
{
	return groupno * StreamShared->slots_per_group + s;
}

int
stream_slot_group(int slotno)
{
	return slotno / StreamShared->slots_per_group;
}

StreamWorkerRole
stream_slot_role(int slotno)
{
	int			per_group = stream_ext_workers_per_database + 1;

	return (slotno % per_group == per_group - 1) ? ROLE_COMBINER : ROLE_BATCH;
}

static StreamDatabaseGroup *
find_group(Oid dboid, int *groupno)
{
	for (int g = 0; g < StreamShared->ngroups; g++)
	{
		if (StreamShared->groups[g].dboid == dboid)
		{
			*groupno = g;
			return &StreamShared->groups[g];
		}
	}
	return NULL;
}

/* Number of database groups, and of slots in each (set at start-up) */
int
stream_group_count(void)
{
	return StreamShared->ngroups;
}

int
stream_slots_per_group(void)
{
	return StreamShared->slots_per_group;
}

/* The database the group of slotno serves (InvalidOid when none) */
Oid
stream_slot_database(int slotno)
{
	Oid			dboid;

	LWLockAcquire(StreamShared->lock, LW_SHARED);
	dboid = StreamShared->groups[stream_slot_group(slotno)].dboid;
	LWLockRelease(StreamShared->lock);
	return dboid;
}

/* Launcher side: the launcher's latch is the one writers set. */
void
stream_launcher_attach(void)
{
	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	StreamShared->launcher_pgprocno = MyProc->pgprocno;
	LWLockRelease(StreamShared->lock);
}

static void
wake_launcher(void)
{
	int			procno = StreamShared->launcher_pgprocno;

	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * Is a group idle: no process, no unapplied events, no writer in a
 * transaction that sends to it?  Lock held.
 */
static bool
group_idle_locked(int groupno)
{
	if (pg_atomic_read_u32(&StreamShared->groups[groupno].writers) != 0)
		return false;
	for (int s = 0; s < StreamShared->slots_per_group; s++)
	{
		StreamWorkerSlot *other = stream_slot(stream_group_slot(groupno, s));

		if (other->state != SLOT_FREE || other->write_pos != other->read_pos)
			return false;
	}
	return true;
}

/*
 * A group kept for a database whose processes could not start (so that
 * its writers and the launcher remember the failure), idle and not asked
 * for in START_FAILURE_KEEP_MS: another database may take it.  Lock held.
 */
static StreamDatabaseGroup *
find_stale_failed_group(int *groupno)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int g = 0; g < StreamShared->ngroups; g++)
	{
		StreamDatabaseGroup *group = &StreamShared->groups[g];

		if (group->start_failed_since != 0 && !group->launch_pending && !group->stopping &&
			TimestampDifferenceExceeds(group->start_failed_at, now, START_FAILURE_KEEP_MS) &&
			group_idle_locked(g))
		{
			*groupno = g;
			return group;
		}
	}
	return NULL;
}

/*
 * Ask the launcher to start the workers of a database that are not running.
 * Returns false when every group is taken by other databases.
 */
static bool
request_launch_locked(Oid dboid)
{
	int			groupno;
	StreamDatabaseGroup *group = find_group(dboid, &groupno);

	if (group == NULL)
	{
		group = find_group(InvalidOid, &groupno);
		if (group == NULL)
			group = find_stale_failed_group(&groupno);
		if (group == NULL)
			return false;
		group->start_failed_since = 0;
		group->start_failed_at = 0;
		group->start_retry_at = 0;
		group->early_exits = 0;
		group->early_exit_launch_at = 0;
		group->early_exit_launches = 0;
		group->settings_len = 0;
	}
	group->dboid = dboid;
	if (!group->stopping)
		group->launch_pending = true;
	return true;
}

bool
stream_request_launch(Oid dboid)
{
	bool		ok;

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	ok = request_launch_locked(dboid);
	LWLockRelease(StreamShared->lock);
	if (ok)
		wake_launcher();
	return ok;
}

/*
 * Launcher side: mark the FREE slots of every group with a pending request
 * as STARTING and return their numbers; the caller registers the processes.
 */
List *
stream_take_launch_requests(void)
{
	List	   *slots = NIL;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	for (int g = 0; g < StreamShared->ngroups; g++)
	{
		StreamDatabaseGroup *group = &StreamShared->groups[g];

		if (!group->launch_pending || group->stopping || group->start_retry_at > now)
			continue;
		group->launch_pending = false;
		group->launched_at = now;
		for (int s = 0; s < StreamShared->slots_per_group; s++)
		{
			int			slotno = stream_group_slot(g, s);
			StreamWorkerSlot *slot = &StreamShared->slots[slotno];

			if (slot->state == SLOT_FREE)
			{
				slot->state = SLOT_STARTING;
				slots = lappend_int(slots, slotno);
			}
		}
	}
	LWLockRelease(StreamShared->lock);
	return slots;
}

/* Mark what this backend waits for (stream_ext.waiting_writers). */
static void
writer_wait_begin(StreamWriterWaitKind kind, int slotno)
{
	StreamWriterWait *w = &StreamShared->waits[MyProc->pgprocno];

	w->pid = MyProcPid;
	w->dboid = MyDatabaseId;
	w->slotno = slotno;
	w->since = GetCurrentTimestamp();
	pg_write_barrier();
	pg_atomic_write_u32(&w->kind, kind);
}

/* The wait ended (also called at abort: an error may have ended it). */
void
stream_writer_wait_done(void)
{
	if (StreamShared != NULL && MyProc != NULL)
		pg_atomic_write_u32(&StreamShared->waits[MyProc->pgprocno].kind, WRITER_NOT_WAITING);
}

/*
 * Error out when the launcher could not start the workers of this
 * database after our request (started at requested_at), and has not been
 * able to for START_FAILURE_GRACE_MS.  Caller holds StreamShared->lock.
 */
static void
error_if_workers_cannot_start(StreamDatabaseGroup *group, TimestampTz requested_at)
{
	if (group->start_failed_since == 0 || group->start_failed_at < requested_at ||
		!TimestampDifferenceExceeds(group->start_failed_since, group->start_failed_at,
									START_FAILURE_GRACE_MS))
		return;
	LWLockRelease(StreamShared->lock);
	stream_writer_wait_done();
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("stream_ext workers cannot start in database \"%s\"",
					get_database_name(MyDatabaseId)),
			 errdetail("All %d background worker slots (max_worker_processes) are in use.",
					   max_worker_processes),
			 errhint("Raise max_worker_processes and restart the server: stream_ext needs %d background workers per database it serves (stream_ext.workers + 1), one launcher, and one per Kafka consumer worker.",
					 StreamShared->slots_per_group)));
}

/*
 * Error out when the processes of FAIL_EARLY_EXIT_LAUNCHES starts of the
 * group in a row stopped before they could attach, the latest start at or
 * after requested_at (a database that does not allow connections, say):
 * the launcher goes on trying, less and less often, but a writer would wait
 * for ever.  (One such start may be a passing failure.)  Caller holds
 * StreamShared->lock, released before the error.
 */
static void
error_if_workers_stop_early(StreamDatabaseGroup *group, TimestampTz requested_at)
{
	int			exits = group->early_exits;

	if (group->early_exit_launches < FAIL_EARLY_EXIT_LAUNCHES ||
		group->early_exit_launch_at < requested_at)
		return;
	LWLockRelease(StreamShared->lock);
	stream_writer_wait_done();
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("stream_ext workers cannot start in database \"%s\"",
					get_database_name(MyDatabaseId)),
			 errdetail("Their processes stopped before they could open the database %d times in a row.",
					   exits),
			 errhint("See the server log for their error (a database that does not allow connections, say). The transaction was rolled back.")));
}

/*
 * Return this backend's home batch worker slot (the first records of its
 * transactions go there), starting the database's workers first if need be.
 * Fails at once when the launcher reports that they cannot start.  With
 * join, the backend holds the group for its database until
 * stream_writer_leave_group: a writer's later records, and its commit, go
 * to the slots of the group it started with.
 */
static int
batch_slot_for_backend(bool join)
{
	TimestampTz start = GetCurrentTimestamp();
	int			index = MyProc->pgprocno % stream_ext_workers_per_database;
	bool		waiting = false;

	for (;;)
	{
		int			groupno;
		StreamDatabaseGroup *group;
		bool		requested = false;
		bool		no_room = false;

		LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
		group = find_group(MyDatabaseId, &groupno);
		if (group != NULL)
		{
			int			slotno = stream_group_slot(groupno, index);
			StreamWorkerSlot *slot = &StreamShared->slots[slotno];

			if (slot->state == SLOT_RUNNING)
			{
				if (join)
					pg_atomic_fetch_add_u32(&group->writers, 1);
				LWLockRelease(StreamShared->lock);
				if (waiting)
					stream_writer_wait_done();
				return slotno;
			}
			error_if_workers_cannot_start(group, start);
			error_if_workers_stop_early(group, start);
			if (slot->state == SLOT_FREE)
				requested = request_launch_locked(MyDatabaseId);
		}
		else
		{
			requested = request_launch_locked(MyDatabaseId);
			no_room = !requested;
		}
		LWLockRelease(StreamShared->lock);

		if (no_room)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("stream_ext serves at most %d databases at once",
							stream_ext_max_databases),
					 errhint("Raise stream_ext.max_databases and restart the server.")));
		if (requested)
			wake_launcher();

		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
									   WORKER_START_TIMEOUT_MS))
		{
			stream_writer_wait_done();
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("stream_ext workers are not running in database \"%s\"",
							get_database_name(MyDatabaseId)),
					 errdetail("No worker attached within %d seconds.",
							   WORKER_START_TIMEOUT_MS / 1000),
					 errhint("Check that CREATE EXTENSION stream_ext has been committed, "
							 "that max_worker_processes leaves room for stream_ext's workers, "
							 "and the server log for worker errors.")));
		}

		if (!waiting)
		{
			writer_wait_begin(WRITER_WAITS_FOR_WORKERS, -1);
			waiting = true;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 20L, STREAM_WAIT_WORKER_START);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

int
stream_batch_slot_for_backend(void)
{
	return batch_slot_for_backend(false);
}

/*
 * A writer's home slot at the start of its transaction, holding the group
 * for its database (above) until stream_writer_leave_group(slotno).
 */
int
stream_writer_join_group(void)
{
	return batch_slot_for_backend(true);
}

static void maybe_free_group_locked(int groupno);

/*
 * The last writer of a group whose processes all went away gives it up, as
 * the last process would have (maybe_free_group_locked).
 */
void
stream_writer_leave_group(int slotno)
{
	int			groupno = stream_slot_group(slotno);

	if (pg_atomic_fetch_sub_u32(&StreamShared->groups[groupno].writers, 1) != 1)
		return;
	for (int s = 0; s < StreamShared->slots_per_group; s++)
		if (stream_slot(stream_group_slot(groupno, s))->state != SLOT_FREE)
			return;
	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	maybe_free_group_locked(groupno);
	LWLockRelease(StreamShared->lock);
}

/* When this backend began waiting for the workers at its commit, or 0 */
static TimestampTz commit_wait_since = 0;

/*
 * A writer in sync mode waits for the workers at its commit, where
 * PostgreSQL has disarmed statement_timeout: between these two calls, the
 * waits honour it themselves, counted from the first.  (Not from the
 * statement's start: that is the arrival of the client's whole message,
 * whose statements PostgreSQL times one by one.)
 */
void
stream_commit_wait_begin(void)
{
	commit_wait_since = GetCurrentTimestamp();
}

void
stream_commit_wait_end(void)
{
	commit_wait_since = 0;
}

/* statement_timeout, during a commit's wait (stream_commit_wait_begin) */
static void
error_if_statement_timed_out(void)
{
	if (commit_wait_since == 0 || StatementTimeout <= 0 ||
		!TimestampDifferenceExceeds(commit_wait_since, GetCurrentTimestamp(), StatementTimeout))
		return;
	commit_wait_since = 0;
	stream_writer_wait_done();
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("canceling statement due to statement timeout")));
}

/* How far along a chain of lock waits a waiting writer looks for itself */
#define MAX_WAIT_CHAIN 4

/*
 * Does process pid wait for a lock this backend holds, directly or through
 * a chain of at most depth processes each waiting for the next?
 */
static bool
waits_for_us(int pid, int depth)
{
	ArrayType  *blockers;
	Datum	   *pids;
	int			n;

	blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(pid)));
	deconstruct_array(blockers, INT4OID, sizeof(int32), true, TYPALIGN_INT, &pids, NULL, &n);
	for (int i = 0; i < n; i++)
	{
		int			blocker = DatumGetInt32(pids[i]);

		if (blocker == MyProcPid || (depth > 1 && waits_for_us(blocker, depth - 1)))
			return true;
	}
	return false;
}

/*
 * A writer waiting for its worker (for ring space or for the acknowledgement)
 * must not hold a lock the worker waits for: the lock manager cannot see a
 * wait that is not for a lock, so a cycle through it is checked here.  The
 * worker may wait for us directly (after DDL on the stream or a view in the
 * same transaction), or through others: DDL on the stream queued behind our
 * RowExclusiveLock, with the worker's AccessShareLock queued behind it.
 * Breaking the cycle from the writer's side lets the DDL and the worker go
 * on; the writer's transaction can be retried.
 */
static void
error_if_worker_waits_for_us(StreamWorkerSlot *slot)
{
	pid_t		pid = slot->pid;

	if (pid == 0 || !waits_for_us(pid, MAX_WAIT_CHAIN))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
			 errmsg("deadlock detected between this transaction and a stream worker"),
			 errdetail("The worker that applies this transaction's events waits for a lock this transaction holds, or for a transaction that waits for one."),
			 errhint("Do not insert into a stream in a transaction that altered or locked the stream or its continuous views; DDL on a stream waits for its writers. The transaction can be retried.")));
}

/*
 * Error out when this database's workers are stopped (stream_stop_database:
 * DROP EXTENSION, or a DROP or copy of the database) while the writer waits
 * for them.  The statement that stopped them may wait for this writer's
 * locks (DROP EXTENSION for its streams'), and the workers stay stopped
 * until it ends: neither would ever go on.
 */
static void
error_if_workers_stopped(StreamWorkerSlot *slot)
{
	if (slot->state == SLOT_RUNNING || !stream_database_stopping(MyDatabaseId))
		return;
	stream_writer_wait_done();
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("stream_ext workers of database \"%s\" are stopped",
					get_database_name(MyDatabaseId)),
			 errdetail("DROP EXTENSION stream_ext, or a DROP or copy of the database, stopped them while this transaction waited for them to apply its events."),
			 errhint("The transaction was rolled back; it can be retried once that statement has ended.")));
}

/*
 * Every 100 ms of a writer's wait for slot's worker, waiting since since:
 * error out when the wait can never end (the worker waits for this writer,
 * is stopped, or cannot start).
 */
static void
error_if_wait_cannot_end(StreamWorkerSlot *slot, TimestampTz since)
{
	error_if_worker_waits_for_us(slot);
	error_if_workers_stopped(slot);
	if (slot->state != SLOT_RUNNING)
	{
		LWLockAcquire(StreamShared->lock, LW_SHARED);
		error_if_workers_stop_early(&StreamShared->groups[stream_slot_group(slot - StreamShared->slots)],
									since);
		LWLockRelease(StreamShared->lock);
	}
}

/*
 * Append one record (header plus payload) to a worker's ring, waiting while
 * the ring lacks room.  Sets hdr->len.
 */
void
stream_ring_put(int slotno, StreamRecordHeader *hdr,
				const char *payload, Size payload_len)
{
	StreamWorkerSlot *slot = &StreamShared->slots[slotno];
	Size		size = StreamShared->ring_size;
	Size		len = STREAM_RECORD_HDRSZ + MAXALIGN(payload_len);
	bool		sleeping = false;
	TimestampTz sleeping_since = 0;

	if (len > size / 2)
		elog(ERROR, "stream record of %zu bytes exceeds half the ring", len);
	hdr->len = (uint32) len;

	for (;;)
	{
		uint64		wpos;
		Size		offset;
		Size		tail;
		Size		need;

		LWLockAcquire(slot->ring_lock, LW_EXCLUSIVE);
		wpos = slot->write_pos;
		offset = wpos % size;
		tail = size - offset;
		need = (tail < len) ? tail + len : len;

		if (size - (wpos - slot->read_pos) >= need)
		{
			if (tail < len)
			{
				StreamRecordHeader *pad = (StreamRecordHeader *) (slot->ring + offset);

				pad->len = (uint32) tail;
				pad->kind = STREAM_RECORD_PAD;
				wpos += tail;
				offset = 0;
			}
			memcpy(slot->ring + offset, hdr, sizeof(StreamRecordHeader));
			if (payload_len > 0)
				memcpy(slot->ring + offset + STREAM_RECORD_HDRSZ, payload, payload_len);
			slot->write_pos = wpos + len;
			LWLockRelease(slot->ring_lock);
			break;
		}
		LWLockRelease(slot->ring_lock);

		/* Ring full: the worker is behind.  Wait for it to release space. */
		if (!sleeping)
		{
			ConditionVariablePrepareToSleep(&slot->space_cv);
			writer_wait_begin(WRITER_WAITS_FOR_QUEUE, slotno);
			sleeping = true;
			sleeping_since = GetCurrentTimestamp();
		}
		else
		{
			if (ConditionVariableTimedSleep(&slot->space_cv, 100, STREAM_WAIT_QUEUE_FULL))
				error_if_wait_cannot_end(slot, sleeping_since);
			error_if_statement_timed_out();
		}
	}
	if (sleeping)
	{
		ConditionVariableCancelSleep();
		stream_writer_wait_done();
	}

	/* Wake the worker if it sleeps for records (stream_ring_sleep). */
	stream_sleeper_wake(&slot->sleeper, slot->pgprocno);
}

/* Sequence number for this backend's next acknowledged transaction. */
uint64
stream_ack_next_seq(void)
{
	StreamBackendAck *ack = backend_ack(MyProc->pgprocno, 0);

	return pg_atomic_add_fetch_u64(&ack->request_seq, 1);
}

/*
 * Wait until the worker has durably applied every event this backend sent up
 * to and including the record carrying seq.  Errors out when the worker
 * reports that the transaction's events could not be applied.
 */
void
stream_ack_wait(int slotno, uint64 seq)
{
	StreamBackendAck *ack = backend_ack(MyProc->pgprocno, slotno % StreamShared->slots_per_group);
	StreamWorkerSlot *slot = &StreamShared->slots[slotno];
	bool		waiting = false;
	TimestampTz checked_at = 0;
	TimestampTz waiting_since = 0;

	for (;;)
	{
		uint32		wake;
		TimestampTz now;

		if (pg_atomic_read_u64(&ack->done_seq) >= seq)
			break;

		/* A worker that went away is started again; its ring is kept. */
		if (slot->state == SLOT_FREE)
			stream_request_launch(MyDatabaseId);

		now = GetCurrentTimestamp();
		if (!waiting)
		{
			writer_wait_begin(WRITER_WAITS_FOR_COMMIT, slotno);
			waiting = true;
			checked_at = now;
			waiting_since = now;
		}
		else if (TimestampDifferenceExceeds(checked_at, now, 100))
		{
			error_if_wait_cannot_end(slot, waiting_since);
			checked_at = now;
		}
		error_if_statement_timed_out();
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();

		/*
		 * Sleep on the futex word, not the latch: the worker's wake-up is
		 * then no signal (futex.c).  An interrupt that comes between the
		 * check above and the sleep is served after at most the 100 ms.
		 */
		wake = stream_sleeper_announce(&ack->sleeper);
		stream_sleeper_sleep(&ack->sleeper, wake,
							 pg_atomic_read_u64(&ack->done_seq) < seq &&
							 !(InterruptPending && INTERRUPTS_CAN_BE_PROCESSED()),
							 100L, STREAM_WAIT_COMMIT_ACK);
	}
	if (waiting)
		stream_writer_wait_done();

	pg_read_barrier();
	if (pg_atomic_read_u64(&ack->failed_seq) == seq)
	{
		pg_read_barrier();		/* the failure, stored before failed_seq */
		ereport(ERROR,
				(errcode(ack->failure_code),
				 errmsg("could not apply this transaction's stream events to continuous views"),
				 errdetail("The stream worker failed: %s", ack->failure),
				 errhint("The transaction was rolled back; it can be retried.")));
	}
}

/*
 * Wake the combiner of database dboid, if it runs.  Its process number is
 * read under the lock: a combiner that exits clears it.
 */
void
stream_wake_combiner(Oid dboid)
{
	int			groupno;

	LWLockAcquire(StreamShared->lock, LW_SHARED);
	if (find_group(dboid, &groupno) != NULL)
	{
		StreamWorkerSlot *slot = stream_slot(stream_group_slot(groupno,
															   StreamShared->slots_per_group - 1));

		if (slot->state == SLOT_RUNNING && slot->pgprocno >= 0)
			SetLatch(&ProcGlobal->allProcs[slot->pgprocno].procLatch);
	}
	LWLockRelease(StreamShared->lock);
}

/* Deltas of the database of this slot may have become mergeable. */
void
stream_note_mergeable(int slotno)
{
	pg_atomic_fetch_add_u64(&StreamShared->groups[stream_slot_group(slotno)].mergeable, 1);
}

/*
 * Deltas of database dboid may have become mergeable, committed by a
 * session that wrote none (COMMIT PREPARED); nothing when it has no
 * workers.
 */
void
stream_note_mergeable_in_database(Oid dboid)
{
	int			groupno = stream_group_of_database(dboid);

	if (groupno >= 0)
		pg_atomic_fetch_add_u64(&StreamShared->groups[groupno].mergeable, 1);
}

uint64
stream_mergeable_count(int slotno)
{
	return pg_atomic_read_u64(&StreamShared->groups[stream_slot_group(slotno)].mergeable);
}

/*
 * The combiner of slotno's group completed a merge round that began when
 * the mergeable counter was mergeable_at_start; all_merged when it merged
 * every view's deltas (not a round a backlog cut short).
 */
void
stream_note_merge_round(int slotno, uint64 mergeable_at_start, bool all_merged)
{
	StreamDatabaseGroup *group = &StreamShared->groups[stream_slot_group(slotno)];

	if (all_merged)
		pg_atomic_write_u64(&group->merged, mergeable_at_start);
	pg_atomic_write_u64(&group->last_merge_at, (uint64) GetCurrentTimestamp());
}

/* The group serving dboid, or -1. */
int
stream_group_of_database(Oid dboid)
{
	int			groupno = -1;

	LWLockAcquire(StreamShared->lock, LW_SHARED);
	if (find_group(dboid, &groupno) == NULL)
		groupno = -1;
	LWLockRelease(StreamShared->lock);
	return groupno;
}

/*
 * Are the workers of database dboid stopped (stream_stop_database)?  Its
 * Kafka workers then leave too: a DROP or copy of the database waits for
 * every process connected to it.
 */
bool
stream_database_stopping(Oid dboid)
{
	int			groupno;
	StreamDatabaseGroup *group;
	bool		stopping;

	LWLockAcquire(StreamShared->lock, LW_SHARED);
	group = find_group(dboid, &groupno);
	stopping = (group != NULL && group->stopping);
	LWLockRelease(StreamShared->lock);
	return stopping;
}

/*
 * Does a combiner of database dboid run?  It looks after the database's
 * Kafka workers; without one nobody does.
 */
bool
stream_database_combiner_running(Oid dboid)
{
	int			groupno;
	bool		running = false;

	LWLockAcquire(StreamShared->lock, LW_SHARED);
	if (find_group(dboid, &groupno) != NULL)
		for (int s = 0; s < StreamShared->slots_per_group; s++)
		{
			int			slotno = stream_group_slot(groupno, s);

			if (stream_slot_role(slotno) == ROLE_COMBINER &&
				StreamShared->slots[slotno].state == SLOT_RUNNING)
				running = true;
		}
	LWLockRelease(StreamShared->lock);
	return running;
}

/*
 * When no process of the group runs any more, its published settings go:
 * the next ones to start may have others (ALTER DATABASE ... SET).
 */
static void
forget_settings_if_stopped_locked(int groupno)
{
	for (int s = 0; s < StreamShared->slots_per_group; s++)
		if (StreamShared->slots[stream_group_slot(groupno, s)].state == SLOT_RUNNING)
			return;
	StreamShared->groups[groupno].settings_len = 0;
}

/*
 * Worker side: publish the settings (len bytes; 0: none) the workers of
 * dboid's group apply events with; a no-op if no group serves dboid.
 */
void
stream_group_publish_settings(Oid dboid, const char *settings, int len)
{
	StreamDatabaseGroup *group;
	int			groupno;

	Assert(len >= 0 && len <= STREAM_GROUP_SETTINGS_SIZE);
	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	group = find_group(dboid, &groupno);
	if (group != NULL)
	{
		memcpy(group->settings, settings, len);
		group->settings_len = len;
	}
	LWLockRelease(StreamShared->lock);
}

/*
 * Writer side: copy the settings the workers of dboid published into buf
 * (STREAM_GROUP_SETTINGS_SIZE bytes); returns their length, 0 if none.
 */
int
stream_group_settings(Oid dboid, char *buf)
{
	StreamDatabaseGroup *group;
	int			groupno;
	int			len = 0;

	LWLockAcquire(StreamShared->lock, LW_SHARED);
	group = find_group(dboid, &groupno);
	if (group != NULL)
	{
		len = group->settings_len;
		memcpy(buf, group->settings, len);
	}
	LWLockRelease(StreamShared->lock);
	return len;
}

/*
 * Launcher side: the process of slotno could not be registered (no
 * background worker slot free).  The slot is free again; the group keeps
 * the failure, which its writers see, and a new request is tried
 * START_RETRY_MS later at the earliest.  Returns true when this begins a
 * failure (the caller logs it once).
 */
bool
stream_slot_start_failed(int slotno)
{
	StreamWorkerSlot *slot = &StreamShared->slots[slotno];
	StreamDatabaseGroup *group = &StreamShared->groups[stream_slot_group(slotno)];
	TimestampTz now = GetCurrentTimestamp();
	bool		first;

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	if (slot->state == SLOT_STARTING)
		slot->state = SLOT_FREE;
	first = (group->start_failed_since == 0);
	if (first)
		group->start_failed_since = now;
	group->start_failed_at = now;
	group->start_retry_at = TimestampTzPlusMilliseconds(now, START_RETRY_MS);
	LWLockRelease(StreamShared->lock);
	return first;
}

/*
 * Launcher side: every process of group groupno it was asked for could be
 * registered.  Returns true when the group had failed before (the caller
 * logs the recovery once).
 */
bool
stream_group_started(int groupno)
{
	StreamDatabaseGroup *group = &StreamShared->groups[groupno];
	bool		was_failing;

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	was_failing = (group->start_failed_since != 0);
	group->start_failed_since = 0;
	group->start_failed_at = 0;
	group->start_retry_at = 0;
	LWLockRelease(StreamShared->lock);
	return was_failing;
}

/* Worker side: mark a process as attached to its slot. */
bool
stream_slot_attach(int slotno)
{
	StreamWorkerSlot *slot = &StreamShared->slots[slotno];
	StreamDatabaseGroup *group = &StreamShared->groups[stream_slot_group(slotno)];
	bool		ok;

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	ok = (group->dboid == MyDatabaseId && !group->stopping);
	if (ok)
	{
		group->early_exits = 0;
		group->early_exit_launches = 0;
		slot->state = SLOT_RUNNING;
		slot->pid = MyProcPid;
		slot->pgprocno = MyProc->pgprocno;
		stream_sleeper_init(&slot->sleeper);
		my_slot = slot;
	}
	LWLockRelease(StreamShared->lock);
	return ok;
}

/*
 * Give up a group that has no process and no unapplied events, unless its
 * processes could not start: it keeps that failure.  Lock held.
 */
static void
maybe_free_group_locked(int groupno)
{
	StreamDatabaseGroup *group = &StreamShared->groups[groupno];

	if (!group_idle_locked(groupno) || group->start_failed_since != 0 || group->restart_wanted)
		return;
	if (!group->launch_pending && !group->stopping)
		group->dboid = InvalidOid;
}

/* Worker side: the process leaves its slot. */
void
stream_slot_detach(int slotno)
{
	StreamWorkerSlot *slot = &StreamShared->slots[slotno];

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
	{
		slot->state = SLOT_FREE;
		slot->pid = 0;
		slot->pgprocno = -1;
	}
	forget_settings_if_stopped_locked(stream_slot_group(slotno));
	maybe_free_group_locked(stream_slot_group(slotno));
	LWLockRelease(StreamShared->lock);
}

/*
 * Launcher side: a registered process stopped; free its slot if it never
 * attached.  A process that stopped before attaching (its database could not
 * be opened: a full disk at start-up, say) keeps the group for a restart, up
 * to MAX_EARLY_EXITS times in a row, so that a database whose processes all
 * failed at once is not forgotten until its next writer.  Returns false when
 * the group gives up (the caller logs it).
 */
bool
stream_slot_reap(int slotno)
{
	StreamWorkerSlot *slot = &StreamShared->slots[slotno];
	StreamDatabaseGroup *group = &StreamShared->groups[stream_slot_group(slotno)];
	bool		keeps = true;

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	if (slot->state == SLOT_STARTING)
	{
		slot->state = SLOT_FREE;
		if (OidIsValid(group->dboid) && !group->stopping)
		{
			TimestampTz now = GetCurrentTimestamp();
			long		backoff;

			keeps = (++group->early_exits <= MAX_EARLY_EXITS);
			if (group->early_exit_launch_at != group->launched_at)
				group->early_exit_launches++;	/* the first of its start */
			group->early_exit_launch_at = group->launched_at;
			group->restart_wanted = keeps;
			/* no crash loop, whoever asks (a writer waiting, or the launcher) */
			backoff = Min((long) START_RETRY_MS << Min(group->early_exit_launches - 1, 6),
						  EARLY_EXIT_BACKOFF_MAX_MS);
			group->start_retry_at = TimestampTzPlusMilliseconds(now, backoff);
		}
	}
	maybe_free_group_locked(stream_slot_group(slotno));
	LWLockRelease(StreamShared->lock);
	return keeps;
}

/*
 * Launcher side: a group whose processes partly stopped (after an error) is
 * started again.  Returns true when a launch was requested.
 */
bool
stream_group_needs_restart(int groupno)
{
	StreamDatabaseGroup *group = &StreamShared->groups[groupno];
	bool		any_free = false;
	bool		alive = false;

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	if (OidIsValid(group->dboid) && !group->stopping && !group->launch_pending)
	{
		for (int s = 0; s < StreamShared->slots_per_group; s++)
		{
			StreamWorkerSlot *slot = stream_slot(stream_group_slot(groupno, s));

			if (slot->state == SLOT_FREE)
				any_free = true;
			if (slot->state != SLOT_FREE || slot->write_pos != slot->read_pos)
				alive = true;
		}
		alive = alive || group->restart_wanted;
		if (any_free && alive)
		{
			group->launch_pending = true;
			group->restart_wanted = false;
		}
	}
	LWLockRelease(StreamShared->lock);
	return any_free && alive;
}

/* Worker side: forget unapplied events (the extension was dropped). */
void
stream_ring_discard(StreamWorkerSlot *slot)
{
	if (slot->ring == NULL)
		return;
	LWLockAcquire(slot->ring_lock, LW_EXCLUSIVE);
	slot->read_pos = slot->write_pos;
	LWLockRelease(slot->ring_lock);
	ConditionVariableBroadcast(&slot->space_cv);
}

uint64
stream_ring_written(StreamWorkerSlot *slot)
{
	uint64		wpos;

	LWLockAcquire(slot->ring_lock, LW_SHARED);
	wpos = slot->write_pos;
	LWLockRelease(slot->ring_lock);
	return wpos;
}

/*
 * Worker side: sleep until a writer appends past seen (the write position
 * the worker has looked at), a signal arrives, or timeout_ms passed (at
 * most a second: a signal that comes just before the sleep, other than the
 * worker's own, which call stream_ring_interrupt_sleep, is seen then).  A
 * futex, not the latch: a writer's wake-up is then no signal (futex.c).
 */
void
stream_ring_sleep(StreamWorkerSlot *slot, uint64 seen, long timeout_ms)
{
	uint32		wake = stream_sleeper_announce(&slot->sleeper);

	/* a signal handler sets the latch or a flag: then no sleep */
	stream_sleeper_sleep(&slot->sleeper, wake,
						 stream_ring_written(slot) == seen && !MyLatch->is_set &&
						 !(InterruptPending && INTERRUPTS_CAN_BE_PROCESSED()) &&
						 !ConfigReloadPending && PostmasterIsAlive(),
						 Min(Max(timeout_ms, 1L), 1000L), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	if (!PostmasterIsAlive())
		proc_exit(1);
}

/*
 * From a signal handler of a worker: make its sleep for records end now,
 * or the next one not start (the sleep compares the word it read before).
 */
void
stream_ring_interrupt_sleep(void)
{
	if (my_slot != NULL)
		stream_sleeper_interrupt(&my_slot->sleeper);
}

/* Worker side: give ring space up to upto back to writers. */
void
stream_ring_release(StreamWorkerSlot *slot, uint64 upto)
{
	LWLockAcquire(slot->ring_lock, LW_EXCLUSIVE);
	Assert(upto <= slot->write_pos);
	slot->read_pos = upto;
	LWLockRelease(slot->ring_lock);
	ConditionVariableBroadcast(&slot->space_cv);
}

void
stream_ack_done(int procno, int slotno, uint64 seq)
{
	StreamBackendAck *ack = backend_ack(procno, slotno % StreamShared->slots_per_group);

	uint64		done = pg_atomic_read_u64(&ack->done_seq);

	/*
	 * Raised, never lowered, also by workers of two databases at once (a
	 * backend's acknowledgements are per worker index); the compare and
	 * exchange is a full barrier: the failure stored before is seen first.
	 */
	while (done < seq && !pg_atomic_compare_exchange_u64(&ack->done_seq, &done, seq))
		;
	stream_sleeper_wake(&ack->sleeper, procno);
}

void
stream_ack_failed(int procno, int slotno, uint64 seq, int sqlerrcode, const char *why)
{
	StreamBackendAck *ack = backend_ack(procno, slotno % StreamShared->slots_per_group);

	ack->failure_code = sqlerrcode;
	strlcpy(ack->failure, why, sizeof(ack->failure));
	pg_write_barrier();
	pg_atomic_write_u64(&ack->failed_seq, seq);
	stream_ack_done(procno, slotno, seq);
}

/*
 * Stop the workers of a database and keep them stopped until
 * stream_resume_database; used around commands that need the database
 * to have no other sessions (DROP DATABASE, CREATE DATABASE ... TEMPLATE).
 */
void
stream_stop_database(Oid dboid)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		int			groupno;
		StreamDatabaseGroup *group;
		bool		running = false;

		LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
		group = find_group(dboid, &groupno);
		if (group != NULL)
		{
			group->stopping = true;
			group->launch_pending = false;
			for (int s = 0; s < StreamShared->slots_per_group; s++)
			{
				StreamWorkerSlot *slot = stream_slot(stream_group_slot(groupno, s));

				if (slot->state != SLOT_FREE)
				{
					running = true;
					if (slot->pid != 0)
						kill(slot->pid, SIGTERM);
				}
			}
		}
		LWLockRelease(StreamShared->lock);

		if (!running ||
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), 10000))
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Undo stream_stop_database.  When the database is gone, its rings are
 * emptied and the group is given up.
 */
void
stream_resume_database(Oid dboid)
{
	int			groupno;
	StreamDatabaseGroup *group;
	bool		exists = (get_database_name(dboid) != NULL);

	LWLockAcquire(StreamShared->lock, LW_EXCLUSIVE);
	group = find_group(dboid, &groupno);
	if (group != NULL)
	{
		group->stopping = false;
		if (!exists)
		{
			for (int s = 0; s < StreamShared->slots_per_group; s++)
				stream_ring_discard(stream_slot(stream_group_slot(groupno, s)));
			group->dboid = InvalidOid;
		}
		else
			group->launch_pending = true;
	}
	LWLockRelease(StreamShared->lock);
	if (group != NULL && exists)
		wake_launcher();
}
