/*
 * forward.c
 *	  The rows of a transform into a stream, as events of that stream.
 *
 * A worker runs a transform's plan like a row-keeping view's (its writer,
 * then its columns), but instead of a delta table its rows go to a
 * ForwardReceiver: each row becomes an event of the output stream, the heap
 * tuple image the rings carry, whose xmin is the row's writer (the
 * transaction, or subtransaction, that wrote the event it came from) and
 * whose arrival_timestamp is the batch's time.  The apply loop
 * (worker/apply.c) then applies those events to the output stream's views
 * in the same transaction, as it applies a batch read from a ring: views
 * downstream tag their deltas with the original writer, so they see the
 * rows exactly when that writer commits, never if it aborts, and a crash
 * before the batch commits loses nothing (the batch is applied again).
 *
 * The rows of a run are pending until the caller keeps them
 * (stream_forward_keep), after the run succeeded: a careful retry runs a
 * view's plan several times, and only its successful run's rows count.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "stream/column_fill.h"
#include "stream/event_tuple.h"
#include "stream/insert.h"
#include "worker/forward.h"

typedef struct ForwardReceiver
{
	DestReceiver pub;
	Oid			stream;			/* the output stream */
	bool		check_insert;	/* the user must be allowed to INSERT into it */
	List	  **outputs;		/* StreamBatchEvents * of kept rows, one per
								 * output stream, in cxt; NULL for trials */
	MemoryContext cxt;			/* a trial receiver's own, reset at each run */
	bool		trial;			/* runs never kept (stream_forward_trial_receiver) */
	StreamBatchEvents *pending; /* this run's events */
	TupleDesc	desc;			/* the stream's, for this run */
	int		   *attnos;			/* the stream column of each row column */
	int			ncolumns;
	int			arrival_attno;
	TimestampTz arrival;
	Datum	   *values;
	bool	   *isnull;
	StreamColumnFill *fill;		/* the stream's defaults and generated columns */
} ForwardReceiver;

static StreamBatchEvents *
new_events(Oid stream, MemoryContext cxt)
{
	StreamBatchEvents *ev = MemoryContextAllocZero(cxt, sizeof(StreamBatchEvents));

	ev->stream = stream;
	ev->capacity = 64;
	ev->events = MemoryContextAlloc(cxt, sizeof(HeapTupleData) * ev->capacity);
	ev->only = -1;
	return ev;
}

static void
forward_startup(DestReceiver *self, int operation, TupleDesc rows)
{
	ForwardReceiver *r = (ForwardReceiver *) self;
	Relation	rel = table_open(r->stream, AccessShareLock);
	List	   *columns = stream_output_columns(rel);
	AclResult	acl;
	MemoryContext old;
	int			i = 0;
	ListCell   *lc;

	/* a trial's rows are never kept: the last run's go */
	if (r->trial)
		MemoryContextReset(r->cxt);
	old = MemoryContextSwitchTo(r->cxt);

	/* the view's owner writes into the stream: it must still be allowed to */
	if (r->check_insert)
	{
		acl = pg_class_aclcheck(r->stream, GetUserId(), ACL_INSERT);
		if (acl != ACLCHECK_OK)
			aclcheck_error(acl, OBJECT_FOREIGN_TABLE, RelationGetRelationName(rel));
	}

	r->desc = CreateTupleDescCopy(RelationGetDescr(rel));
	r->ncolumns = rows->natts - 1;
	if (r->ncolumns < 1 || r->ncolumns > list_length(columns) ||
		TupleDescAttr(rows, 0)->atttypid != XID8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stream \"%s\" does not match the transform writing into it",
						RelationGetRelationName(rel))));
	r->attnos = palloc(sizeof(int) * r->ncolumns);
	foreach(lc, columns)
	{
		if (i == r->ncolumns)
			break;
		r->attnos[i] = lfirst_int(lc);
		if (TupleDescAttr(r->desc, r->attnos[i] - 1)->atttypid !=
			TupleDescAttr(rows, i + 1)->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("column \"%s\" of stream \"%s\" does not match the transform writing into it",
							NameStr(TupleDescAttr(r->desc, r->attnos[i] - 1)->attname),
							RelationGetRelationName(rel))));
		i++;
	}
	r->arrival_attno = stream_arrival_attno(rel);
	r->arrival = GetCurrentTransactionStartTimestamp();
	r->values = palloc(sizeof(Datum) * r->desc->natts);
	r->isnull = palloc(sizeof(bool) * r->desc->natts);
	r->pending = new_events(r->stream, r->cxt);
	MemoryContextSwitchTo(old);
	/* the columns the transform does not fill take their defaults */
	{
		Bitmapset  *given = NULL;

		for (i = 0; i < r->ncolumns; i++)
			given = bms_add_member(given, r->attnos[i]);
		r->fill = stream_column_fill_begin(rel, given);
	}
	table_close(rel, AccessShareLock);
}

/*
 * An event as the rings carry it (stream/insert.c forms them so): the
 * heap tuple image of values, whose xmin is writer.
 */
static HeapTuple
form_event(TupleDesc desc, Datum *values, bool *isnull, TransactionId writer)
{
	EventLayout layout = stream_event_layout(desc, values, isnull);
	HeapTuple	tuple = palloc(HEAPTUPLESIZE + layout.len);

	tuple->t_data = (HeapTupleHeader) ((char *) tuple + HEAPTUPLESIZE);
	tuple->t_len = layout.len;
	stream_event_fill(tuple->t_data, layout, desc, values, isnull);
	stream_event_set_writer(tuple->t_data, writer);
	return tuple;
}

