#!/usr/bin/env bash
# Reads of one group skip the scans of the view's delta table when the group
# can have no delta there (src/ddl/delta_gate.c, src/ipc/pending_keys.c), and
# stay exact when it can: a repeatable-read transaction that saw a group's
# deltas still sees them after the combiner merged them; a group written
# without pause never reads lower than it read before; keys of several
# columns, a bigint key compared with an integer, and text keys under a
# nondeterministic collation are gated too; an old transaction of another
# database, or an old snapshot of this one, does not hold them back.  The
# shared table of delta tables' cleared ids (128 per database served: one
# database here) makes room for a new view once views were dropped.
source "$(dirname "$0")/lib.sh"

# hold_merges STATE SECONDS: keep the combiner from merging into a state
# table (its merge waits for the lock) for SECONDS, from the background
hold_merges() {
	psql -X -q -c "BEGIN; LOCK $1 IN EXCLUSIVE MODE; SELECT pg_sleep($2); COMMIT;" >/dev/null &
	_bg_pids+=($!)
	sleep 0.3
}
# wait_published TIMEOUT WHAT DELTA KEY: wait until the combiner merged every
# delta of DELTA and published that KEY (text) has none
wait_published() {
	wait_until "$1" "$2" \
		"SELECT (SELECT count(*) FROM $3) = 0 AND NOT stream_ext_internal.delta_may_have_key('$3', '$4'::text)"
}

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.max_databases = 1" "wal_level = logical"
fresh_db t_key_reads
log0=$(log_offset)

run_sql <<'SQL'
CREATE FOREIGN TABLE s (k text, a bigint, v int) SERVER stream_ext;
CREATE VIEW per_k WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
CREATE VIEW per_ka WITH (continuous) AS SELECT a, k, count(*) AS n FROM s GROUP BY a, k;
INSERT INTO s SELECT 'k' || (i % 100), i % 7, i FROM generate_series(1, 1000) i;
SQL
state=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'per_k'::regclass")
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'per_k'::regclass")

# scans of the delta table a read of one key ran: its plan's gated scans
# (a gate that holds says "never executed") and the one delta_changes_key
# runs when shared memory cannot tell (src/ddl/changed_keys.c), as the
# transaction's statistics count them
delta_scans_run() { # delta_scans_run SELECT
	psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
BEGIN;
\o /dev/null
$1;
\o
SELECT pg_stat_get_xact_numscans('$delta'::regclass);
COMMIT;
SQL
}

# --- 1. once the deltas are merged, a read of one key scans no delta table
wait_published 30 "the deltas merged and the cleared id published" $delta k5
gates=$(psql -X -At -c "EXPLAIN (COSTS OFF) SELECT * FROM per_k WHERE k = 'k5'" | grep -c "One-Time Filter: stream_ext_internal.delta_may_have_key" || true)
[ "$gates" = 2 ] || fail "the read of one key has $gates gated delta scans, not 2"
[ "$(delta_scans_run "SELECT * FROM per_k WHERE k = 'k5'")" = 0 ] ||
	fail "a read of a key with no delta scanned the delta table"
[ "$(q "SELECT n || ' ' || total FROM per_k WHERE k = 'k5'")" = \
	"$(q "SELECT count(*) || ' ' || sum(i) FROM generate_series(1, 1000) i WHERE i % 100 = 5")" ] ||
	fail "per_k of k5 is $(q "SELECT n || ' ' || total FROM per_k WHERE k = 'k5'")"
# several key columns, and a bigint column compared with an integer constant
gates=$(psql -X -At -c "EXPLAIN (COSTS OFF) SELECT * FROM per_ka WHERE a = 3 AND k = 'k10'" | grep -c "delta_may_have_key" || true)
[ "$gates" -ge 1 ] || fail "a read of one key of two columns (bigint = integer) is not gated"
# a prepared statement's generic plan gates on its parameter
[ "$(psql -X -At -c "SET plan_cache_mode = force_generic_plan" \
	-c "PREPARE one(text) AS SELECT n FROM per_k WHERE k = \$1" -c "EXPLAIN (COSTS OFF) EXECUTE one('k7')" |
	grep -c "delta_may_have_key('${delta}'::regclass, \$1)" || true)" = 2 ] ||
	fail "a generic plan of a read of one key is not gated on its parameter"
