/*
 * insert.c
 *	  Writer side of streams.
 *
 * ExecForeignInsert (and COPY, see copy.c) forms each event as a heap tuple
 * image whose xmin is the inserting (sub)transaction and appends it to a
 * backend-local buffer.  The buffer goes as one record to a worker's ring when
 * it fills, at the end of a statement in async mode, and at PRE_COMMIT; to
 * the transaction's home worker (the first of the database's workers that
 * keeps up), or to another worker of the database when the home worker falls
 * behind.  In sync mode every worker that got records is
 * sent STREAM_FLAG_COMMIT and the backend waits until each has committed the
 * deltas of the events it was sent: the events are durable
 * before our own commit record is written, and they become visible exactly
 * when (and if) our transaction commits, because every delta row carries our
 * transaction id.  Nothing needs to be undone on abort.
 *
 * A stream's transforms into tables, and the staging of its Kafka
 * producers' messages, are done by the writer itself when each can be
 * (stream_writer_applies_hook: worker/writer_apply.c, kafka/sink_stage.c):
 * then its events are buffered up to APPLY_BUFFER_SIZE, and at each flush,
 * and at the end of each statement, the writer applies those views to the
 * buffered events in its own transaction, before sending them (flagged
 * STREAM_FLAG_TABLES_APPLIED, STREAM_FLAG_SINKS_STAGED, in records of at
 * most EVENT_BUFFER_SIZE) to a worker for the stream's other views; a
 * stream with no other view sends nothing.  When the writer's apply of a
 * part fails, the events go without its flag and the workers apply it as
 * for any other writer.  A stream with Kafka producers whose events went
 * to the workers unstaged is pinned for the rest of the transaction: its
 * records go to the home worker only (which stages them in the order
 * written), and COMMIT waits for the workers in either commit mode.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "ipc/queue.h"
#include "ipc/record.h"
#include "ipc/route.h"
#include "stream/event_tuple.h"
#include "stream/fdw.h"
#include "stream/insert.h"

/* Most bytes of events in one record */
#define EVENT_BUFFER_SIZE (64 * 1024)

/* Most bytes of events a writer applies its stream's transforms to at once */
#define APPLY_BUFFER_SIZE (4 * 1024 * 1024)

/* Arrival clock: read once per ARRIVAL_CLOCK_EVENTS events of a statement */
#define ARRIVAL_CLOCK_EVENTS 64
static TimestampTz arrival_now = 0;
static TimestampTz arrival_statement = 0;
static uint32 arrival_uses = 0;

static char *event_buf = NULL;
static Size event_buf_size = 0;	/* allocated */
static Size event_buf_used = 0;
static uint32 event_buf_count = 0;	/* events not sent yet */

/*
 * Where the events not sent yet start.  A flush of a large buffer sends
 * several records, and an error (a cancel while the queue is full) may stop
 * it after some: those are gone from the buffer, for a later flush must not
 * send them again when a subtransaction caught the error.
 */
static Size event_buf_start = 0;
static Oid	event_buf_stream = InvalidOid;

/*
 * The earliest subtransaction that buffered one of the events (subtransaction
 * ids grow within a transaction).  The writer's own apply inserts rows in
 * the subtransaction current at the flush: only when none of the events was
 * buffered before it began can those rows not be rolled back without them
 * (a function called by the statement may flush inside its own exception
 * block, which then rolls back).
 */
static SubTransactionId event_buf_first_subxact = InvalidSubTransactionId;

/*
 * This transaction filled its buffer (it writes many events: the staging of
 * a stream's sinks may go to the workers, which format them while it goes
 * on writing).
 */
static bool xact_filled_buffer = false;

/*
 * Streams with Kafka producers whose events this transaction sent to the
 * workers to stage (the writer left them, or did not stage them itself):
 * their records go to its home worker only from then on, which stages them
 * in the order written (in TopMemoryContext, emptied at the end of the
 * transaction).  A pin survives ROLLBACK TO SAVEPOINT: the records that
 * took it may have carried the parent's events too.
 */
static List *pinned = NIL;

/* What this statement's writer applies itself of event_buf_stream's views */
static Oid	applies_stream = InvalidOid;	/* decided for this stream */
static WriterApplies applies = WRITER_APPLIES_NOTHING;

