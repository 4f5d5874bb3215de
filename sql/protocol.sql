--
-- protocol: what stream_ext shows the rest of the server
--
-- pg_stat_statements is preloaded before stream_ext on the test server
-- (test/server.sh), so its hook runs below ours: it sees the statements
-- stream_ext runs itself only because our hook passes them down the chain.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;

CREATE FOREIGN TABLE pr_s (k text, x float8) SERVER stream_ext;
CREATE VIEW pr_v WITH (continuous) AS SELECT k, count(*) AS n FROM pr_s GROUP BY k;
COPY pr_s (k, x) FROM STDIN;
a	1
a	2
b	3
\.
INSERT INTO pr_s VALUES ('c', 4);
SELECT * FROM pr_v ORDER BY k;

-- each statement once, COPY with its row count, like any statement
SELECT regexp_replace(query, '\s+', ' ', 'g') AS query, calls, rows
  FROM pg_stat_statements
 WHERE query ~* '^(create view pr_v|copy pr_s|insert into pr_s)'
 ORDER BY query;

-- the workers' and the combiner's own statements are not counted (a few per
-- view and round would crowd out the users')
DO $$
DECLARE pending bigint;
BEGIN
  FOR i IN 1..600 LOOP
    EXECUTE format('SELECT count(*) FROM %s', (SELECT delta_table FROM stream_ext_internal.continuous_views
                                                WHERE view = 'pr_v'::regclass)) INTO pending;
    EXIT WHEN pending = 0;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT count(*) AS internal_statements FROM pg_stat_statements
 WHERE query ~ 'stream_ext_internal\.(delta|state|view_counters)';

-- the procedure that runs them refuses to be called by anyone else
CALL stream_ext_internal.run_utility();

-- a batch that cannot be applied at all fails the transaction with the
-- worker's SQLSTATE: here 42P01, the counters table gone
ALTER TABLE stream_ext_internal.view_counters RENAME TO view_counters_away;
\set VERBOSITY sqlstate
INSERT INTO pr_s VALUES ('d', 1);
\set VERBOSITY default
ALTER TABLE stream_ext_internal.view_counters_away RENAME TO view_counters;
SELECT * FROM pr_v ORDER BY k;

-- a publication FOR ALL TABLES takes in the internal tables: their deletes
-- and updates are not refused (each has a primary key or the whole row as
-- replica identity), so the combiner still merges and moves rows
CREATE FUNCTION pr_merged(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  pending bigint;
BEGIN
  FOR i IN 1..600 LOOP
    EXECUTE format('SELECT count(*) FROM %s',
                   (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v))
      INTO pending;
    IF pending = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SET client_min_messages = error;
CREATE PUBLICATION pr_all FOR ALL TABLES;
RESET client_min_messages;
CREATE VIEW pr_rows WITH (continuous) AS SELECT k, x FROM pr_s WHERE x > 2;
INSERT INTO pr_s VALUES ('e', 5), ('e', 6);
SELECT pr_merged('pr_v') AS v_merged, pr_merged('pr_rows') AS rows_moved;
SELECT * FROM pr_v ORDER BY k;
SELECT * FROM pr_rows ORDER BY k, x;
SELECT c.relname FROM pg_class c
  WHERE c.relnamespace = 'stream_ext_internal'::regnamespace AND c.relkind = 'r'
    AND c.relreplident = 'd'
    AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary);
DROP PUBLICATION pr_all;
DROP FUNCTION pr_merged(regclass);

DROP FOREIGN TABLE pr_s CASCADE;
