#!/usr/bin/env bash
# More databases than stream_ext.max_databases places, after a restart: the
# launcher asks for every database, in pg_database order, and places are
# taken by databases without the extension too, whose workers leave at once.
# The databases it had no place for are asked for again as places come
# free: a database with the extension gets its workers (and would resume its
# Kafka consumers) without waiting for a write.  Own server, max_databases = 2.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.max_databases = 2"

# pg_database order: postgres, with_a, without, with_b
for db in with_a without with_b; do
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
done
for db in with_a with_b; do
	psql -X -q -d $db -v ON_ERROR_STOP=1 -c "CREATE EXTENSION stream_ext" \
		-c "CREATE FOREIGN TABLE ev (k int) SERVER stream_ext" \
		-c "CREATE VIEW ev_n WITH (continuous) AS SELECT count(*) AS n FROM ev"
done
psql -X -q -d with_a -c "INSERT INTO ev VALUES (1)"

bash "$TEST_DIR/server.sh" stop "$SCRATCH/server" >/dev/null
bash "$TEST_DIR/server.sh" restart "$SCRATCH/server" >/dev/null
PGDATABASE=postgres wait_until 30 "with_b's combiner runs, with no write into it" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 'with_b' AND backend_type = 'stream_ext combiner'"
PGDATABASE=postgres wait_until 30 "with_a's combiner runs" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 'with_a' AND backend_type = 'stream_ext combiner'"
say "ok: after a restart, both databases with the extension got their workers with 2 places for 4 databases"
[ "$(psql -X -At -d with_b -c "INSERT INTO ev VALUES (1)" -c "SELECT n FROM ev_n")" = "INSERT 0 1
1" ] || fail "with_b does not ingest"
say PASS