[ "$(psql -X -At -c "SET plan_cache_mode = force_generic_plan" \
	-c "PREPARE two(int) AS SELECT n FROM per_k WHERE k = 'k' || \$1" -c "EXPLAIN (COSTS OFF) EXECUTE two(7)" |
	grep -c "delta_may_have_key('${delta}'::regclass, ('k'::text || (\$1)::text))" || true)" = 2 ] ||
	fail "a generic plan of a read of one key given as an expression of a parameter is not gated"
# whether a key was written lately is told only to those who may read the view
[ "$(psql -X -qAt -c "CREATE ROLE t_key_reads_other" -c "SET ROLE t_key_reads_other" \
	-c "SELECT stream_ext_internal.delta_may_have_key('$delta', 'k5'::text)" -c "RESET ROLE" \
	-c "DROP ROLE t_key_reads_other" | sed -n 1p)" = t ] ||
	fail "delta_may_have_key told a role without SELECT on the view that a key has no deltas"
say "ok: a read of one key scans no delta table once the key's deltas are merged (one key, two keys, generic plans)"

# a logical replication slot holds back the catalogs' horizon, not the
# delta tables': reads of one key still skip them
run_sql -c "SELECT pg_create_logical_replication_slot('t_key_reads_slot', 'test_decoding')"
run_sql -c "INSERT INTO s VALUES ('slot', 1, 1)"
wait_published 20 "a key written while a logical slot exists merged and published" $delta slot
run_sql -c "SELECT pg_drop_replication_slot('t_key_reads_slot')"
say "ok: a logical replication slot does not keep reads of one key scanning"

# a transaction of another database, however old, writes into no stream of
# this one, and a snapshot held open here (a repeatable-read transaction)
# is older than the combiner's scans: neither keeps new reads of one key
# scanning (the old snapshot's own reads do scan: section 2)
run_sql -d postgres -c "CREATE DATABASE t_key_reads_elsewhere"
psql -X -q -d t_key_reads_elsewhere -c "BEGIN" -c "SELECT pg_current_xact_id()" \
	-c "SELECT pg_sleep(120)" -c "COMMIT" >/dev/null 2>&1 &
_bg_pids+=($!)
psql -X -q -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM per_k" \
	-c "SELECT pg_sleep(120)" -c "COMMIT" >/dev/null 2>&1 &
_bg_pids+=($!)
wait_until 10 "a transaction id held open in another database, a snapshot here" \
	"SELECT count(*) FILTER (WHERE datname = 't_key_reads_elsewhere' AND backend_xid IS NOT NULL) = 1
	    AND count(*) FILTER (WHERE datname = current_database() AND query = 'SELECT pg_sleep(120)') = 1
	   FROM pg_stat_activity"
run_sql -c "INSERT INTO s VALUES ('elsewhere', 1, 1)"
wait_published 20 "a key written while old transactions run merged and published" $delta elsewhere
[ "$(delta_scans_run "SELECT * FROM per_k WHERE k = 'elsewhere'")" = 0 ] ||
	fail "a read of a merged key scanned the delta table while old transactions ran"
[ "$(q "SELECT n FROM per_k WHERE k = 'elsewhere'")" = 1 ] || fail "elsewhere reads $(q "SELECT n FROM per_k WHERE k = 'elsewhere'")"
# and again after another merge, while the old snapshot still runs
run_sql -c "INSERT INTO s VALUES ('elsewhere 2', 1, 1)"
wait_until 20 "a key written later, while the old transactions still run, merged and published" \
	"SELECT (SELECT count(*) FROM $delta) = 0 AND NOT stream_ext_internal.delta_may_have_key('$delta', 'elsewhere 2'::text)"
