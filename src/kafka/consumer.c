/*
 * consumer.c
 *	  The Kafka consumer worker: polls a batch of messages, decodes them into
 *	  events of the stream and, in one transaction, applies them to the
 *	  stream's continuous views, records undecodable messages in
 *	  stream_ext_internal.kafka_errors and stores the next offset of each
 *	  partition in stream_ext_internal.kafka_offsets.  Offsets and view
 *	  deltas commit together: exactly once on this server.
 *
 * Without group_id the worker assigns itself the partitions p with
 * p % parallelism = index, at their stored offsets; with group_id it
 * subscribes and the group's rebalances assign partitions (rebalance.c
 * style callback below), still at the offsets stored here.
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
#include "kafka/consumer.h"
#include "kafka/decode.h"
#include "kafka/kafka_guc.h"
#include "kafka/slots.h"
#include "stream/fdw.h"
#include "worker/apply.h"
#include "worker/view_cache.h"

/* Counters of consumer workers go to view_counters under worker numbers from here */
#define KAFKA_COUNTER_WORKER_BASE 1000

/* How often the worker looks for partitions added to the topic */
#define PARTITION_CHECK_MS 5000

/* Longest single poll while filling a batch */
#define POLL_SLICE_MS 10

/* Longest wait for a broker request (metadata, watermarks) */
#define BROKER_TIMEOUT_MS 5000

typedef struct ConsumerConfig
{
	int			id;
	Oid			stream;
	char	   *topic;
	char	   *brokers;
	char	   *group_id;		/* NULL: partitions by p % parallelism */
	char	   *start;
	int			parallelism;
	List	   *option_names;	/* librdkafka configuration */
	List	   *option_values;
	KafkaFormatOptions format;
} ConsumerConfig;

/* A message that could not be decoded, for kafka_errors */
typedef struct BadMessage
{
	int32		partition;
	int64		offset;
	char	   *error;
	bytea	   *payload;
} BadMessage;

static KafkaSlot *my_slot = NULL;
static int	my_slotno = -1;
static ConsumerConfig cfg;
static int	my_index;
static rd_kafka_t *rk = NULL;
static rd_kafka_queue_t *rkq = NULL;	/* messages, errors, rebalances */
static rd_kafka_queue_t *logq = NULL;	/* librdkafka's log lines */
static MemoryContext worker_cxt;	/* lives as long as the worker */
static volatile sig_atomic_t stop_requested = false;

/* Partitions assigned to this worker and the next offset it expects of each */
static int	nassigned = 0;
static int32 *assigned_partitions = NULL;
static int64 *assigned_next = NULL;
static int	topic_partition_count = 0;
static bool assignment_revoked = false; /* in group mode, since the batch began */
static bool assignment_failed = false;

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

	if (my_slot == NULL)
		return;
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->starting = false;
	if (code != 0 && !stop_requested)
	{
		int			delay_s;

		my_slot->failures++;
		delay_s = 1 << Min(my_slot->failures - 1, 6);	/* 1 s .. 64 s */
		my_slot->retry_at = TimestampTzPlusMilliseconds(now, delay_s * 1000);
	}
	LWLockRelease(KafkaShared->lock);
	kafka_slot_set_state(my_slot, "stopped");
}

/* Report a problem the worker keeps retrying after: status and log. */
static void
report_problem(const char *what)
{
	kafka_slot_set_error(my_slot, what);
	ereport(LOG,
			(errmsg("stream_ext kafka consumer %d of topic \"%s\": %s",
					cfg.id, cfg.topic, what)));
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
							cfg.id, fac, str)));
		rd_kafka_event_destroy(ev);
	}
	if (has_pending_error)
	{
		has_pending_error = false;
		kafka_slot_set_state(my_slot, "retrying");
		report_problem(pending_error);
	}
}

/* Sleep ms (in steps), serving callbacks and interrupts. */
static void
consumer_sleep(long ms)
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

