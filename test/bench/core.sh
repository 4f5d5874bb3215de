#!/usr/bin/env bash
# Core benchmarks of stream_ext: one run, one throwaway server, one summary table.
#
#   test/bench/core.sh                 # everything, ~6 minutes
#   REPS=1 PGB_T=5 test/bench/core.sh  # quick smoke run
#   PERF=1 test/bench/core.sh          # also profile case (a) with perf (see below)
#
# Cases (test/bench/README.md explains them):
#   (a) COPY of EVENTS events into a stream with 1 continuous view, vs. the same
#       COPY into an UNLOGGED table (limit), a LOGGED table, and a LOGGED table
#       with a statement trigger upserting the same aggregates (baseline)
#   (b) same COPY with 10 continuous views, vs. a table with 10 such triggers
#   (c) pgbench, 16 clients, BEGIN; INSERT 10 rows; COMMIT; into the stream, a
#       plain logged table (limit) and the trigger table (baseline)
#   (c1) the same with 1-row transactions, into the stream and the plain table
#   (d) async mode: COMMIT -> visible latency under a steady generator load
#   (e) shared memory of the extension, peak RSS of its worker and combiner
#
# Knobs (environment): EVENTS (2000000), REPS (3, median reported), PGB_T (15 s),
# PGB_CLIENTS (16), ASYNC_RATE (50000 events/s), ASYNC_T (20 s), SAMPLES (300),
# PERF (0; 1 = perf record the COPY backend, worker and combiner during an
# extra stream COPY, reports under PERF_OUT, default /tmp/stream-bench-perf).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-2000000}
REPS=${REPS:-3}
PGB_T=${PGB_T:-15}
PGB_CLIENTS=${PGB_CLIENTS:-16}
ASYNC_RATE=${ASYNC_RATE:-50000}
ASYNC_T=${ASYNC_T:-20}
SAMPLES=${SAMPLES:-300}
PERF=${PERF:-0}
PERF_OUT=${PERF_OUT:-/tmp/stream-bench-perf}
SERVER_CONF=("shared_buffers = '1GB'" "max_wal_size = '10GB'" "min_wal_size = '1GB'"
	"checkpoint_timeout = '30min'")

CMDLINE="test/bench/core.sh"
envs=""
[ "$EVENTS" != 2000000 ] && envs+="EVENTS=$EVENTS "
[ "$REPS" != 3 ] && envs+="REPS=$REPS "
[ "$PGB_T" != 15 ] && envs+="PGB_T=$PGB_T "
[ "$PGB_CLIENTS" != 16 ] && envs+="PGB_CLIENTS=$PGB_CLIENTS "
[ "$ASYNC_RATE" != 50000 ] && envs+="ASYNC_RATE=$ASYNC_RATE "
[ "$ASYNC_T" != 20 ] && envs+="ASYNC_T=$ASYNC_T "
[ "$SAMPLES" != 300 ] && envs+="SAMPLES=$SAMPLES "
[ "$PERF" != 0 ] && envs+="PERF=$PERF "
CMDLINE="${envs}${CMDLINE}"

DIR=$(mktemp -d /tmp/stream-bench.XXXXXX)
CSV=$DIR/events.csv
SAMPLER_PID=
GEN_PID=

cleanup() {
	local rc=$?
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
	[ -n "$GEN_PID" ] && kill "$GEN_PID" 2>/dev/null || true
	"$ROOT/test/server.sh" destroy "$DIR" || true
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

source "$HERE/lib.sh"

start_bench_server

# ---------------------------------------------------------------------------
# peak memory sampler for the extension's processes (case e)
# ---------------------------------------------------------------------------
MEMFILE=$DIR/mem.peak
sampler() {
	set +e
	local wr=0 wa=0 cr=0 ca=0 pid args rss anon
	while :; do
		while read -r pid rss args; do
			case "$args" in
			*"stream_ext worker"* | *"stream_ext combiner"*)
				anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
				anon=${anon:-0}
				case "$args" in
				*worker*) ((rss > wr)) && wr=$rss; ((anon > wa)) && wa=$anon ;;
				*) ((rss > cr)) && cr=$rss; ((anon > ca)) && ca=$anon ;;
				esac ;;
			esac
		done < <(ps --ppid "$PM_PID" -o pid=,rss=,args= 2>/dev/null)
		echo "$wr $wa $cr $ca" > "$MEMFILE.tmp" && mv "$MEMFILE.tmp" "$MEMFILE"
		sleep 0.25
	done
}
sampler &
SAMPLER_PID=$!

