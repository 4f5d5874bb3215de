/*
 * held_events.c
 *	  The events held back from continuous views: the rows of
 *	  stream_ext_internal.held_events.
 *
 * A worker that cannot run a view's plan now, because someone holds a lock
 * the run needs, keeps the view's events here in its batch's transaction
 * and goes on with the other views (worker/held_back.c decides when); the
 * combiner later takes them out, oldest first, and applies them in the
 * same transaction.  So an event is in the table or in the view's deltas,
 * never both, never neither.  A row is one event as the worker got it:
 * the stream's tuple with its header, whose xmin is the event's writer
 * (the deltas the events make are that writer's, as they would have been),
 * whether its lateness was judged when it was held (the late ones were not
 * held then), and if so its event time: a view's watermark waits at the
 * earliest of them (stream_ext_internal.view_watermark), so that no window
 * they fall in looks final before they are in it.  Rows go with the view (DROP VIEW,
 * truncate_continuous_view).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "catalog/held_events.h"
#include "guc.h"

#define HELD_EVENTS STREAM_INTERNAL_SCHEMA ".held_events"

static void
spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * Hold back from view_id the events not marked in late (which may be NULL),
 * in the order given, after those it holds already; judged says whether
 * their lateness was judged (those marked are the late ones), times (which
 * may be NULL) the event time of those has marks.  Runs in the caller's
 * transaction.
 */
void
stream_held_events_add(int view_id, const HeapTupleData *events, const bool *late, int nevents,
					   bool judged, const TimestampTz *times, const bool *has)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(nevents, 1));
	Datum	   *time_elems = palloc(sizeof(Datum) * Max(nevents, 1));
	bool	   *time_nulls = palloc(sizeof(bool) * Max(nevents, 1));
	Datum		values[4];
	Oid			argtypes[4] = {INT4OID, BOOLOID, BYTEAARRAYOID, TIMESTAMPTZARRAYOID};
	int			dims[1];
	int			lbs[1] = {1};
	int			n = 0;

	for (int i = 0; i < nevents; i++)
	{
		bytea	   *b;

		if (late != NULL && late[i])
			continue;
		b = palloc(VARHDRSZ + events[i].t_len);
		SET_VARSIZE(b, VARHDRSZ + events[i].t_len);
		memcpy(VARDATA(b), events[i].t_data, events[i].t_len);
		elems[n] = PointerGetDatum(b);
		time_nulls[n] = (times == NULL || !has[i]);
		time_elems[n] = time_nulls[n] ? (Datum) 0 : TimestampTzGetDatum(times[i]);
		n++;
	}
	if (n > 0)
	{
		dims[0] = n;
		values[0] = Int32GetDatum(view_id);
		values[1] = BoolGetDatum(judged);
		values[2] = PointerGetDatum(construct_array(elems, n, BYTEAOID, -1, false, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_md_array(time_elems, time_nulls, 1, dims, lbs,
													   TIMESTAMPTZOID, sizeof(TimestampTz),
													   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		spi_connect();
		if (SPI_execute_with_args("INSERT INTO " HELD_EVENTS " (view_id, judged, event, event_time) "
								  "SELECT $1, $2, u.e, u.t "
								  "FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) "
								  "WITH ORDINALITY AS u(e, t, n) "
								  "ORDER BY u.n",
								  4, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not hold back events of continuous view %d", view_id);
		SPI_finish();
	}
	for (int i = 0; i < n; i++)
		pfree(DatumGetPointer(elems[i]));
	pfree(elems);
	pfree(time_elems);
	pfree(time_nulls);
}

/* The ids of the views that hold back events, allocated in cxt */
List *
stream_held_events_views(MemoryContext cxt)
{
	List	   *ids = NIL;

	/*
	 * One index probe per view, not a read of every held event's entry
	 * (DISTINCT would): the job asks at every turn of the combiner, and a
	 * backlog may be millions of events.
	 */
	spi_connect();
	if (SPI_execute("WITH RECURSIVE v (id) AS ("
					"SELECT pg_catalog.min(view_id) FROM " HELD_EVENTS " "
					"UNION ALL SELECT (SELECT pg_catalog.min(h.view_id) FROM " HELD_EVENTS " h "
					"WHERE h.view_id OPERATOR(pg_catalog.>) v.id) FROM v WHERE v.id IS NOT NULL) "
					"SELECT id FROM v WHERE id IS NOT NULL",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the views holding back events");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		ids = lappend_int(ids, DatumGetInt32(id));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return ids;
}

/*
 * Does view_id hold back events?  Read as the extension, whoever calls (the
 * reaper runs as views' owners).  SPI connected.
 */
bool
stream_held_events_any(int view_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};
	StreamRunAs as;
	bool		any;

	stream_begin_as_extension(&as);
	if (SPI_execute_with_args("SELECT FROM " HELD_EVENTS " WHERE view_id = $1 LIMIT 1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the events held back from continuous view %d", view_id);
	any = SPI_processed > 0;
	stream_end_as_extension(&as);
	return any;
}

/*
 * Take out the oldest max events view_id holds back (deleted in the
 * caller's transaction, which must apply them): fills *events, in the
 * current memory context, with tuples of stream, oldest first, and
 * *judged with whether the lateness of each was judged; returns how many.
 */
int
stream_held_events_take(int view_id, Oid stream, int max, HeapTupleData **events, bool **judged)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(view_id), Int32GetDatum(max)};
	HeapTupleData *tuples;
	bool	   *flags;
	int			n;

	spi_connect();
	if (SPI_execute_with_args("WITH taken AS (DELETE FROM " HELD_EVENTS " WHERE seq IN "
							  "(SELECT seq FROM " HELD_EVENTS " WHERE view_id = $1 ORDER BY seq LIMIT $2) "
							  "RETURNING seq, judged, event) "
							  "SELECT judged, event FROM taken ORDER BY seq",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not take the held events of continuous view %d", view_id);
	n = (int) SPI_processed;
	tuples = MemoryContextAlloc(cxt, sizeof(HeapTupleData) * Max(n, 1));
	flags = MemoryContextAlloc(cxt, sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 2, &isnull));
		Size		len = VARSIZE_ANY_EXHDR(b);

		flags[i] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
											  &isnull));
		/* a tuple of its own: the header wants MAXALIGN, as palloc gives */
		tuples[i].t_len = (uint32) len;
		tuples[i].t_data = MemoryContextAlloc(cxt, len);
		memcpy(tuples[i].t_data, VARDATA_ANY(b), len);
		tuples[i].t_tableOid = stream;
		ItemPointerSetInvalid(&tuples[i].t_self);
	}
	SPI_finish();
	*events = tuples;
	*judged = flags;
	return n;
}

/* Forget every event view_id holds back (truncate_continuous_view, a view gone). */
void
stream_held_events_forget(int view_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};

	spi_connect();
	if (SPI_execute_with_args("DELETE FROM " HELD_EVENTS " WHERE view_id = $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget the held events of continuous view %d", view_id);
	SPI_finish();
}
