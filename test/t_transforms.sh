#!/usr/bin/env bash
# Transforms (views with output into a stream or a table), in two parts.
#
# 1. Differential, on the given server (or one of its own): random events,
#    written by INSERT and COPY, some in rolled back transactions or rolled
#    back savepoints, go through two chained stages:
#      ev -> t_mid (a LEFT JOIN with a table, rows missing on its side, a
#      WHERE, expressions) -> stream mid -> views mid_agg (GROUP BY) and
#      mid_minutes (time buckets), and -> t_out -> table out_tab;
#      ev -> t_direct -> table direct_tab;
#      ev2 (the same events) -> t_writer -> table writer_tab (a unique index),
#      which the writers insert into themselves, and -> view ev2_agg, which
#      the workers apply to the same (flagged) events.
#    The same events go into a plain table in the same transactions; every
#    stage must equal the batch query over that table.
# 2. Crash: an own server; clients write batches (each with its id: COPY,
#    multi-statement transactions, rollbacks, rolled back savepoints) into a
#    chain ev -> t_mid -> mid -> (per_batch view, t_out -> out_tab) and
#    ev -> t_direct -> direct_tab (which the writers insert into themselves);
#    kill -9 of the postmaster mid-ingestion,
#    restart, and in every stage every acknowledged batch is there exactly
#    once and complete, every batch there is complete in every stage, rolled
#    back batches and savepoints are nowhere, no row is doubled.
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-40} CLIENTS=${CLIENTS:-4} CYCLES=${CYCLES:-2} EVENTS_PER_CYCLE=${EVENTS_PER_CYCLE:-30000}

###########################################################################
say "part 1: chained stages against the batch query"
use_server
fresh_db t_transforms
create_pending_deltas
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (id bigint, k int, v int, u bigint, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE mid (id bigint, k int, v2 bigint, country text, ts timestamptz) SERVER stream_ext;
CREATE TABLE users (id bigint PRIMARY KEY, country text);
INSERT INTO users SELECT g, 'c' || (g % 7) FROM generate_series(1, 80) g;   -- ids 81..100 missing
CREATE TABLE out_tab (id bigint, k int, v2 bigint);
CREATE TABLE direct_tab (id bigint, v int, country text);
CREATE TABLE plain (round int, id bigint, k int, v int, u bigint, ts timestamptz);
CREATE VIEW t_mid WITH (continuous, output = 'mid') AS
  SELECT e.id, e.k, e.v * 2, coalesce(u.country, '?'), e.ts
    FROM ev e LEFT JOIN users u ON u.id = e.u WHERE e.v % 5 <> 0;
CREATE VIEW mid_agg WITH (continuous) AS
  SELECT k, country, count(*), sum(v2) FROM mid GROUP BY k, country;
CREATE VIEW mid_minutes WITH (continuous) AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, count(*), max(v2) FROM mid GROUP BY minute;
CREATE VIEW t_out WITH (continuous, output = 'out_tab') AS
  SELECT id, k, v2 FROM mid WHERE v2 % 3 = 0;
CREATE VIEW t_direct WITH (continuous, output = 'direct_tab') AS
  SELECT e.id, e.v, u.country FROM ev e JOIN users u ON u.id = e.u WHERE e.k < 5;
CREATE FOREIGN TABLE ev2 (id bigint, k int, v int, u bigint, ts timestamptz) SERVER stream_ext;
CREATE TABLE writer_tab (id bigint, k int, v int);
CREATE UNIQUE INDEX ON writer_tab (id);
CREATE VIEW t_writer WITH (continuous, output = 'writer_tab') AS
  SELECT id, k, v * 3 FROM ev2 WHERE v % 2 = 0;
CREATE VIEW ev2_agg WITH (continuous) AS SELECT k, count(*), sum(v) FROM ev2 GROUP BY k;
-- the batch queries over the committed events
CREATE VIEW want_mid AS
  SELECT p.id, p.k, p.v * 2 AS v2, coalesce(u.country, '?') AS country, p.ts
    FROM plain p LEFT JOIN users u ON u.id = p.u WHERE p.v % 5 <> 0;
SQL

# round R: N random events into plain (NULL join keys too), then into ev
plain_sql() {
	printf "INSERT INTO plain SELECT %s, %s * 100000 + g, (random() * 9)::int, (random() * 1000)::int, " "$1" "$1"
	printf "CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 100)::bigint END, "
	printf "'2100-01-01'::timestamptz + (random() * 3600) * interval '1 second' FROM generate_series(1, %s) g;\n" "$2"
}
round_sql() {
	plain_sql "$1" "$2"
	printf "INSERT INTO ev SELECT id, k, v, u, ts FROM plain WHERE round = %s;\n" "$1"
	printf "INSERT INTO ev2 SELECT id, k, v, u, ts FROM plain WHERE round = %s;\n" "$1"
}
for r in $(seq 1 "$ROUNDS"); do
	n=$((RANDOM % 300 + 1))
	case $((r % 6)) in
	0) { echo "BEGIN;"; round_sql "$r" "$n"; echo "ROLLBACK;"; } | run_sql ;;
	1) { echo "BEGIN;"; round_sql "$r" "$n"; echo "SAVEPOINT s;"; round_sql "$((r + 1000))" 50
	     echo "ROLLBACK TO s;"; echo "COMMIT;"; } | run_sql ;;
	2) # COPY of the round's events, once they are in plain
	   plain_sql "$r" "$n" | run_sql
	   psql -X -q -At -c "COPY (SELECT id, k, v, u, ts FROM plain WHERE round = $r) TO STDOUT" > "$SCRATCH/round.copy"
	   run_sql -c "\\copy ev FROM '$SCRATCH/round.copy'" -c "\\copy ev2 FROM '$SCRATCH/round.copy'" ;;
	*) { echo "BEGIN;"; round_sql "$r" "$n"; echo "COMMIT;"; } | run_sql ;;
	esac
