--
-- joins: continuous views that join their stream with tables
--
CREATE FOREIGN TABLE jn_clicks (url text, user_id bigint, latency float8) SERVER stream_ext;
CREATE FOREIGN TABLE jn_other (k int) SERVER stream_ext;
CREATE TABLE jn_users (id bigint PRIMARY KEY, country text, plan text);
CREATE TABLE jn_pages (url text PRIMARY KEY, category text);
CREATE TABLE jn_regions (country text, region text) PARTITION BY LIST (country);
CREATE TABLE jn_regions_eu PARTITION OF jn_regions FOR VALUES IN ('fr', 'de');
CREATE TABLE jn_regions_rest PARTITION OF jn_regions DEFAULT;
CREATE VIEW jn_paid AS SELECT id, plan FROM jn_users WHERE plan <> 'free';
INSERT INTO jn_users VALUES (1, 'fr', 'free'), (2, 'de', 'pro'), (3, 'us', 'pro'), (4, NULL, 'team');
INSERT INTO jn_pages VALUES ('/a', 'shop'), ('/b', 'blog');
INSERT INTO jn_regions VALUES ('fr', 'eu'), ('de', 'eu'), ('us', 'america');

-- the example of the README: INNER and LEFT joins
CREATE VIEW jn_by_country WITH (continuous) AS
  SELECT u.country, p.category, count(*), avg(c.latency)
    FROM jn_clicks c JOIN jn_users u ON u.id = c.user_id
                     LEFT JOIN jn_pages p ON p.url = c.url
   GROUP BY 1, 2;
-- a partitioned table, a view over a table, a condition in WHERE
CREATE VIEW jn_by_region WITH (continuous) AS
  SELECT r.region, v.plan, count(*) AS n, sum(c.latency) AS total
    FROM jn_clicks c, jn_users u, jn_regions r, jn_paid v
   WHERE u.id = c.user_id AND r.country = u.country AND v.id = c.user_id
   GROUP BY r.region, v.plan;
-- a join condition of any form, a LEFT join whose table rows may be missing
CREATE VIEW jn_slow_pages WITH (continuous) AS
  SELECT c.url, count(p.url) AS known, count(*) AS all_clicks
    FROM jn_clicks c LEFT JOIN jn_pages p ON c.url LIKE p.url || '%' AND c.latency > 100
   GROUP BY c.url;
-- RIGHT JOIN with the stream on its right is a LEFT join
CREATE VIEW jn_right WITH (continuous) AS
  SELECT p.category, count(*) FROM jn_pages p RIGHT JOIN jn_clicks c ON p.url = c.url GROUP BY 1;
-- a window over joined events (sliding, by arrival time)
CREATE VIEW jn_recent WITH (continuous, sliding_window = '1 hour') AS
  SELECT u.plan, count(*) AS n, max(c.latency) AS top
    FROM jn_clicks c JOIN jn_users u ON u.id = c.user_id GROUP BY 1;

INSERT INTO jn_clicks VALUES ('/a', 1, 10), ('/b', 2, 20), ('/c', 3, 300), ('/a', 99, 1), ('/a', NULL, 1),
  ('/a', 4, 400), (NULL, 2, 5);
COPY jn_clicks FROM STDIN (FORMAT csv);
/b,3,150
/a/x,1,200
\.
BEGIN;
INSERT INTO jn_clicks VALUES ('/a', 1, 1000);
ROLLBACK;
SELECT * FROM jn_by_country ORDER BY 1, 2;
SELECT * FROM jn_by_region ORDER BY 1, 2;
SELECT * FROM jn_slow_pages ORDER BY 1;
SELECT * FROM jn_right ORDER BY 1;
SELECT * FROM jn_recent ORDER BY 1;

