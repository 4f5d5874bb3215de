/*
 * lateness.c
 *	  Late events: an event of an event-time view is late when its time is
 *	  more than allowed_lateness before the highest event time the view has
 *	  applied (its max_event_time).  The watermark is max_event_time minus
 *	  allowed_lateness; a window that ends before it is final, since every
 *	  event that could still fall in it would be late.
 *
 * Late events are not applied to the view: they are counted in
 * stream_ext_internal.view_watermarks, and kept in late_events when the view
 * says keep_late.  The worker that applies a batch to a view locks the view's
 * watermark row until it commits, so the watermark a batch is checked
 * against is the one every earlier batch left: two workers can never both
 * accept events that only one of them would have found late.
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

#include "window/lateness.h"
#include "window/time_expr.h"
#include "worker/apply.h"

static SPIPlanPtr lock_watermark = NULL;
static SPIPlanPtr update_watermark = NULL;
static SPIPlanPtr insert_late = NULL;

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\"", sql);
	return plan;
}

static void
prepare_statements(void)
{
	if (lock_watermark != NULL)
		return;
	lock_watermark = prepare_kept("SELECT max_event_time FROM stream_ext_internal.view_watermarks "
								  "WHERE view_id = $1 FOR UPDATE",
								  1, (Oid[]) {INT4OID});
	update_watermark = prepare_kept("UPDATE stream_ext_internal.view_watermarks "
									"SET max_event_time = $2, late_events = late_events + $3 "
									"WHERE view_id = $1",
									3, (Oid[]) {INT4OID, TIMESTAMPTZOID, INT8OID});
	insert_late = prepare_kept("INSERT INTO stream_ext_internal.late_events "
							   "(view_id, event_time, watermark, event) VALUES ($1, $2, $3, $4)",
							   4, (Oid[]) {INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID});
}

/* An event's time as timestamptz; false when it has none. */
static bool
event_time(HeapTuple event, AttrNumber attnum, TupleDesc desc, TimestampTz *time)
{
	bool		isnull;
	Datum		value = heap_getattr(event, attnum, desc, &isnull);

	if (isnull)
		return false;
	switch (TupleDescAttr(desc, attnum - 1)->atttypid)
	{
		case TIMESTAMPOID:
			*time = timestamp2timestamptz_opt_overflow(DatumGetTimestamp(value), NULL);
			break;
		case DATEOID:
			*time = date2timestamptz_opt_overflow(DatumGetDateADT(value), NULL);
			break;
		default:
			*time = DatumGetTimestampTz(value);
	}
	return true;
}

/*
 * For an event-time view, lock its watermark, find the late events of the
 * batch, record them, and advance max_event_time over the others.  Returns
 * an array marking the late events (NULL when none are), and their number.
 * Runs inside the batch's transaction.
 */
bool *
stream_mark_late_events(CachedView *view, StreamBatchEvents *events, int *nlate)
{
	WindowSpec *w = view->window;
	Relation	stream;
	AttrNumber	attnum;
	Datum		arg[4];
	bool		isnull;
	bool		have_max;
	TimestampTz max_time = 0;
	TimestampTz cutoff = 0;
	bool	   *late = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;

	*nlate = 0;
	if (!stream_window_has_event_time(w))
		return NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_statements();
	arg[0] = Int32GetDatum(view->id);
	if (SPI_execute_plan(lock_watermark, arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "watermark of continuous view \"%s\" is missing", view->name);
	max_time = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	have_max = !isnull;
	if (have_max)
		cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
														 TimestampTzGetDatum(max_time),
														 IntervalPGetDatum(w->lateness)));

	stream = table_open(events->stream, AccessShareLock);
	attnum = stream_window_time_attnum(w, events->stream);
	{
		TimestampTz new_max = max_time;
		bool		any = have_max;

		for (int i = 0; i < events->nevents; i++)
		{
			TimestampTz t;

			if (!event_time(&events->events[i], attnum, RelationGetDescr(stream), &t))
				continue;
			if (have_max && t < cutoff)
			{
				if (late == NULL)	/* outlives SPI_finish */
					late = MemoryContextAllocZero(caller_cxt, sizeof(bool) * events->nevents);
				late[i] = true;
				(*nlate)++;
				if (w->keep_late)
				{
					Datum		values[4] = {arg[0], TimestampTzGetDatum(t), TimestampTzGetDatum(cutoff),
					CStringGetTextDatum(stream_event_as_text(events->stream, &events->events[i]))};

					if (SPI_execute_plan(insert_late, values, NULL, false, 0) != SPI_OK_INSERT)
						elog(ERROR, "could not keep a late event");
				}
				continue;
			}
			if (!any || t > new_max)
				new_max = t;
			any = true;
		}
		if (any && (!have_max || new_max != max_time || *nlate > 0))
		{
			Datum		values[3] = {arg[0], TimestampTzGetDatum(new_max), Int64GetDatum(*nlate)};

			if (SPI_execute_plan(update_watermark, values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not advance the watermark of continuous view \"%s\"", view->name);
		}
	}
	table_close(stream, AccessShareLock);
	SPI_finish();
	return late;
}
