#!/usr/bin/env bash
# Fault isolation that needs its own server:
#   1. stream_ext.max_view_errors bounds what view_errors keeps per view (the
#      newest), while view_stats counts every error;
#   2. ALTER DATABASE ... SET lock_timeout does not reach the workers: many
#      writers into an event-time view (two workers contend for its
#      watermark row) all commit, and no worker statement times out;
#   3. a COPY waiting on a full queue honours statement_timeout;
#   4. DDL on a stream while a COPY into it waits on a full queue: the
#      worker does not wait for the DDL's lock (it holds the stream's events
#      back), so the COPY and then the DDL complete, and every event counts;
#   5. stream_ext.view_time_limit: an event that makes a view's expression
#      sleep 30 s costs that event for that view, and its transaction
#      commits within seconds;
#   6. a statement_timeout caught by an exception block while the writer's
#      buffer was half sent: every event counted once;
#   7. a sync COMMIT waiting for a worker honours statement_timeout;
#   8. DROP EXTENSION during a writer's COMMIT: neither waits for good.
# Own server: small queues, two workers, max_view_errors = 5,
# view_time_limit = 500ms.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.workers = 2" "stream_ext.queue_size = 256kB" \
	"stream_ext.max_view_errors = 5" "stream_ext.view_time_limit = 500ms" "max_connections = 50"
fresh_db t_isolation

# --- 1. view_errors keeps the newest max_view_errors per view
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (id int, x int) SERVER stream_ext;
CREATE VIEW ev_ratio WITH (continuous) AS SELECT count(*) AS n, sum(100 / x) AS r FROM ev;
CREATE VIEW ev_all WITH (continuous) AS SELECT count(*) AS n FROM ev;
INSERT INTO ev SELECT i, 0 FROM generate_series(1, 20) i;
INSERT INTO ev SELECT 100 + i, 0 FROM generate_series(1, 3) i;
INSERT INTO ev VALUES (1000, 1);
SQL
[ "$(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'ev_ratio'::regclass")" = 5 ] ||
	fail "view_errors keeps $(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'ev_ratio'::regclass") rows of ev_ratio, expected 5"
[ "$(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'ev_ratio'::regclass AND event LIKE '(10_,%'")" = 3 ] ||
	fail "the newest errors (events 101-103) are not all kept"
[ "$(q "SELECT errors FROM stream_ext.view_stats WHERE name = 'ev_ratio'::regclass")" = 23 ] ||
	fail "view_stats does not count every error"
[ "$(q "SELECT n FROM ev_all")" = 24 ] || fail "ev_all lost events"
[ "$(q "SELECT n || ':' || r FROM ev_ratio")" = 1:100 ] || fail "ev_ratio counted a bad event"
say "ok: view_errors keeps the newest 5 errors of a view; view_stats counts all 23"

# --- 2. ALTER DATABASE ... SET lock_timeout does not reach the workers
psql -X -q -d postgres -c "ALTER DATABASE t_isolation SET lock_timeout = '1ms'" \
	-c "ALTER DATABASE t_isolation SET statement_timeout = '50ms'"
# the workers take database settings when they start: start them again
q "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity
    WHERE datname = 't_isolation' AND backend_type LIKE 'stream_ext%'" >/dev/null
export PGOPTIONS="-c lock_timeout=0 -c statement_timeout=0"
run_sql <<'SQL'
CREATE FOREIGN TABLE tm (k int, ts timestamptz) SERVER stream_ext;
CREATE VIEW tm_minute WITH (continuous, time_column = 'ts', allowed_lateness = '1 day') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, count(*) AS n FROM tm GROUP BY 1;
SQL
offset=$(log_offset)
cat > "$SCRATCH/tm.sql" <<'SQL'
INSERT INTO tm SELECT i, '2024-01-01 00:00:00+00'::timestamptz + (random() * 600) * interval '1 second'
  FROM generate_series(1, 20) i;
SQL
pgbench -n -c 8 -j 2 -t 150 -f "$SCRATCH/tm.sql" > "$SCRATCH/pgbench.out" 2>&1 ||
	{ cat "$SCRATCH/pgbench.out"; fail "pgbench failed"; }
grep -q 'number of transactions actually processed: 1200/1200' "$SCRATCH/pgbench.out" ||
	{ cat "$SCRATCH/pgbench.out"; fail "some transactions failed"; }
