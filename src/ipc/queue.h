/*
 * queue.h
 *	  Shared memory of stream_ext: worker slots, per-worker event rings and
 *	  the acknowledgements that let a committing writer wait for its events.
 *
 * See src/ipc/README.md for the protocol.
 */
#ifndef STREAM_EXT_QUEUE_H
#define STREAM_EXT_QUEUE_H

#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "ipc/futex.h"

typedef enum StreamSlotState
{
	SLOT_FREE = 0,				/* no process */
	SLOT_STARTING,				/* registered, not yet attached */
	SLOT_RUNNING				/* process attached */
} StreamSlotState;

typedef enum StreamWorkerRole
{
	ROLE_BATCH,					/* applies events to continuous views */
	ROLE_COMBINER				/* merges deltas into combine-state tables */
} StreamWorkerRole;

/*
 * One worker process of one database, and its event ring.
 *
 * Locking rules:
 * - To change state, pid or pgprocno hold StreamShared->lock exclusive;
 *   to read them together (say, to signal the process) hold it shared.  A
 *   single unlocked read of state is allowed where a stale value only
 *   delays a wake-up or a choice (writers choosing a ring, route.c), and
 *   pgprocno is then read once into a local and checked for -1.
 * - To change write_pos or read_pos hold ring_lock exclusive; to read
 *   them consistently hold it shared.  The owning worker reads its own
 *   read_pos without the lock (only it moves read_pos while it runs), and
 *   reads the records in [read_pos, write_pos) without it: writers never
 *   touch that range.
 * - Lock order: StreamShared->lock before ring_lock, never the reverse.
 * - ring_lock, space_cv and ring are set when shared memory is
 *   initialised and read without a lock.
 * - A worker sleeps for records on sleeper, which a writer wakes once it
 *   moved write_pos (ipc/futex.c).
 */
/* Views a worker's slot notes as ignoring the time limit's cancel, at most */
#define STREAM_IGNORED_CANCEL_NOTES 8

/*
 * Views a process that applies events but reads no ring (the combiner, a
 * Kafka consumer worker) leaves alone until a time, since their code
 * ignored the time limit's cancel and the process before it was ended
 * (worker/paused_views.c).  In the shared slot the process takes again when
 * it is started again; written and read by that process only.
 */
typedef struct StreamPausedViews
{
	Oid			dboid;			/* the database of the entries */
	struct
	{
		int			view;		/* 0: a free entry */
		int			times;		/* ended the process this often, each
								 * within a pause's length of the last */
		bool		recorded;	/* in view_errors */
		TimestampTz until;
	}			entries[STREAM_IGNORED_CANCEL_NOTES];
} StreamPausedViews;

typedef struct StreamWorkerSlot
{
	StreamSlotState state;
	pid_t		pid;
	int			pgprocno;		/* to set the process's latch */

	LWLock	   *ring_lock;
	uint64		write_pos;		/* bytes ever written */
	uint64		read_pos;		/* bytes ever released by the worker */
	ConditionVariable space_cv; /* broadcast when ring space is released */
	char	   *ring;			/* NULL for combiner slots */
	StreamSleeper sleeper;		/* the worker sleeping for records */

	/*
	 * Views whose code ignored the time limit's cancel, so that the worker
	 * was ended (worker/worker.c): the workers after it skip each view's
	 * events up to its ring position end.  Written and read by the slot's
	 * worker only.
	 */
	Oid			ignored_cancel_db;
	struct
	{
		int			view;		/* 0: a free entry */
		uint64		end;
	}			ignored_cancel[STREAM_IGNORED_CANCEL_NOTES];

	/* In a combiner's slot, the views it leaves alone (ignored_cancel unused) */
	StreamPausedViews paused;
} StreamWorkerSlot;

/* Room for the workers' settings a writer adopts (worker/settings.c) */
#define STREAM_GROUP_SETTINGS_SIZE 1024

/*
 * The workers of one database: stream_ext.workers batch workers, then one
 * combiner.  To read or change dboid, launch_pending, stopping or the
 * start_* fields hold StreamShared->lock (exclusive to change); mergeable,
 * merged and last_merge_at are atomic and read without a lock (only the
 * combiner writes the last two).
 */
