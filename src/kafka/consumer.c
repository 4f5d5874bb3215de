/*
 * consumer.c
 *	  The Kafka consumer worker: polls a batch of messages, decodes them into
 *	  events of the stream and, in one transaction, applies them to the
 *	  stream's continuous views, records undecodable messages in
 *	  stream_ext_internal.kafka_errors and stores the next offset of each
 *	  partition in stream_ext_internal.kafka_offsets.  Offsets and view
 *	  deltas commit together: exactly once on this server.
 *
 * This file holds the process: signals, its shared-memory slot, the catalog
 * row, the librdkafka handle and the poll loop.  assign.c decides which
 * partitions it reads and from which offsets; batch.c applies a batch.
 *
 * librdkafka's threads never call PostgreSQL: signals are blocked in them,
 * its logs and errors go to a queue that this process serves while it polls,
 * and the callbacks only copy what they get; it is reported from the loop.
 * Polls last at most stream_ext.kafka_batch_wait, so SIGTERM (die) and
 * SIGHUP are noticed promptly.
 */
#include "postgres.h"

#include <signal.h>
#include <pthread.h>
#include <librdkafka/rdkafka.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "ipc/queue.h"
#include "kafka/assign.h"
#include "kafka/batch.h"
#include "kafka/consumer.h"
#include "kafka/decode.h"
#include "kafka/kafka_guc.h"
#include "kafka/slots.h"
#include "stream/fdw.h"
#include "worker/apply.h"
#include "worker/view_cache.h"

/* How often the worker looks for partitions added to the topic */
#define PARTITION_CHECK_MS 5000

/* Longest single poll while filling a batch */
#define POLL_SLICE_MS 10

KafkaSlot  *kafka_my_slot = NULL;
int			kafka_my_slotno = -1;
KafkaConsumerConfig kafka_cfg;
int			kafka_my_index;
rd_kafka_t *kafka_rk = NULL;
MemoryContext kafka_worker_cxt;
static rd_kafka_queue_t *rkq = NULL;	/* messages, errors, rebalances */
static rd_kafka_queue_t *logq = NULL;	/* librdkafka's log lines */
static volatile sig_atomic_t stop_requested = false;

/* What librdkafka's error callback handed us, reported from the loop */
static char pending_error[256];
static bool has_pending_error = false;

static void consumer_exit(int code, Datum arg);

/* ---------- signals and slot ---------- */

static void
handle_sigterm(SIGNAL_ARGS)
{
	stop_requested = true;
	die(postgres_signal_arg);
}

static void
consumer_exit(int code, Datum arg)
{
	TimestampTz now = GetCurrentTimestamp();

	if (kafka_my_slot == NULL)
		return;
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	kafka_my_slot->pid = 0;
	kafka_my_slot->starting = false;
	if (code != 0 && !stop_requested)
	{
		int			delay_s;

		kafka_my_slot->failures++;
		delay_s = 1 << Min(kafka_my_slot->failures - 1, 6);	/* 1 s .. 64 s */
		kafka_my_slot->retry_at = TimestampTzPlusMilliseconds(now, delay_s * 1000);
	}
	LWLockRelease(KafkaShared->lock);
	kafka_slot_set_state(kafka_my_slot, "stopped");
}

/* Report a problem the worker keeps retrying after: status and log. */
void
kafka_report_problem(const char *what)
{
	kafka_slot_set_error(kafka_my_slot, what);
	ereport(LOG,
			(errmsg("stream_ext kafka consumer %d of topic \"%s\": %s",
					kafka_cfg.id, kafka_cfg.topic, what)));
}

/* ---------- librdkafka callbacks: copy only ---------- */

