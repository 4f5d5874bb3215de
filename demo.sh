#!/usr/bin/env bash
# stream_ext demo: bash demo.sh        (bash demo.sh stop  destroys the demo server)
#
# Installs missing packages, builds and installs the extension, starts a
# throwaway server in /tmp/stream_ext_demo (reused if running), creates a
# stream `clicks` with three continuous views, feeds it ~3000 events/s from a
# background generator and shows the views refreshing for DEMO_SECONDS (15).
# The server stays up afterwards so you can look around with psql.
set -euo pipefail
cd "$(dirname "$0")"
DIR=/tmp/stream_ext_demo
DB=demo
SECS=${DEMO_SECONDS:-15}
RATE=${DEMO_RATE:-3000}
PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

stop_generator() {
	if [ -f "$DIR/generator.pid" ]; then
		kill "$(cat "$DIR/generator.pid")" 2>/dev/null || true
		rm -f "$DIR/generator.pid"
	fi
	if [ -f "$DIR/port" ]; then
		psql -X -q -h "$DIR/socket" -p "$(cat "$DIR/port")" -U postgres -d postgres -c \
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'stream_ext_demo_generator'" \
			>/dev/null 2>&1 || true
	fi
}

if [ "${1:-}" = stop ]; then
	stop_generator
	bash test/server.sh destroy "$DIR"
	echo "demo server stopped, $DIR removed"
	exit 0
