/*
 * worker.c
 *	  Entry point of the per-database processes, and the batch worker loop.
 *
 * A batch worker reads records from its ring in place.  It applies a batch
 * when a committing writer waits for it, when stream_ext.batch_size events
 * are queued, or when the oldest queued event has waited
 * stream_ext.flush_interval.  Only after the batch's transaction has
 * committed does it acknowledge the waiting writers and release the ring
 * space, so events survive an error or a restart of the worker.
 */
#include "postgres.h"

#include <malloc.h>

#include "access/xact.h"
#include "commands/extension.h"
#include "jit/jit.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/ps_status.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "ipc/queue.h"
#include "ipc/record.h"
#include "ipc/route.h"
#include "jobs/jobs.h"
#include "metrics/latency.h"
#include "stream/insert.h"
#include "worker/apply.h"
#include "worker/settings.h"
#include "worker/time_limit.h"
#include "worker/view_cache.h"
#include "worker/worker.h"

volatile sig_atomic_t stream_worker_stop_requested = false;

static void stream_batch_worker_loop(int slotno);

/* SIGTERM: finish the current unit of work, then exit without restart. */
static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	stream_worker_stop_requested = true;
	SetLatch(MyLatch);
	stream_ring_interrupt_sleep();
	errno = save_errno;
}

/* SIGHUP: reload the configuration between batches */
static void
handle_sighup(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SignalHandlerForConfigReload(postgres_signal_arg);
	stream_ring_interrupt_sleep();
	errno = save_errno;
}

static void
detach_at_exit(int code, Datum arg)
{
	stream_slot_detach(DatumGetInt32(arg));
}

/* Is the extension installed in this database?  Needs a transaction. */
bool
stream_worker_extension_present(void)
{
	return OidIsValid(get_extension_oid("stream_ext", true));
}

/*
 * After a unit of work, outside a transaction: send the table and database
 * statistics of its transactions (at most once a second, as a backend
 * does), so pg_stat_* and autovacuum see the workers' writes.
 */
void
stream_worker_report_done(void)
{
	(void) pgstat_report_stat(false);
}

/*
 * Before waiting for work: send what statistics remain, and show the
 * process as idle (with its last query) in pg_stat_activity.
 */
void
stream_worker_report_idle(void)
{
	(void) pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
stream_worker_handle_interrupts(void)
{
	/*
	 * Called between batches and rounds, where a cancel (pg_cancel_backend)
	 * finds nothing to cancel: it must not end the process.  One that comes
	 * during a batch cancels that batch, which is applied again.
	 */
	QueryCancelPending = false;
	CHECK_FOR_INTERRUPTS();
	if (stream_worker_stop_requested)
		proc_exit(0);
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		stream_worker_publish_settings();
	}
}

static void
exit_if_extension_dropped(StreamWorkerSlot *slot)
{
	bool		present;

	StartTransactionCommand();
	present = stream_worker_extension_present();
	CommitTransactionCommand();
	if (!present)
	{
		stream_ring_discard(slot);
		memset(&slot->paused, 0, sizeof(slot->paused));	/* its view ids go */
		proc_exit(0);
	}
}

/*
 * A batch allocates and frees blocks of a megabyte and more at each step
 * (a Kafka producer's outbox rows: the messages, their lz4 copy, the tuple
 * formed from it), which glibc's malloc maps afresh or returns to the
 * system when freed: each new page then costs a fault (a fifth of a
 * batch's time staging a sink's messages, by perf).  Blocks up to 8 MB come
 * from the heap and stay there while up to 64 MB are free at its top: a
 * worker may keep that much more memory than it uses (glibc's own dynamic
 * thresholds reach 32 and 64 MB after the first large free anyway).
 */
static void
keep_freed_memory(void)
{
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
}

