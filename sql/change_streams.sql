--
-- change_streams: a stream of a continuous view's changes (old row, new row),
-- emitted by the combiner after its merges
--
CREATE FOREIGN TABLE cs_s (url text, n int) SERVER stream_ext;
CREATE VIEW cs_v WITH (continuous) AS
  SELECT url, count(*) AS n, sum(n) AS total, avg(n) AS mean FROM cs_s
  GROUP BY url HAVING count(*) < 5;

-- wait until the combiner merged the committed deltas of view v and emitted
-- the changes they made (its changed groups are then empty)
CREATE FUNCTION cs_settled(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  vid int := (SELECT id FROM stream_ext_internal.continuous_views WHERE view = v);
  pending bigint;
BEGIN
  FOR i IN 1..600 LOOP
    EXECUTE format('SELECT (SELECT count(*) FROM stream_ext_internal.%I
                             WHERE stream_ext_internal.xid_committed(writer_xid))',
                   'delta_' || vid) INTO pending;
    IF pending = 0 AND to_regclass('stream_ext_internal.changed_' || vid) IS NOT NULL THEN
      EXECUTE format('SELECT count(*) FROM stream_ext_internal.%I', 'changed_' || vid)
        INTO pending;
    END IF;
    IF pending = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
-- wait until the committed deltas of a transform went to its output table
CREATE FUNCTION cs_moved(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  FOR i IN 1..600 LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE stream_ext_internal.xid_committed(writer_xid)',
                   (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v))
      INTO n;
    IF n = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;

-- a row of the view before its change stream exists
INSERT INTO cs_s VALUES ('/a', 1);

-- create_change_stream and its errors
SELECT stream_ext.create_change_stream('cs_v', 'cs_changes');
SELECT * FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
\d cs_changes
SELECT stream_ext.create_change_stream('cs_v', 'cs_changes2');
SELECT stream_ext.create_change_stream('cs_s', 'cs_changes2');
CREATE TABLE cs_table (a int);
SELECT stream_ext.create_change_stream('cs_table', 'cs_changes2');
CREATE VIEW cs_plain AS SELECT 1 AS one;
SELECT stream_ext.create_change_stream('cs_plain', 'cs_changes2');
CREATE VIEW cs_rows WITH (continuous) AS SELECT url, n FROM cs_s;
SELECT stream_ext.create_change_stream('cs_rows', 'cs_changes2');
CREATE VIEW cs_v2 WITH (continuous) AS SELECT url, max(n) FROM cs_s GROUP BY url;
SELECT stream_ext.create_change_stream('cs_v2', 'cs_table');
SELECT stream_ext.create_change_stream('cs_v2', 'cs_no_schema.cs_changes2');
CREATE ROLE regress_cs_other;
SET ROLE regress_cs_other;
SELECT stream_ext.create_change_stream('cs_v2', 'cs_changes2');
RESET ROLE;
-- nothing was left behind by the failed calls
SELECT count(*) FROM pg_class WHERE relname = 'cs_changes2';
SELECT view, stream FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
DROP VIEW cs_rows, cs_v2, cs_plain;
DROP TABLE cs_table;

-- every event, as a row-keeping view logs it, and an alert: a transform
-- into a table of the groups whose count reached 3
CREATE VIEW cs_log WITH (continuous) AS
  SELECT old, new, final, arrival_timestamp FROM cs_changes;
CREATE TABLE cs_alerts (url text, n bigint, was bigint);
CREATE VIEW cs_alert WITH (continuous, output = 'cs_alerts') AS
  SELECT (new).url, (new).n, (old).n FROM cs_changes
  WHERE (new).n >= 3 AND coalesce((old).n, 0) < 3;
