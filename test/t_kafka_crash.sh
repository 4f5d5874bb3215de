#!/usr/bin/env bash
# Exactly once across crashes: MESSAGES JSON messages in a 4-partition topic,
# consumed with parallelism 2 while the postmaster and all its children are
# killed with kill -9 CRASHES times (each time once more messages were
# applied).  After the last restart the views must equal the batch query
# over all produced messages: every message counted exactly once.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"
MESSAGES=${MESSAGES:-1000000} CRASHES=${CRASHES:-4}

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db t_kafka_crash
t0=$SECONDS
mock_start 1 clicks:4

run_sql <<SQL
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW url_stats WITH (continuous) AS
  SELECT url, count(*) AS n, sum(user_id) AS users, sum(latency) AS lat, max(ts) AS last FROM clicks GROUP BY url;
CREATE VIEW totals WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS users FROM clicks;
SQL
create_pending_deltas

# message i: url /p/(i % 1000), user_id i, latency (i % 100) / 4, ts from i.
# Produced in chunks while the consumer keeps up: the mock cluster keeps only
# 5 MB per partition (it deletes the oldest messages, as retention would), and
# the producer may put a whole chunk into one partition.
CHUNK=5000 LAG_CHUNKS=20
producer() {
	local i=0 n c
	while [ $i -lt "$MESSAGES" ]; do
		n=$((i + CHUNK)); [ $n -gt "$MESSAGES" ] && n=$MESSAGES
		awk -v from=$((i + 1)) -v to=$n 'BEGIN { for (i = from; i <= to; i++)
			printf "{\"url\": \"/p/%d\", \"user_id\": %d, \"latency\": %.2f, \"ts\": \"2026-01-01 00:00:00+00\", \"i\": %d}\n", i % 1000, i, (i % 100) / 4, i }' |
			produce clicks -z zstd -X linger.ms=20
		i=$n
		echo $i > "$SCRATCH/produced"
		# until the consumer is at most LAG_CHUNKS chunks behind (the server may be
		# down): 100 k compressed messages take under 2 MB in one partition
		while :; do
			c=$(psql -X -At -c "SELECT n FROM totals" 2>/dev/null || true)
			[ "${c:-0}" -ge $((i - LAG_CHUNKS * CHUNK)) ] && break
			sleep 0.1
		done
	done
}
echo 0 > "$SCRATCH/produced"
q "SELECT stream_ext.kafka_consume('clicks', 'clicks', '$BROKERS', parallelism => 2)" >/dev/null
producer > "$SCRATCH/producer.log" 2>&1 &
producer_pid=$!
_bg_pids+=($producer_pid)

crash() { kill_server_hard "$SRV"; }  # kill -9 the postmaster and every child of it

step=$((MESSAGES / (CRASHES + 1)))
after=0
for c in $(seq 1 "$CRASHES"); do
	target=$((c * step)); [ $target -le "$after" ] && target=$((after + 1))
	[ $target -gt "$MESSAGES" ] && target=$MESSAGES
	wait_until 300 "$target messages applied" "SELECT n >= $target FROM totals"
	seen=$(q "SELECT n FROM totals")
	crash
	bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
	after=$(q "SELECT n FROM totals")
	[ "$after" -ge "$seen" ] || fail "crash $c: totals went back from $seen to $after"
	say "crash $c: killed at $seen applied messages, $after after recovery ($(cat "$SCRATCH/produced") produced)"
done
wait "$producer_pid" || fail "the producer failed: $(tail -n 5 "$SCRATCH/producer.log")"
wait_until 300 "all $MESSAGES messages applied" "SELECT n >= $MESSAGES FROM totals"
wait_until 60 "the combiner merged every delta" "SELECT pending_deltas() = 0"
expect_eq() {
	local got want
	got=$(q "$1"); want=$(q "$2")
	[ "$got" = "$want" ] || fail "$3: view says '${got:0:200}', batch query says '${want:0:200}'"
	say "ok: $3"
}
expect_eq "SELECT format('%s %s', n, users) FROM totals" \
	"SELECT format('%s %s', $MESSAGES, ($MESSAGES::numeric * ($MESSAGES + 1) / 2)::bigint)" "totals: every message exactly once"
expect_eq "SELECT md5(string_agg(format('%s:%s:%s:%s', url, n, users, lat), ' ' ORDER BY url)) FROM url_stats" \
	"SELECT md5(string_agg(format('%s:%s:%s:%s', url, n, users, lat), ' ' ORDER BY url)) FROM (
	   SELECT '/p/' || (i % 1000) AS url, count(*) AS n, sum(i) AS users, sum(round((i % 100) / 4.0, 2)::float8) AS lat
	     FROM generate_series(1, $MESSAGES) i GROUP BY 1) s" "url_stats equals the batch query"
expect_eq "SELECT (SELECT sum(x) FROM unnest(next_offsets) x) FROM stream_ext.kafka_consumers" \
	"SELECT $MESSAGES" "stored offsets: every partition at its end"
say "PASS ($((SECONDS - t0))s)"
