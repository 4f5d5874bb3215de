#!/usr/bin/env bash
# The aggregates of Debian's postgresql-15-hll and postgresql-15-tdigest in
# continuous views, against the same aggregates run in batch over a plain
# table holding the same events.
#
# Events (seeded): groups with few distinct users (an hll counts them
# exactly), with thousands, a NULL group and a group whose users and values
# are all NULL; NULL users and values elsewhere, repeated values, a heavy
# tail; NULL times.  Sent in 12 transactions by INSERT ... SELECT and COPY,
# with a rolled-back savepoint and whole rolled-back transactions (INSERT and
# COPY) of events that would stand out (new users, huge values).
# Views: no window (with and without GROUP BY), tumbling (date_bin), sliding
# and hopping windows; each holds count(v), hll_add_agg (default and
# log2m = 14, whose states TOAST compresses or moves out of line),
# hll_cardinality of one, tdigest(v, 100), and tdigest_percentile with a
# fraction (compression 100) and with an array (compression 500).
# Checked right after the commits (reads merge pending deltas) and again
# once the combiner merged them all:
#   exact: the groups; count(v); tdigest_count of the digest; every hll
#     equal (=) to the batch one (an hll does not depend on input order or
#     partitioning) and its cardinality equal; the cardinality equal to
#     count(DISTINCT u) where a group has at most 100 distinct users (the
#     explicit representation, exact by construction)
#   approximate: a digest depends on how its input was split and merged, so
#     its percentiles are checked against the group's values: the fraction
#     of values below an estimate for fraction q must be within
#     5/compression + 1/n of q.  tdigest documents an error of about
#     1/compression; digests merged from parts do worse than one built in
#     a single pass (up to 3.8/compression was seen here, the batch digest
#     2.6/compression), and 1/n is one value's step.  hll cardinalities lie
#     within 3 standard errors (3 x 1.04 / sqrt(2^log2m)) of count(DISTINCT u)
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_sketches
export PGTZ=UTC
failures=()

# Sliding steps older than the server-wide read time are reaped in the
# background: pin it before the 2024 events, reset it at exit.
set_server_setting stream_ext.read_time '2023-12-01 00:00:00+00'

say "setting up the stream, the reference table and the views"
run_sql <<'SQL'
CREATE EXTENSION hll;
CREATE EXTENSION tdigest;
CREATE FOREIGN TABLE ev (g text, u bigint, v float8, ts timestamptz) SERVER stream_ext;
-- kept: the events of committed transactions; the others are rolled back
CREATE TABLE ref (seq int, g text, u bigint, v float8, ts timestamptz, kept bool, chunk int, shuf float8);
SELECT setseed(0.2718);
INSERT INTO ref (seq, g, kept, chunk, shuf)
SELECT i, CASE WHEN r < 0.05 THEN NULL WHEN r < 0.08 THEN 'nulls' WHEN r < 0.25 THEN 'few'
               WHEN r < 0.55 THEN 'many' ELSE 'g' || floor(random() * 3)::int END,
       true, floor(random() * 12)::int, random()
FROM (SELECT i, random() AS r FROM generate_series(1, 24000) i) s;
UPDATE ref SET
  u = CASE WHEN g = 'nulls' OR random() < 0.04 THEN NULL
           WHEN g = 'few' THEN floor(random() * 60)::bigint
           WHEN g = 'many' THEN floor(random() * 50000)::bigint
           ELSE floor(random() * 400)::bigint END,
  v = CASE WHEN g = 'nulls' OR random() < 0.05 THEN NULL
           WHEN random() < 0.1 THEN 42
           ELSE round((-ln(1 - random()) * 100)::numeric, 1)::float8 END,
  ts = CASE WHEN random() < 0.02 THEN NULL
            ELSE timestamptz '2024-01-01 00:00:00+00' + random() * interval '4 hours' END;
-- rolled back: in every chunk, events of new users with huge values
INSERT INTO ref (seq, g, u, v, ts, kept, chunk, shuf)
SELECT 100000 + i, CASE WHEN i % 5 = 0 THEN NULL ELSE (ARRAY['few', 'many', 'g0', 'g1'])[1 + i % 4] END,
       1000000000 + i, 1e6 + i, timestamptz '2024-01-01 00:00:00+00' + (i % 240) * interval '1 minute',
       false, i % 12, random()