elif [ $# -gt 0 ]; then
	echo "usage: bash demo.sh [stop]" >&2; exit 2
fi

echo "== packages (test/deps.sh)"
as_root bash test/deps.sh
echo "== building and installing stream_ext"
if ! { make -s clean && make -s && as_root make -s install; } >/tmp/stream_ext_demo_build.log 2>&1; then
	tail -n 40 /tmp/stream_ext_demo_build.log
	echo "build failed (log: /tmp/stream_ext_demo_build.log)"; exit 1
fi

echo "== server in $DIR"
if [ -f "$DIR/port" ] && pg_isready -q -h "$DIR/socket" -p "$(cat "$DIR/port")"; then
	echo "reusing the running demo server"
	stop_generator
elif [ -d "$DIR/data" ]; then
	bash test/server.sh restart "$DIR" >/dev/null
else
	rm -rf "$DIR"
	bash test/server.sh start "$DIR" >/dev/null
fi
export PGHOST="$DIR/socket" PGPORT="$(cat "$DIR/port")" PGUSER=postgres
psql -X -At -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
	psql -X -q -d postgres -c "CREATE DATABASE $DB"
export PGDATABASE=$DB

echo "== creating the stream clicks and four continuous views"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS stream_ext;
DROP FOREIGN TABLE IF EXISTS clicks CASCADE;

CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;

-- per url: hits, latency, slow requests (only /page/ urls)
CREATE VIEW url_stats WITH (continuous) AS
  SELECT url, count(*) AS hits, avg(latency) AS avg_latency, max(latency) AS max_latency,
         count(*) FILTER (WHERE latency > 100) AS slow, max(ts) AS last_seen
    FROM clicks WHERE url LIKE '/page/%' GROUP BY url;

-- everything at once
CREATE VIEW totals WITH (continuous) AS
  SELECT count(*) AS events, avg(latency) AS avg_latency, stddev(latency) AS stddev_latency,
         min(latency) AS min_latency, max(latency) AS max_latency
    FROM clicks;

-- per minute of arrival, kept for an hour
CREATE VIEW per_minute WITH (continuous, ttl = '1 hour', ttl_column = 'minute') AS
  SELECT date_trunc('minute', arrival_timestamp) AS minute, count(*) AS events,
         avg(latency) AS avg_latency, count(*) FILTER (WHERE latency > 100) AS slow
    FROM clicks GROUP BY date_trunc('minute', arrival_timestamp);

-- the last 10 seconds of event time, per area (page or api)
CREATE VIEW last_10s WITH (continuous, sliding_window = '10 seconds', step = '1 second',
                           time_column = 'ts') AS
  SELECT split_part(url, '/', 2) AS area, count(*) AS events, max(latency) AS max_latency
    FROM clicks GROUP BY 1;

-- generator: batches of 50 random clicks, one transaction each, paced to a rate
CREATE OR REPLACE PROCEDURE demo_generate(seconds float8, per_second int) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  n bigint := 0;
BEGIN
  WHILE clock_timestamp() < t0 + seconds * interval '1 second' LOOP
    INSERT INTO clicks (url, user_id, latency, ts)
      SELECT CASE WHEN random() < 0.9 THEN '/page/' || (1 + floor(random() * random() * 8))::int
                  ELSE '/api/v' || (1 + floor(random() * 2))::int END,
             floor(random() * 10000)::bigint,
             round((-ln(1 - random()) * 40)::numeric, 2)::float8,
             clock_timestamp()
        FROM generate_series(1, 50);
    COMMIT;
    n := n + 50;
    PERFORM pg_sleep(greatest(0, n::float8 / per_second - extract(epoch FROM clock_timestamp() - t0)));
  END LOOP;
END $$;
SQL

echo "== starting the generator (~$RATE events/s, small transactions)"
PGAPPNAME=stream_ext_demo_generator psql -X -q -c "CALL demo_generate($SECS + 5, $RATE)" \
	>"$DIR/generator.log" 2>&1 &
echo $! > "$DIR/generator.pid"
trap 'stop_generator' EXIT

show() {
	psql -X -q <<'SQL'
\pset footer off
\echo 'url_stats:  SELECT url, count(*), avg(latency), max(latency), count(*) FILTER (WHERE latency > 100), max(ts)'
\echo '            FROM clicks WHERE url LIKE ''/page/%'' GROUP BY url'
SELECT url, hits, round(avg_latency::numeric, 2) AS avg_latency, max_latency, slow,
       to_char(last_seen, 'HH24:MI:SS.MS') AS last_seen
  FROM url_stats ORDER BY url;
\echo 'totals:     SELECT count(*), avg(latency), stddev(latency), min(latency), max(latency) FROM clicks'
SELECT events, round(avg_latency::numeric, 3) AS avg_latency, round(stddev_latency::numeric, 3) AS stddev_latency,
       min_latency, max_latency FROM totals;
\echo 'per_minute: SELECT date_trunc(''minute'', arrival_timestamp), count(*), avg(latency), ... GROUP BY 1'
SELECT to_char(minute, 'YYYY-MM-DD HH24:MI') AS minute, events, round(avg_latency::numeric, 2) AS avg_latency, slow
  FROM per_minute ORDER BY minute DESC LIMIT 5;
\echo 'last_10s:   WITH (sliding_window = ''10 seconds'', time_column = ''ts'')'
\echo '            SELECT split_part(url, ''/'', 2), count(*), max(latency) FROM clicks GROUP BY 1'
SELECT area, events, max_latency FROM last_10s ORDER BY area;
\echo 'stream_ext.view_stats:'
SELECT name, events, batches, to_char(last_applied, 'HH24:MI:SS.MS') AS last_applied, errors, late_events
  FROM stream_ext.view_stats ORDER BY name::text;
SQL
}

start=$SECONDS
if [ -t 1 ]; then
	while [ $((SECONDS - start)) -lt "$SECS" ]; do
		out=$(show 2>&1)
		printf '\033[H\033[2J'
		echo "stream_ext demo: continuous views over the stream clicks, $((SECONDS - start))s of ${SECS}s"
		echo
		echo "$out"
		sleep 1
	done
else
	for i in 1 2 3; do
		sleep $((SECS / 3))
		echo
		echo "--- snapshot $i after $((SECONDS - start))s"
		show
	done
fi
stop_generator
trap - EXIT
if grep -q ERROR "$DIR/generator.log"; then
	echo "generator error:"; grep -v 'terminating connection\|server closed\|connection to server' "$DIR/generator.log" | head -n 5
fi

echo
echo "--- final state (generator stopped)"
show
cat <<EOT

The demo server is still running.  Connect with:
  psql -h $DIR/socket -p $PGPORT -U postgres $DB
then e.g.  INSERT INTO clicks VALUES ('/page/1', 42, 12.5, now());  SELECT * FROM url_stats;
Stop it (and remove $DIR) with:
  bash demo.sh stop
EOT
