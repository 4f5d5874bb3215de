#!/usr/bin/env bash
# Differential test of stream-table joins: continuous views joining stream
# clicks with tables must equal the same queries run over a plain table that
# received the same events, joined with the tables as they were when those
# events were applied.
#
# Tables: users (partitioned by range of id, primary key), pages (a view over
# table pages_t), tags (several rows per url), bands (a range join), regions
# (a foreign table of file_fdw).  Events
# have NULL keys and keys missing from the tables (INNER drops them, LEFT
# keeps them) and go in by INSERT ... SELECT, COPY, small transactions, a
# rolled back transaction and a rolled back savepoint.
#   epoch 1: events with the tables as created; compared
#   epoch 2: users and pages changed (rows updated, deleted, added), more
#            events; compared: epoch 1 events keep what they were joined
#            with, epoch 2 events see the change
#   epoch 3: DDL on the joined tables (indexes, columns, the view
#            redefined) while events arrive; compared, no view errors
# The reference keeps each epoch's tables in users_hist and pages_hist and
# joins each event with the rows of its epoch.
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_joins
run_sql -f "$TEST_DIR/diff_view.sql"

say "setting up stream clicks, tables, reference and views"
run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8) SERVER stream_ext;
CREATE TABLE clicks_ref (epoch int, url text, user_id bigint, latency float8);
CREATE UNLOGGED TABLE batch (seq int, url text, user_id bigint, latency float8);

CREATE TABLE users (id bigint PRIMARY KEY, country text, plan text) PARTITION BY RANGE (id);
CREATE TABLE users_low PARTITION OF users FOR VALUES FROM (MINVALUE) TO (500);
CREATE TABLE users_high PARTITION OF users FOR VALUES FROM (500) TO (MAXVALUE);
INSERT INTO users SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE 'c' || (i % 7) END,
                         (ARRAY['free', 'pro', 'team'])[1 + i % 3]
  FROM generate_series(1, 1000) i;
CREATE TABLE pages_t (url text PRIMARY KEY, category text, hidden bool NOT NULL DEFAULT false);
INSERT INTO pages_t SELECT '/p' || i, CASE WHEN i % 9 = 0 THEN NULL ELSE 'cat' || (i % 4) END, i % 13 = 0
  FROM generate_series(0, 49) i;
CREATE VIEW pages AS SELECT url, category FROM pages_t WHERE NOT hidden;
CREATE TABLE tags (url text, tag text);
INSERT INTO tags SELECT '/p' || i, 't' || j FROM generate_series(0, 59) i, generate_series(1, 3) j WHERE j <= i % 4;
CREATE INDEX ON tags (url);
CREATE TABLE bands (lo float8, hi float8, name text);
INSERT INTO bands VALUES (0, 10, 'fast'), (10, 50, 'ok'), (40, 80, 'slow'), (80, 'Infinity', 'very slow');
ANALYZE users, pages_t, tags, bands;
-- a foreign table (file_fdw), and the same rows in a plain table for the reference
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE TABLE regions_ref (country text, region text);
INSERT INTO regions_ref SELECT 'c' || i, CASE WHEN i < 3 THEN 'north' ELSE 'south' END FROM generate_series(0, 5) i;
SQL
q "COPY regions_ref TO STDOUT (FORMAT csv)" > "$SCRATCH/regions.csv"
chmod 644 "$SCRATCH/regions.csv"
run_sql <<SQL
CREATE FOREIGN TABLE regions (country text, region text) SERVER files
  OPTIONS (filename '$SCRATCH/regions.csv', format 'csv');
SQL
run_sql <<'SQL'

CREATE TABLE users_hist (epoch int, id bigint, country text, plan text);
CREATE TABLE pages_hist (epoch int, url text, category text);
CREATE FUNCTION snapshot_tables(e int) RETURNS void LANGUAGE sql AS $$
  INSERT INTO users_hist SELECT e, * FROM users;
  INSERT INTO pages_hist SELECT e, * FROM pages;
$$;

