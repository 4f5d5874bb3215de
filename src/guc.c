/*
 * guc.c
 *	  Defines the stream_ext.* configuration parameters.
 *
 * Parameters that size shared memory or the number of worker processes are
 * PGC_POSTMASTER; the rest can change at reload or per session.
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "guc.h"

/* set by _PG_init when the library is preloaded (stream_ext.c) */
bool		stream_ext_preloaded = false;

int			stream_ext_workers_per_database = 2;
int			stream_ext_max_databases = 8;
int			stream_ext_queue_size_kb = 4096;
int			stream_ext_batch_size = 20000;
int			stream_ext_flush_interval_ms = 10;
int			stream_ext_combine_interval_ms = 250;
int			stream_ext_commit_mode = STREAM_COMMIT_SYNC;
char	   *stream_ext_read_time_setting = NULL;
int			stream_ext_reap_interval_ms = 5000;
int			stream_ext_jit_above_events = 1000000;
int			stream_ext_max_view_errors = 1000;
int			stream_ext_view_time_limit_ms = 2000;
int			stream_ext_join_cache_kb = 65536;
int			stream_ext_pending_key_slots = 1048576;

static const struct config_enum_entry commit_mode_options[] = {
	{"sync", STREAM_COMMIT_SYNC, false},
	{"async", STREAM_COMMIT_ASYNC, false},
	{NULL, 0, false}
};

/*
 * Does text read as a timestamptz (under the current DateStyle and time
 * zone)?  If not, the input function's message becomes the detail of the
 * setting's error.
 */
