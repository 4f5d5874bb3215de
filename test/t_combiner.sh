#!/usr/bin/env bash
# stream_ext.combine_interval is the merge period: committed deltas stay in
# the delta tables (and reads already count them) until combine_interval has
# passed since the last merge; a reload with a short interval merges them at
# once.  A view whose owner's combine function outlasts
# stream_ext.view_time_limit holds up no other view's merges, and one that
# waits that long for another transaction's lock is tried again.  Own server
# (its combine_interval is set at start).
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.combine_interval = '60s'"
fresh_db t_combiner

# an insert before any view starts the database's workers; the combiner's
# first round follows at once, and the 60 s period runs from it
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (k int) SERVER stream_ext;
INSERT INTO ev VALUES (0);
SQL
wait_until 30 "the combiner runs" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 't_combiner' AND application_name = 'stream_ext combiner'"
sleep 1
run_sql <<'SQL'
CREATE VIEW ev_counts WITH (continuous) AS SELECT k, count(*) AS n FROM ev GROUP BY k;
SQL
create_pending_deltas
state=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'ev_counts'::regclass")

q "INSERT INTO ev SELECT i % 10 FROM generate_series(1, 1000) i" >/dev/null
[ "$(q "SELECT sum(n) FROM ev_counts")" = 1000 ] || fail "the view does not count committed events"
say "ok: events counted at COMMIT"
[ "$(q "SELECT pending_deltas() > 0")" = t ] || fail "deltas were merged at once with combine_interval = 60s"
# a writer's commit alone does not make the combiner merge before the period
sleep 3
q "INSERT INTO ev VALUES (1)" >/dev/null
sleep 2
[ "$(q "SELECT pending_deltas() > 0")" = t ] || fail "deltas were merged within 5 s with combine_interval = 60s"
[ "$(q "SELECT count(*) FROM $state")" = 0 ] ||
	fail "the state table took rows within 5 s with combine_interval = 60s"
say "ok: nothing merged within 5 s of commits with combine_interval = 60s"

q "ALTER SYSTEM SET stream_ext.combine_interval = '100ms'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 10 "deltas merged after combine_interval = 100ms" "SELECT pending_deltas() = 0"
[ "$(q "SELECT sum(n) FROM ev_counts")" = 1001 ] || fail "the view changed across the merge"
say "ok: merged after a reload to 100ms, view unchanged"

# with a short period, every commit is merged soon
q "INSERT INTO ev SELECT i % 10 FROM generate_series(1, 500) i" >/dev/null
wait_until 10 "new deltas merged" "SELECT pending_deltas() = 0"
[ "$(q "SELECT sum(n) FROM ev_counts")" = 1501 ] || fail "wrong count after the second merge"
say "ok: later commits merged within the short period"

# a view whose combine function never returns: its merges stop at
# view_time_limit, its deltas are kept (committed, they are no delta's fault),
# and the other views are merged meanwhile
set_server_setting stream_ext.view_time_limit 500
run_sql <<'SQL'
CREATE FUNCTION slow_comb(a int8, b int8) RETURNS int8 LANGUAGE plpgsql IMMUTABLE
  AS $$BEGIN PERFORM pg_sleep(3600); RETURN a + b; END$$;
CREATE FUNCTION acc(a int8, b int) RETURNS int8 LANGUAGE sql IMMUTABLE AS $$SELECT a + b$$;
CREATE AGGREGATE slowsum(int) (sfunc = acc, stype = int8, combinefunc = slow_comb, initcond = '0');
CREATE VIEW slowv WITH (continuous) AS SELECT slowsum(k) AS s FROM ev;
SQL
for i in 1 2 3; do q "INSERT INTO ev VALUES ($i)" >/dev/null; done
wait_until 20 "the slow view's merge stopped at the time limit" \
	"SELECT count(*) > 0 FROM stream_ext.view_errors WHERE name = 'slowv'::regclass AND sqlstate = '54000'"
counts_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'ev_counts'::regclass")
for round in 1 2 3; do
	q "INSERT INTO ev SELECT i % 10 FROM generate_series(1, 100) i" >/dev/null
	wait_until 10 "the other view merged while the slow one fails (round $round)" "SELECT count(*) = 0 FROM $counts_delta"
done
[ "$(q "SELECT sum(n) FROM ev_counts")" = 1804 ] || fail "wrong count beside the slow view: $(q "SELECT sum(n) FROM ev_counts")"
slow_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'slowv'::regclass")
[ "$(q "SELECT count(*) FILTER (WHERE event IS NOT NULL) FROM stream_ext.view_errors WHERE name = 'slowv'::regclass")" = 0 ] ||
	fail "deltas of the slow view were set aside: $(q "SELECT string_agg(event, '; ') FROM stream_ext.view_errors WHERE name = 'slowv'::regclass")"
# (6 writers, a delta row each at least; their writers may be settled since)
[ "$(q "SELECT count(*) >= 6 FROM $slow_delta")" = t ] ||
	fail "the slow view keeps $(q "SELECT count(*) FROM $slow_delta") delta rows of its 6 writers"
say "ok: a view whose combine function never returns stops at view_time_limit, its deltas kept; the other views are merged"
run_sql -c "DROP VIEW slowv"

# a view whose merges, one delta at a time, each stay within the limit but
# together would take half a minute (150 deltas, 0.1 s a combine): the one at a
# time merging stops at its budget (4 s here), recorded, and the other views'
# merges wait no longer than that
q "ALTER SYSTEM SET stream_ext.combine_interval = '60s'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 10 "combine_interval is 60s" "SELECT current_setting('stream_ext.combine_interval') = '1min'"
run_sql <<'SQL'
CREATE FUNCTION slowish_comb(a int8, b int8) RETURNS int8 LANGUAGE plpgsql IMMUTABLE
  AS $$BEGIN PERFORM pg_sleep(0.1); RETURN a + b; END$$;
