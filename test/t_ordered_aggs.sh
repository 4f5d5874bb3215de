#!/usr/bin/env bash
# Differential test of the aggregates a continuous view keeps as the multiset
# of their inputs (DISTINCT, ORDER BY inside, ordered-set and hypothetical-set
# aggregates, aggregates without a combine function): every view must equal
# its batch query over a plain table that received exactly the same events,
# for a view without a window, with ROLLUP, and for each window kind (tumbling
# with ttl, sliding with blocks, hopping, session), at fixed stream_ext.read_time.
#
# Events (seeded; NULLs in every column, many duplicates and ties: few users,
# values rounded) arrive shuffled, in chunks: INSERT ... SELECT, COPY csv,
# COPY binary, transactions with a rolled back savepoint, and rolled back
# transactions (never in the reference table).  Compared (EXCEPT ALL both
# ways, floats rounded) after the commits and again once the combiner merged
# every delta, and again with deltas of values the merged states already
# hold left unmerged (combine_interval 1h).  array_agg without ORDER BY, whose order PostgreSQL leaves
# unspecified, is compared sorted.
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_ordered_aggs
run_sql -f "$TEST_DIR/diff_view.sql"
export PGTZ=UTC
t0=$SECONDS
failures=()
# The background reaper uses the server-wide read_time (default: now(), which
# would expire all of 2024 at once): pinned before the events, reset at exit.
set_server_setting stream_ext.read_time "2023-12-01 00:00:00+00"

say "setting up stream, reference table and views"
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (g text, u int, v float8, n int, c text, ts timestamptz) SERVER stream_ext;
CREATE TABLE ref (seq int, g text, u int, v float8, n int, c text, ts timestamptz, chunk int);
SELECT setseed(0.1313);
INSERT INTO ref
SELECT i,
  CASE WHEN random() < 0.08 THEN NULL ELSE 'g' || floor(random() * 4)::int END,
  CASE WHEN random() < 0.05 THEN NULL ELSE floor(random() * 40)::int END,
  CASE WHEN random() < 0.05 THEN NULL ELSE round((random() * 100)::numeric, 1)::float8 END,
  CASE WHEN random() < 0.05 THEN NULL ELSE floor(random() * 30)::int END,
  CASE WHEN random() < 0.10 THEN NULL ELSE (ARRAY['de', 'fr', 'us', 'Ab', 'ab', 'zz'])[1 + floor(random() * 6)::int] END,
  CASE WHEN random() < 0.03 THEN NULL
       ELSE timestamptz '2024-01-01 00:00:00+00' + round(random() * 7200) * interval '1 second' END,
  floor(random() * 12)::int
FROM generate_series(1, 6000) i;

-- array_agg's order is unspecified without ORDER BY: compared sorted
CREATE FUNCTION sorted(a int[]) RETURNS int[] LANGUAGE sql IMMUTABLE AS
  $$SELECT array_agg(x ORDER BY x NULLS LAST) FROM unnest(a) x$$;