done
say "$(q "SELECT count(*) FROM plain") committed events in $ROUNDS rounds"
wait_until 60 "the combiner moved every committed row" \
	"SELECT count(*) = 0 FROM (SELECT 1 FROM t_out UNION ALL SELECT 1 FROM t_direct) x"
wait_until 60 "the combiner merged ev2_agg" \
	"SELECT sum(count) = (SELECT count(*) FROM plain) FROM ev2_agg"

check_equal() {  # check_equal WHAT ACTUAL_SQL WANTED_SQL: multiset equality
	local diff
	diff=$(q "SELECT count(*) FROM ((($2) EXCEPT ALL ($3)) UNION ALL (($3) EXCEPT ALL ($2))) d")
	[ "$diff" = 0 ] || fail "$1 differs from the batch query in $diff rows"
	say "ok: $1 equals the batch query ($(q "SELECT count(*) FROM ($2) x") rows)"
}
check_equal "mid_agg (stream -> transform with a join -> stream -> view)" \
	"SELECT * FROM mid_agg" "SELECT k, country, count(*), sum(v2) FROM want_mid GROUP BY k, country"
check_equal "mid_minutes (time buckets over transformed events)" \
	"SELECT * FROM mid_minutes" \
	"SELECT date_bin('1 minute', ts, '2000-01-01'), count(*), max(v2) FROM want_mid GROUP BY 1"
check_equal "out_tab (stream -> transform -> stream -> transform -> table)" \
	"SELECT * FROM out_tab" "SELECT id, k, v2 FROM want_mid WHERE v2 % 3 = 0"
check_equal "direct_tab (stream -> transform with a join -> table)" \
	"SELECT * FROM direct_tab" \
	"SELECT p.id, p.v, u.country FROM plain p JOIN users u ON u.id = p.u WHERE p.k < 5"
check_equal "writer_tab (stream -> transform -> table, inserted by the writers)" \
	"SELECT * FROM writer_tab" "SELECT id, k, v * 3 FROM plain WHERE v % 2 = 0"
check_equal "ev2_agg (a view of the same stream, applied by the workers)" \
	"SELECT * FROM ev2_agg" "SELECT k, count(*), sum(v) FROM plain GROUP BY k"
