--
-- views: the shapes of continuous views
--
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;

-- the example from the documentation
CREATE VIEW url_stats WITH (continuous) AS
  SELECT url, count(*), sum(latency), avg(latency), max(ts), count(*) FILTER (WHERE latency > 100) AS slow
  FROM clicks WHERE url LIKE '/page/%' GROUP BY url;
\d url_stats
SELECT * FROM url_stats;
INSERT INTO clicks VALUES
  ('/page/1', 1, 50,  '2024-01-01 10:15:00+00'),
  ('/page/1', 2, 150, '2024-01-01 11:45:00+00'),
  ('/page/2', 1, 200, '2024-01-01 10:30:00+00'),
  ('/other',  3, 10,  '2024-01-01 10:00:00+00'),
  ('/PAGE/1', 4, 20,  '2024-01-02 00:30:00+00'),
  (NULL,      5, 30,  NULL);
SELECT * FROM url_stats ORDER BY url;
INSERT INTO clicks VALUES ('/page/2', 6, 100, '2024-01-03 00:00:00+00');
SELECT * FROM url_stats ORDER BY url;

-- GROUP BY expressions
CREATE VIEW by_hour WITH (continuous) AS
  SELECT date_trunc('hour', ts) AS hour, count(*) AS n FROM clicks GROUP BY date_trunc('hour', ts);
CREATE VIEW by_utc_day WITH (continuous) AS
  SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AS day, count(*) AS n, sum(latency) AS total
    FROM clicks GROUP BY 1;
CREATE VIEW by_lower_url WITH (continuous) AS
  SELECT lower(url) AS url, count(*) AS n FROM clicks GROUP BY lower(url);
CREATE VIEW by_url_user WITH (continuous) AS
  SELECT url, user_id % 2 AS parity, count(*) AS n, max(latency) AS worst
    FROM clicks GROUP BY url, user_id % 2;
INSERT INTO clicks VALUES
  ('/page/1', 1, 50,  '2024-01-01 10:15:00+00'),
  ('/page/1', 2, 150, '2024-01-01 11:45:00+00'),
  ('/page/2', 1, 200, '2024-01-01 10:30:00+00'),
  ('/other',  3, 10,  '2024-01-01 10:00:00+00'),
  ('/PAGE/1', 4, 20,  '2024-01-02 00:30:00+00'),
  (NULL,      5, 30,  NULL),
  (NULL,      NULL, 40, NULL),
  ('/Page/1', NULL, NULL, '2024-01-01 10:59:59+00');
SELECT * FROM by_hour ORDER BY hour;
SELECT * FROM by_utc_day ORDER BY day;
-- NULL keys form one group
SELECT * FROM by_lower_url ORDER BY url;
SELECT * FROM by_url_user ORDER BY url COLLATE "C", parity;
-- reads by key find groups with NULL keys too, whether their events are merged or not
SELECT * FROM by_url_user WHERE url IS NULL ORDER BY parity;
SELECT * FROM by_url_user WHERE parity IS NULL ORDER BY url COLLATE "C";
SELECT * FROM by_url_user WHERE url = '/page/1' ORDER BY parity;
INSERT INTO clicks VALUES (NULL, NULL, 45, NULL), (NULL, 7, 5, NULL), ('/page/1', NULL, 1, NULL);
SELECT * FROM by_url_user WHERE url IS NULL ORDER BY parity;
SELECT * FROM by_url_user WHERE parity IS NULL ORDER BY url COLLATE "C";
SELECT * FROM by_url_user WHERE url = '/page/1' ORDER BY parity;
SELECT count(*), sum(n) FROM by_url_user;

-- no GROUP BY: exactly one row, even before any event
CREATE FOREIGN TABLE readings (sensor int, value numeric) SERVER stream_ext;
CREATE VIEW reading_totals WITH (continuous) AS
  SELECT count(*) AS n, count(value) AS n_values, sum(value) AS total, avg(value) AS mean,
         min(value) AS lo, max(value) AS hi
    FROM readings;
