/*
 * decode.h
 *	  Turning Kafka messages into events of a stream: json, csv and text.
 */
#ifndef STREAM_EXT_KAFKA_DECODE_H
#define STREAM_EXT_KAFKA_DECODE_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/relcache.h"

typedef enum KafkaFormat
{
	KAFKA_FORMAT_JSON,
	KAFKA_FORMAT_CSV,
	KAFKA_FORMAT_TEXT
} KafkaFormat;

/* What the decoder needs to know about a consumer (from its catalog row). */
typedef struct KafkaFormatOptions
{
	KafkaFormat format;
	char		delimiter;
	char		quote;
	char		escape;
	bool		header;			/* first line of each message is a header */
	char	   *null_string;
	char	   *key_column;		/* stream columns the message's metadata goes */
	char	   *partition_column;	/* to, or NULL */
	char	   *offset_column;
	char	   *timestamp_column;
} KafkaFormatOptions;

/* One message, as the decoder sees it. */
typedef struct KafkaMessageView
{
	const char *payload;
	size_t		len;
	const char *key;			/* NULL when the message has none */
	size_t		key_len;
	int32		partition;
	int64		offset;
	int64		timestamp_ms;	/* -1 when unknown */
} KafkaMessageView;

typedef struct KafkaDecoder KafkaDecoder;

/* Receives each event as column values (valid until the next event). */
typedef void (*KafkaEventSink) (TupleDesc desc, Datum *values, bool *nulls, void *arg);

extern KafkaDecoder *kafka_decoder_create(Relation stream, const KafkaFormatOptions *opts);
extern TupleDesc kafka_decoder_desc(KafkaDecoder *d);
extern bool kafka_decoder_wants_timestamp(KafkaDecoder *d);
extern char *kafka_decode(KafkaDecoder *d, const KafkaMessageView *msg,
						  TimestampTz arrival, KafkaEventSink sink, void *arg);

#endif
