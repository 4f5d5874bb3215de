/*
 * fast_input.c
 *	  Exact shortcuts for the input functions of timestamptz, timestamp and
 *	  float8.
 *
 * Profiles of COPY into a stream and of Kafka consumers put a quarter of the
 * writer's time in timestamptz_in: ParseDateTime and DecodeDateTime split
 * the text into fields, look words up in keyword tables, and convert numbers
 * with strtol and strtod.  Event times nearly always come in one shape, the
 * ISO 8601 form PostgreSQL itself prints:
 *
 *		YYYY-MM-DD{ |T}HH:MI:SS[.ffffff][{+|-}HH[[:]MI]]
 *
 * For text of exactly that shape, with in-range fields, the functions here
 * compute the value directly.  They produce what the type's own input
 * function would: the date must exist, hours run 00-23, minutes and seconds
 * 00-59, at most 6 fraction digits (so no rounding happens), and an offset
 * at most 15:59, as DecodeTimezone allows.  Anything else, including every
 * text that would be an error, goes to the type's input function unchanged,
 * so errors and unusual spellings behave exactly as in PostgreSQL.
 *
 * timestamptz without an explicit offset depends on the session TimeZone,
 * so it too goes to timestamptz_in; timestamp (without time zone) is only
 * shortcut when the text has no offset, which timestamp_in would ignore.
 * Columns with a precision (typmod) are not shortcut.
 *
 * float8 has one too, for plain decimals ([-]digits[.digits], no exponent)
 * whose digits make an integer m below 2^53 with at most 22 after the point:
 * m and 10^k are then exact doubles, so m / 10^k, one IEEE division, is the
 * correctly rounded value strtod (and so float8in) returns.  Other text,
 * including whitespace, exponents, NaN, Infinity and errors, goes to float8in.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include "stream/fast_input.h"

/* The parts of an ISO timestamp text; offset_secs is east of UTC. */
typedef struct IsoTimestamp
{
	int			year,
				month,
				day,
				hour,
				minute,
				second,
				usec;
	bool		has_offset;
	int			offset_secs;
} IsoTimestamp;

/* Read exactly n digits at *pp into *value; false if any is not a digit. */
static inline bool
read_digits(const char **pp, int n, int *value)
{
	const char *p = *pp;
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*pp = p + n;
	*value = v;
	return true;
}

/*
 * Parse str as the ISO shape above, checking every field's range.  False
 * when str is anything else; the caller then uses the type's own parser.
 */
static bool
parse_iso_timestamp(const char *str, IsoTimestamp *ts)
{
	const char *p = str;

	if (!read_digits(&p, 4, &ts->year) || *p++ != '-' ||
		!read_digits(&p, 2, &ts->month) || *p++ != '-' ||
		!read_digits(&p, 2, &ts->day) || (*p != ' ' && *p != 'T'))
		return false;
	p++;
	if (!read_digits(&p, 2, &ts->hour) || *p++ != ':' ||
		!read_digits(&p, 2, &ts->minute) || *p++ != ':' ||
		!read_digits(&p, 2, &ts->second))
		return false;

	ts->usec = 0;
	if (*p == '.')
	{
		int			ndigits = 0;

		p++;
		while (*p >= '0' && *p <= '9')
		{
			if (++ndigits > 6)
				return false;
			ts->usec = ts->usec * 10 + (*p++ - '0');
		}
		if (ndigits == 0)
			return false;
		for (int i = ndigits; i < 6; i++)
			ts->usec *= 10;
	}

	ts->has_offset = false;
	ts->offset_secs = 0;
	if (*p == '+' || *p == '-')
	{
		int			sign = (*p++ == '+') ? 1 : -1;
		int			oh,
					om = 0;

		if (!read_digits(&p, 2, &oh))
			return false;
		if (*p == ':')
		{
			p++;
			if (!read_digits(&p, 2, &om))
				return false;
		}
		else if (*p != '\0' && !read_digits(&p, 2, &om))
			return false;
		if (oh > MAX_TZDISP_HOUR || om >= MINS_PER_HOUR)
			return false;
		ts->has_offset = true;
		ts->offset_secs = sign * (oh * SECS_PER_HOUR + om * SECS_PER_MINUTE);
	}
	if (*p != '\0')
		return false;

	if (ts->year < 1 || ts->month < 1 || ts->month > MONTHS_PER_YEAR ||
		ts->day < 1 || ts->day > day_tab[isleap(ts->year)][ts->month - 1] ||
		ts->hour >= HOURS_PER_DAY || ts->minute >= MINS_PER_HOUR ||
		ts->second >= SECS_PER_MINUTE)
		return false;
	return true;
}

