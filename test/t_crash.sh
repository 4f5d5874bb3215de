#!/usr/bin/env bash
# Crash safety in sync mode.  Own server.  CYCLES times:
#   - CLIENTS psql clients insert batches in a loop, each batch with its own
#     batch id: INSERT ... SELECT transactions, multi-statement transactions,
#     COPY, some large (3000 events: several records; with 256 kB queues
#     they spill over both workers), every 5th one rolled back, and rolled
#     back savepoints inside committed ones (test/lib.sh, crash_client_sql).
#     A client prints "ack ID SIZE" only after COMMIT (or COPY) returned success
#     (psql -v ON_ERROR_STOP=1: the \echo after a failed COMMIT never runs).
#   - once enough events are in, kill -9 the postmaster and all its children
#   - restart (crash recovery) and check at once, and again after the combiner
#     merged every delta:
#       every acknowledged batch is counted exactly once (count = its size);
#       every batch in the view is complete (count = its size, no double count,
#       no partial batch); rolled back batches are absent; no duplicate groups;
#       the global count equals the sum over batches; per_batch_sets (count
#       DISTINCT, percentiles, sum with ORDER BY: states that are multisets of
#       the inputs) agrees with per_batch for every batch; the row-keeping view
#       keeps every third event of exactly those batches, each once.
# Finally, after the last restart, new events are applied (workers came back).
source "$(dirname "$0")/lib.sh"
CLIENTS=${CLIENTS:-6} CYCLES=${CYCLES:-3} EVENTS_PER_CYCLE=${EVENTS_PER_CYCLE:-50000}

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.workers = 2" "stream_ext.queue_size = 256kB"
fresh_db t_crash
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE ev (batch_id bigint, size int, seq int) SERVER stream_ext;
CREATE VIEW per_batch WITH (continuous) AS
  SELECT batch_id, count(*) AS n, min(size) AS size_min, max(size) AS size_max, sum(seq) AS seq_sum
    FROM ev GROUP BY batch_id;
CREATE VIEW totals WITH (continuous) AS SELECT count(*) AS n FROM ev;
-- aggregates kept as the multiset of their inputs (src/agg/inputs.c)
CREATE VIEW per_batch_sets WITH (continuous) AS
  SELECT batch_id, count(DISTINCT seq) AS seq_distinct, percentile_disc(1.0) WITHIN GROUP (ORDER BY seq) AS seq_top,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY seq) AS seq_median, sum(seq ORDER BY seq) AS seq_sum
    FROM ev GROUP BY batch_id;
CREATE VIEW kept_rows WITH (continuous) AS SELECT batch_id, seq, size FROM ev WHERE seq % 3 = 0;
CREATE TABLE acked (id bigint, size int);
CREATE TABLE rolled_back (id bigint, size int);
SQL
create_pending_deltas

