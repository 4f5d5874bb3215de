#!/usr/bin/env bash
# Differential test: ~25 continuous views over one stream must always equal the
# same queries run over a plain table that received exactly the same events.
#
# Events (text/int/bigint/numeric/float8/bool/timestamptz, all with NULLs) are
# generated in SQL with setseed, staged in a table, then sent to the stream
# (INSERT ... SELECT, COPY csv/text/binary, rolled back transactions and
# savepoints) and to the plain table.  Compared (EXCEPT ALL both ways, floats
# rounded to 10 significant digits):
#   phase 0: empty stream
#   phase 1: sync mode, ~25k events by every ingestion path
#   phase 2: async mode, after view_stats shows every event applied
#   phase 3: 240k more events (many batches), then again once the combiner
#            has merged every delta (stream_ext_internal.delta_* empty); this
#            phase runs with stream_ext.jit_above_events = 0, so the workers'
#            kept executors are JIT-compiled (checked: llvmjit.so is loaded)
#   phase 4: the ways BI tools read (count(*), ORDER BY ... LIMIT, WHERE on an
#            aggregate column, a cursor) while a 60k-event COPY is applied but
#            not committed, and after it commits
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_differential
run_sql -f "$TEST_DIR/diff_view.sql"
t0=$SECONDS

say "setting up stream ev, reference table ev_ref and the views"
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (k text, g int, b bigint, n numeric, f float8, flag bool, t timestamptz)
  SERVER stream_ext;
CREATE TABLE ev_ref (k text, g int, b bigint, n numeric, f float8, flag bool, t timestamptz);
CREATE UNLOGGED TABLE batch (seq int, k text, g int, b bigint, n numeric, f float8, flag bool, t timestamptz);

-- gen(n, seed): n deterministic random events into batch
CREATE FUNCTION gen(cnt int, seed float8) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM setseed(seed);
  TRUNCATE batch;
  INSERT INTO batch
  SELECT i,
    CASE WHEN random() < 0.05 THEN NULL ELSE 'k' || lpad(floor(random() * 20)::int::text, 2, '0') END,
    CASE WHEN random() < 0.05 THEN NULL ELSE floor(random() * 1001)::int - 500 END,
    CASE WHEN random() < 0.05 THEN NULL ELSE floor(random() * 2e12)::bigint - 1000000000000 END,
    CASE WHEN random() < 0.05 THEN NULL ELSE round((random() * 1000)::numeric, 3) END,
    CASE WHEN random() < 0.05 THEN NULL ELSE random() * 100 - 20 END,
    CASE WHEN random() < 0.10 THEN NULL ELSE random() < 0.5 END,
    CASE WHEN random() < 0.05 THEN NULL
         ELSE '2024-01-01 00:00:00+00'::timestamptz + random() * interval '10 days' END
  FROM generate_series(1, cnt) i;
END $$;

-- user-defined aggregates with combine functions (one with internal state)
CREATE AGGREGATE my_sum(int8) (sfunc = int8pl, stype = int8, combinefunc = int8pl);
CREATE AGGREGATE my_avg(numeric) (
  sfunc = numeric_avg_accum, stype = internal, finalfunc = numeric_avg,
  combinefunc = numeric_avg_combine,
  serialfunc = numeric_avg_serialize, deserialfunc = numeric_avg_deserialize);

-- The views: {S} stands for the stream (in the view) or ev_ref (reference).
CREATE TABLE cases (name text PRIMARY KEY, via_function bool, q text);
INSERT INTO cases VALUES
('cv_counts', false, $q$SELECT count(*) AS n, count(k) AS nk, count(g) AS ng, count(b) AS nb, count(n) AS nn,
   count(f) AS nf, count(flag) AS nflag, count(t) AS nt FROM {S}$q$),
('cv_global', true, $q$SELECT sum(g) AS sg, sum(b) AS sb, sum(n) AS sn, sum(f) AS sf, avg(g) AS ag, avg(b) AS ab,
   avg(n) AS an, avg(f) AS af, sum(g::int2) AS s2, avg(g::int2) AS a2, min(k) AS mink, max(k) AS maxk FROM {S}$q$),
