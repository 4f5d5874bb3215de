--
-- windows: time windows, event time, ttl and lateness
--
-- Reads take stream_ext.read_time as "now", so results do not depend on the clock;
-- events are dated 2052 so that the combiner's reaper, which expires rows by the
-- clock, never deletes rows a read at that read_time still shows.
SET stream_ext.read_time = '2052-01-01 12:00:00+00';
CREATE FOREIGN TABLE w_s (url text, user_id bigint, latency float8, ts timestamptz,
                          lts timestamp, d date) SERVER stream_ext;

-- wait until the combiner merged every delta of a view (rows then sit in its state table)
CREATE FUNCTION w_merged(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  pending bigint;
BEGIN
  FOR i IN 1..400 LOOP
    EXECUTE format('SELECT count(*) FROM stream_ext_internal.delta_%s',
                   (SELECT id FROM stream_ext_internal.continuous_views WHERE view = v))
      INTO pending;
    IF pending = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
CREATE FUNCTION w_state_rows(v regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s',
                 (SELECT state_table FROM stream_ext.continuous_views WHERE name = v)) INTO n;
  RETURN n;
END $$;

-- Options are checked, each error names the option
CREATE VIEW w_bad WITH (continuous, sliding_window = '5 minutes', hop_size = '10 minutes', hop_slide = '1 minute') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '5 minutes', session_gap = '1 minute') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, hop_size = '10 minutes', session_gap = '1 minute') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, hop_size = '10 minutes') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, hop_slide = '1 minute') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, hop_size = '10 minutes', hop_slide = '3 minutes') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, hop_size = '10 minutes', hop_slide = '1 minute', step = '1 minute') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, step = '1 minute') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '1 minute', step = '5 minutes') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '1 month') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '-5 minutes') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '0') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = 'soon') AS SELECT url, count(*) FROM w_s GROUP BY url;
-- lengths reads subtract from now: at most 1000 years
CREATE VIEW w_bad WITH (continuous, sliding_window = '3000000 days') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, session_gap = '1 minute', ttl = '10000 years') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, session_gap = '1 minute', ttl = '213503983 days') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '213503983 days') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, sliding_window = '5 minutes', sliding_window = '6 minutes') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, continuous = false) AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, ttl = '1 day') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, ttl_column = 'url') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, ttl = '1 day', sliding_window = '5 minutes') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, ttl = '1 day', ttl_column = 'url', session_gap = '5 minutes') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, ttl = '1 day', ttl_column = 'url') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, ttl = '1 day', ttl_column = 'nope') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, allowed_lateness = '1 minute') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, keep_late = true) AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, time_column = 'nope') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, time_column = 'url') AS SELECT url, count(*) FROM w_s GROUP BY url;
CREATE VIEW w_bad WITH (continuous, time_column = 'ts', allowed_lateness = '-1 minute') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
SELECT stream_ext.create_continuous_view('w_bad', 'SELECT url, count(*) FROM w_s GROUP BY url', ARRAY['sliding_window']);
SELECT stream_ext.create_continuous_view('w_bad', 'SELECT url, count(*) FROM w_s GROUP BY url', ARRAY['windowsize=5']);

-- Tumbling: GROUP BY a bucket; ttl hides old buckets at once, the reaper deletes them
CREATE VIEW w_minute WITH (continuous, ttl = '1 hour', ttl_column = 'minute') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, url, count(*), avg(latency)
  FROM w_s GROUP BY minute, url;
-- Sliding: the last 5 minutes of event time, in steps of 1 minute
CREATE VIEW w_last5 WITH (continuous, sliding_window = '5 minutes', step = '1 minute', time_column = 'ts') AS
  SELECT url, count(*), max(latency) FROM w_s GROUP BY url;
CREATE VIEW w_last5_all WITH (continuous, sliding_window = '5 minutes', step = '1 minute', time_column = 'ts') AS
  SELECT count(*), sum(latency) FROM w_s;
