#!/usr/bin/env bash
# Differential test of continuous views with GROUP BY GROUPING SETS, ROLLUP
# and CUBE, and GROUPING(): every view must equal its defining query run in
# batch over a plain table that received the same events, at fixed
# stream_ext.read_time values.
#
# Events (seeded; NULL keys, duplicate rows, some NULL times, event times over
# four hours of 2024-01-01) go to the stream shuffled, in transactions by
# INSERT ... SELECT and COPY, plus one rolled back transaction and one rolled
# back savepoint whose events the reference never sees.  Views: ROLLUP, CUBE,
# explicit GROUPING SETS with the empty set (), GROUP BY k, ROLLUP (...),
# GROUP BY DISTINCT, sets made more than once (the empty set too),
# expressions as keys, HAVING on GROUPING(); without a
# window, tumbling (with and without ttl), sliding (with and without blocks),
# hopping and session windows.  Compared (EXCEPT ALL both ways, floats
# rounded) on the empty stream, right after the commits, once the combiner
# merged every delta, and after more events (views without a window read
# their result table for the groups no delta changes).  Then what is refused at CREATE: a rolled-up
# ttl column.
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_grouping_sets
run_sql -f "$TEST_DIR/diff_view.sql"
export PGTZ=UTC
t0=$SECONDS
failures=()

# The background reaper uses the server-wide read_time (default: now(), which
# would expire all of 2024 at once): pin it before the data, reset it at exit.
set_server_setting stream_ext.read_time '2023-12-01 00:00:00+00'

say "setting up the stream, the reference table and the views"
run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, country text, status int, latency float8, n int, ts timestamptz)
  SERVER stream_ext;
CREATE TABLE ref (seq int, url text, country text, status int, latency float8, n int, ts timestamptz,
                  shuf float8, chunk int);
SELECT setseed(0.1313);
INSERT INTO ref (seq, url, country, status, latency, n, ts, shuf)
SELECT i,
  CASE WHEN random() < 0.10 THEN NULL ELSE 'u' || floor(random() * 5)::int END,
  CASE WHEN random() < 0.10 THEN NULL ELSE (ARRAY['fr', 'de', 'us'])[1 + floor(random() * 3)::int] END,
  CASE WHEN random() < 0.05 THEN NULL ELSE (ARRAY[200, 404, 500])[1 + floor(random() * 3)::int] END,
  CASE WHEN random() < 0.05 THEN NULL ELSE round((random() * 100)::numeric, 2)::float8 END,
  floor(random() * 100)::int,
  CASE WHEN random() < 0.03 THEN NULL
       ELSE timestamptz '2024-01-01 00:00:00+00' + random() * interval '4 hours' END,
  random()
FROM generate_series(1, 6000) i;
-- duplicate events
INSERT INTO ref SELECT seq + 6000, url, country, status, latency, n, ts, random() FROM ref WHERE seq % 10 = 0;
UPDATE ref r SET chunk = x.c FROM (
  SELECT seq, (row_number() OVER (ORDER BY shuf, seq) - 1) / 700 AS c FROM ref) x WHERE x.seq = r.seq;

-- A user aggregate whose combine function is not strict, with an initial
-- value: the number of events with latency over 50.  Its combine function
-- turns a NULL state into -1000000, so a set's row combined from a state
-- that is not one (the grand total of a set without events) shows.
CREATE FUNCTION gs_add_over50(int8, float8) RETURNS int8 LANGUAGE sql IMMUTABLE
  AS 'SELECT $1 + CASE WHEN $2 > 50 THEN 1 ELSE 0 END';
CREATE FUNCTION gs_merge_over50(int8, int8) RETURNS int8 LANGUAGE sql IMMUTABLE
  AS 'SELECT CASE WHEN $1 IS NULL OR $2 IS NULL THEN -1000000 ELSE $1 + $2 END';
