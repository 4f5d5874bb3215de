/*
 * producer.c
 *	  The Kafka producer worker (the sink): sends the committed events of a
 *	  stream to a topic, at least once, each message with a header
 *	  stream_ext_event that numbers its event (src/kafka/README.md,
 *	  "Producers").
 *
 * The loop, each step a transaction of its own:
 *	 1. stage: if the outbox holds nothing of ours, move up to
 *		stream_ext.batch_size events from the staging view's kept rows into
 *		the outbox, numbered and formatted (sink_sql.c); commit;
 *	 2. produce every outbox message of ours and wait until the brokers
 *		acknowledged or refused each (librdkafka retries inside; a message
 *		it gives up on is produced again after a backoff);
 *	 3. delete the acknowledged messages from the outbox and count them;
 *		commit.
 * A crash between 2 and 3 sends those messages again after the restart,
 * with the same key, value and header: at least once, never lost (events
 * leave the outbox only after their acknowledgement, and the staging view
 * only in the transaction that puts them in the outbox).
 */
#include "postgres.h"

#include <limits.h>
#include <librdkafka/rdkafka.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "kafka/kafka_guc.h"
#include "kafka/process.h"
#include "kafka/producer.h"
#include "kafka/sink_sql.h"
#include "kafka/slots.h"
#include "worker/settings.h"

/* How long the worker waits for events when there are none */
#define IDLE_WAIT_MS 50

/* Each wait for acknowledgements, between interrupt checks */
#define POLL_SLICE_MS 20

/* Header of every message: the event's number, "<producer>-<event>" */
#define EVENT_HEADER "stream_ext_event"

/* One outbox message of a batch, and what became of it */
typedef struct OutboxMessage
{
	int64		event;
	char	   *key;			/* NULL: no key */
	char	   *value;
	bool		done;			/* acknowledged */
	bool		failed;			/* refused or timed out: produce again */
} OutboxMessage;

static KafkaWorker worker;

/* the batch in flight (the delivery callback marks its messages) */
static OutboxMessage *batch = NULL;
static int	outstanding = 0;
static char last_delivery_error[256];

/* counting the staged events for the writers' bound (backpressure.c) */
#define PENDING_REFRESH_MS 1000
static char *pending_sql = NULL;
static TimestampTz pending_at = 0;

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

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT stream::oid, topic, brokers, format, "
							  "format_options->>'delimiter', format_options->>'quote', "
							  "format_options->>'null', key_column, staging::oid "
							  "FROM stream_ext_internal.kafka_producers WHERE id = $1 AND enabled",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read Kafka producer %d", producer_id);
	if (SPI_processed == 1 && kafka_spi_text(0, 9) != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(w->cxt);
		char	   *format = kafka_spi_text(0, 4);
		KafkaFormatOptions *f = &w->cfg.format;
		char	   *s;

		found = true;
		w->cfg.id = producer_id;
		w->cfg.stream = atooid(kafka_spi_text(0, 1));
		w->cfg.topic = kafka_spi_text(0, 2);
		w->cfg.brokers = kafka_spi_text(0, 3);
		w->cfg.parallelism = 1;
		f->format = strcmp(format, "json") == 0 ? KAFKA_FORMAT_JSON :
			strcmp(format, "csv") == 0 ? KAFKA_FORMAT_CSV : KAFKA_FORMAT_TEXT;
		s = kafka_spi_text(0, 5);
		f->delimiter = s && s[0] ? s[0] : (f->format == KAFKA_FORMAT_CSV ? ',' : '\t');
		s = kafka_spi_text(0, 6);
		f->quote = s && s[0] ? s[0] : '"';
		f->escape = f->quote;
		s = kafka_spi_text(0, 7);
		f->null_string = s ? s : (f->format == KAFKA_FORMAT_CSV ? "" : "\\N");
		f->key_column = kafka_spi_text(0, 8);
		*staging = atooid(kafka_spi_text(0, 9));
		MemoryContextSwitchTo(old);

		kafka_load_options(w, "kafka_producers");
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/* ---------- librdkafka ---------- */

/*
 * Delivery report, called by rd_kafka_poll in this process: marks the
 * message (its index in batch is the opaque pointer); PostgreSQL is not
 * called.
 */
static void
delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	int			i = (int) (intptr_t) m->_private;

	if (batch == NULL)
		return;
	if (m->err)
	{
		batch[i].failed = true;
		snprintf(last_delivery_error, sizeof(last_delivery_error), "%s: %s",
				 rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
	}
	else
		batch[i].done = true;
	outstanding--;
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
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(pending_sql, 2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not count the staged events of Kafka producer %d", w->cfg.id);
	pending = strtoll(kafka_spi_text(0, 1), NULL, 10);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	SpinLockAcquire(&w->slot->mutex);
	w->slot->lag = pending;
	w->slot->lag_known = true;
	SpinLockRelease(&w->slot->mutex);
}

/* Poll for acknowledgements up to ms, serving interrupts and the log. */
static void
poll_acknowledgements(KafkaWorker *w, int ms)
{
	(void) rd_kafka_poll(w->rk, ms);
	CHECK_FOR_INTERRUPTS();
	if (!PostmasterIsAlive())
		proc_exit(1);
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	kafka_serve_callback_reports(w);
	refresh_pending(w);
}

/* ---------- the three steps ---------- */

/*
 * Copy the n rows (event, key, value) of the last SPI result into batch, in
 * cxt.
 */
static void
keep_messages(MemoryContext cxt, int n)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	batch = palloc0(sizeof(OutboxMessage) * n);
	for (int i = 0; i < n; i++)
	{
		batch[i].event = strtoll(kafka_spi_text(i, 1), NULL, 10);
		batch[i].key = kafka_spi_text(i, 2);
		batch[i].value = kafka_spi_text(i, 3);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Run sql, which returns messages (event, key, value) of ours, in a
 * transaction of its own, with args $1 the producer's id and $2 limit, and
 * keep the messages in batch (in cxt); returns how many.  what names the
 * step in the error.
 */
static int
fetch_messages(KafkaWorker *w, const char *sql, int limit, bool read_only, const char *what,
			   MemoryContext cxt)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2] = {Int32GetDatum(w->cfg.id), Int32GetDatum(limit)};
	int			n;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, limit > 0 ? 2 : 1, argtypes, args, NULL, read_only, 0) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not %s of Kafka producer %d", what, w->cfg.id);
	n = (int) SPI_processed;
	if (n > 0)
		keep_messages(cxt, n);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return n;
}

