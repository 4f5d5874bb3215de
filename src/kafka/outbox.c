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

#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "utils/array.h"

#include "catalog/catalog.h"
#include "kafka/outbox.h"

/* the insert, planned once per process */
static SPIPlanPtr insert_plan = NULL;

int64
kafka_outbox_insert(int id, Datum *keys, bool *key_nulls, Datum *messages, int n)
{
	Oid			argtypes[4] = {INT4OID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		args[4];
	Datum	   *events = palloc(sizeof(Datum) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int64		row = nextval_internal(stream_internal_relid("kafka_event_seq", false), false);
	int64		first;

	Assert(n > 0 && n <= KAFKA_OUTBOX_ROW_EVENTS);
	if (row >= (INT64CONST(1) << (62 - KAFKA_OUTBOX_ROW_EVENT_BITS)))
		ereport(ERROR,
				(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
				 errmsg("the Kafka producers' event numbers are exhausted"),
				 errhint("Restart stream_ext_internal.kafka_event_seq once no producer has staged events.")));
	first = row << KAFKA_OUTBOX_ROW_EVENT_BITS;
	for (int i = 0; i < n; i++)
		events[i] = Int64GetDatum(first + i);
	if (insert_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("INSERT INTO stream_ext_internal.kafka_outbox "
									   "(producer_id, events, keys, messages) "
									   "VALUES ($1, $2, $3, $4)", 4, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the outbox insert: %s",
				 SPI_result_code_string(SPI_result));
		insert_plan = plan;
	}
	args[0] = Int32GetDatum(id);
	args[1] = PointerGetDatum(construct_array(events, n, INT8OID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(construct_md_array(keys, key_nulls, 1, dims, lbs, TEXTOID, -1,
												 false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(messages, n, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into the outbox of Kafka producer %d", id);
	pfree(DatumGetPointer(args[1]));
	pfree(DatumGetPointer(args[2]));
	pfree(DatumGetPointer(args[3]));
	pfree(events);
	return first;
}
