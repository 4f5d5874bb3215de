#!/usr/bin/env bash
# Kafka sink whose worker fails at every start: the role the producer acts
# for is no longer a member of stream_ext_kafka, while it keeps SELECT on the
# stream, so writers still stage its events but the worker stops at its first
# rights check and is started again 1 s, 2 s, 4 s ... later.  Its staged
# events stay bounded all the same: with stream_ext.kafka_sink_max_pending of
# them, writers are refused (53400) while it is down between its tries as
# while it runs, and a Kafka consumer into the stream pauses its partitions;
# once the right is back, every event is produced and writers and the
# consumer go on.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.kafka_sink_max_pending = 100"
fresh_db t_kafka_sink_failing
mock_start 1 fail_t:1 in_t:2

run_sql <<SQL
CREATE ROLE ksf_owner IN ROLE stream_ext_kafka;
CREATE FOREIGN TABLE fe (k text, i int) SERVER stream_ext;
GRANT SELECT ON fe TO ksf_owner;
SET ROLE ksf_owner;
SELECT stream_ext.kafka_produce('fe', topic => 'fail_t', brokers => '$BROKERS', key_column => 'k');
RESET ROLE;
SQL
wait_until 60 "the producer runs" "SELECT state = 'running' FROM stream_ext.kafka_producers"
run_sql -c "INSERT INTO fe SELECT 'k', g FROM generate_series(1, 10) g"
wait_until 60 "the first events produced" "SELECT messages = 10 FROM stream_ext.kafka_producers"

run_sql -c "REVOKE stream_ext_kafka FROM ksf_owner"
run_sql -c "INSERT INTO fe SELECT 'k', g FROM generate_series(11, 510) g"
wait_until 60 "the worker fails its rights check" \
	"SELECT last_error LIKE '%is no longer a member of role stream_ext_kafka%' FROM stream_ext.kafka_producers"
refused() { sink_refuses "INSERT INTO fe VALUES ('k', 0)"; }
deadline=$((SECONDS + 30))
until refused; do
	[ $SECONDS -lt $deadline ] || fail "writers were never held back: $(cat "$SCRATCH/bp.err")"
	sleep 0.2
done
say "ok: the failing producer refuses writers: $(head -n 1 "$SCRATCH/bp.err")"
# over several of its restarts (and the waits between them)
for i in $(seq 1 20); do
	refused || fail "a writer was let in while the producer failed (pid $(q "SELECT pid FROM stream_ext.kafka_producers")): $(cat "$SCRATCH/bp.err")"
	sleep 0.5
done
say "ok: writers stay refused over the worker's failed starts"

# a Kafka consumer into the stream is held back too: it pauses its partitions,
# and its messages wait in Kafka
seq 1001 3000 | sed 's/.*/{"k": "c", "i": &}/' | produce in_t
run_sql -c "SELECT stream_ext.kafka_consume('fe', 'in_t', '$BROKERS', format => 'json')"
wait_until 60 "the consumer pauses" "SELECT last_error LIKE 'paused: Kafka producer 1 of the stream has % events staged'
                                     FROM stream_ext.kafka_consumers"
sleep 3
expect "SELECT (SELECT sum(n) FROM unnest(next_offsets) n) FROM stream_ext.kafka_consumers" 0 \
	"the paused consumer took no message"

# once the right is back (the worker's next try may be a minute away)
run_sql -c "GRANT stream_ext_kafka TO ksf_owner"
wait_until 120 "the consumer's messages consumed" \
	"SELECT (SELECT sum(n) FROM unnest(next_offsets) n) = 2000 FROM stream_ext.kafka_consumers"
run_sql -c "INSERT INTO fe VALUES ('k', 511)"   # waits until there is room
wait_until 120 "every staged event produced" "SELECT lag = 0 AND state = 'running' FROM stream_ext.kafka_producers"
expect "SELECT messages >= 2511 FROM stream_ext.kafka_producers" t \
	"the events written meanwhile, and the consumer's, are produced"
say "PASS"