-- gen(n, seed): n deterministic random events into batch
CREATE FUNCTION gen(cnt int, seed float8) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM setseed(seed);
  TRUNCATE batch;
  INSERT INTO batch
  SELECT i,
    CASE WHEN random() < 0.05 THEN NULL ELSE '/p' || floor(random() * 60)::int END,
    CASE WHEN random() < 0.05 THEN NULL ELSE floor(random() * 1110)::bigint - 5 END,
    CASE WHEN random() < 0.05 THEN NULL ELSE random() * 100 END
  FROM generate_series(1, cnt) i;
END $$;

-- {S} the stream or the reference table, {users} and {pages} the tables or
-- their history, {eu} and {ep} the history's epoch conditions
CREATE TABLE cases (name text PRIMARY KEY, q text);
INSERT INTO cases VALUES
('j_inner', $q$SELECT u.country, count(*) AS n, sum(c.latency) AS s, avg(c.latency) AS a
   FROM {S} c JOIN {users} u ON u.id = c.user_id {eu} GROUP BY u.country$q$),
('j_readme', $q$SELECT u.country, p.category, count(*) AS n, avg(c.latency) AS a
   FROM {S} c JOIN {users} u ON u.id = c.user_id {eu} LEFT JOIN {pages} p ON p.url = c.url {ep}
   GROUP BY 1, 2$q$),
('j_left_pages', $q$SELECT p.category, c.url IS NULL AS no_url, count(*) AS n, count(p.url) AS matched,
   max(c.latency) AS mx FROM {S} c LEFT JOIN {pages} p ON p.url = c.url {ep} GROUP BY 1, 2$q$),
('j_left_users', $q$SELECT u.plan, count(*) AS n, count(u.id) AS matched, sum(c.user_id) AS su
   FROM {S} c LEFT JOIN {users} u ON u.id = c.user_id {eu} GROUP BY 1$q$),
('j_multi', $q$SELECT t.tag, p.category, count(*) AS n, sum(c.latency) AS s
   FROM {S} c JOIN tags t ON t.url = c.url LEFT JOIN {pages} p ON p.url = t.url {ep} GROUP BY 1, 2$q$),
('j_where', $q$SELECT u.country, u.plan, count(*) AS n, min(c.latency) AS mn
   FROM {S} c, {users} u WHERE u.id = c.user_id {eu} AND u.plan <> 'free' AND c.latency > 10
   GROUP BY 1, 2$q$),
('j_band', $q$SELECT b.name, count(*) AS n, avg(c.latency) AS a
   FROM {S} c LEFT JOIN bands b ON c.latency >= b.lo AND c.latency < b.hi GROUP BY 1$q$),
('j_foreign', $q$SELECT f.region, u.plan, count(*) AS n, sum(c.latency) AS s
   FROM {S} c JOIN {users} u ON u.id = c.user_id {eu} LEFT JOIN {regions} f ON f.country = u.country
   GROUP BY 1, 2$q$),
('j_global', $q$SELECT count(*) AS n, count(p.url) AS np, sum(u.id) AS su
   FROM {S} c JOIN {users} u ON u.id = c.user_id {eu} LEFT JOIN {pages} p ON p.url = c.url {ep}$q$);

CREATE FUNCTION view_sql(q text) RETURNS text LANGUAGE sql AS $$
  SELECT replace(replace(replace(replace(replace(replace(q, '{S}', 'clicks'), '{users}', 'users'),
                 '{pages}', 'pages'), '{eu}', ''), '{ep}', ''), '{regions}', 'regions')
$$;
CREATE FUNCTION ref_sql(q text) RETURNS text LANGUAGE sql AS $$
  SELECT replace(replace(replace(replace(replace(replace(q, '{S}', 'clicks_ref'), '{users}', 'users_hist'),
                 '{pages}', 'pages_hist'), '{eu}', 'AND u.epoch = c.epoch'), '{ep}', 'AND p.epoch = c.epoch'),
                 '{regions}', 'regions_ref')
$$;