[ "$(delta_scans_run "SELECT * FROM per_k WHERE k = 'elsewhere 2'")" = 0 ] ||
	fail "a read of a key merged in a later round scanned the delta table while old transactions ran"
run_sql -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)'" \
	-c "DROP DATABASE t_key_reads_elsewhere WITH (FORCE)"
say "ok: a transaction held open in another database, or a snapshot held here, does not keep new reads of one key scanning"

# delta rows written by a statement, not by a batch worker (a restore's COPY,
# an owner's INSERT), raise no key's slot: reads of their groups count them
# at once all the same (here while the combiner cannot merge them: the state
# table is locked)
run_sql <<'SQL'
CREATE VIEW restored_v WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
INSERT INTO s SELECT 'r' || (i % 10), 1, i FROM generate_series(1, 100) i;
SQL
r_state=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'restored_v'::regclass")
r_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'restored_v'::regclass")
wait_published 30 "restored_v's deltas merged and its cleared id published" $r_delta r5
[ "$(q "SELECT n || ' ' || total FROM restored_v WHERE k = 'r5'")" = "10 500" ] ||
	fail "restored_v reads $(q "SELECT n || ' ' || total FROM restored_v WHERE k = 'r5'") for r5"
r5_row=$(psql -X -At -F $'\t' -c "SELECT '7 visible', s.* FROM $r_state s WHERE k = 'r5'")
hold_merges $r_state 6
# write_unnoted "SQL": run SQL in a transaction that then waits a second;
# meanwhile every key must read as maybe having deltas
write_unnoted() {
	psql -X -q -v ON_ERROR_STOP=1 > "$SCRATCH/restored.out" 2>&1 <<SQL &
BEGIN;
$1
SELECT pg_sleep(1);
COMMIT;
SQL
	local writer=$!
	sleep 0.5
	[ "$(q "SELECT stream_ext_internal.delta_may_have_key('$r_delta', 'r3'::text)")" = t ] ||
		fail "while a transaction writes delta rows itself, a key reads as having no deltas"
	wait "$writer" || fail "the delta rows were refused: $(cat "$SCRATCH/restored.out")"
}
write_unnoted "COPY $r_delta FROM STDIN;
$r5_row
\\."
write_unnoted "INSERT INTO $r_delta SELECT '7 visible', s.* FROM $r_state s WHERE k = 'r6';"
[ "$(q "SELECT string_agg(n || ' ' || total, ', ' ORDER BY k) FROM restored_v WHERE k IN ('r5', 'r6')")" = "20 1000, 20 1020" ] ||
	fail "r5, r6 read $(q "SELECT string_agg(n || ' ' || total, ', ' ORDER BY k) FROM restored_v WHERE k IN ('r5', 'r6')") right after delta rows of them were written, not 20 1000, 20 1020"
wait_published 20 "the written deltas merged and the cleared ids published again" $r_delta r3
[ "$(q "SELECT string_agg(n || ' ' || total, ', ' ORDER BY k) FROM restored_v WHERE k IN ('r5', 'r6')")" = "20 1000, 20 1020" ] ||
	fail "r5, r6 read $(q "SELECT string_agg(n || ' ' || total, ', ' ORDER BY k) FROM restored_v WHERE k IN ('r5', 'r6')") once the written deltas are merged"
run_sql -c "DROP VIEW restored_v"
say "ok: delta rows written by COPY or INSERT count in reads of their groups at once"
# a role that may not write into a delta table holds nothing off by trying
run_sql -c "CREATE ROLE t_key_reads_nowrite LOGIN"
wait_until 20 "k5 of per_k published as without deltas" \
	"SELECT NOT stream_ext_internal.delta_may_have_key('$delta', 'k5'::text)"
psql -X -q -U t_key_reads_nowrite -c "BEGIN" -c "SAVEPOINT a" \
	-c "INSERT INTO $delta SELECT * FROM $delta WHERE false" -c "ROLLBACK TO a" \
	-c "COPY $delta FROM STDIN" -c "ROLLBACK TO a" \
	-c "UPDATE $delta SET k = k WHERE false" -c "ROLLBACK TO a" \
	-c "SELECT pg_sleep(2)" -c "COMMIT" < /dev/null > "$SCRATCH/nowrite.out" 2>&1 &
