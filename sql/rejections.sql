--
-- rejections: constructs a continuous view cannot maintain are refused at CREATE
--
CREATE FOREIGN TABLE rj_s (k int, v int, t text, ts timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE rj_s2 (k int, w int) SERVER stream_ext;
CREATE TABLE rj_table (k int, v int);
CREATE VIEW rj_plain_view AS SELECT k, v FROM rj_table;
CREATE VIEW rj_ok WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;

-- aggregates kept as their inputs (ordered_aggregates.sql), but not with a
-- volatile argument or ORDER BY, direct arguments that depend on the events,
-- inputs of an anonymous record type or of a type without binary I/O
CREATE VIEW rj_v WITH (continuous) AS SELECT k, array_agg(v ORDER BY random()) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, string_agg(t || random()::text, ',') FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, percentile_cont(k / 10.0) WITHIN GROUP (ORDER BY v) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, rank(random()) WITHIN GROUP (ORDER BY v) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(DISTINCT (v, t)) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, array_agg(makeaclitem('pg_monitor'::regrole, 'pg_monitor'::regrole, 'SELECT', false) ORDER BY v) FROM rj_s GROUP BY k;
-- window functions
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*), rank() OVER (ORDER BY k) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, sum(count(*)) OVER () FROM rj_s GROUP BY k;
-- the source must be one stream
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_table GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_plain_view GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, sum(n) FROM rj_ok GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM generate_series(1, 10);
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*);
-- joins of two streams (joins with tables: joins.sql)
CREATE VIEW rj_v WITH (continuous) AS SELECT rj_s.k, count(*) FROM rj_s JOIN rj_s2 ON rj_s.k = rj_s2.k GROUP BY rj_s.k;
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s, LATERAL (SELECT rj_s.v + 1 AS w) x;
-- volatile GROUP BY
CREATE VIEW rj_v WITH (continuous) AS SELECT random() > 0.5 AS coin, count(*) FROM rj_s GROUP BY 1;
CREATE VIEW rj_v WITH (continuous) AS SELECT k + (random() * 10)::int AS r, count(*) FROM rj_s GROUP BY k + (random() * 10)::int;
CREATE VIEW rj_v WITH (continuous) AS SELECT clock_timestamp() AS c, count(*) FROM rj_s GROUP BY 1;
-- subqueries
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM (SELECT * FROM rj_s) sub;
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s WHERE k IN (SELECT k FROM rj_table);
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s WHERE EXISTS (SELECT 1 FROM rj_table t WHERE t.k = rj_s.k);
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*), (SELECT max(v) FROM rj_table) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, sum((SELECT 1)) FROM rj_s GROUP BY k;
-- set-returning functions
CREATE VIEW rj_v WITH (continuous) AS SELECT generate_series(1, k), count(*) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, unnest(ARRAY[1, 2]), count(*) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT u, count(*) FROM rj_s, unnest(ARRAY[k, v]) u GROUP BY u;
-- ORDER BY, LIMIT, OFFSET, FETCH
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_s GROUP BY k ORDER BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_s GROUP BY k LIMIT 10;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_s GROUP BY k OFFSET 1;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_s GROUP BY k FETCH FIRST 1 ROW ONLY;
-- SELECT DISTINCT
CREATE VIEW rj_v WITH (continuous) AS SELECT DISTINCT k, count(*) FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT DISTINCT ON (k) k, count(*) FROM rj_s GROUP BY k;
-- GROUP BY () or HAVING without an aggregate: one group of every event, not
-- kept rows (with an aggregate they are fine)
CREATE VIEW rj_v WITH (continuous) AS SELECT 'all' AS label FROM rj_s GROUP BY ();
CREATE VIEW rj_v WITH (continuous) AS SELECT 1 AS one FROM rj_s HAVING true;
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s HAVING true;
DROP VIEW rj_v;
-- WITH
CREATE VIEW rj_v WITH (continuous) AS WITH w AS (SELECT * FROM rj_s) SELECT count(*) FROM w;
CREATE VIEW rj_v WITH (continuous) AS WITH w AS (SELECT 1 AS one) SELECT count(*) FROM rj_s;
-- UNION, INTERSECT, EXCEPT
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s UNION SELECT count(*) FROM rj_s2;
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s UNION ALL SELECT count(*) FROM rj_s;
CREATE VIEW rj_v WITH (continuous) AS SELECT k FROM rj_s INTERSECT SELECT k FROM rj_s2;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) FROM rj_s GROUP BY k EXCEPT SELECT 1, 1;
-- queries that do not aggregate keep rows (sql/rows.sql), but not in windows
CREATE VIEW rj_v WITH (continuous, sliding_window = '1 minute') AS SELECT k, v FROM rj_s;
CREATE VIEW rj_v WITH (continuous) AS SELECT FROM rj_s WHERE k > 1;
CREATE VIEW rj_v WITH (continuous) AS SELECT FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous, ttl = '1 hour', ttl_column = 'nope') AS SELECT k, ts FROM rj_s;
CREATE VIEW rj_v WITH (continuous, ttl = '1 hour', ttl_column = 'k') AS SELECT k, ts FROM rj_s;
-- grouping sets: a ttl column rolled up
CREATE VIEW rj_v WITH (continuous, time_column = ts, ttl = '1 day', ttl_column = m) AS
  SELECT date_bin('1 hour', ts, '2000-01-01') AS m, k, count(*) FROM rj_s GROUP BY ROLLUP (m, k);
