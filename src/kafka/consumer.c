/*
 * consumer.c
 *	  The Kafka consumer worker: polls a batch of messages, decodes them into
 *	  events of the stream and, in one transaction, applies them to the
 *	  stream's continuous views, records undecodable messages in
 *	  stream_ext_internal.kafka_errors and stores the next offset of each
 *	  partition in stream_ext_internal.kafka_offsets.  Offsets and view
 *	  deltas commit together: exactly once on this server.
 *
 * This file holds the process: the catalog row, the librdkafka handle and
 * the poll loop (signals, the slot and the handle's common configuration
 * are process.c's).  assign.c decides which
 * partitions it reads and from which offsets; batch.c applies a batch.
 *
 * librdkafka's threads never call PostgreSQL: signals are blocked in them,
 * its logs and errors go to a queue that this process serves while it polls,
 * and the callbacks only copy what they get; it is reported from the loop.
 * Polls last at most stream_ext.kafka_batch_wait, so SIGTERM (die) and
 * SIGHUP are noticed promptly.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "ipc/queue.h"
#include "kafka/assign.h"
#include "kafka/backpressure.h"
#include "kafka/batch.h"
#include "kafka/consumer.h"
#include "kafka/decode.h"
#include "kafka/kafka_guc.h"
#include "kafka/lag.h"
#include "kafka/process.h"
#include "kafka/slots.h"
#include "stream/fdw.h"
#include "worker/apply.h"
#include "worker/paused_views.h"
#include "worker/settings.h"
#include "worker/view_cache.h"

/* How often the worker looks for partitions added to the topic */
#define PARTITION_CHECK_MS 5000

/* Longest single poll while filling a batch */
#define POLL_SLICE_MS 10

/*
 * A batch takes messages holding this many bytes at most (at least one
 * message): its events are decoded in memory, and a megabyte of csv may be
 * half a million of them.
 */
#define BATCH_BYTES (16 * 1024 * 1024)

/* This process's state; the other files get it as a parameter */
static KafkaWorker worker;

/* ---------- catalog ---------- */

/*
 * Read the consumer's catalog row into w->cfg (in w->cxt).  Returns false
 * when the consumer no longer exists or is disabled.
 */
static bool
load_config(KafkaWorker *w, int consumer_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(consumer_id)};
	bool		found = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT stream::oid, topic, brokers, group_id, start, parallelism, format, "
							  "format_options->>'delimiter', format_options->>'quote', "
							  "format_options->>'escape', "
							  "coalesce((format_options->>'header')::boolean, false)::text, "
							  "format_options->>'null', key_column, partition_column, "
							  "offset_column, timestamp_column, created_by "
							  "FROM stream_ext_internal.kafka_consumers WHERE id = $1 AND enabled",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read Kafka consumer %d", consumer_id);
	if (SPI_processed == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(w->cxt);
		char	   *format = kafka_spi_text(0, 7);
		char	   *s;

		found = true;
		memset(&w->cfg, 0, sizeof(w->cfg));
		w->cfg.id = consumer_id;
		w->cfg.stream = atooid(kafka_spi_text(0, 1));
		w->cfg.topic = kafka_spi_text(0, 2);
		w->cfg.brokers = kafka_spi_text(0, 3);
		w->cfg.group_id = kafka_spi_text(0, 4);
		w->cfg.start = kafka_spi_text(0, 5);
		w->cfg.parallelism = atoi(kafka_spi_text(0, 6));
		w->cfg.format.format = strcmp(format, "json") == 0 ? KAFKA_FORMAT_JSON :
			strcmp(format, "csv") == 0 ? KAFKA_FORMAT_CSV : KAFKA_FORMAT_TEXT;
		s = kafka_spi_text(0, 8);
		w->cfg.format.delimiter = s && s[0] ? s[0] :
			(w->cfg.format.format == KAFKA_FORMAT_CSV ? ',' : '\t');
		s = kafka_spi_text(0, 9);
		w->cfg.format.quote = s && s[0] ? s[0] : '"';
		s = kafka_spi_text(0, 10);
		w->cfg.format.escape = s && s[0] ? s[0] : w->cfg.format.quote;
		w->cfg.format.header = strcmp(kafka_spi_text(0, 11), "true") == 0;
		s = kafka_spi_text(0, 12);
		w->cfg.format.null_string = s ? s : (w->cfg.format.format == KAFKA_FORMAT_CSV ? "" : "\\N");
		w->cfg.format.key_column = kafka_spi_text(0, 13);
		w->cfg.format.partition_column = kafka_spi_text(0, 14);
		w->cfg.format.offset_column = kafka_spi_text(0, 15);
		w->cfg.format.timestamp_column = kafka_spi_text(0, 16);
		w->cfg.created_by = kafka_spi_text(0, 17);
		MemoryContextSwitchTo(old);

		kafka_load_options(w, "kafka_consumers");
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/* ---------- librdkafka handle ---------- */

/*
 * Create w->rk and its queues from w->cfg: the consumer's defaults, then the
 * user's options (process.c).
 */
static void
create_handle(KafkaWorker *w)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		group[256];

	snprintf(group, sizeof(group), "stream_ext-%u-%d", MyDatabaseId, w->cfg.id);
	kafka_set_conf(w, conf, "bootstrap.servers", w->cfg.brokers);
	kafka_set_conf(w, conf, "group.id", w->cfg.group_id ? w->cfg.group_id : group);
	kafka_set_conf(w, conf, "client.id", "stream_ext");
	kafka_set_conf(w, conf, "auto.offset.reset", "earliest");
	kafka_set_conf(w, conf, "enable.auto.commit", "false");
	kafka_set_conf(w, conf, "enable.auto.offset.store", "false");
	kafka_set_conf(w, conf, "enable.partition.eof", "false");

	/*
	 * Keep fetching ahead: below this many queued messages per partition
	 * librdkafka fetches more; above, it backs off fetch.error.backoff.ms
	 * (500 ms), which starves a consumer that applies faster than that.
	 * The prefetch stays bounded by queued.max.messages.kbytes (64 MB).
	 */
	kafka_set_conf(w, conf, "queued.min.messages", "1000000");
	if (w->cfg.group_id)
		rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);
	kafka_create_handle(w, conf, RD_KAFKA_CONSUMER);
	rd_kafka_poll_set_consumer(w->rk); /* errors and rebalances come with messages */
	w->rkq = rd_kafka_queue_get_consumer(w->rk);
}