-- Hopping: 10-minute windows every 5 minutes
SELECT stream_ext.create_continuous_view('w_hop',
  'SELECT url, count(*), sum(latency) FROM w_s GROUP BY url',
  ARRAY['hop_size=10 minutes', 'hop_slide=5 minutes', 'time_column=ts', 'allowed_lateness=1 day']);
-- Sessions: per user, 30 minutes of inactivity closes a session
CREATE VIEW w_sessions WITH (continuous, session_gap = '30 minutes', time_column = 'ts',
                             allowed_lateness = '1 day') AS
  SELECT user_id, count(*), sum(latency) FROM w_s GROUP BY user_id;
-- Event time as timestamp and as date
CREATE VIEW w_hop_local WITH (continuous, hop_size = '2 hours', hop_slide = '1 hour', time_column = 'lts',
                              allowed_lateness = '1 day') AS
  SELECT count(*) FROM w_s;
CREATE VIEW w_days WITH (continuous, session_gap = '2 days', time_column = 'd', allowed_lateness = '30 days') AS
  SELECT url, count(*) FROM w_s GROUP BY url;
-- Lateness: the default allowed_lateness is one minute
CREATE VIEW w_late WITH (continuous, time_column = 'ts', keep_late = true) AS
  SELECT date_bin('10 minutes', ts, '2000-01-01') AS bucket, count(*) FROM w_s GROUP BY bucket;

SELECT name, window_kind, time_column, window_size, window_step, ttl, ttl_column, allowed_lateness, keep_late
  FROM stream_ext.continuous_views WHERE name::text LIKE 'w\_%' ORDER BY name::text;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_name IN ('w_hop', 'w_sessions') ORDER BY table_name, ordinal_position;

INSERT INTO w_s (url, user_id, latency, ts, lts, d) VALUES
  ('/a', 1, 10, '2052-01-01 11:58:00+00', '2052-01-01 11:58:00', '2052-01-01'),
  ('/a', 1, 20, '2052-01-01 11:56:30+00', '2052-01-01 11:56:30', '2052-01-01'),
  ('/b', 2, 30, '2052-01-01 11:54:59+00', '2052-01-01 11:54:59', '2052-01-03'),
  ('/b', 2, 40, '2052-01-01 11:30:00+00', '2052-01-01 11:30:00', '2052-01-06'),
  ('/a', 1, 50, '2052-01-01 10:00:00+00', '2052-01-01 10:00:00', '2051-12-25'),
  ('/c', NULL, 60, NULL, NULL, NULL);

SELECT * FROM w_minute ORDER BY minute, url;
-- steps 11:55 ... 12:00 are in the window at 12:00
SELECT * FROM w_last5 ORDER BY url;
SELECT * FROM w_last5_all;
SELECT * FROM w_hop ORDER BY window_start, url;
SELECT * FROM w_sessions ORDER BY user_id, session_start;
SELECT * FROM w_hop_local ORDER BY window_start;
SELECT * FROM w_days ORDER BY url, session_start;

-- Out-of-order events within the allowed lateness bridge two sessions
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/a', 1, 1, '2052-01-01 10:25:00+00');
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/a', 1, 2, '2052-01-01 11:20:00+00'),
                                                   ('/a', 1, 3, '2052-01-01 10:50:00+00');
SELECT * FROM w_sessions ORDER BY user_id, session_start;
SELECT w_merged('w_sessions');
SELECT * FROM w_sessions ORDER BY user_id, session_start;
SELECT w_state_rows('w_sessions');

-- The sliding window moves with the read time; old steps are reaped
SET stream_ext.read_time = '2052-01-01 12:03:00+00';
SELECT * FROM w_last5 ORDER BY url;
SELECT * FROM w_last5_all;
SELECT w_merged('w_last5');
SELECT w_state_rows('w_last5');
SELECT stream_ext.reap_expired('w_last5');
SELECT w_state_rows('w_last5');
SELECT * FROM w_last5 ORDER BY url;

