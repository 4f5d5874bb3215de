--
-- security: odd identifiers, ownership and privileges
--
CREATE SCHEMA "My Schema";
CREATE FOREIGN TABLE "My Schema"."Click ""Stream""" ("URL Path" text, "User" int, "select" int, "a b" float8)
  SERVER stream_ext;
\d "My Schema"."Click ""Stream"""
CREATE VIEW "My Schema"."Stats View" WITH (continuous) AS
  SELECT "URL Path", upper("URL Path") AS "Upper URL", count(*) AS "Count ""quoted""", sum("select") AS "select",
         avg("a b") AS "a b avg", max("User") AS "from"
    FROM "My Schema"."Click ""Stream""" GROUP BY "URL Path";
SELECT stream_ext.create_continuous_view('"My Schema"."Second View"',
  $$SELECT "User", count(*) AS "N" FROM "My Schema"."Click ""Stream""" AS "c s" WHERE "c s"."URL Path" <> '' GROUP BY "User"$$);
SET search_path = "My Schema", public;
SELECT stream_ext.create_continuous_view('"Third View"', $$SELECT count(*) AS n FROM "Click ""Stream"""$$);
RESET search_path;
INSERT INTO "My Schema"."Click ""Stream""" VALUES ('/a b', 1, 10, 0.5), ('/a b', 2, 20, 1.5), ('/C''D', 3, 30, NULL), ('', 4, 1, 1);
COPY "My Schema"."Click ""Stream""" ("URL Path", "User") FROM STDIN (FORMAT csv);
"/a b",5
"/e,""f""",6
\.
SELECT * FROM "My Schema"."Stats View" ORDER BY "URL Path" COLLATE "C";
SELECT * FROM "My Schema"."Second View" ORDER BY "User";
SELECT * FROM "My Schema"."Third View";
SELECT stream, schema, name, continuous_views FROM stream_ext.streams WHERE schema = 'My Schema';
SELECT name, stream FROM stream_ext.continuous_views WHERE stream::text LIKE '"My Schema".%' ORDER BY name::text;
SELECT name, events, errors FROM stream_ext.view_stats WHERE name::text LIKE '"My Schema".%' ORDER BY name::text;
ALTER VIEW "My Schema"."Stats View" RENAME TO "Stats View (old)";
INSERT INTO "My Schema"."Click ""Stream""" VALUES ('/a b', 7, 70, 7);
SELECT "URL Path", "Count ""quoted""" FROM "My Schema"."Stats View (old)" ORDER BY "URL Path" COLLATE "C";
SELECT stream_ext.truncate_continuous_view('"My Schema"."Stats View (old)"');
SELECT count(*) FROM "My Schema"."Stats View (old)";
SET client_min_messages = warning;
DROP SCHEMA "My Schema" CASCADE;
RESET client_min_messages;

-- stream columns whose names look like the internal columns of state and delta tables
CREATE FOREIGN TABLE sec_internal_names (writer_xid int, a1_count int, s text, "count" int) SERVER stream_ext;
CREATE VIEW sec_internal_v WITH (continuous) AS
  SELECT writer_xid, a1_count, s, count(*), sum("count") AS a2_sum FROM sec_internal_names GROUP BY writer_xid, a1_count, s;
INSERT INTO sec_internal_names VALUES (1, 2, 'x', 10), (1, 2, 'x', 20), (3, 4, 'y', 30);
SELECT * FROM sec_internal_v ORDER BY writer_xid;
DROP FOREIGN TABLE sec_internal_names CASCADE;

-- a long view name
CREATE FOREIGN TABLE sec_long (x int) SERVER stream_ext;
CREATE VIEW a_view_name_that_is_exactly_sixty_three_characters_long_xxxxxxx WITH (continuous) AS
  SELECT count(*) AS n FROM sec_long;
INSERT INTO sec_long VALUES (1);
SELECT * FROM a_view_name_that_is_exactly_sixty_three_characters_long_xxxxxxx;
DROP FOREIGN TABLE sec_long CASCADE;

