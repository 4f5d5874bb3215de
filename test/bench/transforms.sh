#!/usr/bin/env bash
# Transform benchmarks of stream_ext (issue 14, (j)): one run, one throwaway
# server, baselines in the same run, ratios printed.
#
#   test/bench/transforms.sh                      # ~5 minutes
#   REPS=1 EVENTS=300000 test/bench/transforms.sh # quick smoke run
#
# Events: core.sh's (1000 urls, random user ids and latencies, two hours of
# timestamps), EVENTS of them in a CSV file, loaded by server-side COPY
# (sync mode), each timed COPY after the combiner merged every delta and a
# CHECKPOINT; rates are the median of REPS interleaved runs.
#   (j1) a transform of every event into a plain logged table
#          CREATE VIEW to_out WITH (continuous, output = 'out') AS
#            SELECT url, user_id, latency, ts FROM clicks_t
#        timed from the COPY's start until every row is in `out`: when the
#        COPY returns (the writer inserts the rows itself, src/worker/
#        writer_apply.c), or, when rows were staged by the workers instead,
#        once the combiner moved them (the COPY's time plus the wait after
#        it, polled every 50 ms); and also until the COPY returned.
#        Baseline: COPY of the same file straight into a plain logged table
#        of the same columns.  Target: >= 0.8x.
#   (j2) a chain stream -> transform -> stream -> view
#          clicks_c -> to_mid (every event) -> mid -> chain_view
#        against the single view over a stream (the core view of core.sh:
#        url, count(*), sum(latency), avg(latency), max(ts) GROUP BY url),
#        both timed until the COPY returned (sync mode: every stage applied).
#        Target: >= 0.5x.
# The machine may be shared: the figures are indicative.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-2000000}
REPS=${REPS:-3}
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'")
CMDLINE="test/bench/transforms.sh"
[ "$EVENTS" != 2000000 ] && CMDLINE="EVENTS=$EVENTS $CMDLINE"
[ "$REPS" != 3 ] && CMDLINE="REPS=$REPS $CMDLINE"

source "$HERE/lib.sh"
start_bench transforms

