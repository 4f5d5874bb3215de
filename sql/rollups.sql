--
-- rollups: stream_ext.combine(column) rolls a continuous view's aggregate
-- column up to coarser groups, exactly: each result equals the aggregate
-- over the events of the groups it takes, as the batch query over a table
-- of the same events says.
--
-- Reads take stream_ext.read_time as "now"; events are dated 2052 so that
-- the reaper never deletes rows a read at that time still shows.
SET stream_ext.read_time = '2052-01-01 12:00:00+00';
SET extra_float_digits = 0;
CREATE FOREIGN TABLE ru_s (ts timestamptz, url text, user_id int, latency float8, amount numeric)
  SERVER stream_ext;
CREATE TABLE ru_events (ts timestamptz, url text, user_id int, latency float8, amount numeric);

-- a view's rows equal to a query's, both ways (empty when they are)
CREATE FUNCTION ru_differs(a text, b text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format('SELECT ''missing: '' || x::text FROM ((%s) EXCEPT ALL (%s)) x
                               UNION ALL
                               SELECT ''extra: '' || y::text FROM ((%s) EXCEPT ALL (%s)) y',
                              b, a, a, b);
END $$;

-- Tumbling windows with ttl, no window, hopping, sliding and session windows
CREATE VIEW ru_minute WITH (continuous, ttl = '1 day', ttl_column = 'minute') AS
  SELECT date_bin('1 minute', ts, '2000-01-01') AS minute, url,
         count(*), count(latency) AS n, avg(latency), sum(amount), avg(amount) AS avg_amount,
         min(latency), max(user_id), stddev_samp(latency) AS sd, bool_and(latency > 50) AS all_slow,
         max(latency) - min(latency) AS spread, url || count(*) AS tag
  FROM ru_s GROUP BY 1, 2;
CREATE VIEW ru_users WITH (continuous) AS
  SELECT url, user_id, count(*), avg(amount), var_pop(latency) AS var
  FROM ru_s GROUP BY url, user_id;
CREATE VIEW ru_hop WITH (continuous, hop_size = '10 minutes', hop_slide = '5 minutes',
                         time_column = 'ts', allowed_lateness = '1 day') AS
  SELECT url, count(*), avg(latency) FROM ru_s GROUP BY url;
CREATE VIEW ru_last WITH (continuous, sliding_window = '10 minutes', step = '1 minute',
                          time_column = 'ts', allowed_lateness = '1 day') AS
  SELECT url, user_id, count(*), sum(amount) FROM ru_s GROUP BY url, user_id;
CREATE VIEW ru_sessions WITH (continuous, session_gap = '3 minutes', time_column = 'ts',
                              allowed_lateness = '1 day') AS
  SELECT user_id, count(*), avg(latency) FROM ru_s GROUP BY user_id;

-- the same events into the stream (two transactions, one rolled back) and the table
INSERT INTO ru_s SELECT '2052-01-01 11:00:00+00'::timestamptz + i * interval '7 seconds',
                        '/p' || (i % 5), i % 13, CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 97) * 1.25 END,
                        (i % 7) * 0.1
                   FROM generate_series(1, 500) i;
BEGIN;
INSERT INTO ru_s SELECT '2052-01-01 11:30:00+00', '/rolled-back', 1, 1, 1 FROM generate_series(1, 50);
ROLLBACK;
COPY ru_s FROM STDIN;
2052-01-01 11:58:00+00	/p1	3	10.5	2.5
2052-01-01 11:58:30+00	/p1	3	\N	\N
2052-01-01 11:59:00+00	\N	\N	99	7
\.
INSERT INTO ru_events SELECT '2052-01-01 11:00:00+00'::timestamptz + i * interval '7 seconds',
                             '/p' || (i % 5), i % 13, CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 97) * 1.25 END,
                             (i % 7) * 0.1
                        FROM generate_series(1, 500) i;
INSERT INTO ru_events VALUES ('2052-01-01 11:58:00+00', '/p1', 3, 10.5, 2.5),
                             ('2052-01-01 11:58:30+00', '/p1', 3, NULL, NULL),
                             ('2052-01-01 11:59:00+00', NULL, NULL, 99, 7);

