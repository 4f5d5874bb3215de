#!/usr/bin/env bash
# Window benchmarks of stream_ext: one run, one throwaway server, one summary table.
#
#   test/bench/windows.sh                   # everything, ~3 minutes
#   REPS=1 EVENTS=500000 test/bench/windows.sh   # quick smoke run
#   PERF=1 test/bench/windows.sh            # also profile the sliding reads and the COPYs
#
# Cases (same server settings and method as test/bench/core.sh: server-side COPY
# FROM a CSV file, sync mode, each timed COPY starts once the combiner merged
# every delta; rates are the median of REPS interleaved runs, each into a view
# emptied by stream_ext.truncate_continuous_view):
#   (1) the core single view: url, count(*), sum(latency), avg(latency), max(ts)
#       GROUP BY url (1000 urls), COPY of EVENTS events
#   (2) tumbling per-minute view with event time: date_bin('1 minute', ts) AS
#       minute, url, count(*), avg(latency); the same EVENTS events span 100
#       minutes, so 100 x 1000 = 100,000 groups; target >= 0.7 x (1); state
#       table size and rows after the load
#   (3) sliding window '5 minutes' step '5 seconds', 1000 urls: SLIDE_EVENTS
#       events over one 5-minute window fill all 60 steps; then READS reads of
#       SELECT * FROM the view at a fixed read_time, p50/p99 latency (client
#       side, pgbench's per-read log), once right after the fill and once
#       the combiner has vacuumed and analyzed the state table (the steady state
#       of a stream that is read while it runs); target p99 < 20 ms
#   (4) hopping hop_size '10 minutes', hop_slide '1 minute' over the events of
#       (2): COPY rate; target >= 0.7 x (2)
#
# Event-time views use allowed_lateness = LATENESS (the default, '1 minute'); a
# COPY has no late events however its batches are spread over the workers, and
# the checks line reports any (before commit 0658a24 a spilled COPY lost a few
# percent of its events as late).
#
# Knobs (environment): EVENTS (2000000), REPS (3), SLIDE_EVENTS (600000),
# READS (50), LATENESS ('1 minute'), PERF (0; 1 = perf record the reading backend
# during 3 x READS untimed reads of (3), and the batch workers during one extra
# untimed COPY into (1), (2) and (4); reports under PERF_OUT, default
# /tmp/stream-bench-windows-perf).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-2000000}
REPS=${REPS:-3}
SLIDE_EVENTS=${SLIDE_EVENTS:-600000}
READS=${READS:-50}
LATENESS=${LATENESS:-1 minute}
PERF=${PERF:-0}
PERF_OUT=${PERF_OUT:-/tmp/stream-bench-windows-perf}
# core.sh's settings; and a fixed server-wide read_time, so that the background
# reaper keeps the sliding window's steps (it would expire 2024 at once)
READ_TIME="2024-01-01 00:05:00+00"
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'" "stream_ext.read_time = '$READ_TIME'")

CMDLINE="test/bench/windows.sh"
envs=""
[ "$EVENTS" != 2000000 ] && envs+="EVENTS=$EVENTS "
[ "$REPS" != 3 ] && envs+="REPS=$REPS "
[ "$SLIDE_EVENTS" != 600000 ] && envs+="SLIDE_EVENTS=$SLIDE_EVENTS "
[ "$READS" != 50 ] && envs+="READS=$READS "
[ "$LATENESS" != "1 minute" ] && envs+="LATENESS='$LATENESS' "
[ "$PERF" != 0 ] && envs+="PERF=$PERF "
CMDLINE="${envs}${CMDLINE}"

source "$HERE/lib.sh"
start_bench windows
SCSV=$DIR/sliding.csv

mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1048576}'; }