('cv_minmax', false, $q$SELECT k, min(g) AS ming, max(g) AS maxg, min(b) AS minb, max(b) AS maxb, min(n) AS minn,
   max(n) AS maxn, min(f) AS minf, max(f) AS maxf, min(t) AS mint, max(t) AS maxt, min(t::date) AS mind,
   max(t - '2024-01-01 00:00:00+00') AS maxi, min(g::int2) AS ming2, max(k || g) AS maxkg
   FROM {S} GROUP BY k$q$),
('cv_bool', true, $q$SELECT k, flag, bool_and(g > 0) AS ba, bool_or(f > 75) AS bo, every(n < 990) AS ev,
   count(*) AS c FROM {S} GROUP BY k, flag$q$),
('cv_bits', false, $q$SELECT g % 7 AS m, bit_and(g) AS a4, bit_or(g) AS o4, bit_xor(g) AS x4, bit_and(b) AS a8,
   bit_or(b) AS o8, bit_xor(b) AS x8, bit_and(g::int2) AS a2, bit_xor(g::int2) AS x2,
   bit_or(g::bit(16)) AS obit, bit_and(g::bit(16)) AS abit FROM {S} GROUP BY g % 7$q$),
('cv_var_int', true, $q$SELECT k, stddev(g) AS sd, stddev_pop(g) AS sdp, stddev_samp(g) AS sds, variance(g) AS v,
   var_pop(g) AS vp, var_samp(g) AS vs, stddev(g::int2) AS sd2, var_pop(g::int2) AS vp2 FROM {S} GROUP BY k$q$),
('cv_var_bigint', false, $q$SELECT flag, stddev(b) AS sd, stddev_pop(b) AS sdp, stddev_samp(b) AS sds,
   variance(b) AS v, var_pop(b) AS vp, var_samp(b) AS vs FROM {S} GROUP BY flag$q$),
('cv_var_numeric', true, $q$SELECT k, stddev(n) AS sd, stddev_pop(n) AS sdp, stddev_samp(n) AS sds,
   variance(n) AS v, var_pop(n) AS vp, var_samp(n) AS vs FROM {S} GROUP BY k$q$),
('cv_var_float', false, $q$SELECT k, stddev(f) AS sd, stddev_pop(f) AS sdp, stddev_samp(f) AS sds,
   variance(f) AS v, var_pop(f) AS vp, var_samp(f) AS vs, stddev(f::float4) AS sd4, var_samp(f::float4) AS vs4
   FROM {S} GROUP BY k$q$),
('cv_regr', true, $q$SELECT flag, corr(f, g) AS corr, covar_pop(f, g) AS cp, covar_samp(f, g) AS cs,
   regr_avgx(f, g) AS ax, regr_avgy(f, g) AS ay, regr_count(f, g) AS rc, regr_intercept(f, g) AS ri,
   regr_r2(f, g) AS r2, regr_slope(f, g) AS rs, regr_sxx(f, g) AS sxx, regr_sxy(f, g) AS sxy,
   regr_syy(f, g) AS syy FROM {S} GROUP BY flag$q$),
('cv_regr_k', false, $q$SELECT k, corr(n::float8, f) AS corr, covar_samp(b, f) AS cs, regr_slope(b, g) AS rs,
   regr_count(n::float8, b) AS rc FROM {S} GROUP BY k$q$),
('cv_where', true, $q$SELECT k, count(*) AS c, sum(f) AS sf, max(n) AS mn FROM {S}
   WHERE g > 0 AND k IS NOT NULL AND f BETWEEN 0 AND 50 GROUP BY k$q$),
('cv_where_global', false, $q$SELECT count(*) AS c, sum(g) AS sg, avg(f) AS af FROM {S}
   WHERE flag AND t >= '2024-01-03 00:00:00+00'$q$),
('cv_filter', true, $q$SELECT k, count(*) FILTER (WHERE flag) AS cf, sum(g) FILTER (WHERE f > 10) AS sg,
   avg(n) FILTER (WHERE t < '2024-01-05 00:00:00+00') AS an, max(t) FILTER (WHERE flag IS NULL) AS mt,
   stddev(f) FILTER (WHERE g % 2 = 0) AS sd, count(*) AS c FROM {S} GROUP BY k$q$),
('cv_having', false, $q$SELECT k, count(*) AS c, sum(g) AS sg FROM {S} GROUP BY k
   HAVING sum(g) > 0 OR k IS NULL$q$),