-- row locking
CREATE VIEW rj_v WITH (continuous) AS SELECT k FROM rj_s FOR UPDATE;

-- CREATE OR REPLACE, WITH CHECK OPTION, unknown options, temporary views
CREATE OR REPLACE VIEW rj_ok WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE OR REPLACE VIEW rj_v WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k WITH CHECK OPTION;
CREATE VIEW rj_v WITH (continuous, check_option = 'local') AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous, foo = 1) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous, toast.security_barrier) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE VIEW rj_v WITH (continuous = 'maybe') AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE TEMP VIEW rj_v WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
-- nor in pg_temp, nor over temporary objects: they end with the session
CREATE VIEW pg_temp.rj_v WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE TEMP TABLE rj_temp (k int);
CREATE VIEW rj_v WITH (continuous) AS SELECT rj_s.k, count(*) AS n FROM rj_s JOIN rj_temp t ON t.k = rj_s.k GROUP BY 1;
CREATE FUNCTION pg_temp.rj_f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
CREATE VIEW rj_v WITH (continuous) AS SELECT pg_temp.rj_f(k) AS k, count(*) AS n FROM rj_s GROUP BY 1;
CREATE DOMAIN pg_temp.rj_d AS int;
CREATE VIEW rj_v WITH (continuous) AS SELECT k::pg_temp.rj_d AS k, count(*) AS n FROM rj_s GROUP BY 1;
CREATE TYPE pg_temp.rj_comp AS (a int);
CREATE VIEW rj_v WITH (continuous) AS SELECT count(*), max((row(k)::pg_temp.rj_comp).a) FROM rj_s;
CREATE COLLATION pg_temp.rj_coll FROM "C";
CREATE VIEW rj_v WITH (continuous) AS SELECT t COLLATE pg_temp.rj_coll AS t, count(*) AS n FROM rj_s GROUP BY 1;
CREATE TEXT SEARCH CONFIGURATION pg_temp.rj_cfg (COPY = simple);
CREATE VIEW rj_v WITH (continuous) AS
  SELECT count(*) FILTER (WHERE to_tsvector('pg_temp.rj_cfg', t) @@ 'x') AS n FROM rj_s;
CREATE FOREIGN TABLE pg_temp.rj_temp_s (k text) SERVER stream_ext;
SET search_path = pg_temp, public;
CREATE FOREIGN TABLE rj_temp_s (k text) SERVER stream_ext;
RESET search_path;
DROP TABLE rj_temp;
-- keys are columns of a table and of its unique index: no anonymous rows,
-- at most 32 (a sliding window adds two)
CREATE VIEW rj_v WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k, ROW(k, 1);
SELECT format('CREATE VIEW rj_v WITH (continuous) AS SELECT count(*) FROM rj_s GROUP BY %s',
              string_agg('k + ' || i, ', ')) AS ddl FROM generate_series(1, 33) i \gset
:ddl;
SELECT format('CREATE VIEW rj_v WITH (continuous, sliding_window = ''1 minute'') AS SELECT count(*) FROM rj_s GROUP BY %s',
              string_agg('k + ' || i, ', ')) AS ddl FROM generate_series(1, 31) i \gset
:ddl;
CREATE RECURSIVE VIEW rj_v (k, n) WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE MATERIALIZED VIEW rj_v WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
-- an existing name, a column named twice, more names than columns: said as
-- for a plain view, without the generated statement (it names internal tables)
CREATE VIEW rj_ok WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE VIEW rj_table WITH (continuous) AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
CREATE VIEW rj_twice WITH (continuous) AS SELECT k, count(*), count(k) FROM rj_s GROUP BY k;
CREATE VIEW rj_names (a, b, c) WITH (continuous) AS SELECT k, count(*) FROM rj_s GROUP BY k;
-- a non-continuous view over a stream is an ordinary view that fails when read
CREATE VIEW rj_not_continuous AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
SELECT * FROM rj_not_continuous;
DROP VIEW rj_not_continuous;
-- a continuous view cannot be turned off or on later
ALTER VIEW rj_ok SET (continuous = false);
ALTER VIEW rj_ok RESET (continuous);
-- nor change options (readers would need rights on its internal tables)
ALTER VIEW rj_ok SET (security_invoker = true);
-- (but security_barrier, as for any view: rejections of a mixed list stand)
ALTER VIEW rj_ok SET (security_barrier = true, security_invoker = true);
ALTER VIEW rj_ok SET (security_barrier = true);
SELECT reloptions FROM pg_class WHERE oid = 'rj_ok'::regclass;
ALTER VIEW rj_ok RESET (security_barrier);
SELECT reloptions FROM pg_class WHERE oid = 'rj_ok'::regclass;
CREATE VIEW rj_later AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
ALTER VIEW rj_later SET (continuous);
DROP VIEW rj_later;
-- nor replaced by an ordinary view
CREATE OR REPLACE VIEW rj_ok AS SELECT k, count(*) AS n FROM rj_s GROUP BY k;
-- the wrapper has one server: a stream of another would miss the rules of streams
CREATE SERVER rj_other FOREIGN DATA WRAPPER stream_ext;
-- nor its rule (that would drop what it depends on), nor given another
CREATE OR REPLACE RULE "_RETURN" AS ON SELECT TO rj_ok DO INSTEAD SELECT 1 AS k, 1::bigint AS n;
CREATE RULE rj_ins AS ON INSERT TO rj_ok DO INSTEAD NOTHING;
DROP FOREIGN TABLE rj_s;
-- nor written to
INSERT INTO rj_ok VALUES (1, 1);
UPDATE rj_ok SET n = 0;
DELETE FROM rj_ok;

