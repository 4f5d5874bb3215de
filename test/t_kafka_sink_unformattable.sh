#!/usr/bin/env bash
# Kafka sink, an event its producer cannot format: the stream's type has a
# cast to text (user code, run as the producer's role) that raises for some
# values, so formatting that event fails.  The event costs only itself: it is
# set aside in kafka_sink_errors with the error (no message: there is none)
# and counted in kafka_producers.errors; the other events of its batch, and
# the events written after it, are produced once each; the producer keeps
# running.  An error the cast raises with a transient SQLSTATE (40001) is
# its own too: the event is set aside, not retried for ever.  An error every
# event meets alike (the producer's role may no longer call the cast's
# function) sets nothing aside: the events wait until it may.  Own server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db t_kafka_sink_unformattable
mock_start 1 unf:2 unf2:1 unf3:1

run_sql <<SQL
CREATE TYPE pt AS (x int, y int);
CREATE FUNCTION pt_text(p pt) RETURNS text LANGUAGE plpgsql IMMUTABLE AS \$\$
BEGIN
  IF p.x = -1 THEN
    RAISE EXCEPTION 'cannot format point %', p;
  ELSIF p.x = -2 THEN
    RAISE EXCEPTION 'point % conflicts', p USING ERRCODE = '40001';
  END IF;
  RETURN p.x || '/' || p.y;
END \$\$;
CREATE CAST (pt AS text) WITH FUNCTION pt_text(pt);
CREATE FOREIGN TABLE pu (k text, i int, p pt) SERVER stream_ext;
SELECT stream_ext.kafka_produce('pu', topic => 'unf', brokers => '$BROKERS',
                                format => 'csv', key_column => 'k');
SQL
wait_until 60 "the producer runs" "SELECT state = 'running' FROM stream_ext.kafka_producers"

# 50 events in one transaction (one batch); 17 and 33 cannot be formatted
run_sql -c "INSERT INTO pu SELECT 'k' || (g % 5), g,
                                  ROW(CASE g WHEN 17 THEN -1 WHEN 33 THEN -2 ELSE g END, g)::pt
              FROM generate_series(1, 50) g"
wait_until 60 "the 48 formattable events acknowledged" "SELECT messages = 48 FROM stream_ext.kafka_producers"
wait_until 60 "the two others set aside" "SELECT errors = 2 FROM stream_ext.kafka_producers"

expect "SELECT string_agg(coalesce(key, '-') || ':' || error || ':' || coalesce(message, '-'), ',' ORDER BY error)
        FROM stream_ext.kafka_sink_errors" \
	'-:cannot format point (-1,17):-,-:point (-2,33) conflicts:-' "kafka_sink_errors"
expect "SELECT state || ' ' || lag FROM stream_ext.kafka_producers" "running 0" "the producer's state and lag"
[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_outbox")" = 0 ] || fail "the outbox is not empty"
say "ok: the two unformattable events are set aside with their errors, the 48 others produced"

# the sink is not stalled: an event written after them is produced, none again
run_sql -c "INSERT INTO pu VALUES ('k0', 51, ROW(51, 51))"
wait_until 60 "the event after them produced" "SELECT messages = 49 AND lag = 0 FROM stream_ext.kafka_producers"
sleep 2
expect "SELECT messages || ' ' || errors FROM stream_ext.kafka_producers" "49 2" "counts later"
say "ok: an event after them is produced; nothing is counted twice"

# the topic: events 1-51 but 17 and 33, once each, formatted by the cast
kcat -C -b "$BROKERS" -t unf -e -q -f '%k\t%s\n' > "$SCRATCH/consumed.tsv" 2>"$SCRATCH/kcat.err" ||
	fail "kcat could not read the topic: $(cat "$SCRATCH/kcat.err")"
run_sql <<SQL
CREATE TABLE got (key text, value text);
\copy got FROM '$SCRATCH/consumed.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
SQL
expect "SELECT count(*) || ' ' || count(DISTINCT value) || ' ' ||
                count(*) FILTER (WHERE value = key || ',' || split_part(value, ',', 2) || ',' ||
                                 split_part(value, ',', 2) || '/' || split_part(value, ',', 2)) || ' ' ||
                string_agg(split_part(value, ',', 2), ',' ORDER BY split_part(value, ',', 2)::int)
                  FILTER (WHERE split_part(value, ',', 2)::int IN (16, 17, 18, 32, 33, 34))
         FROM got" "49 49 49 16,18,32,34" "the topic (messages, distinct, well-formed, around the set-aside ones)"