stream_writer_applies_hook_type stream_writer_applies_hook = NULL;
stream_writer_apply_hook_type stream_writer_apply_hook = NULL;

/* Per transaction */
static bool xact_active = false;
static int	xact_home_slot = -1;	/* first records go to this worker */
static bool xact_holds_group = false;	/* stream_writer_join_group */
static uint64 xact_workers_used = 0;	/* bitmask of worker indexes sent to */
static uint64 xact_seq = 0;

/*
 * Records of this transaction sent in async mode are flagged QUEUED (and
 * then every later one): they may be applied after it committed, and the
 * workers track it until each had its LAST record (window/lateness.c).
 * Records sent before that (in sync mode) are not tracked: if it commits in
 * async mode, it waits for the workers as in sync mode.
 */
static bool xact_queued = false;	/* a QUEUED record was sent */
static bool xact_untracked = false; /* a record was sent before that */
static int	committing_slotno = -1; /* between PRE_COMMIT and COMMIT */
static bool finishing_prepared = false; /* this transaction runs COMMIT PREPARED */

static void
send_record(int slotno, Oid stream, uint32 nevents, const char *payload, Size len,
			uint16 flags)
{
	uint64		used = xact_workers_used | (UINT64CONST(1) << stream_worker_index(slotno));

	if (xact_workers_used == 0)
		flags |= STREAM_FLAG_FIRST;
	if (stream_ext_commit_mode == STREAM_COMMIT_ASYNC)
		xact_queued = true;
	if (xact_queued)
		flags |= STREAM_FLAG_QUEUED;
	else
		xact_untracked = true;
	stream_ring_send(slotno, flags, stream, nevents, xact_seq,
					 (flags & STREAM_FLAG_LAST) ? pg_popcount64(used) : 0, payload, len);
	xact_workers_used = used;
}

static bool
is_pinned(Oid stream)
{
	return list_member_oid(pinned, stream);
}

static void
pin(Oid stream)
{
	MemoryContext old;

	if (is_pinned(stream))
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	pinned = lappend_oid(pinned, stream);
	MemoryContextSwitchTo(old);
}

/* The worker for the next record of stream in this transaction (ipc/route.c) */
static int
next_record_slot(Oid stream)
{
	if (xact_workers_used == 0 || is_pinned(stream))
		return xact_home_slot;
	return stream_route_next_record(xact_home_slot);
}

/*
 * While the writer applies events itself, its transforms' code (their
 * functions, their tables' triggers) runs over those events, which are the
 * buffer's or a record being sent: a write of theirs into a stream would
 * flush and refill the buffer under them.  Refused, as in the workers
 * (stream_admit_writer): the apply fails, and the events go to the workers,
 * which set such an event aside for the transform.
 */
static bool in_own_apply = false;

/*
 * Apply the stream's transforms into tables to events[0 .. nevents - 1]
 * (stream_writer_apply_hook), leaving out events of rolled back
 * subtransactions.  Returns what was applied (WRITER_APPLIES_NOTHING:
 * nothing).
 */
static WriterApplies
apply_own_events(Oid stream, const char *events, uint32 nevents)
{
	HeapTupleData *tuples = palloc(sizeof(HeapTupleData) * nevents);
	int			n = 0;
	WriterApplies applied = applies;

	stream_buffer_events(events, nevents, stream, tuples);
	for (uint32 i = 0; i < nevents; i++)
		if (TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmin(tuples[i].t_data)))
			tuples[n++] = tuples[i];
	if (n > 0)
	{
		in_own_apply = true;
		PG_TRY();
		{
			applied = stream_writer_apply_hook(stream, tuples, n);
		}
		PG_FINALLY();
		{
			in_own_apply = false;
		}
		PG_END_TRY();
	}
	pfree(tuples);
	return applied;
}

/*
 * May the writer's own apply take one more subtransaction?  Each apply runs
 * in one, which takes a transaction id of its own (its rows are written
 * under it), and PostgreSQL keeps at most PGPROC_MAX_CACHED_SUBXIDS of them
 * per transaction where other sessions' snapshots find them: one more
 * marks this transaction's cache overflowed, and while it runs every
 * snapshot taken anywhere looks subtransactions up in pg_subtrans.  So a
 * transaction of many statements (or a COPY of many buffers) leaves its
 * later events to the workers once its cache is full; once it overflowed
 * anyway (the session's own savepoints), one more costs nothing.  Best
 * effort: a transform whose function writes in an exception block takes
 * more ids than the one counted here.
 */