-- by hour and url, by url, and everything: each combine() equals the batch aggregate
SELECT * FROM ru_differs(
  $$SELECT date_trunc('hour', minute), url, stream_ext.combine(count), stream_ext.combine(n),
           round(stream_ext.combine(avg)::numeric, 9), stream_ext.combine(sum),
           stream_ext.combine(avg_amount), stream_ext.combine(min), stream_ext.combine(max),
           round(stream_ext.combine(sd)::numeric, 9), stream_ext.combine(all_slow),
           stream_ext.combine(spread)
      FROM ru_minute GROUP BY 1, 2$$,
  $$SELECT date_trunc('hour', date_bin('1 minute', ts, '2000-01-01')), url, count(*), count(latency),
           round(avg(latency)::numeric, 9), sum(amount), avg(amount), min(latency), max(user_id),
           round(stddev_samp(latency)::numeric, 9), bool_and(latency > 50),
           max(latency) - min(latency)
      FROM ru_events GROUP BY 1, 2$$);
SELECT * FROM ru_differs(
  $$SELECT stream_ext.combine(count), round(stream_ext.combine(avg)::numeric, 9),
           stream_ext.combine(avg_amount), round(stream_ext.combine(sd)::numeric, 9)
      FROM ru_minute$$,
  $$SELECT count(*), round(avg(latency)::numeric, 9), avg(amount),
           round(stddev_samp(latency)::numeric, 9) FROM ru_events$$);
-- the view's other columns keep their meaning beside combine(): a sum of its counts
SELECT * FROM ru_differs(
  $$SELECT url, sum(count), stream_ext.combine(avg_amount) FROM ru_minute GROUP BY url$$,
  $$SELECT url, count(*), avg(amount) FROM ru_events GROUP BY url$$);
-- a WHERE on the view's keys picks the groups rolled up
SELECT * FROM ru_differs(
  $$SELECT user_id, stream_ext.combine(count), stream_ext.combine(avg),
           round(stream_ext.combine(var)::numeric, 9)
      FROM ru_users WHERE url <> '/p0' GROUP BY user_id$$,
  $$SELECT user_id, count(*), avg(amount), round(var_pop(latency)::numeric, 9)
      FROM ru_events WHERE url <> '/p0' GROUP BY user_id$$);
-- a HAVING of the roll-up, and the roll-up of an empty selection
SELECT url, stream_ext.combine(count) FROM ru_users GROUP BY url
HAVING stream_ext.combine(avg) > 0.3 ORDER BY url;
SELECT stream_ext.combine(count), stream_ext.combine(avg) FROM ru_users WHERE url = '/none';

-- windows: hopping windows by window start, the sliding window's groups, sessions
SELECT * FROM ru_differs(
  $$SELECT window_start, stream_ext.combine(count), round(stream_ext.combine(avg)::numeric, 9)
      FROM ru_hop GROUP BY window_start$$,
  $$SELECT w, count(*), round(avg(latency)::numeric, 9)
      FROM ru_events, generate_series(date_bin('5 minutes', ts, '2000-01-01') - interval '5 minutes',
                                      date_bin('5 minutes', ts, '2000-01-01'), interval '5 minutes') w
     GROUP BY w$$);
SELECT * FROM ru_differs(
  $$SELECT url, stream_ext.combine(count), stream_ext.combine(sum) FROM ru_last GROUP BY url$$,
  $$SELECT url, count(*), sum(amount) FROM ru_events
     WHERE ts >= date_bin('1 minute', '2052-01-01 11:50:00+00', '2000-01-01') GROUP BY url$$);
SELECT (SELECT stream_ext.combine(count) FROM ru_sessions) AS sessions_total,
       (SELECT count(*) FROM ru_events) AS events,
       (SELECT round(stream_ext.combine(avg)::numeric, 9) FROM ru_sessions) =
       (SELECT round(avg(latency)::numeric, 9) FROM ru_events) AS same_avg;

-- aggregates kept as their inputs roll up from the groups' inputs: distinct
-- values, percentiles, ordered lists over the union
CREATE FOREIGN TABLE ru_s2 (ts timestamptz, url text, user_id int, latency float8, amount numeric)
  SERVER stream_ext;
CREATE VIEW ru_inputs WITH (continuous) AS
  SELECT date_bin('10 minutes', ts, '2000-01-01') AS tenmin, url,
         count(DISTINCT user_id) AS users, percentile_cont(0.9) WITHIN GROUP (ORDER BY latency) AS p90,
         percentile_disc(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY amount) AS quartiles,
         mode() WITHIN GROUP (ORDER BY user_id) AS usual_user,
         string_agg(DISTINCT user_id::text, ',' ORDER BY user_id::text) AS user_list
  FROM ru_s2 GROUP BY 1, 2;