static char *
spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*
 * Read the consumer's catalog row into cfg (in worker_cxt).  Returns false
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
		MemoryContext old = MemoryContextSwitchTo(worker_cxt);
		char	   *format = spi_text(0, 7);
		char	   *s;

		found = true;
		memset(&cfg, 0, sizeof(cfg));
		cfg.id = consumer_id;
		cfg.stream = atooid(spi_text(0, 1));
		cfg.topic = spi_text(0, 2);
		cfg.brokers = spi_text(0, 3);
		cfg.group_id = spi_text(0, 4);
		cfg.start = spi_text(0, 5);
		cfg.parallelism = atoi(spi_text(0, 6));
		cfg.format.format = strcmp(format, "json") == 0 ? KAFKA_FORMAT_JSON :
			strcmp(format, "csv") == 0 ? KAFKA_FORMAT_CSV : KAFKA_FORMAT_TEXT;
		s = spi_text(0, 8);
		cfg.format.delimiter = s && s[0] ? s[0] :
			(cfg.format.format == KAFKA_FORMAT_CSV ? ',' : '\t');
		s = spi_text(0, 9);
		cfg.format.quote = s && s[0] ? s[0] : '"';
		s = spi_text(0, 10);
		cfg.format.escape = s && s[0] ? s[0] : cfg.format.quote;
		cfg.format.header = strcmp(spi_text(0, 11), "true") == 0;
		s = spi_text(0, 12);
		cfg.format.null_string = s ? s : (cfg.format.format == KAFKA_FORMAT_CSV ? "" : "\\N");
		cfg.format.key_column = spi_text(0, 13);
		cfg.format.partition_column = spi_text(0, 14);
		cfg.format.offset_column = spi_text(0, 15);
		cfg.format.timestamp_column = spi_text(0, 16);
		MemoryContextSwitchTo(old);

		if (SPI_execute_with_args("SELECT key, value FROM stream_ext_internal.kafka_consumers c, "
								  "jsonb_each_text(c.options) WHERE c.id = $1",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the options of Kafka consumer %d", consumer_id);
		old = MemoryContextSwitchTo(worker_cxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			cfg.option_names = lappend(cfg.option_names, spi_text(i, 1));
			cfg.option_values = lappend(cfg.option_values, spi_text(i, 2));
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
				 errmsg("invalid librdkafka option \"%s\" for Kafka consumer %d", name, cfg.id),
				 errdetail("%s", errstr)));
}

static void rebalance_cb(rd_kafka_t *r, rd_kafka_resp_err_t err,
						 rd_kafka_topic_partition_list_t *partitions, void *opaque);

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

	snprintf(group, sizeof(group), "stream_ext-%u-%d", MyDatabaseId, cfg.id);
	set_conf(conf, "bootstrap.servers", cfg.brokers);
	set_conf(conf, "group.id", cfg.group_id ? cfg.group_id : group);
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
	forboth(ln, cfg.option_names, lv, cfg.option_values)
		set_conf(conf, lfirst(ln), lfirst(lv));
	/* ours, whatever the options say */
	set_conf(conf, "log.queue", "true");
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (cfg.group_id)
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);

	/* librdkafka's threads inherit a mask that blocks every signal */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka consumer for topic \"%s\"", cfg.topic),
				 errdetail("%s", errstr)));
	logq = rd_kafka_queue_new(rk);
	rd_kafka_set_log_queue(rk, logq);
	rd_kafka_poll_set_consumer(rk); /* errors and rebalances come with messages */
	rkq = rd_kafka_queue_get_consumer(rk);
}

/* ---------- offsets ---------- */

