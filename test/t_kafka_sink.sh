#!/usr/bin/env bash
# Kafka sink: EVENTS events written to a stream (COPY and INSERT, plus
# transactions rolled back, whose events must never be produced) are produced
# to a topic of the mock cluster by stream_ext.kafka_produce while the server
# is killed with kill -9 twice and the broker is down for a while.  Read back
# with kcat (read_committed), every event must be there with its key and
# value, and every copy of an event (at least once: a crash may send a batch
# again) must carry the same key, value and stream_ext_event header.  Own
# server.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"
EVENTS=${EVENTS:-200000} CHUNK=${CHUNK:-10000}

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db t_kafka_sink
t0=$SECONDS
mock_start 1 out:4

run_sql <<SQL
CREATE FOREIGN TABLE ev (k text, i bigint, note text) SERVER stream_ext;
CREATE VIEW ev_count WITH (continuous) AS SELECT count(*) AS n FROM ev;
CREATE TABLE chunks (n bigint PRIMARY KEY);
SELECT stream_ext.kafka_produce('ev', topic => 'out', brokers => '$BROKERS',
                                format => 'json', key_column => 'k');
SQL
[ "$(q "SELECT state IN ('starting', 'connecting', 'running') FROM stream_ext.kafka_producers")" = t ] ||
	fail "producer state: $(q "SELECT state FROM stream_ext.kafka_producers")"

# event i: key k(i % 97), value {"k": ..., "i": i, "note": ...}; notes with
# quotes, tabs and backslashes now and then
gen() {
	awk -v from="$1" -v to="$2" 'BEGIN { for (i = from; i <= to; i++)
		printf "k%d\t%d\t%s\n", i % 97, i, (i % 1000 == 0) ? "q\"uote \\\\ back\\ttab" : "n" i }'
}
# A chunk is written in one transaction with its row in chunks, and written
# again only when that row is absent: a kill -9 can cut the connection after
# the commit, and a blind retry would then write the chunk twice.
written_chunk() { [ "$(q "SELECT count(*) FROM chunks WHERE n = $1" 2>/dev/null)" = 1 ]; }
writer() {
	local i=1 n
	while [ $i -le "$EVENTS" ]; do
		n=$((i + CHUNK - 1)); [ $n -gt "$EVENTS" ] && n=$EVENTS
		if [ $(((i / CHUNK) % 3)) -eq 2 ]; then
			until written_chunk $n || psql -X -q -1 -v ON_ERROR_STOP=1 -c "INSERT INTO ev SELECT 'k' || (g % 97), g,
			         CASE WHEN g % 1000 = 0 THEN E'q\"uote \\\\ back\\ttab' ELSE 'n' || g END
			       FROM generate_series($i, $n) g" -c "INSERT INTO chunks VALUES ($n)" >/dev/null 2>&1; do sleep 0.5; done
		else
			until written_chunk $n || gen $i $n | psql -X -q -1 -v ON_ERROR_STOP=1 -c "COPY ev FROM STDIN" \
				-c "INSERT INTO chunks VALUES ($n)" 2>/dev/null; do sleep 0.5; done
		fi
		# a rolled back transaction: none of its events may reach the topic
		psql -X -q -c "BEGIN; INSERT INTO ev SELECT 'k1', -g, 'rolled back' FROM generate_series(1, 100) g; ROLLBACK" \
			>/dev/null 2>&1 || true
		echo $n > "$SCRATCH/written"
		i=$((n + 1))
	done
}
produced() { q "SELECT messages FROM stream_ext.kafka_producers" 2>/dev/null || echo 0; }

echo 0 > "$SCRATCH/written"
writer > "$SCRATCH/writer.log" 2>&1 &
writer_pid=$!
_bg_pids+=($writer_pid)

# two crashes mid-production, a broker outage between them
for c in 1 2; do
	target=$((EVENTS * c / 4))
	wait_until 300 "$target events produced" "SELECT messages >= $target FROM stream_ext.kafka_producers"
	seen=$(produced)
	kill_server_hard "$SRV"
	bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
	say "crash $c: killed at $seen messages produced ($(cat "$SCRATCH/written") events written)"
	if [ $c -eq 1 ]; then
		wait_until 120 "production resumed" "SELECT messages > $seen FROM stream_ext.kafka_producers"
		mock_cmd "down 1"
		wait_until 60 "the producer reports the outage" \
			"SELECT state = 'retrying' AND last_error IS NOT NULL FROM stream_ext.kafka_producers"
		say "broker down: $(q "SELECT state || ': ' || last_error FROM stream_ext.kafka_producers")"
		stalled=$(produced)
		sleep 3
		[ "$(produced)" -le $((stalled + 5000)) ] || fail "messages acknowledged while the broker was down"
		mock_cmd "up 1"
	fi
done
wait "$writer_pid" || fail "the writer failed: $(tail -n 5 "$SCRATCH/writer.log")"
wait_until 60 "all events in the stream" "SELECT n = $EVENTS FROM ev_count"
wait_until 300 "every event produced" \
	"SELECT lag = 0 AND state = 'running' FROM stream_ext.kafka_producers"
say "$(q "SELECT format('producer: %s messages acknowledged, lag %s, state %s', messages, lag, state) FROM stream_ext.kafka_producers")"

