--
-- lifecycle: DROP, ALTER, truncate and the catalog views
--
CREATE FOREIGN TABLE lc_s (k int, v int, note text) SERVER stream_ext;
CREATE VIEW lc_a WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM lc_s GROUP BY k;
CREATE VIEW lc_b WITH (continuous) AS SELECT count(*) AS n, max(v) AS hi FROM lc_s;
INSERT INTO lc_s VALUES (1, 10, 'x'), (1, 20, 'y'), (2, 30, 'z');
SELECT * FROM lc_a ORDER BY k;
SELECT * FROM lc_b;

-- catalog views
SELECT stream, schema, name, continuous_views FROM stream_ext.streams WHERE name LIKE 'lc\_%' ORDER BY name;
SELECT name, stream, definition, state_table::text LIKE 'stream_ext_internal.state\_%' AS state_named
  FROM stream_ext.continuous_views WHERE stream::text = 'lc_s' ORDER BY name::text;
SELECT name, events, batches > 0 AS batched, last_applied IS NOT NULL AS applied, errors
  FROM stream_ext.view_stats WHERE name::text LIKE 'lc\_%' ORDER BY name::text;
-- a view that has seen no event
CREATE VIEW lc_c WITH (continuous) AS SELECT count(*) AS n FROM lc_s WHERE k > 100;
SELECT name, events, batches, last_applied IS NULL AS never_applied, errors
  FROM stream_ext.view_stats WHERE name = 'lc_c'::regclass;

-- the internal tables of a view
SELECT state_table::text AS lc_c_state, delta_table::text AS lc_c_delta
  FROM stream_ext_internal.continuous_views WHERE view = 'lc_c'::regclass \gset
SELECT to_regclass(:'lc_c_state') IS NOT NULL AS state_exists, to_regclass(:'lc_c_delta') IS NOT NULL AS delta_exists;

-- DROP VIEW rolled back keeps the view and its state
BEGIN;
DROP VIEW lc_a;
ROLLBACK;
SELECT * FROM lc_a ORDER BY k;

-- DROP VIEW removes the state behind the view
DROP VIEW lc_c;
SELECT count(*) FROM stream_ext.continuous_views WHERE name::text = 'lc_c';
SELECT to_regclass(:'lc_c_state') IS NULL AS state_gone, to_regclass(:'lc_c_delta') IS NULL AS delta_gone;
SELECT count(*) FROM stream_ext_internal.view_counters c
 WHERE NOT EXISTS (SELECT FROM stream_ext_internal.continuous_views v WHERE v.id = c.view_id);
-- a view created in a rolled back transaction leaves nothing
BEGIN;
CREATE VIEW lc_tmp WITH (continuous) AS SELECT count(*) AS n FROM lc_s;
INSERT INTO lc_s VALUES (1, 1, 'rolled back');
ROLLBACK;
SELECT to_regclass('lc_tmp') IS NULL AS gone;
INSERT INTO lc_s VALUES (3, 40, 'w');
SELECT * FROM lc_a ORDER BY k;
SELECT continuous_views FROM stream_ext.streams WHERE name = 'lc_s';

-- DROP of a stream with views needs CASCADE
DROP FOREIGN TABLE lc_s;
SELECT continuous_views FROM stream_ext.streams WHERE name = 'lc_s';

-- renaming the view
ALTER VIEW lc_a RENAME TO lc_a2;
INSERT INTO lc_s VALUES (1, 5, 'after view rename');
SELECT * FROM lc_a2 ORDER BY k;
SELECT name FROM stream_ext.continuous_views WHERE stream::text = 'lc_s' ORDER BY name::text;
-- renaming a column of the view
ALTER VIEW lc_a2 RENAME COLUMN s TO total;
INSERT INTO lc_s VALUES (2, 5, 'after column rename');
SELECT k, n, total FROM lc_a2 ORDER BY k;
-- moving the view to another schema
CREATE SCHEMA lc_other;
ALTER VIEW lc_b SET SCHEMA lc_other;
INSERT INTO lc_s VALUES (9, 99, 'after set schema');
SELECT * FROM lc_other.lc_b;