FROM generate_series(1, 2400) i;

-- the aggregates of every view
CREATE TABLE cases (name text PRIMARY KEY, keys text, q text, opts text[], src text, read_times text[]);
INSERT INTO cases VALUES
('sk_plain', 'g', $q$SELECT g, {A} FROM ev GROUP BY g$q$, ARRAY[]::text[],
 $r$SELECT g, u, v FROM {R}$r$, ARRAY['2024-01-01 05:00:00+00']),
('sk_all', '', $q$SELECT {A} FROM ev$q$, ARRAY[]::text[],
 $r$SELECT u, v FROM {R}$r$, ARRAY['2024-01-01 05:00:00+00']),
('sk_tum', 'm, g', $q$SELECT date_bin('30 minutes', ts, '2000-01-01') AS m, g, {A} FROM ev GROUP BY 1, 2$q$,
 ARRAY[]::text[],
 $r$SELECT date_bin('30 minutes', ts, '2000-01-01') AS m, g, u, v FROM {R}$r$, ARRAY['2024-01-01 05:00:00+00']),
('sk_slide', 'g', $q$SELECT g, {A} FROM ev GROUP BY g$q$,
 ARRAY['time_column=ts', 'sliding_window=1 hour', 'step=10 minutes', 'allowed_lateness=100 years'],
 $r$SELECT g, u, v FROM {R}
   WHERE ts >= date_bin('10 minutes', timestamptz '{T}' - interval '1 hour', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('10 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '10 minutes'$r$,
 ARRAY['2024-01-01 00:25:00+00', '2024-01-01 01:30:00+00', '2024-01-01 02:47:00+00', '2024-01-01 04:05:00+00']),
('sk_hop', 'window_start, window_end, g', $q$SELECT g, {A} FROM ev GROUP BY g$q$,
 ARRAY['time_column=ts', 'hop_size=1 hour', 'hop_slide=20 minutes', 'allowed_lateness=100 years'],
 $r$SELECT ws AS window_start, ws + interval '1 hour' AS window_end, g, u, v
   FROM {R}, generate_series(date_bin('20 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '40 minutes',
                             date_bin('20 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '20 minutes') ws
   WHERE ts IS NOT NULL$r$, ARRAY['2024-01-01 05:00:00+00']);
UPDATE cases SET q = replace(q, '{A}', $a$count(v) AS n,
  hll_add_agg(hll_hash_bigint(u)) AS h,
  hll_cardinality(hll_add_agg(hll_hash_bigint(u))) AS nu,
  hll_add_agg(hll_hash_bigint(u), 14) AS h14,
  tdigest(v, 100) AS td,
  tdigest_percentile(v, 100, 0.99) AS p99,
  tdigest_percentile(v, 500, ARRAY[0.01, 0.5, 0.9]) AS ps$a$);

DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    PERFORM stream_ext.create_continuous_view(c.name, c.q, c.opts);
  END LOOP;
END $$;

-- Every check of view c at read time rt: one row per failed check.
-- Also the largest errors seen, relative to the documented bounds.
CREATE TABLE worst (view text, what text, ratio float8);
-- how far estimate e for fraction q is from q, as a fraction of the values:
-- 0 when e lies among the values a fraction q of the values are below
CREATE FUNCTION rank_error(vals float8[], e float8, q float8) RETURNS float8 LANGUAGE sql AS $$
  SELECT greatest(0, count(*) FILTER (WHERE v < e)::float8 / nullif(count(*), 0) - q,
                     q - count(*) FILTER (WHERE v <= e)::float8 / nullif(count(*), 0))
    FROM unnest(vals) v WHERE v IS NOT NULL
$$;
CREATE FUNCTION check_case(c cases, rt text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  src text := replace(replace(c.src, '{R}', '(SELECT * FROM ref WHERE kept) AS r'), '{T}', rt);
  k text := CASE WHEN c.keys = '' THEN 'ROW()::text' ELSE format('ROW(%s)::text', c.keys) END;
BEGIN
  PERFORM set_config('stream_ext.read_time', rt, true);
  DROP TABLE IF EXISTS j;
  EXECUTE format($f$CREATE TEMP TABLE j AS
    WITH b AS (SELECT %2$s AS k, count(v) AS n, count(DISTINCT u) AS d, array_agg(v) AS vals,
                      hll_add_agg(hll_hash_bigint(u)) AS h, hll_add_agg(hll_hash_bigint(u), 14) AS h14,
                      tdigest_percentile(v, 100, 0.99) AS b99
                 FROM (%3$s) s GROUP BY 1),
         x AS (SELECT %2$s AS k, * FROM %1$I)
    SELECT x.k AS xk, b.k AS bk, x.n AS xn, b.n, b.d, b.vals, b.b99,
           x.h AS xh, b.h, x.nu, x.h14 AS xh14, b.h14, x.td, x.p99, x.ps,
           (SELECT tdigest_percentile(t, 0.5) FROM (VALUES (x.td)) s(t)) AS x50
      FROM x FULL JOIN b ON x.k = b.k$f$, c.name, k, src);
  IF (SELECT count(*) FROM j) = 0 THEN
    RETURN NEXT 'no groups at all';
  END IF;
  RETURN QUERY
  SELECT format('group %s: %s', coalesce(xk, bk), msg) FROM j, LATERAL (VALUES
    (CASE WHEN xk IS NULL THEN 'missing from the view' WHEN bk IS NULL THEN 'not in the batch result' END),
    (CASE WHEN xn <> n THEN format('count(v) %s, batch %s', xn, n) END),
    (CASE WHEN coalesce(tdigest_count(td), 0) <> n THEN format('tdigest_count %s, count(v) %s', tdigest_count(td), n) END),
    (CASE WHEN (td IS NULL) <> (b99 IS NULL) OR (p99 IS NULL) <> (b99 IS NULL) OR (ps IS NULL) <> (b99 IS NULL)
          THEN 'digest NULL where the batch one is not, or the reverse' END),
    (CASE WHEN xh IS DISTINCT FROM h THEN 'hll_add_agg differs from the batch hll' END),
    (CASE WHEN xh14 IS DISTINCT FROM h14 THEN 'hll_add_agg(..., 14) differs from the batch hll' END),
    (CASE WHEN nu IS DISTINCT FROM hll_cardinality(h) THEN format('hll_cardinality %s, batch %s', nu, hll_cardinality(h)) END),
    (CASE WHEN d <= 100 AND nu <> d THEN format('hll_cardinality %s of %s distinct users (exact below 160)', nu, d) END),
    (CASE WHEN abs(nu - d) > 3 * 1.04 / sqrt(2 ^ 11) * d THEN format('hll_cardinality %s of %s distinct users', nu, d) END),
    (CASE WHEN abs(hll_cardinality(xh14) - d) > 3 * 1.04 / sqrt(2 ^ 14) * d
          THEN format('hll_cardinality (log2m 14) %s of %s distinct users', hll_cardinality(xh14), d) END),
    (CASE WHEN rank_error(vals, p99, 0.99) > 5.0 / 100 + 1.0 / nullif(n, 0)
          THEN format('p99 %s is off by %s of the values', p99, rank_error(vals, p99, 0.99)) END),
    (CASE WHEN rank_error(vals, x50, 0.5) > 5.0 / 100 + 1.0 / nullif(n, 0)
          THEN format('median %s of the digest is off by %s of the values', x50, rank_error(vals, x50, 0.5)) END),
    ((SELECT format('percentile %s of %s is off by %s of the values', q, e, rank_error(vals, e, q))
        FROM unnest(ps, ARRAY[0.01, 0.5, 0.9]) z(e, q)
       WHERE rank_error(vals, e, q) > 5.0 / 500 + 1.0 / nullif(n, 0) LIMIT 1))) m(msg)
  WHERE msg IS NOT NULL;
  INSERT INTO worst
  SELECT c.name, w, max(r) FROM j, LATERAL (VALUES
    ('p99 (compression 100): rank error x 100', rank_error(vals, p99, 0.99) * 100),
    ('p99 of the batch digest: rank error x 100', rank_error(vals, b99, 0.99) * 100),
    ('median (compression 100): rank error x 100', rank_error(vals, x50, 0.5) * 100),
    ('0.01, 0.5, 0.9 (compression 500): rank error x 500',
     (SELECT max(rank_error(vals, e, q)) FROM unnest(ps, ARRAY[0.01, 0.5, 0.9]) z(e, q)) * 500),
    ('hll (over 100 users): error in standard errors',
     CASE WHEN d > 100 THEN abs(nu - d) / d / (1.04 / sqrt(2 ^ 11)) END)) e(w, r)
  GROUP BY w;
END $$;

-- Roll-ups with stream_ext.combine(): sk_tum's half hours rolled up per group
-- and to one row, against the batch sketches of the same events.
CREATE FUNCTION check_rollups() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('stream_ext.read_time', '2024-01-01 05:00:00+00', true);
  DROP TABLE IF EXISTS j;
  CREATE TEMP TABLE j AS
  WITH x AS (SELECT g, GROUPING(g) AS gs, stream_ext.combine(n) AS n, stream_ext.combine(h) AS h, stream_ext.combine(nu) AS nu,
                    stream_ext.combine(h14) AS h14, stream_ext.combine(td) AS td,
                    stream_ext.combine(p99) AS p99, stream_ext.combine(ps) AS ps
               FROM sk_tum GROUP BY GROUPING SETS ((g), ())),
       b AS (SELECT g, GROUPING(g) AS gs, count(v) AS n, count(DISTINCT u) AS d, array_agg(v) AS vals,
                    hll_add_agg(hll_hash_bigint(u)) AS h, hll_add_agg(hll_hash_bigint(u), 14) AS h14
               FROM ref WHERE kept GROUP BY GROUPING SETS ((g), ()))
  SELECT CASE WHEN coalesce(x.gs, b.gs) = 1 THEN 'all' ELSE coalesce(x.g, b.g, 'NULL') END AS grp, x.n AS xn, b.n, b.d, b.vals, x.h AS xh, b.h, x.nu,
         x.h14 AS xh14, b.h14, x.td, x.p99, x.ps
    FROM x FULL JOIN b ON x.g IS NOT DISTINCT FROM b.g AND x.gs = b.gs;
  RETURN QUERY
  SELECT format('roll-up of sk_tum, group %s: %s', grp, msg) FROM j, LATERAL (VALUES
    (CASE WHEN xn IS NULL OR n IS NULL THEN 'missing from the roll-up or from the batch result' END),
    (CASE WHEN xn IS DISTINCT FROM n THEN format('count(v) %s, batch %s', xn, n) END),
    (CASE WHEN coalesce(tdigest_count(td), 0) <> n THEN format('tdigest_count %s, count(v) %s', tdigest_count(td), n) END),
    (CASE WHEN xh IS DISTINCT FROM h THEN 'the hll differs from the batch hll' END),
    (CASE WHEN xh14 IS DISTINCT FROM h14 THEN 'the hll (log2m 14) differs from the batch hll' END),
    (CASE WHEN nu IS DISTINCT FROM hll_cardinality(h) THEN format('hll_cardinality %s, batch %s', nu, hll_cardinality(h)) END),
    (CASE WHEN rank_error(vals, p99, 0.99) > 5.0 / 100 + 1.0 / nullif(n, 0)
          THEN format('p99 %s is off by %s of the values', p99, rank_error(vals, p99, 0.99)) END),
    ((SELECT format('percentile %s of %s is off by %s of the values', q, e, rank_error(vals, e, q))
        FROM unnest(ps, ARRAY[0.01, 0.5, 0.9]) z(e, q)
       WHERE rank_error(vals, e, q) > 5.0 / 500 + 1.0 / nullif(n, 0) LIMIT 1))) m(msg)
  WHERE msg IS NOT NULL;
  IF (SELECT count(*) FROM j) < 2 THEN
    RETURN NEXT 'roll-up of sk_tum: no groups';
  END IF;
END $$;
SQL
create_pending_deltas
say "$(q "SELECT count(*) FROM stream_ext.continuous_views") views; $(q "SELECT count(*) FROM ref WHERE kept") events, $(q "SELECT count(*) FROM ref WHERE NOT kept") more rolled back"

check() {  # check LABEL: every case at each of its read times
	local out
	out=$(psql -X -At -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
SELECT format('%s at %s: %s', c.name, rt, f)
  FROM cases c, unnest(c.read_times) rt, LATERAL check_case(c, rt) f;
SQL
) || fail "$1: the comparison failed"
	if [ -n "$out" ]; then
		echo "[$TEST_NAME] $1: differences from the batch aggregates:"
		echo "$out" | head -40 | sed 's/^/  /'
		failures+=("$1: $(echo "$out" | wc -l) failed checks")
	else
		say "$1: every view equals its batch aggregates (within the sketches' bounds)"
	fi
}

send_chunk() {  # send_chunk C: the kept events of chunk C, and its rolled-back ones
	local c=$1 cols="g, u, v, ts" f="$SCRATCH/rolled_back_$1.csv"
	local kept="SELECT $cols FROM ref WHERE kept AND chunk = $c ORDER BY shuf"
	local gone="SELECT $cols FROM ref WHERE NOT kept AND chunk = $c ORDER BY shuf"
	case $((c % 4)) in
	0)	run_sql -c "INSERT INTO ev $kept" ;;
	1)	psql -X -q -v ON_ERROR_STOP=1 -c "COPY ($kept) TO STDOUT (FORMAT csv)" |
			psql -X -q -v ON_ERROR_STOP=1 -c "COPY ev FROM STDIN (FORMAT csv)" ;;
	2)	run_sql <<SQL ;;
BEGIN;
INSERT INTO ev $kept LIMIT 500;
SAVEPOINT s;
INSERT INTO ev $gone;
ROLLBACK TO SAVEPOINT s;
INSERT INTO ev $kept OFFSET 500;
COMMIT;
SQL
	3)	run_sql -c "BEGIN" -c "INSERT INTO ev $gone" -c "ROLLBACK"
		psql -X -q -v ON_ERROR_STOP=1 -c "COPY ($kept) TO STDOUT (FORMAT csv)" |
			psql -X -q -v ON_ERROR_STOP=1 -c "COPY ev FROM STDIN (FORMAT csv)" ;;
	esac
	if [ "$c" -eq 1 ]; then  # a rolled-back COPY too
		psql -X -q -v ON_ERROR_STOP=1 -c "COPY ($gone) TO STDOUT (FORMAT csv)" > "$f"
		run_sql -c "BEGIN" -c "\\copy ev FROM '$f' (FORMAT csv)" -c "ROLLBACK"
	fi
}

say "sending 12 transactions (INSERT, COPY, a rolled-back savepoint, rolled-back transactions)"
for c in $(seq 0 11); do send_chunk "$c"; done
say "$(q "SELECT pending_deltas()") delta rows pending before the first check"
check "right after the commits"
wait_until 60 "the combiner merged every delta" "SELECT pending_deltas() = 0"
check "after the combiner merged"

say "more events into merged state: chunks 0-3 again, as new transactions"
run_sql -c "INSERT INTO ref (seq, g, u, v, ts, kept, chunk, shuf)
            SELECT seq + 200000, g, u, v, ts, kept, chunk + 100, shuf FROM ref WHERE chunk < 4"
for c in 100 101 102 103; do send_chunk "$c"; done
check "after more events, before merging"
wait_until 60 "the combiner merged every delta" "SELECT pending_deltas() = 0"
check "after more events, merged"

out=$(q "SELECT string_agg(f, E'\n') FROM check_rollups() f")
if [ -n "$out" ]; then
	echo "$out" | head -20 | sed 's/^/  /'
	failures+=("roll-ups: $(echo "$out" | wc -l) failed checks")
else
	say "roll-ups of sk_tum with stream_ext.combine() equal the batch sketches (within their bounds)"
fi

# hll's big states keep a batch's groups from being hashed: the workers sort
# a batch by the hash of the text key first (analyze/view_query.c)
plan=$(q "SELECT string_agg(explain_continuous_view, ' ') FROM stream_ext.explain_continuous_view('sk_plain')")
case "$plan" in
*"Sort Key: "*"hashtext"*) say "ok: a batch of sk_plain is sorted by the hash of its text key first" ;;
*) failures+=("the plan of sk_plain does not sort by the key's hash first: $plan") ;;
esac

errors=$(q "SELECT count(*) FROM stream_ext.view_errors")
[ "$errors" = 0 ] || failures+=("$errors events recorded in view_errors: $(q "SELECT string_agg(DISTINCT message, '; ') FROM stream_ext.view_errors")")

say "largest errors seen (rank errors include the 1/n step of small groups):"
q "SELECT format('  %-52s %s (%s)', what, round(max(ratio)::numeric, 3), (array_agg(view ORDER BY ratio DESC NULLS LAST))[1])
     FROM worst GROUP BY what ORDER BY what" | while IFS= read -r l; do say "$l"; done

if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] FAIL: $f" >&2; done
	exit 1
fi
say "ok"
