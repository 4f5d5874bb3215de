/*
 * event_tuple.h
 *	  A stream event as the rings carry it: the heap tuple image of its
 *	  values, whose xmin is the (sub)transaction that wrote it.
 */
#ifndef STREAM_EXT_EVENT_TUPLE_H
#define STREAM_EXT_EVENT_TUPLE_H

#include "access/htup_details.h"
#include "access/tupdesc.h"

/* Where an event's parts go */
typedef struct EventLayout
{
	bool		hasnull;		/* it has a null bitmap */
	Size		hoff;			/* its data starts here */
	Size		len;			/* header and data */
} EventLayout;

extern EventLayout stream_event_layout(TupleDesc desc, Datum *values, bool *isnull);
extern void stream_event_fill(HeapTupleHeader td, EventLayout layout, TupleDesc desc,
							  Datum *values, bool *isnull);
extern void stream_event_set_writer(HeapTupleHeader td, TransactionId writer);

#endif
