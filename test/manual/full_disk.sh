#!/usr/bin/env bash
# MANUAL test (root only: it mounts a tmpfs; not run by run_tests.sh or CI).
#
# Recovery from a full disk needs bounded space: the combiner merges deltas
# in chunks of MERGE_CHUNK_ROWS (src/worker/combiner.c), a transaction each,
# so merging a large backlog after space was freed does not fill the disk
# again.  (Before, one statement merged 340,000 deltas at once and refilled
# the freed space: two more PANIC restarts followed.)
#
#   1. a server whose data directory is a DISK_MB tmpfs; a stream and two
#      views: per_key (NGROUPS groups, all already in the state table) and
#      per_batch (one row per client transaction);
#   2. combine_interval = 1h: the combiner falls behind while transactions
#      of BATCH events (one delta row per event) fill the disk until FREE_MB
#      are left; then a filler file takes the rest, and inserts go on until
#      the server hits ENOSPC (PANIC and restart, or errors);
#   3. the filler is removed, combine_interval = 100ms: the server recovers
#      and the combiner merges the whole backlog; df of the tmpfs is sampled
#      every 0.2 s meanwhile;
#   4. checks: no crash and no ENOSPC after the space was freed, the server
#      is up, nothing is left to merge, every transaction the client saw
#      commit is counted exactly once (per batch and per key, against the
#      same events generated again), transactions the client saw fail are
#      absent, those whose outcome it could not know are whole or absent;
#      the peak disk use while recovering stays under the freed space and
#      under a third of the backlog's size.
#
# What recovery needs (measured): a second version of the state rows the
# merge updates until pruning or the combiner's vacuum reclaims the old ones
# (the state table grows from 25 to about 52 MB with the defaults), and new
# WAL segments created before old ones are removed (16-32 MB at moments):
# 40-75 MB for a backlog of 300 MB, about the same for 800 MB
# (DISK_MB=1024).  Built with MERGE_CHUNK_ROWS above the backlog (one merge
# statement), the same run fills the freed space again within seconds (the
# statement's sort spills to disk) and the server PANICs in a loop.
#
#   sudo PGBIN=/path/to/pg15/bin bash test/manual/full_disk.sh
#
# About 2 minutes with the defaults.  KEEP=1 keeps the scratch directory
# (server log, df samples) and prints where it is.
source "$(dirname "$0")/../lib.sh"
DISK_MB=${DISK_MB:-512}           # size of the tmpfs holding the data directory
NGROUPS=${NGROUPS:-200000}        # groups of per_key (not a multiple of 7919)
BATCH=${BATCH:-20000}             # events per client transaction
FREE_MB=${FREE_MB:-96}            # space left when the filler goes in (and freed after)
MERGE_TIMEOUT=${MERGE_TIMEOUT:-240}
MAX_INSERTS_FULL=${MAX_INSERTS_FULL:-40}   # attempts on the full disk before giving up on a PANIC

[ "$(id -u)" = 0 ] || { echo "[$TEST_NAME] needs root (it mounts a tmpfs)" >&2; exit 2; }
[ $((NGROUPS % 7919)) != 0 ] && [ "$BATCH" -le "$NGROUPS" ] || fail "NGROUPS must not be a multiple of 7919, BATCH <= NGROUPS"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
DISK="$SCRATCH/disk"
t0=$SECONDS

# Cleanup before lib.sh's: stop the sampler and the server, unmount the tmpfs.
_sampler=
_full_disk_cleanup() {
	local rc=$?
	set +e
	[ -n "$_sampler" ] && kill "$_sampler" 2>/dev/null
	if mountpoint -q "$DISK"; then
		[ -f "$SRV/data/postmaster.pid" ] &&
			runuser -u postgres -- "$PGBIN/pg_ctl" -D "$SRV/data" -m immediate -w stop >/dev/null 2>&1
		umount "$DISK" 2>/dev/null || umount -l "$DISK"
	fi
	if [ -n "${KEEP:-}" ]; then
		say "kept $SCRATCH"
		_own_scratch=
		_own_servers=()
	fi
	(exit $rc)
	_cleanup
}
trap _full_disk_cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DISK" "$SRV"
mount -t tmpfs -o "size=${DISK_MB}m" tmpfs "$DISK"
mkdir "$DISK/data"
chown postgres "$DISK/data"
chmod 700 "$DISK/data"
ln -s "$DISK/data" "$SRV/data"      # server.sh initdb's DIR/data: on the tmpfs; its log stays outside
start_own_server "$SRV" "max_wal_size = 64MB" "min_wal_size = 32MB" "checkpoint_timeout = 30s"
fresh_db full_disk
create_pending_deltas