/* Stored next offsets of parts (offset -1 when none), into next[]. */
static void
read_stored_offsets(int n, const int32 *parts, int64 *next)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(cfg.id)};

	for (int i = 0; i < n; i++)
		next[i] = -1;
	if (SPI_execute_with_args("SELECT partition, next_offset FROM stream_ext_internal.kafka_offsets "
							  "WHERE consumer_id = $1", 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the offsets of Kafka consumer %d", cfg.id);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		int32		p = atoi(spi_text(r, 1));

		for (int i = 0; i < n; i++)
			if (parts[i] == p)
				next[i] = strtoll(spi_text(r, 2), NULL, 10);
	}
}

/*
 * Offsets where partitions without a stored offset start, from cfg.start:
 * earliest, latest, a timestamp, or a JSON object of partition: offset
 * (partitions not in it start at the earliest).  Needs the brokers; returns
 * false (with the problem reported) when they do not answer.
 */
static bool
resolve_start(int n, const int32 *parts, int64 *next)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(cfg.start)};
	int64		ts_ms = -1;
	bool		latest = strcmp(cfg.start, "latest") == 0;

	if (cfg.start[0] == '{')
	{
		if (SPI_execute_with_args("SELECT key::int, value::bigint FROM jsonb_each_text($1::jsonb)",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read start offsets");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int32		p = atoi(spi_text(r, 1));

			for (int i = 0; i < n; i++)
				if (parts[i] == p && next[i] < 0)
					next[i] = strtoll(spi_text(r, 2), NULL, 10);
		}
	}
	else if (!latest && strcmp(cfg.start, "earliest") != 0)
	{
		if (SPI_execute_with_args("SELECT (extract(epoch FROM $1::timestamptz) * 1000)::bigint",
								  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the start timestamp");
		ts_ms = strtoll(spi_text(0, 1), NULL, 10);
	}

	if (ts_ms >= 0)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
		rd_kafka_resp_err_t err;

		for (int i = 0; i < n; i++)
			if (next[i] < 0)
				rd_kafka_topic_partition_list_add(list, cfg.topic, parts[i])->offset = ts_ms;
		err = rd_kafka_offsets_for_times(rk, list, BROKER_TIMEOUT_MS);
		if (err)
		{
			rd_kafka_topic_partition_list_destroy(list);
			report_problem(psprintf("could not look up offsets for the start time: %s",
									rd_kafka_err2str(err)));
			return false;
		}
		for (int j = 0; j < list->cnt; j++)
			for (int i = 0; i < n; i++)
				if (parts[i] == list->elems[j].partition && list->elems[j].offset >= 0)
					next[i] = list->elems[j].offset;
		rd_kafka_topic_partition_list_destroy(list);
		latest = true;			/* no message since that time: start at the end */
	}

	for (int i = 0; i < n; i++)
	{
		int64		low,
					high;
		rd_kafka_resp_err_t err;

		if (next[i] >= 0)
			continue;
		err = rd_kafka_query_watermark_offsets(rk, cfg.topic, parts[i], &low, &high,
											   BROKER_TIMEOUT_MS);
		if (err)
		{
			report_problem(psprintf("could not query the offsets of partition %d: %s",
									parts[i], rd_kafka_err2str(err)));
			return false;
		}
		next[i] = latest ? high : low;
	}
	return true;
}

/*
 * The offsets at which parts start: the stored ones, else (resolved from
 * cfg.start and) stored now, so that a restart before the first batch starts
 * at the same place.  In group mode also the group's committed offsets
 * count: a partition taken over from another server continues where that
 * one committed, if that is further.  Returns false when the brokers did
 * not answer.
 */
static bool
starting_offsets(int n, const int32 *parts, int64 *next)
{
	bool		ok = true;
	bool		missing = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	read_stored_offsets(n, parts, next);

	if (cfg.group_id)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);

		for (int i = 0; i < n; i++)
			rd_kafka_topic_partition_list_add(list, cfg.topic, parts[i]);
		if (rd_kafka_committed(rk, list, BROKER_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			for (int j = 0; j < list->cnt; j++)
				for (int i = 0; i < n; i++)
					if (parts[i] == list->elems[j].partition &&
						list->elems[j].offset > next[i])
						next[i] = list->elems[j].offset;
		}
		rd_kafka_topic_partition_list_destroy(list);
	}

	for (int i = 0; i < n; i++)
		missing |= next[i] < 0;
	if (missing)
		ok = resolve_start(n, parts, next);
	if (ok)
	{
		Oid			argtypes[3] = {INT4OID, INT4OID, INT8OID};

		for (int i = 0; i < n; i++)
		{
			Datum		args[3] = {Int32GetDatum(cfg.id), Int32GetDatum(parts[i]),
			Int64GetDatum(next[i])};

			if (SPI_execute_with_args("INSERT INTO stream_ext_internal.kafka_offsets "
									  "(consumer_id, partition, next_offset) VALUES ($1, $2, $3) "
									  "ON CONFLICT (consumer_id, partition) DO UPDATE "
									  "SET next_offset = excluded.next_offset",
									  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not store the offsets of Kafka consumer %d", cfg.id);
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return ok;
}

/* Remember the assignment (in worker_cxt) and show it in the slot. */
static void
set_assignment(int n, const int32 *parts, const int64 *next)
{
	MemoryContext old = MemoryContextSwitchTo(worker_cxt);

	if (assigned_partitions)
	{
		pfree(assigned_partitions);
		pfree(assigned_next);
	}
	nassigned = n;
	assigned_partitions = palloc(sizeof(int32) * Max(n, 1));
	assigned_next = palloc(sizeof(int64) * Max(n, 1));
	if (n > 0)
	{
		memcpy(assigned_partitions, parts, sizeof(int32) * n);
		memcpy(assigned_next, next, sizeof(int64) * n);
	}
	MemoryContextSwitchTo(old);

	SpinLockAcquire(&my_slot->mutex);
	my_slot->npartitions = Min(n, KAFKA_MAX_STATUS_PARTITIONS);
	for (int i = 0; i < my_slot->npartitions; i++)
		my_slot->partitions[i] = parts[i];
	SpinLockRelease(&my_slot->mutex);
}

static int
assigned_index(int32 partition)
{
	for (int i = 0; i < nassigned; i++)
		if (assigned_partitions[i] == partition)
			return i;
	return -1;
}

/*
 * Partition count of the topic, or -1 (problem reported) when the brokers
 * do not answer or do not know the topic.
 */
static int
topic_partitions(void)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, cfg.topic, NULL);
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, BROKER_TIMEOUT_MS);
	int			count = -1;

	if (err)
		report_problem(psprintf("could not fetch metadata: %s", rd_kafka_err2str(err)));
	else if (md->topic_cnt < 1 || md->topics[0].err)
		report_problem(psprintf("topic is not available: %s",
								rd_kafka_err2str(md->topic_cnt < 1 ?
												 RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART :
												 md->topics[0].err)));
	else
		count = md->topics[0].partition_cnt;
	if (!err)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return count;
}

/*
 * Without group_id: take partitions p % parallelism = index at their
 * offsets, retrying with backoff until the brokers answer.
 */
static void
assign_static(void)
{
	long		backoff = 200;

	for (;;)
	{
		int			count = topic_partitions();

		if (count >= 0)
		{
			int32	   *parts = palloc(sizeof(int32) * Max(count, 1));
			int64	   *next = palloc(sizeof(int64) * Max(count, 1));
			int			n = 0;

			for (int p = 0; p < count; p++)
				if (p % cfg.parallelism == my_index)
					parts[n++] = p;
			if (starting_offsets(n, parts, next))
			{
				rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(Max(n, 1));
				rd_kafka_resp_err_t err;

				for (int i = 0; i < n; i++)
					rd_kafka_topic_partition_list_add(list, cfg.topic, parts[i])->offset = next[i];
				err = rd_kafka_assign(rk, list);
				rd_kafka_topic_partition_list_destroy(list);
				if (err)
					ereport(ERROR,
							(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							 errmsg("could not assign partitions of topic \"%s\"", cfg.topic),
							 errdetail("%s", rd_kafka_err2str(err))));
				set_assignment(n, parts, next);
				topic_partition_count = count;
				return;
			}
		}
		kafka_slot_set_state(my_slot, "retrying");
		consumer_sleep(backoff);
		backoff = Min(backoff * 2, 10000);
	}
}

/*
 * Group mode: the group assigns and revokes partitions while we poll.  On
 * assignment we start at our stored offsets (or the group's committed ones
 * if further, see starting_offsets); on revocation we commit our stored
 * offsets to the group synchronously, so that the next owner continues
 * exactly there, and drop the messages polled but not applied yet.
 * Runs in this process, inside rd_kafka_consume_batch_queue; errors are
 * caught here and end the worker from the loop.
 */
static void
rebalance_cb(rd_kafka_t *r, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		int			n = partitions->cnt;
		int32	   *parts = palloc(sizeof(int32) * Max(n, 1));
		int64	   *next = palloc(sizeof(int64) * Max(n, 1));
		volatile bool ok = false;

		for (int i = 0; i < n; i++)
			parts[i] = partitions->elems[i].partition;
		PG_TRY();
		{
			ok = starting_offsets(n, parts, next);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		if (!ok)
		{
			assignment_failed = true;
			rd_kafka_assign(r, NULL);
			return;
		}
		for (int i = 0; i < n; i++)
			partitions->elems[i].offset = next[i];
		rd_kafka_assign(r, partitions);
		set_assignment(n, parts, next);
	}
	else
	{
		if (nassigned > 0)
		{
			rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nassigned);

			for (int i = 0; i < nassigned; i++)
				rd_kafka_topic_partition_list_add(list, cfg.topic,
												  assigned_partitions[i])->offset = assigned_next[i];
			(void) rd_kafka_commit(r, list, 0);
			rd_kafka_topic_partition_list_destroy(list);
		}
		rd_kafka_assign(r, NULL);
		set_assignment(0, NULL, NULL);
		assignment_revoked = true;
	}
}

