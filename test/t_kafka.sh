#!/usr/bin/env bash
# Kafka ingestion against librdkafka's mock cluster (test/kafka/mock_broker.c):
# formats and metadata columns, bad messages, start positions and reset,
# partitions added to the topic,
# stop/start, consumer groups, privileges and secrets, broker faults (lag
# from the brokers' watermarks, NULL while they are down; the rate over the
# last 10 s; running again as soon as they answer), and a server restart with
# consumers running.  Own server (it is restarted).
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV" "stream_ext.kafka_batch_wait = 20ms" "stream_ext.combine_interval = 50ms"
fresh_db t_kafka
t0=$SECONDS
mock_start 1 xid_t:1 json_t:3 flat_t:1 nest_t:1 gen_t:1 csv_t:2 text_t:1 bad_t:1 st_t:1 pos_t:2 out_t:2 grp_t:4 rst_t:2 priv_t:1 grow_t:2 late_t:2 bad2_t:1 liar_t:1 gc_t:2 long_t:1
say "mock cluster at $BROKERS"

########## json, with key/partition/offset/timestamp columns
run_sql <<SQL
CREATE FOREIGN TABLE j (url text, user_id bigint, latency float8, ts timestamptz,
                        k text, p int, o bigint, kts timestamptz) SERVER stream_ext;
CREATE VIEW j_url WITH (continuous) AS
  SELECT url, count(*) AS n, sum(user_id) AS users, sum(latency) AS lat, max(ts) AS last FROM j GROUP BY url;
CREATE VIEW j_part WITH (continuous) AS
  SELECT p, count(*) AS n, sum(o) AS osum, max(o) AS omax, min(kts) AS first_kts, count(k) AS keyed FROM j GROUP BY p;
CREATE VIEW j_key WITH (continuous) AS SELECT k, count(*) AS n FROM j GROUP BY k;
SELECT stream_ext.kafka_consume('j', 'json_t', '$BROKERS', key_column => 'k', partition_column => 'p',
                                offset_column => 'o', timestamp_column => 'kts');
SQL
for i in $(seq 1 900); do
	echo "k$((i % 9))|{\"url\": \"/p/$((i % 10))\", \"user_id\": $i, \"latency\": $((i % 7)).25, \"ts\": \"2026-01-01 00:00:$((i % 60))+00\", \"extra\": {\"x\": [1, 2]}}"
done | produce json_t -K'|'
# missing fields are NULL, extra fields ignored, unicode escapes decoded
echo '{"url": "/only\u00e9", "nested": {"url": "/no"}}' | produce json_t -p 0
wait_until 30 "901 json messages applied" "SELECT coalesce(sum(n), 0) = 901 FROM j_url"
expect "SELECT string_agg(format('%s:%s:%s:%s', url, n, users, lat), ' ' ORDER BY url) FROM j_url WHERE url LIKE '/p/%'" \
	"$(q "SELECT string_agg(format('%s:%s:%s:%s', url, n, users, lat), ' ' ORDER BY url) FROM (
	      SELECT '/p/' || (i % 10) AS url, count(*) AS n, sum(i) AS users, sum((i % 7) + 0.25::float8) AS lat
	        FROM generate_series(1, 900) i GROUP BY 1) s")" "json values per url equal the batch query"
expect "SELECT max(last) = '2026-01-01 00:00:59+00' FROM j_url" "t" "json timestamps through timestamptz input"
expect "SELECT format('%s:%s', n, users IS NULL) FROM j_url WHERE url = '/onlyé'" "1:t" "missing json fields are NULL"
expect "SELECT bool_and(osum = omax * (omax + 1) / 2 AND n = omax + 1) FROM j_part" "t" "offset column: every offset of every partition once"
expect "SELECT count(*) FROM j_part" "3" "partition column: 3 partitions"
expect "SELECT bool_and(first_kts > now() - interval '1 hour') FROM j_part" "t" "timestamp column: Kafka timestamps"
expect "SELECT string_agg(coalesce(k, '') || '=' || n, ' ' ORDER BY k) FROM j_key" \
	"k0=100 k1=100 k2=100 k3=100 k4=100 k5=100 k6=100 k7=100 k8=100 =1" "key column"

# flat objects take a fast path: simple escapes, numbers, literals, duplicate
# keys (the last wins), as PostgreSQL's JSON parser reads them
run_sql <<SQL
CREATE FOREIGN TABLE jf (s text, n numeric, b boolean) SERVER stream_ext;
CREATE VIEW jf_v WITH (continuous) AS SELECT s, count(*) AS c, sum(n) AS n, bool_and(b) AS b FROM jf GROUP BY s;
SELECT stream_ext.kafka_consume('jf', 'flat_t', '$BROKERS');
SQL
printf '%s\n' '{"s": "a\"b\\c\nd\/", "n": -1.5e3, "b": true}' '{ "s" : "plain" , "n" : 0 , "b" : false }' \
	'{"s": "dup", "s": "last", "n": 2, "b": null}' '{"n": 1E+2, "s": "last", "b": true, "x": [1, {"y": 2}]}' \
	'{"s": "u\u00e9", "n": 0.5}' '{"s": "junk"} x' '{"s": "bad", "n": 01}' | produce flat_t
wait_until 30 "flat json applied" "SELECT coalesce(sum(c), 0) = 5 FROM jf_v"
expect "SELECT string_agg(format('%s|%s|%s|%s', s, c, n, b), ' ' ORDER BY s COLLATE \"C\") FROM jf_v" \
	"$(printf 'a"b\\c\nd/|1|-1500|t last|2|102|t plain|1|0|f u\303\251|1|0.5|')" "json fast path: escapes, numbers, literals, duplicate keys"
expect "SELECT count(*) FROM stream_ext.kafka_errors WHERE stream = 'jf'::regclass" "2" "json fast path: invalid messages still rejected"