static bool
reads_as_time(const char *text)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		(void) DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
								   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		GUC_check_errdetail("%s", edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * stream_ext.read_time: empty, or a fixed time ("now", "today" and the like
 * would be read once and then stand still).  The extension's background
 * processes take only the server's value (postgresql.conf, ALTER SYSTEM):
 * their reaper deletes rows for every owner of the database, so a value
 * that a database's or a role's owner set (ALTER DATABASE/ROLE ... SET) is
 * not theirs to follow.
 */
static bool
check_read_time(char **newval, void **extra, GucSource source)
{
	static const char *const relative[] = {"now", "today", "tomorrow", "yesterday", NULL};
	char	   *lower;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (IsBackgroundWorker &&
		(source == PGC_S_DATABASE || source == PGC_S_USER || source == PGC_S_DATABASE_USER))
	{
		GUC_check_errdetail("The extension's background processes take stream_ext.read_time from the server's configuration only.");
		return false;
	}
	lower = asc_tolower(*newval, strlen(*newval));
	for (int i = 0; relative[i] != NULL; i++)
		if (strstr(lower, relative[i]) != NULL)
		{
			GUC_check_errdetail("\"%s\" is a time relative to when it is read.", *newval);
			GUC_check_errhint("Give a fixed time, such as '2024-01-01 00:00:00+00', or an empty string for the transaction's start.");
			pfree(lower);
			return false;
		}
	/* infinity, and -infinity */
	if (strstr(lower, "infinity") != NULL)
	{
		GUC_check_errdetail("\"%s\" is no point in time a window or ttl can be measured from.", *newval);
		GUC_check_errhint("Give a fixed time, such as '2024-01-01 00:00:00+00', or an empty string for the transaction's start.");
		pfree(lower);
		return false;
	}
	pfree(lower);
	return reads_as_time(*newval);
}

void
stream_ext_define_gucs(void)
{
	DefineCustomIntVariable("stream_ext.workers",
							gettext_noop("Number of batch workers per database."),
							gettext_noop("Each worker has its own event queue in shared memory."),
							&stream_ext_workers_per_database,
							2, 1, 64,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.max_databases",
							gettext_noop("Maximum number of databases served at once."),
							NULL,
							&stream_ext_max_databases,
							8, 1, 256,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.queue_size",
							gettext_noop("Size of each worker's event queue in shared memory."),
							gettext_noop("Writers wait when the queue is full."),
							&stream_ext_queue_size_kb,
							4096, 256, 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.batch_size",
							gettext_noop("Maximum number of events a worker applies in one transaction."),
							NULL,
							&stream_ext_batch_size,
							20000, 1, 10000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.flush_interval",
							gettext_noop("Longest time a worker holds queued events before applying them."),
							gettext_noop("Events of a committing transaction are applied at once."),
							&stream_ext_flush_interval_ms,
							10, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.combine_interval",
							gettext_noop("How often pending deltas are merged into combine-state tables."),
							NULL,
							&stream_ext_combine_interval_ms,
							250, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("stream_ext.commit_mode",
							 gettext_noop("Whether COMMIT waits until a transaction's stream events are applied."),
							 gettext_noop("sync: applied and durable at COMMIT; async: applied within the flush interval."),
							 &stream_ext_commit_mode,
							 STREAM_COMMIT_SYNC, commit_mode_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("stream_ext.read_time",
							   gettext_noop("The time sliding windows, ttl and the reaper take as now."),
							   gettext_noop("Empty means the current transaction's start time. Meant for tests and for looking back within retention."),
							   &stream_ext_read_time_setting,
							   "",
							   PGC_USERSET, 0,
							   check_read_time, NULL, NULL);

	DefineCustomIntVariable("stream_ext.reap_interval",
							gettext_noop("How often expired rows of windowed views are deleted in the background."),
							NULL,
							&stream_ext_reap_interval_ms,
							5000, 100, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.max_view_errors",
							gettext_noop("Most errors kept per continuous view in stream_ext.view_errors."),
							gettext_noop("The newest are kept; view_stats counts every error."),
							&stream_ext_max_view_errors,
							1000, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.view_time_limit",
							gettext_noop("Longest one view may take over one batch (or one event of it) in a worker; 0 means no limit."),
							gettext_noop("A view that takes longer loses those events, recorded in view_errors."),
							&stream_ext_view_time_limit_ms,
							2000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.jit_above_events",
							gettext_noop("Events a view's kept executor runs before a worker JIT-compiles it."),
							gettext_noop("-1 never compiles. Compilation also needs jit = on."),
							&stream_ext_jit_above_events,
							1000000, -1, PG_INT32_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.join_cache_size",
							gettext_noop("Memory each batch worker or Kafka consumer may use for copies of the tables views join."),
							gettext_noop("A copy answers a view's lookups in a table while the table does not change; 0 means every lookup probes the table's index."),
							&stream_ext_join_cache_kb,
							65536, 0, MAX_KILOBYTES,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("stream_ext.pending_key_slots",
							gettext_noop("Slots of shared memory (8 bytes each) that tell a read of one group whether the group may have unmerged deltas."),
							gettext_noop("Rounded down to a power of two; 0 means every read of one group scans the view's delta table."),
							&stream_ext_pending_key_slots,
							1048576, 0, 64 * 1024 * 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("stream_ext");
}

/*
 * Resolve names as the extension's own SQL must, whoever's session it runs
 * in: search_path = pg_catalog, then pg_temp (named last: left implicit it
 * would be searched first, and a session's temporary objects could hide
 * pg_catalog's).  Until AtEOXact_GUC(false, the returned level), which also
 * drops any setting code run meanwhile changed.
 */
int
stream_pin_internal_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Run as the extension: the bootstrap superuser, never through the
 * caller's search_path, where the caller's operators or types could come
 * first.
 */
void
stream_begin_as_extension(StreamRunAs *as)
{
	GetUserIdAndSecContext(&as->user, &as->sec);
	as->guc_level = stream_pin_internal_search_path();
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, as->sec | SECURITY_LOCAL_USERID_CHANGE);
}

/* Back to the caller, settings changed meanwhile dropped. */
void
stream_end_as_extension(StreamRunAs *as)
{
	AtEOXact_GUC(false, as->guc_level);
	SetUserIdAndSecContext(as->user, as->sec);
}

/*
 * Refuse a call that needs what only a preloaded library has: its shared
 * memory and its processes.  A server started without stream_ext in
 * shared_preload_libraries after CREATE EXTENSION has neither.
 */
void
stream_require_preload(void)
{
	if (!stream_ext_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stream_ext must be loaded via shared_preload_libraries"),
				 errhint("Add stream_ext to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Run as owner, in a security-restricted operation (guc.h) */
void
stream_begin_as_owner(StreamRunAs *as, Oid owner)
{
	GetUserIdAndSecContext(&as->user, &as->sec);
	SetUserIdAndSecContext(owner, as->sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	as->guc_level = NewGUCNestLevel();
}

/* Back to the caller, what the owner's code set dropped */
void
stream_end_as_owner(StreamRunAs *as)
{
	AtEOXact_GUC(false, as->guc_level);
	SetUserIdAndSecContext(as->user, as->sec);
}