-- ttl: an hour later the 10:xx and 11:0x-11:3x buckets are gone from reads at once
SET stream_ext.read_time = '2052-01-01 12:55:30+00';
SELECT * FROM w_minute ORDER BY minute, url;
SELECT w_merged('w_minute');
SELECT w_state_rows('w_minute');
SELECT stream_ext.reap_expired('w_minute');
SELECT w_state_rows('w_minute');
SELECT * FROM w_minute ORDER BY minute, url;

-- ttl counts days of 24 hours in every TimeZone: a view reads the same in every
-- zone, and the reaper deletes what reads no longer show.  In Berlin the day
-- before 2052-10-27 12:00 UTC was 25 hours long (summer time ended).
CREATE FOREIGN TABLE w_dst (ts timestamptz) SERVER stream_ext;
CREATE VIEW w_day WITH (continuous, ttl = '1 day', ttl_column = 'ts') AS
  SELECT ts, count(*) FROM w_dst GROUP BY ts;
INSERT INTO w_dst VALUES ('2052-10-26 11:30:00+00'), ('2052-10-26 12:30:00+00');
SET stream_ext.read_time = '2052-10-27 12:00:00+00';
SET TimeZone = 'Europe/Berlin';
SELECT ts AT TIME ZONE 'UTC' AS ts_utc, count FROM w_day ORDER BY ts;
SET TimeZone = 'UTC';
SELECT ts AT TIME ZONE 'UTC' AS ts_utc, count FROM w_day ORDER BY ts;
SELECT w_merged('w_day');
SET TimeZone = 'Europe/Berlin';
SELECT stream_ext.reap_expired('w_day');
SELECT w_state_rows('w_day');
RESET TimeZone;
DROP FOREIGN TABLE w_dst CASCADE;
SET stream_ext.read_time = '2052-01-01 12:55:30+00';

-- Sessions with ttl: the reaper deletes a stored session only once it cannot
-- grow any more: its end before read_time - ttl, and the watermark past its
-- end plus the gap (an event within the gap would not be late, and would
-- join it); until then a later event still joins it
CREATE FOREIGN TABLE w_ss (k text, ts timestamptz) SERVER stream_ext;
CREATE VIEW w_sess_ttl WITH (continuous, session_gap = '10 minutes', time_column = 'ts',
                             ttl = '15 minutes') AS
  SELECT k, count(*) FROM w_ss GROUP BY k;
INSERT INTO w_ss VALUES ('a', '2053-01-01 00:00+00'), ('a', '2053-01-01 00:05+00');
SELECT w_merged('w_sess_ttl');
SET stream_ext.read_time = '2053-01-01 00:21:00+00';
SELECT stream_ext.reap_expired('w_sess_ttl');
INSERT INTO w_ss VALUES ('a', '2053-01-01 00:12+00');
SET stream_ext.read_time = '2053-01-01 00:22:00+00';
SELECT * FROM w_sess_ttl ORDER BY session_start;
-- the watermark moves to 00:59: the 00:00-00:12 session is closed, and expired
-- (the reaper takes the watermark the workers folded: the next batch folds)
INSERT INTO w_ss VALUES ('a', '2053-01-01 01:00+00');
INSERT INTO w_ss VALUES ('a', '2053-01-01 01:00+00');
SELECT w_merged('w_sess_ttl');
SET stream_ext.read_time = '2053-01-01 01:05:00+00';
SELECT stream_ext.reap_expired('w_sess_ttl');
SELECT w_state_rows('w_sess_ttl');
SELECT * FROM w_sess_ttl ORDER BY session_start;
RESET stream_ext.read_time;
-- in arrival time, a session whose ttl passed is kept while an event
-- arriving within the gap may still join it
CREATE VIEW w_sess_arrival WITH (continuous, session_gap = '1 hour', ttl = '1 second') AS
  SELECT k, count(*) FROM w_ss GROUP BY k;
INSERT INTO w_ss VALUES ('b', NULL);
SELECT pg_sleep(1.5);
SELECT w_merged('w_sess_arrival');
SELECT stream_ext.reap_expired('w_sess_arrival');
INSERT INTO w_ss VALUES ('b', NULL);
SELECT k, count FROM w_sess_arrival WHERE k = 'b';
SET stream_ext.read_time = '2052-01-01 12:55:30+00';