MB=1048576
used() { df -B1 --output=used "$DISK" | tail -1 | tr -d ' '; }
avail() { df -B1 --output=avail "$DISK" | tail -1 | tr -d ' '; }
mb() { echo $(($1 / MB)); }
now_ms() { date +%s%3N; }

# batch_events(b, n): the n events of client transaction b.  Batch 0 holds
# every key once; in any batch the keys are distinct (7919 is prime), so
# each event makes one delta row.
run_sql <<SQL
CREATE FOREIGN TABLE ev (b int, i int, k int, v bigint, note text) SERVER stream_ext;
CREATE VIEW per_key WITH (continuous) AS
  SELECT k, count(*) AS n, sum(v) AS s, max(note) AS last_note FROM ev GROUP BY k;
CREATE VIEW per_batch WITH (continuous) AS
  SELECT b, count(*) AS n, sum(i) AS i_sum FROM ev GROUP BY b;
CREATE FUNCTION batch_events(b int, n int)
  RETURNS TABLE (b int, i int, k int, v bigint, note text) LANGUAGE sql IMMUTABLE AS \$\$
  SELECT b, i, 1 + ((b::bigint * 104729 + i::bigint * 7919) % $NGROUPS)::int,
         b::bigint * 1000000 + i, md5(b || '.' || i)
    FROM generate_series(1, n) i \$\$;
CREATE TABLE outcomes (b int PRIMARY KEY, n int, outcome text);
SQL
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'per_key'::regclass")
state=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'per_key'::regclass")

# 1. every group in the state table
q "INSERT INTO ev SELECT * FROM batch_events(0, $NGROUPS)" >/dev/null
echo "0	$NGROUPS	committed" > "$SCRATCH/outcomes.tsv"
wait_until 60 "the base batch merged" "SELECT pending_deltas() = 0"
state_before=$(q "SELECT pg_total_relation_size('$state')")
say "base: $NGROUPS groups merged into the state table; disk used $(mb "$(used)") of $DISK_MB MB"

# 2. the combiner falls behind
q "ALTER SYSTEM SET stream_ext.combine_interval = '1h'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
sleep 1

# insert_batch B: one transaction of BATCH events; records its outcome:
# committed (psql succeeded), failed (an error: rolled back) or unknown (the
# connection was lost: it may have committed)
insert_batch() {
	local rc=0
	PGOPTIONS="-c statement_timeout=120s" psql -X -q -v ON_ERROR_STOP=1 \
		-c "INSERT INTO ev SELECT * FROM batch_events($1, $BATCH)" >/dev/null 2>"$SCRATCH/insert.err" || rc=$?
	case $rc in
	0) LAST_OUTCOME=committed ;;
	2) LAST_OUTCOME=unknown ;;
	*) LAST_OUTCOME=failed ;;
	esac
	printf '%s\t%s\t%s\n' "$1" "$BATCH" "$LAST_OUTCOME" >> "$SCRATCH/outcomes.tsv"
	[ $rc = 0 ]
}

b=0
while [ "$(avail)" -gt $((FREE_MB * MB)) ]; do
	b=$((b + 1))
	insert_batch $b || fail "batch $b failed with $(mb "$(avail)") MB free: $(cat "$SCRATCH/insert.err")"
	if [ $((b % 25)) = 0 ]; then say "  $b transactions, disk used $(mb "$(used)") MB"; fi
