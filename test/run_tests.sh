#!/usr/bin/env bash
# The test command: bash test/run_tests.sh
#
# Installs missing packages, builds and installs the extension, starts one
# throwaway server, runs the pg_regress suites (make installcheck, schedule in
# test/schedule) and then every test/t_*.sh script.  Prints "N passed, M failed"
# as its last line and exits non-zero if anything failed.
#
#   bash test/run_tests.sh [t_name ...]   only the named scripts (and installcheck)
#   SKIP_INSTALLCHECK=1 / SKIP_SCRIPTS=1  skip one of the two parts
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}   # override to test against another (relocated) install
export PATH="$PGBIN:$PATH"
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-900}

passed=0; failed=0; results=()
t_start=$SECONDS

ROOT=$(mktemp -d /tmp/stream_ext_test.XXXXXX)
chmod 755 "$ROOT"
SERVER="$ROOT/server"

cleanup() {
	local d
	# the shared server and any server a script left behind under its scratch dir
	for d in "$SERVER" "$ROOT"/scratch/*/ "$ROOT"/scratch/*/*/; do
		d=${d%/}
		[ -d "$d/data" ] && bash "$REPO/test/server.sh" destroy "$d" >/dev/null 2>&1
	done
	[ "$failed" -eq 0 ] && rm -rf "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record() {  # record NAME RC SECONDS
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1)); results+=("PASS  $1 (${3}s)")
	else
		failed=$((failed + 1)); results+=("FAIL  $1 (${3}s)")
	fi
}

server_log_tail() {
	[ -f "$SERVER/server.log" ] || return 0
	echo "----- server log (last ${1:-40} lines): $SERVER/server.log"
	tail -n "${1:-40}" "$SERVER/server.log"
	echo "-----"
}

finish() {
	echo
	echo "===== summary ($((SECONDS - t_start))s)"
	printf '%s\n' "${results[@]}"
	[ "$failed" -gt 0 ] && echo "logs kept in $ROOT"
	echo "$passed passed, $failed failed"
	exit $((failed > 0))
}

# step NAME CMD...: run a setup step with output to a log, tail it on failure
step() {
	local name=$1 t0=$SECONDS rc; shift
	echo "== $name"
	"$@" >"$ROOT/$name.log" 2>&1
	rc=$?
	record "$name" $rc $((SECONDS - t0))
	if [ $rc -ne 0 ]; then
		echo "FAILED: $name (exit $rc); last lines of $ROOT/$name.log:"
		tail -n 60 "$ROOT/$name.log"
	fi
	return $rc
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step deps as_root bash test/deps.sh || finish
build() {
	local args=()
	[ -x "$PGBIN/pg_config" ] && export PG_CONFIG="$PGBIN/pg_config"
	# a relocated install may come without server headers: use the system's
	if [ -n "${PG_CONFIG:-}" ] && [ ! -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] &&
		[ -f "/usr/include/postgresql/$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')/server/postgres.h" ]; then
		args=(pkgincludedir=/usr/include/postgresql)
	fi
	make clean && make "${args[@]}" && as_root make install "${args[@]}"
}
step build build || finish

# A relocated PostgreSQL (PGBIN elsewhere) lacks the extensions Debian's
# packages install into the system one: copy the hll and tdigest libraries and
# extension files there when they are missing (t_sketches creates both).
copy_packaged_extensions() {
	local pkglib share p f dir
	pkglib=$("$PG_CONFIG" --pkglibdir) share=$("$PG_CONFIG" --sharedir)/extension
	for p in postgresql-15-hll postgresql-15-tdigest; do
		for f in $(dpkg -L "$p"); do
			case $f in
			/usr/lib/postgresql/15/lib/*.so) dir=$pkglib ;;
			/usr/share/postgresql/15/extension/*) dir=$share ;;
			*) continue ;;
			esac
			if [ -f "$f" ] && [ ! -e "$dir/${f##*/}" ]; then
				echo "copying $f to $dir"
				as_root cp "$f" "$dir/" || return 1
			fi
		done
	done
}
if [ -n "${PG_CONFIG:-}" ] && [ "$("$PG_CONFIG" --pkglibdir)" != /usr/lib/postgresql/15/lib ]; then
	step packaged_extensions copy_packaged_extensions || finish
fi

echo "== server"
if ! env_line=$(bash test/server.sh start "$SERVER" "max_prepared_transactions = 10" 2>"$ROOT/server-start.log"); then
	cat "$ROOT/server-start.log"; server_log_tail; record server 1 0; finish
fi
eval "export $env_line"
export STREAM_EXT_SERVER_LOG="$SERVER/server.log"
echo "$env_line"

# pg_regress suites
if [ -n "${SKIP_INSTALLCHECK:-}" ]; then
	echo "== installcheck: skipped (SKIP_INSTALLCHECK)"
elif [ ! -s test/schedule ]; then
	echo "== installcheck: skipped (no test/schedule yet)"
else
	echo "== installcheck"
	t0=$SECONDS
	rm -rf results regression.diffs regression.out
	make installcheck 2>&1 | tee "$ROOT/installcheck.log"
	rc=${PIPESTATUS[0]}
	record installcheck "$rc" $((SECONDS - t0))
	if [ "$rc" -ne 0 ]; then
		if [ -f regression.diffs ]; then
			echo "----- regression.diffs (first 300 lines)"
			head -n 300 regression.diffs
			cp regression.diffs "$ROOT/"
		fi
		server_log_tail 60
	fi
fi

# t_*.sh scripts
if [ -n "${SKIP_SCRIPTS:-}" ]; then
	echo "== scripts: skipped (SKIP_SCRIPTS)"
else
	if [ $# -gt 0 ]; then
		scripts=(); for n in "$@"; do scripts+=("test/${n%.sh}.sh"); done
	else
		scripts=(test/t_*.sh)
	fi
	for s in "${scripts[@]}"; do
		[ -f "$s" ] || { echo "no such script: $s"; record "$s" 1 0; continue; }
		name=$(basename "$s" .sh)
		scratch="$ROOT/scratch/$name"
		mkdir -p "$scratch"; chmod 755 "$scratch"
		echo "== $name"
		t0=$SECONDS
		SCRATCH="$scratch" timeout -k 10 "$SCRIPT_TIMEOUT" bash "$s" 2>&1 | tee "$ROOT/$name.log"
		rc=${PIPESTATUS[0]}
		[ "$rc" -eq 124 ] && echo "TIMEOUT: $name exceeded ${SCRIPT_TIMEOUT}s"
		record "$name" "$rc" $((SECONDS - t0))
		if [ "$rc" -ne 0 ]; then
			echo "FAILED: $name (exit $rc)"
			server_log_tail 40
		fi
		# servers a script did not clean up
		for d in "$scratch"/ "$scratch"/*/; do
			d=${d%/}
			[ -d "$d/data" ] && bash test/server.sh destroy "$d" >/dev/null 2>&1
		done
		# the shared server must still be up for the next script
		if ! "$PGBIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT"; then
			echo "shared server is down after $name; restarting it"
			bash test/server.sh restart "$SERVER" >/dev/null 2>&1 || { server_log_tail; record server 1 0; finish; }
		fi
	done
fi

finish