# nested objects and arrays of a field arrive whole, as their JSON text; the
# keys inside a nested value are not the message's
run_sql <<SQL
CREATE FOREIGN TABLE jn (i int, j jsonb, t text) SERVER stream_ext;
CREATE VIEW jn_rows WITH (continuous) AS SELECT i, j, t FROM jn;
SELECT stream_ext.kafka_consume('jn', 'nest_t', '$BROKERS');
SQL
printf '%s\n' '{"i":1,"j":{"a":1}}' '{"i":2,"t":{"x":1}}' '{"i":3,"t":[1,2]}' '{"t":[1,2],"i":4}' \
	'{"i":5,"j":[1,2]}' '{"i":6,"j":{}}' '{"i":7,"j":{"i":70},"t":"after"}' \
	'{"i":8,"t":{"y":[{"z":1}]},"j":"\u00e9"}' | produce nest_t
wait_until 30 "nested json applied" "SELECT count(*) = 8 FROM jn_rows"
expect "SELECT string_agg(format('%s|%s|%s', i, j, t), ' ' ORDER BY i) FROM jn_rows" \
	"$(printf '1|{"a": 1}| 2||{"x":1} 3||[1,2] 4||[1,2] 5|[1, 2]| 6|{}| 7|{"i": 70}|after 8|"\303\251"|{"y":[{"z":1}]}')" \
	"json: nested values whole, as JSON text"
expect "SELECT count(*) FROM stream_ext.kafka_errors WHERE stream = 'jn'::regclass" "0" "json: no nested value refused"
q "SELECT stream_ext.kafka_stop('jn', 'nest_t')" >/dev/null

########## csv and text, with format options
run_sql <<SQL
CREATE FOREIGN TABLE c (a int, b text, x float8) SERVER stream_ext;
CREATE VIEW c_v WITH (continuous) AS SELECT b, count(*) AS n, sum(a) AS a, sum(x) AS x FROM c GROUP BY b;
SELECT stream_ext.kafka_consume('c', 'csv_t', '$BROKERS', format => 'csv');
CREATE FOREIGN TABLE t (a int, b text, x float8) SERVER stream_ext;
CREATE VIEW t_v WITH (continuous) AS SELECT b, count(*) AS n, sum(a) AS a, sum(x) AS x FROM t GROUP BY b;
SELECT stream_ext.kafka_consume('t', 'text_t', '$BROKERS', format => 'text',
       format_options => '{"delimiter": "|", "header": true, "null": "-"}');
SQL
printf '%s\n' '1,"x,y",2.5' '2,,1' '3,"say ""hi""",0.5' '4,"",1' | produce csv_t -p 0
printf '5,multi,1\n6,multi,2\n' | produce csv_t -p 1 -D '#'
printf 'a|b|x\n7|t\\tab|1.5#a|b|x\n8|-|2#a|b|x\n9|pipe\\|not|1' | produce text_t -D '#'
# octal and hex escapes as COPY reads them; an escaped byte that is not UTF-8 is refused
printf 'a|b|x\n10|\\101\\x42\\x43z\\xg|4#a|b|x\n11|bad\\377|5#a|b|x\n12|nul\\000x|6' | produce text_t -D '#'
# a header line with more fields than the stream is skipped all the same
printf 'a|b|x|extra\n13|hdr|7' | produce text_t -D '#'
wait_until 30 "csv events applied" "SELECT coalesce(sum(n), 0) = 6 FROM c_v"
expect "SELECT string_agg(format('%s:%s:%s:%s', coalesce(b, '<null>'), n, a, x), ' ' ORDER BY b NULLS FIRST) FROM c_v" \
	'<null>:1:2:1 :1:4:1 multi:2:11:3 say "hi":1:3:0.5 x,y:1:1:2.5' "csv: quotes, escapes, NULL vs empty string, two lines in one message"
wait_until 30 "text events applied" "SELECT coalesce(sum(n), 0) = 5 FROM t_v"
expect "SELECT string_agg(format('%s:%s:%s', coalesce(b, '<null>'), a, x), ' ' ORDER BY b NULLS FIRST) FROM t_v" \
	"$(printf '<null>:8:2 ABCzxg:10:4 hdr:13:7 pipe|not:9:1 t\tab:7:1.5')" "text: header skipped (one with more fields too), delimiter, escapes, null string"
expect "SELECT string_agg(error, '; ') FROM stream_ext.kafka_errors WHERE stream = 't'::regclass" \
	'invalid byte sequence for encoding "UTF8" in field 2; invalid byte sequence for encoding "UTF8" in field 2' \
	"text: an escaped byte that is not UTF-8, or NUL, is refused"

########## bad messages: recorded, counted, the partition goes on
run_sql <<SQL
ALTER SYSTEM SET stream_ext.kafka_error_payload_limit = 12;
SELECT pg_reload_conf();
CREATE FOREIGN TABLE b (url text, user_id bigint) SERVER stream_ext;
CREATE VIEW b_v WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM b;
CREATE VIEW b_div WITH (continuous) AS SELECT count(*) AS n, sum(100 / user_id) AS s FROM b;
SELECT stream_ext.kafka_consume('b', 'bad_t', '$BROKERS');
SQL
{
	for i in 1 2 3; do echo "{\"url\": \"/a\", \"user_id\": $i}"; done
	echo '{"url": "/a", "user_id": "not a number at all"}'
	echo '{"url": "/a", "user_id": '
	echo '[1, 2]'
	echo '{"url": "/a", "user_id": 0}'
	for i in 4 5; do echo "{\"url\": \"/a\", \"user_id\": $i}"; done
} | produce bad_t
wait_until 30 "good messages after bad ones applied" "SELECT n = 6 FROM b_v"
expect "SELECT s FROM b_v" "15" "bad messages skipped, the others applied"
expect "SELECT string_agg(format('%s:%s:%s', partition, \"offset\", length(payload)), ' ' ORDER BY \"offset\") FROM stream_ext.kafka_errors WHERE stream = 'b'::regclass" \
	"0:3:12 0:4:12 0:5:6" "kafka_errors: partition, offset, payload cut to the limit"