# every event of t_writer was counted by a writer (worker numbers from 2000), none by a worker
[ "$(q "SELECT bool_and(c.worker >= 2000) FROM stream_ext_internal.view_counters c
        JOIN stream_ext_internal.continuous_views v ON v.id = c.view_id WHERE v.view = 't_writer'::regclass")" = t ] ||
	fail "t_writer was applied by workers too: $(q "SELECT string_agg(worker || ':' || events, ' ') FROM stream_ext_internal.view_counters")"
say "ok: the writers applied t_writer themselves"
# view_stats counts what each view applied, rolled back writers' events too:
# the views of mid all saw the same transformed events, at least the committed ones
[ "$(q "SELECT count(DISTINCT events) = 1 AND min(events) >= (SELECT count(*) FROM want_mid)
        FROM stream_ext.view_stats WHERE name IN ('mid_agg'::regclass, 'mid_minutes'::regclass, 't_out'::regclass)")" = t ] ||
	fail "view_stats of the views of mid: $(q "SELECT string_agg(name || '=' || events, ' ') FROM stream_ext.view_stats")"
say "ok: view_stats counts the transformed events each view applied"

# truncate and DROP keep working along the chain
run_sql -c "SELECT stream_ext.truncate_continuous_view('mid_agg')" -c "DROP VIEW t_out"
q "INSERT INTO ev VALUES (1, 1, 1, 1, '2100-01-01')" >/dev/null
[ "$(q "SELECT count FROM mid_agg")" = 1 ] || fail "mid_agg after truncate"
say "ok: truncate and DROP of a stage"

###########################################################################
say "part 2: kill -9 mid-ingestion loses and doubles nothing in any stage"
unset PGHOST PGPORT PGDATABASE
SRV="$SCRATCH/crash_server"
start_own_server "$SRV" "stream_ext.workers = 2" "stream_ext.queue_size = 256kB"
fresh_db t_transforms_crash
create_pending_deltas
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (batch_id bigint, size int, seq int) SERVER stream_ext;
CREATE FOREIGN TABLE mid (batch_id bigint, size int, seq int) SERVER stream_ext;
CREATE TABLE out_tab (batch_id bigint, seq int);
CREATE TABLE direct_tab (batch_id bigint, seq int);
CREATE VIEW t_mid WITH (continuous, output = 'mid') AS
  SELECT batch_id, size, seq FROM ev WHERE seq % 2 = 0;
CREATE VIEW per_batch WITH (continuous) AS
  SELECT batch_id, count(*) AS n, max(size) AS size, sum(seq) AS seq_sum FROM mid GROUP BY batch_id;
CREATE VIEW t_out WITH (continuous, output = 'out_tab') AS
  SELECT batch_id, seq FROM mid WHERE seq % 4 = 0;
CREATE VIEW t_direct WITH (continuous, output = 'direct_tab') AS
  SELECT batch_id, seq FROM ev WHERE seq % 3 = 0;
CREATE VIEW totals WITH (continuous) AS SELECT count(*) AS n FROM ev;
CREATE TABLE acked (id bigint, size int);
CREATE TABLE rolled_back (id bigint, size int);
SQL

