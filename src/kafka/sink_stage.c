/*
 * sink_stage.c
 *	  A writer stages its own events for its stream's Kafka producers.
 *
 * Through the staging view (a row-keeping continuous view of the stream,
 * README "Producers"), each event costs a delta row a worker writes and the
 * producer deletes again before it formats the event (sink_sql.c) and puts
 * the batch in the outbox.  A writer of the stream (INSERT, COPY:
 * stream/insert.c) can instead format its own events (sink_format.c) and
 * put them in the outbox itself, one row per producer for each buffer of
 * events it applies (about 4 MB of events), in its own transaction: the
 * messages then commit, or roll back, with the events, as the staging
 * view's rows would, and nothing is written per event.  The records that
 * carry the events on to the workers for the stream's other views are
 * flagged (STREAM_FLAG_SINKS_STAGED) so that the workers skip the staging
 * views; a stream with no other view sends the workers nothing.
 *
 * The writer stages only when it can for every producer of the stream
 * (each staging view's columns formatted here exactly as the statement
 * would, the workers' settings published, the producer's role allowed to
 * read the stream), in a subtransaction; when that fails, the events go on
 * unflagged and the workers stage them.
 *
 * A transaction that fills the writer's buffer (it writes many events) into
 * a stream with no view but its producers' (and transforms into tables)
 * leaves the staging to its home worker from then on, which formats them
 * while the writer goes on parsing.  A worker (worker/apply.c's hook)
 * stages the events of its batch that their writers did not, the same way,
 * each outbox row tagged with its events' writer (NULL for events of its
 * own transaction: a Kafka consumer's): the producer sends a tagged row
 * only once that writer committed.  Only what the worker cannot stage
 * either goes through the staging view.
 *
 * No user code runs: formatting calls only built-in output functions.
 * Reading the producers' catalog rows and inserting into the outbox run
 * as the extension, whose tables they are.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "agg/combine.h"
#include "catalog/catalog.h"
#include "guc.h"
#include "kafka/drop_lock.h"
#include "kafka/outbox.h"
#include "kafka/process.h"
#include "kafka/sink_format.h"
#include "kafka/sink_stage.h"
#include "stream/insert.h"
#include "worker/apply.h"
#include "worker/settings.h"
#include "worker/view_cache.h"

static stream_writer_applies_hook_type prev_applies_hook = NULL;
static stream_writer_apply_hook_type prev_apply_hook = NULL;

/* What views a stream has, for what the writer applies */
typedef struct StreamViews
{
	List	   *sinks;			/* CachedView: staging views */
	bool		tables;			/* transforms into tables */
	bool		others;
} StreamViews;

static void
stream_views(Oid stream, StreamViews *sv)
{
	/* (the view cache reads the catalog with the extension's search_path) */
	int			nestlevel = view_cache_is_valid() ? 0 : stream_pin_internal_search_path();
	ListCell   *lc;

	memset(sv, 0, sizeof(StreamViews));
	foreach(lc, view_cache_views_of_stream(stream))
	{
		CachedView *view = lfirst(lc);

		if (view->sink_id > 0)
			sv->sinks = lappend(sv->sinks, view);
		else if (OidIsValid(view->output_table))
			sv->tables = true;
		else
			sv->others = true;
	}
	if (nestlevel > 0)
		AtEOXact_GUC(false, nestlevel);
}

/*
 * Compiled formats, one per producer, kept while its staging view and its
 * format options stay the same.
 */
typedef struct KnownFormat
{
	int			producer_id;
	Oid			staging;
	char	   *options;		/* its catalog row's format columns, joined */
	MemoryContext cxt;
	SinkFormat *format;			/* NULL: the workers stage its events */
} KnownFormat;

static List *known_formats = NIL;