-- user-defined aggregates without a combine function
CREATE AGGREGATE my_cat(text) (sfunc = textcat, stype = text, initcond = '');
CREATE FUNCTION sq_acc(float8, float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS
  $$SELECT coalesce($1, 0) + coalesce($2 * $2, 0)$$;
CREATE AGGREGATE my_sumsq(float8) (sfunc = sq_acc, stype = float8);

-- {A}: the aggregates, the same in every view and batch query
CREATE TABLE aggs (a text);
INSERT INTO aggs VALUES ($a$count(*) AS cnt, count(DISTINCT u) AS users, count(DISTINCT u) FILTER (WHERE n > 10) AS users_f,
  sum(DISTINCT n) AS sum_d, avg(DISTINCT v) AS avg_d,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90, percentile_cont(ARRAY[0, 0.5, 1]) WITHIN GROUP (ORDER BY v) AS pc_arr,
  percentile_disc(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY v DESC) AS pd_arr,
  percentile_cont(0.1) WITHIN GROUP (ORDER BY v - 50) AS p10_neg, percentile_disc(0.5) WITHIN GROUP (ORDER BY v) AS pd_v, percentile_disc(0.5) WITHIN GROUP (ORDER BY c) AS pd_text,
  mode() WITHIN GROUP (ORDER BY n) AS mode_n,
  rank(10) WITHIN GROUP (ORDER BY n) AS rank10, dense_rank(10) WITHIN GROUP (ORDER BY n DESC NULLS LAST) AS drank10,
  percent_rank(50.0) WITHIN GROUP (ORDER BY v) AS prank50, cume_dist(15, 'fr') WITHIN GROUP (ORDER BY n, c) AS cdist,
  string_agg(DISTINCT c, ',' ORDER BY c) AS countries, string_agg(c, '|' ORDER BY c COLLATE "C", n, u) AS cs_c,
  jsonb_agg(n ORDER BY ts DESC, n, u) AS statuses, json_agg(u ORDER BY u NULLS FIRST)::text AS users_json,
  sorted(array_agg(n)) AS ns, array_agg(DISTINCT u ORDER BY u DESC) AS us,
  jsonb_object_agg(coalesce(c, 'none'), n ORDER BY c, n) AS jo, json_object_agg(coalesce(c, '?'), u ORDER BY c, u)::text AS jso,
  (xmlagg(xmlelement(name e, n) ORDER BY n, u))::text AS xs, my_cat(c ORDER BY c, u) AS cat, my_sumsq(v) AS sumsq,
  sum(v ORDER BY v) AS sum_o$a$);

-- The cases: view {S}-query over the stream with {A}, its options, the
-- batch query over the reference events {R} at read time {T}.
CREATE TABLE cases (name text PRIMARY KEY, q text, opts text[], refq text, read_times text[]);
INSERT INTO cases VALUES
('plain', $q$SELECT g, {A} FROM {S} GROUP BY g$q$, ARRAY[]::text[],
 $r$SELECT g, {A} FROM {R} GROUP BY g$r$, ARRAY['2024-01-01 05:00:00+00']),
('gsets', $q$SELECT g, c, {A} FROM {S} GROUP BY ROLLUP (g, c)$q$, ARRAY[]::text[],
 $r$SELECT g, c, {A} FROM {R} GROUP BY ROLLUP (g, c)$r$, ARRAY['2024-01-01 05:00:00+00']),
('global', $q$SELECT {A} FROM {S}$q$, ARRAY[]::text[],
 $r$SELECT {A} FROM {R}$r$, ARRAY['2024-01-01 05:00:00+00']),
('tum_ttl', $q$SELECT date_bin('20 minutes', ts, '2000-01-01') AS m, g, {A} FROM {S} GROUP BY 1, 2$q$,
 ARRAY['time_column=ts', 'ttl=1 hour', 'ttl_column=m', 'allowed_lateness=100 years'],
 $r$SELECT * FROM (SELECT date_bin('20 minutes', ts, '2000-01-01') AS m, g, {A} FROM {R} GROUP BY 1, 2) x
   WHERE m IS NULL OR m > timestamptz '{T}' - interval '1 hour'$r$,
 ARRAY['2024-01-01 01:30:00+00', '2024-01-01 03:00:00+00']),
('sl', $q$SELECT g, {A} FROM {S} GROUP BY g$q$,
 ARRAY['time_column=ts', 'sliding_window=50 minutes', 'step=2 minutes', 'allowed_lateness=100 years'],
 $r$SELECT g, {A} FROM {R}
   WHERE ts >= date_bin('2 minutes', timestamptz '{T}' - interval '50 minutes', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('2 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '2 minutes'
   GROUP BY g$r$,
 ARRAY['2024-01-01 00:20:00+00', '2024-01-01 01:01:00+00', '2024-01-01 02:13:59+00']),
('hop', $q$SELECT g, {A} FROM {S} GROUP BY g$q$,
 ARRAY['time_column=ts', 'hop_size=30 minutes', 'hop_slide=10 minutes', 'allowed_lateness=100 years'],
 $r$SELECT ws, ws + interval '30 minutes', g, {A}
   FROM {R}, generate_series(date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '20 minutes',
                             date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '10 minutes') ws
   WHERE ts IS NOT NULL GROUP BY ws, g$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('ses', $q$SELECT g, {A} FROM {S} WHERE n < 4 GROUP BY g$q$,
 ARRAY['time_column=ts', 'session_gap=5 minutes', 'allowed_lateness=100 years'],
 $r$SELECT min(ts), max(ts), g, {A} FROM (
     SELECT *, sum(brk) OVER (PARTITION BY g ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM (
       SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY g ORDER BY ts) < interval '5 minutes' THEN 0 ELSE 1 END AS brk
       FROM {R} WHERE n < 4 AND ts IS NOT NULL) a) b
   GROUP BY g, sid$r$,
 ARRAY['2024-01-01 05:00:00+00']);
UPDATE cases SET q = replace(q, '{A}', (SELECT a FROM aggs)), refq = replace(refq, '{A}', (SELECT a FROM aggs));

DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    PERFORM stream_ext.create_continuous_view(c.name, replace(c.q, '{S}', 'ev'), c.opts);
  END LOOP;
END $$;

-- every case at each of its read times, against the events of chunks <= max_chunk
CREATE FUNCTION check_all(max_chunk int)
RETURNS TABLE (view text, read_time text, view_rows bigint, ref_rows bigint, diffs bigint, examples text)
LANGUAGE plpgsql AS $$
DECLARE c record; rt text; refq text;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    view := c.name;
    FOREACH rt IN ARRAY c.read_times LOOP
      read_time := rt;
      PERFORM set_config('stream_ext.read_time', rt, true);
      refq := replace(replace(c.refq, '{R}', format('(SELECT * FROM ref WHERE chunk <= %s AND chunk <> 5) AS r', max_chunk)), '{T}', rt);
      SELECT * INTO view_rows, ref_rows, diffs, examples FROM compare_view(view, refq);
      RETURN NEXT;
    END LOOP;
  END LOOP;
END $$;

-- roll-ups of the views' columns (stream_ext.combine): the aggregate over the
-- union of the groups' events, from their combined states
CREATE TABLE rollup_aggs (a text, r text);
INSERT INTO rollup_aggs VALUES (
  $a$stream_ext.combine(users) AS users, stream_ext.combine(users_f) AS users_f, stream_ext.combine(p90) AS p90,
  stream_ext.combine(pd_v) AS pd_v, stream_ext.combine(p10_neg) AS p10_neg, stream_ext.combine(pc_arr) AS pc_arr,
  stream_ext.combine(mode_n) AS mode_n, stream_ext.combine(countries) AS countries$a$,
  $r$count(DISTINCT u) AS users, count(DISTINCT u) FILTER (WHERE n > 10) AS users_f,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90, percentile_disc(0.5) WITHIN GROUP (ORDER BY v) AS pd_v,
  percentile_cont(0.1) WITHIN GROUP (ORDER BY v - 50) AS p10_neg, percentile_cont(ARRAY[0, 0.5, 1]) WITHIN GROUP (ORDER BY v) AS pc_arr,
  mode() WITHIN GROUP (ORDER BY n) AS mode_n, string_agg(DISTINCT c, ',' ORDER BY c) AS countries$r$);
DO $$
DECLARE a text := (SELECT a FROM rollup_aggs);
BEGIN
  EXECUTE 'CREATE VIEW ru_plain AS SELECT ' || a || ' FROM plain';
  EXECUTE 'CREATE VIEW ru_tum_ttl AS SELECT g, ' || a || ' FROM tum_ttl GROUP BY g';
END $$;
INSERT INTO cases SELECT 'ru_plain', NULL, NULL, $r$SELECT {RA} FROM {R}$r$, ARRAY['2024-01-01 05:00:00+00'];
INSERT INTO cases SELECT 'ru_tum_ttl', NULL, NULL,
  $r$SELECT g, {RA} FROM {R} WHERE ts IS NULL OR date_bin('20 minutes', ts, '2000-01-01') > timestamptz '{T}' - interval '1 hour'
     GROUP BY g$r$, ARRAY['2024-01-01 03:00:00+00'];
UPDATE cases SET refq = replace(refq, '{RA}', (SELECT r FROM rollup_aggs));
SQL
create_pending_deltas
say "$(q "SELECT count(*) FROM cases") views of $(q "SELECT array_length(regexp_split_to_array(a, ' AS '), 1) - 1 FROM aggs") aggregates each"

compare() {  # compare LABEL MAX_CHUNK
	local label=$1 empty
	# with no events the views must be empty (the global one: one row)
	q "CREATE TABLE res AS SELECT * FROM check_all($2)" >/dev/null
	report_comparison "$label"
	# a comparison that compares nothing cannot fail: every case must have rows
	empty=$(q "SELECT string_agg(view, ', ') FROM (SELECT view FROM res GROUP BY view HAVING max(ref_rows) = 0) x")
	[ -z "$empty" ] || [ "$2" -lt 0 ] || failures+=("$label: no reference rows for $empty")
	q "DROP TABLE res" >/dev/null
}

compare "no events" -1

# chunk_sql N: the events of chunk N in shuffled order
chunk_sql() { echo "SELECT g, u, v, n, c, ts FROM ref WHERE chunk = $1 ORDER BY md5(seq::text)"; }
for chunk in $(seq 0 11); do
	case $chunk in
	0|6)	run_sql -c "INSERT INTO ev $(chunk_sql $chunk)" ;;
	1|7)	psql -X -q -v ON_ERROR_STOP=1 -c "COPY ($(chunk_sql $chunk)) TO STDOUT (FORMAT csv)" |
			psql -X -q -v ON_ERROR_STOP=1 -c "COPY ev FROM STDIN (FORMAT csv)" ;;
	2|8)	psql -X -q -v ON_ERROR_STOP=1 -c "COPY ($(chunk_sql $chunk)) TO STDOUT (FORMAT binary)" |
			psql -X -q -v ON_ERROR_STOP=1 -c "COPY ev FROM STDIN (FORMAT binary)" ;;
	3|9)	# a savepoint rolled back: its events (the chunk again) never count
		run_sql <<SQL
