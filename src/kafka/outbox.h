/*
 * outbox.h
 *	  Rows of stream_ext_internal.kafka_outbox: a Kafka producer's messages,
 *	  numbered and formatted, kept until the brokers acknowledge them
 *	  (outbox.c).
 */
#ifndef STREAM_EXT_KAFKA_OUTBOX_H
#define STREAM_EXT_KAFKA_OUTBOX_H

#include "postgres.h"

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
 * An outbox row holds the messages of about this many bytes at most (and
 * at least one), so that its arrays stay far below PostgreSQL's 1 GB.
 */
#define KAFKA_OUTBOX_ROW_BYTES (64 * 1024 * 1024)

/*
 * Insert an outbox row of producer id holding the n (at most
 * KAFKA_OUTBOX_ROW_EVENTS) messages: keys[i] (text; none where
 * key_nulls[i]) and messages[i] (text).  Returns the number of its first
 * message.  Caller is connected to SPI, as a role that may insert.
 */
extern int64 kafka_outbox_insert(int id, Datum *keys, bool *key_nulls, Datum *messages, int n);

/*
 * An outbox row built message by message, its arrays written in place
 * (no datum per message): for a writer's staging of many small messages.
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

extern void kafka_outbox_builder_init(OutboxRowBuilder *b);
extern void kafka_outbox_builder_reset(OutboxRowBuilder *b);
extern void kafka_outbox_builder_add(OutboxRowBuilder *b, const char *key, int key_len,
									 const char *message, int message_len);
/* Insert the row built (n > 0) as kafka_outbox_insert does, and reset b. */
extern int64 kafka_outbox_builder_insert(OutboxRowBuilder *b, int id);

#endif
