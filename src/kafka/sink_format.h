/*
 * sink_format.h
 *	  A Kafka producer's messages formatted in C from a stream's events, as
 *	  its stage statement formats them in SQL (sink_format.c).
 */
#ifndef STREAM_EXT_KAFKA_SINK_FORMAT_H
#define STREAM_EXT_KAFKA_SINK_FORMAT_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "kafka/decode.h"

typedef struct SinkFormat SinkFormat;

/*
 * A producer's format options from the texts of its catalog row
 * (kafka_producers: format, format_options' delimiter, quote and null,
 * key_column; NULL where not given), in CurrentMemoryContext.
 */
extern void kafka_sink_format_options(KafkaFormatOptions *f, const char *format,
									  const char *delimiter, const char *quote,
									  const char *null_string, const char *key_column);

/*
 * How to format the events of stream for the staging view whose defining
 * query (nodeToString) is query, with format's options, in cxt; NULL when
 * this file does not produce the same messages as the stage statement
 * would (a column of a type it does not know, a delimiter it does not
 * escape alike): the workers then stage the events.
 */
extern SinkFormat *kafka_sink_format_compile(Oid stream, const char *query,
											 const KafkaFormatOptions *format,
											 MemoryContext cxt);

/*
 * Format one event, given as the stream's deformed columns: its key into
 * key (false returned when it has none) and its message into message
 * (both reset first).
 */
extern bool kafka_sink_format_event(SinkFormat *f, Datum *values, bool *isnull,
									StringInfo key, StringInfo message);

#endif
