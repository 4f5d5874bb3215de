/*
 * mapped_columns.c
 *	  A Kafka consumer writes its messages' key, partition, offset and time
 *	  stamp into columns of its stream that it names (kafka_consume's
 *	  key_column, partition_column, offset_column, timestamp_column).  A
 *	  column renamed or dropped under it would fail every batch of the
 *	  consumer until it is configured again, so ALTER refuses it while a
 *	  consumer maps the column, as PostgreSQL refuses to drop a column a view
 *	  reads (ddl/utility.c calls the hook before the command runs).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "ddl/utility.h"
#include "guc.h"
#include "kafka/mapped_columns.h"

static stream_column_change_hook_type prev_column_change_hook = NULL;

static void
refuse_mapped_column_change(Oid stream, const char *column, bool drop)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(stream), CStringGetTextDatum(column)};
	StreamRunAs as;
	char	   *id = NULL;
	char	   *topic = NULL;
	char	   *what = NULL;

	if (prev_column_change_hook)
		prev_column_change_hook(stream, column, drop);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	stream_begin_as_extension(&as);
	if (SPI_execute_with_args("SELECT id, topic, CASE $2::name WHEN key_column THEN 'key' "
							  "WHEN partition_column THEN 'partition' "
							  "WHEN offset_column THEN 'offset' ELSE 'time stamp' END "
							  "FROM stream_ext_internal.kafka_consumers "
							  "WHERE stream = $1 AND $2::name IN (key_column, partition_column, "
							  "offset_column, timestamp_column) ORDER BY id LIMIT 1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the Kafka consumers of stream %u", stream);
	stream_end_as_extension(&as);
	if (SPI_processed > 0)
	{
		id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		topic = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		what = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	}
	SPI_finish();
	if (id == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 drop ? errmsg("cannot drop column \"%s\" of stream \"%s\"", column, get_rel_name(stream)) :
			 errmsg("cannot rename column \"%s\" of stream \"%s\"", column, get_rel_name(stream)),
			 errdetail("Kafka consumer %s of topic \"%s\" writes its messages' %s into it.",
					   id, topic, what),
			 errhint("Call stream_ext.kafka_consume for the stream and topic again with another column first.")));
}

void
kafka_mapped_columns_init(void)
{
	prev_column_change_hook = stream_column_change_hook;
	stream_column_change_hook = refuse_mapped_column_change;
}
