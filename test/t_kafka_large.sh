#!/usr/bin/env bash
# Kafka messages that decode to events larger than the consumer worker's
# arena chunk (4 MB), and larger than a stream takes.  Own server,
# stream_ext.queue_size = 16MB: events up to about 8 MB.
#   1. Small messages, then eight messages of 5 MB (tuple images of every
#      length modulo 8), then small ones again: each is applied whole, in
#      the same worker.  (An image of a multiple of 8 bytes above 4 MB was
#      written into a 4 MB chunk: the worker crashed and the server
#      restarted every backend.)
#   2. A message of 9 MB: set aside as too large for the stream, as a
#      writer's event would be (kafka_errors), and the partition goes on.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.queue_size = 16MB" "stream_ext.kafka_batch_wait = 20ms"
fresh_db t_kafka_large
t0=$SECONDS
mock_start 1 large_t:1
log0=$(log_offset)

run_sql <<SQL
CREATE FOREIGN TABLE big_s (payload text) SERVER stream_ext;
CREATE VIEW big_v WITH (continuous) AS
  SELECT count(*) AS n, sum(length(payload)) AS total, max(length(payload)) AS longest FROM big_s;
SELECT stream_ext.kafka_consume('big_s', 'large_t', '$BROKERS', format => 'text');
SQL
# produce_large LENGTH...: one message of LENGTH bytes ('a's) each
produce_large() {
	local len
	for len in "$@"; do
		head -c "$len" /dev/zero | tr '\0' a
		echo
	done | produce large_t -X message.max.bytes=20000000 -z lz4
}

# --- 1. events larger than an arena chunk
seq 1 100 | produce large_t
wait_until 30 "the small messages applied" "SELECT n = 100 FROM big_v"
pid=$(q "SELECT pid FROM stream_ext_internal.kafka_worker_status()")
[ -n "$pid" ] || fail "no consumer worker"
produce_large 5000000 5000001 5000002 5000003 5000004 5000005 5000006 5000007
seq 1 100 | produce large_t
wait_until 60 "the large messages applied" "SELECT n = 208 FROM big_v"
expect "SELECT total - (SELECT sum(length(g::text)) FROM generate_series(1, 100) g) * 2 FROM big_v" \
	$((8 * 5000000 + 28)) "every byte of the large events is counted"
expect "SELECT longest FROM big_v" 5000007 "the longest event is whole"
[ "$(q "SELECT pid FROM stream_ext_internal.kafka_worker_status()")" = "$pid" ] ||
	fail "the consumer worker is not the one that started"
[ -z "$(crash_lines "$log0")" ] || fail "a process of the server crashed: $(crash_lines "$log0")"
say "ok: eight events of 5 MB applied whole by the same worker"

# --- 2. an event larger than a stream takes
produce_large 9000000
seq 1 10 | produce large_t
wait_until 60 "the messages after the large one applied" "SELECT n = 218 FROM big_v"
expect "SELECT count(*) FILTER (WHERE error LIKE 'event of % bytes is too large for stream \"big_s\"')
          FROM stream_ext.kafka_errors" 1 "the 9 MB message is set aside as too large"
expect "SELECT errors FROM stream_ext.kafka_consumers" 1 "and counted"
say "ok: a 9 MB event is set aside, the partition goes on"
say "PASS ($((SECONDS - t0))s)"
