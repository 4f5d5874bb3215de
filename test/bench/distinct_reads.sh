#!/usr/bin/env bash
# Read cost of count(DISTINCT x) in a group whose large state has unmerged
# deltas (issue 13, item 3: reads in time independent of the number of
# distinct values).
#
#   test/bench/distinct_reads.sh                     # SIZES="100000 1000000 3000000", ~2 minutes
#   SIZES="100000 300000" READS=10 test/bench/distinct_reads.sh   # smoke run
#
# For each size N: a view SELECT g, count(DISTINCT u) FROM s GROUP BY g with
# one group of N distinct int8 values, merged into its state; then, with the
# combiner held back (combine_interval 1h), 10 events in two transactions
# (5 values the state holds, 5 new), unmerged.  Timed, READS times each,
# median and p99 client side:
#   view       SELECT * FROM the view (count_distinct_union: the deltas'
#              values looked up in the stored state, agg/distinct_union.c)
#   merged     the same rows finalized as reads did before: the state and the
#              deltas merged by inputs_agg's combine function, then counted
#              (inputs_count_distinct of finalize_agg)
# Both must give the batch answer, N + 5.  What should hold: the view's time
# about flat in N, the merged read's growing with N.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZES=${SIZES:-100000 1000000 3000000}
READS=${READS:-20}
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'")

source "$HERE/lib.sh"
start_bench distinct_reads
q -c "CREATE EXTENSION stream_ext"

set_combine_interval() {
	q -c "ALTER SYSTEM SET stream_ext.combine_interval = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
}

ROWS=()
for n in $SIZES; do
	log "N = $(fmt "$n"): loading and merging"
	set_combine_interval 250ms
	q <<SQL
CREATE FOREIGN TABLE s_$n (g int, u int8) SERVER stream_ext;
CREATE VIEW v_$n WITH (continuous) AS SELECT g, count(DISTINCT u) AS users FROM s_$n GROUP BY g;
INSERT INTO s_$n SELECT 1, i * 2 FROM generate_series(1, $n) i;
SQL
	quiesce
	set_combine_interval 1h
	sleep 6		# the combiner's round under the old interval
	q -c "INSERT INTO s_$n SELECT 1, i * 2 FROM generate_series(1, 5) i" \
		-c "INSERT INTO s_$n SELECT 1, i * 2 + 1 FROM generate_series(1, 5) i"
	id=$(q -c "SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'v_$n'::regclass")
	merged_sql="SELECT g, stream_ext_internal.inputs_count_distinct(stream_ext_internal.finalize_agg(
  'stream_ext_internal.inputs_agg(\"any\")'::regprocedure, a1_count, NULL::bytea)) AS users
  FROM (SELECT g, a1_count FROM stream_ext_internal.state_$id
        UNION ALL SELECT g, a1_count FROM stream_ext_internal.delta_$id
        WHERE stream_ext_internal.xid_visible(writer_xid)) u GROUP BY g"
	[ "$(q -c "SELECT count(*) FROM stream_ext_internal.delta_$id")" -gt 0 ] || die "no unmerged delta for N = $n"
	got=$(q -c "SELECT users FROM v_$n"); old=$(q -c "SELECT users FROM ($merged_sql) x")
	[ "$got" = $((n + 5)) ] && [ "$old" = $((n + 5)) ] || die "N = $n: view $got, merged $old, expected $((n + 5))"
	times=$(read_ms_list "$READS" "SELECT * FROM v_$n;")
	v50=$(median <<< "$times"); v99=$(p99 <<< "$times")
	times=$(read_ms_list "$READS" "$merged_sql;")
	m50=$(median <<< "$times"); m99=$(p99 <<< "$times")
	log "  view p50 $v50 ms p99 $v99 ms; merged p50 $m50 ms p99 $m99 ms"
	ROWS+=("| $(fmt "$n") | $v50 | $v99 | $m50 | $m99 | $(ratio "$v50" "$m50")x |")
	set_combine_interval 250ms
	quiesce
done

cat <<EOF

count(DISTINCT) read of one group of N values with 10 unmerged delta events, $READS reads each (ms)
command: SIZES="$SIZES" READS=$READS test/bench/distinct_reads.sh
load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)

| N distinct values | view p50 | view p99 | merged p50 | merged p99 | view / merged (p50) |
|---|---|---|---|---|---|
$(printf '%s\n' "${ROWS[@]}")
EOF
