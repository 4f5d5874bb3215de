#!/usr/bin/env bash
# A lock that a view's run needs, held by another transaction, costs that
# view time, not the other views or streams, and no event (own server,
# stream_ext.view_time_limit = 500ms, one worker so that every stream shares
# its queue): while the lock is held, the sync writers commit, the other
# views count their events, and the view's events are held back
# (view_stats.held_events); once it is released they are in the view, none
# set aside.  Locks of its delta table (LOCK, VACUUM FULL
# queued behind a read), of a table it joins while it is planned again, DDL
# on a table it joins queued behind a reader (also one that writes events),
# an advisory lock its function waits for (the first batch waits the time
# limit once), a DROP of the view or its truncate_continuous_view in an open
# transaction, and DDL on the stream and the view in the writing transaction
# itself.  And a DROP VIEW does not deadlock with the combiner's merge.
# The combiner cuts the empty end a burst left in a delta table, and does
# not wait for it while a read holds the table.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.view_time_limit = '500ms'" "stream_ext.workers = 1"
fresh_db t_lock_waits

run_sql <<'SQL'
CREATE FOREIGN TABLE s (k int, v text) SERVER stream_ext;
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k;
CREATE VIEW total WITH (continuous) AS SELECT count(*) AS n FROM s;
CREATE FOREIGN TABLE other (k int) SERVER stream_ext;
CREATE VIEW other_n WITH (continuous) AS SELECT count(*) AS n FROM other;
INSERT INTO s VALUES (1, 'a');
SQL
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'per_k'::regclass")

# the condition "the combiner waits for a lock of relation $1 of ours"
combiner_waits_for() {
	echo "EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	    WHERE a.backend_type = 'stream_ext combiner' AND NOT l.granted
	      AND l.relation = 'stream_ext_internal.$1'::regclass)"
}
# (view_stats would wait for a lock of the view's tables: it reads their sizes)
held() {
	q "SELECT count(*) FROM stream_ext_internal.held_events h
	     JOIN stream_ext_internal.continuous_views v ON v.id = h.view_id WHERE v.view = '$1'::regclass"
}
no_errors() {
	[ "$(q "SELECT count(*) FROM stream_ext.view_errors")" = 0 ] ||
		fail "$1: $(q "SELECT sqlstate || ' ' || message FROM stream_ext.view_errors")"
}
# hold a lock in a transaction of its own until release_lock; $1 locks
hold_lock() {
	psql -X -q -c "BEGIN" -c "$1" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
	_bg_pids+=($!); holder=$!
	wait_until 10 "the lock is taken" \
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)' AND wait_event = 'PgSleep'"
}
release_lock() {
	q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'" >/dev/null
	wait "$holder" 2>/dev/null || true
}
# a write that must not wait for the lock (20 s: it would wait for as long
# as the lock is held)
write() { PGOPTIONS="-c statement_timeout=20s" q "$1" >/dev/null; }
still_holding() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'")" = 1 ] ||
		fail "the lock was released before the check"
}

# --- 1. a lock on the view's delta table
hold_lock "LOCK $delta IN ACCESS EXCLUSIVE MODE"
write "INSERT INTO s VALUES (500, 'x')" || fail "the writer failed while a lock was held"
write "INSERT INTO other VALUES (1)" || fail "the other stream's writer failed"
still_holding
[ "$(q "SELECT n FROM total")" = 2 ] || fail "the stream's other view waited for the lock"
[ "$(q "SELECT n FROM other_n")" = 1 ] || fail "the other stream waited for the lock"
[ "$(held per_k)" = 1 ] || fail "per_k holds back $(held per_k) events, expected 1"
release_lock
wait_until 30 "per_k counts the held event" "SELECT n = 1 FROM per_k WHERE k = 500"
[ "$(held per_k)" = 0 ] || fail "per_k still holds back $(held per_k) events"
no_errors "a lock wait was recorded as the view's error"
say "ok: while per_k's delta table was locked, its writers committed, the other views counted at once, and per_k counted the held event after"

