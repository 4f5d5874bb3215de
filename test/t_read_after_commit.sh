#!/usr/bin/env bash
# A read right after COMMIT sees the transaction's events (sync mode), while
# the combiner keeps the delta tables short and VACUUM a joined table.
# Bursts of wide events make the views' delta tables long; once merged, the
# combiner cuts their empty ends under an exclusive lock
# (src/worker/delta_shrink.c); a loop fills a joined table, deletes the rows
# and vacuums it, which cuts its end under the same lock.  A worker that met
# either lock used to hold its batch's events back for the view, so that a
# writer's COMMIT returned while a read of the view did not show its events
# until the combiner drained them.  Meanwhile 2 pgbench clients each insert
# one event with a new id and read it back at once from an aggregating
# view, a row-keeping view (with an index) and a view joining the table;
# every miss is recorded, with the views' held_events at that moment.
# Checked: no miss, no failed transaction, and both kinds of cut happened
# (the row-keeping view's delta table, the largest, shrank below its
# largest size; VACUUM cut the joined table's end).
source "$(dirname "$0")/lib.sh"
SECS=${SECS:-45} BURSTS=${BURSTS:-8} BURST_EVENTS=${BURST_EVENTS:-300000}

unset PGHOST PGPORT
start_own_server "$SCRATCH/server"
fresh_db t_read_after_commit
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE ev (id bigint, pad text) SERVER stream_ext;
CREATE VIEW ev_count WITH (continuous) AS SELECT id, count(*) AS n FROM ev GROUP BY id;
CREATE VIEW ev_rows WITH (continuous) AS SELECT id FROM ev;
CREATE INDEX ON ev_rows (id);
CREATE TABLE dim (k int PRIMARY KEY, name text);
INSERT INTO dim SELECT g, 'd' || g FROM generate_series(0, 9) g;
CREATE VIEW ev_dim WITH (continuous) AS
  SELECT e.id, d.name, count(*) AS n FROM ev e JOIN dim d ON d.k = e.id % 10 WHERE e.pad = 'probe' GROUP BY e.id, d.name;
CREATE TABLE dim_cuts (before bigint, after bigint);
CREATE SEQUENCE probe_ids START 1000000000;
CREATE TABLE misses (at timestamptz DEFAULT clock_timestamp(), id bigint, rows_seen bigint, count_seen bigint, join_seen bigint, held text);
CREATE TABLE delta_sizes (view regclass, bytes bigint);
SQL

cat > "$SCRATCH/probe.sql" <<'SQL'
SELECT nextval('probe_ids') AS id \gset
INSERT INTO ev VALUES (:id, 'probe');
SELECT (SELECT count(*) FROM ev_rows WHERE id = :id) AS r, coalesce((SELECT n FROM ev_count WHERE id = :id), 0) AS c,
       coalesce((SELECT n FROM ev_dim WHERE id = :id), 0) AS j \gset
\set ok (:r = 1) and (:c = 1) and (:j = 1)
\if :ok
\else
INSERT INTO misses (id, rows_seen, count_seen, join_seen, held)
  SELECT :id, :r, :c, :j, string_agg(format('%s: %s held, %s unmerged', name, held_events, unmerged_deltas), '; ')
    FROM stream_ext.view_stats;
\endif
SQL

note_delta_sizes() {
	q "INSERT INTO delta_sizes SELECT view, pg_relation_size(delta_table) FROM stream_ext_internal.continuous_views" >/dev/null
}
bursts() {
	for _ in $(seq 1 "$BURSTS"); do
		q "INSERT INTO ev SELECT g % 1000, repeat('p', 200) FROM generate_series(1, $BURST_EVENTS) g" >/dev/null
		note_delta_sizes
		sleep 3
		note_delta_sizes
	done
}
vacuum_cuts() {  # until the file stop exists: fill dim's end, empty it, VACUUM (which cuts it)
	while [ ! -e "$SCRATCH/stop" ]; do
		run_sql -c "INSERT INTO dim SELECT g, 'churn' FROM generate_series(100, 20000) g" \
			-c "DELETE FROM dim WHERE k >= 100" \
			-c "CREATE TEMP TABLE size AS SELECT pg_relation_size('dim') AS b" \
			-c "VACUUM dim" \
			-c "INSERT INTO dim_cuts SELECT b, pg_relation_size('dim') FROM size" >/dev/null
		sleep 0.5
	done
}
say "$BURSTS bursts of $BURST_EVENTS events, a joined table vacuumed; 2 clients insert an event and read it back, for ${SECS}s"
bursts &
burst_pid=$!
vacuum_cuts &
vacuum_pid=$!
out=$(pgbench -n -f "$SCRATCH/probe.sql" -c 2 -T "$SECS" 2>&1) || fail "pgbench failed: $out"
touch "$SCRATCH/stop"
wait "$burst_pid" || fail "a burst failed"
wait "$vacuum_pid" || fail "the VACUUM loop failed"
grep -q "number of failed transactions: 0 " <<< "$out" || fail "pgbench: failed transactions: $out"
probes=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<< "$out")
[ "${probes:-0}" -gt 100 ] || fail "only ${probes:-0} probes ran: $out"

missed=$(q "SELECT count(*) FROM misses")
if [ "$missed" != 0 ]; then
	q "SELECT format('event %s: %s row(s) in ev_rows, count %s in ev_count, %s in ev_dim (%s)', id, rows_seen, count_seen, join_seen, held)
	     FROM misses ORDER BY at LIMIT 5" |
		sed "s/^/[$TEST_NAME]   /"
	fail "$missed of $probes committed events were missing from a read right after COMMIT"
fi
say "ok: $probes events each read back at once from the three views"
cuts=$(q "SELECT count(*) FILTER (WHERE after < before) FROM dim_cuts")
[ "$cuts" -gt 0 ] || fail "VACUUM never cut the joined table's end ($(q "SELECT count(*) FROM dim_cuts") vacuums)"
say "ok: VACUUM cut the joined table's end $cuts times"

wait_until 120 "the delta table of ev_rows cut below its largest size" \
	"SELECT pg_relation_size(c.delta_table) < (SELECT max(bytes) FROM delta_sizes s WHERE s.view = c.view)
	   FROM stream_ext_internal.continuous_views c WHERE c.view = 'ev_rows'::regclass"
say "ok: the combiner cut ev_rows' delta table ($(q "SELECT format('largest %s, now %s', pg_size_pretty(max(s.bytes)), pg_size_pretty(pg_relation_size(c.delta_table)))
	FROM stream_ext_internal.continuous_views c JOIN delta_sizes s ON s.view = c.view WHERE c.view = 'ev_rows'::regclass GROUP BY c.delta_table"))"
say "PASS ($((SECONDS - t0))s)"
