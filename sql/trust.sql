--
-- trust: what any role may do cannot crash the server or silently change
-- what a view means
--
SET TimeZone = 'UTC';
SET stream_ext.read_time = '2024-01-01 00:00:10+00';
CREATE ROLE regress_trust_user;
-- waits (up to 30 s) until the combiner merged every delta of a view
CREATE FUNCTION tr_wait_merged(v regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE pending bigint;
BEGIN
  FOR i IN 1 .. 3000 LOOP
    EXECUTE format('SELECT count(*) FROM %s', (SELECT delta_table FROM stream_ext_internal.continuous_views
                                               WHERE view = v)) INTO pending;
    EXIT WHEN pending = 0;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
REVOKE ALL ON FUNCTION tr_wait_merged(regclass) FROM PUBLIC;
CREATE FOREIGN TABLE tr_s (k text, v int, t timestamptz) SERVER stream_ext;
CREATE VIEW tr_plain WITH (continuous) AS
  SELECT k, count(*) AS n, max(k) AS mk, avg(v) AS av, sum(v::int8) AS s8 FROM tr_s GROUP BY k;
-- (a window of a century: the combiner's reaper, whose "now" is the clock,
-- must not expire these 2024 events before the read below)
CREATE VIEW tr_sliding WITH (continuous, sliding_window = '36500 days', step = '1 second',
                             time_column = 't') AS
  SELECT count(*) AS n FROM tr_s;
INSERT INTO tr_s VALUES ('a', 1, '2024-01-01 00:00:05+00'), ('a', 2, '2024-01-01 00:00:06+00'),
                        ('b', 3, '2024-01-01 00:00:07+00');
GRANT SELECT ON tr_plain, tr_sliding TO regress_trust_user;
-- an aggregate the role may not execute
CREATE AGGREGATE tr_sum(int8) (SFUNC = int8pl, STYPE = int8, COMBINEFUNC = int8pl);
REVOKE EXECUTE ON FUNCTION tr_sum(int8) FROM PUBLIC;
-- a superuser's function that makes a state of its argument, which another role calls
CREATE FUNCTION tr_make_state(t text) RETURNS stream_ext_internal.agg_state
  LANGUAGE plpgsql SECURITY DEFINER AS $$BEGIN RETURN t::stream_ext_internal.agg_state; END$$;
-- a view of the role's own, that keeps rows
GRANT CREATE ON SCHEMA public TO regress_trust_user;
GRANT SELECT ON tr_s TO regress_trust_user;

-- which functions of the extension PUBLIC may execute (Kafka's aside)
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_trust_user', p.oid, 'EXECUTE') AS public_executes
  FROM pg_proc p
 WHERE p.pronamespace IN ('stream_ext'::regnamespace, 'stream_ext_internal'::regnamespace)
   AND p.proname NOT LIKE 'kafka%'
 ORDER BY p.oid::regprocedure::text COLLATE "C";

SET ROLE regress_trust_user;
-- a role with SELECT reads the views and the catalog
SELECT * FROM tr_plain ORDER BY k;
SELECT * FROM tr_sliding;
SELECT name, definition FROM stream_ext.continuous_views WHERE name::text LIKE 'tr\_%' ORDER BY name::text;

-- finalize_agg: the state and result must have the aggregate's types
SELECT stream_ext_internal.finalize_agg('max(text)'::regprocedure, 1::int8, NULL::text);
SELECT stream_ext_internal.finalize_agg('count()'::regprocedure, 1::int8, NULL::text);
SELECT stream_ext_internal.finalize_agg('avg(int8)'::regprocedure, 1::int8, NULL::numeric);
SELECT stream_ext_internal.finalize_agg('max(anyarray)'::regprocedure, 1, NULL::int[]);
SELECT stream_ext_internal.finalize_agg('max(anyarray)'::regprocedure, '{1,2}'::int[], NULL::text[]);
SELECT stream_ext_internal.finalize_agg('lower(text)'::regprocedure, 'x'::text, NULL::text);
SELECT stream_ext_internal.finalize_agg('percentile_cont(float8,float8)'::regprocedure, 1::float8, NULL::float8);
SELECT stream_ext_internal.finalize_agg(a, 1::int8, NULL::int8)
  FROM (VALUES ('count()'::regprocedure), ('sum(int8)'::regprocedure)) v(a);
-- states of the right type are checked by the aggregate's own functions
SELECT stream_ext_internal.finalize_agg('avg(int4)'::regprocedure, '{1,2,3}'::int8[], NULL::numeric);
-- but for internal states, which deserialization functions trust: they are
-- agg_state, which no role can make up (only a superuser may enter one)
SELECT stream_ext_internal.finalize_agg('avg(int8)'::regprocedure, '\x00'::bytea, NULL::numeric);
SELECT 'sum(int8):\x0000'::stream_ext_internal.agg_state;
SELECT '\x00'::bytea::stream_ext_internal.agg_state;
SELECT stream_ext_internal.finalize_agg('sum(int8)'::regprocedure,
         'sum(int8):\x00'::text::stream_ext_internal.agg_state, NULL::numeric);
SELECT stream_ext_internal.agg_state_in('sum(int8):\x00');
DO $$DECLARE s stream_ext_internal.agg_state; BEGIN s := 'sum(int8):\x00'; END$$;
-- a superuser's SECURITY DEFINER function does not make one for another role's session
RESET ROLE;
SET SESSION AUTHORIZATION regress_trust_user;
SELECT tr_make_state('sum(int8):\x00');
RESET SESSION AUTHORIZATION;
SET ROLE regress_trust_user;
-- nor when the statement runs as a superuser: an index of a view's owner
CREATE VIEW tr_rows WITH (continuous) AS SELECT k, v FROM tr_s;
CREATE INDEX ON tr_rows (k) WHERE stream_ext_internal.finalize_state('sum(int8)'::regprocedure,
  'sum(int8):\x00'::stream_ext_internal.agg_state, NULL::numeric) IS NULL;
CREATE INDEX ON tr_rows (k) TABLESPACE pg_default;
CREATE INDEX ON tr_rows (k) TABLESPACE pg_global;
-- an index build that fails leaves the caller the role it was (the index is
-- made as a superuser); CONCURRENTLY, whose own commits would not, is refused
RESET ROLE;
INSERT INTO tr_s VALUES ('z', 0, '2024-01-01 00:00:08+00');
DO $$
DECLARE n bigint;
BEGIN
  FOR i IN 1..400 LOOP
    EXECUTE format('SELECT count(*) FROM %s', (SELECT state_table FROM stream_ext_internal.continuous_views
                                               WHERE view = 'tr_rows'::regclass)) INTO n;
    EXIT WHEN n > 0;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SET ROLE regress_trust_user;
CREATE INDEX ON tr_rows ((1 / v));
SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser;
CREATE INDEX CONCURRENTLY ON tr_rows ((1 / v));
SELECT current_user;
-- nor may an index take a name the extension gives its own relations
CREATE INDEX state_999999 ON tr_rows (k);
CREATE INDEX result_1_key ON tr_rows (k);
CREATE INDEX tr_rows_by_k ON tr_rows (k);
DROP VIEW tr_rows;
-- nor can it use an aggregate it may not execute
SELECT stream_ext_internal.finalize_agg('tr_sum(int8)'::regprocedure, 1::int8, NULL::int8);
SELECT stream_ext_internal.combine_states('tr_sum(int8)'::regprocedure, 1::int8, 2::int8);
-- nor one whose owner may no longer call its support functions (as the
-- executor checks, for the aggregate itself too)
RESET ROLE;
CREATE FUNCTION tr_pl(int8, int8) RETURNS int8 LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2';
REVOKE EXECUTE ON FUNCTION tr_pl(int8, int8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tr_pl(int8, int8) TO regress_trust_user;
SET ROLE regress_trust_user;
CREATE AGGREGATE tr_owned_sum(int8) (SFUNC = tr_pl, STYPE = int8, COMBINEFUNC = tr_pl);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tr_pl(int8, int8) FROM regress_trust_user;
SELECT tr_owned_sum(n) FROM (VALUES (1::int8)) v(n);
SELECT stream_ext_internal.combine_states('tr_owned_sum(int8)'::regprocedure, 1::int8, 2::int8);
DROP AGGREGATE tr_owned_sum(int8);
DROP FUNCTION tr_pl(int8, int8);
SET ROLE regress_trust_user;
-- and well-typed calls work
SELECT stream_ext_internal.finalize_agg('count()'::regprocedure, n, NULL::int8)
  FROM (VALUES (1::int8), (2::int8)) v(n);
SELECT stream_ext_internal.finalize_agg('max(anyarray)'::regprocedure, a, NULL::int[])
  FROM (VALUES ('{1,2}'::int[]), ('{1,3}'::int[])) v(a);
-- as a window function, over a frame of rows; a frame of none is refused
SELECT stream_ext_internal.finalize_agg('count()'::regprocedure, n, NULL::int8) OVER (ORDER BY n)
  FROM (VALUES (1::int8), (2::int8)) v(n);
SELECT stream_ext_internal.finalize_agg('count()'::regprocedure, n, NULL::int8)
         OVER (ORDER BY n ROWS BETWEEN 1 FOLLOWING AND 1 FOLLOWING)
  FROM (VALUES (1::int8), (2::int8)) v(n);

-- what the combiner's merge statements call runs as the view's owner, so it
-- is executable and checks its arguments like finalize_agg
SELECT stream_ext_internal.combine_states('max(text)'::regprocedure, 1::int8, 2::int8);
SELECT stream_ext_internal.combine_agg('count()'::regprocedure, 1::int8);
-- finalize_state (state tables' kept results) likewise
SELECT stream_ext_internal.finalize_state('max(text)'::regprocedure, 1::int8, NULL::text);
SELECT stream_ext_internal.finalize_state('sum(bigint)'::regprocedure, 1::int8, NULL::numeric);
SELECT stream_ext_internal.finalize_state('avg(float8)'::regprocedure, '{2,3,0.5}'::float8[], NULL::int8);
SELECT stream_ext_internal.finalize_state('avg(float8)'::regprocedure, '{2,3,0.5}'::float8[], NULL::float8);
SELECT stream_ext_internal.finalize_state('count()'::regprocedure, NULL::int8, NULL::int8);
SELECT stream_ext_internal.xid_committed('1'::xid8);
-- an id not assigned yet (in this epoch or a later one, special ones of a
-- later epoch too) has neither committed nor aborted; its status is not
-- looked up in a commit log file that does not exist
SELECT stream_ext_internal.xid_visible(x) AS visible, stream_ext_internal.xid_committed(x) AS committed,
       stream_ext_internal.xid_aborted(x) AS aborted
  FROM (VALUES ('4294967295'::xid8), ('1099511628776'::xid8), ('4294967296'::xid8), ('4294967298'::xid8),
               ((pg_current_xact_id()::text::int8 + 1000000)::text::xid8)) v(x);
-- delta_may_have_key answers only about a delta table's keys, to a reader
-- of its view, hashing values of types that hash like the keys; otherwise
-- (and for NULLs) it says a key may have deltas
SELECT stream_ext_internal.delta_may_have_key('pg_class', 1) AS not_a_delta,
       stream_ext_internal.delta_may_have_key(NULL, 1) AS no_table,
       stream_ext_internal.delta_may_have_key(0, NULL::text, 2, 3) AS bad_table,
       stream_ext_internal.delta_may_have_key('pg_class', VARIADIC ARRAY[1, 2]) AS variadic_array;
SELECT stream_ext_internal.delta_may_have_key(d, '(1,2)'::point) AS unhashable,
       stream_ext_internal.delta_may_have_key(d, 'x'::text, 42, now()) AS too_many_keys,
       stream_ext_internal.delta_may_have_key(d, NULL::text) AS null_key
  FROM (SELECT replace(state_table::text, '.state_', '.delta_')::regclass AS d
          FROM stream_ext.continuous_views ORDER BY name::text LIMIT 1) c;
-- delta_changes_key answers a reader of the view, for values of its delta
-- table's columns' own types, as separate arguments; it refuses the rest
SELECT replace(state_table::text, '.state_', '.delta_') AS tr_delta
  FROM stream_ext.continuous_views WHERE name = 'tr_plain'::regclass \gset
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{2}', NULL::text) AS null_key,
       stream_ext_internal.delta_changes_key(NULL, '{2}', 'a'::text) AS no_table,
       stream_ext_internal.delta_changes_key(:'tr_delta', '{2}', 'nowhere'::text) AS no_delta,
       stream_ext_internal.delta_read_allowed(:'tr_delta') AS allowed;
SELECT stream_ext_internal.delta_changes_key('pg_class', '{2}', 'a'::text);
SELECT stream_ext_internal.delta_read_allowed('pg_class');
SELECT stream_ext_internal.delta_changes_key(0, '{2}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', NULL, 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{1}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{0}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{99}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{-5}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{NULL}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{{2}}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{2,2}', 'a'::text);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{2}', 1);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{2}', '(1,2)'::point);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{2}', VARIADIC ARRAY['a']);
-- a state column is no key; the table and the columns are constants
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{3}', 1::int8);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', c, 'a'::text)
  FROM (VALUES ('{2}'::int2[]), ('{3}')) v(c);
SELECT stream_ext_internal.delta_changes_key(d, '{2}', 'a'::text)
  FROM (VALUES (:'tr_delta'::regclass), ('pg_class')) v(d);
SELECT stream_ext_internal.delta_changes_key(:'tr_delta', '{2}');
-- the other internal functions are not for PUBLIC
SELECT stream_ext_internal.catalog_changed();
SELECT stream_ext_internal.stream_fdw_validator('{}', 0);

-- query_definition takes a view, not a Query tree to parse
SELECT stream_ext_internal.query_definition('{QUERY}');
SELECT stream_ext_internal.query_definition('tr_s'::regclass) IS NULL AS not_a_view;

-- sliding_bound: bound, intervals and type are checked, results in range
SELECT stream_ext_internal.sliding_bound(0, '1 second', '1 minute', '0', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '1 second', '1 minute', '0', '0', NULL::text);
SELECT stream_ext_internal.sliding_bound(7, '1 second', '1 minute', '0', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '0', '1 minute', '0', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '1 month', '1 minute', '0', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '1 second', '-1 minute', '0', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '1 second', '1 minute', '1.5 seconds', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '1 second', '2147483647 days', '0', '0', NULL::timestamptz);
SELECT stream_ext_internal.sliding_bound(0, '1 second', '100000000 days', '0', '0', NULL::timestamptz);
-- it is not STRICT (its last argument is a typed NULL): a NULL argument is
-- a NULL bound
SELECT stream_ext_internal.sliding_bound(0, NULL::interval, '1 minute', '0', '0', NULL::timestamptz) IS NULL,
       stream_ext_internal.sliding_bound(NULL, '1 second', '1 minute', '0', '0', NULL::timestamptz) IS NULL;
-- inputs_rows: a forged entry counted 2^40 times returns rows until the
-- statement is cancelled (here by its timeout)
SET statement_timeout = '200ms';
SELECT count(*) FROM stream_ext_internal.inputs_rows('\x3249455301000000010000000000000000000000000100000000000000000000170000000000000000010000080000000400000000000007'::bytea, false) AS t(c1 int);
RESET statement_timeout;
SET stream_ext.read_time = '4714-11-24 00:00:00+00 BC';
SELECT stream_ext_internal.sliding_bound(1, '1 second', '1 minute', '0', '0', NULL::timestamptz);
SET stream_ext.read_time = '2024-01-01 00:00:10+00';
-- a call site whose arguments change from row to row
SELECT w, stream_ext_internal.sliding_bound(0, '1 second', w, '0', '0', NULL::timestamp)
  FROM (VALUES ('1 minute'::interval), ('1 hour')) v(w);
-- a writer's text form is its visibility; read back, it is committed or
-- aborted here, whatever number it had (pg_dump and pg_restore use it)
SELECT '12345 visible'::stream_ext_internal.writer_xact::text AS restored_visible,
       '12345 invisible'::stream_ext_internal.writer_xact::text AS restored_invisible,
       stream_ext_internal.xid_visible('7 visible'::stream_ext_internal.writer_xact) AS counted;
SELECT pg_current_xact_id()::stream_ext_internal.writer_xact::text ~ '^[0-9]+ invisible$'
  AS own_transaction_invisible;
SELECT 'visible'::stream_ext_internal.writer_xact;
SELECT '12 seen'::stream_ext_internal.writer_xact;
SELECT stream_ext_internal.writer_xact_in('99999999999999999999999 visible');
-- the adoption of restored catalog rows runs only as the extension's trigger
SELECT stream_ext_internal.adopt_restored_view();
SELECT stream_ext_internal.catalog_origin();
RESET ROLE;
-- a reader of a view sees its errors, but the events (every column of the
-- stream) only with the right to read the stream
CREATE ROLE regress_trust_reader;
CREATE FOREIGN TABLE tr_s2 (k text, v int, secret text) SERVER stream_ext;
CREATE VIEW tr_div WITH (continuous) AS SELECT k, 100 / v AS q FROM tr_s2;
INSERT INTO tr_s2 VALUES ('a', 0, 'the password');
GRANT SELECT ON tr_div TO regress_trust_reader;
SET ROLE regress_trust_reader;
SELECT name, sqlstate, message, event FROM stream_ext.view_errors WHERE name = 'tr_div'::regclass;
RESET ROLE;
SELECT name, sqlstate, event LIKE '%the password%' AS event_shown
  FROM stream_ext.view_errors WHERE name = 'tr_div'::regclass;
DROP FOREIGN TABLE tr_s2 CASCADE;
DROP ROLE regress_trust_reader;
-- a type that can hold a state, through a composite in a range or a
-- multirange, is no aggregate input a view keeps (they are read back)
CREATE TYPE tr_c AS (a stream_ext_internal.agg_state);
CREATE TYPE tr_r AS RANGE (subtype = tr_c);
CREATE FOREIGN TABLE tr_rs (x tr_r, w tr_r_multirange) SERVER stream_ext;
CREATE VIEW tr_vr WITH (continuous) AS SELECT count(DISTINCT x) FROM tr_rs;
CREATE VIEW tr_vm WITH (continuous) AS SELECT count(DISTINCT w) FROM tr_rs;
DROP FOREIGN TABLE tr_rs;
DROP TYPE tr_r;
DROP TYPE tr_c;
-- a state is read back only by the aggregate that made it: sum(int8)'s
-- states in tr_plain's state and delta tables, and their text form (what
-- pg_dump writes) read back by a superuser
SELECT format($$CREATE VIEW tr_states AS SELECT k, %2$I AS st FROM %1$s UNION ALL SELECT k, %2$I FROM %3$s$$,
              state_table, (SELECT attname FROM pg_attribute WHERE attrelid = state_table AND attname LIKE '%\_sum'),
              delta_table) AS ddl
  FROM stream_ext_internal.continuous_views WHERE view = 'tr_plain'::regclass \gset
:ddl;
SELECT DISTINCT pg_typeof(st) FROM tr_states;
SELECT k, stream_ext_internal.finalize_agg('sum(int8)'::regprocedure, st, NULL::numeric) AS s8,
       stream_ext_internal.finalize_agg('sum(int8)'::regprocedure, st::text::stream_ext_internal.agg_state,
                                        NULL::numeric) AS from_text,
       bool_and(st::text LIKE 'sum(bigint):\\x%') AS text_names_it
  FROM tr_states GROUP BY k ORDER BY k;
SELECT stream_ext_internal.finalize_agg('avg(int8)'::regprocedure, st, NULL::numeric) FROM tr_states;
SELECT stream_ext_internal.combine_states('avg(int8)'::regprocedure, st, st) FROM tr_states;
SELECT stream_ext_internal.combine_states('avg(int8)'::regprocedure, NULL, st) FROM tr_states;
SELECT stream_ext_internal.combine_states('sum(int8)'::regprocedure, NULL, st) IS NOT NULL AS kept
  FROM tr_states LIMIT 1;
-- a view that would keep states as its inputs
CREATE TABLE tr_state_copy AS SELECT k, st FROM tr_states;
CREATE VIEW tr_keeps_states WITH (continuous) AS
  SELECT s.k, array_agg(c.st ORDER BY c.st::text) AS sts FROM tr_s s JOIN tr_state_copy c ON c.k = s.k GROUP BY s.k;
DROP TABLE tr_state_copy;
SELECT 'avg(int4):\x00'::stream_ext_internal.agg_state;
SELECT 'lower(text):\x00'::stream_ext_internal.agg_state;
SELECT 'sum(int8)\x00'::stream_ext_internal.agg_state;
DROP VIEW tr_states;
CREATE TABLE tr_adopt (x int);
CREATE TRIGGER tr_adopt BEFORE INSERT ON tr_adopt FOR EACH ROW
  EXECUTE FUNCTION stream_ext_internal.adopt_restored_view();
INSERT INTO tr_adopt VALUES (1);
DROP TABLE tr_adopt;

-- a volatile WHERE clause or aggregate argument would be evaluated once, at
-- arrival, and never again: refused
CREATE VIEW tr_recent WITH (continuous) AS
  SELECT count(*) AS n FROM tr_s WHERE arrival_timestamp > clock_timestamp() - interval '1 second';
CREATE VIEW tr_recent WITH (continuous) AS SELECT k, count(*) AS n FROM tr_s WHERE random() < 0.5 GROUP BY k;
SELECT stream_ext.create_continuous_view('tr_recent',
  $$SELECT count(*) AS n FROM tr_s WHERE t > clock_timestamp() - interval '1 second'$$);
CREATE VIEW tr_recent WITH (continuous) AS
  SELECT sum(CASE WHEN t > clock_timestamp() - interval '1 second' THEN 1 ELSE 0 END) AS n FROM tr_s;
CREATE VIEW tr_recent WITH (continuous) AS SELECT max(clock_timestamp()) AS last FROM tr_s;
-- functions are volatile unless marked otherwise
CREATE FUNCTION tr_is_a(k text) RETURNS boolean LANGUAGE sql AS $$SELECT k = 'a'$$;
CREATE VIEW tr_only_a WITH (continuous) AS SELECT count(*) AS n FROM tr_s WHERE tr_is_a(k);
ALTER FUNCTION tr_is_a(text) IMMUTABLE;
CREATE VIEW tr_only_a WITH (continuous) AS SELECT count(*) AS n FROM tr_s WHERE tr_is_a(k);
-- what the hint suggests
CREATE VIEW tr_recent WITH (continuous, sliding_window = '1 second') AS SELECT count(*) AS n FROM tr_s;
-- HAVING and the select list outside aggregates are evaluated when the view is read
CREATE VIEW tr_read_time WITH (continuous) AS
  SELECT k, count(*) AS n, clock_timestamp() > '2000-01-01' AS later
    FROM tr_s GROUP BY k HAVING max(t) < clock_timestamp();
INSERT INTO tr_s VALUES ('a', 4, '2024-01-01 00:00:08+00');
SELECT * FROM tr_only_a;
SELECT * FROM tr_read_time ORDER BY k;

-- arrival_timestamp is the column stream_ext adds: no other column takes its name
CREATE FOREIGN TABLE tr_own (a int, arrival_timestamp text) SERVER stream_ext;
CREATE FOREIGN TABLE tr_own (a int, arrival_timestamp timestamptz) SERVER stream_ext;
-- but a stream restored from a dump brings it
CREATE FOREIGN TABLE tr_own (a int, arrival_timestamp timestamp with time zone
  GENERATED ALWAYS AS (NULL::timestamp with time zone) STORED) SERVER stream_ext;
SELECT attname, format_type(atttypid, atttypmod), attgenerated FROM pg_attribute
 WHERE attrelid = 'tr_own'::regclass AND attnum > 0 ORDER BY attnum;
ALTER FOREIGN TABLE tr_own ADD COLUMN b text;
ALTER FOREIGN TABLE tr_own ADD COLUMN arrival_timestamp text;
ALTER FOREIGN TABLE tr_own ALTER COLUMN arrival_timestamp TYPE text;
ALTER TABLE tr_own ALTER COLUMN arrival_timestamp TYPE text;
ALTER FOREIGN TABLE tr_own RENAME COLUMN arrival_timestamp TO arrived;
ALTER FOREIGN TABLE tr_own RENAME COLUMN b TO arrival_timestamp;
ALTER FOREIGN TABLE tr_own RENAME COLUMN b TO c;
-- nor dropped or stripped of its expression (views read it, dumps restore it)
ALTER FOREIGN TABLE tr_own DROP COLUMN arrival_timestamp;
ALTER FOREIGN TABLE tr_own ALTER COLUMN arrival_timestamp DROP EXPRESSION;
ALTER FOREIGN TABLE tr_own ALTER COLUMN arrival_timestamp SET DEFAULT now();
ALTER FOREIGN TABLE tr_own ADD COLUMN arrival_timestamp timestamptz GENERATED ALWAYS AS (NULL::timestamptz) STORED;
-- a stream takes no part in inheritance or partitioning: a view reads its
-- own events, not a tree's rows
CREATE FOREIGN TABLE tr_child (a int) INHERITS (tr_own) SERVER stream_ext;
CREATE TABLE tr_tchild (a int) INHERITS (tr_own);
CREATE TABLE tr_tparent (a int);
CREATE FOREIGN TABLE tr_child (a int) INHERITS (tr_tparent) SERVER stream_ext;
ALTER TABLE tr_tparent INHERIT tr_own;
-- (after a column's new type, which is no stream's, too: a table that
-- matches the stream's columns became its child)
CREATE TABLE tr_tlike (a int, arrival_timestamp timestamptz GENERATED ALWAYS AS (NULL::timestamptz) STORED);
ALTER TABLE tr_tlike ALTER COLUMN a TYPE int, INHERIT tr_own;
DROP TABLE tr_tlike;
ALTER FOREIGN TABLE tr_own INHERIT tr_tparent;
CREATE TABLE tr_parted (a int) PARTITION BY LIST (a);
CREATE FOREIGN TABLE tr_part PARTITION OF tr_parted FOR VALUES IN (1) SERVER stream_ext;
ALTER TABLE tr_parted ATTACH PARTITION tr_own FOR VALUES IN (2);
DROP TABLE tr_tparent, tr_parted;
SELECT attname, format_type(atttypid, atttypmod), attgenerated FROM pg_attribute
 WHERE attrelid = 'tr_own'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
CREATE VIEW tr_own_v WITH (continuous, sliding_window = '1 minute') AS SELECT count(*) AS n FROM tr_own;
-- ordinary tables are not concerned
CREATE TABLE tr_table (arrival_timestamp text);
ALTER TABLE tr_table RENAME COLUMN arrival_timestamp TO arrived;
DROP TABLE tr_table;
-- the column counts against the 1600 columns of a table
SELECT format('CREATE FOREIGN TABLE tr_wide (%s) SERVER stream_ext',
              string_agg('c' || i || ' int', ', ')) AS ddl FROM generate_series(1, 1600) i \gset
:ddl;
SELECT format('CREATE FOREIGN TABLE tr_wide (%s) SERVER stream_ext',
              string_agg('c' || i || ' int', ', ')) AS ddl FROM generate_series(1, 1599) i \gset
:ddl;
SELECT count(*) FROM pg_attribute WHERE attrelid = 'tr_wide'::regclass AND attnum > 0;
DROP FOREIGN TABLE tr_wide;

-- the extension's SQL run as a superuser finds nothing through the caller's
-- search_path: an owner's operator = ahead of pg_catalog's
SET ROLE regress_trust_user;
CREATE FUNCTION tr_evil_eq(int4, int4) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'tr_evil_eq ran as a superuser';
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = tr_evil_eq);
CREATE FOREIGN TABLE tr_s3 (x int, ts timestamptz) SERVER stream_ext;
CREATE VIEW tr_wm WITH (continuous, time_column = 'ts') AS SELECT x, count(*) AS n FROM tr_s3 GROUP BY x;
INSERT INTO tr_s3 VALUES (1, '2024-01-01 00:00:05+00');
SET search_path = public, pg_catalog;
SELECT stream_ext.create_change_stream('tr_wm', 'tr_wm_changes') IS NOT NULL AS made;
SELECT stream_ext.truncate_continuous_view('tr_wm');
RESET search_path;
-- nor do its lookups of its catalog, with any search_path: an owner's
-- operator = (regclass, oid), of which pg_catalog has no exact match
CREATE FUNCTION tr_evil_rel_eq(regclass, oid) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'tr_evil_rel_eq ran as a superuser';
  END IF;
  RETURN $1::pg_catalog.oid OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = tr_evil_rel_eq);
