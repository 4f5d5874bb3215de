/*
 * spec.c
 *	  Parsing and checking the window options of a continuous view.
 *
 *	 time_column = 'col'		event time instead of arrival_timestamp
 *	 ttl = '1 day', ttl_column = 'minute'	expire rows of a tumbling view
 *	 sliding_window = '5 minutes' [, step = '15 seconds']
 *	 hop_size = '10 minutes', hop_slide = '1 minute'
 *	 session_gap = '30 minutes'
 *	 allowed_lateness = '1 minute', keep_late = true	 (with time_column)
 *	 ttl also applies to hopping (by window_end) and session (by session_end)
 *	 views.
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "window/spec.h"

/* allowed_lateness of an event-time view that does not set it */
#define DEFAULT_LATENESS "1 minute"

/* sliding_window / step when step is not given */
#define DEFAULT_STEPS_PER_WINDOW 20

static const char *const option_names[] = {
	"time_column", "ttl", "ttl_column", "sliding_window", "step", "hop_size",
	"hop_slide", "session_gap", "allowed_lateness", "keep_late", NULL
};

const char *
stream_window_kind_name(WindowKind kind)
{
	switch (kind)
	{
		case WINDOW_SLIDING:
			return "sliding";
		case WINDOW_HOPPING:
			return "hopping";
		case WINDOW_SESSION:
			return "session";
		default:
			return "none";
	}
}

int64
stream_interval_usecs(Interval *interval)
{
	return interval->time + interval->day * USECS_PER_DAY;
}

/* The longest window, step, gap, ttl or lateness */
#define WINDOW_MAX_YEARS 1000

static Interval *
parse_interval(const char *option, const char *text, bool fixed_length, bool zero_ok,
			   bool bounded)
{
	Interval   *interval = DatumGetIntervalP(DirectFunctionCall3(interval_in,
																 CStringGetDatum(text),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)));

	/* its length in microseconds, counted without overflowing */
	double		length = (double) interval->month * DAYS_PER_MONTH * USECS_PER_DAY +
		(double) interval->day * USECS_PER_DAY + (double) interval->time;

	if (fixed_length && interval->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" cannot contain months or years", option),
				 errdetail("Windows are cut into fixed lengths of time; use days instead.")));

	/*
	 * Reads and the reaper subtract it from now: keep that within timestamps
	 * (the watermark's subtraction of the lateness is guarded instead), and
	 * any length within what a count of microseconds holds.
	 */
	if (length > (bounded ? (double) WINDOW_MAX_YEARS * DAYS_PER_YEAR * USECS_PER_DAY :
				  (double) PG_INT64_MAX / 2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is too long", option),
				 bounded ? errdetail("\"%s\" was given; the limit is %d years.", text, WINDOW_MAX_YEARS) :
				 errdetail("\"%s\" was given.", text)));
	if (interval->month < 0 || length < 0 || (double) interval->day * USECS_PER_DAY < -(double) PG_INT64_MAX / 2 ||
		stream_interval_usecs(interval) < 0 ||
		(!zero_ok && interval->month == 0 && stream_interval_usecs(interval) == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a positive interval", option),
				 errdetail("\"%s\" was given.", text)));
	if (fixed_length)
	{
		/* days are 24 hours here, as date_bin takes them: keep them as hours */
		interval->time = stream_interval_usecs(interval);
		interval->day = 0;
	}
	return interval;
}

static void
requires(const char *option, bool present, const char *needed, const char *detail)
{
	if (present)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" requires \"%s\"", option, needed),
				 detail ? errdetail("%s", detail) : 0));
}

static void
conflict(const char *a, bool has_a, const char *b, bool has_b, const char *detail)
{
	if (has_a && has_b)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("conflicting continuous view options \"%s\" and \"%s\"", a, b),
				 errdetail("%s", detail)));
}

/*
 * Check a spec given as text (from options or the catalog) and make it.
 * Errors name the option at fault.
 */
