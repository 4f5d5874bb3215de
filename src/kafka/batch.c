/*
 * batch.c
 *	  Apply a batch of Kafka messages in one transaction: decode them into
 *	  events of the stream, apply those to its continuous views, record the
 *	  undecodable messages in stream_ext_internal.kafka_errors and store the
 *	  next offset of each partition.  Deltas and offsets commit together:
 *	  exactly once on this server.  See src/kafka/README.md.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "jit/jit.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "ipc/queue.h"
#include "ipc/record.h"
#include "kafka/assign.h"
#include "kafka/batch.h"
#include "kafka/decode.h"
#include "kafka/kafka_guc.h"
#include "kafka/kafka_worker.h"
#include "kafka/rights.h"
#include "kafka/slots.h"
#include "guc.h"
#include "stream/column_fill.h"
#include "stream/event_tuple.h"
#include "stream/fdw.h"
#include "worker/apply.h"

/* Counters of consumer workers go to view_counters under worker numbers from here */
#define KAFKA_COUNTER_WORKER_BASE 1000

/* A message that could not be decoded, for kafka_errors */
typedef struct BadMessage
{
	int32		partition;
	int64		offset;
	char	   *error;
	bytea	   *payload;
} BadMessage;

/*
 * Tuple images of a batch live in an arena of chunks kept across batches, so
 * that a busy consumer does not allocate (and fault in) fresh memory for
 * every batch.  An image larger than a chunk gets a block of its own, freed
 * when the next batch starts (kept, one large message would hold its memory
 * until the worker exits).
 */
#define ARENA_CHUNK_SIZE (4 * 1024 * 1024)

typedef struct ArenaChunk
{
	struct ArenaChunk *next;
	Size		size;			/* of its data */
	Size		used;
} ArenaChunk;

/* A chunk's data, MAXALIGNed as tuple images must be */
#define ARENA_DATA_OFFSET MAXALIGN(sizeof(ArenaChunk))
#define ARENA_DATA(c) ((char *) (c) + ARENA_DATA_OFFSET)

static ArenaChunk *arena_first = NULL;
static ArenaChunk *arena_current = NULL;
static ArenaChunk *arena_large = NULL;	/* blocks of one image each */

static void
arena_reset(void)
{
	for (ArenaChunk *c = arena_first; c != NULL; c = c->next)
		c->used = 0;
	arena_current = arena_first;
	while (arena_large != NULL)
	{
		ArenaChunk *next = arena_large->next;

		pfree(arena_large);
		arena_large = next;
	}
}

static ArenaChunk *
arena_chunk(MemoryContext cxt, Size size)
{
	ArenaChunk *c = MemoryContextAllocHuge(cxt, ARENA_DATA_OFFSET + size);

	c->size = size;
	c->used = 0;
	c->next = NULL;
	return c;
}

/* size bytes from the arena; a new chunk comes from cxt (the worker's context) */
static char *
arena_alloc(MemoryContext cxt, Size size)
{
	size = MAXALIGN(size);
	if (size > ARENA_CHUNK_SIZE)
	{
		ArenaChunk *c = arena_chunk(cxt, size);

		c->used = size;
		c->next = arena_large;
		arena_large = c;
		return ARENA_DATA(c);
	}
	while (arena_current != NULL && arena_current->used + size > arena_current->size)
	{
		if (arena_current->next == NULL)
			break;
		arena_current = arena_current->next;
	}
	if (arena_current == NULL || arena_current->used + size > arena_current->size)
	{
		ArenaChunk *c = arena_chunk(cxt, ARENA_CHUNK_SIZE);

		if (arena_current == NULL)
			arena_first = c;
		else
		{
			c->next = arena_current->next;
			arena_current->next = c;
		}
		arena_current = c;
	}
	arena_current->used += size;
	return ARENA_DATA(arena_current) + arena_current->used - size;
}

/*
 * Does the partition of message m end before offset next (its high
 * watermark, as the brokers say now, is lower)?  Then the offset we
 * stored is past the end of a partition that was recreated or moved, and
 * librdkafka went back to where auto.offset.reset says: its messages are
 * new, not ones applied already.  Said once per partition and reset.
 */
