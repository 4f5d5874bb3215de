/*
 * drop_lock.c
 *	  A producer's lock, between the writers that stage events for it and
 *	  kafka_drop_producer.
 *
 * A writer that stages events for a producer inserts outbox rows whose
 * foreign key locks the producer's catalog row FOR KEY SHARE until the
 * writer commits; the drop's DELETE of that row waits for them.  Row
 * locks do not queue: a new writer's KEY SHARE joins the current holders
 * even while the DELETE waits, so under writers that overlap without
 * pause the drop never got its turn.  So a writer first takes the
 * producer's lock (a lock on the object (kafka_producers, id) of this
 * database) in share mode, without waiting, and keeps it to its commit;
 * the drop takes it in exclusive mode before the DELETE.  Heavyweight
 * locks do queue: once the drop waits, a new writer's request fails at
 * once, and that writer leaves its events to the workers (its staging
 * view, which the drop then drops with them); the drop waits only for the
 * writers that staged before it came.
 */
#include "postgres.h"

#include "fmgr.h"
#include "storage/lmgr.h"

#include "catalog/catalog.h"
#include "guc.h"
#include "kafka/drop_lock.h"

PG_FUNCTION_INFO_V1(stream_ext_kafka_lock_producer_for_drop);

bool
kafka_producer_lock_for_staging(int id)
{
	return ConditionalLockDatabaseObject(stream_internal_relid("kafka_producers", false),
										 (Oid) id, 0, AccessShareLock);
}

/*
 * kafka_lock_producer_for_drop(id): wait until no writer stages for the
 * producer and keep new ones from starting to, until this transaction ends.
 */
Datum
stream_ext_kafka_lock_producer_for_drop(PG_FUNCTION_ARGS)
{
	stream_require_preload();

	LockDatabaseObject(stream_internal_relid("kafka_producers", false),
					   (Oid) PG_GETARG_INT32(0), 0, AccessExclusiveLock);
	PG_RETURN_VOID();
}
