#!/usr/bin/env bash
# Too few max_worker_processes for a database's workers: its writers get a
# clear error within seconds (not a hang), saying why and what to raise, and
# the server log says it once, however many writers try.  Own server with
# max_worker_processes = 4: the launcher and one database's 3 processes.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "max_worker_processes = 4" "max_logical_replication_workers = 0" \
	"max_parallel_workers = 0"
t0=$SECONDS

# database a takes the 3 free background worker slots
fresh_db a
# ingest(): an insert, as a query that answers t
schema="CREATE FOREIGN TABLE ev (k int) SERVER stream_ext;
CREATE FUNCTION ingest() RETURNS boolean LANGUAGE sql AS 'INSERT INTO ev VALUES (1); SELECT true';"
run_sql -c "$schema"
wait_until 30 "database a ingests" "SELECT ingest()"
PGDATABASE=postgres wait_until 30 "only database a's processes run" \
	"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type IN ('stream_ext worker', 'stream_ext combiner')"
say "ok: database a has its workers"

# database b cannot get any
psql -X -q -d postgres -c "CREATE DATABASE b"
PGDATABASE=b run_sql -c "CREATE EXTENSION stream_ext" -c "$schema"
offset=$(log_offset)
start=$(date +%s%N)
out=$(PGDATABASE=b psql -X -v VERBOSITY=verbose -c "SET statement_timeout = '20s'" -c "INSERT INTO ev VALUES (1)" 2>&1 || true)
ms=$((($(date +%s%N) - start) / 1000000))
echo "$out" | sed 's/^/    /'
grep -q 'ERROR:  53400: stream_ext workers cannot start in database "b"' <<< "$out" ||
	fail "no clear error for the writer: $out"
grep -q 'DETAIL:  All 4 background worker slots (max_worker_processes) are in use' <<< "$out" ||
	fail "the error does not say why: $out"
grep -q 'HINT:  Raise max_worker_processes' <<< "$out" || fail "the error has no hint: $out"
[ "$ms" -lt 5000 ] || fail "the writer waited $ms ms for its error"
say "ok: the writer got the error in $ms ms"

# many writers, for 5 s: one log line for the condition
for c in 1 2 3 4; do
	(end=$((SECONDS + 5)); while [ $SECONDS -lt $end ]; do
		PGDATABASE=b psql -X -q -c "INSERT INTO ev VALUES (1)" >/dev/null 2>&1 || true
	done) &
	_bg_pids+=($!)
done
wait
n=$(log_since "$offset" | grep -c 'could not start the stream_ext workers of database "b"' || true)
[ "$n" = 1 ] || fail "the log has $n lines about database b, expected 1: $(log_since "$offset" | grep -v '^\s' | tail -5)"
say "ok: the condition is logged once ($(log_since "$offset" | wc -l) log lines in all)"
failed=$(PGDATABASE=b q "SELECT workers_failed_since IS NOT NULL FROM stream_ext.combiner")
[ "$failed" = t ] || fail "stream_ext.combiner does not show the failure"
say "ok: stream_ext.combiner shows since when the workers cannot start"

# database a still ingests; once it is dropped, b gets its workers
PGDATABASE=a q "INSERT INTO ev VALUES (2)" >/dev/null
psql -X -q -d postgres -c "DROP DATABASE a WITH (FORCE)"
PGDATABASE=b wait_until 30 "database b ingests once a's slots are free" "SELECT ingest()"
n=$(log_since "$offset" | grep -c 'the stream_ext workers of database "b" started' || true)
[ "$n" = 1 ] || fail "the recovery is logged $n times, expected once"
say "ok: database b ingests once slots are free; logged once"

say "PASS ($((SECONDS - t0))s)"
