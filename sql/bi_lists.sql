--
-- bi_lists: what Grafana's and Metabase's PostgreSQL sources list for a role
-- that reads continuous views and writes a stream but owns none of them.
--
-- The queries below are the catalog queries those tools send, written out
-- here (not copied): Grafana's PostgreSQL data source
-- (public/app/plugins/datasource/grafana-postgresql-datasource/
-- postgresMetaQuery.ts: showSchemas, showTables, getSchema) and Metabase's
-- PostgreSQL driver (src/metabase/driver/postgres.clj: get-tables-sql and
-- current-user-table-privileges; sql_jdbc/sync/describe_database.clj: the
-- schemas of pgjdbc's DatabaseMetaData.getSchemas, the select probe for
-- foreign tables and for drivers without a privilege query, over pgjdbc's
-- DatabaseMetaData.getTables).  Each is wrapped only to keep the output
-- independent of other suites' objects and of view ids.
--
CREATE ROLE regress_bi_reader LOGIN;
-- a common setup for a BI role: SELECT on every table this role creates
-- (the extension makes each view's internal tables as the bootstrap superuser,
-- which runs this suite: they must not take it)
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO regress_bi_reader;
CREATE SCHEMA bi;
CREATE FOREIGN TABLE bi.clicks (url text, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW bi.url_stats WITH (continuous) AS
  SELECT url, count(*), avg(latency) FROM bi.clicks GROUP BY url;
CREATE VIEW bi.recent WITH (continuous, sliding_window = '1 hour', time_column = 'ts') AS
  SELECT url, count(*) FROM bi.clicks GROUP BY url;
CREATE VIEW bi.per_minute WITH (continuous, ttl = '1 day', ttl_column = 'minute',
                                time_column = 'ts') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, count(*) FROM bi.clicks GROUP BY minute;
GRANT USAGE ON SCHEMA bi TO regress_bi_reader;
GRANT SELECT ON bi.url_stats, bi.recent, bi.per_minute TO regress_bi_reader;
-- it may also create views over the stream: SELECT on it, as its Metabase probe needs
GRANT INSERT, SELECT ON bi.clicks TO regress_bi_reader;

-- Metabase's probe, run for each listed relation the privilege query does
-- not cover (foreign tables), or for every one over pgjdbc's getTables: a
-- relation whose probe fails is not synced.
CREATE FUNCTION bi_metabase_probe(s name, t name) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT TRUE FROM %I.%I WHERE 1 <> 1 LIMIT 0', s, t);
  RETURN true;
EXCEPTION WHEN others THEN
  RETURN false;
END
$$;

SET ROLE regress_bi_reader;
SET search_path = bi, public;
-- events of the last minutes (older ones the background reaper would expire)
INSERT INTO bi.clicks VALUES ('/a', 10, now() - interval '3 minutes'), ('/a', 30, now() - interval '2 minutes'),
                             ('/b', 5, now() - interval '2 minutes');

-- Grafana, table list (no schema chosen): relations of the search path by
-- name, others qualified.
SELECT "table" FROM (
  SELECT CASE WHEN quote_ident(table_schema) IN (
                SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
                  FROM generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1),
                                       array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i,
                       string_to_array(current_setting('search_path'), ',') AS s)
              THEN quote_ident(table_name)
              ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS "table",
         table_schema
    FROM information_schema.tables
   WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache',
                                           '_timescaledb_catalog', '_timescaledb_internal',
                                           '_timescaledb_config', 'timescaledb_information',
                                           'timescaledb_experimental')
) grafana
WHERE table_schema IN ('bi', 'stream_ext_internal') ORDER BY 1;

-- Grafana, table list of one chosen schema
SELECT quote_ident(table_name) AS "table" FROM information_schema.tables
 WHERE quote_ident(table_schema) = 'stream_ext_internal' ORDER BY 1;

