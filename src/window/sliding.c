/*
 * sliding.c
 *	  Steps and blocks of sliding windows.
 *
 * A sliding view keeps one state row per group and step (_step, the step's
 * start, _level 0).  A read at time T combines, per group, the steps from L,
 * the step holding T - window, up to T: window/step rows per group, sixty
 * for five minutes in steps of five seconds.  To read fewer, a view of at
 * least 16 steps also keeps blocks (_level 1) of B consecutive steps, B the
 * rounded cube root of the steps, and big blocks (_level 2) of B * B steps,
 * each aligned on multiples of its length and holding the combined states of
 * its steps; the combiner updates them together with the steps.  A read
 * takes the big blocks wholly inside [L, T], the blocks inside [L, T] but
 * outside those, and the steps outside every whole block: for sixty steps,
 * about nine rows per group instead of sixty.
 *
 * The bounds are computed once per read by stream_ext_internal.sliding_bound
 * (a stable function, so the planner sees their values and an index scan
 * evaluates them once), in the type of the view's time (timestamptz, or
 * timestamp in the reader's TimeZone).  Any role reading a view calls it, so
 * it checks its arguments and never returns a timestamp out of range.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "window/clock.h"
#include "window/sliding.h"

PG_FUNCTION_INFO_V1(stream_ext_sliding_bound);

/* Windows of fewer steps keep no blocks */
#define MIN_STEPS_FOR_BLOCKS 16

static Interval *
usecs_interval(int64 usecs)
{
	Interval   *i = palloc0(sizeof(Interval));

	i->time = usecs;
	return i;
}

/*
 * The length of the rows of each level of a sliding view (lengths[0] is the
 * step); returns the number of levels it keeps, 1 when it keeps no blocks.
 */
int
stream_sliding_levels(WindowSpec *spec, Interval *lengths[SLIDING_LEVELS])
{
	int64		step;
	int64		steps;
	int64		per_block;

	memset(lengths, 0, sizeof(Interval *) * SLIDING_LEVELS);
	if (spec->kind != WINDOW_SLIDING)
		return 0;
	lengths[0] = spec->step;
	step = stream_interval_usecs(spec->step);
	steps = (stream_interval_usecs(spec->size) + step - 1) / step;
	if (steps < MIN_STEPS_FOR_BLOCKS)
		return 1;
	per_block = Max(2, (int64) rint(cbrt((double) steps)));
	lengths[1] = usecs_interval(per_block * step);
	lengths[2] = usecs_interval(per_block * per_block * step);
	return 3;
}

/*
 * How many keys a window puts before a view's own in its state rows
 * (analyze/view_query.c adds them): a sliding view's _level (when it keeps
 * blocks) and _step, a hopping view's _slice.
 */
int
stream_window_hidden_keys(WindowSpec *spec)
{
	Interval   *lengths[SLIDING_LEVELS];

	if (spec->kind == WINDOW_SLIDING)
		return stream_sliding_levels(spec, lengths) > 1 ? 2 : 1;
	return spec->kind == WINDOW_HOPPING ? 1 : 0;
}

/* SQL computing bound `which` of a sliding view whose time has type `type`. */
char *
stream_sliding_bound_sql(SlidingBound which, WindowSpec *spec, Oid type)
{
	Interval   *lengths[SLIDING_LEVELS];
	Interval	none = {0};

	stream_sliding_levels(spec, lengths);
	return psprintf("stream_ext_internal.sliding_bound(%d, %s, %s, %s, %s, NULL::%s)",
					(int) which, stream_interval_sql(spec->step), stream_interval_sql(spec->size),
					stream_interval_sql(lengths[1] ? lengths[1] : &none),
					stream_interval_sql(lengths[2] ? lengths[2] : &none), format_type_be(type));
}

/* a + b for timestamps in microseconds; errors when it leaves int64 */
static int64
add_usecs(int64 a, int64 b)
{
	int64		result;

	if (pg_add_s64_overflow(a, b, &result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}

/* date_bin(width, t, '2000-01-01') in microseconds, for t >= or < origin */
static int64
bin_floor(int64 t, int64 width)
{
	int64		r = t % width;

	return (r < 0) ? add_usecs(t - r, -width) : t - r;
}

/*
 * The whole blocks of length `block` inside [from, to] (steps of `step`):
 * [*first, *end), or false when there is none.
 */
static bool
whole_blocks(int64 from, int64 to, int64 step, int64 block, int64 *first, int64 *end)
{
	int64		first_whole;
	int64		last_whole;

	if (block <= 0)
		return false;
	first_whole = bin_floor(add_usecs(from, block - 1), block);
	last_whole = bin_floor(add_usecs(to, step - block), block);
	if (first_whole > last_whole)
		return false;
	*first = first_whole;
	*end = add_usecs(last_whole, block);
	return true;
}

/*
 * An interval argument of sliding_bound in microseconds; errors unless it
 * is of fixed length (no months) and not negative.
 */
static int64
bound_arg_usecs(Interval *interval, const char *what)
{
	int64		usecs;

	if (interval->month != 0 ||
		pg_mul_s64_overflow(interval->day, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, interval->time, &usecs) || usecs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s for a sliding window bound", what),
				 errdetail("It must be a fixed-length interval that is not negative.")));
	return usecs;
}

/*
 * Errors unless the arguments of sliding_bound describe a sliding window
 * as stream_sliding_bound_sql writes them: a known bound, a positive step,
 * blocks (if any) of whole steps and big blocks of whole blocks, and a
 * timestamp type.
 */
static void
check_bound_args(int which, int64 step, int64 block, int64 big, Oid type)
{
	if (which < 0 || which > SLIDING_REAP_BEFORE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid sliding window bound %d", which),
				 errdetail("Bounds are numbered from 0 to %d.", (int) SLIDING_REAP_BEFORE)));
	if (step <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the step of a sliding window must be positive")));
	if (block % step != 0 || (big != 0 && (block == 0 || big % block != 0)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid blocks for a sliding window bound"),
				 errdetail("Blocks are zero or whole steps, big blocks zero or whole blocks.")));
	if (type != TIMESTAMPTZOID && type != TIMESTAMPOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("sliding window bounds cannot have type %s", format_type_be(type)),
				 errdetail("They have the type of the view's time, timestamptz or timestamp.")));
}

