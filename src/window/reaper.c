/*
 * reaper.c
 *	  Expiry of windowed views' rows.
 *
 * A row is expired when no read can show it any more:
 *	 ttl (tumbling)	its ttl_column is at or before read_time - ttl (NULL
 *					never expires);
 *	 sliding		its step ends before the oldest step of the window;
 *	 hopping + ttl	every window holding its slice ended by read_time - ttl;
 *	 session + ttl	its session ended by read_time - ttl.
 * Reads filter expired rows themselves (read_sql.c), so deleting them is
 * only about space: every stream_ext.reap_interval a job of the combiner
 * (jobs/jobs.c) deletes them in statements of at most REAP_BATCH_ROWS rows,
 * each in its own transaction, skipping rows another transaction has
 * locked.  Only the combiner writes state rows, so this never waits for
 * ingestion and ingestion never waits for it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog/catalog.h"
#include "catalog/held_events.h"
#include "guc.h"
#include "jobs/jobs.h"
#include "window/clock.h"
#include "window/lateness.h"
#include "window/reaper.h"
#include "window/sliding.h"

PG_FUNCTION_INFO_V1(stream_ext_reap_expired);

/* Do rows of this view ever expire? */
bool
stream_window_expires(WindowSpec *spec)
{
	return spec->kind == WINDOW_SLIDING || spec->ttl != NULL;
}

/*
 * "Now" for the reaper, in the type of a state column.  A timestamptz column
 * takes read_time().  A timestamp (or date) column is read in the reader's
 * TimeZone, and readers may be anywhere from UTC-12 to UTC+14: the reaper
 * takes the earliest local time any of them can see, UTC less a day.
 */
static char *
reap_now_sql(Oid state, const char *column)
{
	Oid			type = get_atttype(state, get_attnum(state, column));

	if (type == TIMESTAMPTZOID)
		return STREAM_READ_TIME_SQL;
	return "((" STREAM_READ_TIME_SQL " AT TIME ZONE 'UTC') - '1 day'::pg_catalog.interval)";
}

/*
 * The time at or before which ttl expires a value of a state column, in its
 * type: for a timestamptz column what reads take (stream_ttl_cutoff_sql),
 * else counted back from reap_now_sql.
 */
static char *
reap_cutoff_sql(Oid state, const char *column, Interval *ttl)
{
	if (get_atttype(state, get_attnum(state, column)) == TIMESTAMPTZOID)
		return stream_ttl_cutoff_sql(ttl);
	return psprintf("(%s - %s)", reap_now_sql(state, column), stream_interval_sql(ttl));
}

/*
 * A stored session of view id may still grow while an event within the gap
 * after it may come: one applied but not merged yet (its partial session is
 * a delta, maybe of a writer still in progress, and was not late when it
 * was applied), or, for an event-time view, one not late yet (at or after
 * the watermark; an event before it is late and dropped).  The condition
 * that neither can, on a row of the state table state (SPI connected).
 */
static char *
session_closed_sql(int id, WindowSpec *spec, Oid state)
{
	ContinuousViewRow *row = stream_catalog_view(id);
	List	   *columns = stream_catalog_state_columns(id);
	char	   *table = stream_view_relation_sql(id, VIEW_STATE_TABLE);
	char	   *gap = stream_interval_sql(spec->size);
	StringInfoData buf;
	ListCell   *lc;

	if (row == NULL)
		elog(ERROR, "continuous view %d is not in the catalog", id);
	initStringInfo(&buf);
	appendStringInfo(&buf, "NOT EXISTS (SELECT 1 FROM %s d WHERE ",
					 stream_view_relation_sql(id, VIEW_DELTA_TABLE));
	foreach(lc, columns)
	{
		const char *col = ((StateColumn *) lfirst(lc))->name;

		if (foreach_current_index(lc) >= row->key_count)
			break;
		appendStringInfo(&buf, "d.%s IS NOT DISTINCT FROM %s.%s AND ", col, table, col);
	}
	appendStringInfo(&buf, "d._session_start <= %s._session_end + %s AND "
					 "d._session_end >= %s._session_start - %s AND "
					 "NOT " STREAM_INTERNAL_SCHEMA ".xid_aborted(d.writer_xid))",
					 table, gap, table, gap);
	if (stream_window_has_event_time(spec))
	{
		char	   *watermark = stream_lateness_settled_watermark_literal(id);

		/* no watermark yet: no event is late, any may join */
		if (watermark == NULL)
			return "false";
		/* (a time without zone is the watermark's taken in UTC, lateness.c) */
		if (get_atttype(state, get_attnum(state, "_session_end")) == TIMESTAMPTZOID)
			appendStringInfo(&buf, " AND %s._session_end + %s < %s::pg_catalog.timestamptz",
							 table, gap, watermark);
		else
			appendStringInfo(&buf, " AND %s._session_end + %s < "
							 "(%s::pg_catalog.timestamptz AT TIME ZONE 'UTC')",
							 table, gap, watermark);
	}
	else
	{
		/*
		 * arrival time: an event arriving within the gap may still join it,
		 * and so may one held back (stamped when it arrived)
		 */
		if (stream_held_events_any(id))
			return "false";
		appendStringInfo(&buf, " AND %s._session_end + %s < %s",
						 table, gap, reap_now_sql(state, "_session_end"));
	}
	return buf.data;
}

