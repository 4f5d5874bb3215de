#!/usr/bin/env bash
# Lateness in async commit mode: a transaction's events are judged against
# what other transactions committed, never against each other, also when
# its COMMIT returned before the workers applied all of its records.  Its
# highest time counts for the watermark once every record it sent has been
# applied (and, after a crash lost some, at once).
source "$(dirname "$0")/lib.sh"
use_server
empty_db t_async_lateness
run_sql -c "CREATE EXTENSION stream_ext"
export PGTZ=UTC

make_objects() {
run_sql <<'SQL'
CREATE FOREIGN TABLE al (ts timestamptz) SERVER stream_ext;
CREATE VIEW al_v WITH (continuous, time_column = 'ts', allowed_lateness = '1 minute', keep_late = true) AS
  SELECT date_bin('1 hour', ts, '2000-01-01') AS h, count(*) AS c FROM al GROUP BY 1;
-- a view whose run takes a while, to keep the workers busy
CREATE FUNCTION slow(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN PERFORM pg_sleep(1.2); RETURN $1; END $$;
CREATE FOREIGN TABLE slow_s (x int) SERVER stream_ext;
CREATE VIEW slow_v WITH (continuous) AS SELECT slow(x) AS y, count(*) FROM slow_s GROUP BY 1;
SQL
}
make_objects

# every worker runs (a transaction starts with the first running one)
run_sql -c "INSERT INTO al VALUES (NULL)"
wait_until 20 "every worker runs" "SELECT count(*) FILTER (WHERE state = 'running') = $(q "SHOW stream_ext.workers") FROM stream_ext.workers"

stats() { q "SELECT coalesce((SELECT sum(c) FROM al_v WHERE h IS NOT NULL), 0) || ' ' || late_events FROM stream_ext.view_stats WHERE name = 'al_v'::regclass"; }

# async_two_statements NAME FIRST SECOND: session NAME runs an async
# transaction: an event at time FIRST (applied before it goes on), an event
# of slow_v (which keeps the transaction's worker busy), an event at SECOND
# and COMMIT; the SECOND one is applied after the transaction committed.
async_two_statements() {
	local pid
	fifo_session "$1" 7 -v ON_ERROR_STOP=1
	pid=$SESSION_PID
	echo "SET stream_ext.commit_mode = async; BEGIN; INSERT INTO al VALUES ('$2');" >&7
	wait_until 10 "the first statement's event is applied" \
		"SELECT count(*) = 1 FROM stream_ext_internal.watermark_pending WHERE max_event_time = '$2'"
	echo "INSERT INTO slow_s VALUES (1);" >&7
	wait_until 10 "the worker runs slow_v" \
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'stream_ext: applying %slow_v'"
	echo "INSERT INTO al VALUES ('$3'); COMMIT;" >&7
	exec 7>&-
	wait "$pid" || fail "the async transaction failed: $(cat "$SCRATCH/$1.out")"
}
say "one transaction: its second statement is applied after it committed"
async_two_statements x '2026-01-01 12:00+00' '2026-01-01 11:00+00'
[ "$(stats)" = "1 0" ] || fail "the second statement was applied before the transaction committed: $(stats)"
say "ok: the transaction committed before its second statement was applied"
wait_until 20 "both events are judged" "SELECT sum(c) + (SELECT late_events FROM stream_ext.view_stats WHERE name = 'al_v'::regclass) = 2 FROM al_v WHERE h IS NOT NULL"
expect "SELECT sum(c) FROM al_v WHERE h IS NOT NULL" "2" "an event an hour before the transaction's own earlier one is not late"
expect "SELECT count(*) FROM stream_ext.late_events" "0" "nothing kept as late"

# Once all of its records are applied, its time moves the watermark: an
# event of another transaction an hour before it is late.
expect "SELECT watermark FROM stream_ext.view_stats WHERE name = 'al_v'::regclass" "2026-01-01 11:59:00+00" \
	"the watermark counts the transaction's highest time"
run_sql -c "INSERT INTO al VALUES ('2026-01-01 11:30+00')"
expect "SELECT sum(c) || ' ' || (SELECT late_events FROM stream_ext.view_stats WHERE name = 'al_v'::regclass) FROM al_v WHERE h IS NOT NULL" \
	"2 1" "another transaction's event an hour before is late"
expect "SELECT count(*) FROM stream_ext_internal.queued_writers" "0" "no writer is left queued"

say "autocommit async INSERT and COPY: one record each, counted at once"
psql -X -q -v ON_ERROR_STOP=1 -c "SET stream_ext.commit_mode = async" -c "INSERT INTO al VALUES ('2026-01-01 13:00+00')"
printf '2026-01-01 14:00+00\n' | psql -X -q -v ON_ERROR_STOP=1 -c "SET stream_ext.commit_mode = async" -c "COPY al (ts) FROM STDIN"
wait_until 10 "the watermark counts both" \
	"SELECT watermark = '2026-01-01 13:59:00+00' FROM stream_ext.view_stats WHERE name = 'al_v'::regclass"
expect "SELECT count(*) FROM stream_ext_internal.queued_writers" "0" "no autocommit writer is left queued"

say "events held back unjudged: judged against others when applied"
# The transaction's second record waits behind slow_v until it committed;
# meanwhile a session locks the stream (DDL in an open transaction, say):
# the worker holds the view's events back unjudged, and they are judged
# when the combiner applies them, after that session is done.
fifo_session l 9 -v ON_ERROR_STOP=1
lpid=$SESSION_PID
async_two_statements w '2026-01-01 15:00+00' '2026-01-01 14:30+00'
echo "BEGIN; ALTER FOREIGN TABLE al ADD COLUMN held int;" >&9
wait_until 20 "the event is held back" \
	"SELECT count(*) = 1 FROM stream_ext_internal.held_events WHERE NOT judged"
echo "ROLLBACK;" >&9
exec 9>&-
wait "$lpid"
wait_until 30 "the held event is applied" "SELECT count(*) = 0 FROM stream_ext_internal.held_events"
expect "SELECT sum(c) || ' ' || (SELECT late_events FROM stream_ext.view_stats WHERE name = 'al_v'::regclass) FROM al_v WHERE h IN ('2026-01-01 14:00+00', '2026-01-01 15:00+00')" \
	"3 1" "the held event, half an hour before its own transaction's first, is not late (the 11:30 one before is)"
wait_until 10 "the watermark counts the transaction" \
	"SELECT watermark = '2026-01-01 14:59:00+00' FROM stream_ext.view_stats WHERE name = 'al_v'::regclass"

say "a large INSERT in time order, async, over every worker"
# The first records go to the transaction's first worker, busy with slow_v,
# the rest (later times) to the other worker once that one's queue is half
# full: the first ones are applied after the transaction committed.
run_sql -c "SELECT stream_ext.truncate_continuous_view('al_v')"
psql -X -q -v ON_ERROR_STOP=1 -c "SET stream_ext.commit_mode = async" -c "BEGIN" \
	-c "INSERT INTO slow_s VALUES (2)" \
	-c "INSERT INTO al SELECT '2026-02-01 00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(1, 300000) g" \
	-c "COMMIT" >/dev/null
wait_until 60 "the INSERT's events are applied" \
	"SELECT sum(c) + (SELECT late_events FROM stream_ext.view_stats WHERE name = 'al_v'::regclass) = 300000 FROM al_v"
expect "SELECT sum(c) || ' ' || (SELECT late_events FROM stream_ext.view_stats WHERE name = 'al_v'::regclass) FROM al_v" \
	"300000 0" "none of a transaction's own events is late, whatever worker applied them when"
wait_until 10 "no writer is left queued" "SELECT count(*) = 0 FROM stream_ext_internal.queued_writers"

say "a crash loses a committed transaction's queued records: its time still counts"
start_own_server "$SCRATCH/crash"
fresh_db t_async_lateness_crash
make_objects
run_sql -c "INSERT INTO al VALUES (NULL)"
wait_until 20 "every worker runs" "SELECT count(*) FILTER (WHERE state = 'running') = $(q "SHOW stream_ext.workers") FROM stream_ext.workers"
async_two_statements y '2026-01-01 12:00+00' '2026-01-01 11:00+00'
expect "SELECT count(*) FROM stream_ext_internal.queued_writers" "1" "the transaction is queued when the server crashes"
# (an async commit is flushed within a few wal_writer_delay: a crash sooner
# would lose the transaction whole)
run_sql -c "CHECKPOINT"
kill_server_hard "$SCRATCH/crash"
bash "$TEST_DIR/server.sh" restart "$SCRATCH/crash" >/dev/null
run_sql -c "INSERT INTO al VALUES (NULL)"	# the database's processes start
wait_until 60 "the watermark counts the transaction's highest time" \
	"SELECT watermark = '2026-01-01 11:59:00+00' FROM stream_ext.view_stats WHERE name = 'al_v'::regclass"
expect "SELECT sum(c) FROM al_v WHERE h IS NOT NULL" "1" "the event the crash lost is not counted (async)"
say "PASS"