('cv_having_where', true, $q$SELECT g % 10 AS m, count(*) AS c FROM {S} WHERE f IS NOT NULL
   GROUP BY g % 10 HAVING count(*) > 10 AND avg(f) > 29.5$q$),
('cv_expr_aggs', false, $q$SELECT k, 'x' AS lit, sum(f) / nullif(count(f), 0) AS mean, max(g) - min(g) AS span,
   count(*) * 2 + 1 AS c21, round(avg(n), 2) AS ravg, sum(b) % 1000 AS smod, coalesce(max(k), 'none') AS mk,
   count(*) FILTER (WHERE flag) * 100.0 / count(*) AS pct, upper(k) AS uk FROM {S} GROUP BY k$q$),
('cv_day', true, $q$SELECT date_trunc('day', t) AS day, count(*) AS c, sum(g) AS sg, avg(f) AS af
   FROM {S} GROUP BY date_trunc('day', t)$q$),
('cv_expr_keys', false, $q$SELECT upper(k) || '/' || (g % 3)::text AS key, g % 3 AS m, count(*) AS c, avg(f) AS af
   FROM {S} GROUP BY upper(k) || '/' || (g % 3)::text, g % 3$q$),
('cv_two_keys', true, $q$SELECT k, n > 500 AS big, count(*) AS c, sum(n) AS sn, min(t) AS mt
   FROM {S} GROUP BY k, n > 500$q$),
('cv_null_keys', false, $q$SELECT k IS NULL AS nok, flag, g IS NULL AS nog, count(*) AS c, sum(b) AS sb
   FROM {S} GROUP BY k IS NULL, flag, g IS NULL$q$),
('cv_bucket', true, $q$SELECT round(f / 10)::int AS bucket, count(*) AS c, sum(n) AS sn FROM {S} GROUP BY 1$q$),
('cv_interval', false, $q$SELECT k, sum(t - '2024-01-01 00:00:00+00') AS si, avg(t - '2024-01-01 00:00:00+00') AS ai,
   min(t - '2024-01-01 00:00:00+00') AS mi FROM {S} GROUP BY k$q$),
('cv_user_aggs', true, $q$SELECT k, my_sum(b) AS ms, my_avg(n) AS ma FROM {S} GROUP BY k$q$),
('cv_range', false, $q$SELECT flag, range_intersect_agg(int4range(g - 600, g + 600)) AS ri FROM {S} GROUP BY flag$q$);

-- Roll-ups of the views with stream_ext.combine(), each read through a plain view:
-- q over the continuous views, ref the same aggregates over ev_ref.
CREATE TABLE rollups (name text PRIMARY KEY, q text, ref text);
INSERT INTO rollups VALUES
('ru_minmax', $q$SELECT stream_ext.combine(ming) AS ming, stream_ext.combine(maxg) AS maxg,
   stream_ext.combine(minb) AS minb, stream_ext.combine(maxn) AS maxn, stream_ext.combine(minf) AS minf,
   stream_ext.combine(maxt) AS maxt, stream_ext.combine(mind) AS mind, stream_ext.combine(maxi) AS maxi,
   stream_ext.combine(maxkg) AS maxkg FROM cv_minmax$q$,
 $q$SELECT min(g), max(g), min(b), max(n), min(f), max(t), min(t::date), max(t - '2024-01-01 00:00:00+00'),
   max(k || g) FROM ev_ref$q$),
('ru_bool', $q$SELECT flag, stream_ext.combine(ba) AS ba, stream_ext.combine(bo) AS bo,
   stream_ext.combine(ev) AS ev, stream_ext.combine(c) AS c FROM cv_bool GROUP BY flag$q$,
 $q$SELECT flag, bool_and(g > 0), bool_or(f > 75), every(n < 990), count(*) FROM ev_ref GROUP BY flag$q$),
('ru_bits', $q$SELECT stream_ext.combine(a4) AS a4, stream_ext.combine(o8) AS o8, stream_ext.combine(x2) AS x2,
   stream_ext.combine(obit) AS obit FROM cv_bits$q$,
 $q$SELECT bit_and(g), bit_or(b), bit_xor(g::int2), bit_or(g::bit(16)) FROM ev_ref$q$),
('ru_var_float', $q$SELECT k IS NULL AS nok, stream_ext.combine(sd) AS sd, stream_ext.combine(vp) AS vp,
   stream_ext.combine(vs4) AS vs4 FROM cv_var_float GROUP BY k IS NULL$q$,
 $q$SELECT k IS NULL, stddev(f), var_pop(f), var_samp(f::float4) FROM ev_ref GROUP BY k IS NULL$q$),
