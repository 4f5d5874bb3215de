--
-- errors: a runtime error of one view's expression on one event skips that
-- event for that view only, and is recorded
--
CREATE FOREIGN TABLE er_s (id int, a int, b int, label text) SERVER stream_ext;
-- fails when b = 0 (in the aggregate argument)
CREATE VIEW er_ratio WITH (continuous) AS SELECT count(*) AS n, sum(a / b) AS total FROM er_s;
-- fails when b = 0 (in the WHERE clause)
CREATE VIEW er_where WITH (continuous) AS SELECT count(*) AS n FROM er_s WHERE a / b > 1;
-- fails when label is not a number (in the GROUP BY key)
CREATE VIEW er_key WITH (continuous) AS SELECT label::int AS num, count(*) AS n FROM er_s GROUP BY label::int;
-- never fails
CREATE VIEW er_all WITH (continuous) AS SELECT count(*) AS n, sum(a) AS sa, sum(b) AS sb FROM er_s;
CREATE VIEW er_grouped WITH (continuous) AS SELECT b, count(*) AS n FROM er_s GROUP BY b;

INSERT INTO er_s VALUES (1, 10, 2, '1'), (2, 20, 0, '2'), (3, 30, 3, 'x'), (4, 40, 0, 'y'), (5, 50, 5, '5');
SELECT * FROM er_ratio;
SELECT * FROM er_where;
SELECT * FROM er_key ORDER BY num;
SELECT * FROM er_all;
SELECT * FROM er_grouped ORDER BY b;

-- the failing events are recorded, per view
SELECT name, sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival FROM stream_ext.view_errors
 WHERE name::text LIKE 'er\_%' ORDER BY name::text, event_without_arrival;
SELECT name, events, errors FROM stream_ext.view_stats WHERE name::text LIKE 'er\_%' ORDER BY name::text;

-- a failing event in a transaction does not abort the inserting transaction
BEGIN;
INSERT INTO er_s VALUES (6, 60, 0, '6');
INSERT INTO er_s VALUES (7, 70, 7, '7');
COMMIT;
SELECT * FROM er_ratio;
SELECT * FROM er_key ORDER BY num;
SELECT * FROM er_all;
-- COPY too
COPY er_s FROM STDIN (FORMAT csv);
8,80,0,8
9,90,9,nine
\.
SELECT * FROM er_ratio;
SELECT * FROM er_key ORDER BY num;
SELECT * FROM er_all;

-- events of a rolled back transaction are neither counted nor recorded as errors
BEGIN;
INSERT INTO er_s VALUES (10, 100, 0, 'ten');
ROLLBACK;
SELECT name, sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival FROM stream_ext.view_errors
 WHERE name::text LIKE 'er\_%' ORDER BY name::text, event_without_arrival;
SELECT name, events, errors FROM stream_ext.view_stats WHERE name::text LIKE 'er\_%' ORDER BY name::text;

-- errors other than division by zero: overflow, invalid input
CREATE VIEW er_overflow WITH (continuous) AS SELECT sum(a * 100000000) AS big FROM er_s;
INSERT INTO er_s VALUES (11, 1, 1, '11'), (12, 100, 1, '12');
SELECT * FROM er_overflow;
-- the event text is the whole event, arrival_timestamp last
SELECT event ~ '^\(12,100,1,12,"[^"]+"\)$' AS event_format FROM stream_ext.view_errors WHERE name = 'er_overflow'::regclass;
SELECT name, sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival FROM stream_ext.view_errors
 WHERE name = 'er_overflow'::regclass ORDER BY event_without_arrival;
-- sum(int4) is computed in bigint: no error
CREATE VIEW er_sum WITH (continuous) AS SELECT sum(a) AS s FROM er_s;
INSERT INTO er_s VALUES (13, 2147483647, 1, '13'), (14, 2147483647, 1, '14');
SELECT * FROM er_sum;

-- a group key longer than the state table's index takes fails its event
-- for that view when applied (it would vanish at the merge); the others go
-- in; the same error for a key longer than any index entry (19,200 bytes)
CREATE FOREIGN TABLE er_long (k text, v int) SERVER stream_ext;
CREATE VIEW er_by_k WITH (continuous) AS SELECT k, count(*) AS n FROM er_long GROUP BY k;
CREATE VIEW er_all_long WITH (continuous) AS SELECT count(*) AS n FROM er_long;
INSERT INTO er_long
  SELECT string_agg(md5(i::text || j::text), ''), 1 FROM generate_series(1, 2) i, generate_series(1, 100) j GROUP BY i
  UNION ALL SELECT 'short', 1
  UNION ALL SELECT string_agg(md5(j::text), ''), 1 FROM generate_series(1, 600) j;
