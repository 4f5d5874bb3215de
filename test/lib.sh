# Helpers sourced by test/t_*.sh.
#
# A script runs against the server given by PGHOST/PGPORT/PGUSER (run_tests.sh
# provides one, with its log in STREAM_EXT_SERVER_LOG) or, when run alone
# without PGHOST, against a throwaway server of its own (start_own_server).
# SCRATCH is a scratch directory (run_tests.sh provides one; else a mktemp dir).
set -euo pipefail

TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME=$(basename "$0" .sh)
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PGBIN/psql" ] || PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH"

if [ -z "${SCRATCH:-}" ]; then
	SCRATCH=$(mktemp -d "/tmp/$TEST_NAME.XXXXXX")
	_own_scratch=1
fi
chmod 755 "$SCRATCH"
_own_servers=()
_bg_pids=()
_server_settings=()

_cleanup() {
	local rc=$? p d
	for p in "${_bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# settings made server-wide by set_server_setting
	if [ ${#_server_settings[@]} -gt 0 ]; then
		for p in "${_server_settings[@]}"; do
			psql -X -q -d postgres -c "ALTER SYSTEM RESET $p" >/dev/null 2>&1 || true
		done
		psql -X -q -d postgres -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	fi
	# a database on a server we do not own is dropped (its workers stop too)
	if [ -n "${_drop_db:-}" ] && [ ${#_own_servers[@]} -eq 0 ]; then
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $_drop_db WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	for d in "${_own_servers[@]}"; do
		[ $rc -ne 0 ] && [ -f "$d/server.log" ] && { echo "--- $d/server.log (tail)"; tail -n 30 "$d/server.log"; }
		bash "$TEST_DIR/server.sh" destroy "$d" || true
	done
	[ -n "${_own_scratch:-}" ] && rm -rf "$SCRATCH"
	return $rc
}
trap _cleanup EXIT

say() { echo "[$TEST_NAME] $*"; }
fail() { echo "[$TEST_NAME] FAIL: $*" >&2; exit 1; }

# start_own_server DIR [postgresql.conf lines...]: start, export its PG* settings
start_own_server() {
	local dir=$1; shift
	_own_servers+=("$dir")
	eval "export $(bash "$TEST_DIR/server.sh" start "$dir" "$@")"
	export STREAM_EXT_SERVER_LOG="$dir/server.log"
}

# use_server: the given server if any, else a throwaway one under SCRATCH
use_server() {
	if [ -z "${PGHOST:-}" ] || [ -z "${PGPORT:-}" ]; then
		start_own_server "$SCRATCH/server" "$@"
	fi
	export PGUSER=${PGUSER:-postgres}
}

# empty_db NAME: (re)create database NAME, without the extension; sets
# PGDATABASE.  On a shared server it is dropped at exit unless KEEP_DB is set.
empty_db() {
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
	export PGDATABASE=$1
	[ -n "${KEEP_DB:-}" ] || _drop_db=$1
}

# fresh_db NAME: empty_db NAME, with the extension.
fresh_db() {
	empty_db "$1"
	psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION stream_ext"
}

# q SQL: one query, unaligned tuples only, errors fatal
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

# run_sql: psql reading SQL from stdin, errors fatal, quiet
run_sql() { psql -X -q -o /dev/null -v ON_ERROR_STOP=1 "$@"; }

# fifo_session NAME FD [PSQL OPTION...]: a psql session that stays open,
# reading what the test writes to file descriptor FD (a FIFO,
# $SCRATCH/NAME), its output in $SCRATCH/NAME.out; its pid in SESSION_PID.
# Closing FD ends it; it is killed with the test.
fifo_session() {
	local name=$1 fd=$2
	shift 2
	rm -f "$SCRATCH/$name" "$SCRATCH/$name.out"
	mkfifo "$SCRATCH/$name"
	psql -X -q "$@" <"$SCRATCH/$name" >"$SCRATCH/$name.out" 2>&1 &
	SESSION_PID=$!
	_bg_pids+=($SESSION_PID)
	eval "exec $fd>\"\$SCRATCH/\$name\""
}

# expect SQL VALUE WHAT: the query's answer is VALUE, or the test fails saying WHAT
expect() {
	local got
	got=$(q "$1")
	[ "$got" = "$2" ] || fail "$3: got '${got:0:300}', expected '$2'"
	say "ok: $3"
}

# try_wait TIMEOUT_S DESCRIPTION SQL: poll SQL (a boolean query) every 0.1s until
# it returns t; on timeout print why and return 1
try_wait() {
	local timeout=$1 what=$2 sql=$3 deadline=$((SECONDS + $1)) r
	while :; do
		r=$(psql -X -At -c "$sql" 2>&1 || true)
		[ "$r" = t ] && return 0
		if [ $SECONDS -ge $deadline ]; then
			echo "[$TEST_NAME] timed out after ${timeout}s waiting for: $what (last answer: '$r')" >&2
			return 1
		fi
		sleep 0.1
	done
}
# wait_until TIMEOUT_S DESCRIPTION SQL: same, a timeout fails the test
wait_until() { try_wait "$@" || fail "timeout: $2"; }

# stubborn_function NAME ARGS RETTYPE CONDITION RESULT: the SQL of a PL/pgSQL
# function NAME(ARGS) returning RESULT, which when CONDITION holds catches
# every cancel (stream_ext.view_time_limit's too) in a loop, for ever: code
# that ignores the time limit
stubborn_function() {
	cat <<SQL
CREATE FUNCTION $1($2) RETURNS $3 LANGUAGE plpgsql IMMUTABLE AS \$f\$
BEGIN
  IF $4 THEN
    LOOP
      BEGIN
        PERFORM pg_sleep(0.01);
      EXCEPTION WHEN query_canceled THEN NULL;
      END;
    END LOOP;
  END IF;
  RETURN $5;
END \$f\$
SQL
}

# set_server_setting NAME VALUE: ALTER SYSTEM SET and reload, then wait until
# the server has it; reset at exit
set_server_setting() {
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET $1 = '$2'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	_server_settings+=("$1")
	wait_until 10 "server-wide $1 is $2" "SELECT setting = '$2' FROM pg_settings WHERE name = '$1'"
}

# SQL function pending_deltas(): rows in the delta tables of all views, which
# the combiner merges away
create_pending_deltas() {
	run_sql <<'SQL'
CREATE FUNCTION pending_deltas() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r record; total bigint := 0; n bigint;
BEGIN
  FOR r IN SELECT delta_table FROM stream_ext_internal.continuous_views LOOP
    EXECUTE format('SELECT count(*) FROM %s', r.delta_table) INTO n;
    total := total + n;
  END LOOP;
  RETURN total;
END $$;
SQL
}

# log_offset: current size of the server log (to check only what comes after)
log_offset() { stat -c %s "$STREAM_EXT_SERVER_LOG" 2>/dev/null || echo 0; }
# log_since OFFSET: server log lines written after OFFSET
log_since() { tail -c +$(($1 + 1)) "$STREAM_EXT_SERVER_LOG" 2>/dev/null || true; }
# crash_lines OFFSET: the lines after OFFSET of the server log that say a
# server process crashed (none: empty)
crash_lines() { log_since "$1" | grep -E 'terminated by signal|server process .* was terminated|TRAP:' || true; }

# kill_server_hard DIR: kill -9 the postmaster of the server in DIR and every
# child of it, as a crash would, and wait until they are gone.  Sets
# KILLED_PM and KILLED_CHILDREN (how many).
kill_server_hard() {
	local dir=$1 pm children p deadline
	pm=$(head -1 "$dir/data/postmaster.pid")
	kill -STOP "$pm"                       # no new children from here on
	children=$(pgrep -P "$pm" || true)
	bash "$TEST_DIR/server.sh" kill "$dir"
	[ -n "$children" ] && kill -9 $children 2>/dev/null || true
	deadline=$((SECONDS + 30))
	for p in $pm $children; do
		while kill -0 "$p" 2>/dev/null; do
			[ $SECONDS -ge $deadline ] && fail "process $p survives kill -9"
			sleep 0.05
		done
	done
	KILLED_PM=$pm
	KILLED_CHILDREN=$(echo $children | wc -w)
}

# report_comparison LABEL: report table res (view, read_time, view_rows,
# ref_rows, diffs, examples: one row per view and read time compared with its
# batch query): say how many pairs are equal, print those that are not and
# add them to the caller's failures array
report_comparison() {
	local out bad
	out=$(q "SELECT count(*) FILTER (WHERE diffs = 0) || '/' || count(*) || ' (view, read time) pairs equal the batch queries; rows compared: ' || sum(ref_rows) FROM res")
	bad=$(q "SELECT string_agg(format(E'  %s at %s: %s (view %s rows, reference %s rows)\n    %s', view, read_time,
	                  CASE WHEN diffs < 0 THEN 'cannot be compared' ELSE diffs || ' differing rows' END,
	                  coalesce(view_rows::text, '?'), coalesce(ref_rows::text, '?'), replace(examples, E'\n', E'\n    ')), E'\n')
	           FROM res WHERE diffs <> 0")
	if [ -n "$bad" ]; then
		echo "[$TEST_NAME] $1: views differing from the batch queries:"
		echo "$bad"
		failures+=("$1: $(q "SELECT string_agg(DISTINCT view, ', ') FROM res WHERE diffs <> 0")")
	fi
	say "$1: $out"
}

# crash_client_sql CYCLE CLIENT SMALL LARGE: an endless SQL script for one
# client of a kill -9 test, writing batches into stream ev (batch_id, size,
# seq), each batch its own id: SMALL events, one in seven LARGE, by INSERT,
# COPY, a transaction with a rolled back savepoint (a 5-event batch of its
# own) in the middle, or rolled back.  It echoes "ack ID SIZE" once a batch
# committed (ON_ERROR_STOP: never after a failed COMMIT) and "rb ID SIZE" for
# a batch rolled back.
crash_client_sql() {
	local base=$((($1 * 100 + $2) * 1000000)) n=0 id size i
	while :; do
		n=$((n + 1)); id=$((base + n)); size=$3
		[ $((n % 7)) = 3 ] && size=$4
		case $((n % 5)) in
		0)	printf 'BEGIN;\nINSERT INTO ev SELECT %s, %s, g FROM generate_series(1, %s) g;\nROLLBACK;\n\\echo rb %s %s\n' \
				$id $size $size $id $size ;;
		1)	printf 'COPY ev FROM STDIN;\n'
			for ((i = 1; i <= size; i++)); do printf '%s\t%s\t%s\n' $id $size $i; done
			printf '\\.\n\\echo ack %s %s\n' $id $size ;;
		2)	printf 'BEGIN;\nINSERT INTO ev SELECT %s, %s, g FROM generate_series(1, %s) g;\n' $id $size $((size / 2))
			printf 'SAVEPOINT s;\nINSERT INTO ev SELECT %s, 5, g FROM generate_series(1, 5) g;\nROLLBACK TO s;\n' $((id + 500000))
			printf 'INSERT INTO ev SELECT %s, %s, g FROM generate_series(%s, %s) g;\nCOMMIT;\n\\echo ack %s %s\n\\echo rb %s 5\n' \
				$id $size $((size / 2 + 1)) $size $id $size $((id + 500000)) ;;
		*)	printf 'BEGIN;\nINSERT INTO ev SELECT %s, %s, g FROM generate_series(1, %s) g;\nCOMMIT;\n\\echo ack %s %s\n' \
				$id $size $size $id $size ;;
		esac
	done
}

