#!/usr/bin/env bash
# Throwaway PostgreSQL 15 server with stream_ext preloaded.
#
#   test/server.sh start DIR [extra postgresql.conf lines...]
#                                  initdb in DIR (as user postgres), free port,
#                                  start; prints "PGHOST=... PGPORT=..."
#   test/server.sh stop DIR        stop (fast) and keep the data
#   test/server.sh kill DIR        kill -9 the postmaster (crash)
#   test/server.sh restart DIR     start again after stop or kill
#   test/server.sh env DIR         print the connection settings again
#   test/server.sh destroy DIR     stop and remove DIR
set -euo pipefail

PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
cmd=${1:?usage: server.sh start|stop|kill|restart|env|destroy DIR}
dir=${2:?missing DIR}
shift 2 || true

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A free port, tried from a random start in 25432-29431 (below the kernel's
# ephemeral ports, which client connections use), so that servers
# started at the same time (or one restarting after kill -9 while another
# starts) rarely pick the same one.
free_port() {
	local i p start=$((RANDOM % 4000))
	for i in $(seq 0 3999); do
		p=$((25432 + (start + i) % 4000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$p" ]; then
			echo "$p"; return
		fi
	done
	echo "no free port" >&2; exit 1
}

print_env() {
	echo "PGHOST=$dir/socket PGPORT=$(cat "$dir/port") PGUSER=postgres"
}

start_server() {
	as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

case "$cmd" in
start)
	if [ -e "$dir/data" ]; then
		echo "$dir/data exists: use restart, or destroy first" >&2
		exit 1
	fi
	mkdir -p "$dir/socket"
	[ "$(id -u)" = 0 ] && chown -R postgres "$dir"
	port=$(free_port)
	echo "$port" > "$dir/port"
	as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
	{
		echo "port = $port"
		echo "unix_socket_directories = '$dir/socket'"
		echo "listen_addresses = '127.0.0.1'"
		echo "shared_preload_libraries = 'pg_stat_statements, stream_ext'"
		echo "max_worker_processes = 32"
		echo "fsync = on"
		for line in "$@"; do echo "$line"; done
	} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	start_server
	print_env
	;;
stop) as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
kill) kill -9 "$(head -1 "$dir/data/postmaster.pid")" ;;
restart) start_server; print_env ;;
env) print_env ;;
destroy)
	as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