[ "$(q "SELECT sum(n) FROM tm_minute")" = 24000 ] || fail "tm_minute counts $(q "SELECT sum(n) FROM tm_minute"), expected 24000"
if log_since "$offset" | grep -E 'lock timeout|statement timeout|will apply a batch|discarded a batch'; then
	fail "a worker statement timed out under ALTER DATABASE ... SET"
fi
unset PGOPTIONS
psql -X -q -d postgres -c "ALTER DATABASE t_isolation RESET lock_timeout" -c "ALTER DATABASE t_isolation RESET statement_timeout"
say "ok: 1200 transactions into an event-time view under database lock_timeout = 1ms: all counted, no worker timed out"

# --- 3 and 4: a COPY waiting on a full queue
run_sql <<'SQL'
CREATE FOREIGN TABLE big (id int, pad text) SERVER stream_ext;
CREATE VIEW big_n WITH (continuous) AS SELECT count(*) AS n FROM big;
CREATE FOREIGN TABLE other (id int) SERVER stream_ext;
CREATE VIEW other_n WITH (continuous) AS SELECT count(*) AS n FROM other;
SQL
awk 'BEGIN { pad = sprintf("%100s", ""); gsub(/ /, "x", pad); for (i = 1; i <= 40000; i++) print i "," pad }' > "$SCRATCH/big.csv"
chmod 644 "$SCRATCH/big.csv"

# hold the table the workers count their batches in (as a superuser may):
# they wait for it at the end of a batch, the queues fill up (a lock of a
# view's table would not do: its events would be held back)
counters=stream_ext_internal.view_counters
block_workers() {
	psql -X -q -c "BEGIN" -c "LOCK TABLE $counters IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(600)" \
		>/dev/null 2>&1 &
	_bg_pids+=($!); blocker=$!
	wait_until 10 "the counters table is locked" \
		"SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		  WHERE c.oid = '$counters'::regclass AND l.mode = 'AccessExclusiveLock' AND l.granted"
}
unblock_workers() {
	q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'" >/dev/null
	wait "$blocker" 2>/dev/null || true
}

# 3. statement_timeout fires while the COPY waits on the full queue
block_workers
t=$SECONDS
out=$(psql -X -v ON_ERROR_STOP=1 -c "SET statement_timeout = '3s'" \
	-c "\\copy big FROM '$SCRATCH/big.csv' (FORMAT csv)" 2>&1 || true)
grep -q 'canceling statement due to statement timeout' <<< "$out" ||
	fail "the waiting COPY did not time out: $out"
[ $((SECONDS - t)) -lt 30 ] || fail "statement_timeout took $((SECONDS - t)) s"
unblock_workers
say "ok: a COPY waiting on a full queue honours statement_timeout"

# 4. ALTER of the stream while the COPY waits on the full queue
block_workers
psql -X -c "\\copy big FROM '$SCRATCH/big.csv' (FORMAT csv)" > "$SCRATCH/copy.out" 2>&1 &
copy_pid=$!
wait_until 30 "the COPY waits on the full queue" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query ILIKE 'copy%big%' AND wait_event = 'MessageQueueSend'"
psql -X -c "ALTER FOREIGN TABLE big ADD COLUMN extra int" > "$SCRATCH/alter.out" 2>&1 &
alter_pid=$!
wait_until 30 "the ALTER waits for its lock" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'ALTER FOREIGN TABLE big%' AND wait_event_type = 'Lock'"
unblock_workers
t=$SECONDS
timeout 60 tail --pid=$alter_pid -f /dev/null || fail "the ALTER did not complete within 60 s"
timeout 60 tail --pid=$copy_pid -f /dev/null || fail "the COPY did not end within 60 s"
grep -q 'ALTER FOREIGN TABLE' "$SCRATCH/alter.out" || { cat "$SCRATCH/alter.out"; fail "the ALTER failed"; }
grep -q 'COPY 40000' "$SCRATCH/copy.out" || { cat "$SCRATCH/copy.out"; fail "the COPY failed"; }
say "ok: DDL during a COPY waiting on a full queue: the COPY and the DDL complete ($((SECONDS - t)) s)"
q "INSERT INTO other VALUES (1)" >/dev/null
[ "$(q "SELECT n FROM other_n")" = 1 ] || fail "another stream is held up"
wait_until 60 "big_n counts the COPY's held events" "SELECT n = 40000 FROM big_n"
[ "$(q "SELECT sum(held_events) FROM stream_ext.view_stats")" = 0 ] || fail "events are still held back"
q "INSERT INTO big (id, pad, extra) VALUES (1, 'x', 1)" >/dev/null
[ "$(q "SELECT n FROM big_n")" = 40001 ] || fail "the altered stream does not take events"
say "ok: other streams and the altered stream take events; every event of the COPY counted once, none of the timed out one"