# load_client_logs: what the crash clients echoed ($SCRATCH/client-*.out)
# into the tables acked and rolled_back (id, size)
load_client_logs() {
	cat "$SCRATCH"/client-*.out 2>/dev/null | awk '$1 == "ack" { print $2 "\t" $3 }' > "$SCRATCH/acked.tsv"
	cat "$SCRATCH"/client-*.out 2>/dev/null | awk '$1 == "rb" { print $2 "\t" $3 }' > "$SCRATCH/rolled_back.tsv"
	run_sql -c "TRUNCATE acked, rolled_back" -c "\\copy acked FROM '$SCRATCH/acked.tsv'" \
		-c "\\copy rolled_back FROM '$SCRATCH/rolled_back.tsv'"
}

# start_crash_clients CYCLE SMALL LARGE: $CLIENTS clients running
# crash_client_sql in the background, their output in
# $SCRATCH/client-CYCLE-N.out; their pids in crash_pids
start_crash_clients() {
	local c
	crash_pids=()
	for c in $(seq 1 "$CLIENTS"); do
		crash_client_sql "$1" "$c" "$2" "$3" | psql -X -q -o /dev/null -v ON_ERROR_STOP=1 \
			>"$SCRATCH/client-$1-$c.out" 2>"$SCRATCH/client-$1-$c.err" &
		crash_pids+=($!)
		_bg_pids+=($!)
	done
}

# crash_and_recover SRV: kill -9 the server SRV and every child of it, wait
# until the crash clients noticed, restart it and check that it recovered
crash_and_recover() {
	local deadline p
	kill_server_hard "$1"
	say "killed postmaster $KILLED_PM and $KILLED_CHILDREN children"
	deadline=$((SECONDS + 30))
	for p in "${crash_pids[@]}"; do
		while kill -0 "$p" 2>/dev/null; do
			[ $SECONDS -ge $deadline ] && fail "client $p still running after the crash"
			sleep 0.05
		done
	done
	bash "$TEST_DIR/server.sh" restart "$1" >"$SCRATCH/restart.out" 2>&1 || { cat "$SCRATCH/restart.out"; fail "restart failed"; }
	grep -q 'automatic recovery in progress' "$1/server.log" || fail "no crash recovery happened"
}
