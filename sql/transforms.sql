--
-- transforms: continuous views with output write their rows into a table or
-- a stream, exactly once
--
CREATE FOREIGN TABLE tf_requests (ts timestamptz, url text, status int, user_id bigint) SERVER stream_ext;
CREATE FOREIGN TABLE tf_errors (ts timestamptz, url text, status bigint) SERVER stream_ext;
CREATE TABLE tf_users (id bigint PRIMARY KEY, country text);
INSERT INTO tf_users VALUES (1, 'fr'), (2, 'de');
-- the same events in a plain table, written in the same transactions
CREATE TABLE tf_events (ts timestamptz, url text, status int, user_id bigint);
-- a target table with a constraint and a trigger
CREATE TABLE tf_audit (ts timestamptz, url text, status int CHECK (status < 600), country text);
CREATE TABLE tf_audit_trail (url text, by_user name, restricted boolean);
CREATE FUNCTION tf_audit_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.tf_audit_trail VALUES (NEW.url, current_user,
                                     stream_ext_internal.in_security_restricted_operation());
  IF NEW.url = '/admin/trigger-fails' THEN
    RAISE EXCEPTION 'trigger refuses %', NEW.url;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tf_audit_note AFTER INSERT ON tf_audit FOR EACH ROW EXECUTE FUNCTION tf_audit_note();

-- rows of committed writers not yet in a table transform's output
CREATE FUNCTION tf_pending(v regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s WHERE stream_ext_internal.xid_committed(writer_xid)',
                 (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v)) INTO n;
  RETURN n;
