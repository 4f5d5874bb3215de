#!/usr/bin/env bash
# A view whose code catches stream_ext.view_time_limit's cancel, every time,
# in a loop, over events a Kafka consumer applies (src/worker/paused_views.c):
# the consumer worker is ended and started again, and holds that view's
# events back (recorded) while it applies the messages to the stream's other
# views, each message once; the partition goes on.  Once the view's function
# is fixed, the combiner applies the held events to it: nothing lost.  (The
# worker, and with it the partition, waited for ever.)  Own server:
# view_time_limit = 1s.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.view_time_limit = 1s" \
	"stream_ext.kafka_batch_wait = 200ms"
fresh_db t_kafka_starved
t0=$SECONDS
mock_start 1 stub_t:1

run_sql -c "$(stubborn_function public.stubborn 'x bigint' bigint 'x = 13' x)"
run_sql <<SQL
CREATE FOREIGN TABLE k (v bigint) SERVER stream_ext;
CREATE VIEW k_stubborn WITH (continuous) AS SELECT count(*) AS n, sum(public.stubborn(v)) AS s FROM k;
CREATE VIEW k_all WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM k;
SELECT stream_ext.kafka_consume('k', 'stub_t', '$BROKERS', format => 'text');
SQL
seq 1 5 | produce stub_t
wait_until 30 "the first messages applied" "SELECT n = 5 FROM k_stubborn"
pid=$(q "SELECT pid FROM stream_ext_internal.kafka_worker_status() WHERE NOT producer")
[ -n "$pid" ] || fail "no consumer worker"
say "consumer worker $pid applies the first messages"

log0=$(log_offset)
echo 13 | produce stub_t # the view's function loops on it
wait_until 40 "the consumer worker ended and started again" \
	"SELECT count(*) = 1 FROM stream_ext_internal.kafka_worker_status() WHERE NOT producer AND pid <> $pid"
wait_until 30 "the stream's other view gets the message" "SELECT n || ':' || s = '6:28' FROM k_all"
say "ok: the worker was ended and started again, the other view got the message"
expect "SELECT n FROM k_stubborn" 5 "the looping view's event waits"
expect "SELECT count(*) FROM stream_ext.view_errors
         WHERE name = 'k_stubborn'::regclass AND sqlstate = '54000'
           AND message LIKE '%catches the cancel%Kafka consumer worker was ended%alone for 10 s%'" 1 \
	"the pause is recorded for the view, once"
grep -q "Kafka consumer worker leaves continuous view" <<< "$(log_since "$log0")" ||
	fail "the new worker did not log the pause"
say "ok: the server log says why"

seq 20 22 | produce stub_t
wait_until 30 "later messages applied" "SELECT n || ':' || s = '9:91' FROM k_all"
say "ok: the partition goes on"

run_sql -c "CREATE OR REPLACE FUNCTION public.stubborn(x bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT x'"
wait_until 120 "the held events applied once the function is fixed" \
	"SELECT n || ':' || s = '9:91' FROM k_stubborn"
say "ok: once its function is fixed, the view has every message"
expect "SELECT n || ':' || s FROM k_all" "9:91" "each message once in the other view"
expect "SELECT count(*) FROM stream_ext_internal.held_events" 0 "nothing left held"
say "PASS ($((SECONDS - t0))s)"
