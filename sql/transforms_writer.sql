--
-- transforms_writer: a writer inserts the rows of its stream's transforms
-- into tables itself, in its own transaction, when every one of them can be
-- (a plain table without triggers, rules or row security; no join; no
-- notify); otherwise the workers stage the rows and the combiner moves them
--
CREATE FOREIGN TABLE tw_s (ts timestamptz, url text, status int) SERVER stream_ext;
CREATE TABLE tw_out (ts timestamptz, url text, status int CHECK (status < 600));
CREATE UNIQUE INDEX tw_out_key ON tw_out (url, ts);
CREATE VIEW tw_to_out WITH (continuous, output = 'tw_out') AS
  SELECT ts, url, status FROM tw_s WHERE status >= 500;
-- wait until the committed deltas of view v are merged (or moved)
CREATE FUNCTION tw_merged(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  FOR i IN 1..400 LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE stream_ext_internal.xid_committed(writer_xid)',
                   (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v)) INTO n;
    IF n = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;

-- the rows are in the table inside the writer's transaction, before COMMIT;
-- a rolled back savepoint takes its rows along
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-01 10:00', '/a', 500), ('2100-01-01 10:01', '/b', 200);
SELECT url, status FROM tw_out ORDER BY ts;
SAVEPOINT s;
INSERT INTO tw_s VALUES ('2100-01-01 10:02', '/c', 503);
SELECT count(*) FROM tw_out;
ROLLBACK TO s;
COPY tw_s FROM STDIN (FORMAT csv);
2100-01-01 10:03,/d,502
2100-01-01 10:04,/e,200
\.
SELECT url, status FROM tw_out ORDER BY ts;
COMMIT;
-- a rolled back transaction leaves nothing
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-01 10:05', '/f', 501);
ROLLBACK;
SELECT url, status FROM tw_out ORDER BY ts;
-- nothing was staged; view_stats counts the committed writers' events
SELECT count(*) FROM tw_to_out;
SELECT events FROM stream_ext.view_stats WHERE name = 'tw_to_out'::regclass;
-- the rows are in the table's indexes
SET enable_seqscan = off;
SELECT url, status FROM tw_out WHERE url = '/d';
RESET enable_seqscan;

-- a row the table rejects (a CHECK, a duplicate key): the writer leaves the
-- statement's events to the workers, which set that row aside and record it
INSERT INTO tw_s VALUES ('2100-01-01 11:00', '/big', 700), ('2100-01-01 11:01', '/g', 504);
INSERT INTO tw_s VALUES ('2100-01-01 11:01', '/g', 505), ('2100-01-01 11:02', '/h', 506);
SELECT tw_merged('tw_to_out');
SELECT url, status FROM tw_out WHERE ts >= '2100-01-01 11:00' ORDER BY ts;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'tw_to_out'::regclass ORDER BY 1;

-- with another view of the stream, the writer still inserts the rows, and
-- the worker applies only that view to its events: nothing is doubled
CREATE VIEW tw_classes WITH (continuous) AS
  SELECT status / 100 AS class, count(*) FROM tw_s GROUP BY 1;
BEGIN;
INSERT INTO tw_s SELECT '2100-01-02'::timestamptz + i * interval '1 second', '/many', 500 + i % 2
  FROM generate_series(1, 1000) i;
SELECT count(*) FROM tw_out WHERE url = '/many';
INSERT INTO tw_s VALUES ('2100-01-02 01:00', '/ok', 200);
COMMIT;
SELECT tw_merged('tw_classes'), tw_merged('tw_to_out');
SELECT * FROM tw_classes ORDER BY class;
SELECT count(*), count(DISTINCT ts) FROM tw_out WHERE url = '/many';

