/*
 * outbox.h
 *	  Rows of stream_ext_internal.kafka_outbox: a Kafka producer's messages,
 *	  numbered and formatted, kept until the brokers acknowledge them
 *	  (outbox.c).
 */
#ifndef STREAM_EXT_KAFKA_OUTBOX_H
#define STREAM_EXT_KAFKA_OUTBOX_H

#include "postgres.h"

#include "access/transam.h"
#include "lib/stringinfo.h"
#include "utils/array.h"

/*
 * An outbox row numbers its messages from a value of kafka_event_seq
 * shifted left by this many bits: message i of the row is
 * (value << KAFKA_OUTBOX_ROW_EVENT_BITS) + i, so a row holds at most
 * KAFKA_OUTBOX_ROW_EVENTS messages, and the numbers of two rows never meet.
 */
#define KAFKA_OUTBOX_ROW_EVENT_BITS 20
#define KAFKA_OUTBOX_ROW_EVENTS (1 << KAFKA_OUTBOX_ROW_EVENT_BITS)

/*
 * An outbox row holds about this many bytes of messages (at least one
 * message), and at most stream_ext.batch_size messages, a producer's batch:
 * small enough that building and storing one reuses memory rather than
 * mapping it afresh, large enough that a row costs little per message.
 */
#define KAFKA_OUTBOX_ROW_BYTES (1024 * 1024)

/*
 * The first of KAFKA_OUTBOX_ROW_EVENTS new event numbers, from a new value of
 * kafka_event_seq: an outbox row's, or a set-aside event's.
 */
extern int64 kafka_outbox_new_numbers(void);

/*
 * An outbox row built message by message, its arrays written in place (no
 * datum per message).
 */
typedef struct OutboxRowBuilder
{
	int			n;
	StringInfoData keys;		/* the key array's elements */
	StringInfoData messages;	/* room for the array's header, then its
								 * elements */
	bits8	   *key_bitmap;		/* 1: a key */
	int			key_bitmap_size;
	bool		key_nulls;		/* some message has no key */
} OutboxRowBuilder;

/* The process's builder, empty (its buffers kept from row to row) */
extern OutboxRowBuilder *kafka_outbox_builder(void);
extern void kafka_outbox_builder_add(OutboxRowBuilder *b, const char *key, int key_len,
									 const char *message, int message_len);
/* Has b a row's worth of messages (KAFKA_OUTBOX_ROW_BYTES, batch_size)? */
extern bool kafka_outbox_builder_full(const OutboxRowBuilder *b);

/*
 * Insert the row built (n > 0) for producer id, its messages numbered from
 * a new value of kafka_event_seq, and empty b.  writer: the transaction
 * whose commit the messages wait for (a worker stages a writer's events), or
 * invalid (they commit with the row).  Returns the number of its first
 * message.  Caller is connected to SPI, as a role that may insert.
 */
extern int64 kafka_outbox_builder_insert(OutboxRowBuilder *b, int id, FullTransactionId writer);

#endif
