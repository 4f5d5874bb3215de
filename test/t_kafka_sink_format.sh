#!/usr/bin/env bash
# Kafka sink, staging in C (src/kafka/sink_stage.c): an INSERT into a stream
# puts its events' messages into the producers' outbox itself, formatted in
# C, and a worker does the same for events that reach the stream otherwise
# (here: rows a transform writes into it), where the staging view and the
# producer's SQL would format them.  Differential: the same 3,000 rows of
# every type the writer formats (edge values included: quotes, escapes, NaN,
# infinities, NULLs), written both ways, give the keys and messages of the
# stage statement's own expressions (row_to_json, kafka_csv_field,
# kafka_text_field) over the same rows, in json, csv and text.  Also: the
# workers skip what the writer staged (the outbox holds each row twice, the
# staging views nothing); a
# rolled back transaction or savepoint stages nothing; a format changed by
# kafka_produce applies to the next statement; event numbers are unique; a
# stream with a column the writer does not format (an array) is staged by
# the workers.  The producers are stopped, so no broker is needed.
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_kafka_sink_format
# a zone with a half-hour offset and daylight saving (its change on 2026-03-08 is
# in the data), for the sessions and the workers alike
q "ALTER DATABASE t_kafka_sink_format SET timezone = 'America/St_Johns'" >/dev/null

N=3000
cols="t text, v varchar(30), nm name, i2 int2, i4 int4, i8 bigint, f4 float4, f8 float8,
      nu numeric, b bool, d date, tm time, tz timetz, ts timestamp, tst timestamptz,
      iv interval, u uuid, j json, jb jsonb, dm fm_count"
run_sql <<SQL
CREATE DOMAIN fm_count AS int CHECK (VALUE >= 0);
CREATE FOREIGN TABLE fm ($cols) SERVER stream_ext;
CREATE FOREIGN TABLE fm_src ($cols) SERVER stream_ext;
CREATE VIEW fm_forward WITH (continuous, output = 'fm') AS
  SELECT t, v, nm, i2, i4, i8, f4, f8, nu, b, d, tm, tz, ts, tst, iv, u, j, jb, dm FROM fm_src;
SELECT stream_ext.kafka_produce('fm', 'as_json', '127.0.0.1:9', key_column => 't');
SELECT stream_ext.kafka_produce('fm', 'as_csv', '127.0.0.1:9', format => 'csv', key_column => 'b',
                                format_options => '{"delimiter": ";", "quote": "''", "null": "NULL"}');
SELECT stream_ext.kafka_produce('fm', 'as_text', '127.0.0.1:9', format => 'text', key_column => 'tst',
                                format_options => '{"delimiter": "|", "null": ""}');