CREATE AGGREGATE slowishsum(int) (sfunc = acc, stype = int8, combinefunc = slowish_comb, initcond = '0');
CREATE FOREIGN TABLE ev_slow (k int) SERVER stream_ext;
CREATE VIEW slowishv WITH (continuous) AS SELECT slowishsum(k) AS s, count(*) AS n FROM ev_slow;
SQL
for i in $(seq 1 150); do echo "INSERT INTO ev_slow VALUES ($i);"; done | run_sql
[ "$(q "SELECT n || '/' || s FROM slowishv")" = "150/11325" ] || fail "the slowish view before its merges"
q "ALTER SYSTEM SET stream_ext.combine_interval = '100ms'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 30 "the one at a time merging of the slowish view stopped at its budget" \
	"SELECT count(*) > 0 FROM stream_ext.view_errors WHERE name = 'slowishv'::regclass
	   AND sqlstate = '54000' AND message LIKE '%one at a time took longer than 4000 ms%'"
for round in 1 2 3; do
	q "INSERT INTO ev SELECT i % 10 FROM generate_series(1, 100) i" >/dev/null
	wait_until 12 "the other view merged beside the slowish one (round $round)" "SELECT count(*) = 0 FROM $counts_delta"
done
[ "$(q "SELECT n || '/' || s FROM slowishv")" = "150/11325" ] || fail "the slowish view changed across its merges"
say "ok: merging a slow view's deltas one at a time stops at its budget; the other views are merged"
run_sql -c "DROP VIEW slowishv"

# a merge that waits for another transaction's lock past view_time_limit is
# tried again, not set aside: a transform's row whose key another session
# inserted and has not committed goes in once that session rolls back
run_sql <<'SQL'
CREATE FOREIGN TABLE lw (id int, note text) SERVER stream_ext;
CREATE TABLE lw_out (id int PRIMARY KEY, note text);
-- a trigger leaves the transform to the workers and the combiner
CREATE FUNCTION lw_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER lw_t BEFORE INSERT ON lw_out FOR EACH ROW EXECUTE FUNCTION lw_trg();
CREATE VIEW lw_tr WITH (continuous, output = 'lw_out') AS SELECT id, note FROM lw;
SQL
psql -X -q -o /dev/null -c "BEGIN" -c "INSERT INTO lw_out VALUES (1, 'held')" -c "SELECT pg_sleep(3)" \
	-c "ROLLBACK" &
holder=$!
wait_until 10 "another session holds key 1 of lw_out" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)'"
q "INSERT INTO lw VALUES (1, 'event')" >/dev/null
wait "$holder"
wait_until 20 "the transform's row went in after the rollback" "SELECT count(*) = 1 FROM lw_out WHERE note = 'event'"
[ "$(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'lw_tr'::regclass")" = 0 ] ||
	fail "the lock wait was recorded as the view's error: $(q "SELECT message FROM stream_ext.view_errors WHERE name = 'lw_tr'::regclass")"
say "ok: a merge waiting on another transaction's row past view_time_limit is tried again, its row kept"

# the deltas of a view whose merges wait (its owner lost INSERT on the
# transform's table) keep no writer id that the commit log must answer for:
# the combiner settles committed writers as frozen and deletes aborted
# writers' deltas, and nothing changes for reads; once INSERT is granted
# again the row moves, once
run_sql <<'SQL'
ALTER SYSTEM SET stream_ext.combine_interval = '200ms';
SELECT pg_reload_conf();
CREATE ROLE t_combiner_owner;
GRANT CREATE ON SCHEMA public TO t_combiner_owner;
CREATE FOREIGN TABLE sw (id int) SERVER stream_ext;
GRANT SELECT ON sw TO t_combiner_owner;
CREATE TABLE sw_out (id int);
GRANT INSERT ON sw_out TO t_combiner_owner;
-- a trigger leaves the transform to the workers and the combiner
CREATE TRIGGER sw_t BEFORE INSERT ON sw_out FOR EACH ROW EXECUTE FUNCTION lw_trg();
SET ROLE t_combiner_owner;
CREATE VIEW sw_tr WITH (continuous, output = 'sw_out') AS SELECT id FROM sw;
RESET ROLE;
REVOKE INSERT ON sw_out FROM t_combiner_owner;
INSERT INTO sw VALUES (1);
-- large enough to reach the workers before its end
BEGIN;
INSERT INTO sw SELECT 2 FROM generate_series(1, 20000);
ROLLBACK;
SQL
sw_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'sw_tr'::regclass")
# (the combiner settles at most once a minute)
wait_until 90 "the waiting deltas' writers settled" \
	"SELECT count(*) = 1 AND bool_and(writer_xid::xid8 = '2'::xid8) FROM $sw_delta"
[ "$(q "SELECT string_agg(id::text, ',') FROM sw_tr")" = 1 ] ||
	fail "the transform reads $(q "SELECT string_agg(id::text, ',') FROM sw_tr") with its writer settled"
[ "$(q "SELECT count(*) FROM sw_out")" = 0 ] || fail "a row moved while INSERT was revoked"
run_sql -c "GRANT INSERT ON sw_out TO t_combiner_owner"
wait_until 60 "the settled row moved once INSERT was granted" \
	"SELECT (SELECT count(*) FROM $sw_delta) = 0 AND (SELECT string_agg(id::text, ',') FROM sw_out) = '1'"
say "ok: the deltas of a view whose merges wait keep no writer the commit log must answer for; the row moves once, later"
say PASS
