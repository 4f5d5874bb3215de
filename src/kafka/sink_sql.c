/*
 * sink_sql.c
 *	  Generates the statements of a Kafka producer.  The stage statement
 *	  deletes up to a batch of rows from the kept-rows table of the
 *	  producer's staging view (a row-keeping continuous view of the stream,
 *	  src/ddl/README.md) and up to a batch of its committed writers' delta
 *	  rows (so events need not wait for the combiner's move), and returns
 *	  each one's key and message, formatted (json, csv or text); the
 *	  producer numbers them and puts them in stream_ext_internal.kafka_outbox
 *	  in the same transaction.  Every identifier is quoted; the values are
 *	  parameters.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "access/table.h"

#include "catalog/catalog.h"
#include "kafka/sink_sql.h"

/* A one-character string as a SQL literal */
static char *
char_literal(char c)
{
	char		s[2] = {c, '\0'};

	return quote_literal_cstr(s);
}

/*
 * The message's expression over the moved row m: its columns in order, as
 * json (row_to_json: numbers and booleans bare, the rest strings), or as a
 * csv or text line with format's delimiter, quote and null string.
 */
static void
append_value_expr(StringInfo sql, Relation state, const KafkaFormatOptions *format)
{
	TupleDesc	desc = RelationGetDescr(state);
	bool		first = true;

	if (format->format == KAFKA_FORMAT_JSON)
	{
		appendStringInfoString(sql, "pg_catalog.row_to_json(m)::text");
		return;
	}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *col;

		if (att->attisdropped)
			continue;
		col = quote_identifier(NameStr(att->attname));
		if (!first)
			appendStringInfo(sql, " || %s || ", char_literal(format->delimiter));
		first = false;
		if (format->format == KAFKA_FORMAT_CSV)
			appendStringInfo(sql, "stream_ext_internal.kafka_csv_field(m.%s::text, %s, %s, %s)",
							 col, char_literal(format->delimiter), char_literal(format->quote),
							 quote_literal_cstr(format->null_string));
		else
			appendStringInfo(sql, "stream_ext_internal.kafka_text_field(m.%s::text, %s, %s)",
							 col, char_literal(format->delimiter),
							 quote_literal_cstr(format->null_string));
	}
	if (first)
		appendStringInfoString(sql, "''");
}

char *
kafka_sink_outbox_rows_sql(const char *messages)
{
	return psprintf("SELECT $1, pg_catalog.min(event), pg_catalog.count(*)::int, "
					"pg_catalog.array_agg(event ORDER BY event), "
					"pg_catalog.array_agg(key ORDER BY event), "
					"pg_catalog.array_agg(value ORDER BY event) "
					"FROM (SELECT event, key, value, pg_catalog.sum(pg_catalog.octet_length(value)) "
					"OVER (ORDER BY event) / %d AS part FROM %s) p GROUP BY part",
					KAFKA_OUTBOX_ROW_BYTES, messages);
}

/* ", " separated list of the kept-rows table's columns, each prefixed */
static char *
column_list(Relation state, const char *prefix)
{
	TupleDesc	desc = RelationGetDescr(state);
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		appendStringInfo(&buf, "%s%s%s", buf.len ? ", " : "", prefix,
						 quote_identifier(NameStr(att->attname)));
	}
	return buf.data;
}

/*
 * "SELECT key, value FROM m" over the moved rows m: each one's key column as
 * text (NULL when none) and its message
 */
static void
append_messages_select(StringInfo sql, Relation state, const KafkaFormatOptions *format)
{
	appendStringInfoString(sql, "SELECT ");
	if (format->key_column)
		appendStringInfo(sql, "m.%s::text AS key, ", quote_identifier(format->key_column));
	else
		appendStringInfoString(sql, "NULL::text AS key, ");
	append_value_expr(sql, state, format);
	appendStringInfoString(sql, " AS value FROM m");
}