# --- 5. a view over its time limit loses the slow event, not the batch
run_sql <<'SQL'
CREATE FOREIGN TABLE slow (x int) SERVER stream_ext;
CREATE FUNCTION nap(x int) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF x = 13 THEN PERFORM pg_sleep(30); END IF;
  RETURN x;
END $$;
CREATE VIEW slow_sum WITH (continuous) AS SELECT count(*) AS n, sum(nap(x)) AS s FROM slow;
CREATE VIEW slow_all WITH (continuous) AS SELECT count(*) AS n FROM slow;
SQL
t=$SECONDS
q "INSERT INTO slow SELECT i FROM generate_series(1, 20) i" >/dev/null
took=$((SECONDS - t))
[ "$took" -lt 10 ] || fail "the INSERT with a 30 s event took $took s"
[ "$(q "SELECT n || ':' || s FROM slow_sum")" = 19:197 ] || fail "slow_sum: $(q "SELECT n || ':' || s FROM slow_sum"), expected 19:197"
[ "$(q "SELECT n FROM slow_all")" = 20 ] || fail "slow_all lost events"
[ "$(q "SELECT sqlstate || ' ' || (event LIKE '(13,%') FROM stream_ext.view_errors WHERE name = 'slow_sum'::regclass")" = "54000 true" ] ||
	fail "the slow event is not recorded: $(q "SELECT sqlstate, message, event FROM stream_ext.view_errors WHERE name = 'slow_sum'::regclass")"
say "ok: an event sleeping 30 s in a view's expression cost that event for that view; the INSERT took $took s"

