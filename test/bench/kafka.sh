#!/usr/bin/env bash
# Kafka ingestion benchmark: messages/s of a stream_ext consumer against the
# client-side limit (kcat -C -e reading the same messages to /dev/null).
#
#   test/bench/kafka.sh                    # json and csv, 2 M messages each
#   MESSAGES=400000 test/bench/kafka.sh    # quicker
#   PERF=1 test/bench/kafka.sh             # also perf record the consumer worker
#
# One throwaway server (after `make install`) and one mock cluster
# (test/kafka/mock_broker.c), a 4-partition topic, the core benchmark's event
# shape (url text, user_id bigint, latency float8, ts timestamptz), 1000 urls,
# one view: SELECT url, count(*), sum(latency), avg(latency), max(ts) ...
# GROUP BY url.
#
# The mock cluster keeps at most 5 MB per partition (older messages are
# deleted), so the MESSAGES go in ROUNDS rounds (default 2): each round
# produces MESSAGES/ROUNDS messages (zstd, spread evenly over the partitions),
# then times kcat reading them and the consumer applying them (from
# kafka_consume, or kafka_start of the stopped consumer, until every message
# is in the view).  Rates are total messages over total time.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MESSAGES=${MESSAGES:-2000000}
ROUNDS=${ROUNDS:-2}
PARTITIONS=4
FORMATS=${FORMATS:-"json csv"}
PARALLELISM=${PARALLELISM:-1}
PERF=${PERF:-0}
PERF_OUT=${PERF_OUT:-/tmp/stream-kafka-perf}
PGBIN=${PGBIN:-$(pg_config --bindir)}
export PATH="$PGBIN:$PATH"

source "$HERE/lib.sh"
start_kafka_bench kafka

q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
wait_for() {  # wait_for SQL: until it returns t (10 minutes at most)
	local deadline=$((SECONDS + 600))
	until [ "$(q "$1")" = t ]; do
		[ $SECONDS -lt $deadline ] || { echo "timeout: $1" >&2; exit 1; }
		sleep 0.02
	done
}

# gen FORMAT FROM TO: messages FROM..TO, one per line
gen() {
	awk -v fmt="$1" -v from="$2" -v to="$3" 'BEGIN { srand(from);
		for (i = from; i <= to; i++) {
			url = "/page/" (i % 1000); uid = int(rand() * 100000); lat = rand() * 200;
			ts = sprintf("2026-11-22 04:%02d:%02d.%03d+00", int(i / 60000) % 60, int(i / 1000) % 60, i % 1000);
			if (fmt == "json") printf "{\"url\": \"%s\", \"user_id\": %d, \"latency\": %.3f, \"ts\": \"%s\"}\n", url, uid, lat, ts;
			else printf "%s,%d,%.3f,%s\n", url, uid, lat, ts;
		} }'
}

declare -A RESULT
per_round=$((MESSAGES / ROUNDS))
per_part=$((per_round / PARTITIONS))
per_round=$((per_part * PARTITIONS))

for fmt in $FORMATS; do
	topic="clicks_$fmt"
	echo "topic $topic $PARTITIONS" >&7
	q "CREATE FOREIGN TABLE $topic (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext" >/dev/null
	q "CREATE VIEW ${topic}_stats WITH (continuous) AS SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM $topic GROUP BY url" >/dev/null
	consumer_s=0; kcat_s=0; total=0
	for r in $(seq 1 "$ROUNDS"); do
		for p in $(seq 0 $((PARTITIONS - 1))); do
			from=$(( (r - 1) * per_round + p * per_part + 1 ))
			gen "$fmt" $from $((from + per_part - 1)) |
				kcat -P -b "$BROKERS" -t "$topic" -p "$p" -z zstd -X linger.ms=100 \
					-X batch.num.messages=100000 -X batch.size=20000000 \
					-X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2000000
		done
		# client-side limit: kcat reading this round's messages
		offs=""
		for p in $(seq 0 $((PARTITIONS - 1))); do offs+=" -t $topic:$p:$(( (r - 1) * per_part ))"; done
		t0=$(now)
		got=$(kcat -C -b "$BROKERS" -t "$topic" -o $(( (r - 1) * per_part )) -e -q -f '%p\n' | wc -l)
		t1=$(now)
		[ "$got" = $per_round ] || { echo "kcat read $got messages, expected $per_round" >&2; exit 1; }
		kcat_s=$(echo "$kcat_s + $t1 - $t0" | bc -l)

		if [ "$PERF" != 0 ] && [ "$r" = "$ROUNDS" ]; then mkdir -p "$PERF_OUT"; fi
		t0=$(now)
		if [ "$r" = 1 ]; then
			q "SELECT stream_ext.kafka_consume('$topic', '$topic', '$BROKERS', format => '$fmt', parallelism => $PARALLELISM)" >/dev/null
		else
			q "SELECT stream_ext.kafka_start('$topic', '$topic')" >/dev/null
		fi
		if [ "$PERF" != 0 ] && [ "$r" = "$ROUNDS" ]; then
			wpid=""
			until [ -n "$wpid" ]; do wpid=$(q "SELECT string_agg(pid::text, ',') FROM stream_ext_internal.kafka_worker_status() WHERE pid IS NOT NULL"); done
			perf record -g -p "$wpid" -o "$PERF_OUT/consumer-$fmt.data" 2>/dev/null &
			perf_pid=$!
		fi
		wait_for "SELECT coalesce(sum(count), 0) = $((r * per_round)) FROM ${topic}_stats"
		t1=$(now)
		if [ "$PERF" != 0 ] && [ "$r" = "$ROUNDS" ]; then
			kill -INT $perf_pid; wait $perf_pid || true
			perf report -i "$PERF_OUT/consumer-$fmt.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null |
				grep -v '^$' | head -60 > "$PERF_OUT/consumer-$fmt.txt" || true
			echo "perf report: $PERF_OUT/consumer-$fmt.txt"
		fi
		consumer_s=$(echo "$consumer_s + $t1 - $t0" | bc -l)
		q "SELECT stream_ext.kafka_stop('$topic', '$topic')" >/dev/null
		total=$((total + per_round))
	done
	# the view equals the batch query over what was produced
	check=$(q "SELECT sum(count) FROM ${topic}_stats")
	[ "$check" = "$total" ] || { echo "view counts $check, produced $total" >&2; exit 1; }
	RESULT[$fmt]="$total $consumer_s $kcat_s"
done

echo
echo "Kafka ingestion, $(nproc) vCPUs, $MESSAGES messages per format in $ROUNDS rounds, $PARTITIONS partitions, parallelism $PARALLELISM, 1 view"
printf '%-6s %14s %14s %8s %s\n' format "stream_ext/s" "kcat -C/s" ratio targets
for fmt in $FORMATS; do
	read -r total cs ks <<<"${RESULT[$fmt]}"
	rate=$(echo "$total / $cs" | bc -l); krate=$(echo "$total / $ks" | bc -l)
	ratio=$(echo "$rate / $krate" | bc -l)
	target=">= 300k/s and >= 0.5x kcat"; [ "$fmt" = csv ] && target=">= 0.7x kcat"
	printf '%-6s %14.0f %14.0f %7.2fx %s\n' "$fmt" "$rate" "$krate" "$ratio" "$target"
done