-- a role without superuser owns streams and views
CREATE ROLE regress_stream_owner LOGIN;
CREATE ROLE regress_stream_writer LOGIN;
CREATE SCHEMA sec AUTHORIZATION regress_stream_owner;
-- runs a statement, reports whether it was allowed
CREATE FUNCTION sec_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'allowed';
EXCEPTION
  WHEN insufficient_privilege THEN RETURN 'permission denied';
  WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SET ROLE regress_stream_owner;
CREATE FOREIGN TABLE sec.events (who text, amount int) SERVER stream_ext;
CREATE VIEW sec.totals WITH (continuous) AS SELECT who, count(*) AS n, sum(amount) AS total FROM sec.events GROUP BY who;
CREATE VIEW sec.secret WITH (continuous) AS SELECT max(amount) AS top FROM sec.events;
CREATE VIEW sec.failing WITH (continuous) AS SELECT sum(100 / amount) AS x FROM sec.events;
CREATE VIEW sec.hidden_failing WITH (continuous) AS SELECT sum(ln(amount)) AS y FROM sec.events;
SELECT stream_ext.create_continuous_view('sec.by_fn', 'SELECT count(*) AS n FROM sec.events');
CREATE VIEW sec.dropped WITH (continuous) AS SELECT count(*) AS n FROM sec.events;
INSERT INTO sec.events VALUES ('owner', 1), ('owner', 2), ('owner', 0);
SELECT * FROM sec.totals ORDER BY who;
SELECT * FROM sec.secret;
SELECT * FROM sec.by_fn;
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class
 WHERE relnamespace = 'sec'::regnamespace ORDER BY relname;
SELECT name, events, errors FROM stream_ext.view_stats WHERE name::text LIKE 'sec.%' ORDER BY name::text;
-- the owner may read the recorded errors of its views
SELECT name, sqlstate, message FROM stream_ext.view_errors WHERE name::text LIKE 'sec.%' ORDER BY name::text;
-- the owner may truncate and drop its views
SELECT stream_ext.truncate_continuous_view('sec.by_fn');
SELECT * FROM sec.by_fn;
DROP VIEW sec.dropped;
SELECT name FROM stream_ext.continuous_views WHERE stream::text = 'sec.events' ORDER BY name::text;
GRANT USAGE ON SCHEMA sec TO regress_stream_writer;
GRANT INSERT ON sec.events TO regress_stream_writer;
GRANT SELECT ON sec.totals, sec.failing TO regress_stream_writer;
RESET ROLE;
SELECT to_regclass('sec.dropped') IS NULL AS dropped_view_gone;
SELECT state_table::text AS sec_state, delta_table::text AS sec_delta
  FROM stream_ext_internal.continuous_views WHERE view = 'sec.secret'::regclass \gset
-- the owner of a view may not put statistics or policies on its tables: the
-- combiner's ANALYZE would run the statistics' expressions
SELECT state_table::text AS sec_totals_state
  FROM stream_ext_internal.continuous_views WHERE view = 'sec.totals'::regclass \gset
SET ROLE regress_stream_owner;
SELECT sec_try(format('CREATE STATISTICS sec.totals_stats ON who, (length(who)) FROM %s', :'sec_totals_state')) AS create_statistics,
       sec_try(format('CREATE POLICY totals_policy ON %s USING (true)', :'sec_totals_state')) AS create_policy;
RESET ROLE;
-- nor move them with ALTER ... ALL IN TABLESPACE (its other relations it may)
SET allow_in_place_tablespaces = true;
CREATE TABLESPACE regress_sec_space LOCATION '';
GRANT CREATE ON TABLESPACE regress_sec_space TO regress_stream_owner;
SET ROLE regress_stream_owner;
CREATE TABLE sec.plain (a int);
SELECT sec_try('ALTER TABLE ALL IN TABLESPACE pg_default OWNED BY regress_stream_owner SET TABLESPACE regress_sec_space') AS move_tables,
       sec_try('ALTER INDEX ALL IN TABLESPACE pg_default OWNED BY regress_stream_owner SET TABLESPACE regress_sec_space') AS move_indexes,
       sec_try('ALTER TABLE sec.plain SET TABLESPACE regress_sec_space') AS move_one;
