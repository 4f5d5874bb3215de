#!/usr/bin/env bash
# Differential test of windowed continuous views: every view must equal the
# batch query that defines its window semantics, run over a plain table that
# received exactly the same events, at a fixed stream_ext.read_time.
#
# Events (seeded; groups g0..g5 plus a NULL group; some NULL times; event
# times over four hours of 2024-01-01) go to two streams with the same views:
#   ev_o  in time order, in 16 transactions (INSERT ... SELECT and COPY), with
#         the default allowed_lateness (in time order nothing is late)
#   ev_s  shuffled, in 16 transactions, allowed_lateness '100 years'; a last
#         transaction bridges two sessions of one group
# Views per stream: tumbling (date_bin GROUP BY, event time and arrival time,
# with ttl, on a timestamp column), sliding (with and without GROUP BY, on a
# timestamp and a date column), hopping (timestamptz and timestamp) and
# session windows.  Compared (EXCEPT ALL both ways, floats rounded) right
# after the commits and again once the combiner merged every delta.
# Then:
#   state rows: hopping stores one row per (slice, key); reap_expired removes
#     exactly the expired tumbling-ttl buckets and sliding steps; the
#     background reaper (server-wide read_time, short reap_interval) does too
#   timestamp time column: reaping in UTC must keep what a later read in
#     another TimeZone shows
#   lateness: transactions with late events; late counts, keep_late rows,
#     watermark, view = batch over the non-late events, closed windows frozen
#   one transaction of 1M events in time order, one of 300k shuffled: none late
#   no blocking: reap_expired finishes while a 400k-row COPY into the same
#     stream is still in progress (the COPY is held open until the reap is
#     done), and the COPY's events are all counted afterwards
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_windows
run_sql -f "$TEST_DIR/diff_view.sql"
export PGTZ=UTC
t0=$SECONDS
failures=()

# The background reaper uses the server-wide read_time (default: now(), which
# would expire all of 2024 at once): pin it before the data, reset it at exit.
EARLY="2023-12-01 00:00:00+00"
set_server_read_time() {  # set_server_read_time TIME [REAP_INTERVAL_MS]
	set_server_setting stream_ext.reap_interval "${2:-5000}"
	set_server_setting stream_ext.read_time "$1"
}
set_server_read_time "$EARLY"

say "setting up streams, reference table and views"
run_sql <<'SQL'
CREATE FOREIGN TABLE ev_o (g text, v float8, n int, ts timestamptz, tsl timestamp, d date) SERVER stream_ext;
CREATE FOREIGN TABLE ev_s (g text, v float8, n int, ts timestamptz, tsl timestamp, d date) SERVER stream_ext;
-- stage 1: the random events; stage 2: one event that bridges two sessions
CREATE TABLE ref (seq int, g text, v float8, n int, ts timestamptz, tsl timestamp, d date,
                  stage int, shuf float8, chunk_o int, chunk_s int);
SELECT setseed(0.4242);
INSERT INTO ref (seq, g, v, n, ts, stage, shuf)
SELECT i,
  CASE WHEN random() < 0.10 THEN NULL ELSE 'g' || floor(random() * 6)::int END,
  round((random() * 1000)::numeric, 3)::float8,
  floor(random() * 100)::int,
  CASE WHEN random() < 0.03 THEN NULL
       ELSE timestamptz '2024-01-01 00:00:00+00' + random() * interval '4 hours' END,
  1, random()
FROM generate_series(1, 8000) i;
-- group "bridge" (session gap 10 minutes): 01:00 and 01:15 are two sessions
-- until 01:07 arrives (shuffled stream: in a transaction of its own, last)
INSERT INTO ref (seq, g, v, n, ts, stage, shuf) VALUES
  (8001, 'bridge', 1, 0, '2024-01-01 01:00:00+00', 1, 0.5),
  (8002, 'bridge', 2, 1, '2024-01-01 01:15:00+00', 1, 0.25),
  (8003, 'bridge', 4, 2, '2024-01-01 01:07:00+00', 2, 2);
-- a timestamp copy of ts, and a date that grows with ts (one day per 24 minutes)
UPDATE ref SET tsl = ts AT TIME ZONE 'UTC',
  d = date '2024-01-01' + floor(extract(epoch FROM ts - timestamptz '2024-01-01 00:00:00+00') / 1440)::int;
-- transactions: ev_o in time order (NULL times at random places), ev_s shuffled
UPDATE ref r SET chunk_o = x.c FROM (
  SELECT seq, (row_number() OVER (ORDER BY coalesce(ts, timestamptz '2024-01-01 00:00:00+00' + shuf * interval '4 hours'), seq) - 1) / 501 AS c
  FROM ref) x WHERE x.seq = r.seq;
UPDATE ref r SET chunk_s = CASE WHEN r.stage = 2 THEN 16 ELSE x.c END FROM (
  SELECT seq, (row_number() OVER (ORDER BY shuf, seq) - 1) / 501 AS c FROM ref WHERE stage = 1) x
  WHERE x.seq = r.seq OR (r.stage = 2 AND x.seq = 1);

