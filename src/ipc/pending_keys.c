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
 *	 cleared	per delta table, two ids below which no delta is left
 *				(published by the combiner, worker/pending_clear.c, which
 *				explains how they are computed): one for any snapshot still
 *				running, and a newer one, for the snapshots that have seen
 *				every transaction end that the combiner's scan of the table
 *				saw end (its snapshot's xmax and running ids are kept with
 *				it).  A full table of entries drops those of dropped tables
 *				and databases.
 *
 * A key may have visible deltas only if its slot is at or above its delta
 * table's cleared id, or, for a snapshot that has seen what the scan saw,
 * the scan's.  A delta a reader's snapshot sees was written, and its slot
 * raised, before that snapshot; it has not been merged out of that
 * snapshot's sight; so no cleared id published while the snapshot runs is
 * above its writer, and no scan whose snapshot it has seen cleared the
 * writer either: what the scan did not see was written by a batch that had
 * not committed (its writer is at or above the id cleared) or deleted by a
 * transaction the scan saw end, which the reader sees ended too.  Without a
 * cleared id (a new delta table, a server just started, a standby, a full
 * table of entries) every key may have deltas.  Slots are shared by keys
 * that hash alike; that only makes a read scan when it need not.
 *
 * Delta rows that no worker wrote (a restore's COPY, an owner's INSERT:
 * ddl/delta_writes.c) raise no slot: while a transaction that writes such
 * rows runs, every key of its database may have deltas, and when it
 * commits the cleared ids of its database are dropped, and those of scans
 * of its database that began before are not published (the epoch).  Each
 * database that had such a transaction since the server started takes an
 * entry for that count and epoch; past UNNOTED_DATABASES of them the
 * others share one more (their reads then scan for each other's).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
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

/* Running ids of a scan's snapshot kept: more, and its cleared id is not */
#define SCAN_XIP_MAX 64

typedef struct ClearedEntry
{
	ClearedKey	key;
	pg_atomic_uint64 below;		/* a FullTransactionId */
	pg_atomic_uint64 scan_below;	/* a FullTransactionId; 0 if none */
	pg_atomic_uint64 scans;		/* publications of a scan so far */
	slock_t		mutex;			/* for the changes of these two and: */
	TransactionId scan_xmax;	/* the scan's snapshot: xmax, */
	int			scan_xcnt;		/* and its running ids, sorted */
	TransactionId scan_xip[SCAN_XIP_MAX];
} ClearedEntry;

/* What restores change in a database (see the top) */
typedef struct UnnotedWrites
{
	pg_atomic_uint32 dboid;		/* the database; 0 while the entry is free */
	pg_atomic_uint32 running;	/* transactions that wrote such rows */
	pg_atomic_uint64 epoch;		/* commits of such transactions */
} UnnotedWrites;

/*
 * UNNOTED_DATABASES entries, taken in order and never given back, then the
 * one that databases without an entry share
 */
#define UNNOTED_DATABASES 64

static UnnotedWrites *unnoted = NULL;
static UnnotedWrites *unnoted_own = NULL;	/* this database's, once known */
static UnnotedWrites *unnoted_counted = NULL;	/* where this transaction counts */
static pg_atomic_uint64 *slots = NULL;
static uint64 slot_mask = 0;
static LWLock *cleared_lock = NULL;
static HTAB *cleared = NULL;

/* The entry databases without one of their own share */
static UnnotedWrites *
unnoted_shared(void)
{
	return &unnoted[UNNOTED_DATABASES];
}

/*
 * This database's entry: NULL while it has none and claim is false, the
 * shared one when it has none and all are taken.  Entries are taken in
 * order and keep their database, so a search may stop at a free one.
 */
static UnnotedWrites *
unnoted_entry(bool claim)
{
	if (unnoted_own != NULL)
		return unnoted_own;
	for (int i = 0; i < UNNOTED_DATABASES; i++)
	{
		uint32		dboid = pg_atomic_read_u32(&unnoted[i].dboid);

		if (dboid == 0)
		{
			if (!claim)
				return NULL;
			if (pg_atomic_compare_exchange_u32(&unnoted[i].dboid, &dboid, MyDatabaseId))
				return unnoted_own = &unnoted[i];
			/* dboid is now the database that took it first */
		}
		if (dboid == MyDatabaseId)
			return unnoted_own = &unnoted[i];
	}
	return unnoted_shared();
}

/* Is a transaction writing rows no worker notes into this database's deltas? */
static bool
unnoted_running(void)
{
	UnnotedWrites *own = unnoted_entry(false);

	return pg_atomic_read_u32(&unnoted_shared()->running) > 0 ||
		(own != NULL && pg_atomic_read_u32(&own->running) > 0);
}

/* This database's epoch: its own entry's commits and the shared one's */
static uint64
unnoted_epoch(void)
{
	UnnotedWrites *own = unnoted_entry(false);
	uint64		epoch = pg_atomic_read_u64(&unnoted_shared()->epoch);

	if (own != NULL && own != unnoted_shared())
		epoch += pg_atomic_read_u64(&own->epoch);
	return epoch;
}

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
	RequestAddinShmemSpace(mul_size(UNNOTED_DATABASES + 1, sizeof(UnnotedWrites)));
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
							&info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	unnoted = ShmemInitStruct("stream_ext unnoted delta writes",
							  mul_size(UNNOTED_DATABASES + 1, sizeof(UnnotedWrites)),
							  &found);
	if (!found)
		for (int i = 0; i <= UNNOTED_DATABASES; i++)
		{
			pg_atomic_init_u32(&unnoted[i].dboid, 0);
			pg_atomic_init_u32(&unnoted[i].running, 0);
			pg_atomic_init_u64(&unnoted[i].epoch, 0);
		}
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

/*
 * Has snapshot s seen every transaction end that a snapshot with this xmax
 * and these running ids (sorted) saw end?  Yes if s's xmax is not below
 * xmax, and every id s sees running below xmax was running then too.  (A
 * snapshot lists every running top-level id; a subtransaction ends with its
 * parent.)
 */
static bool
snapshot_has_seen(Snapshot s, TransactionId xmax, const TransactionId *xip, int xcnt)
{
	if (s == NULL || s->snapshot_type != SNAPSHOT_MVCC || s->takenDuringRecovery ||
		TransactionIdPrecedes(s->xmax, xmax))
		return false;
	for (uint32 i = 0; i < s->xcnt; i++)
		if (TransactionIdPrecedes(s->xip[i], xmax) &&
			bsearch(&s->xip[i], xip, xcnt, sizeof(TransactionId), xidComparator) == NULL)
			return false;
	return true;
}

/*
 * May delta hold deltas of the key of this hash that the caller's snapshot
 * (the active one) sees?  The cleared ids are read before the key's slot:
 * the combiner's scan raises the slots of the deltas it finds before it
 * publishes what it cleared, so a slot read after a publication holds
 * every writer that publication counted on.
 */
bool
stream_pending_key_may_have_deltas(Oid delta, uint32 hash)
{
	ClearedKey	key;
	ClearedEntry *entry;
	uint64		slot;
	uint64		below;
	uint64		scan_below;
	uint64		scans;
	bool		may = true;

	if (slots == NULL || unnoted_running())
		return true;
	pg_read_barrier();
	key = cleared_key(delta);
	LWLockAcquire(cleared_lock, LW_SHARED);
	entry = hash_search(cleared, &key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		below = pg_atomic_read_u64(&entry->below);
		/* a scan's publication counts once all of it is written */
		scans = pg_atomic_read_u64(&entry->scans);
		pg_read_barrier();
		scan_below = pg_atomic_read_u64(&entry->scan_below);
		pg_read_barrier();
		slot = pg_atomic_read_u64(&slots[slot_index(delta, hash)]);
		if (slot < below)
			may = false;
		else if (slot < scan_below && ActiveSnapshotSet())
		{
			TransactionId xip[SCAN_XIP_MAX];
			TransactionId xmax;
			int			xcnt;
			bool		same;

			SpinLockAcquire(&entry->mutex);
			/* a scan published since the slot was read may count on it */
			same = pg_atomic_read_u64(&entry->scans) == scans;
			xmax = entry->scan_xmax;
			xcnt = entry->scan_xcnt;
			memcpy(xip, entry->scan_xip, xcnt * sizeof(TransactionId));
			SpinLockRelease(&entry->mutex);
			may = !(same && snapshot_has_seen(GetActiveSnapshot(), xmax, xip, xcnt));
		}
	}
	LWLockRelease(cleared_lock);
	return may;
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
		{
			pg_atomic_init_u64(&entry->below, 0);
			pg_atomic_init_u64(&entry->scan_below, 0);
			pg_atomic_init_u64(&entry->scans, 0);
			SpinLockInit(&entry->mutex);
			entry->scan_xcnt = 0;
		}
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
stream_pending_keys_cleared(Oid delta, FullTransactionId below, uint64 epoch)
{
	ClearedKey	key;
	ClearedEntry *entry;

	if (slots == NULL)
		return;
	key = cleared_key(delta);
	LWLockAcquire(cleared_lock, LW_SHARED);
	entry = hash_search(cleared, &key, HASH_FIND, NULL);
	if (entry != NULL && unnoted_epoch() == epoch)
		pg_atomic_write_u64(&entry->below, U64FromFullTransactionId(below));
	LWLockRelease(cleared_lock);
}

/*
 * No delta of a writer below this id is left in delta for any snapshot
 * that has seen every transaction end that snapshot scanned (the
 * combiner's scan of the table) saw end.  Kept only when scanned ran at
 * most SCAN_XIP_MAX transactions.
 */
void
stream_pending_keys_scan_cleared(Oid delta, FullTransactionId below, Snapshot scanned,
								 uint64 epoch)
{
	ClearedKey	key;
	ClearedEntry *entry;
	TransactionId xip[SCAN_XIP_MAX];
	int			xcnt = scanned->xcnt;

	if (slots == NULL || xcnt > SCAN_XIP_MAX)
		return;
	memcpy(xip, scanned->xip, xcnt * sizeof(TransactionId));
	qsort(xip, xcnt, sizeof(TransactionId), xidComparator);
	key = cleared_key(delta);
	LWLockAcquire(cleared_lock, LW_SHARED);
	entry = hash_search(cleared, &key, HASH_FIND, NULL);
	if (entry != NULL && unnoted_epoch() == epoch)
	{
		SpinLockAcquire(&entry->mutex);
		pg_atomic_write_u64(&entry->scan_below, U64FromFullTransactionId(below));
		entry->scan_xmax = scanned->xmax;
		entry->scan_xcnt = xcnt;
		memcpy(entry->scan_xip, xip, xcnt * sizeof(TransactionId));
		pg_write_barrier();
		pg_atomic_write_u64(&entry->scans, pg_atomic_read_u64(&entry->scans) + 1);
		SpinLockRelease(&entry->mutex);
	}
	LWLockRelease(cleared_lock);
}

/*
 * The epoch a scan of a delta table begins in: taken before the scan's
 * snapshot, given back with what it cleared.
 */
uint64
stream_pending_keys_epoch(void)
{
	return unnoted == NULL ? 0 : unnoted_epoch();
}

/*
 * At the end of a transaction that wrote delta rows no worker noted: if it
 * committed (its rows now visible), drop the cleared ids of its database
 * and begin a new epoch, under the lock that publications take; then stop
 * counting it.
 */
static void
unnoted_xact_callback(XactEvent event, void *arg)
{
	if (unnoted_counted == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that wrote rows of a continuous view's delta table")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			{
				HASH_SEQ_STATUS scan;
				ClearedEntry *entry;

				LWLockAcquire(cleared_lock, LW_EXCLUSIVE);
				pg_atomic_fetch_add_u64(&unnoted_counted->epoch, 1);
				hash_seq_init(&scan, cleared);
				while ((entry = hash_seq_search(&scan)) != NULL)
				{
					if (entry->key.dboid != MyDatabaseId)
						continue;
					pg_atomic_write_u64(&entry->below, 0);
					SpinLockAcquire(&entry->mutex);
					pg_atomic_write_u64(&entry->scan_below, 0);
					pg_atomic_write_u64(&entry->scans, pg_atomic_read_u64(&entry->scans) + 1);
					SpinLockRelease(&entry->mutex);
				}
				LWLockRelease(cleared_lock);
			}
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pg_atomic_fetch_sub_u32(&unnoted_counted->running, 1);
			unnoted_counted = NULL;
			break;
		default:
			break;
	}
}

/* The combiner is settling writers (stream_pending_keys_settling) */
static bool settling_writers = false;

/*
 * The combiner's statements between true and false rewrite the writer ids of
 * delta rows (worker/combiner.c, settle_waiting_writers): keys that were
 * noted when the rows were written, so not unnoted writes
 */
void
stream_pending_keys_settling(bool settling)
{
	settling_writers = settling;
}

/*
 * This transaction is about to write delta rows that no batch worker notes
 * (ddl/delta_writes.c): until it ends, every key may have deltas, and once
 * it commits, what was cleared in its database before is not.
 */
void
stream_pending_keys_unnoted_write(void)
{
	static bool registered = false;

	if (unnoted == NULL || unnoted_counted != NULL || settling_writers)
		return;
	if (!registered)
	{
		RegisterXactCallback(unnoted_xact_callback, NULL);
		registered = true;
	}
	unnoted_counted = unnoted_entry(true);
	pg_atomic_fetch_add_u32(&unnoted_counted->running, 1);
}
