/*
 * producer.c
 *	  The Kafka producer worker (the sink): sends the committed events of a
 *	  stream to a topic, at least once, each message with a header
 *	  stream_ext_event that numbers its event (src/kafka/README.md,
 *	  "Producers").
 *
 * The loop, each step a transaction of its own:
 *	 1. stage: when the outbox holds nothing of ours, move up to
 *		stream_ext.batch_size events from the staging view's kept rows into
 *		the outbox, numbered and formatted (sink_sql.c); commit;
 *	 2. hand every message of the batch to librdkafka; while the brokers
 *		acknowledge them, stage the next batch (step 1 again, into the
 *		outbox beside this one); then wait until each message of this batch
 *		is acknowledged or refused (librdkafka retries inside; a message it
 *		gives up on is produced again after a backoff);
 *	 3. delete this batch's acknowledged messages from the outbox and count
 *		them; commit; the batch staged meanwhile is the next one.
 * A crash between 2 and 3 sends those messages again after the restart,
 * with the same key, value and header: at least once, never lost (events
 * leave the outbox only after their acknowledgement, and the staging view
 * only in the transaction that puts them in the outbox).  After a refusal,
 * or a restart, the loop starts again from every message in the outbox.
 */
#include "postgres.h"

#include <limits.h>
#include <librdkafka/rdkafka.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "guc.h"
#include "kafka/kafka_guc.h"
#include "kafka/lag.h"
#include "kafka/outbox.h"
#include "kafka/process.h"
#include "kafka/producer.h"
#include "kafka/rights.h"
#include "kafka/sink_format.h"
#include "kafka/sink_sql.h"
#include "kafka/slots.h"
#include "kafka/view_stage.h"
#include "worker/settings.h"

/* How long the worker waits for events when there are none */
#define IDLE_WAIT_MS 50

/* Each wait for acknowledgements, between interrupt checks */
#define POLL_SLICE_MS 20

/* Header of every message: the event's number, "<producer>-<event>" */
#define EVENT_HEADER "stream_ext_event"

/* A batch in flight: its messages not yet settled, where their errors go */
typedef struct InFlight
{
	int			outstanding;
	MemoryContext cxt;
} InFlight;

/* One outbox message of a batch, and what became of it */
typedef struct OutboxMessage
{
	InFlight   *flight;			/* its batch's, while in flight */
	int64		event;
	const char *key;			/* NULL: no key */
	int			key_len;
	const char *value;
	int			value_len;
	bool		done;			/* acknowledged */
	bool		failed;			/* refused or timed out: produce again */
	char	   *refused;		/* refused for good (too large): the error;
								 * set aside, not produced again */
	bool		row_start;		/* the first of its outbox row */
	bool		alone;			/* produced alone: a broker's "too large"
								 * is then the message's own */
	bool		too_large;		/* a broker refused it for good with its
								 * batch: too large, or an invalid record */
} OutboxMessage;

/*
 * Is err a refusal of the message itself, which producing it again cannot
 * change?  (Not one of the topic, the brokers or the producer.)  Only when
 * librdkafka refuses the message at once, or a broker refuses it sent
 * alone: a broker answers for a whole record batch, and says "too large"
 * of every small message of a batch that is too large as a whole.
 */
static bool
refused_for_good(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
		err == RD_KAFKA_RESP_ERR_INVALID_RECORD;	/* e.g. no key for a compacted topic */
}

/*
 * Events a broker refused as too large in a batch with others: produced
 * again each alone (in w->cxt; they are few, and forgotten once settled).
 */
static List *send_alone = NIL;

static bool
sent_alone(int64 event)
{
	ListCell   *lc;

	foreach(lc, send_alone)
		if (*(int64 *) lfirst(lc) == event)
			return true;
	return false;
}

static KafkaWorker worker;

/* the messages the last stage or outbox read kept */
static OutboxMessage *batch = NULL;

/* messages in flight, of every batch */
static int	outstanding_total = 0;
static char last_delivery_error[256];

/* counting the staged events for the writers' bound (backpressure.c) */
#define PENDING_REFRESH_MS 1000
static char *pending_sql = NULL;
static TimestampTz pending_at = 0;

/*
 * Each step of the worker is a transaction of its own, with a snapshot,
 * connected to SPI.
 */