SELECT * FROM reading_totals;
INSERT INTO readings VALUES (1, 10), (2, 20.5), (3, NULL);
SELECT * FROM reading_totals;
INSERT INTO readings SELECT g, g FROM generate_series(1, 100) g;
SELECT * FROM reading_totals;
-- a WHERE clause that no event passes still gives the one row
CREATE VIEW reading_none WITH (continuous) AS
  SELECT count(*) AS n, sum(value) AS total FROM readings WHERE sensor < 0;
INSERT INTO readings VALUES (5, 5);
SELECT * FROM reading_none;

-- expressions over keys and aggregates in the select list
CREATE VIEW reading_expr WITH (continuous) AS
  SELECT sensor % 3 AS bucket,
         'bucket-' || (sensor % 3)::text AS label,
         sum(value) / count(*) AS mean_all,
         sum(value) / nullif(count(value), 0) AS mean_values,
         count(*) * 2 + 1 AS odd,
         max(value) - min(value) AS spread,
         round(avg(value), 2) AS rounded,
         coalesce(sum(value), -1) AS total_or_minus_one,
         (count(*) > 2) AS many
    FROM readings GROUP BY sensor % 3;
INSERT INTO readings VALUES (1, 1), (2, 2), (3, 3), (4, 4), (6, NULL), (7, 10);
SELECT * FROM reading_expr ORDER BY bucket;

-- HAVING is applied when the view is read
CREATE VIEW reading_having WITH (continuous) AS
  SELECT sensor, count(*) AS n, sum(value) AS total
    FROM readings GROUP BY sensor HAVING count(*) >= 3 AND sum(value) > 10;
INSERT INTO readings VALUES (1000, 5), (1000, 5), (1001, 100);
SELECT * FROM reading_having ORDER BY sensor;
INSERT INTO readings VALUES (1000, 5), (1001, 100);
SELECT * FROM reading_having ORDER BY sensor;
INSERT INTO readings VALUES (1001, 100);
SELECT * FROM reading_having ORDER BY sensor;

-- FILTER
CREATE VIEW reading_filter WITH (continuous) AS
  SELECT sensor / 1000 AS thousand,
         count(*) AS n,
         count(*) FILTER (WHERE value > 50) AS big,
         sum(value) FILTER (WHERE value <= 50) AS small_total,
         max(value) FILTER (WHERE sensor % 2 = 0) AS even_max,
         avg(value) FILTER (WHERE false) AS never
    FROM readings GROUP BY sensor / 1000;
INSERT INTO readings VALUES (2000, 60), (2001, 40), (2002, 55), (2003, NULL), (3000, 1);
SELECT * FROM reading_filter WHERE thousand >= 2 ORDER BY thousand;

-- the function form
SELECT stream_ext.create_continuous_view('reading_fn', $$
  SELECT sensor, count(*) AS n, sum(value) AS total FROM readings WHERE sensor >= 5000 GROUP BY sensor
$$);
\d reading_fn
INSERT INTO readings VALUES (5000, 1), (5000, 2), (5001, 3), (4999, 100);
SELECT * FROM reading_fn ORDER BY sensor;
SELECT stream_ext.create_continuous_view('public.reading_fn2', 'SELECT count(*) AS n FROM readings');
INSERT INTO readings VALUES (1, 1);
SELECT n FROM reading_fn2;

-- column aliases in CREATE VIEW
CREATE VIEW reading_alias (s, how_many, total) WITH (continuous) AS
  SELECT sensor, count(*), sum(value) FROM readings WHERE sensor >= 6000 GROUP BY sensor;
\d reading_alias
INSERT INTO readings VALUES (6000, 1), (6000, 2), (6001, 3);
SELECT * FROM reading_alias ORDER BY s;
SELECT s, how_many FROM reading_alias WHERE total > 2 ORDER BY s;
-- fewer aliases than columns
CREATE VIEW reading_alias2 (s) WITH (continuous) AS
  SELECT sensor, count(*) FROM readings WHERE sensor >= 6000 GROUP BY sensor;
