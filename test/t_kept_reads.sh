#!/usr/bin/env bash
# Whole-view reads of views that keep their results (src/ddl/changed_keys.c):
# while deltas are pending, a read takes each group's result row unless a
# visible delta changes the group, and combines the others.  Checked against
# the same query over a table of the same events, for keys of text (with
# NULLs), of two columns, of a composite type with NULL fields, under a
# nondeterministic collation, grouping sets, and a view whose state rows
# hold its results (count(DISTINCT)); in a plain plan and with parallel
# workers forced; through a view another role owns (the read keeps the
# anti-join: only readers of the view may call delta_changes_key), its plan
# made again when the role or the view's privileges change.
source "$(dirname "$0")/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server"
fresh_db t_kept_reads

run_sql <<'SQL'
CREATE TYPE pair AS (x text, y int);
CREATE COLLATION kr_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE FOREIGN TABLE s (k text, a int, p pair, v int) SERVER stream_ext;
CREATE TABLE ref (k text, a int, p pair, v int);
SQL
# each view, and its query over the table ref ('%s' stands for the source)
declare -A QUERY=(
	[text]="SELECT k, count(*) AS n, sum(v) AS total FROM %s GROUP BY k"
	[two]="SELECT a, k, count(*) AS n FROM %s GROUP BY a, k"
	[pair]="SELECT p, count(*) AS n FROM %s GROUP BY p"
	[ci]="SELECT k COLLATE kr_ci AS kc, count(*) AS n FROM %s GROUP BY 1"
	[cube]="SELECT a, k, count(*) AS n, sum(v) AS total FROM %s GROUP BY CUBE (a, k)"
	[distinct]="SELECT k, count(DISTINCT v) AS d FROM %s GROUP BY k"
)
# what a read compares: every column as text (the ci view's key as its
# lower case, since either of two equal keys may name the group)
declare -A READ=(
	[text]="SELECT k, n, total FROM %s"
	[two]="SELECT a, k, n FROM %s"
	[pair]="SELECT p::text, n FROM %s"
	[ci]="SELECT lower(kc), n FROM %s"
	[cube]="SELECT a, k, n, total FROM %s"
	[distinct]="SELECT k, d FROM %s"
)
for name in "${!QUERY[@]}"; do
	# shellcheck disable=SC2059
	run_sql -c "CREATE VIEW v_$name WITH (continuous) AS $(printf "${QUERY[$name]}" s)" \
		-c "CREATE VIEW r_$name AS $(printf "${QUERY[$name]}" ref)"
done

events() { # events FROM TO: rows i in [FROM, TO], NULLs among them
	echo "SELECT CASE WHEN i % 17 = 0 THEN NULL ELSE (ARRAY['k', 'K', 'm'])[i % 3 + 1] || (i % 40) END,
	             i % 5, CASE WHEN i % 13 = 0 THEN NULL ELSE ROW(CASE WHEN i % 7 = 0 THEN NULL ELSE 'x' || (i % 9) END, i % 4)::pair END,
	             i FROM generate_series($1, $2) i"
}
run_sql -c "INSERT INTO s $(events 1 2000)" -c "INSERT INTO ref $(events 1 2000)"
create_pending_deltas
wait_until 30 "the first events merged" "SELECT pending_deltas() = 0"

# compare: every view against its reference, as the current settings read
compare() { # compare WHAT [SETTINGS...]
	local what=$1 name out
	shift
	for name in "${!QUERY[@]}"; do
		# shellcheck disable=SC2059
		out=$(psql -X -qAt -v ON_ERROR_STOP=1 "$@" -c "SELECT count(*) FROM (
			$(printf "${READ[$name]}" "v_$name") EXCEPT ALL $(printf "${READ[$name]}" "r_$name")) x" \
			-c "SELECT count(*) FROM ($(printf "${READ[$name]}" "r_$name") EXCEPT ALL
			$(printf "${READ[$name]}" "v_$name")) x" 2>&1 | tr '\n' ' ')
		[ "$out" = "0 0 " ] || fail "$what: v_$name differs from its query (view only, query only): $out"
	done
}
compare "merged"

