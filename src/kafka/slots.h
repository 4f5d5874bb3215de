/*
 * slots.h
 *	  Shared memory of the Kafka workers: one slot per running consumer
 *	  worker or producer, with its status for stream_ext.kafka_consumers and
 *	  stream_ext.kafka_producers.
 */
#ifndef STREAM_EXT_KAFKA_SLOTS_H
#define STREAM_EXT_KAFKA_SLOTS_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#include "ipc/queue.h"
#include "metrics/rate.h"
#include "worker/apply.h"

#define KAFKA_MAX_STATUS_PARTITIONS 64

/*
 * One consumer worker (consumer_id, worker index) or producer (producer
 * set, consumer_id is the producer's id, index 0) of one database.
 *
 * Locking rules:
 * - To read a slot's identity or supervision fields (dboid, producer,
 *   consumer_id, stream, index, pid, starting, registered_at, stop_xid, failures, retry_at,
 *   transient) hold
 *   KafkaShared->lock, shared or exclusive; to change any of them hold it
 *   exclusive.  Claiming a free slot (consumer_id == 0) and freeing one are
 *   such changes, done by the supervisor only while no worker is attached
 *   (pid == 0 and not starting).
 * - The status fields (state, npartitions, partitions, messages, lag,
 *   lag_known, rate, last_error, last_error_at) are read and written under the slot's
 *   spinlock mutex, held only to copy them.  They are written by the slot's
 *   worker while it is attached (from setting pid to clearing it), and by
 *   the supervisor only while no worker is attached, then holding
 *   KafkaShared->lock exclusive as well.
 * - A reader that needs both (kafka_worker_status) holds KafkaShared->lock
 *   shared and copies the slot under mutex.
 */
typedef struct KafkaSlot
{
	/* identity: consumer_id == 0 means the slot is free */
	Oid			dboid;
	bool		producer;		/* a producer's slot (ids are per kind) */
	int			consumer_id;
	Oid			stream;			/* a producer's stream, set by its worker
								 * once attached (kafka/backpressure.c) */
	int			index;

	pid_t		pid;			/* 0 until the worker attached, and after it exited */
	bool		starting;		/* registered by the supervisor, not yet attached */
	TimestampTz registered_at;
	TimestampTz exited_at;		/* when its worker last exited */
	TransactionId stop_xid;		/* a kafka_stop etc. in progress: do not restart */
	int			failures;		/* exits with an error since the last good batch */
	TimestampTz retry_at;		/* do not start again before */
	StreamTransientTries transient; /* the batch's failed tries */

	slock_t		mutex;
	char		state[16];		/* "connecting", "running", "retrying" */
	int			npartitions;
	int			partitions[KAFKA_MAX_STATUS_PARTITIONS];
	int64		messages;		/* consumed, or produced and delivered */
	int64		lag;			/* behind the brokers' high watermarks; a
								 * producer: events staged, not yet sent */
	bool		lag_known;		/* false until the brokers answered, and
								 * while they do not */
	StreamRate	rate;			/* messages applied, per second */
	char		last_error[256];
	TimestampTz last_error_at;

	/* views its consumer worker leaves alone (worker/paused_views.c) */
	StreamPausedViews paused;
} KafkaSlot;

/*
 * lock and nslots are set when shared memory is initialised and read without
 * a lock; kicks is atomic; slots[] follow the rules above.
 */
typedef struct KafkaSharedState
{
	LWLock	   *lock;
	pg_atomic_uint64 kicks;		/* bumped when a consumer changed: the
								 * supervisors run a round at once */
	int			nslots;
	KafkaSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} KafkaSharedState;

extern KafkaSharedState *KafkaShared;

extern void kafka_shmem_request(void);
extern void kafka_shmem_startup(void);

extern KafkaSlot *kafka_slot_find(Oid dboid, bool producer, int id, int index);
extern void kafka_slot_set_state(KafkaSlot *slot, const char *state);
extern void kafka_slot_set_error(KafkaSlot *slot, const char *error);

#endif