BEGIN;
INSERT INTO ev $(chunk_sql $chunk) LIMIT 100;
SAVEPOINT s;
INSERT INTO ev $(chunk_sql $chunk);
ROLLBACK TO SAVEPOINT s;
INSERT INTO ev $(chunk_sql $chunk) OFFSET 100;
COMMIT;
SQL
		;;
	5)	# a rolled back transaction: chunk 5 is not in the reference
		run_sql -c "BEGIN" -c "INSERT INTO ev $(chunk_sql 5)" -c "ROLLBACK" ;;
	*)	for part in 0 1 2 3; do
			run_sql -c "INSERT INTO ev SELECT g, u, v, n, c, ts FROM ref WHERE chunk = $chunk AND seq % 4 = $part"
		done ;;
	esac
	[ $chunk = 4 ] && compare "after chunks 0-4" 4
done
compare "after all chunks" 11
wait_until 120 "the combiner merged every delta" "SELECT pending_deltas() = 0"
compare "after the combiner merged every delta" 11

# more events into states the combiner already merged
run_sql -c "INSERT INTO ev SELECT g, u, v, n, c, ts FROM ref WHERE chunk <= 4"
run_sql -c "INSERT INTO ref SELECT seq + 100000, g, u, v, n, c, ts, 11 FROM ref WHERE chunk <= 4"
wait_until 120 "the combiner merged every delta" "SELECT pending_deltas() = 0"
compare "the first chunks again, merged into existing states" 11