SELECT length(k), n FROM er_by_k ORDER BY 1;
SELECT n FROM er_all_long;
SELECT name, sqlstate, message FROM stream_ext.view_errors WHERE name = 'er_by_k'::regclass;
-- and the same after the combiner merged
DO $$
DECLARE n bigint;
BEGIN
  FOR i IN 1..400 LOOP
    EXECUTE format('SELECT count(*) FROM %s', (SELECT delta_table FROM stream_ext_internal.continuous_views
                                               WHERE view = 'er_by_k'::regclass)) INTO n;
    EXIT WHEN n = 0;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT length(k), n FROM er_by_k ORDER BY 1;
SET client_min_messages = warning;
DROP FOREIGN TABLE er_long CASCADE;
RESET client_min_messages;

-- a view's expression that writes into a stream fails for its event: in a
-- worker it would wait for the worker itself
CREATE FOREIGN TABLE er_src (k int) SERVER stream_ext;
CREATE FOREIGN TABLE er_dst (k int) SERVER stream_ext;
CREATE FUNCTION er_put(x int) RETURNS boolean LANGUAGE plpgsql VOLATILE
  AS $$BEGIN INSERT INTO public.er_dst VALUES (x); RETURN true; END$$;
CREATE FUNCTION er_stable_put(x int) RETURNS boolean LANGUAGE plpgsql STABLE
  AS $$BEGIN RETURN public.er_put(x); END$$;
CREATE VIEW er_writes WITH (continuous) AS SELECT count(*) AS n FROM er_src WHERE er_stable_put(k);
CREATE VIEW er_counts WITH (continuous) AS SELECT count(*) AS n FROM er_src;
INSERT INTO er_src VALUES (1);
SET stream_ext.commit_mode = async;
INSERT INTO er_src VALUES (2);
RESET stream_ext.commit_mode;
INSERT INTO er_src VALUES (3);
SELECT (SELECT n FROM er_writes) AS writes, (SELECT n FROM er_counts) AS counts;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'er_writes'::regclass ORDER BY occurred_at LIMIT 1;
SET client_min_messages = warning;
DROP FOREIGN TABLE er_src, er_dst CASCADE;
DROP FUNCTION er_stable_put(int), er_put(int);
RESET client_min_messages;

-- a view's code raising a transient SQLSTATE (a deadlock's, a full disk's,
-- a cancel's, out of memory, an I/O error) for an event, every time: after
-- a few tries of the batch, that event is set aside for that view, instead
-- of the batch being tried for ever with every writer behind it waiting
CREATE FOREIGN TABLE er_tr (k int, v int) SERVER stream_ext;
CREATE FUNCTION er_liar(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF x = 777 THEN RAISE EXCEPTION 'pretend deadlock' USING ERRCODE = 'deadlock_detected'; END IF;
  IF x = 778 THEN RAISE EXCEPTION 'pretend full disk' USING ERRCODE = 'disk_full'; END IF;
  IF x = 779 THEN RAISE EXCEPTION 'pretend cancel' USING ERRCODE = 'query_canceled'; END IF;
  IF x = 780 THEN RAISE EXCEPTION 'pretend out of memory' USING ERRCODE = 'out_of_memory'; END IF;
  IF x = 781 THEN RAISE EXCEPTION 'pretend I/O error' USING ERRCODE = 'io_error'; END IF;
  RETURN x;
END $$;
CREATE VIEW er_liar_v WITH (continuous) AS SELECT k, count(*), sum(er_liar(v)) FROM er_tr GROUP BY k;
-- a second view failing so for another event: each comes to own its errors
CREATE VIEW er_liar2_v WITH (continuous) AS SELECT k, count(*), sum(er_liar(v - 1)) FROM er_tr GROUP BY k;
CREATE VIEW er_tr_all WITH (continuous) AS SELECT k, count(*), sum(v) FROM er_tr GROUP BY k;
SET statement_timeout = '60s';
INSERT INTO er_tr VALUES (1, 777), (1, 5), (2, 6), (3, 778), (4, 779), (4, 780), (5, 781), (5, 782);
RESET statement_timeout;
SELECT * FROM er_liar_v ORDER BY k;
SELECT * FROM er_liar2_v ORDER BY k;
SELECT * FROM er_tr_all ORDER BY k;
SELECT name, sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival
  FROM stream_ext.view_errors WHERE name IN ('er_liar_v'::regclass, 'er_liar2_v'::regclass)
 ORDER BY name::text, event;
-- a lock not available that a view's code raises for an event (a NOWAIT
-- failing, every time) holds that view's events back; when it persists,
-- the combiner sets that event aside for the view and applies the others
CREATE FUNCTION er_nowait(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF x = 55 THEN RAISE EXCEPTION 'pretend lock not available' USING ERRCODE = 'lock_not_available'; END IF;
  RETURN x;
END $$;
CREATE VIEW er_nowait_v WITH (continuous) AS SELECT k, count(*), sum(er_nowait(v)) FROM er_tr GROUP BY k;
INSERT INTO er_tr VALUES (1, 55), (1, 1), (2, 2);
INSERT INTO er_tr VALUES (2, 3);
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT sum(count) FROM er_nowait_v) = 3;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT * FROM er_nowait_v ORDER BY k;
SELECT (SELECT sum(count) FROM er_tr_all) AS all_events;
SELECT sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival
  FROM stream_ext.view_errors WHERE name = 'er_nowait_v'::regclass;