expect "SELECT array_agg(error ORDER BY \"offset\") FROM stream_ext.kafka_errors WHERE stream = 'b'::regclass" \
	'{"invalid input syntax for type bigint: \"not a number at all\"","invalid JSON: The input string ended unexpectedly.","message is a JSON array, not an object"}' "kafka_errors: error texts"
expect "SELECT errors FROM stream_ext.kafka_consumers WHERE stream = 'b'::regclass" "3" "kafka_consumers counts the errors"
# an error that quotes a value of 200 kB is kept cut to its first 1,000 bytes
run_sql <<SQL
CREATE FOREIGN TABLE lb (user_id bigint) SERVER stream_ext;
SELECT stream_ext.kafka_consume('lb', 'long_t', '$BROKERS');
SQL
printf '{"user_id": "%s"}\n' "$(head -c 200000 /dev/zero | tr '\0' x)" | produce long_t
wait_until 30 "the long message set aside" "SELECT count(*) = 1 FROM stream_ext.kafka_errors WHERE stream = 'lb'::regclass"
expect "SELECT octet_length(error) || ' ' || left(error, 40) FROM stream_ext.kafka_errors WHERE stream = 'lb'::regclass" \
	'1000 invalid input syntax for type bigint: "x' "kafka_errors: an error cut to 1,000 bytes"
q "DROP FOREIGN TABLE lb CASCADE" >/dev/null
expect "SELECT format('%s:%s', n, s) FROM b_div" "5:228" "a view error skips the event for that view only"
expect "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'b_div'::regclass" "1" "view error recorded"

