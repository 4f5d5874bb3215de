/*
 * pending_keys.c
 *	  Which group keys of a delta table may have deltas a read must
 *	  combine, so that a read of one key skips the delta table when none can.
 *
 * A read of one group of a view scans its delta table (which has no index:
 * one would cost every batch an index entry per delta) for that group's
 * unmerged deltas, three times in the plan of a view that keeps its
 * results.  Most groups have none.  This module lets the planner's gate
 * (ddl/delta_gate.c) tell, from shared memory, that a key has none a reader
 * could see, so that those scans do not run.
 *
 * Two things are kept:
 *	 slots		a fixed array (stream_ext.pending_key_slots); the slot of a
 *				key (its hash with the database and the delta table) holds
 *				the highest writer transaction id of any delta ever
 *				written for a key hashing there.  Writers raise it before
 *				their batch commits (worker/apply.c).
 *	 cleared	per delta table, an id below which no delta is left, for any
 *				snapshot still running (published by the combiner,
 *				worker/pending_clear.c, which explains how it is computed).
 *				A full table of entries drops those of dropped tables and
 *				databases.
 *
 * A key may have visible deltas only if its slot is at or above its delta
 * table's cleared id.  A delta a reader's snapshot sees was written, and
 * its slot raised, before that snapshot; it has not been merged out of that
 * snapshot's sight; so no cleared id published while the snapshot runs is
 * above its writer.  Without a cleared id (a new delta table, a server just
 * started, a standby, a full table of entries) every key may have deltas.
 * Slots are shared by keys that hash alike; that only makes a read scan
 * when it need not.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "guc.h"
#include "ipc/pending_keys.h"

/* Delta tables with a cleared id, per database served */
#define TABLES_PER_DATABASE 128

typedef struct ClearedKey
{
	Oid			dboid;
	Oid			delta;
} ClearedKey;

typedef struct ClearedEntry
{
	ClearedKey	key;
	pg_atomic_uint64 below;		/* a FullTransactionId */
} ClearedEntry;

static pg_atomic_uint64 *slots = NULL;
static uint64 slot_mask = 0;
static LWLock *cleared_lock = NULL;
static HTAB *cleared = NULL;

/* The slots in use: stream_ext.pending_key_slots rounded down to a power of two */
static uint64
slot_count(void)
{
	if (stream_ext_pending_key_slots <= 0)
		return 0;
	return (uint64) 1 << pg_leftmost_one_pos32((uint32) stream_ext_pending_key_slots);
}

static long
max_tables(void)
{
	return (long) stream_ext_max_databases * TABLES_PER_DATABASE;
}

void
stream_pending_keys_shmem_request(void)
{
	RequestAddinShmemSpace(mul_size(slot_count(), sizeof(pg_atomic_uint64)));
	RequestAddinShmemSpace(hash_estimate_size(max_tables(), sizeof(ClearedEntry)));
	RequestNamedLWLockTranche("stream_ext pending keys", 1);
}

void
stream_pending_keys_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;
	uint64		n = slot_count();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cleared_lock = &(GetNamedLWLockTranche("stream_ext pending keys"))->lock;
	info.keysize = sizeof(ClearedKey);
	info.entrysize = sizeof(ClearedEntry);
	cleared = ShmemInitHash("stream_ext cleared deltas", max_tables(), max_tables(),
							&info, HASH_ELEM | HASH_BLOBS);
	if (n > 0)
	{
		slots = ShmemInitStruct("stream_ext pending key slots",
								mul_size(n, sizeof(pg_atomic_uint64)), &found);
		if (!found)
			for (uint64 i = 0; i < n; i++)
				pg_atomic_init_u64(&slots[i], 0);
		slot_mask = n - 1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Room in h for nkeys keys, in cxt */
void
stream_pending_key_hash_alloc(PendingKeyHash *h, int nkeys, MemoryContext cxt)
{
	h->nkeys = nkeys;
	h->procs = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * nkeys);
	h->collations = MemoryContextAlloc(cxt, sizeof(Oid) * nkeys);
	h->hashes_bytes = MemoryContextAlloc(cxt, sizeof(bool) * nkeys);
}