static SinkFormat *
format_of(CachedView *staging, const char *options_text, const KafkaFormatOptions *options)
{
	ListCell   *lc;
	KnownFormat *known;
	MemoryContext old;

	foreach(lc, known_formats)
	{
		known = lfirst(lc);
		if (known->producer_id != staging->sink_id)
			continue;
		if (known->staging == staging->view && strcmp(known->options, options_text) == 0)
			return known->format;
		MemoryContextDelete(known->cxt);
		known_formats = foreach_delete_current(known_formats, lc);
		pfree(known);
		break;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	known = palloc0(sizeof(KnownFormat));
	known->producer_id = staging->sink_id;
	known->staging = staging->view;
	known->cxt = AllocSetContextCreate(TopMemoryContext, "stream_ext sink format",
									   ALLOCSET_SMALL_SIZES);
	known->options = MemoryContextStrdup(known->cxt, options_text);
	known_formats = lappend(known_formats, known);
	MemoryContextSwitchTo(old);
	known->format = kafka_sink_format_compile(staging->stream, staging->query, options,
											  known->cxt);
	return known->format;
}

/* Is producer id one of sinks'? */
static bool
has_sink(List *sinks, int id)
{
	ListCell   *lc;

	foreach(lc, sinks)
		if (((CachedView *) lfirst(lc))->sink_id == id)
			return true;
	return false;
}

/* One staging of a buffer of events, for every producer of their stream */
typedef struct SinkStage
{
	Oid			stream;
	List	   *sinks;			/* CachedView */
	HeapTupleData *tuples;
	int			nevents;
	bool		staged;			/* set when done */
} SinkStage;

/*
 * The formats of the stage's producers, in the order of stage->sinks, from
 * their catalog rows (caller is connected to SPI); NIL when one cannot be
 * formatted here, or when the stream has a producer the writer's list of
 * views does not know yet (created since its view cache was loaded): the
 * workers, which skip every staging view of the stream for the events the
 * writer staged, then stage these for all.  The producers are read as of
 * now, not as of the statement's snapshot.
 */
static List *
formats_of_producers(SinkStage *stage)
{
	static SPIPlanPtr producers_plan = NULL;	/* read once per statement: planned once */
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(stage->stream)};
	List	   *formats = NIL;
	ListCell   *lc;
	int			rc;

	/*
	 * A drop of a producer waits for the writers that hold its lock, and
	 * turns new ones away (drop_lock.c): taken before the producers are
	 * read, so a drop that committed meanwhile is seen below.
	 */
	foreach(lc, stage->sinks)
		if (!kafka_producer_lock_for_staging(((CachedView *) lfirst(lc))->sink_id))
			return NIL;
	if (producers_plan == NULL)
		producers_plan = stream_prepare_kept_plan("SELECT id, concat(quote_nullable(format), ',', "
												  "quote_nullable(format_options->>'delimiter'), ',', "
												  "quote_nullable(format_options->>'quote'), ',', "
												  "quote_nullable(format_options->>'null'), ',', "
												  "quote_nullable(key_column)), "
												  "format, format_options->>'delimiter', "
												  "format_options->>'quote', format_options->>'null', key_column "
												  "FROM stream_ext_internal.kafka_producers WHERE stream = $1",
												  1, argtypes);
	PushActiveSnapshot(GetLatestSnapshot());
	rc = SPI_execute_plan(producers_plan, args, NULL, true, 0);
	PopActiveSnapshot();
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the Kafka producers of stream %u", stage->stream);
	for (uint64 r = 0; r < SPI_processed; r++)
		if (!has_sink(stage->sinks, atoi(kafka_spi_text(r, 1))))
			return NIL;
	foreach(lc, stage->sinks)
	{
		CachedView *staging = lfirst(lc);
		SinkFormat *format = NULL;

		/*
		 * Events written while the producer's role may not read the stream
		 * are not its to send: its staging view sets them aside (the
		 * workers' run fails as that role), as it does any view's.
		 */
		if (pg_class_aclcheck(stage->stream, staging->owner, ACL_SELECT) != ACLCHECK_OK)
			return NIL;
		for (uint64 r = 0; r < SPI_processed && format == NULL; r++)
		{
			KafkaFormatOptions options;

			if (atoi(kafka_spi_text(r, 1)) != staging->sink_id)
				continue;
			kafka_sink_format_options(&options, kafka_spi_text(r, 3), kafka_spi_text(r, 4),
									  kafka_spi_text(r, 5), kafka_spi_text(r, 6),
									  kafka_spi_text(r, 7));
			format = format_of(staging, kafka_spi_text(r, 2), &options);
			if (format == NULL)
				return NIL;
		}
		if (format == NULL)
			return NIL;			/* its row is gone: being dropped */
		formats = lappend(formats, format);
	}
	return formats;
}

