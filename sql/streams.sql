--
-- streams: creating streams and writing events into them
--
CREATE FOREIGN TABLE st_events (id int, name text, amount numeric, ts timestamptz) SERVER stream_ext;
-- arrival_timestamp is appended automatically
\d st_events
SELECT stream, schema, name, continuous_views FROM stream_ext.streams WHERE name = 'st_events';

-- One group per distinct event, so every write below can be checked exactly
CREATE VIEW st_rows WITH (continuous) AS
  SELECT id, name, amount, ts, count(*) AS n FROM st_events GROUP BY id, name, amount, ts;
SELECT stream, name, continuous_views FROM stream_ext.streams WHERE name = 'st_events';
SELECT * FROM st_rows;

-- single-row INSERT
INSERT INTO st_events VALUES (1, 'one', 1.5, '2024-01-01 10:00:00+00');
-- multi-row INSERT, with NULLs
INSERT INTO st_events VALUES (2, 'two', 2.25, '2024-01-02 10:00:00+00'),
                             (2, 'two', 2.25, '2024-01-02 10:00:00+00'),
                             (3, NULL, NULL, NULL);
-- column list: the missing columns are NULL
INSERT INTO st_events (name, id) VALUES ('four', 4);
-- explicit DEFAULT for arrival_timestamp is allowed
INSERT INTO st_events VALUES (5, 'five', 5, '2024-01-05 00:00:00+00', DEFAULT);
INSERT INTO st_events DEFAULT VALUES;
SELECT * FROM st_rows ORDER BY id, name, amount, ts;

-- INSERT ... SELECT
INSERT INTO st_events SELECT 100 + g % 3, 'gen', g, '2024-02-01 00:00:00+00'::timestamptz + g * interval '1 hour'
  FROM generate_series(1, 6) g;
INSERT INTO st_events (id, name) SELECT 200, 'bulk' FROM generate_series(1, 1000);
SELECT * FROM st_rows WHERE id >= 100 ORDER BY id, name, amount, ts;

-- prepared INSERT
PREPARE st_ins(int, text) AS INSERT INTO st_events (id, name) VALUES ($1, $2);
EXECUTE st_ins(300, 'prepared');
EXECUTE st_ins(300, 'prepared');
DEALLOCATE st_ins;
SELECT * FROM st_rows WHERE id = 300;

-- COPY, text format (tab separated, \N is NULL, backslash escapes)
COPY st_events FROM STDIN;
400	text	4.5	2024-03-01 00:00:00+00
400	tab\there	\N	\N
401	back\\slash	0	2024-03-01 12:00:00+00
\.
SELECT * FROM st_rows WHERE id BETWEEN 400 AND 499 ORDER BY id, name;

-- COPY, csv format with header, quoted values and a column list
COPY st_events (id, name, amount) FROM STDIN (FORMAT csv, HEADER true);
id,name,amount
500,"comma, inside",1
500,"quote "" inside",2
501,,3
501,"",4
\.
SELECT id, name IS NULL AS name_null, name, amount FROM st_rows WHERE id BETWEEN 500 AND 599 ORDER BY id, amount;

-- COPY, binary format: written by the server into its data directory, then read back
SELECT current_setting('data_directory') || '/stream_ext_streams_regress.bin' AS st_binfile \gset
COPY (SELECT 600 + g % 2, 'bin' || g, g * 1.25, '2024-04-01 00:00:00+00'::timestamptz + g * interval '1 day'
        FROM generate_series(1, 4) g)
  TO :'st_binfile' (FORMAT binary);
COPY st_events FROM :'st_binfile' (FORMAT binary);
SELECT * FROM st_rows WHERE id BETWEEN 600 AND 699 ORDER BY id, name;

-- COPY with a bad line: the whole COPY is discarded
COPY st_events (id, name, amount) FROM STDIN (FORMAT csv);
700,good,1
notanumber,bad,2
\.
SELECT count(*) FROM st_rows WHERE id = 700;

-- every event counted once
SELECT sum(n) AS events FROM st_rows;

-- reading from, updating, deleting, truncating a stream is refused
SELECT * FROM st_events;
SELECT count(*) FROM st_events;
UPDATE st_events SET name = 'x';
DELETE FROM st_events;
TRUNCATE st_events;
COPY st_events TO STDOUT;
-- RETURNING and ON CONFLICT are refused, and insert nothing
INSERT INTO st_events VALUES (900, 'returning', 1, NULL) RETURNING *;
INSERT INTO st_events VALUES (900, 'returning', 1, NULL) RETURNING id;
INSERT INTO st_events VALUES (901, 'conflict', 1, NULL) ON CONFLICT DO NOTHING;
-- an explicit value for arrival_timestamp is refused
INSERT INTO st_events VALUES (902, 'arrival', 1, NULL, now());
INSERT INTO st_events (id, arrival_timestamp) VALUES (902, now());
COPY st_events (id, arrival_timestamp) FROM STDIN;
903	2024-01-01 00:00:00+00
\.
SELECT count(*) FROM st_rows WHERE id >= 900;

-- arrival_timestamp is filled in for every event and usable in a view
SELECT clock_timestamp() AS st_before \gset
CREATE VIEW st_arrival WITH (continuous) AS
  SELECT count(*) AS n,
         count(arrival_timestamp) AS with_arrival,
         count(*) FILTER (WHERE arrival_timestamp <= now()) AS arrived_before_apply,
         min(arrival_timestamp) AS first_arrival,
         max(arrival_timestamp) AS last_arrival
    FROM st_events;