-- the function form refuses the same things
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT k, array_agg(v ORDER BY random()) FROM rj_s GROUP BY k');
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT k, v FROM rj_s', ARRAY['hop_size=1 hour', 'hop_slide=1 minute']);
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT count(*) FROM rj_table');
SELECT stream_ext.create_continuous_view('rj_v', 'INSERT INTO rj_s VALUES (1)');
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT count(*) FROM rj_s; SELECT 1');
-- (errors caught, so that only their code and message are shown)
DO $$
DECLARE
  q text;
BEGIN
  FOREACH q IN ARRAY ARRAY['SELEC count(*) FROM rj_s', 'SELECT count(*) FROM rj_missing',
                           'SELECT count(*) FROM rj_s WHERE missing_column > 0',
                           'SELECT count(*) FROM rj_s GROUP BY missing_function(k)'] LOOP
    BEGIN
      PERFORM stream_ext.create_continuous_view('rj_v', q);
      RAISE NOTICE 'accepted: %', q;
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE '%: %', SQLSTATE, SQLERRM;
    END;
  END LOOP;
END
$$;
\set VERBOSITY terse
SELECT stream_ext.create_continuous_view('rj_ok', 'SELECT count(*) FROM rj_s');
\set VERBOSITY default
SELECT stream_ext.create_continuous_view('', 'SELECT count(*) FROM rj_s');
SELECT stream_ext.create_continuous_view(NULL, 'SELECT count(*) FROM rj_s');
SELECT stream_ext.create_continuous_view('rj_v', NULL);
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT count(*) FROM rj_s', ARRAY[NULL]);
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT count(*) FROM rj_s', '{{ttl=1 day},{ttl=2 days}}');
SELECT stream_ext.create_continuous_view('rj_v', 'SELECT count(*) FROM rj_s', '{continuous=false}');
-- NULL options are none, and continuous=true is what the function makes anyway
SELECT stream_ext.create_continuous_view('rj_fn', 'SELECT count(*) FROM rj_s', NULL);
SELECT stream_ext.create_continuous_view('rj_fn2', 'SELECT count(*) FROM rj_s', '{continuous=true}');
DROP VIEW rj_fn, rj_fn2;
-- functions of a continuous view say what a relation is not
SELECT stream_ext.truncate_continuous_view('pg_class');

-- a column PostgreSQL takes as grouped because it depends on a primary key
-- of the group (it read as another column of the view, or failed inside)
CREATE TABLE rj_users (id bigint PRIMARY KEY, name text);
CREATE VIEW rj_v WITH (continuous) AS
  SELECT u.name, count(*) FROM rj_users u JOIN rj_s s ON s.k = u.id GROUP BY u.id;
CREATE VIEW rj_v WITH (continuous) AS
  SELECT u.name, count(*) FROM rj_s s JOIN rj_users u ON s.k = u.id GROUP BY u.id;
DROP TABLE rj_users;

-- nothing was left behind by the refused statements
SELECT name, stream FROM stream_ext.continuous_views WHERE stream::text LIKE 'rj\_%' ORDER BY name::text;
SELECT count(*) FROM pg_class WHERE relname LIKE 'rj\_v%';
SELECT count(*) AS orphan_internal_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'stream_ext_internal' AND c.relkind = 'r' AND c.relname ~ '^(state|delta)_'
   AND c.oid NOT IN (SELECT state_table FROM stream_ext_internal.continuous_views
                     UNION ALL SELECT delta_table FROM stream_ext_internal.continuous_views);
-- the view that was accepted still works
INSERT INTO rj_s VALUES (1, 1, 'a', NULL), (1, 2, 'b', NULL), (2, 3, 'c', NULL);
SELECT * FROM rj_ok ORDER BY k;

SET client_min_messages = warning;
DROP FOREIGN TABLE rj_s, rj_s2 CASCADE;
DROP TABLE rj_table CASCADE;
RESET client_min_messages;