INSERT INTO readings VALUES (6001, 1);
SELECT * FROM reading_alias2 ORDER BY s;

-- many views on one stream all see every event
CREATE FOREIGN TABLE ticks (k int, v int) SERVER stream_ext;
CREATE VIEW ticks_a WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM ticks;
CREATE VIEW ticks_b WITH (continuous) AS SELECT k, count(*) AS n FROM ticks GROUP BY k;
CREATE VIEW ticks_c WITH (continuous) AS SELECT k % 2 AS odd, sum(v) AS s FROM ticks GROUP BY 1;
CREATE VIEW ticks_d WITH (continuous) AS SELECT max(v) AS hi, min(v) AS lo FROM ticks WHERE k > 5;
CREATE VIEW ticks_e WITH (continuous) AS SELECT count(*) AS n FROM ticks WHERE v IS NULL;
INSERT INTO ticks SELECT g % 10, g FROM generate_series(1, 10000) g;
INSERT INTO ticks VALUES (1, NULL), (NULL, NULL);
SELECT * FROM ticks_a;
SELECT * FROM ticks_b ORDER BY k;
SELECT * FROM ticks_c ORDER BY odd;
SELECT * FROM ticks_d;
SELECT * FROM ticks_e;
-- a view created later sees only events inserted after its creation
CREATE VIEW ticks_late WITH (continuous) AS SELECT count(*) AS n FROM ticks;
SELECT * FROM ticks_late;
INSERT INTO ticks VALUES (1, 1);
SELECT * FROM ticks_late;
SELECT n FROM ticks_a;
SELECT name, continuous_views FROM stream_ext.streams WHERE schema = 'public' ORDER BY name;

-- one view per stream, over several streams, all written by one statement each
CREATE FOREIGN TABLE s1 (x int) SERVER stream_ext;
CREATE FOREIGN TABLE s2 (x int) SERVER stream_ext;
CREATE FOREIGN TABLE s3 (x int, y text) SERVER stream_ext;
CREATE VIEW s1_v WITH (continuous) AS SELECT count(*) AS n, sum(x) AS s FROM s1;
CREATE VIEW s2_v WITH (continuous) AS SELECT count(*) AS n, sum(x) AS s FROM s2;
CREATE VIEW s3_v WITH (continuous) AS SELECT y, count(*) AS n, sum(x) AS s FROM s3 GROUP BY y;
INSERT INTO s1 SELECT generate_series(1, 10);
INSERT INTO s2 SELECT generate_series(1, 20);
INSERT INTO s3 SELECT g, 'y' || (g % 2) FROM generate_series(1, 30) g;
SELECT * FROM s1_v;
SELECT * FROM s2_v;
SELECT * FROM s3_v ORDER BY y;
SELECT name, stream FROM stream_ext.continuous_views WHERE stream::text IN ('s1', 's2', 's3') ORDER BY name::text;

-- a continuous view can be used like any view
SELECT t.k, t.n, c.s FROM ticks_b t JOIN ticks_c c ON c.odd = t.k % 2 WHERE t.k < 3 ORDER BY t.k;
CREATE VIEW ticks_b_top AS SELECT k FROM ticks_b WHERE n > 1000;
SELECT * FROM ticks_b_top ORDER BY k;
DROP VIEW ticks_b_top;

-- a read planned while the delta table is empty (merged, vacuumed) reads
-- the deltas once (delta_changes_key, src/ddl/changed_keys.c) rather than
-- rescanning them for each of the 20000 groups
CREATE FOREIGN TABLE many (k int) SERVER stream_ext;
CREATE VIEW many_v WITH (continuous) AS SELECT k, count(*) AS n FROM many GROUP BY k;
INSERT INTO many SELECT generate_series(1, 20000);
SELECT set_config('regress.many_delta', format('stream_ext_internal.%I', 'delta_' || id), false) AS many_delta
  FROM stream_ext_internal.continuous_views WHERE view = 'many_v'::regclass \gset