/*
 * While a Kafka producer of the stream has too many events staged
 * (backpressure.c), pause every partition assigned (again after a
 * rebalance), so that the loop goes on polling (a group keeps its member)
 * but takes no message: they wait in Kafka, as writers wait at INSERT.
 * Called between batches, when every message taken is applied, so that
 * resuming goes on from the next one.
 */
static void
pause_for_producers(KafkaWorker *w)
{
	static bool paused = false;
	int64		pending = 0;
	int			producer = kafka_full_producer(w->cfg.stream, &pending);
	rd_kafka_topic_partition_list_t *list;

	if (producer == 0 && !paused)
		return;
	list = rd_kafka_topic_partition_list_new(Max(w->nassigned, 1));
	for (int i = 0; i < w->nassigned; i++)
		rd_kafka_topic_partition_list_add(list, w->cfg.topic, w->assigned_partitions[i]);
	if (producer != 0)
	{
		if (!paused)
			kafka_report_problem(w, psprintf("paused: Kafka producer %d of the stream has %lld or more events staged",
											 producer, (long long) pending));
		(void) rd_kafka_pause_partitions(w->rk, list);
		paused = true;
	}
	else
	{
		(void) rd_kafka_resume_partitions(w->rk, list);
		paused = false;
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/* ---------- main ---------- */

/* What pg_stat_activity shows as this worker's query (in w->cxt) */
static char *
consumer_activity(KafkaWorker *w)
{
	char	   *stream;
	MemoryContext old;
	char	   *activity;

	StartTransactionCommand();
	stream = get_rel_name(w->cfg.stream);
	stream = MemoryContextStrdup(w->cxt, stream ? stream : "?");
	CommitTransactionCommand();
	old = MemoryContextSwitchTo(w->cxt);
	activity = psprintf("stream_ext: Kafka consumer %d (worker %d) of topic \"%s\" into stream %s",
						w->cfg.id, w->index, w->cfg.topic, stream);
	MemoryContextSwitchTo(old);
	return activity;
}

/*
 * A consumer worker, attached to the slot the supervisor prepared (argsp:
 * its KafkaWorkerArgs, from bgw_extra): read the consumer, connect, then
 * poll and apply batches until SIGTERM.
 */
static void
consumer_main(KafkaWorker *w, KafkaWorkerArgs *argsp)
{
	KafkaWorkerArgs args = *argsp;
	rd_kafka_message_t **msgs;
	int			capacity;
	MemoryContext batch_cxt;
	TimestampTz last_partition_check;
	char	   *activity;

	/*
	 * Offsets and deltas commit in one transaction.  The commit waits for
	 * its WAL flush (the server's synchronous_commit), once per batch: what
	 * a reader has seen stays after a crash.  The settings the workers pin
	 * (worker/settings.c) hold for consumers too.
	 */
	stream_worker_pin_settings();

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka batch",
									  ALLOCSET_DEFAULT_SIZES);
	kafka_batch_init();
	if (!load_config(w, args.consumer_id))
	{
		/* stopped or dropped meanwhile (the extension too: its ids go) */
		memset(&w->slot->paused, 0, sizeof(w->slot->paused));
		proc_exit(0);
	}
	pgstat_report_appname("stream_ext kafka consumer");
	view_cache_init();

	/* views whose code ended the worker before: their events held back a while */
	stream_paused_views_start(&w->slot->paused, "Kafka consumer worker",
							  "its events from the consumer are held back, for the combiner to apply");

	MemoryContextSwitchTo(w->cxt);
	create_handle(w);
	if (w->cfg.group_id)
	{
		rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
		rd_kafka_resp_err_t err;

		rd_kafka_topic_partition_list_add(topics, w->cfg.topic, RD_KAFKA_PARTITION_UA);
		err = rd_kafka_subscribe(w->rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (err)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not subscribe to topic \"%s\"", w->cfg.topic),
					 errdetail_internal("%s", rd_kafka_err2str(err))));
	}
	else
		kafka_assign_static(w);
	last_partition_check = GetCurrentTimestamp();
	kafka_slot_set_state(w->slot, "running");
	activity = consumer_activity(w);

	capacity = stream_ext_batch_size;
	msgs = MemoryContextAlloc(w->cxt, sizeof(rd_kafka_message_t *) * capacity);
	for (;;)
	{
		int			n = 0;
		int			limit = stream_ext_batch_size;
		Size		bytes;
		TimestampTz start = GetCurrentTimestamp();

		/*
		 * A reload may have raised batch_size since the array was allocated:
		 * grow it (it stays in w->cxt) before polling into it.  A reload
		 * while the batch fills takes effect at the next batch.
		 */
		if (limit > capacity)
		{
			msgs = repalloc(msgs, sizeof(rd_kafka_message_t *) * limit);
			capacity = limit;
		}

		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		pause_for_producers(w);
		w->assignment_revoked = false;
		stream_paused_views_record(batch_cxt);	/* new ones, and failed ones again */

		/*
		 * Fill a batch: batch_size messages, BATCH_BYTES of them, or
		 * kafka_batch_wait passed
		 */
		bytes = 0;
		for (;;)
		{
			long		left = stream_ext_kafka_batch_wait_ms -
				(long) ((GetCurrentTimestamp() - start) / 1000);
			ssize_t		got;

			kafka_serve_interrupts();
			if (left <= 0 || n >= limit || bytes >= BATCH_BYTES)
				break;
			/*
			 * Short polls: when one brings nothing while messages are in
			 * hand, the queue is drained and the batch goes now.
			 */
			got = rd_kafka_consume_batch_queue(w->rkq, (int) Min(left, POLL_SLICE_MS),
											   msgs + n, limit - n);
			kafka_serve_callback_reports(w);
			if (w->assignment_failed)
				ereport(ERROR,
						(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
						 errmsg("could not take over the partitions assigned by group \"%s\"",
								w->cfg.group_id)));
			if (w->assignment_revoked)
			{
				/*
				 * polled before the revocation: the next owner reads them;
				 * this poll's go first in the batch (those of partitions no
				 * longer ours are dropped when it is applied)
				 */
				for (int i = 0; i < n; i++)
					rd_kafka_message_destroy(msgs[i]);
				if (got > 0)
					memmove(msgs, msgs + n, sizeof(*msgs) * got);
				n = 0;
				bytes = 0;
				w->assignment_revoked = false;
			}
			for (ssize_t i = 0; i < got; i++)
			{
				rd_kafka_message_t *m = msgs[n + i];

				if (m->err)
				{
					if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					{
						kafka_slot_set_state(w->slot, "retrying");
						kafka_report_problem(w, rd_kafka_message_errstr(m));
					}
					rd_kafka_message_destroy(m);
					msgs[n + i] = NULL;
				}
			}
			/* compact out the error messages */
			{
				int			k = n;

				for (ssize_t i = 0; i < got; i++)
					if (msgs[n + i] != NULL)
					{
						bytes += msgs[n + i]->len + msgs[n + i]->key_len;
						msgs[k++] = msgs[n + i];
					}
				n = k;
			}
			if (got <= 0 && n > 0)
				break;
		}

		if (n > 0)
		{
			pgstat_report_activity(STATE_RUNNING, activity);
			kafka_process_batch(w, msgs, n, batch_cxt, start);
			for (int i = 0; i < n; i++)
				rd_kafka_message_destroy(msgs[i]);
			(void) pgstat_report_stat(false);
		}
		else
			(void) pgstat_report_stat(true);
		pgstat_report_activity(STATE_IDLE, activity);
		kafka_refresh_lag(w);

		/*
		 * Partitions added to the topic (the group notices them itself).
		 * Looked for only when idle: the metadata request can wait behind a
		 * fetch; and not while the brokers fail (kafka_refresh_lag asks them
		 * every second then, and the metadata request would block the loop
		 * for seconds).
		 */
		if (!w->cfg.group_id && n == 0 && !kafka_brokers_failing(w) &&
			TimestampDifferenceExceeds(last_partition_check, GetCurrentTimestamp(),
									   PARTITION_CHECK_MS))
		{
			int			count = kafka_topic_partitions(w);

			if (count > w->topic_partition_count)
			{
				ereport(LOG,
						(errmsg("stream_ext kafka consumer %d: topic \"%s\" has %d partitions now, was %d",
								w->cfg.id, w->cfg.topic, count, w->topic_partition_count)));
				kafka_assign_static(w);
			}
			last_partition_check = GetCurrentTimestamp();
		}
	}
}

/* The entry point of a consumer worker (process.c) */
void
stream_ext_kafka_main(Datum arg)
{
	kafka_worker_main(&worker, consumer_main);
}