-- its events come from the combiner: no trigger on it (it would never fire),
-- and its changes_of option is the extension's
CREATE FUNCTION cs_skip() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER cs_skip BEFORE INSERT ON cs_changes FOR EACH ROW EXECUTE FUNCTION cs_skip();
ALTER FOREIGN TABLE cs_changes OPTIONS (DROP changes_of);
ALTER FOREIGN TABLE cs_s OPTIONS (ADD changes_of 'cs_v');
-- nor its columns, which the combiner writes
ALTER FOREIGN TABLE cs_changes DROP COLUMN final;
ALTER FOREIGN TABLE cs_changes ADD COLUMN extra int;
ALTER FOREIGN TABLE cs_changes RENAME COLUMN new TO nw;
ALTER FOREIGN TABLE cs_changes ALTER COLUMN final SET DEFAULT true;
DROP FUNCTION cs_skip();
-- a transform of the change stream into the view's own stream (or into a
-- stream that reaches it) is a cycle: refused, as between transforms
CREATE VIEW cs_loop WITH (continuous, output = 'cs_s') AS
  SELECT (new).url, (new).n::int FROM cs_changes;
CREATE FOREIGN TABLE cs_mid (url text, n int) SERVER stream_ext;
CREATE VIEW cs_mid_to_s WITH (continuous, output = 'cs_s') AS SELECT url, n FROM cs_mid;
CREATE VIEW cs_loop WITH (continuous, output = 'cs_mid') AS
  SELECT (new).url, (new).n::int FROM cs_changes;
DROP FOREIGN TABLE cs_mid CASCADE;
-- also when the change stream was made after this transaction's snapshot
-- (the check read the change streams in it, and let the cycle through)
CREATE VIEW cs_other WITH (continuous) AS SELECT url, count(*) AS n FROM cs_s GROUP BY url;
CREATE EXTENSION dblink;
SELECT dblink_connect('cs_other_session', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user)) AS connected;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 AS snapshot_taken FROM stream_ext.continuous_views;
SELECT * FROM dblink('cs_other_session',
         $$SELECT stream_ext.create_change_stream('cs_other', 'cs_other_changes')::text$$) AS t(made text);
CREATE VIEW cs_loop WITH (continuous, output = 'cs_s') AS
  SELECT (new).url, (new).n::int FROM cs_other_changes;
ROLLBACK;
SELECT dblink_disconnect('cs_other_session');
DROP EXTENSION dblink;
SET client_min_messages = warning;
DROP VIEW cs_other CASCADE;
RESET client_min_messages;
-- it reads the view as committed once it holds its lock: not in a
-- transaction whose snapshot is older (a change merged meanwhile was never
-- emitted); truncate_continuous_view of a view with one neither
CREATE VIEW cs_rr WITH (continuous) AS SELECT url, count(*) AS n FROM cs_s GROUP BY url;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT stream_ext.create_change_stream('cs_rr', 'cs_rr_changes');
ROLLBACK;
SELECT stream_ext.create_change_stream('cs_rr', 'cs_rr_changes')::text AS made;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT stream_ext.truncate_continuous_view('cs_rr');
ROLLBACK;
SET client_min_messages = warning;
DROP VIEW cs_rr CASCADE;
RESET client_min_messages;

-- the events logged since the last call, by row of the view, in arrival
-- order (one emission, one transaction of the combiner, one
-- arrival_timestamp; the changes of one transaction can come in two
-- emissions, when the combiner merged its deltas in two rounds)
CREATE TABLE cs_shown (upto timestamptz);
INSERT INTO cs_shown VALUES ('-infinity');
CREATE FUNCTION cs_new_events() RETURNS TABLE (old text, new text, final boolean)
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT cs_settled('cs_v') THEN
    RAISE EXCEPTION 'the combiner did not emit the changes of cs_v';
  END IF;
  RETURN QUERY
    SELECT l.old::text, l.new::text, l.final
      FROM cs_log l WHERE l.arrival_timestamp > (SELECT upto FROM cs_shown)
     ORDER BY (coalesce(l.new, l.old)).url COLLATE "C" NULLS FIRST, l.arrival_timestamp;
  UPDATE cs_shown SET upto = (SELECT max(arrival_timestamp) FROM cs_log)
   WHERE EXISTS (SELECT 1 FROM cs_log);
