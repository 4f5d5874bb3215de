/*
 * record.h
 *	  Writing events into a worker's ring and reading them back: the only
 *	  interface to the ring's record format (record_format.h).
 *
 * A writer buffers events, each made by stream_event_start() in a buffer
 * of its own, and sends the buffer as one record with stream_ring_send().
 * A worker walks the records between two ring positions with
 * stream_ring_next_record() and gets their events as heap tuples pointing
 * into the ring with stream_record_events().
 */
#ifndef STREAM_EXT_RECORD_H
#define STREAM_EXT_RECORD_H

#include "access/htup.h"
#include "access/htup_details.h"
#include "datatype/timestamp.h"

/* Record flags */
#define STREAM_FLAG_COMMIT		0x0001	/* sender waits for xact_seq to be
										 * acknowledged */
#define STREAM_FLAG_ASYNC		0x0002	/* sender does not wait (its transaction
										 * may have committed already) */
#define STREAM_FLAG_TABLES_APPLIED	0x0004	/* the sender applied the stream's
											 * transforms into tables to these
											 * events itself */
#define STREAM_FLAG_SINKS_STAGED	0x0008	/* the sender staged these events
											 * for the stream's Kafka producers
											 * itself */
#define STREAM_FLAG_QUEUED		0x0010	/* the sender's transaction may commit
										 * before its records are applied
										 * (async): a worker tracks it until
										 * every worker had its LAST record */
#define STREAM_FLAG_FIRST		0x0020	/* the transaction's first record */
#define STREAM_FLAG_LAST		0x0040	/* the transaction's last record to
										 * this worker (of a QUEUED one) */
/* The flags that say which views the sender applied itself */
#define STREAM_FLAGS_WRITER_APPLIED (STREAM_FLAG_TABLES_APPLIED | STREAM_FLAG_SINKS_STAGED)

/* A record of a ring, as a reader sees it */
typedef struct StreamRecord
{
	uint64		start;			/* ring position of the record */
	uint64		end;			/* position after it */
	uint16		flags;
	int			procno;			/* sending backend's pgprocno */
	Oid			stream;			/* stream of its events */
	uint32		nevents;
	TransactionId top_xid;		/* sender's top-level transaction id, if any */
	uint64		xact_seq;		/* sender's transaction sequence number */
	TimestampTz sent_at;		/* when sent, if flagged COMMIT or ASYNC */
	uint32		last_of;		/* flagged LAST: how many workers got one */
	const char *events;			/* the first event, in the ring */
} StreamRecord;

/* writers */
extern Size stream_event_size(Size tuple_len);
extern void stream_check_event_size(Size tuple_len, Oid stream);
extern HeapTupleHeader stream_event_start(char *event, Size tuple_len);
extern HeapTupleHeader stream_event_tuple(char *event);
extern Size stream_event_size_of(const char *event);
extern void stream_buffer_events(const char *events, uint32 nevents, Oid stream,
								 HeapTupleData *tuples);
extern void stream_ring_send(int slotno, uint16 flags, Oid stream, uint32 nevents,
							 uint64 xact_seq, uint32 last_of, const char *events, Size len);

/* readers */
extern bool stream_ring_next_record(int slotno, uint64 pos, uint64 to, StreamRecord *rec);
extern void stream_record_events(const StreamRecord *rec, HeapTupleData *tuples);

#endif
