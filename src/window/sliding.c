/*
 * sliding.c
 *	  Steps and blocks of sliding windows.
 *
 * A sliding view keeps one state row per group and step (_step, the step's
 * start).  A read at time T combines, per group, the steps from L, the step
 * holding T - window, up to T: window/step rows per group, sixty for five
 * minutes in steps of five seconds.  To read fewer, a view of at least 16
 * steps also keeps blocks: rows with _block = true holding the combined
 * states of B = floor(sqrt(steps)) consecutive steps, aligned on multiples
 * of B steps, which the combiner updates together with the steps.  A read
 * takes the blocks wholly inside [L, T] and the steps outside them: at most
 * 2(B - 1) steps and steps/B blocks per group instead of every step.
 *
 * The bounds are computed once per read by stream_ext_internal.sliding_bound
 * (a stable function, so the planner sees their values and an index scan
 * evaluates them once), in the type of the view's time (timestamptz, or
 * timestamp in the reader's TimeZone).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "window/reaper.h"
#include "window/sliding.h"

PG_FUNCTION_INFO_V1(stream_ext_sliding_bound);

/* Windows of fewer steps keep no blocks */
#define MIN_STEPS_FOR_BLOCKS 16

/* The block length of a sliding view, or NULL when it keeps no blocks. */
Interval *
stream_sliding_block(WindowSpec *spec)
{
	int64		step;
	int64		steps;
	int64		per_block;
	Interval   *block;

	if (spec->kind != WINDOW_SLIDING)
		return NULL;
	step = stream_interval_usecs(spec->step);
	steps = (stream_interval_usecs(spec->size) + step - 1) / step;
	if (steps < MIN_STEPS_FOR_BLOCKS)
		return NULL;
	per_block = 1;
	while ((per_block + 1) * (per_block + 1) <= steps)
		per_block++;
	block = palloc0(sizeof(Interval));
	block->time = per_block * step;
	return block;
}

static char *
interval_sql(Interval *interval)
{
	return psprintf("%s::pg_catalog.interval",
					quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out,
																		   IntervalPGetDatum(interval)))));
}

/* SQL computing bound `which` of a sliding view whose time has type `type`. */
char *
stream_sliding_bound_sql(SlidingBound which, WindowSpec *spec, Oid type)
{
	Interval   *block = stream_sliding_block(spec);
	Interval	none = {0};

	return psprintf("stream_ext_internal.sliding_bound(%d, %s, %s, %s, NULL::%s)",
					(int) which, interval_sql(spec->step), interval_sql(spec->size),
					interval_sql(block ? block : &none), format_type_be(type));
}

/* date_bin(width, t, '2000-01-01') in microseconds, for t >= or < origin */
static int64
bin_floor(int64 t, int64 width)
{
	int64		r = t % width;

	return (r < 0) ? t - r - width : t - r;
}

typedef struct BoundCache
{
	TimestampTz read_time;
	pg_tz	   *zone;
	int64		bounds[5];
} BoundCache;

/*
 * stream_ext_internal.sliding_bound(which, step, window, block, NULL::type):
 * see SlidingBound.  Timestamps of both types count microseconds from
 * 2000-01-01, the origin of every step and block.
 */
Datum
stream_ext_sliding_bound(PG_FUNCTION_ARGS)
{
	int			which = PG_GETARG_INT32(0);
	int64		step = stream_interval_usecs(PG_GETARG_INTERVAL_P(1));
	int64		size = stream_interval_usecs(PG_GETARG_INTERVAL_P(2));
	int64		block = stream_interval_usecs(PG_GETARG_INTERVAL_P(3));
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 4);
	TimestampTz read_time = stream_window_read_time();
	BoundCache *cache = (BoundCache *) fcinfo->flinfo->fn_extra;

	if (which < 0 || which > SLIDING_REAP_BEFORE || step <= 0)
		elog(ERROR, "invalid sliding window bound");
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(BoundCache));
		fcinfo->flinfo->fn_extra = cache;
		cache->zone = NULL;
		cache->read_time = DT_NOBEGIN;
	}
	if (cache->read_time != read_time || cache->zone != session_timezone)
	{
		int64		now = read_time;
		int64		earliest_now;
		int64		oldest;
		int64		first_full = 0;
		int64		last_full = -1;

		/* the clock reading of a timestamp: read_time in the reader's zone */
		if (type == TIMESTAMPOID)
			now = DatumGetTimestamp(DirectFunctionCall1(timestamptz_timestamp,
														TimestampTzGetDatum(read_time)));
		/* a reader up to a day behind UTC still sees rows of a timestamp time */
		earliest_now = (type == TIMESTAMPOID)
			? DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone,
													CStringGetTextDatum("UTC"),
													TimestampTzGetDatum(read_time))) - USECS_PER_DAY
			: now;
		oldest = bin_floor(now - size, step);
		cache->bounds[SLIDING_OLDEST_STEP] = oldest;
		cache->bounds[SLIDING_NOW] = now;
		cache->bounds[SLIDING_REAP_BEFORE] = bin_floor(earliest_now - size, step);
		if (block > 0)
		{
			/* blocks [b, b + block) with oldest <= b and b + block - step <= now */
			first_full = bin_floor(oldest + block - 1, block);
			last_full = bin_floor(now - block + step, block);
		}
		if (block > 0 && first_full <= last_full)
		{
			cache->bounds[SLIDING_FIRST_BLOCK] = first_full;
			cache->bounds[SLIDING_BLOCKS_END] = last_full + block;
		}
		else
		{
			/* no whole block: every step of [oldest, now] is read as a step */
			cache->bounds[SLIDING_FIRST_BLOCK] = now + 1;
			cache->bounds[SLIDING_BLOCKS_END] = now + 1;
		}
		cache->read_time = read_time;
		cache->zone = session_timezone;
	}
	PG_RETURN_INT64(cache->bounds[which]);
}
