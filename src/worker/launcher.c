/*
 * launcher.c
 *	  The launcher: one static background worker that starts and restarts
 *	  the per-database processes.
 *
 * At start it asks for the workers of every database that accepts
 * connections; those of databases without the extension exit at once.
 * Afterwards it starts whatever backends request (a writer whose database
 * has no workers yet), reaps processes that stopped before attaching, and
 * restarts a database's processes that stopped after an error, at most once
 * per RESTART_DELAY_MS so that a persistent error cannot become a crash loop.
 * When max_worker_processes leaves no room for a database's processes, it
 * logs that once (and once when they start after all); the database's
 * writers get the error at once (ipc/queue.c).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ipc/queue.h"
#include "worker/worker.h"

#define RESTART_DELAY_MS 5000

void
stream_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "stream_ext");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "stream_ext_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "stream_ext launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "stream_ext launcher");
	RegisterBackgroundWorker(&worker);
}

/* Register the process of one slot.  Returns false when no bgworker slot is free. */
static bool
stream_start_worker(int slotno, Oid dboid, void **handle)
{
	BackgroundWorker worker;
	bool		combiner = (stream_slot_role(slotno) == ROLE_COMBINER);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "stream_ext");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "stream_ext_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "stream_ext %s %d for database %u",
			 combiner ? "combiner" : "worker", slotno, dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "stream_ext %s", combiner ? "combiner" : "worker");
	worker.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(worker.bgw_extra, &dboid, sizeof(Oid));
	return RegisterDynamicBackgroundWorker(&worker, (BackgroundWorkerHandle **) handle);
}

/* The name of a database, for the log (the launcher has no database). */
static char *
database_name(Oid dboid)
{
	char	   *name;

	StartTransactionCommand();
	name = get_database_name(dboid);
	if (name == NULL)
		name = psprintf("%u", dboid);
	name = MemoryContextStrdup(TopMemoryContext, name);
	CommitTransactionCommand();
	return name;
}

/*
 * A group's processes could not all start (a new condition), or could
 * after failing: one log line per change, however often writers ask again.
 */
static void
log_start_change(Oid dboid, bool failed)
{
	char	   *name = database_name(dboid);

	if (failed)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the stream_ext workers of database \"%s\"", name),
				 errdetail("All %d background worker slots (max_worker_processes) are in use. Writers into this database fail until the workers start; this is logged once.",
						   max_worker_processes),
				 errhint("Raise max_worker_processes: stream_ext needs %d per database plus one, and one per Kafka consumer worker.",
						 stream_slots_per_group())));
	else
		ereport(LOG,
				(errmsg("the stream_ext workers of database \"%s\" started", name)));
	pfree(name);
}

/*
 * Register the processes of the slots in starts (taken from the requests);
 * log when a group's processes begin to fail to start, or start again.
 */
static void
start_requested(List *starts, void **handles)
{
	int			ngroups = stream_group_count();
	bool	   *tried = palloc0(sizeof(bool) * ngroups);
	bool	   *failed = palloc0(sizeof(bool) * ngroups);
	Oid		   *dboids = palloc0(sizeof(Oid) * ngroups);
	ListCell   *lc;

	foreach(lc, starts)
	{
		int			slotno = lfirst_int(lc);
		int			groupno = stream_slot_group(slotno);
		Oid			dboid = stream_slot_database(slotno);

		if (handles[slotno] != NULL)
		{
			pfree(handles[slotno]);
			handles[slotno] = NULL;
		}
		tried[groupno] = true;
		dboids[groupno] = dboid;
		if (!stream_start_worker(slotno, dboid, &handles[slotno]))
		{
			if (stream_slot_start_failed(slotno) && !failed[groupno])
				log_start_change(dboid, true);
			failed[groupno] = true;
		}
	}
	for (int g = 0; g < ngroups; g++)
		if (tried[g] && !failed[g] && stream_group_started(g))
			log_start_change(dboids[g], false);
	pfree(tried);
	pfree(failed);
	pfree(dboids);
}

/* Databases no place was free for when request_all_databases asked */
static List *not_yet_requested = NIL;

/* Ask for the workers of every database that accepts connections. */
static void
request_all_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (db->datallowconn && !db->datistemplate && !stream_request_launch(db->oid))
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			not_yet_requested = lappend_oid(not_yet_requested, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/*
 * Request the databases every place was taken for at start-up, as places
 * come free: the workers of a database without the extension leave at
 * once, and give their place up.  Each is requested once; a database that
 * was dropped meanwhile starts no process (its workers cannot connect).
 */
static void
request_databases_not_yet_requested(void)
{
	List	   *still = NIL;
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	foreach(lc, not_yet_requested)
		if (!stream_request_launch(lfirst_oid(lc)))
			still = lappend_oid(still, lfirst_oid(lc));
	list_free(not_yet_requested);
	not_yet_requested = still;
	MemoryContextSwitchTo(old);
}

void
stream_ext_launcher_main(Datum arg)
{
	int			ngroups = stream_group_count();
	int			nslots = ngroups * stream_slots_per_group();
	void	  **handles;
	TimestampTz *last_restart;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("stream_ext launcher");

	handles = MemoryContextAllocZero(TopMemoryContext, sizeof(void *) * nslots);
	last_restart = MemoryContextAllocZero(TopMemoryContext,
										  sizeof(TimestampTz) * ngroups);
	stream_launcher_attach();

	request_all_databases();

	for (;;)
	{
		List	   *starts;
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* Processes that stopped */
		for (int i = 0; i < nslots; i++)
		{
			pid_t		pid;

			if (handles[i] != NULL &&
				GetBackgroundWorkerPid((BackgroundWorkerHandle *) handles[i], &pid) == BGWH_STOPPED)
			{
				Oid			dboid = stream_slot_database(i);

				pfree(handles[i]);
				handles[i] = NULL;
				if (!stream_slot_reap(i))
					ereport(WARNING,
							(errmsg("stream_ext gives up starting the workers of database %u",
									dboid),
							 errdetail("Its processes stopped before they started, many times in a row."),
							 errhint("See the errors above; the next INSERT into one of its streams starts them again.")));
			}
		}

		/* Databases whose processes partly stopped */
		for (int g = 0; g < ngroups; g++)
		{
			if (TimestampDifferenceExceeds(last_restart[g], now, RESTART_DELAY_MS) &&
				stream_group_needs_restart(g))
				last_restart[g] = now;
		}

		if (not_yet_requested != NIL)
			request_databases_not_yet_requested();
		starts = stream_take_launch_requests();
		start_requested(starts, handles);
		list_free(starts);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