void
stream_ext_worker_main(Datum arg)
{
	int			slotno = DatumGetInt32(arg);
	Oid			dboid;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));

	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGHUP, handle_sighup);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	stream_refuse_writes_in_this_process();

	/*
	 * Our commits need not wait for a WAL flush: a writer that waits for us
	 * flushes WAL past our commit record when it commits itself.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	stream_worker_pin_settings();

	if (!stream_slot_attach(slotno))
		proc_exit(0);
	before_shmem_exit(detach_at_exit, Int32GetDatum(slotno));
	exit_if_extension_dropped(stream_slot(slotno));
	stream_worker_publish_settings();

	if (stream_slot_role(slotno) == ROLE_COMBINER)
	{
		pgstat_report_appname("stream_ext combiner");
		stream_combiner_loop(slotno);
	}
	else
	{
		pgstat_report_appname("stream_ext worker");
		keep_freed_memory();
		stream_batch_worker_loop(slotno);
	}
	proc_exit(0);
}

/*
 * The batch's events of stream whose writers applied writer_applied
 * (STREAM_FLAGS_WRITER_APPLIED) of its views themselves.
 */
static StreamBatchEvents *
events_of_stream(StreamBatch *batch, Oid stream, uint16 writer_applied)
{
	ListCell   *lc;
	StreamBatchEvents *events;

	foreach(lc, batch->streams)
	{
		events = lfirst(lc);
		if (events->stream == stream && events->writer_applied == writer_applied)
			return events;
	}
	events = palloc0(sizeof(StreamBatchEvents));
	events->stream = stream;
	events->writer_applied = writer_applied;
	events->only = -1;
	events->capacity = 1024;
	events->events = palloc(sizeof(HeapTupleData) * events->capacity);
	batch->streams = lappend(batch->streams, events);
	return events;
}

static StreamBatch *
new_batch(uint64 start)
{
	StreamBatch *batch = palloc0(sizeof(StreamBatch));

	batch->maxsenders = 64;
	batch->senders = palloc(sizeof(BatchSender) * batch->maxsenders);
	batch->end_pos = start;
	return batch;
}

/* Room for more entries of a batch's array (*max of size each, or NULL) */
static void *
grow_batch_array(StreamBatch *batch, void *array, int *max, Size size)
{
	*max = Max(64, *max * 2);
	return array == NULL ? MemoryContextAlloc(GetMemoryChunkContext(batch), size * *max) :
		repalloc(array, size * *max);
}

/*
 * Note a QUEUED record's writer (an entry per run of its records) and the
 * (sub)transactions of its events (one per run), for lateness: apply.c
 * merges them.
 */
static void
note_queued_record(StreamBatch *batch, const StreamRecord *rec, const HeapTupleData *events)
{
	BatchQueuedWriter *w;

	if (batch->nqueued == 0 || batch->queued[batch->nqueued - 1].top != rec->top_xid)
	{
		if (batch->nqueued == batch->maxqueued)
			batch->queued = grow_batch_array(batch, batch->queued, &batch->maxqueued,
											 sizeof(BatchQueuedWriter));
		w = &batch->queued[batch->nqueued++];
		memset(w, 0, sizeof(*w));
		w->top = rec->top_xid;
	}
	w = &batch->queued[batch->nqueued - 1];
	if (rec->flags & STREAM_FLAG_FIRST)
		w->first = true;
	if (rec->flags & STREAM_FLAG_LAST)
	{
		w->lasts++;
		w->last_of = rec->last_of;
	}
	for (uint32 i = 0; i < rec->nevents; i++)
	{
		TransactionId xmin = HeapTupleHeaderGetRawXmin(events[i].t_data);

		if (batch->nqueued_xmins > 0 &&
			batch->queued_xmins[batch->nqueued_xmins - 1].xmin == xmin)
			continue;
		if (batch->nqueued_xmins == batch->maxqueued_xmins)
			batch->queued_xmins = grow_batch_array(batch, batch->queued_xmins,
												   &batch->maxqueued_xmins,
												   sizeof(StreamQueuedXmin));
		batch->queued_xmins[batch->nqueued_xmins].xmin = xmin;
		batch->queued_xmins[batch->nqueued_xmins].top = rec->top_xid;
		batch->nqueued_xmins++;
	}
}

/*
 * Add the whole records between batch->end_pos and to, stopping before a
 * record that would take the batch past stream_ext.batch_size events (a
 * single record is always taken).  Returns true when the batch is full.
 */
