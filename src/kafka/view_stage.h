/*
 * view_stage.h
 *	  A Kafka producer takes events out of its staging view, event by event
 *	  when one cannot be formatted (view_stage.c).
 */
#ifndef STREAM_EXT_KAFKA_VIEW_STAGE_H
#define STREAM_EXT_KAFKA_VIEW_STAGE_H

#include "postgres.h"

#include "kafka/sink_sql.h"

/* A message taken out of the staging view: its key (NULL: none) and value */
typedef struct StagedMessage
{
	char	   *key;
	char	   *value;
} StagedMessage;

/*
 * Take up to limit events of producer id out of its staging view, formatted
 * as the role owner (the statements of sql), into *messages (in cxt);
 * returns how many.  An event whose formatting raises an error of its own
 * is set aside in kafka_sink_errors instead.  Caller is in a transaction,
 * connected to SPI, and puts the messages in the outbox before it commits.
 */
extern int	kafka_stage_from_view(int id, const KafkaSinkStageSql *sql, Oid owner, int limit,
								  StagedMessage **messages, MemoryContext cxt);

#endif