DO $$
DECLARE pending bigint;
BEGIN
  FOR i IN 1 .. 3000 LOOP
    EXECUTE 'SELECT count(*) FROM ' || current_setting('regress.many_delta') INTO pending;
    EXIT WHEN pending = 0;
    PERFORM pg_sleep(0.01);
  END LOOP;
END
$$;
VACUUM :many_delta;
CREATE FUNCTION views_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    RETURN NEXT line;
  END LOOP;
END
$$;
SELECT bool_or(l LIKE '%Filter: (NOT stream_ext_internal.delta_changes_key(%') AS filtered,
       bool_or(l LIKE '%Nested Loop Anti Join%') AS rescanned
  FROM views_plan('SELECT count(*) FROM many_v') l;
DROP FUNCTION views_plan(text);
SELECT count(*), sum(n) FROM many_v;

-- a composite key whose fields are all NULL is a group like any other
-- (= matches it, though IS NULL is true of it), apart from the NULL value
-- itself: counted once whether its events are merged or not, with one key
-- and with several (whose NULL keys a partial index finds)
CREATE TYPE pair AS (a text, b text);
CREATE FOREIGN TABLE pairs (a text, b text, p pair) SERVER stream_ext;
CREATE VIEW by_pair WITH (continuous) AS SELECT (a, b)::pair AS pair, count(*) AS n FROM pairs GROUP BY 1;
CREATE VIEW by_p_a WITH (continuous) AS SELECT p, a, count(*) AS n FROM pairs GROUP BY p, a;
CREATE FUNCTION views_merged(VARIADIC views regclass[]) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE pending bigint; total bigint; v regclass;
BEGIN
  FOR i IN 1 .. 3000 LOOP
    total := 0;
    FOREACH v IN ARRAY views LOOP
      EXECUTE format('SELECT count(*) FROM %s',
                     (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v))
        INTO pending;
      total := total + pending;
    END LOOP;
    IF total = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN false;
END
$$;
INSERT INTO pairs VALUES (NULL, NULL, ROW(NULL, NULL)), (NULL, NULL, NULL), ('x', NULL, ROW('x', NULL));
SELECT views_merged('by_pair', 'by_p_a') AS merged;
-- a second session holds the merges while more events come
CREATE EXTENSION dblink;
SELECT dblink_connect('views_locker', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user)) AS connected;
SELECT dblink_exec('views_locker', 'BEGIN');
SELECT dblink_exec('views_locker', format('LOCK TABLE %s, %s IN SHARE MODE',
         (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'by_pair'::regclass),
         (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'by_p_a'::regclass)));
INSERT INTO pairs VALUES (NULL, NULL, ROW(NULL, NULL)), (NULL, NULL, NULL), ('x', NULL, ROW('x', NULL));
SELECT pair, pair IS NULL AS is_null, n FROM by_pair ORDER BY pair;
SELECT * FROM by_pair WHERE pair = ROW(NULL, NULL)::pair;
SELECT p, p IS NULL AS is_null, p IS NOT DISTINCT FROM NULL AS null_value, a, n FROM by_p_a ORDER BY p, a;
SELECT dblink_exec('views_locker', 'COMMIT');