# ---------------------------------------------------------------------------
# schema and data
# ---------------------------------------------------------------------------
log "server on port $PGPORT in $DIR; creating schema"
q <<'SQL'
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW url_stats WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts),
         count(*) FILTER (WHERE latency > 100) AS slow
  FROM clicks GROUP BY url;

CREATE UNLOGGED TABLE plain_u (url text, user_id bigint, latency float8, ts timestamptz);
CREATE TABLE plain_l (url text, user_id bigint, latency float8, ts timestamptz);

-- baseline: a plain table whose statement trigger upserts the view's aggregates
-- (count, sum -> avg, max(ts), slow) per url from the transition table
CREATE TABLE base1 (url text, user_id bigint, latency float8, ts timestamptz);
CREATE TABLE agg1 (url text PRIMARY KEY, n bigint, s float8, mx timestamptz, slow bigint);
CREATE FUNCTION agg1_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO agg1 AS a
    SELECT url, count(*), sum(latency), max(ts), count(*) FILTER (WHERE latency > 100)
    FROM n GROUP BY url ORDER BY url
  ON CONFLICT (url) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s,
    mx = greatest(a.mx, excluded.mx), slow = a.slow + excluded.slow;
  RETURN NULL;
END $$;
CREATE TRIGGER agg1 AFTER INSERT ON base1 REFERENCING NEW TABLE AS n
  FOR EACH STATEMENT EXECUTE FUNCTION agg1_trg();
SQL

write_core_events

prep() { # $1 = table to truncate ("" = none), then quiesce and checkpoint
	[ -n "$1" ] && q -c "TRUNCATE $1"
	quiesce
	q -c "CHECKPOINT"
}
rate_of() { awk -v ms="$1" -v n="$EVENTS" 'BEGIN {printf "%.0f", n / (ms / 1000)}'; }

# the worker and combiner of a database start with its first writer: warm up with one
# event whose url no baseline has
q -c "INSERT INTO clicks VALUES ('warmup', 0, 0, now())"
WPID=$(ext_pid worker)
CPID=$(ext_pid combiner)
[ -n "$WPID" ] && [ -n "$CPID" ] || die "stream_ext worker/combiner not running"

declare -A RATES CPU
run_copy() { # $1 = label, $2 = table, $3 = tables to truncate first
	local ms r w0 c0 w1 c1
	prep "$3"
	WPID=$(ext_pid worker); CPID=$(ext_pid combiner)
	w0=$(proc_cpu "$WPID"); c0=$(proc_cpu "$CPID")
	ms=$(copy_ms "$2" "$CSV")
	w1=$(proc_cpu "$WPID"); c1=$(proc_cpu "$CPID")
	r=$(rate_of "$ms")
	RATES[$1]+="$r "
	if [ "$2" = clicks ]; then
		CPU[$1]+="$(awk -v a="$w0" -v b="$w1" -v c="$c0" -v d="$c1" -v ms="$ms" \
			'BEGIN {printf "%.1fs/%.1fs/%.1fs", ms / 1000, b - a, d - c}') "
		log "  $1: $(fmt "$r") events/s ($ms ms; CPU of worker $(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.2f", b - a}') s, combiner $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}') s)"
	else
		log "  $1: $(fmt "$r") events/s ($ms ms)"
	fi
}

# ---------------------------------------------------------------------------
# (a) one COPY, one view
# ---------------------------------------------------------------------------
log "(a) COPY $EVENTS events, 1 view, $REPS reps (interleaved)"
before=$(q -c "SELECT coalesce(sum(count), 0) FROM url_stats")
for i in $(seq "$REPS"); do
	run_copy a_stream clicks ""
	run_copy a_unlogged plain_u plain_u
	run_copy a_logged plain_l plain_l
	run_copy a_base base1 "base1, agg1"
