#!/usr/bin/env bash
# Kafka workers and the life of their database (mock cluster; own server with
# stream_ext.kafka_max_workers = 2):
#   1. ALTER DATABASE ... RENAME TO of a database with a running consumer
#      succeeds (its processes step aside), and the consumer goes on after;
#   2. a plain DROP DATABASE of a database with a running consumer (two
#      workers: every Kafka slot) succeeds, and its slots are free again: a
#      consumer of another database starts and consumes;
#   3. DROP EXTENSION in a database with a consumer frees its slot too;
#   4. a consumer that cannot get a slot is logged once, not every round,
#      and kafka_consumers shows it retrying and why;
#   5. a copy made by CREATE DATABASE ... TEMPLATE stops its consumer rather
#      than read its source's topic.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.kafka_max_workers = 2" \
	"stream_ext.kafka_batch_wait = 20ms"
mock_start 1 a_t:2 b_t:1 c_t:1
say "mock cluster at $BROKERS"

consumer_db() { # NAME TOPIC PARALLELISM
	empty_db "$1"
	_drop_db=
	run_sql -d "$1" <<SQL
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE ev (x text) SERVER stream_ext;
CREATE VIEW ev_n WITH (continuous) AS SELECT count(*) AS n FROM ev;
SELECT stream_ext.kafka_consume('ev', '$2', '$BROKERS', format => 'text', parallelism => $3);
SQL
}
count_in() { psql -X -At -d "$1" -c "SELECT n FROM ev_n"; }

consumer_db kdb_a a_t 2
seq 1 100 | produce a_t
PGDATABASE=kdb_a wait_until 30 "kdb_a consumes" "SELECT n = 100 FROM ev_n"

# --- 0. a role that may not rename the database stops nothing trying
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE kdb_stranger LOGIN"
pids() { psql -X -At -d postgres -c "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
                                        WHERE datname = '$1' AND backend_type LIKE 'stream_ext%'"; }
before=$(pids kdb_a)
out=$(psql -X -U kdb_stranger -d postgres -c "ALTER DATABASE kdb_a RENAME TO kdb_taken" 2>&1 || true)
grep -q "must be owner of database kdb_a" <<< "$out" || fail "a stranger's rename: $out"
[ "$(pids kdb_a)" = "$before" ] || fail "a stranger's refused rename stopped kdb_a's processes"
say "ok: a refused ALTER DATABASE ... RENAME by a role that does not own the database stops nothing"

# --- 1. rename
offset=$(log_offset)
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER DATABASE kdb_a RENAME TO kdb_renamed" ||
	fail "ALTER DATABASE ... RENAME TO failed with a consumer running"
seq 101 150 | produce a_t
PGDATABASE=kdb_renamed wait_until 60 "the renamed database's consumer goes on" "SELECT n = 150 FROM ev_n"
say "ok: ALTER DATABASE ... RENAME TO with a running consumer; it consumed on after"

# --- 2. plain DROP DATABASE frees the slots
t=$SECONDS
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE kdb_renamed" ||
	fail "DROP DATABASE failed with a consumer running"
say "ok: DROP DATABASE of a database with a consumer of parallelism 2 in $((SECONDS - t)) s"
consumer_db kdb_b b_t 2
seq 1 40 | produce b_t
PGDATABASE=kdb_b wait_until 60 "another database's consumer gets a freed slot" "SELECT n = 40 FROM ev_n"
say "ok: the dropped database's Kafka slots went to another database's consumer"

# --- 3. DROP EXTENSION frees the slot too; 4. one warning while waiting
consumer_db kdb_c c_t 1
seq 1 30 | produce c_t
sleep 3
[ "$(count_in kdb_c)" = 0 ] || fail "kdb_c consumed with no slot free"
state=$(psql -X -At -d kdb_c -c "SELECT state || ': ' || last_error FROM stream_ext.kafka_consumers")
[ "$state" = "retrying: no Kafka worker slot free: the server's 2 (stream_ext.kafka_max_workers) are all taken" ] ||
	fail "a consumer without a slot shows: $state"
warnings=$(log_since "$offset" | grep -c 'could not start 1 Kafka consumer workers' || true)
[ "$warnings" -le 2 ] || fail "the lack of a Kafka slot was logged $warnings times in 3 s"
psql -X -q -d kdb_b -v ON_ERROR_STOP=1 -c "DROP EXTENSION stream_ext CASCADE"
PGDATABASE=kdb_c wait_until 60 "kdb_c's consumer gets kdb_b's slot" "SELECT n = 30 FROM ev_n"
say "ok: DROP EXTENSION freed its consumer's slot; a waiting consumer was logged $warnings time(s) and showed why"
[ "$(psql -X -At -d kdb_c -c "SELECT state FROM stream_ext.kafka_consumers")" = running ] ||
	fail "the consumer that got a slot is not running"

# --- 5. a copy made by CREATE DATABASE ... TEMPLATE does not consume its
# source's topic: its consumer is stopped there
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE kdb_copy TEMPLATE kdb_c" ||
	fail "CREATE DATABASE ... TEMPLATE of a database with a consumer"
psql -X -q -d kdb_copy -v ON_ERROR_STOP=1 -c "INSERT INTO ev VALUES ('local')"   # its workers start
PGDATABASE=kdb_copy wait_until 30 "the copy's consumer is stopped" \
	"SELECT state = 'stopped' AND NOT enabled FROM stream_ext.kafka_consumers"
seq 31 40 | produce c_t
PGDATABASE=kdb_c wait_until 60 "the source consumes on" "SELECT n = 40 FROM ev_n"
sleep 1
[ "$(count_in kdb_copy)" = 31 ] || fail "the copy consumed its source's topic: $(count_in kdb_copy) events"
grep -q 'stopped Kafka consumer .* it was started in another database' < <(log_since "$offset") ||
	fail "the copy's stopped consumer is not logged"
say "ok: a template copy's consumer is stopped, not reading its source's topic"
for db in kdb_b kdb_c kdb_copy; do
	psql -X -q -d postgres -c "DROP DATABASE $db WITH (FORCE)"
done
psql -X -q -d postgres -c "DROP ROLE kdb_stranger"
say PASS
