#!/usr/bin/env bash
# pg_dump / pg_restore round trip.  A database with streams, continuous views
# of every window kind (one owned by a non-superuser, one over a stream column
# numbered differently after the restore) and a Kafka consumer is dumped while
# writers commit into it; restored into a new database (one job: pg_restore
# --jobs loads the extension's catalog tables, which reference each other, in
# any order):
#   - pg_restore reports nothing;
#   - each restored view holds exactly what a read in pg_dump's snapshot held:
#     every writer transaction also wrote its events into a plain table, and
#     each view equals its defining query run over that table's restored rows
#     (a delta row of a writer still in progress at the dump is not counted);
#   - the combiner merges restored deltas; the watermark is the dump's;
#   - ingestion goes on: new events are counted exactly, windows included;
#   - a view joining a table and a view over a table is restored too, and a
#     row-keeping view joining a table, with the index its owner made on it;
#   - views depend on their stream and tables again, new views get new ids, dropping a
#     restored view removes its tables, the catalog views show everything;
#   - the Kafka consumer is restored stopped, with its offsets;
#   - partial states of hll's aggregate (agg_state) are restored by name;
#   - inputs kept of a domain's values (count(DISTINCT)) read and merge;
#   - a view whose joined table and column were renamed after it was made,
#     and one made under other DateStyle, IntervalStyle and extra_float_digits
#     than the restore's, restore with the same meaning.
# Own server: the combiner merges every 3 s, so that the dump holds deltas.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.combine_interval = '3s'"
fresh_db dump_src
psql -X -q -d postgres -c "CREATE DATABASE dump_dst"

run_sql <<'SQL'
CREATE ROLE dump_owner LOGIN;
GRANT CREATE ON SCHEMA public TO dump_owner;
CREATE FOREIGN TABLE clicks (gone int, url text, user_id bigint, latency float8, ts timestamptz)
  SERVER stream_ext;
ALTER FOREIGN TABLE clicks DROP COLUMN gone;   -- restored, ts is column 4, not 5
GRANT SELECT, INSERT ON clicks TO dump_owner;
CREATE TABLE log (url text, user_id bigint, latency float8, ts timestamptz);
SET ROLE dump_owner;
CREATE VIEW url_stats WITH (continuous) AS
  SELECT url, count(*) AS n, sum(user_id) AS s, avg(latency) AS a FROM clicks GROUP BY url;
RESET ROLE;
CREATE VIEW per_second WITH (continuous, ttl = '1 day', ttl_column = 'sec') AS
  SELECT date_bin('1 second', ts, '2000-01-01') AS sec, count(*) AS n, max(latency) AS top
  FROM clicks GROUP BY 1;
CREATE VIEW recent WITH (continuous, sliding_window = '1 day', time_column = 'ts',
                         allowed_lateness = '1 day') AS
  SELECT url, count(*) AS n, sum(latency) AS total FROM clicks GROUP BY url;
CREATE VIEW hops WITH (continuous, hop_size = '1 day', hop_slide = '12 hours', time_column = 'ts',
                       allowed_lateness = '1 day') AS
  SELECT count(*) AS n FROM clicks;
CREATE VIEW visits WITH (continuous, session_gap = '1 hour', time_column = 'ts',
                         allowed_lateness = '1 day') AS
  SELECT url, count(*) AS n FROM clicks GROUP BY url;
CREATE VIEW ghosts WITH (continuous, security_barrier) AS SELECT url, count(*) AS n FROM clicks GROUP BY url;
-- states of an extension's aggregate (agg_state, written with the
-- aggregate's name: hll's has another OID in the restored database)
CREATE EXTENSION hll;
CREATE VIEW uniq WITH (continuous) AS
  SELECT url, hll_add_agg(hll_hash_bigint(user_id)) AS users FROM clicks GROUP BY url;
-- inputs kept of a domain's values: their sets name the type by an OID the
-- restore changes (reads and merges of restored groups failed)
CREATE DOMAIN page AS text;
CREATE VIEW distinct_pages WITH (continuous) AS
  SELECT user_id % 3 AS g, count(DISTINCT url::page) AS pages FROM clicks GROUP BY 1;
