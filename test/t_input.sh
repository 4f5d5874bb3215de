#!/usr/bin/env bash
# COPY into a stream reads timestamptz and timestamp text exactly as
# PostgreSQL does.  The stream's COPY takes a shortcut for ISO text
# (src/stream/fast_input.c); this checks it against the types' own input
# functions over random and edge-case texts: every text PostgreSQL accepts
# gives the same value through the stream (text and csv COPY), and every text
# it rejects fails the stream's COPY with the same error.  Runs in a time zone
# with DST and a fractional offset history, so a text read in the wrong zone
# shows up.
source "$(dirname "$0")/lib.sh"

use_server
fresh_db t_input
export PGOPTIONS="-c TimeZone=America/Sao_Paulo"
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE tz_stream (id bigint, v timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE ts_stream (id bigint, v timestamp) SERVER stream_ext;
CREATE VIEW tz_values WITH (continuous) AS
  SELECT id, min(v) AS lo, max(v) AS hi, count(*) AS n FROM tz_stream GROUP BY id;
CREATE VIEW ts_values WITH (continuous) AS
  SELECT id, min(v) AS lo, max(v) AS hi, count(*) AS n FROM ts_stream GROUP BY id;

CREATE TABLE corpus (id bigserial PRIMARY KEY, s text NOT NULL,
                     tz timestamptz, tz_ok bool, ts timestamp, ts_ok bool);
SELECT setseed(0.42);

-- random well-formed ISO texts over the whole 4-digit year range
CREATE FUNCTION pick(variadic a text[]) RETURNS text
  LANGUAGE sql VOLATILE AS $$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;
INSERT INTO corpus (s)
SELECT to_char(date '0001-01-01' + floor(random() * 3652058)::int, 'YYYY-MM-DD')
       || pick(' ', 'T')
       || to_char(make_time(floor(random() * 24)::int, floor(random() * 60)::int, floor(random() * 60)::int), 'HH24:MI:SS')
       || CASE WHEN random() < 0.3 THEN '' ELSE '.' || substr(lpad(floor(random() * 1e6)::text, 6, '0'), 1, 1 + floor(random() * 6)::int) END
       || CASE floor(random() * 5)::int
            WHEN 0 THEN ''
            WHEN 1 THEN pick('+', '-') || lpad(floor(random() * 16)::text, 2, '0')
            WHEN 2 THEN pick('+', '-') || lpad(floor(random() * 16)::text, 2, '0') || lpad(floor(random() * 60)::text, 2, '0')
            ELSE pick('+', '-') || lpad(floor(random() * 16)::text, 2, '0') || ':' || lpad(floor(random() * 60)::text, 2, '0')
          END
FROM generate_series(1, 20000);

-- edge cases: each part drawn from values at or just past its limits
INSERT INTO corpus (s)
SELECT pick('0000', '0001', '1582', '1900', '2000', '2024', '2100', '9999', '10000', '202')
       || '-' || pick('00', '01', '02', '04', '12', '13', '1')
       || '-' || pick('00', '01', '28', '29', '30', '31', '32', '9')
       || pick(' ', 'T', 't', '  ', 'x')
       || pick('00', '23', '24', '7') || ':' || pick('00', '59', '60') || ':' || pick('00', '59', '60', '5')
       || pick('', '', '.', '.1', '.123456', '.1234567', '.9999995', '.000001', '.5x')
       || pick('', '', '+00', '-00', '+15:59', '-15:59', '+16', '+15:60', '+0530', '-0930', '+05:30:00',
               'Z', 'z', ' +01', '+5', '+05:3', '+053', '+05:', 'UTC', ' America/New_York', '+01 ')
FROM generate_series(1, 6000);

-- PostgreSQL's own verdict on each text
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT id, s FROM corpus LOOP
    BEGIN
      UPDATE corpus SET tz = r.s::timestamptz, tz_ok = true WHERE id = r.id;
    EXCEPTION WHEN others THEN
      UPDATE corpus SET tz_ok = false WHERE id = r.id;
    END;
    BEGIN
      UPDATE corpus SET ts = r.s::timestamp, ts_ok = true WHERE id = r.id;
    EXCEPTION WHEN others THEN
      UPDATE corpus SET ts_ok = false WHERE id = r.id;
    END;
  END LOOP;
END $$;
SQL

read -r ntz nts badtz badts <<<"$(q "SELECT count(*) FILTER (WHERE tz_ok), count(*) FILTER (WHERE ts_ok),
	count(*) FILTER (WHERE NOT tz_ok), count(*) FILTER (WHERE NOT ts_ok) FROM corpus" | tr '|' ' ')"
say "corpus: $ntz texts valid as timestamptz ($badtz not), $nts as timestamp ($badts not)"
[ "$ntz" -gt 20000 ] && [ "$badtz" -gt 1000 ] || fail "corpus too one-sided"

# valid texts: COPY them into the streams as text and as csv
for t in tz ts; do
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT id, s FROM corpus WHERE ${t}_ok) TO '$SCRATCH/$t.txt'"
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT id, s FROM corpus WHERE ${t}_ok) TO '$SCRATCH/$t.csv' (FORMAT csv)"
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy ${t}_stream (id, v) FROM '$SCRATCH/$t.txt'"
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy ${t}_stream (id, v) FROM '$SCRATCH/$t.csv' (FORMAT csv)"
	wrong=$(q "SELECT count(*) FROM corpus c FULL JOIN ${t}_values v USING (id)
		WHERE c.${t}_ok AND (v.n IS DISTINCT FROM 2 OR v.lo IS DISTINCT FROM c.$t OR v.hi IS DISTINCT FROM c.$t)
		   OR (NOT c.${t}_ok AND v.id IS NOT NULL) OR c.id IS NULL")
	if [ "$wrong" != 0 ]; then
		q "SELECT c.s, c.$t, v.lo, v.hi, v.n FROM corpus c JOIN ${t}_values v USING (id)
			WHERE v.lo IS DISTINCT FROM c.$t OR v.hi IS DISTINCT FROM c.$t LIMIT 10" >&2
		fail "$wrong valid $t texts read differently through the stream's COPY"
	fi
	say "ok: every valid text reads as the same $t through the stream's COPY (text and csv)"
done

# invalid texts: the stream's COPY fails with the plain table's error
run_sql -c "CREATE TABLE tz_plain (id bigint, v timestamptz); CREATE TABLE ts_plain (id bigint, v timestamp)"
for t in tz ts; do
	for target in stream plain; do
		q "SELECT format(E'COPY ${t}_$target (id, v) FROM STDIN;\\n%s\\t%s\\n\\\\.', id, s)
			FROM corpus WHERE NOT ${t}_ok ORDER BY id" > "$SCRATCH/bad_$t.$target.sql"
		psql -X -q -f "$SCRATCH/bad_$t.$target.sql" 2>&1 | sed -E "s/${t}_$target/TARGET/g; s/^psql:[^:]*:/psql:/" > "$SCRATCH/bad_$t.$target.out" || true
	done
	nerr=$(grep -c '^psql:.*ERROR:' "$SCRATCH/bad_$t.stream.out" || true)
	n=$([ $t = tz ] && echo "$badtz" || echo "$badts")
	[ "$nerr" = "$n" ] || fail "$nerr of $n invalid $t texts made the stream's COPY fail"
	diff "$SCRATCH/bad_$t.plain.out" "$SCRATCH/bad_$t.stream.out" >&2 ||
		fail "the stream's COPY reports invalid $t texts differently from COPY into a table"
	say "ok: each of the $n invalid $t texts fails the stream's COPY with the table's error"
done
n=$(q "SELECT count(*) FROM tz_values WHERE id IN (SELECT id FROM corpus WHERE NOT tz_ok)")
[ "$n" = 0 ] || fail "$n invalid texts reached tz_values"
say "PASS ($((SECONDS - t0))s)"
