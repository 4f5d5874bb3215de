/*
 * key_memo.c
 *	  Keys a read's own scan found without deltas, for the gates of the same
 *	  snapshot.
 *
 * A read of one group of a view that keeps its results asks, for its result
 * row, whether the key has deltas the reader sees (changed_keys.c), and then
 * runs two gated scans of the delta table for the same key (delta_gate.c).
 * When shared memory cannot tell (the key's slot was raised lately, by this
 * key or by another hashing alike), the first question scans the deltas for
 * the key; when that scan finds none, the two gated scans would find none
 * either, under the same snapshot.  So the scan notes the key here, and the
 * gates ask before they let their scans run.
 *
 * A note says that the snapshot sees no row of the key in the delta table,
 * whatever its writer's status, so that it answers for any scan of the
 * table restricted to the key, not only the view's.  It holds for the
 * snapshot it was made under: the same top-level transaction (its local
 * id), command id, xmin, xmax, running ids, and no subtransaction of this
 * one rolled back since (which would show again rows this transaction had
 * deleted, with the same command id).  Two snapshots of one transaction
 * that agree on those see the same rows of other transactions.
 * A gate matches a note only for the same delta table, key types and keys
 * equal byte for byte (so equal under any collation); anything else, and the
 * gate goes by shared memory as before.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "storage/proc.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "ddl/key_memo.h"

/* Notes kept, the oldest replaced first */
#define MEMO_NOTES 4
/* Keys of a note at most */
#define MEMO_KEYS 8
/* Running ids (and running subtransaction ids) of a noted snapshot at most */
#define MEMO_XIDS 64

typedef struct KeyNote
{
	bool		valid;
	LocalTransactionId lxid;
	CommandId	curcid;
	TransactionId xmin;
	TransactionId xmax;
	uint32		xcnt;
	int32		subxcnt;
	bool		suboverflowed;
	TransactionId xip[MEMO_XIDS];
	TransactionId subxip[MEMO_XIDS];
	Oid			delta;
	uint32		hash;
	int			nkeys;
	Oid			types[MEMO_KEYS];
	bool		typbyval[MEMO_KEYS];
	int16		typlen[MEMO_KEYS];
	Datum		keys[MEMO_KEYS];
	MemoryContext cxt;			/* the copies of the keys */
} KeyNote;

static KeyNote notes[MEMO_NOTES];
static int	next_note = 0;
static bool callback_registered = false;

/* A subtransaction rolled back: rows this transaction deleted may be seen again */
static void
forget_notes(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
			 void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		for (int n = 0; n < MEMO_NOTES; n++)
			notes[n].valid = false;
}

/* Does note hold for the active snapshot? */
static bool
same_snapshot(const KeyNote *note, Snapshot snapshot)
{
	return note->lxid == MyProc->lxid && note->curcid == snapshot->curcid &&
		note->xmin == snapshot->xmin && note->xmax == snapshot->xmax &&
		note->xcnt == snapshot->xcnt && note->subxcnt == snapshot->subxcnt &&
		note->suboverflowed == snapshot->suboverflowed &&
		memcmp(note->xip, snapshot->xip, sizeof(TransactionId) * note->xcnt) == 0 &&
		(note->subxcnt <= 0 ||
		 memcmp(note->subxip, snapshot->subxip, sizeof(TransactionId) * note->subxcnt) == 0);
}

/*
 * No delta of delta that the active snapshot sees holds these keys (hashed
 * to hash, of these types): the caller scanned them all.
 */
void
stream_key_memo_note_absent(Oid delta, uint32 hash, int nkeys, const Oid *types,
							const Datum *keys, const int16 *typlen, const bool *typbyval)
{
	KeyNote    *note = &notes[next_note];
	Snapshot	snapshot;
	MemoryContext old;

	if (!ActiveSnapshotSet() || nkeys > MEMO_KEYS || MyProc == NULL)
		return;
	snapshot = GetActiveSnapshot();
	if (snapshot->xcnt > MEMO_XIDS || snapshot->subxcnt > MEMO_XIDS || snapshot->subxcnt < 0)
		return;
	if (!callback_registered)
	{
		RegisterSubXactCallback(forget_notes, NULL);
		callback_registered = true;
	}
	next_note = (next_note + 1) % MEMO_NOTES;
	if (note->cxt == NULL)
		note->cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext key note",
										  ALLOCSET_SMALL_SIZES);
	note->valid = false;
	MemoryContextReset(note->cxt);
	old = MemoryContextSwitchTo(note->cxt);
	for (int i = 0; i < nkeys; i++)
	{
		Datum		key = keys[i];

		/* a copy of the value itself, not of a pointer into TOAST */
		if (typlen[i] == -1)
			key = PointerGetDatum(PG_DETOAST_DATUM_PACKED(key));
		note->keys[i] = datumCopy(key, typbyval[i], typlen[i]);
		note->types[i] = types[i];
		note->typlen[i] = typlen[i];
		note->typbyval[i] = typbyval[i];
	}
	MemoryContextSwitchTo(old);
	note->lxid = MyProc->lxid;
	note->curcid = snapshot->curcid;
	note->xmin = snapshot->xmin;
	note->xmax = snapshot->xmax;
	note->xcnt = snapshot->xcnt;
	note->subxcnt = snapshot->subxcnt;
	note->suboverflowed = snapshot->suboverflowed;
	memcpy(note->xip, snapshot->xip, sizeof(TransactionId) * snapshot->xcnt);
	if (snapshot->subxcnt > 0)
		memcpy(note->subxip, snapshot->subxip, sizeof(TransactionId) * snapshot->subxcnt);
	note->delta = delta;
	note->hash = hash;
	note->nkeys = nkeys;
	note->valid = true;
}

/* Was a scan under the active snapshot sure that delta holds none of these keys? */
bool
stream_key_memo_absent(Oid delta, uint32 hash, int nkeys, const Oid *types, const Datum *keys)
{
	Snapshot	snapshot;

	if (!ActiveSnapshotSet() || MyProc == NULL)
		return false;
	snapshot = GetActiveSnapshot();
	for (int n = 0; n < MEMO_NOTES; n++)
	{
		KeyNote    *note = &notes[n];
		bool		equal = true;

		if (!note->valid || note->delta != delta || note->hash != hash ||
			note->nkeys != nkeys || !same_snapshot(note, snapshot))
			continue;
		for (int i = 0; i < nkeys && equal; i++)
			equal = note->types[i] == types[i] &&
				datum_image_eq(note->keys[i], keys[i], note->typbyval[i], note->typlen[i]);
		if (equal)
			return true;
	}
	return false;
}
