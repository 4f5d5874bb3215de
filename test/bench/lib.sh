# Helpers sourced by the scripts of test/bench/.  Apart from
# start_bench_server, start_bench and start_kafka_bench they need the server
# those start (PGHOST/PGPORT, and PM_PID from the first two).

log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# psql, quiet, unaligned, stop on error
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# number formatting: 1234567 -> 1,234,567
fmt() { LC_ALL=C printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
yesno() { if "$@"; then echo yes; else echo NO; fi; }

# copy_ms TABLE FILE: time one server-side COPY; prints milliseconds
copy_ms() {
	local out
	out=$(q -c '\timing on' -c "COPY $1 FROM '$2' (FORMAT csv)") || die "COPY into $1 failed"
	sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<< "$out"
}

# read_ms_list N SQL: run SQL once (to warm up), then N times, one client;
# prints each run's client-side time in ms, one per line (pgbench's
# per-statement log)
read_ms_list() {
	local n=$1 sql=$2 d
	d=$(mktemp -d "$DIR/reads.XXXXXX")
	echo "$sql" > "$d/read.sql"
	chmod -R a+rwx "$d"
	(cd "$d" && pgbench -n -c 1 -t 1 -f read.sql >/dev/null 2>&1 &&
		pgbench -n -c 1 -t "$n" -f read.sql -l --log-prefix=r >/dev/null 2>&1) || die "pgbench of '$sql' failed"
	awk '{print $3 / 1000}' "$d"/r.*
}
# the 99th percentile of the numbers on stdin (the nearest rank)
p99() { sort -g | awk '{a[NR]=$1} END {i = int(0.99 * NR + 0.999999); if (i < 1) i = 1; printf "%.2f", a[i]}'; }

# wait until the combiner has merged every delta (a timed run must not share
# the machine with the previous run's merging), at most 120 s
quiesce() {
	local expr n i
	expr=$(q -c "SELECT coalesce(string_agg(format('(SELECT count(*) FROM %s)', delta_table), ' + '), '0') FROM stream_ext_internal.continuous_views")
	for i in $(seq 1 600); do
		n=$(q -c "SELECT $expr")
		[ "$n" = 0 ] && return 0
		sleep 0.2
	done
	log "warning: $n delta rows still pending after 120 s"
}

# pids of the extension's processes of one kind ("worker" gives all batch workers)
ext_pid() { ps --ppid "$PM_PID" -o pid=,args= | awk -v r="stream_ext $1" '$0 ~ r {printf "%s%s", sep, $1; sep = " "}'; }

# CPU seconds (user + system) used so far by the processes listed in $1 (space-separated pids)
CLK_TCK=$(getconf CLK_TCK)
proc_cpu() {
	local p total=0
	for p in $1; do
		total=$(awk -v hz="$CLK_TCK" -v t="$total" '{sub(/^.*\) /, ""); printf "%.2f", t + ($12 + $13) / hz}' "/proc/$p/stat" 2>/dev/null || echo "$total")
	done
	echo "$total"
}

# start_bench_server: start the throwaway server in $DIR with the settings in
# SERVER_CONF, export its PG* settings, note the load average (LOAD_START)
# and the postmaster's pid (PM_PID)
start_bench_server() {
	LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
	eval "$("$ROOT/test/server.sh" start "$DIR" "${SERVER_CONF[@]}")"
	export PGHOST PGPORT PGUSER PGDATABASE=postgres
	unset PGOPTIONS
	PM_PID=$(head -1 "$DIR/data/postmaster.pid")
}

# start_bench NAME: a directory DIR (/tmp/stream-bench-NAME.XXXXXX, destroyed
# with its server at exit) with CSV the path of the events' file in it, and
# the throwaway server started there (start_bench_server), times in UTC
start_bench() {
	DIR=$(mktemp -d "/tmp/stream-bench-$1.XXXXXX")
	CSV=$DIR/events.csv
	trap '_rc=$?; "$ROOT/test/server.sh" destroy "$DIR" || true; exit $_rc' EXIT
	trap 'exit 130' INT TERM
	start_bench_server
	export PGTZ=UTC
}

# start_kafka_bench NAME [TOPIC:PARTITIONS...]: a directory DIR
# (/tmp/stream-NAME-bench.XXXXXX, removed at exit) with a throwaway server
# (database bench, stream_ext created) and a mock Kafka cluster of one broker
# (test/kafka/mock_broker.c, commands on fd 7) holding the topics; BROKERS its
# bootstrap address
start_kafka_bench() {
	local name=$1
	shift
	DIR=$(mktemp -d "/tmp/stream-$name-bench.XXXXXX")
	chmod 755 "$DIR"
	MOCK_PID=
	trap '_rc=$?; [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	      PGBIN=$PGBIN bash "$ROOT/test/server.sh" destroy "$DIR/server" >/dev/null 2>&1
	      rm -rf "$DIR"; exit $_rc' EXIT
	eval "export $(PGBIN=$PGBIN bash "$ROOT/test/server.sh" start "$DIR/server" \
		"shared_buffers = '1GB'" "max_wal_size = '10GB'" "checkpoint_timeout = '30min'")"
	export PGDATABASE=bench
	psql -X -q -d postgres -c "CREATE DATABASE bench"
	psql -X -q -c "CREATE EXTENSION stream_ext"
	cc -O2 -o "$DIR/mock_broker" "$ROOT/test/kafka/mock_broker.c" -lrdkafka
	mkfifo "$DIR/mock.in"
	exec 7<>"$DIR/mock.in"
	"$DIR/mock_broker" 1 "$@" <&7 >"$DIR/mock.out" 2>"$DIR/mock.err" &
	MOCK_PID=$!
	until grep -q '^bootstrap ' "$DIR/mock.out" 2>/dev/null; do sleep 0.05; done
	BROKERS=$(sed -n 's/^bootstrap //p' "$DIR/mock.out")
}

# perf_reports LABEL PROCESS...: self and children reports of
# $PERF_OUT/LABEL.PROCESS.data, as LABEL.PROCESS.{self,children}.txt
# perf shows the functions of a stream_ext.so that was reinstalled during the run
# (mapped "(deleted)") as bare addresses: resolve them with addr2line on the copy
# the server mapped, then sum the self percentages per function
resolve_ext() { # $1 = perf.data, $2 = report file, $3 = saved .so
	local so=$3 base len pgoff map
	[ -s "$so" ] && grep -q 'stream_ext.so (deleted)' "$2" || return 0
	read -r base len pgoff < <(perf script -i "$1" --show-mmap-events 2>/dev/null |
		sed -n 's/.*MMAP2 [0-9/]*: \[\(0x[0-9a-f]*\)(\(0x[0-9a-f]*\)) @ \(0x[0-9a-f]*\) .*r-xp .*stream_ext\.so.*/\1 \2 \3/p' | head -1)
	[ -n "$base" ] || return 0
	map=$(grep -o '0x[0-9a-f]\{6,16\}' "$2" | sort -u | while read -r a; do
		if ((a >= base && a < base + len)); then printf '%s 0x%x abs\n' "$a" $((a - base + pgoff))
		elif ((a < len + pgoff)); then printf '%s %s rel\n' "$a" "$a"; fi
	done)
	[ -n "$map" ] || return 0
	paste -d' ' <(cut -d' ' -f1,3 <<< "$map") \
		<(cut -d' ' -f2 <<< "$map" | addr2line -f -e "$so" | awk 'NR % 2') > "$2.map"
	# absolute addresses (call chains) anywhere; relative ones only on stream_ext.so lines
	awk 'NR == FNR {m[$1] = "stream_ext:" $3; k[$1] = $2; next}
	     {for (a in m) if (index($0, a) && (k[a] == "abs" || index($0, "stream_ext.so"))) {
	        sub(a, m[a]); sub(/ \(deleted\)/, "")}
	      print}' "$2.map" "$2" > "$2.tmp"
	mv "$2.tmp" "$2"; rm -f "$2.map"
}
perf_reports() { # $1 = label, then process names
	local l=$1 w
	shift
	for w in "$@"; do
		perf report -i "$PERF_OUT/$l.$w.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null \
			| grep -v '^#' | grep -v '^$' > "$PERF_OUT/$l.$w.self.txt" || true
		resolve_ext "$PERF_OUT/$l.$w.data" "$PERF_OUT/$l.$w.self.txt" "$PERF_OUT/stream_ext.so"
		# one line per function (addresses inside one function are separate lines)
		awk '{pct = $1; sub(/%/, "", pct); $1 = ""; sub(/ +- +- *$/, ""); s[$0] += pct}
		     END {for (k in s) printf "%7.2f%% %s\n", s[k], k}' "$PERF_OUT/$l.$w.self.txt" \
			| sort -rn | head -60 > "$PERF_OUT/$l.$w.self.tmp" || true
		mv "$PERF_OUT/$l.$w.self.tmp" "$PERF_OUT/$l.$w.self.txt"
		perf report -i "$PERF_OUT/$l.$w.data" --stdio --children --sort symbol -g none 2>/dev/null \
			| grep -v '^#' | grep -v '^$' | head -150 > "$PERF_OUT/$l.$w.children.txt" || true
		resolve_ext "$PERF_OUT/$l.$w.data" "$PERF_OUT/$l.$w.children.txt" "$PERF_OUT/stream_ext.so"
	done
}

# rate_per_s MS N: N events in MS milliseconds, per second
rate_per_s() { awk -v ms="$1" -v n="$2" 'BEGIN {printf "%.0f", n / (ms / 1000)}'; }

# view_copy LABEL STREAM VIEW: empty VIEW, wait for the combiner, checkpoint, then
# time a COPY of $CSV ($EVENTS events) into STREAM; appends the rate to
# RATES[LABEL] and "COPY/workers/combiner" seconds to CPU[LABEL] (associative
# arrays the caller declares)
view_copy() {
	local ms r w0 c0 w1 c1 wp cp
	q -c "SELECT stream_ext.truncate_continuous_view('$3')" >/dev/null
	quiesce
	q -c "CHECKPOINT"
	wp=$(ext_pid worker); cp=$(ext_pid combiner)
	w0=$(proc_cpu "$wp"); c0=$(proc_cpu "$cp")
	ms=$(copy_ms "$2" "$CSV")
	w1=$(proc_cpu "$wp"); c1=$(proc_cpu "$cp")
	r=$(rate_per_s "$ms" "$EVENTS")
	RATES[$1]+="$r "
	CPU[$1]+="$(awk -v a="$w0" -v b="$w1" -v c="$c0" -v d="$c1" -v ms="$ms" 'BEGIN {printf "%.1fs/%.1fs/%.1fs", ms / 1000, b - a, d - c}') "
	log "  $1: $(fmt "$r") events/s ($ms ms; CPU of workers $(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.2f", b - a}') s, combiner $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.2f", b - a}') s)"
}