('ru_var_numeric', $q$SELECT stream_ext.combine(sd) AS sd, stream_ext.combine(vp) AS vp FROM cv_var_numeric$q$,
 $q$SELECT stddev(n), var_pop(n) FROM ev_ref$q$),
('ru_regr', $q$SELECT stream_ext.combine(corr) AS corr, stream_ext.combine(rc) AS rc,
   stream_ext.combine(rs) AS rs, stream_ext.combine(sxy) AS sxy FROM cv_regr$q$,
 $q$SELECT corr(f, g), regr_count(f, g), regr_slope(f, g), regr_sxy(f, g) FROM ev_ref$q$),
('ru_filter', $q$SELECT stream_ext.combine(cf) AS cf, stream_ext.combine(sg) AS sg, stream_ext.combine(an) AS an,
   stream_ext.combine(mt) AS mt, stream_ext.combine(sd) AS sd FROM cv_filter$q$,
 $q$SELECT count(*) FILTER (WHERE flag), sum(g) FILTER (WHERE f > 10),
   avg(n) FILTER (WHERE t < '2024-01-05 00:00:00+00'), max(t) FILTER (WHERE flag IS NULL),
   stddev(f) FILTER (WHERE g % 2 = 0) FROM ev_ref$q$),
('ru_week', $q$SELECT date_trunc('week', day) AS week, stream_ext.combine(c) AS c, stream_ext.combine(sg) AS sg,
   stream_ext.combine(af) AS af FROM cv_day GROUP BY 1$q$,
 $q$SELECT date_trunc('week', date_trunc('day', t)), count(*), sum(g), avg(f) FROM ev_ref GROUP BY 1$q$),
('ru_two_keys', $q$SELECT big, stream_ext.combine(c) AS c, stream_ext.combine(sn) AS sn, stream_ext.combine(mt) AS mt
   FROM cv_two_keys GROUP BY big$q$,
 $q$SELECT n > 500, count(*), sum(n), min(t) FROM ev_ref GROUP BY n > 500$q$),
('ru_interval', $q$SELECT stream_ext.combine(si) AS si, stream_ext.combine(ai) AS ai, stream_ext.combine(mi) AS mi
   FROM cv_interval$q$,
 $q$SELECT sum(t - '2024-01-01 00:00:00+00'), avg(t - '2024-01-01 00:00:00+00'),
   min(t - '2024-01-01 00:00:00+00') FROM ev_ref$q$),
('ru_user_aggs', $q$SELECT stream_ext.combine(ms) AS ms, stream_ext.combine(ma) AS ma FROM cv_user_aggs$q$,
 $q$SELECT my_sum(b), my_avg(n) FROM ev_ref$q$),
('ru_range', $q$SELECT stream_ext.combine(ri) AS ri FROM cv_range$q$,
 $q$SELECT range_intersect_agg(int4range(g - 600, g + 600)) FROM ev_ref$q$);

-- every view, and every roll-up, against its query over ev_ref
CREATE FUNCTION check_all() RETURNS TABLE (view text, view_rows bigint, ref_rows bigint, diffs bigint, examples text)
LANGUAGE plpgsql AS $$
DECLARE c record;
BEGIN
  FOR c IN SELECT name, replace(q, '{S}', 'ev_ref') AS ref FROM cases
           UNION ALL SELECT name, ref FROM rollups ORDER BY name LOOP
    view := c.name;
    SELECT * INTO view_rows, ref_rows, diffs, examples FROM compare_view(c.name, c.ref);
    RETURN NEXT;
  END LOOP;
END $$;

DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    IF c.via_function THEN
      PERFORM stream_ext.create_continuous_view(c.name, replace(c.q, '{S}', 'ev'));
    ELSE
      EXECUTE format('CREATE VIEW %I WITH (continuous) AS %s', c.name, replace(c.q, '{S}', 'ev'));
    END IF;
  END LOOP;
END $$;

DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM rollups LOOP
    EXECUTE format('CREATE VIEW %I AS %s', r.name, r.q);
  END LOOP;
END $$;