SELECT relname FROM pg_class WHERE reltablespace = (SELECT oid FROM pg_tablespace WHERE spcname = 'regress_sec_space');
DROP TABLE sec.plain;
RESET ROLE;
DROP TABLESPACE regress_sec_space;

-- a role with INSERT on the stream and SELECT on one view
SET ROLE regress_stream_writer;
INSERT INTO sec.events VALUES ('writer', 10), ('writer', 20);
COPY sec.events FROM STDIN;
writer	30
\.
SELECT * FROM sec.totals ORDER BY who;
-- not granted: the other views, the stream itself
SELECT * FROM sec.secret;
SELECT * FROM sec.by_fn;
SELECT * FROM sec.events;
-- nor the internal tables
SELECT sec_try(format('SELECT count(*) FROM %s', :'sec_state')) AS read_state,
       sec_try(format('SELECT count(*) FROM %s', :'sec_delta')) AS read_delta,
       sec_try(format('INSERT INTO %s VALUES (1000)', :'sec_state')) AS write_state,
       sec_try(format('DELETE FROM %s', :'sec_delta')) AS delete_delta,
       sec_try('DELETE FROM stream_ext_internal.continuous_views') AS delete_catalog,
       sec_try('DELETE FROM stream_ext_internal.view_counters') AS delete_counters,
       sec_try('DELETE FROM stream_ext_internal.view_errors') AS delete_errors;
