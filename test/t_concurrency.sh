#!/usr/bin/env bash
# Concurrency: pgbench, 16 clients (-j 2), each transaction inserting 10 events
# in sync mode (BEGIN; INSERT ... SELECT 10 rows; COMMIT).  Event values are
# derived from the client id and a per-client transaction counter, so the
# exact totals are known.  Checked right after pgbench returns (sync mode: a
# committed transaction is already applied):
#   - pgbench: every transaction processed, no failed transaction, exit 0
#   - per url: count(*), sum(user_id), sum(latency), min/max(user_id) equal the
#     expected values; the global and the filtered view too
#   - no ERROR/FATAL/PANIC in the server log
# Then a second pgbench round where every 4th transaction of each client rolls
# back (after inserting): the same checks, rolled back events must not count.
# Runs its own server (clean log; 2 workers per database so both queues are used).
source "$(dirname "$0")/lib.sh"
CLIENTS=16 THREADS=2 TXNS=${TXNS:-500} ROWS=10

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.workers = 2" "max_connections = 50"
fresh_db t_concurrency
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW per_url WITH (continuous) AS
  SELECT url, count(*) AS n, sum(user_id) AS s, sum(latency) AS l, min(user_id) AS lo, max(user_id) AS hi
    FROM clicks GROUP BY url;
CREATE VIEW totals WITH (continuous) AS
  SELECT count(*) AS n, sum(user_id) AS s, max(ts) AS last FROM clicks;
CREATE VIEW odd_clients WITH (continuous) AS
  SELECT user_id / 1000000 AS client, count(*) AS n, sum(latency) AS l
    FROM clicks WHERE (user_id / 1000000) % 2 = 1 GROUP BY user_id / 1000000;
SQL

# Event i (1..10) of transaction t (1..TXNS) of client c (0..15):
#   url '/page/' || (i % 5), user_id c*1000000 + t*10 + i, latency i (exact in float8)
cat > "$SCRATCH/txn.sql" <<'SQL'
\set t :t + 1
BEGIN;
INSERT INTO clicks
  SELECT '/page/' || (i % 5), :client_id * 1000000 + :t * 10 + i, i, now()
    FROM generate_series(1, 10) i;
COMMIT;
SQL

# Second round: user ids offset by 100000000, transactions with t % 4 = 0 roll back.
cat > "$SCRATCH/txn_rollback.sql" <<'SQL'
\set t :t + 1
BEGIN;
INSERT INTO clicks
  SELECT '/page/' || (i % 5), 100000000 + :client_id * 1000000 + :t * 10 + i, i, now()
    FROM generate_series(1, 10) i;
\if :t % 4 = 0
ROLLBACK;
\else
COMMIT;
\endif
SQL

log0=$(log_offset)
total_txn=$((CLIENTS * TXNS))
bench() {  # bench SCRIPT TXNS
	local rc n=$((CLIENTS * $2))
	say "pgbench $(basename "$1"): $CLIENTS clients, $THREADS threads, $2 transactions each, $ROWS events per transaction"
	set +e
	pgbench -n -c $CLIENTS -j $THREADS -t "$2" -D t=0 -f "$1" >"$SCRATCH/pgbench.out" 2>&1
	rc=$?
	set -e
	grep -E 'processed|failed|tps|latency average|aborted' "$SCRATCH/pgbench.out" | sed "s/^/[$TEST_NAME]   /"
	if [ $rc -ne 0 ]; then
		tail -n 20 "$SCRATCH/pgbench.out"
		fail "pgbench exited with $rc"
	fi
	grep -q "number of transactions actually processed: $n/$n" "$SCRATCH/pgbench.out" ||
		fail "pgbench did not process all $n transactions"
	grep -q "number of failed transactions: 0 " "$SCRATCH/pgbench.out" || fail "pgbench reports failed transactions"
}
bench "$SCRATCH/txn.sql" "$TXNS"

# Expected values, computed independently of the stream.
run_sql <<SQL
CREATE TABLE expected AS
  SELECT c, t, i, '/page/' || (i % 5) AS url, c * 1000000 + t * 10 + i AS user_id, i::float8 AS latency
    FROM generate_series(0, $CLIENTS - 1) c, generate_series(1, $TXNS) t, generate_series(1, $ROWS) i;
SQL

check() {  # check DESCRIPTION VIEW-QUERY EXPECTED-QUERY
	local d
	d=$(q "SELECT count(*) FROM (($2 EXCEPT ALL $3) UNION ALL ($3 EXCEPT ALL $2)) x")
	if [ "$d" != 0 ]; then
		echo "[$TEST_NAME] view:";     psql -X -c "$2 ORDER BY 1"
		echo "[$TEST_NAME] expected:"; psql -X -c "$3 ORDER BY 1"
		fail "$1: view differs from the expected values"
	fi
	say "ok: $1"
}
check "per_url: count, sum(user_id), sum(latency), min, max per url" \
	"SELECT url, n, s, l, lo, hi FROM per_url" \
	"SELECT url, count(*), sum(user_id), sum(latency), min(user_id), max(user_id) FROM expected GROUP BY url"
check "totals: count(*) = $((total_txn * ROWS)) and sum(user_id)" \
	"SELECT n, s FROM totals" "SELECT count(*), sum(user_id) FROM expected"
check "odd_clients: WHERE filter, expression key" \
	"SELECT client, n, l FROM odd_clients" \
	"SELECT (user_id / 1000000)::bigint, count(*), sum(latency) FROM expected WHERE c % 2 = 1 GROUP BY 1"

bench "$SCRATCH/txn_rollback.sql" $((TXNS / 2))
run_sql <<SQL
INSERT INTO expected
  SELECT c, t, i, '/page/' || (i % 5), 100000000 + c * 1000000 + t * 10 + i, i::float8
    FROM generate_series(0, $CLIENTS - 1) c, generate_series(1, $TXNS / 2) t, generate_series(1, $ROWS) i
   WHERE t % 4 <> 0;
SQL
check "per_url after the round with rollbacks" \
	"SELECT url, n, s, l, lo, hi FROM per_url" \
	"SELECT url, count(*), sum(user_id), sum(latency), min(user_id), max(user_id) FROM expected GROUP BY url"
check "totals after the round with rollbacks: count(*) = $(q "SELECT count(*) FROM expected")" \
	"SELECT n, s FROM totals" "SELECT count(*), sum(user_id) FROM expected"
check "odd_clients after the round with rollbacks" \
	"SELECT client, n, l FROM odd_clients" \
	"SELECT (user_id / 1000000)::bigint, count(*), sum(latency) FROM expected WHERE c % 2 = 1 GROUP BY 1"

errors=$(log_since "$log0" | grep -E '(ERROR|FATAL|PANIC|TRAP):|terminated by signal|server process .* exited' || true)
if [ -n "$errors" ]; then
	echo "$errors" | head -n 20
	fail "errors in the server log during the run"
fi
say "ok: no errors in the server log"
say "PASS ($((SECONDS - t0))s)"
