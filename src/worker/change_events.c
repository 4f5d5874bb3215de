/*
 * change_events.c
 *	  The combiner's job that emits the events of change streams.
 *
 * After the combiner's merges, at every turn of its loop, each view with a
 * change stream whose merges noted changed groups, or which has rows that
 * the watermark made final (or, for a view whose rows change with time,
 * every TIME_CHECK_MS) has its changes emitted in one transaction: the
 * groups to compare are taken out of changed_<id>, and the statements of
 * changes/change_sql.c, run as the view's owner in a security-restricted
 * operation, return the events and bring the view's emitted rows up to
 * date; their rows go to a ForwardReceiver (forward.c), which makes them
 * events of the change stream whose writer is this transaction;
 * stream_apply_events applies them to the stream's views, and so on down
 * the chain, in the same transaction.  So the events and the emitted rows
 * they were compared with commit together or not at all: a crash or an
 * error before the commit leaves the noted groups noted, and the next turn
 * emits them again from the same emitted rows.  An error in a view
 * downstream is retried with per-event isolation, as a batch is (apply.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "catalog/view_errors.h"
#include "changes/changes.h"
#include "ipc/queue.h"
#include "window/lateness.h"
#include "window/spec.h"
#include "jobs/jobs.h"
#include "jobs/retry.h"
#include "worker/apply.h"
#include "worker/change_events.h"
#include "worker/counters.h"
#include "worker/forward.h"
#include "worker/paused_views.h"
#include "worker/time_limit.h"

/* Views whose rows change with time are compared whole this often */
#define TIME_CHECK_MS 1000

/*
 * An emission takes at most this many noted groups (the rest wait for the
 * job's next turn); with rows final at watermark, more than twice as many
 * groups are found by reading the whole view
 */
#define MAX_LISTED_GROUPS 20000

/*
 * A comparison of the whole view (sliding windows, ttl, many rows final at
 * watermark) runs within this many times the view's time limit: it is most
 * of it the extension's work, as an ANALYZE of the view's state is.
 */
#define WHOLE_VIEW_LIMITS 10

/* One view's emission, for stream_job_in_transaction */
typedef struct Emission
{
	ChangeStream *change;
	bool		all;			/* compare every row */
	bool		careful;		/* apply events one at a time on error */
	int			nevents;		/* out: events emitted */
	bool		applying;		/* out: the error came from a view downstream */
} Emission;

static TimestampTz last_time_check = 0;

/*
 * A view whose emission failed waits before the next attempt, from 1 s,
 * doubling up to a minute: an error that persists (the view's read fails)
 * is logged that often, not at every turn.
 */
static StreamRetries emission_retries = STREAM_RETRIES(1000, 60000);

/*
 * The groups to compare: up to MAX_LISTED_GROUPS of those merges noted
 * (taken out of changed_<id>), and those of
 * rows final at watermark, as text arrays (the _gid, then each key:
 * stream_changes_groups_sql); NULL when there are none, and an array of
 * NULLs when there are more than twice MAX_LISTED_GROUPS (compare every
 * row).
 * SPI connected.
 */