SELECT count(*) AS still_held FROM stream_ext_internal.held_events;
SET client_min_messages = warning;
DROP FOREIGN TABLE er_tr CASCADE;
DROP FUNCTION er_liar(int), er_nowait(int);
RESET client_min_messages;

-- a combine function raising a transient SQLSTATE for one delta, every
-- time: after a few rounds of failed merges, the combiner sets that delta
-- aside for the view, recorded, and merges the others (it retried at every
-- round for ever, and reads of the group failed meanwhile)
CREATE FOREIGN TABLE er_cm (k int, v int) SERVER stream_ext;
CREATE FUNCTION er_comb_liar(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF b = 666 THEN RAISE EXCEPTION 'pretend cancel in a merge' USING ERRCODE = 'query_canceled'; END IF;
  RETURN a + b;
END $$;
CREATE FUNCTION er_step(s bigint, x int) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT s + x';
CREATE AGGREGATE er_cm_sum(int) (SFUNC = er_step, STYPE = bigint, INITCOND = '0', COMBINEFUNC = er_comb_liar);
CREATE VIEW er_cm_v WITH (continuous) AS SELECT k, er_cm_sum(v) AS s FROM er_cm GROUP BY k;
INSERT INTO er_cm VALUES (1, 5), (2, 7);
INSERT INTO er_cm VALUES (1, 666);
INSERT INTO er_cm VALUES (1, 10);
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT FROM stream_ext.view_errors WHERE name = 'er_cm_v'::regclass);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT * FROM er_cm_v ORDER BY k;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'er_cm_v'::regclass;
SET client_min_messages = warning;
DROP FOREIGN TABLE er_cm CASCADE;
DROP AGGREGATE er_cm_sum(int);
DROP FUNCTION er_comb_liar(bigint, bigint), er_step(bigint, int);
RESET client_min_messages;