# events again while the combiner waits: reads combine the merged state rows
# with unmerged deltas holding values the states already hold, and new ones
# (a view without a window reads groups without deltas from their state rows,
# the others from state and deltas combined).  The combiner may still merge
# the first part in the round it runs as it reloads the setting; the second
# part then stays pending.
set_server_setting stream_ext.combine_interval 3600000  # ms: 1 h
run_sql -c "INSERT INTO ev SELECT g, u, v, n, c, ts FROM ref WHERE chunk IN (0, 1) AND seq <= 6000"
run_sql -c "INSERT INTO ref SELECT seq + 200000, g, u, v, n, c, ts, 11 FROM ref WHERE chunk IN (0, 1) AND seq <= 6000"
try_wait 5 "the combiner's last short round" "SELECT pending_deltas() = 0" 2>/dev/null || true
run_sql <<'SQL'
BEGIN;
INSERT INTO ev SELECT g, u, v, n, c, ts FROM ref WHERE chunk IN (2, 3) AND seq <= 6000;
SAVEPOINT s;
INSERT INTO ev SELECT g, u + 1000, v + 1000, n, 'savepoint', ts FROM ref WHERE chunk = 4 AND seq <= 6000;
ROLLBACK TO SAVEPOINT s;
COMMIT;
BEGIN;
INSERT INTO ev SELECT g, u + 2000, v + 2000, n, 'rolled back', ts FROM ref WHERE seq <= 6000;
ROLLBACK;
INSERT INTO ref SELECT seq + 300000, g, u, v, n, c, ts, 11 FROM ref WHERE chunk IN (2, 3) AND seq <= 6000;
SQL
[ "$(q "SELECT pending_deltas() > 0")" = t ] || fail "no delta pending with combine_interval = 1h"
compare "merged states plus unmerged deltas of the same values" 11
set_server_setting stream_ext.combine_interval 100  # ms
wait_until 120 "the combiner merged every delta" "SELECT pending_deltas() = 0"
compare "those deltas merged" 11

# Large states: 60,000 values of each column in each of two groups, merged;
# then a few unmerged deltas (values the states hold, new ones below, between
# and above the stored ones, NULLs, duplicates across transactions, a rolled
# back transaction).  A read of count(DISTINCT x) of a fixed-width type then
# looks the deltas' values up in the stored state rather than merging it
# (agg/distinct_union.c, which says so at DEBUG1): int8, int4 (negative
# values sort after positive ones in binary form), uuid, timestamptz.  Every
# count, and the roll-up over both groups, must equal the batch query's.
say "large states with unmerged deltas"
set_server_setting stream_ext.combine_interval 100  # ms
run_sql <<'SQL'
CREATE FOREIGN TABLE big_ev (g int, a int8, b int4, c uuid, d timestamptz) SERVER stream_ext;
CREATE TABLE big_ref (g int, a int8, b int4, c uuid, d timestamptz);
CREATE VIEW big_v WITH (continuous) AS
  SELECT g, count(DISTINCT a) AS da, count(DISTINCT b) AS db, count(DISTINCT c) AS dc,
         count(DISTINCT d) AS dd, count(*) AS n
  FROM big_ev GROUP BY g;
