/*
 * rate.c
 *	  Events per second over the last whole buckets of a StreamRate.
 *
 * A rate over the last N seconds counts the buckets that ended in the last N
 * seconds, not the one still filling, so a steady stream shows its steady
 * rate and an idle one shows 0 once N seconds have passed.
 */
#include "postgres.h"

#include "metrics/rate.h"

/* A zeroed StreamRate counts in 1 s buckets */
static uint32
width_of(const StreamRate *rate)
{
	return Max(rate->width_s, 1);
}

static uint32
epoch_of(const StreamRate *rate, TimestampTz now)
{
	return (uint32) ((now / USECS_PER_SEC) / width_of(rate));
}

void
stream_rate_init(StreamRate *rate, int width_s)
{
	memset(rate, 0, sizeof(StreamRate));
	rate->width_s = Max(width_s, 1);
}

/* Count n events at time now. */
void
stream_rate_add(StreamRate *rate, TimestampTz now, uint64 n)
{
	uint32		e = epoch_of(rate, now);
	int			i = e % STREAM_RATE_BUCKETS;

	if (rate->epoch[i] != e)
	{
		rate->epoch[i] = e;
		rate->count[i] = 0;
	}
	rate->count[i] = (uint32) Min((uint64) PG_UINT32_MAX, rate->count[i] + n);
}

/*
 * Events per second over the last `seconds` (a multiple of the width, at
 * most STREAM_RATE_BUCKETS - 1 buckets), ending at the start of the bucket
 * of now.
 */
double
stream_rate_per_second(const StreamRate *rate, TimestampTz now, int seconds)
{
	uint32		e = epoch_of(rate, now);
	int			nbuckets = Min(seconds / (int) width_of(rate), STREAM_RATE_BUCKETS - 1);
	uint64		sum = 0;

	for (int k = 1; k <= nbuckets; k++)
	{
		int			i = (e - k) % STREAM_RATE_BUCKETS;

		if (rate->epoch[i] == e - k)
			sum += rate->count[i];
	}
	return nbuckets > 0 ? (double) sum / (nbuckets * width_of(rate)) : 0.0;
}