-- arrival_timestamp must be filled for every event (not compared with ev_ref)
SELECT stream_ext.create_continuous_view('cv_arrival',
  $q$SELECT count(*) AS n, count(arrival_timestamp) AS na FROM ev$q$);
SQL
create_pending_deltas
nviews=$(q "SELECT count(*) FROM cases")
nchecked=$((nviews + $(q "SELECT count(*) FROM rollups")))
say "$nviews views and $((nchecked - nviews)) roll-ups of them created"

failures=()
compare() {
	local label=$1 out bad
	q "CREATE TABLE res AS SELECT * FROM check_all()" >/dev/null
	out=$(q "SELECT view, view_rows, ref_rows, diffs FROM res ORDER BY view")
	bad=$(q "SELECT string_agg(format(E'  %s: %s (view %s rows, reference %s rows)\n    %s', view,
	                  CASE WHEN diffs < 0 THEN 'cannot be compared' ELSE diffs || ' differing rows' END,
	                  coalesce(view_rows::text, '?'), ref_rows, replace(examples, E'\n', E'\n    ')), E'\n')
	           FROM res WHERE diffs <> 0")
	if [ -n "$bad" ]; then
		echo "[$TEST_NAME] $label: views differing from the reference queries:"
		echo "$bad"
		failures+=("$label: $(q "SELECT string_agg(view, ', ' ORDER BY view) FROM res WHERE diffs <> 0")")
	fi
	local ev_n arr
	ev_n=$(q "SELECT count(*) FROM ev_ref")
	arr=$(q "SELECT n = $ev_n AND na = n FROM cv_arrival")
	if [ "$arr" != t ]; then
		echo "[$TEST_NAME] $label: cv_arrival is $(q "SELECT n || ' events, ' || na || ' with arrival_timestamp' FROM cv_arrival"), expected $ev_n, all with arrival_timestamp"
		failures+=("$label: cv_arrival")
	fi
	say "$label: $(echo "$out" | awk -F'|' '$4 == 0' | wc -l)/$nchecked views and roll-ups equal the reference ($ev_n events; rows per view: $(echo "$out" | awk -F'|' '{printf "%s%s", sep, $2; sep=","}'))"
	q "DROP TABLE res" >/dev/null
}

copy_batch() {  # copy_batch FORMAT: send batch to the stream by COPY, and to ev_ref
	psql -X -q -v ON_ERROR_STOP=1 -c "COPY (SELECT k, g, b, n, f, flag, t FROM batch ORDER BY seq) TO STDOUT (FORMAT $1)" |
		psql -X -q -v ON_ERROR_STOP=1 -c "COPY ev FROM STDIN (FORMAT $1)"
	q "INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch" >/dev/null
}

compare "phase 0 (empty stream)"

say "phase 1: sync mode, INSERT ... SELECT, small transactions, COPY csv/text/binary, rollbacks"
run_sql <<'SQL'
SELECT gen(5000, 0.11);
BEGIN;
INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch;
INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch;
COMMIT;
SELECT gen(3000, 0.12);
SQL
# 30 small autocommit transactions
for i in $(seq 0 29); do
	echo "INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 30 = $i;"
done | run_sql
q "INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch" >/dev/null
q "SELECT gen(4000, 0.13)" >/dev/null; copy_batch csv
q "SELECT gen(4000, 0.14)" >/dev/null; copy_batch text
q "SELECT gen(4000, 0.15)" >/dev/null; copy_batch binary
run_sql <<'SQL'
-- rolled back: contributes nothing
SELECT gen(2000, 0.16);
BEGIN;
INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch;
INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch;
ROLLBACK;
-- savepoints: only what was not rolled back counts
SELECT gen(2000, 0.17);
BEGIN;
INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 3 = 0;
SAVEPOINT s1;
INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 3 = 1;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 3 = 2;
SAVEPOINT s2;
INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 3 = 1 AND seq % 2 = 0;
RELEASE SAVEPOINT s2;
COMMIT;
INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 3 <> 1 OR seq % 2 = 0;
-- single rows, all NULL and all set
INSERT INTO ev VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO ev_ref VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO ev (t, k, f) VALUES ('2024-01-02 03:04:05.678901+00', 'k03', -1.5e-7);
INSERT INTO ev_ref (t, k, f) VALUES ('2024-01-02 03:04:05.678901+00', 'k03', -1.5e-7);
SQL
compare "phase 1 (sync)"