/* The bounds of one call site, for one read time, zone and arguments */
typedef struct BoundCache
{
	TimestampTz read_time;
	pg_tz	   *zone;
	int64		step;
	int64		size;
	int64		block;
	int64		big;
	Oid			type;
	int64		bounds[SLIDING_REAP_BEFORE + 1];
} BoundCache;

/*
 * stream_ext_internal.sliding_bound(which, step, window, block, big_block,
 * NULL::type): see SlidingBound.  Timestamps of both types count
 * microseconds from 2000-01-01, the origin of every step and block.
 */
Datum
stream_ext_sliding_bound(PG_FUNCTION_ARGS)
{
	int			which;
	int64		step;
	int64		size;
	int64		block;
	int64		big;
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 5);
	TimestampTz read_time;
	BoundCache *cache = (BoundCache *) fcinfo->flinfo->fn_extra;
	int64		result;

	/* not STRICT, for the NULL of the last argument: a NULL bound is NULL */
	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			PG_RETURN_NULL();
	which = PG_GETARG_INT32(0);
	step = bound_arg_usecs(PG_GETARG_INTERVAL_P(1), "step");
	size = bound_arg_usecs(PG_GETARG_INTERVAL_P(2), "window");
	block = bound_arg_usecs(PG_GETARG_INTERVAL_P(3), "block");
	big = bound_arg_usecs(PG_GETARG_INTERVAL_P(4), "big block");
	read_time = stream_window_read_time();
	check_bound_args(which, step, block, big, type);
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(BoundCache));
		fcinfo->flinfo->fn_extra = cache;
		cache->read_time = DT_NOBEGIN;
	}
	if (cache->read_time != read_time || cache->zone != session_timezone ||
		cache->step != step || cache->size != size || cache->block != block ||
		cache->big != big || cache->type != type)
	{
		int64		now = read_time;
		int64		earliest_now = read_time;
		int64		oldest;
		int64	   *b = cache->bounds;

		/* the clock reading of a timestamp: read_time in the reader's zone */
		if (type == TIMESTAMPOID)
		{
			now = DatumGetTimestamp(DirectFunctionCall1(timestamptz_timestamp,
														TimestampTzGetDatum(read_time)));
			/* a reader up to a day behind UTC still sees rows of a timestamp time */
			earliest_now = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone,
																 CStringGetTextDatum("UTC"),
																 TimestampTzGetDatum(read_time)));
			earliest_now = add_usecs(earliest_now, -USECS_PER_DAY);
		}
		/* cached only once all are computed: a bound out of range errors */
		cache->read_time = DT_NOBEGIN;
		oldest = bin_floor(add_usecs(now, -size), step);
		b[SLIDING_OLDEST_STEP] = oldest;
		b[SLIDING_NOW] = now;
		b[SLIDING_REAP_BEFORE] = bin_floor(add_usecs(earliest_now, -size), step);
		/* without whole blocks every step of [oldest, now] is read as a step */
		if (!whole_blocks(oldest, now, step, block, &b[SLIDING_FIRST_BLOCK], &b[SLIDING_BLOCKS_END]))
			b[SLIDING_FIRST_BLOCK] = b[SLIDING_BLOCKS_END] = add_usecs(now, 1);
		/* big blocks lie inside the blocks' range; none: an empty range at its end */
		if (!whole_blocks(oldest, now, step, big, &b[SLIDING_FIRST_BIG], &b[SLIDING_BIGS_END]))
			b[SLIDING_FIRST_BIG] = b[SLIDING_BIGS_END] = b[SLIDING_BLOCKS_END];
		cache->read_time = read_time;
		cache->zone = session_timezone;
		cache->step = step;
		cache->size = size;
		cache->block = block;
		cache->big = big;
		cache->type = type;
	}
	result = cache->bounds[which];
	if (!IS_VALID_TIMESTAMP(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 errdetail("A bound of the sliding window at read time %s is out of range.",
						   timestamptz_to_str(read_time))));
	PG_RETURN_INT64(result);
}