########## a view's code raising a transient SQLSTATE (a cancel's) for one
# message, every time: after a few tries (each ending the worker, which
# starts again after its backoff), the message is set aside for that view,
# recorded, and the partition goes on (it stalled for ever before)
run_sql <<SQL
CREATE FUNCTION liar(x bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS \$\$
BEGIN
  IF x = 13 THEN RAISE EXCEPTION 'pretend cancel' USING ERRCODE = 'query_canceled'; END IF;
  RETURN x;
END \$\$;
CREATE FOREIGN TABLE lr (url text, user_id bigint) SERVER stream_ext;
CREATE VIEW lr_v WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM lr;
CREATE VIEW lr_liar WITH (continuous) AS SELECT count(*) AS n, sum(liar(user_id)) AS s FROM lr;
-- a second view raising so for the same message: each comes to own its
-- error in turn (the worker's backoff doubles at each failure: about a minute)
CREATE VIEW lr_liar2 WITH (continuous) AS SELECT count(*) AS n, sum(liar(user_id + 1) - 1) AS s FROM lr;
SELECT stream_ext.kafka_consume('lr', 'liar_t', '$BROKERS');
SQL
for i in 11 12 13 14; do echo "{\"url\": \"/a\", \"user_id\": $i}"; done | produce liar_t
wait_until 150 "messages after one whose views raise 57014 applied" "SELECT n = 4 FROM lr_v"
expect "SELECT format('%s:%s', n, s) FROM lr_v" "4:50" "two views' cancels for one message cost the other view nothing"
expect "SELECT format('%s:%s', n, s) FROM lr_liar" "3:37" "... and that view only that message"
expect "SELECT format('%s:%s', n, s) FROM lr_liar2" "3:38" "... and the second view only its message"
expect "SELECT string_agg(sqlstate || ':' || message, ' ' ORDER BY name::text) FROM stream_ext.view_errors WHERE name IN ('lr_liar'::regclass, 'lr_liar2'::regclass)" \
	"57014:pretend cancel 57014:pretend cancel" "the messages set aside are recorded"

########## a stream column that holds partial aggregate states is not read
# from Kafka (the consumer decodes as the bootstrap superuser, who may enter
# them): the consumer says why, and makes no event; it says so in
# last_error also when log_min_messages keeps errors out of the log
set_server_setting log_min_messages log
run_sql <<SQL
CREATE DOMAIN states_d AS stream_ext_internal.agg_state[];
CREATE FOREIGN TABLE st (url text, sts states_d) SERVER stream_ext;
CREATE VIEW st_v WITH (continuous) AS SELECT count(*) AS n FROM st;
SELECT stream_ext.kafka_consume('st', 'st_t', '$BROKERS');
SQL
echo '{"url": "/a", "sts": ["tdigest(double precision,integer):\\x07000000"]}' | produce st_t
wait_until 30 "the consumer of a stream with states reports why it does not run" \
	"SELECT last_error LIKE '%column \"sts\" of stream \"st\" cannot be read from Kafka%' FROM stream_ext.kafka_consumers WHERE stream = 'st'::regclass"
expect "SELECT n FROM st_v" "0" "no event of a stream column of partial states from Kafka"
psql -X -q -d postgres -c "ALTER SYSTEM RESET log_min_messages" -c "SELECT pg_reload_conf()" >/dev/null
run_sql <<SQL
SELECT stream_ext.kafka_stop('st', 'st_t');
SQL

########## start positions and reset
for p in 0 1; do seq 1 10 | sed 's/.*/{"user_id": &}/' | produce pos_t -p $p; done
for p in 0 1; do seq 11 15 | sed 's/.*/{"user_id": &}/' | produce pos_t -p $p; done
# The mock cluster does not look offsets up by time (ListOffsets by timestamp
# answers -1, as Kafka does for a time after the last message), so only that
# case is tested: a start time after every message starts at the end.
future=$(q "SELECT now() + interval '1 day'")
run_sql <<SQL
CREATE FOREIGN TABLE s_earliest (user_id bigint) SERVER stream_ext;
CREATE FOREIGN TABLE s_latest (user_id bigint) SERVER stream_ext;
CREATE FOREIGN TABLE s_time (user_id bigint) SERVER stream_ext;
CREATE FOREIGN TABLE s_offsets (user_id bigint) SERVER stream_ext;
CREATE VIEW v_earliest WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM s_earliest;
CREATE VIEW v_latest WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM s_latest;
CREATE VIEW v_time WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM s_time;
CREATE VIEW v_offsets WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM s_offsets;
SELECT stream_ext.kafka_consume('s_earliest', 'pos_t', '$BROKERS');
SELECT stream_ext.kafka_consume('s_latest', 'pos_t', '$BROKERS', start => 'latest');
SELECT stream_ext.kafka_consume('s_time', 'pos_t', '$BROKERS', start => '$future');
SELECT stream_ext.kafka_consume('s_offsets', 'pos_t', '$BROKERS', start => '{"0": 7, "1": 2}');
SQL
wait_until 30 "latest: offsets stored" "SELECT next_offsets = '{15,15}' FROM stream_ext.kafka_consumers WHERE stream = 's_latest'::regclass"
wait_until 30 "timestamp: offsets stored" "SELECT next_offsets = '{15,15}' FROM stream_ext.kafka_consumers WHERE stream = 's_time'::regclass"
for p in 0 1; do seq 16 17 | sed 's/.*/{"user_id": &}/' | produce pos_t -p $p; done
wait_until 30 "earliest: all applied" "SELECT n = 34 FROM v_earliest"
wait_until 30 "latest: new ones applied" "SELECT n = 4 FROM v_latest"
wait_until 30 "timestamp: applied" "SELECT n = 4 FROM v_time"
wait_until 30 "offsets: applied" "SELECT n = 25 FROM v_offsets"
expect "SELECT format('%s %s %s %s', e.s, l.s, t.s, o.s) FROM v_earliest e, v_latest l, v_time t, v_offsets o" \
	"$((2 * (55 + 65 + 33))) $((2 * 33)) $((2 * 33)) $(((8 + 9 + 10) + (3 + 4 + 5 + 6 + 7 + 8 + 9 + 10) + 2 * (65 + 33)))" \
	"start positions: earliest, latest, timestamp, offsets"
q "SELECT stream_ext.kafka_reset('s_latest', 'pos_t', 'earliest')" >/dev/null
wait_until 30 "reset: read again from the earliest" "SELECT n = 38 FROM v_latest"
expect "SELECT next_offsets FROM stream_ext.kafka_consumers WHERE stream = 's_latest'::regclass" "{17,17}" "reset: offsets at the end"
expect "SELECT coalesce(last_error, '<none>') FROM stream_ext.kafka_consumers WHERE stream = 's_latest'::regclass" \
	"<none>" "reset: the restart it asked for is no error"

########## partitions added to the topic
# The mock cluster cannot add partitions to a topic, so the topic grows by
# moving the consumer to a second cluster where it has four partitions, not
# two.  The two new ones have no stored offset while the others do: they
# were added after the consumer began, and start at their earliest message
# even though the consumer's start is 'latest'.  (The same code runs when a
# running consumer sees the topic grow, which it checks every 5 s.)
# latest_two_workers STREAM TOPIC LABEL: 10 messages in each of the topic's
# 2 partitions, then a consumer with start 'latest' and 2 workers into a new
# stream STREAM (view STREAM_v), then 2 more messages per partition: only
# those 4 reach the view.  The consumer is left running.
latest_two_workers() {
	local p
	for p in 0 1; do seq 1 10 | produce "$2" -p $p; done
	run_sql <<SQL
CREATE FOREIGN TABLE $1 (v int) SERVER stream_ext;
CREATE VIEW ${1}_v WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM $1;
SELECT stream_ext.kafka_consume('$1', '$2', '$BROKERS', format => 'text', start => 'latest', parallelism => 2);
SQL
	wait_until 30 "$2: offsets stored at the end" "SELECT next_offsets = '{10,10}' FROM stream_ext.kafka_consumers WHERE stream = '$1'::regclass"
	for p in 0 1; do seq 11 12 | produce "$2" -p $p; done
	wait_until 30 "$2: new messages applied" "SELECT n = 4 FROM ${1}_v"
	expect "SELECT s FROM ${1}_v" "$((2 * 23))" "$3"
}
latest_two_workers g grow_t "start 'latest' with 2 workers: each partition starts at its end"
q "SELECT stream_ext.kafka_stop('g', 'grow_t')" >/dev/null

mock_extra 1 grow_t:4
for p in 0 1; do seq 101 114 | BROKERS=$EXTRA_BROKERS produce grow_t -p $p; done
for p in 2 3; do seq 201 205 | BROKERS=$EXTRA_BROKERS produce grow_t -p $p; done
q "SELECT stream_ext.kafka_consume('g', 'grow_t', '$EXTRA_BROKERS', format => 'text', start => 'latest', parallelism => 2)" >/dev/null
wait_until 30 "the grown topic consumed" "SELECT n = 18 FROM g_v"
expect "SELECT format('%s %s', s, next_offsets) FROM g_v, stream_ext.kafka_consumers WHERE stream = 'g'::regclass" \
	"$((2 * 23 + 2 * (113 + 114) + 2 * (201 + 202 + 203 + 204 + 205))) {14,14,5,5}" \
	"added partitions read from their earliest message, the others from their stored offsets"
q "SELECT stream_ext.kafka_stop('g', 'grow_t')" >/dev/null

# the topic recreated (here: a third cluster, whose topic holds fewer messages
# than the stored offsets): its partitions end before them, and the consumer
# reads them from their start instead of dropping every message below them
mock_extra 1 grow_t:4
for p in 0 1 2 3; do seq 301 303 | BROKERS=$EXTRA_BROKERS produce grow_t -p $p; done
q "SELECT stream_ext.kafka_consume('g', 'grow_t', '$EXTRA_BROKERS', format => 'text', parallelism => 2)" >/dev/null
wait_until 30 "the recreated topic consumed" "SELECT n = 30 FROM g_v"
expect "SELECT format('%s %s', s, next_offsets) FROM g_v, stream_ext.kafka_consumers WHERE stream = 'g'::regclass" \
	"$((2 * 23 + 2 * (113 + 114) + 2 * (201 + 202 + 203 + 204 + 205) + 4 * (301 + 302 + 303))) {3,3,3,3}" \
	"a recreated topic whose partitions end before the stored offsets is read from its start"
grep -q 'partition 0 ends at offset 3, before its stored offset 14' "$STREAM_EXT_SERVER_LOG" ||
	fail "the reset of a recreated topic was not logged"
q "SELECT stream_ext.kafka_stop('g', 'grow_t')" >/dev/null

# brokers gone for good (their cluster killed): the consumer retries, and
# still stops when told (it waits for no broker request that does not end)
mock_extra 1 gone_t:4
gone_pid=${_bg_pids[-1]}
for p in 0 1 2 3; do echo $p | BROKERS=$EXTRA_BROKERS produce gone_t -p $p; done
run_sql <<SQL
CREATE FOREIGN TABLE gone (v int) SERVER stream_ext;
CREATE VIEW gone_v WITH (continuous) AS SELECT count(*) AS n FROM gone;
SELECT stream_ext.kafka_consume('gone', 'gone_t', '$EXTRA_BROKERS', format => 'text');
SQL
wait_until 30 "gone_t consumed" "SELECT n = 4 FROM gone_v"
kill -9 "$gone_pid"
wait_until 60 "the consumer reports its brokers gone" \
	"SELECT state = 'retrying' AND lag IS NULL FROM stream_ext.kafka_consumers WHERE stream = 'gone'::regclass"
sleep 3		# it asks the brokers every second meanwhile
stop_start=$SECONDS
out=$(q "SELECT stream_ext.kafka_stop('gone', 'gone_t')" 2>&1) || fail "kafka_stop with the brokers gone: $out"
say "ok: a consumer whose brokers are gone stopped in $((SECONDS - stop_start)) s"

# A fresh consumer whose first offset lookups fail (the next 6 ListOffsets
# requests, API key 2, fail with TOPIC_AUTHORIZATION_FAILED; librdkafka
# retries some itself): the partitions still start at the consumer's start
# once the brokers answer, not at their earliest like added ones.
mock_cmd "errors 2 29 6"
latest_two_workers l late_t "a start the brokers did not give at once is still 'latest'"
grep -q 'topic "late_t": could not query the offsets of partition' "$STREAM_EXT_SERVER_LOG" ||
	fail "the offset lookup did not fail: the case above tested nothing"
q "SELECT stream_ext.kafka_stop('l', 'late_t')" >/dev/null

########## stop and start
q "SELECT stream_ext.kafka_stop('s_earliest', 'pos_t')" >/dev/null
expect "SELECT state FROM stream_ext.kafka_consumers WHERE stream = 's_earliest'::regclass" "stopped" "stop: stopped at once"
expect "SELECT count(*) FROM stream_ext_internal.kafka_worker_status() s JOIN stream_ext_internal.kafka_consumers c ON c.id = s.consumer_id WHERE c.stream = 's_earliest'::regclass AND s.pid IS NOT NULL" "0" "stop: no worker left"
for p in 0 1; do seq 18 20 | sed 's/.*/{"user_id": &}/' | produce pos_t -p $p; done
wait_until 30 "running consumers see the new messages" "SELECT n = 31 FROM v_offsets"
expect "SELECT n FROM v_earliest" "34" "stop: a stopped consumer reads nothing"
q "SELECT stream_ext.kafka_start('s_earliest', 'pos_t')" >/dev/null
wait_until 30 "start: resumed" "SELECT n = 40 FROM v_earliest"
expect "SELECT s FROM v_earliest" "$((2 * (55 + 65 + 33 + 57)))" "start: resumed at the stored offsets, nothing lost or doubled"

########## consumer group: two consumers share a topic
# (the mock cluster completes a rebalance only after the session timeout)
grp_opts='{"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}'
run_sql -v grp_opts="$grp_opts" <<SQL
CREATE FOREIGN TABLE g1 (user_id bigint) SERVER stream_ext;
CREATE FOREIGN TABLE g2 (user_id bigint) SERVER stream_ext;
CREATE VIEW g1_v WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM g1;
CREATE VIEW g2_v WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM g2;
SELECT stream_ext.kafka_consume('g1', 'grp_t', '$BROKERS', group_id => 'shared', options => :'grp_opts');
SQL
seq 1 2000 | sed 's/.*/{"user_id": &}/' | produce grp_t
wait_until 60 "first group member consumed" "SELECT n = 2000 FROM g1_v"
q "SELECT stream_ext.kafka_consume('g2', 'grp_t', '$BROKERS', group_id => 'shared', options => '$grp_opts')" >/dev/null
wait_until 60 "both members have partitions" \
	"SELECT count(*) = 2 FROM stream_ext_internal.kafka_worker_status() s JOIN stream_ext_internal.kafka_consumers c ON c.id = s.consumer_id
	  WHERE c.stream IN ('g1'::regclass, 'g2'::regclass) AND s.state = 'running' AND cardinality(s.partitions) > 0"
# one quarter per partition (the producer would put a whole batch into one)
for p in 0 1 2 3; do seq $((2001 + p * 500)) $((2500 + p * 500)) | sed 's/.*/{"user_id": &}/' | produce grp_t -p $p; done
wait_until 60 "group consumed everything" "SELECT g1_v.n + g2_v.n = 4000 FROM g1_v, g2_v"
expect "SELECT coalesce(g1_v.s, 0) + coalesce(g2_v.s, 0) FROM g1_v, g2_v" "$((4000 * 4001 / 2))" "group: every message in exactly one member"
expect "SELECT g2_v.n > 0 FROM g2_v" "t" "group: the second member got a share"

########## kafka_reset of a consumer in a group: its partitions start again at
# the start given, not at the offsets the group committed (which the reset
# cannot move, and the larger of the two used to win: the reset did nothing)
run_sql -v grp_opts="$grp_opts" <<SQL
CREATE FOREIGN TABLE rs (user_id bigint) SERVER stream_ext;
CREATE VIEW rs_v WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM rs;
SELECT stream_ext.kafka_consume('rs', 'rst_t', '$BROKERS', group_id => 'solo', options => :'grp_opts');
SQL
for p in 0 1; do seq $((1 + p * 50)) $((50 + p * 50)) | sed 's/.*/{"user_id": &}/' | produce rst_t -p $p; done
wait_until 60 "the group consumer consumed" "SELECT n = 100 FROM rs_v"
q "SELECT stream_ext.kafka_reset('rs', 'rst_t', 'earliest')" >/dev/null
wait_until 60 "reset: the group consumer read its partitions again" "SELECT n = 200 FROM rs_v"
expect "SELECT s FROM rs_v" $((2 * 5050)) "reset in a group: every message once more, from the earliest"
expect "SELECT next_offsets FROM stream_ext.kafka_consumers WHERE stream = 'rs'::regclass" "{50,50}" \
	"reset in a group: the offsets stored again past the end"
# the reset holds even when the worker stops before its first batch is
# committed to the group (the group's offsets, 50 each, used to win again):
# its batch waits for the stream, locked meanwhile
# (a foreign table takes no LOCK TABLE; an ALTER rolled back locks it as well)
psql -X -q -c "BEGIN" -c "ALTER FOREIGN TABLE rs ADD COLUMN lock_probe int" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
wait_until 30 "the stream locked" \
	"SELECT count(*) = 1 FROM pg_locks WHERE relation = 'rs'::regclass AND mode = 'AccessExclusiveLock' AND granted"
q "SELECT stream_ext.kafka_reset('rs', 'rst_t', 'earliest')" >/dev/null
wait_until 60 "the worker started again at 0 and waits for the stream" \
	"SELECT (SELECT next_offsets FROM stream_ext.kafka_consumers WHERE stream = 'rs'::regclass) = '{0,0}'
	    AND EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'rs'::regclass AND NOT granted)"
q "SELECT stream_ext.kafka_stop('rs', 'rst_t')" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM pg_locks
   WHERE relation = 'rs'::regclass AND mode = 'AccessExclusiveLock' AND granted" >/dev/null
q "SELECT stream_ext.kafka_start('rs', 'rst_t')" >/dev/null
wait_until 60 "after the stop, the reset partitions read again from the earliest" "SELECT n = 300 FROM rs_v"
sleep 2
expect "SELECT n || ' ' || s FROM rs_v" "300 $((3 * 5050))" "a reset in a group holds across a stop before the first batch"
q "DROP FOREIGN TABLE rs CASCADE" >/dev/null   # its worker's slot is for later consumers

########## a member that cannot read the offsets its group committed does not
# start at its start setting: it would read again from the earliest what
# another member consumed (or skip with 'latest').  The assignment fails
# (the next OffsetFetch, API key 9, fails with GROUP_AUTHORIZATION_FAILED)
# and is tried again; the member then continues where the group committed.
run_sql -v grp_opts="$grp_opts" <<SQL
CREATE FOREIGN TABLE ga (user_id bigint) SERVER stream_ext;
CREATE VIEW ga_v WITH (continuous) AS SELECT count(*) AS n FROM ga;
SELECT stream_ext.kafka_consume('ga', 'gc_t', '$BROKERS', group_id => 'taken', options => :'grp_opts');
SQL
for p in 0 1; do seq 1 50 | sed 's/.*/{"user_id": &}/' | produce gc_t -p $p; done
wait_until 60 "the first member consumed" "SELECT n = 100 FROM ga_v"
sleep 2   # (its offsets go to the group after each batch, asynchronously)
q "DROP FOREIGN TABLE ga CASCADE" >/dev/null
mock_cmd "errors 9 30 1"
run_sql -v grp_opts="$grp_opts" <<SQL
CREATE FOREIGN TABLE gb (user_id bigint) SERVER stream_ext;
CREATE VIEW gb_v WITH (continuous) AS SELECT count(*) AS n FROM gb;
SELECT stream_ext.kafka_consume('gb', 'gc_t', '$BROKERS', group_id => 'taken', options => :'grp_opts',
                                start => 'earliest');
SQL
wait_until 90 "the second member has the partitions" \
	"SELECT (SELECT next_offsets FROM stream_ext.kafka_consumers WHERE stream = 'gb'::regclass) = '{50,50}'"
grep -q 'could not read the offsets committed by group "taken"' "$STREAM_EXT_SERVER_LOG" ||
	fail "the group's offsets were read at once: the case above tested nothing"
for p in 0 1; do seq 51 55 | sed 's/.*/{"user_id": &}/' | produce gc_t -p $p; done
wait_until 60 "the second member consumed the new messages" "SELECT n >= 10 FROM gb_v"
sleep 1
expect "SELECT n FROM gb_v" 10 "a member continues where its group committed, also after a failed lookup"
q "DROP FOREIGN TABLE gb CASCADE" >/dev/null

########## privileges and secrets
run_sql <<SQL
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE FOREIGN TABLE pv (user_id bigint) SERVER stream_ext;
CREATE VIEW pv_v WITH (continuous) AS SELECT count(*) AS n FROM pv;
GRANT INSERT ON pv TO alice, bob;
GRANT SELECT ON pv_v TO alice;
SQL
out=$(PGUSER=bob psql -X -At -c "SELECT stream_ext.kafka_consume('pv', 'priv_t', '$BROKERS')" 2>&1 || true)
grep -q 'permission denied to manage Kafka consumers' <<< "$out" || fail "non-member could start a consumer: $out"
say "ok: a role without stream_ext_kafka cannot start a consumer"
out=$(PGUSER=bob psql -X -At -c "SELECT stream_ext_internal.kafka_register('pv', 'priv_t', 'x', 'json', 'earliest', 1, NULL, '{}', '{}', NULL, NULL, NULL, NULL)" 2>&1 || true)
grep -q 'permission denied for function' <<< "$out" || fail "non-member could call kafka_register: $out"
say "ok: the internal function is not executable by others"
q "CREATE FOREIGN TABLE pv2 (user_id bigint) SERVER stream_ext; GRANT stream_ext_kafka TO alice" >/dev/null
out=$(PGUSER=alice psql -X -At -c "SELECT stream_ext_internal.kafka_register('pv2', 'priv_t', 'x', 'json', 'earliest', 1, NULL, '{}', '{}', NULL, NULL, NULL, NULL)" 2>&1 || true)
grep -q 'permission denied for stream "public.pv2"' <<< "$out" || fail "a member without INSERT on the stream could register a consumer: $out"
say "ok: a member needs INSERT on the stream, also through the internal function"
PGUSER=alice q "SELECT stream_ext.kafka_consume('pv', 'priv_t', '$BROKERS', options => '{\"sasl.password\": \"hunter2\", \"fetch.max.bytes\": \"1048576\", \"sasl.oauthbearer.config\": \"clientSecret=s3\"}')" >/dev/null
echo '{"user_id": 1}' | produce priv_t
wait_until 30 "member's consumer runs" "SELECT n = 1 FROM pv_v"
say "ok: a member of stream_ext_kafka can start a consumer"
q "GRANT SELECT ON pv TO alice" >/dev/null
for opt in '{"sasl.kerberos.kinit.cmd": "touch /tmp/stream_ext_pwned"}' '{"ssl.ca.location": "/etc/passwd"}' \
	'{"plugin.library.paths": "/tmp/x.so"}' '{"SSL.Engine.Location": "/tmp/x.so"}'; do
	out=$(PGUSER=alice psql -X -At -c "SELECT stream_ext.kafka_consume('pv', 'priv_t', '$BROKERS', options => '$opt')" 2>&1 || true)
	grep -q 'only superusers may set librdkafka option' <<< "$out" || fail "a member set librdkafka option $opt: $out"
	out=$(PGUSER=alice psql -X -At -c "SELECT stream_ext.kafka_produce('pv', 'priv_out', '$BROKERS', options => '$opt')" 2>&1 || true)
	grep -q 'only superusers may set librdkafka option' <<< "$out" || fail "a member set librdkafka option $opt for a producer: $out"
done
[ ! -e /tmp/stream_ext_pwned ] || fail "a member's kinit command ran"
q "REVOKE SELECT ON pv FROM alice" >/dev/null
say "ok: options naming a file, a library or a command of the server are for superusers only"
# a stream's generated columns (its owner's code) are computed as its owner,
# not as the worker's superuser
run_sql <<'SQL'
GRANT CREATE ON SCHEMA public TO alice;
SET ROLE alice;
CREATE FUNCTION whoami(bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$BEGIN RETURN current_user; END$$;
CREATE FOREIGN TABLE gw (user_id bigint, who text GENERATED ALWAYS AS (whoami(user_id)) STORED) SERVER stream_ext;
CREATE VIEW gw_v WITH (continuous) AS SELECT user_id, who FROM gw;
RESET ROLE;
SQL
PGUSER=alice q "SELECT stream_ext.kafka_consume('gw', 'gen_t', '$BROKERS')" >/dev/null
echo '{"user_id": 7}' | produce gen_t
wait_until 30 "the generated column's stream consumed" "SELECT count(*) = 1 FROM gw_v"
expect "SELECT format('%s %s', user_id, who) FROM gw_v" "7 alice" "Kafka: generated columns computed as the stream's owner"
q "SELECT stream_ext.kafka_stop('gw', 'gen_t')" >/dev/null   # its worker slot is needed below
expect "SELECT options FROM stream_ext.kafka_consumers WHERE stream = 'pv'::regclass" \
	'{"sasl.password": "********", "fetch.max.bytes": "1048576", "sasl.oauthbearer.config": "********"}' \
	"secrets masked in kafka_consumers"
out=$(PGUSER=bob psql -X -At -c "SELECT options FROM stream_ext_internal.kafka_consumers" 2>&1 || true)
grep -q 'permission denied' <<< "$out" || fail "catalog readable by others: $out"
say "ok: the catalog with the secrets is not readable by others"
expect "SELECT count(*) FROM stream_ext.kafka_errors" "7" "kafka_errors readable by a superuser"
PGUSER=bob expect "SELECT count(*) FROM stream_ext.kafka_errors" "0" "kafka_errors payloads hidden from non-members"
# a member sees the payloads and error texts (which quote values) of the streams it may read only
errors_b="SELECT count(*) || ' ' || count(payload) || ' ' || count(error) FROM stream_ext.kafka_errors WHERE stream = 'b'::regclass"
PGUSER=alice expect "$errors_b" "3 0 0" "kafka_errors: no payload or error text of a stream a member may not read"
q "GRANT SELECT ON b TO alice" >/dev/null
PGUSER=alice expect "$errors_b" "3 3 3" "kafka_errors: payloads and error texts of a stream it may read"
q "REVOKE SELECT ON b FROM alice" >/dev/null

########## kafka_errors keeps the newest kafka_max_errors of a consumer; errors counts all
set_server_setting stream_ext.kafka_max_errors 2
run_sql <<SQL
CREATE FOREIGN TABLE b2 (user_id bigint) SERVER stream_ext;
CREATE VIEW b2_v WITH (continuous) AS SELECT count(*) AS n FROM b2;
SELECT stream_ext.kafka_consume('b2', 'bad2_t', '$BROKERS');
SQL
{ echo '{"user_id": 1}'; for i in 1 2 3 4 5; do echo "bad $i"; done; echo '{"user_id": 2}'; } | produce bad2_t
wait_until 30 "good messages around five bad ones applied" "SELECT n = 2 FROM b2_v"
expect "SELECT errors FROM stream_ext.kafka_consumers WHERE stream = 'b2'::regclass" "5" "kafka_consumers counts every bad message"
expect "SELECT string_agg(\"offset\"::text, ' ' ORDER BY \"offset\") FROM stream_ext.kafka_errors WHERE stream = 'b2'::regclass" \
	"4 5" "kafka_errors keeps the newest kafka_max_errors bad messages"
{ echo "bad 6"; echo "bad 7"; echo '{"user_id": 3}'; } | produce bad2_t
wait_until 30 "a later batch applied" "SELECT n = 3 FROM b2_v"
expect "SELECT errors || ' ' || (SELECT string_agg(\"offset\"::text, ' ' ORDER BY \"offset\") FROM stream_ext.kafka_errors e
        WHERE e.stream = 'b2'::regclass) FROM stream_ext.kafka_consumers WHERE stream = 'b2'::regclass" \
	"7 7 8" "a later batch's bad messages replace the older ones, all counted"
psql -X -q -d postgres -c "ALTER SYSTEM RESET stream_ext.kafka_max_errors" -c "SELECT pg_reload_conf()" >/dev/null

########## broker faults: down/up and request errors; nothing lost or doubled
run_sql <<SQL
CREATE FOREIGN TABLE o (user_id bigint) SERVER stream_ext;
CREATE VIEW o_v WITH (continuous) AS SELECT count(*) AS n, sum(user_id) AS s FROM o;
SELECT stream_ext.kafka_consume('o', 'out_t', '$BROKERS');
SQL
seq 1 500 | sed 's/.*/{"user_id": &}/' | produce out_t
wait_until 30 "before the outage" "SELECT n = 500 FROM o_v"
wait_until 10 "the lag is known and 0" "SELECT lag = 0 FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass"
wait_until 5 "rate: messages per second of the last 10 s" "SELECT rate > 0 FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass"
say "ok: rate $(q "SELECT rate FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass") messages/s over the last 10 s"
wait_until 15 "the rate falls to 0 when idle" "SELECT rate = 0 FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass"
say "ok: rate 0 once idle for 10 s"
mock_cmd "down 1"
wait_until 60 "the consumer reports the outage" \
	"SELECT last_error IS NOT NULL AND state = 'retrying' AND lag IS NULL FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass"
say "ok: outage reported, lag unknown (NULL): $(q "SELECT last_error FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass")"
# the brokers answer, but one of the consumer's partitions has no leader
# (its only replica's broker gone): still retrying, saying so
mock_cmd "leader out_t 1 -1"
mock_cmd "up 1"
deadline=$((SECONDS + 15))
until grep -q 'partition 1 of topic "out_t" has no leader' "$SRV/server.log"; do
	[ $SECONDS -lt $deadline ] || fail "the consumer did not report partition 1 without a leader"
	sleep 0.2
done
sleep 3
expect "SELECT state || '/' || (lag IS NULL) FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass" \
	"retrying/true" "brokers back, partition 1 without a leader: still retrying, lag unknown"
mock_cmd "leader out_t 1 1"
# running again as soon as the brokers answer, before any new message
wait_until 15 "running again once the brokers answer" \
	"SELECT state = 'running' AND lag = 0 FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass"
say "ok: running again with lag 0 after the outage, no message needed"
seq 501 1000 | sed 's/.*/{"user_id": &}/' | produce out_t
wait_until 60 "after the outage" "SELECT n = 1000 FROM o_v"
# Fetch (API key 1) fails 20 times with NOT_LEADER_FOR_PARTITION (6)
mock_cmd "errors 1 6 20"
seq 1001 1500 | sed 's/.*/{"user_id": &}/' | produce out_t
wait_until 60 "after the fetch errors" "SELECT n = 1500 FROM o_v"
expect "SELECT s FROM o_v" "$((1500 * 1501 / 2))" "broker faults: nothing lost or doubled"
expect "SELECT state FROM stream_ext.kafka_consumers WHERE stream = 'o'::regclass" "running" "running again after the faults"

########## a consumer's deltas carry its own transaction
# (they become visible when its batch commits, as any writer's): checked on
# the delta rows before the combiner merges them, with merges held back
q "ALTER SYSTEM SET stream_ext.combine_interval = '1h'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 10 "the combiner holds merges back" "SELECT current_setting('stream_ext.combine_interval') = '1h'"
sleep 1
first=$(q "SELECT pg_current_xact_id()")
run_sql <<SQL
CREATE FOREIGN TABLE xs (v int, pad text) SERVER stream_ext;
CREATE VIEW xs_all WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM xs;
CREATE VIEW xs_mod WITH (continuous) AS SELECT v % 3 AS m, count(*) AS n FROM xs GROUP BY 1;
SELECT stream_ext.kafka_consume('xs', 'xid_t', '$BROKERS');
SQL
for i in $(seq 1 60); do echo "{\"v\": $i, \"pad\": \"$(printf '%*s' $((i * 7)) '' | tr ' ' x)\"}"; done | produce xid_t
wait_until 30 "60 messages applied" "SELECT n = 60 AND s = 1830 FROM xs_all"
for v in xs_all xs_mod; do
	delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = '$v'::regclass")
	expect "SELECT count(*) FILTER (WHERE writer_xid::xid8 < '$first'::xid8) || '/' || (count(*) > 0)
	          FROM $delta" "0/true" "$v: the consumer's deltas carry its transaction, not an older one"
done
q "ALTER SYSTEM RESET stream_ext.combine_interval" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

########## server restart with consumers running
before=$(q "SELECT n FROM v_earliest")
bash "$TEST_DIR/server.sh" stop "$SRV"
for p in 0 1; do seq 21 22 | sed 's/.*/{"user_id": &}/' | produce pos_t -p $p; done
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
say "server restarted"
wait_until 60 "consumers resumed after the restart" "SELECT n = $((before + 4)) FROM v_earliest"
wait_until 60 "every consumer running again" \
	"SELECT bool_and(state = 'running') FROM stream_ext.kafka_consumers WHERE enabled"
expect "SELECT format('%s %s', n, s) FROM v_earliest" "$((before + 4)) $((2 * (55 + 65 + 33 + 57 + 43)))" "restart: nothing lost or doubled"
expect "SELECT state FROM stream_ext.kafka_consumers WHERE stream = 's_latest'::regclass" "running" "restart: consumers running"

########## dropping a stream drops its consumer
q "SET client_min_messages = warning; DROP FOREIGN TABLE o CASCADE" >/dev/null
wait_until 30 "its worker stopped" "SELECT count(*) = 0 FROM stream_ext_internal.kafka_worker_status() s WHERE NOT EXISTS (SELECT FROM stream_ext_internal.kafka_consumers c WHERE c.id = s.consumer_id)"
expect "SELECT count(*) FROM stream_ext.kafka_consumers WHERE topic = 'out_t'" "0" "drop stream: consumer gone"

say "PASS ($((SECONDS - t0))s)"
