#!/usr/bin/env bash
# Kafka sink benchmark (k): events/s from COPY into a stream to their
# acknowledgement by the brokers through stream_ext.kafka_produce, against
# kcat -P producing the same messages (same keys, same JSON values, and the
# stream_ext_event header the sink puts on each message) to the same mock
# cluster; kcat -P without the header is reported beside it.
#
#   test/bench/kafka_sink.sh                   # 1 M events
#   EVENTS=200000 test/bench/kafka_sink.sh     # quicker
#
# One throwaway server (after `make install`) and one mock cluster
# (test/kafka/mock_broker.c), two 4-partition topics.  Events are the core
# benchmark's shape (url text, user_id bigint, latency float8, ts
# timestamptz), 1000 urls; the key is the url.  The stream is fed two ways:
# by one COPY of all the events (one transaction: the producer can take
# nothing before it commits), and by CHUNKS (20) COPYs of a part each, one
# after the other, as a feed of many transactions arrives.  Each is timed
# from the start of the first COPY until kafka_producers.messages has grown
# by EVENTS (the writer formats its events into the producer's outbox as it
# writes them; the producer takes the committed rows and hands them to
# librdkafka; the brokers acknowledge); the baseline from the start of kcat
# -P until it exits (it waits for every acknowledgement).  Each is run REPS
# (3) times, interleaved; the medians of the rates and of each run's ratio
# to its kcat run are reported.  The CPU seconds the producer, the combiner
# and the batch workers used per 100,000 events (one COPY) are reported
# too: on a loaded machine they say more than the wall-clock rate.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-1000000}
REPS=${REPS:-3}
PGBIN=${PGBIN:-$(pg_config --bindir)}
export PATH="$PGBIN:$PATH"

source "$HERE/lib.sh"
start_kafka_bench sink sink:4 kcat:4

q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }

# the events, as CSV for COPY and as key<TAB>json lines for kcat
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE events AS
  SELECT '/page/' || (i % 1000) AS url, (hashint4(i) & 65535)::bigint AS user_id,
         round(((hashint4(i + 7) & 65535) / 327.68)::numeric, 3)::float8 AS latency,
         timestamptz '2026-11-22 04:00:00+00' + i * interval '1 ms' AS ts
    FROM generate_series(1, $EVENTS) i;
\copy events TO '$DIR/events.csv' (FORMAT csv)
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
SELECT stream_ext.kafka_produce('clicks', 'sink', '$BROKERS', key_column => 'url');
SQL
# key<TAB>json lines (COPY's text format would write the tab as \t: no key)
psql -X -q -At -F $'\t' -v FETCH_COUNT=50000 -c "SELECT url, row_to_json(e)::text FROM events e" \
	> "$DIR/events.kv"
# the producer is running before the clock starts
until [ "$(q "SELECT state FROM stream_ext.kafka_producers")" = running ]; do sleep 0.05; done
PM_PID=$(head -1 "$DIR/server/data/postmaster.pid")
cpu_of() { proc_cpu "$(ext_pid "$1")"; }

# the same events in CHUNKS files, for the feed of many transactions
CHUNKS=${CHUNKS:-20}
split -n l/"$CHUNKS" -d -a 3 "$DIR/events.csv" "$DIR/chunk."
chunk_copies=()
for f in "$DIR"/chunk.*; do chunk_copies+=(-c "COPY clicks FROM '$f' (FORMAT csv)"); done

# wait_while CONDITION: until the SQL condition is false, polled inside one
# session (a psql started every few ms would take a good share of the two
# cores from the sink it measures)
wait_while() {
	q "DO \$\$ BEGIN
	     WHILE ($1) LOOP
	       PERFORM pg_sleep(0.005);
	     END LOOP;
	   END \$\$" >/dev/null
}

# sink_run PSQL_ARGS...: feed the stream with the statements given (each its
# own transaction), wait until the producer has every event acknowledged;
# prints events/s.
sink_run() {
	local before t0 t1 tc
	before=$(q "SELECT messages FROM stream_ext.kafka_producers")
	t0=$(now)
	psql -X -q -At -v ON_ERROR_STOP=1 "$@" >/dev/null
	tc=$(now)
	wait_while "SELECT messages - $before < $EVENTS FROM stream_ext.kafka_producers"
	t1=$(now)
	echo "$EVENTS / ($t1 - $t0)" | bc -l
	echo "$tc - $t0" | bc -l >> "$DIR/copy_s"
}