INSERT INTO st_events VALUES (1000, 'arr', 1, NULL);
INSERT INTO st_events SELECT 1001, 'arr', g, NULL FROM generate_series(1, 9) g;
COPY st_events (id) FROM STDIN;
1002
\.
SELECT n, with_arrival, arrived_before_apply,
       first_arrival >= :'st_before'::timestamptz AS first_after_start,
       last_arrival <= now() AS last_before_now,
       first_arrival <= last_arrival AS ordered
  FROM st_arrival;
-- each statement of a DO block (whose statements share a start time) reads
-- the clock again
CREATE VIEW st_arrival_do WITH (continuous) AS
  SELECT max(arrival_timestamp) - min(arrival_timestamp) AS spread FROM st_events WHERE name = 'do';
DO $$BEGIN
  FOR i IN 1..3 LOOP
    INSERT INTO st_events VALUES (1003, 'do', i, NULL);
    PERFORM pg_sleep(0.2);
  END LOOP;
END$$;
SELECT spread >= interval '0.4 s' AS arrivals_apart FROM st_arrival_do;

-- NOT NULL and CHECK constraints of a stream hold as for a table, INSERT and
-- COPY alike (PostgreSQL leaves a foreign table's to its wrapper); COPY
-- FREEZE is refused as for a table created earlier
CREATE FOREIGN TABLE st_checked (v int NOT NULL CHECK (v > 0), w text) SERVER stream_ext;
CREATE VIEW st_checked_v WITH (continuous) AS SELECT count(*) AS n, sum(v) AS s FROM st_checked;
\set VERBOSITY terse
INSERT INTO st_checked VALUES (1, 'a');
INSERT INTO st_checked VALUES (NULL, 'b');
INSERT INTO st_checked VALUES (-5, 'c');
COPY st_checked FROM STDIN;
2	d
\N	e
\.
COPY st_checked FROM STDIN (FREEZE);
3	f
\.
COPY st_events (id) FROM STDIN (FREEZE);
1004
\.
SELECT n, s FROM st_checked_v;
-- a constraint on arrival_timestamp sees the time the event is given
ALTER FOREIGN TABLE st_checked ALTER arrival_timestamp SET NOT NULL,
  ADD CONSTRAINT st_arrived CHECK (arrival_timestamp > '2000-01-01');
INSERT INTO st_checked VALUES (4, 'g');
COPY st_checked FROM STDIN;
5	h
\.
ALTER FOREIGN TABLE st_checked ADD CONSTRAINT st_future CHECK (arrival_timestamp > '2100-01-01');
INSERT INTO st_checked VALUES (6, 'i');
\set VERBOSITY default
SELECT n, s FROM st_checked_v;
DROP FOREIGN TABLE st_checked CASCADE;

-- row triggers on a stream: BEFORE ROW sees the event before it is stamped
-- and may change it; AFTER ROW sees it as buffered, arrival time included,
-- by INSERT, INSERT ... SELECT and COPY
CREATE TABLE st_trigger_log (id int, name text, arrival timestamptz);
CREATE FUNCTION st_upper_name() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$;
CREATE FUNCTION st_log_event() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO st_trigger_log VALUES (NEW.id, NEW.name, NEW.arrival_timestamp); RETURN NULL; END$$;
CREATE TRIGGER st_upper BEFORE INSERT ON st_events FOR EACH ROW EXECUTE FUNCTION st_upper_name();
CREATE TRIGGER st_log AFTER INSERT ON st_events FOR EACH ROW EXECUTE FUNCTION st_log_event();
CREATE VIEW st_by_name WITH (continuous) AS SELECT name, count(*) FROM st_events GROUP BY name;
SELECT clock_timestamp() AS st_before \gset
INSERT INTO st_events VALUES (1100, 'trig', 1, NULL);
INSERT INTO st_events SELECT 1101, 'trig', g, NULL FROM generate_series(1, 4) g;
COPY st_events (id, name) FROM STDIN;
1102	trig
\.
SELECT * FROM st_by_name;
SELECT id, name, count(*) AS events,
       count(*) FILTER (WHERE arrival BETWEEN :'st_before'::timestamptz AND now()) AS stamped
  FROM st_trigger_log GROUP BY id, name ORDER BY id;
DROP TRIGGER st_upper ON st_events;
DROP TRIGGER st_log ON st_events;
DROP VIEW st_by_name;

DROP FOREIGN TABLE st_events CASCADE;
SELECT count(*) FROM stream_ext.streams WHERE name = 'st_events';

-- A wrapper of its own on stream_ext's handler makes no streams: its foreign
-- tables refuse events (no view or worker would take them) and reads
CREATE FOREIGN DATA WRAPPER st_other_wrapper HANDLER stream_ext_internal.stream_fdw_handler;
CREATE SERVER st_other_server FOREIGN DATA WRAPPER st_other_wrapper;
CREATE FOREIGN TABLE st_not_a_stream (a int) SERVER st_other_server;
INSERT INTO st_not_a_stream VALUES (1);
COPY st_not_a_stream FROM STDIN;
1
\.
SELECT * FROM st_not_a_stream;
DROP FOREIGN DATA WRAPPER st_other_wrapper CASCADE;