static bool
subxact_cache_has_room(void)
{
	return MyProc->subxidStatus.overflowed ||
		MyProc->subxidStatus.count < PGPROC_MAX_CACHED_SUBXIDS;
}

/*
 * Does the writer leave all it would apply to the workers: the staging for
 * the stream's producers (the stream is pinned, from then on), and no
 * transform into a table?  Then it applies nothing, and sends its events
 * as a writer that applies nothing does, a record at a time: the worker
 * stages them while it goes on.
 */
static bool
leaves_all(Oid stream)
{
	return is_pinned(stream) && (applies & WRITER_APPLIES_TABLES) == 0;
}

/*
 * Hand events (the nevents events of stream, len bytes from payload) on: the
 * writer's own apply first, when it applies the stream's transforms into
 * tables, then to workers in records of at most EVENT_BUFFER_SIZE (an
 * event larger goes alone), the last one with flags.  first_subxact: the
 * earliest subtransaction that wrote one of them; the writer applies them
 * only from it or an earlier one (see event_buf_first_subxact).  Returns
 * the worker of the last record, or -1 when none was sent.  With
 * from_buffer (payload is the buffer's unsent events), each record sent
 * leaves the buffer at once.
 */
static int
dispatch_events(Oid stream, uint32 nevents, const char *payload, Size len, uint16 flags,
				SubTransactionId first_subxact, bool from_buffer)
{
	const char *start = payload;
	const char *p = payload;
	const char *end = payload + len;
	uint32		n = 0;
	int			slotno = -1;

	if (applies != WRITER_APPLIES_NOTHING && applies_stream == stream && !leaves_all(stream) &&
		first_subxact >= GetCurrentSubTransactionId() && subxact_cache_has_room())
	{
		WriterApplies applied = apply_own_events(stream, payload, nevents);

		/* (what it did not apply goes unflagged: the workers apply it) */
		if (applied & WRITER_APPLIES_ALL)
			return -1;
		if (applied & WRITER_APPLIES_TABLES)
			flags |= STREAM_FLAG_TABLES_APPLIED;
		if (applied & WRITER_APPLIES_SINKS)
			flags |= STREAM_FLAG_SINKS_STAGED;
	}
	/* a producer's events left to the workers: to one, in order */
	if (applies_stream == stream && (applies & WRITER_APPLIES_SINKS) &&
		!(flags & STREAM_FLAG_SINKS_STAGED))
		pin(stream);
	while (p < end)
	{
		Size		size = stream_event_size_of(p);

		if (n > 0 && (p - start) + size > EVENT_BUFFER_SIZE)
		{
			slotno = next_record_slot(stream);
			send_record(slotno, stream, n, start, p - start,
						flags & ~(STREAM_FLAG_COMMIT | STREAM_FLAG_ASYNC | STREAM_FLAG_LAST));
			if (from_buffer)
			{
				event_buf_start += p - start;
				event_buf_count -= n;
			}
			start = p;
			n = 0;
		}
		p += size;
		n++;
	}
	slotno = next_record_slot(stream);
	send_record(slotno, stream, n, start, p - start, flags);
	return slotno;
}

/* Send the buffered events (if any); returns the last record's worker or -1. */
static int
flush_event_buffer(uint16 flags)
{
	int			slotno;

	if (event_buf_count == 0)
		return -1;
	slotno = dispatch_events(event_buf_stream, event_buf_count, event_buf + event_buf_start,
							 event_buf_used - event_buf_start, flags, event_buf_first_subxact,
							 true);
	event_buf_start = 0;
	event_buf_used = 0;
	event_buf_count = 0;
	event_buf_first_subxact = InvalidSubTransactionId;
	return slotno;
}

/*
 * At commit: send the buffered events flagged with flags, and a record of
 * no events to every other worker that got records of this transaction,
 * flagged COMMIT when flags are (it waits for them).  Every worker then has
 * a last record of the transaction, flagged LAST too when it is tracked.
 */
