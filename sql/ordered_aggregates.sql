--
-- ordered_aggregates: aggregates a continuous view keeps as the multiset of
-- their inputs (DISTINCT, ORDER BY inside, ordered-set and hypothetical-set
-- aggregates, aggregates without a combine function) give the same result as
-- the same query over a plain table holding the same rows
--
CREATE FOREIGN TABLE oa_s (g int, u int, v float8, n numeric, c text, ts timestamptz) SERVER stream_ext;
CREATE TABLE oa_t (g int, u int, v float8, n numeric, c text, ts timestamptz);

-- user-defined aggregates without a combine function, one with an internal
-- state without serialization functions
CREATE FUNCTION oa_add(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + coalesce($2, 0)';
CREATE AGGREGATE oa_nocombine(int) (SFUNC = oa_add, STYPE = int, INITCOND = '0');
CREATE AGGREGATE oa_noserial(int8) (SFUNC = int8_avg_accum, STYPE = internal,
  FINALFUNC = numeric_poly_avg, COMBINEFUNC = int8_avg_combine);
CREATE AGGREGATE oa_cat(text) (SFUNC = textcat, STYPE = text);
CREATE TYPE oa_pair AS (u int, c text);
CREATE COLLATION oa_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

-- Creates the continuous view NAME over oa_s and the plain view NAME_ref over
-- oa_t from the same query text (%s stands for the source).
CREATE FUNCTION oa_pair(name text, q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE VIEW %I WITH (continuous) AS ', name) || format(q, 'oa_s');
  EXECUTE format('CREATE VIEW %I AS ', name || '_ref') || format(q, 'oa_t');
END
$$;
-- The rows of view NAME and of NAME_ref that the other lacks (json as text).
CREATE FUNCTION oa_diff(name text) RETURNS TABLE (side text, r text) LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format(
    $f$SELECT 'view only', x::text FROM (SELECT oa_v::text FROM %1$I oa_v EXCEPT ALL SELECT oa_r::text FROM %2$I oa_r) x
       UNION ALL
       SELECT 'ref only', x::text FROM (SELECT oa_r::text FROM %2$I oa_r EXCEPT ALL SELECT oa_v::text FROM %1$I oa_v) x$f$,
    name, name || '_ref');
END
$$;

SELECT oa_pair('oa_distinct', $$SELECT g, count(DISTINCT u) AS users, sum(DISTINCT n) AS sum_d, avg(DISTINCT v) AS avg_d,
  count(DISTINCT (u, c)::oa_pair) AS pairs, string_agg(DISTINCT c, ',' ORDER BY c) AS cs,
  array_agg(DISTINCT u ORDER BY u DESC NULLS LAST) AS us, count(DISTINCT u) FILTER (WHERE v > 2) AS users_f,
  count(DISTINCT c) AS n_c, count(DISTINCT c COLLATE oa_ci) AS n_c_ci, count(DISTINCT v) AS n_v
  FROM %s GROUP BY g$$);
SELECT oa_pair('oa_ordered_set', $$SELECT g, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS median,
  percentile_cont(ARRAY[0, 0.25, 1]) WITHIN GROUP (ORDER BY v DESC) AS pc,
  percentile_disc(0.9) WITHIN GROUP (ORDER BY n) AS pd, percentile_disc(ARRAY[0.1, 0.5]) WITHIN GROUP (ORDER BY c) AS pd_text,
  mode() WITHIN GROUP (ORDER BY u) AS mode_u, mode() WITHIN GROUP (ORDER BY c DESC) AS mode_c,
  percentile_disc(0.25) WITHIN GROUP (ORDER BY v) AS pd_v, percentile_cont(0.3) WITHIN GROUP (ORDER BY v - 2) AS pc_neg,
  percentile_disc(1) WITHIN GROUP (ORDER BY v - 2) AS pd_neg, percentile_cont(0) WITHIN GROUP (ORDER BY v) AS pc_min
  FROM %s GROUP BY g$$);
SELECT oa_pair('oa_hypothetical', $$SELECT g, rank(3) WITHIN GROUP (ORDER BY u) AS r,
  dense_rank(3) WITHIN GROUP (ORDER BY u DESC NULLS FIRST) AS dr, percent_rank(2.5) WITHIN GROUP (ORDER BY v) AS pr,
  cume_dist(2, 'b') WITHIN GROUP (ORDER BY u, c) AS cd FROM %s GROUP BY g$$);
SELECT oa_pair('oa_order_by', $$SELECT g, jsonb_agg(u ORDER BY ts DESC, u) AS us, string_agg(c, '' ORDER BY c COLLATE "C", u) AS cs,
  array_agg(n ORDER BY n NULLS FIRST) AS ns, json_agg(c ORDER BY ts, c)::text AS cj, sum(v ORDER BY v) AS sv
  FROM %s GROUP BY g$$);
SELECT oa_pair('oa_no_combine', $$SELECT g, jsonb_object_agg(coalesce(c, '-'), u ORDER BY c, u) AS jo,
  json_object_agg(coalesce(c, '-'), u ORDER BY c, u)::text AS jso, xmlagg(xmlelement(name e, u) ORDER BY u, c)::text AS x,
  oa_nocombine(u) AS nc, oa_noserial(u) AS ns, oa_cat(c ORDER BY c, u) AS cat, array_length(array_agg(u), 1) AS n_all,
  string_agg('x', '' ORDER BY u) AS xs FROM %s GROUP BY g$$);
SELECT oa_pair('oa_sets', $$SELECT g, c, count(DISTINCT u) AS users, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS median,
  string_agg(c, ',' ORDER BY c, u) AS cs, GROUPING(g, c) AS gr FROM %s GROUP BY CUBE (g, c) HAVING count(DISTINCT u) > 0$$);
SELECT oa_pair('oa_global', $$SELECT count(DISTINCT u) AS users, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS median,
  string_agg(DISTINCT c, ',' ORDER BY c) AS cs, mode() WITHIN GROUP (ORDER BY c) AS mode_c FROM %s$$);

-- no events: a global view has its one row (the aggregates over no input)
SELECT * FROM oa_global;
SELECT * FROM oa_global_ref;

-- NULLs, duplicates and ties in every column; group 9 only NULLs
INSERT INTO oa_t
SELECT i % 4, CASE WHEN i % 11 = 0 THEN NULL ELSE i % 7 END, CASE WHEN i % 13 = 0 THEN NULL ELSE (i % 9) / 2.0 END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE round(i / 10.0, 1) END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE (ARRAY['a', 'B', 'b', 'é', 'z'])[i % 5 + 1] END,
       timestamptz '2024-01-01 00:00+00' + (i % 50) * interval '1 minute'
  FROM generate_series(1, 400) i;
INSERT INTO oa_t (g) SELECT 9 FROM generate_series(1, 3);
INSERT INTO oa_s SELECT * FROM oa_t WHERE u IS NULL OR u < 3;
\copy (SELECT * FROM oa_t WHERE u >= 3) TO '/tmp/stream_ext_oa_rows.copy'
\copy oa_s FROM '/tmp/stream_ext_oa_rows.copy'
-- a rolled back transaction and a rolled back savepoint contribute nothing
BEGIN;
INSERT INTO oa_s SELECT g, u + 100, v + 100, n, 'rolled back', ts FROM oa_t;
ROLLBACK;
BEGIN;
INSERT INTO oa_s VALUES (1, 1, 1, 1, 'a', '2024-01-01 00:00+00');
SAVEPOINT sp;
INSERT INTO oa_s SELECT g, u + 200, v + 200, n, 'savepoint', ts FROM oa_t;
ROLLBACK TO SAVEPOINT sp;
INSERT INTO oa_s VALUES (2, NULL, NULL, NULL, NULL, NULL);
COMMIT;
INSERT INTO oa_t VALUES (1, 1, 1, 1, 'a', '2024-01-01 00:00+00'), (2, NULL, NULL, NULL, NULL, NULL);

SELECT name, (SELECT count(*) FROM oa_diff(name)) AS differing_rows,
       (SELECT count(*) FROM oa_diff(name) WHERE side = 'ref only') AS missing
  FROM unnest(ARRAY['oa_distinct', 'oa_ordered_set', 'oa_hypothetical', 'oa_order_by', 'oa_no_combine', 'oa_sets', 'oa_global']) name;
-- a reader whose client encoding differs from the database's reads the same
-- (values are kept in binary form, which for text follows the client encoding)
SET client_encoding = 'LATIN1';
SELECT name, (SELECT count(*) FROM oa_diff(name)) AS differing_rows
  FROM unnest(ARRAY['oa_distinct', 'oa_order_by', 'oa_no_combine']) name;
RESET client_encoding;
-- count(DISTINCT) of integers and of text under a deterministic collation
-- counts the entries of the state (the count in its header, for a group
-- read from its state row alone; the union of its state and deltas for a
-- group with deltas, count_distinct_union); of floats (0 = -0) and text
-- under a nondeterministic collation, it runs count itself
SELECT col, pg_get_viewdef('oa_distinct') ~
         format('count_distinct_union\(u\.%s\) AS %s,', state, state)
         AS counts_entries,
       pg_get_viewdef('oa_distinct') ~ format('inputs_count_distinct\(t\.%s\) AS %s,', state, state)
         AS counts_state_row
  FROM (VALUES ('users', 'a1_count'), ('n_c', 'a8_count'), ('n_c_ci', 'a9_count'), ('n_v', 'a10_count')) v(col, state);
-- the comparison compares something
SELECT g, users, sum_d, cs, us, n_c, n_c_ci, n_v FROM oa_distinct ORDER BY g;
SELECT g, median, pc, pd_text, mode_c, pd_v, pc_neg, pd_neg, pc_min FROM oa_ordered_set ORDER BY g;
-- percentile_cont and percentile_disc of one fraction over a float8 are
-- computed from the state's (value, count) entries
SELECT col, pg_get_viewdef('oa_ordered_set') ~
         format('s\.(a[0-9]+_percentile_[a-z]+) AS %s\M.*inputs_percentile_float8\(t\.\1, [^,]*::double precision, (true|false)\) AS \1\M'
                '.*inputs_percentile_float8\(stream_ext_internal\.finalize_agg\(''[^'']*''::regprocedure, u\.\1, NULL::bytea\), [^,]*::double precision, (true|false)\) AS \1\M', col) AS from_entries
  FROM unnest(ARRAY['median', 'pc', 'pd', 'pd_v', 'pc_neg', 'pd_neg', 'pc_min']) col;
SELECT g, r, dr, pr, cd FROM oa_hypothetical ORDER BY g;

-- once the combiner merged every delta, and again with more events merged
-- into the existing states
DO $$
DECLARE
  pending bigint;
  q text;
BEGIN
  SELECT string_agg(format('(SELECT count(*) FROM %s)', delta_table), ' + ') INTO q
    FROM stream_ext_internal.continuous_views WHERE view::text LIKE 'oa\_%';
  FOR i IN 1 .. 3000 LOOP
    EXECUTE 'SELECT ' || q INTO pending;
    EXIT WHEN pending = 0;
    PERFORM pg_sleep(0.01);
  END LOOP;
  IF pending <> 0 THEN
    RAISE WARNING 'deltas were not combined within 30 s: % rows pending', pending;
  END IF;
END
$$;
INSERT INTO oa_s SELECT * FROM oa_t WHERE g = 1;
INSERT INTO oa_t SELECT * FROM oa_t WHERE g = 1;
SELECT name, (SELECT count(*) FROM oa_diff(name)) AS differing_rows
  FROM unnest(ARRAY['oa_distinct', 'oa_ordered_set', 'oa_hypothetical', 'oa_order_by', 'oa_no_combine', 'oa_sets', 'oa_global']) name;

-- the state column of such an aggregate is its inputs_agg, its result the
-- original aggregate over the inputs
SELECT a::regprocedure FROM stream_ext_internal.continuous_views, unnest(aggregates) a
 WHERE view = 'oa_global'::regclass;
-- the finalization query runs read-only, as the caller; a state of other
-- columns than the column list says is refused, not read
SELECT stream_ext_internal.finalize_inputs(NULL, 'WITH d AS (DELETE FROM public.oa_t RETURNING 1) SELECT count(*)::int FROM d',
                                          'count()', NULL::int);
-- the query must call the aggregate it is given, whatever it names
SELECT stream_ext_internal.finalize_inputs(NULL, 'SELECT 1', 'count()', NULL::int);
SELECT stream_ext_internal.finalize_inputs(NULL, 'SELECT max(1)', 'count()', NULL::int);
-- a view keeps the aggregate it was defined with: one of the same name that
-- matches its arguments better, created since, is never run by its reads
-- (they fail, naming both, until it is gone), whatever the reader's search_path
CREATE FUNCTION oa_last_sf(anyelement, anyelement) RETURNS anyelement LANGUAGE sql IMMUTABLE AS 'SELECT $2';
CREATE AGGREGATE public.oa_last(anyelement) (SFUNC = oa_last_sf, STYPE = anyelement);
CREATE FOREIGN TABLE oa_ls (k text, n int) SERVER stream_ext;
CREATE VIEW oa_lastv WITH (continuous) AS SELECT k, public.oa_last(n ORDER BY n) AS l FROM oa_ls GROUP BY k;
INSERT INTO oa_ls VALUES ('a', 1), ('a', 3), ('b', 2);
SELECT * FROM oa_lastv ORDER BY k;
CREATE FUNCTION oa_evil_sf(int, int) RETURNS int LANGUAGE sql AS 'SELECT 42';
CREATE AGGREGATE public.oa_last(int) (SFUNC = oa_evil_sf, STYPE = int);
SELECT * FROM oa_lastv ORDER BY k;
SET search_path = public, pg_catalog;
SELECT * FROM oa_lastv ORDER BY k;
RESET search_path;
DROP AGGREGATE public.oa_last(int);
SELECT * FROM oa_lastv ORDER BY k;
DROP VIEW oa_lastv;
-- an aggregate whose final function is told its polymorphic argument types
-- (FINALFUNC_EXTRA) is run whole over its inputs: it sees integer, as in batch
CREATE FUNCTION oa_mx_sf(text, anyelement) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$SELECT CASE WHEN $1 IS NULL OR $2::text > $1 THEN $2::text ELSE $1 END$$;
CREATE FUNCTION oa_mx_cf(text, text) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$SELECT CASE WHEN $1 IS NULL OR $2 > $1 THEN $2 ELSE $1 END$$;
CREATE FUNCTION oa_typed_ff(st text, dummy anyelement) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$SELECT pg_typeof(dummy)::text || ':' || st$$;
CREATE AGGREGATE oa_typed_max(anyelement) (SFUNC = oa_mx_sf, STYPE = text, COMBINEFUNC = oa_mx_cf,
                                           FINALFUNC = oa_typed_ff, FINALFUNC_EXTRA);
CREATE VIEW oa_typed WITH (continuous) AS SELECT k, oa_typed_max(n) AS m FROM oa_ls GROUP BY k;
INSERT INTO oa_ls VALUES ('a', 9), ('a', 10);
SELECT * FROM oa_typed ORDER BY k;
DROP VIEW oa_typed;
DROP FOREIGN TABLE oa_ls;
SELECT count(*) FROM stream_ext_internal.inputs_rows('\x3249455300000000000000000000000000000000000000000000000000000000'::bytea, false) AS t(x int);
-- a state's header is checked: its counts must fit its entries
SELECT stream_ext_internal.inputs_count_distinct('\x3249455301000000000000000000000000000000000000000100000000000000'::bytea);
SELECT stream_ext_internal.inputs_count_distinct('\x3249455301000000'::bytea);
-- counts that would pass int64 when two states are combined: an error (the
-- sum wrapped to a negative count, a state every read then refused)
SELECT stream_ext_internal.combine_states('stream_ext_internal.inputs_agg("any")'::regprocedure, x, x)
  FROM (SELECT '\x32494553010000000100000000000000ffffffffffffff7f000000000000000017000000ffffffffffffff7f080000000400000000000005'::bytea x) s;

-- a view with an aggregate that is not parallel safe (user-defined ones are
-- not by default) reads every group through finalize_agg_parallel_unsafe,
-- never from its state row alone (finalize_state is parallel safe)
CREATE AGGREGATE oa_unsafe_sum(int8) (SFUNC = int8pl, STYPE = int8, COMBINEFUNC = int8pl);
CREATE VIEW oa_unsafe WITH (continuous) AS
  SELECT g, count(DISTINCT u) AS users, oa_unsafe_sum(u) AS s FROM oa_s GROUP BY g;
INSERT INTO oa_s SELECT * FROM oa_t;
SELECT pg_get_viewdef('oa_unsafe') ~ 'inputs_count_distinct\(t\.' AS from_state_rows,
       pg_get_viewdef('oa_unsafe') ~ 'finalize_agg_parallel_unsafe' AS parallel_unsafe;
SELECT count(*) AS differing_rows FROM (
  (SELECT * FROM oa_unsafe EXCEPT ALL SELECT g, count(DISTINCT u), sum(u) FROM oa_t GROUP BY g)
  UNION ALL
  (SELECT g, count(DISTINCT u), sum(u) FROM oa_t GROUP BY g EXCEPT ALL SELECT * FROM oa_unsafe)) d;
DROP VIEW oa_unsafe;
DROP AGGREGATE oa_unsafe_sum(int8);

-- a large multiset of float8 values is stored uncompressed out of line (as
-- is the state of count(DISTINCT) of an int: agg/distinct_union.c), and
-- its percentiles read slices of it from the end nearer to the rows they
-- pick (NULLs, ties; group 3 has a negative value, its entries are then out
-- of value order and read whole); once merged, each group is its state row
CREATE FOREIGN TABLE oa_big_s (g int, v float8) SERVER stream_ext;
CREATE TABLE oa_big_t (g int, v float8);
CREATE FUNCTION oa_big_q(src text) RETURNS text LANGUAGE sql AS $$
  SELECT format('SELECT g, percentile_cont(0.99) WITHIN GROUP (ORDER BY v) AS c99, percentile_disc(0.99) WITHIN GROUP (ORDER BY v) AS d99,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS c50, percentile_disc(0.5) WITHIN GROUP (ORDER BY v) AS d50,
    percentile_cont(0.013) WITHIN GROUP (ORDER BY v) AS c01, percentile_disc(0.013) WITHIN GROUP (ORDER BY v) AS d01,
    percentile_cont(0) WITHIN GROUP (ORDER BY v) AS c0, percentile_disc(1) WITHIN GROUP (ORDER BY v) AS d1,
    count(DISTINCT g) AS n FROM %s GROUP BY g', src) $$;
DO $$ BEGIN
  EXECUTE 'CREATE VIEW oa_big WITH (continuous) AS ' || oa_big_q('oa_big_s');
  EXECUTE 'CREATE VIEW oa_big_ref AS ' || oa_big_q('oa_big_t');
END $$;
INSERT INTO oa_big_t
SELECT 1 + i % 3, CASE WHEN i % 97 = 0 THEN NULL WHEN i = 5 THEN -0.5 ELSE (i * 7919 % 2003) / 10.0 END
  FROM generate_series(1, 9000) i;
INSERT INTO oa_big_s SELECT * FROM oa_big_t;
SELECT attname, attstorage FROM pg_attribute
 WHERE attrelid = (SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = 'oa_big'::regclass)
   AND attnum > 0 ORDER BY attnum;
CREATE FUNCTION oa_merged(v regclass) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  pending bigint;
BEGIN
  FOR i IN 1..1200 LOOP
    EXECUTE format('SELECT count(*) FROM %s',
                   (SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = v))
      INTO pending;
    IF pending = 0 THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SELECT oa_merged('oa_big');
-- every group's state is large (out of line)
CREATE FUNCTION oa_large_states(v regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s WHERE octet_length(a1_percentile_cont) > 20000',
                 (SELECT state_table FROM stream_ext_internal.continuous_views WHERE view = v))
    INTO n;
  RETURN n;
END $$;
SELECT oa_large_states('oa_big');
SELECT 'view only' AS side, * FROM (SELECT * FROM oa_big EXCEPT ALL SELECT * FROM oa_big_ref) x
UNION ALL SELECT 'ref only', * FROM (SELECT * FROM oa_big_ref EXCEPT ALL SELECT * FROM oa_big) y;
SELECT * FROM oa_big ORDER BY g;

-- count_distinct_union, the aggregate reads of count(DISTINCT) run over a
-- group's states, on states made here: a large one stored uncompressed (the
-- base: 400,000 odd numbers) and small ones whose values it is searched for
-- (agg/distinct_union.c): values it holds at gaps of 1 to 127 entries (so
-- that searches end on every side of their brackets), new values between,
-- below and above, NULLs, duplicates across the small states, negative
-- numbers (after the positive ones in binary order).  DEBUG1 says the base
-- was searched; the count must be the union's.
CREATE TABLE oa_union_sets (s bytea);
ALTER TABLE oa_union_sets ALTER COLUMN s SET STORAGE EXTERNAL;
CREATE TABLE oa_union_probe (v int8);
INSERT INTO oa_union_probe
SELECT 2 * p + 1 FROM (
  SELECT sum(g) OVER (ORDER BY i) AS p
    FROM (SELECT i, (ARRAY[1, 2, 3, 6, 7, 14, 15, 30, 31, 62, 63, 126, 127])[1 + i % 13] AS g
            FROM generate_series(0, 38) i) x) y;
INSERT INTO oa_union_probe SELECT v + 1 FROM oa_union_probe WHERE v % 4 = 1;
INSERT INTO oa_union_probe VALUES (-5), (-1), (0), (799999), (800001), (10000000), (NULL), (NULL);
INSERT INTO oa_union_sets SELECT stream_ext_internal.inputs_agg((2 * i + 1)::int8) FROM generate_series(0, 399999) i;
INSERT INTO oa_union_sets SELECT stream_ext_internal.inputs_agg(v) FROM oa_union_probe WHERE v % 3 <> 0;
INSERT INTO oa_union_sets SELECT stream_ext_internal.inputs_agg(v) FROM oa_union_probe WHERE v % 2 <> 0 OR v IS NULL;
SELECT count(*) AS probe_values, count(DISTINCT v) AS distinct_probe_values FROM oa_union_probe;
SET client_min_messages = debug1;
SELECT stream_ext_internal.count_distinct_union(s) FROM oa_union_sets;
RESET client_min_messages;
SELECT count(DISTINCT v) FROM (SELECT 2 * i + 1 AS v FROM generate_series(0, 399999) i
                               UNION ALL SELECT v FROM oa_union_probe WHERE v % 3 <> 0 OR v % 2 <> 0) u;
-- the same sets with the base read whole (inline: not probed) count alike
SELECT stream_ext_internal.count_distinct_union(s) FROM (SELECT s || ''::bytea AS s FROM oa_union_sets) x;
DROP TABLE oa_union_sets, oa_union_probe;

-- each read of a view of ordered or DISTINCT aggregates prepares their
-- finalization once; a session's reads do not keep those plans (it kept one
-- per aggregate per read: 35 MB in 3,000 reads)
CREATE VIEW oa_reread WITH (continuous) AS
  SELECT g, mode() WITHIN GROUP (ORDER BY u) AS m, string_agg(DISTINCT c, ',') AS cs FROM oa_s GROUP BY g;
INSERT INTO oa_s (g, u, c) VALUES (1, 1, 'a'), (1, 2, 'b'), (1, 2, 'b'), (2, 3, 'c');
SELECT * FROM oa_reread ORDER BY g;
SELECT count(*) AS plans_before FROM pg_backend_memory_contexts WHERE name = 'CachedPlanSource' \gset
DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE 'SELECT count(m) + count(cs) FROM oa_reread'; END LOOP; END $$;
SELECT count(*) - :plans_before < 20 AS plans_not_kept
  FROM pg_backend_memory_contexts WHERE name = 'CachedPlanSource';
DROP VIEW oa_reread;

SET client_min_messages = warning;
DROP FOREIGN TABLE oa_big_s CASCADE;
DROP TABLE oa_big_t CASCADE;
DROP FUNCTION oa_big_q, oa_merged, oa_large_states;
DROP FOREIGN TABLE oa_s CASCADE;
DROP TABLE oa_t CASCADE;
DROP FUNCTION oa_pair, oa_diff;
DROP AGGREGATE oa_nocombine(int), oa_noserial(int8), oa_cat(text);
DROP FUNCTION oa_add;
DROP TYPE oa_pair;
DROP COLLATION oa_ci;
RESET client_min_messages;
