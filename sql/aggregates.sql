--
-- aggregates: every combinable aggregate gives, through a continuous view, the
-- same result as the same query over a plain table holding the same rows
--
CREATE TYPE agg_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE agg_t (
  g int, i2 int2, i4 int4, i8 int8, n numeric, f4 float4, f8 float8, b bool, bt bit(8),
  t text, ts timestamp, tz timestamptz, d date, tm time, ttz timetz, iv interval, m money,
  ip inet, arr int[], e agg_mood, c char(3), o oid, lsn pg_lsn, x8 xid8, ctid_ tid, r int4range,
  y float8, x float8);
CREATE FOREIGN TABLE agg_s (
  g int, i2 int2, i4 int4, i8 int8, n numeric, f4 float4, f8 float8, b bool, bt bit(8),
  t text, ts timestamp, tz timestamptz, d date, tm time, ttz timetz, iv interval, m money,
  ip inet, arr int[], e agg_mood, c char(3), o oid, lsn pg_lsn, x8 xid8, ctid_ tid, r int4range,
  y float8, x float8) SERVER stream_ext;

-- Groups 0..4: 600 rows each with some NULLs; group 5: only NULLs; group 6: one row;
-- group 7: int8 values whose sum overflows int8, and a numeric NaN.
INSERT INTO agg_t
SELECT i % 5, (i * 7 % 200 - 100)::int2, i * i % 1000 - 300, i::int8 * 1000003 - 900000000,
       round(i / 7.0, 5), (i * 0.1)::float4, sqrt(i) * 1000, i % 3 <> 0, (i * 37 % 256)::bit(8),
       (ARRAY['apple', 'Banana', 'cherry', 'Apple', 'banana', 'Cherry', 'éclair', 'Zebra', '', 'zoo'])[i % 10 + 1] || (i % 13),
       timestamp '2024-01-01' + i * interval '37 minutes', timestamptz '2024-01-01 00:00+00' + i * interval '41 minutes',
       date '2024-01-01' + i * 3, time '00:00' + i * interval '91 seconds',
       ((time '00:00' + i * interval '91 seconds')::text || (ARRAY['+02', '-05', '+00'])[i % 3 + 1])::timetz,
       i * interval '1 hour 3 minutes' + (i % 7) * interval '1 day' - (i % 4) * interval '1 month',
       (i * 1.25)::numeric::money, ('10.0.' || i % 256 || '.' || i * 7 % 256)::inet, ARRAY[i % 4, i % 3],
       (enum_range(NULL::agg_mood))[i % 3 + 1], lpad((i % 50)::text, 3, 'x'), (i * 13 % 1000)::oid,
       ('0/' || to_hex(i * 4096))::pg_lsn, (i * 11)::text::xid8, ('(' || i % 17 || ',' || i % 5 || ')')::tid,
       int4range(i % 10, i % 10 + 50),
       i * 2.5 + (i % 7), i * 1.0 - (i % 3) * 0.5
  FROM generate_series(1, 3000) i;
UPDATE agg_t SET i2 = NULL, n = NULL, f8 = NULL, b = NULL, t = NULL, y = NULL WHERE i4 % 7 = 0;
UPDATE agg_t SET i4 = NULL, i8 = NULL, f4 = NULL, bt = NULL, ts = NULL, x = NULL WHERE i2 % 11 = 0;
INSERT INTO agg_t (g) SELECT 5 FROM generate_series(1, 4);
INSERT INTO agg_t VALUES (6, 1, 2, 3, 4.5, 5.5, 6.5, true, B'10101010', 'one', '2024-06-01', '2024-06-01 12:00+00',
  '2024-06-01', '12:34:56', '12:34:56+03', '1 day', 7.25, '192.168.0.1', '{1,2}', 'ok', 'abc', 42, '1/0', '7', '(1,1)',
  '[1,10)', 1.5, 2.5);
