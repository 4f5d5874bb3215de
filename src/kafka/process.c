/*
 * process.c
 *	  The parts of a Kafka worker process that consumers (consumer.c) and
 *	  producers (producer.c) share: signals, the shared-memory slot the
 *	  supervisor prepared, problems reported to the slot and the log,
 *	  librdkafka's log queue and error callback served from the worker's own
 *	  loop, and the handle with the user's configuration passthrough.
 *
 * librdkafka's threads never call PostgreSQL: signals are blocked in them,
 * its logs and errors go to a queue that the worker serves, and the error
 * callback only copies what it gets.
 */
#include "postgres.h"

#include <signal.h>
#include <pthread.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ipc/queue.h"
#include "kafka/check_options.h"
#include "kafka/process.h"
#include "kafka/slots.h"
#include "stream/insert.h"

static volatile sig_atomic_t stop_requested = false;

/* "consumer" or "producer", for messages */
#define ROLE(w) ((w)->producer ? "producer" : "consumer")

static void
handle_sigterm(SIGNAL_ARGS)
{
	stop_requested = true;
	die(postgres_signal_arg);
}

/*
 * On exit: release the slot, with a backoff when the exit was an error.  The
 * status is written before pid is cleared: after that the slot may be freed
 * and claimed for another worker.
 */
static void
worker_exit(int code, Datum arg)
{
	KafkaWorker *w = (KafkaWorker *) DatumGetPointer(arg);
	TimestampTz now = GetCurrentTimestamp();

	if (w->slot == NULL)
		return;
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	kafka_slot_set_state(w->slot, "stopped");
	w->slot->pid = 0;
	w->slot->starting = false;
	w->slot->exited_at = now;
	if (code != 0 && !stop_requested)
	{
		int			delay_s;

		w->slot->failures++;
		delay_s = 1 << Min(w->slot->failures - 1, 6);	/* 1 s .. 64 s */
		w->slot->retry_at = TimestampTzPlusMilliseconds(now, delay_s * 1000);
	}
	LWLockRelease(KafkaShared->lock);
}

/* Take our slot (set up by the supervisor): w->slot, or NULL if it is gone. */
static void
attach_slot(KafkaWorker *w, KafkaWorkerArgs *args)
{
	LWLockAcquire(KafkaShared->lock, LW_EXCLUSIVE);
	w->slot = kafka_slot_find(args->dboid, args->producer, args->consumer_id, args->index);
	if (w->slot != NULL && w->slot->pid == 0)
	{
		w->slot->pid = MyProcPid;
		w->slot->starting = false;
		w->slotno = w->slot - KafkaShared->slots;
		w->failures_to_reset = w->slot->failures > 0;
	}
	else
		w->slot = NULL;
	LWLockRelease(KafkaShared->lock);
}

/* the worker of this process, for worker_log_hook */
static KafkaWorker *this_worker = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * An error the worker reports (one that ends it, most often: say, its
 * stream has a column it cannot decode) is shown as the slot's last_error,
 * in kafka_consumers and kafka_producers, not only in the server's log.
 */
static void
worker_log_hook(ErrorData *edata)
{
	/* a stop or restart someone asked for (57P01) is no error of the worker */
	if (edata->elevel >= ERROR && this_worker != NULL && this_worker->slot != NULL &&
		edata->message != NULL && edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN)
		kafka_slot_set_error(this_worker->slot, edata->message);
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * The start of every Kafka worker: signals, the database connection, the
 * slot (the process exits at once when the slot is gone), the exit handler,
 * the log hook and w->cxt.  w is zeroed here.
 */
static void
kafka_worker_start(KafkaWorker *w, KafkaWorkerArgs *args)
{
	memset(w, 0, sizeof(KafkaWorker));
	w->slotno = -1;
	w->index = args->index;
	w->producer = args->producer;

	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args->dboid, InvalidOid, 0);
	stream_refuse_writes_in_this_process();

	attach_slot(w, args);
	if (w->slot == NULL)
		proc_exit(0);
	before_shmem_exit(worker_exit, PointerGetDatum(w));
	this_worker = w;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = worker_log_hook;
	kafka_slot_set_state(w->slot, "connecting");
	if (w->producer)
		w->cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka producer",
									   ALLOCSET_DEFAULT_SIZES);
	else
		w->cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext kafka consumer",
									   ALLOCSET_DEFAULT_SIZES);
}

/*
 * The entry of a Kafka worker (bgw_extra holds its KafkaWorkerArgs): the
 * start above, then its body; an error that ends it is shown as the slot's
 * last_error first, also when log_min_messages keeps errors out of the
 * server's log (then worker_log_hook does not see them).
 */