log "server on port $PGPORT in $DIR; creating schema"
q <<'SQL'
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE clicks_t (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_s (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_c (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE mid (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE TABLE out (url text, user_id bigint, latency float8, ts timestamptz);
CREATE TABLE plain (url text, user_id bigint, latency float8, ts timestamptz);
CREATE VIEW to_out WITH (continuous, output = 'out') AS SELECT url, user_id, latency, ts FROM clicks_t;
CREATE VIEW single_view WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM clicks_s GROUP BY url;
CREATE VIEW to_mid WITH (continuous, output = 'mid') AS SELECT url, user_id, latency, ts FROM clicks_c;
CREATE VIEW chain_view WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM mid GROUP BY url;
SQL

log "generating $EVENTS events"
q <<SQL
SELECT setseed(0.42);
COPY (SELECT '/page/' || floor(random() * 1000)::int, floor(random() * 100000)::bigint,
             round((random() * 200)::numeric, 2)::float8,
             timestamptz '2024-01-01 00:00:00+00' + random() * interval '2 hours'
      FROM generate_series(1, $EVENTS) g) TO '$CSV' (FORMAT csv);
SQL
[ "$(wc -l < "$CSV")" -eq "$EVENTS" ] || die "CSV has the wrong number of lines"
q -c "INSERT INTO clicks_s VALUES ('warmup', 0, 0, now())" -c "INSERT INTO clicks_c VALUES ('warmup', 0, 0, now())" \
  -c "SELECT stream_ext.truncate_continuous_view('single_view')" -c "SELECT stream_ext.truncate_continuous_view('chain_view')" >/dev/null
[ -n "$(ext_pid worker)" ] || die "stream_ext workers not running"

now_ms() { date +%s%3N; }
rate() { awk -v ms="$1" -v n="$EVENTS" 'BEGIN {printf "%.0f", n / (ms / 1000)}'; }
prepare() {  # prepare [VIEW]: empty the tables (and VIEW), let the combiner finish, checkpoint
	q -c "TRUNCATE out, plain" >/dev/null
	[ -z "${1:-}" ] || q -c "SELECT stream_ext.truncate_continuous_view('$1')" >/dev/null
	quiesce
	q -c "CHECKPOINT"
}
DELTA_OUT=$(q -c "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'to_out'::regclass")

declare -a PLAIN TRANSFORM_ACK TRANSFORM_IN SINGLE CHAIN
for rep in $(seq 1 "$REPS"); do
	prepare
	ms=$(copy_ms plain "$CSV"); PLAIN+=("$(rate "$ms")")
	log "rep $rep: plain table $(fmt "${PLAIN[-1]}") events/s"

	prepare
	ms=$(copy_ms clicks_t "$CSV")
	TRANSFORM_ACK+=("$(rate "$ms")")
	# rows still staged when the COPY returned add the time until they are moved
	t_ret=$(now_ms) in_ms=$ms
	until [ "$(q -c "SELECT NOT EXISTS (SELECT 1 FROM $DELTA_OUT)")" = t ]; do
		sleep 0.05
		in_ms=$((ms + $(now_ms) - t_ret))
	done
	TRANSFORM_IN+=("$(rate "$in_ms")")
	[ "$(q -c "SELECT count(*) FROM out")" = "$EVENTS" ] || die "out has $(q -c "SELECT count(*) FROM out") rows, not $EVENTS"
	log "rep $rep: transform into a table $(fmt "${TRANSFORM_IN[-1]}") events/s in the table (COPY returned at $(fmt "${TRANSFORM_ACK[-1]}"))"

	prepare single_view
	ms=$(copy_ms clicks_s "$CSV"); SINGLE+=("$(rate "$ms")")
	log "rep $rep: single view $(fmt "${SINGLE[-1]}") events/s"

	prepare chain_view
	ms=$(copy_ms clicks_c "$CSV"); CHAIN+=("$(rate "$ms")")
	[ "$(q -c "SELECT sum(count) FROM chain_view")" = "$EVENTS" ] || die "chain_view counted $(q -c "SELECT sum(count) FROM chain_view")"
	log "rep $rep: chain $(fmt "${CHAIN[-1]}") events/s"
done
# equal up to float rounding (sums of float8 in another order)
same=$(q -c "WITH s AS (SELECT url, count, round(sum::numeric, 4) AS sum, max FROM single_view),
                  c AS (SELECT url, count, round(sum::numeric, 4) AS sum, max FROM chain_view)
             SELECT count(*) FROM ((SELECT * FROM s EXCEPT SELECT * FROM c) UNION ALL
                                   (SELECT * FROM c EXCEPT SELECT * FROM s)) d")

m() { printf '%s\n' "$@" | median; }
p=$(m "${PLAIN[@]}"); ti=$(m "${TRANSFORM_IN[@]}"); ta=$(m "${TRANSFORM_ACK[@]}")
s=$(m "${SINGLE[@]}"); c=$(m "${CHAIN[@]}")
echo
echo "## transforms ($CMDLINE; $(nproc) CPUs, load at start $LOAD_START; indicative)"
echo
echo "| case | events/s | baseline events/s | ratio | target | met |"
echo "|---|---:|---:|---:|---:|---|"
echo "| (j1) transform into a logged table, rows in the table | $(fmt "$ti") | $(fmt "$p") (COPY into the table) | $(ratio "$ti" "$p") | 0.8 | $(yesno ge "$(ratio "$ti" "$p")" 0.8) |"
echo "| (j1) same, until the COPY returned | $(fmt "$ta") | $(fmt "$p") | $(ratio "$ta" "$p") | - | - |"
echo "| (j2) stream -> transform -> stream -> view | $(fmt "$c") | $(fmt "$s") (single view) | $(ratio "$c" "$s") | 0.5 | $(yesno ge "$(ratio "$c" "$s")" 0.5) |"
echo
echo "checks: out has every event after each run; chain_view = single_view: $([ "$same" = 0 ] && echo yes || echo "NO ($same rows differ)")"