WindowSpec *
stream_window_spec_from_text(WindowSpecText *t)
{
	WindowSpec *spec = palloc0(sizeof(WindowSpec));
	const char *size_option = NULL;
	const char *step_option = NULL;

	if (t->kind == NULL || strcmp(t->kind, "none") == 0)
		spec->kind = WINDOW_NONE;
	else if (strcmp(t->kind, "sliding") == 0)
		spec->kind = WINDOW_SLIDING, size_option = "sliding_window", step_option = "step";
	else if (strcmp(t->kind, "hopping") == 0)
		spec->kind = WINDOW_HOPPING, size_option = "hop_size", step_option = "hop_slide";
	else if (strcmp(t->kind, "session") == 0)
		spec->kind = WINDOW_SESSION, size_option = "session_gap";
	else
		elog(ERROR, "unknown window kind \"%s\"", t->kind);

	spec->time_column = t->time_column ? pstrdup(t->time_column) : NULL;
	if (size_option)
		spec->size = parse_interval(size_option, t->size, true, false, true);
	if (t->step)
		spec->step = parse_interval(step_option ? step_option : "step", t->step, true, false, true);
	if (t->ttl)
		spec->ttl = parse_interval("ttl", t->ttl, false, false, true);
	spec->ttl_column = t->ttl_column ? pstrdup(t->ttl_column) : NULL;
	if (t->lateness)
		spec->lateness = parse_interval("allowed_lateness", t->lateness, false, true, false);
	spec->keep_late = (t->keep_late != NULL && parse_bool(t->keep_late, &spec->keep_late) &&
					   spec->keep_late);

	requires("ttl", spec->kind == WINDOW_NONE && spec->ttl && !spec->ttl_column, "ttl_column",
			 "A view without a window expires rows by one of its time bucket columns, for example ttl_column = 'minute'.");
	requires("ttl_column", spec->ttl_column && !spec->ttl, "ttl", NULL);
	if (spec->ttl_column && spec->kind != WINDOW_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"ttl_column\" cannot be used with a %s window",
						stream_window_kind_name(spec->kind)),
				 errdetail("Rows of a hopping window expire by window_end, rows of a session window by session_end.")));
	if (spec->ttl && spec->kind == WINDOW_SLIDING)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"ttl\" cannot be used with a sliding window"),
				 errdetail("A sliding window forgets events older than the window by itself.")));
	requires("allowed_lateness", spec->lateness && !spec->time_column, "time_column",
			 "Lateness is measured in event time; events are never late by arrival time.");
	requires("keep_late", spec->keep_late && !spec->time_column, "time_column",
			 "Lateness is measured in event time; events are never late by arrival time.");

	if (spec->kind == WINDOW_SLIDING)
	{
		if (spec->step == NULL)
		{
			int64		usecs = stream_interval_usecs(spec->size) / DEFAULT_STEPS_PER_WINDOW;

			spec->step = palloc0(sizeof(Interval));
			spec->step->time = Max(usecs, 1);
		}
		if (stream_interval_usecs(spec->step) > stream_interval_usecs(spec->size))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"step\" must not exceed \"sliding_window\"")));
	}
	else if (spec->kind == WINDOW_HOPPING)
	{
		requires("hop_size", spec->step == NULL, "hop_slide", NULL);
		if (stream_interval_usecs(spec->size) % stream_interval_usecs(spec->step) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"hop_size\" must be a multiple of \"hop_slide\""),
					 errdetail("Each window is made of whole slices of hop_slide.")));
	}
	else
		requires("step", spec->step != NULL, "sliding_window", NULL);

	if (spec->time_column && spec->lateness == NULL)
		spec->lateness = parse_interval("allowed_lateness", DEFAULT_LATENESS, false, true, false);
	return spec;
}

/*
 * The window of CREATE VIEW ... WITH (continuous, options...): options are
 * DefElems other than "continuous".
 */
