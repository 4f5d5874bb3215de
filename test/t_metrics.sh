#!/usr/bin/env bash
# The metrics views: per view events/s over the last 10 s, minute and 5
# minutes (view_stats), commit-to-visible latency (commit_latency), queue
# fill and waiting writers per worker (workers, waiting_writers), the
# combiner's backlog (combiner); and the wait events of writers waiting on a
# full queue (IPC/MessageQueueSend) and on their commit (IPC/MessageQueueReceive).
# Own server: one worker with a 256 kB queue, so that one busy batch fills it.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.workers = 1" "stream_ext.queue_size = 256kB" \
	"stream_ext.view_time_limit = 0" "stream_ext.combine_interval = 50ms"
fresh_db t_metrics
t0=$SECONDS

run_sql <<'SQL'
-- the event k = -1 keeps the worker busy for 4 s
CREATE FUNCTION slow_key(k int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
  $$BEGIN IF k = -1 THEN PERFORM pg_sleep(4); END IF; RETURN k; END$$;
CREATE FOREIGN TABLE ev (k int, pad text) SERVER stream_ext;
CREATE VIEW ev_v WITH (continuous) AS SELECT slow_key(k) AS k, count(*) AS n FROM ev GROUP BY 1;
CREATE FOREIGN TABLE r (k int) SERVER stream_ext;
CREATE VIEW r_v WITH (continuous) AS SELECT k % 10 AS k, count(*) AS n FROM r GROUP BY 1;
SQL

########## rates: 6000 events in one transaction, then nothing
# (rates count whole buckets: 1 s, and 5 s for the 5-minute rate)
q "INSERT INTO r SELECT i FROM generate_series(1, 6000) i" >/dev/null
wait_until 8 "6000 events are 600/s over 10 s, 100/s over a minute, 20/s over 5 minutes" \
	"SELECT format('%s %s %s', rate_10s, rate_1m, rate_5m) = '600 100 20' FROM stream_ext.view_stats WHERE name = 'r_v'::regclass"
say "ok: view_stats: 6000 events are 600/s over 10 s, 100/s over a minute, 20/s over 5 minutes"
wait_until 15 "rate_10s falls to 0 when idle" \
	"SELECT rate_10s = 0 AND rate_1m = 100 FROM stream_ext.view_stats WHERE name = 'r_v'::regclass"
say "ok: idle: rate_10s 0 after 10 s, rate_1m still 100"
expect "SELECT rate_10s FROM stream_ext.view_stats WHERE name = 'ev_v'::regclass" "0" "a view without events has rate 0"

########## commit-to-visible latency
for i in $(seq 1 20); do echo "INSERT INTO r VALUES ($i);"; done | run_sql
expect "SELECT commits >= 21 AND p50_ms > 0 AND p50_ms <= p99_ms AND p99_ms <= max_ms AND max_ms < 10000 FROM stream_ext.commit_latency" \
	"t" "commit_latency: commits, p50 <= p99 <= max"
say "   $(q "SELECT format('commits %s, p50 %s ms, p99 %s ms, max %s ms', commits, round(p50_ms::numeric, 2), round(p99_ms::numeric, 2), round(max_ms::numeric, 2)) FROM stream_ext.commit_latency")"

########## the combiner's backlog
wait_until 20 "the combiner merged everything" \
	"SELECT pending_merges = 0 AND unmerged_deltas = 0 AND last_merge_at IS NOT NULL FROM stream_ext.combiner"
say "ok: combiner: no backlog once merged, last merge at $(q "SELECT last_merge_at FROM stream_ext.combiner")"
expect "SELECT format('%s %s %s', count(*), min(state), min(queue_size)) FROM stream_ext.workers" \
	"1 running 262144" "workers: one row per batch worker, its queue size"

########## a busy worker: the queue fills, a writer waits for room, then for its commit
# busy_worker: the one worker busy with a slow event (async, so no one waits on it)
busy_worker() {
	q "SET stream_ext.commit_mode = async; INSERT INTO ev VALUES (-1, '')" >/dev/null
	wait_until 10 "the worker is busy with the slow event" \
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'stream_ext worker' AND datname = 't_metrics' AND state = 'active'"
}
busy_worker
# 3000 events of 200 bytes: more than the 256 kB queue
psql -X -q -c "INSERT INTO ev SELECT i, repeat('x', 200) FROM generate_series(1, 3000) i" >/dev/null 2>"$SCRATCH/writer.err" &
writer=$!
_bg_pids+=("$writer")
wait_until 5 "a writer waits for room in the full queue" \
	"SELECT count(*) = 1 FROM stream_ext.waiting_writers w JOIN pg_stat_activity a USING (pid)
	  WHERE w.waiting_for = 'queue' AND w.worker = 0 AND w.query LIKE 'INSERT INTO ev%'
	    AND a.wait_event_type = 'IPC' AND a.wait_event = 'MessageQueueSend'"
say "ok: waiting_writers shows the writer waiting for room (wait event IPC/MessageQueueSend)"
expect "SELECT writers_waiting_queue = 1 AND queue_fill > 0.5 FROM stream_ext.workers" "t" \
	"workers: the queue is over half full, one writer waits for room ($(q "SELECT queue_fill FROM stream_ext.workers"))"
wait "$writer" || fail "the writer failed: $(cat "$SCRATCH/writer.err")"
expect "SELECT count(*) FROM stream_ext.waiting_writers" "0" "no writer waits once the worker caught up"

busy_worker
psql -X -q -c "INSERT INTO ev VALUES (7, '')" >/dev/null 2>"$SCRATCH/writer.err" &
writer=$!
_bg_pids+=("$writer")
wait_until 5 "a writer waits for its commit" \
	"SELECT count(*) = 1 FROM stream_ext.waiting_writers w JOIN pg_stat_activity a USING (pid)
	  WHERE w.waiting_for = 'commit' AND w.worker = 0
	    AND a.wait_event_type = 'IPC' AND a.wait_event = 'MessageQueueReceive'"
say "ok: waiting_writers shows the writer waiting for its commit (wait event IPC/MessageQueueReceive)"
expect "SELECT writers_waiting_commit FROM stream_ext.workers" "1" "workers: one writer waits for its commit"
wait "$writer" || fail "the writer failed: $(cat "$SCRATCH/writer.err")"
expect "SELECT sum(n) FROM ev_v" "3003" "every event counted"

########## a view that takes the id of a dropped one has rates of its own
# (ids start again after DROP and CREATE EXTENSION; rates are kept by id)
for i in $(seq 1 5); do echo "INSERT INTO r SELECT generate_series(1, 100);"; done | run_sql
wait_until 10 "r_v has a rate" "SELECT rate_10s > 0 FROM stream_ext.view_stats WHERE name = 'r_v'::regclass"
id=$(q "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'r_v'::regclass")
run_sql <<'SQL'
SET client_min_messages = warning;
DROP EXTENSION stream_ext CASCADE;
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE r2 (k int) SERVER stream_ext;
CREATE VIEW v1 WITH (continuous) AS SELECT count(*) AS n FROM r2;
CREATE VIEW v2 WITH (continuous) AS SELECT count(*) AS n FROM r2;
SQL
expect "SELECT count(*) FILTER (WHERE id = $id) || ':' || coalesce(sum(s.rate_10s + s.rate_1m + s.rate_5m), 0)
          FROM stream_ext_internal.continuous_views v JOIN stream_ext.view_stats s ON s.name = v.view" \
	"1:0" "a new view with a dropped view's id starts with no events per second"

say "PASS ($((SECONDS - t0))s)"