static bool
partition_ends_before(KafkaWorker *w, const rd_kafka_message_t *m, int64 next)
{
	int64		high;

	/*
	 * Asked of the brokers now, not librdkafka's cached value: a message
	 * fetched before its partition went to another worker and came back
	 * must not pass for a new one on a stale watermark.
	 */
	if (kafka_partition_offsets(w, 1, &m->partition, RD_KAFKA_OFFSET_END, &high, NULL) !=
		RD_KAFKA_RESP_ERR_NO_ERROR || high < 0 || high >= next)
		return false;
	ereport(WARNING,
			(errmsg("stream_ext Kafka consumer of topic \"%s\": partition %d ends at offset %lld, before its stored offset %lld",
					w->cfg.topic, (int) m->partition, (long long) high, (long long) next),
			 errdetail("The topic was recreated, or the consumer reads other brokers now; it consumes the partition from offset %lld.",
					   (long long) m->offset)));
	return true;
}

typedef struct BatchState
{
	KafkaWorker *w;
	StreamBatchEvents *events;
	TransactionId xid;
	StreamColumnFill *fill;		/* the stream's generated columns, or NULL */
} BatchState;

/*
 * Decoder sink: form the event as the rings carry it (a heap tuple image
 * whose xmin is our transaction) and add it to the batch.
 */
static void
add_event(TupleDesc desc, Datum *values, bool *nulls, void *arg)
{
	BatchState *b = arg;
	StreamBatchEvents *ev = b->events;
	EventLayout layout;
	HeapTupleHeader td;
	HeapTuple	dst;

	if (b->fill != NULL)
		stream_column_fill(b->fill, values, nulls);
	layout = stream_event_layout(desc, values, nulls);
	/* as a writer's: a compressed message may hold an event of any size */
	stream_check_event_size(layout.len, b->w->cfg.stream);
	td = (HeapTupleHeader) arena_alloc(b->w->cxt, layout.len);
	stream_event_fill(td, layout, desc, values, nulls);
	stream_event_set_writer(td, b->xid);

	if (ev->nevents == ev->capacity)
	{
		ev->capacity *= 2;
		ev->events = repalloc_huge(ev->events, sizeof(HeapTupleData) * ev->capacity);
	}
	dst = &ev->events[ev->nevents++];
	dst->t_len = layout.len;
	dst->t_data = td;
	dst->t_tableOid = ev->stream;
	ItemPointerSetInvalid(&dst->t_self);
}

static bytea *
payload_prefix(const rd_kafka_message_t *m)
{
	size_t		len = Min(m->len, (size_t) stream_ext_kafka_error_payload_limit);
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	if (len > 0)
		memcpy(VARDATA(b), m->payload, len);
	return b;
}

/*
 * Is an error met while decoding a message not the message's fault: a
 * cancel or shutdown, a deadlock or serialization failure, a lock that was
 * not free (met by a domain's check or a generated column reading a
 * table)?  Then the batch fails and is tried again, instead of setting a
 * good message aside for good.  Not out of memory, nor a system error: a
 * message can cause those (a small compressed one may decode to a huge
 * value, a check may look for a file its value names).  Nor what the
 * owner's PL/pgSQL raises itself, whatever its code (other languages'
 * errors are not told apart: a function that raises 40001 for a value
 * holds its partition back).
 */
static bool
decode_error_not_the_message(ErrorData *e)
{
	int			category = ERRCODE_TO_CATEGORY(e->sqlerrcode);

	return !stream_error_raised_by_code(e) &&
		(category == ERRCODE_OPERATOR_INTERVENTION ||
		 category == ERRCODE_TRANSACTION_ROLLBACK ||
		 e->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE);
}

/*
 * Decode msgs[from..n) into the batch in one subtransaction.  Returns the
 * index of the first message whose values do not fit the stream's types
 * (its error in *edata and the subtransaction rolled back), or n.  Messages
 * of the wrong shape are added to *bad without interrupting the run.
 */
static MemoryContext scratch_cxt = NULL;	/* reset after every message */

