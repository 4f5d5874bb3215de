/*
 * pending_keys.h
 *	  Which group keys of a delta table may have deltas a read must
 *	  combine (see pending_keys.c).
 */
#ifndef STREAM_EXT_PENDING_KEYS_H
#define STREAM_EXT_PENDING_KEYS_H

#include "access/transam.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "utils/snapshot.h"

/* How to hash the key columns of a delta table, as writers and readers do */
typedef struct PendingKeyHash
{
	int			nkeys;
	FmgrInfo   *procs;			/* each key type's default hash function */
	Oid		   *collations;		/* each key column's collation */
	bool	   *hashes_bytes;	/* text under a deterministic collation:
								 * its bytes hashed here, as hashtext would */
} PendingKeyHash;

extern void stream_pending_keys_shmem_request(void);
extern void stream_pending_keys_shmem_startup(void);

extern bool stream_pending_key_hash_init(PendingKeyHash *h, TupleDesc delta, int key_count,
										 MemoryContext cxt);
extern void stream_pending_key_hash_alloc(PendingKeyHash *h, int nkeys, MemoryContext cxt);
extern bool stream_pending_key_hash_column(PendingKeyHash *h, int i, Oid type, Oid collation,
										   MemoryContext cxt);
extern uint32 stream_pending_key_hash(PendingKeyHash *h, const Datum *keys, const bool *isnull);

/* A key's slot and the id it is to be raised to */
typedef struct PendingKeyNote
{
	uint32		slot;
	uint64		id;
} PendingKeyNote;

extern void stream_pending_key_written(Oid delta, uint32 hash, FullTransactionId writer);
extern PendingKeyNote stream_pending_key_note(Oid delta, uint32 hash, FullTransactionId writer);
extern void stream_pending_keys_raise(const PendingKeyNote *notes, int n);
extern bool stream_pending_key_may_have_deltas(Oid delta, uint32 hash);
extern bool stream_pending_keys_reserve(Oid delta);
extern uint64 stream_pending_keys_epoch(void);
extern void stream_pending_keys_cleared(Oid delta, FullTransactionId below, uint64 epoch);
extern void stream_pending_keys_scan_cleared(Oid delta, FullTransactionId below,
											 Snapshot scanned, uint64 epoch);
extern void stream_pending_keys_settling(bool settling);
extern void stream_pending_keys_unnoted_write(void);

#endif
