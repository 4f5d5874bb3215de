#!/usr/bin/env bash
# Temporary files of a view's run in a batch worker (work_mem = 64kB, so
# that sorts go to disk, and temp_file_limit = 1MB).
#   1. An event whose run alone reaches temp_file_limit (53400) costs that
#      event for that view, recorded, and nothing else: the writer's INSERT
#      returns, the view's other events and the other views count.  (53400
#      was taken for a transient error of the batch: the batch was applied
#      again and again, reaching the limit at every try, and every writer
#      of the queue waited until its statement_timeout.)
#   2. A batch whose events reach the limit only together (a sort of all of
#      them) is applied in parts: every event counts, nothing is recorded.
#      (Searching it for a culprit blamed innocent events one by one, then
#      skipped the batch.)
#   3. A sort under an aggregate that went to disk closes its files in the
#      batch's transaction: no "temporary file leak" at commit.  (A kept
#      executor rescanned it at the next batch only; the commit closed its
#      files under it.)
source "$(dirname "$0")/lib.sh"

use_server
fresh_db t_temp_files
t0=$SECONDS
set_server_setting temp_file_limit 1024
set_server_setting work_mem 64

run_sql <<'SQL'
CREATE FOREIGN TABLE tf (k int, n int, p text) SERVER stream_ext;
-- n rows, sorted: past work_mem the sort goes to a temporary file
CREATE FUNCTION public.tf_rows(n int) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE c bigint;
BEGIN
  SELECT count(*) INTO c FROM (SELECT g FROM generate_series(1, n) g ORDER BY g DESC) s;
  RETURN c;
END $$;
CREATE FUNCTION public.tf_setting() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT current_setting('temp_file_limit') || ' ' || current_setting('work_mem') $$;
CREATE VIEW tf_sum WITH (continuous) AS SELECT k, count(*) AS n, sum(public.tf_rows(n)) AS s FROM tf GROUP BY k;
CREATE VIEW tf_all WITH (continuous) AS SELECT count(*) AS n, max(public.tf_setting()) AS setting FROM tf;
CREATE VIEW tf_distinct WITH (continuous) AS SELECT k, count(*) AS n, count(DISTINCT p) AS d FROM tf GROUP BY k;
SQL

# the workers have the settings once a probe event's view says so
for _ in $(seq 1 300); do
	q "INSERT INTO tf VALUES (0, 1, 'probe')" >/dev/null
	[ "$(q "SELECT setting FROM tf_all")" = "1MB 64kB" ] && break
	sleep 0.1
done
expect "SELECT setting FROM tf_all" "1MB 64kB" "the workers run with temp_file_limit = 1MB, work_mem = 64kB"
probes=$(q "SELECT n FROM tf_all")
log0=$(log_offset)

# --- 1. one event over the limit
out=$(psql -X -At -v ON_ERROR_STOP=1 -c "SET statement_timeout = '60s'" \
	-c "INSERT INTO tf VALUES (1, 10, 'a'), (1, 3000000, 'b'), (2, 20, 'c'), (3, 5, 'd')" 2>&1) ||
	fail "the writer's INSERT failed: $out"
say "ok: the INSERT with an event over temp_file_limit returned"
expect "SELECT string_agg(k || ':' || n || ':' || s, ' ' ORDER BY k) FROM tf_sum WHERE k > 0" \
	"1:1:10 2:1:20 3:1:5" "the view counts its other events"
expect "SELECT n - $probes FROM tf_all" 4 "the other views count every event"
expect "SELECT sqlstate || ' ' || (event LIKE '(1,3000000,b,%') FROM stream_ext.view_errors WHERE name = 'tf_sum'::regclass" \
	"53400 true" "the event over the limit is recorded for the view"

# --- 2. a batch over the limit only together: 20,000 events of 512 bytes
# sorted for count(DISTINCT p) by the view's run (a few thousand of them
# reach the limit, as this query shows)
out=$(psql -X -At -c "SET work_mem = '64kB'" -c "SET temp_file_limit = '1MB'" \
	-c "SELECT count(DISTINCT p) FROM (SELECT repeat(md5(g::text), 16) AS p FROM generate_series(1, 3000) g) s" 2>&1 || true)
grep -q "temporary file size exceeds temp_file_limit" <<< "$out" ||
	fail "3,000 such events do not reach temp_file_limit: the test proves nothing ($out)"
t=$SECONDS
out=$(psql -X -At -v ON_ERROR_STOP=1 -c "SET statement_timeout = '120s'" \
	-c "INSERT INTO tf SELECT 10 + g % 3, 1, repeat(md5(g::text), 16) FROM generate_series(1, 20000) g" 2>&1) ||
	fail "the writer's INSERT of 20,000 events failed: $out"
say "the INSERT of 20,000 events whose sort reaches the limit took $((SECONDS - t)) s"
expect "SELECT sum(n) || ' ' || sum(d) FROM tf_distinct WHERE k >= 10" "20000 20000" \
	"count(DISTINCT) counts every event, each once"
expect "SELECT sum(n) FROM tf_sum WHERE k >= 10" 20000 "so does the other view"
expect "SELECT count(*) FROM stream_ext.view_errors" 1 "nothing recorded but the event of part 1"

# --- 3. no temporary file outlives its batch: batches of 1,000 such events
# (their sort goes to disk, under the limit) in the views' kept executors
log0=$(log_offset)
for i in 1 2 3 4 5; do
	q "INSERT INTO tf SELECT 30 + g % 3, 1, repeat(md5((g * $i)::text), 16) FROM generate_series(1, 1000) g" >/dev/null
done
expect "SELECT sum(n) FROM tf_distinct WHERE k >= 30" 5000 "batches that sort on disk count every event"
leaks=$(log_since "$log0" | grep -c "temporary file leak" || true)
[ "$leaks" -eq 0 ] || fail "$leaks temporary files were still open at a batch's commit"
say "ok: no temporary file leak at commit"
say "PASS ($((SECONDS - t0))s)"