CREATE FUNCTION check_all() RETURNS TABLE (view text, view_rows bigint, ref_rows bigint, diffs bigint, examples text)
LANGUAGE plpgsql AS $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    view := c.name;
    SELECT * INTO view_rows, ref_rows, diffs, examples FROM compare_view(c.name, ref_sql(c.q));
    RETURN NEXT;
  END LOOP;
END $$;

DO $$
DECLARE c record;
BEGIN
  FOR c IN SELECT * FROM cases ORDER BY name LOOP
    EXECUTE format('CREATE VIEW %I WITH (continuous) AS %s', c.name, view_sql(c.q));
  END LOOP;
END $$;
SQL
nviews=$(q "SELECT count(*) FROM cases")
say "$nviews views created"

failures=()
compare() {
	local label=$1 bad
	bad=$(q "SELECT string_agg(format(E'  %s: %s differing rows (view %s rows, reference %s rows)\n    %s',
	                  view, diffs, view_rows, ref_rows, replace(examples, E'\n', E'\n    ')), E'\n')
	           FROM check_all() WHERE diffs <> 0")
	if [ -n "$bad" ]; then
		echo "[$TEST_NAME] $label: views differing from the reference queries:"
		echo "$bad"
		failures+=("$label")
	fi
	say "$label: compared $nviews views over $(q "SELECT count(*) FROM clicks_ref") events"
}

send_epoch() {  # send_epoch EPOCH SEED: events by every path, into clicks and clicks_ref
	local e=$1 seed=$2
	q "SELECT gen(3000, $seed)" >/dev/null
	run_sql <<SQL
INSERT INTO clicks SELECT url, user_id, latency FROM batch WHERE seq <= 1000;
INSERT INTO clicks_ref SELECT $e, url, user_id, latency FROM batch WHERE seq <= 1000;
BEGIN;
INSERT INTO clicks SELECT url, user_id, latency FROM batch WHERE seq <= 500;
ROLLBACK;
BEGIN;
INSERT INTO clicks SELECT url, user_id, latency FROM batch WHERE seq BETWEEN 1001 AND 1200;
SAVEPOINT s;
INSERT INTO clicks SELECT url, user_id, latency FROM batch WHERE seq BETWEEN 1201 AND 1400;
ROLLBACK TO SAVEPOINT s;
COMMIT;
INSERT INTO clicks_ref SELECT $e, url, user_id, latency FROM batch WHERE seq BETWEEN 1001 AND 1200;
DO \$\$
BEGIN
  FOR i IN 0..19 LOOP  -- small transactions: many small batches
    INSERT INTO clicks SELECT url, user_id, latency FROM batch WHERE seq BETWEEN 1401 + i * 10 AND 1410 + i * 10;
    COMMIT;
  END LOOP;
END \$\$;
INSERT INTO clicks_ref SELECT $e, url, user_id, latency FROM batch WHERE seq BETWEEN 1401 AND 1600;
SQL
	psql -X -q -v ON_ERROR_STOP=1 -c "COPY (SELECT url, user_id, latency FROM batch WHERE seq > 1600 ORDER BY seq) TO STDOUT (FORMAT csv)" |
		psql -X -q -v ON_ERROR_STOP=1 -c "COPY clicks FROM STDIN (FORMAT csv)"
	q "INSERT INTO clicks_ref SELECT $e, url, user_id, latency FROM batch WHERE seq > 1600" >/dev/null
}

say "epoch 1: the tables as created"
q "SELECT snapshot_tables(1)" >/dev/null
send_epoch 1 0.25
compare "epoch 1"

say "epoch 2: users and pages changed, then more events"
run_sql <<'SQL'
UPDATE users SET country = 'moved' WHERE id % 10 = 3;
UPDATE users SET id = id + 2000 WHERE id BETWEEN 480 AND 520;   -- across partitions, keys now missing
DELETE FROM users WHERE id % 17 = 0;
INSERT INTO users SELECT i, 'new', 'pro' FROM generate_series(1001, 1104) i;  -- keys missing before
UPDATE pages_t SET category = 'changed' WHERE url IN ('/p1', '/p2', '/p3');
UPDATE pages_t SET hidden = NOT hidden WHERE url IN ('/p13', '/p4');
INSERT INTO pages_t SELECT '/p' || i, 'late' FROM generate_series(50, 54) i;
SELECT snapshot_tables(2);
SQL
send_epoch 2 0.5
compare "epoch 2"