/*
 * The transaction whose commit an event's message waits for: none when the
 * event is our own (current (sub)transaction's: its outbox row commits with
 * it), else its writer's, whose events a worker stages.
 */
static FullTransactionId
writer_of(TransactionId xmin)
{
	if (TransactionIdIsCurrentTransactionId(xmin))
		return InvalidFullTransactionId;
	return stream_recent_full_xid(xmin);
}

/*
 * The messages of the stage's events for producer id: each event's columns
 * (desc: the stream's) formatted, then put in the outbox in rows
 * (outbox.c), each row's events of one writer.
 */
static void
stage_for_producer(SinkStage *stage, TupleDesc desc, int id, SinkFormat *format)
{
	OutboxRowBuilder *builder = kafka_outbox_builder();
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);
	StringInfoData key;
	StringInfoData message;
	TransactionId xmin = InvalidTransactionId;
	FullTransactionId writer = InvalidFullTransactionId;

	initStringInfo(&key);
	initStringInfo(&message);
	for (int i = 0; i < stage->nevents; i++)
	{
		TransactionId event_xmin = HeapTupleHeaderGetRawXmin(stage->tuples[i].t_data);
		bool		has_key;

		if (i == 0 || event_xmin != xmin)
		{
			FullTransactionId next = writer_of(event_xmin);

			if (builder->n > 0 && !FullTransactionIdEquals(next, writer))
				(void) kafka_outbox_builder_insert(builder, id, writer);
			writer = next;
			xmin = event_xmin;
		}
		heap_deform_tuple(&stage->tuples[i], desc, values, isnull);
		has_key = kafka_sink_format_event(format, values, isnull, &key, &message);
		kafka_outbox_builder_add(builder, has_key ? key.data : NULL, key.len, message.data,
								 message.len);
		if (kafka_outbox_builder_full(builder))
			(void) kafka_outbox_builder_insert(builder, id, writer);
	}
	if (builder->n > 0)
		(void) kafka_outbox_builder_insert(builder, id, writer);
	pfree(key.data);
	pfree(message.data);
	pfree(values);
	pfree(isnull);
}

/* In a subtransaction: stage the events for every producer, or for none. */
static void
stage_events(void *arg)
{
	SinkStage  *stage = arg;
	StreamRunAs as;
	List	   *formats;

	/* the values' text as the producer's worker would write it */
	if (!stream_adopt_worker_settings())
		return;
	stream_begin_as_extension(&as);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	formats = formats_of_producers(stage);
	if (formats != NIL)
	{
		Relation	rel = relation_open(stage->stream, NoLock);	/* we write into it */
		ListCell   *ls;
		ListCell   *lf;

		forboth(ls, stage->sinks, lf, formats)
			stage_for_producer(stage, RelationGetDescr(rel),
							   ((CachedView *) lfirst(ls))->sink_id, lfirst(lf));
		relation_close(rel, NoLock);
		stage->staged = true;
	}
	SPI_finish();
	stream_end_as_extension(&as);
}

/* Stage the events in a subtransaction; false when they were not. */
static bool
stage_in_subtransaction(Oid stream, List *sinks, HeapTupleData *tuples, int nevents)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "stream_ext sink stage",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SinkStage	stage = {stream, sinks, tuples, nevents, false};
	int			nestlevel = NewGUCNestLevel();
	ErrorData  *edata;

	/* the catalog as the statement sees it so far (at commit: as now) */
	if (ActiveSnapshotSet())
		PushCopiedSnapshot(GetActiveSnapshot());
	else
		PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	edata = stream_try_in_subtransaction(stage_events, &stage);
	AtEOXact_GUC(false, nestlevel);
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	if (edata != NULL)
	{
		/*
		 * A cancel, a timeout, a full disk fail the statement as anywhere;
		 * a deadlock, a serialization failure or a lock not available (a
		 * producer being dropped) only leave the events to the workers.
		 */
		if (stream_error_is_transient(edata->sqlerrcode) &&
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_TRANSACTION_ROLLBACK &&
			edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(edata);
		ereport(DEBUG1,
				(errmsg_internal("stream_ext: the writer's staging for Kafka producers failed, the workers stage its events: %s",
								 edata->message)));
		FreeErrorData(edata);
		stage.staged = false;
	}
	MemoryContextDelete(cxt);
	return stage.staged;
}

