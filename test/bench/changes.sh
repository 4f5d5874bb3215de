#!/usr/bin/env bash
# Change stream and NOTIFY benchmarks of stream_ext (issue 15, (l)): one run,
# one throwaway server, baselines in the same run, ratios printed.
#
#   test/bench/changes.sh                       # ~4 minutes
#   REPS=1 EVENTS=300000 test/bench/changes.sh  # quick smoke run
#
# Events: core.sh's (1000 urls, random user ids and latencies, two hours of
# timestamps), EVENTS of them in a CSV file, loaded by server-side COPY;
# rates are the median of REPS interleaved runs.
#   (l1) the core view (url, count(*), sum, avg, max(ts) GROUP BY url) with a
#        change stream and an alert view over it (a view that keeps the rows
#        of groups crossing a count of 1000, WHERE on old and new), timed from
#        the COPY's start until the combiner merged every delta and emitted
#        every change, and the alerts are in their view; baseline: the same
#        view without a change stream, timed until every delta is merged.
#        Also both rates until the COPY returned.  Target: >= 0.7x.
#   (l2) commit-to-NOTIFY latency at 50,000 events/s: a psycopg2 writer
#        commits 100 transactions a second of 500 events, one of them a
#        marker that a view with notify passes; a psycopg2 listener notes
#        when each marker's notification arrives (test/bench/notify_latency.py).
#        Target: p99 under 100 ms.
# The machine may be shared: the figures are indicative.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-2000000}
REPS=${REPS:-3}
NOTIFY_SECONDS=${NOTIFY_SECONDS:-20}
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'")
CMDLINE="test/bench/changes.sh"
[ "$EVENTS" != 2000000 ] && CMDLINE="EVENTS=$EVENTS $CMDLINE"
[ "$REPS" != 3 ] && CMDLINE="REPS=$REPS $CMDLINE"

source "$HERE/lib.sh"
start_bench changes

log "server on port $PGPORT in $DIR; creating schema"
q <<'SQL'
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE clicks_a (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_b (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW view_a WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM clicks_a GROUP BY url;
CREATE VIEW view_b WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM clicks_b GROUP BY url;
SELECT stream_ext.create_change_stream('view_b', 'b_changes');
CREATE VIEW b_alerts WITH (continuous) AS
  SELECT (new).url, (new).count, arrival_timestamp AS at FROM b_changes
  WHERE (new).count >= 1000 AND coalesce((old).count, 0) < 1000;
CREATE FOREIGN TABLE clicks_n (url text, user_id bigint, latency float8, ts timestamptz, note text)
  SERVER stream_ext;
CREATE VIEW n_count WITH (continuous) AS SELECT url, count(*) FROM clicks_n GROUP BY url;
CREATE VIEW n_markers WITH (continuous, notify = 'markers', ttl = '1 hour', ttl_column = 'ts') AS
  SELECT note, ts FROM clicks_n WHERE note IS NOT NULL;
SQL
write_core_events
start_workers clicks_a view_a
start_workers clicks_b view_b

now_ms() { date +%s%3N; }
# deltas of every view, and groups the change stream has still to emit
PENDING_SQL="SELECT $(q -c "SELECT string_agg(format('(SELECT count(*) FROM %s)', delta_table), ' + ') FROM stream_ext_internal.continuous_views")
               + (SELECT count(*) FROM stream_ext_internal.changed_$(q -c "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'view_b'::regclass"))"
pending() { q -c "$PENDING_SQL"; }
until_done() { while [ "$(pending)" != 0 ]; do sleep 0.02; done; now_ms; }
prepare() {
	q -c "SELECT stream_ext.truncate_continuous_view('$1')" >/dev/null
	quiesce
	q -c "CHECKPOINT"
}

declare -a A_DONE A_ACK B_DONE B_ACK
for rep in $(seq 1 "$REPS"); do
	prepare view_a
	t0=$(now_ms); ms=$(copy_ms clicks_a "$CSV"); t1=$(until_done)
	A_ACK+=("$(rate_per_s "$ms" "$EVENTS")"); A_DONE+=("$(rate_per_s $((t1 - t0)) "$EVENTS")")
	log "rep $rep: without a change stream $(fmt "${A_DONE[-1]}") events/s merged (COPY returned at $(fmt "${A_ACK[-1]}"))"

	prepare view_b
	q -c "SELECT stream_ext.truncate_continuous_view('b_alerts')" >/dev/null
	t0=$(now_ms); ms=$(copy_ms clicks_b "$CSV"); t1=$(until_done)
	B_ACK+=("$(rate_per_s "$ms" "$EVENTS")"); B_DONE+=("$(rate_per_s $((t1 - t0)) "$EVENTS")")
	log "rep $rep: with a change stream $(fmt "${B_DONE[-1]}") events/s merged and emitted (COPY returned at $(fmt "${B_ACK[-1]}"))"
	check "$(q -c "SELECT count(*) FROM b_alerts")" "$(q -c "SELECT count(*) FROM view_b WHERE count >= 1000")" "alerts of rep $rep"
done
check "$(q -c "SELECT count(*) FROM stream_ext_internal.emitted_$(q -c "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'view_b'::regclass") e JOIN view_b v ON (e.last).url = v.url AND (e.last).count = v.count")" 1000 "emitted rows equal to the view"

log "commit-to-NOTIFY latency at 50,000 events/s for ${NOTIFY_SECONDS}s"
read -r p50 p99 pmax got sent achieved < <(/usr/bin/python3 "$HERE/notify_latency.py" clicks_n markers 50000 "$NOTIFY_SECONDS")
check "$got" "$sent" "markers notified"

m() { printf '%s\n' "$@" | median; }
ad=$(m "${A_DONE[@]}"); aa=$(m "${A_ACK[@]}"); bd=$(m "${B_DONE[@]}"); ba=$(m "${B_ACK[@]}")
echo
echo "## change streams and NOTIFY ($CMDLINE; $(nproc) CPUs, load at start $LOAD_START; indicative)"
echo
echo "| case | figure | baseline | ratio | target | met |"
echo "|---|---:|---:|---:|---:|---|"
echo "| (l1) COPY into a view with a change stream and an alert view, until merged and emitted | $(fmt "$bd") events/s | $(fmt "$ad") (no change stream, until merged) | $(ratio "$bd" "$ad") | 0.7 | $(yesno ge "$(ratio "$bd" "$ad")" 0.7) |"
echo "| (l1) same, until the COPY returned | $(fmt "$ba") events/s | $(fmt "$aa") | $(ratio "$ba" "$aa") | - | - |"
echo "| (l2) commit-to-NOTIFY at $(fmt "$achieved") events/s: p50 / p99 / max | $p50 / $p99 / $pmax ms | - | - | p99 < 100 ms | $(yesno ge 100 "$p99") |"
echo
echo "per rep (merged): without $(printf '%s ' "${A_DONE[@]}"); with $(printf '%s ' "${B_DONE[@]}")"
echo "checks: ${CHECKS:-all ok}"
