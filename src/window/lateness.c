/*
 * lateness.c
 *	  Late events: an event of an event-time view is late when its time is
 *	  more than allowed_lateness before the highest event time among the
 *	  events of committed transactions the view has applied (max_event_time).
 *	  The watermark is max_event_time minus allowed_lateness; a window that
 *	  ends before it is final: every event that could still fall in it would
 *	  be late.
 *
 * A transaction's events are judged against what other transactions
 * committed before, never against each other: one transaction in time
 * order has no late events, however its records are spread over workers
 * and batches.  So a batch records the highest time of each writer in
 * watermark_pending, and the first batch of the view after the writer
 * committed folds it into view_watermarks (an aborted writer's is dropped).
 *
 * Late events are not applied to the view: they are counted per writer in
 * watermark_pending, folded into view_watermarks once the writer committed
 * (an aborted writer's late events count for nothing), and kept in
 * late_events when the view says keep_late, with their writer: those of an
 * aborted writer are deleted when it is folded, and not shown before.
 * The worker that applies a batch to a view locks the view's watermark row
 * until it commits, so batches of one view are judged one after another.
 *
 * In async mode a writer may commit before the workers applied all of its
 * records (ipc/record.h: they are flagged QUEUED).  Its highest time is not
 * folded before they all are, or its later events would be judged against
 * its own: a pending row of such a writer names it (queued_writer), and a
 * batch with records of it that may not be all of them (its first and only
 * LAST record not both in the batch) counts the LAST records it applied in
 * queued_writers (each worker the writer sent to got one, the last of its
 * records there; each says how many workers got one).  The row goes once
 * all are counted; until then the writer's pending rows stay.  Rows of
 * rings a crash lost (rings: when the rings were made) count for nothing:
 * the combiner's settling job deletes them, and those of aborted writers.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "access/transam.h"
#include "utils/xid8.h"

#include "guc.h"
#include "agg/combine.h"
#include "catalog/catalog.h"
#include "ipc/queue.h"
#include "stream/event_text.h"
#include "window/lateness.h"
#include "window/time_expr.h"

PG_FUNCTION_INFO_V1(stream_ext_watermark);

/*
 * max_time - lateness, or -infinity when that is before the first
 * timestamp there is (a lateness of ten thousand years, say): then no event
 * is late, and nothing fails.
 */
static TimestampTz
watermark_of(TimestampTz max_time, Interval *lateness)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile TimestampTz mark = DT_NOBEGIN;

	if (TIMESTAMP_NOT_FINITE(max_time))
		return max_time;
	PG_TRY();
	{
		mark = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													   TimestampTzGetDatum(max_time),
													   IntervalPGetDatum(lateness)));
	}
	PG_CATCH();
	{
		/* timestamp out of range: a pure function's error, nothing to undo */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		mark = DT_NOBEGIN;
	}
	PG_END_TRY();
	return mark;
}

/* stream_ext_internal.watermark(max_event_time, allowed_lateness), for SQL */
Datum
stream_ext_watermark(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(watermark_of(PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_INTERVAL_P(1)));
}

static SPIPlanPtr lock_watermark = NULL;
static SPIPlanPtr lock_watermark_nowait = NULL;
static SPIPlanPtr fold_pending = NULL;
static SPIPlanPtr note_pending = NULL;
static SPIPlanPtr update_watermark = NULL;
static SPIPlanPtr insert_late = NULL;
static SPIPlanPtr count_lasts = NULL;
static SPIPlanPtr forget_counted = NULL;

/* The batch's queued (sub)transactions, sorted by xmin (worker/apply.c) */
static StreamQueuedXmin *queued_xmins = NULL;
static int	nqueued_xmins = 0;