-- a trigger on the table: the workers apply the transform, and the rows
-- arrive once the writer committed
CREATE FUNCTION tw_shout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.url := upper(NEW.url); RETURN NEW; END $$;
CREATE TRIGGER tw_shout BEFORE INSERT ON tw_out FOR EACH ROW EXECUTE FUNCTION tw_shout();
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-03 10:00', '/t', 500);
SELECT count(*) FROM tw_out WHERE ts = '2100-01-03 10:00';
COMMIT;
SELECT tw_merged('tw_to_out');
SELECT url FROM tw_out WHERE ts = '2100-01-03 10:00';
DROP TRIGGER tw_shout ON tw_out;
-- without it, the writer again
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-03 10:01', '/u', 500);
SELECT url FROM tw_out WHERE ts = '2100-01-03 10:01';
COMMIT;
-- a transform with a join on the same stream: all of its transforms into
-- tables go to the workers
CREATE TABLE tw_names (url text PRIMARY KEY, name text);
INSERT INTO tw_names VALUES ('/v', 'vee');
CREATE TABLE tw_named (url text, name text);
CREATE VIEW tw_to_named WITH (continuous, output = 'tw_named') AS
  SELECT s.url, n.name FROM tw_s s JOIN tw_names n USING (url);
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-03 10:02', '/v', 500);
SELECT count(*) FROM tw_out WHERE ts = '2100-01-03 10:02';
COMMIT;
SELECT tw_merged('tw_to_out'), tw_merged('tw_to_named');
SELECT url FROM tw_out WHERE ts = '2100-01-03 10:02';
SELECT * FROM tw_named;
DROP VIEW tw_to_named;

-- a transform runs as its owner, restricted, whoever writes; the writer
-- needs no right on the table (one without the owner's rights leaves it to
-- the workers, below).  Revoked, the rows wait (staged) until the owner may
-- insert again.
CREATE ROLE regress_tw_owner;
CREATE ROLE regress_tw_writer;
GRANT SELECT ON tw_s TO regress_tw_owner;
GRANT CREATE ON SCHEMA public TO regress_tw_owner;
GRANT INSERT ON tw_s TO regress_tw_writer;
CREATE TABLE tw_who (url text, owner name, restricted boolean);
GRANT INSERT ON tw_who TO regress_tw_owner;
SET ROLE regress_tw_owner;
CREATE VIEW tw_to_who WITH (continuous, output = 'tw_who') AS
  SELECT url, current_user, stream_ext_internal.in_security_restricted_operation()
  FROM tw_s WHERE url LIKE '/who%';