/*
 * The condition a state row of view id is expired under, or NULL.  SPI
 * connected.
 */
static char *
expired_condition(int id, WindowSpec *spec)
{
	Oid			state = stream_view_relation_relid(id, VIEW_STATE_TABLE, true);

	if (!OidIsValid(state))
		return NULL;
	switch (spec->kind)
	{
		case WINDOW_NONE:
			if (spec->ttl == NULL)
				return NULL;
			return psprintf("%s <= %s", quote_identifier(spec->ttl_column),
							reap_cutoff_sql(state, spec->ttl_column, spec->ttl));
		case WINDOW_SLIDING:
			{
				Oid			step_type = get_atttype(state, get_attnum(state, "_step"));
				char	   *before = stream_sliding_bound_sql(SLIDING_REAP_BEFORE, spec, step_type);
				Interval   *lengths[SLIDING_LEVELS];
				Interval	tail1 = {0};
				Interval	tail2 = {0};

				if (stream_sliding_levels(spec, lengths) == 1)
					return psprintf("_step < %s", before);
				/* a block goes once its last step has */
				tail1.time = stream_interval_usecs(lengths[1]) - stream_interval_usecs(spec->step);
				tail2.time = stream_interval_usecs(lengths[2]) - stream_interval_usecs(spec->step);
				return psprintf("(_level = 0 AND _step < %s OR _level = 1 AND _step < %s - %s"
								" OR _level = 2 AND _step < %s - %s)",
								before, before, stream_interval_sql(&tail1), before, stream_interval_sql(&tail2));
			}
		case WINDOW_HOPPING:
			if (spec->ttl == NULL)
				return NULL;
			return psprintf("_slice + %s <= %s", stream_interval_sql(spec->size),
							reap_cutoff_sql(state, "_slice", spec->ttl));
		case WINDOW_SESSION:
			if (spec->ttl == NULL)
				return NULL;
			return psprintf("_session_end <= %s AND %s", reap_cutoff_sql(state, "_session_end", spec->ttl),
							session_closed_sql(id, spec, state));
	}
	return NULL;
}

/*
 * Delete at most REAP_BATCH_ROWS expired rows of view id; returns how many.
 * The caller runs it inside a transaction with a snapshot.
 */
