#!/usr/bin/env bash
# Kafka sink, a batch only partly delivered: librdkafka refuses one message
# of a batch for good (larger than the producer's message.max.bytes) and
# delivers the others.  The refused message is set aside, once, in
# kafka_sink_errors (event number, key, error, message cut to
# stream_ext.kafka_error_payload_limit) and never stalls the sink: events
# written after it are produced.  The delivered ones leave the outbox and
# are counted once, also across a kill -9; the topic holds each delivered
# event once with its header, the refused one never.  kafka_sink_errors keeps
# the newest stream_ext.kafka_max_errors; kafka_producers.errors counts all.
# A broker's "too large" for a whole batch sets nothing aside: each of its
# messages is produced again alone.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.kafka_error_payload_limit = 100"
fresh_db t_kafka_sink_partial
mock_start 1 part:2

# 100 small events and one too large for message.max.bytes, in one
# transaction: one batch
run_sql <<SQL
CREATE FOREIGN TABLE pe (k text, i bigint, note text) SERVER stream_ext;
SELECT stream_ext.kafka_produce('pe', topic => 'part', brokers => '$BROKERS',
                                key_column => 'k', options => '{"message.max.bytes": "2000"}');
SQL
wait_until 60 "the producer runs" "SELECT state = 'running' FROM stream_ext.kafka_producers"
run_sql -c "INSERT INTO pe SELECT 'k' || (g % 7), g, CASE WHEN g = 101 THEN repeat('x', 5000) ELSE 'n' || g END
              FROM generate_series(1, 101) g"

wait_until 60 "the 100 small events acknowledged" "SELECT messages = 100 FROM stream_ext.kafka_producers"
wait_until 60 "the refused event set aside" "SELECT errors = 1 FROM stream_ext.kafka_producers"

refused_event_set_aside() {
	local got
	got=$(q "SELECT count(*) || ' ' || string_agg(key || ':' || error || ':' || length(message) || ':' ||
	                                              left(message, 20), ',')
	         FROM stream_ext.kafka_sink_errors")
	[ "$got" = '1 k3:Broker: Message size too large:100:{"k":"k3","i":101,"n' ] ||
		fail "$1: kafka_sink_errors holds '$got', not the large event alone"
	[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_outbox")" = 0 ] ||
		fail "$1: the outbox still holds $(q "SELECT sum(cardinality(events)) FROM stream_ext_internal.kafka_outbox") messages"
	say "ok: $1: the refused event is set aside (event, key, error, message cut), the outbox empty"
}
refused_event_set_aside "after the refusal"
event=$(q "SELECT event FROM stream_ext_internal.kafka_sink_errors")
# a member of stream_ext_kafka without SELECT on the stream sees no key, message or error
run_sql -c "CREATE ROLE ksp_member IN ROLE stream_ext_kafka"
got=$(psql -X -At -q -v ON_ERROR_STOP=1 -c "SET ROLE ksp_member" \
	-c "SELECT count(*) || ' ' || count(key) || ' ' || count(message) || ' ' || count(error) FROM stream_ext.kafka_sink_errors")
[ "$got" = "1 0 0 0" ] || fail "a member without SELECT on the stream sees: $got"
run_sql -c "DROP ROLE ksp_member"
say "ok: a member without SELECT on the stream sees the row, not its contents"
[ "$(q "SELECT state FROM stream_ext.kafka_producers")" = running ] ||
	fail "state after a refusal for good: $(q "SELECT state || ' ' || last_error FROM stream_ext.kafka_producers")"

# later rounds neither count, send nor set aside anything again
sleep 3
[ "$(q "SELECT messages || ' ' || errors FROM stream_ext.kafka_producers")" = "100 1" ] ||
	fail "counted again: $(q "SELECT messages || ' ' || errors FROM stream_ext.kafka_producers")"
[ "$(q "SELECT produced FROM stream_ext_internal.kafka_producers")" = 100 ] ||
	fail "produced: $(q "SELECT produced FROM stream_ext_internal.kafka_producers")"
say "ok: later rounds count nothing again"

# the sink is not stalled: an event written after the refused one is produced
run_sql -c "INSERT INTO pe VALUES ('k0', 102, 'after')"
wait_until 60 "the event after the refused one produced" "SELECT messages = 101 AND lag = 0 FROM stream_ext.kafka_producers"
say "ok: an event after the refused one is produced"

# a crash keeps the record, and sends nothing again
kill_server_hard "$SRV"
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
wait_until 60 "the producer runs after the restart" "SELECT state = 'running' FROM stream_ext.kafka_producers"
refused_event_set_aside "after kill -9"
[ "$(q "SELECT event FROM stream_ext_internal.kafka_sink_errors")" = "$event" ] ||
	fail "the refused event's number changed"
[ "$(q "SELECT produced FROM stream_ext_internal.kafka_producers")" = 101 ] ||
	fail "produced after the restart: $(q "SELECT produced FROM stream_ext_internal.kafka_producers")"