static void
error_cb(rd_kafka_t *r, int err, const char *reason, void *opaque)
{
	snprintf(pending_error, sizeof(pending_error), "%s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
	has_pending_error = true;
}

/* Report what the callbacks saved, from our own loop. */
static void
serve_callback_reports(void)
{
	rd_kafka_event_t *ev;

	while (logq != NULL && (ev = rd_kafka_queue_poll(logq, 0)) != NULL)
	{
		const char *fac;
		const char *str;
		int			level;

		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LOG &&
			rd_kafka_event_log(ev, &fac, &str, &level) == 0)
			ereport(LOG,
					(errmsg("stream_ext kafka consumer %d: librdkafka: %s: %s",
							kafka_cfg.id, fac, str)));
		rd_kafka_event_destroy(ev);
	}
	if (has_pending_error)
	{
		has_pending_error = false;
		kafka_slot_set_state(kafka_my_slot, "retrying");
		kafka_report_problem(pending_error);
	}
}

/* Sleep ms (in steps), serving callbacks and interrupts. */
void
kafka_consumer_sleep(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	serve_callback_reports();
}

/* ---------- catalog ---------- */

char *
kafka_spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*
 * Read the consumer's catalog row into kafka_cfg (in kafka_worker_cxt).  Returns false
 * when the consumer no longer exists or is disabled.
 */
static bool
load_config(int consumer_id)
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
							  "offset_column, timestamp_column "
							  "FROM stream_ext_internal.kafka_consumers WHERE id = $1 AND enabled",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read Kafka consumer %d", consumer_id);
	if (SPI_processed == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(kafka_worker_cxt);
		char	   *format = kafka_spi_text(0, 7);
		char	   *s;

		found = true;
		memset(&kafka_cfg, 0, sizeof(kafka_cfg));
		kafka_cfg.id = consumer_id;
		kafka_cfg.stream = atooid(kafka_spi_text(0, 1));
		kafka_cfg.topic = kafka_spi_text(0, 2);
		kafka_cfg.brokers = kafka_spi_text(0, 3);
		kafka_cfg.group_id = kafka_spi_text(0, 4);
		kafka_cfg.start = kafka_spi_text(0, 5);
		kafka_cfg.parallelism = atoi(kafka_spi_text(0, 6));
		kafka_cfg.format.format = strcmp(format, "json") == 0 ? KAFKA_FORMAT_JSON :
			strcmp(format, "csv") == 0 ? KAFKA_FORMAT_CSV : KAFKA_FORMAT_TEXT;
		s = kafka_spi_text(0, 8);
		kafka_cfg.format.delimiter = s && s[0] ? s[0] :
			(kafka_cfg.format.format == KAFKA_FORMAT_CSV ? ',' : '\t');
		s = kafka_spi_text(0, 9);
		kafka_cfg.format.quote = s && s[0] ? s[0] : '"';
		s = kafka_spi_text(0, 10);
		kafka_cfg.format.escape = s && s[0] ? s[0] : kafka_cfg.format.quote;
		kafka_cfg.format.header = strcmp(kafka_spi_text(0, 11), "true") == 0;
		s = kafka_spi_text(0, 12);
		kafka_cfg.format.null_string = s ? s : (kafka_cfg.format.format == KAFKA_FORMAT_CSV ? "" : "\\N");
		kafka_cfg.format.key_column = kafka_spi_text(0, 13);
		kafka_cfg.format.partition_column = kafka_spi_text(0, 14);
		kafka_cfg.format.offset_column = kafka_spi_text(0, 15);
		kafka_cfg.format.timestamp_column = kafka_spi_text(0, 16);
		MemoryContextSwitchTo(old);

		if (SPI_execute_with_args("SELECT key, value FROM stream_ext_internal.kafka_consumers c, "
								  "jsonb_each_text(c.options) WHERE c.id = $1",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the options of Kafka consumer %d", consumer_id);
		old = MemoryContextSwitchTo(kafka_worker_cxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			kafka_cfg.option_names = lappend(kafka_cfg.option_names, kafka_spi_text(i, 1));
			kafka_cfg.option_values = lappend(kafka_cfg.option_values, kafka_spi_text(i, 2));
		}
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/* ---------- librdkafka handle ---------- */

static void
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid librdkafka option \"%s\" for Kafka consumer %d", name, kafka_cfg.id),
				 errdetail_internal("%s", errstr)));
}