done
after=$(q -c "SELECT sum(count) FROM url_stats")
A_CHECK=ok
[ "$((after - before))" -eq "$((EVENTS * REPS))" ] || A_CHECK="MISMATCH: view counted $((after - before)), expected $((EVENTS * REPS))"
[ "$(q -c "SELECT sum(n) FROM agg1")" -eq "$EVENTS" ] || A_CHECK+=" baseline agg mismatch"
# view and baseline agree on the last load (view has REPS loads of the same file)
bad=$(q -c "SELECT count(*) FROM url_stats v JOIN agg1 b USING (url)
            WHERE v.count <> b.n * $REPS OR v.slow <> b.slow * $REPS OR v.max <> b.mx
               OR abs(v.sum - b.s * $REPS) > 1e-6 * abs(v.sum)")
[ "$bad" -eq 0 ] || A_CHECK+=" $bad urls differ from baseline"
log "  check: $A_CHECK"

A_STREAM=$(echo ${RATES[a_stream]} | tr ' ' '\n' | median)
A_UNL=$(echo ${RATES[a_unlogged]} | tr ' ' '\n' | median)
A_LOG=$(echo ${RATES[a_logged]} | tr ' ' '\n' | median)
A_BASE=$(echo ${RATES[a_base]} | tr ' ' '\n' | median)

# ---------------------------------------------------------------------------
# optional: perf profile of one extra (untimed) stream COPY: backend, worker, combiner
# ---------------------------------------------------------------------------
PERF_DONE=
perf_copy() { # $1 = label
	local bpid copy_job p1 p2 p3 w range ready=$DIR/perf.ready pidf=$DIR/perf.pid
	mkdir -p "$PERF_OUT"
	log "perf: profiling one more stream COPY ($1) into $PERF_OUT"
	q -c "CHECKPOINT"
	WPID=$(ext_pid worker); CPID=$(ext_pid combiner)
	range=$(awk '/stream_ext\.so/ {print $1; exit}' "/proc/${WPID%% *}/maps")
	[ -n "$range" ] && cp "/proc/${WPID%% *}/map_files/$range" "$PERF_OUT/stream_ext.so" 2>/dev/null || true
	rm -f "$ready" "$pidf"
	# the session writes its pid, waits for perf to attach, then runs the COPY
	printf '%s\n' "\\o $pidf" "SELECT pg_backend_pid();" "\\o" \
		"\\! while [ ! -e $ready ]; do sleep 0.01; done" \
		"COPY clicks FROM '$CSV' (FORMAT csv);" | q > /dev/null &
	copy_job=$!
	for _ in $(seq 1000); do [ -s "$pidf" ] && break; sleep 0.01; done
	bpid=$(tr -dc 0-9 < "$pidf")
	[ -n "$bpid" ] || die "perf: COPY backend pid not found"
	perf record -q -g -o "$PERF_OUT/$1.backend.data" -p "$bpid" 2>/dev/null & p1=$!
	perf record -q -g -o "$PERF_OUT/$1.worker.data" -p "${WPID// /,}" 2>/dev/null & p2=$!
	perf record -q -g -o "$PERF_OUT/$1.combiner.data" -p "$CPID" 2>/dev/null & p3=$!
	sleep 0.5
	touch "$ready"
	wait "$copy_job" || die "perf: COPY failed"
	kill -INT "$p1" "$p2" "$p3" 2>/dev/null || true
	wait "$p1" "$p2" "$p3" 2>/dev/null || true
	perf_reports "$1" backend worker combiner
	PERF_DONE+="perf ($1): $PERF_OUT/$1.{backend,worker,combiner}.{self,children}.txt; "
}
if [ "$PERF" = 1 ]; then
	command -v perf >/dev/null || die "perf not installed (apt-get install linux-perf)"
	perf_copy a_1view
fi

# ---------------------------------------------------------------------------
# (b) one COPY, ten views
# ---------------------------------------------------------------------------
log "(b) COPY $EVENTS events, 10 views, $REPS reps (interleaved)"
q <<'SQL'
CREATE VIEW v_user_bucket WITH (continuous) AS
  SELECT user_id % 100 AS bucket, count(*), sum(latency), min(latency), max(latency)
  FROM clicks GROUP BY user_id % 100;
CREATE VIEW v_minute WITH (continuous) AS
  SELECT date_trunc('minute', ts) AS minute, count(*), avg(latency), max(latency)
  FROM clicks GROUP BY 1;
CREATE VIEW v_total WITH (continuous) AS
  SELECT count(*), sum(latency), avg(latency), stddev(latency), min(ts), max(ts) FROM clicks;
CREATE VIEW v_url_shard WITH (continuous) AS
  SELECT url, user_id % 10 AS shard, count(*), sum(latency) FROM clicks GROUP BY url, user_id % 10;
CREATE VIEW v_slow_split WITH (continuous) AS
  SELECT latency > 100 AS slow, count(*), avg(latency), max(user_id) FROM clicks GROUP BY 1;
CREATE VIEW v_url_hour WITH (continuous) AS
  SELECT url, date_trunc('hour', ts) AS hour, count(*), max(latency) FROM clicks GROUP BY 1, 2;
CREATE VIEW v_very_slow WITH (continuous) AS
  SELECT url, count(*), min(ts), max(latency) FROM clicks WHERE latency > 150 GROUP BY url;
CREATE VIEW v_user_k WITH (continuous) AS
  SELECT user_id % 1000 AS k, count(*), bool_or(latency > 199), var_pop(latency)
  FROM clicks GROUP BY 1;
CREATE VIEW v_hist WITH (continuous) AS
  SELECT width_bucket(latency, 0, 200, 20) AS bucket, count(*), sum(user_id) FROM clicks GROUP BY 1;

-- baseline: one table with 10 statement triggers, one per view above
CREATE TABLE base10 (url text, user_id bigint, latency float8, ts timestamptz);
CREATE TRIGGER agg1 AFTER INSERT ON base10 REFERENCING NEW TABLE AS n
  FOR EACH STATEMENT EXECUTE FUNCTION agg1_trg();
CREATE TABLE agg2 (k bigint PRIMARY KEY, n bigint, s float8, mn float8, mx float8);
CREATE TABLE agg3 (k timestamptz PRIMARY KEY, n bigint, s float8, mx float8);
CREATE TABLE agg4 (k int PRIMARY KEY, n bigint, s float8, ss float8, mn timestamptz, mx timestamptz);
CREATE TABLE agg5 (url text, k bigint, n bigint, s float8, PRIMARY KEY (url, k));
CREATE TABLE agg6 (k bool PRIMARY KEY, n bigint, s float8, mx bigint);
CREATE TABLE agg7 (url text, k timestamptz, n bigint, mx float8, PRIMARY KEY (url, k));
CREATE TABLE agg8 (url text PRIMARY KEY, n bigint, mn timestamptz, mx float8);
CREATE TABLE agg9 (k bigint PRIMARY KEY, n bigint, b bool, s float8, ss float8);
CREATE TABLE agg10 (k int PRIMARY KEY, n bigint, s numeric);
CREATE FUNCTION agg2_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg2 AS a SELECT user_id % 100, count(*), sum(latency), min(latency), max(latency)
    FROM n GROUP BY 1 ORDER BY 1
  ON CONFLICT (k) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s,
    mn = least(a.mn, excluded.mn), mx = greatest(a.mx, excluded.mx);
  RETURN NULL; END $$;
CREATE FUNCTION agg3_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg3 AS a SELECT date_trunc('minute', ts), count(*), sum(latency), max(latency)
    FROM n GROUP BY 1 ORDER BY 1
  ON CONFLICT (k) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s,
    mx = greatest(a.mx, excluded.mx);
  RETURN NULL; END $$;
CREATE FUNCTION agg4_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg4 AS a SELECT 0, count(*), sum(latency), sum(latency * latency), min(ts), max(ts)
    FROM n
  ON CONFLICT (k) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s, ss = a.ss + excluded.ss,
    mn = least(a.mn, excluded.mn), mx = greatest(a.mx, excluded.mx);
  RETURN NULL; END $$;
CREATE FUNCTION agg5_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg5 AS a SELECT url, user_id % 10, count(*), sum(latency)
    FROM n GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (url, k) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s;
  RETURN NULL; END $$;
CREATE FUNCTION agg6_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg6 AS a SELECT latency > 100, count(*), sum(latency), max(user_id)
    FROM n GROUP BY 1 ORDER BY 1
  ON CONFLICT (k) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s,
    mx = greatest(a.mx, excluded.mx);
  RETURN NULL; END $$;
CREATE FUNCTION agg7_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg7 AS a SELECT url, date_trunc('hour', ts), count(*), max(latency)
    FROM n GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (url, k) DO UPDATE SET n = a.n + excluded.n, mx = greatest(a.mx, excluded.mx);
  RETURN NULL; END $$;
CREATE FUNCTION agg8_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg8 AS a SELECT url, count(*), min(ts), max(latency)
    FROM n WHERE latency > 150 GROUP BY 1 ORDER BY 1
  ON CONFLICT (url) DO UPDATE SET n = a.n + excluded.n, mn = least(a.mn, excluded.mn),
    mx = greatest(a.mx, excluded.mx);
  RETURN NULL; END $$;
CREATE FUNCTION agg9_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg9 AS a SELECT user_id % 1000, count(*), bool_or(latency > 199), sum(latency),
      sum(latency * latency)
    FROM n GROUP BY 1 ORDER BY 1
  ON CONFLICT (k) DO UPDATE SET n = a.n + excluded.n, b = a.b OR excluded.b,
    s = a.s + excluded.s, ss = a.ss + excluded.ss;
  RETURN NULL; END $$;
CREATE FUNCTION agg10_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  INSERT INTO agg10 AS a SELECT width_bucket(latency, 0, 200, 20), count(*), sum(user_id)
    FROM n GROUP BY 1 ORDER BY 1
  ON CONFLICT (k) DO UPDATE SET n = a.n + excluded.n, s = a.s + excluded.s;
  RETURN NULL; END $$;
DO $$ BEGIN
  FOR i IN 2..10 LOOP
    EXECUTE format('CREATE TRIGGER agg%s AFTER INSERT ON base10 REFERENCING NEW TABLE AS n '
                   'FOR EACH STATEMENT EXECUTE FUNCTION agg%s_trg()', i, i);
  END LOOP;
END $$;
SQL
[ "$(q -c "SELECT count(*) FROM stream_ext.continuous_views")" -eq 10 ] || die "expected 10 views"
before=$(q -c "SELECT sum(count) FROM v_total")
for i in $(seq "$REPS"); do
	run_copy b_stream clicks ""
	run_copy b_base base10 "base10, agg1, agg2, agg3, agg4, agg5, agg6, agg7, agg8, agg9, agg10"
done
after=$(q -c "SELECT sum(count) FROM v_total")
B_CHECK=ok
[ "$((after - before))" -eq "$((EVENTS * REPS))" ] || B_CHECK="MISMATCH: v_total counted $((after - before)), expected $((EVENTS * REPS))"
bad=$(q -c "SELECT (SELECT count(*) FROM v_url_shard v JOIN agg5 b ON b.url = v.url AND b.k = v.shard
                    WHERE v.count <> b.n * $REPS)
                 + (SELECT count(*) FROM v_very_slow v JOIN agg8 b USING (url) WHERE v.count <> b.n * $REPS)
                 + (SELECT count(*) FROM v_hist v JOIN agg10 b ON b.k = v.bucket WHERE v.sum <> b.s * $REPS)")
[ "$bad" -eq 0 ] || B_CHECK+=" $bad groups differ from baseline"
errs=$(q -c "SELECT coalesce(sum(errors), 0) FROM stream_ext.view_stats")
[ "$errs" -eq 0 ] || B_CHECK+=" view_stats.errors=$errs"
log "  check: $B_CHECK"
[ "$PERF" = 1 ] && perf_copy b_10views
B_STREAM=$(echo ${RATES[b_stream]} | tr ' ' '\n' | median)
B_BASE=$(echo ${RATES[b_base]} | tr ' ' '\n' | median)

q <<'SQL'
DROP VIEW v_user_bucket, v_minute, v_total, v_url_shard, v_slow_split, v_url_hour,
  v_very_slow, v_user_k, v_hist;
DROP TABLE base10, plain_u;
SQL

# ---------------------------------------------------------------------------
# (c) pgbench, small transactions
# ---------------------------------------------------------------------------
log "(c) pgbench -c $PGB_CLIENTS -j 2 -T $PGB_T, BEGIN; INSERT 10 rows; COMMIT;, $REPS reps (interleaved)"
declare -A TPS FAILED PROCESSED
C_WCPU=0; C_CCPU=0
pgb() { # $1 = target table, $2 = rows per transaction (10); adds this run's tps to
	# TPS[key], its counts to PROCESSED[key] and FAILED[key], key $1 (10 rows) or $1_$2
	local rows=${2:-10} key=$1 out err rc=0 failed aborted tps n
	[ "$rows" = 10 ] || key=$1_$rows
	local f=$DIR/pgb_$key.sql
	cat > "$f" <<SQL
BEGIN;
INSERT INTO $1 SELECT '/page/' || floor(random() * 1000)::int, floor(random() * 100000)::bigint,
  random() * 200, now() FROM generate_series(1, $rows);
COMMIT;
SQL
	local w0 c0
	if [ "$key" = clicks ]; then
		WPID=$(ext_pid worker); CPID=$(ext_pid combiner)
		w0=$(proc_cpu "$WPID"); c0=$(proc_cpu "$CPID")
	fi
	out=$(pgbench -n -c "$PGB_CLIENTS" -j 2 -T "$PGB_T" --failures-detailed -f "$f" 2> "$DIR/pgb_$key.err") || rc=$?
	if [ "$key" = clicks ]; then
		C_WCPU=$(awk -v t="$C_WCPU" -v a="$w0" -v b="$(proc_cpu "$WPID")" 'BEGIN {printf "%.2f", t + b - a}')
		C_CCPU=$(awk -v t="$C_CCPU" -v a="$c0" -v b="$(proc_cpu "$CPID")" 'BEGIN {printf "%.2f", t + b - a}')
	fi
	echo "$out" >> "$DIR/pgb_$key.out"
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial.*/\1/p' <<< "$out")
	TPS[$key]+="${tps:-0} "
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<< "$out")
	PROCESSED[$key]=$(( ${PROCESSED[$key]:-0} + ${n:-0} ))
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<< "$out")
	aborted=$(grep -c 'aborted in command' "$DIR/pgb_$key.err" || true)
	FAILED[$key]=$(( ${FAILED[$key]:-0} + ${failed:-0} + aborted ))
	[ "$rc" -eq 0 ] || FAILED[$key]="${FAILED[$key]} (pgbench exit $rc: $(grep -m1 -i error "$DIR/pgb_$key.err" || true))"
	log "  $key: $(fmt "$(awk -v t="${tps:-0}" -v r="$rows" 'BEGIN {print t * r}')") events/s, tps ${tps:-?}, failed ${FAILED[$key]} so far"
}
before=$(q -c "SELECT sum(count) FROM url_stats")
for i in $(seq "$REPS"); do
	prep ""; pgb clicks
	prep plain_l; pgb plain_l
	prep "base1, agg1"; pgb base1