END $$;
CREATE FUNCTION tf_moved(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..400 LOOP
    IF tf_pending(v) = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;

-- into a stream, whose views see the rows; into a table, with a join
CREATE VIEW tf_to_errors WITH (continuous, output = 'tf_errors') AS
  SELECT ts, url, status FROM tf_requests WHERE status >= 500;
CREATE VIEW tf_error_rate WITH (continuous) AS
  SELECT url, count(*), max(status) FROM tf_errors GROUP BY url;
CREATE VIEW tf_to_audit WITH (continuous, output = 'tf_audit') AS
  SELECT r.ts, r.url, r.status, u.country FROM tf_requests r LEFT JOIN tf_users u ON u.id = r.user_id
  WHERE r.url LIKE '/admin%';
-- a second stage: a transform of the transformed rows into a table
CREATE TABLE tf_server_errors (url text, status bigint);
CREATE VIEW tf_to_server_errors WITH (continuous, output = 'tf_server_errors') AS
  SELECT url, status FROM tf_errors WHERE status >= 503;
SELECT name, output FROM stream_ext.continuous_views WHERE name::text LIKE 'tf_%' ORDER BY 1;
-- the transform's columns are its output's, converted to their types
\d tf_to_errors

-- INSERT, COPY, a rolled back transaction, a rolled back savepoint
INSERT INTO tf_requests VALUES ('2100-01-01 10:00', '/a', 500, 1), ('2100-01-01 10:01', '/a', 200, 1),
  ('2100-01-01 10:02', '/admin/x', 503, 2), ('2100-01-01 10:03', '/admin/y', 200, NULL);
INSERT INTO tf_events VALUES ('2100-01-01 10:00', '/a', 500, 1), ('2100-01-01 10:01', '/a', 200, 1),
  ('2100-01-01 10:02', '/admin/x', 503, 2), ('2100-01-01 10:03', '/admin/y', 200, NULL);
COPY tf_requests FROM STDIN (FORMAT csv);
2100-01-01 10:04,/b,502,1
2100-01-01 10:05,/admin/z,504,1
\.
COPY tf_events FROM STDIN (FORMAT csv);
2100-01-01 10:04,/b,502,1
2100-01-01 10:05,/admin/z,504,1
\.
BEGIN;
INSERT INTO tf_requests VALUES ('2100-01-01 10:06', '/rolled-back', 500, 1), ('2100-01-01 10:06', '/admin/rolled-back', 500, 1);
ROLLBACK;
BEGIN;
INSERT INTO tf_requests VALUES ('2100-01-01 10:07', '/c', 501, 2);
INSERT INTO tf_events VALUES ('2100-01-01 10:07', '/c', 501, 2);
SAVEPOINT s;
INSERT INTO tf_requests VALUES ('2100-01-01 10:08', '/savepoint', 500, 1), ('2100-01-01 10:08', '/admin/savepoint', 200, 1);
ROLLBACK TO s;
INSERT INTO tf_requests VALUES ('2100-01-01 10:09', '/admin/after', 200, 2);
INSERT INTO tf_events VALUES ('2100-01-01 10:09', '/admin/after', 200, 2);
COMMIT;

-- the stream's view saw exactly the transformed rows of committed writers
SELECT * FROM tf_error_rate ORDER BY url;
(SELECT url, count(*), max(status)::bigint FROM tf_events WHERE status >= 500 GROUP BY url
 EXCEPT SELECT * FROM tf_error_rate)
UNION ALL
(SELECT * FROM tf_error_rate
 EXCEPT SELECT url, count(*), max(status)::bigint FROM tf_events WHERE status >= 500 GROUP BY url);
-- the table gets them once the combiner moved them; the trigger ran as the
-- view's owner, restricted
SELECT tf_moved('tf_to_audit'), tf_moved('tf_to_server_errors');
SELECT ts, url, status, country FROM tf_audit ORDER BY ts;
(SELECT e.ts, e.url, e.status, u.country FROM tf_events e LEFT JOIN tf_users u ON u.id = e.user_id
 WHERE e.url LIKE '/admin%' EXCEPT ALL SELECT * FROM tf_audit)
UNION ALL
(SELECT * FROM tf_audit EXCEPT ALL
 SELECT e.ts, e.url, e.status, u.country FROM tf_events e LEFT JOIN tf_users u ON u.id = e.user_id
 WHERE e.url LIKE '/admin%');
SELECT * FROM tf_audit_trail ORDER BY url;
SELECT * FROM tf_server_errors ORDER BY url;
-- reading a transform shows the rows on their way to a table output (none
-- now), never a stream output's
SELECT count(*) FROM tf_to_audit;
SELECT count(*) FROM tf_to_errors;

-- rows the table rejects (a constraint, the trigger) are recorded in
-- view_errors; the rest goes in
INSERT INTO tf_requests VALUES ('2100-01-01 11:00', '/admin/too-big', 700, 1),
  ('2100-01-01 11:01', '/admin/fine', 404, 1), ('2100-01-01 11:02', '/admin/trigger-fails', 200, 1),
  ('2100-01-01 11:03', '/admin/fine-too', 200, 2);
SELECT tf_moved('tf_to_audit');
SELECT url, status FROM tf_audit WHERE ts >= '2100-01-01 11:00' ORDER BY ts;
SELECT name, sqlstate, message, event LIKE '%/admin/too-big%' OR event LIKE '%/admin/trigger-fails%' AS has_row
  FROM stream_ext.view_errors WHERE name = 'tf_to_audit'::regclass ORDER BY sqlstate;
SELECT url FROM tf_audit_trail WHERE url LIKE '/admin/%f%' ORDER BY url;

-- CREATE-time errors
CREATE VIEW tf_bad WITH (continuous, output = 'tf_requests') AS
  SELECT ts, url, status, user_id FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_requests') AS
  SELECT ts, url, status::int, 0::bigint FROM tf_errors;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit') AS SELECT ts, url FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit') AS
  SELECT ts, url, status, country, 1 FROM tf_requests, tf_users;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit') AS
  SELECT ts, url, ts, url FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit') AS
  SELECT max(ts), url, 1, 'x' FROM tf_requests GROUP BY url;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit', ttl = '1 hour', ttl_column = 'ts') AS
  SELECT ts, url, status, 'x' FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_no_such_table') AS SELECT ts FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_error_rate') AS SELECT url, 1::bigint, 1::bigint FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit', output = 'tf_audit') AS SELECT ts FROM tf_requests;
SELECT stream_ext.create_continuous_view('tf_bad', 'SELECT ts, url FROM tf_requests', ARRAY['output=tf_errors']);
-- a role without INSERT on the output
CREATE ROLE regress_tf_owner;
GRANT SELECT ON tf_requests TO regress_tf_owner;
GRANT CREATE ON SCHEMA public TO regress_tf_owner;
SET ROLE regress_tf_owner;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_audit') AS SELECT ts, url, status, 'x' FROM tf_requests;
CREATE VIEW tf_bad WITH (continuous, output = 'tf_errors') AS SELECT ts, url, status FROM tf_requests;
RESET ROLE;
-- with it: the rows go in as the owner; revoked, they wait until it is granted again
GRANT INSERT ON tf_server_errors TO regress_tf_owner;
SET ROLE regress_tf_owner;
CREATE VIEW tf_owned WITH (continuous, output = 'tf_server_errors') AS
  SELECT url, status FROM tf_requests WHERE url = '/owned';