-- Late events: counted, kept, never applied
SELECT * FROM w_late ORDER BY bucket;
INSERT INTO w_s (url, user_id, latency, ts) VALUES
  ('/late', 9, 1, '2052-01-01 11:55:00+00'),   -- 3 min before the max event time: late
  ('/ok',   9, 1, '2052-01-01 11:57:30+00');   -- within a minute: accepted
SELECT * FROM w_late ORDER BY bucket;
SELECT name, events, late_events, watermark FROM stream_ext.view_stats WHERE name = 'w_late'::regclass;
-- (the event's last column is its arrival time)
SELECT name, event_time, watermark, regexp_replace(event, ',"[^"]*"\)$', ',...)') AS event
  FROM stream_ext.late_events ORDER BY event_time;
-- the watermark advances with later events; the 11:50 bucket is then final
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/new', 9, 1, '2052-01-01 12:20:00+00');
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/old', 9, 1, '2052-01-01 11:59:00+00');
SELECT * FROM w_late ORDER BY bucket;
SELECT name, events, late_events, watermark FROM stream_ext.view_stats WHERE name = 'w_late'::regclass;
-- late events of a rolled back transaction (large: its events reach the
-- workers before the ROLLBACK) and of a rolled back savepoint count for
-- nothing, and are not kept
BEGIN;
INSERT INTO w_s (url, user_id, latency, ts)
  SELECT '/late-rolled-back/' || repeat('x', 100), i, 1, '2052-01-01 11:00:00+00'
    FROM generate_series(1, 3000) i;
SELECT pg_sleep(0.5);
ROLLBACK;
BEGIN;
SAVEPOINT before_late;
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/late-savepoint', 9, 1, '2052-01-01 11:00:00+00');
ROLLBACK TO before_late;
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/late-kept', 9, 1, '2052-01-01 11:00:00+00');
COMMIT;
SELECT name, late_events FROM stream_ext.view_stats WHERE name = 'w_late'::regclass;
SELECT split_part(event, ',', 1) AS event FROM stream_ext.late_events WHERE event_time = '2052-01-01 11:00:00+00';
-- once the view's next batch folds the writers in, the rolled back ones' rows are gone
INSERT INTO w_s (url, user_id, latency, ts) VALUES ('/new', 9, 1, '2052-01-01 12:20:00+00');
SELECT name, late_events FROM stream_ext.view_stats WHERE name = 'w_late'::regclass;
SELECT count(*) FROM stream_ext_internal.late_events l
  JOIN stream_ext_internal.continuous_views v ON v.id = l.view_id
 WHERE v.view = 'w_late'::regclass AND l.event_time = '2052-01-01 11:00:00+00';

-- Arrival time by default: the window follows the clock when read_time is not set
RESET stream_ext.read_time;
CREATE VIEW w_recent WITH (continuous, sliding_window = '1 hour') AS SELECT count(*) FROM w_s;
INSERT INTO w_s (url) VALUES ('/now'), ('/now');
SELECT * FROM w_recent;
SET stream_ext.read_time = '2100-01-01 00:00:00+00';
SELECT * FROM w_recent;
RESET stream_ext.read_time;

-- Renaming the time column changes nothing
ALTER FOREIGN TABLE w_s RENAME COLUMN ts TO event_ts;
SELECT name, time_column FROM stream_ext.continuous_views WHERE name = 'w_late'::regclass;
INSERT INTO w_s (url, user_id, latency, event_ts) VALUES ('/renamed', 9, 1, '2052-01-01 12:21:00+00');
SELECT * FROM w_late ORDER BY bucket;
-- truncate forgets the watermark too: an old event is accepted again
SELECT stream_ext.truncate_continuous_view('w_late');
SELECT name, late_events, watermark FROM stream_ext.view_stats WHERE name = 'w_late'::regclass;
INSERT INTO w_s (url, user_id, latency, event_ts) VALUES ('/again', 9, 1, '2052-01-01 08:00:00+00');
SELECT * FROM w_late ORDER BY bucket;
SELECT name, late_events, watermark FROM stream_ext.view_stats WHERE name = 'w_late'::regclass;

-- infinite event times fall in no hopping or session window and move no
-- watermark; a lateness reaching before the first timestamp makes nothing
-- late, and fails nothing
CREATE FOREIGN TABLE w_inf (ts timestamptz, v int) SERVER stream_ext;
CREATE VIEW w_inf_hop WITH (continuous, hop_size = '2 hours', hop_slide = '1 hour', time_column = 'ts') AS
  SELECT v, count(*) FROM w_inf GROUP BY v;
CREATE VIEW w_inf_ses WITH (continuous, session_gap = '1 hour', time_column = 'ts') AS
  SELECT v, count(*) FROM w_inf GROUP BY v;
CREATE VIEW w_inf_far WITH (continuous, time_column = 'ts', allowed_lateness = '10000 years') AS
  SELECT count(*) FROM w_inf;
INSERT INTO w_inf VALUES ('2052-01-05 10:00+00', 1);
INSERT INTO w_inf VALUES ('infinity', 1), ('-infinity', 2);
INSERT INTO w_inf VALUES ('2052-01-05 10:30+00', 1);
SELECT * FROM w_inf_hop ORDER BY window_start, v;
SELECT * FROM w_inf_ses ORDER BY session_start, v;
SELECT * FROM w_inf_far;
SELECT name, late_events, watermark FROM stream_ext.view_stats
 WHERE name IN ('w_inf_hop'::regclass, 'w_inf_ses'::regclass, 'w_inf_far'::regclass) ORDER BY name::text;
DROP FOREIGN TABLE w_inf CASCADE;

-- within hop_size of either end of the timestamps PostgreSQL has, a time's
-- hopping windows would start or end past it: such times fall in no window,
-- and the view stays readable
CREATE FOREIGN TABLE w_edge (ts timestamptz, v int) SERVER stream_ext;
CREATE VIEW w_edge_hop WITH (continuous, hop_size = '2 hours', hop_slide = '1 hour', time_column = 'ts') AS
  SELECT v, count(*) FROM w_edge GROUP BY v;
INSERT INTO w_edge VALUES ('294276-12-31 22:30+00', 1), ('294276-12-31 21:59+00', 2),
  ('4714-11-24 01:59+00 BC', 3), ('4714-11-24 02:00+00 BC', 4);
SET TimeZone = 'UTC';
SELECT * FROM w_edge_hop ORDER BY window_start, v;
RESET TimeZone;
DROP FOREIGN TABLE w_edge CASCADE;

-- a date beyond timestamptz's range is no time to judge lateness by, as
-- infinity: the event goes in, and fails neither its transaction nor others
CREATE FOREIGN TABLE w_date (k int, d date) SERVER stream_ext;
CREATE VIEW w_date_all WITH (continuous) AS SELECT k, count(*) FROM w_date GROUP BY k;
CREATE VIEW w_date_time WITH (continuous, time_column = 'd') AS SELECT k, count(*) FROM w_date GROUP BY k;
INSERT INTO w_date VALUES (1, '2052-01-05');
INSERT INTO w_date VALUES (2, '5874897-12-31'), (2, '300000-01-01');
INSERT INTO w_date VALUES (1, '2052-01-06');
SELECT * FROM w_date_all ORDER BY k;
SELECT * FROM w_date_time ORDER BY k;
SELECT name, late_events, errors, watermark FROM stream_ext.view_stats
 WHERE name = 'w_date_time'::regclass;
DROP FOREIGN TABLE w_date CASCADE;
DROP FOREIGN TABLE w_ss CASCADE;

DROP FOREIGN TABLE w_s CASCADE;
SELECT count(*) FROM stream_ext_internal.view_watermarks;
SELECT count(*) FROM stream_ext_internal.late_events;
DROP FUNCTION w_merged(regclass), w_state_rows(regclass);