done
after=$(q -c "SELECT sum(count) FROM url_stats")
C_CPU="worker $C_WCPU s, combiner $C_CCPU s CPU in $REPS x $PGB_T s"
C_CHECK=ok
[ "$((after - before))" -eq "$(( ${PROCESSED[clicks]:-0} * 10 ))" ] ||
	C_CHECK="view counted $((after - before)) events, pgbench committed $(( ${PROCESSED[clicks]:-0} * 10 ))"
log "  check: $C_CHECK"
log "(c1) the same with 1-row transactions, stream and plain table, $REPS reps (interleaved)"
before=$(q -c "SELECT sum(count) FROM url_stats")
for i in $(seq "$REPS"); do
	prep ""; pgb clicks 1
	prep plain_l; pgb plain_l 1
done
after=$(q -c "SELECT sum(count) FROM url_stats")
C1_CHECK=ok
[ "$((after - before))" -eq "${PROCESSED[clicks_1]:-0}" ] ||
	C1_CHECK="view counted $((after - before)) events, pgbench committed ${PROCESSED[clicks_1]:-0}"
log "  check: $C1_CHECK"
if [ "$PERF" = 1 ]; then # an extra, untimed stream run: worker and combiner for 5 s in its middle
	log "perf: profiling the worker and combiner during one more stream pgbench run"
	WPID=$(ext_pid worker); CPID=$(ext_pid combiner)
	pgbench -n -c "$PGB_CLIENTS" -j 2 -T 9 -f "$DIR/pgb_clicks.sql" > /dev/null 2>&1 &
	pj=$!
	sleep 2
	perf record -q -g -o "$PERF_OUT/c_pgbench.worker.data" -p "${WPID// /,}" -- sleep 5 > /dev/null 2>&1 &
	p1=$!
	perf record -q -g -o "$PERF_OUT/c_pgbench.combiner.data" -p "$CPID" -- sleep 5 > /dev/null 2>&1 || true
	wait "$p1" || true
	wait "$pj" || true
	perf_reports c_pgbench worker combiner
	PERF_DONE+="perf (c): $PERF_OUT/c_pgbench.{worker,combiner}.{self,children}.txt; "