INSERT INTO agg_t (g, i8, n, f8, y, x)
  SELECT 7, 9223372036854775807 - i, CASE WHEN i = 2 THEN 'NaN' ELSE i::numeric END, i, i, i * i FROM generate_series(1, 5) i;
SELECT g, count(*) FROM agg_t GROUP BY g ORDER BY g;

-- Compares every column but g of a continuous view with a plain view over agg_t;
-- floats with a relative tolerance.
CREATE FUNCTION agg_check(cv regclass, ref regclass) RETURNS TABLE (col name, ok boolean, has_values boolean)
LANGUAGE plpgsql AS $$
DECLARE
  a record;
  tol float8;
BEGIN
  FOR a IN SELECT attname, atttypid FROM pg_attribute
            WHERE attrelid = cv AND attnum > 0 AND NOT attisdropped AND attname <> 'g' ORDER BY attnum LOOP
    col := a.attname;
    IF a.atttypid IN ('float4'::regtype, 'float8'::regtype) THEN
      tol := CASE WHEN a.atttypid = 'float4'::regtype THEN 1e-5 ELSE 1e-9 END;
      EXECUTE format($q$
        SELECT NOT EXISTS (
          SELECT FROM (SELECT g, %1$I::float8 AS v, true AS p FROM %2$s) a
          FULL JOIN (SELECT g, %1$I::float8 AS v, true AS p FROM %3$s) b ON coalesce(a.g, -1) = coalesce(b.g, -1)
          WHERE a.p IS NULL OR b.p IS NULL
             OR NOT ((a.v IS NULL AND b.v IS NULL) OR a.v = b.v
                     OR abs(a.v - b.v) <= %4$s * greatest(abs(a.v), abs(b.v))))$q$,
        a.attname, cv, ref, tol) INTO ok;
    ELSE
      EXECUTE format($q$
        SELECT NOT EXISTS ((SELECT g, %1$I FROM %2$s EXCEPT ALL SELECT g, %1$I FROM %3$s)
                           UNION ALL
                           (SELECT g, %1$I FROM %3$s EXCEPT ALL SELECT g, %1$I FROM %2$s))$q$,
        a.attname, cv, ref) INTO ok;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE %I IS NOT NULL)', cv, a.attname) INTO has_values;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Creates the continuous view NAME over agg_s and the plain view NAME_ref over agg_t