# --- 1. deltas pending (the merges held back by a lock on the state tables):
# new groups, groups with result rows, NULL keys
locks=$(q "SELECT string_agg(state_table::text, ', ') FROM stream_ext_internal.continuous_views")
psql -X -q -c "SET application_name = 'kr_locker'" -c "BEGIN" -c "LOCK $locks IN EXCLUSIVE MODE" \
	-c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
_bg_pids+=($!)
wait_until 10 "the state tables locked" "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'kr_locker' AND wait_event = 'PgSleep'"
run_sql -c "INSERT INTO s $(events 1500 2600)" -c "INSERT INTO ref $(events 1500 2600)"
[ "$(q "SELECT pending_deltas() > 0")" = t ] || fail "no deltas pending while the state tables are locked"
plan=$(psql -X -At -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM v_text")
grep -q "Filter: (NOT stream_ext_internal.delta_changes_key(" <<< "$plan" ||
	fail "a whole read of v_text does not filter its result rows: $plan"
grep -q "Anti Join" <<< "$plan" && fail "a whole read of v_text by its owner anti-joins its result rows: $plan"
compare "deltas pending"
# reads of one group: those with pending deltas scan the deltas for their key
for key in k1 K2 m3 k39 K40 new; do
	[ "$(q "SELECT n || ' ' || total FROM v_text WHERE k = '$key'")" = \
		"$(q "SELECT n || ' ' || total FROM r_text WHERE k = '$key'")" ] ||
		fail "v_text of $key reads $(q "SELECT n || ' ' || total FROM v_text WHERE k = '$key'") with deltas pending"
done
compare "deltas pending, parallel workers forced" -c "SET force_parallel_mode = on" \
	-c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0" \
	-c "SET max_parallel_workers_per_gather = 2"
say "ok: 6 views (text with NULLs, two keys, composite, nondeterministic collation, CUBE, count DISTINCT) read as their query with deltas pending, also in parallel workers"

# --- 2. through a view another role owns: the reader may not call
# delta_changes_key, and its read anti-joins instead; the plan follows the
# role, and the view's privileges
run_sql <<'SQL'
CREATE ROLE kr_mid;
CREATE ROLE kr_low;
GRANT USAGE ON SCHEMA public TO kr_mid, kr_low;
GRANT CREATE ON SCHEMA public TO kr_mid;
GRANT SELECT ON v_text TO kr_mid;
GRANT SELECT ON r_text TO kr_low;
SET ROLE kr_mid;
CREATE VIEW mid AS SELECT k, n, total FROM v_text;
GRANT SELECT ON mid TO kr_low;
RESET ROLE;
SQL
out=$(psql -X -qAt -c "SET ROLE kr_low" -c "SELECT count(*) FROM (SELECT * FROM mid EXCEPT ALL SELECT * FROM r_text) x" \
	-c "SELECT count(*) FROM (SELECT * FROM r_text EXCEPT ALL SELECT * FROM mid) x" 2>&1 | tr '\n' ' ')
[ "$out" = "0 0 " ] || fail "a read through another role's view differs from the query: $out"
plan=$(psql -X -qAt -c "SET ROLE kr_low" -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM mid")
grep -q "Anti Join" <<< "$plan" || fail "a read through another role's view does not anti-join: $plan"
grep -q "delta_changes_key" <<< "$plan" && fail "a read through another role's view calls delta_changes_key: $plan"
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'v_text'::regclass")
err=$(psql -X -qAt -c "SET ROLE kr_low" -c "SELECT stream_ext_internal.delta_changes_key('$delta', '{2}', 'k1'::text)" 2>&1 || true)
grep -q "permission denied for view v_text" <<< "$err" ||
	fail "a role that may not read the view called delta_changes_key: $err"
# a prepared read of mid: kr_mid's plan filters, kr_low's anti-joins, and
# after GRANT SELECT ON v_text TO kr_low, kr_low's filters too
plans() { # plans ROLE: what EXPLAIN EXECUTE of the prepared read shows, as the role
	psql -X -qAt -v ON_ERROR_STOP=1 -c "SET plan_cache_mode = force_generic_plan" -c "SET ROLE kr_mid" \
		-c "PREPARE r AS SELECT count(*) FROM mid" -c "EXECUTE r" -c "EXPLAIN (COSTS OFF) EXECUTE r" \
		-c "SET ROLE $1" -c "EXECUTE r" -c "EXPLAIN (COSTS OFF) EXECUTE r" 2>&1
}
out=$(plans kr_low || true)
[ "$(grep -c "delta_changes_key" <<< "$out")" = 1 ] && [ "$(grep -c "Anti Join" <<< "$out")" = 1 ] ||
	fail "a prepared read of mid planned as kr_mid, then executed as kr_low: $out"
n=$(q "SELECT count(*) FROM r_text")
[ "$(grep -cx "$n" <<< "$out")" = 2 ] || fail "the prepared read of mid counted, as kr_mid and kr_low: $out (not $n)"
run_sql -c "GRANT SELECT ON v_text TO kr_low"
out=$(plans kr_low || true)
[ "$(grep -c "delta_changes_key" <<< "$out")" = 2 ] ||
	fail "after GRANT SELECT on the view, kr_low's read of mid does not filter: $out"
# a cursor a reader opened answers whoever fetches from it (privileges are
# checked when the read is planned, as a table's when the query starts): a
# role that may not read the view fetches from the owner's cursor, and from
# one a SECURITY DEFINER function of the owner opened
run_sql <<SQL
CREATE ROLE kr_none;
GRANT USAGE, CREATE ON SCHEMA public TO kr_none;
CREATE FUNCTION open_text() RETURNS refcursor LANGUAGE plpgsql SECURITY DEFINER AS \$\$
DECLARE c refcursor := 'c_text';
BEGIN
  OPEN c FOR SELECT count(*) FROM v_text;
  RETURN c;
END \$\$;
CREATE FUNCTION probe(key text) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
  RETURN stream_ext_internal.delta_changes_key('$delta', '{2}', key);
END \$\$;
SET ROLE kr_none;
CREATE FUNCTION none_probe() RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS \$\$
BEGIN
  RETURN probe('k1');
END \$\$;
RESET ROLE;
SQL
out=$(psql -X -qAt -c "BEGIN" -c "DECLARE c CURSOR FOR SELECT count(*) FROM v_text" -c "SET ROLE kr_none" \
	-c "FETCH ALL FROM c" -c "COMMIT" 2>&1 || true)
[ "$out" = "$n" ] || fail "a role fetching from the owner's cursor over v_text got: $out (not $n)"
out=$(psql -X -qAt -c "SET ROLE kr_none" -c "BEGIN" -c "SELECT open_text()" -c "FETCH ALL FROM c_text" -c "COMMIT" 2>&1 || true)
[ "$out" = "$(printf 'c_text\n%s' "$n")" ] ||
	fail "a role fetching from a cursor a SECURITY DEFINER function of the owner opened got: $out"
# a call site kept across roles in one transaction (PL/pgSQL) answers each
# role as it may: the owner's call does not open it to kr_none's code
out=$(psql -X -qAt -c "BEGIN" -c "SELECT probe('k1')" -c "SELECT none_probe()" -c "COMMIT" 2>&1 || true)
grep -q "permission denied for view v_text" <<< "$out" ||
	fail "after the owner's call, kr_none's function called delta_changes_key: $out"
say "ok: a read through another role's view anti-joins, exactly; direct calls are refused; plans follow the role and GRANT; cursors answer who fetches"

# --- 3. the merges go on: the same reads once every delta is merged
run_sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kr_locker'"
wait_until 30 "the pending deltas merged" "SELECT pending_deltas() = 0"
compare "merged again"
say "ok: the views read as their query once the deltas are merged"