nowrite=$!
sleep 1
[ "$(q "SELECT stream_ext_internal.delta_may_have_key('$delta', 'k5'::text)")" = f ] ||
	fail "a role refused writes into a delta table made keys read as maybe having deltas"
wait "$nowrite" || true
[ "$(grep -c 'permission denied' "$SCRATCH/nowrite.out")" = 3 ] ||
	fail "the role's writes into a delta table were not all refused: $(cat "$SCRATCH/nowrite.out")"
run_sql -c "DROP ROLE t_key_reads_nowrite"
# nor does a transaction writing delta rows itself in another database: it
# can reach no delta table of this one
run_sql -d postgres -c "CREATE DATABASE t_key_reads_restore"
psql -X -q -v ON_ERROR_STOP=1 -d t_key_reads_restore <<'SQL' || fail "the second database's view could not be made"
CREATE EXTENSION stream_ext;
CREATE FOREIGN TABLE s2 (k text) SERVER stream_ext;
CREATE VIEW v2 WITH (continuous) AS SELECT k, count(*) AS n FROM s2 GROUP BY k;
SQL
o_delta=$(psql -X -At -d t_key_reads_restore -c "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'v2'::regclass")
wait_until 20 "k5 of per_k published as without deltas" \
	"SELECT NOT stream_ext_internal.delta_may_have_key('$delta', 'k5'::text)"
psql -X -q -v ON_ERROR_STOP=1 -d t_key_reads_restore > "$SCRATCH/other.out" 2>&1 <<SQL &
BEGIN;
INSERT INTO $o_delta VALUES ('7 visible', 'o1', 1);
SELECT pg_sleep(2);
COMMIT;
SQL
other=$!
sleep 0.7
[ "$(q "SELECT stream_ext_internal.delta_may_have_key('$delta', 'k5'::text)")" = f ] ||
	fail "a transaction writing delta rows in another database made keys here read as maybe having deltas"
wait "$other" || fail "the other database's delta row was refused: $(cat "$SCRATCH/other.out")"
[ "$(q "SELECT stream_ext_internal.delta_may_have_key('$delta', 'k5'::text)")" = f ] ||
	fail "the commit of delta rows written in another database dropped what was cleared here"
[ "$(psql -X -At -d t_key_reads_restore -c "SELECT n FROM v2 WHERE k = 'o1'")" = 1 ] ||
	fail "the other database's view does not read its written delta row"
run_sql -d postgres -c "DROP DATABASE t_key_reads_restore WITH (FORCE)"
say "ok: delta rows written in another database leave the reads of one key here alone"

# --- 2. a repeatable-read transaction that saw a key's deltas keeps seeing
# them after the combiner merged them (and published its cleared id)
hold_merges $state 2
run_sql -c "INSERT INTO s SELECT 'rr', 1, i FROM generate_series(1, 5) i"
n=$(q "SELECT count(*) FROM $delta")
[ "$n" = 1 ] || fail "$n deltas, not the one of rr, are pending while the state table is locked"
psql -X -At -v ON_ERROR_STOP=1 > "$SCRATCH/rr.out" <<SQL &
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 'before ' || n FROM per_k WHERE k = 'rr';
SELECT pg_sleep(5);
SELECT 'after ' || coalesce((SELECT n FROM per_k WHERE k = 'rr')::text, 'none');
COMMIT;
SQL
rr=$!
wait_until 10 "the deltas of rr merged while a repeatable-read transaction is open" \
	"SELECT count(*) = 0 FROM $delta"
wait "$rr" || fail "the repeatable-read transaction failed: $(cat "$SCRATCH/rr.out")"
grep -qx "before 5" "$SCRATCH/rr.out" || fail "the repeatable-read transaction read: $(cat "$SCRATCH/rr.out")"
grep -qx "after 5" "$SCRATCH/rr.out" ||
	fail "after the merge, the repeatable-read transaction read: $(grep after "$SCRATCH/rr.out")"