say "phase 2: async mode"
run_sql <<'SQL'
CREATE TABLE baseline AS SELECT name::text AS name, events FROM stream_ext.view_stats;
SELECT gen(6000, 0.21);
SET stream_ext.commit_mode = async;
SQL
async_events=0
for i in $(seq 0 9); do
	echo "INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch WHERE seq % 10 = $i;"
done | PGOPTIONS="-c stream_ext.commit_mode=async" run_sql
q "INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch" >/dev/null
async_events=$((async_events + 6000))
q "SELECT gen(3000, 0.22)" >/dev/null
PGOPTIONS="-c stream_ext.commit_mode=async" copy_batch csv
async_events=$((async_events + 3000))
[ "$(q "SELECT current_setting('stream_ext.commit_mode')")" = sync ] || fail "commit_mode default is not sync"
wait_until 60 "view_stats shows the $async_events async events applied to every view" \
	"SELECT count(*) = $((nviews + 1)) AND bool_and(s.events >= b.events + $async_events)
	   FROM stream_ext.view_stats s JOIN baseline b ON b.name = s.name::text"
wait_until 60 "cv_counts shows every event" "SELECT n = (SELECT count(*) FROM ev_ref) FROM cv_counts"
compare "phase 2 (async)"

say "phase 3: 240k events in big transactions (several batches, combiner rounds), JIT-compiled"
set_server_setting stream_ext.jit_above_events 0
for s in 1 2 3 4; do
	q "SELECT gen(50000, 0.3$s)" >/dev/null
	run_sql -c "BEGIN" -c "INSERT INTO ev SELECT k, g, b, n, f, flag, t FROM batch" \
		-c "INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch" -c "COMMIT"
done
q "SELECT gen(40000, 0.35)" >/dev/null; copy_batch csv
batches=$(q "SELECT min(batches) FROM stream_ext.view_stats")
jitted=0
for pid in $(q "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'stream_ext worker'"); do
	grep -q llvmjit "/proc/$pid/maps" 2>/dev/null && jitted=$((jitted + 1))
done
if [ "$jitted" -eq 0 ]; then
	failures+=("phase 3: no batch worker of the database loaded llvmjit.so (JIT-compiled kept executors)")
else
	say "$jitted batch worker(s) ran JIT-compiled executors"
fi
say "view_stats: at least $batches batches applied per view"
compare "phase 3 (240k events, right after commit)"
if ! try_wait 60 "the combiner merged every delta (stream_ext_internal.delta_* empty)" "SELECT pending_deltas() = 0"; then
	echo "[$TEST_NAME] delta rows left per view:"
	q "SELECT v.view, v.delta_table FROM stream_ext_internal.continuous_views v" | while IFS='|' read -r v d; do
		n=$(q "SELECT count(*) FROM $d")
		if [ "$n" != 0 ]; then echo "  $v: $n rows in $d"; fi
	done
	failures+=("phase 3: combiner did not merge all deltas within 60s")
fi
compare "phase 3 (after the combiner merged all deltas)"

say "phase 4: read shapes (count(*), ORDER BY ... LIMIT, filters on aggregates, a cursor) while a COPY is running"
# check_shapes(): each view read the ways BI tools read it, against its query
# over ev_ref; a failure per line
run_sql <<'SQL'
CREATE FUNCTION invisible_deltas() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r record; total bigint := 0; n bigint;
BEGIN
  FOR r IN SELECT delta_table FROM stream_ext_internal.continuous_views LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE NOT stream_ext_internal.xid_visible(writer_xid)',
                   r.delta_table) INTO n;
    total := total + n;
  END LOOP;
  RETURN total;