WindowSpec *
stream_window_spec_from_options(List *options)
{
	WindowSpecText text = {0};
	char	   *sliding = NULL,
			   *hop_size = NULL,
			   *hop_slide = NULL,
			   *gap = NULL,
			   *step = NULL;
	List	   *seen = NIL;
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);
		const char *const *name;
		ListCell   *ls;

		for (name = option_names; *name; name++)
			if (strcmp(*name, def->defname) == 0)
				break;
		if (*name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized continuous view option \"%s\"", def->defname),
					 errhint("Valid options are continuous, output, notify, security_barrier, time_column, ttl, ttl_column, sliding_window, step, hop_size, hop_slide, session_gap, allowed_lateness and keep_late.")));
		foreach(ls, seen)
			if (strcmp(lfirst(ls), def->defname) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("option \"%s\" specified more than once", def->defname)));
		seen = lappend(seen, def->defname);

		if (strcmp(def->defname, "time_column") == 0)
			text.time_column = defGetString(def);
		else if (strcmp(def->defname, "ttl") == 0)
			text.ttl = defGetString(def);
		else if (strcmp(def->defname, "ttl_column") == 0)
			text.ttl_column = defGetString(def);
		else if (strcmp(def->defname, "sliding_window") == 0)
			sliding = defGetString(def);
		else if (strcmp(def->defname, "step") == 0)
			step = defGetString(def);
		else if (strcmp(def->defname, "hop_size") == 0)
			hop_size = defGetString(def);
		else if (strcmp(def->defname, "hop_slide") == 0)
			hop_slide = defGetString(def);
		else if (strcmp(def->defname, "session_gap") == 0)
			gap = defGetString(def);
		else if (strcmp(def->defname, "allowed_lateness") == 0)
			text.lateness = defGetString(def);
		else if (strcmp(def->defname, "keep_late") == 0)
			text.keep_late = defGetBoolean(def) ? "true" : "false";
	}

	{
		const char *detail = "A continuous view has at most one window: sliding_window, hop_size and hop_slide, or session_gap.";

		conflict("sliding_window", sliding != NULL, "hop_size", hop_size != NULL, detail);
		conflict("sliding_window", sliding != NULL, "hop_slide", hop_slide != NULL, detail);
		conflict("sliding_window", sliding != NULL, "session_gap", gap != NULL, detail);
		conflict("session_gap", gap != NULL, "hop_size", hop_size != NULL, detail);
		conflict("session_gap", gap != NULL, "hop_slide", hop_slide != NULL, detail);
		conflict("step", step != NULL, "hop_slide", hop_slide != NULL,
				 "step belongs to sliding windows; a hopping window's step is hop_slide.");
	}
	requires("hop_slide", hop_slide && !hop_size, "hop_size", NULL);
	requires("hop_size", hop_size && !hop_slide, "hop_slide", NULL);
	requires("step", step && !sliding, "sliding_window", NULL);

	if (sliding)
		text.kind = "sliding", text.size = sliding, text.step = step;
	else if (hop_size)
		text.kind = "hopping", text.size = hop_size, text.step = hop_slide;
	else if (gap)
		text.kind = "session", text.size = gap;
	return stream_window_spec_from_text(&text);
}

/* An interval as an SQL literal: 'text'::pg_catalog.interval */
char *
stream_interval_sql(Interval *interval)
{
	return psprintf("%s::pg_catalog.interval",
					quote_literal_cstr(DatumGetCString(DirectFunctionCall1(interval_out,
																		   IntervalPGetDatum(interval)))));
}

static char *
interval_text(Interval *interval)
{
	if (interval == NULL)
		return NULL;
	return DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(interval)));
}

/* The text form of spec, as the catalog stores it, into *t */
void
stream_window_spec_to_text(WindowSpec *spec, WindowSpecText *t)
{
	memset(t, 0, sizeof(WindowSpecText));
	t->kind = pstrdup(stream_window_kind_name(spec->kind));
	t->time_column = spec->time_column;
	t->size = interval_text(spec->size);
	t->step = interval_text(spec->step);
	t->ttl = interval_text(spec->ttl);
	t->ttl_column = spec->ttl_column;
	t->lateness = interval_text(spec->lateness);
	t->keep_late = spec->keep_late ? "true" : "false";
}

/* Does the view measure lateness (an event-time column)? */
bool
stream_window_has_event_time(WindowSpec *spec)
{
	return spec != NULL && spec->time_column != NULL;
}