END $$;

-- new rows (old NULL, also for a NULL key) and an updated row, whose old is
-- its row when the stream was created
INSERT INTO cs_s VALUES ('/a', 2), ('/b', NULL), (NULL, 5);
SELECT * FROM cs_new_events();
SELECT * FROM cs_v ORDER BY url;

-- a rolled back transaction and a rolled back savepoint emit nothing; the
-- committed part of the transaction does
BEGIN;
INSERT INTO cs_s VALUES ('/rolled-back', 1), ('/a', 100);
ROLLBACK;
BEGIN;
INSERT INTO cs_s VALUES ('/b', 1);
SAVEPOINT sp;
INSERT INTO cs_s VALUES ('/savepoint', 1), ('/b', 100);
ROLLBACK TO sp;
COMMIT;
SELECT * FROM cs_new_events();

-- changes are coalesced per merge: while a second session keeps the
-- combiner from merging cs_v, three transactions change /a, then one event
-- carries /a from before the first to after the third
CREATE EXTENSION dblink;
SELECT dblink_connect('cs_locker', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user)) AS connected;
SELECT dblink_exec('cs_locker', 'BEGIN');
SELECT dblink_exec('cs_locker', format('LOCK TABLE %s IN SHARE MODE',
         (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'cs_v'::regclass)));
INSERT INTO cs_s VALUES ('/a', 3);
INSERT INTO cs_s VALUES ('/a', 4);
INSERT INTO cs_s VALUES ('/b', 7);
SELECT dblink_exec('cs_locker', 'COMMIT');
SELECT * FROM cs_new_events();

-- a row leaving the view (HAVING): new NULL; its later changes are not
-- rows of the view and emit nothing, until it is back
INSERT INTO cs_s VALUES ('/a', 5);
SELECT * FROM cs_new_events();
INSERT INTO cs_s VALUES ('/a', 6), ('/c', 1);
SELECT * FROM cs_new_events();

-- a group reaching a count of 3 in one transaction, from nothing
INSERT INTO cs_s VALUES ('/d', 1), ('/d', 2), ('/d', 3);
SELECT * FROM cs_new_events();

-- the alert fired once for each group whose count reached 3 or more from
-- less: /a and /b in the coalesced event, /d from nothing; not for /c
SELECT cs_moved('cs_alert');
SELECT * FROM cs_alerts ORDER BY url;