# --- 2. the same through a slow read that a VACUUM FULL queues behind (the
# worker does not queue behind it: the write returns long before the read
# ends)
psql -X -q -c "SELECT count(*), pg_sleep(5) FROM per_k" >/dev/null &
_bg_pids+=($!)
sleep 0.3
psql -X -q -c "VACUUM FULL $delta" >/dev/null &
_bg_pids+=($!)
sleep 0.3
t=$(date +%s%3N)
write "INSERT INTO s VALUES (600, 'y')" || fail "the writer failed behind VACUUM FULL"
took=$(($(date +%s%3N) - t))
[ "$took" -lt 3000 ] || fail "the write waited ${took} ms for VACUUM FULL queued behind a read"
wait
wait_until 30 "per_k counts the event written behind VACUUM FULL" "SELECT n = 1 FROM per_k WHERE k = 600"
say "ok: an event written while VACUUM FULL of a delta table waited behind a read is in the view"

# --- 3. a view planned again while a table it joins is locked (the workers
# reload their views when one is created)
run_sql <<'SQL'
CREATE TABLE users (id int PRIMARY KEY, country text);
INSERT INTO users VALUES (800, 'fr');
CREATE VIEW per_country WITH (continuous) AS
  SELECT u.country, count(*) AS n FROM s JOIN users u ON u.id = s.k GROUP BY 1;
INSERT INTO s VALUES (800, 'j');
CREATE VIEW later WITH (continuous) AS SELECT max(k) AS m FROM s;
SQL
hold_lock "LOCK users IN ACCESS EXCLUSIVE MODE"
write "INSERT INTO s VALUES (800, 'k')" || fail "the writer failed while a joined table was locked"
still_holding
[ "$(q "SELECT m FROM later")" = 800 ] || fail "a view that joins nothing waited for the joined table"
release_lock
wait_until 30 "per_country counts the held event" "SELECT n = 2 FROM per_country WHERE country = 'fr'"
no_errors "a lock wait while planning was recorded as the view's error"
say "ok: a view planned again while its joined table was locked holds its events back, then counts them"

# --- 3b. DDL on a joined table queued behind a reader: the worker does not
# queue behind it (the write returns long before the reader ends), and a
# writer that read the table in its transaction commits while the DDL waits
# for it (queued behind the DDL, the worker would wait for the writer)
psql -X -q -c "BEGIN" -c "SELECT count(*) FROM users" -c "SELECT pg_sleep(5)" -c "COMMIT" >/dev/null &
_bg_pids+=($!)
sleep 0.3
psql -X -q -c "ALTER TABLE users ADD COLUMN f1 int" >/dev/null &
ddl=$!
sleep 0.3
t=$(date +%s%3N)
write "INSERT INTO s VALUES (800, 'q')" || fail "the writer failed while DDL on a joined table waited"
took=$(($(date +%s%3N) - t))
[ "$took" -lt 3000 ] || fail "the write waited ${took} ms for DDL queued on a joined table"
wait "$ddl" || fail "the ALTER TABLE failed"
psql -X -q -v ON_ERROR_STOP=1 -c "BEGIN" -c "SELECT count(*) FROM users" -c "SELECT pg_sleep(1)" \
	-c "INSERT INTO s VALUES (800, 'r')" -c "COMMIT" > "$SCRATCH/writer.out" 2>&1 &
writer=$!
sleep 0.4
psql -X -q -c "ALTER TABLE users ADD COLUMN f2 int" >/dev/null &
ddl=$!
wait "$writer" || fail "a writer that read the joined table failed while DDL waited for it: $(cat "$SCRATCH/writer.out")"
wait "$ddl" || fail "the second ALTER TABLE failed"
wait_until 30 "per_country counts the events written while DDL waited" "SELECT n = 4 FROM per_country WHERE country = 'fr'"
no_errors "DDL queued on a joined table"
run_sql -c "ALTER TABLE users DROP COLUMN f1, DROP COLUMN f2"
say "ok: DDL queued on a joined table: a write returned in ${took} ms, a writer that read the table committed, both events counted"