static void
begin_spi_transaction(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
end_spi_transaction(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Run one of the statements of every batch: planned once per process
 * (generic, kept in *plan), not parsed and planned at each batch.
 */
static int
execute_kept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes, Datum *args,
			 bool read_only)
{
	if (*plan == NULL)
		*plan = stream_prepare_kept_generic_plan(sql, nargs, argtypes);
	return SPI_execute_plan(*plan, args, NULL, read_only, 0);
}

/* ---------- catalog ---------- */

/*
 * Read the producer's catalog row into w->cfg (in w->cxt); *staging is its
 * staging view.  Returns false when the producer is gone or disabled.
 */
static bool
load_config(KafkaWorker *w, int producer_id, Oid *staging)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(producer_id)};
	bool		found = false;

	begin_spi_transaction();
	if (SPI_execute_with_args("SELECT stream::oid, topic, brokers, format, "
							  "format_options->>'delimiter', format_options->>'quote', "
							  "format_options->>'null', key_column, staging::oid "
							  "FROM stream_ext_internal.kafka_producers WHERE id = $1 AND enabled",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read Kafka producer %d", producer_id);
	if (SPI_processed == 1 && kafka_spi_text(0, 9) != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(w->cxt);

		found = true;
		w->cfg.id = producer_id;
		w->cfg.stream = atooid(kafka_spi_text(0, 1));
		w->cfg.topic = kafka_spi_text(0, 2);
		w->cfg.brokers = kafka_spi_text(0, 3);
		w->cfg.parallelism = 1;
		kafka_sink_format_options(&w->cfg.format, kafka_spi_text(0, 4), kafka_spi_text(0, 5),
								  kafka_spi_text(0, 6), kafka_spi_text(0, 7),
								  kafka_spi_text(0, 8));
		*staging = atooid(kafka_spi_text(0, 9));
		w->cfg.staging = *staging;
		MemoryContextSwitchTo(old);

		kafka_load_options(w, "kafka_producers");
	}
	end_spi_transaction();
	return found;
}

/* ---------- librdkafka ---------- */

/*
 * Delivery report, called by rd_kafka_poll in this process: marks the
 * message (the opaque pointer; its batch stays until every message of it is
 * settled, wait_batch); PostgreSQL is not called.
 */
static void
delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	OutboxMessage *msg = (OutboxMessage *) m->_private;

	if (msg == NULL || msg->flight == NULL)
		return;
	if (m->err && refused_for_good(m->err) && msg->alone)
		msg->refused = MemoryContextStrdup(msg->flight->cxt, rd_kafka_err2str(m->err));
	else if (m->err)
	{
		/* refused with its batch: produced again alone (enqueue_batch) */
		msg->too_large = refused_for_good(m->err);
		msg->failed = true;
		snprintf(last_delivery_error, sizeof(last_delivery_error), "%s: %s",
				 rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
	}
	else
		msg->done = true;
	msg->flight->outstanding--;
	outstanding_total--;
}

/*
 * Ask the brokers about the topic now, for up to LEARN_TOPIC_MS in slices
 * that interrupts end: librdkafka asks about a topic it first meets in a
 * produce call only at its next scan of topics (once a second), and holds
 * the messages back until then (the first batch after a start waited
 * 0.7-0.9 s so).  The handle's topic is kept for the process's life.  The
 * brokers may be down: then the first messages wait as they would have.
 * (Brokers that create topics on first use create it now rather than at
 * the first message, as librdkafka's producer would anyway.)
 */
#define LEARN_TOPIC_MS 2000
#define LEARN_TOPIC_SLICE_MS 100

static void
learn_topic(KafkaWorker *w)
{
	static rd_kafka_topic_t *topic = NULL;
	const struct rd_kafka_metadata *metadata;

	if (topic == NULL)
		topic = rd_kafka_topic_new(w->rk, w->cfg.topic, NULL);
	for (int waited = 0; topic != NULL && waited < LEARN_TOPIC_MS; waited += LEARN_TOPIC_SLICE_MS)
	{
		CHECK_FOR_INTERRUPTS();
		if (rd_kafka_metadata(w->rk, 0, topic, &metadata, LEARN_TOPIC_SLICE_MS) ==
			RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			rd_kafka_metadata_destroy(metadata);
			break;
		}
	}
}

/*
 * The handle: idempotent (librdkafka's own retries neither duplicate nor
 * reorder a partition's messages), acknowledged by all in-sync replicas;
 * the user's options override these defaults.
 */
static void
create_producer(KafkaWorker *w)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	kafka_set_conf(w, conf, "bootstrap.servers", w->cfg.brokers);
	kafka_set_conf(w, conf, "client.id", "stream_ext");
	kafka_set_conf(w, conf, "enable.idempotence", "true");
	kafka_set_conf(w, conf, "linger.ms", "5");
	kafka_set_conf(w, conf, "message.timeout.ms", "30000");
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	kafka_create_handle(w, conf, RD_KAFKA_PRODUCER);
	learn_topic(w);
}