/* ---------- one batch ---------- */

/*
 * Tuple images of a batch live in an arena of chunks kept across batches, so
 * that a busy consumer does not allocate (and fault in) fresh memory for
 * every batch.
 */
#define ARENA_CHUNK_SIZE (4 * 1024 * 1024)

typedef struct ArenaChunk
{
	struct ArenaChunk *next;
	Size		used;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} ArenaChunk;

static ArenaChunk *arena_first = NULL;
static ArenaChunk *arena_current = NULL;

static void
arena_reset(void)
{
	for (ArenaChunk *c = arena_first; c != NULL; c = c->next)
		c->used = 0;
	arena_current = arena_first;
}

static char *
arena_alloc(Size size)
{
	Size		chunk_size = Max(ARENA_CHUNK_SIZE, size);

	size = MAXALIGN(size);
	while (arena_current != NULL && arena_current->used + size > chunk_size)
	{
		if (arena_current->next == NULL)
			break;
		arena_current = arena_current->next;
	}
	if (arena_current == NULL || arena_current->used + size > chunk_size)
	{
		ArenaChunk *c = MemoryContextAlloc(worker_cxt, offsetof(ArenaChunk, data) + chunk_size);

		c->used = 0;
		c->next = NULL;
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
	return arena_current->data + arena_current->used - size;
}

typedef struct BatchState
{
	StreamBatchEvents *events;
	TransactionId xid;
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
	bool		hasnull = false;
	Size		hoff;
	Size		data_len;
	HeapTupleHeader td;
	HeapTuple	dst;

	for (int i = 0; i < desc->natts; i++)
		hasnull |= nulls[i];
	hoff = SizeofHeapTupleHeader;
	if (hasnull)
		hoff += BITMAPLEN(desc->natts);
	hoff = MAXALIGN(hoff);
	data_len = heap_compute_data_size(desc, values, nulls);

	td = (HeapTupleHeader) arena_alloc(hoff + data_len);
	memset(td, 0, hoff);
	HeapTupleHeaderSetNatts(td, desc->natts);
	td->t_hoff = hoff;
	heap_fill_tuple(desc, values, nulls, (char *) td + hoff, data_len,
					&td->t_infomask, hasnull ? td->t_bits : NULL);
	HeapTupleHeaderSetXmin(td, b->xid);
	HeapTupleHeaderSetCmin(td, FirstCommandId);
	HeapTupleHeaderSetXmax(td, InvalidTransactionId);
	ItemPointerSetInvalid(&td->t_ctid);
	HeapTupleHeaderSetDatumLength(td, hoff + data_len);
	HeapTupleHeaderSetTypeId(td, desc->tdtypeid);
	HeapTupleHeaderSetTypMod(td, desc->tdtypmod);

	if (ev->nevents == ev->capacity)
	{
		ev->capacity *= 2;
		ev->events = repalloc_huge(ev->events, sizeof(HeapTupleData) * ev->capacity);
	}
	dst = &ev->events[ev->nevents++];
	dst->t_len = hoff + data_len;
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
			v.timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
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

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\"", sql);
	return plan;
}

