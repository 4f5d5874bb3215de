/*
 * sink_sql.h
 *	  The statements of a Kafka producer (sink_sql.c).
 */
#ifndef STREAM_EXT_KAFKA_SINK_SQL_H
#define STREAM_EXT_KAFKA_SINK_SQL_H

#include "postgres.h"

#include "kafka/decode.h"

/*
 * The statement that moves staged events of producer $1 (up to $2 of the
 * staging view's kept rows and up to $2 of its committed deltas) into the
 * outbox, formatted, returning their event, key and value; NULL when the
 * staging view is gone.  Runs in the caller's transaction.
 */
extern char *kafka_sink_stage_sql(Oid staging, const KafkaFormatOptions *format);

/*
 * The statement that counts producer $1's staged events, up to $2: in the
 * staging view (kept or still pending in its deltas) and in the outbox.
 */
extern char *kafka_sink_pending_sql(Oid staging);

#endif