/*
 * About every second, count the staged events (up to one more than the
 * bound) into the slot, where writers of the stream look (backpressure.c).
 * Caller is outside a transaction.
 */
static void
refresh_pending(KafkaWorker *w)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2];
	int64		pending;
	TimestampTz now = GetCurrentTimestamp();

	if (pending_sql == NULL || !TimestampDifferenceExceeds(pending_at, now, PENDING_REFRESH_MS))
		return;
	pending_at = now;
	args[0] = Int32GetDatum(w->cfg.id);
	args[1] = Int32GetDatum(stream_ext_kafka_sink_max_pending < INT_MAX ?
							stream_ext_kafka_sink_max_pending + 1 : INT_MAX);
	begin_spi_transaction();
	if (SPI_execute_with_args(pending_sql, 2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not count the staged events of Kafka producer %d", w->cfg.id);
	pending = strtoll(kafka_spi_text(0, 1), NULL, 10);
	end_spi_transaction();
	SpinLockAcquire(&w->slot->mutex);
	w->slot->lag = pending;
	w->slot->lag_known = true;
	SpinLockRelease(&w->slot->mutex);
}

/*
 * Wait ms before trying the brokers again, counting the staged events every
 * second meanwhile: writers go on staging while the brokers are down, and
 * their backpressure follows that count.
 */
static void
backoff_counting(KafkaWorker *w, long ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	long		left;

	while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until)) > 0)
	{
		kafka_consumer_sleep(w, Min(left, 1000L));
		refresh_pending(w);
	}
}

/* Poll for acknowledgements up to ms, serving interrupts and the log. */
static void
poll_acknowledgements(KafkaWorker *w, int ms)
{
	(void) rd_kafka_poll(w->rk, ms);
	kafka_serve_interrupts();
	kafka_serve_callback_reports(w);
	refresh_pending(w);
}

/* ---------- the three steps ---------- */

/*
 * Step 1: take up to limit staged events (kept rows, then committed deltas)
 * out of the staging view, number them and put their messages into the
 * outbox in rows (outbox.c), in one transaction; keep the messages in batch
 * (in cxt).  Returns how many (0 when none).
 */
static int
stage_events(KafkaWorker *w, const KafkaSinkStageSql *stage_sql, int limit, MemoryContext cxt)
{
	StagedMessage *staged;
	int			n;
	Oid			owner;

	begin_spi_transaction();

	/*
	 * The statement formats the events: casts and output functions of the
	 * stream's types are user code, run with the rights of the role the
	 * producer acts for, never the worker's (rights.c); an event they fail
	 * is set aside (view_stage.c).
	 */
	owner = kafka_relation_owner(w->cfg.staging);
	kafka_check_rights(w, owner);
	n = kafka_stage_from_view(w->cfg.id, stage_sql, owner, limit, &staged, cxt);
	if (n > 0)
	{
		OutboxRowBuilder *builder = kafka_outbox_builder();
		int			first = 0;

		batch = MemoryContextAllocZero(cxt, sizeof(OutboxMessage) * n);
		for (int i = 0; i < n; i++)
		{
			OutboxMessage *m = &batch[i];

			m->row_start = (i == first);
			m->key = staged[i].key;
			m->key_len = m->key ? strlen(m->key) : 0;
			m->value = staged[i].value;
			m->value_len = strlen(m->value);
			kafka_outbox_builder_add(builder, m->key, m->key_len, m->value, m->value_len);
			if (kafka_outbox_builder_full(builder) || i == n - 1)
			{
				int64		number = kafka_outbox_builder_insert(builder, w->cfg.id,
																 InvalidFullTransactionId);

				for (int j = first; j <= i; j++)
					batch[j].event = number + (j - first);
				first = i + 1;
			}
		}
	}
	end_spi_transaction();
	return n;
}

/*
 * A batch read from the outbox holds about this many bytes of messages at
 * most (at least one row): batch_size messages of 100 kB each would
 * otherwise be 2 GB, twice (the batch in flight and the next).
 */
#define BATCH_BYTES (64 * 1024 * 1024)

/* Rows fetched at a time from the outbox's cursor */
#define TAKE_FETCH_ROWS 64

/*
 * Read the outbox rows of ours but those of the n messages of skip (the
 * batch in flight), in the order of their first events, as many as hold
 * limit messages and BATCH_BYTES at most (at least one row), into batch (in
 * cxt; the keys and values point into copies of the rows' arrays there).
 * Rows of writers' own staging (sink_stage.c), rows a crash or a refusal
 * left, and rows this worker staged meanwhile all come this way; rows a
 * batch worker staged for a writer, once that writer committed (as the
 * snapshot sees it, as it sees the writers' own rows: a transaction's rows
 * staged both ways become takeable in the same snapshot, in their order).
 * Returns how many messages.
 */
