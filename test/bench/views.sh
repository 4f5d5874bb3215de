#!/usr/bin/env bash
# Benchmarks of view kinds beyond the core view: one run, one throwaway server.
#
#   test/bench/views.sh                         # everything, ~3 minutes
#   REPS=1 EVENTS=300000 test/bench/views.sh    # quick smoke run
#
# Same server settings and method as test/bench/core.sh (server-side COPY FROM
# the core benchmark's CSV of EVENTS events, sync mode, each timed COPY starts
# once the combiner merged every delta, into a view emptied first; one stream
# per view; rates are the median of REPS interleaved runs):
#   core     the core single view: url, count(*), sum(latency), avg(latency),
#            max(ts) GROUP BY url
#   sketch   (h) the approximate view of the hll and tdigest packages:
#            url, hll_cardinality(hll_add_agg(hll_hash_bigint(user_id))),
#            tdigest_percentile(latency, 100, 0.99) GROUP BY url;
#            target >= 0.7 x core
#   join     (i) a view joining users (100,000 rows, primary key):
#            u.country, count(*), avg(c.latency) FROM clicks c JOIN users u
#            ON u.id = c.user_id GROUP BY u.country (50 countries)
#   nojoin   the same view without the join: the country a user id maps to
#            computed from the id ((user_id % 50)), the same 50 groups;
#            target: join >= 0.5 x nojoin
# After the runs each view is checked against the same query over a table of
# the events.
#
# Knobs (environment): EVENTS (2000000), REPS (3).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-2000000}
REPS=${REPS:-3}
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'")

CMDLINE="test/bench/views.sh"
envs=""
[ "$EVENTS" != 2000000 ] && envs+="EVENTS=$EVENTS "
[ "$REPS" != 3 ] && envs+="REPS=$REPS "
CMDLINE="${envs}${CMDLINE}"

source "$HERE/lib.sh"
start_bench views

log "server on port $PGPORT in $DIR; creating schema"
q <<'SQL'
CREATE EXTENSION stream_ext;
CREATE EXTENSION hll;
CREATE EXTENSION tdigest;
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_sk (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_j (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE clicks_nj (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE TABLE users (id bigint PRIMARY KEY, country text NOT NULL, plan text);
INSERT INTO users SELECT i, 'c' || (i % 50), CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END
  FROM generate_series(0, 99999) i;
ANALYZE users;
CREATE VIEW core_view WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts) FROM clicks GROUP BY url;
CREATE VIEW sketch_view WITH (continuous) AS
  SELECT url, hll_cardinality(hll_add_agg(hll_hash_bigint(user_id))) AS users,
         tdigest_percentile(latency, 100, 0.99) AS p99
  FROM clicks_sk GROUP BY url;
CREATE VIEW join_view WITH (continuous) AS
  SELECT u.country, count(*), avg(c.latency) FROM clicks_j c JOIN users u ON u.id = c.user_id
  GROUP BY u.country;
CREATE VIEW nojoin_view WITH (continuous) AS
  SELECT 'c' || (user_id % 50) AS country, count(*), avg(latency) FROM clicks_nj GROUP BY 1;
SQL

write_core_events
q -c "CREATE UNLOGGED TABLE ref (url text, user_id bigint, latency float8, ts timestamptz)" \
  -c "COPY ref FROM '$CSV' (FORMAT csv)"

start_workers clicks core_view

declare -A RATES CPU
log "COPY $EVENTS events into each view's stream; $REPS reps (interleaved)"
for i in $(seq "$REPS"); do
	view_copy core clicks core_view
	view_copy sketch clicks_sk sketch_view
	view_copy join clicks_j join_view
	view_copy nojoin clicks_nj nojoin_view
done
quiesce

check "$(q -c "SELECT count(*) FROM (SELECT url, count FROM core_view EXCEPT
                SELECT url, count(*) FROM ref GROUP BY url) x")" 0 "core_view rows differing from ref"
check "$(q -c "SELECT count(*) FROM (SELECT country, count FROM join_view EXCEPT
                SELECT u.country, count(*) FROM ref c JOIN users u ON u.id = c.user_id GROUP BY 1) x")" 0 \
	"join_view rows differing from ref"
check "$(q -c "SELECT count(*) FROM (SELECT country, count FROM nojoin_view EXCEPT
                SELECT 'c' || (user_id % 50), count(*) FROM ref GROUP BY 1) x")" 0 \
	"nojoin_view rows differing from ref"
check "$(q -c "SELECT count(*) FROM sketch_view v JOIN (SELECT url, hll_cardinality(hll_add_agg(hll_hash_bigint(user_id))) AS users
                 FROM ref GROUP BY url) b USING (url) WHERE v.users <> b.users")" 0 "sketch_view distinct counts differing from the batch hll"
check "$(q -c "SELECT count(*) FROM sketch_view")" 1000 "sketch_view groups"
[ -n "$CHECKS" ] || CHECKS="ok"
log "checks: $CHECKS"

R_CORE=$(echo ${RATES[core]} | tr ' ' '\n' | median)
R_SK=$(echo ${RATES[sketch]} | tr ' ' '\n' | median)
R_J=$(echo ${RATES[join]} | tr ' ' '\n' | median)
R_NJ=$(echo ${RATES[nojoin]} | tr ' ' '\n' | median)
spread() { echo ${RATES[$1]} | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {printf "%s-%s", a[1], a[NR]}'; }

cat <<EOF

## test/bench/views.sh: $(date -u +%F) ($CMDLINE), load at start $LOAD_START

| case | events/s (median of $REPS) | runs (min-max) | COPY/workers/combiner s per run | ratio | target | met |
|---|---|---|---|---|---|---|
| core view | $(fmt "$R_CORE") | $(spread core) | ${CPU[core]} | 1.00 | | |
| (h) hll + tdigest view | $(fmt "$R_SK") | $(spread sketch) | ${CPU[sketch]} | $(ratio "$R_SK" "$R_CORE") x core | >= 0.7 | $(yesno ge "$(ratio "$R_SK" "$R_CORE")" 0.7) |
| view without the join | $(fmt "$R_NJ") | $(spread nojoin) | ${CPU[nojoin]} | 1.00 | | |
| (i) view joining users (100,000 rows) | $(fmt "$R_J") | $(spread join) | ${CPU[join]} | $(ratio "$R_J" "$R_NJ") x without | >= 0.5 | $(yesno ge "$(ratio "$R_J" "$R_NJ")" 0.5) |

checks: $CHECKS
EOF