static void
create_handle(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[512];
	char		group[256];
	ListCell   *ln,
			   *lv;
	sigset_t	all,
				saved;

	snprintf(group, sizeof(group), "stream_ext-%u-%d", MyDatabaseId, kafka_cfg.id);
	set_conf(conf, "bootstrap.servers", kafka_cfg.brokers);
	set_conf(conf, "group.id", kafka_cfg.group_id ? kafka_cfg.group_id : group);
	set_conf(conf, "client.id", "stream_ext");
	set_conf(conf, "auto.offset.reset", "earliest");
	set_conf(conf, "enable.auto.commit", "false");
	set_conf(conf, "enable.auto.offset.store", "false");
	set_conf(conf, "enable.partition.eof", "false");

	/*
	 * Keep fetching ahead: below this many queued messages per partition
	 * librdkafka fetches more; above, it backs off fetch.error.backoff.ms
	 * (500 ms), which starves a consumer that applies faster than that.
	 * The prefetch stays bounded by queued.max.messages.kbytes (64 MB).
	 */
	set_conf(conf, "queued.min.messages", "1000000");
	forboth(ln, kafka_cfg.option_names, lv, kafka_cfg.option_values)
		set_conf(conf, lfirst(ln), lfirst(lv));
	/* ours, whatever the options say */
	set_conf(conf, "log.queue", "true");
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (kafka_cfg.group_id)
		rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);

	/* librdkafka's threads inherit a mask that blocks every signal */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	kafka_rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (kafka_rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka consumer for topic \"%s\"", kafka_cfg.topic),
				 errdetail_internal("%s", errstr)));
	logq = rd_kafka_queue_new(kafka_rk);
	rd_kafka_set_log_queue(kafka_rk, logq);
	rd_kafka_poll_set_consumer(kafka_rk); /* errors and rebalances come with messages */
	rkq = rd_kafka_queue_get_consumer(kafka_rk);
}

/* ---------- main ---------- */

static void
attach_slot(KafkaWorkerArgs *args)
{
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	kafka_my_slot = kafka_slot_find(args->dboid, args->consumer_id, args->index);
	if (kafka_my_slot != NULL && kafka_my_slot->pid == 0)
	{
		kafka_my_slot->pid = MyProcPid;
		kafka_my_slot->starting = false;
		kafka_my_slotno = kafka_my_slot - KafkaShared->slots;
	}
	else
		kafka_my_slot = NULL;
	LWLockRelease(KafkaShared->lock);
}

