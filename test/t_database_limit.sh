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

# A writer holds its database's place while its transaction is open: when
# its database's processes all go away meanwhile, the place is not given to
# another database (the writer's events would go to that one's workers),
# and its COMMIT brings its own workers back.
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE with_c"
psql -X -q -d with_c -v ON_ERROR_STOP=1 -c "CREATE EXTENSION stream_ext" \
	-c "CREATE FOREIGN TABLE ev (k int) SERVER stream_ext" \
	-c "CREATE VIEW ev_n WITH (continuous) AS SELECT count(*) AS n FROM ev"
fifo_session writer 7 -d with_a -v ON_ERROR_STOP=1
writer=$SESSION_PID
echo "SET statement_timeout = '20s'; BEGIN; INSERT INTO ev VALUES (2);" >&7
PGDATABASE=postgres wait_until 10 "with_a's writer is in its transaction" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = 'with_a' AND state = 'idle in transaction'"
psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                           WHERE datname = 'with_a' AND backend_type LIKE 'stream_ext%'" >/dev/null
PGDATABASE=postgres wait_until 10 "with_a's processes are gone" \
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'with_a' AND backend_type LIKE 'stream_ext%'"
out=$(psql -X -d with_c -c "INSERT INTO ev VALUES (1)" 2>&1) && fail "with_c took with_a's place while a writer of with_a is in a transaction"
echo "$out" | grep -q "serves at most 2 databases" || fail "with_c's INSERT: unexpected error: $out"
say "ok: a database's place is kept while a writer of it is in a transaction"
echo "COMMIT;" >&7
exec 7>&-
wait "$writer" || fail "with_a's COMMIT failed: $(cat "$SCRATCH/writer.out")"
[ "$(psql -X -At -d with_a -c "SELECT n FROM ev_n")" = 2 ] || fail "with_a's event is not in its view: $(psql -X -At -d with_a -c "SELECT n FROM ev_n")"
say "ok: the writer's COMMIT started its database's workers again, and its event is in the view"

# The shared table of view rates keeps at most 128 views per place
# (256 here): more views take no more shared memory, and show rate 0.
psql -X -q -d with_b -v ON_ERROR_STOP=1 -c "CREATE FOREIGN TABLE many (k int) SERVER stream_ext"
for i in $(seq 1 300); do echo "CREATE VIEW many_$i WITH (continuous) AS SELECT count(*) AS n FROM many;"; done |
	psql -X -q -d with_b -v ON_ERROR_STOP=1 >/dev/null
psql -X -q -d with_b -c "INSERT INTO many VALUES (1)"
PGDATABASE=with_b wait_until 10 "the rates show the event" \
	"SELECT count(*) > 0 FROM stream_ext.view_stats WHERE name::text LIKE 'many_%' AND rate_10s > 0"
rated=$(psql -X -At -d with_b -c "SELECT count(*) FILTER (WHERE rate_10s > 0) FROM stream_ext.view_stats WHERE name::text LIKE 'many_%'")
# (the entries are the server's: with_a's and with_b's other views hold some)
[ "$rated" -le 256 ] && [ "$rated" -ge 250 ] || fail "views with a rate, of 300 views with an event: got $rated, expected at most 256"
say "ok: the view rates of 300 views fill the 256 entries and take no more"
say PASS
