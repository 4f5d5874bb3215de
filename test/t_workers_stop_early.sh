#!/usr/bin/env bash
# A database whose workers stop before they can open it (here it no longer
# allows connections, while a session stays in it): a writer waiting for
# them gets a clear error within seconds, not a wait until statement_timeout,
# and the launcher starts them again less and less often (it used to start
# them as fast as the waiting writer asked, about ten times a second, each
# one a FATAL in the log).  Once connections are allowed again, the next
# writer's events are applied.  Own server.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db t_stop_early
run_sql <<'SQL'
CREATE FOREIGN TABLE se (k int) SERVER stream_ext;
CREATE VIEW se_n WITH (continuous) AS SELECT count(*) AS n FROM se;
INSERT INTO se VALUES (1);
SQL

# a session that stays in the database
fifo_session writer 7
echo "SELECT 'connected';" >&7
wait_until 10 "the writer's session is connected" "SELECT count(*) = 1 FROM pg_stat_activity
	WHERE datname = 't_stop_early' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"

PGDATABASE=postgres run_sql <<'SQL'
ALTER DATABASE t_stop_early ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = 't_stop_early' AND backend_type IN ('stream_ext worker', 'stream_ext combiner');
SQL
fatal_before=$(grep -c 'FATAL:  database "t_stop_early" is not currently accepting connections' "$SRV/server.log" || true)
t0=$SECONDS
echo "SET statement_timeout = '60s'; INSERT INTO se VALUES (2); SELECT 'inserted';" >&7
deadline=$((SECONDS + 30))
until grep -q "ERROR" "$SCRATCH/writer.out"; do
	grep -q inserted "$SCRATCH/writer.out" && fail "the INSERT succeeded: $(cat "$SCRATCH/writer.out")"
	[ $SECONDS -lt $deadline ] || fail "no error within 30 s: $(cat "$SCRATCH/writer.out")"
	sleep 0.2
done
took=$((SECONDS - t0))
grep -q 'stream_ext workers cannot start in database "t_stop_early"' "$SCRATCH/writer.out" ||
	fail "the writer's error: $(cat "$SCRATCH/writer.out")"
grep -q "DETAIL:  Their processes stopped before they could open the database" "$SCRATCH/writer.out" ||
	fail "the error's detail: $(cat "$SCRATCH/writer.out")"
[ $took -le 15 ] || fail "the writer waited $took s for its error"
say "ok: the waiting writer failed after $took s: $(grep ERROR "$SCRATCH/writer.out")"

# the launcher tries again less and less often: over 10 s, a few starts
sleep 10
fatal=$(( $(grep -c 'FATAL:  database "t_stop_early" is not currently accepting connections' "$SRV/server.log" || true) - fatal_before ))
say "processes that stopped before opening the database in $((SECONDS - t0)) s: $fatal"
[ "$fatal" -le 30 ] || fail "$fatal processes started and stopped in $((SECONDS - t0)) s"

# connections allowed again: the next writer's events are applied
PGDATABASE=postgres q "ALTER DATABASE t_stop_early ALLOW_CONNECTIONS true" >/dev/null
echo "INSERT INTO se VALUES (3); SELECT 'inserted again';" >&7
wait_until 90 "the writer's next INSERT went through" "SELECT n = 2 FROM se_n"
exec 7>&-
say "ok: once the database allows connections again, writers go on"