-- Grafana, columns of a table (the stream lists its columns)
SELECT quote_ident(column_name) AS "column", data_type AS "type"
  FROM information_schema.columns
 WHERE CASE WHEN array_length(parse_ident('clicks'), 1) = 2
            THEN quote_ident(table_schema) = (parse_ident('clicks'))[1]
             AND quote_ident(table_name) = (parse_ident('clicks'))[2]
            ELSE quote_ident(table_name) = 'clicks'
             AND quote_ident(table_schema) IN (
                   SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
                     FROM generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1),
                                          array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i,
                          string_to_array(current_setting('search_path'), ',') AS s)
       END
 ORDER BY ordinal_position;

-- Metabase: the tables of the syncable schemas (pgjdbc's getSchemas less
-- information_schema and pg_catalog), kept when the privilege query says the
-- role may SELECT them or, for foreign tables, when the probe succeeds.
WITH syncable_schemas AS (
  SELECT nspname FROM pg_catalog.pg_namespace
   WHERE nspname <> 'pg_toast'
     AND (nspname !~ '^pg_temp_' OR nspname = (pg_catalog.current_schemas(true))[1])
     AND (nspname !~ '^pg_toast_temp_' OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))
     AND nspname NOT IN ('information_schema', 'pg_catalog')
), tables AS (
  SELECT n.nspname AS schema, c.relname AS name,
         CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW'
                        WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' END AS type
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid
   WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
     AND c.relkind IN ('r', 'p', 'v', 'f', 'm')
     AND n.nspname IN (SELECT nspname FROM syncable_schemas)
), privileges AS (
  SELECT t.schemaname AS schema, t.objectname AS name,
         pg_catalog.has_any_column_privilege(current_user, quote_ident(t.schemaname) || '.' || quote_ident(t.objectname), 'select') AS "select"
    FROM (SELECT schemaname, tablename AS objectname FROM pg_catalog.pg_tables
          UNION SELECT schemaname, viewname FROM pg_catalog.pg_views
          UNION SELECT schemaname, matviewname FROM pg_catalog.pg_matviews) t
   WHERE t.schemaname !~ '^pg_' AND t.schemaname <> 'information_schema'
     AND pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
SELECT t.schema, t.name, t.type
  FROM tables t
 WHERE CASE WHEN t.type = 'FOREIGN TABLE' THEN bi_metabase_probe(t.schema, t.name)
            ELSE EXISTS (SELECT 1 FROM privileges p
                          WHERE p.schema = t.schema AND p.name = t.name AND p."select") END
   AND t.schema IN ('bi', 'stream_ext_internal')
 ORDER BY t.type, t.schema, t.name;

-- Metabase over pgjdbc's getTables (drivers without a privilege query): every
-- relation of the listed types, kept when the probe succeeds.
SELECT schema, name, type FROM (
  SELECT n.nspname AS schema, c.relname AS name,
         CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW'
                        WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' END AS type
    FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c
   WHERE c.relnamespace = n.oid
     AND c.relkind IN ('r', 'p', 'v', 'f', 'm')
     AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
) jdbc
WHERE schema IN ('bi', 'stream_ext_internal') AND bi_metabase_probe(schema, name)
ORDER BY type, schema, name;

-- what those tools then read, as this role
SELECT * FROM bi.url_stats ORDER BY url;
SELECT * FROM bi.recent ORDER BY url;
SELECT sum(count) FROM bi.per_minute;
-- the probe on the stream fails with the stream's error
SELECT TRUE FROM bi.clicks WHERE 1 <> 1 LIMIT 0;
-- internal relations stay unreadable
SELECT count(*) FROM stream_ext_internal.continuous_views;
-- the catalog views of schema stream_ext show this role's views
SELECT name, stream, state_table IS NOT NULL AS has_state FROM stream_ext.continuous_views
 WHERE stream = 'bi.clicks'::regclass ORDER BY name::text;
SELECT stream, continuous_views FROM stream_ext.streams WHERE schema = 'bi';
RESET search_path;
RESET ROLE;

SET client_min_messages = warning;
DROP SCHEMA bi CASCADE;
RESET client_min_messages;
DROP FUNCTION bi_metabase_probe(name, name);
ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM regress_bi_reader;
DROP ROLE regress_bi_reader;
