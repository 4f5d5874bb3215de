--
-- stream_reads: every read of a stream fails with one error, whatever the
-- query would return (a client's probe gets the error its reads get);
-- writes, views over the stream and the workers' plans go on
--
CREATE FOREIGN TABLE sr_events (k int, v float8) SERVER stream_ext;
CREATE FOREIGN TABLE sr_other (k int, v float8) SERVER stream_ext;
CREATE VIEW sr_plain AS SELECT k, v FROM sr_events;   -- an ordinary view over a stream
-- runs a statement; its SQLSTATE and message when it fails (psql shows the
-- detail and hint of the statements further down)
CREATE FUNCTION sr_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  state text;
  msg text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN others THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RETURN state || ' ' || msg;
END
$$;
CREATE FUNCTION sr_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM sr_events';

-- reads: each refused the same way
SELECT stmt, sr_try(stmt) FROM (VALUES
  ('SELECT * FROM sr_events'),
  ('SELECT TRUE FROM public.sr_events WHERE 1 <> 1 LIMIT 0'),   -- Metabase's probe
  ('SELECT * FROM sr_events WHERE false'),
  ('SELECT * FROM sr_events LIMIT 0'),
  ('SELECT count(*) FROM sr_events WHERE k IS NULL AND k IS NOT NULL'),
  ('SELECT EXISTS (SELECT 1 FROM sr_events)'),
  ('SELECT 1 WHERE false AND EXISTS (SELECT 1 FROM sr_events)'),
  ('SELECT 1 UNION ALL SELECT k FROM sr_events WHERE false'),
  ('SELECT * FROM sr_plain WHERE false'),
  ('SELECT sr_count()'),
  ('EXPLAIN SELECT * FROM sr_events'),
  ('EXPLAIN SELECT 1 FROM sr_events WHERE 1 <> 1 LIMIT 0'),
  ('CREATE TEMP TABLE sr_copy AS SELECT * FROM sr_events'),
  ('INSERT INTO sr_other (k, v) SELECT k, v FROM sr_events WHERE false'),
  ('WITH w AS (SELECT * FROM sr_events) SELECT 1 FROM w WHERE false'),
  ('TABLE sr_events')
) AS t(stmt);
-- a cursor, a prepared statement, COPY TO, a SELECT from psql
BEGIN;
DECLARE sr_cursor CURSOR FOR SELECT * FROM sr_events WHERE false;
ROLLBACK;
PREPARE sr_prepared AS SELECT * FROM sr_events LIMIT 0;
EXECUTE sr_prepared;
DEALLOCATE sr_prepared;
COPY (SELECT * FROM sr_events WHERE false) TO STDOUT;
SELECT TRUE FROM sr_events WHERE 1 <> 1 LIMIT 0;

-- writes, and their plans, work
EXPLAIN (COSTS OFF) INSERT INTO sr_events VALUES (1, 1.5);
INSERT INTO sr_events VALUES (1, 1.5);
CREATE VIEW sr_totals WITH (continuous) AS SELECT k, count(*), sum(v) FROM sr_events GROUP BY k;
INSERT INTO sr_events VALUES (1, 2), (2, 3);
INSERT INTO sr_events SELECT i % 3, i FROM generate_series(1, 30) AS i;
COPY sr_events FROM STDIN (FORMAT csv);
2,10
3,20
\.
PREPARE sr_insert AS INSERT INTO sr_events VALUES ($1, $2);
EXECUTE sr_insert(3, 5);
DEALLOCATE sr_insert;
SELECT * FROM sr_totals ORDER BY k;

DROP VIEW sr_plain;
DROP FUNCTION sr_count();
DROP FUNCTION sr_try(text);
SET client_min_messages = warning;
DROP FOREIGN TABLE sr_events, sr_other CASCADE;
RESET client_min_messages;