say "epoch 3: DDL on the joined tables while events arrive (the data unchanged)"
q "SELECT snapshot_tables(3)" >/dev/null
send_epoch 3 0.75 &
sender=$!
_bg_pids+=($sender)
for round in 1 2 3; do
	run_sql <<'SQL'
CREATE INDEX users_country ON users (country);
ALTER TABLE pages_t ADD COLUMN extra int;
DROP INDEX tags_url_idx;
ANALYZE users, tags;
CREATE OR REPLACE VIEW pages AS SELECT url, category FROM pages_t WHERE NOT hidden;
ALTER TABLE users ADD COLUMN extra int;
SELECT pg_sleep(0.2);
DROP INDEX users_country;
ALTER TABLE pages_t DROP COLUMN extra;
CREATE INDEX tags_url_idx ON tags (url);
ALTER TABLE users DROP COLUMN extra;
SELECT pg_sleep(0.2);
SQL
done
wait "$sender" || fail "sending epoch 3 failed"
compare "epoch 3"

say "a joined table reloaded (TRUNCATE and INSERT in one transaction) while a batch needs it"
run_sql <<'SQL'
CREATE FOREIGN TABLE rl_clicks (user_id int) SERVER stream_ext;
CREATE TABLE rl_users (id int PRIMARY KEY, country text);
INSERT INTO rl_users VALUES (1, 'fr'), (2, 'de');
CREATE VIEW rl_inner WITH (continuous) AS
  SELECT u.country, count(*) FROM rl_clicks c JOIN rl_users u ON u.id = c.user_id GROUP BY 1;
CREATE VIEW rl_left WITH (continuous) AS
  SELECT u.country, count(*) FROM rl_clicks c LEFT JOIN rl_users u ON u.id = c.user_id GROUP BY 1;
INSERT INTO rl_clicks VALUES (1), (2);
SQL
fifo_session reload 8 -o /dev/null -v ON_ERROR_STOP=1
reloader=$SESSION_PID
echo "BEGIN; TRUNCATE rl_users; INSERT INTO rl_users VALUES (1, 'fr'), (2, 'de');" >&8
held="FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'rl_users'"
wait_until 10 "the reload holds rl_users" "SELECT count(*) > 0 $held AND l.mode = 'AccessExclusiveLock' AND l.granted"
# the batch does not wait for the reload: its events are held back for both
# views (src/worker/held_back.c), and applied once the reload committed
q "INSERT INTO rl_clicks VALUES (1), (2)" >/dev/null || fail "the writer failed while the reload held its table"
[ "$(q "SELECT count(*) FROM stream_ext_internal.held_events h
        JOIN stream_ext_internal.continuous_views v ON v.id = h.view_id
       WHERE v.view IN ('rl_inner'::regclass, 'rl_left'::regclass)")" = 4 ] ||
	failures+=("the events written during the reload are not held back for both views")
echo "COMMIT;" >&8
exec 8>&-
wait "$reloader" || fail "the reload failed"
for v in rl_inner rl_left; do
	try_wait 30 "$v counts the held events" \
		"SELECT string_agg(country || '=' || count, ' ' ORDER BY country) = 'de=2 fr=2' FROM $v" ||
		failures+=("$v after a reload of the joined table: $(q "SELECT string_agg(country || '=' || count, ' ' ORDER BY country) FROM $v") (want de=2 fr=2)")
done
say "checked: the held events joined the reloaded table"

errors=$(q "SELECT count(*) FROM stream_ext.view_errors")
[ "$errors" = 0 ] || failures+=("view_errors has $errors rows: $(q "SELECT string_agg(message, '; ') FROM stream_ext.view_errors")")

if [ ${#failures[@]} -gt 0 ]; then
	printf '[%s] FAIL: %s\n' "$TEST_NAME" "${failures[@]}" >&2
	exit 1
fi
say "PASS"