static bool
collect_records(StreamBatch *batch, int slotno, uint64 to)
{
	StreamRecord rec;

	while (stream_ring_next_record(slotno, batch->end_pos, to, &rec))
	{
		if (batch->nevents > 0 && batch->nevents + (int) rec.nevents > stream_ext_batch_size)
		{
			batch->end_pos = rec.start;
			return true;
		}

		if (batch->nsenders == batch->maxsenders)
			batch->senders = grow_batch_array(batch, batch->senders, &batch->maxsenders,
											  sizeof(BatchSender));
		batch->senders[batch->nsenders].procno = rec.procno;
		batch->senders[batch->nsenders].xact_seq = rec.xact_seq;
		batch->senders[batch->nsenders].commit = (rec.flags & STREAM_FLAG_COMMIT) != 0;
		batch->senders[batch->nsenders].sent_at = rec.sent_at;
		batch->nsenders++;
		if (rec.flags & STREAM_FLAG_COMMIT)
			batch->has_commit = true;
		if (rec.flags & STREAM_FLAG_ASYNC)
			batch->has_async = true;

		if (rec.nevents > 0)
		{
			StreamBatchEvents *events = events_of_stream(batch, rec.stream,
															  rec.flags & STREAM_FLAGS_WRITER_APPLIED);

			if (events->nevents + (int) rec.nevents > events->capacity)
			{
				while (events->nevents + (int) rec.nevents > events->capacity)
					events->capacity *= 2;
				events->events = repalloc_huge(events->events,
											   sizeof(HeapTupleData) * events->capacity);
			}
			stream_record_events(&rec, &events->events[events->nevents]);
			if (rec.flags & STREAM_FLAG_QUEUED)
				note_queued_record(batch, &rec, &events->events[events->nevents]);
			events->nevents += rec.nevents;
			batch->nevents += rec.nevents;
		}
		else if (rec.flags & STREAM_FLAG_QUEUED)
			note_queued_record(batch, &rec, NULL);
		batch->end_pos = rec.end;
	}
	batch->end_pos = to;
	return batch->nevents >= stream_ext_batch_size;
}