static void
send_last_records(uint16 flags)
{
	int			last;

	/* (a record sent now is QUEUED in async mode: send_record) */
	if (xact_queued || stream_ext_commit_mode == STREAM_COMMIT_ASYNC)
		flags |= STREAM_FLAG_LAST;
	last = flush_event_buffer(flags);
	flags &= STREAM_FLAG_COMMIT | STREAM_FLAG_LAST;
	if (flags == 0)
		return;
	for (int i = 0; i < stream_ext_workers_per_database; i++)
	{
		int			slotno = stream_worker_slot(xact_home_slot, i);

		if ((xact_workers_used & (UINT64CONST(1) << i)) && slotno != last)
			send_record(slotno, InvalidOid, 0, NULL, 0, flags);
	}
}

/*
 * Sync commit: flush, tell every worker that got records of this
 * transaction that we wait, and wait for all of them.
 */
static void
flush_and_wait(void)
{
	int			n = stream_ext_workers_per_database;

	send_last_records(STREAM_FLAG_COMMIT);
	for (int i = 0; i < n; i++)
	{
		if (xact_workers_used & (UINT64CONST(1) << i))
			stream_ack_wait(stream_worker_slot(xact_home_slot, i), xact_seq);
	}
}

static void
reset_xact_state(void)
{
	event_buf_start = 0;
	event_buf_used = 0;
	event_buf_count = 0;
	event_buf_stream = InvalidOid;
	event_buf_first_subxact = InvalidSubTransactionId;
	applies_stream = InvalidOid;
	applies = WRITER_APPLIES_NOTHING;
	xact_active = false;
	if (xact_holds_group)
		stream_writer_leave_group(xact_home_slot);
	xact_holds_group = false;
	xact_workers_used = 0;
	xact_queued = false;
	xact_untracked = false;
	xact_filled_buffer = false;
	list_free(pinned);
	pinned = NIL;
}

static void
stream_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (!xact_active)
				break;

			/*
			 * A producer's events left to a worker wait for it in either
			 * mode (the writer stages them itself in async mode: its
			 * commit makes them durable; the last flush may still leave
			 * some), and so do records sent untracked (above)
			 */
			if (stream_ext_commit_mode != STREAM_COMMIT_SYNC && pinned == NIL && !xact_untracked)
				send_last_records(STREAM_FLAG_ASYNC);
			else
			{
				if (stream_ext_commit_mode != STREAM_COMMIT_SYNC)
					flush_event_buffer(STREAM_FLAG_ASYNC);
				stream_commit_wait_begin();
				flush_and_wait();
				stream_commit_wait_end();

				/*
				 * This transaction may have written no WAL itself, and then
				 * PostgreSQL would not flush its commit record.  Flushing
				 * it also flushes the worker's commit of our deltas, which
				 * precedes it in the WAL.
				 */
				if (synchronous_commit > SYNCHRONOUS_COMMIT_OFF)
					ForceSyncCommit();
			}
			reset_xact_state();
			committing_slotno = xact_home_slot;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* Our deltas can be merged now: tell the combiner. */
			if (committing_slotno >= 0)
				stream_note_mergeable(committing_slotno);
			else if (finishing_prepared)
				stream_note_mergeable_in_database(MyDatabaseId);
			committing_slotno = -1;
			finishing_prepared = false;
			reset_xact_state();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			stream_writer_wait_done();	/* an error may have ended a wait */
			stream_commit_wait_end();
			committing_slotno = -1;
			finishing_prepared = false;
			reset_xact_state();
			break;
		case XACT_EVENT_PREPARE:
			committing_slotno = -1;
			reset_xact_state();
			break;
		default:
			break;
	}
}

/* A subtransaction's error may have ended a wait (a cancel caught by it). */
static void
stream_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		stream_writer_wait_done();
}

void
stream_insert_init(void)
{
	RegisterXactCallback(stream_xact_callback, NULL);
	RegisterSubXactCallback(stream_subxact_callback, NULL);
}

stream_write_admit_hook_type stream_write_admit_hook = NULL;

/* set in stream_ext's own processes, which never write into a stream by SQL */
static bool writes_refused = false;