bool
kafka_sink_stage_sql(Oid staging, const KafkaFormatOptions *format, KafkaSinkStageSql *out)
{
	int			view_id = stream_continuous_view_id(staging);
	Oid			state_relid;
	char	   *state_sql;
	char	   *delta_sql;
	char	   *kept_columns;
	char	   *delta_columns;
	Relation	state;
	StringInfoData sql;

	if (view_id < 0)
		return false;
	state_relid = stream_view_relation_relid(view_id, VIEW_STATE_TABLE, true);
	if (!OidIsValid(state_relid) ||
		!OidIsValid(stream_view_relation_relid(view_id, VIEW_DELTA_TABLE, true)))
		return false;
	state_sql = stream_view_relation_sql(view_id, VIEW_STATE_TABLE);
	delta_sql = stream_view_relation_sql(view_id, VIEW_DELTA_TABLE);
	state = table_open(state_relid, AccessShareLock);
	kept_columns = column_list(state, "k.");
	delta_columns = column_list(state, "d.");

	/*
	 * Rows the combiner moved into the kept-rows table first, then the
	 * deltas of committed writers, up to $2 in all.  The combiner may move the
	 * same deltas at the same time: a row deleted by both is deleted (and
	 * returned) by one only, the other waits for it and skips it.
	 */
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH k AS (DELETE FROM %s k WHERE k.ctid = ANY (ARRAY("
					 "SELECT ctid FROM %s LIMIT $2)) RETURNING %s), "
					 "d AS (DELETE FROM %s d WHERE d.ctid = ANY (ARRAY("
					 "SELECT c.ctid FROM %s c "
					 "WHERE " STREAM_INTERNAL_SCHEMA ".xid_committed(c.writer_xid) "
					 "LIMIT GREATEST($2 - (SELECT pg_catalog.count(*) FROM k), 0))) "
					 "RETURNING %s), "
					 "m AS (SELECT * FROM k UNION ALL SELECT * FROM d) ",
					 state_sql, state_sql, kept_columns,
					 delta_sql, delta_sql, delta_columns);
	append_messages_select(&sql, state, format);
	out->stage = sql.data;

	/* the same rows chosen first, then taken by their ctids */
	out->candidates = psprintf("SELECT ARRAY(SELECT ctid FROM %s LIMIT $1), "
							   "ARRAY(SELECT c.ctid FROM %s c "
							   "WHERE " STREAM_INTERNAL_SCHEMA ".xid_committed(c.writer_xid) "
							   "LIMIT $1)",
							   state_sql, delta_sql);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH k AS (DELETE FROM %s k WHERE k.ctid = ANY ($1) RETURNING %s), "
					 "d AS (DELETE FROM %s d WHERE d.ctid = ANY ($2) RETURNING %s), "
					 "m AS (SELECT * FROM k UNION ALL SELECT * FROM d) ",
					 state_sql, kept_columns, delta_sql, delta_columns);
	append_messages_select(&sql, state, format);
	out->stage_rows = sql.data;
	out->set_aside = psprintf("WITH k AS (DELETE FROM %s k WHERE k.ctid = ANY ($2) RETURNING 1), "
							  "d AS (DELETE FROM %s d WHERE d.ctid = ANY ($3) RETURNING 1), "
							  "e AS (INSERT INTO " STREAM_INTERNAL_SCHEMA ".kafka_sink_errors "
							  "(producer_id, event, error) "
							  "SELECT $1, $4, $5 FROM (SELECT * FROM k UNION ALL SELECT * FROM d) r "
							  "RETURNING 1) "
							  "UPDATE " STREAM_INTERNAL_SCHEMA ".kafka_producers "
							  "SET errors = errors + (SELECT pg_catalog.count(*) FROM e) "
							  "WHERE id = $1 RETURNING (SELECT pg_catalog.count(*) FROM e)",
							  state_sql, delta_sql);
	table_close(state, AccessShareLock);
	return true;
}

char *
kafka_sink_forget_sql(void)
{
	return psprintf("WITH d AS (DELETE FROM stream_ext_internal.kafka_outbox "
					"WHERE producer_id = $1 AND first_event = ANY ($3) "
					"RETURNING events, keys, messages), "
					"u AS (SELECT u.event, u.key, u.value FROM d, "
					"unnest(d.events, d.keys, d.messages) AS u(event, key, value)), "
					"l AS (SELECT * FROM u WHERE u.event = ANY ($2)), "
					"i AS (INSERT INTO stream_ext_internal.kafka_outbox "
					"(producer_id, first_event, n, events, keys, messages) %s), "
					"r AS (SELECT * FROM u WHERE u.event = ANY ($4)), "
					"x AS (INSERT INTO stream_ext_internal.kafka_sink_errors "
					"(producer_id, event, key, error, message) "
					"SELECT $1, r.event, r.key, ($5)[pg_catalog.array_position($4, r.event)], "
					"pg_catalog.left(r.value, $6) FROM r ORDER BY r.event DESC LIMIT $7), "
					"a AS (SELECT (SELECT pg_catalog.count(*) FROM u) - "
					"(SELECT pg_catalog.count(*) FROM l) - (SELECT pg_catalog.count(*) FROM r) AS n) "
					"UPDATE stream_ext_internal.kafka_producers "
					"SET produced = produced + (SELECT n FROM a), "
					"errors = errors + (SELECT pg_catalog.count(*) FROM r) WHERE id = $1 "
					"RETURNING (SELECT n FROM a)",
					kafka_sink_outbox_rows_sql("l"));
}

const char *
kafka_sink_forget_all_sql(void)
{
	return "WITH d AS (DELETE FROM stream_ext_internal.kafka_outbox "
		"WHERE producer_id = $1 AND first_event = ANY ($2) RETURNING n), "
		"a AS (SELECT coalesce(pg_catalog.sum(d.n), 0) AS n FROM d) "
		"UPDATE stream_ext_internal.kafka_producers SET produced = produced + (SELECT n FROM a) "
		"WHERE id = $1 RETURNING (SELECT n FROM a)";
}

/* Keep the newest stream_ext.kafka_max_errors ($2) set-aside messages of producer $1 */
const char *
kafka_sink_trim_errors_sql(void)
{
	return "DELETE FROM stream_ext_internal.kafka_sink_errors WHERE ctid = ANY (ARRAY("
		"SELECT ctid FROM stream_ext_internal.kafka_sink_errors WHERE producer_id = $1 "
		"ORDER BY occurred_at DESC, event DESC OFFSET $2))";
}

char *
kafka_sink_pending_sql(Oid staging)
{
	char	   *view = quote_qualified_identifier(get_namespace_name(get_rel_namespace(staging)),
												  get_rel_name(staging));

	return psprintf("SELECT (SELECT count(*) FROM (SELECT 1 FROM %s LIMIT $2) s) + "
					"(SELECT coalesce(sum(n), 0) "
					"FROM stream_ext_internal.kafka_outbox WHERE producer_id = $1 "
					"AND (writer_xid IS NULL OR "
					STREAM_INTERNAL_SCHEMA ".xid_committed(writer_xid)))",
					view);
}