-- each event meets the tables as they are when its batch is applied; later
-- changes to a table do not revise what was applied
UPDATE jn_users SET country = 'de' WHERE id = 1;
INSERT INTO jn_clicks VALUES ('/a', 1, 10);
SELECT country, category, count FROM jn_by_country WHERE category = 'shop' ORDER BY 1;
-- a table changed in the writer's own transaction: the worker's snapshot does not see it
BEGIN;
INSERT INTO jn_users VALUES (5, 'it', 'pro');
INSERT INTO jn_clicks VALUES ('/a', 5, 10);
COMMIT;
SELECT count(*) FROM jn_by_country WHERE country = 'it';
INSERT INTO jn_clicks VALUES ('/a', 5, 10);
SELECT count FROM jn_by_country WHERE country = 'it';

-- lookups use the tables' indexes (the plan workers run over a batch)
CREATE TABLE jn_accounts (id bigint PRIMARY KEY, tier int);
INSERT INTO jn_accounts SELECT i, i % 3 FROM generate_series(1, 100000) i;
ANALYZE jn_accounts;
CREATE VIEW jn_by_tier WITH (continuous) AS
  SELECT a.tier, count(*) FROM jn_clicks c JOIN jn_accounts a ON a.id = c.user_id GROUP BY 1;
SELECT * FROM stream_ext.explain_continuous_view('jn_by_tier');
INSERT INTO jn_clicks SELECT '/a', i, 1 FROM generate_series(1, 150000, 37) i;
SELECT * FROM jn_by_tier ORDER BY 1;
SELECT tier, count(*) FROM generate_series(1, 150000, 37) i JOIN jn_accounts a ON a.id = i GROUP BY 1 ORDER BY 1;
-- a non-owner may not see the plan
CREATE ROLE regress_join_other;
SET ROLE regress_join_other;
SELECT * FROM stream_ext.explain_continuous_view('jn_by_tier');
RESET ROLE;
DROP ROLE regress_join_other;

-- a join condition that fails is an error of the one event
CREATE VIEW jn_ratio WITH (continuous) AS
  SELECT u.country, count(*) FROM jn_clicks c JOIN jn_users u ON u.id = 100 / c.user_id GROUP BY 1;
INSERT INTO jn_clicks VALUES ('/a', 0, 1), ('/a', 50, 1);
SELECT * FROM jn_ratio;
SELECT name, sqlstate, message FROM stream_ext.view_errors WHERE name = 'jn_ratio'::regclass;

-- what is refused
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c JOIN jn_other o ON o.k = c.user_id;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_users u LEFT JOIN jn_clicks c ON u.id = c.user_id;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c FULL JOIN jn_users u ON u.id = c.user_id;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c JOIN jn_users u ON u.id = c.user_id + (random() * 2)::int;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c JOIN (SELECT * FROM jn_users) u ON u.id = c.user_id;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c JOIN jn_users u TABLESAMPLE bernoulli (50) ON u.id = c.user_id;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_users u JOIN jn_pages p ON true;
CREATE SEQUENCE jn_seq;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c, jn_seq;
-- a view that reads a stream, or the view's own stream
CREATE VIEW jn_reads_stream AS SELECT 1 AS one FROM jn_other;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c, jn_reads_stream r;
CREATE VIEW jn_reads_clicks AS SELECT user_id FROM jn_clicks;
CREATE VIEW jn_v WITH (continuous) AS SELECT count(*) FROM jn_clicks c JOIN jn_reads_clicks r USING (user_id);

-- a view depends on its tables
DROP TABLE jn_pages;
DROP TABLE jn_regions_eu;
DROP VIEW jn_paid;
ALTER TABLE jn_users ALTER COLUMN country TYPE varchar(10);
-- other changes to a table make the workers plan again
ALTER TABLE jn_users ADD COLUMN age int;
CREATE INDEX jn_pages_category ON jn_pages (category);
INSERT INTO jn_clicks VALUES ('/b', 2, 20);
SELECT country, category, count FROM jn_by_country WHERE category = 'blog' ORDER BY 1;
SELECT * FROM jn_by_region ORDER BY 1, 2;
SELECT count(*) AS errors FROM stream_ext.view_errors WHERE name::text LIKE 'jn\_%' AND name::text <> 'jn_ratio';

