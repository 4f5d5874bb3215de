/*
 * event_tuple.c
 *	  A stream event as the rings carry it: the heap tuple image of its
 *	  values, whose xmin is the (sub)transaction that wrote it.  Writers
 *	  (stream/insert.c), Kafka consumers (kafka/batch.c) and transforms into
 *	  a stream (worker/forward.c) form their events here.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"

#include "stream/event_tuple.h"

/* Where the parts of the event of values go */
EventLayout
stream_event_layout(TupleDesc desc, Datum *values, bool *isnull)
{
	EventLayout layout = {false, SizeofHeapTupleHeader, 0};

	for (int i = 0; i < desc->natts; i++)
		layout.hasnull |= isnull[i];
	if (layout.hasnull)
		layout.hoff += BITMAPLEN(desc->natts);
	layout.hoff = MAXALIGN(layout.hoff);
	layout.len = layout.hoff + heap_compute_data_size(desc, values, isnull);
	return layout;
}

/*
 * Form the event of values in td (layout.len bytes); its writer is set
 * apart.  The whole event is zeroed first, as heap_form_tuple's palloc0
 * does: heap_fill_tuple skips the padding that aligns a 4-byte varlena
 * header, and a stale byte there reads as a short varlena's header.
 */
void
stream_event_fill(HeapTupleHeader td, EventLayout layout, TupleDesc desc, Datum *values,
				  bool *isnull)
{
	memset(td, 0, layout.len);
	HeapTupleHeaderSetNatts(td, desc->natts);
	td->t_hoff = layout.hoff;
	heap_fill_tuple(desc, values, isnull, (char *) td + layout.hoff, layout.len - layout.hoff,
					&td->t_infomask, layout.hasnull ? td->t_bits : NULL);
}

/*
 * The event's writer: its xmin, with the rest of a heap tuple's header.  Not
 * a datum's header (length, type, typmod), which shares its storage with
 * the xmin.
 */
void
stream_event_set_writer(HeapTupleHeader td, TransactionId writer)
{
	HeapTupleHeaderSetXmin(td, writer);
	HeapTupleHeaderSetCmin(td, FirstCommandId);
	HeapTupleHeaderSetXmax(td, InvalidTransactionId);
	ItemPointerSetInvalid(&td->t_ctid);
}