done
backlog_rows=$(q "SELECT count(*) FROM $delta")
backlog_bytes=$(q "SELECT pg_total_relation_size('$delta')")
say "backlog: $b transactions of $BATCH events, $backlog_rows delta rows ($(mb "$backlog_bytes") MB) unmerged;" \
	"disk used $(mb "$(used)") MB, $(mb "$(avail)") MB free"

# sample the disk use from here on
# (time in ms, bytes used on the tmpfs, bytes in pg_wal)
( while :; do echo "$(now_ms) $(used) $(du -sb "$DISK/data/pg_wal" 2>/dev/null | cut -f1)"; sleep 0.2; done ) \
	> "$SCRATCH/df.log" 2>/dev/null &
_sampler=$!

# 3. the filler takes the rest; inserts go on until the server hits ENOSPC
log_full=$(log_offset)
filler_bytes=$(avail)
fallocate -l "$filler_bytes" "$DISK/filler" 2>/dev/null ||
	dd if=/dev/zero of="$DISK/filler" bs=1M status=none 2>/dev/null || true
say "filler: $(mb "$(stat -c %s "$DISK/filler")") MB; $(avail) bytes free"

# (grep -c reads all its input: with pipefail, grep -q could fail the pipe)
panicked() { [ "$(log_since "$log_full" | grep -cE 'PANIC|terminated by signal|startup process .* failed')" != 0 ]; }
tries=0
while ! panicked && [ $tries -lt "$MAX_INSERTS_FULL" ]; do
	tries=$((tries + 1)); b=$((b + 1))
	insert_batch $b && continue
	say "  batch $b on the full disk: $LAST_OUTCOME ($(head -1 "$SCRATCH/insert.err"))"
	[ "$LAST_OUTCOME" = unknown ] && sleep 1
done
[ "$(log_since "$log_full" | grep -c 'No space left on device')" != 0 ] || fail "the filler did not make the server hit ENOSPC"
if panicked; then
	say "ENOSPC: $(log_since "$log_full" | grep -m1 PANIC | sed 's/^.*PANIC/PANIC/' || true)"
else
	say "ENOSPC: errors, no PANIC ($tries transactions tried on the full disk)"
fi

# 4. free the space; the server recovers, the combiner merges the backlog
used_full=$(used)
rm -f "$DISK/filler"
t_free=$(now_ms); s_free=$SECONDS
log_freed=$(log_offset)
used_freed=$(used)
free_given=$(avail)
say "filler removed: $(mb "$free_given") MB free, $(mb "$used_freed") MB used"

if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$SRV/data" status >/dev/null 2>&1; then
	say "the postmaster had stopped: starting it again"
	bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
fi
wait_until 120 "the server accepts connections" "SELECT true"
q "ALTER SYSTEM SET stream_ext.combine_interval = '100ms'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
say "server up after $((SECONDS - s_free)) s; combine_interval = 100ms"

# The combiner should be back by itself.  Known issue: when every process of
# the database failed at start-up after the crash (the disk still full:
# "FATAL: could not write init file"), the launcher gave the group up and
# only a writer asks for it again.  Then one more transaction brings it
# back (STRICT=1: fail instead).
known_issue=
if ! try_wait 15 "a stream_ext combiner for database full_disk" "SELECT count(*) > 0 FROM pg_stat_activity
		WHERE datname = 'full_disk' AND backend_type = 'stream_ext combiner'" 2>/dev/null; then
	known_issue="no combiner 15 s after the space was freed: the processes of the database failed at start-up after the crash ($(log_since "$log_full" | grep -c 'FATAL:  could not write init file' || true) 'could not write init file') and the launcher did not restart them"
	say "KNOWN ISSUE: $known_issue"
	[ -z "${STRICT:-}" ] || fail "$known_issue"
	b=$((b + 1))
	insert_batch $b || fail "batch $b failed after the space was freed: $(cat "$SCRATCH/insert.err")"
	wait_until 30 "a stream_ext combiner for database full_disk" "SELECT count(*) > 0 FROM pg_stat_activity
		WHERE datname = 'full_disk' AND backend_type = 'stream_ext combiner'"
	say "  one more transaction ($BATCH events) started the combiner again"