-- The cases: view {S}-query over the stream, its options, the batch query
-- over the reference events {R} at read time {T}, and the read times.
CREATE TABLE cases (name text PRIMARY KEY, q text, opts text[], refq text, read_times text[]);
INSERT INTO cases VALUES
('tum', $q$SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, g, count(*) AS c, sum(v) AS sv, avg(v) AS av,
   max(n) AS mx, min(ts) AS mt FROM {S} GROUP BY 1, 2$q$, ARRAY['time_column=ts'],
 $r$SELECT date_bin('10 minutes', ts, '2000-01-01'), g, count(*), sum(v), avg(v), max(n), min(ts) FROM {R} GROUP BY 1, 2$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('tum_arr', $q$SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, g, count(*) AS c, sum(v) AS sv
   FROM {S} GROUP BY 1, 2$q$, ARRAY[]::text[],
 $r$SELECT date_bin('10 minutes', ts, '2000-01-01'), g, count(*), sum(v) FROM {R} GROUP BY 1, 2$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('tum_ttl', $q$SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, g, count(*) AS c, avg(v) AS av
   FROM {S} GROUP BY 1, 2$q$, ARRAY['time_column=ts', 'ttl=1 hour', 'ttl_column=m'],
 $r$SELECT * FROM (SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, g, count(*), avg(v) FROM {R} GROUP BY 1, 2) x
   WHERE m IS NULL OR m > timestamptz '{T}' - interval '1 hour'$r$,
 ARRAY['2024-01-01 00:30:00+00', '2024-01-01 02:30:00+00', '2024-01-01 03:10:00+00', '2024-01-01 04:05:00+00',
       '2024-01-01 05:00:00+00', '2024-01-01 05:10:00+00']),
('tum_tsl', $q$SELECT date_bin('15 minutes', tsl, '2000-01-01') AS m, g, count(*) AS c, sum(v) AS sv
   FROM {S} GROUP BY 1, 2$q$, ARRAY['time_column=tsl'],
 $r$SELECT date_bin('15 minutes', tsl, '2000-01-01'), g, count(*), sum(v) FROM {R} GROUP BY 1, 2$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('sl_g', $q$SELECT g, count(*) AS c, sum(v) AS sv, avg(v) AS av, min(ts) AS mt, max(n) AS mx FROM {S} GROUP BY g$q$,
 ARRAY['time_column=ts', 'sliding_window=1 hour', 'step=5 minutes'],
 $r$SELECT g, count(*), sum(v), avg(v), min(ts), max(n) FROM {R}
   WHERE ts >= date_bin('5 minutes', timestamptz '{T}' - interval '1 hour', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('5 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '5 minutes'
   GROUP BY g$r$,
 ARRAY['2024-01-01 00:00:00+00', '2024-01-01 00:40:00+00', '2024-01-01 01:30:00+00', '2024-01-01 02:17:30+00',
       '2024-01-01 03:05:00+00', '2024-01-01 04:00:00+00', '2024-01-01 04:59:59+00', '2024-01-01 06:00:00+00']),
('sl_all', $q$SELECT count(*) AS c, sum(v) AS sv, avg(v) AS av, max(ts) AS mt FROM {S}$q$,
 ARRAY['time_column=ts', 'sliding_window=30 minutes'],
 $r$SELECT count(*), sum(v), avg(v), max(ts) FROM {R}
   WHERE ts >= date_bin('90 seconds', timestamptz '{T}' - interval '30 minutes', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('90 seconds', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '90 seconds'$r$,
 ARRAY['2024-01-01 00:10:00+00', '2024-01-01 01:31:00+00', '2024-01-01 02:17:30+00', '2024-01-01 03:59:00+00',
       '2024-01-01 06:00:00+00']),
('sl_tsl', $q$SELECT g, count(*) AS c, sum(v) AS sv FROM {S} GROUP BY g$q$,
 ARRAY['time_column=tsl', 'sliding_window=45 minutes', 'step=15 minutes'],
 $r$SELECT g, count(*), sum(v) FROM {R}
   WHERE tsl >= date_bin('15 minutes', timestamp '{T}' - interval '45 minutes', timestamp '2000-01-01 00:00:00')
     AND tsl < date_bin('15 minutes', timestamp '{T}', timestamp '2000-01-01 00:00:00') + interval '15 minutes'
   GROUP BY g$r$,
 ARRAY['2024-01-01 00:20:00+00', '2024-01-01 02:05:00+00', '2024-01-01 03:50:00+00']),
-- 25 steps: the view also keeps blocks of 5 steps, and reads take whole blocks
('sl_blocks', $q$SELECT g, count(*) AS c, sum(v) AS sv, min(v) AS mn, max(tsl) AS mt FROM {S} GROUP BY g$q$,
 ARRAY['time_column=tsl', 'sliding_window=50 minutes', 'step=2 minutes'],
 $r$SELECT g, count(*), sum(v), min(v), max(tsl) FROM {R}
   WHERE tsl >= date_bin('2 minutes', timestamp '{T}' - interval '50 minutes', timestamp '2000-01-01 00:00:00')
     AND tsl < date_bin('2 minutes', timestamp '{T}', timestamp '2000-01-01 00:00:00') + interval '2 minutes'
   GROUP BY g$r$,
 ARRAY['2024-01-01 00:20:00+00', '2024-01-01 01:01:00+00', '2024-01-01 02:05:00+00', '2024-01-01 02:13:59+00',
       '2024-01-01 03:50:00+00', '2024-01-01 04:31:00+00']),
('sl_date', $q$SELECT g, count(*) AS c, sum(v) AS sv, max(d) AS md FROM {S} GROUP BY g$q$,
 ARRAY['time_column=d', 'sliding_window=3 days', 'step=1 day'],
 $r$SELECT g, count(*), sum(v), max(d) FROM {R}
   WHERE d >= date_bin('1 day', timestamp '{T}' - interval '3 days', timestamp '2000-01-01 00:00:00')
     AND d < date_bin('1 day', timestamp '{T}', timestamp '2000-01-01 00:00:00') + interval '1 day'
   GROUP BY g$r$,
 ARRAY['2024-01-01 12:00:00+00', '2024-01-05 00:00:00+00', '2024-01-09 23:59:00+00', '2024-01-14 00:00:00+00']),
('hop', $q$SELECT g, count(*) AS c, sum(v) AS sv, avg(v) AS av, max(ts) AS mt FROM {S} GROUP BY g$q$,
 ARRAY['time_column=ts', 'hop_size=30 minutes', 'hop_slide=10 minutes'],
 $r$SELECT ws, ws + interval '30 minutes', g, count(*), sum(v), avg(v), max(ts)
   FROM {R}, generate_series(date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '20 minutes',
                             date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '10 minutes') ws
   WHERE ts IS NOT NULL GROUP BY ws, g$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('hop_tsl', $q$SELECT count(*) AS c, min(v) AS mv FROM {S}$q$,
 ARRAY['time_column=tsl', 'hop_size=20 minutes', 'hop_slide=5 minutes'],
 $r$SELECT ws, ws + interval '20 minutes', count(*), min(v)
   FROM {R}, generate_series(date_bin('5 minutes', tsl, timestamp '2000-01-01 00:00:00') - interval '15 minutes',
                             date_bin('5 minutes', tsl, timestamp '2000-01-01 00:00:00'), interval '5 minutes') ws
   WHERE tsl IS NOT NULL GROUP BY ws$r$,
 ARRAY['2024-01-01 05:00:00+00']),
('hop_ttl', $q$SELECT g, count(*) AS c, sum(v) AS sv FROM {S} GROUP BY g$q$,
 ARRAY['time_column=ts', 'hop_size=30 minutes', 'hop_slide=10 minutes', 'ttl=1 hour'],
 $r$SELECT * FROM (SELECT ws, ws + interval '30 minutes' AS we, g, count(*), sum(v)
   FROM {R}, generate_series(date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '20 minutes',
                             date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '10 minutes') ws
   WHERE ts IS NOT NULL GROUP BY ws, g) x WHERE we > timestamptz '{T}' - interval '1 hour'$r$,
 ARRAY['2024-01-01 00:30:00+00', '2024-01-01 02:30:00+00', '2024-01-01 02:45:00+00', '2024-01-01 05:00:00+00',
       '2024-01-01 05:45:00+00']),
('ses_ttl', $q$SELECT g, count(*) AS c, max(v) AS mv FROM {S} WHERE n < 3 GROUP BY g$q$,
 ARRAY['time_column=ts', 'session_gap=10 minutes', 'ttl=30 minutes'],
 $r$SELECT * FROM (SELECT min(ts) AS s0, max(ts) AS s1, g, count(*), max(v) FROM (
     SELECT *, sum(brk) OVER (PARTITION BY g ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM (
       SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY g ORDER BY ts) < interval '10 minutes' THEN 0 ELSE 1 END AS brk
       FROM {R} WHERE n < 3 AND ts IS NOT NULL) a) b
   GROUP BY g, sid) x WHERE s1 > timestamptz '{T}' - interval '30 minutes'$r$,
 ARRAY['2024-01-01 00:30:00+00', '2024-01-01 02:30:00+00', '2024-01-01 02:45:00+00', '2024-01-01 04:10:00+00']),
('ses', $q$SELECT g, count(*) AS c, sum(v) AS sv, max(v) AS mv FROM {S} WHERE n < 3 GROUP BY g$q$,
 ARRAY['time_column=ts', 'session_gap=10 minutes'],
 $r$SELECT min(ts), max(ts), g, count(*), sum(v), max(v) FROM (
     SELECT *, sum(brk) OVER (PARTITION BY g ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM (
       SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY g ORDER BY ts) < interval '10 minutes' THEN 0 ELSE 1 END AS brk
       FROM {R} WHERE n < 3 AND ts IS NOT NULL) a) b
   GROUP BY g, sid$r$,
 ARRAY['2024-01-01 05:00:00+00']);

-- the same views over both streams: ev_o with the default lateness, ev_s with
-- '100 years'; half created with CREATE VIEW WITH, half with the function
DO $$
DECLARE c record; sfx text; opts text[]; i int := 0;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    FOREACH sfx IN ARRAY ARRAY['o', 's'] LOOP
      opts := c.opts;
      IF sfx = 's' AND array_length(opts, 1) > 0 THEN
        opts := opts || 'allowed_lateness=100 years'::text;
      END IF;
      i := i + 1;
      IF i % 2 = 0 THEN
        PERFORM stream_ext.create_continuous_view(c.name || '_' || sfx, replace(c.q, '{S}', 'ev_' || sfx), opts);
      ELSE
        EXECUTE format('CREATE VIEW %I WITH (%s) AS %s', c.name || '_' || sfx,
          (SELECT string_agg(format('%s = %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
             FROM unnest(ARRAY['continuous=true'] || opts) o),
          replace(c.q, '{S}', 'ev_' || sfx));
      END IF;
    END LOOP;
  END LOOP;
END $$;

-- every case of stream sfx at each of its read times, against the events of
-- stages <= max_stage
CREATE FUNCTION check_all(sfx text, max_stage int)
RETURNS TABLE (view text, read_time text, view_rows bigint, ref_rows bigint, diffs bigint, examples text)
LANGUAGE plpgsql AS $$
DECLARE c record; rt text; refq text;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    view := c.name || '_' || sfx;
    FOREACH rt IN ARRAY c.read_times LOOP
      read_time := rt;
      PERFORM set_config('stream_ext.read_time', rt, true);
      refq := replace(replace(c.refq, '{R}', format('(SELECT * FROM ref WHERE stage <= %s) AS r', max_stage)), '{T}', rt);
      SELECT * INTO view_rows, ref_rows, diffs, examples FROM compare_view(view, refq);
      RETURN NEXT;
    END LOOP;
  END LOOP;
END $$;

-- state and delta table of a view
CREATE FUNCTION state_rows(v text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', (SELECT state_table FROM stream_ext.continuous_views WHERE name = v::regclass)) INTO n;
  RETURN n;
END $$;
SQL
create_pending_deltas
nviews=$(q "SELECT count(*) FROM stream_ext.continuous_views")
say "$nviews views created; $(q "SELECT count(*) FROM ref") reference events, $(q "SELECT count(*) FROM ref WHERE ts IS NULL") with a NULL time, $(q "SELECT count(*) FROM ref WHERE g IS NULL") in the NULL group"

compare() {  # compare LABEL SFX MAX_STAGE [CONDITION on (view, read_time) of the pairs to compare]
	local label=$1
	q "CREATE TABLE res AS SELECT * FROM check_all('$2', $3) WHERE ${4:-true}" >/dev/null
	report_comparison "$label"
	# a comparison that compares nothing cannot fail: every case must have rows somewhere
	empty=$(q "SELECT string_agg(view, ', ') FROM (SELECT view FROM res GROUP BY view HAVING max(ref_rows) = 0) x")
	[ -z "$empty" ] || failures+=("$label: no reference rows at any read time for $empty")
	q "DROP TABLE res" >/dev/null
}
qt() {  # qt READ_TIME SQL: q with stream_ext.read_time set for the session
	psql -X -At -q -v ON_ERROR_STOP=1 -c "SET stream_ext.read_time = '$1'" -c "$2"
}
merged() {  # merged LABEL: wait until the combiner merged every delta
	wait_until 60 "$1: the combiner merged every delta (delta tables empty)" "SELECT pending_deltas() = 0"
}

send() {  # send STREAM CHUNK_COLUMN FIRST LAST: chunks as transactions, even by INSERT, odd by COPY
	local s=$1 col=$2 i
	for i in $(seq "$3" "$4"); do
		if [ $((i % 2)) -eq 0 ]; then
			run_sql -c "INSERT INTO $s SELECT g, v, n, ts, tsl, d FROM ref WHERE $col = $i ORDER BY shuf"
		else
			psql -X -q -v ON_ERROR_STOP=1 -c "COPY (SELECT g, v, n, ts, tsl, d FROM ref WHERE $col = $i ORDER BY shuf) TO STDOUT (FORMAT csv)" |
				psql -X -q -v ON_ERROR_STOP=1 -c "COPY $s FROM STDIN (FORMAT csv)"
		fi
	done
}

say "ev_o: $(q "SELECT count(*) FROM ref") events in time order, $(q "SELECT max(chunk_o) + 1 FROM ref") transactions"
# within a chunk of ev_o the order is by time too (chunks are time ranges; ORDER BY shuf
# inside one transaction cannot make an event late: lateness compares with earlier batches)
send ev_o chunk_o 0 "$(q "SELECT max(chunk_o) FROM ref")"
compare "ordered, right after the commits" o 2
merged "ordered"
compare "ordered, after the combiner merged" o 2
late_o=$(q "SELECT coalesce(sum(late_events), 0) FROM stream_ext.view_stats WHERE name::text LIKE '%\_o'")
[ "$late_o" = 0 ] || failures+=("ordered input: $late_o events counted late (expected none)")

say "ev_s: stage 1 shuffled in 16 transactions"
send ev_s chunk_s 0 15
pending=$(q "SELECT pending_deltas()")
compare "shuffled stage 1, right after the commits ($pending delta rows pending before the check)" s 1
ses_before=$(q "SELECT count(*) FROM ses_s WHERE g = 'bridge'")
[ "$ses_before" = 2 ] || failures+=("ses_s: group bridge has $ses_before sessions before the bridging event, expected 2")
merged "shuffled stage 1"
compare "shuffled stage 1, after the combiner merged" s 1
say "ev_s: stage 2, an event that bridges two sessions"
send ev_s chunk_s 16 16
compare "shuffled stage 2, right after the commit" s 2
merged "shuffled stage 2"
compare "shuffled stage 2, after the combiner merged" s 2
ses_after=$(q "SELECT session_start || ' - ' || session_end || ' ' || c FROM ses_s WHERE g = 'bridge'")
[ "$ses_after" = "2024-01-01 01:00:00+00 - 2024-01-01 01:15:00+00 3" ] ||
	failures+=("ses_s: group bridge after the bridging event is '$ses_after', expected one session 01:00-01:15 with 3 events")

say "state rows: hopping stores one row per (slice, key), not per window"
for sfx in o s; do
	got=$(q "SELECT state_rows('hop_$sfx')")
	want=$(q "SELECT count(*) FROM (SELECT DISTINCT date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), g FROM ref WHERE ts IS NOT NULL) x")
	windows=$(q "SELECT count(*) FROM hop_$sfx")
	say "  hop_$sfx: $got state rows, $want distinct (slice, g), $windows windows"
	[ "$got" = "$want" ] || failures+=("hop_$sfx: $got state rows, expected $want (one per slice and group)")
done

# ---------------------------------------------------------------------------
say "ttl and reaping (ev_s views)"
live_tum() {  # tumbling buckets alive at read time $1 (a NULL bucket never expires)
	q "SELECT count(*) FROM (SELECT DISTINCT date_bin('10 minutes', ts, '2000-01-01') AS m, g FROM ref) x
	   WHERE m IS NULL OR m > timestamptz '$1' - interval '1 hour'"
}
live_sl() {  # sliding steps (5 min, window 1 hour) alive at read time $1
	q "SELECT count(*) FROM (SELECT DISTINCT date_bin('5 minutes', ts, timestamptz '2000-01-01 00:00:00+00') AS s, g FROM ref
	   WHERE ts IS NOT NULL) x
	   WHERE s >= date_bin('5 minutes', timestamptz '$1' - interval '1 hour', timestamptz '2000-01-01 00:00:00+00')"
}
# reads: rows expire at once when read_time moves (no reaping yet)
all_rows=$(q "SELECT state_rows('tum_ttl_s')")
[ "$all_rows" = "$(live_tum "$EARLY")" ] || failures+=("tum_ttl_s has $all_rows state rows before any reaping, expected $(live_tum "$EARLY")")
vis=$(qt "2024-01-01 02:30:00+00" "SELECT count(*) FROM tum_ttl_s")
vis2=$(qt "2024-01-01 02:40:00+00" "SELECT count(*) FROM tum_ttl_s")
exp_vis=$(live_tum "2024-01-01 02:30:00+00")
exp_vis2=$(live_tum "2024-01-01 02:40:00+00")
say "  tum_ttl_s: $vis rows visible at 02:30, $vis2 at 02:40 (expected $exp_vis, $exp_vis2); $all_rows state rows"
[ "$vis" = "$exp_vis" ] && [ "$vis2" = "$exp_vis2" ] && [ "$vis2" -lt "$vis" ] ||
	failures+=("tum_ttl_s: visible rows at 02:30/02:40 are $vis/$vis2, expected $exp_vis/$exp_vis2")
# reap_expired at 02:30
T=2024-01-01\ 02:30:00+00
n=$(qt "$T" "SELECT stream_ext.reap_expired('tum_ttl_s')")
left=$(q "SELECT state_rows('tum_ttl_s')")
say "  reap_expired('tum_ttl_s') at 02:30 deleted $n rows, $left left (expected $((all_rows - $(live_tum "$T"))) deleted, $(live_tum "$T") left)"
[ "$left" = "$(live_tum "$T")" ] && [ "$n" = $((all_rows - left)) ] ||
	failures+=("reap_expired(tum_ttl_s) at $T: deleted $n, left $left; expected $(live_tum "$T") left")
# sliding: steps before the window's oldest step are reaped, the view is unchanged
sl_all_rows=$(q "SELECT state_rows('sl_g_s')")
T=2024-01-01\ 02:17:30+00
n=$(qt "$T" "SELECT stream_ext.reap_expired('sl_g_s')")
left=$(q "SELECT state_rows('sl_g_s')")
say "  reap_expired('sl_g_s') at 02:17:30 deleted $n of $sl_all_rows step rows, $left left (expected $(live_sl "$T") left)"
[ "$left" = "$(live_sl "$T")" ] && [ "$n" = $((sl_all_rows - left)) ] ||
	failures+=("reap_expired(sl_g_s) at $T: deleted $n, left $left; expected $(live_sl "$T") left")
n=$(qt "2024-01-05 00:00:00+00" "SELECT stream_ext.reap_expired('sl_date_s')")
left=$(q "SELECT state_rows('sl_date_s')")
# a date (or timestamp) time is read in the reader's TimeZone, which may be up to a day
# behind UTC: the reaper keeps the steps a reader a day behind still sees (days >= 01-01;
# a UTC reader's window starts at 01-02)
want=$(q "SELECT count(*) FROM (SELECT DISTINCT d, g FROM ref WHERE d >= date '2024-01-01') x")
say "  reap_expired('sl_date_s') at 2024-01-05 deleted $n, $left left (expected $want: days >= 2024-01-01)"
[ "$left" = "$want" ] || failures+=("reap_expired(sl_date_s) at 2024-01-05: $left rows left, expected $want")
# hopping with ttl: a slice goes once every window holding it has ended
T=2024-01-01\ 02:30:00+00
before=$(q "SELECT state_rows('hop_ttl_s')")
n=$(qt "$T" "SELECT stream_ext.reap_expired('hop_ttl_s')")
left=$(q "SELECT state_rows('hop_ttl_s')")
want=$(q "SELECT count(*) FROM (SELECT DISTINCT date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') AS s, g FROM ref
          WHERE ts IS NOT NULL) x WHERE s + interval '30 minutes' > timestamptz '$T' - interval '1 hour'")
say "  reap_expired('hop_ttl_s') at 02:30 deleted $n of $before slice rows, $left left (expected $want left)"
[ "$left" = "$want" ] && [ "$n" = $((before - left)) ] || failures+=("reap_expired(hop_ttl_s) at $T: deleted $n, left $left; expected $want left")
# session with ttl: sessions that ended by read_time - ttl are hidden, but with
# allowed_lateness = 100 years an event may still join any of them: none is
# deleted (sql/windows.sql checks the deletion once the watermark has passed)
before=$(q "SELECT state_rows('ses_ttl_s')")
n=$(qt "$T" "SELECT stream_ext.reap_expired('ses_ttl_s')")
left=$(q "SELECT state_rows('ses_ttl_s')")
want=$(qt "$T" "SELECT count(*) FROM ses_ttl_s")
say "  reap_expired('ses_ttl_s') at 02:30 deleted $n of $before session rows ($want sessions visible; every one may still grow)"
[ "$n" = 0 ] && [ "$left" = "$before" ] && [ "$want" -lt "$before" ] ||
	failures+=("reap_expired(ses_ttl_s) at $T: deleted $n of $before ($want visible); expected none deleted under a lateness of 100 years")
# hopping and session views without ttl expire nothing
n=$(qt "2024-01-01 05:00:00+00" "SELECT stream_ext.reap_expired('hop_s') + stream_ext.reap_expired('ses_s')")
[ "$n" = 0 ] || failures+=("reap_expired on hop_s/ses_s (no ttl) deleted $n rows")
# reads before the reap times need the rows just reaped: compare at the later ones
compare "shuffled, after reap_expired (read times after the reaps)" s 2 \
	"NOT (view = 'tum_ttl_s' AND read_time::timestamptz < '2024-01-01 02:30:00+00')
	 AND NOT (view = 'sl_g_s' AND read_time::timestamptz < '2024-01-01 02:17:30+00')
	 AND NOT (view = 'sl_date_s' AND read_time::timestamptz < '2024-01-05 00:00:00+00')
	 AND NOT (view IN ('hop_ttl_s', 'ses_ttl_s') AND read_time::timestamptz < '2024-01-01 02:30:00+00')"

say "background reaper: server-wide read_time 03:40, reap_interval 100 ms"
T=2024-01-01\ 03:40:00+00
set_server_read_time "$T" 100
wait_until 30 "the background reaper leaves $(live_tum "$T") rows of tum_ttl_s and $(live_sl "$T") of sl_g_s" \
	"SELECT state_rows('tum_ttl_s') = $(live_tum "$T") AND state_rows('sl_g_s') = $(live_sl "$T")"
say "  tum_ttl_s: $(q "SELECT state_rows('tum_ttl_s')") rows, sl_g_s: $(q "SELECT state_rows('sl_g_s')") rows"
# reads use the session's read_time: at 03:40 the views are unchanged
for v in tum_ttl_s sl_g_s; do
	r=$(q "SELECT count(*) FROM check_all('s', 2) WHERE view = '$v' AND diffs <> 0
	       AND read_time::timestamptz >= '$T'")
	[ "$r" = 0 ] || failures+=("$v differs from the batch query at read times >= 03:40 after the background reaper ran")
done
set_server_read_time "$EARLY"
[ "$(live_tum "$T")" -lt "$(live_tum "$EARLY")" ] || fail "bad test data: nothing expires at $T"

# ---------------------------------------------------------------------------
# A timestamp (without time zone) time column is read in the session's
# TimeZone.  Reaping at read time X must not remove rows that a read at a
# later read time still shows, whatever TimeZone the reaping session (or the
# combiner) has.
say "timestamp time column: reaping in UTC, reads in America/New_York at a later read time"
run_sql <<'SQL'
CREATE FOREIGN TABLE tzs (ts timestamp) SERVER stream_ext;
CREATE VIEW tz_sl WITH (continuous, time_column = 'ts', sliding_window = '1 hour', step = '5 minutes') AS
  SELECT count(*) AS c, min(ts) AS mn FROM tzs;
CREATE VIEW tz_ttl WITH (continuous, time_column = 'ts', ttl = '1 hour', ttl_column = 'm') AS
  SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, count(*) AS c FROM tzs GROUP BY 1;
-- one event a minute, 2024-01-01 00:00 to 09:59 (wall-clock times)
CREATE TABLE tz_ref AS SELECT timestamp '2024-01-01 00:00:00' + i * interval '1 minute' AS ts FROM generate_series(0, 599) i;
INSERT INTO tzs SELECT ts FROM tz_ref;
SQL
merged "timestamp column views"
# 2024-01-01 08:00+00 is 03:00 in New York
ny() { PGTZ=America/New_York qt "2024-01-01 08:00:00+00" "SELECT format('%s events from %s; %s buckets, %s events',
                                                                      (SELECT c FROM tz_sl), (SELECT mn FROM tz_sl),
                                                                      (SELECT count(*) FROM tz_ttl), (SELECT coalesce(sum(c), 0) FROM tz_ttl))"; }
want=$(q "WITH t AS (SELECT timestamptz '2024-01-01 08:00:00+00' AT TIME ZONE 'America/New_York' AS lt)
  SELECT format('%s events from %s; %s buckets, %s events', s.c, s.mn, b.n, b.c)
    FROM (SELECT count(*) AS c, min(ts) AS mn FROM tz_ref, t
           WHERE ts >= date_bin('5 minutes', lt - interval '1 hour', timestamp '2000-01-01')
             AND ts < date_bin('5 minutes', lt, timestamp '2000-01-01') + interval '5 minutes') s,
         (SELECT count(*) AS n, sum(c) AS c FROM (SELECT date_bin('10 minutes', ts, timestamp '2000-01-01') AS m, count(*) AS c
            FROM tz_ref GROUP BY 1) b, t WHERE m > lt - interval '1 hour') b")
got=$(ny)
say "  New York read at 08:00+00 before reaping: $got"
[ "$got" = "$want" ] || failures+=("New York read of tz_sl/tz_ttl before reaping: '$got', expected '$want'")
n=$(PGTZ=UTC qt "2024-01-01 06:00:00+00" "SELECT stream_ext.reap_expired('tz_sl') + stream_ext.reap_expired('tz_ttl')")
got=$(ny)
say "  reap_expired in UTC at 06:00+00 deleted $n rows; New York read at 08:00+00 now: $got"
[ "$got" = "$want" ] || failures+=("reaping at an earlier read time (in UTC) removed rows a later read in New York shows: '$got', expected '$want'")

# ---------------------------------------------------------------------------
say "lateness: 30 transactions, allowed_lateness 5 minutes (keep_late) and 3 minutes"
run_sql <<'SQL'
CREATE FOREIGN TABLE lt (g text, v float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW lt_tum WITH (continuous, time_column = 'ts', allowed_lateness = '5 minutes', keep_late = true) AS
  SELECT date_bin('10 minutes', ts, '2000-01-01') AS m, g, count(*) AS c, sum(v) AS sv FROM lt GROUP BY 1, 2;
CREATE VIEW lt_hop WITH (continuous, time_column = 'ts', allowed_lateness = '3 minutes',
                         hop_size = '20 minutes', hop_slide = '10 minutes') AS
  SELECT g, count(*) AS c FROM lt GROUP BY g;
SELECT stream_ext.create_continuous_view('lt_sl', $$SELECT count(*) AS c, sum(v) AS sv FROM lt$$,
  ARRAY['time_column=ts', 'allowed_lateness=5 minutes', 'sliding_window=30 minutes', 'step=5 minutes']);
-- transaction tx: times around tx * 4 minutes, some up to 7 minutes behind, a few far behind
CREATE TABLE lt_ref (tx int, seq int, g text, v float8, ts timestamptz);
SELECT setseed(0.77);
INSERT INTO lt_ref
SELECT tx, i, CASE WHEN random() < 0.1 THEN NULL ELSE 'g' || floor(random() * 4)::int END,
  round((random() * 100)::numeric, 2)::float8,
  CASE WHEN random() < 0.02 THEN NULL
       -- stragglers, 15 to 55 minutes behind: late, into windows that are final
       WHEN random() < 0.05 THEN timestamptz '2024-01-02 00:00:00+00' + (tx * 4 - 15 - random() * 40) * interval '1 minute'
       ELSE timestamptz '2024-01-02 00:00:00+00' + (tx * 4 + random() * 14 - 7) * interval '1 minute' END
FROM generate_series(0, 29) tx, generate_series(1, 100) i;
-- late under allowed_lateness L: before the max time of earlier transactions - L
CREATE FUNCTION lt_late(l interval) RETURNS TABLE (tx int, seq int, ts timestamptz, wm timestamptz) LANGUAGE sql AS $$
  SELECT r.tx, r.seq, r.ts, m.mx - l FROM lt_ref r
    JOIN LATERAL (SELECT max(ts) AS mx FROM lt_ref e WHERE e.tx < r.tx) m ON true
   WHERE r.ts < m.mx - l
$$;
CREATE FUNCTION lt_ok(l interval) RETURNS SETOF lt_ref LANGUAGE sql AS $$
  SELECT * FROM lt_ref r WHERE NOT EXISTS (SELECT 1 FROM lt_late(l) x WHERE x.tx = r.tx AND x.seq = r.seq)
$$;
SQL
for tx in $(seq 0 29); do
	echo "INSERT INTO lt SELECT g, v, ts FROM lt_ref WHERE tx = $tx ORDER BY seq;"
	if [ "$tx" = 14 ]; then
		# windows that ended at or before the watermark: these must never change again
		echo "CREATE TABLE lt_closed AS SELECT t.* FROM lt_tum t, stream_ext.view_stats s
		      WHERE s.name = 'lt_tum'::regclass AND t.m + interval '10 minutes' <= s.watermark;"
	fi
done | run_sql
late5=$(q "SELECT count(*) FROM lt_late('5 minutes')")
late3=$(q "SELECT count(*) FROM lt_late('3 minutes')")
say "  reference: $late5 late events at 5 minutes, $late3 at 3 minutes, of $(q "SELECT count(*) FROM lt_ref")"
[ "$late5" -gt 0 ] && [ "$late3" -gt "$late5" ] || fail "bad test data: late counts $late5 / $late3"
got=$(q "SELECT string_agg(name::text || '=' || late_events, ' ' ORDER BY name::text) FROM stream_ext.view_stats WHERE name::text LIKE 'lt\_%'")
want="lt_hop=$late3 lt_sl=$late5 lt_tum=$late5"
say "  view_stats.late_events: $got"
[ "$got" = "$want" ] || failures+=("view_stats.late_events is '$got', expected '$want'")
got=$(q "SELECT string_agg(name::text || '=' || watermark, ' ' ORDER BY name::text) FROM stream_ext.view_stats WHERE name::text LIKE 'lt\_%'")
want=$(q "SELECT 'lt_hop=' || (max(ts) - interval '3 minutes') || ' lt_sl=' || (max(ts) - interval '5 minutes') || ' lt_tum=' || (max(ts) - interval '5 minutes') FROM lt_ref")
[ "$got" = "$want" ] || failures+=("view_stats.watermark is '$got', expected '$want'")
# keep_late: lt_tum's late events, with their times and watermarks; none of the others
d=$(q "SELECT count(*) FROM (
         (SELECT event_time, watermark FROM stream_ext.late_events WHERE name = 'lt_tum'::regclass
          EXCEPT ALL SELECT ts, wm FROM lt_late('5 minutes'))
         UNION ALL
         (SELECT ts, wm FROM lt_late('5 minutes')
          EXCEPT ALL SELECT event_time, watermark FROM stream_ext.late_events WHERE name = 'lt_tum'::regclass)) x")
kept=$(q "SELECT count(*) FILTER (WHERE name = 'lt_tum'::regclass) || '/' || count(*) FROM stream_ext.late_events")
say "  stream_ext.late_events: $kept rows (lt_tum/all), $d differing from the reference (event_time, watermark)"
[ "$d" = 0 ] && [ "$kept" = "$late5/$late5" ] || failures+=("late_events: $kept rows, $d differ; expected $late5/$late5")
ev_ok=$(q "SELECT count(*) FROM stream_ext.late_events WHERE name = 'lt_tum'::regclass AND event NOT LIKE '%' || to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || '%'")
[ "$ev_ok" = 0 ] || failures+=("late_events: $ev_ok rows whose event text does not hold their event time")
# no batch of these views follows the last transaction: the combiner folds
# its pending watermarks, and shows the kept late events to every snapshot,
# once every snapshot sees their writers ended (lateness_settle.c, every 10 s)
stats="SELECT string_agg(name::text || '=' || late_events || '@' || watermark, ' ' ORDER BY name::text)
       FROM stream_ext.view_stats WHERE name::text LIKE 'lt\_%'"
before=$(q "$stats")
wait_until 60 "the pending watermarks folded, the late events' writers settled" \
	"SELECT NOT EXISTS (SELECT FROM stream_ext_internal.watermark_pending)
	    AND NOT EXISTS (SELECT FROM stream_ext_internal.late_events WHERE writer_xid IS NOT NULL)"
after=$(q "$stats")
[ "$after" = "$before" ] || failures+=("view_stats changed when the writers were settled: '$before', then '$after'")
[ "$(q "SELECT count(*) FROM stream_ext.late_events")" = "$late5" ] ||
	failures+=("late_events after the settlement: $(q "SELECT count(*) FROM stream_ext.late_events") rows, expected $late5")
# views = batch over the non-late events
run_sql <<'SQL'
INSERT INTO cases VALUES
('lt_tum', NULL, NULL, $r$SELECT date_bin('10 minutes', ts, '2000-01-01'), g, count(*), sum(v) FROM lt_ok('5 minutes') GROUP BY 1, 2$r$,
 ARRAY['2024-01-02 05:00:00+00']),
('lt_hop', NULL, NULL, $r$SELECT ws, ws + interval '20 minutes', g, count(*)
   FROM lt_ok('3 minutes'), generate_series(date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00') - interval '10 minutes',
                                           date_bin('10 minutes', ts, timestamptz '2000-01-01 00:00:00+00'), interval '10 minutes') ws
   WHERE ts IS NOT NULL GROUP BY ws, g$r$, ARRAY['2024-01-02 05:00:00+00']),
('lt_sl', NULL, NULL, $r$SELECT count(*), sum(v) FROM lt_ok('5 minutes')
   WHERE ts >= date_bin('5 minutes', timestamptz '{T}' - interval '30 minutes', timestamptz '2000-01-01 00:00:00+00')
     AND ts < date_bin('5 minutes', timestamptz '{T}', timestamptz '2000-01-01 00:00:00+00') + interval '5 minutes'$r$,
 ARRAY['2024-01-02 00:30:00+00', '2024-01-02 01:12:00+00', '2024-01-02 02:00:00+00']);
-- check_all appends _sfx: view lt_tum_ is reached through these aliases
CREATE VIEW lt_tum_ AS SELECT * FROM lt_tum;
CREATE VIEW lt_hop_ AS SELECT * FROM lt_hop;
CREATE VIEW lt_sl_ AS SELECT * FROM lt_sl;
DELETE FROM cases WHERE name NOT LIKE 'lt\_%';
SQL
compare "lateness: views vs batch over the non-late events" "" 0
n_closed=$(q "SELECT count(*) FROM lt_closed")
# counts exactly; the float sums to 10 significant digits: a sum read before the combiner
# merged adds the same values in another order
changed=$(q "SELECT count(*) FROM lt_closed c LEFT JOIN lt_tum t ON t.m = c.m AND t.g IS NOT DISTINCT FROM c.g
              WHERE t.c IS DISTINCT FROM c.c
                 OR abs(t.sv - c.sv) > 1e-10 * greatest(abs(c.sv), 1) OR (t.sv IS NULL) <> (c.sv IS NULL)")
say "  $n_closed lt_tum windows had closed after transaction 14; $changed changed afterwards"
[ "$n_closed" -gt 0 ] || fail "bad test data: no window had closed after transaction 14"
[ "$changed" = 0 ] || failures+=("$changed lt_tum windows closed before the watermark changed afterwards")
late_after=$(q "SELECT count(*) FROM lt_ref l WHERE l.tx > 14 AND l.ts < (SELECT max(m) + interval '10 minutes' FROM lt_closed)")
say "  $late_after events after transaction 14 fell into those windows (all late, dropped)"
[ "$late_after" -gt 0 ] || fail "bad test data: no event after transaction 14 fell into a closed window"

# ---------------------------------------------------------------------------
# One big transaction in time order: no event may be late, whichever workers
# apply its batches (a large transaction spills to the other workers when the
# home worker falls behind; 100,000 groups make it fall behind).
say "lateness: 1M events in time order in one transaction, then 300k shuffled in another (default allowed_lateness)"
run_sql <<'SQL'
CREATE FOREIGN TABLE inorder (url text, ts timestamptz) SERVER stream_ext;
CREATE VIEW inorder_min WITH (continuous, time_column = 'ts') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS m, url, count(*) AS c FROM inorder GROUP BY 1, 2;
INSERT INTO inorder SELECT (i % 1000)::text, timestamptz '2024-01-05 00:00:00+00' + i * interval '6 ms'
  FROM generate_series(1, 1000000) i;
SQL
got=$(q "SELECT s.events || ' applied, ' || s.late_events || ' late, ' || s.batches || ' batches; view total ' || (SELECT sum(c) FROM inorder_min)
         FROM stream_ext.view_stats s WHERE s.name = 'inorder_min'::regclass")
say "  inorder_min: $got"
[ "$got" = "1000000 applied, 0 late, $(q "SELECT batches FROM stream_ext.view_stats WHERE name = 'inorder_min'::regclass") batches; view total 1000000" ] ||
	failures+=("events of one transaction in time order were counted late: $got (expected all 1000000 applied, 0 late)")
# and one transaction in random order (times after the first one's): none late either
run_sql <<'SQL'
SELECT setseed(0.5);
INSERT INTO inorder SELECT (i % 1000)::text, timestamptz '2024-01-06 00:00:00+00' + random() * interval '1 hour'
  FROM generate_series(1, 300000) i ORDER BY random();
SQL
got=$(q "SELECT s.events || ' applied, ' || s.late_events || ' late; view total ' || (SELECT sum(c) FROM inorder_min)
         FROM stream_ext.view_stats s WHERE s.name = 'inorder_min'::regclass")
say "  after 300k more in random order in one transaction: $got"
[ "$got" = "1300000 applied, 0 late; view total 1300000" ] ||
	failures+=("events of one shuffled transaction were counted late: $got (expected 1300000 applied, 0 late)")

# ---------------------------------------------------------------------------
say "no blocking: reap_expired while a 400k-row COPY into the same stream is in progress"
run_sql <<'SQL'
CREATE FOREIGN TABLE big (g int, v float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW big_ttl WITH (continuous, time_column = 'ts', ttl = '1 hour', ttl_column = 'm', allowed_lateness = '100 years') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS m, g, count(*) AS c FROM big GROUP BY 1, 2;
CREATE VIEW big_count WITH (continuous) AS SELECT count(*) AS c, sum(v) AS sv FROM big;
-- 2024-01-03 00:00-02:00: 120 minutes x 10 groups, expired at 2024-01-03 12:00
INSERT INTO big SELECT i % 10, i, timestamptz '2024-01-03 00:00:00+00' + (i % 7200) * interval '1 second'
  FROM generate_series(1, 20000) i;
SQL
merged "big: prefill"
old_rows=$(q "SELECT state_rows('big_ttl')")
[ "$old_rows" = 1200 ] || failures+=("big_ttl has $old_rows state rows after the prefill, expected 1200")
# the COPY's input: 300k rows, then (once the reap is done) 100k more; times on 2024-01-04
q "COPY (SELECT i % 10, i, timestamptz '2024-01-04 00:00:00+00' + (i % 3600) * interval '1 second'
         FROM generate_series(1, 300000) i) TO STDOUT (FORMAT csv)" > "$SCRATCH/big1.csv"
q "COPY (SELECT i % 10, i, timestamptz '2024-01-04 00:00:00+00' + (i % 3600) * interval '1 second'
         FROM generate_series(300001, 400000) i) TO STDOUT (FORMAT csv)" > "$SCRATCH/big2.csv"
part1=$(stat -c %s "$SCRATCH/big1.csv")
rm -f "$SCRATCH/reaped"
{
	cat "$SCRATCH/big1.csv"
	# hold the COPY open until the reap is done (or 60 s passed)
	for _ in $(seq 600); do [ -e "$SCRATCH/reaped" ] && break; sleep 0.1; done
	cat "$SCRATCH/big2.csv"
} | psql -X -q -v ON_ERROR_STOP=1 -c "COPY big FROM STDIN (FORMAT csv)" >"$SCRATCH/copy.out" 2>&1 &
copy_pid=$!
_bg_pids+=("$copy_pid")
# (the server reads its input in 64 kB pieces: the last piece of part 1 waits for more)
wait_until 60 "the COPY into big has read the first 300k rows" \
	"SELECT bytes_processed >= $part1 - 65536 FROM pg_stat_progress_copy WHERE relid = 'big'::regclass"
copy_backend=$(q "SELECT pid FROM pg_stat_progress_copy WHERE relid = 'big'::regclass")
out=$(psql -X -At -q -v ON_ERROR_STOP=1 <<SQL 2>&1 || true
SET statement_timeout = '20s';
SET stream_ext.read_time = '2024-01-03 12:00:00+00';
CREATE TEMP TABLE tm AS SELECT clock_timestamp() AS t0;
SELECT stream_ext.reap_expired('big_ttl');
SELECT round(extract(epoch FROM clock_timestamp() - t0) * 1000) FROM tm;
SELECT count(*) FROM pg_stat_activity WHERE pid = $copy_backend AND state = 'active' AND query LIKE 'COPY big%';
SQL
)
touch "$SCRATCH/reaped"
read -r reaped reap_ms copy_active <<< "$(echo $out)"
say "  reap_expired deleted $reaped rows in $reap_ms ms; COPY backend $copy_backend still active afterwards: $copy_active"
[ "$reaped" = 1200 ] || failures+=("reap_expired(big_ttl) during the COPY: '$out', expected 1200 rows deleted")
[ "$copy_active" = 1 ] || failures+=("the COPY was not active any more when reap_expired returned")
[ -n "$reap_ms" ] && [ "$reap_ms" -lt 5000 ] 2>/dev/null || failures+=("reap_expired took ${reap_ms:-?} ms during the COPY (expected < 5 s)")
wait "$copy_pid" || { cat "$SCRATCH/copy.out"; fail "the COPY into big failed"; }
got=$(q "SELECT c || ' ' || sv FROM big_count")
[ "$got" = "420000 $(q "SELECT sum(i) FROM (SELECT generate_series(1, 20000) UNION ALL SELECT generate_series(1, 400000)) x(i)")" ] ||
	failures+=("big_count is '$got' after the COPY, expected 420000 events")
got=$(qt "2024-01-04 00:30:00+00" "SELECT sum(c) || ' ' || count(*) FROM big_ttl")
[ "$got" = "400000 600" ] || failures+=("big_ttl shows '$got' (events, rows) at 2024-01-04 00:30, expected '400000 600'")
say "  after the COPY: big_count $(q "SELECT c FROM big_count"), big_ttl $got (events, rows)"

errs=$(q "SELECT count(*) FROM stream_ext.view_errors")
if [ "$errs" != 0 ]; then
	echo "[$TEST_NAME] stream_ext.view_errors has $errs rows: $(q "SELECT string_agg(name || ': ' || message, '; ') FROM (SELECT * FROM stream_ext.view_errors LIMIT 5) e")"
	failures+=("view_errors not empty")
fi
if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] failed: $f"; done
	fail "${#failures[@]} check(s) failed ($((SECONDS - t0))s)"
fi
say "PASS ($((SECONDS - t0))s)"
