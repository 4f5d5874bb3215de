--
-- packaging: the installed extension, its settings and its catalog
--
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'stream_ext';
SELECT name, default_version, installed_version FROM pg_available_extensions WHERE name = 'stream_ext';
SELECT 'stream_ext' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
  AS preloaded;

-- settings
SHOW stream_ext.workers;
SHOW stream_ext.max_databases;
SHOW stream_ext.queue_size;
SHOW stream_ext.batch_size;
SHOW stream_ext.flush_interval;
SHOW stream_ext.combine_interval;
SHOW stream_ext.commit_mode;
SELECT name, unit, context, vartype, boot_val, min_val, max_val, enumvals
  FROM pg_settings WHERE name LIKE 'stream\_ext.%' ORDER BY name;
-- only commit_mode can be set in a session
SET stream_ext.commit_mode = async;
SHOW stream_ext.commit_mode;
RESET stream_ext.commit_mode;
SET stream_ext.batch_size = 10;
SET stream_ext.workers = 2;

-- the schemas and the user-facing objects
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'stream\_ext%' ORDER BY nspname;
SELECT srvname, fdwname FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE srvname = 'stream_ext';
SELECT p.oid::regprocedure AS function, pg_get_function_result(p.oid) AS returns
  FROM pg_proc p WHERE p.pronamespace = 'stream_ext'::regnamespace ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.relnamespace = 'stream_ext'::regnamespace ORDER BY c.relname, a.attnum;
-- every object of the extension is a member of it
SELECT count(*) > 0 AS has_members FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stream_ext');

-- a continuous view is an ordinary view to the information schema and psql
CREATE FOREIGN TABLE pk_s (x int) SERVER stream_ext;
CREATE VIEW pk_v WITH (continuous) AS SELECT count(*) AS n, sum(x) AS total FROM pk_s;
SELECT count(*) FROM information_schema.views WHERE table_name = 'pk_v';
SELECT table_name, column_name, data_type FROM information_schema.columns
 WHERE table_name = 'pk_v' ORDER BY ordinal_position;
SELECT count(*) FROM information_schema.foreign_tables WHERE foreign_table_name = 'pk_s';
SELECT relkind FROM pg_class WHERE oid = 'pk_v'::regclass;
INSERT INTO pk_s VALUES (1), (2);
SELECT * FROM pk_v;

-- CREATE EXTENSION refuses to install unless the library is preloaded: the
-- check of the installation script is run here with another setting.
DO $$
DECLARE
  script text;
  block text;
  msg text;
  hint text;
BEGIN
  SELECT pg_read_file(setting || '/extension/stream_ext--0.1.sql') INTO script
    FROM pg_config WHERE name = 'SHAREDIR';
  block := substring(script FROM '(DO \$check\$.*?\$check\$);');
  IF block IS NULL THEN
    RAISE NOTICE 'no preload check found in the installation script';
    RETURN;
  END IF;
  -- preloaded, among other libraries: accepted
  EXECUTE replace(block, $q$current_setting('shared_preload_libraries')$q$, $q$'pg_stat_statements, stream_ext'$q$);
  RAISE NOTICE 'accepted with stream_ext preloaded';
  FOREACH msg IN ARRAY ARRAY['', 'pg_stat_statements', 'stream_ext_other'] LOOP
    BEGIN
      EXECUTE replace(block, $q$current_setting('shared_preload_libraries')$q$, quote_literal(msg));
      RAISE NOTICE 'accepted with shared_preload_libraries = %', quote_literal(msg);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
      RAISE NOTICE 'with shared_preload_libraries = %: % (%) hint: %', quote_literal(msg), SQLERRM, SQLSTATE, hint;
    END;
  END LOOP;
END
$$;

-- the extension can be dropped with its streams and views, and installed again
\set VERBOSITY terse
DROP EXTENSION stream_ext;
\set VERBOSITY default
SET client_min_messages = warning;
DROP EXTENSION stream_ext CASCADE;
RESET client_min_messages;
SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'stream\_ext%';
SELECT to_regclass('pk_v') IS NULL AS view_gone, to_regclass('pk_s') IS NULL AS stream_gone;
-- the installing role's default privileges reach none of the extension's
-- own tables (its catalog holds Kafka credentials)
CREATE ROLE regress_pk_reader;
ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE ON TABLES TO regress_pk_reader, PUBLIC;
ALTER DEFAULT PRIVILEGES GRANT USAGE, UPDATE ON SEQUENCES TO regress_pk_reader;
CREATE EXTENSION stream_ext;
ALTER DEFAULT PRIVILEGES REVOKE SELECT, INSERT, UPDATE ON TABLES FROM regress_pk_reader, PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE USAGE, UPDATE ON SEQUENCES FROM regress_pk_reader;
SELECT count(*) AS granted FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'stream_ext_internal'::regnamespace AND a.grantee <> c.relowner;
SET ROLE regress_pk_reader;
SELECT options FROM stream_ext_internal.kafka_consumers;
RESET ROLE;
DROP ROLE regress_pk_reader;
SELECT extversion FROM pg_extension WHERE extname = 'stream_ext';
CREATE FOREIGN TABLE pk_s (x int) SERVER stream_ext;
CREATE VIEW pk_v WITH (continuous) AS SELECT count(*) AS n, sum(x) AS total FROM pk_s;
INSERT INTO pk_s VALUES (10), (20), (30);
SELECT * FROM pk_v;
SELECT name, events FROM stream_ext.view_stats WHERE name = 'pk_v'::regclass;
DROP FOREIGN TABLE pk_s CASCADE;