typedef struct StreamDatabaseGroup
{
	Oid			dboid;			/* InvalidOid when the group is unused */
	bool		launch_pending; /* the launcher should start FREE slots */
	bool		stopping;		/* being stopped for DROP DATABASE etc. */
	TimestampTz start_failed_since; /* the launcher could not start a
									 * process of the group since then (0:
									 * it could) */
	TimestampTz start_failed_at;	/* its latest failed attempt */
	TimestampTz start_retry_at; /* the launcher tries again from then */
	int			early_exits;	/* processes in a row that stopped before
								 * attaching (a full disk at start-up, say) */
	TimestampTz launched_at;	/* the launcher's latest start of processes */
	TimestampTz early_exit_launch_at;	/* the start of the latest that
										 * stopped before attaching */
	int			early_exit_launches;	/* starts in a row whose processes
										 * stopped before attaching */
	bool		restart_wanted; /* one did: start the group again */
	pg_atomic_uint64 mergeable; /* bumped when deltas may have become
								 * mergeable: a writer committed, or a worker
								 * applied events of async writers */
	pg_atomic_uint64 merged;	/* mergeable when the combiner's last
								 * completed round began */
	pg_atomic_uint64 last_merge_at; /* TimestampTz that round ended */
	pg_atomic_uint32 writers;	/* backends in a transaction that sends to
								 * these workers: the group is not given up
								 * (to another database) while any is */
	int			settings_len;	/* bytes in settings; 0: none published */
	char		settings[STREAM_GROUP_SETTINGS_SIZE];	/* the workers' values of
														 * the settings results
														 * depend on
														 * (worker/settings.c) */
} StreamDatabaseGroup;

/* What a writer waits for (StreamWriterWait.kind) */
typedef enum StreamWriterWaitKind
{
	WRITER_NOT_WAITING = 0,
	WRITER_WAITS_FOR_QUEUE,		/* room in a full ring */
	WRITER_WAITS_FOR_COMMIT,	/* a worker's acknowledgement at COMMIT */
	WRITER_WAITS_FOR_WORKERS	/* the database's workers to start */
} StreamWriterWaitKind;

/*
 * What a backend waits for, for stream_ext.waiting_writers; one per
 * backend, indexed by pgprocno.  Only the backend writes it: slotno and
 * since first, then kind (a write barrier between).  Readers read kind,
 * then the rest (a read barrier between), and accept a stale view.
 */
typedef struct StreamWriterWait
{
	pg_atomic_uint32 kind;		/* StreamWriterWaitKind */
	int			pid;			/* of the backend that set it */
	Oid			dboid;
	int			slotno;
	TimestampTz since;
} StreamWriterWait;

/*
 * Wait events.  PostgreSQL 15 gives extensions a single wait event name,
 * "Extension"; these are existing events of type IPC whose meaning is what
 * a writer does: send to a shared queue that is full, receive the
 * worker's acknowledgement through shared memory, wait for background
 * workers to start.  stream_ext.waiting_writers tells them apart from
 * PostgreSQL's own uses.
 */
#define STREAM_WAIT_QUEUE_FULL		WAIT_EVENT_MQ_SEND
#define STREAM_WAIT_COMMIT_ACK		WAIT_EVENT_MQ_RECEIVE
#define STREAM_WAIT_WORKER_START	WAIT_EVENT_BGWORKER_STARTUP

/*
 * What a backend waits for at commit, one per backend and batch worker of
 * its database.  No lock: only the owning backend advances request_seq (of
 * worker 0; it is kept across backends that reuse the pgprocno); only the
 * worker advances done_seq and failed_seq.  The worker writes failure_code
 * and failure before failed_seq (a write barrier between), and the backend
 * reads failed_seq before them (a read barrier between).  A backend that
 * sleeps for done_seq sleeps on sleeper, which the worker wakes once it
 * set done_seq (ipc/futex.c).
 */
