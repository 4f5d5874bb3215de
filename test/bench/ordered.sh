#!/usr/bin/env bash
# Benchmarks of aggregates kept as their inputs (DISTINCT, percentiles): one
# run, one throwaway server, one summary, each case with its baseline in the
# same run.
#
#   test/bench/ordered.sh                        # EVENTS=2000000, ~5 minutes
#   REPS=1 EVENTS=200000 READS=10 test/bench/ordered.sh   # smoke run
#
# Events as in core.sh: (url, user_id, latency, ts), 1000 urls, user_id <
# 100000, float latencies in [0, 200) (nearly every (url, user_id) and (url,
# latency) pair distinct), times over 100 minutes.
#   (f) COPY of EVENTS events into the stream of
#         SELECT url, count(DISTINCT user_id), percentile_cont(0.99) WITHIN
#         GROUP (ORDER BY latency) FROM clicks GROUP BY url
#       (sync mode; the COPY's commit means the events are applied) against
#       COPY into a plain logged table; median of REPS interleaved runs, each
#       into an emptied view and table, after the combiner merged every delta.
#       Target >= 0.5x.
#   (g) READS reads of that view (1000 groups) against READS_BATCH runs of the
#       same query over the plain table: p99 of each (client side, pgbench).
#       Target <= 0.1x.  Then the DISTINCT column alone on a tumbling view
#       (date_bin('1 minute', ts), url: 100,000 groups) against a count(*)
#       view of the same groups: p99 of READS reads each.  Target <= 2x.
# The machine is shared: the figures are indicative only.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-2000000}
REPS=${REPS:-3}
READS=${READS:-20}
READS_BATCH=${READS_BATCH:-5}
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'" "stream_ext.read_time = '2024-01-01 00:00:00+00'")

source "$HERE/lib.sh"
start_bench ordered

q <<'SQL'
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW f WITH (continuous) AS
  SELECT url, count(DISTINCT user_id) AS users, percentile_cont(0.99) WITHIN GROUP (ORDER BY latency) AS p99
  FROM clicks GROUP BY url;
CREATE FOREIGN TABLE clicks_t (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW tum_distinct WITH (continuous) AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, url, count(DISTINCT user_id) AS users
  FROM clicks_t GROUP BY 1, 2;
CREATE VIEW tum_count WITH (continuous) AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, url, count(*) AS n
  FROM clicks_t GROUP BY 1, 2;
CREATE TABLE plain_l (url text, user_id bigint, latency float8, ts timestamptz);
SQL

log "generating $EVENTS events"
q <<SQL
SELECT setseed(0.42);
COPY (SELECT '/page/' || floor(random() * 1000)::int, floor(random() * 100000)::bigint, random() * 200,
             timestamptz '2024-01-01 00:00:00+00' + (g - 1) * (interval '100 minutes' / $EVENTS)
      FROM generate_series(1, $EVENTS) g) TO '$CSV' (FORMAT csv);
SQL

log "(f) COPY $EVENTS events: view f vs a plain logged table, $REPS reps (interleaved)"
F_MS=(); P_MS=()
for r in $(seq 1 "$REPS"); do
	q -c "SELECT stream_ext.truncate_continuous_view('f')" -c "TRUNCATE plain_l" >/dev/null
	quiesce; q -c "CHECKPOINT"
	F_MS+=("$(copy_ms clicks "$CSV")")
	quiesce; q -c "CHECKPOINT"
	P_MS+=("$(copy_ms plain_l "$CSV")")
	log "  rep $r: view ${F_MS[-1]} ms, plain ${P_MS[-1]} ms"
done
F_RATE=$(printf '%s\n' "${F_MS[@]}" | median | awk -v n="$EVENTS" '{printf "%.0f", n / ($1 / 1000)}')
P_RATE=$(printf '%s\n' "${P_MS[@]}" | median | awk -v n="$EVENTS" '{printf "%.0f", n / ($1 / 1000)}')
quiesce
[ "$(q -c "SELECT sum(users) = (SELECT sum(c) FROM (SELECT count(DISTINCT user_id) AS c FROM plain_l GROUP BY url) x) FROM f")" = t ] ||
	die "view f's distinct counts differ from the plain table's"

# p99 of n runs of SQL, client side, in ms; the median goes to stderr's log
# line (context for a p99 on a shared machine)
p99_ms() {
	local times
	times=$(read_ms_list "$1" "$2")
	log "  '$2': median $(median <<< "$times") ms"
	p99 <<< "$times"
}
log "(g) reads of view f ($READS) and of the batch query over plain_l ($READS_BATCH)"
G_VIEW=$(p99_ms "$READS" "SELECT * FROM f;")
G_BATCH=$(p99_ms "$READS_BATCH" "SELECT url, count(DISTINCT user_id), percentile_cont(0.99) WITHIN GROUP (ORDER BY latency) FROM plain_l GROUP BY url;")

log "(g') COPY into the tumbling views, then $READS reads of each"
q -c "COPY clicks_t FROM '$CSV' (FORMAT csv)" >/dev/null
quiesce
NG=$(q -c "SELECT count(*) FROM tum_count")
G_DIST=$(p99_ms "$READS" "SELECT * FROM tum_distinct;")
G_COUNT=$(p99_ms "$READS" "SELECT * FROM tum_count;")

cat <<EOF

stream_ext ordered aggregates, $(date -u +%F), $EVENTS events, reps $REPS (shared machine: indicative only)
| case | stream_ext | baseline | ratio | target |
|---|---|---|---|---|
| (f) COPY into count(DISTINCT) + percentile_cont view vs plain logged table | $(fmt "$F_RATE") ev/s | $(fmt "$P_RATE") ev/s | $(ratio "$F_RATE" "$P_RATE")x | >= 0.5x |
| (g) read of that view (1000 groups) vs batch query, p99 | $G_VIEW ms | $G_BATCH ms | $(ratio "$G_VIEW" "$G_BATCH")x | <= 0.1x |
| (g) tumbling count(DISTINCT) vs count(*) read ($(fmt "$NG") groups), p99 | $G_DIST ms | $G_COUNT ms | $(ratio "$G_DIST" "$G_COUNT")x | <= 2x |
EOF