fi

# until every delta is merged, the disk fills again, or MERGE_TIMEOUT
enospc_since_freed() { log_since "$log_freed" | grep -c 'No space left on device' || true; }
deadline=$((SECONDS + MERGE_TIMEOUT)); next_report=$((SECONDS + 10)); merged=
while :; do
	if [ "$(psql -X -At -c "SELECT NOT EXISTS (SELECT FROM $delta)" 2>/dev/null)" = t ]; then
		merged=$SECONDS; break
	fi
	if [ "$(enospc_since_freed)" != 0 ]; then
		say "the disk is full again $((SECONDS - s_free)) s after the space was freed"
		sleep 5; break
	fi
	[ $SECONDS -ge $deadline ] && { say "deltas left after ${MERGE_TIMEOUT} s"; break; }
	if [ $SECONDS -ge $next_report ]; then
		say "  merging: $(psql -X -At -c "SELECT count(*) FROM $delta" 2>/dev/null || echo '?') deltas left," \
			"disk used $(mb "$(used)") MB"
		next_report=$((SECONDS + 10))
	fi
	sleep 0.5
done
[ -n "$merged" ] && { sleep 2; say "backlog merged $((merged - s_free)) s after the space was freed"; }
t_done=$(now_ms)
kill "$_sampler"; _sampler=

# 5. checks
failures=()
check() {  # check ok|bad TEXT...
	local r=$1; shift
	if [ "$r" = ok ]; then say "ok: $*"; else say "FAILED: $*"; failures+=("$*"); fi
}

crash_after=$(log_since "$log_freed" | grep -cE 'PANIC|terminated by signal|terminating any other active server processes' || true)
[ "$crash_after" = 0 ] && r=ok || r=bad
check $r "no crash after the space was freed ($crash_after crash lines in the log)"
enospc_after=$(enospc_since_freed)
[ "$enospc_after" = 0 ] && r=ok || r=bad
check $r "no ENOSPC after the space was freed ($enospc_after lines in the log)"