-- truncate_continuous_view: every row leaves, also a row an emission under
-- way adds.  The emission of /e takes a while to apply its events to
-- cs_held, whose function sleeps (within the view's time limit); a second
-- session truncates meanwhile: it waits for the emission.
CREATE FUNCTION cs_slow(u text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_sleep(1.5); RETURN u; END $$;
CREATE VIEW cs_held WITH (continuous) AS
  SELECT cs_slow((c.new).url) AS url, count(*) FROM cs_changes c GROUP BY 1;
CREATE FUNCTION cs_emission_under_way() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..3000 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF EXISTS (SELECT FROM pg_stat_activity
                WHERE query LIKE 'stream_ext: applying % events to continuous view %cs_held') THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN false;
END $$;
SELECT dblink_connect('cs_truncator', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user)) AS connected;
INSERT INTO cs_s VALUES ('/e', 1);
SELECT cs_emission_under_way() AS emission_under_way;
SELECT dblink_send_query('cs_truncator', $$SELECT stream_ext.truncate_continuous_view('cs_v')$$);
-- the truncation waits for the emission (rather than finishing without it)
DO $$
DECLARE
  emitted regclass := format('stream_ext_internal.emitted_%s',
                             (SELECT id FROM stream_ext_internal.continuous_views WHERE view = 'cs_v'::regclass));
BEGIN
  FOR i IN 1..3000 LOOP
    IF EXISTS (SELECT FROM pg_locks WHERE relation = emitted AND NOT granted) THEN RETURN; END IF;
    IF dblink_is_busy('cs_truncator') = 0 THEN
      RAISE WARNING 'the truncation finished while an emission was under way';
      RETURN;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RAISE WARNING 'the truncation neither waits nor finished';
END $$;
SELECT * FROM dblink_get_result('cs_truncator') AS t(r text);
SELECT dblink_disconnect('cs_truncator');
SELECT dblink_disconnect('cs_locker');
DROP EXTENSION dblink;
SELECT * FROM cs_new_events();
DROP VIEW cs_held;
DROP FUNCTION cs_slow(text), cs_emission_under_way();
INSERT INTO cs_s VALUES ('/b', 1);
SELECT * FROM cs_new_events();

-- the last new row of every row of the view is the view (and a row that left
-- has a last new NULL)
WITH last AS (
  SELECT DISTINCT ON ((coalesce(new, old)).url) new
    FROM cs_log ORDER BY (coalesce(new, old)).url, arrival_timestamp DESC)
SELECT (SELECT count(*) FROM last WHERE new IS NOT NULL) AS rows_with_a_last_new,
       (SELECT count(*) FROM cs_v) AS view_rows,
       NOT EXISTS (SELECT * FROM cs_v v WHERE NOT EXISTS
                     (SELECT 1 FROM last l WHERE l.new *= v)) AS view_equals_last_new;

-- privileges: the stream is its creator's; reading it (through a view)
-- needs SELECT on it, not on the view of its rows
CREATE ROLE regress_cs_owner;
GRANT CREATE ON SCHEMA public TO regress_cs_owner, regress_cs_other;
GRANT SELECT ON cs_s TO regress_cs_owner;
SET ROLE regress_cs_owner;
CREATE VIEW cs_owned WITH (continuous) AS SELECT url, count(*) AS n FROM cs_s GROUP BY url;
SELECT stream_ext.create_change_stream('cs_owned', 'cs_owned_changes');
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class
 WHERE relname = 'cs_owned_changes';
RESET ROLE;
SET ROLE regress_cs_other;
-- no rights on the view: its change stream is not listed, nor readable
SELECT count(*) FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
CREATE VIEW cs_spy WITH (continuous) AS SELECT new FROM cs_owned_changes;
INSERT INTO cs_owned_changes VALUES (NULL, NULL, false);
RESET ROLE;
-- granted SELECT on the stream, the other role's view gets the events
GRANT SELECT ON cs_owned_changes TO regress_cs_other;
SET ROLE regress_cs_other;
CREATE VIEW cs_spy WITH (continuous) AS SELECT (new).url, (new).n FROM cs_owned_changes;
RESET ROLE;
INSERT INTO cs_s VALUES ('/owned', 1);
SELECT cs_settled('cs_owned');
SET ROLE regress_cs_other;
SELECT * FROM cs_spy WHERE url = '/owned';
SELECT count(*) FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
RESET ROLE;
-- the owner sees its change stream listed
SET ROLE regress_cs_owner;
SELECT * FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
RESET ROLE;
-- a revoked SELECT on the stream refuses new readers
REVOKE SELECT ON cs_owned_changes FROM regress_cs_other;
SET ROLE regress_cs_other;
CREATE VIEW cs_spy2 WITH (continuous) AS SELECT new FROM cs_owned_changes;
RESET ROLE;
DROP VIEW cs_spy;
-- the view's CASCADE drops its change stream (and the stream's tables)
DROP VIEW cs_owned CASCADE;
SELECT count(*) FROM pg_class WHERE relname = 'cs_owned_changes';

-- DROP of the stream needs CASCADE for its views; it drops the view's
-- change tables, and the view gets a new change stream, from its rows now
DROP FOREIGN TABLE cs_changes;
DROP FOREIGN TABLE cs_changes CASCADE;
SELECT * FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'stream_ext_internal'
   AND c.relkind = 'r' AND (c.relname LIKE 'changed\_%' OR c.relname LIKE 'emitted\_%');