CREATE TABLE big_batch (i int);
INSERT INTO big_batch SELECT i FROM generate_series(1, 120000) i;
INSERT INTO big_ref SELECT i % 2, i * 3, i * 7 - 400000, md5(i::text)::uuid,
  timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM big_batch;
INSERT INTO big_ev SELECT * FROM big_ref;
SQL
wait_until 120 "the combiner merged every delta" "SELECT pending_deltas() = 0"
set_server_setting stream_ext.combine_interval 3600000  # ms: 1 h
try_wait 5 "the combiner's last short round" "SELECT pending_deltas() = 0" 2>/dev/null || true
run_sql <<'SQL'
CREATE TABLE big_more (g int, a int8, b int4, c uuid, d timestamptz);
INSERT INTO big_more
SELECT g, a, b, c, d FROM big_ref WHERE (a / 3) % 9973 = 1          -- held already
UNION ALL
SELECT i % 2, -i, -500000 - i, md5((-i)::text)::uuid, timestamptz '2023-01-01 00:00:00+00' + i * interval '1 hour'
  FROM generate_series(1, 4) i                                       -- below every stored value
UNION ALL
SELECT i % 2, i * 3 + 1, i * 7 - 399999, md5((i + 0.5)::text)::uuid,
       timestamptz '2024-01-01 00:00:00.5+00' + i * interval '1 second'
  FROM generate_series(5000, 5003) i                                 -- between stored values
UNION ALL
SELECT i % 2, 10000000 + i, 10000000 + i, md5((1000000 + i)::text)::uuid, timestamptz '2030-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, 4) i                                       -- above every stored value
UNION ALL
SELECT g, NULL, NULL, NULL, NULL FROM (VALUES (0), (1)) v(g);
INSERT INTO big_ev SELECT * FROM big_more;
INSERT INTO big_ev SELECT * FROM big_more WHERE a > 0;               -- again, in another transaction
BEGIN;
INSERT INTO big_ev SELECT g, a + 1, b + 1, md5(a::text || 'x')::uuid, d + interval '1 ms' FROM big_more;
ROLLBACK;
INSERT INTO big_ref SELECT * FROM big_more;
INSERT INTO big_ref SELECT * FROM big_more WHERE a > 0;
SQL
[ "$(q "SELECT pending_deltas() > 0")" = t ] || fail "no delta pending with combine_interval = 1h"
big_diff=$(q "SELECT count(*) FROM ((SELECT * FROM big_v EXCEPT ALL
  SELECT g, count(DISTINCT a), count(DISTINCT b), count(DISTINCT c), count(DISTINCT d), count(*) FROM big_ref GROUP BY g)
  UNION ALL (SELECT g, count(DISTINCT a), count(DISTINCT b), count(DISTINCT c), count(DISTINCT d), count(*) FROM big_ref GROUP BY g
  EXCEPT ALL SELECT * FROM big_v)) x")
[ "$big_diff" = 0 ] || failures+=("large states: $big_diff rows differ from the batch query: $(q "SELECT string_agg(format('%s', v), '; ') FROM big_v v")")
big_rollup=$(q "SELECT (SELECT row(stream_ext.combine(da), stream_ext.combine(db), stream_ext.combine(dc), stream_ext.combine(dd)) FROM big_v)
  = (SELECT row(count(DISTINCT a), count(DISTINCT b), count(DISTINCT c), count(DISTINCT d)) FROM big_ref)")
[ "$big_rollup" = t ] || failures+=("large states: the roll-up differs from the batch query")
probes=$(PGOPTIONS="-c client_min_messages=debug1 -c max_parallel_workers_per_gather=0" \
	psql -X -q -c "SELECT * FROM big_v" 2>&1 >/dev/null | grep -c "count_distinct_union: looked" || true)
[ "$probes" -eq 8 ] || failures+=("large states: $probes of the 8 counts looked their deltas' values up in the stored state")
say "large states: view and roll-up equal to the batch query; $probes counts read by lookups"
set_server_setting stream_ext.combine_interval 100  # ms

say "done in $((SECONDS - t0)) s"
if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] FAIL: $f" >&2; done
	exit 1
fi
say "ok"