RESET ROLE;
REVOKE INSERT ON tf_server_errors FROM regress_tf_owner;
INSERT INTO tf_requests VALUES ('2100-01-01 12:00', '/owned', 404, 1);
SELECT pg_sleep(1);
SELECT count(*) FROM tf_server_errors WHERE url = '/owned';
SELECT url, status FROM tf_owned;
-- and view_errors says why (without an event; noted again at most once a minute)
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN EXISTS (SELECT FROM stream_ext.view_errors WHERE name = 'tf_owned'::regclass);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT sqlstate, message, event FROM stream_ext.view_errors WHERE name = 'tf_owned'::regclass LIMIT 1;
GRANT INSERT ON tf_server_errors TO regress_tf_owner;
SELECT tf_moved('tf_owned');
SELECT url, status FROM tf_server_errors WHERE url = '/owned';
SELECT count(*) FROM tf_owned;

-- the output cannot be dropped, nor its used columns dropped or retyped,
-- without CASCADE
DROP TABLE tf_audit;
ALTER TABLE tf_audit DROP COLUMN country;
ALTER TABLE tf_audit ALTER COLUMN status TYPE bigint;
DROP FOREIGN TABLE tf_errors;
-- a column added to the output takes its default
ALTER TABLE tf_server_errors ADD COLUMN noted boolean DEFAULT true;
INSERT INTO tf_requests VALUES ('2100-01-01 12:01', '/owned', 403, 1);
SELECT tf_moved('tf_owned');
SELECT url, status, noted FROM tf_server_errors WHERE url = '/owned' ORDER BY status;
-- CASCADE drops the transforms, and nothing is left behind
DROP FOREIGN TABLE tf_errors CASCADE;
DROP TABLE tf_audit CASCADE;
DROP VIEW tf_owned;
SELECT name FROM stream_ext.continuous_views WHERE name::text LIKE 'tf_%' ORDER BY 1;
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'stream_ext_internal'
           AND (c.relname LIKE 'state\_%' OR c.relname LIKE 'delta\_%')) =
       2 * (SELECT count(*) FROM stream_ext_internal.continuous_views) AS no_orphans;

-- an identity column GENERATED ALWAYS cannot be filled (the writer's own
-- insert bypassed ALWAYS, the combiner's was refused for every row)
CREATE FOREIGN TABLE tf_id_in (url text) SERVER stream_ext;
CREATE TABLE tf_id_out (id bigint GENERATED ALWAYS AS IDENTITY, url text);
CREATE VIEW tf_to_id WITH (continuous, output = 'tf_id_out') AS SELECT 0::bigint, url FROM tf_id_in;
DROP TABLE tf_id_out;
DROP FOREIGN TABLE tf_id_in;

-- a row the output table's row-security policy rejects (42501) is that row's
-- error, as a constraint's: recorded, and the others go in (a revoked
-- privilege, above, fails every row alike: they wait)
CREATE FOREIGN TABLE tf_rls_in (id int, v int) SERVER stream_ext;
ALTER FOREIGN TABLE tf_rls_in OWNER TO regress_tf_owner;
CREATE TABLE tf_rls_out (id int, v int);
ALTER TABLE tf_rls_out ENABLE ROW LEVEL SECURITY;
CREATE POLICY tf_rls_positive ON tf_rls_out FOR INSERT TO regress_tf_owner WITH CHECK (v > 0);
GRANT INSERT ON tf_rls_out TO regress_tf_owner;
SET ROLE regress_tf_owner;
CREATE VIEW tf_rls WITH (continuous, output = 'tf_rls_out') AS SELECT id, v FROM tf_rls_in;
RESET ROLE;
INSERT INTO tf_rls_in VALUES (1, 1), (2, -1), (3, 3);
SELECT tf_moved('tf_rls');
INSERT INTO tf_rls_in VALUES (4, 4);
SELECT tf_moved('tf_rls');
SELECT * FROM tf_rls_out ORDER BY id;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'tf_rls'::regclass;
-- view_stats counts the rows the combiner set aside with the workers' errors
SELECT events, errors FROM stream_ext.view_stats WHERE name = 'tf_rls'::regclass;
-- however many are refused in a row
INSERT INTO tf_rls_in SELECT g, -g FROM generate_series(10, 159) g;
INSERT INTO tf_rls_in VALUES (200, 200);
SELECT tf_moved('tf_rls');
SELECT count(*), max(id) FROM tf_rls_out;
SELECT count(*) FROM stream_ext.view_errors WHERE name = 'tf_rls'::regclass;
DROP FOREIGN TABLE tf_rls_in CASCADE;
DROP TABLE tf_rls_out;