/*
 * Step 1: move up to limit staged events (kept rows, then committed deltas)
 * into the outbox and keep their messages in batch (in cxt).  Returns how
 * many (0 when none).
 */
static int
stage_events(KafkaWorker *w, const char *stage_sql, int limit, MemoryContext cxt)
{
	return fetch_messages(w, stage_sql, limit, false, "stage the events", cxt);
}

/* Read the outbox's messages of ours into batch (in cxt); returns how many. */
static int
read_outbox(KafkaWorker *w, MemoryContext cxt)
{
	return fetch_messages(w, "SELECT u.event, u.key, u.value "
						  "FROM stream_ext_internal.kafka_outbox o, "
						  "unnest(o.events, o.keys, o.messages) AS u(event, key, value) "
						  "WHERE o.producer_id = $1 ORDER BY u.event",
						  0, true, "read the outbox", cxt);
}

/*
 * Step 2: hand every message not yet acknowledged to librdkafka and wait
 * until each is acknowledged or refused.  Returns whether all were
 * acknowledged.
 */
static bool
produce_batch(KafkaWorker *w, int n)
{
	char		header[64];

	last_delivery_error[0] = '\0';
	for (int i = 0; i < n; i++)
	{
		rd_kafka_resp_err_t err;

		if (batch[i].done)
			continue;
		batch[i].failed = false;
		snprintf(header, sizeof(header), "%d-" INT64_FORMAT, w->cfg.id, batch[i].event);
		for (;;)
		{
			err = rd_kafka_producev(w->rk,
									RD_KAFKA_V_TOPIC(w->cfg.topic),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_VALUE(batch[i].value, strlen(batch[i].value)),
									RD_KAFKA_V_KEY(batch[i].key,
												   batch[i].key ? strlen(batch[i].key) : 0),
									RD_KAFKA_V_HEADER(EVENT_HEADER, header, strlen(header)),
									RD_KAFKA_V_OPAQUE((void *) (intptr_t) i),
									RD_KAFKA_V_END);
			if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break;
			poll_acknowledgements(w, POLL_SLICE_MS);
		}
		if (err)
		{
			/* refused at once (e.g. message too large): the batch waits */
			batch[i].failed = true;
			snprintf(last_delivery_error, sizeof(last_delivery_error), "%s: %s",
					 rd_kafka_err2name(err), rd_kafka_err2str(err));
			continue;
		}
		outstanding++;
		if (i % 1000 == 999)
			poll_acknowledgements(w, 0);
	}
	while (outstanding > 0)
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
		if (!batch[i].done)
			return false;
	return true;
}

/*
 * Step 3: delete the outbox's rows of ours (the n messages of batch: all of
 * them, since we read or staged them all) and put back the messages not
 * acknowledged, taken from the deleted rows (so unchanged), in one
 * transaction; count the others.  Returns how many were acknowledged and
 * left the outbox.
 */