# write_core_events: the core benchmark's EVENTS events into $CSV: 1000 urls,
# user ids below 100,000, latencies in [0, 200), times over two hours (seeded)
write_core_events() {
	log "generating $EVENTS events into $CSV"
	q <<SQL
SELECT setseed(0.42);
COPY (SELECT '/page/' || floor(random() * 1000)::int,
             floor(random() * 100000)::bigint,
             round((random() * 200)::numeric, 2)::float8,
             timestamptz '2024-01-01 00:00:00+00' + g * (interval '2 hours' / $EVENTS)
      FROM generate_series(1, $EVENTS) g) TO '$CSV' (FORMAT csv);
SQL
	[ "$(wc -l < "$CSV")" -eq "$EVENTS" ] || die "CSV has the wrong number of lines"
}

# start_workers STREAM VIEW: the database's worker and combiner start with its
# first writer: one event into STREAM, then VIEW emptied again
start_workers() {
	q -c "INSERT INTO $1 VALUES ('warmup', 0, 0, now())"
	q -c "SELECT stream_ext.truncate_continuous_view('$2')" >/dev/null
	[ -n "$(ext_pid worker)" ] || die "stream_ext workers not running"
}

# check GOT WANT WHAT: note in CHECKS what differs
CHECKS=""
check() { [ "$1" = "$2" ] || CHECKS+="$3: $1, expected $2; "; }
