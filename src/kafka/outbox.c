/*
 * outbox.c
 *	  Inserting a row of stream_ext_internal.kafka_outbox: a batch of a
 *	  Kafka producer's messages, numbered, as arrays (events, keys,
 *	  messages), one insert and one delete per batch rather than per message.
 *	  The producer inserts the rows it stages from its staging view
 *	  (producer.c), a writer those it stages from its own events
 *	  (sink_stage.c); both number them here, from one sequence.
 */
#include "postgres.h"

#include "access/toast_compression.h"
#include "access/toast_internals.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/xid8.h"

#include "catalog/catalog.h"
#include "guc.h"
#include "kafka/outbox.h"

/* the insert, planned once per process, generic */
static SPIPlanPtr insert_plan = NULL;

/*
 * An array as the outbox column stores it: compressed with lz4 where the
 * server has it (the install script sets the columns so), compressed here
 * so that the row's tuple is formed from the compressed values (a quarter
 * of the size, and TOAST stores them as they are) rather than formed whole
 * and compressed after; else (or when it would not be smaller) as it is.
 */
static Datum
stored_array(ArrayType *array)
{
#ifdef USE_LZ4
	Datum		compressed = toast_compress_datum(PointerGetDatum(array), TOAST_LZ4_COMPRESSION);

	if (DatumGetPointer(compressed) != NULL)
		return compressed;
#endif
	return PointerGetDatum(array);
}

static void
free_stored(Datum stored, ArrayType *array)
{
	if (DatumGetPointer(stored) != (Pointer) array)
		pfree(DatumGetPointer(stored));
}

int64
kafka_outbox_new_numbers(void)
{
	int64		row = nextval_internal(stream_internal_relid("kafka_event_seq", false), false);

	if (row >= (INT64CONST(1) << (62 - KAFKA_OUTBOX_ROW_EVENT_BITS)))
		ereport(ERROR,
				(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
				 errmsg("the Kafka producers' event numbers are exhausted"),
				 errhint("Restart stream_ext_internal.kafka_event_seq once no producer has staged events.")));
	return row << KAFKA_OUTBOX_ROW_EVENT_BITS;
}

/*
 * Insert the row: producer id, n messages whose keys and messages arrays
 * are built, the writer they wait for (or none); returns its first event
 * number.
 */
