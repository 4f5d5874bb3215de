/*
 * settings.c
 *	  The settings batch workers, combiners and Kafka consumer workers run
 *	  with, whatever ALTER DATABASE / ALTER ROLE ... SET say.
 *
 * A background worker connects as the bootstrap superuser and takes the
 * database's and that role's settings, which are meant for sessions: a
 * lock_timeout set for users made batches of event-time views fail on the
 * watermark row lock and discarded them.  These are pinned at the highest
 * priority (PGC_S_OVERRIDE); README lists them.
 *
 * A writer that applies its stream's transforms into tables itself
 * (writer_apply.c) must produce the rows a worker would: the settings the
 * results of expressions depend on (a timestamptz cast to date or text, a
 * float to text, to_char, to_tsvector) are the workers' there, not the
 * writer session's.  Batch workers publish their values in the group's
 * shared memory when they start and after each reload, and the writer
 * adopts them for the apply.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/planner.h"
#include "utils/guc.h"

#include "ipc/queue.h"
#include "worker/settings.h"

typedef struct PinnedSetting
{
	const char *name;
	const char *value;
} PinnedSetting;

static const PinnedSetting pinned[] = {
	/* waits are part of the work: a batch never gives up on a lock */
	{"lock_timeout", "0"},
	{"statement_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	/* our transactions rely on these */
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_deferrable", "off"},
	{"session_replication_role", "origin"},
	{"row_security", "on"},
	/* generated SQL is qualified; nothing resolves through the path */
	{"search_path", "pg_catalog"},
	/* no parallel plans: plan_serially below */
	{"max_parallel_workers_per_gather", "0"},
	/* only kept executors are compiled (kept_executor.c), never a plan run once */
	{"jit_above_cost", "-1"},
	/* the users' statements, not the merges of every view, fill its entries */
	{"pg_stat_statements.track", "none"},
	{NULL, NULL}
};

/*
 * Every plan made in these processes is serial.  A parallel plan's workers
 * would keep the run's own thread from a CPU, which its time limit does not
 * charge (time_limit.c), and take the background worker slots stream_ext's
 * processes need.  The pinned setting is not enough: a SET clause of a
 * function the view calls, or its set_config, outranks an override.
 */
static planner_hook_type prev_planner = NULL;

static PlannedStmt *
plan_serially(Query *parse, const char *query_string, int cursorOptions,
			  ParamListInfo boundParams)
{
	cursorOptions &= ~CURSOR_OPT_PARALLEL_OK;
	if (prev_planner != NULL)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/*
 * Pin the settings above, and plan serially; call right after connecting
 * to the database.
 */
void
stream_worker_pin_settings(void)
{
	for (const PinnedSetting *s = pinned; s->name != NULL; s++)
		SetConfigOption(s->name, s->value, PGC_SUSET, PGC_S_OVERRIDE);
	if (planner_hook != plan_serially)
	{
		prev_planner = planner_hook;
		planner_hook = plan_serially;
	}
}

/* The settings the results of a transform's expressions depend on */
static const char *const result_settings[] = {
	"TimeZone", "timezone_abbreviations", "DateStyle", "IntervalStyle",
	"extra_float_digits", "lc_monetary", "lc_numeric", "lc_time",
	"bytea_output", "xmlbinary", "xmloption", "default_text_search_config",
	"array_nulls", "quote_all_identifiers", NULL
};

/*
 * Publish this worker's values of result_settings for the writers of its
 * database: each value with its terminating zero, in the order of the list
 * (none if they do not fit: writers then leave their events to the
 * workers).  The workers of a database connect alike and take the same
 * values; after a reload that changed them, the last to publish wins.
 */
void
stream_worker_publish_settings(void)
{
	char		buf[STREAM_GROUP_SETTINGS_SIZE];
	int			len = 0;

	for (const char *const *name = result_settings; *name != NULL; name++)
	{
		const char *value = GetConfigOption(*name, false, false);
		int			n = strlen(value) + 1;

		if (len + n > STREAM_GROUP_SETTINGS_SIZE)
		{
			len = 0;			/* none, rather than stale ones */
			break;
		}
		memcpy(buf + len, value, n);
		len += n;
	}
	stream_group_publish_settings(MyDatabaseId, buf, len);
}

/*
 * Writer side: take the workers' values of result_settings, until the end
 * of the caller's (sub)transaction or GUC nesting level.  False, changing
 * nothing, if the workers of this database have published none.  A value
 * the writer cannot take (a text search configuration it cannot see) is an
 * error: the caller runs this in the subtransaction of its apply, whose
 * failure leaves the events to the workers.
 */
bool
stream_adopt_worker_settings(void)
{
	char		buf[STREAM_GROUP_SETTINGS_SIZE];
	int			len = stream_group_settings(MyDatabaseId, buf);
	const char *value = buf;

	if (len == 0)
		return false;
	for (const char *const *name = result_settings; *name != NULL; name++)
	{
		if (value >= buf + len)
			return false;
		if (strcmp(GetConfigOption(*name, false, false), value) != 0)
			(void) set_config_option(*name, value, PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
		value += strlen(value) + 1;
	}
	return true;
}
