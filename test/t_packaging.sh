#!/usr/bin/env bash
# CREATE EXTENSION on a server that did not preload the library fails, with
# a hint saying how to preload it, and leaves nothing behind.  Own server
# (shared_preload_libraries is empty there).
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "shared_preload_libraries = ''"

out=$(psql -X -d postgres -c "CREATE EXTENSION stream_ext" 2>&1) && fail "CREATE EXTENSION succeeded without preloading: $out"
grep -q 'ERROR:  stream_ext must be loaded via shared_preload_libraries' <<< "$out" ||
	fail "unexpected error: $out"
grep -q 'HINT:  Add stream_ext to shared_preload_libraries in postgresql.conf and restart the server.' <<< "$out" ||
	fail "no preload hint: $out"
say "ok: CREATE EXTENSION without preloading fails with the preload hint"

[ "$(q "SELECT count(*) FROM pg_extension WHERE extname = 'stream_ext'")" = 0 ] || fail "extension row left behind"
[ "$(q "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'stream_ext%'")" = 0 ] || fail "schemas left behind"
say "ok: nothing left behind"
say PASS