static void
prepare_statements(void)
{
	if (lock_watermark != NULL)
		return;
	lock_watermark = stream_prepare_kept_plan("SELECT max_event_time FROM stream_ext_internal.view_watermarks "
								  "WHERE view_id = $1 FOR UPDATE",
								  1, (Oid[]) {INT4OID});
	lock_watermark_nowait = stream_prepare_kept_plan("SELECT max_event_time FROM stream_ext_internal.view_watermarks "
										 "WHERE view_id = $1 FOR UPDATE NOWAIT",
										 1, (Oid[]) {INT4OID});
	fold_pending = stream_prepare_kept_plan("WITH done AS (DELETE FROM stream_ext_internal.watermark_pending p "
								"WHERE p.view_id = $1 AND (stream_ext_internal.xid_aborted(p.writer_xid) "
								"OR stream_ext_internal.xid_committed(p.writer_xid) AND " STREAM_FOLDABLE("p") ") "
								"RETURNING p.writer_xid, p.max_event_time, p.late_events, "
								"stream_ext_internal.xid_committed(p.writer_xid) AS committed), "
								"forgotten AS (DELETE FROM stream_ext_internal.late_events l USING done d "
								"WHERE l.view_id = $1 AND NOT d.committed AND l.writer_xid = d.writer_xid) "
								"SELECT max(max_event_time) FILTER (WHERE committed), "
								"coalesce(sum(late_events) FILTER (WHERE committed), 0)::int8 FROM done",
								1, (Oid[]) {INT4OID});
	note_pending = stream_prepare_kept_plan("INSERT INTO stream_ext_internal.watermark_pending AS p "
								"(view_id, writer_xid, max_event_time, late_events, queued_writer) "
								"VALUES ($1, $2, $3, $4, $5) "
								"ON CONFLICT (view_id, writer_xid) DO UPDATE "
								"SET max_event_time = greatest(p.max_event_time, excluded.max_event_time), "
								"late_events = p.late_events + excluded.late_events, "
								"queued_writer = coalesce(p.queued_writer, excluded.queued_writer)",
								5, (Oid[]) {INT4OID, XID8OID, TIMESTAMPTZOID, INT8OID, XID8OID});
	update_watermark = stream_prepare_kept_plan("UPDATE stream_ext_internal.view_watermarks "
									"SET max_event_time = coalesce($2, max_event_time), "
									"late_events = late_events + $3 "
									"WHERE view_id = $1",
									3, (Oid[]) {INT4OID, TIMESTAMPTZOID, INT8OID});
	insert_late = stream_prepare_kept_plan("INSERT INTO stream_ext_internal.late_events "
							   "(view_id, event_time, watermark, event, writer_xid) "
							   "VALUES ($1, $2, $3, $4, $5)",
							   5, (Oid[]) {INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, XID8OID});
}

/*
 * Set (NULL: clear) the (sub)transactions of the batch being applied whose
 * writer may have records outside it, sorted by xmin: their pending rows
 * name the writer.  The caller keeps the array until it clears it.
 */
void
stream_lateness_queued_xmins(StreamQueuedXmin *xmins, int n)
{
	queued_xmins = xmins;
	nqueued_xmins = xmins ? n : 0;
}

/* The writer whose events xmin inserted, when it is queued; else invalid */
static TransactionId
queued_writer_of(TransactionId xmin)
{
	int			lo = 0;
	int			hi = nqueued_xmins - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (queued_xmins[mid].xmin == xmin)
			return queued_xmins[mid].top;
		if (queued_xmins[mid].xmin < xmin)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return InvalidTransactionId;
}

/*
 * Count the LAST records a batch applied of queued writers tops (n of
 * them, in the order of their ids, so that workers lock their rows in one
 * order): lasts[i] of them, each saying that last_of[i] workers got one (0
 * when none was in the batch); a writer whose LAST records are all counted
 * is no longer queued.  In the batch's transaction, after its views.
 */
