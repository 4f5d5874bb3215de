/*
 * view_stage.c
 *	  A Kafka producer takes the events of its staging view (the events no
 *	  writer or worker could format in C, src/kafka/README.md) out of it
 *	  with the stage statement of sink_sql.c, which formats them in SQL with
 *	  the casts and output functions of the stream's types: user code, run
 *	  as the producer's role, which may raise for one event.
 *
 * Such an error is the event's, and costs only it: the batch is taken again
 * by the events' ctids, in halves, each in a subtransaction, down to the
 * events that fail alone; those are deleted from the staging view
 * unformatted and recorded in kafka_sink_errors (counted in
 * kafka_producers.errors), and the others go on to the outbox.  A round
 * tries at most MAX_TRIES subtransactions; what it did not reach stays
 * staged for the next.  An error the server met (a deadlock, a lock not
 * available, a cancel, memory or disk running out), or one of the rights
 * or objects the formatting needs, is the batch's, not an event's: it is
 * raised, and the batch taken again later; so are failures all alike (one
 * SQLSTATE and message) when no event of the batch went through, unless
 * they are surely the events' (surely_of_the_events).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "guc.h"
#include "kafka/kafka_guc.h"
#include "kafka/outbox.h"
#include "kafka/view_stage.h"
#include "worker/apply.h"

/* Subtransactions a round spends on finding the events that fail alone */
#define MAX_TRIES 64

/* The messages taken so far, in cxt */
typedef struct Taken
{
	StagedMessage *messages;
	int			n;
	int			size;
	MemoryContext cxt;
} Taken;

/* The rows of a batch whose formatting failed: kept rows, then deltas */
typedef struct Candidates
{
	const KafkaSinkStageSql *sql;
	int			id;
	Oid			owner;
	Datum	   *tids;			/* ItemPointer datums */
	int			nkept;			/* the first nkept are kept rows */
	int			n;
	int			tries;
	bool		some_formatted; /* a try took events */
	List	   *failed;			/* FailedEvent *: the events that failed alone */
	Taken	   *taken;
} Candidates;

/* A candidate that failed alone, and its error */
typedef struct FailedEvent
{
	int			index;
	ErrorData  *error;
} FailedEvent;

/* Copy the n rows (key, value) of tuptable into t */
static void
add_messages(Taken *t, SPITupleTable *tuptable, uint64 n)
{
	MemoryContext old = MemoryContextSwitchTo(t->cxt);

	for (uint64 i = 0; i < n; i++)
	{
		bool		key_null;
		bool		value_null;
		Datum		key = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &key_null);
		Datum		value = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 2, &value_null);

		if (value_null)
			elog(ERROR, "a staged message of a Kafka producer is null");
		if (t->n == t->size)
		{
			t->size = Max(16, t->size * 2);
			t->messages = t->messages ? repalloc(t->messages, sizeof(StagedMessage) * t->size) :
				palloc(sizeof(StagedMessage) * t->size);
		}
		t->messages[t->n].key = key_null ? NULL : TextDatumGetCString(key);
		t->messages[t->n].value = TextDatumGetCString(value);
		t->n++;
	}
	MemoryContextSwitchTo(old);
}

/*
 * May e be the events' own, their values' that a cast or output function
 * failed on: a data exception, a limit a value exceeds, an internal error
 * (a C function's elog), or anything a PL/pgSQL RAISE threw, whatever its
 * SQLSTATE?  Not an error the server met (a deadlock, a cancel, memory or
 * disk running out), nor one of the rights or the objects the formatting
 * needs (a function the role may not call, or gone): those fail every
 * event alike, and are the batch's.
 */
static bool
error_of_the_events(ErrorData *e)
{
	int			category = ERRCODE_TO_CATEGORY(e->sqlerrcode);

	return stream_error_raised_by_code(e) || category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_PROGRAM_LIMIT_EXCEEDED || e->sqlerrcode == ERRCODE_INTERNAL_ERROR;
}

/* Surely the events' own: not only what every event might meet alike */
static bool
surely_of_the_events(ErrorData *e)
{
	return stream_error_raised_by_code(e) ||
		ERRCODE_TO_CATEGORY(e->sqlerrcode) == ERRCODE_DATA_EXCEPTION;
}