static int
take_outbox_rows(KafkaWorker *w, OutboxMessage *skip, int nskip, int limit, MemoryContext cxt)
{
	static SPIPlanPtr take_plan = NULL;
	Oid			argtypes[3] = {INT4OID, INT8ARRAYOID, INT4OID};
	Datum		args[3];
	Datum	   *skip_rows = palloc(sizeof(Datum) * Max(nskip, 1));
	int			nskip_rows = 0;
	int			total = 0;
	int			size = 0;
	Size		bytes = 0;
	bool		full = false;
	Portal		portal;

	for (int i = 0; i < nskip; i++)
		if (skip[i].row_start)
			skip_rows[nskip_rows++] = Int64GetDatum(skip[i].event);
	args[0] = Int32GetDatum(w->cfg.id);
	args[1] = PointerGetDatum(construct_array(skip_rows, nskip_rows, INT8OID, 8,
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (limit <= 0)
		limit = INT_MAX;
	args[2] = Int32GetDatum(limit);
	batch = NULL;
	begin_spi_transaction();
	/* sent for the role the producer acts for, while it may (rights.c) */
	kafka_check_rights(w, kafka_relation_owner(w->cfg.staging));
	/* (a row holds one message or more: limit rows are enough) */
	if (take_plan == NULL)
		take_plan = stream_prepare_kept_generic_plan(
			"SELECT n, events, keys, messages FROM stream_ext_internal.kafka_outbox "
			"WHERE producer_id = $1 AND first_event <> ALL ($2) "
			"AND (writer_xid IS NULL OR stream_ext_internal.xid_visible(writer_xid)) "
			"ORDER BY first_event LIMIT $3", 3, argtypes);
	portal = SPI_cursor_open(NULL, take_plan, args, NULL, true);
	while (!full)
	{
		TupleDesc	desc;

		SPI_cursor_fetch(portal, true, TAKE_FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		desc = SPI_tuptable->tupdesc;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			MemoryContext old;
			bool		isnull;
			int			n = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
			ArrayType  *events;
			ArrayType  *keys;
			ArrayType  *messages;
			Datum	   *key_values;
			bool	   *key_nulls;
			Datum	   *message_values;
			int			nkeys;
			int			nmessages;

			/* whole rows, not past limit or BATCH_BYTES unless one row is more */
			if (total > 0 && (total + n > limit || bytes >= BATCH_BYTES))
			{
				full = true;
				break;
			}
			old = MemoryContextSwitchTo(cxt);
			events = DatumGetArrayTypePCopy(SPI_getbinval(tuple, desc, 2, &isnull));
			keys = DatumGetArrayTypePCopy(SPI_getbinval(tuple, desc, 3, &isnull));
			messages = DatumGetArrayTypePCopy(SPI_getbinval(tuple, desc, 4, &isnull));
			deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &key_values, &key_nulls,
							  &nkeys);
			deconstruct_array(messages, TEXTOID, -1, false, TYPALIGN_INT, &message_values, NULL,
							  &nmessages);
			if (total + n > size)
			{
				int			grown = Max(total + n, Max(size * 2, 1024));

				batch = batch ? repalloc(batch, sizeof(OutboxMessage) * grown) :
					palloc(sizeof(OutboxMessage) * grown);
				size = grown;
			}
			MemoryContextSwitchTo(old);
			if (ArrayGetNItems(ARR_NDIM(events), ARR_DIMS(events)) != n || nkeys != n ||
				nmessages != n)
				elog(ERROR, "an outbox row of Kafka producer %d is malformed", w->cfg.id);
			bytes += VARSIZE(keys) + VARSIZE(messages);
			for (int i = 0; i < n; i++)
			{
				OutboxMessage *m = &batch[total++];

				memset(m, 0, sizeof(OutboxMessage));
				m->event = ((int64 *) ARR_DATA_PTR(events))[i];
				m->row_start = (i == 0);
				if (!key_nulls[i])
				{
					m->key = VARDATA_ANY(DatumGetPointer(key_values[i]));
					m->key_len = VARSIZE_ANY_EXHDR(DatumGetPointer(key_values[i]));
				}
				m->value = VARDATA_ANY(DatumGetPointer(message_values[i]));
				m->value_len = VARSIZE_ANY_EXHDR(DatumGetPointer(message_values[i]));
			}
			pfree(events);
			pfree(key_values);
			pfree(key_nulls);
			pfree(message_values);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	end_spi_transaction();
	pfree(DatumGetPointer(args[1]));
	pfree(skip_rows);
	return total;
}

/*
 * The next batch while cur (n messages) is in flight: rows writers put in
 * the outbox, or events staged in the staging view (a Kafka consumer's,
 * rows of a transform, a writer's that it left to the workers), which get
 * a turn at least every VIEW_TURN_MS, however busy the writers keep the
 * outbox.  Returns how many messages (in batch, in cxt).
 */
#define VIEW_TURN_MS 1000

static int
next_batch(KafkaWorker *w, const KafkaSinkStageSql *stage_sql, OutboxMessage *cur, int n, MemoryContext cxt)
{
	static TimestampTz view_turn_at = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			next_n = 0;

	if (TimestampDifferenceExceeds(view_turn_at, now, VIEW_TURN_MS))
	{
		view_turn_at = now;
		next_n = stage_events(w, stage_sql, stream_ext_batch_size, cxt);
		if (next_n > 0)
			return next_n;
	}
	next_n = take_outbox_rows(w, cur, n, stream_ext_batch_size, cxt);
	if (next_n == 0)
	{
		view_turn_at = now;
		next_n = stage_events(w, stage_sql, stream_ext_batch_size, cxt);
	}
	return next_n;
}

/*
 * Step 2, first half: hand every message of msgs not yet acknowledged to
 * librdkafka (they are in flight from here on, counted in flight, which
 * stays until wait_batch returns).  Returns whether none was refused at
 * once.
 */
static bool
enqueue_batch(KafkaWorker *w, OutboxMessage *msgs, int n, InFlight *flight)
{
	char		header[64];
	int			header_len;
	bool		all = true;

	/*
	 * Nothing goes to the brokers before it is on disk here: the commits
	 * of the writers and workers whose events these are, and ours that
	 * numbered them, may be visible before their WAL is flushed
	 * (synchronous_commit = off, stream_ext.commit_mode = async).  A crash
	 * would then take back events Kafka keeps, and give their numbers to
	 * other events.  Every commit this batch's snapshot saw ends at or
	 * before the end of the WAL inserted now (the end of its last record,
	 * not the insert position, which past a page boundary is beyond the
	 * next page's header: a flush of it would be refused).
	 */
	XLogFlush(GetXLogInsertEndRecPtr());

	if (outstanding_total == 0)
		last_delivery_error[0] = '\0';
	for (int i = 0; i < n; i++)
	{
		rd_kafka_resp_err_t err;

		if (msgs[i].done || msgs[i].refused)
			continue;
		msgs[i].failed = false;
		msgs[i].too_large = false;
		msgs[i].alone = send_alone != NIL && sent_alone(msgs[i].event);
		/* alone: in a request of its own, after the others in flight */
		while (msgs[i].alone && outstanding_total > 0)
			poll_acknowledgements(w, POLL_SLICE_MS);
		msgs[i].flight = flight;
		/* "<producer>-<event>", as snprintf would write it */
		header_len = pg_ltoa(w->cfg.id, header);
		header[header_len++] = '-';
		header_len += pg_lltoa(msgs[i].event, header + header_len);
		for (;;)
		{
			err = rd_kafka_producev(w->rk,
									RD_KAFKA_V_TOPIC(w->cfg.topic),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_VALUE((void *) msgs[i].value, msgs[i].value_len),
									RD_KAFKA_V_KEY(msgs[i].key, msgs[i].key_len),
									RD_KAFKA_V_HEADER(EVENT_HEADER, header, header_len),
									RD_KAFKA_V_OPAQUE(&msgs[i]),
									RD_KAFKA_V_END);
			if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break;
			poll_acknowledgements(w, POLL_SLICE_MS);
		}
		if (err && refused_for_good(err))
		{
			/* refused at once for good (too large): set aside */
			msgs[i].refused = MemoryContextStrdup(flight->cxt, rd_kafka_err2str(err));
			continue;
		}
		if (err)
		{
			/* refused at once: the batch waits */
			msgs[i].failed = true;
			all = false;
			snprintf(last_delivery_error, sizeof(last_delivery_error), "%s: %s",
					 rd_kafka_err2name(err), rd_kafka_err2str(err));
			continue;
		}
		flight->outstanding++;
		outstanding_total++;
		while (msgs[i].alone && outstanding_total > 0)
			poll_acknowledgements(w, POLL_SLICE_MS);
		if (i % 1000 == 999)
			poll_acknowledgements(w, 0);
	}
	return all;
}

/*
 * Step 2, second half: wait until each message of msgs (of flight) is
 * acknowledged or refused.  Returns whether all n of them were
 * acknowledged.
 */
static bool
wait_batch(KafkaWorker *w, OutboxMessage *msgs, int n, InFlight *flight)
{
	while (flight->outstanding > 0)
		poll_acknowledgements(w, POLL_SLICE_MS);

	/*
	 * A fatal error of the idempotent producer (its sequence state broke)
	 * leaves the handle unusable: exit, and the supervisor starts a fresh
	 * one after the backoff; the outbox keeps what was not acknowledged.
	 */
	{
		char		reason[256];

		if (rd_kafka_fatal_error(w->rk, reason, sizeof(reason)) != RD_KAFKA_RESP_ERR_NO_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("Kafka producer %d of topic \"%s\" failed", w->cfg.id, w->cfg.topic),
					 errdetail_internal("%s", reason)));
	}
	for (int i = 0; i < n; i++)
		if (!msgs[i].done && !msgs[i].refused)
			return false;
	return true;
}

/*
 * Step 3: delete the outbox's rows of ours that hold the n messages of msgs
 * (those whose first event is the first of a row of msgs: not the rows of a
 * batch staged meanwhile) and put back the messages not acknowledged, taken
 * from the deleted rows (so unchanged), in one transaction; count the
 * others.  Returns how many were acknowledged and left the outbox.
 */
static int64
forget_acknowledged(KafkaWorker *w, const char *forget_sql, OutboxMessage *msgs, int n)
{
	static SPIPlanPtr forget_all_plan = NULL;
	Datum	   *events = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *rows = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *refused = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *errors = palloc(sizeof(Datum) * Max(n, 1));
	int			k = 0;
	int			nrows = 0;
	int			nrefused = 0;
	Oid			argtypes[7] = {INT4OID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
		TEXTARRAYOID, INT4OID, INT4OID};
	Datum		args[7];
	int64		deleted = 0;

	for (int i = 0; i < n; i++)
	{
		if (msgs[i].row_start)
			rows[nrows++] = Int64GetDatum(msgs[i].event);
		if (msgs[i].refused)
		{
			refused[nrefused] = Int64GetDatum(msgs[i].event);
			errors[nrefused++] = PointerGetDatum(cstring_to_text(msgs[i].refused));
		}
		else if (!msgs[i].done)
			events[k++] = Int64GetDatum(msgs[i].event);
	}
	if (k == 0 && nrefused == 0)
	{
		/* all acknowledged: delete the rows, unread */
		Oid			all_types[2] = {INT4OID, INT8ARRAYOID};

		begin_spi_transaction();
		args[0] = Int32GetDatum(w->cfg.id);
		args[1] = PointerGetDatum(construct_array(rows, nrows, INT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		if (execute_kept(&forget_all_plan, kafka_sink_forget_all_sql(), 2, all_types, args,
						 false) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update the outbox of Kafka producer %d", w->cfg.id);
		deleted = SPI_processed == 1 ? strtoll(kafka_spi_text(0, 1), NULL, 10) : 0;
		end_spi_transaction();
	}
	else if (k < n)
	{
		begin_spi_transaction();
		args[0] = Int32GetDatum(w->cfg.id);
		args[1] = PointerGetDatum(construct_array(events, k, INT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		args[2] = PointerGetDatum(construct_array(rows, nrows, INT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		args[3] = PointerGetDatum(construct_array(refused, nrefused, INT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		args[4] = PointerGetDatum(construct_array(errors, nrefused, TEXTOID, -1, false,
												  TYPALIGN_INT));
		args[5] = Int32GetDatum(stream_ext_kafka_error_payload_limit);
		args[6] = Int32GetDatum(stream_ext_kafka_max_errors);
		if (SPI_execute_with_args(forget_sql, 7, argtypes, args, NULL, false, 0) !=
			SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update the outbox of Kafka producer %d", w->cfg.id);
		deleted = SPI_processed == 1 ? strtoll(kafka_spi_text(0, 1), NULL, 10) : 0;
		if (nrefused > 0)
		{
			Oid			trim_types[2] = {INT4OID, INT4OID};
			Datum		trim_args[2] = {args[0], args[6]};

			if (SPI_execute_with_args(kafka_sink_trim_errors_sql(), 2, trim_types, trim_args,
									  NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not trim the set-aside messages of Kafka producer %d",
					 w->cfg.id);
		}
		end_spi_transaction();
		if (nrefused > 0)
			ereport(LOG,
					(errmsg("stream_ext kafka producer %d of topic \"%s\": %d messages refused for good, set aside in kafka_sink_errors",
							w->cfg.id, w->cfg.topic, nrefused),
					 errdetail_internal("%s", TextDatumGetCString(errors[0]))));
	}
	/* (k == n: none acknowledged nor set aside, the outbox stays) */
	for (int i = 0; i < nrefused; i++)
		pfree(DatumGetPointer(errors[i]));
	pfree(events);
	pfree(rows);
	pfree(refused);
	pfree(errors);
	return deleted;
}

/*
 * After a batch of n msgs was not all delivered: the messages a broker
 * refused as too large with others are produced alone next time
 * (send_alone).  Returns how many are left to deliver.
 */
static int
note_refusals(KafkaWorker *w, OutboxMessage *msgs, int n)
{
	int			left = 0;

	for (int i = 0; i < n; i++)
	{
		left += (msgs[i].done || msgs[i].refused) ? 0 : 1;
		if (msgs[i].too_large)
		{
			MemoryContext old = MemoryContextSwitchTo(w->cxt);
			int64	   *event = palloc(sizeof(int64));

			*event = msgs[i].event;
			send_alone = lappend(send_alone, event);
			MemoryContextSwitchTo(old);
		}
	}
	return left;
}

/* Count acknowledged messages in the slot (kafka_producers.rate). */
static void
count_produced(KafkaWorker *w, int64 n)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&w->slot->mutex);
	w->slot->messages += n;
	stream_rate_add(&w->slot->rate, now, n);
	SpinLockRelease(&w->slot->mutex);
}

/* ---------- main ---------- */

/*
 * A producer worker, attached to the slot the supervisor prepared (argsp:
 * its KafkaWorkerArgs, from bgw_extra): read the producer, connect, then
 * stage, produce and forget batches until SIGTERM.
 */
static void
producer_main(KafkaWorker *w, KafkaWorkerArgs *argsp)
{
	KafkaWorkerArgs args = *argsp;
	MemoryContext batch_cxt;
	Oid			staging = InvalidOid;
	KafkaSinkStageSql stage_sql;
	bool		staging_found;
	char	   *forget_sql;
	char	   *activity;
	int			failures = 0;

	stream_worker_pin_settings();
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka producer batch",
									  ALLOCSET_DEFAULT_SIZES);
	if (!load_config(w, args.consumer_id, &staging))
		proc_exit(0);			/* stopped or dropped meanwhile */
	pgstat_report_appname("stream_ext kafka producer");

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	staging_found = kafka_sink_stage_sql(staging, &w->cfg.format, &stage_sql);
	if (staging_found)
	{
		stage_sql.stage = MemoryContextStrdup(w->cxt, stage_sql.stage);
		stage_sql.candidates = MemoryContextStrdup(w->cxt, stage_sql.candidates);
		stage_sql.stage_rows = MemoryContextStrdup(w->cxt, stage_sql.stage_rows);
		stage_sql.set_aside = MemoryContextStrdup(w->cxt, stage_sql.set_aside);
		pending_sql = MemoryContextStrdup(w->cxt, kafka_sink_pending_sql(staging));
	}
	forget_sql = MemoryContextStrdup(w->cxt, kafka_sink_forget_sql());
	activity = MemoryContextStrdup(w->cxt,
								   psprintf("stream_ext: Kafka producer %d of stream %s to topic \"%s\"",
											w->cfg.id, get_rel_name(w->cfg.stream) ? get_rel_name(w->cfg.stream) : "?",
											w->cfg.topic));
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (!staging_found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the staging view of Kafka producer %d is missing", w->cfg.id),
				 errhint("Drop the producer with stream_ext.kafka_drop_producer and create it again.")));

	/* writers of the stream find us here (backpressure.c) */
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	w->slot->stream = w->cfg.stream;
	LWLockRelease(KafkaShared->lock);

	/*
	 * Count first, before anything that may fail: a worker that fails at
	 * every start holds writers back with this count (backpressure.c).
	 */
	refresh_pending(w);

	MemoryContextSwitchTo(w->cxt);
	create_producer(w);
	kafka_slot_set_state(w->slot, "running");

	/*
	 * cur: the batch in flight, in cxt[c]; the next one is staged into
	 * cxt[1 - c] while cur's acknowledgements come in.
	 */
	{
		MemoryContext cxt[2] = {batch_cxt,
			AllocSetContextCreate(TopMemoryContext, "stream_ext kafka producer next batch",
								  ALLOCSET_DEFAULT_SIZES)};
		InFlight	flights[2] = {{0, cxt[0]}, {0, cxt[1]}};
		int			c = 0;
		OutboxMessage *cur = NULL;
		int			n = 0;
		bool		cur_enqueued = false;
		bool		cur_all = true;

		for (;;)
		{
			OutboxMessage *next = NULL;
			int			next_n = 0;
			bool		next_all = true;
			bool		all;
			int64		deleted;
			TimestampTz t_start,
						t_enqueued,
						t_staged,
						t_produced;

			CHECK_FOR_INTERRUPTS();
			t_start = GetCurrentTimestamp();
			if (cur == NULL)
			{
				/* messages left from an earlier round (or run) go first */
				MemoryContextReset(cxt[c]);
				batch = NULL;
				n = take_outbox_rows(w, NULL, 0, stream_ext_batch_size, cxt[c]);
				if (n == 0)
					n = stage_events(w, &stage_sql, stream_ext_batch_size, cxt[c]);
				if (n == 0)
				{
					pgstat_report_activity(STATE_IDLE, activity);
					(void) pgstat_report_stat(true);
					poll_acknowledgements(w, 0);
					kafka_consumer_sleep(w, IDLE_WAIT_MS);
					refresh_pending(w);
					kafka_producer_probe_brokers(w);
					continue;
				}
				cur = batch;
				cur_enqueued = false;
			}
			pgstat_report_activity(STATE_RUNNING, activity);
			if (!cur_enqueued)
				cur_all = enqueue_batch(w, cur, n, &flights[c]);
			t_enqueued = GetCurrentTimestamp();
			if (cur_all && failures == 0 && !w->failures_to_reset)
			{
				/*
				 * The next batch, staged and handed to librdkafka while the
				 * brokers acknowledge this one, so that they always have
				 * work; not while retrying (the brokers may be down: the
				 * outbox would grow by a batch a round).  librdkafka keeps
				 * a partition's messages in the order they were handed to
				 * it, this batch's before the next's.
				 */
				MemoryContextReset(cxt[1 - c]);
				batch = NULL;
				next_n = next_batch(w, &stage_sql, cur, n, cxt[1 - c]);
				next = next_n > 0 ? batch : NULL;
				if (next != NULL)
					next_all = enqueue_batch(w, next, next_n, &flights[1 - c]);
			}
			t_staged = GetCurrentTimestamp();
			all = wait_batch(w, cur, n, &flights[c]) && cur_all;
			t_produced = GetCurrentTimestamp();
			deleted = forget_acknowledged(w, forget_sql, cur, n);
			elog(DEBUG1, "Kafka producer %d: %d messages: read or staged and produced in %ld us, %d next staged and produced in %ld us, then acknowledged in %ld us, forgotten in %ld us",
				 w->cfg.id, n, (long) (t_enqueued - t_start), next_n, (long) (t_staged - t_enqueued),
				 (long) (t_produced - t_staged), (long) (GetCurrentTimestamp() - t_produced));
			count_produced(w, deleted);
			(void) pgstat_report_stat(false);
			if (all && next_all)
			{
				list_free_deep(send_alone);
				send_alone = NIL;
				if (failures > 0 || w->failures_to_reset)
				{
					LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
					w->slot->failures = 0;
					LWLockRelease(KafkaShared->lock);
					w->failures_to_reset = false;
				}
				failures = 0;
				kafka_slot_set_state(w->slot, "running");
				/* the batch staged and in flight meanwhile goes next */
				cur = next;
				n = next_n;
				cur_enqueued = next != NULL;
				cur_all = true;
				c = 1 - c;
			}
			else
			{
				/* the brokers refused some: they stay in the outbox, try again */
				long		backoff = 1000L << Min(failures, 6);	/* 1 s .. 64 s */
				int			left = 0;

				/* the next batch settles first, and its acknowledged ones go */
				if (next != NULL)
				{
					(void) wait_batch(w, next, next_n, &flights[1 - c]);
					count_produced(w, forget_acknowledged(w, forget_sql, next, next_n));
					left += note_refusals(w, next, next_n);
				}
				left += note_refusals(w, cur, n);
				failures++;
				kafka_slot_set_state(w->slot, "retrying");
				kafka_report_problem(w, psprintf("could not deliver %d messages: %s", left,
												 last_delivery_error));
				backoff_counting(w, backoff);
				/* then from the outbox: these, and a batch staged meanwhile */
				cur = NULL;
			}
		}
	}
}

/* The entry point of a producer worker (process.c) */
void
stream_ext_kafka_producer_main(Datum arg)
{
	kafka_worker_main(&worker, producer_main);
}
