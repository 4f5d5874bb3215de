#!/usr/bin/env bash
# stream_ext.view_time_limit on a host that keeps the worker from a CPU
# (src/worker/time_limit.c).  Own server, one worker, view_time_limit = 1s.
#   1. A view whose batch takes about 0.3 s of CPU, its worker starved for
#      CPU (the server's processes at the lowest weight, the worker at
#      SCHED_IDLE, four busy loops on the two cores) so that the batch
#      takes seconds of wall-clock time: every event is counted, nothing is
#      recorded in view_errors.  (With a wall-clock limit the view lost the
#      batch's events: 54000; with a cap of ten times the limit in wall-clock
#      time, it lost them when the batch took more than 10 s, as it does on
#      some hosts.)
#   2. Not starved, an event whose expression spins on the CPU for 5 s is
#      still cut at the limit: it alone is set aside (54000), the other
#      events of its batch are counted.
#   3. Two views whose code catches the cancel, every time, in a loop: the
#      worker is ended about a second after the cut and started again, and
#      that view skips the batch (recorded), then the same for the other;
#      the third view of the stream counts the batch, and all views and
#      another stream's go on.  (The worker and every writer of its queue
#      waited for ever; with one note in the slot, the two views took turns
#      ending the worker, for ever.)
#   4. A view's function plans serially, whatever it sets: a parallel plan's
#      workers would keep the run from a CPU, uncharged.
#   5. A view whose combine function catches the cancel, every time, in a
#      loop: the combiner is ended and started again, and leaves that view
#      alone for 10 s (recorded); other views are merged meanwhile, the
#      view's reads count its waiting delta, and once the function is fixed
#      its delta is merged.  (The combiner, and with it every merge of the
#      database, waited for ever, and a fast shutdown did not end it.)
#   6. The same in a view over a change stream, which the combiner applies
#      the change stream's events to: that view is left alone, its event
#      held back, not the view whose change stream it reads (another view
#      of the change stream gets the event); fixed, it gets its event.
#   7. Statistics on a state table whose expression is slow (a superuser's:
#      owners may not create them): the combiner's ANALYZE of the table
#      runs it within ten times the view's time limit, cut and logged, and
#      the other views are merged after it.  (ANALYZE had no limit: the
#      combiner, and every merge, waited the 150 s it would take.)
source "$(dirname "$0")/lib.sh"
BURNERS=${BURNERS:-4}

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.workers = 1" "stream_ext.view_time_limit = 1s"
fresh_db t_starved
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE hot (x int) SERVER stream_ext;
-- about a millisecond of CPU per event; x < 0: spin for -x seconds
CREATE FUNCTION public.burn(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  s bigint := 0;
  t timestamptz := clock_timestamp();
BEGIN
  IF x < 0 THEN
    WHILE clock_timestamp() < t + make_interval(secs => -x) LOOP s := s + 1; END LOOP;
    RETURN 0;
  END IF;
  FOR i IN 1..15000 LOOP s := s + i; END LOOP;
  RETURN x;
END $$;
CREATE VIEW hot_sum WITH (continuous) AS SELECT count(*) AS n, sum(public.burn(x)) AS s FROM hot;
CREATE VIEW hot_all WITH (continuous) AS SELECT count(*) AS n FROM hot;
SQL

ms_now() { date +%s%3N; }
insert_ms() {  # insert_ms N: insert events 1..N in one transaction; prints the ms it took
	local t=$(ms_now)
	q "INSERT INTO hot SELECT g FROM generate_series(1, $1) g" >/dev/null
	echo $(($(ms_now) - t))
}

# calibrate: a batch of about 300 ms of the view's time, not starved
insert_ms 50 >/dev/null
t100=$(insert_ms 100)
n=$((100 * 300 / (t100 > 0 ? t100 : 1)))
[ "$n" -ge 20 ] || fail "100 events took ${t100} ms: too slow a host for this test"
say "100 events took ${t100} ms not starved: a batch of $n events"
before=$(q "SELECT n FROM hot_sum")

# --- 1. starved
worker=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'stream_ext worker' AND datname = current_database()")
[ -n "$worker" ] || fail "no batch worker found"
# with autogroups (Debian's kernel) weights count between sessions, and
# each server process has its own: the worker's gets the lowest, and within
# it the worker is SCHED_IDLE
[ -w "/proc/$worker/autogroup" ] && echo 19 > "/proc/$worker/autogroup"
chrt -i -p 0 "$worker" || fail "could not make the worker SCHED_IDLE"
for _ in $(seq 1 "$BURNERS"); do
	sh -c 'while :; do :; done' &
	_bg_pids+=($!)
done
sleep 0.5
took=$(insert_ms "$n")
for p in "${_bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
_bg_pids=()
[ -w "/proc/$worker/autogroup" ] && echo 0 > "/proc/$worker/autogroup"
chrt -o -p 0 "$worker" || true
say "starved: the batch of $n events took ${took} ms"
[ "$took" -gt 1500 ] || fail "the worker was not starved past the limit (${took} ms): the test proves nothing"
expect "SELECT n - $before FROM hot_sum" "$n" "the starved view counts every event"
expect "SELECT n - $before FROM hot_all" "$n" "the other view counts every event"
expect "SELECT count(*) FROM stream_ext.view_errors" 0 "nothing recorded for a starved run"
say "ok: starved ${took} ms for a batch of ~300 ms, every event counted, no error"

# --- 2. a real CPU hog is still cut at the limit
before=$(q "SELECT n FROM hot_sum")
t=$(ms_now)
q "INSERT INTO hot VALUES (1), (-5), (2)" >/dev/null
took=$(($(ms_now) - t))
expect "SELECT n - $before FROM hot_sum" 2 "the spinning event alone is set aside"
expect "SELECT sqlstate || ' ' || (event LIKE '(-5,%') FROM stream_ext.view_errors WHERE name = 'hot_sum'::regclass" \
	"54000 true" "the spinning event is recorded as over the limit"
say "ok: an event spinning 5 s on the CPU was cut (its transaction took ${took} ms), the others counted"

# --- 3. code that catches the cancel, every time
run_sql -c "$(stubborn_function public.stubborn 'x int' int 'x = 13' x)"
run_sql <<'SQL'
CREATE FOREIGN TABLE stubborn (x int) SERVER stream_ext;
CREATE VIEW stubborn_sum WITH (continuous) AS SELECT count(*) AS n, sum(public.stubborn(x)) AS s FROM stubborn;
CREATE VIEW stubborn_max WITH (continuous) AS SELECT count(*) AS n, max(public.stubborn(x)) AS m FROM stubborn;
CREATE VIEW stubborn_all WITH (continuous) AS SELECT count(*) AS n, sum(x) AS s FROM stubborn;
SQL
log0=$(log_offset)
t=$(ms_now)
out=$(psql -X -At -v ON_ERROR_STOP=1 -c "SET statement_timeout = '60s'" \
	-c "INSERT INTO stubborn VALUES (1), (13), (2)" 2>&1) || fail "the writer's INSERT failed: $out"
took=$(($(ms_now) - t))
say "the INSERT of an event two views loop on returned after ${took} ms"
expect "SELECT n || ':' || s FROM stubborn_all" "3:16" "the third view of the stream counts the batch"
expect "SELECT (SELECT count(*) FROM stubborn_sum WHERE n > 0) + (SELECT count(*) FROM stubborn_max WHERE n > 0)" 0 \
	"the views that ignored the cancel skipped the batch"
expect "SELECT string_agg(name::text || ' ' || sqlstate || ' ' || (message LIKE '%catches the cancel%skipped its 3 events%') || ' ' || (event IS NULL), ', ' ORDER BY name::text)
          FROM stream_ext.view_errors WHERE name IN ('stubborn_sum'::regclass, 'stubborn_max'::regclass)" \
	"stubborn_max 54000 true true, stubborn_sum 54000 true true" "the skip is recorded for each"
[ "$(log_since "$log0" | grep -c "skips continuous view")" -ge 2 ] || fail "the restarted worker did not log the skips"
say "ok: the server log says why"
hot_before=$(q "SELECT n FROM hot_all")
q "INSERT INTO stubborn VALUES (5)" >/dev/null
q "INSERT INTO hot VALUES (7)" >/dev/null
expect "SELECT n || ':' || s FROM stubborn_sum" "1:5" "the views count the events after"
expect "SELECT n || ':' || m FROM stubborn_max" "1:5" "both"
expect "SELECT n || ':' || s FROM stubborn_all" "4:21" "and the other view"
expect "SELECT n - $hot_before FROM hot_all" 1 "another stream's view goes on"

# --- 4. no parallel plans in a view's run: how many processes scan a table
run_sql <<'SQL'
CREATE TABLE public.big AS SELECT g FROM generate_series(1, 200000) g;
ANALYZE public.big;
CREATE FUNCTION public.my_pid(x int) RETURNS int LANGUAGE plpgsql STABLE PARALLEL SAFE
  AS $$ BEGIN RETURN pg_backend_pid(); END $$;
CREATE FUNCTION public.scan_pids() RETURNS bigint LANGUAGE plpgsql STABLE
  SET max_parallel_workers_per_gather = 2 SET parallel_setup_cost = 0
  SET parallel_tuple_cost = 0 SET min_parallel_table_scan_size = 0
  AS $$ BEGIN RETURN (SELECT count(*) FROM (SELECT public.my_pid(g) FROM public.big GROUP BY 1) s); END $$;
CREATE VIEW scanners WITH (continuous) AS SELECT max(public.scan_pids()) AS pids FROM stubborn;
SQL
pids=$(q "SELECT public.scan_pids()")
[ "$pids" -gt 1 ] || fail "a session scanned the table in $pids process(es), not in parallel: the test proves nothing"
say "a session scans the table in $pids processes"
q "INSERT INTO stubborn VALUES (6)" >/dev/null
expect "SELECT pids FROM scanners" 1 "a view's run scans it in one, whatever its function sets"
# --- 5. a combine function that catches the cancel, every time
# loops in the combiner only: reads combine the deltas they count too
run_sql -c "$(stubborn_function public.stubborn_combine 'a int8, b int8' int8 \
	"(a = 13 OR b = 13) AND (SELECT application_name FROM pg_stat_activity
	  WHERE pid = pg_backend_pid()) = 'stream_ext combiner'" 'a + b')"
run_sql <<'SQL'
CREATE AGGREGATE public.stubborn_total(int8) (sfunc = int8pl, stype = int8,
  combinefunc = public.stubborn_combine, initcond = '0');
CREATE FOREIGN TABLE merged (x int8) SERVER stream_ext;
CREATE VIEW merged_total WITH (continuous) AS SELECT count(*) AS n, public.stubborn_total(x) AS s FROM merged;
CREATE FOREIGN TABLE other (x int) SERVER stream_ext;
CREATE VIEW other_count WITH (continuous) AS SELECT count(*) AS n FROM other;
SQL
merged_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'merged_total'::regclass")
other_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'other_count'::regclass")
q "INSERT INTO merged VALUES (1), (2)" >/dev/null
wait_until 10 "the view's first events are merged" "SELECT count(*) = 0 FROM $merged_delta"
combiner=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'stream_ext combiner'")
log0=$(log_offset)
q "INSERT INTO merged VALUES (13)" >/dev/null
wait_until 30 "the combiner ended and started again" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'stream_ext combiner' AND pid <> $combiner"
say "ok: the combiner was ended and started again"
q "INSERT INTO other VALUES (1)" >/dev/null
wait_until 10 "another view is merged" "SELECT count(*) = 0 FROM $other_delta"
say "ok: another view is merged"
expect "SELECT n || ':' || s FROM merged_total" "3:16" "the view's reads count the event whose merge loops"
expect "SELECT count(*) FROM $merged_delta" 1 "its delta waits"
expect "SELECT count(*) FILTER (WHERE sqlstate = '54000' AND message LIKE '%catches the cancel%combiner was ended%alone for 10 s%' AND event IS NULL)
          FROM stream_ext.view_errors WHERE name = 'merged_total'::regclass" 1 "the pause is recorded, once"
grep -q "leaves continuous view" <<< "$(log_since "$log0")" || fail "the new combiner did not log the pause"
say "ok: the server log says why"
run_sql -c "CREATE OR REPLACE FUNCTION public.stubborn_combine(a int8, b int8) RETURNS int8
  LANGUAGE sql IMMUTABLE AS 'SELECT a + b'"
wait_until 60 "the view is merged once its function is fixed and its pause is over" \
	"SELECT count(*) = 0 FROM $merged_delta"
say "ok: merged once its function is fixed and the pause is over"
expect "SELECT n || ':' || s FROM merged_total" "3:16" "the view counts every event once"

# --- 6. a view over a change stream whose code catches the cancel: the combiner
# applies the change stream's events to it
run_sql <<'SQL'
SELECT stream_ext.create_change_stream('other_count', 'other_changes');
CREATE VIEW watch_stubborn WITH (continuous) AS
  SELECT count(*) AS n, max(public.stubborn((new).n::int)) AS m FROM other_changes;
CREATE VIEW watch_all WITH (continuous) AS SELECT count(*) AS n, max((new).n) AS m FROM other_changes;
SQL
combiner=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'stream_ext combiner'")
q "INSERT INTO other SELECT g FROM generate_series(1, 12) g" >/dev/null   # other_count: 1 -> 13
wait_until 30 "the combiner ended and started again" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'stream_ext combiner' AND pid <> $combiner"
wait_until 30 "the change stream's other view gets the change" "SELECT m = 13 FROM watch_all"
say "ok: the combiner was ended, the change stream goes on"
expect "SELECT n FROM watch_stubborn" 0 "the looping view's event waits"
expect "SELECT count(*) FILTER (WHERE sqlstate = '54000' AND message LIKE '%combiner was ended%alone for 10 s%')
          FROM stream_ext.view_errors WHERE name = 'watch_stubborn'::regclass" 1 "its pause is recorded, for it"
expect "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'other_count'::regclass" 0 \
	"nothing recorded for the view whose change stream it reads"
run_sql -c "CREATE OR REPLACE FUNCTION public.stubborn(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x'"
wait_until 60 "the held change applied once the function is fixed and the pause is over" \
	"SELECT n = 1 AND m = 13 FROM watch_stubborn"
say "ok: the view gets its event once its function is fixed and the pause is over"

# --- 7. statistics whose expression is slow: the combiner's ANALYZE runs it
run_sql <<'SQL'
CREATE FUNCTION public.slow_stat(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN PERFORM pg_sleep(0.1); RETURN x; END $f$;
CREATE FOREIGN TABLE analyzed (k int) SERVER stream_ext;
CREATE VIEW analyzed_count WITH (continuous) AS SELECT k, count(*) AS n FROM analyzed GROUP BY k;
SQL
analyzed_state=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'analyzed_count'::regclass")
analyzed_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'analyzed_count'::regclass")
run_sql -c "CREATE STATISTICS public.slow_stats ON (public.slow_stat(k)), k FROM $analyzed_state"
log0=$(log_offset)
q "INSERT INTO analyzed SELECT g FROM generate_series(1, 1500) g" >/dev/null   # 1,000 merged rows: ANALYZE
wait_until 10 "the view's events are merged" "SELECT count(*) = 0 FROM $analyzed_delta"
q "INSERT INTO other VALUES (1)" >/dev/null
wait_until 30 "another view is merged while the statistics' expression would take 150 s" \
	"SELECT count(*) = 0 FROM $other_delta"
say "ok: another view is merged"
for i in $(seq 50); do
	grep -q 'continuous view "public.analyzed_count" took longer than 10 times stream_ext.view_time_limit' <<< "$(log_since "$log0")" && break
	sleep 0.2
done
grep -q 'continuous view "public.analyzed_count" took longer than 10 times stream_ext.view_time_limit' <<< "$(log_since "$log0")" ||
	fail "the combiner did not log the cut ANALYZE"
say "ok: the ANALYZE was cut at ten times the limit, and logged"
expect "SELECT count(*) FROM analyzed_count" 1500 "the view counts its events"
say "PASS ($((SECONDS - t0))s)"