say "ok: after kill -9: 101 produced, the refused event recorded once"

# the topic: each small event once, with its key and header, the large one never
kcat -C -b "$BROKERS" -t part -e -q -f '%h\t%k\t%s\n' > "$SCRATCH/consumed.tsv" 2>"$SCRATCH/kcat.err" ||
	fail "kcat could not read the topic: $(cat "$SCRATCH/kcat.err")"
run_sql <<SQL
CREATE TABLE got (header text, key text, value text);
\copy got FROM '$SCRATCH/consumed.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
SQL
got=$(q "SELECT count(*) || ' ' || count(DISTINCT header) || ' ' ||
                count(*) FILTER (WHERE key = value::json->>'k' AND header ~ '^stream_ext_event=[0-9]+-[0-9]+\$') || ' ' ||
                count(DISTINCT (value::json->>'i')::int) FILTER (WHERE (value::json->>'i')::int BETWEEN 1 AND 100 OR (value::json->>'i')::int = 102)
         FROM got")
[ "$got" = "101 101 101 101" ] || fail "topic: messages, headers, well-formed, events 1-100 and 102: $got"
say "ok: the topic holds events 1-100 and 102 once each, with key and header, not the refused one"

# the set-aside messages kept are the newest kafka_max_errors; all are counted
set_server_setting stream_ext.kafka_max_errors 1
sleep 1 # the producer reloads its configuration between batches
run_sql -c "INSERT INTO pe VALUES ('k1', 201, repeat('x', 5000)), ('k2', 202, repeat('y', 5000)), ('k0', 203, 'small')"
wait_until 60 "two more refused events counted" "SELECT messages = 102 AND errors = 3 FROM stream_ext.kafka_producers"
got=$(q "SELECT count(*) || ' ' || string_agg(key || ':' || left(message, 20), ',') FROM stream_ext.kafka_sink_errors")
[ "$got" = '1 k2:{"k":"k2","i":202,"n' ] || fail "kafka_sink_errors with kafka_max_errors = 1 holds '$got', not the newest refused event alone"
say "ok: kafka_sink_errors keeps the newest kafka_max_errors refused events, kafka_producers.errors counts all 3"

# a broker answers "too large" for a whole request (a record batch larger
# than the topic takes): its small messages are produced again, each alone,
# and none is set aside
mock_cmd "errors 0 10 1"
run_sql -c "INSERT INTO pe SELECT 'k' || (g % 3), 1000 + g, 'small' FROM generate_series(1, 50) g"
wait_until 60 "the 50 small events produced after the broker's refusal of their batch" \
	"SELECT messages = 152 AND errors = 3 AND lag = 0 FROM stream_ext.kafka_producers"
[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_sink_errors")" = 1 ] ||
	fail "events of a batch a broker refused as a whole were set aside"
say "ok: a broker's refusal of a whole batch as too large sets nothing aside: each message produced again alone"
# refused again when alone, a message is set aside: its batch, then it alone
mock_cmd "errors 0 10 2"
run_sql -c "INSERT INTO pe SELECT 'k1', 2000 + g, 'alone' FROM generate_series(1, 3) g"
wait_until 60 "two of three produced, the first set aside" \
	"SELECT messages = 154 AND errors = 4 AND lag = 0 FROM stream_ext.kafka_producers"
[ "$(q "SELECT key || ':' || left(message, 20) FROM stream_ext.kafka_sink_errors")" = 'k1:{"k":"k1","i":2001,"' ] ||
	fail "not the first event refused alone set aside: $(q "SELECT key || ':' || left(message, 20) FROM stream_ext.kafka_sink_errors")"
say "ok: a message a broker refuses when sent alone is set aside"
# so is an invalid record (a broker's INVALID_RECORD: no key for a compacted
# topic, say), which would otherwise stall the sink
mock_cmd "errors 0 87 2"
run_sql -c "INSERT INTO pe SELECT 'k2', 3000 + g, 'invalid' FROM generate_series(1, 3) g"
wait_until 60 "two of three produced, the invalid one set aside" \
	"SELECT messages = 156 AND errors = 5 AND lag = 0 FROM stream_ext.kafka_producers"
[ "$(q "SELECT key || ':' || error FROM stream_ext.kafka_sink_errors")" = 'k2:Broker: Broker failed to validate record' ] ||
	fail "not the invalid record set aside: $(q "SELECT key || ':' || error FROM stream_ext.kafka_sink_errors")"
say "ok: an invalid record is set aside, the sink goes on"

run_sql -c "SELECT stream_ext.kafka_drop_producer('pe', 'part')"
[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_outbox") $(q "SELECT count(*) FROM stream_ext_internal.kafka_sink_errors")" = "0 0" ] ||
	fail "the outbox or the set-aside messages outlived their producer"
say "ok: dropping the producer empties its outbox and its set-aside messages"