say "ok: the topic holds the 49 formattable events once each, not the two others"

# many at once: of 300 events every third cannot be formatted (more than one
# round of the search finds); all 100 are set aside, the 200 others produced
run_sql -c "INSERT INTO pu SELECT 'k' || (g % 5), g, ROW(CASE WHEN g % 3 = 0 THEN -1 ELSE g END, g)::pt
              FROM generate_series(101, 400) g"
wait_until 120 "the 200 formattable events acknowledged, the 100 others set aside" \
	"SELECT messages = 249 AND errors = 102 AND lag = 0 FROM stream_ext.kafka_producers"
expect "SELECT count(*) || ' ' || count(*) FILTER (WHERE error ~ '^cannot format point \(-1,[0-9]+\)\$' AND
                                                  split_part(split_part(error, ',', 2), ')', 1)::int % 3 = 0)
        FROM stream_ext.kafka_sink_errors" "102 100" "kafka_sink_errors holds the 100 (and the 2 earlier)"
expect "SELECT state FROM stream_ext.kafka_producers" "running" "the producer runs"

# an error every event meets alike is the batch's, not the events': the role a
# producer acts for may no longer call the cast's function.  Nothing is set
# aside; the events stay staged, the producer retries, and once the role may
# call it again they are produced
run_sql <<SQL
CREATE ROLE kuf_owner IN ROLE stream_ext_kafka;
CREATE FOREIGN TABLE pu2 (k text, i int, p pt) SERVER stream_ext;
GRANT SELECT ON pu2 TO kuf_owner;
SET ROLE kuf_owner;
SELECT stream_ext.kafka_produce('pu2', topic => 'unf2', brokers => '$BROKERS', format => 'csv');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pt_text(pt) FROM PUBLIC;
SQL
run_sql -c "INSERT INTO pu2 SELECT 'k', g, ROW(g, g)::pt FROM generate_series(1, 20) g"
wait_until 60 "the producer fails on the cast's right" \
	"SELECT last_error LIKE '%permission denied for function pt_text%' FROM stream_ext.kafka_producers WHERE topic = 'unf2'"
sleep 2
expect "SELECT errors || ' ' || messages || ' ' || lag FROM stream_ext.kafka_producers WHERE topic = 'unf2'" "0 0 20" \
	"nothing set aside or produced, the 20 events staged"
run_sql -c "GRANT EXECUTE ON FUNCTION pt_text(pt) TO PUBLIC"
wait_until 120 "the 20 events produced once the right is back" \
	"SELECT messages = 20 AND lag = 0 AND errors = 0 FROM stream_ext.kafka_producers WHERE topic = 'unf2'"
say "ok: an error of the role's rights sets nothing aside; the events go once the right is back"

# failures all alike (one SQLSTATE, one message) at the front of a batch,
# more than the search's tries reach: 40 events whose cast exceeds a limit
# (54000, "requested length too large"), then 20 good ones.  The good ones
# show the failures are the events': the 40 are set aside over the rounds,
# the 20 produced (the producer is not stalled by the events at the front)
run_sql <<SQL
CREATE TYPE pt3 AS (x int, y int);
CREATE FUNCTION pt3_text(p pt3) RETURNS text LANGUAGE sql IMMUTABLE AS
  \$\$ SELECT CASE WHEN p.x < 0 THEN repeat('xy', 1073741824 + p.y * 0) ELSE p.x || '/' || p.y END \$\$;
CREATE CAST (pt3 AS text) WITH FUNCTION pt3_text(pt3);
CREATE FOREIGN TABLE pu3 (k text, p pt3) SERVER stream_ext;
SELECT stream_ext.kafka_produce('pu3', topic => 'unf3', brokers => '$BROKERS', format => 'csv');
SQL
run_sql -c "INSERT INTO pu3 SELECT 'k', ROW(CASE WHEN g <= 40 THEN -1 ELSE g END, g)::pt3 FROM generate_series(1, 60) g"
wait_until 120 "the 20 good events produced, the 40 set aside" \
	"SELECT messages = 20 AND errors = 40 AND lag = 0 FROM stream_ext.kafka_producers WHERE topic = 'unf3'"
expect "SELECT count(*) FROM stream_ext.kafka_sink_errors WHERE topic = 'unf3' AND error = 'requested length too large'" 40 \
	"the 40 recorded with their error"
say "ok: failures alike at a batch's front are set aside once good events of the batch go through"
