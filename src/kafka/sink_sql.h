/*
 * sink_sql.h
 *	  The statements of a Kafka producer (sink_sql.c).
 */
#ifndef STREAM_EXT_KAFKA_SINK_SQL_H
#define STREAM_EXT_KAFKA_SINK_SQL_H

#include "postgres.h"

#include "kafka/decode.h"
#include "kafka/outbox.h"

/*
 * The statements that take staged events out of a producer's staging view
 * (its kept rows first, then its committed deltas), return each one's key
 * (text, NULL for none) and formatted message (text), and leave the caller
 * to put them in the outbox in the same transaction:
 *	stage: up to $2 events;
 *	candidates: the ctids ($1 at most of each) of the kept rows and of the
 *		committed deltas, two tid arrays;
 *	stage_rows: the events of kept rows $1 and deltas $2 (tid arrays);
 *	set_aside: deletes kept rows $2 and deltas $3 unformatted, records each
 *		in kafka_sink_errors as producer $1's event $4 with error $5, counts
 *		them in kafka_producers.errors and returns how many.
 */
typedef struct KafkaSinkStageSql
{
	char	   *stage;
	char	   *candidates;
	char	   *stage_rows;
	char	   *set_aside;
} KafkaSinkStageSql;

/* Fills *out; false when the staging view is gone */
extern bool kafka_sink_stage_sql(Oid staging, const KafkaFormatOptions *format,
								 KafkaSinkStageSql *out);

/*
 * "SELECT $1, events, keys, messages ...": the outbox rows of producer $1
 * that hold the messages of relation messages (columns event, key, value),
 * in event order, one row per KAFKA_OUTBOX_ROW_BYTES of messages (as
 * outbox.c's builder cuts rows, ending a row with the message that reaches
 * the size).
 */
extern char *kafka_sink_outbox_rows_sql(const char *messages);

/*
 * The statement that forgets producer $1's acknowledged messages: it
 * deletes the producer's outbox rows whose first event is in $3 (those of
 * the batch that was produced, not of one staged meanwhile), inserts again
 * those of their messages whose events are in $2 (not acknowledged),
 * unchanged, and sets aside in kafka_sink_errors those whose events are in
 * $4 (refused for good), the newest $7 of them, with the error of the
 * same place in $5 and the message cut to $6 characters; it counts the
 * refused in kafka_producers.errors, adds the others to
 * kafka_producers.produced and returns their count.
 */
extern char *kafka_sink_forget_sql(void);

/*
 * The same when every message of the batch was acknowledged: it deletes
 * producer $1's outbox rows whose first event is in $2, adds their
 * messages to kafka_producers.produced and returns their count.
 */
extern const char *kafka_sink_forget_all_sql(void);
extern const char *kafka_sink_trim_errors_sql(void);

/*
 * The statement that counts producer $1's staged events, up to $2: in the
 * staging view (kept or still pending in its deltas) and in the outbox.
 */
extern char *kafka_sink_pending_sql(Oid staging);

#endif