INSERT INTO ru_s2 SELECT ts, url, user_id, latency, amount FROM ru_events;
SELECT * FROM ru_differs(
  $$SELECT url, stream_ext.combine(users), round(stream_ext.combine(p90)::numeric, 9),
           stream_ext.combine(quartiles), stream_ext.combine(usual_user), stream_ext.combine(user_list)
      FROM ru_inputs GROUP BY url$$,
  $$SELECT url, count(DISTINCT user_id), round((percentile_cont(0.9) WITHIN GROUP (ORDER BY latency))::numeric, 9),
           percentile_disc(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY amount),
           mode() WITHIN GROUP (ORDER BY user_id),
           string_agg(DISTINCT user_id::text, ',' ORDER BY user_id::text)
      FROM ru_events GROUP BY url$$);
SELECT stream_ext.combine(users) = (SELECT count(DISTINCT user_id) FROM ru_events) AS all_users
  FROM ru_inputs;

-- more events: a prepared roll-up and a view over a roll-up see them
PREPARE ru_by_url AS SELECT url, stream_ext.combine(count), stream_ext.combine(avg_amount)
                       FROM ru_minute WHERE url = '/p1' GROUP BY url;
EXECUTE ru_by_url;
CREATE VIEW ru_hourly AS
  SELECT date_trunc('hour', minute) AS hour, stream_ext.combine(count) AS count,
         stream_ext.combine(sum) AS sum
  FROM ru_minute GROUP BY 1;
SELECT * FROM ru_hourly ORDER BY hour;
INSERT INTO ru_s VALUES ('2052-01-01 11:59:30+00', '/p1', 4, 1, 10);
EXECUTE ru_by_url;
SELECT * FROM ru_hourly ORDER BY hour;

-- privileges: SELECT on the view is what a reader needs, no more
CREATE ROLE ru_reader;
CREATE ROLE ru_stranger;
GRANT SELECT ON ru_minute TO ru_reader;
GRANT SELECT ON ru_hourly TO ru_stranger;
SET ROLE ru_reader;
SELECT url, stream_ext.combine(count) FROM ru_minute GROUP BY url ORDER BY url;
SET ROLE ru_stranger;
SELECT url, stream_ext.combine(count) FROM ru_minute GROUP BY url ORDER BY url;
-- a view over a roll-up reads with its owner's rights, as any view
SELECT count(*) FROM ru_hourly;
RESET ROLE;

-- what combine() does not take
SELECT stream_ext.combine(tag) FROM ru_minute;
SELECT stream_ext.combine(url) FROM ru_minute;
SELECT stream_ext.combine(window_start) FROM ru_hop;
SELECT stream_ext.combine(latency) FROM ru_events;
SELECT stream_ext.combine(DISTINCT count) FROM ru_minute;
SELECT stream_ext.combine(count) FILTER (WHERE url = '/p1') FROM ru_minute;
SELECT stream_ext.combine(count) OVER () FROM ru_minute;
SELECT stream_ext.combine(count) FROM (SELECT * FROM ru_minute) m;
SELECT stream_ext.combine(1);
CREATE VIEW ru_kept WITH (continuous) AS SELECT url, latency FROM ru_s;
SELECT stream_ext.combine(latency) FROM ru_kept;

-- combine() takes a column at its position: after ALTER VIEW ... RENAME
-- COLUMN (two names swapped here) each name rolls up what it shows now
CREATE VIEW ru_renamed WITH (continuous) AS
  SELECT url, count(*) AS a, sum(amount) AS b FROM ru_s GROUP BY url;
CREATE VIEW ru_renamed_hop WITH (continuous, hop_size = '10 minutes', hop_slide = '5 minutes',
                                 time_column = 'ts', allowed_lateness = '1 day') AS
  SELECT url, count(*) AS a, sum(amount) AS b FROM ru_s GROUP BY url;
INSERT INTO ru_s (ts, url, amount) VALUES ('2052-01-01 11:00:00+00', '/r1', 100),
  ('2052-01-01 11:01:00+00', '/r1', 200), ('2052-01-01 11:02:00+00', '/r2', 1000);
ALTER VIEW ru_renamed RENAME COLUMN a TO tmp;
ALTER VIEW ru_renamed RENAME COLUMN b TO a;
ALTER VIEW ru_renamed RENAME COLUMN tmp TO b;
ALTER VIEW ru_renamed_hop RENAME COLUMN a TO events;
SELECT stream_ext.combine(a) AS amount, stream_ext.combine(b) AS events FROM ru_renamed;
SELECT window_start, stream_ext.combine(events) AS events, stream_ext.combine(b) AS amount
  FROM ru_renamed_hop GROUP BY window_start ORDER BY window_start;
DROP VIEW ru_renamed, ru_renamed_hop;

DROP VIEW ru_hourly;
DROP FOREIGN TABLE ru_s, ru_s2 CASCADE;
DROP ROLE ru_reader;
DROP ROLE ru_stranger;
DROP TABLE ru_events;
DROP FUNCTION ru_differs(text, text);