: > "$DIR/one" ; : > "$DIR/many"; : > "$DIR/kcat"; : > "$DIR/kcat0"
# kcat_run [KCAT ARGS]: kcat -P of the events (key, json) until every one is
# acknowledged; prints messages/s
kcat_run() {
	local t0 t1
	t0=$(now)
	kcat -P -b "$BROKERS" -t kcat -K $'\t' -X linger.ms=5 -X enable.idempotence=true "$@" < "$DIR/events.kv"
	t1=$(now)
	echo "$EVENTS / ($t1 - $t0)" | bc -l
}
# settle: before each timed run, the producer has forgotten every batch (its
# deletes no longer compete for the cores) and a second has passed
settle() {
	wait_while "EXISTS (SELECT 1 FROM stream_ext_internal.kafka_outbox)"
	sleep 1
}
for r in $(seq 1 "$REPS"); do
	settle
	p0=$(cpu_of "kafka producer") c0=$(cpu_of combiner) w0=$(cpu_of worker)
	: > "$DIR/copy_s"
	one=$(sink_run -c "COPY clicks FROM '$DIR/events.csv' (FORMAT csv)")
	per() { echo "($2 - $1) * 100000 / $EVENTS" | bc -l; }
	printf 'run %d: CPU s per 100,000 events (one COPY): producer %.2f, combiner %.2f, workers %.2f\n' "$r" \
		"$(per "$p0" "$(cpu_of "kafka producer")")" "$(per "$c0" "$(cpu_of combiner)")" \
		"$(per "$w0" "$(cpu_of worker)")"
	settle
	many=$(sink_run "${chunk_copies[@]}")

	# the baseline produces the same messages: key, value and the header the
	# sink puts on each (its name and a value of the sink's length: taken from
	# the last message the sink produced); without the header for reference
	# (the two kcat runs in turns first)
	hdr=$(kcat -C -b "$BROKERS" -t sink -p 0 -o -1 -c 1 -e -q -f '%h')
	settle
	if [ $((r % 2)) = 1 ]; then
		kc=$(kcat_run -H "$hdr"); sleep 1; kc0=$(kcat_run)
	else
		kc0=$(kcat_run); sleep 1; kc=$(kcat_run -H "$hdr")
	fi
	# the baseline's messages are keyed as the sink's are
	case $(kcat -C -b "$BROKERS" -t kcat -p 0 -o -1 -c 1 -e -q -f '%k') in
	/page/*) ;;
	*) echo "kcat -P produced messages without the url as key" >&2; exit 1 ;;
	esac
	printf 'run %d: kafka_produce fed by one COPY %.0f events/s (%.2fx), by %d COPYs %.0f events/s (%.2fx); kcat -P with header %s %.0f messages/s, without %.0f; the COPYs returned after %.2f s, %.2f s\n' \
		"$r" "$one" "$(echo "$one / $kc" | bc -l)" "$CHUNKS" "$many" "$(echo "$many / $kc" | bc -l)" "$hdr" "$kc" "$kc0" \
		$(cat "$DIR/copy_s")
	echo "$one $(echo "$one / $kc" | bc -l) $(echo "$one / $kc0" | bc -l)" >> "$DIR/one"
	echo "$many $(echo "$many / $kc" | bc -l) $(echo "$many / $kc0" | bc -l)" >> "$DIR/many"
	echo "$kc" >> "$DIR/kcat"
	echo "$kc0" >> "$DIR/kcat0"
done

# medians over the runs: of the rates, and of each run's ratio to its kcat run
med() { awk "{print \$$2}" "$1" | median; }
printf '\n| case (medians of %d interleaved runs) | events/s | vs kcat -P, same messages (with the header), same run | vs kcat -P without headers |\n|---|---|---|---|\n' "$REPS"
printf '| (k) one COPY of %d events -> stream -> kafka_produce (json, key url) | %.0f | %.2fx | %.2fx |\n' \
	"$EVENTS" "$(med "$DIR/one" 1)" "$(med "$DIR/one" 2)" "$(med "$DIR/one" 3)"
printf '| (k) the same in %d COPYs, one after the other | %.0f | %.2fx | %.2fx |\n' \
	"$CHUNKS" "$(med "$DIR/many" 1)" "$(med "$DIR/many" 2)" "$(med "$DIR/many" 3)"
printf '| kcat -P, same messages (key, value, stream_ext_event header), same mock cluster | %.0f | 1.00x | |\n' "$(med "$DIR/kcat" 1)"
printf '| kcat -P, same keys and values, no header | %.0f | | 1.00x |\n' "$(med "$DIR/kcat0" 1)"