/* A stage statement to run as owner, and where its messages go */
typedef struct StageRun
{
	const char *sql;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *args;
	Oid			owner;
	Taken	   *taken;
} StageRun;

static void
run_stage(void *arg)
{
	StageRun   *r = arg;
	StreamRunAs as;

	stream_begin_as_owner(&as, r->owner);
	if (SPI_execute_with_args(r->sql, r->nargs, r->argtypes, r->args, NULL, false, 0) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not stage the events of a Kafka producer");
	stream_end_as_owner(&as);
	add_messages(r->taken, SPI_tuptable, SPI_processed);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Run sql (a stage statement) as owner in a subtransaction and add the
 * messages it returns to t.  Returns NULL, or the events' error that failed
 * it (the subtransaction rolled back: nothing taken); any other error is
 * raised.
 */
static ErrorData *
try_as_owner(const char *sql, int nargs, Oid *argtypes, Datum *args, Oid owner, Taken *t)
{
	StageRun	run = {sql, nargs, argtypes, args, owner, t};
	ErrorData  *e = stream_try_in_subtransaction(run_stage, &run);

	if (e != NULL && !error_of_the_events(e))
		ReThrowError(e);
	return e;
}

/* A tid array of the candidates [lo, hi) that are kept rows (or deltas) */
static Datum
tid_array(Candidates *c, int lo, int hi, bool kept)
{
	int			from = kept ? lo : Max(lo, c->nkept);
	int			to = kept ? Min(hi, c->nkept) : hi;

	return PointerGetDatum(construct_array(c->tids + from, Max(to - from, 0), TIDOID,
										   sizeof(ItemPointerData), false, TYPALIGN_SHORT));
}

/*
 * Delete candidate i unformatted and record it in kafka_sink_errors with e;
 * false when it was gone meanwhile (the combiner moved it)
 */
static bool
set_aside(Candidates *c, int i, ErrorData *e)
{
	Oid			argtypes[5] = {INT4OID, TIDARRAYOID, TIDARRAYOID, INT8OID, TEXTOID};
	Datum		args[5];
	const char *error = e->message ? e->message : "unknown error";

	args[0] = Int32GetDatum(c->id);
	args[1] = tid_array(c, i, i + 1, true);
	args[2] = tid_array(c, i, i + 1, false);
	args[3] = Int64GetDatum(kafka_outbox_new_numbers());
	args[4] = CStringGetTextDatum(error);
	if (SPI_execute_with_args(c->sql->set_aside, 5, argtypes, args, NULL, false, 0) !=
		SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not set aside an event of Kafka producer %d", c->id);
	if (SPI_processed != 1 || strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
									 "1") != 0)
		return false;
	ereport(LOG,
			(errmsg("stream_ext kafka producer %d: an event could not be formatted, set aside in kafka_sink_errors",
					c->id),
			 errdetail_internal("%s", error)));
	return true;
}

/*
 * Take the candidates [lo, hi), known to fail together when failing is
 * set, splitting them until the events that fail alone are found (noted in
 * c->failed).  Returns whether they were all taken at once.
 */
static bool
take_range(Candidates *c, int lo, int hi, bool failing)
{
	Oid			argtypes[2] = {TIDARRAYOID, TIDARRAYOID};
	Datum		args[2];
	ErrorData  *e = NULL;
	int			mid = lo + (hi - lo) / 2;

	CHECK_FOR_INTERRUPTS();
	if (lo >= hi || c->tries >= MAX_TRIES)
		return false;
	/* (one event is tried all the same: its own error is what is recorded) */
	if (!failing || hi - lo == 1)
	{
		c->tries++;
		args[0] = tid_array(c, lo, hi, true);
		args[1] = tid_array(c, lo, hi, false);
		e = try_as_owner(c->sql->stage_rows, 2, argtypes, args, c->owner, c->taken);
		if (e == NULL)
		{
			c->some_formatted = true;
			return true;
		}
	}
	if (hi - lo == 1)
	{
		if (e != NULL)
		{
			FailedEvent *f = palloc(sizeof(FailedEvent));

			f->index = lo;
			f->error = e;
			c->failed = lappend(c->failed, f);
		}
		return false;
	}
	/* when the first half goes through, the second is the one that fails */
	if (take_range(c, lo, mid, false))
		(void) take_range(c, mid, hi, true);
	else
		(void) take_range(c, mid, hi, false);
	return false;
}

/* Did candidate i fail alone? */
static bool
failed_alone(Candidates *c, int i)
{
	ListCell   *lc;

	foreach(lc, c->failed)
		if (((FailedEvent *) lfirst(lc))->index == i)
			return true;
	return false;
}

/*
 * Do the failures look like the batch's rather than the events': none of
 * them surely an event's, all with one SQLSTATE and message (a right or an
 * object the formatting needs, that every event misses alike)?
 */
static bool
failures_alike(Candidates *c)
{
	ErrorData  *first = ((FailedEvent *) linitial(c->failed))->error;
	ListCell   *lc;

	foreach(lc, c->failed)
	{
		ErrorData  *e = ((FailedEvent *) lfirst(lc))->error;

		if (surely_of_the_events(e) || e->sqlerrcode != first->sqlerrcode ||
			strcmp(e->message ? e->message : "", first->message ? first->message : "") != 0)
			return false;
	}
	return true;
}

/*
 * Set aside the events that failed alone, when the errors were theirs: some
 * other event of the batch went through, or the failures differ, or one is
 * surely an event's (surely_of_the_events).  Otherwise the failures are
 * the batch's: the first is raised, and the events stay staged.  The search
 * may have spent its tries on failing events at the batch's front: the last
 * candidate is tried alone first, so that a batch with some good event is
 * not taken for a failing one.
 */
static void
set_aside_failed(Candidates *c)
{
	ListCell   *lc;
	bool		any = false;
	Oid			trim_types[2] = {INT4OID, INT4OID};
	Datum		trim_args[2] = {Int32GetDatum(c->id), Int32GetDatum(stream_ext_kafka_max_errors)};

	if (c->failed == NIL)
		return;
	if (!c->some_formatted && c->n > 1 && !failed_alone(c, c->n - 1))
	{
		c->tries = Min(c->tries, MAX_TRIES - 1);	/* one more, past the limit */
		(void) take_range(c, c->n - 1, c->n, false);
	}
	if (!c->some_formatted && failures_alike(c))
		ReThrowError(((FailedEvent *) linitial(c->failed))->error);
	foreach(lc, c->failed)
	{
		FailedEvent *f = lfirst(lc);

		any |= set_aside(c, f->index, f->error);
	}
	/* the newest kafka_max_errors are kept, once for the round */
	if (any &&
		SPI_execute_with_args(kafka_sink_trim_errors_sql(), 2, trim_types, trim_args,
							  NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not trim the set-aside events of Kafka producer %d", c->id);
}

/* The candidates of a batch: its rows' ctids, as the stage statement picks them */
static void
read_candidates(Candidates *c, int limit)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(limit)};
	Datum	   *kept;
	Datum	   *deltas;
	int			nkept;
	int			ndeltas;
	bool		isnull;

	if (SPI_execute_with_args(c->sql->candidates, 1, argtypes, args, NULL, true, 0) !=
		SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the staged events of Kafka producer %d", c->id);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull)),
					  TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT,
					  &kept, NULL, &nkept);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 2, &isnull)),
					  TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT,
					  &deltas, NULL, &ndeltas);
	ndeltas = Min(ndeltas, limit - nkept);
	c->tids = palloc(sizeof(Datum) * Max(nkept + ndeltas, 1));
	memcpy(c->tids, kept, sizeof(Datum) * nkept);
	memcpy(c->tids + nkept, deltas, sizeof(Datum) * ndeltas);
	c->nkept = nkept;
	c->n = nkept + ndeltas;
}

int
kafka_stage_from_view(int id, const KafkaSinkStageSql *sql, Oid owner, int limit,
					  StagedMessage **messages, MemoryContext cxt)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2] = {Int32GetDatum(id), Int32GetDatum(limit)};
	Taken		taken = {NULL, 0, 0, cxt};

	if (try_as_owner(sql->stage, 2, argtypes, args, owner, &taken) != NULL)
	{
		Candidates	c = {sql, id, owner, NULL, 0, 0, 0, false, NIL, &taken};

		/* an event's formatting failed the batch: find it */
		read_candidates(&c, limit);
		(void) take_range(&c, 0, c.n, true);
		set_aside_failed(&c);
	}
	*messages = taken.messages;
	return taken.n;
}