log "server on port $PGPORT in $DIR; creating schema"
q -v lateness="$LATENESS" <<'SQL'
CREATE EXTENSION stream_ext;
-- one stream per view, so that each COPY feeds exactly one view
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_tum (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_hop (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_sl (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW core_view WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM clicks GROUP BY url;
CREATE VIEW per_minute WITH (continuous, time_column = 'ts', allowed_lateness = :'lateness') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, url, count(*), avg(latency)
  FROM clicks_tum GROUP BY 1, 2;
CREATE VIEW hop10 WITH (continuous, time_column = 'ts', allowed_lateness = :'lateness',
                       hop_size = '10 minutes', hop_slide = '1 minute') AS
  SELECT url, count(*), avg(latency) FROM clicks_hop GROUP BY url;
CREATE VIEW slide5 WITH (continuous, time_column = 'ts', allowed_lateness = :'lateness',
                        sliding_window = '5 minutes', step = '5 seconds') AS
  SELECT url, count(*), avg(latency), max(latency) FROM clicks_sl GROUP BY url;
SQL

log "generating $EVENTS events over 100 minutes and $SLIDE_EVENTS over 5 minutes"
# (2)'s events: 1000 random urls, times rising over 2024-01-01 00:00-01:40
q <<SQL
SELECT setseed(0.42);
COPY (SELECT '/page/' || floor(random() * 1000)::int,
             floor(random() * 100000)::bigint,
             round((random() * 200)::numeric, 2)::float8,
             timestamptz '2024-01-01 00:00:00+00' + (g - 1) * (interval '100 minutes' / $EVENTS)
      FROM generate_series(1, $EVENTS) g) TO '$CSV' (FORMAT csv);
SELECT setseed(0.43);
COPY (SELECT '/page/' || floor(random() * 1000)::int,
             floor(random() * 100000)::bigint,
             round((random() * 200)::numeric, 2)::float8,
             timestamptz '2024-01-01 00:00:00+00' + (g - 1) * (interval '5 minutes' / $SLIDE_EVENTS)
      FROM generate_series(1, $SLIDE_EVENTS) g) TO '$SCSV' (FORMAT csv);
SQL
[ "$(wc -l < "$CSV")" -eq "$EVENTS" ] || die "CSV has the wrong number of lines"
q -c "CREATE UNLOGGED TABLE ref (url text, user_id bigint, latency float8, ts timestamptz)" \
  -c "COPY ref FROM '$CSV' (FORMAT csv)"
NGROUPS=$(q -c "SELECT count(*) FROM (SELECT DISTINCT date_bin('1 minute', ts, '2000-01-01'), url FROM ref) x")
log "  $(fmt "$NGROUPS") distinct (minute, url) groups"

state_of() { q -c "SELECT state_table FROM stream_ext.continuous_views WHERE name = '$1'::regclass"; }
start_workers clicks core_view

declare -A RATES CPU

# ---------------------------------------------------------------------------
log "(1)(2)(4) COPY $EVENTS events: core view, per-minute tumbling, hopping 10/1; $REPS reps (interleaved)"
for i in $(seq "$REPS"); do
	view_copy core clicks core_view
	view_copy tumbling clicks_tum per_minute
	view_copy hopping clicks_hop hop10
done
quiesce
check "$(q -c "SELECT sum(count) || '/' || count(*) FROM core_view")" "$EVENTS/1000" "core_view events/urls"
check "$(q -c "SELECT sum(count) || '/' || count(*) FROM per_minute")" "$EVENTS/$NGROUPS" "per_minute events/groups"
check "$(q -c "SELECT count(*) FROM (SELECT minute, url, count FROM per_minute EXCEPT
                SELECT date_bin('1 minute', ts, '2000-01-01'), url, count(*) FROM ref GROUP BY 1, 2) x")" 0 "per_minute rows differing from ref"
check "$(q -c "SELECT sum(count) FROM hop10")" "$((EVENTS * 10))" "hop10 sum of window counts"
check "$(q -c "SELECT sum(late_events) FROM stream_ext.view_stats")" 0 "late events"
TUM_STATE=$(state_of per_minute)
TUM_SIZE=$(q -c "SELECT pg_total_relation_size('$TUM_STATE')")
TUM_ROWS=$(q -c "SELECT count(*) FROM $TUM_STATE")
HOP_STATE=$(state_of hop10)
HOP_SIZE=$(q -c "SELECT pg_total_relation_size('$HOP_STATE')")
HOP_ROWS=$(q -c "SELECT count(*) FROM $HOP_STATE")
CORE_STATE=$(state_of core_view)
CORE_SIZE=$(q -c "SELECT pg_total_relation_size('$CORE_STATE')")
R_CORE=$(echo ${RATES[core]} | tr ' ' '\n' | median)
R_TUM=$(echo ${RATES[tumbling]} | tr ' ' '\n' | median)
R_HOP=$(echo ${RATES[hopping]} | tr ' ' '\n' | median)

# ---------------------------------------------------------------------------
log "(3) sliding window 5 minutes / 5 seconds: COPY $SLIDE_EVENTS events, then $READS reads at read_time $READ_TIME"
quiesce
ms=$(copy_ms clicks_sl "$SCSV")
R_SL=$(rate_per_s "$ms" "$SLIDE_EVENTS")
log "  fill: $(fmt "$R_SL") events/s ($ms ms)"
quiesce
SL_STATE=$(state_of slide5)
SL_ROWS=$(q -c "SELECT count(*) FROM $SL_STATE")
SL_STEPS=$(q -c "SELECT count(DISTINCT _step) FROM $SL_STATE WHERE _level = 0")  # step rows (blocks also have a _step)
SL_SIZE=$(q -c "SELECT pg_total_relation_size('$SL_STATE')")
check "$(q -c "SET stream_ext.read_time = '$READ_TIME'" -c "SELECT sum(count) || '/' || count(*) FROM slide5")" "$SLIDE_EVENTS/1000" "slide5 events/urls at $READ_TIME"
check "$SL_STEPS" 60 "slide5 steps in the state table"
# READS reads of the whole view in one session, rows discarded; client-side times
# (pgbench: one connection, the latency of each read as its client sees it, without
# psql's formatting of the 1000 rows, which adds about 3 ms)
timed_reads() {
	local d
	d=$(mktemp -d "$DIR/reads.XXXXXX")
	echo 'SELECT * FROM slide5;' > "$d/read.sql"
	chmod -R a+rwx "$d"
	(cd "$d" && PGOPTIONS="-c stream_ext.read_time=$(printf %q "$READ_TIME")" \
		pgbench -n -c 1 -t 1 -f read.sql >/dev/null 2>&1 &&  # warm-up connection
		PGOPTIONS="-c stream_ext.read_time=$(printf %q "$READ_TIME")" \
		pgbench -n -c 1 -t "$READS" -f read.sql -l --log-prefix=reads >/dev/null 2>&1) ||
		die "pgbench reads of slide5 failed"
	awk '{printf "%.3f\n", $3 / 1000}' "$d"/reads.*
}
pct() { sort -g <<< "$READ_TIMES" | awk -v p="$1" '{a[NR]=$1} END {i = int(p * NR + 0.999999); if (i < 1) i = 1; printf "%.1f", a[i]}'; }
# right after the fill: the state rows still carry the dead versions of every merge
FILLED_AT=$(q -c "SELECT now()")
READ_TIMES=$(timed_reads)
check "$(wc -l <<< "$READ_TIMES")" "$READS" "timed reads right after the fill"
SL_COLD_P50=$(pct 0.50); SL_COLD_P99=$(pct 0.99)
log "  reads right after the fill: p50 $SL_COLD_P50 ms, p99 $SL_COLD_P99 ms"
# steady state: once the combiner vacuumed and analyzed the state table after the fill
for _ in $(seq 1 150); do
	[ "$(q -c "SELECT coalesce(last_vacuum > '$FILLED_AT', false) FROM pg_stat_all_tables WHERE relid = '$SL_STATE'::regclass")" = t ] && break
	sleep 0.2
done
READ_TIMES=$(timed_reads)
N_READS=$(wc -l <<< "$READ_TIMES")
check "$N_READS" "$READS" "timed reads"
SL_P50=$(pct 0.50); SL_P99=$(pct 0.99); SL_MAX=$(pct 1)
log "  reads once the combiner vacuumed the state: p50 $SL_P50 ms, p99 $SL_P99 ms, max $SL_MAX ms ($N_READS reads)"
PLAN=$(q -c "SET stream_ext.read_time = '$READ_TIME'" -c "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) SELECT * FROM slide5")
SL_PLAN=$(sed -n 's/^Execution Time: //p' <<< "$PLAN")
# the planner's choice depends on whether the state table was analyzed yet
SL_AGG=$(grep -o -m1 -E '(Hash|Group)Aggregate' <<< "$PLAN" || echo '?')
SL_SORT=$(sed -n 's/.*Sort Method: \(.*\)$/\1/p' <<< "$PLAN" | head -1)
SL_ANALYZED=$(q -c "SELECT coalesce(greatest(last_analyze, last_autoanalyze)::text, 'never') FROM pg_stat_all_tables WHERE relid = '$SL_STATE'::regclass")
log "  plan: $SL_AGG${SL_SORT:+ (sort: $SL_SORT)}, server execution $SL_PLAN; state table analyzed: $SL_ANALYZED"

# ---------------------------------------------------------------------------
# optional: perf profile of the batch workers during one extra COPY into (2) and (4)
PERF_DONE=
perf_copy() {  # perf_copy LABEL STREAM VIEW
	local wp p
	mkdir -p "$PERF_OUT"
	q -c "SELECT stream_ext.truncate_continuous_view('$3')" >/dev/null
	quiesce
	wp=$(ext_pid worker)
	perf record -q -g -o "$PERF_OUT/$1.worker.data" -p "${wp// /,}" 2>/dev/null & p=$!
	sleep 0.5
	copy_ms "$2" "$CSV" >/dev/null
	kill -INT "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	perf_reports "$1" worker
	PERF_DONE+="perf ($1): $PERF_OUT/$1.worker.{self,children}.txt; "
}
perf_read() {  # perf_read: profile the backend of a session doing READS * 3 reads of slide5
	local p bpid pidf=$DIR/read.pid ready=$DIR/read.ready job
	rm -f "$pidf" "$ready"
	{ echo "\\o $pidf"; echo "SELECT pg_backend_pid();"; echo "\\o /dev/null"
	  echo "SET stream_ext.read_time = '$READ_TIME';"
	  echo "\\! while [ ! -e $ready ]; do sleep 0.01; done"
	  for _ in $(seq $((READS * 3))); do echo 'SELECT * FROM slide5;'; done; } | q >/dev/null &
	job=$!
	for _ in $(seq 1000); do [ -s "$pidf" ] && break; sleep 0.01; done
	bpid=$(tr -dc 0-9 < "$pidf")
	perf record -q -g -o "$PERF_OUT/sliding_read.backend.data" -p "$bpid" 2>/dev/null & p=$!
	sleep 0.5
	touch "$ready"
	wait "$job"
	kill -INT "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	perf_reports sliding_read backend
	PERF_DONE+="perf (sliding read): $PERF_OUT/sliding_read.backend.{self,children}.txt; "
}
if [ "$PERF" = 1 ]; then
	command -v perf >/dev/null || die "perf not installed"
	log "perf: $((READS * 3)) more reads of slide5, and one more COPY into each of core_view, per_minute and hop10"
	mkdir -p "$PERF_OUT"
	perf_read
	perf_copy core clicks core_view
	perf_copy tumbling clicks_tum per_minute
	perf_copy hopping clicks_hop hop10
fi

# ---------------------------------------------------------------------------
TUM_RATIO=$(ratio "$R_TUM" "$R_CORE")
HOP_RATIO=$(ratio "$R_HOP" "$R_TUM")
TUM_MET=$(yesno ge "$TUM_RATIO" 0.7)
HOP_MET=$(yesno ge "$HOP_RATIO" 0.7)
SL_MET=$(yesno awk -v p="$SL_P99" 'BEGIN {exit !(p < 20)}')
EV_LABEL=$(awk -v n="$EVENTS" 'BEGIN {if (n % 1000000 == 0) printf "%dM", n / 1000000; else printf "%d", n}')
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
{
echo
echo "stream_ext window benchmark -- $(date -u +'%Y-%m-%d %H:%M UTC'), commit $commit"
echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM; $(q -c 'SELECT version()' | cut -d, -f1)"
echo "server: fsync=on, synchronous_commit=on, ${SERVER_CONF[*]}; stream_ext defaults (workers=$(q -c 'SHOW stream_ext.workers'), batch_size=$(q -c 'SHOW stream_ext.batch_size')); event-time views: allowed_lateness '$LATENESS'"
echo "data: $EVENTS events over 100 minutes, 1000 urls ($(fmt "$NGROUPS") (minute, url) groups), CSV $(du -m "$CSV" | cut -f1) MB, server-side COPY FROM file, sync mode;"
echo "      COPY rates are the median of $REPS interleaved runs, each into an emptied view (truncate_continuous_view)"
echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: $CMDLINE"
echo
printf '%-44s %16s  %-34s %-18s %s\n' case result ratio target met
printf '%-44s %16s  %-34s %-18s %s\n' "(1) COPY $EV_LABEL, core view (1000 urls)" "$(fmt "$R_CORE") ev/s" "" "" ""
printf '%-44s %16s  %-34s %-18s %s\n' "(2) COPY $EV_LABEL, tumbling per minute" "$(fmt "$R_TUM") ev/s" "${TUM_RATIO}x core view" ">= 0.7x" "$TUM_MET"
printf '%-44s %16s  %-34s\n' "    state table (groups $(fmt "$NGROUPS"))" "$(mb "$TUM_SIZE")" "$(fmt "$TUM_ROWS") rows, $(awk -v s="$TUM_SIZE" -v r="$TUM_ROWS" 'BEGIN {printf "%.0f", s / r}') bytes/row (core view: $(mb "$CORE_SIZE"))"
printf '%-44s %16s  %-34s %-18s %s\n' "(3) sliding 5 min / 5 s, 1000 urls: read" "p50 $SL_P50 ms" "p99 $SL_P99 ms, max $SL_MAX ms" "p99 < 20 ms" "$SL_MET"
printf '%-44s %16s  %-34s\n' "    read right after the fill" "p50 $SL_COLD_P50 ms" "p99 $SL_COLD_P99 ms (not yet vacuumed)"
printf '%-44s %16s  %-34s\n' "    state ($SL_STEPS steps), fill rate" "$(mb "$SL_SIZE")" "$(fmt "$SL_ROWS") rows; fill $(fmt "$R_SL") ev/s"
printf '%-44s %16s  %-34s\n' "    read plan (state analyzed: ${SL_ANALYZED%%.*})" "$SL_AGG" "server execution $SL_PLAN${SL_SORT:+; sort: $SL_SORT}"
printf '%-44s %16s  %-34s %-18s %s\n' "(4) COPY $EV_LABEL, hopping 10 min / 1 min" "$(fmt "$R_HOP") ev/s" "${HOP_RATIO}x tumbling" ">= 0.7x" "$HOP_MET"
printf '%-44s %16s  %-34s\n' "    state table" "$(mb "$HOP_SIZE")" "$(fmt "$HOP_ROWS") rows (one per (slice, url))"
echo
echo "checks: ${CHECKS:-all ok (event counts, groups, per_minute = batch query, hop10 = 10 x events, slide5 = all events in 60 steps, no late events)}"
echo "COPY runs, wall/worker CPU/combiner CPU: core ${CPU[core]}| tumbling ${CPU[tumbling]}| hopping ${CPU[hopping]}"
echo "runs (events/s): core ${RATES[core]}| tumbling ${RATES[tumbling]}| hopping ${RATES[hopping]}"
if [ -n "$PERF_DONE" ]; then echo "$PERF_DONE"; fi
} | tee "$DIR/summary.txt"
cp "$DIR/summary.txt" /tmp/stream-bench-windows-last-summary.txt 2>/dev/null || true
[ -z "$CHECKS" ] || exit 1
