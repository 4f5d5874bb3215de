#!/usr/bin/env bash
# Lateness of a timestamp (without time zone) time column does not depend on
# the TimeZone the workers run in: the watermark orders events as the
# column's values order, also across a daylight saving change of that zone.
# The database's workers run in America/New_York here, and the stream's
# times are UTC wall-clock values, as many applications store them.  On
# 2026-03-08 New York's clocks went from 02:00 to 03:00: taken in that zone,
# 02:50 (no such local time) came after 03:10, whose events were then late.
source "$(dirname "$0")/lib.sh"
use_server
empty_db t_lateness_zones
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER DATABASE t_lateness_zones SET TimeZone = 'America/New_York'"
run_sql -c "CREATE EXTENSION stream_ext"
export PGTZ=UTC

run_sql <<'SQL'
CREATE FOREIGN TABLE lz (ts timestamp) SERVER stream_ext;
CREATE VIEW lz_v WITH (continuous, time_column = 'ts', allowed_lateness = '5 minutes', keep_late = true) AS
  SELECT date_bin('1 hour', ts, '2000-01-01') AS h, count(*) AS c FROM lz GROUP BY 1;
CREATE FOREIGN TABLE lzd (d date) SERVER stream_ext;
CREATE VIEW lzd_v WITH (continuous, time_column = 'd', allowed_lateness = '1 hour') AS
  SELECT d, count(*) AS c FROM lzd GROUP BY d;
SQL
expect "SELECT setconfig[1] FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database()" "TimeZone=America/New_York" "the database's workers run in New York"

# one event per transaction, in time order, then one truly late (40 minutes)
for t in '2026-03-08 01:55' '2026-03-08 02:50' '2026-03-08 03:10' '2026-03-08 03:40' '2026-03-08 03:00'; do
	run_sql -c "INSERT INTO lz VALUES ('$t')"
done
expect "SELECT string_agg(to_char(h, 'HH24:MI') || '=' || c, ' ' ORDER BY h) FROM lz_v" "01:00=1 02:00=1 03:00=2" \
	"events in time order across New York's spring forward are not late"
expect "SELECT late_events FROM stream_ext.view_stats WHERE name = 'lz_v'::regclass" "1" "only the truly late event is late"
expect "SELECT (event_time AT TIME ZONE 'UTC')::text || ' ' || (watermark AT TIME ZONE 'UTC')::text FROM stream_ext.late_events" \
	"2026-03-08 03:00:00 2026-03-08 03:35:00" "the late event, and the watermark (a time without zone, as in UTC)"

# dates: midnight of each day, in order; none late
for d in 2026-03-07 2026-03-08 2026-03-09; do run_sql -c "INSERT INTO lzd VALUES ('$d')"; done
expect "SELECT count(*) || ' ' || (SELECT late_events FROM stream_ext.view_stats WHERE name = 'lzd_v'::regclass) FROM lzd_v" \
	"3 0" "dates across the change: none late"
say "PASS"