typedef struct StreamBackendAck
{
	pg_atomic_uint64 request_seq;
	pg_atomic_uint64 done_seq;
	StreamSleeper sleeper;		/* the backend sleeping for done_seq */
	pg_atomic_uint64 failed_seq;	/* transaction whose events were lost */
	int			failure_code;	/* its SQLSTATE; written before failed_seq */
	char		failure[256];	/* why; written before failed_seq */
} StreamBackendAck;

/*
 * The whole area.  lock protects the groups and the slots' process fields
 * (rules above).  launcher_pgprocno is written under lock exclusive by the
 * launcher when it starts, and read without a lock to wake it: a stale
 * value sets another process's latch, which is harmless.  The other fields
 * are set when shared memory is initialised and read without a lock.
 */
typedef struct StreamExtShared
{
	LWLock	   *lock;			/* groups and slot states */
	int			launcher_pgprocno;	/* -1 when no launcher runs */
	int			ngroups;
	int			slots_per_group;
	Size		ring_size;
	TimestampTz rings_made;		/* when this shared memory was laid out */
	StreamDatabaseGroup *groups;
	StreamWorkerSlot *slots;	/* ngroups * slots_per_group */
	StreamBackendAck *acks;		/* indexed by pgprocno */
	StreamWriterWait *waits;	/* indexed by pgprocno */
	int			nwaits;
} StreamExtShared;

extern StreamExtShared *StreamShared;

extern void stream_shmem_request(void);
extern void stream_shmem_startup(void);
extern TimestampTz stream_rings_made(void);
extern int	stream_writer_join_group(void);
extern void stream_writer_leave_group(int slotno);

/* slot arithmetic */
extern StreamWorkerSlot *stream_slot(int slotno);
extern int	stream_slot_group(int slotno);
extern int	stream_group_slot(int groupno, int s);
extern StreamWorkerRole stream_slot_role(int slotno);

/* writers */
extern int	stream_batch_slot_for_backend(void);
extern uint64 stream_ack_next_seq(void);
extern void stream_ack_wait(int slotno, uint64 seq);
extern void stream_note_mergeable(int slotno);
extern void stream_note_mergeable_in_database(Oid dboid);
extern void stream_wake_combiner(Oid dboid);
extern uint64 stream_mergeable_count(int slotno);

extern void stream_writer_wait_done(void);
extern void stream_commit_wait_begin(void);
extern void stream_commit_wait_end(void);

/* workers */
extern bool stream_slot_attach(int slotno);
extern void stream_slot_detach(int slotno);
extern bool stream_slot_reap(int slotno);
extern bool stream_group_needs_restart(int groupno);
extern void stream_ring_discard(StreamWorkerSlot *slot);
extern uint64 stream_ring_written(StreamWorkerSlot *slot);
extern void stream_ring_sleep(StreamWorkerSlot *slot, uint64 seen, long timeout_ms);
extern void stream_ring_interrupt_sleep(void);
extern void stream_ring_release(StreamWorkerSlot *slot, uint64 upto);
extern void stream_ack_done(int procno, int slotno, uint64 seq);
extern void stream_ack_failed(int procno, int slotno, uint64 seq, int sqlerrcode,
							  const char *why);

/* the combiner */
extern void stream_note_merge_round(int slotno, uint64 mergeable_at_start, bool all_merged);

/* status, for the metrics views */
extern int	stream_group_of_database(Oid dboid);
extern bool stream_database_stopping(Oid dboid);
extern bool stream_database_combiner_running(Oid dboid);
extern void stream_group_publish_settings(Oid dboid, const char *settings, int len);
extern int	stream_group_settings(Oid dboid, char *buf);

/* launcher and database lifecycle */
extern int	stream_group_count(void);
extern int	stream_slots_per_group(void);
extern Oid	stream_slot_database(int slotno);
extern void stream_launcher_attach(void);
extern bool stream_request_launch(Oid dboid);
extern List *stream_take_launch_requests(void);
extern bool stream_slot_start_failed(int slotno);
extern bool stream_group_started(int groupno);
extern void stream_stop_database(Oid dboid);
extern void stream_resume_database(Oid dboid);

#endif
