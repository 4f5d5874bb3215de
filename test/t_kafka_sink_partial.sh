#!/usr/bin/env bash
# Kafka sink, a batch only partly delivered: librdkafka refuses one message
# of a batch (larger than the producer's message.max.bytes) and delivers the
# others.  The refused message must stay in the outbox, alone and unchanged
# (same event number, key and value), the delivered ones must leave it and
# be counted once, also over the retries and across a kill -9; the topic
# holds each delivered event once with its header.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
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
wait_until 60 "the refusal reported" \
	"SELECT state = 'retrying' AND last_error LIKE '%MSG_SIZE_TOO_LARGE%' FROM stream_ext.kafka_producers"
say "refused: $(q "SELECT last_error FROM stream_ext.kafka_producers")"

outbox_is_the_large_event() {
	local got
	got=$(q "SELECT count(*) || ' ' || sum(cardinality(events)) || ' ' || string_agg(
	           (SELECT string_agg(u.key || ':' || (u.value::json->>'i') || ':' ||
	                              length(u.value::json->>'note'), ',')
	              FROM unnest(o.events, o.keys, o.messages) AS u(event, key, value)), ',')
	         FROM stream_ext_internal.kafka_outbox o")
	[ "$got" = "1 1 k3:101:5000" ] || fail "$1: outbox holds '$got', not the large event alone"
	say "ok: $1: the outbox holds the refused event alone"
}
outbox_is_the_large_event "after the refusal"
event=$(q "SELECT events[1] FROM stream_ext_internal.kafka_outbox")

# retries (1 s, 2 s ...) neither count nor send anything again
sleep 4
[ "$(q "SELECT messages FROM stream_ext.kafka_producers")" = 100 ] ||
	fail "messages counted again: $(q "SELECT messages FROM stream_ext.kafka_producers")"
[ "$(q "SELECT produced FROM stream_ext_internal.kafka_producers")" = 100 ] ||
	fail "produced: $(q "SELECT produced FROM stream_ext_internal.kafka_producers")"
say "ok: retries count nothing again"

# a crash keeps it, with the same number
kill_server_hard "$SRV"
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
wait_until 60 "the producer retries after the restart" \
	"SELECT state = 'retrying' AND last_error LIKE '%MSG_SIZE_TOO_LARGE%' FROM stream_ext.kafka_producers"
outbox_is_the_large_event "after kill -9"
[ "$(q "SELECT events[1] FROM stream_ext_internal.kafka_outbox")" = "$event" ] ||
	fail "the refused event's number changed"
[ "$(q "SELECT produced FROM stream_ext_internal.kafka_producers")" = 100 ] ||
	fail "produced after the restart: $(q "SELECT produced FROM stream_ext_internal.kafka_producers")"
wait_until 30 "lag 1" "SELECT lag = 1 FROM stream_ext.kafka_producers"
say "ok: after kill -9 the same event is pending, 100 produced, lag 1"

# the topic: each small event once, with its key and header, the large one never
kcat -C -b "$BROKERS" -t part -e -q -f '%h\t%k\t%s\n' > "$SCRATCH/consumed.tsv" 2>"$SCRATCH/kcat.err" ||
	fail "kcat could not read the topic: $(cat "$SCRATCH/kcat.err")"
run_sql <<SQL
CREATE TABLE got (header text, key text, value text);
\copy got FROM '$SCRATCH/consumed.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
SQL
got=$(q "SELECT count(*) || ' ' || count(DISTINCT header) || ' ' ||
                count(*) FILTER (WHERE key = value::json->>'k' AND header ~ '^stream_ext_event=[0-9]+-[0-9]+\$') || ' ' ||
                count(DISTINCT (value::json->>'i')::int) FILTER (WHERE (value::json->>'i')::int BETWEEN 1 AND 100)
         FROM got")
[ "$got" = "100 100 100 100" ] || fail "topic: messages, headers, well-formed, events 1-100: $got"
say "ok: the topic holds events 1-100 once each, with key and header"

run_sql -c "SELECT stream_ext.kafka_drop_producer('pe', 'part')"
[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_outbox")" = 0 ] || fail "the outbox outlived its producer"
say "ok: dropping the producer empties its outbox"
