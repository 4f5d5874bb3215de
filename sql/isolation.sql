--
-- isolation: an error on one event costs that event for that view only,
-- and the code of a view's owner never runs with the workers' rights
--
CREATE FUNCTION iso_merged(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
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
CREATE FUNCTION iso_wait_count(v regclass, expected bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  got bigint;
BEGIN
  FOR i IN 1..3000 LOOP
    EXECUTE format('SELECT coalesce(sum(n), 0) FROM %s', v) INTO got;
    EXIT WHEN got >= expected;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN got;
END $$;

-- a float8 sum overflowing within one batch: the event that overflows is
-- skipped for that view and recorded, the transaction commits, and every
-- other view counts every event
CREATE FOREIGN TABLE iso_f (k text, v float8) SERVER stream_ext;
CREATE VIEW iso_sum WITH (continuous) AS SELECT k, sum(v) AS s, count(*) AS n FROM iso_f GROUP BY k;
CREATE VIEW iso_count WITH (continuous) AS SELECT count(*) AS n FROM iso_f;
INSERT INTO iso_f VALUES ('a', 1e308), ('a', 1e308), ('a', 1), ('b', 2);
SELECT * FROM iso_sum ORDER BY k;
SELECT * FROM iso_count;
SELECT name, sqlstate, message, regexp_replace(event, ',[^,]*\)$', ')') AS event_without_arrival
  FROM stream_ext.view_errors WHERE name::text LIKE 'iso\_%' ORDER BY occurred_at, event;
-- async mode: the same, and nothing acknowledged is lost
SET stream_ext.commit_mode = async;
INSERT INTO iso_f VALUES ('c', -1e308), ('c', -1e308), ('c', 5);
RESET stream_ext.commit_mode;
SELECT iso_wait_count('iso_count', 7);
SELECT * FROM iso_sum ORDER BY k;
SELECT name, events, errors FROM stream_ext.view_stats WHERE name::text LIKE 'iso\_%' ORDER BY name::text;
-- an overflow in another transaction's batch costs nothing here
INSERT INTO iso_f VALUES ('d', 1);
SELECT * FROM iso_sum WHERE k = 'd';
-- truncate_continuous_view forgets the view's recorded errors too
SELECT stream_ext.truncate_continuous_view('iso_sum');
SELECT count(*) FROM stream_ext.view_errors WHERE name = 'iso_sum'::regclass;
DROP FOREIGN TABLE iso_f CASCADE;

-- a sum overflowing across transactions: the combiner cannot merge the
-- second 1e308; it sets that delta aside (recorded) and merges the rest, so
-- the view's other groups and its reads go on
CREATE FOREIGN TABLE iso_x (k text, v float8) SERVER stream_ext;
CREATE VIEW iso_xsum WITH (continuous) AS SELECT k, sum(v) AS s, count(*) AS n FROM iso_x GROUP BY k;
INSERT INTO iso_x VALUES ('big', 1e308);
INSERT INTO iso_x VALUES ('big', 1e308);
INSERT INTO iso_x VALUES ('big', 1), ('small', 1);
INSERT INTO iso_x VALUES ('small', 2);
SELECT iso_merged('iso_xsum');
SELECT * FROM iso_xsum ORDER BY k;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'iso_xsum'::regclass;
INSERT INTO iso_x VALUES ('small', 3);
SELECT * FROM iso_xsum ORDER BY k;
DROP FOREIGN TABLE iso_x CASCADE;

-- an aggregate's combine function runs as the view's owner, in a
-- security-restricted operation: a non-superuser's combine function that
-- tries to make its owner a superuser fails inside the combiner
CREATE ROLE regress_iso_owner;
CREATE SCHEMA iso_owned AUTHORIZATION regress_iso_owner;
SET ROLE regress_iso_owner;
CREATE FUNCTION iso_owned.grab(a int8, b int8) RETURNS int8 LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    EXECUTE 'ALTER ROLE regress_iso_owner SUPERUSER';
  EXCEPTION WHEN OTHERS THEN
    NULL;
  END;
  RETURN a + b;
END $$;
CREATE AGGREGATE iso_owned.grab_sum(int) (SFUNC = int84pl, STYPE = int8, INITCOND = '0',
                                           COMBINEFUNC = iso_owned.grab);
CREATE FOREIGN TABLE iso_owned.s (x int) SERVER stream_ext;
CREATE VIEW iso_owned.v WITH (continuous) AS SELECT iso_owned.grab_sum(x) AS n FROM iso_owned.s;
INSERT INTO iso_owned.s VALUES (1);
INSERT INTO iso_owned.s VALUES (2);
INSERT INTO iso_owned.s VALUES (3);
RESET ROLE;
-- (not read as a superuser: a view's functions run as its reader)
SELECT iso_merged('iso_owned.v');
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_iso_owner';
INSERT INTO iso_owned.s VALUES (4);
SELECT iso_merged('iso_owned.v');
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_iso_owner';
SET ROLE regress_iso_owner;
SELECT * FROM iso_owned.v;

-- the owner may not put triggers or rules on the view's internal tables,
-- nor change them (a delta column of another type would give the workers
-- rows they form wrongly)
CREATE FUNCTION iso_owned.refused(what text, command text, rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format(command, rel);
  RAISE NOTICE '% accepted', what;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE '% refused: %', what, regexp_replace(SQLERRM, '_[0-9]+', '_N');
END $$;
SELECT iso_owned.refused(what, command, CASE t WHEN 'delta' THEN v.delta_table ELSE v.state_table END)
  FROM stream_ext_internal.catalog_rows() v,
       (VALUES (1, 'alter', 'ALTER TABLE %s ALTER COLUMN n TYPE text', 'delta'),
               (2, 'drop', 'DROP TABLE %s', 'delta'),
               (3, 'truncate', 'TRUNCATE %s', 'state'),
               (4, 'trigger', 'CREATE TRIGGER t BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()', 'state'),
               (5, 'rule', 'CREATE RULE r AS ON INSERT TO %s DO INSTEAD NOTHING', 'state'))
         AS c(i, what, command, t)
 WHERE v.view = 'iso_owned.v'::regclass
 ORDER BY i;
RESET ROLE;
DROP SCHEMA iso_owned CASCADE;
DROP ROLE regress_iso_owner;

-- the internal Kafka functions check the role that asked, and inside a
-- worker's security-restricted operation nobody can stand for it: a view
-- whose expression registers a consumer into a stream its owner cannot
-- write gets an error recorded, and no consumer
CREATE ROLE regress_iso_kafka IN ROLE stream_ext_kafka;
CREATE SCHEMA iso_k AUTHORIZATION regress_iso_kafka;
CREATE FOREIGN TABLE iso_target (v text) SERVER stream_ext;
SET ROLE regress_iso_kafka;
CREATE FUNCTION iso_k.register_consumer(x int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_ext_internal.kafka_register('public.iso_target'::regclass, 'topic', '127.0.0.1:9',
            'json', 'earliest', 1, NULL, '{}', '{}', NULL, NULL, NULL, NULL);
  RETURN x;
END $$;
-- stable, so the view accepts it; it calls a volatile function all the same
CREATE FUNCTION iso_k.probe(x int) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN iso_k.register_consumer(x);
END $$;
CREATE FOREIGN TABLE iso_k.s (x int) SERVER stream_ext;
CREATE VIEW iso_k.v WITH (continuous) AS SELECT count(*) AS n, sum(iso_k.probe(x)) AS s FROM iso_k.s;
INSERT INTO iso_k.s VALUES (1);
RESET ROLE;
SELECT count(*) AS consumers FROM stream_ext_internal.kafka_consumers
 WHERE stream = 'iso_target'::regclass;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'iso_k.v'::regclass;
DROP SCHEMA iso_k CASCADE;
DROP FOREIGN TABLE iso_target;
DROP ROLE regress_iso_kafka;

DROP FUNCTION iso_merged, iso_wait_count;
