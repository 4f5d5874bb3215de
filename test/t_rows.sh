#!/usr/bin/env bash
# Row-keeping continuous views (no aggregates): differential and volume test.
#   - CLIENTS psql clients write transactions into stream clicks and the same
#     rows into plain table clicks_ref, in the same transaction: INSERT ...
#     SELECT, COPY, multi-statement transactions, every fifth rolled back,
#     every fourth with a rolled back savepoint.  Each view must equal its
#     defining query over clicks_ref (joined with users, a WHERE, expressions,
#     a LEFT join with missing and NULL keys), row for row, while rows are
#     pending and after the combiner moved them all;
#   - ttl: rows older than the ttl are hidden at once, and the combiner's
#     reaper deletes them in the background;
#   - an index made by CREATE INDEX ON the view is chosen by the planner for
#     WHERE url = ... over 300,000 kept rows, without any planner setting.
source "$(dirname "$0")/lib.sh"
CLIENTS=${CLIENTS:-4} TXNS=${TXNS:-60}
use_server
fresh_db t_rows
run_sql -f "$TEST_DIR/diff_view.sql"
create_pending_deltas
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE TABLE clicks_ref (url text, user_id bigint, latency float8, ts timestamptz);
CREATE TABLE users (id bigint PRIMARY KEY, country text);
INSERT INTO users SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE 'c' || (i % 7) END
  FROM generate_series(1, 900) i;
-- the README's example
CREATE VIEW slow_recent WITH (continuous, ttl = '1 hour', ttl_column = 'ts') AS
  SELECT c.ts, c.url, c.latency, u.country FROM clicks c JOIN users u ON u.id = c.user_id
  WHERE c.latency > 500;
-- every event: expressions, a LEFT join (ids up to 1000, some NULL)
CREATE VIEW every_click (ts, path, band, country) WITH (continuous) AS
  SELECT c.ts, upper(c.url), floor(c.latency / 100)::int, coalesce(u.country, '-')
    FROM clicks c LEFT JOIN users u ON u.id = c.user_id;
CREATE VIEW slow_recent_ref AS
  SELECT c.ts, c.url, c.latency, u.country FROM clicks_ref c JOIN users u ON u.id = c.user_id
  WHERE c.latency > 500 AND c.ts > stream_ext.read_time() - interval '1 hour';
CREATE VIEW every_click_ref AS
  SELECT c.ts, upper(c.url), floor(c.latency / 100)::int, coalesce(u.country, '-')
    FROM clicks_ref c LEFT JOIN users u ON u.id = c.user_id;
SQL

# events_sql ID N: N events of transaction ID (ts within the last half hour)
events_sql() {
	printf "SELECT '/p/' || ((%s * 31 + g) %% 997), CASE WHEN g %% 13 = 0 THEN NULL ELSE (g * 7 + %s) %% 1000 END, ((g * 37 + %s) %% 1000)::float8, now() - ((g %% 1800) * interval '1 second') FROM generate_series(1, %s) g" "$1" "$1" "$1" "$2"
}

# client_sql CLIENT: TXNS transactions, each writing the stream and the reference
client_sql() {
	local n id size ev i
	for n in $(seq 1 "$TXNS"); do
		id=$(($1 * 100000 + n)); size=$((5 + (n * 17) % 200))
		ev=$(events_sql "$id" "$size")
		echo "BEGIN;"
		if [ $((n % 3)) = 1 ]; then
			# COPY: the same rows, generated once
			q "COPY ($ev) TO STDOUT" > "$SCRATCH/copy-$1.tsv"
			echo "COPY clicks FROM STDIN;"; cat "$SCRATCH/copy-$1.tsv"; echo '\.'
			echo "COPY clicks_ref FROM STDIN;"; cat "$SCRATCH/copy-$1.tsv"; echo '\.'
		else
			echo "INSERT INTO clicks $ev; INSERT INTO clicks_ref $ev;"
		fi
		if [ $((n % 4)) = 0 ]; then
			ev=$(events_sql $((id + 50000)) 20)
			echo "SAVEPOINT s; INSERT INTO clicks $ev; INSERT INTO clicks_ref $ev; ROLLBACK TO SAVEPOINT s;"
		fi
		if [ $((n % 5)) = 0 ]; then echo "ROLLBACK;"; else echo "COMMIT;"; fi
	done
}