static int64
insert_row(int id, int n, ArrayType *keys, ArrayType *messages, FullTransactionId writer)
{
	Oid			argtypes[7] = {INT4OID, INT8OID, INT4OID, INT8ARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, XID8OID};
	Datum		args[7];
	char		nulls[8] = "       ";
	Datum	   *events = palloc(sizeof(Datum) * n);
	ArrayType  *numbers;
	int64		first = kafka_outbox_new_numbers();

	Assert(n > 0 && n <= KAFKA_OUTBOX_ROW_EVENTS);
	for (int i = 0; i < n; i++)
		events[i] = Int64GetDatum(first + i);
	if (insert_plan == NULL)
		insert_plan = stream_prepare_kept_generic_plan(
			"INSERT INTO stream_ext_internal.kafka_outbox "
			"(producer_id, first_event, n, events, keys, messages, writer_xid) "
			"VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, argtypes);
	args[0] = Int32GetDatum(id);
	args[1] = Int64GetDatum(first);
	args[2] = Int32GetDatum(n);
	numbers = construct_array(events, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	args[3] = stored_array(numbers);
	args[4] = stored_array(keys);
	args[5] = stored_array(messages);
	args[6] = FullTransactionIdGetDatum(writer);
	if (!FullTransactionIdIsValid(writer))
		nulls[6] = 'n';
	if (SPI_execute_plan(insert_plan, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into the outbox of Kafka producer %d", id);
	free_stored(args[3], numbers);
	free_stored(args[4], keys);
	free_stored(args[5], messages);
	pfree(numbers);
	pfree(events);
	return first;
}

/* ---------- a row built in place ---------- */

/*
 * The arrays' elements are text datums with 4-byte headers, each starting
 * at an int-aligned offset (text's alignment), as construct_array lays
 * them out; the messages' array header is written in front of them at the
 * end (no nulls: its size is known from the start).
 */
#define MESSAGES_HEADER ARR_OVERHEAD_NONULLS(1)

static void
append_element(StringInfo buf, const char *data, int len)
{
	int			start;

	/* pad the previous element to int alignment */
	while (buf->len != INTALIGN(buf->len))
		appendStringInfoCharMacro(buf, '\0');
	start = buf->len;
	enlargeStringInfo(buf, VARHDRSZ + len);
	SET_VARSIZE(buf->data + start, VARHDRSZ + len);
	memcpy(buf->data + start + VARHDRSZ, data, len);
	buf->len += VARHDRSZ + len;
	buf->data[buf->len] = '\0';
}

/*
 * Buffers larger than this (a row of about 1 MB of messages is the rule;
 * one message may be far larger) are freed before the next row.
 */
#define BUILDER_KEEP_BYTES (4 * 1024 * 1024)

/* Empty b, keeping its buffers */
static void
builder_reset(OutboxRowBuilder *b)
{
	resetStringInfo(&b->keys);
	b->messages.len = MESSAGES_HEADER;
	memset(b->key_bitmap, 0, b->key_bitmap_size);
	b->key_nulls = false;
	b->n = 0;
}

OutboxRowBuilder *
kafka_outbox_builder(void)
{
	static OutboxRowBuilder *builder = NULL;

	if (builder == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		builder = palloc0(sizeof(OutboxRowBuilder));
		initStringInfo(&builder->keys);
		initStringInfo(&builder->messages);
		builder->key_bitmap_size = 1024;
		builder->key_bitmap = palloc0(builder->key_bitmap_size);
		enlargeStringInfo(&builder->messages, MESSAGES_HEADER);
		MemoryContextSwitchTo(old);
	}
	else if (builder->messages.maxlen > BUILDER_KEEP_BYTES ||
			 builder->keys.maxlen > BUILDER_KEEP_BYTES)
	{
		/* one huge row's buffers are not kept for the process's life */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pfree(builder->keys.data);
		pfree(builder->messages.data);
		initStringInfo(&builder->keys);
		initStringInfo(&builder->messages);
		enlargeStringInfo(&builder->messages, MESSAGES_HEADER);
		MemoryContextSwitchTo(old);
	}
	builder_reset(builder);		/* (also after an error) */
	return builder;
}

void
kafka_outbox_builder_add(OutboxRowBuilder *b, const char *key, int key_len,
						 const char *message, int message_len)
{
	if (b->n / 8 >= b->key_bitmap_size)
	{
		b->key_bitmap = repalloc(b->key_bitmap, b->key_bitmap_size * 2);
		memset(b->key_bitmap + b->key_bitmap_size, 0, b->key_bitmap_size);
		b->key_bitmap_size *= 2;
	}
	if (key != NULL)
	{
		b->key_bitmap[b->n / 8] |= 1 << (b->n % 8);
		append_element(&b->keys, key, key_len);
	}
	else
		b->key_nulls = true;
	append_element(&b->messages, message, message_len);
	b->n++;
}

/* Fill in the header of a one-dimensional text array of n elements */
static void
set_header(ArrayType *array, Size size, int n, int32 dataoffset)
{
	SET_VARSIZE(array, size);
	array->ndim = 1;
	array->dataoffset = dataoffset;
	array->elemtype = TEXTOID;
	ARR_DIMS(array)[0] = n;
	ARR_LBOUND(array)[0] = 1;
}

int64
kafka_outbox_builder_insert(OutboxRowBuilder *b, int id, FullTransactionId writer)
{
	ArrayType  *messages;
	int			key_header = b->key_nulls ? ARR_OVERHEAD_WITHNULLS(1, b->n) :
		ARR_OVERHEAD_NONULLS(1);
	Size		keys_size = key_header + INTALIGN(b->keys.len);
	ArrayType  *keys = palloc0(keys_size);
	int64		first;

	while (b->messages.len != INTALIGN(b->messages.len))
		appendStringInfoCharMacro(&b->messages, '\0');
	messages = (ArrayType *) b->messages.data;
	set_header(messages, b->messages.len, b->n, 0);
	set_header(keys, keys_size, b->n, b->key_nulls ? key_header : 0);
	if (b->key_nulls)			/* the bitmap follows the bounds */
		memcpy((char *) ARR_LBOUND(keys) + sizeof(int), b->key_bitmap, (b->n + 7) / 8);
	memcpy(ARR_DATA_PTR(keys), b->keys.data, b->keys.len);
	first = insert_row(id, b->n, keys, messages, writer);
	pfree(keys);
	builder_reset(b);
	return first;
}

bool
kafka_outbox_builder_full(const OutboxRowBuilder *b)
{
	return b->messages.len >= KAFKA_OUTBOX_ROW_BYTES ||
		b->n >= Min(stream_ext_batch_size, KAFKA_OUTBOX_ROW_EVENTS);
}