-- a combine function that does not find a name on the combiner's search_path
-- (pg_catalog alone; a reader's has public) fails every merge of a group
-- with 42883: no delta's fault, so the deltas wait, read as before, until
-- the function is fixed (they were set aside, and the view lost them)
CREATE FOREIGN TABLE er_sp (k int, v int) SERVER stream_ext;
CREATE FUNCTION er_plus(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION er_sp_comb(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT er_plus(a, b)';
CREATE FUNCTION er_sp_step(s bigint, x int) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT s + x';
CREATE AGGREGATE er_sp_sum(int) (SFUNC = er_sp_step, STYPE = bigint, INITCOND = '0', COMBINEFUNC = er_sp_comb);
CREATE VIEW er_sp_v WITH (continuous) AS SELECT k, er_sp_sum(v) AS s FROM er_sp GROUP BY k;
INSERT INTO er_sp VALUES (1, 5), (2, 7);
INSERT INTO er_sp VALUES (1, 10);
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT FROM stream_ext.view_errors WHERE name = 'er_sp_v'::regclass);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT * FROM er_sp_v ORDER BY k;
SELECT DISTINCT sqlstate, message, event IS NULL AS no_event FROM stream_ext.view_errors WHERE name = 'er_sp_v'::regclass;
ALTER FUNCTION er_sp_comb(bigint, bigint) SET search_path = public;
DO $$
DECLARE n bigint;
BEGIN
  FOR i IN 1..1200 LOOP
    EXECUTE format('SELECT count(*) FROM %s', (SELECT delta_table FROM stream_ext_internal.continuous_views
                                               WHERE view = 'er_sp_v'::regclass)) INTO n;
    EXIT WHEN n = 0;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT count(*) AS errors FROM stream_ext.view_errors WHERE name = 'er_sp_v'::regclass AND event IS NOT NULL;
SELECT * FROM er_sp_v ORDER BY k;
SET client_min_messages = warning;
DROP FOREIGN TABLE er_sp CASCADE;
DROP AGGREGATE er_sp_sum(int);
DROP FUNCTION er_sp_comb(bigint, bigint), er_sp_step(bigint, int), er_plus(bigint, bigint);
RESET client_min_messages;

-- errors no event causes alone (a float sum overflowing in one group): each
-- culprit is set aside, however many a batch has (there were 29 here), and
-- the other groups keep every event
CREATE FOREIGN TABLE er_many (k int, f float8) SERVER stream_ext;
CREATE VIEW er_many_sum WITH (continuous) AS SELECT k, count(*), sum(f) FROM er_many GROUP BY k;
INSERT INTO er_many SELECT CASE WHEN i % 100 = 0 THEN 9 ELSE i % 5 END,
                           CASE WHEN i % 100 = 0 THEN 1e308 ELSE 1 END
  FROM generate_series(1, 3000) i;
SELECT * FROM er_many_sum ORDER BY k;
SELECT count(*) AS errors, count(event) AS with_event, min(sqlstate) AS sqlstate
  FROM stream_ext.view_errors WHERE name = 'er_many_sum'::regclass;
-- a 54000 the view's code raises is an event's error, not the time limit
CREATE FUNCTION er_tr54(s bigint, x int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF s + x > 100 THEN RAISE EXCEPTION 'state too large' USING ERRCODE = 'program_limit_exceeded'; END IF;
  RETURN s + x;
END $$;
CREATE FUNCTION er_comb54(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE AGGREGATE er_agg54(int) (SFUNC = er_tr54, STYPE = bigint, INITCOND = '0', COMBINEFUNC = er_comb54);
CREATE VIEW er_many_54 WITH (continuous) AS SELECT k, count(*), er_agg54(CASE WHEN k = 9 THEN 10 ELSE 0 END) FROM er_many GROUP BY k;
-- and one raising a transient SQLSTATE (53000) once the state is too large:
-- after a few tries of the batch, its culprits are set aside alike
CREATE FUNCTION er_tr53(s bigint, x int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF s + x > 100 THEN RAISE EXCEPTION 'state too large' USING ERRCODE = 'insufficient_resources'; END IF;
  RETURN s + x;
END $$;
CREATE AGGREGATE er_agg53(int) (SFUNC = er_tr53, STYPE = bigint, INITCOND = '0', COMBINEFUNC = er_comb54);
CREATE VIEW er_many_53 WITH (continuous) AS SELECT k, count(*), er_agg53(CASE WHEN k = 9 THEN 10 ELSE 0 END) FROM er_many GROUP BY k;
INSERT INTO er_many SELECT CASE WHEN i <= 20 THEN 9 ELSE i % 5 END, 1 FROM generate_series(1, 1000) i;
SELECT * FROM er_many_54 ORDER BY k;
SELECT count(*) AS errors, count(event) AS with_event, min(sqlstate) AS sqlstate
  FROM stream_ext.view_errors WHERE name = 'er_many_54'::regclass;
SELECT * FROM er_many_53 ORDER BY k;
SELECT count(*) AS errors, count(event) AS with_event, min(sqlstate) AS sqlstate
  FROM stream_ext.view_errors WHERE name = 'er_many_53'::regclass;
SET client_min_messages = warning;
DROP FOREIGN TABLE er_many CASCADE;
DROP AGGREGATE er_agg54(int), er_agg53(int);
DROP FUNCTION er_tr54(bigint, int), er_tr53(bigint, int), er_comb54(bigint, bigint);
RESET client_min_messages;

-- dropping a view removes its recorded errors
DROP VIEW er_where;
SELECT count(*) FROM stream_ext.view_errors WHERE name::text = 'er_where';
SELECT count(*) FROM stream_ext_internal.view_errors e
 WHERE NOT EXISTS (SELECT FROM stream_ext_internal.continuous_views v WHERE v.id = e.view_id);

SET client_min_messages = warning;
DROP FOREIGN TABLE er_s CASCADE;
RESET client_min_messages;
SELECT count(*) FROM stream_ext.view_errors WHERE name::text LIKE 'er\_%';