static char **
take_groups(ContinuousViewRow *row, List *keys, const char *watermark)
{
	char	  **groups;
	bool		isnull;
	int64		n;

	if (SPI_execute(stream_changes_groups_sql(row, keys, watermark, MAX_LISTED_GROUPS),
					false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not take the changed groups of continuous view %s", row->name);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (n == 0)
		return NULL;
	groups = palloc0(sizeof(char *) * SPI_tuptable->tupdesc->natts);
	if (n > 2 * MAX_LISTED_GROUPS)
		return groups;
	for (int i = 0; i < SPI_tuptable->tupdesc->natts - 1; i++)
		groups[i] = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 2);
	return groups;
}

/* Run one statement of an emission into dest, and keep its events */
static void
run_emission(const char *sql, DestReceiver *dest, const char *view)
{
	SPIExecuteOptions options = {0};

	options.dest = dest;
	if (SPI_execute_extended(sql, &options) < 0)
		elog(ERROR, "could not emit the changes of continuous view %s", view);
	stream_forward_keep(dest);
}

/* The statements of one emission, run as the view's owner */
typedef struct EmissionRun
{
	EmitSql    *sql;
	DestReceiver *dest;
	const char *view;
} EmissionRun;

static void
run_emissions(void *arg)
{
	EmissionRun *r = arg;

	run_emission(r->sql->diff, r->dest, r->view);
	if (r->sql->close != NULL)
		run_emission(r->sql->close, r->dest, r->view);
}

static void
emit_in_transaction(void *arg)
{
	Emission   *e = arg;
	ContinuousViewRow *row;
	WindowSpec *window;
	List	   *outputs = NIL;
	DestReceiver *dest;
	StreamRunAs as;
	int			level;
	char	   *watermark = NULL;
	EmitSql    *sql;
	char	  **groups;
	List	   *keys;

	e->nevents = 0;
	e->applying = false;

	/*
	 * DROP of the stream or the view waits for this, or happened before.
	 * The view first, then its change stream: the order of a DROP of the
	 * view, which drops the stream with it (a DROP of the stream alone
	 * takes the stream only).
	 */
	row = stream_catalog_view(e->change->view_id);
	if (row == NULL)
		return;
	LockRelationOid(row->view, AccessShareLock);
	LockRelationOid(e->change->stream, AccessShareLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(row->view)) ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(e->change->stream)) ||
		!OidIsValid(stream_view_relation_relid(row->id, VIEW_EMITTED_ROWS, true)))
		return;
	/*
	 * Then the changed groups and the emitted rows, before the groups are
	 * taken (a truncate_continuous_view, which notes every emitted group
	 * under ExclusiveLock on the emitted rows, waited on the groups this
	 * one took, and this one then on it), each only if free at once: a
	 * truncate left open must not stall the combiner.  Busy: the groups
	 * wait for the next turn.
	 */
	if (!stream_lock_if_free(stream_view_relation_relid(row->id, VIEW_CHANGED_GROUPS, false),
							 RowExclusiveLock) ||
		!stream_lock_if_free(stream_view_relation_relid(row->id, VIEW_EMITTED_ROWS, false),
							 RowExclusiveLock))
		return;
	window = stream_window_spec_from_text(&row->window);

	/* the events outlive SPI: they are applied after it */
	dest = stream_forward_receiver(e->change->stream, &outputs, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = stream_changes_pin_text();
	if (stream_window_has_event_time(window))
		watermark = stream_lateness_watermark_literal(row->id);
	keys = stream_changes_own_keys(row);
	groups = take_groups(row, keys, watermark);
	if (e->all || groups != NULL)
	{
		bool		whole = e->all || groups[0] == NULL;
		EmissionRun run;

		sql = stream_changes_emit_sql(row, keys, whole ? NULL : groups, watermark);
		run.sql = sql;
		run.dest = dest;
		run.view = row->name;
		/* the owner's HAVING and final functions: within the time limit */
		stream_begin_as_owner(&as, row->owner);
		stream_view_time_limited_times(row->name, whole ? WHOLE_VIEW_LIMITS : 1,
									   run_emissions, &run);
		stream_end_as_owner(&as);
	}
	AtEOXact_GUC(false, level);
	SPI_finish();
	dest->rDestroy(dest);

	if (outputs != NIL)
	{
		e->nevents = ((StreamBatchEvents *) linitial(outputs))->nevents;
		e->applying = true;
		stream_apply_events(outputs, COMBINER_COUNTER_WORKER, e->careful);
		e->applying = false;
	}
}

/* A view's emission that failed, for record_failure */
typedef struct FailedEmission
{
	int			view_id;
	ErrorData  *edata;
} FailedEmission;

static void
record_failure(void *arg)
{
	FailedEmission *f = arg;
	ViewErrorLog log;

	stream_view_errors_begin(&log, f->view_id);
	stream_view_errors_record_reason(&log, f->edata->sqlerrcode,
									 psprintf("the change stream's events could not be emitted (tried again later): %s",
											  f->edata->message ? f->edata->message : "unknown error"));
	stream_view_errors_end(&log);
}

/*
 * A view downstream of a change stream whose code raises transient errors
 * (a PL/pgSQL RAISE of 40001) would fail every emission of the view, and
 * so stop the change stream for all its readers.  As for a batch
 * (worker.c), after STREAM_TRANSIENT_TRIES such failures in a row in the
 * same downstream view, that view owns them: its careful retry sets the
 * event causing one aside for it.  One entry per view whose emission
 * failed that way lately, until one commits (the list and its entries
 * in TopMemoryContext: the job's context is reset between turns).
 */
typedef struct EmissionTries
{
	int			view_id;
	StreamTransientTries tries;
} EmissionTries;

static List *emission_tries = NIL;

static EmissionTries *
tries_of(int view_id, bool make)
{
	ListCell   *lc;
	EmissionTries *t;
	MemoryContext old;

	foreach(lc, emission_tries)
	{
		t = lfirst(lc);
		if (t->view_id == view_id)
			return t;
	}
	if (!make)
		return NULL;
	old = MemoryContextSwitchTo(TopMemoryContext);
	t = palloc0(sizeof(EmissionTries));
	t->view_id = view_id;
	emission_tries = lappend(emission_tries, t);
	MemoryContextSwitchTo(old);
	return t;
}