void
stream_ext_kafka_main(Datum arg)
{
	KafkaWorkerArgs args;
	rd_kafka_message_t **msgs;
	int			capacity;
	MemoryContext batch_cxt;
	TimestampTz last_partition_check;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	kafka_my_index = args.index;

	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);

	/*
	 * Offsets and deltas commit in one transaction.  The commit waits for
	 * its WAL flush (the server's synchronous_commit), once per batch: what
	 * a reader has seen stays after a crash.  Only kept executors are
	 * JIT-compiled (kept_executor.c), never a plan run once.
	 */
	SetConfigOption("jit_above_cost", "-1", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);
	/* whatever ALTER DATABASE ... SET says: our transactions rely on these */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);

	attach_slot(&args);
	if (kafka_my_slot == NULL)
		proc_exit(0);
	before_shmem_exit(consumer_exit, (Datum) 0);
	kafka_slot_set_state(kafka_my_slot, "connecting");

	kafka_worker_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka consumer",
									   ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka batch",
									  ALLOCSET_DEFAULT_SIZES);
	kafka_batch_init();
	if (!load_config(args.consumer_id))
		proc_exit(0);			/* stopped or dropped meanwhile */
	pgstat_report_appname("stream_ext kafka consumer");
	view_cache_init();

	MemoryContextSwitchTo(kafka_worker_cxt);
	create_handle();
	if (kafka_cfg.group_id)
	{
		rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
		rd_kafka_resp_err_t err;

		rd_kafka_topic_partition_list_add(topics, kafka_cfg.topic, RD_KAFKA_PARTITION_UA);
		err = rd_kafka_subscribe(kafka_rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (err)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not subscribe to topic \"%s\"", kafka_cfg.topic),
					 errdetail_internal("%s", rd_kafka_err2str(err))));
	}
	else
		kafka_assign_static();
	last_partition_check = GetCurrentTimestamp();
	kafka_slot_set_state(kafka_my_slot, "running");

	capacity = stream_ext_batch_size;
	msgs = MemoryContextAlloc(kafka_worker_cxt, sizeof(rd_kafka_message_t *) * capacity);
	for (;;)
	{
		int			n = 0;
		int			limit = stream_ext_batch_size;
		TimestampTz start = GetCurrentTimestamp();

		/*
		 * A reload may have raised batch_size since the array was allocated:
		 * grow it (it stays in kafka_worker_cxt) before polling into it.  A
		 * reload while the batch fills takes effect at the next batch.
		 */
		if (limit > capacity)
		{
			msgs = repalloc(msgs, sizeof(rd_kafka_message_t *) * limit);
			capacity = limit;
		}

		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		kafka_assignment_revoked = false;

		/* Fill a batch: batch_size messages, or kafka_batch_wait passed */
		for (;;)
		{
			long		left = stream_ext_kafka_batch_wait_ms -
				(long) ((GetCurrentTimestamp() - start) / 1000);
			ssize_t		got;

			CHECK_FOR_INTERRUPTS();
			if (!PostmasterIsAlive())
				proc_exit(1);
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			if (left <= 0 || n >= limit)
				break;
			/*
			 * Short polls: when one brings nothing while messages are in
			 * hand, the queue is drained and the batch goes now.
			 */
			got = rd_kafka_consume_batch_queue(rkq, (int) Min(left, POLL_SLICE_MS),
											   msgs + n, limit - n);
			serve_callback_reports();
			if (kafka_assignment_failed)
				ereport(ERROR,
						(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
						 errmsg("could not take over the partitions assigned by group \"%s\"",
								kafka_cfg.group_id)));
			if (kafka_assignment_revoked)
			{
				/* polled before the revocation: the next owner reads them */
				for (int i = 0; i < n; i++)
					rd_kafka_message_destroy(msgs[i]);
				n = 0;
				kafka_assignment_revoked = false;
			}
			for (ssize_t i = 0; i < got; i++)
			{
				rd_kafka_message_t *m = msgs[n + i];

				if (m->err)
				{
					if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					{
						kafka_slot_set_state(kafka_my_slot, "retrying");
						kafka_report_problem(rd_kafka_message_errstr(m));
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
						msgs[k++] = msgs[n + i];
				n = k;
			}
			if (got <= 0 && n > 0)
				break;
		}

		if (n > 0)
		{
			kafka_process_batch(msgs, n, batch_cxt, start);
			for (int i = 0; i < n; i++)
				rd_kafka_message_destroy(msgs[i]);
		}

		/*
		 * Partitions added to the topic (the group notices them itself).
		 * Looked for only when idle: the metadata request can wait behind a
		 * fetch.
		 */
		if (!kafka_cfg.group_id && n == 0 &&
			TimestampDifferenceExceeds(last_partition_check, GetCurrentTimestamp(),
									   PARTITION_CHECK_MS))
		{
			int			count = kafka_topic_partitions();

			if (count > kafka_topic_partition_count)
			{
				ereport(LOG,
						(errmsg("stream_ext kafka consumer %d: topic \"%s\" has %d partitions now, was %d",
								kafka_cfg.id, kafka_cfg.topic, count, kafka_topic_partition_count)));
				kafka_assign_static();
			}
			last_partition_check = GetCurrentTimestamp();
		}
	}
}