/* stream_writer_applies_hook: also the producers' staging, if any */
static WriterApplies
sink_applies(Oid stream)
{
	WriterApplies applies = prev_applies_hook ? prev_applies_hook(stream) :
		WRITER_APPLIES_NOTHING;
	StreamViews sv;

	stream_views(stream, &sv);
	if (sv.sinks != NIL)
		applies |= WRITER_APPLIES_SINKS;
	list_free(sv.sinks);
	return applies;
}

/*
 * stream_writer_apply_hook: stage the events for the producers, then apply
 * the transforms into tables (writer_apply.c); each part is skipped by
 * the workers only if it was done.  A transaction that filled its buffer
 * (it writes many events) into a stream whose views are its producers' (and
 * transforms into tables), in the default commit mode (whose COMMIT waits
 * for the workers), leaves the staging to a worker (sink_stage_in_worker),
 * which formats them while the writer goes on; and so does, from then on,
 * a transaction that sent some of the stream's events to the workers to
 * stage, so that they stage all of them in order.
 */
static WriterApplies
sink_apply(Oid stream, HeapTupleData *tuples, int nevents)
{
	WriterApplies applied = WRITER_APPLIES_NOTHING;
	StreamViews sv;
	bool		staged = false;
	bool		leave;
	int			nsinks;

	/* views created since the transaction's last lock: the cache reloads */
	AcceptInvalidationMessages();
	stream_views(stream, &sv);
	nsinks = list_length(sv.sinks);
	leave = nsinks > 0 &&
		(stream_writer_left_sinks(stream) ||
		 (!sv.others && stream_writer_filled_buffer() &&
		  stream_ext_commit_mode == STREAM_COMMIT_SYNC));
	if (nsinks > 0 && !leave)
		staged = stage_in_subtransaction(stream, sv.sinks, tuples, nevents);
	list_free(sv.sinks);		/* (the views may be reloaded below) */
	if (sv.tables && prev_apply_hook)
		applied = prev_apply_hook(stream, tuples, nevents);
	if (leave)
		return applied;			/* unflagged: to one worker (stream/insert.c) */
	if (nsinks == 0)
		return applied;
	if (staged)
	{
		applied |= WRITER_APPLIES_SINKS;
		/* no other view, by the list as it is now */
		stream_views(stream, &sv);
		if (!sv.others && list_length(sv.sinks) == nsinks &&
			(!sv.tables || (applied & WRITER_APPLIES_TABLES)))
			applied |= WRITER_APPLIES_ALL;
		list_free(sv.sinks);
	}
	return applied;
}

/*
 * stream_worker_stage_sinks_hook: a worker stages the events of its batch
 * that their writers left to it (or could not stage), as a writer does,
 * each outbox row tagged with its events' writer: the producer takes it
 * once that transaction committed (producer.c); the combiner clears the
 * tag, or deletes the row, once the writer ended (outbox_settle.c).
 */
static bool
sink_stage_in_worker(StreamBatchEvents *events, List *sinks)
{
	return stage_in_subtransaction(events->stream, sinks, events->events, events->nevents);
}

/* From _PG_init, after worker/writer_apply.c's */
void
kafka_sink_stage_init(void)
{
	stream_worker_stage_sinks_hook = sink_stage_in_worker;
	prev_applies_hook = stream_writer_applies_hook;
	stream_writer_applies_hook = sink_applies;
	prev_apply_hook = stream_writer_apply_hook;
	stream_writer_apply_hook = sink_apply;
}
