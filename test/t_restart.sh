#!/usr/bin/env bash
# Clean restart: views keep their contents, the workers start again by
# themselves, and events inserted after the restart are applied (sync: at
# COMMIT; async: shortly after).  Own server (it is restarted twice).
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db t_restart
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW url_stats WITH (continuous) AS
  SELECT url, count(*) AS n, sum(user_id) AS s, avg(latency) AS a FROM clicks GROUP BY url;
SELECT stream_ext.create_continuous_view('totals', $$SELECT count(*) AS n, max(ts) AS last FROM clicks$$);
INSERT INTO clicks SELECT '/p/' || (i % 4), i, i % 100, now() FROM generate_series(1, 10000) i;
SQL

snapshot() { q "SELECT string_agg(format('%s:%s:%s:%s', url, n, s, round(a::numeric, 6)), ' ' ORDER BY url) FROM url_stats"; }
expect_total() {  # expect_total N LABEL
	local got; got=$(q "SELECT n FROM totals")
	[ "$got" = "$1" ] || fail "$2: totals.n = $got, expected $1"
	say "ok: $2: totals.n = $1"
}
expect_total 10000 "before restart"
before=$(snapshot)
# wait until the combiner has merged, so that the restart also covers state tables
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'url_stats'::regclass")
wait_until 30 "deltas of url_stats merged" "SELECT count(*) = 0 FROM $delta"

for round in 1 2; do
	bash "$TEST_DIR/server.sh" stop "$SRV"
	bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
	say "round $round: server stopped and started again"
	after=$(snapshot)
	[ "$after" = "$before" ] || fail "url_stats changed across the restart: before '$before', after '$after'"
	say "ok: url_stats unchanged across the restart"
	expect_total $((10000 + (round - 1) * 3000)) "after restart $round"
	wait_until 30 "a stream_ext worker is running for database t_restart" \
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 't_restart' AND backend_type = 'stream_ext worker'"
	say "ok: stream_ext worker running again"
	# sync insert: applied when COMMIT returns
	q "INSERT INTO clicks SELECT '/p/' || (i % 4), i, i % 100, now() FROM generate_series(1, 2000) i" >/dev/null
	expect_total $((12000 + (round - 1) * 3000)) "sync insert after restart $round"
	# async insert: applied shortly after
	PGOPTIONS="-c stream_ext.commit_mode=async" q "INSERT INTO clicks SELECT '/p/x', i, 1, now() FROM generate_series(1, 1000) i" >/dev/null
	wait_until 30 "async events applied" "SELECT n = $((13000 + (round - 1) * 3000)) FROM totals"
	say "ok: async insert after restart $round applied"
	before=$(snapshot)
done
[ "$(q "SELECT events >= 16000 FROM stream_ext.view_stats WHERE name = 'url_stats'::regclass")" = t ] ||
	fail "view_stats does not count the events: $(q "SELECT events FROM stream_ext.view_stats WHERE name = 'url_stats'::regclass")"
say "ok: view_stats counts events across restarts"

# a database's (or role's) stream_ext.read_time is not the workers': their
# reaper deletes rows of every owner of the database
run_sql <<'SQL'
ALTER DATABASE t_restart SET stream_ext.read_time = '2099-01-01 00:00:00+00';
CREATE VIEW seen_time WITH (continuous) AS
  SELECT url, pg_catalog.current_setting('stream_ext.read_time') AS worker_read_time FROM clicks;
SQL
bash "$TEST_DIR/server.sh" stop "$SRV"
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
q "INSERT INTO clicks VALUES ('/after-db-setting', 1, 1, now())" >/dev/null
got=$(PGOPTIONS="-c stream_ext.read_time=" q "SELECT count(*) || ':' || coalesce(max(worker_read_time), '?') FROM seen_time WHERE url = '/after-db-setting'")
[ "$got" = "1:" ] || fail "the workers took the database's stream_ext.read_time (rows:value): '$got'"
say "ok: the workers ignore a database's stream_ext.read_time"
say "PASS ($((SECONDS - t0))s)"