static int
decode_run(KafkaDecoder *d, rd_kafka_message_t **msgs, int from, int n,
		   BatchState *b, TimestampTz arrival, List **bad, char **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile int i = from;
	volatile int first_event = b->events->nevents;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		for (; i < n; i++)
		{
			rd_kafka_message_t *m = msgs[i];
			KafkaMessageView v;
			rd_kafka_timestamp_type_t tstype;
			char	   *error;

			first_event = b->events->nevents;
			v.payload = m->payload;
			v.len = m->len;
			v.key = m->key;
			v.key_len = m->key_len;
			v.partition = m->partition;
			v.offset = m->offset;
			v.timestamp_ms = kafka_decoder_wants_timestamp(d) ?
				rd_kafka_message_timestamp(m, &tstype) : -1;
			MemoryContextSwitchTo(scratch_cxt);
			error = kafka_decode(d, &v, arrival, add_event, b);
			MemoryContextSwitchTo(cxt);
			if (error != NULL)
			{
				BadMessage *bm = palloc(sizeof(BadMessage));

				b->events->nevents = first_event;
				bm->partition = m->partition;
				bm->offset = m->offset;
				bm->error = pstrdup(error);
				bm->payload = payload_prefix(m);
				*bad = lappend(*bad, bm);
			}
			MemoryContextReset(scratch_cxt);
		}
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		MemoryContextReset(scratch_cxt);
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (decode_error_not_the_message(e))
			ReThrowError(e);
		b->events->nevents = first_event;
		*edata = e->message ? e->message : pstrdup("unknown error");
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return i;
}

static SPIPlanPtr offsets_plan = NULL;
static SPIPlanPtr errors_plan = NULL;
static SPIPlanPtr count_errors_plan = NULL;
static SPIPlanPtr trim_errors_plan = NULL;

static void
prepare_plans(void)
{
	Oid			otypes[4] = {INT4OID, INT4OID, INT8OID, INT8OID};
	Oid			etypes[5] = {INT4OID, INT4OID, INT8OID, TEXTOID, BYTEAOID};
	Oid			ctypes[2] = {INT4OID, INT8OID};
	Oid			ttypes[2] = {INT4OID, INT4OID};

	offsets_plan = stream_prepare_kept_plan("UPDATE stream_ext_internal.kafka_offsets SET next_offset = $3 "
											"WHERE consumer_id = $1 AND partition = $2 AND next_offset = $4",
											4, otypes);
	errors_plan = stream_prepare_kept_plan("INSERT INTO stream_ext_internal.kafka_errors "
										   "(consumer_id, partition, \"offset\", error, payload) "
										   "VALUES ($1, $2, $3, $4, $5)", 5, etypes);
	count_errors_plan = stream_prepare_kept_plan("UPDATE stream_ext_internal.kafka_consumers "
												 "SET errors = errors + $2 WHERE id = $1", 2, ctypes);
	trim_errors_plan = stream_prepare_kept_plan("DELETE FROM stream_ext_internal.kafka_errors "
												"WHERE ctid = ANY (ARRAY(SELECT ctid FROM stream_ext_internal.kafka_errors "
												"WHERE consumer_id = $1 ORDER BY occurred_at DESC, \"offset\" DESC "
												"OFFSET $2))", 2, ttypes);
}

/*
 * The first bytes of a bad message's error, as kafka_errors keeps it: an
 * error may quote the whole value (an input function's does), and a topic's
 * messages may be megabytes each.
 */
#define ERROR_TEXT_LIMIT 1000

static char *
clipped_error(char *error)
{
	int			len = strlen(error);

	if (len <= ERROR_TEXT_LIMIT)
		return error;
	return pnstrdup(error, pg_mbcliplen(error, len, ERROR_TEXT_LIMIT));
}

/*
 * Insert the bad messages and the new offsets, in the batch's transaction.
 * Every bad message is counted (kafka_consumers.errors); kafka_errors keeps
 * the consumer's newest stream_ext.kafka_max_errors, so a topic full of bad
 * messages cannot grow it without bound.
 */