# read the topic back: header, key, value
kcat -C -b "$BROKERS" -t out -e -q -X isolation.level=read_committed \
	-f '%h\t%k\t%s\n' > "$SCRATCH/consumed.tsv" 2>"$SCRATCH/kcat.err" ||
	fail "kcat could not read the topic: $(cat "$SCRATCH/kcat.err")"
say "read back $(wc -l < "$SCRATCH/consumed.tsv") messages"

run_sql <<SQL
CREATE TABLE got (header text, key text, value text);
\copy got FROM '$SCRATCH/consumed.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
CREATE TABLE want AS
  SELECT 'k' || (g % 97) AS k, g AS i,
         CASE WHEN g % 1000 = 0 THEN E'q"uote \\\\ back\\ttab' ELSE 'n' || g END AS note
    FROM generate_series(1, $EVENTS) g;
SQL
expect "SELECT count(*) FROM got WHERE header !~ '^stream_ext_event=[0-9]+-[0-9]+\$'" 0 \
	"every message carries its event header"
expect "SELECT count(*) FROM (SELECT header FROM got GROUP BY header
                               HAVING count(DISTINCT (key, value)) > 1) d" 0 \
	"copies of an event are identical (key, value, header)"
expect "SELECT count(*) FROM got WHERE key IS DISTINCT FROM value::json->>'k'" 0 \
	"each message's key is its key column"
expect "SELECT count(*) FROM (SELECT DISTINCT header FROM got) d" "$EVENTS" \
	"as many distinct events as were committed"
expect "SELECT count(*) FROM (
          (SELECT k, i, note FROM want EXCEPT
           SELECT value::json->>'k', (value::json->>'i')::bigint, value::json->>'note' FROM got)
          UNION ALL
          (SELECT value::json->>'k', (value::json->>'i')::bigint, value::json->>'note' FROM got
           EXCEPT SELECT k, i, note FROM want)) d" 0 \
	"the distinct events are exactly the committed ones (none rolled back)"
expect "SELECT count(*) FROM (
          SELECT key, count(DISTINCT header) AS n FROM got GROUP BY key
          EXCEPT SELECT k, count(*) FROM want GROUP BY k) d" 0 "exact per key"
dups=$(q "SELECT count(*) - count(DISTINCT header) FROM got")
say "copies sent again after the crashes: $dups"
[ "$dups" -le $((4 * $(q "SHOW stream_ext.batch_size"))) ] ||
	fail "more copies than two batches per crash: $dups"
expect "SELECT count(*) FROM stream_ext_internal.kafka_outbox" 0 "the outbox is empty"

# backpressure: with the broker down, a producer with kafka_sink_max_pending
# events staged makes the next writer wait, then fail, also while it waits
# between its tries (messages time out after 1 s here, so that it retries
# with backoff soon); once the broker is back, writers go on and every event
# is produced
set_server_setting stream_ext.kafka_sink_max_pending 1000
q "SELECT stream_ext.kafka_produce('ev', topic => 'out', brokers => '$BROKERS', format => 'json',
	key_column => 'k', options => '{\"message.timeout.ms\": \"1000\"}')" >/dev/null
mock_cmd "down 1"
q "INSERT INTO ev SELECT 'bp', g, 'bp' FROM generate_series(1, 3000) g" >/dev/null
refused() { sink_refuses "INSERT INTO ev VALUES ('bp', 0, 'one more')"; }
deadline=$((SECONDS + 30))
until refused; do
	[ $SECONDS -lt $deadline ] || fail "writers were never held back: $(cat "$SCRATCH/bp.err")"
	sleep 0.2
done
say "ok: a full producer refuses writers: $(head -n 2 "$SCRATCH/bp.err" | tr '\n' ' ')"
wait_until 30 "the producer retries" "SELECT state = 'retrying' FROM stream_ext.kafka_producers"
for i in $(seq 1 16); do
	refused || fail "a writer was let in while the producer retried ($(q "SELECT state FROM stream_ext.kafka_producers")): $(cat "$SCRATCH/bp.err")"
	sleep 0.5
done
say "ok: writers stay refused while the producer retries with backoff"
mock_cmd "up 1"
q "INSERT INTO ev VALUES ('bp', 3001, 'after the outage')" >/dev/null   # waits until there is room
wait_until 120 "the backlog produced" "SELECT lag = 0 FROM stream_ext.kafka_producers"
kcat -C -b "$BROKERS" -t out -e -q -X isolation.level=read_committed -f '%h\t%k\n' |
	awk -F'\t' '$2 == "bp" { seen[$1] = 1 } END { print length(seen) }' > "$SCRATCH/bp.count"
# the 3000, the one after the outage, and the writes admitted before the
# producer counted past its bound
bp=$(q "SELECT n - $EVENTS FROM ev_count")
[ "$(cat "$SCRATCH/bp.count")" = "$bp" ] || fail "events after the outage: $(cat "$SCRATCH/bp.count") of $bp"
say "ok: after the outage all $bp events written meanwhile were produced"

# an idle producer that saw the brokers fail is running again as soon as
# they answer, without a message to send
mock_cmd "down 1"
wait_until 60 "the idle producer notices the outage" "SELECT state = 'retrying' FROM stream_ext.kafka_producers"
mock_cmd "up 1"
wait_until 30 "the idle producer is running again" "SELECT state = 'running' FROM stream_ext.kafka_producers"
say "ok: an idle producer is running again once the brokers answer"
say "PASS ($((SECONDS - t0))s)"
