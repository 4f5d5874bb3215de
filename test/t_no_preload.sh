#!/usr/bin/env bash
# A server started without stream_ext in shared_preload_libraries, after
# CREATE EXTENSION (the library then has no shared memory and no
# processes): nothing crashes it.  Every view of the extension's schema is
# read, the stream is written and read, and every C function of the
# extension is called with plausible arguments (a view, a stream, numbers,
# text; a strict function given NULL is never called); what needs the
# preloaded library fails with its error and hint.  A dump restores into a
# database that has the extension.  Ordinary DDL and dropping the
# extension's objects still work.  Own server.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
SRV="$SCRATCH/server"
start_own_server "$SRV"
fresh_db t_no_preload
run_sql <<'SQL'
CREATE FOREIGN TABLE np_s (k text, v int) SERVER stream_ext;
CREATE VIEW np_v WITH (continuous) AS SELECT k, count(*) AS n FROM np_s GROUP BY k;
INSERT INTO np_s VALUES ('a', 1), ('a', 2), ('b', 3);
SQL
expect "SELECT string_agg(k || ':' || n, ' ' ORDER BY k) FROM np_v" "a:2 b:1" "the view before the restart"
# a dump, to restore into a database that has the extension already
pg_dump -Fc -f "$SCRATCH/dump" t_no_preload || fail "pg_dump failed"
psql -X -q -d postgres -c "CREATE DATABASE np_dst" || fail "CREATE DATABASE np_dst"
psql -X -q -d np_dst -c "CREATE EXTENSION stream_ext" || fail "CREATE EXTENSION in np_dst"

# the same server, the library no longer preloaded
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
bash "$TEST_DIR/server.sh" stop "$SRV" >/dev/null
bash "$TEST_DIR/server.sh" restart "$SRV" >/dev/null
[ "$(q "SHOW shared_preload_libraries")" = pg_stat_statements ] || fail "stream_ext is still preloaded"

log0=$(log_offset)
must_not_crash() {
	local out
	out=$(PGOPTIONS="-c statement_timeout=10s" psql -X -q -c "$1" 2>&1 < /dev/null) || true
	psql -X -At -c "SELECT 1" >/dev/null 2>&1 || { sleep 5; fail "the server went down after: $1 ($out)"; }
	[ -z "$(crash_lines "$log0")" ] || fail "a server process crashed on: $1 ($out)"
}

# the views of the extension's schema
for v in $(q "SELECT format('%I.%I', schemaname, viewname) FROM pg_views WHERE schemaname = 'stream_ext'"); do
	must_not_crash "SELECT * FROM $v"
done
out=$(psql -X -q -c "SELECT * FROM stream_ext.view_stats" 2>&1 || true)
grep -q "stream_ext must be loaded via shared_preload_libraries" <<<"$out" ||
	fail "view_stats without the library: $out"
must_not_crash "SELECT * FROM np_v"
must_not_crash "SELECT * FROM np_v WHERE k = 'a'"
out=$(psql -X -q -c "INSERT INTO np_s VALUES ('c', 4)" 2>&1 || true)
grep -q "stream_ext must be loaded via shared_preload_libraries" <<<"$out" ||
	fail "an INSERT into a stream without the library: $out"
must_not_crash "COPY np_s FROM PROGRAM 'echo c,5' (FORMAT csv)"
must_not_crash "SELECT * FROM np_s"

# every C function of the extension, with arguments it could be given
run_sql <<'SQL'
CREATE FUNCTION sample_arg(t regtype) RETURNS text LANGUAGE sql AS $$
  SELECT CASE t
    WHEN 'regclass'::regtype THEN '''np_v''::regclass'
    WHEN 'oid'::regtype THEN '''np_v''::regclass::oid'
    WHEN 'int2'::regtype THEN '1::int2'
    WHEN 'int4'::regtype THEN '1'
    WHEN 'int8'::regtype THEN '1::int8'
    WHEN 'text'::regtype THEN '''np_s'''
    WHEN 'name'::regtype THEN '''np_s''::name'
    WHEN 'bool'::regtype THEN 'false'
    WHEN 'bytea'::regtype THEN '''\x00''::bytea'
    WHEN 'timestamptz'::regtype THEN 'now()'
    WHEN 'interval'::regtype THEN '''1 second''::interval'
    WHEN 'regprocedure'::regtype THEN '''count(*)''::regprocedure'
    WHEN 'xid8'::regtype THEN 'pg_current_xact_id()'
    WHEN 'text[]'::regtype THEN 'ARRAY[''np_s'']'
    ELSE format('NULL::%s', t) END
$$;
CREATE TABLE calls AS
  SELECT format('SELECT %s(%s)', p.oid::regproc,
                coalesce((SELECT string_agg(sample_arg(a), ', ' ORDER BY i)
                            FROM unnest(p.proargtypes::regtype[]) WITH ORDINALITY AS x(a, i)), '')) AS sql
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
   WHERE p.pronamespace IN ('stream_ext'::regnamespace, 'stream_ext_internal'::regnamespace)
     AND l.lanname = 'c' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
     AND p.prorettype <> 'event_trigger'::regtype AND p.prorettype <> 'fdw_handler'::regtype
     AND NOT 'internal'::regtype = ANY (p.proargtypes::regtype[]);
SQL
n=0
while IFS= read -r sql; do
	must_not_crash "$sql"
	n=$((n + 1))
done < <(q "SELECT sql FROM calls ORDER BY sql")
[ "$n" -gt 30 ] || fail "only $n functions called"
say "ok: $n C functions called, every view of the extension read, the stream written: no crash"

# a restore (the catalog rows' adoption asked for the workers at commit)
out=$(pg_restore -d np_dst "$SCRATCH/dump" 2>&1) || true
psql -X -At -c "SELECT 1" >/dev/null 2>&1 || { sleep 5; fail "the server went down in pg_restore: $out"; }
[ -z "$(crash_lines "$log0")" ] || fail "a server process crashed in pg_restore: $out"
PGDATABASE=np_dst expect "SELECT string_agg(k || ':' || n, ' ' ORDER BY k) FROM np_v" "a:2 b:1" \
	"a view restored without the library reads what was dumped"
psql -X -q -d postgres -c "DROP DATABASE np_dst WITH (FORCE)" >/dev/null

# ordinary DDL, and dropping the extension's objects
run_sql <<'SQL'
CREATE TABLE plain (x int);
DROP TABLE plain;
DROP VIEW np_v;
DROP FOREIGN TABLE np_s;
SQL
[ -z "$(crash_lines "$log0")" ] || fail "a server process crashed: $(crash_lines "$log0")"
say "ok: DDL and DROP of a view and its stream without the library"
psql -X -q -d postgres -c "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null