/* One row: the writer, then the stream's columns, as an event of the stream */
static bool
forward_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ForwardReceiver *r = (ForwardReceiver *) self;
	StreamBatchEvents *ev = r->pending;
	TupleDesc	desc = r->desc;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	TransactionId writer;
	HeapTuple	tuple;
	HeapTupleData *dst;

	slot_getallattrs(slot);
	if (slot->tts_isnull[0])
		elog(ERROR, "a transform's row has no writer");
	writer = XidFromFullTransactionId(DatumGetFullTransactionId(slot->tts_values[0]));
	for (int i = 0; i < desc->natts; i++)
	{
		r->values[i] = (Datum) 0;
		r->isnull[i] = true;
	}
	for (int i = 0; i < r->ncolumns; i++)
	{
		int			a = r->attnos[i] - 1;
		Datum		value = slot->tts_values[i + 1];

		/* a value read from a joined table may be toasted there */
		if (!slot->tts_isnull[i + 1] && TupleDescAttr(desc, a)->attlen == -1 &&
			VARATT_IS_EXTERNAL(DatumGetPointer(value)))
			value = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(value)));
		r->values[a] = value;
		r->isnull[a] = slot->tts_isnull[i + 1];
	}
	if (r->arrival_attno > 0)
	{
		r->values[r->arrival_attno - 1] = TimestampTzGetDatum(r->arrival);
		r->isnull[r->arrival_attno - 1] = false;
	}
	if (r->fill != NULL)
	{
		MemoryContextSwitchTo(old);
		stream_column_fill(r->fill, r->values, r->isnull);
		MemoryContextSwitchTo(r->cxt);
	}
	tuple = form_event(desc, r->values, r->isnull, writer);

	if (ev->nevents == ev->capacity)
	{
		ev->capacity *= 2;
		ev->events = repalloc_huge(ev->events, sizeof(HeapTupleData) * ev->capacity);
	}
	dst = &ev->events[ev->nevents++];
	*dst = *tuple;
	dst->t_tableOid = r->stream;
	ItemPointerSetInvalid(&dst->t_self);
	MemoryContextSwitchTo(old);
	return true;
}

static void
forward_shutdown(DestReceiver *self)
{
	ForwardReceiver *r = (ForwardReceiver *) self;

	stream_column_fill_end(r->fill);
	r->fill = NULL;
}

static void
forward_destroy(DestReceiver *self)
{
}

/*
 * A receiver making the rows of a transform's plan events of stream; kept
 * runs add them to *outputs.  With check_insert, the current user (the
 * transform's owner) must be allowed to INSERT into the stream; a change
 * stream's events come from the extension itself.  Allocated in the
 * current memory context, which must last as long as *outputs is used.
 */
DestReceiver *
stream_forward_receiver(Oid stream, List **outputs, bool check_insert)
{
	ForwardReceiver *r = palloc0(sizeof(ForwardReceiver));

	r->pub.receiveSlot = forward_receive;
	r->pub.rStartup = forward_startup;
	r->pub.rShutdown = forward_shutdown;
	r->pub.rDestroy = forward_destroy;
	r->pub.mydest = DestNone;
	r->stream = stream;
	r->check_insert = check_insert;
	r->outputs = outputs;
	r->cxt = CurrentMemoryContext;
	return (DestReceiver *) r;
}

/*
 * A receiver forming the rows of trial runs of a transform into stream as
 * events (its generated columns computed, its INSERT right checked) that
 * are never kept: each run's are freed at the next.
 */
DestReceiver *
stream_forward_trial_receiver(Oid stream)
{
	ForwardReceiver *r = (ForwardReceiver *) stream_forward_receiver(stream, NULL, true);

	r->cxt = AllocSetContextCreate(CurrentMemoryContext, "stream_ext trial rows",
								   ALLOCSET_DEFAULT_SIZES);
	r->trial = true;
	return (DestReceiver *) r;
}

bool
stream_is_forward_receiver(DestReceiver *dest)
{
	return dest->receiveSlot == forward_receive;
}

/*
 * The last run of dest succeeded: add its events to those of its stream in
 * *outputs.
 */
void
stream_forward_keep(DestReceiver *dest)
{
	ForwardReceiver *r = (ForwardReceiver *) dest;
	StreamBatchEvents *into = NULL;
	ListCell   *lc;

	if (!stream_is_forward_receiver(dest) || r->pending == NULL || r->trial)
		return;
	if (r->pending->nevents == 0)
	{
		r->pending = NULL;
		return;
	}
	foreach(lc, *r->outputs)
		if (((StreamBatchEvents *) lfirst(lc))->stream == r->stream)
			into = lfirst(lc);
	if (into == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(r->cxt);

		*r->outputs = lappend(*r->outputs, r->pending);
		MemoryContextSwitchTo(old);
	}
	else
	{
		if (into->nevents + r->pending->nevents > into->capacity)
		{
			into->capacity = into->nevents + r->pending->nevents;
			into->events = repalloc_huge(into->events, sizeof(HeapTupleData) * into->capacity);
		}
		memcpy(into->events + into->nevents, r->pending->events,
			   sizeof(HeapTupleData) * r->pending->nevents);
		into->nevents += r->pending->nevents;
	}
	r->pending = NULL;
}