INSERT INTO cs_s VALUES ('/b', 2);
SELECT cs_settled('cs_v');
SELECT stream_ext.create_change_stream('cs_v', 'cs_changes');
CREATE VIEW cs_log2 WITH (continuous) AS SELECT old, new FROM cs_changes;
INSERT INTO cs_s VALUES ('/b', 3);
SELECT cs_settled('cs_v');
SELECT old, new FROM cs_log2;

-- only stream_ext writes into a change stream: INSERT, COPY, a transform
-- into it and a Kafka consumer of it are refused
INSERT INTO cs_changes (final) VALUES (true);
COPY cs_changes (final) FROM STDIN;
t
\.
CREATE VIEW cs_fake WITH (continuous, output = 'cs_changes') AS
  SELECT NULL::cs_v, NULL::cs_v, true FROM cs_s;
SELECT stream_ext.kafka_consume('cs_changes', 'topic', 'localhost:1');
SELECT old, new FROM cs_log2;

-- DROP VIEW of the source needs CASCADE (the stream's columns are of its
-- row type); CASCADE drops the stream, its views and the change tables
\set VERBOSITY terse
DROP VIEW cs_v;
DROP VIEW cs_v CASCADE;
\set VERBOSITY default
SELECT count(*) FROM pg_class WHERE relname IN ('cs_changes', 'cs_log2');
SELECT * FROM stream_ext.change_streams WHERE view::text LIKE 'cs\_%';
SELECT count(*) FROM stream_ext_internal.change_streams;
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'stream_ext_internal'
           AND c.relkind = 'r' AND (c.relname LIKE 'changed\_%' OR c.relname LIKE 'emitted\_%')) = 0 AS no_change_tables,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'stream_ext_internal'
           AND c.relkind = 'r' AND (c.relname LIKE 'state\_%' OR c.relname LIKE 'delta\_%')) =
       2 * (SELECT count(*) FROM stream_ext_internal.continuous_views) AS no_orphans;

-- keys whose equal values print differently name one group: 1.0 and 1.00,
-- -0 and 0, '1 day' and '24 hours' (the view's row keeps the first)
CREATE FOREIGN TABLE cs_eq (n numeric, f float8, i interval) SERVER stream_ext;
CREATE VIEW cs_eq_v WITH (continuous) AS
  SELECT n, f, i, count(*) AS c FROM cs_eq GROUP BY n, f, i;
SELECT stream_ext.create_change_stream('cs_eq_v', 'cs_eq_changes');
CREATE VIEW cs_eq_log WITH (continuous) AS
  SELECT (old).c AS old_c, (new).c AS new_c, arrival_timestamp AS at FROM cs_eq_changes;
INSERT INTO cs_eq VALUES (1.0, 0, '1 day');
SELECT cs_settled('cs_eq_v');
INSERT INTO cs_eq VALUES (1.00, '-0', '24 hours');
SELECT cs_settled('cs_eq_v');
INSERT INTO cs_eq VALUES (1.000, 0, '1 day');
SELECT cs_settled('cs_eq_v');
SELECT old_c, new_c FROM cs_eq_log ORDER BY at;
SELECT * FROM cs_eq_v;
DROP FOREIGN TABLE cs_eq CASCADE;
-- text under a nondeterministic collation has no such form: refused
CREATE COLLATION cs_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE FOREIGN TABLE cs_ci_s (t text COLLATE cs_ci) SERVER stream_ext;
CREATE VIEW cs_ci_v WITH (continuous) AS SELECT t, count(*) FROM cs_ci_s GROUP BY t;
SELECT stream_ext.create_change_stream('cs_ci_v', 'cs_ci_changes');
DROP FOREIGN TABLE cs_ci_s CASCADE;
DROP COLLATION cs_ci;
-- keys that cannot be listed for the emission's prefilter: arrays (NULL,
-- empty, of different lengths) and a type whose = is an extension's (ltree's,
-- not in pg_catalog); their groups are found by their identity alone
CREATE EXTENSION ltree;
CREATE FOREIGN TABLE cs_arr (tags text[], k int, p ltree) SERVER stream_ext;
CREATE VIEW cs_arr_v WITH (continuous) AS
  SELECT tags, k, p, count(*) AS c FROM cs_arr GROUP BY tags, k, p;