void
kafka_worker_main(KafkaWorker *w, void (*body) (KafkaWorker *w, KafkaWorkerArgs *args))
{
	KafkaWorkerArgs args;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	kafka_worker_start(w, &args);
	PG_TRY();
	{
		body(w, &args);
	}
	PG_CATCH();
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		ErrorData  *e = CopyErrorData();

		MemoryContextSwitchTo(old);
		if (w->slot != NULL && e->message != NULL && e->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN)
			kafka_slot_set_error(w->slot, e->message);
		FreeErrorData(e);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Report a problem the worker keeps retrying after: status and log. */
void
kafka_report_problem(KafkaWorker *w, const char *what)
{
	kafka_slot_set_error(w->slot, what);
	ereport(LOG,
			(errmsg("stream_ext kafka %s %d of topic \"%s\": %s",
					ROLE(w), w->cfg.id, w->cfg.topic, what)));
}

/* opaque is the KafkaWorker (rd_kafka_conf_set_opaque) */
static void
error_cb(rd_kafka_t *r, int err, const char *reason, void *opaque)
{
	KafkaWorker *w = opaque;

	snprintf(w->pending_error, sizeof(w->pending_error), "%s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
	w->has_pending_error = true;
}

/* Report what the callbacks saved, from our own loop. */
void
kafka_serve_callback_reports(KafkaWorker *w)
{
	rd_kafka_event_t *ev;

	while (w->logq != NULL && (ev = rd_kafka_queue_poll(w->logq, 0)) != NULL)
	{
		const char *fac;
		const char *str;
		int			level;

		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LOG &&
			rd_kafka_event_log(ev, &fac, &str, &level) == 0)
			ereport(LOG,
					(errmsg("stream_ext kafka %s %d: librdkafka: %s: %s",
							ROLE(w), w->cfg.id, fac, str)));
		rd_kafka_event_destroy(ev);
	}
	if (w->has_pending_error)
	{
		w->has_pending_error = false;
		kafka_slot_set_state(w->slot, "retrying");
		kafka_report_problem(w, w->pending_error);
	}
}

/* Sleep ms (in steps), serving callbacks and interrupts. */
void
kafka_consumer_sleep(KafkaWorker *w, long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	kafka_serve_interrupts();
	kafka_serve_callback_reports(w);
}

/*
 * Between librdkafka calls: cancel and termination, the postmaster's death,
 * a configuration reload.  A worker leaves (a clean exit: the supervisor
 * starts it again once the database's combiner is back) when the
 * database's workers are stopped for a DROP, copy or rename of the
 * database, which waits for every process connected to it, or for DROP
 * EXTENSION.
 */
void
kafka_serve_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (!PostmasterIsAlive())
		proc_exit(1);
	if (stream_database_stopping(MyDatabaseId))
		proc_exit(0);
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

char *
kafka_spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*
 * Read the librdkafka options of w->cfg.id from the catalog table catalog
 * (kafka_consumers or kafka_producers) into w->cfg (in w->cxt).  Caller is
 * connected to SPI inside a transaction.
 */
void
kafka_load_options(KafkaWorker *w, const char *catalog)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(w->cfg.id)};
	char	   *sql = psprintf("SELECT key, value FROM stream_ext_internal.%s c, "
							   "jsonb_each_text(c.options) WHERE c.id = $1",
							   quote_identifier(catalog));
	MemoryContext old;

	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the options of Kafka %s %d", ROLE(w), w->cfg.id);
	old = MemoryContextSwitchTo(w->cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		w->cfg.option_names = lappend(w->cfg.option_names, kafka_spi_text(i, 1));
		w->cfg.option_values = lappend(w->cfg.option_values, kafka_spi_text(i, 2));
	}
	MemoryContextSwitchTo(old);
}

void
kafka_set_conf(KafkaWorker *w, rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (!kafka_conf_set_documented(conf, name, value, errstr, sizeof(errstr)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid librdkafka option \"%s\" for Kafka %s %d", name, ROLE(w), w->cfg.id),
				 errdetail_internal("%s", errstr)));
}

/*
 * Create w->rk from conf (which holds the caller's defaults): the user's
 * options override those; log.queue, the opaque pointer and the error
 * callback are ours whatever the options say.  librdkafka's threads start
 * with every signal blocked.  The caller sets its own callbacks on conf
 * before.
 */
void
kafka_create_handle(KafkaWorker *w, rd_kafka_conf_t *conf, rd_kafka_type_t type)
{
	char		errstr[512];
	ListCell   *ln,
			   *lv;
	sigset_t	all,
				saved;

	forboth(ln, w->cfg.option_names, lv, w->cfg.option_values)
	{
		const char *refused = kafka_option_refused(lfirst(ln), w->producer);

		/* (options stored before kafka_check_options refused them) */
		if (refused != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("librdkafka option \"%s\" cannot be set for Kafka %s %d",
							(char *) lfirst(ln), ROLE(w), w->cfg.id),
					 errdetail("%s", refused)));
		kafka_set_conf(w, conf, lfirst(ln), lfirst(lv));
	}
	kafka_set_conf(w, conf, "log.queue", "true");
	rd_kafka_conf_set_opaque(conf, w);
	rd_kafka_conf_set_error_cb(conf, error_cb);

	/* librdkafka's threads inherit a mask that blocks every signal */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	w->rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (w->rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka %s for topic \"%s\"", ROLE(w), w->cfg.topic),
				 errdetail_internal("%s", errstr)));
	w->logq = rd_kafka_queue_new(w->rk);
	rd_kafka_set_log_queue(w->rk, w->logq);
}