static void
record_errors_and_offsets(KafkaWorker *w, List *bad, const int64 *next)
{
	int			skip = list_length(bad) - stream_ext_kafka_max_errors;
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (offsets_plan == NULL)
		prepare_plans();
	foreach(lc, bad)
	{
		BadMessage *bm = lfirst(lc);
		Datum		args[5] = {Int32GetDatum(w->cfg.id), Int32GetDatum(bm->partition),
			Int64GetDatum(bm->offset), CStringGetTextDatum(clipped_error(bm->error)),
		PointerGetDatum(bm->payload)};

		if (foreach_current_index(lc) < skip)
			continue;			/* older than the newest kafka_max_errors */
		if (SPI_execute_plan(errors_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record an undecodable Kafka message");
	}
	if (bad != NIL)
	{
		Datum		count_args[2] = {Int32GetDatum(w->cfg.id), Int64GetDatum(list_length(bad))};
		Datum		args[2] = {Int32GetDatum(w->cfg.id), Int32GetDatum(stream_ext_kafka_max_errors)};

		/*
		 * The catalog row before the trim, so that workers of a consumer
		 * trim one after the other (and hold the row only from here).
		 */
		if (SPI_execute_plan(count_errors_plan, count_args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not count the undecodable Kafka messages");
		if (SPI_execute_plan(trim_errors_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not trim the undecodable Kafka messages of consumer %d", w->cfg.id);
	}
	/*
	 * Only from the offset this worker started the batch at: in a group,
	 * the partition may have gone to another worker of the consumer while
	 * this batch ran (its poll interval passed), which read the same stored
	 * offset and applies the same messages.  The batch that commits second
	 * fails here (its UPDATE waits for the first one's row, then finds it
	 * moved), and its worker starts again from the stored offsets.
	 */
	for (int i = 0; i < w->nassigned; i++)
	{
		Datum		args[4] = {Int32GetDatum(w->cfg.id), Int32GetDatum(w->assigned_partitions[i]),
		Int64GetDatum(next[i]), Int64GetDatum(w->assigned_next[i])};

		if (next[i] == w->assigned_next[i])
			continue;
		if (SPI_execute_plan(offsets_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not store the offset of partition %d", w->assigned_partitions[i]);
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the stored offset of partition %d of topic \"%s\" is no longer %lld",
							w->assigned_partitions[i], w->cfg.topic,
							(long long) w->assigned_next[i]),
					 errdetail("Another worker of the consumer stored the partition's progress first; this batch is not applied, and the worker starts again from the stored offsets.")));
	}
	SPI_finish();
}

/*
 * Apply msgs[0..n) in one transaction: events to the views, bad messages to
 * kafka_errors, offsets.  Throws on failure (the caller aborts and retries
 * carefully).  Returns the number of events applied.
 */
static int
apply_messages(KafkaWorker *w, rd_kafka_message_t **msgs, int n, bool careful,
			   MemoryContext cxt, int64 *next)
{
	BatchState b;
	StreamBatchEvents *events;
	Relation	rel;
	StreamRunAs as;
	KafkaDecoder *decoder;
	TimestampTz arrival = GetCurrentTimestamp();
	List	   *bad = NIL;
	int			i = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());

	/* the role the consumer acts for may still insert (an error here ends the worker) */
	kafka_check_rights(w, get_role_oid(w->cfg.created_by, true));
	rel = table_open(w->cfg.stream, AccessShareLock);

	/*
	 * Messages are decoded, and generated columns computed, as the stream's
	 * owner in a security-restricted operation: the columns' input
	 * functions, domain checks and generation expressions are user code,
	 * which must not run with the worker's (superuser's) rights.
	 */
	stream_begin_as_owner(&as, rel->rd_rel->relowner);
	decoder = kafka_decoder_create(rel, &w->cfg.format);
	/* a message gives every column: only generated ones are computed */
	b.fill = stream_column_fill_begin(rel, bms_add_range(NULL, 1, RelationGetNumberOfAttributes(rel)));
	table_close(rel, NoLock);

	arena_reset();
	events = palloc0(sizeof(StreamBatchEvents));
	events->stream = w->cfg.stream;
	events->only = -1;
	events->capacity = Max(n, 16);
	events->events = palloc(sizeof(HeapTupleData) * events->capacity);
	b.w = w;
	b.events = events;
	b.xid = GetTopTransactionId();

	/*
	 * Offsets after this batch.  Messages of partitions no longer ours, or
	 * before the offset we expect (fetched before a re-assignment), are
	 * left out; unless the partition now ends before that offset (the
	 * topic was recreated, or the brokers changed), where the consumer
	 * starts over as auto.offset.reset says.
	 */
	memcpy(next, w->assigned_next, sizeof(int64) * w->nassigned);
	{
		rd_kafka_message_t **all = msgs;
		int			k = 0;

		msgs = palloc(sizeof(rd_kafka_message_t *) * Max(n, 1));
		for (int j = 0; j < n; j++)
		{
			int			a = kafka_assigned_index(w, all[j]->partition);

			if (a < 0 || (all[j]->offset < next[a] && !partition_ends_before(w, all[j], next[a])))
				continue;
			next[a] = all[j]->offset + 1;
			msgs[k++] = all[j];
		}
		n = k;
	}

	while (i < n)
	{
		char	   *error = NULL;

		i = decode_run(decoder, msgs, i, n, &b, arrival, &bad, &error);
		if (i < n)
		{
			BadMessage *bm = palloc(sizeof(BadMessage));

			bm->partition = msgs[i]->partition;
			bm->offset = msgs[i]->offset;
			bm->error = error;
			bm->payload = payload_prefix(msgs[i]);
			bad = lappend(bad, bm);
			i++;
		}
	}

	stream_column_fill_end(b.fill);
	stream_end_as_owner(&as);
	if (events->nevents > 0)
		stream_apply_events(list_make1(events), KAFKA_COUNTER_WORKER_BASE + w->slotno, careful);
	record_errors_and_offsets(w, bad, next);

	PopActiveSnapshot();
	CommitTransactionCommand();
	return events->nevents;
}

/*
 * After a commit: the new offsets become ours; tell the combiner and the
 * group; a good batch ends the backoff of earlier failures.
 */
static void
batch_committed(KafkaWorker *w, const int64 *next, int nmessages)
{
	memcpy(w->assigned_next, next, sizeof(int64) * w->nassigned);
	stream_note_mergeable(stream_batch_slot_for_backend());

	if (w->cfg.group_id && w->nassigned > 0)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(w->nassigned);

		for (int i = 0; i < w->nassigned; i++)
			rd_kafka_topic_partition_list_add(list, w->cfg.topic,
											  w->assigned_partitions[i])->offset = w->assigned_next[i];
		(void) rd_kafka_commit(w->rk, list, 1);
		rd_kafka_topic_partition_list_destroy(list);
	}

	if (w->failures_to_reset)
	{
		LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
		w->slot->failures = 0;
		memset(&w->slot->transient, 0, sizeof(w->slot->transient));
		LWLockRelease(KafkaShared->lock);
		w->failures_to_reset = false;
	}
}

/* Counters after a committed batch (the lag is kafka_refresh_lag's). */
static void
update_status(KafkaWorker *w, int nmessages)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&w->slot->mutex);
	w->slot->messages += nmessages;
	stream_rate_add(&w->slot->rate, now, nmessages);
	strlcpy(w->slot->state, "running", sizeof(w->slot->state));
	SpinLockRelease(&w->slot->mutex);
}

/*
 * The careful apply.  Each view in whose run the batch failed
 * STREAM_TRANSIENT_TRIES times in a row transiently (each failure ended
 * the worker, which started again after a backoff) owns, until a batch
 * commits, the transient errors its code raises (worker/apply.c): the
 * message causing one is set aside for the view, recorded, and the
 * partition goes on.  The slot keeps the views, which outlive the process.
 */
static void
apply_carefully(KafkaWorker *w, rd_kafka_message_t **msgs, int n, MemoryContext cxt,
				int64 *next)
{
	StreamTransientTries tries;

	LWLockAcquire(KafkaShared->lock, LW_SHARED);
	tries = w->slot->transient;
	LWLockRelease(KafkaShared->lock);

	stream_apply_views_own_transient_errors(tries.owning, tries.nowning);
	PG_TRY();
	{
		apply_messages(w, msgs, n, true, cxt, next);
	}
	PG_CATCH();
	{
		int			sqlerrcode = geterrcode();

		stream_apply_views_own_transient_errors(NULL, 0);
		/* counted in the slot, which outlives the process the error ends */
		LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
		(void) stream_transient_tries_note(&w->slot->transient, sqlerrcode);
		LWLockRelease(KafkaShared->lock);
		PG_RE_THROW();
	}
	PG_END_TRY();
	stream_apply_views_own_transient_errors(NULL, 0);
}

/* Apply, retrying carefully on error (one bad event never stalls a partition). */
void
kafka_process_batch(KafkaWorker *w, rd_kafka_message_t **msgs, int n, MemoryContext cxt,
					TimestampTz batch_start)
{
	int64	   *next = palloc(sizeof(int64) * Max(w->nassigned, 1));
	MemoryContext saved = CurrentMemoryContext;
	TimestampTz apply_start = GetCurrentTimestamp();

	PG_TRY();
	{
		apply_messages(w, msgs, n, false, cxt, next);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(saved);
		FlushErrorState();
		stream_scan_source = NULL;
		AbortCurrentTransaction();
		jit_reset_after_error();	/* as PostgresMain does */
		apply_carefully(w, msgs, n, cxt, next);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(saved);
	batch_committed(w, next, n);
	update_status(w, n);
	elog(DEBUG1, "stream_ext kafka consumer %d: %d messages, polled in %ld ms, applied in %ld ms",
		 w->cfg.id, n, (long) ((apply_start - batch_start) / 1000),
		 (long) ((GetCurrentTimestamp() - apply_start) / 1000));
}

void
kafka_batch_init(void)
{
	scratch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka message",
										ALLOCSET_DEFAULT_SIZES);
}
