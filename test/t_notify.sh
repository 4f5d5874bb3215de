#!/usr/bin/env bash
# notify = 'channel': a client listening with psycopg2 (test/listen.py) gets
# each row of a committed writer once, as the row's JSON, and nothing of a
# rolled back transaction or savepoint; a row too long for a notification
# comes as {"truncated": true, "bytes": n, "md5": of its JSON} (two long rows
# moved together are two notifications); an alert made of a change stream
# and a view with notify fires once per group, when it crosses the threshold.
source "$(dirname "$0")/lib.sh"

fresh_db t_notify
run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, latency float8, note text) SERVER stream_ext;
CREATE VIEW slow WITH (continuous, notify = 'slow') AS
  SELECT url, latency, note FROM clicks WHERE latency > 100;
CREATE VIEW url_stats WITH (continuous) AS SELECT url, count(*) AS n FROM clicks GROUP BY url;
SELECT stream_ext.create_change_stream('url_stats', 'url_changes');
CREATE VIEW alerts WITH (continuous, notify = 'alerts', ttl = '1 day', ttl_column = 'at') AS
  SELECT (new).url, (new).n, arrival_timestamp AS at FROM url_changes
  WHERE (new).n >= 3 AND coalesce((old).n, 0) < 3;
SQL

out="$SCRATCH/notifications"
ready="$SCRATCH/listening"
/usr/bin/python3 "$TEST_DIR/listen.py" "$out" "$ready" slow alerts &
listener=$!
_bg_pids+=("$listener")
for _ in $(seq 1 100); do [ -f "$ready" ] && break; sleep 0.1; done
[ -f "$ready" ] || fail "the listener did not start"

run_sql <<'SQL'
INSERT INTO clicks VALUES ('/a', 150, 'c1');
INSERT INTO clicks VALUES ('/a', 5, 'fast'), ('/b', 250.5, 'c2');
BEGIN; INSERT INTO clicks VALUES ('/r', 500, 'rolled back'); ROLLBACK;
BEGIN;
INSERT INTO clicks VALUES ('/k', 101, 'kept');
SAVEPOINT s;
INSERT INTO clicks VALUES ('/r', 500, 'rolled back savepoint');
ROLLBACK TO s;
COMMIT;
INSERT INTO clicks VALUES ('/big', 1000, repeat('x', 9000)), ('/big', 1000, repeat('y', 9000));
INSERT INTO clicks VALUES ('/a', 1, 'third of /a');
INSERT INTO clicks VALUES ('/a', 1, 'fourth of /a');
SQL
# 1000 slow events in one COPY, each with its own note
seq 1 1000 | sed 's|^|/copy\t200\tn|' | psql -X -q -v ON_ERROR_STOP=1 -c "COPY clicks FROM STDIN"

for _ in $(seq 1 600); do
	[ "$(grep -c . "$out" || true)" -ge 1007 ] && break
	sleep 0.1
done
sleep 1    # anything more would be a duplicate
kill "$listener"; wait "$listener" 2>/dev/null || true

/usr/bin/python3 - "$out" <<'PY' || fail "the notifications are not the committed rows"
import hashlib, json, sys
slow, alerts = [], []
for line in open(sys.argv[1]):
    t, channel, payload = line.rstrip("\n").split(" ", 2)
    (slow if channel == "slow" else alerts).append(json.loads(payload))
def row(url, latency, note):
    return {"url": url, "latency": latency, "note": note}
def truncated(r):
    j = json.dumps(r, separators=(",", ":"))
    return {"truncated": True, "bytes": len(j), "md5": hashlib.md5(j.encode()).hexdigest()}
want = [row("/a", 150, "c1"), row("/b", 250.5, "c2"), row("/k", 101, "kept"),
        truncated(row("/big", 1000, "x" * 9000)), truncated(row("/big", 1000, "y" * 9000))]
want += [row("/copy", 200, "n%d" % i) for i in range(1, 1001)]
key = lambda d: json.dumps(d, sort_keys=True)
if sorted(map(key, slow)) != sorted(map(key, want)):
    extra = set(map(key, slow)) - set(map(key, want))
    missing = set(map(key, want)) - set(map(key, slow))
    sys.exit("slow: %d notifications, %d expected; unexpected %s; missing %s"
             % (len(slow), len(want), sorted(extra)[:3], sorted(missing)[:3]))
# changes are coalesced per merge round: a group may cross 3 from 2 to 4
if sorted(a["url"] for a in alerts) != ["/a", "/copy"] or min(a["n"] for a in alerts) < 3:
    sys.exit("alerts: %s, expected one for /a and one for /copy, at 3 or more" % alerts)
PY
say "ok: 1007 rows notified once each as JSON (two truncated), none rolled back; one alert per group crossing 3"