-- nor may it change or drop the owner's objects
SELECT stream_ext.truncate_continuous_view('sec.totals');
DROP VIEW sec.totals;
ALTER VIEW sec.totals RENAME TO stolen;
DROP FOREIGN TABLE sec.events;
-- nor define its own continuous view over a stream it cannot read
CREATE VIEW public.sec_spy WITH (continuous) AS SELECT who, sum(amount) FROM sec.events GROUP BY who;
SELECT stream_ext.create_continuous_view('public.sec_spy', 'SELECT who, sum(amount) FROM sec.events GROUP BY who');
-- nor see the events recorded for views it cannot read, nor the messages
-- (which may quote an event's value) of those it can but not their stream
SELECT count(*) AS visible_errors FROM stream_ext.view_errors WHERE name::text LIKE 'sec.%' AND name <> 'sec.failing'::regclass;
SELECT name, sqlstate, message, event FROM stream_ext.view_errors WHERE name = 'sec.failing'::regclass;
-- not even through a function of its own that the planner would run first
-- (sec.hidden_failing's error, 2201E, stays hidden)
CREATE FUNCTION pg_temp.sec_peek(text) RETURNS bool LANGUAGE plpgsql COST 0.000001
  AS $$ BEGIN RAISE NOTICE 'seen: %', $1; RETURN true; END $$;
SELECT count(*) AS peeked FROM stream_ext.view_errors WHERE pg_temp.sec_peek(sqlstate);
DROP FUNCTION pg_temp.sec_peek(text);
RESET ROLE;
SELECT to_regclass('public.sec_spy') IS NULL AS no_spy_view;
SELECT * FROM sec.totals ORDER BY who;
SELECT * FROM sec.secret;

-- a revoked privilege is enforced at once
REVOKE INSERT ON sec.events FROM regress_stream_writer;
SET ROLE regress_stream_writer;
INSERT INTO sec.events VALUES ('writer', 40);
RESET ROLE;

-- ownership can be transferred; the new owner reads the stream with its own
-- rights: without SELECT on it the view gets no new events (recorded)
ALTER VIEW sec.totals OWNER TO regress_stream_writer;
SET ROLE regress_stream_owner;
INSERT INTO sec.events VALUES ('owner', 7);
RESET ROLE;
SELECT * FROM sec.totals ORDER BY who;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'sec.totals'::regclass AND sqlstate = '42501';
SET ROLE regress_stream_owner;
GRANT SELECT ON sec.events TO regress_stream_writer;
INSERT INTO sec.events VALUES ('owner', 5);
RESET ROLE;
SET ROLE regress_stream_writer;
SELECT sec_try('SELECT * FROM sec.totals') AS read_own_view;
RESET ROLE;
SELECT * FROM sec.totals ORDER BY who;
SET ROLE regress_stream_writer;
SELECT sec_try($$SELECT stream_ext.truncate_continuous_view('sec.totals')$$) AS truncate_own_view;
RESET ROLE;
SELECT count(*) AS totals_rows_after_truncate, (SELECT n FROM sec.by_fn) AS by_fn_n FROM sec.totals;

-- a continuous view may be a security barrier, as any view: then a function
-- in a reader's WHERE sees only the rows the view returns, not the groups its
-- HAVING leaves out (nor the events of writers that rolled back)
SET ROLE regress_stream_owner;
CREATE VIEW sec.busy WITH (continuous, security_barrier) AS
  SELECT who, count(*) AS n FROM sec.events GROUP BY who HAVING count(*) >= 2;
GRANT SELECT ON sec.busy TO regress_stream_writer;
INSERT INTO sec.events VALUES ('twice', 1), ('twice', 2), ('once', 3);
BEGIN;
INSERT INTO sec.events VALUES ('rolled back', 4);
ROLLBACK;
RESET ROLE;
SELECT reloptions FROM pg_class WHERE oid = 'sec.busy'::regclass;
SET ROLE regress_stream_writer;
CREATE FUNCTION pg_temp.sec_peek(text) RETURNS bool LANGUAGE plpgsql IMMUTABLE COST 0.000001
  AS $$ BEGIN RAISE NOTICE 'seen: %', $1; RETURN true; END $$;
SELECT who, n FROM sec.busy WHERE pg_temp.sec_peek(who);
DROP FUNCTION pg_temp.sec_peek(text);
RESET ROLE;

-- the owner drops its stream and every view on it
SET ROLE regress_stream_owner;
SET client_min_messages = warning;
SELECT sec_try('DROP FOREIGN TABLE sec.events CASCADE') AS drop_stream;
RESET client_min_messages;
RESET ROLE;
SELECT count(*) AS remaining_views FROM stream_ext.continuous_views WHERE stream::text = 'sec.events';

-- EXECUTE on a function a view's plan calls, revoked from its owner between
-- two batches: the next events fail for the view, recorded (a worker's kept
-- executor went on calling it)
CREATE FUNCTION sec_twice(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN $1 * 2; END';
REVOKE EXECUTE ON FUNCTION sec_twice(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sec_twice(int) TO regress_stream_owner;
SET ROLE regress_stream_owner;
CREATE FOREIGN TABLE sec.fx (v int) SERVER stream_ext;
CREATE VIEW sec.fx_v WITH (continuous) AS SELECT count(*) AS n, sum(sec_twice(v)) AS s FROM sec.fx;
INSERT INTO sec.fx VALUES (1);
INSERT INTO sec.fx VALUES (2);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION sec_twice(int) FROM regress_stream_owner;
SET ROLE regress_stream_owner;
INSERT INTO sec.fx VALUES (3);
SELECT n, s FROM sec.fx_v;
RESET ROLE;
SELECT sqlstate, message FROM stream_ext.view_errors WHERE name = 'sec.fx_v'::regclass;

SET client_min_messages = warning;
DROP SCHEMA sec CASCADE;
DROP FUNCTION sec_try;
DROP FUNCTION sec_twice(int);
DROP ROLE regress_stream_writer;
DROP ROLE regress_stream_owner;
RESET client_min_messages;
SELECT count(*) AS orphan_internal_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'stream_ext_internal' AND c.relkind = 'r' AND c.relname ~ '^(state|delta)_'
   AND c.oid NOT IN (SELECT state_table FROM stream_ext_internal.continuous_views
                     UNION ALL SELECT delta_table FROM stream_ext_internal.continuous_views);