-- renaming the stream
ALTER FOREIGN TABLE lc_s RENAME TO lc_s2;
INSERT INTO lc_s2 VALUES (1, 1, 'after stream rename');
SELECT * FROM lc_a2 ORDER BY k;
SELECT name, continuous_views FROM stream_ext.streams WHERE name LIKE 'lc\_%' ORDER BY name;
SELECT name, stream FROM stream_ext.continuous_views WHERE stream::text = 'lc_s2' ORDER BY name::text;
-- a new view on the renamed stream
CREATE VIEW lc_d WITH (continuous) AS SELECT note, count(*) AS n FROM lc_s2 GROUP BY note;
-- renaming a column of the stream that a view uses
ALTER FOREIGN TABLE lc_s2 RENAME COLUMN v TO value;
INSERT INTO lc_s2 (k, value, note) VALUES (1, 2, 'after column rename');
SELECT * FROM lc_a2 ORDER BY k;
SELECT * FROM lc_d ORDER BY note;
-- renaming an enum's label a view names: its stored text follows (pg_dump
-- writes that text out, and a restore reads it back; stream_ext.continuous_views
-- shows the query as it is now, whatever the text)
CREATE TYPE lc_mood AS ENUM ('ok', 'sad');
CREATE VIEW lc_moods WITH (continuous) AS
  SELECT k, count(*) AS n FROM lc_s2 WHERE 'sad'::lc_mood > 'ok'::lc_mood GROUP BY k;
ALTER TYPE lc_mood RENAME VALUE 'sad' TO 'blue';
SELECT definition FROM stream_ext_internal.continuous_views WHERE view = 'lc_moods'::regclass;
DROP VIEW lc_moods;
DROP TYPE lc_mood;

-- adding a column keeps the views working
ALTER FOREIGN TABLE lc_s2 ADD COLUMN extra numeric;
\d lc_s2
INSERT INTO lc_s2 (k, value, note, extra) VALUES (1, 100, 'with extra', 1.5);
INSERT INTO lc_s2 (k, value) VALUES (2, 200);
SELECT * FROM lc_a2 ORDER BY k;
CREATE VIEW lc_e WITH (continuous) AS SELECT k, sum(extra) AS extra_total, count(*) AS n FROM lc_s2 GROUP BY k;
INSERT INTO lc_s2 (k, value, note, extra) VALUES (1, 1, 'e1', 2.5), (1, 1, 'e2', NULL), (3, 1, 'e3', 4);
COPY lc_s2 FROM STDIN (FORMAT csv);
3,1,e4,0.5
\.
SELECT * FROM lc_e ORDER BY k;
SELECT * FROM lc_a2 ORDER BY k;

-- after ADD COLUMN, COPY without a column list still skips arrival_timestamp
CREATE FOREIGN TABLE lc_addcol (a int) SERVER stream_ext;
CREATE VIEW lc_addcol_v WITH (continuous) AS SELECT count(*) AS n, sum(a) AS sa FROM lc_addcol;
ALTER FOREIGN TABLE lc_addcol ADD COLUMN b int;
CREATE VIEW lc_addcol_w WITH (continuous) AS SELECT count(*) AS n, sum(a) AS sa, sum(b) AS sb FROM lc_addcol;
-- a column added later comes after arrival_timestamp: name the columns, or
-- write DEFAULT for arrival_timestamp
INSERT INTO lc_addcol VALUES (1, 10);
INSERT INTO lc_addcol (a, b) VALUES (1, 10);
INSERT INTO lc_addcol VALUES (0, DEFAULT, 0);
INSERT INTO lc_addcol VALUES (2);
COPY lc_addcol FROM STDIN;
3	30
\.
SELECT * FROM lc_addcol_v;
SELECT * FROM lc_addcol_w;
DROP FOREIGN TABLE lc_addcol CASCADE;

-- a column a view uses cannot be dropped or changed
ALTER FOREIGN TABLE lc_s2 DROP COLUMN value;
ALTER FOREIGN TABLE lc_s2 DROP COLUMN extra;
-- nor may a column no view uses change its type: events written before and
-- not applied yet would be read with the new one
ALTER FOREIGN TABLE lc_s2 ADD COLUMN spare int;
ALTER FOREIGN TABLE lc_s2 ALTER COLUMN spare TYPE text;
ALTER FOREIGN TABLE lc_s2 DROP COLUMN spare;
-- (changing the type is refused with an ordinary error, not an internal one)
DO $$
BEGIN
  ALTER FOREIGN TABLE lc_s2 ALTER COLUMN k TYPE bigint;
  RAISE NOTICE 'type change accepted';
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'refused, internal error: %', SQLSTATE = 'XX000';
END
$$;
-- a column no view uses can be dropped, and the views keep working
ALTER FOREIGN TABLE lc_s2 ADD COLUMN unused text;
ALTER FOREIGN TABLE lc_s2 DROP COLUMN unused;
INSERT INTO lc_s2 (k, value, note, extra) VALUES (3, 7, 'after drop column', 1);
SELECT * FROM lc_a2 ORDER BY k;
SELECT * FROM lc_e ORDER BY k;