static int64
forget_acknowledged(KafkaWorker *w, const char *forget_sql, int n)
{
	Datum	   *events = palloc(sizeof(Datum) * Max(n, 1));
	int			k = 0;
	Oid			argtypes[2] = {INT4OID, INT8ARRAYOID};
	Datum		args[2];
	int64		deleted;

	for (int i = 0; i < n; i++)
		if (!batch[i].done)
			events[k++] = Int64GetDatum(batch[i].event);
	if (k == n)
		return 0;				/* none acknowledged: the outbox stays */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	args[0] = Int32GetDatum(w->cfg.id);
	args[1] = PointerGetDatum(construct_array(events, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(forget_sql, 2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not update the outbox of Kafka producer %d", w->cfg.id);
	deleted = SPI_processed == 1 ? strtoll(kafka_spi_text(0, 1), NULL, 10) : 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return deleted;
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
 * Entry point of a producer worker (bgw_extra holds its KafkaWorkerArgs):
 * attach to the slot the supervisor prepared, read the producer, connect,
 * then stage, produce and forget batches until SIGTERM.
 */
void
stream_ext_kafka_producer_main(Datum arg)
{
	KafkaWorker *w = &worker;
	KafkaWorkerArgs args;
	MemoryContext batch_cxt;
	Oid			staging = InvalidOid;
	char	   *stage_sql;
	char	   *forget_sql;
	char	   *activity;
	int			failures = 0;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	kafka_worker_start(w, &args);
	stream_worker_pin_settings();
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka producer batch",
									  ALLOCSET_DEFAULT_SIZES);
	if (!load_config(w, args.consumer_id, &staging))
		proc_exit(0);			/* stopped or dropped meanwhile */
	pgstat_report_appname("stream_ext kafka producer");

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	stage_sql = kafka_sink_stage_sql(staging, &w->cfg.format);
	if (stage_sql)
	{
		stage_sql = MemoryContextStrdup(w->cxt, stage_sql);
		pending_sql = MemoryContextStrdup(w->cxt, kafka_sink_pending_sql(staging));
	}
	forget_sql = MemoryContextStrdup(w->cxt, kafka_sink_forget_sql());
	activity = MemoryContextStrdup(w->cxt,
								   psprintf("stream_ext: Kafka producer %d of stream %s to topic \"%s\"",
											w->cfg.id, get_rel_name(w->cfg.stream) ? get_rel_name(w->cfg.stream) : "?",
											w->cfg.topic));
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (stage_sql == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the staging view of Kafka producer %d is missing", w->cfg.id),
				 errhint("Drop the producer with stream_ext.kafka_drop_producer and create it again.")));

	/* writers of the stream find us here (backpressure.c) */
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	w->slot->stream = w->cfg.stream;
	LWLockRelease(KafkaShared->lock);

	MemoryContextSwitchTo(w->cxt);
	create_producer(w);
	kafka_slot_set_state(w->slot, "running");

	for (;;)
	{
		int			n;
		bool		all;
		int64		deleted;
		TimestampTz t_start,
					t_staged,
					t_produced;

		MemoryContextReset(batch_cxt);
		batch = NULL;
		CHECK_FOR_INTERRUPTS();

		/* messages left from an earlier round (or run) go first */
		t_start = GetCurrentTimestamp();
		n = read_outbox(w, batch_cxt);
		if (n == 0)
		{
			n = stage_events(w, stage_sql, stream_ext_batch_size, batch_cxt);
			if (n == 0)
			{
				pgstat_report_activity(STATE_IDLE, activity);
				(void) pgstat_report_stat(true);
				poll_acknowledgements(w, 0);
				kafka_consumer_sleep(w, IDLE_WAIT_MS);
				refresh_pending(w);
				continue;
			}
		}
		t_staged = GetCurrentTimestamp();
		pgstat_report_activity(STATE_RUNNING, activity);
		all = produce_batch(w, n);
		t_produced = GetCurrentTimestamp();
		deleted = forget_acknowledged(w, forget_sql, n);
		elog(DEBUG1, "Kafka producer %d: %d messages: staged in %ld us, produced in %ld us, forgotten in %ld us",
			 w->cfg.id, n, (long) (t_staged - t_start), (long) (t_produced - t_staged),
			 (long) (GetCurrentTimestamp() - t_produced));
		count_produced(w, deleted);
		(void) pgstat_report_stat(false);
		if (all)
		{
			if (failures > 0 || w->failures_to_reset)
			{
				LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
				w->slot->failures = 0;
				LWLockRelease(KafkaShared->lock);
				w->failures_to_reset = false;
			}
			failures = 0;
			kafka_slot_set_state(w->slot, "running");
		}
		else
		{
			/* the brokers refused some: they stay in the outbox, try again */
			long		backoff = 1000L << Min(failures, 6);	/* 1 s .. 64 s */
			int			left = 0;

			for (int i = 0; i < n; i++)
				left += batch[i].done ? 0 : 1;
			failures++;
			kafka_slot_set_state(w->slot, "retrying");
			kafka_report_problem(w, psprintf("could not deliver %d messages: %s", left,
											 last_delivery_error));
			kafka_consumer_sleep(w, backoff);
		}
	}
}