# --- 6 and 7: a writer stopped while it waits for the workers (their queue
# full, or its commit not yet applied) by statement_timeout.  The views are
# slow on purpose: no time limit for them here.
set_server_setting stream_ext.view_time_limit 0
run_sql <<'SQL'
CREATE FOREIGN TABLE tw (k int, v bigint) SERVER stream_ext;
CREATE TABLE tw_out (k int, v bigint);
CREATE VIEW tw_copy WITH (continuous, output = 'tw_out') AS SELECT k, v FROM tw;
CREATE FUNCTION tw_slow(x bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN PERFORM pg_sleep(0.0005); RETURN x; END$$;
CREATE VIEW tw_agg WITH (continuous) AS SELECT k, count(*) AS c, sum(tw_slow(v)) AS sv FROM tw GROUP BY k;
-- a write into the stream in an exception block that catches the timeout
CREATE FUNCTION tw_inner(g bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO tw VALUES (-1, g);
  EXCEPTION WHEN query_canceled THEN
    RAISE NOTICE 'caught: %', SQLERRM;
    -- the statement has run out of time: let it finish and commit
    PERFORM set_config('statement_timeout', '0', false);
  END;
  RETURN true;
END $$;
SQL
# 6: the statement's 20,000 events wait in the writer's buffer (it applies
# tw_copy itself); the inner INSERT's statement sends them, in records, to
# queues the slow view keeps full: the timeout stops it after some records,
# the exception block catches it, the statement commits.  Every event once.
out=$(PGOPTIONS="-c statement_timeout=2s" psql -X -v ON_ERROR_STOP=1 -c \
	"INSERT INTO tw SELECT g % 10, g FROM generate_series(1, 20000) g WHERE g < 20000 OR tw_inner(g)" 2>&1) ||
	fail "the INSERT failed: $out"
grep -q 'caught: canceling statement due to statement timeout' <<< "$out" ||
	fail "the timeout did not stop the inner INSERT while it sent the buffer: $out"
wait_until 120 "the queues are drained" \
	"SELECT sum(queue_bytes) = 0 AND sum(writers_waiting_queue) = 0 FROM stream_ext.workers"
wait_until 30 "tw_agg and tw_out have the events" \
	"SELECT (SELECT sum(c) FROM tw_agg) >= 20000 AND (SELECT count(*) FROM tw_out) >= 20000"
got=$(q "SELECT (SELECT sum(c) FROM tw_agg) || ' ' || (SELECT count(*) FROM tw_out) || ' ' || (SELECT count(DISTINCT v) FROM tw_out)")
[ "$got" = "20000 20000 20000" ] ||
	fail "after a timeout caught while the buffer was sent: tw_agg counts, tw_out rows, distinct rows: $got, expected 20000 20000 20000"
say "ok: a timeout caught while a writer's buffer was half sent: every event once in a view and a transform's table"

# 7: at commit (PostgreSQL disarms statement_timeout before it), a writer
# waiting for a worker stuck on a lock (of the counters table, which a
# superuser may take) still times out, and nothing of its transaction counts
q "SELECT stream_ext.truncate_continuous_view('tw_agg')" >/dev/null
psql -X -q -c "BEGIN" -c "LOCK TABLE $counters IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
locker=$!
_bg_pids+=("$locker")
wait_until 10 "the counters table is locked" \
	"SELECT count(*) = 1 FROM pg_locks WHERE relation = '$counters'::regclass AND mode = 'AccessExclusiveLock' AND granted"
t=$SECONDS
out=$(PGOPTIONS="-c statement_timeout=1s" psql -X -c "INSERT INTO tw VALUES (1, 1)" 2>&1) &&
	fail "the INSERT committed while its worker waited for a lock: $out"
took=$((SECONDS - t))
grep -q 'canceling statement due to statement timeout' <<< "$out" || fail "not a statement timeout: $out"
[ "$took" -le 5 ] || fail "the INSERT's COMMIT wait took $took s under statement_timeout = 1s"
kill "$locker" 2>/dev/null || true
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
q "INSERT INTO tw VALUES (2, 2)" >/dev/null
got=$(q "SELECT string_agg(k || ':' || c, ',' ORDER BY k) FROM tw_agg")
[ "$got" = "2:1" ] || fail "after the timed out INSERT and one more: tw_agg is '$got', expected '2:1'"
say "ok: statement_timeout = 1s ended a COMMIT waiting for a worker after $took s; its event not counted"
# ... counted from the start of the commit's wait: a procedure that ran 1.2 s
# before it set statement_timeout = 1s commits its insert
run_sql <<'SQL'
CREATE PROCEDURE tw_late_timeout() LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(1.2);
  PERFORM set_config('statement_timeout', '1000', false);
  INSERT INTO tw VALUES (3, 3);
  COMMIT;
END $$;
SQL
out=$(psql -X -v ON_ERROR_STOP=1 -c "CALL tw_late_timeout()" 2>&1) || fail "CALL tw_late_timeout() failed: $out"
[ "$(q "SELECT c FROM tw_agg WHERE k = 3")" = 1 ] || fail "the procedure's event is not counted"
say "ok: a statement_timeout set late in a procedure does not fail its commit"

# --- 8. DROP EXTENSION while a writer commits: it stops the workers, then
# waits for the writer's lock on the stream; the writer, waiting for the
# stopped workers, fails at once instead of both waiting for good
q "CREATE FOREIGN TABLE dx (k int) SERVER stream_ext" >/dev/null
q "CREATE VIEW dx_n WITH (continuous) AS SELECT count(*) AS n FROM dx" >/dev/null
psql -X -c "BEGIN" -c "INSERT INTO dx VALUES (1)" -c "SELECT pg_sleep(3)" -c "COMMIT" > "$SCRATCH/dx_writer.out" 2>&1 &
writer=$!
_bg_pids+=("$writer")
sleep 1
t=$SECONDS
timeout 60 psql -X -v ON_ERROR_STOP=1 -c "DROP EXTENSION stream_ext CASCADE" > "$SCRATCH/dx_drop.out" 2>&1 ||
	{ cat "$SCRATCH/dx_drop.out"; fail "DROP EXTENSION did not complete within 60 s while a writer committed"; }
timeout 30 tail --pid=$writer -f /dev/null || fail "the writer is still waiting"
grep -q 'stream_ext workers of database "t_isolation" are stopped' "$SCRATCH/dx_writer.out" ||
	{ cat "$SCRATCH/dx_writer.out"; fail "the writer's COMMIT did not fail with the workers-stopped error"; }
say "ok: DROP EXTENSION during a writer's COMMIT completed in $((SECONDS - t)) s; the COMMIT failed, saying why"
say PASS