/*
 * Hash key i of h, a value of type, by the type's default hash function
 * under collation: false when the type has none.
 */
bool
stream_pending_key_hash_column(PendingKeyHash *h, int i, Oid type, Oid collation,
							   MemoryContext cxt)
{
	TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_HASH_PROC_FINFO);

	if (!OidIsValid(tc->hash_proc))
		return false;
	fmgr_info_copy(&h->procs[i], &tc->hash_proc_finfo, cxt);
	h->collations[i] = collation;
	h->hashes_bytes[i] = tc->hash_proc == F_HASHTEXT && OidIsValid(collation) &&
		get_collation_isdeterministic(collation);
	return true;
}

/*
 * Set up h for the key columns of a delta table (its first column is the
 * writer's id, the key_count keys follow): false when keys are not tracked
 * (no slots, or a key's type has no hash function).
 */
bool
stream_pending_key_hash_init(PendingKeyHash *h, TupleDesc delta, int key_count, MemoryContext cxt)
{
	if (slots == NULL || key_count <= 0 || key_count >= delta->natts)
		return false;
	stream_pending_key_hash_alloc(h, key_count, cxt);
	for (int i = 0; i < key_count; i++)
	{
		Form_pg_attribute att = TupleDescAttr(delta, i + 1);

		if (!stream_pending_key_hash_column(h, i, att->atttypid, att->attcollation, cxt))
			return false;
	}
	return true;
}

/*
 * The hash of a key: each column's hash, combined; 0 for a NULL (isnull
 * NULL: none is).  A text column under a deterministic collation hashes
 * its bytes here, as hashtext does, without the call.
 */
uint32
stream_pending_key_hash(PendingKeyHash *h, const Datum *keys, const bool *isnull)
{
	uint32		hash = 0;

	for (int i = 0; i < h->nkeys; i++)
	{
		uint32		one;

		if (isnull != NULL && isnull[i])
			one = 0;
		else if (h->hashes_bytes[i])
		{
			struct varlena *v = PG_DETOAST_DATUM_PACKED(keys[i]);

			one = hash_bytes((unsigned char *) VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
			if ((Pointer) v != DatumGetPointer(keys[i]))
				pfree(v);
		}
		else
			one = DatumGetUInt32(FunctionCall1Coll(&h->procs[i], h->collations[i], keys[i]));
		hash = hash_combine(hash, one);
	}
	return hash;
}

static uint32
slot_index(Oid delta, uint32 hash)
{
	return hash_combine(hash_combine(hash_bytes_uint32(MyDatabaseId), hash_bytes_uint32(delta)),
						hash) & slot_mask;
}

static void
raise_slot(pg_atomic_uint64 *slot, uint64 id)
{
	uint64		old = pg_atomic_read_u64(slot);

	while (old < id)
		if (pg_atomic_compare_exchange_u64(slot, &old, id))
			break;
}

/* A delta of writer for the key of this hash is being written to delta */
void
stream_pending_key_written(Oid delta, uint32 hash, FullTransactionId writer)
{
	if (slots != NULL)
		raise_slot(&slots[slot_index(delta, hash)], U64FromFullTransactionId(writer));
}

/* The note of a delta of writer for the key of this hash, for stream_pending_keys_raise */
PendingKeyNote
stream_pending_key_note(Oid delta, uint32 hash, FullTransactionId writer)
{
	PendingKeyNote note = {slot_index(delta, hash), U64FromFullTransactionId(writer)};

	return note;
}

/*
 * stream_pending_key_written for n notes at once (a batch's flush of its
 * deltas): the slots are scattered over megabytes, so each is fetched a
 * few notes ahead, and the cache misses overlap instead of adding up.
 */
#define PREFETCH_AHEAD 8

#if defined(__GNUC__)
#define prefetch_for_write(p) __builtin_prefetch((p), 1)
#else
#define prefetch_for_write(p) ((void) 0)
#endif

void
stream_pending_keys_raise(const PendingKeyNote *notes, int n)
{
	if (slots == NULL)
		return;
	for (int i = 0; i < n; i++)
	{
		if (i + PREFETCH_AHEAD < n)
			prefetch_for_write(&slots[notes[i + PREFETCH_AHEAD].slot]);
		raise_slot(&slots[notes[i].slot], notes[i].id);
	}
}

/* The entry key of delta in this database (zeroed padding: the hash reads bytes) */
static ClearedKey
cleared_key(Oid delta)
{
	ClearedKey	key;

	memset(&key, 0, sizeof(key));
	key.dboid = MyDatabaseId;
	key.delta = delta;
	return key;
}

/* May delta hold deltas of the key of this hash that the caller's snapshot sees? */
bool
stream_pending_key_may_have_deltas(Oid delta, uint32 hash)
{
	ClearedKey	key;
	ClearedEntry *entry;
	uint64		below = 0;
	bool		known = false;

	if (slots == NULL)
		return true;
	key = cleared_key(delta);
	LWLockAcquire(cleared_lock, LW_SHARED);
	entry = hash_search(cleared, &key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		below = pg_atomic_read_u64(&entry->below);
		known = true;
	}
	LWLockRelease(cleared_lock);
	return !known || pg_atomic_read_u64(&slots[slot_index(delta, hash)]) >= below;
}

/*
 * Remove the entries of relations gone from this database, and of
 * databases gone, to make room.  Needs a transaction (the syscache).
 */
static void
reclaim_dead_entries(void)
{
	ClearedKey *keys = palloc(sizeof(ClearedKey) * max_tables());
	bool	   *gone = palloc(sizeof(bool) * max_tables());
	int			n = 0;
	HASH_SEQ_STATUS scan;
	ClearedEntry *entry;

	LWLockAcquire(cleared_lock, LW_SHARED);
	hash_seq_init(&scan, cleared);
	while ((entry = hash_seq_search(&scan)) != NULL && n < max_tables())
		keys[n++] = entry->key;
	if (entry != NULL)
		hash_seq_term(&scan);
	LWLockRelease(cleared_lock);
	for (int i = 0; i < n; i++)
		gone[i] = keys[i].dboid == MyDatabaseId ?
			!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(keys[i].delta)) :
			!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(keys[i].dboid));
	LWLockAcquire(cleared_lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
		if (gone[i])
			hash_search(cleared, &keys[i], HASH_REMOVE, NULL);
	LWLockRelease(cleared_lock);
	pfree(keys);
	pfree(gone);
}

