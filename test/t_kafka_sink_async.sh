#!/usr/bin/env bash
# Kafka sink, commits not yet on disk: with synchronous_commit = off a
# commit is visible before its WAL is flushed, and a crash takes it back.
# The producer must not send an event before the commits it depends on
# (the writer's, the worker's, its own that numbered the event) are on
# disk: else after kill -9 the topic holds an event the database lost, and
# its number (the stream_ext_event header) is given to another event.
# Here every commit is asynchronous and nothing else writes WAL out: the WAL
# writer is stopped (SIGSTOP) in each round, the background writer writes no
# page (which would flush WAL first), no checkpoint comes; a kill -9 then
# loses what only the WAL buffers held, as a power failure loses what the
# OS had not written.  Each round writes an event in its own transaction,
# waits until it is in the topic, kills the server at once and restarts it.
# Every event read back must still be in the database after the crash, and
# no header may name two different events.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"
ROUNDS=${ROUNDS:-3}

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "synchronous_commit = off" "bgwriter_lru_maxpages = 0" "checkpoint_timeout = 1h" \
	"wal_buffers = 16MB"
fresh_db t_kafka_sink_async
mock_start 1 async:1

run_sql <<SQL
CREATE FOREIGN TABLE ae (i int) SERVER stream_ext;
CREATE VIEW ae_all WITH (continuous) AS SELECT i, count(*) AS n FROM ae GROUP BY i;
SELECT stream_ext.kafka_produce('ae', topic => 'async', brokers => '$BROKERS', format => 'json');
SQL
wait_until 60 "the producer runs" "SELECT state = 'running' FROM stream_ext.kafka_producers"

consume() {
	kcat -C -b "$BROKERS" -t async -e -q -X isolation.level=read_committed -f '%h\t%s\n' \
		> "$SCRATCH/consumed.tsv" 2>"$SCRATCH/kcat.err" ||
		fail "kcat could not read the topic: $(cat "$SCRATCH/kcat.err")"
}

for r in $(seq 1 "$ROUNDS"); do
	walwriter=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
	[ -n "$walwriter" ] || fail "no WAL writer"
	kill -STOP "$walwriter"
	q "INSERT INTO ae VALUES ($r)" >/dev/null
	deadline=$((SECONDS + 8))
	until consume; grep -qE "\"i\": ?$r[,}]" "$SCRATCH/consumed.tsv"; do
		[ $SECONDS -lt $deadline ] || fail "event $r not in the topic within 8 s"
		sleep 0.1
	done
	kill_server_hard "$SRV"
	bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
	say "round $r: event $r in the topic, server killed and restarted"
	wait_until 60 "the producer runs again" "SELECT state = 'running' FROM stream_ext.kafka_producers"
done

consume
run_sql <<SQL
CREATE TABLE got (header text, value text);
\copy got FROM '$SCRATCH/consumed.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
SQL
say "read back $(q "SELECT count(*) FROM got") messages"
expect "SELECT count(*) FROM (SELECT header FROM got GROUP BY header HAVING count(DISTINCT value) > 1) d" 0 \
	"no event number names two events"
wait_until 60 "every event in the topic merged into the view" \
	"SELECT count(*) = 0 FROM (SELECT (value::json->>'i')::int AS i FROM got
	                            EXCEPT SELECT i FROM ae_all) d"
expect "SELECT count(*) FROM ae_all WHERE n > 1" 0 "each event once in the view"
say "ok: every event the topic holds survived the crashes"
