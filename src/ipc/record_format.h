/*
 * record_format.h
 *	  The layout of records in an event ring.  Private to src/ipc/: writers
 *	  and readers elsewhere go through record.h.
 */
#ifndef STREAM_EXT_RECORD_FORMAT_H
#define STREAM_EXT_RECORD_FORMAT_H

#include "ipc/record.h"

/* Record kinds in an event ring */
#define STREAM_RECORD_EVENTS	1
#define STREAM_RECORD_PAD		2

/*
 * A record in an event ring: this header, then nevents events.  Each event
 * is a StreamEventHeader followed by a heap tuple image (HeapTupleHeader and
 * data, xmin set to the inserting (sub)transaction), padded to MAXALIGN.
 */
typedef struct StreamRecordHeader
{
	uint32		len;			/* whole record, header included, MAXALIGNed */
	uint16		kind;
	uint16		flags;
	int			procno;			/* sending backend's pgprocno */
	Oid			stream;			/* stream the events belong to */
	uint32		nevents;
	TransactionId top_xid;		/* sender's top-level transaction id, if any */
	uint64		xact_seq;		/* sender's transaction sequence number */
	TimestampTz sent_at;		/* when sent, if flagged COMMIT or ASYNC */
	uint32		last_of;		/* flagged LAST: how many workers got a LAST
								 * record of the transaction */
} StreamRecordHeader;

typedef struct StreamEventHeader
{
	uint32		t_len;			/* length of the tuple image that follows */
	uint32		unused;
} StreamEventHeader;

#define STREAM_RECORD_HDRSZ		MAXALIGN(sizeof(StreamRecordHeader))
#define STREAM_EVENT_HDRSZ		MAXALIGN(sizeof(StreamEventHeader))

/* Append a record to a worker's ring (queue.c); sets hdr->len */
extern void stream_ring_put(int slotno, StreamRecordHeader *hdr,
							const char *payload, Size payload_len);

#endif
