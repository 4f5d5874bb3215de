-- Comparing a view with the same query over a reference table (run by the
-- differential scripts, t_differential.sh, t_windows.sh, t_grouping_sets.sh,
-- t_joins.sh and t_rows.sh, before their views are checked).

-- float results are compared rounded to 10 significant digits
CREATE FUNCTION sig(x float8) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN x IS NULL THEN NULL
              WHEN x = 0 OR x IN ('Infinity', '-Infinity', 'NaN') THEN x::text
              ELSE round((x / 10 ^ e)::numeric, 9)::text || 'e' || e END
    FROM (SELECT floor(log(abs(x)))::int AS e) s
$$;

-- rows of view v and of query refq that the other side lacks
CREATE FUNCTION diff_view(v text, refq text) RETURNS TABLE (side text, r text) LANGUAGE plpgsql AS $$
DECLARE cols text; norm text;
BEGIN
  SELECT string_agg('c' || attnum, ', ' ORDER BY attnum),
         string_agg(CASE WHEN atttypid IN ('float8'::regtype, 'float4'::regtype)
                         THEN format('sig(c%s::float8)', attnum) ELSE 'c' || attnum END, ', ' ORDER BY attnum)
    INTO cols, norm
    FROM pg_attribute WHERE attrelid = v::regclass AND attnum > 0 AND NOT attisdropped;
  RETURN QUERY EXECUTE format(
    $f$WITH a AS (SELECT %2$s FROM %1$I AS x(%3$s)), b AS (SELECT %2$s FROM (%4$s) AS x(%3$s))
       SELECT 'view only', d::text FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b) d
       UNION ALL
       SELECT 'ref only', d::text FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a) d$f$,
    v, norm, cols, refq);
END $$;

-- view v against query refq: the rows of each, how many rows differ and up to
-- four of them (400 characters of each); diffs -1 and the error when they
-- cannot be compared
CREATE FUNCTION compare_view(v text, refq text, OUT view_rows bigint, OUT ref_rows bigint,
                             OUT diffs bigint, OUT examples text) LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT count(*) FROM (%s) x', refq) INTO ref_rows;
  EXECUTE format('SELECT count(*) FROM %I', v) INTO view_rows;
  SELECT count(*), string_agg(d.side || ': ' || left(d.r, 400), E'\n') FILTER (WHERE d.rn <= 4)
    INTO diffs, examples
    FROM (SELECT dv.*, row_number() OVER () AS rn FROM diff_view(v, refq) dv) d;
EXCEPTION WHEN OTHERS THEN
  diffs := -1;
  examples := 'ERROR: ' || SQLERRM;
END $$;