/* Insert the bad messages and the new offsets, in the batch's transaction. */
static void
record_errors_and_offsets(List *bad, const int64 *next)
{
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (offsets_plan == NULL)
	{
		Oid			otypes[3] = {INT4OID, INT4OID, INT8OID};
		Oid			etypes[5] = {INT4OID, INT4OID, INT8OID, TEXTOID, BYTEAOID};

		offsets_plan = keep_plan("UPDATE stream_ext_internal.kafka_offsets SET next_offset = $3 "
								 "WHERE consumer_id = $1 AND partition = $2", 3, otypes);
		errors_plan = keep_plan("INSERT INTO stream_ext_internal.kafka_errors "
								"(consumer_id, partition, \"offset\", error, payload) "
								"VALUES ($1, $2, $3, $4, $5)", 5, etypes);
	}
	foreach(lc, bad)
	{
		BadMessage *bm = lfirst(lc);
		Datum		args[5] = {Int32GetDatum(cfg.id), Int32GetDatum(bm->partition),
			Int64GetDatum(bm->offset), CStringGetTextDatum(bm->error),
		PointerGetDatum(bm->payload)};

		if (SPI_execute_plan(errors_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record an undecodable Kafka message");
	}
	for (int i = 0; i < nassigned; i++)
	{
		Datum		args[3] = {Int32GetDatum(cfg.id), Int32GetDatum(assigned_partitions[i]),
		Int64GetDatum(next[i])};

		if (next[i] == assigned_next[i])
			continue;
		if (SPI_execute_plan(offsets_plan, args, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != 1)
			elog(ERROR, "could not store the offset of partition %d", assigned_partitions[i]);
	}
	SPI_finish();
}

/*
 * Apply msgs[0..n) in one transaction: events to the views, bad messages to
 * kafka_errors, offsets.  Throws on failure (the caller aborts and retries
 * carefully).  Returns the number of events applied.
 */
static int
apply_messages(rd_kafka_message_t **msgs, int n, bool careful, MemoryContext cxt,
			   int64 *next)
{
	BatchState b;
	StreamBatchEvents *events;
	Relation	rel;
	KafkaDecoder *decoder;
	TimestampTz arrival = GetCurrentTimestamp();
	List	   *bad = NIL;
	int			i = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());

	rel = table_open(cfg.stream, AccessShareLock);
	decoder = kafka_decoder_create(rel, &cfg.format);
	table_close(rel, NoLock);

	arena_reset();
	events = palloc0(sizeof(StreamBatchEvents));
	events->stream = cfg.stream;
	events->only = -1;
	events->capacity = Max(n, 16);
	events->events = palloc(sizeof(HeapTupleData) * events->capacity);
	b.events = events;
	b.xid = GetTopTransactionId();

	/*
	 * Offsets after this batch.  Messages of partitions no longer ours, or
	 * before the offset we expect (fetched before a re-assignment), are
	 * left out.
	 */
	memcpy(next, assigned_next, sizeof(int64) * nassigned);
	{
		rd_kafka_message_t **all = msgs;
		int			k = 0;

		msgs = palloc(sizeof(rd_kafka_message_t *) * Max(n, 1));
		for (int j = 0; j < n; j++)
		{
			int			a = assigned_index(all[j]->partition);

			if (a < 0 || all[j]->offset < next[a])
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

	if (events->nevents > 0)
		stream_apply_events(list_make1(events), KAFKA_COUNTER_WORKER_BASE + my_slotno, careful);
	record_errors_and_offsets(bad, next);

	PopActiveSnapshot();
	CommitTransactionCommand();
	return events->nevents;
}

/* After a commit: the new offsets become ours; tell the combiner and the group. */
static void
batch_committed(const int64 *next, int nmessages)
{
	memcpy(assigned_next, next, sizeof(int64) * nassigned);
	stream_note_mergeable(stream_batch_slot_for_backend());

	if (cfg.group_id && nassigned > 0)
	{
		rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nassigned);

		for (int i = 0; i < nassigned; i++)
			rd_kafka_topic_partition_list_add(list, cfg.topic,
											  assigned_partitions[i])->offset = assigned_next[i];
		(void) rd_kafka_commit(rk, list, 1);
		rd_kafka_topic_partition_list_destroy(list);
	}

	if (my_slot->failures > 0)
	{
		LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
		my_slot->failures = 0;
		LWLockRelease(KafkaShared->lock);
	}
}

/* Lag (from the watermarks librdkafka learnt with its fetches) and counters. */
static void
update_status(int nmessages, TimestampTz batch_start)
{
	int64		lag = 0;
	TimestampTz now = GetCurrentTimestamp();
	double		secs = (double) (now - batch_start) / 1000000.0;

	for (int i = 0; i < nassigned; i++)
	{
		int64		low,
					high;

		if (rd_kafka_get_watermark_offsets(rk, cfg.topic, assigned_partitions[i],
										   &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			high >= assigned_next[i])
			lag += high - assigned_next[i];
	}
	SpinLockAcquire(&my_slot->mutex);
	my_slot->messages += nmessages;
	my_slot->lag = lag;
	if (secs > 0)
		my_slot->rate = 0.7 * my_slot->rate + 0.3 * (nmessages / secs);
	strlcpy(my_slot->state, "running", sizeof(my_slot->state));
	SpinLockRelease(&my_slot->mutex);
}

/* Apply, retrying carefully on error (one bad event never stalls a partition). */
static void
process_batch(rd_kafka_message_t **msgs, int n, MemoryContext cxt, TimestampTz batch_start)
{
	int64	   *next = palloc(sizeof(int64) * Max(nassigned, 1));
	MemoryContext saved = CurrentMemoryContext;
	TimestampTz apply_start = GetCurrentTimestamp();

	PG_TRY();
	{
		apply_messages(msgs, n, false, cxt, next);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(saved);
		FlushErrorState();
		stream_scan_source = NULL;
		AbortCurrentTransaction();
		apply_messages(msgs, n, true, cxt, next);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(saved);
	batch_committed(next, n);
	update_status(n, batch_start);
	elog(DEBUG1, "stream_ext kafka consumer %d: %d messages, polled in %ld ms, applied in %ld ms",
		 cfg.id, n, (long) ((apply_start - batch_start) / 1000),
		 (long) ((GetCurrentTimestamp() - apply_start) / 1000));
}

/* ---------- main ---------- */

static void
attach_slot(KafkaWorkerArgs *args)
{
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	my_slot = kafka_slot_find(args->dboid, args->consumer_id, args->index);
	if (my_slot != NULL && my_slot->pid == 0)
	{
		my_slot->pid = MyProcPid;
		my_slot->starting = false;
		my_slotno = my_slot - KafkaShared->slots;
	}
	else
		my_slot = NULL;
	LWLockRelease(KafkaShared->lock);
}

void
stream_ext_kafka_main(Datum arg)
{
	KafkaWorkerArgs args;
	rd_kafka_message_t **msgs;
	MemoryContext batch_cxt;
	TimestampTz last_partition_check;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	my_index = args.index;

	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);

	/*
	 * Offsets and deltas commit in one transaction.  The commit waits for
	 * its WAL flush (the server's synchronous_commit), once per batch: what
	 * a reader has seen stays after a crash.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);

	attach_slot(&args);
	if (my_slot == NULL)
		proc_exit(0);
	before_shmem_exit(consumer_exit, (Datum) 0);
	kafka_slot_set_state(my_slot, "connecting");

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka consumer",
									   ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka batch",
									  ALLOCSET_DEFAULT_SIZES);
	scratch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka message",
										ALLOCSET_DEFAULT_SIZES);
	if (!load_config(args.consumer_id))
		proc_exit(0);			/* stopped or dropped meanwhile */
	pgstat_report_appname("stream_ext kafka consumer");
	view_cache_init();

	MemoryContextSwitchTo(worker_cxt);
	create_handle();
	if (cfg.group_id)
	{
		rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
		rd_kafka_resp_err_t err;

		rd_kafka_topic_partition_list_add(topics, cfg.topic, RD_KAFKA_PARTITION_UA);
		err = rd_kafka_subscribe(rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (err)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not subscribe to topic \"%s\"", cfg.topic),
					 errdetail("%s", rd_kafka_err2str(err))));
	}
	else
		assign_static();
	last_partition_check = GetCurrentTimestamp();
	kafka_slot_set_state(my_slot, "running");

	msgs = MemoryContextAlloc(worker_cxt, sizeof(rd_kafka_message_t *) * stream_ext_batch_size);
	for (;;)
	{
		int			n = 0;
		int			limit = stream_ext_batch_size;
		TimestampTz start = GetCurrentTimestamp();

		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		assignment_revoked = false;

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
			if (assignment_failed)
				ereport(ERROR,
						(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
						 errmsg("could not take over the partitions assigned by group \"%s\"",
								cfg.group_id)));
			if (assignment_revoked)
			{
				/* polled before the revocation: the next owner reads them */
				for (int i = 0; i < n; i++)
					rd_kafka_message_destroy(msgs[i]);
				n = 0;
				assignment_revoked = false;
			}
			for (ssize_t i = 0; i < got; i++)
			{
				rd_kafka_message_t *m = msgs[n + i];

				if (m->err)
				{
					if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					{
						kafka_slot_set_state(my_slot, "retrying");
						report_problem(rd_kafka_message_errstr(m));
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
			process_batch(msgs, n, batch_cxt, start);
			for (int i = 0; i < n; i++)
				rd_kafka_message_destroy(msgs[i]);
		}

		/*
		 * Partitions added to the topic (the group notices them itself).
		 * Looked for only when idle: the metadata request can wait behind a
		 * fetch.
		 */
		if (!cfg.group_id && n == 0 &&
			TimestampDifferenceExceeds(last_partition_check, GetCurrentTimestamp(),
									   PARTITION_CHECK_MS))
		{
			int			count = topic_partitions();

			if (count > topic_partition_count)
			{
				ereport(LOG,
						(errmsg("stream_ext kafka consumer %d: topic \"%s\" has %d partitions now, was %d",
								cfg.id, cfg.topic, count, topic_partition_count)));
				assign_static();
			}
			last_partition_check = GetCurrentTimestamp();
		}
	}
}