-- deferred constraints of the output table are checked as the row goes in
-- (a deferred trigger cannot fire within the security-restricted merge):
-- a row that breaks one is recorded, the others go in
CREATE TABLE tf_customers (id int PRIMARY KEY);
INSERT INTO tf_customers VALUES (1), (2);
CREATE TABLE tf_orders (order_id int UNIQUE DEFERRABLE INITIALLY DEFERRED,
                        customer_id int REFERENCES tf_customers DEFERRABLE INITIALLY DEFERRED);
CREATE FOREIGN TABLE tf_order_in (order_id int, customer_id int) SERVER stream_ext;
CREATE VIEW tf_to_orders WITH (continuous, output = 'tf_orders') AS
  SELECT order_id, customer_id FROM tf_order_in;
INSERT INTO tf_order_in VALUES (100, 1), (101, 2), (102, 3);
SELECT tf_moved('tf_to_orders');
INSERT INTO tf_order_in VALUES (100, 2), (103, 1);
SELECT tf_moved('tf_to_orders');
SELECT * FROM tf_orders ORDER BY order_id;
SELECT sqlstate FROM stream_ext.view_errors WHERE name = 'tf_to_orders'::regclass ORDER BY 1;
SELECT events, errors FROM stream_ext.view_stats WHERE name = 'tf_to_orders'::regclass;
DROP FOREIGN TABLE tf_order_in CASCADE;
DROP TABLE tf_orders, tf_customers;

DROP TABLE tf_server_errors CASCADE;
DROP FOREIGN TABLE tf_requests CASCADE;
DROP TABLE tf_users, tf_events, tf_audit_trail;
DROP FUNCTION tf_audit_note(), tf_pending(regclass), tf_moved(regclass);
REVOKE CREATE ON SCHEMA public FROM regress_tf_owner;
DROP ROLE regress_tf_owner;

-- a diamond: two transforms of one stream into one stream, a view over it;
-- each event reaches the view once by each path, only if its writer commits
CREATE FOREIGN TABLE tf_d_in (k int, v int) SERVER stream_ext;
CREATE FOREIGN TABLE tf_d_mid (k int, v int, via text) SERVER stream_ext;
CREATE TABLE tf_d_events (k int, v int);
CREATE VIEW tf_d_left WITH (continuous, output = 'tf_d_mid') AS SELECT k, v, 'left' FROM tf_d_in;
CREATE VIEW tf_d_right WITH (continuous, output = 'tf_d_mid') AS
  SELECT k, v * 10, 'right' FROM tf_d_in WHERE v % 2 = 0;
CREATE VIEW tf_d_sum WITH (continuous) AS
  SELECT via, k, count(*), sum(v) FROM tf_d_mid GROUP BY via, k;
BEGIN;
INSERT INTO tf_d_in SELECT i % 3, i FROM generate_series(1, 100) i;
INSERT INTO tf_d_events SELECT i % 3, i FROM generate_series(1, 100) i;
SAVEPOINT s;
INSERT INTO tf_d_in VALUES (7, 7);
ROLLBACK TO s;
COMMIT;
BEGIN;
INSERT INTO tf_d_in VALUES (8, 8);
ROLLBACK;
COPY tf_d_in FROM STDIN;
1	1000
2	2001
\.
INSERT INTO tf_d_events VALUES (1, 1000), (2, 2001);
WITH batch AS (
  SELECT 'left' AS via, k, count(*), sum(v) FROM tf_d_events GROUP BY k
  UNION ALL
  SELECT 'right', k, count(*), sum(v * 10) FROM tf_d_events WHERE v % 2 = 0 GROUP BY k)
SELECT (SELECT count(*) FROM ((SELECT * FROM tf_d_sum EXCEPT SELECT * FROM batch)
                              UNION ALL (SELECT * FROM batch EXCEPT SELECT * FROM tf_d_sum)) d) AS differing,
       (SELECT count(*) FROM tf_d_sum) AS view_rows, (SELECT sum(count) FROM tf_d_sum) AS events;
DROP FOREIGN TABLE tf_d_in, tf_d_mid CASCADE;
DROP TABLE tf_d_events;