-- truncate_continuous_view resets one view only
SELECT * FROM lc_other.lc_b;
SELECT stream_ext.truncate_continuous_view('lc_a2');
SELECT * FROM lc_a2 ORDER BY k;
SELECT n FROM lc_other.lc_b;
SELECT * FROM lc_e ORDER BY k;
INSERT INTO lc_s2 (k, value, note, extra) VALUES (5, 50, 'after truncate', 0);
SELECT * FROM lc_a2 ORDER BY k;
SELECT n FROM lc_other.lc_b;
-- an OID that names no relation is said so
SELECT stream_ext.truncate_continuous_view(0);
SELECT stream_ext.reap_expired(0);
-- truncating in a rolled back transaction keeps the content
BEGIN;
SELECT stream_ext.truncate_continuous_view('lc_other.lc_b');
SELECT n FROM lc_other.lc_b;
ROLLBACK;
SELECT n FROM lc_other.lc_b;
-- only continuous views can be truncated
CREATE VIEW lc_plain AS SELECT 1 AS one;
SELECT stream_ext.truncate_continuous_view('lc_plain');
DROP VIEW lc_plain;
SELECT stream_ext.truncate_continuous_view('lc_s2');
SELECT stream_ext.truncate_continuous_view('lc_missing');

SELECT name, events, batches > 0 AS batched, last_applied IS NOT NULL AS applied, errors
  FROM stream_ext.view_stats WHERE stream_ext.view_stats.name IN (SELECT name FROM stream_ext.continuous_views WHERE stream::text = 'lc_s2')
 ORDER BY name::text;

-- DROP of the stream with CASCADE drops the views and their state
SELECT string_agg(state_table::text || ',' || delta_table::text, ',') AS lc_internal
  FROM stream_ext_internal.continuous_views WHERE stream = 'lc_s2'::regclass \gset
DROP FOREIGN TABLE lc_s2 CASCADE;
SELECT count(*) FROM stream_ext.continuous_views WHERE stream::text = 'lc_s2';
SELECT count(*) FROM stream_ext.streams WHERE name LIKE 'lc\_%';
SELECT bool_and(to_regclass(t) IS NULL) AS all_internal_tables_gone, count(*) AS tables
  FROM unnest(string_to_array(:'lc_internal', ',')) t;
SELECT to_regclass('lc_other.lc_b') IS NULL AS lc_b_gone;
DROP SCHEMA lc_other;

-- DROP SCHEMA CASCADE drops streams and views in it
CREATE SCHEMA lc_schema;
CREATE FOREIGN TABLE lc_schema.s (x int) SERVER stream_ext;
CREATE VIEW lc_schema.v WITH (continuous) AS SELECT count(*) AS n FROM lc_schema.s;
CREATE VIEW lc_outside WITH (continuous) AS SELECT sum(x) AS total FROM lc_schema.s;
INSERT INTO lc_schema.s VALUES (1), (2);
SELECT n, (SELECT total FROM lc_outside) FROM lc_schema.v;
SELECT state_table::text AS lc_schema_state FROM stream_ext_internal.continuous_views WHERE view = 'lc_schema.v'::regclass \gset
DROP SCHEMA lc_schema CASCADE;
SELECT to_regclass(:'lc_schema_state') IS NULL AS state_gone, to_regclass('lc_outside') IS NULL AS outside_view_gone;
SELECT count(*) AS orphan_internal_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'stream_ext_internal' AND c.relkind = 'r' AND c.relname ~ '^(state|delta)_'
   AND c.oid NOT IN (SELECT state_table FROM stream_ext_internal.continuous_views
                     UNION ALL SELECT delta_table FROM stream_ext_internal.continuous_views);