/* Try to apply; on error, clean up and return the error (else NULL). */
static ErrorData *
try_apply(StreamBatch *batch, int worker_no, bool careful, MemoryContext cxt)
{
	ErrorData  *volatile failure = NULL;

	PG_TRY();
	{
		stream_apply_batch(batch, worker_no, careful);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (careful)
			EmitErrorReport();
		FlushErrorState();
		stream_scan_source = NULL;
		AbortCurrentTransaction();
		jit_reset_after_error();	/* as PostgresMain does */
		failure = edata;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return failure;
}

/*
 * The batch committed: note how long the records sent at a writer's COMMIT
 * (or, async, at a statement's end) took to become visible.
 */
static void
note_commit_latency(int slotno, StreamBatch *batch)
{
	TimestampTz *sent = palloc(sizeof(TimestampTz) * Max(batch->nsenders, 1));
	int			n = 0;

	for (int i = 0; i < batch->nsenders; i++)
		if (batch->senders[i].sent_at != 0)
			sent[n++] = batch->senders[i].sent_at;
	stream_latency_note(stream_slot_group(slotno), sent, n, GetCurrentTimestamp());
	pfree(sent);
}

/* A transient failure's batch is applied again after this long */
#define RETRY_DELAY_MS 1000

/*
 * A view whose code catches the time limit's cancel, over and over, would
 * hold this worker, and every writer of its queue, for ever: the time limit
 * ends the process (time_limit.c), first noting in the slot which view and
 * up to where in the ring (note_ignored_cancel).  The launcher starts the
 * worker again, which applies the same events, but without the noted views:
 * they skip them, recorded (apply.c).  Everything else of the batch was
 * rolled back with the process and is applied again.  A note stays until
 * the ring is released past its end, so that a second such view met on the
 * same events adds to it instead of bringing the first one back.
 */
static StreamWorkerSlot *my_slot = NULL;
static uint64 applying_end = 0; /* ring position after the batch being applied */

/* In the time limit's signal handler: false when there is no note to make */
static bool
note_ignored_cancel(void)
{
	int			view = stream_apply_running_view();
	int			unused = -1;

	if (view == 0)
		return false;
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
	{
		if (my_slot->ignored_cancel[i].view == view)
		{
			my_slot->ignored_cancel[i].end = Max(my_slot->ignored_cancel[i].end, applying_end);
			return true;
		}
		if (unused < 0 && my_slot->ignored_cancel[i].view == 0)
			unused = i;
	}
	if (unused < 0)
		return false;
	my_slot->ignored_cancel_db = MyDatabaseId;
	my_slot->ignored_cancel[unused].end = applying_end;
	pg_write_barrier();
	my_slot->ignored_cancel[unused].view = view;
	return true;
}

/*
 * Forget the notes the ring is released past (or another database's), and
 * return the views of the others, for the batches before the first end
 * (*until; 0 when none).
 */
static int
ignored_cancel_notes(StreamWorkerSlot *slot, int *views, uint64 *until)
{
	int			n = 0;

	*until = 0;
	pg_read_barrier();
	for (int i = 0; i < STREAM_IGNORED_CANCEL_NOTES; i++)
	{
		if (slot->ignored_cancel[i].view == 0)
			continue;
		if (slot->ignored_cancel_db != MyDatabaseId || slot->ignored_cancel[i].end <= slot->read_pos)
		{
			slot->ignored_cancel[i].view = 0;
			continue;
		}
		views[n++] = slot->ignored_cancel[i].view;
		if (*until == 0 || slot->ignored_cancel[i].end < *until)
			*until = slot->ignored_cancel[i].end;
	}
	return n;
}

/* At start: what the processes before were ended for, if anything */
static void
take_ignored_cancel_notes(StreamWorkerSlot *slot)
{
	int			views[STREAM_IGNORED_CANCEL_NOTES];
	uint64		until;
	int			n = ignored_cancel_notes(slot, views, &until);

	my_slot = slot;
	stream_view_time_limit_on_ignored_cancel(note_ignored_cancel);
	for (int i = 0; i < n; i++)
		ereport(LOG,
				(errmsg("stream_ext worker skips continuous view %d for the events a previous process was ended on",
						views[i]),
				 errdetail("The view's code went on after stream_ext.view_time_limit cancelled its run: it catches the cancel.")));
}

/*
 * A discarded batch's LAST records of writers still tracked for lateness
 * are counted (apply.c); when that fails too, their writers stay tracked
 * until the server restarts (logged).
 */
static void
count_discarded_lasts(StreamBatch *batch, MemoryContext cxt)
{
	PG_TRY();
	{
		stream_apply_discarded_batch(batch);
	}
	PG_CATCH();
	{
		stream_log_error_and_abort(cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * Apply the batch (carefully after an error), then acknowledge its waiting
 * writers and release its ring space.  An error on events costs only those
 * events for their views (apply.c); what remains is not the events' fault.
 * A transient failure (out of resources, an I/O error, a cancel, a
 * deadlock) keeps the batch in the ring, unacknowledged, and returns false:
 * the caller applies it again later, so nothing a writer was told is
 * applied gets lost.  Any other failure fails the waiting writers'
 * transactions with the error and its SQLSTATE.
 */
static bool
apply_and_acknowledge(int slotno, StreamBatch *batch, MemoryContext cxt)
{
	StreamWorkerSlot *slot = stream_slot(slotno);
	int			worker_no = stream_worker_index(slotno);
	ErrorData  *failure = try_apply(batch, worker_no, false, cxt);
	const char *why = NULL;

	if (failure != NULL)
	{
		stream_apply_views_own_transient_errors(batch->transient.owning,
												batch->transient.nowning);
		failure = try_apply(batch, worker_no, true, cxt);
		stream_apply_views_own_transient_errors(NULL, 0);
	}
	if (failure != NULL)
		why = failure->message ? failure->message : "unknown error";
	if (failure != NULL && stream_error_is_transient(failure->sqlerrcode))
	{
		/* a view owns them from then on, for the batch's other tries */
		bool		owns = stream_transient_tries_note(&batch->transient, failure->sqlerrcode);

		ereport(LOG,
				(errmsg("stream_ext worker will apply a batch of %d events again in %d ms",
						batch->nevents, RETRY_DELAY_MS),
				 errdetail_internal("%s", why),
				 owns ?
				 errhint("From then on, an error of this kind that the continuous view's code raises (a PL/pgSQL RAISE) sets the event causing it aside for that view.") : 0));
		return false;
	}

	for (int i = 0; i < batch->nsenders; i++)
	{
		BatchSender *s = &batch->senders[i];

		if (failure != NULL)
			stream_ack_failed(s->procno, slotno, s->xact_seq, failure->sqlerrcode, why);
		else if (s->commit)
			stream_ack_done(s->procno, slotno, s->xact_seq);
	}
	if (failure == NULL && batch->has_async)
		stream_note_mergeable(slotno);
	if (failure == NULL)
		note_commit_latency(slotno, batch);
	if (failure != NULL)
	{
		ereport(LOG,
				(errmsg("stream_ext worker discarded a batch of %d events", batch->nevents),
				 errdetail_internal("%s", why)));
		count_discarded_lasts(batch, cxt);
	}
	stream_ring_release(slot, batch->end_pos);
	return true;
}

/*
 * Apply the batch; returns 0 when it is done with, else the time to apply
 * it again (a transient failure).
 */
static TimestampTz
apply_batch(int slotno, StreamBatch *batch, MemoryContext batch_cxt)
{
	bool		done;
	int			skip[STREAM_IGNORED_CANCEL_NOTES];
	uint64		until;

	MemoryContextSwitchTo(batch_cxt);
	applying_end = batch->end_pos;
	stream_apply_skip_views(skip, ignored_cancel_notes(stream_slot(slotno), skip, &until));
	done = apply_and_acknowledge(slotno, batch, batch_cxt);
	stream_apply_skip_views(NULL, 0);
	MemoryContextSwitchTo(TopMemoryContext);
	stream_worker_report_done();
	return done ? 0 : TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RETRY_DELAY_MS);
}

/* Where to end a batch collected up to written: before a note's end */
static uint64
skipped_until(StreamWorkerSlot *slot, uint64 written)
{
	int			views[STREAM_IGNORED_CANCEL_NOTES];
	uint64		until;

	if (ignored_cancel_notes(slot, views, &until) == 0)
		return written;
	return Min(written, until);
}

static void
stream_batch_worker_loop(int slotno)
{
	StreamWorkerSlot *slot = stream_slot(slotno);
	MemoryContext batch_cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext batch",
													ALLOCSET_DEFAULT_SIZES);
	StreamBatch *batch = NULL;	/* being collected, in batch_cxt */
	TimestampTz retry_at = 0;	/* batch failed transiently: apply it again then */
	TimestampTz first_seen = 0;
	TimestampTz last_check = GetCurrentTimestamp();

	view_cache_init();
	take_ignored_cancel_notes(slot);

	for (;;)
	{
		uint64		written;
		uint64		until;
		TimestampTz now;
		bool		full;

		stream_worker_handle_interrupts();

		now = GetCurrentTimestamp();
		if (retry_at != 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, retry_at, &secs, &usecs);
			if (secs > 0 || usecs > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 secs * 1000 + usecs / 1000 + 1, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				continue;
			}
			retry_at = apply_batch(slotno, batch, batch_cxt);
			if (retry_at == 0)
				batch = NULL;
			continue;
		}

		written = stream_ring_written(slot);
		if (batch == NULL && written == slot->read_pos)
		{
			if (TimestampDifferenceExceeds(last_check, now, 1000))
			{
				exit_if_extension_dropped(slot);
				last_check = now;
			}
			stream_worker_report_idle();
			stream_ring_sleep(slot, written, 1000L);
			continue;
		}

		if (batch == NULL)
		{
			MemoryContextReset(batch_cxt);
			MemoryContextSwitchTo(batch_cxt);
			batch = new_batch(slot->read_pos);
			first_seen = now;
		}
		MemoryContextSwitchTo(batch_cxt);
		/* the events of a skip are a batch (or more) of their own */
		until = skipped_until(slot, written);
		full = collect_records(batch, slotno, until) ||
			(until < written && batch->end_pos == until);
		MemoryContextSwitchTo(TopMemoryContext);

		/* Nobody waits and there is room: let more events arrive. */
		if (!batch->has_commit && !full)
		{
			long		wait_ms = stream_ext_flush_interval_ms -
				(long) ((now - first_seen) / 1000);

			if (wait_ms > 0)
			{
				stream_ring_sleep(slot, written, wait_ms);
				continue;
			}
		}

		retry_at = apply_batch(slotno, batch, batch_cxt);
		if (retry_at == 0)
			batch = NULL;
	}
}
