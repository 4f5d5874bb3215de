#!/usr/bin/env bash
# Kafka sink, large transactions: a transaction that fills the writer's
# buffer (about 4 MB of events) into a stream whose only view is its
# producer's leaves the staging of its events to a batch worker, which
# formats them while the writer goes on and commits the outbox rows in its
# own transactions, tagged with the writer's.  The producer sends them only
# once the writer committed: nothing of a transaction still open, prepared,
# rolled back (prepared too), rolled back to a savepoint, or cut by a kill -9
# of the server; those rows leave the outbox, also while the producer is
# stopped, and are not counted as staged.  In async commit mode the writer
# stages its events itself: a kill -9 right after COMMIT loses none.  Read
# back with kcat, the committed events are there, exactly, and each key's in
# the order written, also in a transaction whose first events the writer
# staged and the rest a worker.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"
N=80000
COMMITTED=$((7 * N - 806))	# the events of the transactions that commit, below

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "max_prepared_transactions = 10"
fresh_db t_kafka_sink_workers
# 32 partitions: the mock cluster keeps the newest 5 MB of each
mock_start 1 big:32

run_sql <<SQL
CREATE FOREIGN TABLE ev (k text, i bigint, pad text) SERVER stream_ext;
SELECT stream_ext.kafka_produce('ev', topic => 'big', brokers => '$BROKERS', key_column => 'k');
SQL
wait_until 60 "the producer runs" "SELECT state = 'running' FROM stream_ext.kafka_producers"

# the events of range r: N events, i = r * 1000000 + 1 .. r * 1000000 + N,
# about 100 bytes each
events() { echo "INSERT INTO ev SELECT 'k' || (g % 97), g, repeat('p', 40)
                   FROM generate_series($(($1 * 1000000 + 1)), $(($1 * 1000000 + N))) g"; }
produced() { q "SELECT messages FROM stream_ext.kafka_producers"; }
# events in the outbox that a worker staged for a writer
STAGED_FOR_WRITERS="(SELECT coalesce(sum(n), 0) FROM stream_ext_internal.kafka_outbox
                      WHERE writer_xid IS NOT NULL)"

# a session that stays in its transaction: psql reads a fifo
open_session() {
	fifo_session session 8 -v ON_ERROR_STOP=1
	session=$SESSION_PID
}
close_session() {
	exec 8>&-
	wait "$session" 2>/dev/null || true
}

# 1: open, staged by a worker, not sent; sent at its commit
open_session
echo "BEGIN; $(events 1);" >&8
wait_until 60 "a worker staged the open transaction's events" "SELECT $STAGED_FOR_WRITERS = $N"
sleep 3
[ "$(produced)" = 0 ] || fail "$(produced) messages sent of a transaction still open"
expect "SELECT lag FROM stream_ext.kafka_producers" 0 "an open transaction's events are not counted as staged"
echo "COMMIT;" >&8
close_session
wait_until 60 "the committed transaction's events sent" "SELECT messages = $N FROM stream_ext.kafka_producers"

# 2: rolled back: its rows leave the outbox, unsent
open_session
echo "BEGIN; $(events 2);" >&8
wait_until 60 "a worker staged the events of a transaction to roll back" "SELECT $STAGED_FOR_WRITERS = $N"
echo "ROLLBACK;" >&8
close_session
wait_until 30 "the rolled back transaction's rows leave the outbox" \
	"SELECT count(*) = 0 FROM stream_ext_internal.kafka_outbox"
[ "$(produced)" = $N ] || fail "$(produced) messages sent after a rollback, want $N"
say "ok: a rolled back transaction's events are not sent"

# 3: a savepoint rolled back after a worker staged its events, the rest committed
open_session
echo "BEGIN; $(events 3); SAVEPOINT s; $(events 4);" >&8
wait_until 60 "a worker staged both sides of the savepoint" "SELECT $STAGED_FOR_WRITERS = 2 * $N"
echo "ROLLBACK TO s; COMMIT;" >&8
close_session
wait_until 60 "the events before the savepoint sent" \
	"SELECT messages = 2 * $N FROM stream_ext.kafka_producers"
wait_until 30 "the rolled back savepoint's rows leave the outbox" \
	"SELECT count(*) = 0 FROM stream_ext_internal.kafka_outbox"
say "ok: a savepoint rolled back sends none of its events"

# 5: in progress when the server is killed: never sent, its rows leave
open_session
echo "BEGIN; $(events 5);" >&8
wait_until 60 "a worker staged the events of a transaction the crash cuts" "SELECT $STAGED_FOR_WRITERS = $N"
kill_server_hard "$SRV"
close_session
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
wait_until 60 "the cut transaction's rows leave the outbox" \
	"SELECT count(*) = 0 FROM stream_ext_internal.kafka_outbox"
[ "$(produced)" = $((2 * N)) ] || fail "$(produced) messages sent after the crash, want $((2 * N))"
say "ok: a transaction cut by a crash is not sent"

# 6: after the restart; 7: a few events the writer stages itself, then many
# the worker stages, in one transaction: each key's in the order written
run_sql -c "$(events 6)"
open_session
echo "BEGIN; INSERT INTO ev SELECT 'k' || (g % 97), g, 'small' FROM generate_series(7000001, 7000194) g;
      $(events 7 | sed 's/7000001/7001001/');" >&8
