--
-- rows: continuous views without aggregates keep the rows of their query
--
-- Events are far in the future, so that the combiner's own reaper (which
-- takes the clock as "now") leaves them; reads take stream_ext.read_time.
SET stream_ext.read_time = '2100-01-01 12:00:00+00';
CREATE FOREIGN TABLE rw_clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE TABLE rw_users (id bigint PRIMARY KEY, country text);
INSERT INTO rw_users VALUES (1, 'fr'), (2, 'de'), (3, NULL);
-- the same events in a plain table, written in the same transactions
CREATE TABLE rw_events (url text, user_id bigint, latency float8, ts timestamptz);
-- rows of the view the combiner has not moved yet (committed or not)
CREATE FUNCTION rw_pending(v regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s',
                 (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v)) INTO n;
  RETURN n;
END $$;
CREATE FUNCTION rw_kept(v regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s',
                 (SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = v)) INTO n;
  RETURN n;
END $$;
CREATE FUNCTION rw_merged(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..400 LOOP
    IF rw_pending(v) = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;

-- the example of the README: a join, a WHERE, ttl
CREATE VIEW rw_slow WITH (continuous, ttl = '1 hour', ttl_column = 'ts') AS
  SELECT c.ts, c.url, c.latency, u.country FROM rw_clicks c JOIN rw_users u ON u.id = c.user_id
  WHERE c.latency > 500;
-- expressions, a LEFT join, column names of its own
CREATE VIEW rw_all (at, path, slow, who) WITH (continuous) AS
  SELECT c.ts, lower(c.url), c.latency > 500, coalesce(u.country, '?')
    FROM rw_clicks c LEFT JOIN rw_users u ON u.id = c.user_id;
\d rw_slow
SELECT name, definition, ttl, ttl_column FROM stream_ext.continuous_views WHERE name::text LIKE 'rw_%' ORDER BY 1;

-- INSERT, COPY, a rolled back transaction, a rolled back savepoint
INSERT INTO rw_clicks VALUES ('/checkout', 1, 600, '2100-01-01 11:30:00+00'),
  ('/A', 2, 700, '2100-01-01 11:40:00+00'), ('/b', 1, 100, '2100-01-01 11:41:00+00'),
  ('/old', 1, 900, '2100-01-01 10:00:00+00'), ('/nobody', 99, 900, '2100-01-01 11:50:00+00'),
  ('/null', NULL, 800, NULL), ('/checkout', 3, 501, '2100-01-01 11:59:00+00');
INSERT INTO rw_events VALUES ('/checkout', 1, 600, '2100-01-01 11:30:00+00'),
  ('/A', 2, 700, '2100-01-01 11:40:00+00'), ('/b', 1, 100, '2100-01-01 11:41:00+00'),
  ('/old', 1, 900, '2100-01-01 10:00:00+00'), ('/nobody', 99, 900, '2100-01-01 11:50:00+00'),
  ('/null', NULL, 800, NULL), ('/checkout', 3, 501, '2100-01-01 11:59:00+00');
COPY rw_clicks FROM STDIN (FORMAT csv);
/checkout,2,550,2100-01-01 11:55:00+00
/c,3,10,2100-01-01 11:56:00+00
\.
COPY rw_events FROM STDIN (FORMAT csv);
/checkout,2,550,2100-01-01 11:55:00+00
/c,3,10,2100-01-01 11:56:00+00
\.
BEGIN;
INSERT INTO rw_clicks VALUES ('/rolled-back', 1, 1000, '2100-01-01 11:58:00+00');
INSERT INTO rw_events VALUES ('/rolled-back', 1, 1000, '2100-01-01 11:58:00+00');
ROLLBACK;
BEGIN;
INSERT INTO rw_clicks VALUES ('/kept', 2, 999, '2100-01-01 11:57:00+00');
INSERT INTO rw_events VALUES ('/kept', 2, 999, '2100-01-01 11:57:00+00');
SAVEPOINT s;
INSERT INTO rw_clicks VALUES ('/savepoint', 1, 1000, '2100-01-01 11:58:00+00');
INSERT INTO rw_events VALUES ('/savepoint', 1, 1000, '2100-01-01 11:58:00+00');
ROLLBACK TO SAVEPOINT s;
-- the transaction's own rows are not visible before it commits
SELECT count(*) FROM rw_slow WHERE url = '/kept';
COMMIT;
SELECT * FROM rw_slow ORDER BY ts, url;
SELECT * FROM rw_all ORDER BY at, path;

-- exactly the defining query over the same events, before and after the
-- combiner moves the rows (expired rows aside)
CREATE VIEW rw_slow_ref AS
  SELECT c.ts, c.url, c.latency, u.country FROM rw_events c JOIN rw_users u ON u.id = c.user_id
  WHERE c.latency > 500 AND (c.ts > stream_ext.read_time() - interval '1 hour' OR c.ts IS NULL);
CREATE VIEW rw_all_ref AS
  SELECT c.ts, lower(c.url), c.latency > 500, coalesce(u.country, '?')
    FROM rw_events c LEFT JOIN rw_users u ON u.id = c.user_id;
CREATE FUNCTION rw_differences() RETURNS TABLE (view text, rows bigint) LANGUAGE sql AS $$
  SELECT 'rw_slow', count(*) FROM ((TABLE rw_slow EXCEPT ALL TABLE rw_slow_ref)
                                   UNION ALL (TABLE rw_slow_ref EXCEPT ALL TABLE rw_slow)) d
  UNION ALL
  SELECT 'rw_all', count(*) FROM ((TABLE rw_all EXCEPT ALL TABLE rw_all_ref)
                                  UNION ALL (TABLE rw_all_ref EXCEPT ALL TABLE rw_all)) d
$$;
SELECT * FROM rw_differences();
SELECT rw_merged('rw_slow'), rw_merged('rw_all');
SELECT rw_kept('rw_slow'), rw_kept('rw_all');
SELECT * FROM rw_differences();

-- ttl: rows are hidden as soon as they are older than the ttl, and the
-- reaper deletes them (a NULL time never expires)
SET stream_ext.read_time = '2100-01-01 12:45:00+00';
SELECT * FROM rw_slow ORDER BY ts, url;
SELECT * FROM rw_differences();
SELECT rw_kept('rw_slow');
SELECT stream_ext.reap_expired('rw_slow');
SELECT rw_kept('rw_slow');
SELECT stream_ext.reap_expired('rw_all');
SET stream_ext.read_time = '2100-01-01 12:00:00+00';
SELECT url FROM rw_slow ORDER BY ts, url;

-- indexes: CREATE INDEX on the view indexes the table of its kept rows,
-- and reads of the view use it
CREATE INDEX ON rw_slow (url);
CREATE INDEX rw_all_path ON rw_all (path) INCLUDE (who);
CREATE INDEX ON rw_all (lower(who));
SELECT indexname, regexp_replace(indexdef, 'state_[0-9]+', 'state_N') AS indexdef
  FROM pg_indexes WHERE schemaname = 'stream_ext_internal'
   AND tablename IN (SELECT c.relname FROM pg_class c
                       JOIN stream_ext_internal.continuous_views v ON v.state_table = c.oid
                      WHERE v.view IN ('rw_slow'::regclass, 'rw_all'::regclass))
   AND indexname NOT LIKE '%\_ttl' ORDER BY 1;
-- plans, with the view's internal table numbers left out
CREATE FUNCTION rw_plan(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
    RETURN NEXT regexp_replace(line, '(state|delta)_[0-9]+', '\1_N', 'g');
  END LOOP;
END $$;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT rw_plan($$SELECT * FROM rw_slow WHERE url = '/checkout' ORDER BY ts DESC LIMIT 20$$);
SELECT * FROM rw_slow WHERE url = '/checkout' ORDER BY ts DESC LIMIT 20;
SELECT rw_plan($$SELECT who FROM rw_all WHERE path = '/a'$$);
SELECT rw_plan($$SELECT at FROM rw_all WHERE lower(who) = 'fr'$$);
RESET enable_seqscan;
RESET enable_bitmapscan;
-- what the view cannot take
CREATE UNIQUE INDEX ON rw_slow (url);
CREATE VIEW rw_counts WITH (continuous) AS SELECT url, count(*) FROM rw_clicks GROUP BY url;
CREATE INDEX ON rw_counts (url);
CREATE INDEX ON rw_slow (no_such_column);
-- the owner drops the index (the reaper's stays the extension's)
DROP INDEX stream_ext_internal.rw_all_path;
-- an owner without rights on stream_ext_internal indexes its own view
CREATE ROLE rw_owner;
GRANT USAGE ON SCHEMA stream_ext TO rw_owner;
GRANT SELECT, INSERT ON rw_clicks TO rw_owner;
GRANT CREATE ON SCHEMA public TO rw_owner;
SET ROLE rw_owner;
CREATE VIEW rw_owned WITH (continuous) AS SELECT url, latency FROM rw_clicks WHERE latency > 800;
CREATE INDEX ON rw_owned (url);
CREATE INDEX ON rw_slow (latency);
DROP INDEX stream_ext_internal.rw_slow_url_idx;
INSERT INTO rw_clicks VALUES ('/owned', 1, 801, '2100-01-01 11:00:00+00');
SELECT * FROM rw_owned ORDER BY url;
DROP INDEX stream_ext_internal.rw_owned_url_idx;
RESET ROLE;
-- an index's expressions and predicate name the view's columns as they are now
ALTER VIEW rw_all RENAME COLUMN who TO person;
CREATE INDEX rw_all_person ON rw_all (lower(person)) WHERE rw_all.person IS NOT NULL;
SELECT regexp_replace(indexdef, 'state_[0-9]+', 'state_N') AS indexdef
  FROM pg_indexes WHERE indexname = 'rw_all_person';
DROP INDEX stream_ext_internal.rw_all_person;
ALTER VIEW rw_all RENAME COLUMN person TO who;

-- column names the extension uses elsewhere are the view's own here
CREATE VIEW rw_names WITH (continuous, ttl = '1 hour', ttl_column = 'session_start') AS
  SELECT ts AS session_start, url AS _one, latency AS writer_xid FROM rw_clicks WHERE url = '/names';
CREATE INDEX ON rw_names (_one, writer_xid);
INSERT INTO rw_clicks VALUES ('/names', 1, 5, '2100-01-01 11:30:00+00'), ('/names', 1, 6, '2100-01-01 10:30:00+00');
SELECT rw_merged('rw_names');
SELECT * FROM rw_names;
SELECT stream_ext.reap_expired('rw_names');
SELECT rw_kept('rw_names');
DROP VIEW rw_names;

-- event time: a late event is counted (and kept as late), not kept as a row
CREATE FOREIGN TABLE rw_timed (k int, ts timestamptz) SERVER stream_ext;
CREATE VIEW rw_in_time WITH (continuous, time_column = 'ts', allowed_lateness = '1 minute',
                             keep_late = true) AS SELECT k, ts FROM rw_timed;
INSERT INTO rw_timed VALUES (1, '2100-01-01 12:00:00+00'), (2, '2100-01-01 12:10:00+00');
INSERT INTO rw_timed VALUES (3, '2100-01-01 12:00:00+00'), (4, '2100-01-01 12:09:30+00');
SELECT * FROM rw_in_time ORDER BY k;
SELECT late_events, watermark FROM stream_ext.view_stats WHERE name = 'rw_in_time'::regclass;
DROP FOREIGN TABLE rw_timed CASCADE;

-- per-event errors: the event is recorded in view_errors, the others kept
CREATE VIEW rw_ratio WITH (continuous) AS SELECT url, 1000 / latency::int AS per_ms FROM rw_clicks;
INSERT INTO rw_clicks VALUES ('/x', 1, 10, NULL), ('/zero', 1, 0, NULL), ('/y', 1, 20, NULL);
SELECT * FROM rw_ratio ORDER BY url;
SELECT name, events, errors FROM stream_ext.view_stats WHERE name::text LIKE 'rw_%' ORDER BY 1;
SELECT name, sqlstate, message, split_part(event, ',', 1) AS event FROM stream_ext.view_errors
 WHERE name::text = 'rw_ratio';
SELECT stream_ext.explain_continuous_view('rw_slow');

-- truncate and drop
SELECT stream_ext.truncate_continuous_view('rw_ratio');
SELECT count(*) FROM rw_ratio;
INSERT INTO rw_clicks VALUES ('/after', 1, 50, NULL);
SELECT * FROM rw_ratio;
SELECT state_table::oid AS rw_state, delta_table::oid AS rw_delta
  FROM stream_ext_internal.continuous_views WHERE view = 'rw_slow'::regclass \gset
DROP VIEW rw_ratio;
DROP VIEW rw_slow;
SELECT count(*) FROM pg_class WHERE oid IN (:rw_state, :rw_delta) OR relname = 'rw_slow_url_idx';
DROP TABLE rw_users;
DROP TABLE rw_users CASCADE;
SELECT name FROM stream_ext.continuous_views WHERE name::text LIKE 'rw_%' ORDER BY 1;
DROP VIEW rw_owned, rw_counts;
DROP OWNED BY rw_owner;
DROP ROLE rw_owner;
DROP FOREIGN TABLE rw_clicks CASCADE;
RESET stream_ext.read_time;
DROP TABLE rw_events;
DROP FUNCTION rw_pending, rw_kept, rw_merged, rw_differences, rw_plan;