SELECT stream_ext.kafka_stop_producer('fm', t) FROM unnest(ARRAY['as_json', 'as_csv', 'as_text']) t;
SELECT setseed(0.42);
CREATE TABLE fm_rows AS
  SELECT CASE g % 9 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'say "hi", O''Neil'
                    WHEN 3 THEN E'tab\there|pipe;semi\\back\nline\rcr' WHEN 4 THEN 'NULL'
                    WHEN 5 THEN E'ctl \u0001 é 漢' WHEN 6 THEN repeat('compressed ' || g, 800)
                    ELSE '/page/' || (g % 50) END AS t,
         CASE WHEN g % 11 = 0 THEN NULL ELSE md5(g::text) END::varchar(30) AS v,
         ('n' || g % 5)::name AS nm,
         (g % 32767 - 16000)::int2 AS i2,
         CASE g % 7 WHEN 0 THEN -2147483648 WHEN 1 THEN NULL ELSE g * 1000 END::int4 AS i4,
         CASE g % 5 WHEN 0 THEN 9223372036854775807 WHEN 1 THEN -9223372036854775808
                    ELSE (random() * 1e15)::bigint END AS i8,
         CASE g % 17 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity'
                     WHEN 3 THEN '-0' WHEN 4 THEN 1e-40 ELSE random() * 1000 - 500 END::float4 AS f4,
         CASE g % 13 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity'
                     WHEN 3 THEN '-0' WHEN 4 THEN 1e-300 WHEN 5 THEN NULL
                     ELSE random() * 1e6 END::float8 AS f8,
         CASE g % 6 WHEN 0 THEN 'NaN' WHEN 1 THEN NULL ELSE round((random() * 1e9)::numeric, g % 9) END AS nu,
         CASE g % 3 WHEN 0 THEN NULL ELSE g % 2 = 0 END AS b,
         CASE g % 17 WHEN 0 THEN 'infinity' WHEN 1 THEN '-infinity' WHEN 2 THEN NULL
                     ELSE date '2000-01-01' + (g * 37) % 20000 END::date AS d,
         time '00:00' + g * interval '17 s' AS tm,
         (time '00:00' + g * interval '13 s')::timetz AS tz,
         -- runs of events in one second (the writer reuses a second's text), across
         -- 2000-01-01 (time stamps change sign there), BC, and a daylight saving change
         CASE WHEN g % 19 = 0 THEN 'infinity'
              WHEN g <= 1000 THEN timestamp '2026-01-01' + g * interval '1.001 s'
              WHEN g <= 2000 THEN timestamp '1999-12-31 23:59:59.3' + g * interval '1.3 ms'
              ELSE timestamp '0002-01-01 00:00:00 BC' + g * interval '0.37 s' END::timestamp AS ts,
         -- also BC, a five-digit year, and the zone's offset of 1900 (-03:30:52)
         CASE WHEN g % 23 = 0 THEN '-infinity' WHEN g % 23 = 1 THEN NULL
              WHEN g % 23 = 2 THEN timestamptz '0044-03-15 12:00:00.123456+00 BC' + g * interval '1 us'
              WHEN g % 23 = 3 THEN timestamptz '12026-01-01 00:00:00.5+00' + g * interval '1 s'
              WHEN g % 23 = 4 THEN timestamptz '1900-06-01 12:00:00.75+00' + g * interval '0.001 s'
              WHEN g <= 1500 THEN timestamptz '2026-03-08 05:29:59+00' + g * interval '0.0101 s'
              ELSE timestamptz '1960-06-30 23:59:58+00' + g * interval '2.71 ms' END::timestamptz AS tst,
         g * interval '1 day 3 h 0.25 s' - interval '1 mon' AS iv,
         md5(g::text)::uuid AS u,
         CASE WHEN g % 4 = 0 THEN NULL ELSE json_build_object('g', g, 's', 'x"y')::json END AS j,
         CASE WHEN g % 5 = 0 THEN 'null'::jsonb ELSE jsonb_build_array(g, 'a\b', NULL) END AS jb,
         CASE WHEN g % 8 = 0 THEN NULL ELSE g END::fm_count AS dm
    FROM generate_series(1, $N) g;
-- both ways: the writer stages these itself; a worker the transform's rows
INSERT INTO fm SELECT * FROM fm_rows;
INSERT INTO fm_src SELECT * FROM fm_rows;
SQL

staging() { q "SELECT staging::text FROM stream_ext_internal.kafka_producers WHERE topic = '$1'"; }
outbox_count() { q "SELECT coalesce(sum(cardinality(o.events)), 0) FROM stream_ext_internal.kafka_outbox o
                    JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id WHERE p.topic = '$1'"; }
for topic in as_json as_csv as_text; do
	wait_until 60 "the writer's and the transform's $N rows staged for $topic" \
		"SELECT coalesce(sum(cardinality(o.events)), 0) = 2 * $N FROM stream_ext_internal.kafka_outbox o
		   JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id WHERE p.topic = '$topic'"
done
sleep 1
for topic in as_json as_csv as_text; do
	[ "$(outbox_count $topic)" = $((2 * N)) ] ||
		fail "$topic: the outbox holds $(outbox_count $topic) messages, not the writer's and the transform's $N each"
	[ "$(q "SELECT count(*) FROM $(staging $topic)")" = 0 ] ||
		fail "$topic: the staging view holds $(q "SELECT count(*) FROM $(staging $topic)") rows"
done
say "ok: the writer staged its $N events in each producer's outbox, a worker the transform's rows"

# the reference: the stage statement's expressions over the staging view's rows
fields() {	# FUNCTION EXTRA_ARGS SEPARATOR: the staging view's columns as the statement joins them
	q "SELECT string_agg(format(\$f\$stream_ext_internal.$1(s.%I::text, $2)\$f\$, attname),
	                     \$f\$ || $3 || \$f\$ ORDER BY attnum)
	     FROM pg_attribute WHERE attrelid = '$(staging as_csv)'::regclass AND attnum > 0 AND NOT attisdropped"
}
compare() {	# TOPIC KEY_EXPRESSION MESSAGE_EXPRESSION
	local topic=$1 diff
	# the reference: each row of fm_rows twice (the writer's, the transform's)
	diff=$(q "WITH w AS (SELECT u.k, u.m FROM stream_ext_internal.kafka_outbox o
	                       JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id,
	                            unnest(o.keys, o.messages) u(k, m) WHERE p.topic = '$topic'),
	              r AS (SELECT $2 AS k, $3 AS m FROM fm_rows s, generate_series(1, 2))
	          SELECT (SELECT count(*) FROM (SELECT * FROM w EXCEPT ALL SELECT * FROM r) x) || ' ' ||
	                 (SELECT count(*) FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM w) y)")
	[ "$diff" = "0 0" ] || {
		q "WITH w AS (SELECT u.k, u.m FROM stream_ext_internal.kafka_outbox o
		                JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id,
		                     unnest(o.keys, o.messages) u(k, m) WHERE p.topic = '$topic'),
		       r AS (SELECT $2 AS k, $3 AS m FROM fm_rows s, generate_series(1, 2))
		   (SELECT 'staged', * FROM w EXCEPT ALL SELECT 'staged', * FROM r LIMIT 3)
		   UNION ALL (SELECT 'statement', * FROM r EXCEPT ALL SELECT 'statement', * FROM w LIMIT 3)" >&2
		fail "$topic: staged and statement's messages differ (only one side: $diff)"
	}
	say "ok: $topic: the writer's and the worker's $N keys and messages each are the statement's"
}
compare as_json "s.t::text" "row_to_json(s)::text"
compare as_csv "s.b::text" "$(fields kafka_csv_field "';', '''', 'NULL'" "';'")"
compare as_text "s.tst::text" "$(fields kafka_text_field "'|', ''" "'|'")"

[ "$(q "SELECT count(*) = count(DISTINCT e) FROM stream_ext_internal.kafka_outbox, unnest(events) e")" = t ] ||
	fail "event numbers repeat in the outbox"
say "ok: event numbers are unique across rows and producers"

# rolled back: nothing staged; a savepoint rolled back: its events only
before=$(outbox_count as_json)
run_sql <<SQL
BEGIN; INSERT INTO fm (t) VALUES ('rolled back'); ROLLBACK;
BEGIN;
INSERT INTO fm (t) VALUES ('kept');
SAVEPOINT s; INSERT INTO fm (t) VALUES ('savepoint rolled back'); ROLLBACK TO s;
INSERT INTO fm (t) VALUES ('kept too');
COMMIT;
SQL
got=$(q "SELECT string_agg(u.k, ',' ORDER BY u.k) FROM stream_ext_internal.kafka_outbox o
         JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id, unnest(o.keys) u(k)
         WHERE p.topic = 'as_json' AND (u.k LIKE '%kept%' OR u.k LIKE '%rolled%')")
[ "$got" = "kept,kept too" ] || fail "staged after rollbacks: '$got'"
[ "$(outbox_count as_json)" = $((before + 2)) ] || fail "outbox after rollbacks: $(outbox_count as_json), not $((before + 2))"
say "ok: a rolled back transaction or savepoint stages nothing"

# a format changed by kafka_produce applies to the next statement's events
run_sql <<SQL
SELECT stream_ext.kafka_produce('fm', 'as_json', '127.0.0.1:9', format => 'csv', key_column => 't');
SELECT stream_ext.kafka_stop_producer('fm', 'as_json');
INSERT INTO fm (t, i4) VALUES ('after the change', 7);
SQL
got=$(q "SELECT u.m FROM stream_ext_internal.kafka_outbox o
         JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id,
              unnest(o.keys, o.messages) u(k, m) WHERE p.topic = 'as_json' AND u.k = 'after the change'")
[ "$got" = "after the change,,,,7,,,,,,,,,,,,,,," ] || fail "message after the format change: '$got'"
say "ok: a format changed by kafka_produce applies to the next statement"

# a column the writer does not format: the workers stage through the staging view
run_sql <<SQL
CREATE FOREIGN TABLE fa (k text, xs int[]) SERVER stream_ext;
SELECT stream_ext.kafka_produce('fa', 'arrays', '127.0.0.1:9', key_column => 'k');
SELECT stream_ext.kafka_stop_producer('fa', 'arrays');
INSERT INTO fa VALUES ('a', '{1,2}'), ('b', NULL);
SQL
wait_until 60 "the array stream's events staged by the workers" "SELECT count(*) = 2 FROM $(staging arrays)"
[ "$(outbox_count arrays)" = 0 ] || fail "the writer staged events of a stream with an array column"
[ "$(q "SELECT string_agg(row_to_json(s)::text, ' ' ORDER BY k) FROM $(staging arrays) s")" = \
  '{"k":"a","xs":[1,2]} {"k":"b","xs":null}' ] || fail "the array stream's staged rows"
say "ok: a stream with an array column is staged by the workers"

# a producer whose role lost SELECT on the stream: events written meanwhile
# are not its to send; the workers' staging sets them aside in view_errors,
# as before the writer staged; after a GRANT the writer stages again
run_sql <<SQL
CREATE ROLE ksf_admin IN ROLE stream_ext_kafka;
CREATE FOREIGN TABLE fr (k text) SERVER stream_ext;
GRANT SELECT ON fr TO ksf_admin;
SET ROLE ksf_admin;
SELECT stream_ext.kafka_produce('fr', 'revoked', '127.0.0.1:9', key_column => 'k');
SELECT stream_ext.kafka_stop_producer('fr', 'revoked');
RESET ROLE;
REVOKE SELECT ON fr FROM ksf_admin;
INSERT INTO fr VALUES ('while revoked');
SQL
wait_until 60 "the event written while revoked set aside" \
	"SELECT count(*) >= 1 FROM stream_ext.view_errors WHERE name = '$(staging revoked)'::regclass"
[ "$(outbox_count revoked)" = 0 ] || fail "the writer staged an event for a producer whose role lost SELECT"
[ "$(q "SELECT count(*) FROM $(staging revoked)")" = 0 ] || fail "the staging view took the event written while revoked"
run_sql -c "GRANT SELECT ON fr TO ksf_admin" -c "INSERT INTO fr VALUES ('after the grant')"
[ "$(outbox_count revoked)" = 1 ] || fail "after the GRANT the outbox holds $(outbox_count revoked) messages, not 1"
run_sql -c "SELECT stream_ext.kafka_drop_producer('fr', 'revoked')" -c "DROP FOREIGN TABLE fr" -c "DROP ROLE ksf_admin"
say "ok: events written while the producer's role may not read the stream are set aside, not staged"

# a producer created while a writer's transaction is open gets the events the
# writer writes after that (the writer sees the new producer, or leaves its
# events to the workers, which do)
run_sql <<SQL
CREATE FOREIGN TABLE fn (k text) SERVER stream_ext;
SELECT stream_ext.kafka_produce('fn', 'first', '127.0.0.1:9', key_column => 'k');
SELECT stream_ext.kafka_stop_producer('fn', 'first');
SQL
PGAPPNAME=ksf_writer fifo_session writer 7 -v ON_ERROR_STOP=1
writer=$SESSION_PID
echo "BEGIN; INSERT INTO fn VALUES ('before');" >&7
wait_until 30 "the writer's first INSERT done" \
	"SELECT state = 'idle in transaction' FROM pg_stat_activity WHERE application_name = 'ksf_writer'"
run_sql -c "SELECT stream_ext.kafka_produce('fn', 'second', '127.0.0.1:9', key_column => 'k')" \
	-c "SELECT stream_ext.kafka_stop_producer('fn', 'second')"
echo "INSERT INTO fn VALUES ('after'); COMMIT;" >&7
exec 7>&-
wait "$writer" || fail "the writer's session failed: $(cat "$SCRATCH/writer.out")"
keys_sql() {	# TOPIC: the keys staged for it, in the outbox or its staging view
	echo "SELECT string_agg(k, ',' ORDER BY k) FROM (
	        SELECT u.k FROM stream_ext_internal.kafka_outbox o
	          JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id, unnest(o.keys) u(k)
	         WHERE p.topic = '$1'
	        UNION ALL SELECT k FROM $(staging "$1")) s"
}
wait_until 60 "the second producer's event staged" "SELECT ($(keys_sql second)) LIKE '%after%'"
[ "$(q "$(keys_sql first)")" = "after,before" ] || fail "first producer staged: $(q "$(keys_sql first)")"
[ "$(q "$(keys_sql second)")" = "after" ] || fail "second producer staged: $(q "$(keys_sql second)")"
say "ok: a producer created while a writer's transaction is open gets the events written after it"

# ... also within one statement: a producer created while a long COPY runs
# gets every event the COPY writes from some point on (a suffix, no holes),
# and that point comes before the COPY's end
M=6000000
run_sql <<SQL
CREATE FOREIGN TABLE fl (i bigint) SERVER stream_ext;
SELECT stream_ext.kafka_produce('fl', 'long_first', '127.0.0.1:9');
SELECT stream_ext.kafka_stop_producer('fl', 'long_first');
SQL
seq 1 $M > "$SCRATCH/long.csv"
PGAPPNAME=ksf_copy psql -X -q -v ON_ERROR_STOP=1 -c "\\copy fl (i) FROM '$SCRATCH/long.csv'" > "$SCRATCH/copy.out" 2>&1 &
copier=$!
wait_until 30 "the long COPY running" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'ksf_copy' AND state = 'active'"
sleep 0.3
# made, then at once how far the COPY had come (its events after that must reach it)
copied=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT stream_ext.kafka_produce('fl', 'long_second', '127.0.0.1:9')" \
	-c "SELECT c.tuples_processed FROM pg_stat_progress_copy c
	      JOIN pg_stat_activity a ON a.pid = c.pid WHERE a.application_name = 'ksf_copy'" | tail -n +2)
[ -n "$copied" ] || fail "the COPY ended before the second producer was made: make it longer"
run_sql -c "SELECT stream_ext.kafka_stop_producer('fl', 'long_second')"
wait "$copier" || fail "the long COPY failed: $(cat "$SCRATCH/copy.out")"
events_sql() {	# TOPIC: "count min max" of the events staged for it, outbox and staging view
	echo "SELECT count(*) || ' ' || coalesce(min(i), 0) || ' ' || coalesce(max(i), 0) FROM (
	        SELECT (u.m::json->>'i')::bigint AS i FROM stream_ext_internal.kafka_outbox o
	          JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id, unnest(o.messages) u(m)
	         WHERE p.topic = '$1'
	        UNION ALL SELECT i FROM $(staging "$1")) s"
}
wait_until 120 "the first producer has all $M events" "SELECT ($(events_sql long_first)) = '$M 1 $M'"
read -r n lo hi <<< "$(q "$(events_sql long_second)")"
[ "$n" -gt 0 ] && [ "$hi" = $M ] && [ $((hi - lo + 1)) = "$n" ] ||
	fail "the producer made during the COPY staged $n events from $lo to $hi, not a suffix of 1..$M"
[ "$lo" -le $((copied + 1)) ] ||
	fail "the producer made during the COPY misses events $((copied + 1)) to $((lo - 1)), written after it was made"
say "ok: a producer made during a long COPY (at event $copied of $M) gets every event from $lo on"

# kafka_drop_producer under writers that never pause: each writer's outbox rows hold
# the producer's row FOR KEY SHARE until it commits, and row locks do not queue, so the
# drop's DELETE waited as long as writers overlapped; now new writers are turned away
# (they leave their events to the workers) while the drop waits for those that staged
run_sql <<SQL
CREATE FOREIGN TABLE fd (k text, v int) SERVER stream_ext;
SELECT stream_ext.kafka_produce('fd', 'dropped', '127.0.0.1:9', key_column => 'k');
SELECT stream_ext.kafka_stop_producer('fd', 'dropped');
SQL
# each writer keeps its transaction open a little after staging, so that at any
# moment some hold the producer's row
printf '%s\n' "BEGIN;" "INSERT INTO fd SELECT 'k' || g, g FROM generate_series(1, 10) g;" \
	"SELECT pg_sleep(random() * 0.3);" "COMMIT;" > "$SCRATCH/fd.sql"
pgbench -n -c 8 -j 2 -T 25 -f "$SCRATCH/fd.sql" > "$SCRATCH/fd.out" 2>&1 &
bench=$!
wait_until 30 "the writers staging" "SELECT count(*) > 0 FROM stream_ext_internal.kafka_outbox o
                                       JOIN stream_ext_internal.kafka_producers p ON p.id = o.producer_id
                                      WHERE p.topic = 'dropped'"
sleep 2
t0=$(date +%s.%N)
PGOPTIONS='-c statement_timeout=15s' psql -X -q -v ON_ERROR_STOP=1 \
	-c "SELECT stream_ext.kafka_drop_producer('fd', 'dropped')" > "$SCRATCH/fd_drop.out" 2>&1 ||
	fail "kafka_drop_producer under 8 writers did not finish in 15 s: $(cat "$SCRATCH/fd_drop.out")"
took=$(echo "$(date +%s.%N) - $t0" | bc -l)
kill -0 "$bench" 2>/dev/null || fail "the writers stopped before the drop finished: the check proves nothing"
wait "$bench" || fail "pgbench failed: $(tail -5 "$SCRATCH/fd.out")"
grep -q "number of failed transactions: 0 " "$SCRATCH/fd.out" || fail "writers failed during the drop: $(tail -5 "$SCRATCH/fd.out")"
[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_producers WHERE topic = 'dropped'")" = 0 ] ||
	fail "the producer is still there after its drop"
say "ok: kafka_drop_producer under 8 writers that never pause finished in $(printf '%.1f' "$took") s, no writer failed"