# --- 4. an advisory lock the view's function waits for: the first batch
# waits the time limit, later ones not at all
run_sql <<'SQL'
CREATE FUNCTION gated(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN x; END $$;
CREATE FOREIGN TABLE g (x int) SERVER stream_ext;
CREATE VIEW g_sum WITH (continuous) AS SELECT sum(gated(x)) AS total, count(*) AS n FROM g;
SQL
hold_lock "SELECT pg_advisory_xact_lock(4242)"
for i in 1 2 3; do
	write "INSERT INTO g VALUES ($i)" || fail "a writer of g failed while the advisory lock was held"
done
for i in 1 2 3; do
	write "INSERT INTO other VALUES ($i)" || fail "a writer of other failed"
done
still_holding
[ "$(q "SELECT n FROM other_n")" = 4 ] || fail "the other stream waited for g_sum's lock"
[ "$(q "SELECT held_events FROM stream_ext.view_stats WHERE name = 'g_sum'::regclass")" = 3 ] ||
	fail "view_stats says g_sum holds back $(held g_sum) events, expected 3"
release_lock
wait_until 60 "g_sum counts the held events" "SELECT total = 6 AND n = 3 FROM g_sum"
no_errors "an advisory lock wait was recorded as the view's error"
say "ok: while g_sum's function waited for an advisory lock, other streams went on; its events were counted after"

# --- 4b. the view's function gives up on a lock another session holds
# (its own lock_timeout: 55P03), for longer than three drains of the held
# events: the lock is the server's to report, not the view's code's to
# raise, so no event is set aside; they are counted once the lock is gone
run_sql <<'SQL'
CREATE TABLE gate (id int);
CREATE FUNCTION table_gated(x int) RETURNS int LANGUAGE plpgsql STABLE SET lock_timeout = '50ms' AS $$
BEGIN PERFORM 1 FROM public.gate; RETURN x; END $$;
CREATE FOREIGN TABLE tg (x int) SERVER stream_ext;
CREATE VIEW tg_sum WITH (continuous) AS SELECT sum(table_gated(x)) AS total, count(*) AS n FROM tg;
SQL
hold_lock "LOCK gate IN ACCESS EXCLUSIVE MODE"
offset=$(log_offset)
for i in 1 2 3; do
	write "INSERT INTO tg VALUES ($i)" || fail "a writer of tg failed while gate was locked"
done
# the lock held 12 s, while the worker's runs and more than three drains
# (1, 2, 4 s apart: the fourth may own what the view's code raises) fail;
# each logs the function's lock timeout
timeouts() { grep -c 'canceling statement due to lock timeout' < <(log_since "$offset") || true; }
t=$SECONDS
while [ $((SECONDS - t)) -lt 12 ] || [ "$(timeouts)" -lt 5 ]; do
	[ $((SECONDS - t)) -lt 60 ] || fail "only $(timeouts) runs of tg_sum met the lock in 60 s"
	sleep 0.5
done
say "tg_sum's function met the lock $(timeouts) times in $((SECONDS - t)) s"
still_holding
[ "$(q "SELECT n FROM tg_sum")" = 0 ] || fail "tg_sum counted events while gate was locked"
release_lock
wait_until 60 "tg_sum counts the held events" "SELECT total = 6 AND n = 3 FROM tg_sum"
no_errors "a lock timeout of the view's function was recorded as the view's error"
say "ok: a lock timeout of tg_sum's function, met for 12 s, held its events back, none set aside; counted after"

# --- 5. the view's DROP in an open transaction that is rolled back, then committed
# (total has just merged, so the combiner comes to vacuum and cut its delta
# table while the DROP holds it: it must not wait there, or no view merges)
total_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'total'::regclass")
other_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'other_n'::regclass")
# two merges in a row: the second leaves a vacuum due in 2 s at most
for e in 898 899; do
	write "INSERT INTO s VALUES ($e, 'z')" || fail "the writer failed before the DROP"
	wait_until 30 "total's deltas are merged" "SELECT count(*) = 0 FROM $total_delta"
done
total_before=$(q "SELECT n FROM total")
hold_lock "DROP VIEW total"
write "INSERT INTO s VALUES (900, 'z')" || fail "the writer failed while a DROP of a view was open"
still_holding
[ "$(q "SELECT n FROM per_k WHERE k = 900")" = 1 ] || fail "per_k waited for the DROP of total"
sleep 2.5
[ "$(q "SELECT $(combiner_waits_for "${total_delta#stream_ext_internal.}")")" = f ] ||
	fail "the combiner waits for total's delta table, which the DROP holds"
write "INSERT INTO other VALUES (2)" || fail "the other stream's writer failed while a DROP of a view was open"
wait_until 15 "other_n's deltas are merged while the DROP of total is open" "SELECT count(*) = 0 FROM $other_delta"
still_holding
release_lock
wait_until 30 "total counts the held event after the DROP rolled back" "SELECT n = $total_before + 1 FROM total"
psql -X -q -c "BEGIN" -c "DROP VIEW total" -c "SELECT pg_sleep(1.5)" -c "COMMIT" >/dev/null &
_bg_pids+=($!)
sleep 0.5
q "INSERT INTO s VALUES (901, 'z')" >/dev/null || fail "the writer failed while a DROP of a view committed"
wait
wait_until 30 "the held events of the dropped view are gone" \
	"SELECT count(*) = 0 FROM stream_ext_internal.held_events"
no_errors "a dropped view's held events were recorded as errors"
say "ok: a view's DROP in an open transaction holds its events back; they count after a rollback and go with a commit"
# --- 6. a transaction that alters a stream and a view, then writes into the
# stream: its events are held back until it commits (the worker does not wait
# for its locks, so its COMMIT does not wait for the worker)
before=$(q "SELECT n FROM other_n")
PGOPTIONS="-c statement_timeout=20s" psql -X -q -v ON_ERROR_STOP=1 \
	-c "BEGIN" -c "ALTER FOREIGN TABLE other ADD COLUMN extra int" -c "ALTER VIEW other_n RENAME TO other_count" \
	-c "INSERT INTO other (k, extra) VALUES (7, 7)" -c "COMMIT" >/dev/null ||
	fail "a transaction that altered a stream and its view could not write into the stream"
wait_until 30 "other_count counts the event of the altering transaction" "SELECT n = $before + 1 FROM other_count"
say "ok: a transaction that altered a stream and its view wrote into the stream and committed; its event counted"
# --- 7. truncate_continuous_view of an event-time view in an open
# transaction, by its owner who may only read the stream (so that new
# writers do not wait for it, as they do for a TRUNCATE): it locks the
# view's watermark row, which a run would wait for
run_sql <<'SQL'
CREATE FOREIGN TABLE et (ts timestamptz, x int) SERVER stream_ext;
CREATE ROLE et_owner;
GRANT CREATE ON SCHEMA public TO et_owner;
GRANT SELECT ON et TO et_owner;
SET ROLE et_owner;
CREATE VIEW et_n WITH (continuous, time_column = 'ts') AS SELECT count(*) AS n FROM et;
RESET ROLE;
INSERT INTO et VALUES (now(), 1);
SQL
before=$(q "SELECT n FROM other_count")
hold_lock "SET ROLE et_owner; SELECT stream_ext.truncate_continuous_view('et_n')"
write "INSERT INTO et VALUES (now(), 2)" || fail "the writer failed while a truncation was open"
write "INSERT INTO other (k) VALUES (8)" || fail "the other stream's writer failed while a truncation was open"
still_holding
[ "$(q "SELECT n FROM other_count")" = $((before + 1)) ] || fail "the other stream waited for the truncation"
release_lock
wait_until 30 "et_n counts both events after the truncation rolled back" "SELECT n = 2 FROM et_n"
say "ok: an open truncate_continuous_view of an event-time view held its events back, not the other streams"
# --- 8. an event-time view's watermark waits at its held events: held
# while a table it joins is locked, they are judged on time; an event that
# comes later and is applied first (the combiner kept from taking the held
# ones: a superuser's lock of held_events) does not carry the watermark past
# them, so no window of theirs looks final before they are in it
run_sql <<'SQL'
CREATE FOREIGN TABLE ets (ts timestamptz, k int) SERVER stream_ext;
CREATE TABLE ew_dim (k int PRIMARY KEY);
INSERT INTO ew_dim VALUES (1);
CREATE VIEW ew WITH (continuous, time_column = 'ts', allowed_lateness = '1 minute') AS
  SELECT count(*) AS n FROM ets e JOIN ew_dim d ON d.k = e.k;
INSERT INTO ets VALUES ('2024-01-01 00:00:00+00', 1);
SQL
hold_lock "LOCK ew_dim IN ACCESS EXCLUSIVE MODE"
write "INSERT INTO ets VALUES ('2024-01-01 00:10:00+00', 1)" || fail "the writer of ets failed while ew_dim was locked"
[ "$(held ew)" = 1 ] || fail "ew holds back $(held ew) events, expected 1"
# (pg_sleep(599): release_lock cancels the other holder alone)
psql -X -q -c "BEGIN" -c "LOCK stream_ext_internal.held_events IN EXCLUSIVE MODE" -c "SELECT pg_sleep(599)" \
	>/dev/null 2>&1 &
_bg_pids+=($!); table_holder=$!
wait_until 10 "held_events is locked" \
	"SELECT count(*) = 1 FROM pg_locks WHERE relation = 'stream_ext_internal.held_events'::regclass AND mode = 'ExclusiveLock' AND granted"
release_lock
write "INSERT INTO ets VALUES ('2024-01-01 00:30:00+00', 1)" || fail "the later writer of ets failed"
watermark() {
	q "SELECT to_char(watermark AT TIME ZONE 'UTC', 'HH24:MI') FROM stream_ext.view_stats WHERE name = 'ew'::regclass"
}
wm=$(watermark)
[ "$wm" = "00:10" ] || fail "with an event of 00:10 held back, ew's watermark is $wm, expected 00:10"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(599)'" >/dev/null
wait "$table_holder" 2>/dev/null || true
wait_until 30 "ew counts the held event" "SELECT n = 3 FROM ew"
wm=$(watermark)
[ "$wm" = "00:29" ] || fail "once the held event is in ew, its watermark is $wm, expected 00:29"
[ "$(q "SELECT late_events FROM stream_ext.view_stats WHERE name = 'ew'::regclass")" = 0 ] ||
	fail "a held event was judged late"
say "ok: an event-time view's watermark waited at its held event until it was applied; none judged late"

# --- 9. DROP VIEW while the combiner merges the view: the combiner takes the
# view's delta table before its state table, in the DROP's order, so the two
# do not deadlock (they did: let into the state table, the combiner waited for
# the delta table the DROP held, and the DROP, checking for deadlocks sooner,
# failed with one).  The combiner keeps trying while the state table is busy.
run_sql <<'SQL'
CREATE FOREIGN TABLE ds (k int) SERVER stream_ext;
CREATE VIEW dv WITH (continuous) AS SELECT k, count(*) AS n FROM ds GROUP BY k;
SQL
dv=$(q "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'dv'::regclass")
# the combiner kept from the state table, with deltas to merge
hold_lock "LOCK stream_ext_internal.state_$dv IN SHARE MODE"
write "INSERT INTO ds SELECT g % 50 FROM generate_series(1, 500) g" || fail "the writer of ds failed"
sleep 1
# the DROP kept waiting by a lock of the view's catalog row (after it has taken
# the delta table, where the combiner does not hold it first)
psql -X -q -c "BEGIN" -c "SELECT 1 FROM stream_ext_internal.continuous_views WHERE id = $dv FOR UPDATE" \
	-c "SELECT pg_sleep(598)" >/dev/null 2>&1 &
_bg_pids+=($!); row_holder=$!
wait_until 10 "dv's catalog row is locked" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(598)' AND wait_event = 'PgSleep'"
(PGOPTIONS="-c deadlock_timeout=100ms" psql -X -q -v ON_ERROR_STOP=1 -c "DROP VIEW dv" \
	>"$SCRATCH/drop_dv.out" 2>&1; echo $? >"$SCRATCH/drop_dv.rc") &
_bg_pids+=($!); dropper=$!
wait_until 10 "the DROP waits" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'DROP VIEW dv' AND wait_event_type = 'Lock'"
release_lock
wait_until 10 "the combiner no longer waits for dv's state table" "SELECT NOT $(combiner_waits_for "state_$dv")"
sleep 0.05
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(598)'" >/dev/null
wait "$row_holder" 2>/dev/null || true
wait "$dropper" 2>/dev/null || true
[ "$(cat "$SCRATCH/drop_dv.rc")" = 0 ] || fail "DROP VIEW dv failed: $(cat "$SCRATCH/drop_dv.out")"
[ "$(q "SELECT to_regclass('dv') IS NULL")" = t ] || fail "dv is still there after its DROP"
say "ok: DROP VIEW of a view the combiner was merging did not deadlock with it"

# --- 10. a transaction that locks a view's state table and then drops the
# view, while the combiner has its deltas to merge: the combiner does not wait
# for the state table holding the delta table, which the DROP takes
run_sql <<'SQL'
CREATE VIEW dv2 WITH (continuous) AS SELECT k, count(*) AS n FROM ds GROUP BY k;
SQL
dv2=$(q "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'dv2'::regclass")
out=$(psql -X -q -v ON_ERROR_STOP=1 2>&1 <<SQL
BEGIN;
LOCK stream_ext_internal.state_$dv2 IN SHARE MODE;
\\! psql -X -q -c "INSERT INTO ds SELECT g % 50 FROM generate_series(1, 500) g"
SELECT pg_sleep(1.5);
SET LOCAL deadlock_timeout = '100ms';
DROP VIEW dv2;
COMMIT;
SQL
) || fail "the transaction that locked dv2's state table and dropped dv2 failed: $out"
[ "$(q "SELECT to_regclass('dv2') IS NULL")" = t ] || fail "dv2 is still there after its DROP"
say "ok: a transaction that locked a view's state table, then dropped the view during merges, did not deadlock"
# --- 11. the empty end of a delta table after a burst is given back, and
# the combiner does not wait for a reader to do it: a transaction that read
# the view, idle, holds the delta table; the burst is merged meanwhile; once
# the transaction ends, the table is cut back with no further event
run_sql <<'SQL'
CREATE FOREIGN TABLE burst (k int) SERVER stream_ext;
CREATE VIEW burst_k WITH (continuous) AS SELECT k, count(*) AS n FROM burst GROUP BY k;
SQL
bdelta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'burst_k'::regclass")
# idle in transaction: the table held, no snapshot kept; psql reads a fifo,
# and ends (rolling back) when it is closed
# (a combiner waiting for the table would queue this test's reads behind it)
export PGOPTIONS="-c lock_timeout=10s"
fifo_session idle_reader 7
idle_reader=$SESSION_PID
echo "BEGIN; SELECT count(*) FROM burst_k;" >&7
wait_until 10 "a reader of burst_k is idle in transaction" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'idle in transaction' AND query LIKE '%FROM burst_k%'"
write "INSERT INTO burst SELECT g FROM generate_series(1, 300000) g" || fail "the burst failed"
wait_until 60 "the burst is merged" "SELECT count(*) = 0 FROM $bdelta"
pages=$(q "SELECT pg_relation_size('$bdelta') / 8192")
[ "$pages" -ge 1000 ] || fail "the burst left only $pages pages in $bdelta: too few to test the cut"
write "INSERT INTO burst VALUES (1)" || fail "an insert after the burst failed"
wait_until 30 "a merge after the burst, with the reader's transaction open" "SELECT n = 2 FROM burst_k WHERE k = 1"
sleep 3
[ "$(q "SELECT $(combiner_waits_for "${bdelta#stream_ext_internal.}")")" = f ] ||
	fail "the combiner waits for $bdelta, which a reader holds"
[ "$(q "SELECT pg_relation_size('$bdelta') / 8192")" -ge 1000 ] ||
	fail "$bdelta was cut while a reader held it"
exec 7>&-
wait "$idle_reader" 2>/dev/null || true
unset PGOPTIONS
wait_until 90 "the combiner cuts the empty end of $bdelta ($pages pages), no event since" \
	"SELECT pg_relation_size('$bdelta') < 128 * 8192"
[ "$(q "SELECT count(*) || ' ' || sum(n) FROM burst_k")" = "300000 300001" ] ||
	fail "burst_k after the cut: $(q "SELECT count(*) || ' ' || sum(n) FROM burst_k")"
no_errors "the cut"
say "ok: the $pages empty pages a burst left in a delta table were cut once no reader held it, with no further event; merges went on meanwhile"
say PASS
