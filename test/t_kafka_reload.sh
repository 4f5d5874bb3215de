#!/usr/bin/env bash
# A Kafka consumer worker whose stream_ext.batch_size is raised by a reload
# (SIGHUP) while it runs: it started with a small batch size, then takes
# batches far larger than that.  Every message must be counted exactly once
# and the worker must neither crash nor restart.  (A worker that polls into
# an array sized for the first batch size writes past its end; that does not
# always crash at once, but it does when the server runs under valgrind.)
# Own server (its configuration is changed).
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"
SMALL=8 LARGE=100000 ROUND=20000

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.batch_size = $SMALL" "stream_ext.kafka_batch_wait = 500ms" \
	"stream_ext.combine_interval = 50ms"
fresh_db t_kafka_reload
t0=$SECONDS
mock_start 1 reload_t:1
log_start=$(log_offset)

# the worker logs each batch's size at DEBUG1
run_sql <<SQL
ALTER DATABASE t_kafka_reload SET log_min_messages = debug1;
CREATE FOREIGN TABLE r (v bigint) SERVER stream_ext;
CREATE VIEW r_v WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM r;
SELECT stream_ext.kafka_consume('r', 'reload_t', '$BROKERS', format => 'text');
SQL
seq 1 100 | produce reload_t
wait_until 30 "the first messages applied with batch_size $SMALL" "SELECT n = 100 FROM r_v"
pid=$(q "SELECT pid FROM stream_ext_internal.kafka_worker_status()")
[ -n "$pid" ] || fail "no consumer worker"

# batches_above N [max]: how many batches of more than N messages the worker
# applied (log lines since log_start), or with max the largest of them
batches_above() {
	log_since "$log_start" | sed -n 's/.*stream_ext kafka consumer [0-9]*: \([0-9]*\) messages, polled.*/\1/p' |
		awk -v n="$1" -v what="${2:-count}" '$1 > n { c++; if ($1 > m) m = $1 }
			END { print (what == "max" ? m + 0 : c + 0) }'
}
[ "$(batches_above $SMALL)" -eq 0 ] || fail "a batch was larger than batch_size $SMALL"
say "ok: batches of at most $SMALL messages"

# Raise the batch size.  A new session seeing the new value means the
# postmaster reloaded, and it signals the worker when it does; kcat takes
# longer to start than the worker's 10 ms poll takes to notice.
q "ALTER SYSTEM SET stream_ext.batch_size = $LARGE" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 30 "the new batch_size in force" "SELECT current_setting('stream_ext.batch_size') = '$LARGE'"
total=100
for round in 1 2; do
	seq $((total + 1)) $((total + ROUND)) | produce reload_t
	total=$((total + ROUND))
	wait_until 60 "round $round applied" "SELECT n = $total FROM r_v"
done
expect_sum=$((total * (total + 1) / 2))
got=$(q "SELECT format('%s %s', n, s) FROM r_v")
[ "$got" = "$total $expect_sum" ] || fail "view has '$got', expected '$total $expect_sum'"
say "ok: every message counted once ($total)"

big=$(batches_above $SMALL)
[ "$big" -gt 0 ] || fail "no batch larger than the first batch_size $SMALL: the case above tested nothing"
say "ok: $big batches larger than the batch_size the worker started with (the largest: $(batches_above 0 max))"
now_pid=$(q "SELECT pid FROM stream_ext_internal.kafka_worker_status()")
[ "$now_pid" = "$pid" ] || fail "the consumer worker was restarted (pid $pid, now '$now_pid')"
[ -z "$(crash_lines "$log_start")" ] || fail "a process crashed: $(crash_lines "$log_start")"
say "ok: the same worker, no crash"

say "PASS ($((SECONDS - t0))s)"