SELECT stream_ext.create_change_stream('cs_arr_v', 'cs_arr_changes');
CREATE VIEW cs_arr_log WITH (continuous) AS
  SELECT (coalesce(new, old)).tags, (coalesce(new, old)).k, (coalesce(new, old)).p,
         (old).c AS old_c, (new).c AS new_c, arrival_timestamp AS at FROM cs_arr_changes;
INSERT INTO cs_arr VALUES ('{a,b}', 1, 'top.a'), (NULL, 1, 'top'), ('{}', 2, NULL);
SELECT cs_settled('cs_arr_v');
INSERT INTO cs_arr VALUES ('{a}', 1, 'top.a'), ('{a,b}', 1, 'top.a');
SELECT cs_settled('cs_arr_v');
SELECT tags, k, p, old_c, new_c FROM cs_arr_log ORDER BY tags NULLS FIRST, k, new_c;
SELECT count(*) AS emission_errors FROM stream_ext.view_errors WHERE name = 'cs_arr_v'::regclass;
DROP FOREIGN TABLE cs_arr CASCADE;
DROP EXTENSION ltree;

-- window closed: a row of an event-time view whose end the watermark
-- passed gets one more event, final, with the complete row: tumbling
-- buckets (date_bin of the time column), hopping windows and sessions
CREATE FOREIGN TABLE cs_tw (k int, ts timestamptz(0)) SERVER stream_ext;
CREATE VIEW cs_tumble WITH (continuous, time_column = 'ts', allowed_lateness = '0 seconds') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, k, count(*) AS c FROM cs_tw
  GROUP BY minute, k;
SELECT stream_ext.create_continuous_view('cs_hop', 'SELECT k, count(*) AS c FROM cs_tw GROUP BY k',
  ARRAY['time_column=ts', 'hop_size=2 minutes', 'hop_slide=1 minute', 'allowed_lateness=0 seconds']);
CREATE VIEW cs_session WITH (continuous, session_gap = '30 seconds', time_column = 'ts',
                             allowed_lateness = '0 seconds') AS
  SELECT k, count(*) AS c FROM cs_tw GROUP BY k;
SELECT count(stream_ext.create_change_stream(v, v || '_changes'))
  FROM unnest(ARRAY['cs_tumble', 'cs_hop', 'cs_session']) v;
CREATE VIEW cs_tumble_closed WITH (continuous) AS
  SELECT new::text AS r, old::text = new::text AS complete FROM cs_tumble_changes WHERE final;
CREATE VIEW cs_hop_closed WITH (continuous) AS
  SELECT new::text AS r, old::text = new::text AS complete FROM cs_hop_changes WHERE final;
CREATE VIEW cs_session_closed WITH (continuous) AS
  SELECT new::text AS r, old::text = new::text AS complete FROM cs_session_changes WHERE final;
INSERT INTO cs_tw VALUES (1, '2026-01-01 00:00:10+00');
INSERT INTO cs_tw VALUES (1, '2026-01-01 00:01:10+00'), (2, '2026-01-01 00:01:20+00');
INSERT INTO cs_tw VALUES (1, '2026-01-01 00:02:10+00');
-- the watermark is 00:02:10: three buckets, three hopping windows and
-- three sessions are closed
CREATE FUNCTION cs_wait_closed(views regclass[], n int) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v regclass;
  c bigint;
BEGIN
  FOR i IN 1..600 LOOP
    c := n;
    FOREACH v IN ARRAY views LOOP
      EXECUTE format('SELECT least(count(*), %s) FROM %s', c, v) INTO c;
    END LOOP;
    IF c >= n THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SELECT cs_wait_closed('{cs_tumble_closed,cs_hop_closed,cs_session_closed}', 3);
