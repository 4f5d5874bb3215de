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
 */
#include "postgres.h"

#include "utils/guc.h"

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
	/* only kept executors are compiled (kept_executor.c), never a plan run once */
	{"jit_above_cost", "-1"},
	{NULL, NULL}
};

/* Pin the settings above; call right after connecting to the database. */
void
stream_worker_pin_settings(void)
{
	for (const PinnedSetting *s = pinned; s->name != NULL; s++)
		SetConfigOption(s->name, s->value, PGC_SUSET, PGC_S_OVERRIDE);
}
