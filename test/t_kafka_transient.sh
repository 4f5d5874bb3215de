#!/usr/bin/env bash
# An error met while a consumer decodes a message that is not the message's
# fault: the stream's domain checks a row another session has locked
# (55P03, its lock not free).  The batch is tried again, and the message is
# applied once the lock is gone, not set aside for good (it was: recorded in
# kafka_errors, its offset passed).  What the domain's code raises itself is
# the message's fault, whatever its SQLSTATE: set aside.  And a batch stores
# its offsets only over those it started from; a consumer made while its
# stream is dropped goes with it.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.kafka_batch_wait = 20ms"
fresh_db t_kafka_transient
t0=$SECONDS
mock_start 1 tr_t:1

run_sql <<SQL
CREATE TABLE allowed (v int PRIMARY KEY);
INSERT INTO allowed SELECT g FROM generate_series(1, 100) g;
-- reads a row of allowed, as long as no one holds the table; RAISEs 40001
-- itself for 99
CREATE FUNCTION is_allowed(v int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS \$\$
BEGIN
  IF v = 99 THEN RAISE EXCEPTION 'not this one' USING ERRCODE = 'serialization_failure'; END IF;
  PERFORM 1 FROM public.allowed a WHERE a.v = is_allowed.v FOR SHARE NOWAIT;
  RETURN FOUND;
END \$\$;
CREATE DOMAIN allowed_int AS int CHECK (public.is_allowed(VALUE));
CREATE FOREIGN TABLE tr (v allowed_int) SERVER stream_ext;
CREATE VIEW tr_v WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM tr;
SELECT stream_ext.kafka_consume('tr', 'tr_t', '$BROKERS', format => 'text');
SQL
seq 1 10 | produce tr_t
wait_until 30 "the first messages applied" "SELECT n = 10 FROM tr_v"

# hold the row of 11 for 3 s while its message arrives
psql -X -q -d t_kafka_transient -c "BEGIN" -c "SELECT v FROM allowed WHERE v = 11 FOR UPDATE" \
	-c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null &
locker=$!
wait_until 10 "the row locked" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)'"
echo 11 | produce tr_t
wait "$locker"
wait_until 60 "the message applied once the lock is gone" "SELECT n = 11 FROM tr_v"
expect "SELECT s FROM tr_v" 66 "its value counted once"
expect "SELECT count(*) FROM stream_ext.kafka_errors" 0 "nothing set aside"
say "ok: a lock not free while a message was decoded held the batch back, not the message"

echo 99 | produce tr_t
echo 12 | produce tr_t
wait_until 30 "the message after the refused one applied" "SELECT n = 12 FROM tr_v"
expect "SELECT count(*) FILTER (WHERE error LIKE '%not this one%') FROM stream_ext.kafka_errors" 1 \
	"what the domain's code raises itself (40001) sets its message aside"
say "ok: an error the owner's code raises is the message's"

# A stored offset another worker moved while this one's batch ran (in a
# group, a worker that took the partition over after this one's poll
# interval passed, from the same stored offset): this worker's batch does
# not overwrite it, it starts again from the stored offset.  Here the row
# is moved by hand, five messages on, between two batches.
run_sql -c "UPDATE stream_ext_internal.kafka_offsets SET next_offset = next_offset + 5"
seq 13 22 | produce tr_t
wait_until 60 "the worker goes on from the moved offset" "SELECT n = 17 FROM tr_v"
expect "SELECT s FROM tr_v" $((66 + 12 + 18 + 19 + 20 + 21 + 22)) "the five messages before it are skipped, none applied twice"
expect "SELECT next_offset FROM stream_ext_internal.kafka_offsets" 23 "the stored offset is past the last message"
say "ok: a batch does not overwrite a stored offset it did not start from"

# A consumer made while another session drops its stream: the DROP waits for
# the consumer's transaction and takes the consumer with it.  (It did not
# wait: the consumer it could not see yet outlived its stream, its worker
# failing for ever in a slot others need.)
run_sql -c "CREATE FOREIGN TABLE doomed (v int) SERVER stream_ext"
psql -X -q -d t_kafka_transient -v ON_ERROR_STOP=1 -c "BEGIN" \
	-c "SELECT stream_ext.kafka_consume('doomed', 'tr_t', '$BROKERS', format => 'text')" \
	-c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null &
maker=$!
wait_until 10 "the consumer made, not committed" "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)'"
q "DROP FOREIGN TABLE doomed" >/dev/null
wait "$maker" || fail "the session making the consumer failed"
expect "SELECT count(*) FROM stream_ext_internal.kafka_consumers c
          WHERE NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = c.stream)" 0 "no consumer outlives its stream"
say "ok: a DROP of a stream waits for a consumer being made for it, and drops it"
say "PASS ($((SECONDS - t0))s)"