-- the stream's columns added after a transform into it was made take their
-- defaults, and its stored generated columns are computed, as for an INSERT
-- or COPY into the stream
CREATE FOREIGN TABLE tf_g_in (a int) SERVER stream_ext;
CREATE FOREIGN TABLE tf_g_out (a int, g int GENERATED ALWAYS AS (a * 2) STORED) SERVER stream_ext;
CREATE VIEW tf_g WITH (continuous, output = 'tf_g_out') AS SELECT a FROM tf_g_in;
ALTER FOREIGN TABLE tf_g_out ADD COLUMN n text DEFAULT 'none', ADD COLUMN d int DEFAULT 9;
CREATE VIEW tf_g_rows WITH (continuous) AS SELECT a, g, n, d FROM tf_g_out;
CREATE VIEW tf_g_sums WITH (continuous) AS
  SELECT count(*) AS events, count(g) AS with_g, sum(g) AS g, sum(d) AS d FROM tf_g_out;
INSERT INTO tf_g_in VALUES (1);
INSERT INTO tf_g_out (a) VALUES (2);
COPY tf_g_out (a) FROM STDIN;
3
\.
COPY tf_g_out (a, n) FROM STDIN (FORMAT csv);
4,csv
\.
SELECT * FROM tf_g_rows ORDER BY a;
SELECT * FROM tf_g_sums;
DROP FOREIGN TABLE tf_g_in, tf_g_out CASCADE;

-- a batch's worker applies a whole chain of transforms into streams: one
-- longer than 32 is refused when made, from either end or in the middle
DO $$
BEGIN
  FOR i IN 0..33 LOOP
    EXECUTE format('CREATE FOREIGN TABLE tf_chain%s (k int) SERVER stream_ext', i);
  END LOOP;
  FOR i IN 1..31 LOOP
    EXECUTE format('CREATE VIEW tf_link%s WITH (continuous, output = %L) AS SELECT k FROM tf_chain%s',
                   i, 'tf_chain' || (i + 1), i);
  END LOOP;
END $$;
CREATE VIEW tf_chain_count WITH (continuous) AS SELECT count(*) AS n, sum(k) AS s FROM tf_chain32;
CREATE VIEW tf_link0 WITH (continuous, output = 'tf_chain1') AS SELECT k FROM tf_chain0;
CREATE VIEW tf_link32 WITH (continuous, output = 'tf_chain33') AS SELECT k FROM tf_chain32;
DROP VIEW tf_link0;
CREATE VIEW tf_link32 WITH (continuous, output = 'tf_chain33') AS SELECT k FROM tf_chain32;
DROP VIEW tf_link16;
CREATE VIEW tf_link0 WITH (continuous, output = 'tf_chain1') AS SELECT k FROM tf_chain0;
CREATE VIEW tf_link16 WITH (continuous, output = 'tf_chain17') AS SELECT k FROM tf_chain16;
DROP VIEW tf_link32;
CREATE VIEW tf_link16 WITH (continuous, output = 'tf_chain17') AS SELECT k FROM tf_chain16;
-- 32 transforms: an event goes all the way
INSERT INTO tf_chain0 VALUES (7);
SELECT * FROM tf_chain_count;
SET client_min_messages = warning;
DO $$
BEGIN
  FOR i IN 0..33 LOOP
    EXECUTE format('DROP FOREIGN TABLE tf_chain%s CASCADE', i);
  END LOOP;
END $$;
RESET client_min_messages;

-- a generated column of the output stream that fails for one row costs that
-- row (recorded with its event), not the batch's other rows
CREATE FOREIGN TABLE tf_gen_in (k int, v int) SERVER stream_ext;
CREATE FOREIGN TABLE tf_gen_out (k int, v int, g int GENERATED ALWAYS AS (100 / v) STORED) SERVER stream_ext;
CREATE VIEW tf_gen WITH (continuous, output = 'tf_gen_out') AS SELECT k, v FROM tf_gen_in;
CREATE VIEW tf_gen_sums WITH (continuous) AS SELECT k, count(*), sum(g) AS g FROM tf_gen_out GROUP BY k;
INSERT INTO tf_gen_in VALUES (4, 4), (5, 0), (6, 6);
SELECT * FROM tf_gen_sums ORDER BY k;
SELECT sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival
  FROM stream_ext.view_errors WHERE name = 'tf_gen'::regclass;
DROP FOREIGN TABLE tf_gen_in, tf_gen_out CASCADE;