CREATE VIEW tr_plainv AS SELECT 1 AS one;
RESET ROLE;
ALTER VIEW tr_plainv SET (security_invoker = true);
SET ROLE regress_trust_user;
DROP VIEW tr_plainv;
DROP OPERATOR public.= (regclass, oid);
DROP FUNCTION tr_evil_rel_eq(regclass, oid);
-- a view's code changes no setting of the workers' sessions (set_config
-- there would outlive the batch, and reach the next views and the
-- workers' own catalog reads)
CREATE VIEW tr_setter WITH (continuous) AS
  SELECT x, pg_catalog.set_config('search_path', 'public, pg_catalog', false) AS sp FROM tr_s3;
CREATE VIEW tr_path WITH (continuous) AS
  SELECT pg_catalog.current_setting('search_path') AS sp, count(*) AS n FROM tr_s3 GROUP BY 1;
INSERT INTO tr_s3 SELECT g, '2024-01-01 00:00:06+00' FROM generate_series(1, 10) g;
INSERT INTO tr_s3 SELECT g, '2024-01-01 00:00:06+00' FROM generate_series(1, 10) g;
INSERT INTO tr_s3 SELECT g, '2024-01-01 00:00:06+00' FROM generate_series(1, 10) g;
SELECT sp, n FROM tr_path;
-- nor of a writer's session, when the writer puts a transform's rows in its
-- table itself (a superuser has the owner's rights)
CREATE TABLE tr_out (x int);
CREATE VIEW tr_into WITH (continuous, output = 'tr_out') AS
  SELECT x + 0 * pg_catalog.length(pg_catalog.set_config('search_path', 'public, pg_catalog', false))
  FROM tr_s3;
RESET ROLE;
INSERT INTO tr_s3 VALUES (7, '2024-01-01 00:00:07+00');
SHOW search_path;
SELECT x FROM tr_out;
-- so does stream_ext.reap_expired, which a superuser may call on any view:
-- it deletes as the view's owner, under the combiner's search_path, where
-- the owner's operator <= is not found first
SET ROLE regress_trust_user;
CREATE FUNCTION tr_evil_le(timestamptz, timestamptz) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'tr_evil_le ran as a superuser';
  END IF;
  RETURN $1 OPERATOR(pg_catalog.<=) $2;
END $$;
CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = tr_evil_le);
CREATE VIEW tr_ttl WITH (continuous, ttl = '1 hour', ttl_column = 'minute') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, count(*) AS n FROM tr_s3 GROUP BY minute;
INSERT INTO tr_s3 VALUES (2, '2052-01-01 00:00:05+00');
RESET ROLE;
SELECT tr_wait_merged('tr_ttl');
SET search_path = public, pg_catalog;
SELECT stream_ext.reap_expired('tr_ttl') >= 0 AS reaped;
RESET search_path;
SELECT minute, n FROM tr_ttl WHERE minute > '2050-01-01';
SET client_min_messages = warning;
DROP FOREIGN TABLE tr_s3 CASCADE;
DROP TABLE tr_out;
DROP OPERATOR public.= (int4, int4);
DROP FUNCTION tr_evil_eq(int4, int4);
DROP OPERATOR public.<= (timestamptz, timestamptz);
DROP FUNCTION tr_evil_le(timestamptz, timestamptz);
RESET client_min_messages;

-- a writer applies a transform itself only in a session of a role with the
-- owner's rights: not in another role's session calling the owner's
-- SECURITY DEFINER function (the transform sees the session it runs in)
CREATE ROLE regress_trust_owner;
GRANT CREATE ON SCHEMA public TO regress_trust_owner;
SET ROLE regress_trust_owner;
CREATE FOREIGN TABLE tr_s4 (x int) SERVER stream_ext;
CREATE TABLE tr_apps (x int, app text);
CREATE VIEW tr_app_tf WITH (continuous, output = 'tr_apps') AS
  SELECT x, pg_catalog.current_setting('application_name') FROM tr_s4;
CREATE FUNCTION tr_put(v int) RETURNS void LANGUAGE sql SECURITY DEFINER
  AS $$ INSERT INTO public.tr_s4 VALUES (v) $$;
RESET ROLE;
SET SESSION AUTHORIZATION regress_trust_user;
SET application_name = 'tr_caller';
SELECT tr_put(1);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_trust_owner;
SET application_name = 'tr_owner';
SELECT tr_put(2);
RESET SESSION AUTHORIZATION;
RESET application_name;
DO $$BEGIN
  FOR i IN 1..400 LOOP
    EXIT WHEN (SELECT count(*) FROM tr_apps) = 2;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT x, app = 'tr_caller' AS in_callers_session, app = 'tr_owner' AS in_owners_session
  FROM tr_apps ORDER BY x;
SET client_min_messages = warning;
DROP FOREIGN TABLE tr_s4 CASCADE;
DROP TABLE tr_apps;
DROP FUNCTION tr_put(int);
REVOKE CREATE ON SCHEMA public FROM regress_trust_owner;
DROP ROLE regress_trust_owner;
RESET client_min_messages;

-- a view's owner may not lock its internal tables (a worker waiting for
-- them would hold up other owners' streams), nor take their locks by
-- CLUSTER, REINDEX or VACUUM FULL
SET ROLE regress_trust_user;
CREATE FOREIGN TABLE tr_s5 (k text) SERVER stream_ext;
CREATE VIEW tr_lk WITH (continuous) AS SELECT k, count(*) AS n FROM tr_s5 GROUP BY k;
DO $$
DECLARE
  st text := (SELECT state_table::text FROM stream_ext.continuous_views WHERE name = 'tr_lk'::regclass);
  stmt text;
BEGIN
  FOREACH stmt IN ARRAY ARRAY['LOCK TABLE %s', 'LOCK TABLE %s IN ROW EXCLUSIVE MODE', 'CLUSTER %s',
                              'REINDEX TABLE %s', 'VACUUM (FULL) %s'] LOOP
    BEGIN
      EXECUTE format(stmt, st);
      RAISE NOTICE '%: allowed', format(stmt, 'state table');
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE '%: % %', format(stmt, 'state table'), SQLSTATE, split_part(SQLERRM, ' relation', 1);
    END;
  END LOOP;
END $$;
-- nor through the view, whose LOCK locks what its query reads, or through a
-- view over it; ordinary views and tables stay lockable
CREATE VIEW tr_lk_top AS SELECT * FROM tr_lk WHERE n > 1;
CREATE TABLE tr_lk_table (k text);
CREATE VIEW tr_lk_plain AS SELECT * FROM tr_lk_table;
\set VERBOSITY terse
BEGIN;
LOCK TABLE tr_lk IN SHARE MODE;
ROLLBACK;
BEGIN;
LOCK TABLE tr_lk_top;
ROLLBACK;
\set VERBOSITY default
BEGIN;
LOCK TABLE tr_lk_plain, tr_lk_table IN SHARE MODE;
ROLLBACK;
DROP VIEW tr_lk_top, tr_lk_plain;
DROP TABLE tr_lk_table;
-- nor link another table to them: a parent's ALTER, LOCK, TRUNCATE and DROP
-- reach its partitions, a child's rows would be read as deltas, a foreign
-- key puts triggers on the table it references
CREATE TABLE tr_lk_parent (k text, a1_count bigint) PARTITION BY LIST (k);
CREATE TABLE tr_lk_other (k text);
DO $$
DECLARE
  st text := (SELECT state_table::text FROM stream_ext.continuous_views WHERE name = 'tr_lk'::regclass);
  dt text := replace(st, '.state_', '.delta_');
  stmt text;
BEGIN
  FOREACH stmt IN ARRAY ARRAY[
      format('CREATE TABLE tr_lk_child () INHERITS (%s)', dt),
      format('CREATE FOREIGN TABLE tr_lk_child () INHERITS (%s) SERVER stream_ext', dt),
      format('ALTER TABLE tr_lk_other INHERIT %s', st),
      format('ALTER TABLE tr_lk_parent ATTACH PARTITION %s DEFAULT', st),
      format('CREATE TABLE tr_lk_child (k text REFERENCES %s (k))', st),
      format('CREATE TABLE tr_lk_child (k text, FOREIGN KEY (k) REFERENCES %s (k))', st),
      format('ALTER TABLE tr_lk_other ADD FOREIGN KEY (k) REFERENCES %s (k)', st),
      format('ALTER TABLE tr_lk_other ADD COLUMN k2 text REFERENCES %s (k)', st),
      format('CREATE TABLE tr_lk_child (LIKE %s)', st)] LOOP
    BEGIN
      EXECUTE stmt;
      RAISE NOTICE '%: allowed', replace(replace(stmt, st, 'state table'), dt, 'delta table');
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE '%: % %', replace(replace(stmt, st, 'state table'), dt, 'delta table'),
        SQLSTATE, split_part(SQLERRM, ' relation', 1);
    END;
  END LOOP;
END $$;
SELECT (SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid IN (i.inhparent, i.inhrelid)
        WHERE c.relnamespace = 'stream_ext_internal'::regnamespace) AS links,
       (SELECT count(*) FROM pg_constraint
        WHERE confrelid IN (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'tr_lk'::regclass)) AS keys;
-- nor when a function the statement runs first puts our schema on the path
-- (the link is checked once the statement ran, and rolled back)
CREATE FUNCTION tr_lk_path() RETURNS int LANGUAGE plpgsql STABLE AS
  $$BEGIN PERFORM set_config('search_path', 'public, stream_ext_internal', false); RETURN 1; END$$;
DO $$
DECLARE
  st text := (SELECT relname FROM pg_class
              WHERE oid = (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'tr_lk'::regclass));
BEGIN
  EXECUTE format('ALTER TABLE public.tr_lk_other ADD COLUMN z int DEFAULT tr_lk_path(), '
                 'ADD FOREIGN KEY (k) REFERENCES %I (k)', st);
  RAISE NOTICE 'linked';
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '%: %', SQLSTATE, split_part(SQLERRM, ' relation', 1);
END $$;
RESET search_path;
SELECT count(*) AS keys FROM pg_constraint
WHERE confrelid IN (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'tr_lk'::regclass);
DROP FUNCTION tr_lk_path();
-- a name is looked up again once the statement locks it: with our schema on
-- the search path, an unqualified one could come to mean an internal table
SET search_path = public, stream_ext_internal;
ALTER TABLE tr_lk_other ADD COLUMN k3 text;
ALTER TABLE public.tr_lk_other ADD COLUMN k3 text;
-- (a temporary table's name is its session's alone, while pg_temp comes first)
CREATE TEMP TABLE tr_lk_temp (id int PRIMARY KEY);
DROP TABLE tr_lk_temp;
SET search_path = stream_ext_internal, pg_temp, public;
CREATE TEMP TABLE tr_lk_temp (id int PRIMARY KEY);
RESET search_path;
-- and a name in our schema is refused even before it means a relation (a
-- view made by another session may make it one before the statement locks it)
ALTER TABLE stream_ext_internal.delta_999999 ADD COLUMN junk int;
DROP TABLE tr_lk_child, tr_lk_parent, tr_lk_other;
-- another role's object that depends on a view's internal table stops a
-- DROP VIEW that does not cascade, as for any table; CASCADE drops it
RESET ROLE;
CREATE ROLE regress_trust_dep;
GRANT CREATE ON SCHEMA public TO regress_trust_dep;
-- (regress_trust_dep makes tr_dep_over, a plain view over tr_dep's state table)
CREATE PROCEDURE tr_dep_view_over_state() LANGUAGE plpgsql AS $$
BEGIN
  SET LOCAL ROLE regress_trust_dep;
  EXECUTE format('CREATE VIEW tr_dep_over AS SELECT * FROM %s',
                 (SELECT state_table FROM stream_ext.continuous_views WHERE name = 'tr_dep'::regclass));
END $$;
SET ROLE regress_trust_user;
CREATE VIEW tr_dep WITH (continuous) AS SELECT k, count(*) AS n FROM tr_s5 GROUP BY k;
CALL tr_dep_view_over_state();
\set VERBOSITY terse
DROP VIEW tr_dep;
\set VERBOSITY default
DROP VIEW tr_dep CASCADE;
SELECT to_regclass('tr_dep_over') AS dependent_view, to_regclass('tr_dep') AS continuous_view;
-- the same when the view goes with a column of its stream
CREATE FOREIGN TABLE tr_dep_s (k text, v int) SERVER stream_ext;
CREATE VIEW tr_dep WITH (continuous) AS SELECT k, sum(v) AS n FROM tr_dep_s GROUP BY k;
CALL tr_dep_view_over_state();
ALTER FOREIGN TABLE tr_dep_s DROP COLUMN v CASCADE;
SELECT to_regclass('tr_dep_over') AS dependent_view, to_regclass('tr_dep') AS continuous_view;
DROP FOREIGN TABLE tr_dep_s;
RESET ROLE;
DROP PROCEDURE tr_dep_view_over_state();
REVOKE CREATE ON SCHEMA public FROM regress_trust_dep;
DROP ROLE regress_trust_dep;
SET ROLE regress_trust_user;
RESET ROLE;
-- a view whose owner may no longer read its stream gets no more of its
-- events (as for a table it joins): the batches fail for it, recorded
CREATE FOREIGN TABLE tr_s6 (k text) SERVER stream_ext;
GRANT SELECT ON tr_s6 TO regress_trust_user;
SET ROLE regress_trust_user;
CREATE VIEW tr_rv WITH (continuous) AS SELECT k FROM tr_s6;
RESET ROLE;
INSERT INTO tr_s6 VALUES ('before');
REVOKE SELECT ON tr_s6 FROM regress_trust_user;
INSERT INTO tr_s6 VALUES ('after');
SELECT k FROM tr_rv;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'tr_rv'::regclass;
SET client_min_messages = warning;
DROP FOREIGN TABLE tr_s6 CASCADE;
RESET client_min_messages;
-- such a batch costs the view its events, counted once each in
-- view_stats.errors: those it was to apply, not its late ones (counted in
-- late_events)
CREATE FOREIGN TABLE tr_s6t (k text, ts timestamptz) SERVER stream_ext;
GRANT SELECT ON tr_s6t TO regress_trust_user;
SET ROLE regress_trust_user;
CREATE VIEW tr_rvt WITH (continuous, time_column = 'ts', allowed_lateness = '1 minute') AS
  SELECT k, count(*) FROM tr_s6t GROUP BY k;
RESET ROLE;
INSERT INTO tr_s6t VALUES ('before', '2026-01-01 12:00+00');
REVOKE SELECT ON tr_s6t FROM regress_trust_user;
INSERT INTO tr_s6t VALUES ('after', '2026-01-01 12:10+00'), ('late', '2026-01-01 11:00+00');
SELECT late_events, errors FROM stream_ext.view_stats WHERE name = 'tr_rvt'::regclass;
SET client_min_messages = warning;
DROP FOREIGN TABLE tr_s6t CASCADE;
RESET client_min_messages;
-- the same when the right came with a role the owner is no longer a member
-- of (which invalidates no plan: the workers check it for every batch)
CREATE ROLE regress_trust_group;
CREATE FOREIGN TABLE tr_s7 (k text) SERVER stream_ext;
GRANT SELECT ON tr_s7 TO regress_trust_group;
GRANT regress_trust_group TO regress_trust_user;
SET ROLE regress_trust_user;
CREATE VIEW tr_gv WITH (continuous) AS SELECT k, count(*) AS n FROM tr_s7 GROUP BY k;
RESET ROLE;
INSERT INTO tr_s7 VALUES ('before');
INSERT INTO tr_s7 VALUES ('before');
INSERT INTO tr_s7 VALUES ('before');
REVOKE regress_trust_group FROM regress_trust_user;
INSERT INTO tr_s7 VALUES ('after');
INSERT INTO tr_s7 VALUES ('after');
SELECT k, n FROM tr_gv ORDER BY k;
SELECT DISTINCT sqlstate, message FROM stream_ext.view_errors WHERE name = 'tr_gv'::regclass;
SET client_min_messages = warning;
DROP FOREIGN TABLE tr_s7 CASCADE;
DROP ROLE regress_trust_group;
RESET client_min_messages;
SET ROLE regress_trust_user;
-- stream_ext.read_time takes fixed times only ('now' would stand still)
SET stream_ext.read_time = 'now';
SET stream_ext.read_time = 'today';
SET stream_ext.read_time = ' -Infinity';
-- and times only: refused when set, not at every later read
SET stream_ext.read_time = '2026-13-45';
SET stream_ext.read_time = 'garbage';
SET stream_ext.read_time = '2024-01-01 00:00:00+00';
-- a DateStyle that reads the value differently later: the error names it
SET datestyle = 'ISO, DMY';
SET stream_ext.read_time = '13/01/2024';
SET datestyle = 'ISO, MDY';
SELECT stream_ext.read_time();
RESET datestyle;
RESET stream_ext.read_time;
-- the reaper of an owner's event-time session view reads the view's
-- watermark, in the extension's tables, as the extension: the owner may
-- reap (the closed session goes, the one the watermark has not passed stays)
CREATE FOREIGN TABLE tr_s8 (k text, ts timestamptz) SERVER stream_ext;
CREATE VIEW tr_ses WITH (continuous, session_gap = '10 minutes', time_column = 'ts', ttl = '15 minutes') AS
  SELECT k, count(*) AS n FROM tr_s8 GROUP BY k;
INSERT INTO tr_s8 VALUES ('a', '2024-01-01 00:00+00'), ('a', '2024-01-01 00:05+00'), ('b', '2024-01-01 03:00+00');
-- (the reaper takes the watermark the workers folded: a later batch's)
INSERT INTO tr_s8 VALUES ('b', '2024-01-01 03:01+00');
RESET ROLE;
SELECT tr_wait_merged('tr_ses');
SET ROLE regress_trust_user;
SET stream_ext.read_time = '2024-01-01 02:00:00+00';
SELECT stream_ext.reap_expired('tr_ses') >= 0 AS reaped;
SET stream_ext.read_time = '2024-01-01 00:10:00+00';
SELECT k, n FROM tr_ses ORDER BY k;
RESET stream_ext.read_time;
DROP FOREIGN TABLE tr_s8 CASCADE;
RESET ROLE;
SET client_min_messages = warning;
DROP FOREIGN TABLE tr_s5 CASCADE;
RESET client_min_messages;

SET client_min_messages = warning;
DROP FOREIGN TABLE tr_own CASCADE;
DROP FUNCTION tr_is_a(text) CASCADE;
DROP FOREIGN TABLE tr_s CASCADE;
DROP AGGREGATE tr_sum(int8);
DROP FUNCTION tr_make_state(text);
DROP FUNCTION tr_wait_merged(regclass);
REVOKE CREATE ON SCHEMA public FROM regress_trust_user;
DROP ROLE regress_trust_user;
RESET client_min_messages;