/* Microseconds since 2000-01-01 00:00 of the text's local date and time. */
static inline int64
iso_local_usecs(const IsoTimestamp *ts)
{
	int64		days = date2j(ts->year, ts->month, ts->day) - POSTGRES_EPOCH_JDATE;
	int64		secs = (ts->hour * MINS_PER_HOUR + ts->minute) * SECS_PER_MINUTE + ts->second;

	return days * USECS_PER_DAY + secs * USECS_PER_SEC + ts->usec;
}

/* timestamptz input: the shortcut for ISO text with an offset, else timestamptz_in. */
static Datum
fast_timestamptz_in(PG_FUNCTION_ARGS)
{
	IsoTimestamp ts;

	if (PG_GETARG_INT32(2) < 0 && parse_iso_timestamp(PG_GETARG_CSTRING(0), &ts) &&
		ts.has_offset)
		PG_RETURN_TIMESTAMPTZ(iso_local_usecs(&ts) - (int64) ts.offset_secs * USECS_PER_SEC);
	return timestamptz_in(fcinfo);
}

/* timestamp input: the shortcut for ISO text without an offset, else timestamp_in. */
static Datum
fast_timestamp_in(PG_FUNCTION_ARGS)
{
	IsoTimestamp ts;

	if (PG_GETARG_INT32(2) < 0 && parse_iso_timestamp(PG_GETARG_CSTRING(0), &ts) &&
		!ts.has_offset)
		PG_RETURN_TIMESTAMP(iso_local_usecs(&ts));
	return timestamp_in(fcinfo);
}

/* Exact powers of ten as doubles: 10^22 is the largest one. */
static const double exact_powers_of_ten[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* float8 input: the shortcut for plain decimals, else float8in. */
static Datum
fast_float8_in(PG_FUNCTION_ARGS)
{
	const char *p = PG_GETARG_CSTRING(0);
	bool		negative = false;
	uint64		m = 0;
	int			ndigits = 0;
	int			nfraction = 0;

	if (*p == '-')
	{
		negative = true;
		p++;
	}
	for (; *p >= '0' && *p <= '9'; p++, ndigits++)
		if (ndigits < 18)
			m = m * 10 + (*p - '0');
	if (*p == '.')
	{
		for (p++; *p >= '0' && *p <= '9'; p++, ndigits++, nfraction++)
			if (ndigits < 18)
				m = m * 10 + (*p - '0');
	}
	if (*p == '\0' && ndigits > 0 && ndigits <= 18 &&
		m <= (UINT64CONST(1) << 53) && nfraction <= 22)
	{
		double		v = (double) m / exact_powers_of_ten[nfraction];

		PG_RETURN_FLOAT8(negative ? -v : v);
	}
	return float8in(fcinfo);
}

/*
 * If values of type typid have a shortcut, make flinfo (already set up by
 * fmgr_info for the type's input function) call it instead.  The shortcut
 * takes the same arguments and gives the same results and errors.
 */
void
stream_fast_input_install(FmgrInfo *flinfo, Oid typid)
{
	if (typid == TIMESTAMPTZOID && flinfo->fn_addr == timestamptz_in)
		flinfo->fn_addr = fast_timestamptz_in;
	else if (typid == TIMESTAMPOID && flinfo->fn_addr == timestamp_in)
		flinfo->fn_addr = fast_timestamp_in;
	else if (typid == FLOAT8OID && flinfo->fn_addr == float8in)
		flinfo->fn_addr = fast_float8_in;
}