END $$;
CREATE FUNCTION check_shapes() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE c record; ncols int; ord text; got bigint; want bigint; n bigint; cur refcursor; r record; ex text;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    SELECT count(*) INTO ncols FROM pg_attribute WHERE attrelid = c.name::regclass AND attnum > 0;
    SELECT string_agg(i::text || ' NULLS FIRST', ', ') INTO ord FROM generate_series(1, ncols) i;
    EXECUTE format('SELECT count(*) FROM %I', c.name) INTO got;
    EXECUTE format('SELECT count(*) FROM (%s) x', replace(c.q, '{S}', 'ev_ref')) INTO want;
    IF got <> want THEN RETURN NEXT format('%s: count(*) %s, expected %s', c.name, got, want); END IF;
    EXECUTE format('CREATE TEMP VIEW shape AS SELECT * FROM %I ORDER BY %s LIMIT 7', c.name, ord);
    SELECT count(*), string_agg(side || ': ' || d.r, E'\n') INTO n, ex FROM diff_view('shape',
      format('SELECT * FROM (%s) x ORDER BY %s LIMIT 7', replace(c.q, '{S}', 'ev_ref'), ord)) d;
    IF n > 0 THEN RETURN NEXT format(E'%s: ORDER BY ... LIMIT 7 differs in %s rows:\n%s', c.name, n, ex); END IF;
    DROP VIEW shape;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.name::regclass AND attname = 'c') THEN
      EXECUTE format('CREATE TEMP VIEW shape AS SELECT * FROM %I WHERE c > 100', c.name);
      SELECT count(*) INTO n FROM diff_view('shape',
        format('SELECT * FROM (%s) x WHERE c > 100', replace(c.q, '{S}', 'ev_ref')));
      IF n > 0 THEN RETURN NEXT format('%s: WHERE c > 100 differs in %s rows', c.name, n); END IF;
      DROP VIEW shape;
    END IF;
    n := 0;
    OPEN cur FOR EXECUTE format('SELECT * FROM %I', c.name);
    LOOP
      FETCH cur INTO r;
      EXIT WHEN NOT FOUND;
      n := n + 1;
    END LOOP;
    CLOSE cur;
    IF n <> want THEN RETURN NEXT format('%s: a cursor fetched %s rows, expected %s', c.name, n, want); END IF;
  END LOOP;
END $$;
SQL
q "SELECT gen(60000, 0.41)" >/dev/null
copy_open="$SCRATCH/copy_open"
rm -f "$copy_open"
# the COPY's transaction commits only once the holder of this lock goes
PGAPPNAME=phase4_holder psql -X -q -c "SELECT pg_advisory_lock(4242)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
_bg_pids+=($!)
wait_until 10 "the lock holder has the lock" "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted"
(
	{
		echo "BEGIN;"
		echo "COPY ev FROM STDIN (FORMAT csv);"
		psql -X -q -At -c "COPY (SELECT k, g, b, n, f, flag, t FROM batch ORDER BY seq) TO STDOUT (FORMAT csv)"
		echo '\.'
		echo "\! touch $copy_open"
		echo "SELECT pg_advisory_lock(4242);"
		echo "COMMIT;"
	} | psql -X -q -v ON_ERROR_STOP=1 >/dev/null
) &
copy_pid=$!
_bg_pids+=($copy_pid)
for i in $(seq 300); do [ -e "$copy_open" ] && break; sleep 0.1; done
[ -e "$copy_open" ] || fail "phase 4: the COPY did not finish loading"
in_progress=$(q "SELECT invisible_deltas()")
say "phase 4: $in_progress delta rows of the open COPY's transaction are in the delta tables"
shapes=$(q "SELECT string_agg(s, E'\n') FROM check_shapes() s")
[ -z "$shapes" ] || failures+=("phase 4 (COPY running): $shapes")
# (a backend in pg_sleep does not notice its client going: end it)
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'phase4_holder'" >/dev/null
wait "$copy_pid" || fail "phase 4: the COPY failed"
q "INSERT INTO ev_ref SELECT k, g, b, n, f, flag, t FROM batch" >/dev/null
shapes=$(q "SELECT string_agg(s, E'\n') FROM check_shapes() s")
[ -z "$shapes" ] || failures+=("phase 4 (after the COPY committed): $shapes")
[ ${#failures[@]} -eq 0 ] && say "ok: phase 4: every read shape equals the reference, during and after the COPY"

errs=$(q "SELECT count(*) FROM stream_ext.view_errors")
if [ "$errs" != 0 ]; then
	echo "[$TEST_NAME] stream_ext.view_errors has $errs rows: $(q "SELECT string_agg(name || ': ' || message, '; ') FROM (SELECT * FROM stream_ext.view_errors LIMIT 5) e")"
	failures+=("view_errors not empty")
else
	say "no view errors recorded"
fi
if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] failed: $f"; done
	fail "${#failures[@]} check(s) failed ($((SECONDS - t0))s)"
fi
say "PASS ($((SECONDS - t0))s)"