-- joins with a table (a third of the users missing) and a view over a table
CREATE TABLE users (id bigint PRIMARY KEY, tier int);
INSERT INTO users SELECT i, i % 5 FROM generate_series(1, 30000) i WHERE i % 3 <> 0;
CREATE TABLE kinds_t (url text PRIMARY KEY, kind text);
INSERT INTO kinds_t VALUES ('/p/1', 'one'), ('/p/2', 'two'), ('/p/3', NULL);
CREATE VIEW page_kinds AS SELECT url, kind FROM kinds_t;
CREATE VIEW by_tier WITH (continuous) AS
  SELECT u.tier, k.kind, count(*) AS n, sum(c.latency) AS total
    FROM clicks c JOIN users u ON u.id = c.user_id LEFT JOIN page_kinds k ON k.url = c.url
   GROUP BY 1, 2;
-- a view that keeps rows, joined, with ttl and an index of its owner's
CREATE VIEW slow_rows WITH (continuous, ttl = '1 day', ttl_column = 'ts') AS
  SELECT c.ts, c.url, c.user_id, u.tier FROM clicks c JOIN users u ON u.id = c.user_id
   WHERE c.latency > 20;
CREATE INDEX ON slow_rows (url);
-- a transform into a table: moved rows are table data, staged rows deltas
CREATE TABLE slow_log (url text, user_id bigint);
CREATE VIEW to_slow_log WITH (continuous, output = 'slow_log') AS
  SELECT url, user_id FROM clicks WHERE latency > 22;
-- constants written under other display settings than the restore's
SET datestyle = 'SQL, DMY';
SET intervalstyle = 'sql_standard';
SET extra_float_digits = -10;
CREATE VIEW styled WITH (continuous) AS
  SELECT '03/04/2026'::date AS d, interval '-1 day -2 hours' AS iv, count(*) AS n,
         count(*) FILTER (WHERE latency < 24.123456789) AS under
    FROM clicks GROUP BY 1, 2;
RESET datestyle;
RESET intervalstyle;
RESET extra_float_digits;
-- what the views read renamed after they were made: their text follows
ALTER TABLE users RENAME TO user_tiers;
ALTER TABLE user_tiers RENAME COLUMN tier TO level;
-- a non-superuser's view of a stream in a schema of its own: pg_restore
-- grants the owner its rights on the schema only after the data
CREATE SCHEMA dr;
CREATE FOREIGN TABLE dr.ev (k text) SERVER stream_ext;
GRANT USAGE ON SCHEMA dr TO dump_owner;
GRANT SELECT ON dr.ev TO dump_owner;
SET ROLE dump_owner;
CREATE VIEW dr_counts WITH (continuous) AS SELECT k, count(*) AS n FROM dr.ev GROUP BY k;
RESET ROLE;
INSERT INTO dr.ev VALUES ('a'), ('a'), ('b');
SELECT stream_ext.kafka_consume('clicks', 'dump_topic', '127.0.0.1:9', format => 'json');
INSERT INTO stream_ext_internal.kafka_offsets
  SELECT id, 0, 4242 FROM stream_ext_internal.kafka_consumers;
SQL

# A writer transaction k writes events 50k .. 50k+49 into the stream and the
# same rows into log; every seventh rolls back.  Event times are recent (the
# sliding window is the last day) and within the views' allowed lateness.
writer_sql() {  # writer_sql FIRST LAST
	local k
	for k in $(seq "$1" "$2"); do
		local end=COMMIT
		[ $((k % 7)) -eq 0 ] && end=ROLLBACK
		cat <<SQL
BEGIN;
INSERT INTO clicks SELECT '/p/' || (i % 7), i, (i % 97) / 4.0, now() + (i % 1000) * interval '1 ms'
  FROM generate_series($((k * 50)), $((k * 50 + 49))) i;
INSERT INTO log SELECT '/p/' || (i % 7), i, (i % 97) / 4.0, now() + (i % 1000) * interval '1 ms'
  FROM generate_series($((k * 50)), $((k * 50 + 49))) i;
$end;
SQL
	done
}
writer_sql 1 40 | run_sql