RESET ROLE;
SET ROLE regress_tw_writer;
INSERT INTO tw_s VALUES ('2100-01-04 10:00', '/who', 200);
SELECT has_table_privilege('tw_who', 'INSERT');
RESET ROLE;
SELECT tw_merged('tw_to_who');
SELECT * FROM tw_who;
-- (applied by the workers: not counted under a writer's number, from 2000)
SELECT bool_or(c.worker >= 2000) AS by_writers
  FROM stream_ext_internal.view_counters c JOIN stream_ext_internal.continuous_views v ON v.id = c.view_id
 WHERE v.view = 'tw_to_who'::regclass;
-- the owner of every transform of a stream, not a superuser, writing: the
-- writer applies them itself
SET ROLE regress_tw_owner;
CREATE FOREIGN TABLE tw_own (x int) SERVER stream_ext;
CREATE TABLE tw_own_out (x int, who name);
CREATE VIEW tw_own_to WITH (continuous, output = 'tw_own_out') AS SELECT x, current_user FROM tw_own;
BEGIN;
INSERT INTO tw_own VALUES (1);
SELECT * FROM tw_own_out;
COMMIT;
DROP FOREIGN TABLE tw_own CASCADE;
DROP TABLE tw_own_out;
RESET ROLE;
REVOKE INSERT ON tw_who FROM regress_tw_owner;
INSERT INTO tw_s VALUES ('2100-01-04 10:01', '/who-revoked', 200);
SELECT pg_sleep(0.5);
SELECT count(*) FROM tw_who;
GRANT INSERT ON tw_who TO regress_tw_owner;
SELECT tw_merged('tw_to_who');
SELECT * FROM tw_who ORDER BY url;
-- the owner's code would run in the writer's session, which the writer
-- controls (its temporary objects, its compiled functions): a writer
-- without the owner's rights leaves the transforms to the workers, and a
-- domain it planted in pg_temp in place of text never runs as the owner
SET ROLE regress_tw_owner;
CREATE FUNCTION tw_label(int) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'n' || $1::text $$;
CREATE TABLE tw_labels (label text);
CREATE VIEW tw_to_labels WITH (continuous, output = 'tw_labels') AS
  SELECT tw_label(status) FROM tw_s WHERE url = '/label';
RESET ROLE;
CREATE TABLE tw_calls (who name);
GRANT INSERT ON tw_calls TO PUBLIC;
CREATE FUNCTION tw_record_call(text) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO public.tw_calls VALUES (current_user) RETURNING true $$;
SET ROLE regress_tw_writer;
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (public.tw_record_call(VALUE));
INSERT INTO tw_s VALUES ('2100-01-04 12:00', '/label', 201);
DROP DOMAIN pg_temp.text;
RESET ROLE;
SELECT tw_merged('tw_to_labels');
SELECT * FROM tw_labels;
SELECT who FROM tw_calls WHERE who <> 'regress_tw_writer';
SELECT bool_or(c.worker >= 2000) AS by_writers
  FROM stream_ext_internal.view_counters c JOIN stream_ext_internal.continuous_views v ON v.id = c.view_id
 WHERE v.view = 'tw_to_labels'::regclass;
DROP VIEW tw_to_labels;
DROP TABLE tw_labels, tw_calls;
DROP FUNCTION tw_label(int), tw_record_call(text);
-- a column added to the table takes its default (nextval as the owner)
ALTER TABLE tw_who ADD COLUMN n bigserial;
GRANT USAGE ON SEQUENCE tw_who_n_seq TO regress_tw_owner;
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-04 10:02', '/who-numbered', 200);
SELECT url, n FROM tw_who WHERE url = '/who-numbered';
COMMIT;

-- the writer reads the extension's catalog and plans the transforms with
-- search_path = pg_catalog: an operator planted on its own path is not called
CREATE ROLE regress_tw_evil;
CREATE SCHEMA tw_evil AUTHORIZATION regress_tw_evil;
GRANT INSERT ON tw_s TO regress_tw_evil;
SET ROLE regress_tw_evil;
CREATE TABLE tw_evil.calls (who name);
CREATE FUNCTION tw_evil.eq(oid, regclass) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO tw_evil.calls VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2::oid $$;
CREATE OPERATOR tw_evil.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = tw_evil.eq);
CREATE FUNCTION tw_evil.eq(integer, integer) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO tw_evil.calls VALUES (current_user); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR tw_evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = tw_evil.eq);
RESET ROLE;
-- a new view makes every session read the catalog again
CREATE VIEW tw_refresh WITH (continuous) AS SELECT count(*) FROM tw_s;
SET ROLE regress_tw_evil;
SET search_path = tw_evil, pg_catalog;
INSERT INTO public.tw_s VALUES ('2100-01-04 11:00', '/who-evil', 200);
SELECT * FROM tw_evil.calls;
RESET search_path;
RESET ROLE;
SELECT tw_merged('tw_to_who');
SELECT url, owner FROM tw_who WHERE url = '/who-evil';
DROP VIEW tw_refresh;
DROP SCHEMA tw_evil CASCADE;
REVOKE INSERT ON tw_s FROM regress_tw_evil;
DROP ROLE regress_tw_evil;