-- privileges on the tables are checked for the view's owner
CREATE ROLE regress_join_owner;
GRANT USAGE ON SCHEMA public TO regress_join_owner;
GRANT SELECT ON jn_clicks TO regress_join_owner;
GRANT CREATE ON SCHEMA public TO regress_join_owner;
SET ROLE regress_join_owner;
CREATE VIEW jn_denied WITH (continuous) AS
  SELECT u.country, count(*) FROM jn_clicks c JOIN jn_users u ON u.id = c.user_id GROUP BY 1;
RESET ROLE;
GRANT SELECT (id, country) ON jn_users TO regress_join_owner;
SET ROLE regress_join_owner;
CREATE VIEW jn_allowed WITH (continuous) AS
  SELECT u.country, count(*) FROM jn_clicks c JOIN jn_users u ON u.id = c.user_id GROUP BY 1;
CREATE VIEW jn_denied WITH (continuous) AS
  SELECT u.plan, count(*) FROM jn_clicks c JOIN jn_users u ON u.id = c.user_id GROUP BY 1;
RESET ROLE;
INSERT INTO jn_clicks VALUES ('/a', 3, 1);
SELECT * FROM jn_allowed ORDER BY 1;
-- the owner loses the privilege: the workers' lookups fail, recorded as the view's errors
REVOKE SELECT (country) ON jn_users FROM regress_join_owner;
INSERT INTO jn_clicks VALUES ('/a', 3, 1);
SELECT * FROM jn_allowed ORDER BY 1;
SELECT name, sqlstate, message, event FROM stream_ext.view_errors WHERE name = 'jn_allowed'::regclass;

-- DROP ... CASCADE drops the views that join a table
SET client_min_messages = warning;
DROP TABLE jn_pages CASCADE;
RESET client_min_messages;
SELECT name FROM stream_ext.continuous_views WHERE name::text LIKE 'jn\_%' ORDER BY 1::text;
INSERT INTO jn_clicks VALUES ('/a', 3, 1);

-- a SQL function that reads the stream, through a view the query joins: the
-- planner inlines it, and that scan gave the batch again (ten events of one
-- batch counted 100); the view's plan is refused, its events recorded
CREATE FOREIGN TABLE jn_twice (url text) SERVER stream_ext;
CREATE FUNCTION jn_feed() RETURNS SETOF jn_twice LANGUAGE sql STABLE AS 'SELECT * FROM public.jn_twice';
CREATE VIEW jn_feed_v AS SELECT * FROM jn_feed();
CREATE VIEW jn_twice_v WITH (continuous) AS
  SELECT count(*) FROM jn_twice t JOIN jn_feed_v f ON f.url = t.url;
INSERT INTO jn_twice SELECT '/x' FROM generate_series(1, 10);
SELECT * FROM jn_twice_v;
SELECT DISTINCT sqlstate, message FROM stream_ext.view_errors WHERE name = 'jn_twice_v'::regclass;
SET client_min_messages = warning;
DROP FOREIGN TABLE jn_twice CASCADE;   -- and jn_feed, of its row type
RESET client_min_messages;

SET client_min_messages = warning;
DROP FOREIGN TABLE jn_clicks, jn_other CASCADE;
DROP TABLE jn_users, jn_regions, jn_accounts CASCADE;
DROP SEQUENCE jn_seq;
REVOKE ALL ON SCHEMA public FROM regress_join_owner;
DROP ROLE regress_join_owner;
RESET client_min_messages;
SELECT count(*) AS orphan_internal_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'stream_ext_internal' AND c.relkind = 'r' AND c.relname ~ '^(state|delta)_'
   AND c.oid NOT IN (SELECT state_table FROM stream_ext_internal.continuous_views
                     UNION ALL SELECT delta_table FROM stream_ext_internal.continuous_views);