SET TimeZone = 'UTC';
SELECT * FROM cs_tumble_closed ORDER BY r;
SELECT * FROM cs_hop_closed ORDER BY r;
SELECT * FROM cs_session_closed ORDER BY r;
RESET TimeZone;
\set VERBOSITY terse
DROP FOREIGN TABLE cs_tw CASCADE;
\set VERBOSITY default

-- a window ending past the last time PostgreSQL has (a session or bucket of
-- an event near 294276 AD) is never final; its end no longer fails every
-- emission of the view, and the other rows are closed as the watermark passes
CREATE FOREIGN TABLE cs_far (k int, ts timestamptz) SERVER stream_ext;
CREATE VIEW cs_far_tumble WITH (continuous, time_column = 'ts', allowed_lateness = '0 seconds') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, k, count(*) AS c FROM cs_far
  GROUP BY minute, k;
CREATE VIEW cs_far_session WITH (continuous, session_gap = '30 seconds', time_column = 'ts',
                                 allowed_lateness = '0 seconds') AS
  SELECT k, count(*) AS c FROM cs_far GROUP BY k;
SELECT count(stream_ext.create_change_stream(v, v || '_changes'))
  FROM unnest(ARRAY['cs_far_tumble', 'cs_far_session']) v;
CREATE VIEW cs_far_tumble_closed WITH (continuous) AS
  SELECT new::text AS r FROM cs_far_tumble_changes WHERE final;
CREATE VIEW cs_far_session_closed WITH (continuous) AS
  SELECT new::text AS r FROM cs_far_session_changes WHERE final;
INSERT INTO cs_far VALUES (1, '2026-01-01 00:00:10+00');
INSERT INTO cs_far VALUES (2, '294276-12-31 23:59:59+00');
SELECT cs_wait_closed('{cs_far_tumble_closed,cs_far_session_closed}', 1);
SET TimeZone = 'UTC';
SELECT * FROM cs_far_tumble_closed ORDER BY r;
SELECT * FROM cs_far_session_closed ORDER BY r;
SELECT * FROM cs_far_session ORDER BY k;
RESET TimeZone;
\set VERBOSITY terse
DROP FOREIGN TABLE cs_far CASCADE;
\set VERBOSITY default

-- a view whose rows cannot be read (a division by zero in its select list):
-- its changes wait, and each failure to emit them is recorded in view_errors;
-- once the row can be read again, the change is emitted
CREATE FOREIGN TABLE cs_div (k int, v int) SERVER stream_ext;
CREATE VIEW cs_div_v WITH (continuous) AS SELECT k, 100 / sum(v) AS q FROM cs_div GROUP BY k;
SELECT stream_ext.create_change_stream('cs_div_v', 'cs_div_changes');
CREATE VIEW cs_div_seen WITH (continuous) AS SELECT (new).k, (new).q FROM cs_div_changes;
INSERT INTO cs_div VALUES (1, 1), (1, -1);
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT FROM stream_ext.view_errors WHERE name = 'cs_div_v'::regclass);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT sqlstate, message, event FROM stream_ext.view_errors WHERE name = 'cs_div_v'::regclass LIMIT 1;
INSERT INTO cs_div VALUES (1, 4);
DO $$
BEGIN
  FOR i IN 1..1200 LOOP
    EXIT WHEN EXISTS (SELECT FROM cs_div_seen);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT * FROM cs_div_seen;
\set VERBOSITY terse
DROP FOREIGN TABLE cs_div CASCADE;
\set VERBOSITY default

DROP TABLE cs_alerts, cs_shown;
DROP FOREIGN TABLE cs_s CASCADE;
DROP FUNCTION cs_settled(regclass), cs_moved(regclass), cs_new_events(),
  cs_wait_closed(regclass[], int);
REVOKE CREATE ON SCHEMA public FROM regress_cs_owner, regress_cs_other;
DROP ROLE regress_cs_owner, regress_cs_other;