wait_until 30 "the cleared id published once the transaction ended" \
	"SELECT NOT stream_ext_internal.delta_may_have_key('$delta', 'rr'::text)"
[ "$(q "SELECT n FROM per_k WHERE k = 'rr'")" = 5 ] || fail "rr reads $(q "SELECT n FROM per_k WHERE k = 'rr'") after the merge"
say "ok: a repeatable-read transaction read the same count of a key before and after its deltas were merged"

# a key written again after a repeatable-read snapshot was taken reads as
# maybe pending in it, and has no delta it sees: the read's own scan for the
# key (its result row's filter) finds none, and the plan's two gated scans
# of the same snapshot then do not run (src/ddl/key_memo.c)
run_sql -c "INSERT INTO s VALUES ('memo', 1, 1)"
wait_published 20 "memo merged and published as without deltas" $delta memo
psql -X -At -v ON_ERROR_STOP=1 > "$SCRATCH/memo.out" 2>&1 <<SQL || fail "the memo transaction failed: $(cat "$SCRATCH/memo.out")"
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 'snapshot ' || count(*) FROM per_k WHERE k = 'k1';
\! psql -X -q -c "INSERT INTO s VALUES ('memo', 1, 1)"
SELECT 'flagged ' || stream_ext_internal.delta_may_have_key('$delta', 'memo'::text);
SELECT pg_stat_get_xact_numscans('$delta'::regclass) AS before \gset
SELECT 'n ' || n FROM per_k WHERE k = 'memo';
SELECT 'scans ' || pg_stat_get_xact_numscans('$delta'::regclass) - :before;
COMMIT;
SQL
grep -qx "flagged true" "$SCRATCH/memo.out" || fail "a key written after the snapshot did not read as maybe pending: $(cat "$SCRATCH/memo.out")"
grep -qx "n 1" "$SCRATCH/memo.out" || fail "the snapshot saw a write after it: $(cat "$SCRATCH/memo.out")"
grep -qx "scans 1" "$SCRATCH/memo.out" ||
	fail "a read of a key with no delta its snapshot sees ran $(grep scans "$SCRATCH/memo.out") of the delta table, not 1"
[ "$(q "SELECT n FROM per_k WHERE k = 'memo'")" = 2 ] || fail "memo reads $(q "SELECT n FROM per_k WHERE k = 'memo'") after the snapshot ended, not 2"
# ... but a note of a key without deltas does not outlive a rolled back
# subtransaction that deleted them: its rows are seen again
run_sql -c "INSERT INTO s VALUES ('sx', 1, 1)"
wait_published 20 "sx merged and published as without deltas" $delta sx
hold_merges $state 4
run_sql -c "INSERT INTO s VALUES ('sx', 1, 1)"
psql -X -At -v ON_ERROR_STOP=1 > "$SCRATCH/subx.out" 2>&1 <<SQL || fail "the savepoint transaction failed: $(cat "$SCRATCH/subx.out")"
BEGIN ISOLATION LEVEL REPEATABLE READ;
SAVEPOINT a;
DELETE FROM $delta WHERE k = 'sx';
SELECT 'deleted ' || n FROM per_k WHERE k = 'sx';
ROLLBACK TO a;
SELECT 'restored ' || n FROM per_k WHERE k = 'sx';
COMMIT;
SQL
grep -qx "deleted 1" "$SCRATCH/subx.out" || fail "with its delta deleted, sx read: $(cat "$SCRATCH/subx.out")"
grep -qx "restored 2" "$SCRATCH/subx.out" ||
	fail "after the deletion of its delta was rolled back, sx read: $(cat "$SCRATCH/subx.out")"
say "ok: a read whose own scan found no delta of its key runs no gated scan of it, until a rollback shows deltas again"

