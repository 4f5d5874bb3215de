#!/usr/bin/env bash
# MANUAL measurement (not run by run_tests.sh or CI): a Kafka producer's
# private memory while it sends 250 events of 896 kB (224 MB) staged at once.
# A batch read from the outbox holds batch_size messages and about 64 MB at
# most (src/kafka/producer.c, BATCH_BYTES); two batches are in flight, and
# librdkafka keeps a copy of each message until acknowledged.  Prints the
# peak of RssAnon sampled every 50 ms.  Own server and mock cluster.
# Measured on 2026-12-07: 244 MB; 409 MB before the byte cap (one batch of
# all 250).
source "$(dirname "$0")/../lib.sh"
source "$TEST_DIR/kafka/lib.sh"
unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db bigmsg
mock_start 1 big:1
run_sql <<SQL
CREATE FOREIGN TABLE bm (i int, body text) SERVER stream_ext;
SELECT stream_ext.kafka_produce('bm', topic => 'big', brokers => '$BROKERS', format => 'text');
SQL
wait_until 60 "running" "SELECT state = 'running' FROM stream_ext.kafka_producers"
run_sql -c "SELECT stream_ext.kafka_stop_producer('bm', 'big')"
run_sql -c "INSERT INTO bm SELECT g, repeat(md5(g::text), 28000) FROM generate_series(1, 250) g"
run_sql -c "SELECT stream_ext.kafka_start_producer('bm', 'big')"
peak=0
for i in $(seq 1 600); do
	pid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'stream_ext kafka producer' LIMIT 1" 2>/dev/null)
	if [ -n "$pid" ] && [ -r /proc/$pid/status ]; then
		h=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
		[ -n "$h" ] && [ "$h" -gt "$peak" ] && peak=$h
	fi
	[ "$(q "SELECT lag = 0 AND messages = 250 FROM stream_ext.kafka_producers")" = t ] && break
	sleep 0.05
done
say "producer peak private memory (RssAnon, sampled every 50 ms) $((peak / 1024)) MB; $(q "SELECT messages || ' produced, lag ' || lag FROM stream_ext.kafka_producers")"
