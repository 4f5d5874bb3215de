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
say "PASS ($((SECONDS - t0))s)"