# --- 3. a key written without pause never reads lower than before
cat > "$SCRATCH/hot.sql" <<'SQL'
INSERT INTO s SELECT 'hot', 2, 1 UNION ALL SELECT 'k' || (random() * 1000)::int, 2, 1;
SQL
pgbench -n -c 1 -t 400 -f "$SCRATCH/hot.sql" >/dev/null 2>&1 &
writer=$!
_bg_pids+=($writer)
run_sql <<'SQL' || fail "a read of the hot key went back"
DO $$
DECLARE last bigint := 0; n bigint; reads int := 0;
BEGIN
  LOOP
    n := coalesce((SELECT p.n FROM per_k p WHERE p.k = 'hot'), 0);
    IF n < last THEN
      RAISE EXCEPTION 'the hot key read % after %', n, last;
    END IF;
    last := n;
    reads := reads + 1;
    EXIT WHEN n = 400 OR reads > 200000;
  END LOOP;
END $$;
SQL
wait "$writer" || fail "the writer failed"
[ "$(q "SELECT n FROM per_k WHERE k = 'hot'")" = 400 ] || fail "the hot key reads $(q "SELECT n FROM per_k WHERE k = 'hot'"), not 400"
[ "$(q "SELECT sum(n) FROM per_k")" = "$(q "SELECT sum(n) FROM per_ka")" ] || fail "the two views disagree on the events counted"
say "ok: 400 one-event writes of a key read back without ever going down"

# --- 4. keys under a nondeterministic collation (equal keys of different
# bytes, hashed by their sort key), also compared with a value of another
# type of the same hash family (name); and reads that could run in parallel
run_sql <<'SQL'
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE FOREIGN TABLE s_ci (k text COLLATE ci, v int) SERVER stream_ext;
CREATE VIEW v_ci WITH (continuous) AS SELECT k, count(*) AS n FROM s_ci GROUP BY k;
INSERT INTO s_ci VALUES ('abc', 1), ('ABC', 2);
SQL
delta_ci=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'v_ci'::regclass")
state_ci=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'v_ci'::regclass")
wait_published 30 "the deltas of v_ci merged and its cleared id published" $delta_ci ABC
hold_merges $state_ci 2
run_sql -c "INSERT INTO s_ci VALUES ('aBc', 10)"
for read in "k = 'ABC'" "k = 'abc'" "k = 'ABC'::name COLLATE ci" "k = 'Abc'::varchar"; do
	n=$(q "SELECT n FROM v_ci WHERE $read")
	[ "$n" = 3 ] || fail "v_ci WHERE $read reads $n with the delta of aBc pending, not 3"
done
n=$(psql -X -qAt -c "SET force_parallel_mode = on" -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
	-c "SET min_parallel_table_scan_size = 0" -c "SELECT n FROM v_ci WHERE k = 'abc'" 2>&1)