uint64
stream_reap_batch(int id, WindowSpec *spec)
{
	char	   *condition;
	char	   *state;
	Oid			delta;
	Oid			stateid;
	uint64		deleted;

	/*
	 * The delta table, which a session's condition reads, before the state
	 * table: the order of DROP VIEW (on_sql_drop), lest the two deadlock;
	 * each only if it is free at once (as the combiner's merge takes them:
	 * combiner.c); then the condition, of the view as it is once locked.
	 * Nothing to do now otherwise.
	 */
	delta = stream_view_relation_relid(id, VIEW_DELTA_TABLE, true);
	stateid = stream_view_relation_relid(id, VIEW_STATE_TABLE, true);
	if (!OidIsValid(delta) || !OidIsValid(stateid))
		return 0;
	if (!stream_lock_if_free(delta, AccessShareLock) ||
		!stream_lock_if_free(stateid, RowExclusiveLock) ||
		stream_catalog_view(id) == NULL)
		return 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	condition = expired_condition(id, spec);
	if (condition == NULL)
	{
		SPI_finish();
		return 0;
	}
	state = stream_view_relation_sql(id, VIEW_STATE_TABLE);
	if (SPI_execute(psprintf("DELETE FROM %s WHERE ctid = ANY (ARRAY("
							 "SELECT ctid FROM %s WHERE %s "
							 "LIMIT %d FOR UPDATE SKIP LOCKED))",
							 state, state, condition, REAP_BATCH_ROWS),
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete the expired rows of continuous view %d", id);
	deleted = SPI_processed;
	/* the result table of a view without a window holds the same groups */
	if (OidIsValid(stream_view_relation_relid(id, VIEW_RESULT_TABLE, true)) &&
		SPI_execute(psprintf("DELETE FROM %s WHERE ctid = ANY (ARRAY("
							 "SELECT ctid FROM %s WHERE %s "
							 "LIMIT %d FOR UPDATE SKIP LOCKED))",
							 stream_view_relation_sql(id, VIEW_RESULT_TABLE),
							 stream_view_relation_sql(id, VIEW_RESULT_TABLE), condition,
							 REAP_BATCH_ROWS),
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete the expired rows of continuous view %d", id);
	SPI_finish();
	return deleted;
}

/* A view with rows that expire, in the reaping job's list */
typedef struct ReapTarget
{
	int			id;
	Oid			owner;
	WindowSpec *spec;
	uint64		deleted;		/* by the last batch */
} ReapTarget;

typedef struct ReapRound
{
	MemoryContext cxt;
	List	   *targets;		/* ReapTarget *, in cxt */
} ReapRound;

/* The views whose rows expire (in a transaction) */
static void
list_expiring_views(void *arg)
{
	ReapRound  *round = arg;
	ListCell   *lc;

	foreach(lc, stream_catalog_views())
	{
		ContinuousViewRow *row = lfirst(lc);
		MemoryContext old = MemoryContextSwitchTo(round->cxt);
		WindowSpec *spec = stream_window_spec_from_text(&row->window);

		if (stream_window_expires(spec))
		{
			ReapTarget *t = palloc0(sizeof(ReapTarget));

			t->id = row->id;
			t->owner = row->owner;
			t->spec = spec;
			round->targets = lappend(round->targets, t);
		}
		MemoryContextSwitchTo(old);
	}
}

/*
 * One batch of a view's expired rows, deleted as the view's owner in a
 * security-restricted operation: whatever the owner attached to the state
 * table runs with the owner's rights, not the combiner's.
 */
static void
reap_one_batch(void *arg)
{
	ReapTarget *t = arg;
	StreamRunAs as;

	stream_begin_as_owner(&as, t->owner);
	t->deleted = stream_reap_batch(t->id, t->spec);
	stream_end_as_owner(&as);
}

/*
 * The combiner's reaping job: every stream_ext.reap_interval, one batch of
 * each view with expired rows per call, until no view has a full batch
 * left; returns true while one has.
 */
static bool
reap_job(MemoryContext cxt)
{
	static TimestampTz last_round = 0;
	static ReapRound round = {0};
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	if (round.targets == NIL)
	{
		if (!TimestampDifferenceExceeds(last_round, now, stream_ext_reap_interval_ms))
			return false;
		last_round = now;
		round.cxt = cxt;
		if (stream_job_in_transaction(list_expiring_views, &round, cxt) != NULL)
			round.targets = NIL;
	}
	foreach(lc, round.targets)
	{
		ReapTarget *t = lfirst(lc);

		if (stream_job_in_transaction(reap_one_batch, t, cxt) != NULL ||
			t->deleted < REAP_BATCH_ROWS)
			round.targets = foreach_delete_current(round.targets, lc);
	}
	return round.targets != NIL;
}

/* Register the reaping job with the combiner; from _PG_init. */
void
stream_reaper_init(void)
{
	stream_job_register("expired rows of windowed views", reap_job);
}

/*
 * stream_ext.reap_expired(view): delete the view's expired rows now.  As
 * the combiner's job does: as the view's owner in a security-restricted
 * operation, whoever calls it (a superuser may), and under the combiner's
 * search_path, so that the condition's operators are never the caller's.
 */
Datum
stream_ext_reap_expired(PG_FUNCTION_ARGS)
{
	Oid			view = PG_GETARG_OID(0);
	int			id;
	ContinuousViewRow *row;
	WindowSpec *spec;
	StreamRunAs as;
	int			path_level;
	uint64		total = 0;
	uint64		n;

	id = stream_owned_continuous_view_id(view);
	row = stream_catalog_view(id);
	if (row == NULL)
		elog(ERROR, "could not read continuous view %d", id);
	spec = stream_window_spec_from_text(&row->window);

	stream_begin_as_owner(&as, row->owner);
	path_level = stream_pin_internal_search_path();
	do
	{
		n = stream_reap_batch(id, spec);
		total += n;
		CHECK_FOR_INTERRUPTS();
	} while (n == REAP_BATCH_ROWS);
	AtEOXact_GUC(false, path_level);
	stream_end_as_owner(&as);
	PG_RETURN_INT64((int64) total);
}
