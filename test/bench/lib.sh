# Helpers sourced by test/bench/core.sh and test/bench/windows.sh, once the
# script has started its server (they use PGHOST/PGPORT and PM_PID).

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
