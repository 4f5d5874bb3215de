/*
 * clock.c
 *	  The window clock: what "now" is for windows, ttl and the reaper.
 *
 * Reads of windowed views, sliding-window bounds and the reaper all ask
 * stream_ext.read_time(): the setting stream_ext.read_time when it is set
 * (tests and replays pin the clock with it), else the start of the
 * transaction, so that every row of one read sees the same "now".
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "window/clock.h"
#include "window/spec.h"

PG_FUNCTION_INFO_V1(stream_ext_read_time);

/* Name the setting in an error reading it */
static void
read_time_context(void *arg)
{
	errcontext("reading parameter \"stream_ext.read_time\" = \"%s\"", stream_ext_read_time_setting);
}

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
		ErrorContextCallback context = {error_context_stack, read_time_context, NULL};

		/* a DateStyle changed since the setting was checked can fail it */
		error_context_stack = &context;
		parsed = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
														 CStringGetDatum(stream_ext_read_time_setting),
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1)));
		error_context_stack = context.previous;
		if (parsed_text)
			pfree(parsed_text);
		parsed_text = MemoryContextStrdup(TopMemoryContext, stream_ext_read_time_setting);
		parsed_zone = session_timezone;
	}
	return parsed;
}

/* stream_ext.read_time() */
Datum
stream_ext_read_time(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(stream_window_read_time());
}

/*
 * The SQL of the timestamptz at or before which ttl expires a row: read_time
 * less ttl, counted on UTC's calendar.  In a TimeZone with summer time a day
 * is 23 or 25 hours twice a year; counted in UTC it is always 24, so a view
 * reads the same in every session's TimeZone, and the reaper, whatever its
 * own, deletes just what reads no longer show.
 */
char *
stream_ttl_cutoff_sql(Interval *ttl)
{
	return psprintf("((" STREAM_READ_TIME_SQL " AT TIME ZONE 'UTC') - %s) AT TIME ZONE 'UTC'",
					stream_interval_sql(ttl));
}