/*
 * Refuse INSERT and COPY into streams in this process: a batch worker, the
 * combiner, a Kafka worker.  A view's expressions run there; a write of
 * theirs into a stream would wait at commit for a worker, maybe this one.
 */
void
stream_refuse_writes_in_this_process(void)
{
	writes_refused = true;
}

/* A write into rel from the code of the writer's own apply (in_own_apply) */
static void
refuse_write_in_own_apply(Relation rel)
{
	if (in_own_apply)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write into stream \"%s\" from a transform's code",
						RelationGetRelationName(rel)),
				 errdetail("A continuous view's expressions run over events that are being sent to the workers."),
				 errhint("Hand rows to another stream with a transform: WITH (continuous, output = 'stream').")));
}

/*
 * Before a statement writes into rel: a change stream takes no events but
 * its view's changes; then the admission hook, if any.
 */
void
stream_admit_writer(Relation rel)
{
	char	   *view = stream_changes_of(RelationGetRelid(rel));

	if (writes_refused)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write into stream \"%s\" from a stream_ext worker",
						RelationGetRelationName(rel)),
				 errdetail("A continuous view's expressions run in the workers, which would wait for themselves."),
				 errhint("Hand rows to another stream with a transform: WITH (continuous, output = 'stream').")));
	refuse_write_in_own_apply(rel);
	if (view != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write into change stream \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Its events are the changes of continuous view %s, which stream_ext emits.",
						   view)));
	if (stream_write_admit_hook)
		stream_write_admit_hook(rel);

	/*
	 * What the writer applies itself is decided again for each statement,
	 * which sees the views created before it started.  (Events left by a
	 * failed statement go first.)
	 */
	if (event_buf_count > 0 && applies != WRITER_APPLIES_NOTHING)
		flush_event_buffer(0);
	applies_stream = InvalidOid;
}

/* Attribute number of the stream's arrival_timestamp column, or 0. */
int
stream_arrival_attno(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && att->atttypid == TIMESTAMPTZOID &&
			strcmp(NameStr(att->attname), "arrival_timestamp") == 0)
			return i + 1;
	}
	return 0;
}

/*
 * This transaction runs COMMIT PREPARED: a prepared writer's deltas become
 * mergeable when it commits, which the writer's session, gone or busy, no
 * longer tells the combiner (it would find them at its next cleanup, seconds
 * later).
 */
void
stream_insert_finishing_prepared(void)
{
	finishing_prepared = true;
}

/*
 * The attribute numbers of the columns of rel (a table or a stream) that a
 * transform into it fills, in order: every column but dropped and generated
 * ones and a stream's arrival_timestamp.
 */
List *
stream_output_columns(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			arrival = stream_is_stream_relation(RelationGetRelid(rel)) ?
		stream_arrival_attno(rel) : 0;
	List	   *attnos = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated != '\0' || i + 1 == arrival)
			continue;
		attnos = lappend_int(attnos, i + 1);
	}
	return attnos;
}

static void
begin_stream_xact(void)
{
	if (event_buf == NULL)
	{
		event_buf = MemoryContextAlloc(TopMemoryContext, EVENT_BUFFER_SIZE);
		event_buf_size = EVENT_BUFFER_SIZE;
	}
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot insert into a stream in a parallel worker")));
	xact_home_slot = stream_route_first_record();
	xact_holds_group = true;
	xact_workers_used = 0;
	xact_seq = stream_ack_next_seq();
	xact_active = true;
}

/* The arrival time of the next event (read once per ARRIVAL_CLOCK_EVENTS) */
TimestampTz
stream_arrival_now(void)
{
	TimestampTz stmt = GetCurrentStatementStartTimestamp();

	if (stmt != arrival_statement || ++arrival_uses >= ARRIVAL_CLOCK_EVENTS)
	{
		arrival_now = GetCurrentTimestamp();
		arrival_statement = stmt;
		arrival_uses = 0;
	}
	return arrival_now;
}

/*
 * Decide what the writer applies itself of the stream's views, for this
 * statement, and make the buffer as large as that needs.
 */