/*
 * Make delta an entry, if it has none, with a cleared id of 0 (every key
 * may have deltas); false when the table of entries is full even after
 * the entries of dropped tables and databases are removed.  Needs a
 * transaction.
 */
bool
stream_pending_keys_reserve(Oid delta)
{
	ClearedKey	key;
	ClearedEntry *entry;
	bool		found;

	if (slots == NULL)
		return false;
	key = cleared_key(delta);
	for (int attempt = 0; attempt < 2; attempt++)
	{
		LWLockAcquire(cleared_lock, LW_EXCLUSIVE);
		entry = hash_search(cleared, &key, HASH_FIND, &found);
		/* a shared hash table may grow past its size: this one does not */
		if (entry == NULL && hash_get_num_entries(cleared) < max_tables())
			entry = hash_search(cleared, &key, HASH_ENTER_NULL, &found);
		if (entry != NULL && !found)
			pg_atomic_init_u64(&entry->below, 0);
		LWLockRelease(cleared_lock);
		if (entry != NULL)
			return true;
		if (attempt == 0)
			reclaim_dead_entries();
	}
	return false;
}

/*
 * No delta of a writer below this id is left in delta, for any snapshot
 * now running or to come (the caller, the combiner, made sure).  Sets the
 * entry stream_pending_keys_reserve made, if it is still there.
 */
void
stream_pending_keys_cleared(Oid delta, FullTransactionId below)
{
	ClearedKey	key;
	ClearedEntry *entry;

	if (slots == NULL)
		return;
	key = cleared_key(delta);
	LWLockAcquire(cleared_lock, LW_SHARED);
	entry = hash_search(cleared, &key, HASH_FIND, NULL);
	if (entry != NULL)
		pg_atomic_write_u64(&entry->below, U64FromFullTransactionId(below));
	LWLockRelease(cleared_lock);
}