CREATE AGGREGATE gs_over50(float8) (SFUNC = gs_add_over50, STYPE = int8, COMBINEFUNC = gs_merge_over50,
  INITCOND = '0');

-- The number of events, NULL once an event has no latency and n = 0 (a few
-- do): states that are really NULL, which combining must keep.
CREATE FUNCTION gs_add_poison(int8, float8, int) RETURNS int8 LANGUAGE sql IMMUTABLE
  AS 'SELECT CASE WHEN $1 IS NULL OR ($2 IS NULL AND $3 = 0) THEN NULL ELSE $1 + 1 END';
CREATE FUNCTION gs_merge_poison(int8, int8) RETURNS int8 LANGUAGE sql IMMUTABLE
  AS 'SELECT CASE WHEN $1 IS NULL OR $2 IS NULL THEN NULL ELSE $1 + $2 END';
CREATE AGGREGATE gs_poison(float8, int) (SFUNC = gs_add_poison, STYPE = int8, COMBINEFUNC = gs_merge_poison,
  INITCOND = '0');

-- The cases: the view's query over {S}, its options, the batch query over
-- the reference events {R} at read time {T} (NULL: the view's query), the
-- read times.
CREATE TABLE cases (name text PRIMARY KEY, q text, opts text[], refq text, read_times text[]);
INSERT INTO cases VALUES
('gs_rollup', $q$SELECT url, country, GROUPING(url, country) AS g, count(*) AS c, sum(latency) AS sl,
   avg(latency) AS al, gs_over50(latency) AS o50, gs_poison(latency, n) AS p FROM {S} GROUP BY ROLLUP (url, country)$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_cube', $q$SELECT url, status, GROUPING(status) AS gs, GROUPING(status, url) AS gsu, count(*) AS c,
   max(latency) AS ml FROM {S} GROUP BY CUBE (url, status)$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_sets', $q$SELECT country, status, url, count(*) AS c, min(ts) AS mt, stddev(latency) AS sd
   FROM {S} GROUP BY GROUPING SETS ((country, status), (url), (), (status))
   HAVING count(*) > 100 OR GROUPING(url) = 0$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_expr', $q$SELECT upper(url) AS u, status / 100 AS sc, GROUPING(status / 100) AS g, count(*) AS c
   FROM {S} WHERE latency > 10 GROUP BY ROLLUP (upper(url), status / 100)$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_mixed', $q$SELECT url, country, status, GROUPING(url, country, status) AS g, count(*) AS c
   FROM {S} GROUP BY url, ROLLUP (country, status)$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_distinct', $q$SELECT url, country, count(*) AS c, sum(n) AS sn
   FROM {S} GROUP BY DISTINCT ROLLUP (url, country), ROLLUP (country)$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_dup', $q$SELECT url, country, GROUPING(country) AS g, count(*) AS c, avg(latency) AS al
   FROM {S} GROUP BY url, ROLLUP (url, country)$q$, ARRAY[]::text[], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
-- one grouping set: a plain GROUP BY (the view keeps its results), GROUPING() 0
('gs_one', $q$SELECT url, GROUPING(url) AS g, count(*) AS c FROM {S} GROUP BY GROUPING SETS ((url))$q$,
 ARRAY[]::text[], NULL, ARRAY['2024-01-01 05:00:00+00']),
('gs_tum', $q$SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, url, status, GROUPING(url, status) AS g,
   count(*) AS c, avg(latency) AS al FROM {S} GROUP BY 1, CUBE (url, status)$q$, ARRAY['time_column=ts'], NULL,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_tum_ttl', $q$SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, url, country, count(*) AS c,
   sum(latency) AS sl FROM {S} GROUP BY m, ROLLUP (url, country)$q$,
 ARRAY['time_column=ts', 'ttl=1 hour', 'ttl_column=m'],
 $r$SELECT * FROM (SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, url, country, count(*), sum(latency)
   FROM {R} GROUP BY m, ROLLUP (url, country)) x WHERE m IS NULL OR m > timestamptz '{T}' - interval '1 hour'$r$,
 ARRAY['2024-01-01 00:30:00+00', '2024-01-01 02:30:00+00', '2024-01-01 04:05:00+00', '2024-01-01 05:10:00+00']),
('gs_sl', $q$SELECT url, country, GROUPING(url, country) AS g, count(*) AS c, sum(latency) AS sl,
   gs_over50(latency) AS o50, gs_poison(latency, n) AS p FROM {S} GROUP BY ROLLUP (url, country)$q$,
 ARRAY['time_column=ts', 'sliding_window=1 hour', 'step=5 minutes'],
 $r$SELECT url, country, GROUPING(url, country), count(*), sum(latency), gs_over50(latency), gs_poison(latency, n) FROM {R}
   WHERE ts >= date_bin('5 minutes', timestamptz '{T}' - interval '1 hour', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('5 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '5 minutes'
   GROUP BY ROLLUP (url, country)$r$,
 ARRAY['2024-01-01 00:00:00+00', '2024-01-01 01:30:00+00', '2024-01-01 03:05:00+00', '2024-01-01 04:59:59+00',
       '2024-01-01 06:00:00+00']),
-- 25 steps: blocks of 5 steps too
('gs_sl_blocks', $q$SELECT url, status, count(*) AS c, min(latency) AS ml FROM {S} GROUP BY CUBE (url, status)$q$,
 ARRAY['time_column=ts', 'sliding_window=50 minutes', 'step=2 minutes'],
 $r$SELECT url, status, count(*), min(latency) FROM {R}
   WHERE ts >= date_bin('2 minutes', timestamptz '{T}' - interval '50 minutes', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('2 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '2 minutes'
   GROUP BY CUBE (url, status)$r$,
 ARRAY['2024-01-01 00:20:00+00', '2024-01-01 02:13:59+00', '2024-01-01 04:31:00+00']),
('gs_sl_dup', $q$SELECT status, GROUPING(status) AS g, count(*) AS c, sum(latency) AS sl
   FROM {S} GROUP BY GROUPING SETS ((status), (), (), (status), ())$q$,
 ARRAY['time_column=ts', 'sliding_window=1 hour', 'step=5 minutes'],
 $r$SELECT status, GROUPING(status), count(*), sum(latency) FROM {R}
   WHERE ts >= date_bin('5 minutes', timestamptz '{T}' - interval '1 hour', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('5 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '5 minutes'
   GROUP BY GROUPING SETS ((status), (), (), (status), ())$r$,
 ARRAY['2024-01-01 01:30:00+00', '2024-01-01 06:00:00+00']),
('gs_hop_dup', $q$SELECT url, status, count(*) AS c FROM {S} GROUP BY GROUPING SETS ((url), (status), (url))$q$,
 ARRAY['time_column=ts', 'hop_size=30 minutes', 'hop_slide=10 minutes'],
 $r$SELECT ws, ws + interval '30 minutes', url, status, count(*)
   FROM {R}, generate_series(date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '20 minutes',
                             date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '10 minutes') ws
   WHERE ts IS NOT NULL GROUP BY GROUPING SETS ((ws, url), (ws, status), (ws, url))$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_hop', $q$SELECT url, status, GROUPING(url) AS g, count(*) AS c, max(latency) AS ml
   FROM {S} GROUP BY CUBE (url, status)$q$,
 ARRAY['time_column=ts', 'hop_size=30 minutes', 'hop_slide=10 minutes'],
 $r$SELECT ws, ws + interval '30 minutes', url, status, GROUPING(url), count(*), max(latency)
   FROM {R}, generate_series(date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '20 minutes',
                             date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '10 minutes') ws
   WHERE ts IS NOT NULL GROUP BY ws, CUBE (url, status)$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('gs_ses', $q$SELECT url, country, GROUPING(url, country) AS g, count(*) AS c, sum(latency) AS sl
   FROM {S} WHERE n < 3 GROUP BY ROLLUP (url, country)$q$,
 ARRAY['time_column=ts', 'session_gap=10 minutes'],
 $r$SELECT min(ts), max(ts), url, country, gs, count(*), sum(latency) FROM (
     SELECT *, sum(brk) OVER (PARTITION BY gs, url, country ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM (
       SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY gs, url, country ORDER BY ts) < interval '10 minutes'
                      THEN 0 ELSE 1 END AS brk
       FROM (SELECT url, country, 0 AS gs, ts, latency FROM {R} WHERE n < 3 AND ts IS NOT NULL
             UNION ALL SELECT url, NULL, 1, ts, latency FROM {R} WHERE n < 3 AND ts IS NOT NULL
             UNION ALL SELECT NULL, NULL, 3, ts, latency FROM {R} WHERE n < 3 AND ts IS NOT NULL) e) a) b
   GROUP BY gs, url, country, sid$r$,
 ARRAY['2024-01-01 05:00:00+00']);

-- half created with CREATE VIEW WITH, half with the function; event-time
-- views accept the shuffled events (allowed_lateness)
DO $$
DECLARE c record; opts text[]; i int := 0;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    opts := c.opts;
    IF array_length(opts, 1) > 0 THEN
      opts := opts || 'allowed_lateness=100 years'::text;
    END IF;
    i := i + 1;
    IF i % 2 = 0 THEN
      PERFORM stream_ext.create_continuous_view(c.name, replace(c.q, '{S}', 'clicks'), opts);
    ELSE
      EXECUTE format('CREATE VIEW %I WITH (%s) AS %s', c.name,
        (SELECT string_agg(format('%s = %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
           FROM unnest(ARRAY['continuous=true'] || opts) o),
        replace(c.q, '{S}', 'clicks'));
    END IF;
  END LOOP;
END $$;

-- every case at each of its read times, against the events of chunks < upto
CREATE FUNCTION check_all(upto int)
RETURNS TABLE (view text, read_time text, view_rows bigint, ref_rows bigint, diffs bigint, examples text)
LANGUAGE plpgsql AS $$
DECLARE c record; rt text; refq text;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    view := c.name;
    FOREACH rt IN ARRAY c.read_times LOOP
      read_time := rt;
      PERFORM set_config('stream_ext.read_time', rt, true);
      refq := replace(replace(coalesce(c.refq, c.q), '{R}',
                              format('(SELECT * FROM ref WHERE chunk < %s) AS r', upto)), '{T}', rt);
      refq := replace(refq, '{S}', format('(SELECT * FROM ref WHERE chunk < %s) AS r', upto));
      SELECT * INTO view_rows, ref_rows, diffs, examples FROM compare_view(view, refq);
      RETURN NEXT;
    END LOOP;
  END LOOP;
END $$;
SQL
create_pending_deltas
nviews=$(q "SELECT count(*) FROM stream_ext.continuous_views")
# views without a window keep their results in a result table, one row per group of each set
kept=$(q "SELECT string_agg(name::text, ' ' ORDER BY name::text) FROM stream_ext.continuous_views
          WHERE to_regclass(replace(state_table::text, 'state_', 'result_')) IS NOT NULL")
[ "$kept" = "gs_cube gs_distinct gs_dup gs_expr gs_mixed gs_one gs_rollup gs_sets gs_tum gs_tum_ttl" ] ||
	failures+=("views with a result table: '$kept'")
nchunks=$(q "SELECT max(chunk) + 1 FROM ref")
say "$nviews views created; $(q "SELECT count(*) FROM ref") reference events in $nchunks transactions"

compare() {  # compare LABEL CHUNKS_SENT
	local label=$1
	q "CREATE TABLE res AS SELECT * FROM check_all($2)" >/dev/null
	report_comparison "$label"
	q "DROP TABLE res" >/dev/null
}
merged() {  # merged LABEL: wait until the combiner merged every delta
	wait_until 60 "$1: the combiner merged every delta (delta tables empty)" "SELECT pending_deltas() = 0"
}
send() {  # send FIRST LAST: chunks as transactions, even by INSERT, odd by COPY
	local i
	for i in $(seq "$1" "$2"); do
		if [ $((i % 2)) -eq 0 ]; then
			run_sql -c "INSERT INTO clicks SELECT url, country, status, latency, n, ts FROM ref WHERE chunk = $i ORDER BY shuf"
		else
			psql -X -q -v ON_ERROR_STOP=1 -c "COPY (SELECT url, country, status, latency, n, ts FROM ref WHERE chunk = $i ORDER BY shuf) TO STDOUT (FORMAT csv)" |
				psql -X -q -v ON_ERROR_STOP=1 -c "COPY clicks FROM STDIN (FORMAT csv)"
		fi
	done
}

compare "empty stream" 0
half=$((nchunks / 2))
send 0 $((half - 1))
say "a rolled back transaction and a rolled back savepoint"
run_sql <<'SQL'
BEGIN;
INSERT INTO clicks SELECT url, country, status, latency + 1000, n, ts FROM ref WHERE chunk < 3;
ROLLBACK;
BEGIN;
INSERT INTO clicks SELECT url, 'rolled back', 999, latency, 0, ts FROM ref WHERE chunk = 0;
SAVEPOINT s;
INSERT INTO clicks SELECT 'rolled back', country, 999, latency, n, ts FROM ref WHERE chunk = 1;
ROLLBACK TO SAVEPOINT s;
ROLLBACK;
SQL
compare "half the events, right after the commits" "$half"
merged "half the events"
compare "half the events, after the combiner merged" "$half"
# kept results of views without a window: groups changed by new deltas are
# combined again, the others read from the result table
send "$half" $((nchunks - 1))
run_sql <<'SQL'
BEGIN;
SAVEPOINT s;
COPY clicks (url) FROM PROGRAM 'seq 1 500';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SQL
compare "every event, right after the commits" "$nchunks"
merged "every event"
compare "every event, after the combiner merged" "$nchunks"
# gs_poison's states are NULL in some groups only (else its case proves nothing)
poisoned=$(q "SELECT count(*) FILTER (WHERE p IS NULL) || ' of ' || count(*) FROM gs_rollup")
case "$poisoned" in
	"0 of "*|"$(q "SELECT count(*) FROM gs_rollup") of "*) failures+=("gs_rollup: p NULL in $poisoned groups") ;;
	*) say "gs_rollup: gs_poison NULL in $poisoned groups" ;;
esac

say "refused at CREATE"
refused() {  # refused SQLSTATE DESCRIPTION SQL
	local out
	out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$3" 2>&1) && { failures+=("accepted: $2"); return; }
	grep -q "ERROR:  $1" <<< "$out" || failures+=("$2: expected SQLSTATE $1, got: $out")
	say "  $2: $(echo "$out" | grep ERROR | head -1)"
}
refused 0A000 "ttl_column rolled up" \
	"CREATE VIEW bad2 WITH (continuous, time_column = ts, ttl = '1 hour', ttl_column = m) AS
	   SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, url, count(*) FROM clicks GROUP BY ROLLUP (m, url)"

errs=$(q "SELECT count(*) FROM stream_ext.view_errors")
[ "$errs" = 0 ] || failures+=("stream_ext.view_errors has $errs rows: $(q "SELECT string_agg(name || ': ' || message, '; ') FROM (SELECT * FROM stream_ext.view_errors LIMIT 5) e")")
if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] failed: $f"; done
	fail "${#failures[@]} check(s) failed ($((SECONDS - t0))s)"
fi
say "PASS ($((SECONDS - t0))s)"