static void
decide_applies(Oid stream)
{
	applies_stream = stream;
	applies = stream_writer_applies_hook ? stream_writer_applies_hook(stream) :
		WRITER_APPLIES_NOTHING;
	if (applies != WRITER_APPLIES_NOTHING && event_buf_size < APPLY_BUFFER_SIZE)
	{
		event_buf = repalloc(event_buf, APPLY_BUFFER_SIZE);
		event_buf_size = APPLY_BUFFER_SIZE;
	}
}

/* The bytes of events the buffer takes for the stream being written */
static Size
buffer_capacity(void)
{
	return applies != WRITER_APPLIES_NOTHING && !leaves_all(applies_stream) ?
		APPLY_BUFFER_SIZE : EVENT_BUFFER_SIZE;
}

/*
 * Reserve room for an event of tuple_len bytes (starting the stream
 * transaction with the first event) and return where its StreamEventHeader
 * goes.  An event too large for the buffer gets a palloc'd
 * area of its own (*oversized), sent as a record by itself.
 */
static char *
reserve_event(Relation rel, Size tuple_len, char **oversized)
{
	Size		needed = stream_event_size(tuple_len);
	Oid			stream = RelationGetRelid(rel);
	char	   *dest;

	refuse_write_in_own_apply(rel);
	if (!xact_active)
		begin_stream_xact();
	if (event_buf_count > 0 &&
		(event_buf_stream != stream || event_buf_used + needed > buffer_capacity()))
	{
		xact_filled_buffer |= event_buf_stream == stream && applies != WRITER_APPLIES_NOTHING;
		flush_event_buffer(0);
	}
	event_buf_stream = stream;
	if (applies_stream != stream)
		decide_applies(stream);

	/*
	 * Whether or not the writer applies the stream's transforms itself: the
	 * event may have to go to a worker (another view, a failed apply).
	 */
	stream_check_event_size(tuple_len, stream);
	*oversized = NULL;
	if (needed > buffer_capacity())
	{
		*oversized = palloc0(needed);
		dest = *oversized;
	}
	else
		dest = event_buf + event_buf_used;
	stream_event_start(dest, tuple_len);
	return dest;
}

static void
commit_event(Relation rel, char *dest, char *oversized)
{
	HeapTupleHeader td = stream_event_tuple(dest);
	Size		needed = stream_event_size_of(dest);

	stream_event_set_writer(td, GetCurrentTransactionId());

	if (oversized != NULL)
	{
		dispatch_events(RelationGetRelid(rel), 1, oversized, needed, 0,
						GetCurrentSubTransactionId(), false);
		pfree(oversized);
		return;
	}
	if (event_buf_count == 0)
		event_buf_first_subxact = GetCurrentSubTransactionId();
	event_buf_used += needed;
	event_buf_count++;
}

/*
 * Fast path: the executor has already formed the row as a heap tuple (it
 * does, to compute the generated arrival_timestamp column) and that column
 * is the last one and NULL.  Copy the tuple and append the arrival time,
 * which goes to *stamped.  Returns false when the slot does not qualify.
 */
static bool
insert_formed_tuple(Relation rel, TupleTableSlot *slot, int arrival_attno,
					TimestampTz *stamped)
{
	HeapTuple	src;
	Size		data_len;
	Size		ts_off;
	Size		tuple_len;
	char	   *dest;
	char	   *oversized;
	HeapTupleHeader td;
	TimestampTz now;

	if (!TTS_IS_HEAPTUPLE(slot) || TTS_EMPTY(slot) ||
		arrival_attno != RelationGetDescr(rel)->natts)
		return false;
	src = ((HeapTupleTableSlot *) slot)->tuple;
	if (src == NULL || HeapTupleHasExternal(src) || !HeapTupleHasNulls(src) ||
		HeapTupleHeaderGetNatts(src->t_data) != arrival_attno ||
		!att_isnull(arrival_attno - 1, src->t_data->t_bits))
		return false;

	data_len = src->t_len - src->t_data->t_hoff;
	ts_off = TYPEALIGN(ALIGNOF_DOUBLE, data_len);
	tuple_len = src->t_data->t_hoff + ts_off + sizeof(TimestampTz);

	dest = reserve_event(rel, tuple_len, &oversized);
	td = stream_event_tuple(dest);
	memcpy(td, src->t_data, src->t_len);
	memset((char *) td + src->t_len, 0, ts_off - data_len);
	now = stream_arrival_now();
	memcpy((char *) td + td->t_hoff + ts_off, &now, sizeof(TimestampTz));
	td->t_bits[(arrival_attno - 1) >> 3] |= (1 << ((arrival_attno - 1) & 7));
	commit_event(rel, dest, oversized);
	*stamped = now;
	return true;
}

