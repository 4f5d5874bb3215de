#!/usr/bin/env bash
# A lock on a table a view's batch writes (LOCK, VACUUM FULL of its delta
# table), held longer than the view's time limit, is no fault of the events
# (own server, stream_ext.view_time_limit = 500ms): the sync writer waits for
# it and its event is in every view afterwards, none set aside; also when
# the view is planned again while the lock is held (a locked joined table).
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.view_time_limit = '500ms'"
fresh_db t_lock_waits

run_sql <<'SQL'
CREATE FOREIGN TABLE s (k int, v text) SERVER stream_ext;
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k;
CREATE VIEW total WITH (continuous) AS SELECT count(*) AS n FROM s;
INSERT INTO s VALUES (1, 'a');
SQL
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'per_k'::regclass")

# --- 1. a lock held three times the view's time limit
psql -X -q -c "BEGIN; LOCK $delta IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;" >/dev/null &
_bg_pids+=($!)
sleep 0.3
t=$(date +%s%N)
q "INSERT INTO s VALUES (500, 'x')" >/dev/null || fail "the writer failed while a lock was held"
waited=$((($(date +%s%N) - t) / 1000000))
wait
[ "$(q "SELECT n FROM per_k WHERE k = 500")" = 1 ] || fail "the event written during the lock is not in per_k"
[ "$(q "SELECT n FROM total")" = 2 ] || fail "the event written during the lock is not in total"
[ "$(q "SELECT count(*) FROM stream_ext.view_errors")" = 0 ] ||
	fail "a lock wait was recorded as the view's error: $(q "SELECT sqlstate || ' ' || message FROM stream_ext.view_errors")"
say "ok: a sync writer waited ${waited} ms for a lock on a view's delta table, and its event is in every view"

# the same through a slow read that a VACUUM FULL queues behind
psql -X -q -c "SELECT count(*), pg_sleep(2) FROM per_k" >/dev/null &
_bg_pids+=($!)
sleep 0.3
psql -X -q -c "VACUUM FULL $delta" >/dev/null &
_bg_pids+=($!)
sleep 0.3
q "INSERT INTO s VALUES (600, 'y')" >/dev/null || fail "the writer failed behind VACUUM FULL"
wait
[ "$(q "SELECT n FROM per_k WHERE k = 600")" = 1 ] || fail "the event written behind VACUUM FULL is not in per_k"
say "ok: an event written while VACUUM FULL of a delta table waited behind a read is in the view"

# a view planned again while the lock is held (the workers reload their views
# when one is created): the planning waits, and is retried too
run_sql <<'SQL'
CREATE TABLE users (id int PRIMARY KEY, country text);
INSERT INTO users VALUES (800, 'fr');
CREATE VIEW per_country WITH (continuous) AS
  SELECT u.country, count(*) AS n FROM s JOIN users u ON u.id = s.k GROUP BY 1;
INSERT INTO s VALUES (800, 'j');
CREATE VIEW later WITH (continuous) AS SELECT max(k) AS m FROM s;
SQL
psql -X -q -c "BEGIN; LOCK users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;" >/dev/null &
_bg_pids+=($!)
sleep 0.3
q "INSERT INTO s VALUES (800, 'k')" >/dev/null || fail "the writer failed while a joined table was locked"
wait
[ "$(q "SELECT n FROM per_country WHERE country = 'fr'")" = 2 ] ||
	fail "the event written while a joined table was locked is not in the join view: $(q "SELECT n FROM per_country")"
[ "$(q "SELECT count(*) FROM stream_ext.view_errors")" = 0 ] ||
	fail "a lock wait while planning was recorded as the view's error: $(q "SELECT sqlstate || ' ' || message FROM stream_ext.view_errors")"
say "ok: a view planned again while its joined table was locked waits for it too"
say PASS
