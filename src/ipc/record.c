/*
 * record.c
 *	  The records of an event ring: how writers lay out their events and
 *	  how workers read them back (layout in record_format.h).
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"

#include "ipc/queue.h"
#include "ipc/record_format.h"

/* Bytes an event of tuple_len bytes takes in a record */
Size
stream_event_size(Size tuple_len)
{
	return STREAM_EVENT_HDRSZ + MAXALIGN(tuple_len);
}

/* The largest event a ring takes, header included: half a ring, less a record header */
static Size
max_event_size(void)
{
	return StreamShared->ring_size / 2 - STREAM_RECORD_HDRSZ;
}

/*
 * Error unless an event of tuple_len bytes for stream fits a ring: a
 * writer's, or a Kafka consumer's from a message
 */
void
stream_check_event_size(Size tuple_len, Oid stream)
{
	if (stream_event_size(tuple_len) > max_event_size())
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event of %zu bytes is too large for stream \"%s\"",
						tuple_len, get_rel_name(stream)),
				 errhint("Raise stream_ext.queue_size; an event may use at most half of a worker's queue.")));
}

/*
 * Start an event of tuple_len bytes at event (stream_event_size(tuple_len)
 * bytes, MAXALIGNed): write its header, zero the padding after the tuple,
 * and return where the tuple image goes.
 */
HeapTupleHeader
stream_event_start(char *event, Size tuple_len)
{
	Size		size = stream_event_size(tuple_len);

	memset(event + MAXALIGN_DOWN(size - 1), 0, size - MAXALIGN_DOWN(size - 1));
	((StreamEventHeader *) event)->t_len = (uint32) tuple_len;
	return stream_event_tuple(event);
}

/* The tuple image of an event started at event */
HeapTupleHeader
stream_event_tuple(char *event)
{
	return (HeapTupleHeader) (event + STREAM_EVENT_HDRSZ);
}

/* Bytes the event started at event takes */
Size
stream_event_size_of(const char *event)
{
	return stream_event_size(((const StreamEventHeader *) event)->t_len);
}

/*
 * Send events (nevents of them, len bytes, made by stream_event_start) of
 * a stream as one record to the ring of slotno, waiting while the ring is
 * full.  A record of no events only carries its flags.  last_of: for a
 * record flagged LAST, how many workers get one.
 */
void
stream_ring_send(int slotno, uint16 flags, Oid stream, uint32 nevents, uint64 xact_seq,
				 uint32 last_of, const char *events, Size len)
{
	StreamRecordHeader hdr;

	memset(&hdr, 0, sizeof(hdr));
	hdr.kind = STREAM_RECORD_EVENTS;
	hdr.flags = flags;
	hdr.procno = MyProc->pgprocno;
	hdr.stream = stream;
	hdr.nevents = nevents;
	hdr.top_xid = GetTopTransactionIdIfAny();
	hdr.xact_seq = xact_seq;
	hdr.last_of = last_of;
	if (flags & (STREAM_FLAG_COMMIT | STREAM_FLAG_ASYNC))
		hdr.sent_at = GetCurrentTimestamp();
	stream_ring_put(slotno, &hdr, events, len);
}

/*
 * The first record of slotno's ring at or after pos and before to, padding
 * skipped; false when there is none.  The worker that owns the ring reads
 * [read_pos, write_pos) without a lock: writers never touch that range.
 */
bool
stream_ring_next_record(int slotno, uint64 pos, uint64 to, StreamRecord *rec)
{
	StreamWorkerSlot *slot = stream_slot(slotno);
	Size		size = StreamShared->ring_size;

	while (pos < to)
	{
		StreamRecordHeader *hdr = (StreamRecordHeader *) (slot->ring + pos % size);

		if (hdr->kind == STREAM_RECORD_PAD)
		{
			pos += hdr->len;
			continue;
		}
		rec->start = pos;
		rec->end = pos + hdr->len;
		rec->flags = hdr->flags;
		rec->procno = hdr->procno;
		rec->stream = hdr->stream;
		rec->nevents = hdr->nevents;
		rec->top_xid = hdr->top_xid;
		rec->xact_seq = hdr->xact_seq;
		rec->sent_at = hdr->sent_at;
		rec->last_of = hdr->last_of;
		rec->events = (const char *) hdr + STREAM_RECORD_HDRSZ;
		return true;
	}
	return false;
}

/* The events of rec as heap tuples pointing into the ring, into tuples[0 .. nevents - 1] */
void
stream_record_events(const StreamRecord *rec, HeapTupleData *tuples)
{
	stream_buffer_events(rec->events, rec->nevents, rec->stream, tuples);
}

/*
 * The nevents events of stream laid out from events on (as a record or a
 * writer's buffer holds them), as heap tuples pointing into them.
 */
void
stream_buffer_events(const char *events, uint32 nevents, Oid stream, HeapTupleData *tuples)
{
	const char *p = events;

	for (uint32 i = 0; i < nevents; i++)
	{
		const StreamEventHeader *eh = (const StreamEventHeader *) p;
		HeapTuple	tuple = &tuples[i];

		tuple->t_len = eh->t_len;
		tuple->t_data = (HeapTupleHeader) (p + STREAM_EVENT_HDRSZ);
		tuple->t_tableOid = stream;
		ItemPointerSetInvalid(&tuple->t_self);
		p += STREAM_EVENT_HDRSZ + MAXALIGN(eh->t_len);
	}
}