static void
forget_tries(int view_id)
{
	EmissionTries *t = tries_of(view_id, false);

	if (t != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		emission_tries = list_delete_ptr(emission_tries, t);
		pfree(t);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Emit the changes of one view (at most MAX_LISTED_GROUPS noted groups;
 * the rest at the job's next turn); on an error, once more with care.  An error
 * that remains (the view's rows cannot be read: a final function or HAVING
 * that raises) is logged, and recorded in view_errors at the first failure
 * of a run of failures, unless that one is transient (a lock someone holds
 * for a while), and at the third: each try is not, so as not to push out
 * the records of events set aside; the view's next try waits, doubling up
 * to a minute.
 */
static void
emit_view_changes(ChangeStream *change, bool all, MemoryContext cxt)
{
	Emission	e = {change, all, false, 0, false};

	if (!stream_retry_due(&emission_retries, change->view_id) ||
		stream_view_paused(change->view_id))
		return;
	stream_paused_views_work_for(change->view_id);
	if (stream_job_in_transaction(emit_in_transaction, &e, cxt) != NULL)
	{
		ErrorData  *edata;
		EmissionTries *t = tries_of(change->view_id, false);

		e.careful = true;
		stream_paused_views_work_for(change->view_id);	/* no view's plan runs yet */
		if (t != NULL)
			stream_apply_views_own_transient_errors(t->tries.owning, t->tries.nowning);
		edata = stream_job_in_transaction(emit_in_transaction, &e, cxt);
		stream_apply_views_own_transient_errors(NULL, 0);
		stream_paused_views_work_for(0);
		if (edata != NULL)
		{
			FailedEmission f = {change->view_id, edata};
			int			failures;

			/* a view downstream may own them from then on */
			if (e.applying && stream_error_is_transient(edata->sqlerrcode))
				(void) stream_transient_tries_note(&tries_of(change->view_id, true)->tries,
												   edata->sqlerrcode);
			stream_retry_note(&emission_retries, change->view_id, false);
			failures = stream_retry_failures(&emission_retries, change->view_id);
			if (failures == STREAM_TRANSIENT_TRIES ||
				(failures == 1 && !stream_error_is_transient(edata->sqlerrcode)))
				(void) stream_job_in_transaction(record_failure, &f, cxt);
			return;				/* the groups stay noted */
		}
	}
	stream_paused_views_work_for(0);
	stream_retry_note(&emission_retries, change->view_id, true);
	forget_tries(change->view_id);
	/* the views downstream have deltas to merge */
	if (e.nevents > 0)
		stream_note_mergeable(stream_batch_slot_for_backend());
}

/* The change streams, and which views to compare whole, for the job */
typedef struct DueEmissions
{
	bool		time_check;		/* compare whole the views that follow time */
	MemoryContext cxt;
	List	   *changes;		/* ChangeStream *, in cxt */
	List	   *all;			/* view ids to compare whole, in cxt */
} DueEmissions;

static void
list_due_emissions(void *arg)
{
	DueEmissions *due = arg;
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	due->changes = stream_catalog_change_streams(due->cxt);
	SPI_finish();
	foreach(lc, due->changes)
	{
		ChangeStream *change = lfirst(lc);
		ContinuousViewRow *row = stream_catalog_view(change->view_id);

		if (due->time_check && row != NULL &&
			stream_changes_follow_time(stream_window_spec_from_text(&row->window)))
		{
			MemoryContext old = MemoryContextSwitchTo(due->cxt);

			due->all = lappend_int(due->all, change->view_id);
			MemoryContextSwitchTo(old);
		}
	}
}

/*
 * The job: every change stream's due emissions.  A view with more noted
 * groups goes on at the job's next turn (at most STREAM_JOB_TICK_MS later),
 * after the combiner's merges and the other jobs: a backlog of a million
 * groups must not hold them up.
 */
static bool
change_events_job(MemoryContext cxt)
{
	TimestampTz now = GetCurrentTimestamp();
	DueEmissions due = {TimestampDifferenceExceeds(last_time_check, now, TIME_CHECK_MS), cxt,
	NIL, NIL};
	ListCell   *lc;

	if (stream_job_in_transaction(list_due_emissions, &due, cxt) != NULL)
		return false;
	foreach(lc, due.changes)
	{
		ChangeStream *change = lfirst(lc);

		emit_view_changes(change, list_member_int(due.all, change->view_id), cxt);
	}
	if (due.time_check)
		last_time_check = now;
	return false;
}

/* Register the job with the combiner; from _PG_init. */
void
stream_change_events_init(void)
{
	stream_job_register("events of change streams", change_events_job);
}