/*
 * Form one event from the slot (stamping its arrival time) and buffer it.
 * Returns the arrival time given to the event (0 for a stream without the
 * column).
 */
TimestampTz
stream_insert_event(Relation rel, TupleTableSlot *slot, int arrival_attno)
{
	TimestampTz stamped = 0;

	if (insert_formed_tuple(rel, slot, arrival_attno, &stamped))
		return stamped;

	slot_getallattrs(slot);
	stream_insert_values(rel, slot->tts_values, slot->tts_isnull, arrival_attno);
	return arrival_attno > 0 ?
		DatumGetTimestampTz(slot->tts_values[arrival_attno - 1]) : 0;
}

/*
 * Form one event from column values (stamping its arrival time, which may
 * modify values) and buffer it.
 */
void
stream_insert_values(Relation rel, Datum *values, bool *isnull, int arrival_attno)
{
	TupleDesc	desc = RelationGetDescr(rel);
	EventLayout layout;
	char	   *dest;
	char	   *oversized;
	Datum	   *detoasted = NULL;
	Datum	   *event_values = values;

	if (arrival_attno > 0)
	{
		values[arrival_attno - 1] = TimestampTzGetDatum(stream_arrival_now());
		isnull[arrival_attno - 1] = false;
	}
	/*
	 * Values stored out of line are copied into the event whole; their
	 * detoasted copies go once it is formed (a statement of many large
	 * values would otherwise keep them all until its end).
	 */
	for (int i = 0; i < desc->natts; i++)
		if (!isnull[i] && TupleDescAttr(desc, i)->attlen == -1 &&
			VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
		{
			if (detoasted == NULL)
			{
				detoasted = palloc(sizeof(Datum) * desc->natts);
				memcpy(detoasted, values, sizeof(Datum) * desc->natts);
			}
			detoasted[i] = PointerGetDatum(detoast_external_attr((struct varlena *)
																 DatumGetPointer(values[i])));
		}
	if (detoasted != NULL)
		event_values = detoasted;

	layout = stream_event_layout(desc, event_values, isnull);
	dest = reserve_event(rel, layout.len, &oversized);
	stream_event_fill(stream_event_tuple(dest), layout, desc, event_values, isnull);
	commit_event(rel, dest, oversized);
	if (detoasted != NULL)
	{
		for (int i = 0; i < desc->natts; i++)
			if (detoasted[i] != values[i])
				pfree(DatumGetPointer(detoasted[i]));
		pfree(detoasted);
	}
}

/*
 * End of an INSERT or COPY statement.  In async mode the buffered events of
 * a transaction block go to the worker now, so that they are applied within
 * the flush interval (outside a block the commit follows, and sends them
 * with the transaction's last record).  Transforms the writer applies
 * itself are applied now, so that the statement's rows are in their tables
 * for the rest of the transaction.
 */
void
stream_insert_statement_done(void)
{
	/*
	 * The next statement reads the clock again, also when its start time is
	 * this one's (statements of a function, a DO block or a procedure)
	 */
	arrival_statement = 0;
	if (!xact_active)
		return;
	if (stream_ext_commit_mode == STREAM_COMMIT_ASYNC)
	{
		if (IsTransactionBlock() || applies != WRITER_APPLIES_NOTHING)
			flush_event_buffer(STREAM_FLAG_ASYNC);
	}
	else if (applies != WRITER_APPLIES_NOTHING)
		flush_event_buffer(0);
}

/*
 * Has this transaction filled its buffer of events (for the writer's own
 * apply, APPLY_BUFFER_SIZE): does it write many?
 */
bool
stream_writer_filled_buffer(void)
{
	return xact_filled_buffer;
}

/*
 * Did this transaction send events of stream to the workers for its Kafka
 * producers (their records then go to its home worker)?  Then the workers
 * stage its later events too, in order.
 */
bool
stream_writer_left_sinks(Oid stream)
{
	return is_pinned(stream);
}