compare() {  # compare LABEL
	local v diffs
	for v in slow_recent every_click; do
		diffs=$(q "SELECT count(*) || ' differences, e.g. ' || coalesce(string_agg(side || ' ' || r, '; ') FILTER (WHERE rn <= 3), '')
		             FROM (SELECT *, row_number() OVER () AS rn FROM diff_view('$v', 'SELECT * FROM ${v}_ref')) d")
		case "$diffs" in
		"0 differences"*) ;;
		*) fail "$1: $v differs from its query over clicks_ref: $diffs" ;;
		esac
	done
	say "ok: $1: slow_recent ($(q "SELECT count(*) FROM slow_recent") rows) and every_click" \
		"($(q "SELECT count(*) FROM every_click") rows) equal their queries over the same events"
}

say "$CLIENTS clients, $TXNS transactions each"
pids=()
for c in $(seq 1 "$CLIENTS"); do
	client_sql "$c" | psql -X -q -o /dev/null -v ON_ERROR_STOP=1 >"$SCRATCH/client-$c.err" 2>&1 &
	pids+=($!)
	_bg_pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a client failed: $(cat "$SCRATCH"/client-*.err)"; done
[ "$(q "SELECT count(*) FROM clicks_ref")" -gt 0 ] || fail "no events"
compare "after the clients committed (rows pending: $(q "SELECT pending_deltas()"))"
wait_until 60 "the combiner moved every row" "SELECT pending_deltas() = 0"
compare "after the combiner moved every row"
[ "$(q "SELECT errors FROM stream_ext.view_stats WHERE name = 'slow_recent'::regclass")" = 0 ] ||
	fail "view_stats counts errors"

say "ttl: rows older than an hour are hidden at once and reaped in the background"
old=$(events_sql 7 500 | sed "s/now() - /now() - interval '2 hours' - /")
run_sql -c "BEGIN" -c "INSERT INTO clicks $old" -c "INSERT INTO clicks_ref $old" -c "COMMIT"
compare "after events two hours old"
state=$(q "SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'slow_recent'::regclass")
wait_until 60 "the reaper deleted the expired rows" \
	"SELECT pending_deltas() = 0 AND NOT EXISTS (SELECT FROM $state WHERE ts <= now() - interval '1 hour')"
compare "after the reaper ran"
say "ok: expired rows hidden at once, deleted by the reaper"

say "index: 300,000 kept rows, CREATE INDEX ON slow_recent (url)"
run_sql <<'SQL'
INSERT INTO clicks SELECT '/bulk/' || (g % 5000), 1 + g % 900, 501 + g % 400, now() - (g % 600) * interval '1 second'
  FROM generate_series(1, 300000) g;
INSERT INTO clicks VALUES ('/checkout', 1, 900, now());
CREATE INDEX ON slow_recent (url);
SQL
wait_until 120 "the combiner moved the bulk rows" "SELECT pending_deltas() = 0"
plan_uses_index="SELECT bool_or(p LIKE '%slow_recent_url_idx%') FROM (SELECT * FROM
  plan_of('SELECT * FROM slow_recent WHERE url = ''/checkout'' ORDER BY ts DESC LIMIT 20')) e(p)"
run_sql <<'SQL'
CREATE FUNCTION plan_of(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN ' || query LOOP RETURN NEXT line; END LOOP;
END $$;
SQL
try_wait 60 "the planner uses slow_recent_url_idx" "$plan_uses_index" || {
	q "SELECT * FROM plan_of('SELECT * FROM slow_recent WHERE url = ''/checkout'' ORDER BY ts DESC LIMIT 20')"
	fail "the index is not used"
}
[ "$(q "SELECT count(*) FROM slow_recent WHERE url = '/checkout'")" = 1 ] || fail "the indexed read"
q "SELECT * FROM plan_of('SELECT * FROM slow_recent WHERE url = ''/checkout'' ORDER BY ts DESC LIMIT 20')" |
	sed "s/^/[$TEST_NAME]   /"
say "ok: WHERE url = ... on $(q "SELECT count(*) FROM slow_recent") kept rows uses the view's index"
say "PASS ($((SECONDS - t0))s)"