verify() {  # verify LABEL
	local label=$1 bad
	load_client_logs
	bad=$(psql -X -At -v ON_ERROR_STOP=1 <<'SQL'
WITH ob AS (SELECT batch_id, count(*) AS n, count(DISTINCT seq) AS d FROM out_tab GROUP BY batch_id),
     db AS (SELECT batch_id, count(*) AS n, count(DISTINCT seq) AS d FROM direct_tab GROUP BY batch_id),
     present AS (SELECT batch_id FROM per_batch UNION SELECT batch_id FROM ob UNION SELECT batch_id FROM db),
     sizes AS (SELECT id, size FROM acked UNION SELECT batch_id, size FROM per_batch)
SELECT format('batch %s (size %s): mid %s events (seq sum %s), out_tab %s rows (%s distinct), direct_tab %s rows (%s distinct), acknowledged %s',
              p.batch_id, s.size, v.n, v.seq_sum, o.n, o.d, d.n, d.d, a.id IS NOT NULL)
  FROM present p
  LEFT JOIN per_batch v ON v.batch_id = p.batch_id
  LEFT JOIN ob o ON o.batch_id = p.batch_id
  LEFT JOIN db d ON d.batch_id = p.batch_id
  LEFT JOIN acked a ON a.id = p.batch_id
  LEFT JOIN LATERAL (SELECT max(size) AS size FROM sizes WHERE id = p.batch_id) s ON true
 WHERE s.size IS NULL
    OR coalesce(v.n, 0) <> s.size / 2 OR coalesce(v.seq_sum, 0) <> (s.size / 2) * (s.size / 2 + 1)
    OR coalesce(o.n, 0) <> s.size / 4 OR coalesce(o.d, 0) <> s.size / 4
    OR coalesce(d.n, 0) <> s.size / 3 OR coalesce(d.d, 0) <> s.size / 3
    OR EXISTS (SELECT FROM rolled_back r WHERE r.id = p.batch_id)
UNION ALL
SELECT format('acknowledged batch %s missing', a.id) FROM acked a
 WHERE NOT EXISTS (SELECT FROM per_batch v WHERE v.batch_id = a.id)
    OR NOT EXISTS (SELECT FROM direct_tab d WHERE d.batch_id = a.id)
 LIMIT 10
SQL
)
	[ -z "$bad" ] || fail "$label: $bad"
	say "ok: $label: $(q "SELECT count(*) FROM acked") acknowledged batches exactly once in every stage;" \
		"$(q "SELECT count(*) FROM rolled_back") rolled back ones nowhere; $(q "SELECT count(*) FROM out_tab") + $(q "SELECT count(*) FROM direct_tab") table rows"
}

for cycle in $(seq 1 "$CYCLES"); do
	before=$(q "SELECT n FROM totals")
	start_crash_clients "$cycle" 12 2400
	say "cycle $cycle: $CLIENTS clients writing; crash after $EVENTS_PER_CYCLE more events"
	wait_until 120 "$EVENTS_PER_CYCLE more events" "SELECT n >= $before + $EVENTS_PER_CYCLE FROM totals"
	crash_and_recover "$SRV"
	wait_until 60 "the combiner moved and cleaned every delta" "SELECT pending_deltas() = 0"
	verify "cycle $cycle, after restart and the combiner's rounds"
done
# the writers inserted direct_tab's rows themselves (counted under worker numbers from 2000)
[ "$(q "SELECT bool_and(c.worker >= 2000) FROM stream_ext_internal.view_counters c
        JOIN stream_ext_internal.continuous_views v ON v.id = c.view_id WHERE v.view = 't_direct'::regclass")" = t ] ||
	fail "t_direct was applied by workers too"
say "ok: the writers applied t_direct themselves, kill -9 included"

# a setting of the workers the writer cannot take: its default text search
# configuration, unqualified, in public (the writer's apply searches only
# pg_catalog): the statement succeeds and the workers apply its events
run_sql <<'SQL'
CREATE TEXT SEARCH CONFIGURATION public.tw_cfg (COPY = pg_catalog.english);
CREATE FOREIGN TABLE cfg_s (body text) SERVER stream_ext;
CREATE TABLE cfg_out (body text);
CREATE VIEW t_cfg WITH (continuous, output = 'cfg_out') AS SELECT upper(body) FROM cfg_s;
SQL
# ALTER SYSTEM checks the name in database postgres
psql -X -q -d postgres -c "CREATE TEXT SEARCH CONFIGURATION public.tw_cfg (COPY = pg_catalog.english)"
set_server_setting default_text_search_config tw_cfg
sleep 1   # the workers reload and publish it
out=$(psql -X -v ON_ERROR_STOP=1 -c "SET default_text_search_config = 'pg_catalog.english'" \
	-c "INSERT INTO cfg_s VALUES ('quick foxes')" 2>&1) ||
	fail "a writer failed on a setting of the workers it cannot take: $out"
wait_until 30 "the workers moved the row" "SELECT count(*) = 1 FROM cfg_out WHERE body = 'QUICK FOXES'"
[ "$(q "SELECT bool_and(c.worker < 2000) FROM stream_ext_internal.view_counters c
        JOIN stream_ext_internal.continuous_views v ON v.id = c.view_id WHERE v.view = 't_cfg'::regclass")" = t ] ||
	fail "the writer applied t_cfg although it could not take the workers' settings"
say "ok: a writer that cannot take the workers' settings leaves its events to them"
say "ok"