-- from the same query text (%s stands for the source).
CREATE FUNCTION agg_pair(name text, q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE VIEW %I WITH (continuous) AS ', name) || format(q, 'agg_s');
  EXECUTE format('CREATE VIEW %I AS ', name || '_ref') || format(q, 'agg_t');
END
$$;

SELECT agg_pair('agg_count', $$SELECT g, count(*) AS count_star, count(i4) AS count_i4, count(t) AS count_text,
  count(g) AS count_g, count(*) FILTER (WHERE b) AS count_filter FROM %s GROUP BY g$$);
SELECT agg_pair('agg_sum', $$SELECT g, sum(i2) AS sum_int2, sum(i4) AS sum_int4, sum(i8) AS sum_int8,
  sum(n) AS sum_numeric, sum(f4) AS sum_float4, sum(f8) AS sum_float8, sum(iv) AS sum_interval,
  sum(m) AS sum_money, sum(i4 * 2 + i2) AS sum_expr FROM %s GROUP BY g$$);
SELECT agg_pair('agg_avg', $$SELECT g, avg(i2) AS avg_int2, avg(i4) AS avg_int4, avg(i8) AS avg_int8,
  avg(n) AS avg_numeric, avg(f4) AS avg_float4, avg(f8) AS avg_float8, avg(iv) AS avg_interval,
  avg(length(t)) AS avg_expr FROM %s GROUP BY g$$);
SELECT agg_pair('agg_minmax', $$SELECT g, min(i2) AS min_int2, max(i2) AS max_int2, min(i4) AS min_int4,
  max(i4) AS max_int4, min(i8) AS min_int8, max(i8) AS max_int8, min(n) AS min_numeric, max(n) AS max_numeric,
  min(f4) AS min_float4, max(f4) AS max_float4, min(f8) AS min_float8, max(f8) AS max_float8,
  min(ts) AS min_timestamp, max(ts) AS max_timestamp, min(tz) AS min_timestamptz, max(tz) AS max_timestamptz,
  min(d) AS min_date, max(d) AS max_date, min(tm) AS min_time, max(tm) AS max_time,
  min(ttz) AS min_timetz, max(ttz) AS max_timetz, min(iv) AS min_interval, max(iv) AS max_interval,
  min(m) AS min_money, max(m) AS max_money, min(ip) AS min_inet, max(ip) AS max_inet,
  min(arr) AS min_array, max(arr) AS max_array, min(e) AS min_enum, max(e) AS max_enum,
  min(c) AS min_bpchar, max(c) AS max_bpchar, min(o) AS min_oid, max(o) AS max_oid,
  min(lsn) AS min_pg_lsn, max(lsn) AS max_pg_lsn, min(x8) AS min_xid8, max(x8) AS max_xid8,
  min(ctid_) AS min_tid, max(ctid_) AS max_tid FROM %s GROUP BY g$$);
SELECT agg_pair('agg_text', $$SELECT g, min(t) AS min_text, max(t) AS max_text,
  min(t COLLATE "C") AS min_text_c, max(t COLLATE "C") AS max_text_c,
  min(t COLLATE "und-x-icu") AS min_text_icu, max(t COLLATE "und-x-icu") AS max_text_icu FROM %s GROUP BY g$$);
SELECT agg_pair('agg_bool', $$SELECT g, bool_and(b) AS bool_and, bool_or(b) AS bool_or, every(b) AS every,
  bool_and(i4 > -1000) AS bool_and_expr, bool_or(i4 > 600) AS bool_or_expr FROM %s GROUP BY g$$);
SELECT agg_pair('agg_bit', $$SELECT g, bit_and(i2) AS bit_and_int2, bit_or(i2) AS bit_or_int2, bit_xor(i2) AS bit_xor_int2,
  bit_and(i4) AS bit_and_int4, bit_or(i4) AS bit_or_int4, bit_xor(i4) AS bit_xor_int4,
  bit_and(i8) AS bit_and_int8, bit_or(i8) AS bit_or_int8, bit_xor(i8) AS bit_xor_int8,
  bit_and(bt) AS bit_and_bit, bit_or(bt) AS bit_or_bit, bit_xor(bt) AS bit_xor_bit FROM %s GROUP BY g$$);
SELECT agg_pair('agg_stddev', $$SELECT g,
  stddev(i2) AS stddev_int2, stddev(i4) AS stddev_int4, stddev(i8) AS stddev_int8,
  stddev(n) AS stddev_numeric, stddev(f4) AS stddev_float4, stddev(f8) AS stddev_float8,
  stddev_pop(i2) AS stddev_pop_int2, stddev_pop(i4) AS stddev_pop_int4, stddev_pop(i8) AS stddev_pop_int8,
  stddev_pop(n) AS stddev_pop_numeric, stddev_pop(f4) AS stddev_pop_float4, stddev_pop(f8) AS stddev_pop_float8,
  stddev_samp(i2) AS stddev_samp_int2, stddev_samp(i4) AS stddev_samp_int4, stddev_samp(i8) AS stddev_samp_int8,
  stddev_samp(n) AS stddev_samp_numeric, stddev_samp(f4) AS stddev_samp_float4, stddev_samp(f8) AS stddev_samp_float8
  FROM %s GROUP BY g$$);
SELECT agg_pair('agg_variance', $$SELECT g,
  variance(i2) AS variance_int2, variance(i4) AS variance_int4, variance(i8) AS variance_int8,
  variance(n) AS variance_numeric, variance(f4) AS variance_float4, variance(f8) AS variance_float8,
  var_pop(i2) AS var_pop_int2, var_pop(i4) AS var_pop_int4, var_pop(i8) AS var_pop_int8,
  var_pop(n) AS var_pop_numeric, var_pop(f4) AS var_pop_float4, var_pop(f8) AS var_pop_float8,
  var_samp(i2) AS var_samp_int2, var_samp(i4) AS var_samp_int4, var_samp(i8) AS var_samp_int8,
  var_samp(n) AS var_samp_numeric, var_samp(f4) AS var_samp_float4, var_samp(f8) AS var_samp_float8
  FROM %s GROUP BY g$$);
SELECT agg_pair('agg_regr', $$SELECT g, corr(y, x) AS corr, covar_pop(y, x) AS covar_pop, covar_samp(y, x) AS covar_samp,
  regr_avgx(y, x) AS regr_avgx, regr_avgy(y, x) AS regr_avgy, regr_count(y, x) AS regr_count,
  regr_intercept(y, x) AS regr_intercept, regr_r2(y, x) AS regr_r2, regr_slope(y, x) AS regr_slope,
  regr_sxx(y, x) AS regr_sxx, regr_sxy(y, x) AS regr_sxy, regr_syy(y, x) AS regr_syy,
  corr(f8, i4) AS corr_mixed FROM %s GROUP BY g$$);
SELECT agg_pair('agg_misc', $$SELECT g, count(*) - count(i2) AS expr_over_aggs, sum(i4) / nullif(count(i4), 0) AS int_mean,
  max(i4) - min(i4) AS spread FROM %s GROUP BY g$$);
-- without GROUP BY (g is a constant so that agg_check can be used)
SELECT agg_pair('agg_global', $$SELECT 0 AS g, count(*) AS count_star, sum(i8) AS sum_int8, avg(n) AS avg_numeric,
  stddev(f8) AS stddev_float8, var_samp(i4) AS var_samp_int4, min(t COLLATE "C") AS min_text_c,
  bit_xor(bt) AS bit_xor_bit, every(b) AS every, regr_slope(y, x) AS regr_slope FROM %s$$);

-- user-defined aggregates with a combine function
CREATE FUNCTION agg_my_add(int8, int4) RETURNS int8 LANGUAGE sql IMMUTABLE AS 'SELECT $1 + coalesce($2, 0)';
CREATE FUNCTION agg_my_combine(int8, int8) RETURNS int8 LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2';
CREATE AGGREGATE agg_my_sum(int4) (SFUNC = agg_my_add, STYPE = int8, COMBINEFUNC = agg_my_combine, INITCOND = '0');
-- array state, strict transition, final function
CREATE FUNCTION agg_my_acc(float8[], float8) RETURNS float8[] LANGUAGE sql IMMUTABLE STRICT
  AS 'SELECT ARRAY[$1[1] + 1, $1[2] + $2, least($1[3], $2), greatest($1[4], $2)]';
CREATE FUNCTION agg_my_merge(float8[], float8[]) RETURNS float8[] LANGUAGE sql IMMUTABLE STRICT
  AS 'SELECT ARRAY[$1[1] + $2[1], $1[2] + $2[2], least($1[3], $2[3]), greatest($1[4], $2[4])]';
CREATE FUNCTION agg_my_final(float8[]) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$SELECT CASE WHEN $1[1] = 0 THEN 'empty' ELSE format('n=%s mean=%s range=%s..%s', $1[1], round(($1[2] / $1[1])::numeric, 6), $1[3], $1[4]) END$$;
CREATE AGGREGATE agg_my_stats(float8) (SFUNC = agg_my_acc, STYPE = float8[], COMBINEFUNC = agg_my_merge,
  FINALFUNC = agg_my_final, INITCOND = '{0,0,Infinity,-Infinity}');
-- no initial value: the first non-null input is the state (like max)
CREATE FUNCTION agg_my_longer(text, text) RETURNS text LANGUAGE sql IMMUTABLE STRICT
  AS 'SELECT CASE WHEN length($2) > length($1) OR (length($2) = length($1) AND $2 > $1 COLLATE "C") THEN $2 ELSE $1 END';
CREATE AGGREGATE agg_my_longest(text) (SFUNC = agg_my_longer, STYPE = text, COMBINEFUNC = agg_my_longer);
-- internal state, with serialization functions (built from the functions of avg(int8))
CREATE AGGREGATE agg_my_avg(int8) (SFUNC = int8_avg_accum, STYPE = internal, SSPACE = 48,
  FINALFUNC = numeric_poly_avg, COMBINEFUNC = int8_avg_combine,
  SERIALFUNC = int8_avg_serialize, DESERIALFUNC = int8_avg_deserialize);
SELECT agg_pair('agg_uda', $$SELECT g, agg_my_sum(i4) AS my_sum, agg_my_stats(f8) AS my_stats,
  agg_my_longest(t) AS my_longest, agg_my_sum(i4) - sum(i4) AS my_sum_minus_sum,
  agg_my_avg(i8) AS my_avg, agg_my_avg(i8) = avg(i8) AS my_avg_is_avg FROM %s GROUP BY g$$);

-- the same rows, in several transactions and statements of different sizes
INSERT INTO agg_s SELECT * FROM agg_t WHERE g >= 5;
INSERT INTO agg_s SELECT * FROM agg_t WHERE g < 5 AND i4 IS NULL;
BEGIN;
INSERT INTO agg_s SELECT * FROM agg_t WHERE g < 5 AND i4 IS NOT NULL AND i4 < 0;
INSERT INTO agg_s SELECT * FROM agg_t WHERE g < 5 AND i4 IS NOT NULL AND i4 >= 0 AND i4 < 100;
COMMIT;
INSERT INTO agg_s SELECT * FROM agg_t WHERE g < 5 AND i4 >= 100 AND i4 < 400;
DO $$
DECLARE r agg_t;
BEGIN
  FOR r IN SELECT * FROM agg_t WHERE g < 5 AND i4 >= 400 LOOP
    INSERT INTO agg_s SELECT r.*;
  END LOOP;
END
$$;

-- results read from state plus pending deltas
SELECT v.relname AS view, c.col, c.ok, c.has_values
  FROM pg_class v, LATERAL agg_check(v.oid, (v.relname || '_ref')::regclass) c
 WHERE v.relname IN (SELECT name::text FROM stream_ext.continuous_views) AND v.relname LIKE 'agg\_%'
 ORDER BY v.relname, c.col;

-- text min/max honour the collation
SELECT g, min_text_c, max_text_c, min_text_icu, max_text_icu FROM agg_text ORDER BY g;
-- a few values printed, to show they are not trivial
SELECT g, count_star, count_i4, count_text FROM agg_count ORDER BY g;
SELECT g, sum_int8, sum_numeric, sum_interval FROM agg_sum ORDER BY g;
SELECT g, my_sum, my_stats, my_longest, my_sum_minus_sum, my_avg, my_avg_is_avg FROM agg_uda ORDER BY g;
SELECT count_star, sum_int8, avg_numeric, round(stddev_float8::numeric, 3) AS stddev_float8,
       min_text_c, bit_xor_bit, every, round(regr_slope::numeric, 6) AS regr_slope FROM agg_global;

-- reads can be parallel, unless a view has an aggregate that is not parallel safe (agg_uda's)
CREATE FUNCTION agg_read_is_parallel(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF line LIKE '%Gather%' THEN RETURN true; END IF;
  END LOOP;
  RETURN false;
END
$$;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT agg_read_is_parallel('SELECT * FROM agg_count') AS count_parallel,
       agg_read_is_parallel('SELECT * FROM agg_sum') AS sum_parallel,
       agg_read_is_parallel('SELECT * FROM agg_uda') AS uda_parallel;
-- and a parallel read is right
CREATE TEMP TABLE agg_count_read AS SELECT * FROM agg_count;
SELECT count(*) AS wrong_rows
  FROM ((SELECT * FROM agg_count_read EXCEPT ALL SELECT * FROM agg_count_ref)
        UNION ALL (SELECT * FROM agg_count_ref EXCEPT ALL SELECT * FROM agg_count_read)) d;
DROP TABLE agg_count_read;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- wait until the combiner has merged every delta into the state tables, then compare again
DO $$
DECLARE
  pending bigint;
  q text;
BEGIN
  SELECT string_agg(format('(SELECT count(*) FROM %s)', delta_table), ' + ') INTO q
    FROM stream_ext_internal.continuous_views WHERE view::text LIKE 'agg\_%';
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
SELECT v.relname AS view, c.col
  FROM pg_class v, LATERAL agg_check(v.oid, (v.relname || '_ref')::regclass) c
 WHERE v.relname IN (SELECT name::text FROM stream_ext.continuous_views) AND v.relname LIKE 'agg\_%'
   AND NOT c.ok
 ORDER BY v.relname, c.col;

-- more events after combining: state and new deltas combine
INSERT INTO agg_s SELECT * FROM agg_t WHERE g IN (1, 6);
INSERT INTO agg_t SELECT * FROM agg_t WHERE g IN (1, 6);
SELECT v.relname AS view, c.col
  FROM pg_class v, LATERAL agg_check(v.oid, (v.relname || '_ref')::regclass) c
 WHERE v.relname IN (SELECT name::text FROM stream_ext.continuous_views) AND v.relname LIKE 'agg\_%'
   AND NOT c.ok
 ORDER BY v.relname, c.col;
SELECT g, count_star FROM agg_count ORDER BY g;

-- range_intersect_agg: a polymorphic (anyrange) combine function
CREATE FOREIGN TABLE agg_rs (k int, r int4range) SERVER stream_ext;
CREATE VIEW agg_range WITH (continuous) AS SELECT k, range_intersect_agg(r) AS x, count(*) AS n FROM agg_rs GROUP BY k;
INSERT INTO agg_rs VALUES (1, '[1,10)'), (2, '[0,100)');
SELECT * FROM agg_range ORDER BY k;
INSERT INTO agg_rs VALUES (1, '[5,20)'), (2, '[50,60)');
INSERT INTO agg_rs VALUES (1, '[3,8)');
SELECT * FROM agg_range ORDER BY k;

-- the grand total of ROLLUP without events: the aggregate over no input, its
-- initial value read in the reader's settings, not those of the session
-- that created the view; a combine function that is not strict (latest) and
-- one that is (earliest)
CREATE FOREIGN TABLE agg_ts (k int, t timestamptz) SERVER stream_ext;
CREATE FUNCTION agg_later(timestamptz, timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE
  AS 'SELECT CASE WHEN $1 IS NULL OR $2 IS NULL THEN NULL ELSE greatest($1, $2) END';
CREATE FUNCTION agg_earlier(timestamptz, timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT
  AS 'SELECT least($1, $2)';
CREATE AGGREGATE agg_latest(timestamptz) (SFUNC = agg_later, STYPE = timestamptz, COMBINEFUNC = agg_later,
  INITCOND = '2000-01-01 00:00');
CREATE AGGREGATE agg_earliest(timestamptz) (SFUNC = agg_earlier, STYPE = timestamptz, COMBINEFUNC = agg_earlier,
  INITCOND = '2100-01-01 00:00');
SET TimeZone = 'America/New_York';
CREATE VIEW agg_rollup_ts WITH (continuous) AS
  SELECT k, agg_latest(t) AS latest, agg_earliest(t) AS earliest FROM agg_ts GROUP BY ROLLUP (k);
SET TimeZone = 'UTC';
SELECT * FROM agg_rollup_ts;
SELECT k, agg_latest(t) AS latest, agg_earliest(t) AS earliest
  FROM (SELECT 1, now() WHERE false) e(k, t) GROUP BY ROLLUP (k);
INSERT INTO agg_ts VALUES (1, '2024-05-01 12:00+00'), (2, '2024-06-01 12:00+00');
SELECT * FROM agg_rollup_ts ORDER BY k;
RESET TimeZone;

-- a key of a domain type in ROLLUP, read once its groups were merged (the
-- grand total's row took the domain's base type, and every read failed)
CREATE DOMAIN agg_url AS text;
CREATE FOREIGN TABLE agg_ds (u agg_url, v int) SERVER stream_ext;
CREATE VIEW agg_dom_rollup WITH (continuous) AS SELECT u, count(*), sum(v) FROM agg_ds GROUP BY ROLLUP (u);
INSERT INTO agg_ds VALUES ('/a', 1), ('/b', 2), ('/a', 3);
DO $$
DECLARE pending bigint;
BEGIN
  FOR i IN 1 .. 3000 LOOP
    EXECUTE format('SELECT count(*) FROM %s', (SELECT delta_table FROM stream_ext_internal.continuous_views
                                               WHERE view = 'agg_dom_rollup'::regclass)) INTO pending;
    EXIT WHEN pending = 0;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
SELECT * FROM agg_dom_rollup ORDER BY u;
SELECT * FROM agg_dom_rollup WHERE u = '/a';
SET client_min_messages = warning;
DROP FOREIGN TABLE agg_ds CASCADE;
DROP DOMAIN agg_url;
RESET client_min_messages;

-- a final function with FINALFUNC_EXTRA made strict after CREATE AGGREGATE
-- (which refuses it): PostgreSQL does not call it (its extra arguments are
-- NULL) and the result is NULL; so is the view's
CREATE FUNCTION agg_fx_final(s bigint, x int) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT s * 10';
CREATE AGGREGATE agg_fx(int) (SFUNC = int84pl, STYPE = bigint, INITCOND = '0', COMBINEFUNC = int8pl,
                              FINALFUNC = agg_fx_final, FINALFUNC_EXTRA);
ALTER FUNCTION agg_fx_final(bigint, int) STRICT;
CREATE FOREIGN TABLE agg_fx_s (k int, v int) SERVER stream_ext;
CREATE VIEW agg_fx_v WITH (continuous) AS SELECT k, agg_fx(v) AS fx, sum(v) FROM agg_fx_s GROUP BY k;
INSERT INTO agg_fx_s VALUES (1, 2), (1, 3);
SELECT k, fx, sum FROM agg_fx_v;
SELECT k, agg_fx(v) AS fx, sum(v) FROM (VALUES (1, 2), (1, 3)) t(k, v) GROUP BY k;
SET client_min_messages = warning;
DROP FOREIGN TABLE agg_fx_s CASCADE;
DROP AGGREGATE agg_fx(int);
DROP FUNCTION agg_fx_final(bigint, int);
RESET client_min_messages;

SET client_min_messages = warning;
DROP FOREIGN TABLE agg_rs CASCADE;
DROP FOREIGN TABLE agg_ts CASCADE;
DROP AGGREGATE agg_latest(timestamptz), agg_earliest(timestamptz);
DROP FUNCTION agg_later, agg_earlier;
DROP FOREIGN TABLE agg_s CASCADE;
DROP TABLE agg_t CASCADE;
DROP TYPE agg_mood;
DROP FUNCTION agg_check, agg_pair;
DROP AGGREGATE agg_my_sum(int4), agg_my_stats(float8), agg_my_longest(text), agg_my_avg(int8);
DROP FUNCTION agg_my_add, agg_my_combine, agg_my_acc, agg_my_merge, agg_my_final, agg_my_longer;
RESET client_min_messages;