fi
c_rate() { echo ${TPS[$1]:-0} | tr ' ' '\n' | median | awk -v r="${2:-10}" '{print $1 * r}'; }
C_STREAM=$(c_rate clicks)
C_PLAIN=$(c_rate plain_l)
C_BASE=$(c_rate base1)
C1_STREAM=$(c_rate clicks_1 1)
C1_PLAIN=$(c_rate plain_l_1 1)

# ---------------------------------------------------------------------------
# (d) async mode: COMMIT -> visible latency under load
# ---------------------------------------------------------------------------
log "(d) async latency: generator $ASYNC_RATE events/s (100-row inserts) for $ASYNC_T s, $SAMPLES probes"
q <<'SQL'
CREATE VIEW markers WITH (continuous) AS
  SELECT url, count(*) FROM clicks WHERE url LIKE 'm:%' GROUP BY url;
CREATE TABLE probe_samples (ms float8, at timestamptz);
-- one probe: INSERT a unique marker, COMMIT (async), then poll the view every
-- 1 ms until the marker is visible; record COMMIT-return -> visible in ms
CREATE PROCEDURE probe(nmax int, deadline timestamptz) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; k text;
BEGIN
  FOR i IN 1..nmax LOOP
    EXIT WHEN clock_timestamp() > deadline;
    k := 'm:' || pg_backend_pid() || ':' || i || ':' || extract(epoch FROM clock_timestamp());
    INSERT INTO clicks VALUES (k, 0, 0, now());
    COMMIT;
    t0 := clock_timestamp();
    LOOP
      PERFORM 1 FROM markers WHERE url = k;
      EXIT WHEN FOUND;
      IF clock_timestamp() > t0 + interval '10 s' THEN
        RAISE EXCEPTION 'marker % not visible after 10 s', k;
      END IF;
      PERFORM pg_sleep(0.001);
    END LOOP;
    INSERT INTO probe_samples VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000, t0);
    COMMIT;
    PERFORM pg_sleep(0.005 + random() * 0.01);
  END LOOP;
