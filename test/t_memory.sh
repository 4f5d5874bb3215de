#!/usr/bin/env bash
# A batch worker's memory does not grow with the events it applies: after a
# first round (which plans the views; JIT is off, as its compilation would
# come at a worker's millionth event of a view), three more rounds of
# 2,000,000 events into two views of 100,000 groups (about 4,000,000 delta
# rows a round) leave each worker's private memory within GROWTH_MB of what
# it was.  (Rows inserted into a delta table used to leave 8 bytes each in the
# kept executor's memory, for good: about 18 MB a round here.)  Then a batch
# of events that all fail a view: see below.
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
EVENTS=${EVENTS:-2000000}
GROWTH_MB=${GROWTH_MB:-16}
BAD=${BAD:-20000}
PEAK_MB=${PEAK_MB:-64}

use_server
fresh_db t_memory
set_server_setting stream_ext.jit_above_events -1
run_sql <<'SQL'
CREATE FOREIGN TABLE mem_s (k int, v int) SERVER stream_ext;
CREATE VIEW mem_count WITH (continuous) AS SELECT k % 100000 AS b, count(*) FROM mem_s GROUP BY 1;
CREATE VIEW mem_max WITH (continuous) AS SELECT k % 100001 AS b, max(v) FROM mem_s GROUP BY 1;
SQL

# the private (dirty) memory of this database's batch workers, in kB, one per line
worker_memory() {
	local pid
	for pid in $(q "SELECT pid FROM pg_stat_activity
	                WHERE backend_type = 'stream_ext worker' AND datname = current_database()
	                ORDER BY pid"); do
		[ -r "/proc/$pid/smaps_rollup" ] ||
			fail "cannot read /proc/$pid/smaps_rollup (run as root or as the server's user)"
		awk -v pid="$pid" '/^Private_Dirty:/ { kb += $2 } END { print pid, kb }' "/proc/$pid/smaps_rollup"
	done
}

round() { q "INSERT INTO mem_s SELECT i, i FROM generate_series(1, $EVENTS) i" >/dev/null; }

round
before=$(worker_memory)
[ -n "$before" ] || fail "no batch worker of this database"
for r in $(seq 1 "$ROUNDS"); do
	round
done
after=$(worker_memory)
say "private kB per worker (pid kB), before: $(echo $before); after $ROUNDS rounds: $(echo $after)"

total=$((EVENTS * (ROUNDS + 1)))
[ "$(q "SELECT sum(count) FROM mem_count")" = "$total" ] || fail "mem_count does not count every event"
[ "$(q "SELECT count(*) FROM mem_max")" = 100001 ] || fail "mem_max does not have every group"

while read -r pid kb; do
	was=$(echo "$before" | awk -v pid="$pid" '$1 == pid { print $2 }')
	[ -n "$was" ] || continue	# a worker started during the rounds
	grew=$(((kb - was) / 1024))
	[ "$grew" -le "$GROWTH_MB" ] ||
		fail "worker $pid grew by $grew MB over $ROUNDS rounds of $EVENTS events (limit $GROWTH_MB MB)"
done <<<"$after"
say "ok: no batch worker grew by more than $GROWTH_MB MB over $ROUNDS rounds of $EVENTS events"

# A batch whose every event fails a view: each event is tried alone, to
# find those that fail, and each trial's memory goes after it (a failed
# run's executor used to stay until the batch's end).  The workers' peak
# memory while they apply BAD such events stays within PEAK_MB of their
# size before.
run_sql <<'SQL'
CREATE FOREIGN TABLE mem_bad (v int) SERVER stream_ext;
CREATE VIEW mem_div WITH (continuous) AS SELECT sum(100 / v) AS s, count(*) AS n FROM mem_bad;
SQL
q "INSERT INTO mem_bad VALUES (1)" >/dev/null    # planned before
declare -A size_before
for pid in $(echo "$after" | awk '{ print $1 }'); do
	echo 5 > "/proc/$pid/clear_refs" || fail "cannot reset the peak memory of worker $pid"
	size_before[$pid]=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
done
q "INSERT INTO mem_bad SELECT 0 FROM generate_series(1, $BAD)" >/dev/null
expect "SELECT n FROM mem_div" 1 "the failing events counted nowhere"
for pid in "${!size_before[@]}"; do
	peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	grew=$(((peak - size_before[$pid]) / 1024))
	say "worker $pid: peak $((peak / 1024)) MB, $grew MB above its size before the failing events"
	[ "$grew" -le "$PEAK_MB" ] ||
		fail "worker $pid took $grew MB more to try $BAD failing events one by one (limit $PEAK_MB MB)"
done
say "ok: $BAD events failing a view cost no batch worker more than $PEAK_MB MB at its peak"
say PASS
