#!/usr/bin/env bash
# The query file for Debian's prometheus-postgres-exporter
# (monitoring/prometheus-postgres-exporter.yaml): the exporter, started on
# loopback against a database with a view, a Kafka consumer and ingested
# events, serves every metric the file defines, with no query error.
source "$(dirname "$0")/lib.sh"

EXPORTER=${EXPORTER:-/usr/bin/prometheus-postgres-exporter}
QUERIES="$TEST_DIR/../monitoring/prometheus-postgres-exporter.yaml"
[ -x "$EXPORTER" ] || fail "$EXPORTER is missing (test/deps.sh installs prometheus-postgres-exporter)"

use_server
fresh_db t_exporter
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, latency float8) SERVER stream_ext;
CREATE VIEW url_stats WITH (continuous) AS SELECT url, count(*), avg(latency) FROM clicks GROUP BY url;
INSERT INTO clicks SELECT '/p/' || i % 10, i FROM generate_series(1, 1000) i;
-- a consumer of brokers that do not answer: its row is there, its lag unknown
SELECT stream_ext.kafka_consume('clicks', topic => 'clicks', brokers => '127.0.0.1:9',
                                options => '{"reconnect.backoff.max.ms": "10000"}');
SQL

# a free loopback port
port=""
for p in $(shuf -i 20000-24999 -n 50); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port"

DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=${PGUSER:-postgres} dbname=t_exporter sslmode=disable" \
	"$EXPORTER" --web.listen-address="127.0.0.1:$port" --extend.query-path="$QUERIES" \
	--disable-settings-metrics --log.level=info >"$SCRATCH/exporter.log" 2>&1 &
_bg_pids+=($!)

scrape() { curl -sf "http://127.0.0.1:$port/metrics" >"$SCRATCH/metrics.txt" 2>/dev/null; }
deadline=$((SECONDS + 30))
until scrape && grep -q '^stream_ext_view_events{' "$SCRATCH/metrics.txt"; do
	[ $SECONDS -ge $deadline ] && { cat "$SCRATCH/exporter.log"; fail "the exporter serves no stream_ext metric"; }
	sleep 0.5
done
say "ok: the exporter answers on 127.0.0.1:$port"

# every metric of the file: namespace_column for the columns that are not labels
metrics=$(awk '/^[a-z_]+:/ { ns = substr($1, 1, length($1) - 1) }
	/^    - [a-z_0-9]+: \{usage: "(GAUGE|COUNTER)"/ { m = $2; sub(":", "", m); print ns "_" m }' "$QUERIES")
[ "$(echo "$metrics" | wc -l)" -ge 30 ] || fail "could not read the metrics of $QUERIES"
missing=""
for m in $metrics; do
	grep -q "^$m{" "$SCRATCH/metrics.txt" || missing="$missing $m"
done
[ -z "$missing" ] || { grep '^stream_ext' "$SCRATCH/metrics.txt" | head -20; cat "$SCRATCH/exporter.log" | tail -20; fail "metrics missing:$missing"; }
say "ok: all $(echo "$metrics" | wc -l) metrics served"

grep -q '^stream_ext_view_events{datname="t_exporter",.*view="url_stats"} 1000$' "$SCRATCH/metrics.txt" ||
	fail "stream_ext_view_events of url_stats is not 1000: $(grep '^stream_ext_view_events' "$SCRATCH/metrics.txt")"
grep -q '^stream_ext_kafka_lag{.*topic="clicks"} NaN$' "$SCRATCH/metrics.txt" ||
	fail "the lag of a consumer whose brokers do not answer is not NaN: $(grep '^stream_ext_kafka_lag' "$SCRATCH/metrics.txt")"
grep -q '^stream_ext_waiting_writers_writers{.*waiting_for="queue"} 0$' "$SCRATCH/metrics.txt" ||
	fail "waiting writers: $(grep '^stream_ext_waiting_writers' "$SCRATCH/metrics.txt")"
say "ok: values: 1000 events, the unreachable consumer's lag NaN, no writer waiting"
if grep -i 'level=error' "$SCRATCH/exporter.log" | grep -i 'stream_ext'; then
	fail "the exporter logged query errors"
fi
say "ok: no query error in the exporter's log"

q "SELECT stream_ext.kafka_stop('clicks', 'clicks')" >/dev/null
say "PASS ($((SECONDS - t0))s)"