# A delta row whose writer is still in progress when pg_dump takes its
# snapshot (in sync mode, a worker's batch commits before its writer does).
ghost_xid="$SCRATCH/ghost_xid"
(
	{
		echo "BEGIN; SELECT pg_current_xact_id() \\g $ghost_xid"
		echo "SELECT pg_sleep(6); COMMIT;"
	} | psql -X -q -At -v ON_ERROR_STOP=1 >/dev/null
) &
_bg_pids+=($!)
wait_for_file() { local i; for i in $(seq 100); do [ -s "$1" ] && return; sleep 0.1; done; fail "no $1"; }
wait_for_file "$ghost_xid"
q "INSERT INTO stream_ext_internal.delta_$(q "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'ghosts'::regclass") (writer_xid, url, a1_count) VALUES ('$(cat "$ghost_xid")'::xid8, '/ghost', 1000)" >/dev/null

# Two writers commit while pg_dump runs.
writer_sql 41 240 | run_sql &
w1=$!
writer_sql 241 440 | run_sql &
w2=$!
_bg_pids+=($w1 $w2)
sleep 1
pg_dump -Fc -f "$SCRATCH/dump" dump_src || fail "pg_dump failed"
wait $w1 $w2 || fail "a writer failed"
wait
say "ok: dumped while two writers committed"
[ "$(q "SELECT n FROM ghosts WHERE url = '/ghost'")" = 1000 ] ||
	fail "the ghost writer's delta row is not counted in the source after its commit"

deltas=$(pg_restore -a -f - "$SCRATCH/dump" | grep -cE '^[0-9]+ visible' || true)
invisible=$(pg_restore -a -f - "$SCRATCH/dump" | grep -cE '^[0-9]+ invisible' || true)
say "the dump holds $deltas delta rows of visible writers and $invisible of invisible ones"
[ "$deltas" -gt 0 ] || fail "the dump holds no unmerged delta rows: the test proves nothing about them"
[ "$invisible" -gt 0 ] || fail "the dump holds no delta row of an in-progress writer"
# (COPY's text doubles the backslash of \x)
named=$(pg_restore -a -f - "$SCRATCH/dump" | grep -c 'public\.hll_add_agg(public\.hll_hashval):\\\\x' || true)
[ "$named" -gt 0 ] || fail "the dump holds no hll state written with its aggregate's qualified name"

out=$(pg_restore -d dump_dst "$SCRATCH/dump" 2>&1) || fail "pg_restore failed: $out"
[ -z "$out" ] || fail "pg_restore said: $out"
say "ok: pg_restore into a new database, without a word"
export PGDATABASE=dump_dst

logged=$(q "SELECT count(*) FROM log")
total=$(psql -X -At -d dump_src -c "SELECT count(*) FROM log")
say "restored log holds $logged of the $total events committed in the source"