# over the samples from the filler's removal to the end of the merge: the
# peak disk use, pg_wal then, the first sample's pg_wal, the largest pg_wal
read -r samples peak peak_wal wal_freed wal_max < <(awk -v a="$t_free" -v z="$t_done" '
	$1 >= a && $1 <= z { n++; if (n == 1) w0 = $3; if ($2 > m) { m = $2; mw = $3 } if ($3 > wm) wm = $3 }
	END { print n + 0, m + 0, mw + 0, w0 + 0, wm + 0 }' "$SCRATCH/df.log")
state_after=$(psql -X -At -c "SELECT pg_total_relation_size('$state')" 2>/dev/null || echo 0)
need=$((peak - used_freed)); at_least=
[ "$need" -lt 0 ] && need=0
# ENOSPC: the disk was full, whatever the samples caught
[ "$enospc_after" = 0 ] || { peak=$((used_freed + free_given)); need=$free_given; at_least="at least "; }
say "disk: $DISK_MB MB tmpfs, full at $(mb "$used_full") MB; freed: $(mb "$used_freed") MB used, $(mb "$free_given") MB free"
say "recovery and merge: peak $at_least$(mb "$peak") MB used ($samples samples of df, every 0.2 s):" \
	"needed $at_least$(mb "$need") MB of the $(mb "$free_given") MB freed to merge $backlog_rows deltas ($(mb "$backlog_bytes") MB)"
say "  pg_wal $(mb "$wal_freed") MB when freed, $(mb "$peak_wal") MB at the peak, $(mb "$wal_max") MB at most" \
	"(max_wal_size = 64MB); per_key's state table $(mb "$state_before") MB before, $(mb "$state_after") MB after"
[ "$need" -lt "$free_given" ] && r=ok || r=bad
check $r "recovery needed less than the freed space ($(mb "$need") < $(mb "$free_given") MB)"
[ "$need" -le $((backlog_bytes / 3)) ] && r=ok || r=bad
check $r "recovery needed at most a third of the backlog's size ($(mb "$need") <= $(mb $((backlog_bytes / 3))) MB)"

if [ "$crash_after" != 0 ] || [ "$enospc_after" != 0 ]; then
	fail "${#failures[@]} check(s) failed: the disk filled again after the space was freed ($((SECONDS - t0)) s)"
fi

try_wait 60 "the server accepts connections" "SELECT true" && r=ok || r=bad
check $r "the server is up"
[ "$r" = ok ] || fail "${#failures[@]} check(s) failed, the server is down ($((SECONDS - t0)) s)"
left=$(q "SELECT pending_deltas()")
[ -n "$merged" ] && [ "$left" = 0 ] && r=ok || r=bad
check $r "the combiner merged the whole backlog ($left deltas left)"

run_sql -c "\\copy outcomes FROM '$SCRATCH/outcomes.tsv'"
# (in memory: temp files could fill the disk while a merge goes on)
problems=$(psql -X -q -At -v ON_ERROR_STOP=1 2>&1 <<'SQL' || echo "the check query failed"
SET work_mem = '512MB';
SET temp_file_limit = '16MB';
WITH present AS (
  SELECT o.b, o.n FROM outcomes o JOIN per_batch v USING (b)
), expected AS (
  SELECT e.k, count(*) AS n, sum(e.v) AS s, max(e.note) AS last_note
    FROM present p, batch_events(p.b, p.n) e GROUP BY e.k
), problems AS (
  SELECT format('batch %s (%s): %s', o.b, o.outcome, coalesce(v.n::text, 'absent')) AS p
    FROM outcomes o LEFT JOIN per_batch v USING (b)
   WHERE (o.outcome = 'committed' AND v.b IS NULL)
      OR (o.outcome = 'failed' AND v.b IS NOT NULL)
      OR (v.b IS NOT NULL AND (v.n <> o.n OR v.i_sum <> o.n::bigint * (o.n + 1) / 2))
  UNION ALL
  SELECT format('batch %s in the view but never sent', b) FROM per_batch
   WHERE b NOT IN (SELECT b FROM outcomes)
  UNION ALL
  (SELECT format('key %s: view %s', k, row(n, s, last_note)) FROM
     (SELECT k, n, s, last_note FROM per_key EXCEPT ALL SELECT * FROM expected) x LIMIT 3)
  UNION ALL
  (SELECT format('key %s: expected %s', k, row(n, s, last_note)) FROM
     (SELECT * FROM expected EXCEPT ALL SELECT k, n, s, last_note FROM per_key) x LIMIT 3)
)
SELECT p FROM problems;
SQL
)
read -r committed unknown_in unknown_out failed events < <(q "SELECT
  count(*) FILTER (WHERE o.outcome = 'committed'),
  count(*) FILTER (WHERE o.outcome = 'unknown' AND v.b IS NOT NULL),
  count(*) FILTER (WHERE o.outcome = 'unknown' AND v.b IS NULL),
  count(*) FILTER (WHERE o.outcome = 'failed'),
  (SELECT sum(n) FROM per_key)
  FROM outcomes o LEFT JOIN per_batch v USING (b)" | tr '|' ' ')
[ -z "$problems" ] && r=ok || { r=bad; echo "$problems" | head -10 | sed "s/^/[$TEST_NAME]   /"; }
check $r "exact: $committed committed transactions (the base one included) counted once, per batch and per key ($events events);" \
	"$failed failed ones absent; of the $((unknown_in + unknown_out)) with unknown outcome $unknown_in whole, $unknown_out absent"

if [ ${#failures[@]} -gt 0 ]; then
	fail "${#failures[@]} check(s) failed ($((SECONDS - t0)) s)"
fi
[ -z "$known_issue" ] || say "PASS with a known issue: $known_issue"
say "PASS ($((SECONDS - t0)) s): $DISK_MB MB disk, $NGROUPS groups, $events events, backlog $backlog_rows deltas" \
	"($(mb "$backlog_bytes") MB) merged with $(mb "$need") MB of $(mb "$free_given") MB freed"