-- a function of the statement writes into a stream in an exception block,
-- which rolls back: the rows of the statement's events buffered before it
-- stay (the writer does not apply them inside that block)
CREATE FOREIGN TABLE tw_s2 (x int) SERVER stream_ext;
CREATE FUNCTION tw_nested(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO tw_s2 VALUES (i);
    RAISE EXCEPTION 'undone';
  EXCEPTION WHEN raise_exception THEN NULL;
  END;
  RETURN i;
END $$;
INSERT INTO tw_s SELECT '2100-01-05'::timestamptz + tw_nested(i) * interval '1 second', '/nested', 500
  FROM generate_series(1, 3) i;
SELECT tw_merged('tw_to_out');
SELECT count(*) FROM tw_out WHERE url = '/nested';
DROP FUNCTION tw_nested(int);
DROP FOREIGN TABLE tw_s2;

-- a trigger added, or a transform with a join created, by a function of the
-- statement after the writer decided: the writer's apply sees them and
-- leaves the statement's events to the workers (whose insert fires the
-- trigger; which do not know the view, uncommitted when they apply)
CREATE FUNCTION tw_change(i int, ddl text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF i = 2 THEN EXECUTE ddl; END IF;
  RETURN i;
END $$;
INSERT INTO tw_s SELECT '2100-01-06'::timestamptz + i * interval '1 second', '/late-trigger', 500
  FROM generate_series(1, 3) i
 WHERE tw_change(i, 'CREATE TRIGGER tw_shout BEFORE INSERT ON tw_out FOR EACH ROW EXECUTE FUNCTION tw_shout()') > 0;
SELECT tw_merged('tw_to_out');
SELECT url FROM tw_out WHERE ts >= '2100-01-06' AND ts < '2100-01-07' ORDER BY ts;
DROP TRIGGER tw_shout ON tw_out;
CREATE TABLE tw_late (url text, name text);
INSERT INTO tw_s SELECT '2100-01-07'::timestamptz + i * interval '1 second', '/v', 500
  FROM generate_series(1, 3) i
 WHERE tw_change(i, $$CREATE VIEW tw_to_late WITH (continuous, output = 'tw_late') AS
                      SELECT s.url, n.name FROM tw_s s JOIN tw_names n USING (url)$$) > 0;
SELECT count(*) FROM tw_late;
SELECT tw_merged('tw_to_out');
SELECT count(*) FROM tw_out WHERE ts >= '2100-01-07' AND ts < '2100-01-08';
DROP VIEW tw_to_late;
DROP TABLE tw_late;
DROP FUNCTION tw_change(int, text);

-- an event larger than half a worker's queue is refused with the error of
-- any stream, though the writer would apply the transform itself (the
-- workers may get it: another view; then, without it, an apply that fails
-- on the index's row size limit; before, it failed with an internal error)
INSERT INTO tw_s VALUES ('2100-01-08', repeat('x', 3000000), 500);
DROP VIEW tw_classes;
INSERT INTO tw_s VALUES ('2100-01-08', repeat('x', 3000000), 500);
SELECT count(*) FROM tw_out WHERE ts = '2100-01-08';

-- a prepared transaction of the session holds its writer's counters: its
-- next statement leaves its events to the workers instead of waiting for it
BEGIN;
INSERT INTO tw_s VALUES ('2100-01-09 00:00', '/prepared', 500);
PREPARE TRANSACTION 'tw_prepared';
SET statement_timeout = '5s';
INSERT INTO tw_s VALUES ('2100-01-09 00:01', '/after-prepared', 500);
RESET statement_timeout;
COMMIT PREPARED 'tw_prepared';
SELECT tw_merged('tw_to_out');
SELECT url FROM tw_out WHERE ts >= '2100-01-09' ORDER BY ts;

-- a cancel (here statement_timeout) while the writer decides (planning a
-- transform runs its immutable functions of constants) fails the statement
CREATE FOREIGN TABLE tw_slow (x int) SERVER stream_ext;
CREATE TABLE tw_slow_out (x int);
CREATE FUNCTION tw_slow_const(int) RETURNS int IMMUTABLE LANGUAGE plpgsql
  AS $$ BEGIN PERFORM pg_sleep(2); RETURN $1; END $$;
CREATE VIEW tw_slow_to WITH (continuous, output = 'tw_slow_out') AS
  SELECT x FROM tw_slow WHERE x > tw_slow_const(0);
SET statement_timeout = '500ms';
INSERT INTO tw_slow VALUES (1);
RESET statement_timeout;
DROP FOREIGN TABLE tw_slow CASCADE;
DROP TABLE tw_slow_out;
DROP FUNCTION tw_slow_const(int);

-- a partitioned table: the workers, too
CREATE FOREIGN TABLE tw_p (k int, v int) SERVER stream_ext;
CREATE TABLE tw_parts (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE tw_parts_low PARTITION OF tw_parts FOR VALUES FROM (0) TO (10);
CREATE TABLE tw_parts_high PARTITION OF tw_parts FOR VALUES FROM (10) TO (100);
CREATE VIEW tw_to_parts WITH (continuous, output = 'tw_parts') AS SELECT k, v FROM tw_p;
BEGIN;
INSERT INTO tw_p VALUES (1, 1), (50, 2);
SELECT count(*) FROM tw_parts;
COMMIT;
SELECT tw_merged('tw_to_parts');
SELECT tableoid::regclass, k, v FROM tw_parts ORDER BY k;

-- the writer computes with the workers' settings, not its session's: the
-- same event through a transform the writer applies and through one the
-- workers apply (into a partitioned table) gives the same row, whatever the
-- writer's TimeZone, DateStyle, IntervalStyle or extra_float_digits
CREATE FOREIGN TABLE tw_set_w (ts timestamptz, x float8, i interval) SERVER stream_ext;
CREATE FOREIGN TABLE tw_set_k (ts timestamptz, x float8, i interval) SERVER stream_ext;
CREATE TABLE tw_set_writer (d date, t text, f text, it text);
CREATE TABLE tw_set_workers (k int, d date, t text, f text, it text) PARTITION BY RANGE (k);
CREATE TABLE tw_set_workers_all PARTITION OF tw_set_workers FOR VALUES FROM (0) TO (10);
CREATE VIEW tw_to_set_writer WITH (continuous, output = 'tw_set_writer') AS
  SELECT ts::date, ts::text, x::text, i::text FROM tw_set_w;
CREATE VIEW tw_to_set_workers WITH (continuous, output = 'tw_set_workers') AS
  SELECT 1, ts::date, ts::text, x::text, i::text FROM tw_set_k;
BEGIN;
SET LOCAL TimeZone = 'Pacific/Kiritimati';
SET LOCAL DateStyle = 'SQL, DMY';
SET LOCAL IntervalStyle = 'sql_standard';
SET LOCAL extra_float_digits = -2;
INSERT INTO tw_set_w VALUES ('2100-01-01 23:30+00', 1.0 / 3, '1 day 2 hours');
INSERT INTO tw_set_k VALUES ('2100-01-01 23:30+00', 1.0 / 3, '1 day 2 hours');
SELECT count(*) AS applied_by_the_writer FROM tw_set_writer;
COMMIT;
SELECT tw_merged('tw_to_set_workers');
SELECT w.d = k.d AS same_date, w.t = k.t AS same_text, w.f = k.f AS same_float,
       w.it = k.it AS same_interval
  FROM tw_set_writer w, tw_set_workers k;
DROP FOREIGN TABLE tw_set_w, tw_set_k CASCADE;
DROP TABLE tw_set_writer, tw_set_workers;

-- each of the writer's applies takes a subtransaction id: once its
-- transaction holds as many as PostgreSQL caches (64), its later statements'
-- events go to the workers, so that other sessions' snapshots never find
-- the cache overflowed; those rows are in the table after the commit
CREATE FOREIGN TABLE tw_m (n int) SERVER stream_ext;
CREATE TABLE tw_m_out (n int);
CREATE VIEW tw_to_m WITH (continuous, output = 'tw_m_out') AS SELECT n FROM tw_m;
BEGIN;
DO $$ BEGIN FOR i IN 1..70 LOOP INSERT INTO tw_m VALUES (i); END LOOP; END $$;
SELECT count(*) AS applied_by_the_writer, max(n) FROM tw_m_out;
COMMIT;
SELECT tw_merged('tw_to_m');
SELECT count(*), count(DISTINCT n), min(n), max(n) FROM tw_m_out;
DROP FOREIGN TABLE tw_m CASCADE;
DROP TABLE tw_m_out;

-- a transform's code that writes into a stream, while the writer applies its
-- events: refused, as in the workers (the write refilled the buffer being
-- sent, and a worker crashed on the record it got); its event is set aside
-- for that transform alone, every other view counts it
CREATE FOREIGN TABLE tw_src (k int, v text) SERVER stream_ext;
CREATE FOREIGN TABLE tw_other (k int, p bigint) SERVER stream_ext;
CREATE TABLE tw_src_out (k int, v text, r int);
CREATE FUNCTION tw_writes(k int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF k = 1 THEN INSERT INTO public.tw_other VALUES (7, 4611686018427387903); END IF;
  RETURN k;
END $$;
CREATE VIEW tw_writing WITH (continuous, output = 'tw_src_out') AS SELECT k, v, tw_writes(k) AS r FROM tw_src;
CREATE VIEW tw_src_count WITH (continuous) AS SELECT v, count(*) AS n FROM tw_src GROUP BY v;
CREATE VIEW tw_other_count WITH (continuous) AS SELECT count(*) AS n FROM tw_other;
INSERT INTO tw_src SELECT i, 'b' FROM generate_series(1, 300) i;
SELECT tw_merged('tw_writing'), tw_merged('tw_src_count');
SELECT v, n FROM tw_src_count;
SELECT count(*) AS rows, min(k) AS first FROM tw_src_out;
SELECT n FROM tw_other_count;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'tw_writing'::regclass;
DROP FOREIGN TABLE tw_src, tw_other CASCADE;
DROP TABLE tw_src_out;
DROP FUNCTION tw_writes(int);

DROP FOREIGN TABLE tw_s, tw_p CASCADE;
DROP TABLE tw_out, tw_names, tw_named, tw_who, tw_parts;
DROP FUNCTION tw_merged(regclass), tw_shout();
REVOKE CREATE ON SCHEMA public FROM regress_tw_owner;
DROP ROLE regress_tw_owner, regress_tw_writer;