END $$;
SQL
gen_tps=$(awk -v r="$ASYNC_RATE" 'BEGIN {printf "%d", r / 100}')
cat > "$DIR/gen.sql" <<'SQL'
INSERT INTO clicks SELECT '/page/' || floor(random() * 1000)::int, floor(random() * 100000)::bigint,
  random() * 200, now() FROM generate_series(1, 100);
SQL
gen_start=$(date +%s.%N)
PGOPTIONS='-c stream_ext.commit_mode=async' pgbench -n -c 4 -j 2 -R "$gen_tps" -T "$ASYNC_T" \
	-f "$DIR/gen.sql" > "$DIR/gen.out" 2> "$DIR/gen.err" &
GEN_PID=$!
sleep 3
deadline=$(awk -v s="$gen_start" -v t="$ASYNC_T" 'BEGIN {printf "%.3f", s + t - 1}')
PGOPTIONS='-c stream_ext.commit_mode=async' q -c "CALL probe($SAMPLES, to_timestamp($deadline))" ||
	die "probe failed"
probe_end=$(date +%s.%N)
wait "$GEN_PID" || die "generator failed: $(head -3 "$DIR/gen.err")"
GEN_PID=
gen_ev=$(awk '/^tps = .*without initial/ {printf "%.0f", $3 * 100}' "$DIR/gen.out")
read -r D_N D_P50 D_P99 D_MAX <<< "$(q -F ' ' -c "SELECT count(*),
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
    round(max(ms)::numeric, 2) FROM probe_samples")"