[ "$n" = 3 ] || fail "a read of one key with force_parallel_mode reads: $n"
# a function's read of one key, planned in parallel mode (in the leader, or a worker)
n=$(psql -X -qAt -c "CREATE FUNCTION n_ci(text) RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE AS
	  \$\$BEGIN RETURN (SELECT n FROM v_ci WHERE k = \$1); END\$\$" \
	-c "SET force_parallel_mode = on" -c "SELECT n_ci('abc')" 2>&1)
[ "$n" = 3 ] || fail "a parallel-safe function's read of one key with force_parallel_mode reads: $n"
wait
say "ok: keys under a nondeterministic collation read exactly with a delta pending (text, name, varchar values), also with force_parallel_mode"

# --- 5. the combiner hashes keys (to publish how far deltas are merged) by
# their type's hash function, user code: as the view's owner, restricted
run_sql <<'SQL'
CREATE TYPE ktext;
CREATE FUNCTION ktext_in(cstring) RETURNS ktext AS 'textin' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION ktext_out(ktext) RETURNS cstring AS 'textout' LANGUAGE internal IMMUTABLE STRICT;
CREATE TYPE ktext (INPUT = ktext_in, OUTPUT = ktext_out, LIKE = text);
CREATE FUNCTION ktext_eq(ktext, ktext) RETURNS bool AS 'byteaeq' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION ktext_lt(ktext, ktext) RETURNS bool AS 'bytealt' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION ktext_le(ktext, ktext) RETURNS bool AS 'byteale' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION ktext_gt(ktext, ktext) RETURNS bool AS 'byteagt' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION ktext_ge(ktext, ktext) RETURNS bool AS 'byteage' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION ktext_cmp(ktext, ktext) RETURNS int AS 'byteacmp' LANGUAGE internal IMMUTABLE STRICT;
CREATE OPERATOR = (LEFTARG = ktext, RIGHTARG = ktext, FUNCTION = ktext_eq, HASHES, MERGES);
CREATE OPERATOR < (LEFTARG = ktext, RIGHTARG = ktext, FUNCTION = ktext_lt);
CREATE OPERATOR <= (LEFTARG = ktext, RIGHTARG = ktext, FUNCTION = ktext_le);
CREATE OPERATOR > (LEFTARG = ktext, RIGHTARG = ktext, FUNCTION = ktext_gt);
CREATE OPERATOR >= (LEFTARG = ktext, RIGHTARG = ktext, FUNCTION = ktext_ge);
CREATE OPERATOR CLASS ktext_ops DEFAULT FOR TYPE ktext USING btree AS
  OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 ktext_cmp(ktext, ktext);
-- the hash function notes who runs it, and whether it may make a temporary table
CREATE TABLE hash_calls (who name, restricted boolean, pid int);
GRANT INSERT ON hash_calls TO PUBLIC;
CREATE FUNCTION ktext_hash(ktext) RETURNS int LANGUAGE plpgsql AS $$
DECLARE restricted boolean := false;
BEGIN
  BEGIN
    CREATE TEMP TABLE IF NOT EXISTS hash_probe (x int);
  EXCEPTION WHEN insufficient_privilege OR feature_not_supported OR object_not_in_prerequisite_state THEN
    restricted := true;
  END;
  INSERT INTO public.hash_calls VALUES (current_user, restricted, pg_backend_pid());
  RETURN hashtext(public.ktext_out($1)::text);
END $$;
CREATE OPERATOR CLASS ktext_hash_ops DEFAULT FOR TYPE ktext USING hash AS
  OPERATOR 1 =, FUNCTION 1 ktext_hash(ktext);
CREATE ROLE t_key_reads_owner;
GRANT USAGE ON FOREIGN SERVER stream_ext TO t_key_reads_owner;
GRANT CREATE ON SCHEMA public TO t_key_reads_owner;
SET ROLE t_key_reads_owner;
CREATE FOREIGN TABLE s_k (k ktext, v int) SERVER stream_ext;
CREATE VIEW v_k WITH (continuous) AS SELECT k, count(*) AS n FROM s_k GROUP BY k;
INSERT INTO s_k VALUES ('a', 1), ('b', 2);
RESET ROLE;
SQL
delta_k=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'v_k'::regclass")
wait_until 30 "the deltas of v_k merged and its cleared id published" \
	"SELECT (SELECT count(*) FROM $delta_k) = 0 AND NOT stream_ext_internal.delta_may_have_key('$delta_k', 'a'::ktext)"
[ "$(q "SELECT n FROM v_k WHERE k = 'a'::ktext")" = 1 ] || fail "v_k reads $(q "SELECT n FROM v_k WHERE k = 'a'::ktext") for a"
# deltas the combiner cannot merge (their writer is still open) are hashed by its scan
psql -X -q -c "SET ROLE t_key_reads_owner" -c "BEGIN" \
	-c "INSERT INTO s_k SELECT ktext_in(('x' || i)::text::cstring), i FROM generate_series(1, 5000) i" \
	-c "SELECT pg_sleep(7)" -c "ROLLBACK" >/dev/null
run_sql -c "CREATE VIEW hash_calls_by AS SELECT h.*, a.backend_type AS process
              FROM hash_calls h JOIN pg_stat_activity a ON a.pid = h.pid"
calls=$(q "SELECT string_agg(DISTINCT process || ' as ' || who || CASE WHEN restricted THEN ', restricted' ELSE '' END, '; ')
           FROM hash_calls_by WHERE process LIKE 'stream_ext%'")
[ "$(q "SELECT count(DISTINCT process) FROM hash_calls_by WHERE process IN ('stream_ext worker', 'stream_ext combiner')
                                       AND who = 't_key_reads_owner' AND restricted")" = 2 ] ||
	fail "the key type's hash function did not run in both a worker and the combiner as the view's owner, restricted: $calls"
[ "$(q "SELECT count(*) FROM hash_calls_by WHERE process LIKE 'stream_ext%' AND (who <> 't_key_reads_owner' OR NOT restricted)")" = 0 ] ||
	fail "a background process ran the key type's hash function with other rights: $calls"
say "ok: the workers and the combiner hash a view's keys as its owner, in a security-restricted operation"

# a hash function that waits (here for a lock on the table it notes calls in)
# holds up the combiner's scan no longer than the view's time limit (2 s):
# the merges of other views go on.  A new combiner (the old one stopped)
# scans v_k's deltas of a writer still open while the lock is held.
psql -X -q -c "SET ROLE t_key_reads_owner" -c "BEGIN" \
	-c "INSERT INTO s_k SELECT ktext_in(('y' || i)::text::cstring), i FROM generate_series(1, 5000) i" \
	-c "SELECT pg_sleep(25)" -c "ROLLBACK" >/dev/null &
_bg_pids+=($!)
sleep 1
psql -X -q -c "BEGIN" -c "LOCK hash_calls IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(20)" -c "COMMIT" >/dev/null &
_bg_pids+=($!)
sleep 0.5
run_sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE backend_type = 'stream_ext combiner' AND datname = current_database()"
wait_until 15 "the new combiner's scan waits for the lock" \
	"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'stream_ext combiner'
	                AND datname = current_database() AND wait_event_type = 'Lock')"
run_sql -c "INSERT INTO s VALUES ('while_locked', 1, 1)"
wait_until 8 "per_k's delta merged while a key hash of v_k waits for a lock" "SELECT count(*) = 0 FROM $delta"
wait
say "ok: a key hash waiting for a lock in the combiner's scan did not hold up other views' merges"

# --- 6. dropped views leave room for new ones in the table of cleared ids
run_sql <<'SQL'
DO $$
BEGIN
  FOR i IN 1..130 LOOP
    EXECUTE format('CREATE VIEW many_%s WITH (continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k', i);
  END LOOP;
END $$;
CREATE FUNCTION gated_views() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM stream_ext_internal.continuous_views
   WHERE view::text LIKE 'many\_%' AND NOT stream_ext_internal.delta_may_have_key(delta_table, 'k1'::text)
$$;
SQL
wait_until 60 "the table of cleared ids full (128 entries: the other views' and the first many_ views')" \
	"SELECT gated_views() = 128 - (SELECT count(*) FROM stream_ext_internal.continuous_views
	                               WHERE view::text NOT LIKE 'many\_%')"
run_sql <<'SQL'
DO $$
BEGIN
  FOR i IN 1..130 LOOP
    EXECUTE format('DROP VIEW many_%s', i);
  END LOOP;
END $$;
CREATE VIEW fresh WITH (continuous) AS SELECT k, count(*) AS n FROM s GROUP BY k;
INSERT INTO s VALUES ('k1', 1, 1);
SQL
fresh=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'fresh'::regclass")
wait_until 60 "a view made after 130 were dropped is gated" \
	"SELECT NOT stream_ext_internal.delta_may_have_key('$fresh', 'k1'::text)"
[ "$(q "SELECT n FROM fresh WHERE k = 'k1'")" = 1 ] || fail "fresh reads $(q "SELECT n FROM fresh WHERE k = 'k1'") for k1"
say "ok: with the table of cleared ids full, the entries of dropped views make room for a new one"

[ -z "$(crash_lines "$log0")" ] || fail "a server process crashed: $(crash_lines "$log0")"
say "ok: no server process crashed"
