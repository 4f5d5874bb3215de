/*
 * reaper.c
 *	  Expiry of windowed views' rows.
 *
 * A row is expired when no read can show it any more:
 *	 ttl (tumbling)	its ttl_column is at or before read_time - ttl (NULL
 *					never expires);
 *	 sliding		its step ends before the oldest step of the window;
 *	 hopping + ttl	every window holding its slice ended by read_time - ttl;
 *	 session + ttl	its session ended by read_time - ttl.
 * Reads filter expired rows themselves (read_view.c), so deleting them is
 * only about space: the combiner deletes them in statements of at most
 * REAP_BATCH_ROWS rows, each in its own transaction, skipping rows another
 * transaction has locked.  Only the combiner writes state rows, so this
 * never waits for ingestion and ingestion never waits for it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "ddl/create_view.h"
#include "guc.h"
#include "window/reaper.h"
#include "window/sliding.h"

PG_FUNCTION_INFO_V1(stream_ext_read_time);
PG_FUNCTION_INFO_V1(stream_ext_reap_expired);

/*
 * "Now" for windows: stream_ext.read_time when set, else the transaction's
 * start.  The parsed setting is remembered until the text or time zone
 * changes, since reads call this once per row.
 */
TimestampTz
stream_window_read_time(void)
{
	static char *parsed_text = NULL;
	static pg_tz *parsed_zone = NULL;
	static TimestampTz parsed = 0;

	if (stream_ext_read_time_setting == NULL || stream_ext_read_time_setting[0] == '\0')
		return GetCurrentTransactionStartTimestamp();
	if (parsed_text == NULL || parsed_zone != session_timezone ||
		strcmp(parsed_text, stream_ext_read_time_setting) != 0)
	{
		parsed = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
														 CStringGetDatum(stream_ext_read_time_setting),
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1)));
		if (parsed_text)
			pfree(parsed_text);
		parsed_text = MemoryContextStrdup(TopMemoryContext, stream_ext_read_time_setting);
		parsed_zone = session_timezone;
	}
	return parsed;
}

Datum
stream_ext_read_time(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(stream_window_read_time());
}

/* Do rows of this view ever expire? */
bool
stream_window_expires(WindowSpec *spec)
{
	return spec->kind == WINDOW_SLIDING || spec->ttl != NULL;
}

/*
 * "Now" for the reaper, in the type of a state column.  A timestamptz column
 * takes read_time().  A timestamp (or date) column is read in the reader's
 * TimeZone, and readers may be anywhere from UTC-12 to UTC+14: the reaper
 * takes the earliest local time any of them can see, UTC less a day.
 */
static char *
reap_now_sql(Oid state, const char *column)
{
	Oid			type = get_atttype(state, get_attnum(state, column));

	if (type == TIMESTAMPTZOID)
		return "stream_ext.read_time()";
	return "((stream_ext.read_time() AT TIME ZONE 'UTC') - '1 day'::pg_catalog.interval)";
}

/* The condition a state row of view id is expired under, or NULL. */
static char *
expired_condition(int id, WindowSpec *spec)
{
	Oid			state = stream_internal_relid(psprintf("state_%d", id), false);

	if (!OidIsValid(state))
		return NULL;
	switch (spec->kind)
	{
		case WINDOW_NONE:
			if (spec->ttl == NULL)
				return NULL;
			return psprintf("%s <= %s - %s", quote_identifier(spec->ttl_column),
							reap_now_sql(state, spec->ttl_column), stream_interval_sql(spec->ttl));
		case WINDOW_SLIDING:
			{
				Oid			step_type = get_atttype(state, get_attnum(state, "_step"));
				char	   *before = stream_sliding_bound_sql(SLIDING_REAP_BEFORE, spec, step_type);
				Interval   *lengths[SLIDING_LEVELS];
				Interval	tail1 = {0};
				Interval	tail2 = {0};

				if (stream_sliding_levels(spec, lengths) == 1)
					return psprintf("_step < %s", before);
				/* a block goes once its last step has */
				tail1.time = stream_interval_usecs(lengths[1]) - stream_interval_usecs(spec->step);
				tail2.time = stream_interval_usecs(lengths[2]) - stream_interval_usecs(spec->step);
				return psprintf("(_level = 0 AND _step < %s OR _level = 1 AND _step < %s - %s"
								" OR _level = 2 AND _step < %s - %s)",
								before, before, stream_interval_sql(&tail1), before, stream_interval_sql(&tail2));
			}
		case WINDOW_HOPPING:
			if (spec->ttl == NULL)
				return NULL;
			return psprintf("_slice + %s <= %s - %s", stream_interval_sql(spec->size),
							reap_now_sql(state, "_slice"), stream_interval_sql(spec->ttl));
		case WINDOW_SESSION:
			if (spec->ttl == NULL)
				return NULL;
			return psprintf("_session_end <= %s - %s", reap_now_sql(state, "_session_end"),
							stream_interval_sql(spec->ttl));
	}
	return NULL;
}

/*
 * Delete at most REAP_BATCH_ROWS expired rows of view id; returns how many.
 * The caller runs it inside a transaction with a snapshot.
 */
uint64
stream_reap_batch(int id, WindowSpec *spec)
{
	char	   *condition = expired_condition(id, spec);
	uint64		deleted;

	if (condition == NULL)
		return 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(psprintf("DELETE FROM stream_ext_internal.state_%d WHERE ctid = ANY (ARRAY("
							 "SELECT ctid FROM stream_ext_internal.state_%d WHERE %s "
							 "LIMIT %d FOR UPDATE SKIP LOCKED))",
							 id, id, condition, REAP_BATCH_ROWS),
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete the expired rows of continuous view %d", id);
	deleted = SPI_processed;
	SPI_finish();
	return deleted;
}

/* stream_ext.reap_expired(view): delete the view's expired rows now. */
Datum
stream_ext_reap_expired(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	int			id;
	WindowSpec *spec;
	uint64		total = 0;
	uint64		n;
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext old;

	id = stream_owned_continuous_view_id(view);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(psprintf("SELECT " WINDOW_SPEC_COLUMNS
							 " FROM stream_ext_internal.continuous_views v WHERE v.id = %d", id),
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read continuous view %d", id);
	/* the spec outlives SPI_finish */
	old = MemoryContextSwitchTo(caller_cxt);
	spec = stream_window_spec_from_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	MemoryContextSwitchTo(old);
	SPI_finish();

	do
	{
		n = stream_reap_batch(id, spec);
		total += n;
		CHECK_FOR_INTERRUPTS();
	} while (n == REAP_BATCH_ROWS);
	PG_RETURN_INT64((int64) total);
}