void
stream_lateness_note_queued(const TransactionId *tops, const int32 *lasts, const int32 *last_of,
							int n)
{
	Datum	   *full = palloc(sizeof(Datum) * n);
	Datum	   *l = palloc(sizeof(Datum) * n);
	Datum	   *o = palloc(sizeof(Datum) * n);
	Datum		args[4];
	bool		any_last = false;

	for (int i = 0; i < n; i++)
	{
		full[i] = FullTransactionIdGetDatum(stream_recent_full_xid(tops[i]));
		l[i] = Int32GetDatum(lasts[i]);
		o[i] = Int32GetDatum(last_of[i]);
		any_last |= lasts[i] > 0;
	}
	args[0] = PointerGetDatum(construct_array(full, n, XID8OID, sizeof(FullTransactionId), FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	args[1] = PointerGetDatum(construct_array(l, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(o, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	args[3] = TimestampTzGetDatum(stream_rings_made());

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (count_lasts == NULL)
	{
		count_lasts = stream_prepare_kept_plan("INSERT INTO stream_ext_internal.queued_writers AS q "
											   "(writer, lasts, last_of, rings) "
											   "SELECT u.w, u.l, nullif(u.o, 0), $4 "
											   "FROM unnest($1::xid8[], $2::int4[], $3::int4[]) AS u(w, l, o) "
											   "ON CONFLICT (writer) DO UPDATE "
											   "SET lasts = q.lasts + excluded.lasts, "
											   "last_of = coalesce(excluded.last_of, q.last_of)",
											   4, (Oid[]) {XID8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
											   TIMESTAMPTZOID});
		forget_counted = stream_prepare_kept_plan("DELETE FROM stream_ext_internal.queued_writers "
												  "WHERE writer = ANY ($1) AND lasts >= last_of",
												  1, (Oid[]) {XID8ARRAYOID});
	}
	if (SPI_execute_plan(count_lasts, args, NULL, false, 0) != SPI_OK_INSERT ||
		(any_last && SPI_execute_plan(forget_counted, args, NULL, false, 0) != SPI_OK_DELETE))
		elog(ERROR, "could not count the last records of queued writers");
	SPI_finish();
}

/*
 * An event's time as timestamptz; false when it has none.  A timestamp (or
 * a date, at its midnight) is taken as a time in UTC, whatever the zone: so
 * the order of the watermark's times is the order of the column's values,
 * also across a change of daylight saving time in the server's zone (in
 * which a local 02:50 would come after 03:10 on the day clocks go forward).
 */
static bool
event_time(HeapTuple event, AttrNumber attnum, TupleDesc desc, TimestampTz *time)
{
	bool		isnull;
	Datum		value = heap_getattr(event, attnum, desc, &isnull);
	int			overflow = 0;

	if (isnull)
		return false;
	switch (TupleDescAttr(desc, attnum - 1)->atttypid)
	{
		case TIMESTAMPOID:
			*time = DatumGetTimestamp(value);
			break;
		case DATEOID:
			*time = date2timestamp_opt_overflow(DatumGetDateADT(value), &overflow);
			break;
		default:
			*time = DatumGetTimestampTz(value);
	}

	/*
	 * infinity and -infinity are no time to judge lateness by, like NULL; nor
	 * is a date or timestamp beyond timestamptz's range (an error here would
	 * fail the whole batch, not the one event)
	 */
	return overflow == 0 && !TIMESTAMP_NOT_FINITE(*time);
}

/*
 * The time of each event for window w (has[i] false when it has none),
 * which its stream's lock, taken by the caller, keeps readable.
 */
void
stream_lateness_event_times(WindowSpec *w, StreamBatchEvents *events, TimestampTz *times,
							bool *has)
{
	Relation	stream = table_open(events->stream, AccessShareLock);
	AttrNumber	attnum = stream_window_time_attnum(w, events->stream);

	for (int i = 0; i < events->nevents; i++)
		has[i] = event_time(&events->events[i], attnum, RelationGetDescr(stream), &times[i]);
	table_close(stream, AccessShareLock);
}

typedef struct WriterMax
{
	TransactionId xid;
	TransactionId queued_writer;	/* its writer, when queued */
	bool		has_time;		/* an event of it was accepted */
	TimestampTz max_time;		/* the highest time accepted */
	int64		late;			/* its late events */
} WriterMax;

/* The entry of writer xid among writers of the batch, made when missing. */
static WriterMax *
writer_of(List **writers, TransactionId xid)
{
	ListCell   *lc;
	WriterMax  *w;

	/* events come in runs of one writer: look at the last one first */
	if (*writers != NIL && ((WriterMax *) llast(*writers))->xid == xid)
		return llast(*writers);
	foreach(lc, *writers)
	{
		w = lfirst(lc);
		if (w->xid == xid)
			return w;
	}
	w = palloc0(sizeof(WriterMax));
	w->xid = xid;
	w->queued_writer = queued_writer_of(xid);
	*writers = lappend(*writers, w);
	return w;
}

/* Remember the highest accepted time of each writer of the batch. */
static void
note_writer_time(List **writers, TransactionId xid, TimestampTz t)
{
	WriterMax  *w = writer_of(writers, xid);

	w->max_time = w->has_time ? Max(w->max_time, t) : t;
	w->has_time = true;
}

/*
 * For an event-time view, lock its watermark, fold in the writers that
 * committed, find the late events of the batch and record them, and note
 * the highest time each writer of the batch reached.  Returns an array
 * marking the late events (NULL when none are), and their number.  Runs
 * inside the batch's transaction.  With nowait, a watermark another
 * transaction has locked (truncate_continuous_view) fails with 55P03
 * instead of waiting.
 */
bool *
stream_mark_late_events(int view_id, const char *view_name, WindowSpec *w,
						StreamBatchEvents *events, bool nowait, int *nlate)
{
	Relation	stream;
	AttrNumber	attnum;
	Datum		arg[1];
	bool		isnull;
	bool		have_max;
	bool		changed = false;
	TimestampTz max_time = 0;
	TimestampTz cutoff = 0;
	int64		folded_late = 0;	/* late events of writers that committed */
	bool	   *late = NULL;
	List	   *writers = NIL;
	ListCell   *lc;
	MemoryContext caller_cxt = CurrentMemoryContext;

	*nlate = 0;
	if (!stream_window_has_event_time(w))
		return NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_statements();
	arg[0] = Int32GetDatum(view_id);
	if (SPI_execute_plan(nowait ? lock_watermark_nowait : lock_watermark, arg, NULL, false, 1) !=
		SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "watermark of continuous view \"%s\" is missing", view_name);
	max_time = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	have_max = !isnull;

	/*
	 * Held events being applied fold nothing: the rows that held them are
	 * deleted already, and their writers' other events may be pending (a
	 * (sub)transaction of theirs, another run of the chunk).
	 */
	if (!events->held)
	{
		TimestampTz folded;

		if (SPI_execute_plan(fold_pending, arg, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not fold the pending watermarks of continuous view \"%s\"",
				 view_name);
		folded = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		if (!isnull && (!have_max || folded > max_time))
		{
			max_time = folded;
			have_max = true;
			changed = true;
		}
		folded_late = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
	}
	if (have_max)
		cutoff = watermark_of(max_time, w->lateness);

	stream = table_open(events->stream, AccessShareLock);
	attnum = stream_window_time_attnum(w, events->stream);
	for (int i = 0; i < events->nevents; i++)
	{
		HeapTuple	event = &events->events[i];
		TimestampTz t;

		if (!event_time(event, attnum, RelationGetDescr(stream), &t))
			continue;
		if (have_max && t < cutoff)
		{
			TransactionId xid = HeapTupleHeaderGetRawXmin(event->t_data);

			if (late == NULL)	/* outlives SPI_finish */
				late = MemoryContextAllocZero(caller_cxt, sizeof(bool) * events->nevents);
			late[i] = true;
			(*nlate)++;
			writer_of(&writers, xid)->late++;
			if (w->keep_late)
			{
				Datum		values[5] = {arg[0], TimestampTzGetDatum(t), TimestampTzGetDatum(cutoff),
					CStringGetTextDatum(stream_event_as_text(events->stream, event)),
				FullTransactionIdGetDatum(stream_recent_full_xid(xid))};

				if (SPI_execute_plan(insert_late, values, NULL, false, 0) != SPI_OK_INSERT)
					elog(ERROR, "could not keep a late event");
			}
			continue;
		}
		note_writer_time(&writers, HeapTupleHeaderGetRawXmin(event->t_data), t);
	}
	table_close(stream, AccessShareLock);

	foreach(lc, writers)
	{
		WriterMax  *wm = lfirst(lc);
		Datum		values[5] = {arg[0], FullTransactionIdGetDatum(stream_recent_full_xid(wm->xid)),
			TimestampTzGetDatum(wm->max_time), Int64GetDatum(wm->late),
		FullTransactionIdGetDatum(stream_recent_full_xid(wm->queued_writer))};
		char		nulls[5] = {' ', ' ', wm->has_time ? ' ' : 'n', ' ',
		TransactionIdIsValid(wm->queued_writer) ? ' ' : 'n'};

		if (SPI_execute_plan(note_pending, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not note the event times of continuous view \"%s\"", view_name);
	}
	if (changed || folded_late > 0)
	{
		Datum		values[3] = {arg[0], TimestampTzGetDatum(max_time), Int64GetDatum(folded_late)};
		char		nulls[3] = {' ', have_max ? ' ' : 'n', ' '};

		if (SPI_execute_plan(update_watermark, values, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not advance the watermark of continuous view \"%s\"", view_name);
	}
	SPI_finish();
	return late;
}

/*
 * Give a new event-time view its watermark row; the caller runs as the
 * extension's owner with SPI connected.
 */
void
stream_lateness_add_view(int view_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};

	if (SPI_execute_with_args("INSERT INTO " STREAM_INTERNAL_SCHEMA ".view_watermarks (view_id) "
							  "VALUES ($1)", 1, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the watermark of continuous view %d", view_id);
}

/* The value the query sql gives for view $1, as a SQL literal, or NULL */
static char *
watermark_literal(int view_id, const char *sql)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};
	char	   *text = NULL;
	StreamRunAs as;

	stream_begin_as_extension(&as);
	if (SPI_execute_with_args(sql, 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the watermark of continuous view %d", view_id);
	if (SPI_processed > 0)
		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	stream_end_as_extension(&as);
	return text ? quote_literal_cstr(text) : NULL;
}

/*
 * The watermark of view view_id as a SQL literal, or NULL when it has none,
 * from the view stream_ext_internal.view_watermark (which view_stats shows
 * too).  Read as the extension (stream_begin_as_extension), whoever calls:
 * change streams run as views' owners, who may not read the extension's
 * tables.  SPI connected.
 */
char *
stream_lateness_watermark_literal(int view_id)
{
	return watermark_literal(view_id,
							 "SELECT watermark FROM " STREAM_INTERNAL_SCHEMA ".view_watermark "
							 "WHERE view_id = $1");
}

/*
 * A watermark of view view_id that no batch judges events against a lower
 * one than, now or later, as a SQL literal (NULL when it has none), for the
 * reaper: the folded one, committed, no later than events held back.
 * view_watermark also counts the times of writers that committed since the
 * last fold, which a batch in flight, that folded before they did, did not:
 * an event it accepts may be before that.  SPI connected.
 */
char *
stream_lateness_settled_watermark_literal(int view_id)
{
	return watermark_literal(view_id,
							 "SELECT CASE WHEN m.watermark IS NOT NULL THEN "
							 "LEAST(m.watermark, (SELECT pg_catalog.min(h.event_time) "
							 "FROM " STREAM_INTERNAL_SCHEMA ".held_events h WHERE h.view_id = $1)) END "
							 "FROM (SELECT " STREAM_INTERNAL_SCHEMA ".watermark(w.max_event_time, "
							 "v.allowed_lateness) AS watermark "
							 "FROM " STREAM_INTERNAL_SCHEMA ".view_watermarks w "
							 "JOIN " STREAM_INTERNAL_SCHEMA ".continuous_views v ON v.id = w.view_id "
							 "WHERE w.view_id = $1) m");
}

/*
 * Start a view's watermark over and forget its late events
 * (stream_ext.truncate_continuous_view); the caller runs as the
 * extension's owner with SPI connected.
 */
void
stream_lateness_reset_view(int view_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};

	if (SPI_execute_with_args("UPDATE " STREAM_INTERNAL_SCHEMA ".view_watermarks "
							  "SET max_event_time = NULL, late_events = 0 WHERE view_id = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("DELETE FROM " STREAM_INTERNAL_SCHEMA ".watermark_pending "
							  "WHERE view_id = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args("DELETE FROM " STREAM_INTERNAL_SCHEMA ".late_events "
							  "WHERE view_id = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not reset the watermark of continuous view %d", view_id);
}