wait_until 60 "a worker staged the big part of the mixed transaction (the writer the small one)" \
	"SELECT $STAGED_FOR_WRITERS = $N - 1000"
echo "COMMIT;" >&8
close_session
wait_until 60 "every committed event sent" \
	"SELECT messages = 4 * $N - 806 FROM stream_ext.kafka_producers"

# 8: prepared, then committed; 9: prepared, then rolled back
run_sql -c "BEGIN; $(events 8); PREPARE TRANSACTION 'p8'" -c "BEGIN; $(events 9); PREPARE TRANSACTION 'p9'"
wait_until 60 "a worker staged the prepared transactions' events" "SELECT $STAGED_FOR_WRITERS = 2 * $N"
before=$(produced)
sleep 2
[ "$(produced)" = "$before" ] || fail "events of a prepared transaction sent before its COMMIT PREPARED"
run_sql -c "COMMIT PREPARED 'p8'" -c "ROLLBACK PREPARED 'p9'"
wait_until 60 "the prepared transaction's events sent once committed" \
	"SELECT messages = $before + $N FROM stream_ext.kafka_producers"
wait_until 30 "the rolled back prepared transaction's rows leave the outbox" \
	"SELECT count(*) = 0 FROM stream_ext_internal.kafka_outbox"
say "ok: a prepared transaction's events are sent once it commits, never if it rolls back"

# 10: async commit mode: the writer stages its events itself (no worker
# staged any while it is open), so COMMIT returns with them durable, also
# through a kill -9 right after
open_session
echo "SET stream_ext.commit_mode = async; BEGIN; $(events 10);" >&8
wait_until 30 "the async writer's INSERT done" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'idle in transaction' AND query LIKE 'INSERT INTO ev%'"
sleep 2
[ "$(q "SELECT $STAGED_FOR_WRITERS")" = 0 ] || fail "a worker staged an async writer's events"
echo "COMMIT;" >&8
close_session
kill_server_hard "$SRV"
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
wait_until 60 "the async transaction's events sent after the crash" \
	"SELECT messages >= $before + 2 * $N AND lag = 0 FROM stream_ext.kafka_producers"
say "ok: a committed async transaction's events survive a kill -9"

# 11: the producer stopped: a committed writer's rows are settled (no
# transaction id kept) and an aborted one's deleted all the same; sent once
# it starts again
run_sql -c "SELECT stream_ext.kafka_stop_producer('ev', 'big')"
wait_until 30 "the producer stopped" "SELECT state = 'stopped' FROM stream_ext.kafka_producers"
run_sql -c "$(events 11)"
open_session
echo "BEGIN; $(events 12);" >&8
wait_until 60 "a worker staged the events of a transaction to roll back" \
	"SELECT $STAGED_FOR_WRITERS = $N AND (SELECT sum(n) FROM stream_ext_internal.kafka_outbox) = 2 * $N"
echo "ROLLBACK;" >&8
close_session
wait_until 30 "with the producer stopped, the committed rows settled and the rolled back ones gone" \
	"SELECT $STAGED_FOR_WRITERS = 0 AND (SELECT sum(n) FROM stream_ext_internal.kafka_outbox) = $N"
run_sql -c "SELECT stream_ext.kafka_start_producer('ev', 'big')"
wait_until 60 "every committed event sent" \
	"SELECT count(*) = 0 FROM stream_ext_internal.kafka_outbox"
say "ok: with the producer stopped, rows are settled and rolled back ones deleted"

# read the topic back: line number, header, key, value
kcat -C -b "$BROKERS" -t big -e -q -X isolation.level=read_committed -f '%h\t%k\t%s\n' \
	2>"$SCRATCH/kcat.err" | awk '{print NR "\t" $0}' > "$SCRATCH/consumed.tsv" ||
	fail "kcat could not read the topic: $(cat "$SCRATCH/kcat.err")"
run_sql <<SQL
CREATE TABLE got (line int, header text, key text, value text);
\copy got FROM '$SCRATCH/consumed.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
CREATE TABLE firsts AS
  SELECT line, key, (value::json->>'i')::bigint AS i
    FROM (SELECT *, row_number() OVER (PARTITION BY header ORDER BY line) AS copy FROM got) g
   WHERE copy = 1;
CREATE TABLE want AS
  SELECT r * 1000000 + g AS i FROM unnest(ARRAY[1, 3, 6, 8, 10, 11]) r, generate_series(1, $N) g
  UNION ALL SELECT g FROM generate_series(7000001, 7000194) g
  UNION ALL SELECT g FROM generate_series(7001001, 7000000 + $N) g;
SQL
expect "SELECT count(*) FROM firsts" $COMMITTED "as many distinct events as were committed"
expect "SELECT count(*) FROM ((SELECT i FROM want EXCEPT SELECT i FROM firsts)
                              UNION ALL (SELECT i FROM firsts EXCEPT SELECT i FROM want)) d" 0 \
	"the events sent are exactly the committed ones"
expect "SELECT count(*) FROM firsts WHERE key <> 'k' || (i % 97)" 0 "each message's key is its k"
expect "SELECT count(*) FROM (SELECT i, lag(i) OVER (PARTITION BY key ORDER BY line) AS before
                               FROM firsts) o WHERE before > i" 0 \
	"each key's events in the order written"