# Each view against its defining query over log, in the restored database.
check_views() {  # check_views LABEL
	local diff
	diff=$(q "
	  (SELECT 'url_stats', url, n::text, s::text, round(a::numeric, 9)::text FROM url_stats
	   EXCEPT SELECT 'url_stats', url, count(*)::text, sum(user_id)::text, round(avg(latency)::numeric, 9)::text
	          FROM log GROUP BY url)
	  UNION ALL
	  (SELECT 'per_second', sec::text, n::text, top::text, '' FROM per_second
	   EXCEPT SELECT 'per_second', date_bin('1 second', ts, '2000-01-01')::text, count(*)::text,
	                 max(latency)::text, '' FROM log GROUP BY 2)
	  UNION ALL
	  (SELECT 'recent', url, n::text, total::text, '' FROM recent
	   EXCEPT SELECT 'recent', url, count(*)::text, sum(latency)::text, '' FROM log
	          WHERE ts > stream_ext.read_time() - interval '1 day' GROUP BY url)
	  UNION ALL
	  (SELECT 'visits', url, sum(n)::text, '', '' FROM visits GROUP BY url
	   EXCEPT SELECT 'visits', url, count(*)::text, '', '' FROM log GROUP BY url)
	  UNION ALL
	  (SELECT 'uniq', url, hll_cardinality(users)::text, '', '' FROM uniq
	   EXCEPT SELECT 'uniq', url, hll_cardinality(hll_add_agg(hll_hash_bigint(user_id)))::text, '', ''
	          FROM log GROUP BY url)
	  UNION ALL
	  (SELECT 'ghosts', url, n::text, '', '' FROM ghosts
	   EXCEPT SELECT 'ghosts', url, count(*)::text, '', '' FROM log GROUP BY url)
	  UNION ALL
	  (SELECT 'by_tier', tier::text, kind, n::text, total::text FROM by_tier
	   EXCEPT SELECT 'by_tier', u.level::text, k.kind, count(*)::text, sum(c.latency)::text
	          FROM log c JOIN user_tiers u ON u.id = c.user_id LEFT JOIN page_kinds k ON k.url = c.url
	          GROUP BY u.level, k.kind)
	  UNION ALL
	  ((SELECT 'slow_rows', ts::text, url, user_id::text, tier::text FROM slow_rows
	    EXCEPT ALL SELECT 'slow_rows', c.ts::text, c.url, c.user_id::text, u.level::text
	          FROM log c JOIN user_tiers u ON u.id = c.user_id WHERE c.latency > 20)
	   UNION ALL
	   (SELECT 'slow_rows missing', c.ts::text, c.url, c.user_id::text, u.level::text
	          FROM log c JOIN user_tiers u ON u.id = c.user_id WHERE c.latency > 20
	    EXCEPT ALL SELECT 'slow_rows missing', ts::text, url, user_id::text, tier::text FROM slow_rows))
	  UNION ALL
	  -- a transform's rows are in its table or staged (read through it), once
	  ((SELECT 'slow_log', url, user_id::text, '', '' FROM (TABLE slow_log UNION ALL TABLE to_slow_log) t
	    EXCEPT ALL SELECT 'slow_log', url, user_id::text, '', '' FROM log WHERE latency > 22)
	   UNION ALL
	   (SELECT 'slow_log missing', url, user_id::text, '', '' FROM log WHERE latency > 22
	    EXCEPT ALL SELECT 'slow_log missing', url, user_id::text, '', '' FROM (TABLE slow_log UNION ALL TABLE to_slow_log) t))
	  UNION ALL
	  (SELECT 'styled', d::text, iv::text, n::text, under::text FROM styled
	   EXCEPT SELECT 'styled', '2026-04-03', '-1 days -02:00:00', count(*)::text,
	                 (count(*) FILTER (WHERE latency < 24.123456789))::text FROM log)
	  UNION ALL
	  SELECT 'rows', v, got::text, want::text, '' FROM (VALUES
	    ('by_tier', (SELECT count(*) FROM by_tier),
	                (SELECT count(*) FROM (SELECT DISTINCT u.level, k.kind FROM log c JOIN user_tiers u ON u.id = c.user_id
	                                         LEFT JOIN page_kinds k ON k.url = c.url) d)),
	    ('url_stats', (SELECT count(*) FROM url_stats), (SELECT count(DISTINCT url) FROM log)),
	    ('per_second', (SELECT count(*) FROM per_second),
	                   (SELECT count(DISTINCT date_bin('1 second', ts, '2000-01-01')) FROM log)),
	    ('ghosts', (SELECT count(*) FROM ghosts), (SELECT count(DISTINCT url) FROM log)),
	    ('distinct_pages', (SELECT sum(pages) FROM distinct_pages),
	                       (SELECT sum(n) FROM (SELECT count(DISTINCT url) AS n FROM log GROUP BY user_id % 3) d)),
	    ('hops', (SELECT max(n) FROM hops), (SELECT count(*) FROM log))) c(v, got, want)
	   WHERE got IS DISTINCT FROM want")
	[ -z "$diff" ] || fail "$1: views differ from their queries over log:
$diff"
	say "ok: $1: every view equals its defining query over log ($(q "SELECT count(*) FROM log") events)"
}
check_views "restored"
[ "$(q "SELECT watermark = (SELECT max(ts) FROM log) - interval '1 day' FROM stream_ext.view_stats WHERE name = 'visits'::regclass")" = t ] ||
	fail "the restored watermark of visits is not the latest event time in the dump's snapshot"
say "ok: the restored watermark is the dump's"

# The combiner merges the restored deltas of visible writers, drops the rest.
create_pending_deltas
try_wait 30 "restored deltas merged" "SELECT pending_deltas() = 0" || { q "SELECT pid, backend_type, application_name, state, wait_event, left(query, 80) FROM pg_stat_activity"; for t in $(q "SELECT delta_table FROM stream_ext_internal.continuous_views"); do echo "$t $(q "SELECT count(*), min(writer_xid::text), max(writer_xid::text) FROM $t")"; done; q "TABLE stream_ext.view_errors"; grep -v kafka "$STREAM_EXT_SERVER_LOG" | tail -20; fail "restored deltas not merged"; }
check_views "restored deltas merged"

# Ingestion goes on: views of the restored database count new events.
writer_sql 441 480 | run_sql
check_views "after new events"

# The catalog is whole again.
[ "$(q "SELECT count(*) FROM stream_ext.continuous_views")" = 13 ] || fail "stream_ext.continuous_views lacks views"
q "INSERT INTO dr.ev VALUES ('a')" >/dev/null
[ "$(q "SELECT string_agg(k || '=' || n, ',' ORDER BY k) FROM dr_counts")" = "a=3,b=1" ] ||
	fail "the view of a non-superuser over a stream of another schema: $(q "SELECT string_agg(k || '=' || n, ',' ORDER BY k) FROM dr_counts")"
say "ok: a non-superuser's view of a stream in another schema is restored continuous (its grants come after the data)"
[ "$(q "SELECT reloptions::text FROM pg_class WHERE oid = 'ghosts'::regclass")" = "{security_barrier=true}" ] ||
	fail "ghosts is no longer a security barrier"
[ "$(q "SELECT output FROM stream_ext.continuous_views WHERE name = 'to_slow_log'::regclass")" = slow_log ] ||
	fail "the output of to_slow_log is lost"
wait_until 30 "the restored transform's staged rows moved" "SELECT count(*) = 0 FROM to_slow_log"
err=$(psql -X -q -c "DROP TABLE slow_log" 2>&1 || true)
grep -q "view to_slow_log depends on" <<< "$err" || fail "DROP of a restored transform's output without CASCADE: $err"
psql -X -At -c "SET enable_seqscan = off" -c "EXPLAIN SELECT * FROM slow_rows WHERE url = '/p/1'" |
	grep -q slow_rows_url_idx || fail "the restored index of slow_rows is not used by its reads"
[ "$(q "SELECT time_column FROM stream_ext.continuous_views WHERE name = 'recent'::regclass")" = ts ] ||
	fail "the time column of recent is lost"
[ "$(q "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'url_stats'::regclass")" = dump_owner ] ||
	fail "url_stats lost its owner"
grep -q "count(\*) AS n" < <(q "SELECT definition FROM stream_ext.continuous_views WHERE name = 'url_stats'::regclass") ||
	fail "query_definition of a restored view"
err=$(psql -X -q -c "DROP FOREIGN TABLE clicks" 2>&1 || true)
grep -q "other objects depend on it" <<< "$err" || fail "DROP of a restored view's stream without CASCADE: $err"
for t in "TABLE user_tiers" "VIEW page_kinds"; do
	err=$(psql -X -q -c "DROP $t" 2>&1 || true)
	grep -q "view by_tier depends on" <<< "$err" || fail "DROP $t joined by a restored view, without CASCADE: $err"
done
run_sql <<'SQL'
CREATE VIEW fresh WITH (continuous) AS SELECT count(*) AS n FROM clicks;
INSERT INTO clicks VALUES ('/new', 1, 1, now());
SQL
[ "$(q "SELECT n FROM fresh")" = 1 ] || fail "a view created after the restore"
ghost_tables=$(q "SELECT state_table || ' ' || delta_table FROM stream_ext_internal.continuous_views WHERE view = 'ghosts'::regclass")
q "DROP VIEW ghosts" >/dev/null
for t in $ghost_tables; do
	[ "$(q "SELECT to_regclass('$t') IS NULL")" = t ] || fail "DROP VIEW of a restored view left $t behind"
done
say "ok: catalog views, dependencies, new view ids and DROP VIEW work on the restored database"

[ "$(q "SELECT enabled FROM stream_ext_internal.kafka_consumers")" = f ] || fail "the Kafka consumer was restored running"
[ "$(q "SELECT next_offset FROM stream_ext_internal.kafka_offsets")" = 4242 ] || fail "Kafka offsets were not restored"
[ "$(psql -X -At -d dump_src -c "SELECT enabled FROM stream_ext_internal.kafka_consumers")" = t ] ||
	fail "the source's Kafka consumer was stopped"
say "ok: the Kafka consumer is restored stopped, with its offsets"

# Two databases made from one template that has the extension: pg_dump
# writes CREATE EXTENSION IF NOT EXISTS, so the restore finds the extension
# already there, with the OID the source's has.  The restored catalog rows
# are adopted all the same (where a row was written names the database):
# the view takes new events, and its counts go on from the dump's.
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE dump_tmpl" || fail "CREATE DATABASE dump_tmpl"
psql -X -q -d dump_tmpl -v ON_ERROR_STOP=1 -c "CREATE EXTENSION stream_ext" || fail "CREATE EXTENSION in dump_tmpl"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE tmpl_src TEMPLATE dump_tmpl" \
	-c "CREATE DATABASE tmpl_dst TEMPLATE dump_tmpl" || fail "databases from the template"
psql -X -q -d tmpl_src -v ON_ERROR_STOP=1 <<'SQL' || fail "the template copy's view"
CREATE FOREIGN TABLE t_clicks (url text) SERVER stream_ext;
CREATE VIEW t_urls WITH (continuous) AS SELECT url, count(*) AS n FROM t_clicks GROUP BY url;
-- made where a backslash in a string is an escape: the constant is C:\dir
SET standard_conforming_strings = off;
SET escape_string_warning = off;
CREATE VIEW t_not_dir WITH (continuous) AS SELECT count(*) AS n FROM t_clicks WHERE url <> 'C:\\dir';
RESET standard_conforming_strings;
INSERT INTO t_clicks VALUES ('/a'), ('/a'), ('/b');
SQL
pg_dump -Fc -f "$SCRATCH/tmpl_dump" tmpl_src || fail "pg_dump of tmpl_src failed"
out=$(pg_restore -d tmpl_dst "$SCRATCH/tmpl_dump" 2>&1) || fail "pg_restore into tmpl_dst failed: $out"
PGDATABASE=tmpl_dst q "INSERT INTO t_clicks VALUES ('/a'), ('/c')" >/dev/null
PGDATABASE=tmpl_dst expect "SELECT string_agg(url || ':' || n, ' ' ORDER BY url) FROM t_urls" "/a:3 /b:1 /c:1" \
	"a view restored into a database of the same template takes new events"
PGDATABASE=tmpl_dst expect "SELECT count(*) FROM stream_ext.continuous_views WHERE name = 't_urls'::regclass" 1 \
	"and is in the catalog of the database it was restored into"
PGDATABASE=tmpl_dst q "INSERT INTO t_clicks VALUES ('C:\\dir')" >/dev/null
PGDATABASE=tmpl_dst expect "SELECT n FROM t_not_dir" 5 \
	"a constant with a backslash, of a view made with standard_conforming_strings off, means the same after the restore"
for db in tmpl_src tmpl_dst dump_tmpl; do
	psql -X -q -d postgres -c "DROP DATABASE $db WITH (FORCE)" >/dev/null 2>&1 || true
done
say "ok: a restore into another database of the same template is adopted"
