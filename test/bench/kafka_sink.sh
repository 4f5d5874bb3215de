#!/usr/bin/env bash
# Kafka sink benchmark (k): events/s from COPY into a stream to their
# acknowledgement by the brokers through stream_ext.kafka_produce, against
# kcat -P producing the same messages (same keys, same JSON values) to the
# same mock cluster.
#
#   test/bench/kafka_sink.sh                   # 1 M events
#   EVENTS=200000 test/bench/kafka_sink.sh     # quicker
#
# One throwaway server (after `make install`) and one mock cluster
# (test/kafka/mock_broker.c), two 4-partition topics.  Events are the core
# benchmark's shape (url text, user_id bigint, latency float8, ts
# timestamptz), 1000 urls; the key is the url.  The stream case is timed
# from the start of the COPY until kafka_producers.messages reaches EVENTS
# (the COPY, the workers, the combiner moving rows into the staging view,
# the producer's outbox and the brokers' acknowledgements); the baseline from
# the start of kcat -P until it exits (it waits for every acknowledgement).
# Each is run REPS (2) times, interleaved; the best run is reported.  The
# CPU seconds the producer, the combiner and the batch workers used per
# 100,000 events are reported too: on a loaded machine they say more than the
# wall-clock rate.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-1000000}
REPS=${REPS:-2}
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
\copy (SELECT url || E'\t' || row_to_json(e)::text FROM events e) TO '$DIR/events.kv'
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
SELECT stream_ext.kafka_produce('clicks', 'sink', '$BROKERS', key_column => 'url');
SQL
# the producer is running before the clock starts
until [ "$(q "SELECT state FROM stream_ext.kafka_producers")" = running ]; do sleep 0.05; done
PM_PID=$(head -1 "$DIR/server/data/postmaster.pid")
cpu_of() { proc_cpu "$(ext_pid "$1")"; }

best_sink=0 best_kcat=0
for r in $(seq 1 "$REPS"); do
	before=$(q "SELECT messages FROM stream_ext.kafka_producers")
	p0=$(cpu_of "kafka producer") c0=$(cpu_of combiner) w0=$(cpu_of worker)
	t0=$(now)
	q "COPY clicks FROM '$DIR/events.csv' (FORMAT csv)" >/dev/null
	# waited for inside one session: a psql started every few ms would take
	# a good share of the two cores from the sink it measures
	q "DO \$\$ BEGIN
	     WHILE (SELECT messages - $before < $EVENTS FROM stream_ext.kafka_producers) LOOP
	       PERFORM pg_sleep(0.005);
	     END LOOP;
	   END \$\$" >/dev/null
	t1=$(now)
	sink=$(echo "$EVENTS / ($t1 - $t0)" | bc -l)
	per() { echo "($2 - $1) * 100000 / $EVENTS" | bc -l; }
	printf 'run %d: CPU s per 100,000 events: producer %.2f, combiner %.2f, workers %.2f\n' "$r" \
		"$(per "$p0" "$(cpu_of "kafka producer")")" "$(per "$c0" "$(cpu_of combiner)")" \
		"$(per "$w0" "$(cpu_of worker)")"

	t0=$(now)
	kcat -P -b "$BROKERS" -t kcat -K $'\t' -X linger.ms=5 -X enable.idempotence=true < "$DIR/events.kv"
	t1=$(now)
	kc=$(echo "$EVENTS / ($t1 - $t0)" | bc -l)
	printf 'run %d: stream -> kafka_produce %.0f events/s, kcat -P %.0f messages/s\n' "$r" "$sink" "$kc"
	best_sink=$(echo "if ($sink > $best_sink) $sink else $best_sink" | bc -l)
	best_kcat=$(echo "if ($kc > $best_kcat) $kc else $best_kcat" | bc -l)
done

printf '\n| case | events/s | vs kcat -P |\n|---|---|---|\n'
printf '| (k) COPY -> stream -> kafka_produce (json, key url) | %.0f | %.2fx |\n' \
	"$best_sink" "$(echo "$best_sink / $best_kcat" | bc -l)"
printf '| kcat -P, same messages, same mock cluster | %.0f | 1.00x |\n' "$best_kcat"