-- truncate_continuous_view waits for the stream's writers in progress (as
-- TRUNCATE does for a table's): a transaction's events are all forgotten or
-- all counted, never some
CREATE FOREIGN TABLE vw_tr (k int) SERVER stream_ext;
CREATE VIEW vw_tr_v WITH (continuous) AS SELECT count(*) AS n FROM vw_tr;
SELECT dblink_connect('views_truncater', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user)) AS connected;
SELECT dblink_exec('views_locker', 'BEGIN');
SELECT dblink_exec('views_locker', 'INSERT INTO vw_tr SELECT g FROM generate_series(1, 100) g');
SELECT dblink_send_query('views_truncater', $$SELECT stream_ext.truncate_continuous_view('vw_tr_v')$$);
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'vw_tr'::regclass AND NOT granted);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT dblink_exec('views_locker', 'INSERT INTO vw_tr SELECT g FROM generate_series(1, 50) g');
SELECT dblink_exec('views_locker', 'COMMIT');
SELECT * FROM dblink_get_result('views_truncater') AS r(done text);
SELECT n FROM vw_tr_v;
INSERT INTO vw_tr VALUES (1);
SELECT n FROM vw_tr_v;
-- ... but a view's owner who may only read the stream holds none of its
-- writers (LOCK TABLE's rule): the truncate waits for those in progress only
CREATE ROLE regress_views_reader;
GRANT CREATE ON SCHEMA public TO regress_views_reader;
GRANT SELECT ON vw_tr TO regress_views_reader;
SET ROLE regress_views_reader;
CREATE VIEW vw_tr_r WITH (continuous) AS SELECT count(*) AS n FROM vw_tr;
RESET ROLE;
SELECT dblink_exec('views_locker', 'BEGIN');
SELECT dblink_exec('views_locker', 'SET ROLE regress_views_reader');
SELECT * FROM dblink('views_locker', $$SELECT stream_ext.truncate_continuous_view('vw_tr_r')::text$$)
  AS t(truncated text);
SET statement_timeout = '5s';
INSERT INTO vw_tr VALUES (2);
RESET statement_timeout;
SELECT dblink_exec('views_locker', 'COMMIT');
SELECT n FROM vw_tr_r;
SELECT dblink_disconnect('views_truncater');
DROP FOREIGN TABLE vw_tr CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_views_reader;
DROP ROLE regress_views_reader;

SELECT dblink_disconnect('views_locker');
DROP EXTENSION dblink;
-- a view of keys alone, the distinct values seen, is merged like any other
-- (its merge statement was an error: its deltas were never merged)
CREATE VIEW distinct_urls WITH (continuous) AS SELECT url FROM clicks GROUP BY url;
INSERT INTO clicks (url) VALUES ('/a'), ('/b'), ('/a'), (NULL);
INSERT INTO clicks (url) VALUES ('/b'), ('/c'), (NULL);
SELECT views_merged('distinct_urls') AS merged;
SELECT url FROM distinct_urls ORDER BY url;
-- a key whose type's equality hashes, but not its elements' (bit varying has
-- no hash function): every event with a key failed for the view
CREATE FOREIGN TABLE bitsets (b varbit[]) SERVER stream_ext;
CREATE VIEW by_bits WITH (continuous) AS SELECT b, count(*) FROM bitsets GROUP BY b;
INSERT INTO bitsets VALUES ('{101,11}'), ('{101,11}'), ('{1}'), (NULL);
SELECT b, count FROM by_bits ORDER BY b;
SELECT count(*) AS errors FROM stream_ext.view_errors WHERE name = 'by_bits'::regclass;
DROP FOREIGN TABLE bitsets CASCADE;
-- a key named n in a view that repeats a grouping set (its read's copies of
-- the set were numbered by a column n too, and CREATE failed)
CREATE FOREIGN TABLE sets_n (n int) SERVER stream_ext;
CREATE VIEW by_n_twice WITH (continuous) AS SELECT n, count(*) FROM sets_n GROUP BY GROUPING SETS ((n), (n));
INSERT INTO sets_n VALUES (1), (1), (2);
SELECT n, count FROM by_n_twice ORDER BY n, count;
SELECT n, count(*) FROM (VALUES (1), (1), (2)) t(n) GROUP BY GROUPING SETS ((n), (n)) ORDER BY n, count;
DROP FOREIGN TABLE sets_n CASCADE;
SELECT views_merged('by_pair', 'by_p_a') AS merged;
SELECT pair, n FROM by_pair ORDER BY pair;
SELECT p, a, n FROM by_p_a ORDER BY p, a;
DROP FUNCTION views_merged(regclass[]);

SET client_min_messages = warning;
DROP FOREIGN TABLE clicks, readings, ticks, s1, s2, s3, many, pairs CASCADE;
DROP TYPE pair;
RESET client_min_messages;
SELECT count(*) FROM stream_ext.continuous_views;
