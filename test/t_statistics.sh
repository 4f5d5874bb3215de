#!/usr/bin/env bash
# The background processes report what they do to PostgreSQL's statistics:
# pg_stat_user_tables counts the rows workers and the combiner write into
# delta and state tables, pg_stat_database counts their transactions,
# autovacuum sees the state tables, and pg_stat_activity shows each
# process's state, query (the view it works on) and transaction start.
# Own server (autovacuum_naptime = 1s).
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "autovacuum_naptime = 1s" "stream_ext.combine_interval = 50ms" \
	"stream_ext.view_time_limit = 0"
fresh_db t_statistics
t0=$SECONDS

# a view whose expression sleeps on the event k = -1: a worker busy on it
run_sql <<'SQL'
CREATE FUNCTION slow_key(k int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
  $$BEGIN IF k = -1 THEN PERFORM pg_sleep(3); END IF; RETURN k; END$$;
CREATE FOREIGN TABLE ev (k int, v float8) SERVER stream_ext;
CREATE VIEW by_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
CREATE FOREIGN TABLE slow (k int) SERVER stream_ext;
CREATE VIEW slow_v WITH (continuous) AS SELECT slow_key(k) AS k, count(*) AS n FROM slow GROUP BY 1;
SQL
state=$(q "SELECT state_table::oid FROM stream_ext_internal.continuous_views WHERE view = 'by_k'::regclass")
delta=$(q "SELECT delta_table::oid FROM stream_ext_internal.continuous_views WHERE view = 'by_k'::regclass")

# xact_commit of this database, read from another one (reads count too)
commits() { psql -X -At -d postgres -c "SELECT pg_stat_force_next_flush(); SELECT xact_commit FROM pg_stat_database WHERE datname = 't_statistics'" | tail -1; }
before=$(commits)

# 500 groups in one transaction, then 40 transactions of one event each
q "INSERT INTO ev SELECT i, i FROM generate_series(1, 500) i" >/dev/null
for i in $(seq 1 40); do echo "INSERT INTO ev VALUES ($i, 1);"; done | run_sql
[ "$(q "SELECT sum(n) FROM by_k")" = 540 ] || fail "the view does not count the events"

wait_until 30 "pg_stat_user_tables counts the state rows the combiner inserted" \
	"SELECT n_tup_ins >= 500 FROM pg_stat_user_tables WHERE relid = $state"
say "ok: state table: $(q "SELECT format('%s inserted, %s updated', n_tup_ins, n_tup_upd) FROM pg_stat_user_tables WHERE relid = $state")"
wait_until 30 "pg_stat_user_tables counts the delta rows the workers inserted and the combiner deleted" \
	"SELECT n_tup_ins >= 41 AND n_tup_del >= 41 FROM pg_stat_user_tables WHERE relid = $delta"
say "ok: delta table: $(q "SELECT format('%s inserted, %s deleted', n_tup_ins, n_tup_del) FROM pg_stat_user_tables WHERE relid = $delta")"
wait_until 30 "view_stats shows the 500 groups of by_k as its state rows" \
	"SELECT state_rows = 500 FROM stream_ext.view_stats WHERE name = 'by_k'::regclass"
[ "$(q "SELECT state_bytes >= pg_total_relation_size($state) + pg_total_relation_size($delta)
             AND state_bytes > 0 FROM stream_ext.view_stats WHERE name = 'by_k'::regclass")" = t ] ||
	fail "view_stats.state_bytes does not count the view's tables"
say "ok: view_stats: by_k keeps $(q "SELECT format('%s state rows in %s', state_rows, pg_size_pretty(state_bytes)) FROM stream_ext.view_stats WHERE name = 'by_k'::regclass")"
wait_until 30 "view_counters updates counted" \
	"SELECT n_tup_ins + n_tup_upd >= 41 FROM pg_stat_user_tables WHERE relid = 'stream_ext_internal.view_counters'::regclass"
say "ok: the workers' counter updates are counted"

# the client committed 41 transactions; the workers committed one batch
# each, the combiner its merges
deadline=$((SECONDS + 30))
while :; do
	after=$(commits)
	[ $((after - before)) -ge 100 ] && break
	[ $SECONDS -ge $deadline ] && fail "pg_stat_database counted $((after - before)) commits for 41 client transactions: the workers' are missing"
	sleep 0.5
done
say "ok: pg_stat_database counts the workers' transactions ($((after - before)) commits for 41 client transactions)"

wait_until 60 "autovacuum analyzes the state table" \
	"SELECT autoanalyze_count > 0 FROM pg_stat_user_tables WHERE relid = $state"
say "ok: autovacuum processed the state table (autoanalyze_count $(q "SELECT autoanalyze_count FROM pg_stat_user_tables WHERE relid = $state"))"

# pg_stat_activity: idle processes show their last query
wait_until 10 "the workers are idle with their last query" \
	"SELECT count(*) FILTER (WHERE state = 'idle') = 2
	        AND count(*) FILTER (WHERE query LIKE 'stream_ext: applying % events to continuous view public.by_k') >= 1
	   FROM pg_stat_activity WHERE datname = 't_statistics' AND backend_type = 'stream_ext worker'"
wait_until 10 "the combiner is idle with its last query" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 't_statistics' AND backend_type = 'stream_ext combiner'
	   AND state = 'idle' AND query LIKE 'stream_ext: merging deltas of continuous view public.%'"
say "ok: idle workers and combiner show their state and last query"

# a cancel that finds them idle has nothing to cancel: they stay
pids=$(q "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
          WHERE datname = 't_statistics' AND backend_type IN ('stream_ext worker', 'stream_ext combiner')")
q "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
   WHERE datname = 't_statistics' AND backend_type IN ('stream_ext worker', 'stream_ext combiner')" >/dev/null
sleep 1
[ "$(q "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
       WHERE datname = 't_statistics' AND backend_type IN ('stream_ext worker', 'stream_ext combiner')")" = "$pids" ] ||
	fail "pg_cancel_backend of idle workers and combiner ended them"
say "ok: pg_cancel_backend of the idle workers and combiner leaves them running"

# ... and a busy worker its view, its transaction's start and its state
q "SET stream_ext.commit_mode = async; INSERT INTO slow VALUES (-1)" >/dev/null
wait_until 10 "a busy worker shows the view it applies events to" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 't_statistics' AND backend_type = 'stream_ext worker'
	   AND state = 'active' AND query = 'stream_ext: applying 1 events to continuous view public.slow_v'
	   AND xact_start IS NOT NULL AND xact_start <= query_start AND query_start <= now()"
say "ok: a busy worker is active on slow_v since $(q "SELECT xact_start FROM pg_stat_activity WHERE query LIKE '%slow_v' AND state = 'active'")"
wait_until 10 "the slow batch applied" "SELECT n = 1 FROM slow_v"

# a COPY into a stream reports its progress as one into a table does
run_sql -c "CREATE FOREIGN TABLE copied (a int) SERVER stream_ext"
# (COPY reads its input 64 kB at a time: it has read the first 90,000 lines
# or so when the program pauses)
psql -X -q -o /dev/null -c "COPY copied FROM PROGRAM 'seq 1 100000; sleep 3'" &
copier=$!
wait_until 10 "pg_stat_progress_copy counts the COPY's events" \
	"SELECT count(*) = 1 FROM pg_stat_progress_copy WHERE relid = 'copied'::regclass AND tuples_processed > 50000"
wait "$copier"
say "ok: pg_stat_progress_copy counts the events of a COPY into a stream"

say "PASS ($((SECONDS - t0))s)"