log "  generator achieved $(fmt "${gen_ev:-0}") events/s; $D_N samples, p50 $D_P50 ms, p99 $D_P99 ms, max $D_MAX ms"
D_CHECK=ok
ge "$D_N" 200 || D_CHECK="only $D_N samples"
ge "${gen_ev:-0}" "$(awk -v r="$ASYNC_RATE" 'BEGIN {print r * 0.95}')" || D_CHECK+=" generator below target rate"

# ---------------------------------------------------------------------------
# (e) memory
# ---------------------------------------------------------------------------
sleep 0.5
SHM=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'stream_ext'")
SHM_ALL=$(q -c "SELECT coalesce(sum(allocated_size), 0) FROM pg_shmem_allocations WHERE name LIKE 'stream_ext%'")
read -r W_RSS W_ANON C_RSS C_ANON < "$MEMFILE"
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------
A_MET=$(yesno eval 'ge "$A_STREAM" 1000000 && ge "$A_STREAM" "$A_UNL"')
B_MET=$(yesno ge "$B_STREAM" 500000)
C_RATIO=$(ratio "$C_STREAM" "$C_PLAIN")
C_MET=$(yesno eval 'ge "$C_RATIO" 0.9 && [ "${FAILED[clicks]}" = 0 ]')
C1_RATIO=$(ratio "$C1_STREAM" "$C1_PLAIN")
C1_MET=$(yesno eval 'ge "$C1_RATIO" 0.9 && [ "${FAILED[clicks_1]}" = 0 ] && [ "$C1_CHECK" = ok ]')
D_MET=$(yesno eval 'awk -v p="$D_P99" "BEGIN {exit !(p < 100)}" && [ "$D_CHECK" = ok ]')
EV_LABEL=$(awk -v n="$EVENTS" 'BEGIN {if (n % 1000000 == 0) printf "%dM", n / 1000000; else printf "%d", n}')
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
{
echo
echo "stream_ext core benchmark -- $(date -u +'%Y-%m-%d %H:%M UTC'), commit $commit"
echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM; $(q -c 'SELECT version()' | cut -d, -f1)"
echo "server: fsync=on, synchronous_commit=on, ${SERVER_CONF[*]}; stream_ext defaults (workers=$(q -c 'SHOW stream_ext.workers'), batch_size=$(q -c 'SHOW stream_ext.batch_size'), flush_interval=$(q -c 'SHOW stream_ext.flush_interval'))"
echo "data: $EVENTS events, 1000 urls, CSV $(du -m "$CSV" | cut -f1) MB, server-side COPY FROM file; COPY rates and (c) rates are the medians of $REPS interleaved runs"
echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: $CMDLINE"
echo
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' case rate limit baseline ratio target met
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "" "(events/s)" "(events/s)" "(events/s)" "" "" ""
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "(a) COPY $EV_LABEL, 1 view (sync)" "$(fmt "$A_STREAM")" "$(fmt "$A_UNL")" "$(fmt "$A_BASE")" \
	"$(ratio "$A_STREAM" "$A_UNL")x unlogged, $(ratio "$A_STREAM" "$A_BASE")x trigger" ">=1,000,000 and >=unlogged" "$A_MET"
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "    COPY into LOGGED plain table" "$(fmt "$A_LOG")" "" "" \
	"stream $(ratio "$A_STREAM" "$A_LOG")x logged" "" ""
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "(b) COPY $EV_LABEL, 10 views (sync)" "$(fmt "$B_STREAM")" "$(fmt "$A_UNL")" "$(fmt "$B_BASE")" \
	"$(ratio "$B_STREAM" "$A_UNL")x unlogged, $(ratio "$B_STREAM" "$B_BASE")x 10 triggers" ">=500,000" "$B_MET"
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "(c) pgbench $PGB_CLIENTS cl, 10-row txns" "$(fmt "$C_STREAM")" "$(fmt "$C_PLAIN")" "$(fmt "$C_BASE")" \
	"${C_RATIO}x plain, $(ratio "$C_STREAM" "$C_BASE")x trigger" ">=0.9x plain, 0 failed" "$C_MET"
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "    failed transactions" "${FAILED[clicks]}" "${FAILED[plain_l]}" "${FAILED[base1]}" "" "" ""
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "(c1) pgbench $PGB_CLIENTS cl, 1-row txns" "$(fmt "$C1_STREAM")" "$(fmt "$C1_PLAIN")" "" \
	"${C1_RATIO}x plain" ">=0.9x plain, 0 failed" "$C1_MET"
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "    failed transactions" "${FAILED[clicks_1]}" "${FAILED[plain_l_1]}" "" "" "" ""
printf '%-34s %14s %14s %14s  %-36s %-27s %s\n' "(d) async COMMIT->visible" "p50 $D_P50 ms" "" "" \
	"p99 $D_P99 ms, max $D_MAX ms" "p99 < 100 ms" "$D_MET"
printf '%-34s %14s\n' "    ($D_N samples, load)" "$(fmt "${gen_ev:-0}")"
printf '%-34s %14s %14s\n' "(e) shared memory 'stream_ext'" "$(mb $((SHM / 1024)))" "(all stream_ext*: $(mb $((SHM_ALL / 1024))))"
printf '%-34s %14s %14s\n' "    peak RSS worker / combiner" "$(mb "$W_RSS")" "$(mb "$C_RSS")"
printf '%-34s %14s %14s\n' "    peak private (RssAnon) w / c" "$(mb "$W_ANON")" "$(mb "$C_ANON")"
echo
echo "checks: (a) $A_CHECK; (b) $B_CHECK; (c) $C_CHECK; (c1) $C1_CHECK; (d) $D_CHECK"
echo "stream COPY runs, wall/worker CPU/combiner CPU: (a) ${CPU[a_stream]}| (b) ${CPU[b_stream]}"
echo "stream pgbench run (c): $C_CPU"
echo "(c) runs (tps): stream ${TPS[clicks]}| plain ${TPS[plain_l]}| trigger ${TPS[base1]}"
echo "(c1) runs (tps): stream ${TPS[clicks_1]}| plain ${TPS[plain_l_1]}"
echo "runs (events/s): a_stream ${RATES[a_stream]}| a_unlogged ${RATES[a_unlogged]}| a_logged ${RATES[a_logged]}| a_trigger ${RATES[a_base]}| b_stream ${RATES[b_stream]}| b_trigger ${RATES[b_base]}"
if [ -n "$PERF_DONE" ]; then echo "$PERF_DONE"; fi
} | tee "$DIR/summary.txt"
cp "$DIR/summary.txt" /tmp/stream-bench-last-summary.txt 2>/dev/null || true