failures=()
verify() {  # verify LABEL: check the views against the clients' logs; failures are collected
	local label=$1 bad
	load_client_logs
	run_sql <<'SQL'
DROP TABLE IF EXISTS problems;
CREATE TABLE problems AS
  SELECT 'acknowledged but lost' AS kind, format('batch %s of %s events: counted %s events', a.id, a.size, coalesce(v.n, 0)) AS detail
    FROM acked a LEFT JOIN per_batch v ON v.batch_id = a.id WHERE v.batch_id IS NULL
  UNION ALL
  SELECT 'incomplete or double counted batch',
         format('batch %s: %s events, sizes %s..%s, seq sum %s (acknowledged: %s)', batch_id, n, size_min, size_max,
                seq_sum, EXISTS (SELECT FROM acked a WHERE a.id = batch_id))
    FROM per_batch WHERE n <> size_max OR size_min <> size_max OR seq_sum <> n * (n + 1) / 2
  UNION ALL
  SELECT 'input multiset differs from the batch',
         format('batch %s: %s events, %s distinct, top %s, median %s, seq sum %s (per_batch: %s events, seq sum %s)',
                v.batch_id, v.n, s.seq_distinct, s.seq_top, s.seq_median, s.seq_sum, v.n, v.seq_sum)
    FROM per_batch v FULL JOIN per_batch_sets s ON s.batch_id = v.batch_id
   WHERE v.batch_id IS NULL OR s.batch_id IS NULL OR s.seq_distinct <> v.n OR s.seq_top <> v.size_max
      OR s.seq_median <> (v.n + 1) / 2.0 OR s.seq_sum <> v.seq_sum
  UNION ALL
  SELECT 'rolled back but counted', format('batch %s: %s events', r.id, v.n)
    FROM rolled_back r JOIN per_batch v ON v.batch_id = r.id
  UNION ALL
  SELECT 'group duplicated in the view', format('batch %s appears in %s rows', batch_id, count(*))
    FROM per_batch GROUP BY batch_id HAVING count(*) > 1
  UNION ALL
  SELECT 'views disagree', format('totals says %s events, per_batch sums to %s', (SELECT n FROM totals), coalesce(sum(n), 0))
    FROM per_batch HAVING coalesce(sum(n), 0) <> (SELECT n FROM totals)
  UNION ALL
  SELECT 'row-keeping view lost or doubled rows',
         format('batch %s of %s events: %s kept rows, %s distinct (expected %s)', b.id, b.size,
                coalesce(k.n, 0), coalesce(k.d, 0), b.size / 3)
    FROM (SELECT id, size FROM acked UNION SELECT batch_id, size_max FROM per_batch) b
    LEFT JOIN (SELECT batch_id, count(*) AS n, count(DISTINCT seq) AS d FROM kept_rows GROUP BY batch_id) k
      ON k.batch_id = b.id
   WHERE coalesce(k.n, 0) <> b.size / 3 OR coalesce(k.d, 0) <> b.size / 3
  UNION ALL
  SELECT 'row-keeping view kept rows of a batch the other views do not count', format('batch %s', batch_id)
    FROM kept_rows k WHERE NOT EXISTS (SELECT FROM per_batch v WHERE v.batch_id = k.batch_id);
SQL
	bad=$(q "SELECT format('%s: %s, e.g. %s', kind, count(*), string_agg(detail, '; ' ORDER BY detail DESC) FILTER (WHERE rn <= 3))
	           FROM (SELECT *, row_number() OVER (PARTITION BY kind ORDER BY detail DESC) AS rn FROM problems) p GROUP BY kind")
	if [ -n "$bad" ]; then
		echo "$bad" | sed "s/^/[$TEST_NAME]   /"
		failures+=("$label: $(echo "$bad" | cut -d, -f1 | paste -sd';' -)")
		say "FAILED: $label ($(q "SELECT count(*) FROM acked") batches acknowledged in all)"
		return 0
	fi
	say "ok: $label: $(q "SELECT count(*) FROM acked") acknowledged batches counted exactly once;" \
		"$(q "SELECT count(*) FROM per_batch v WHERE NOT EXISTS (SELECT FROM acked a WHERE a.id = v.batch_id)") unacknowledged ones complete;" \
		"$(q "SELECT count(*) FROM rolled_back") rolled back ones absent; $(q "SELECT n FROM totals") events;" \
		"$(q "SELECT count(*) FROM kept_rows") kept rows"
}


for cycle in $(seq 1 "$CYCLES"); do
	before=$(q "SELECT n FROM totals")
	start_crash_clients "$cycle" 10 3000
	say "cycle $cycle: $CLIENTS clients inserting; crash after $EVENTS_PER_CYCLE more events"
	wait_until 120 "$EVENTS_PER_CYCLE more events in totals" \
		"SELECT n >= $before + $EVENTS_PER_CYCLE FROM totals"
	wait_until 30 "all $CLIENTS clients connected" \
		"SELECT count(*) >= $CLIENTS FROM pg_stat_activity WHERE datname = 't_crash' AND application_name = 'psql' AND pid <> pg_backend_pid()"
	crash_and_recover "$SRV"
	say "restarted (crash recovery)"
	verify "cycle $cycle, right after restart"
	wait_until 60 "the combiner merged every delta" "SELECT pending_deltas() = 0"
	verify "cycle $cycle, after the combiner merged all deltas"
done

say "after the last restart: new events are applied at COMMIT"
n0=$(q "SELECT n FROM totals")
q "INSERT INTO ev SELECT 1, 100, g FROM generate_series(1, 100) g" >/dev/null
[ "$(q "SELECT n FROM totals")" = $((n0 + 100)) ] || fail "sync INSERT after restart not applied at COMMIT"
[ "$(q "SELECT n FROM per_batch WHERE batch_id = 1")" = 100 ] || fail "batch 1 not applied after restart"
say "ok: new events applied at COMMIT after restart"
if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] failed: $f"; done
	fail "${#failures[@]} check(s) failed ($((SECONDS - t0))s)"
fi
say "PASS ($((SECONDS - t0))s)"
