#!/usr/bin/env bash
# COPY into a stream reads timestamptz, timestamp and float8 text exactly as
# PostgreSQL does.  The stream's COPY takes shortcuts for ISO timestamps and
# plain decimals (src/stream/fast_input.c); this checks them against the
# types' own input functions over random and edge-case texts: every text
# PostgreSQL accepts gives the same value through the stream (text and csv
# COPY), and every text it rejects fails the stream's COPY with the same
# error.  Runs in a time zone with DST and a fractional offset history, so a
# timestamp read in the wrong zone shows up.
source "$(dirname "$0")/lib.sh"

use_server
fresh_db t_input
export PGOPTIONS="-c TimeZone=America/Sao_Paulo"
t0=$SECONDS

run_sql <<'SQL'
CREATE FOREIGN TABLE tz_stream (id bigint, v timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE ts_stream (id bigint, v timestamp) SERVER stream_ext;
CREATE FOREIGN TABLE f8_stream (id bigint, v float8) SERVER stream_ext;
CREATE VIEW tz_values WITH (continuous) AS
  SELECT id, min(v) AS lo, max(v) AS hi, count(*) AS n FROM tz_stream GROUP BY id;
CREATE VIEW ts_values WITH (continuous) AS
  SELECT id, min(v) AS lo, max(v) AS hi, count(*) AS n FROM ts_stream GROUP BY id;
CREATE VIEW f8_values WITH (continuous) AS
  SELECT id, min(v) AS lo, max(v) AS hi, count(*) AS n FROM f8_stream GROUP BY id;

CREATE TABLE corpus (id bigserial PRIMARY KEY, s text NOT NULL, number bool NOT NULL DEFAULT false,
                     tz timestamptz, tz_ok bool, ts timestamp, ts_ok bool, f8 float8, f8_ok bool);
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

-- random decimals: up to 20 digits before the point and 25 after, so that
-- some fit the float8 shortcut (under 2^53, at most 22 after the point) and
-- some do not
INSERT INTO corpus (s, number)
SELECT pick('', '', '-') || substr(lpad(floor(random() * 1e10)::text, 10, '0') || lpad(floor(random() * 1e10)::text, 10, '0'),
                                   1, floor(random() * 21)::int)
       || CASE WHEN random() < 0.2 THEN '' ELSE '.' || substr(repeat(floor(random() * 1e9)::text, 4), 1, floor(random() * 26)::int) END,
       true
FROM generate_series(1, 20000);
-- and edge cases
INSERT INTO corpus (s, number)
SELECT x, true FROM unnest(ARRAY['0', '-0', '-0.0', '.5', '5.', '-.5', '.', '-', '', '-.', '+1.5',
  '9007199254740992', '9007199254740993', '-9007199254740993', '900719925474099.3', '0.1', '0.3',
  '0.0000000000000000000001', '0.00000000000000000000001', '123456789012345678', '1234567890123456789',
  '1e5', '1E-5', ' 1.5', '1.5 ', 'NaN', 'nan', 'Infinity', '-Infinity', 'inf', '1.2.3', '1e-400',
  '1e400', '0x10', '00000000000000000001.5', '1,5', '١']) x;

-- PostgreSQL's own verdict on each text
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT id, s, number FROM corpus LOOP
    IF r.number THEN
      BEGIN
        UPDATE corpus SET f8 = r.s::float8, f8_ok = true WHERE id = r.id;
      EXCEPTION WHEN others THEN
        UPDATE corpus SET f8_ok = false WHERE id = r.id;
      END;
      CONTINUE;
    END IF;
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

declare -A BAD
read -r ntz nts nf8 BAD[tz] BAD[ts] BAD[f8] <<<"$(q "SELECT count(*) FILTER (WHERE tz_ok), count(*) FILTER (WHERE ts_ok),
	count(*) FILTER (WHERE f8_ok), count(*) FILTER (WHERE NOT tz_ok), count(*) FILTER (WHERE NOT ts_ok),
	count(*) FILTER (WHERE NOT f8_ok) FROM corpus" | tr '|' ' ')"
say "corpus: $ntz texts valid as timestamptz (${BAD[tz]} not), $nts as timestamp (${BAD[ts]} not), $nf8 as float8 (${BAD[f8]} not)"
[ "$ntz" -gt 20000 ] && [ "${BAD[tz]}" -gt 1000 ] && [ "$nf8" -gt 19000 ] && [ "${BAD[f8]}" -gt 20 ] ||
	fail "corpus too one-sided"

# valid texts: COPY them into the streams as text and as csv
for t in tz ts f8; do
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT id, s FROM corpus WHERE ${t}_ok) TO '$SCRATCH/$t.txt'"
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT id, s FROM corpus WHERE ${t}_ok) TO '$SCRATCH/$t.csv' (FORMAT csv)"
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy ${t}_stream (id, v) FROM '$SCRATCH/$t.txt'"
	psql -X -q -v ON_ERROR_STOP=1 -c "\\copy ${t}_stream (id, v) FROM '$SCRATCH/$t.csv' (FORMAT csv)"
	# compared as text: float8's output is the shortest that reads back exactly, and shows -0
	wrong=$(q "SELECT count(*) FROM corpus c FULL JOIN ${t}_values v USING (id)
		WHERE c.${t}_ok AND (v.n IS DISTINCT FROM 2 OR v.lo::text IS DISTINCT FROM c.$t::text OR v.hi::text IS DISTINCT FROM c.$t::text)
		   OR (c.${t}_ok IS NOT TRUE AND v.id IS NOT NULL) OR c.id IS NULL")
	if [ "$wrong" != 0 ]; then
		q "SELECT c.s, c.$t, v.lo, v.hi, v.n FROM corpus c JOIN ${t}_values v USING (id)
			WHERE v.lo::text IS DISTINCT FROM c.$t::text OR v.hi::text IS DISTINCT FROM c.$t::text LIMIT 10" >&2
		fail "$wrong valid $t texts read differently through the stream's COPY"
	fi
	say "ok: every valid text reads as the same $t through the stream's COPY (text and csv)"
done

# invalid texts: the stream's COPY fails with the plain table's error
run_sql -c "CREATE TABLE tz_plain (id bigint, v timestamptz); CREATE TABLE ts_plain (id bigint, v timestamp);
	CREATE TABLE f8_plain (id bigint, v float8)"
for t in tz ts f8; do
	for target in stream plain; do
		q "SELECT format(E'COPY ${t}_$target (id, v) FROM STDIN;\\n%s\\t%s\\n\\\\.', id, s)
			FROM corpus WHERE NOT ${t}_ok ORDER BY id" > "$SCRATCH/bad_$t.$target.sql"
		psql -X -q -f "$SCRATCH/bad_$t.$target.sql" 2>&1 | sed -E "s/${t}_$target/TARGET/g; s/^psql:[^:]*:/psql:/" > "$SCRATCH/bad_$t.$target.out" || true
	done
	nerr=$(grep -c '^psql:.*ERROR:' "$SCRATCH/bad_$t.stream.out" || true)
	n=${BAD[$t]}
	[ "$nerr" = "$n" ] || fail "$nerr of $n invalid $t texts made the stream's COPY fail"
	diff "$SCRATCH/bad_$t.plain.out" "$SCRATCH/bad_$t.stream.out" >&2 ||
		fail "the stream's COPY reports invalid $t texts differently from COPY into a table"
	say "ok: each of the $n invalid $t texts fails the stream's COPY with the table's error"
done
# wide texts: a text of more than 126 bytes after a short one has a 4-byte
# header, aligned after padding; events formed in the writer's reused buffer
# must carry zeros there (a stale byte read as a short varlena's header
# crashed the worker), over many flushes of the buffer
run_sql <<'SQL'
CREATE FOREIGN TABLE wide_stream (id int, a text, b text) SERVER stream_ext;
CREATE VIEW wide_rows WITH (continuous) AS SELECT id, a, b FROM wide_stream;
CREATE VIEW wide_sums WITH (continuous) AS
  SELECT length(a) AS la, count(*) AS n, sum(length(b)) AS lb, max(b) AS mb FROM wide_stream GROUP BY 1;
CREATE TABLE wide_plain (id int, a text, b text);
INSERT INTO wide_plain SELECT 0, repeat('z', 20000), 'x';
INSERT INTO wide_plain
SELECT i, repeat('q', i % 7 + 1), repeat(chr(97 + i % 26), 120 + i % 200) FROM generate_series(1, 3000) i;
SQL
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT * FROM wide_plain ORDER BY id) TO '$SCRATCH/wide.txt'"
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy wide_stream FROM '$SCRATCH/wide.txt'" ||
	fail "COPY of wide texts into a stream failed"
wrong=$(q "SELECT count(*) FROM wide_plain p FULL JOIN wide_rows v USING (id)
	WHERE p.a IS DISTINCT FROM v.a OR p.b IS DISTINCT FROM v.b")
[ "$wrong" = 0 ] || fail "$wrong rows of wide texts read differently through the stream's COPY"
wrong=$(q "SELECT count(*) FROM (SELECT length(a) AS la, count(*) AS n, sum(length(b)) AS lb, max(b) AS mb
	FROM wide_plain GROUP BY 1) p FULL JOIN wide_sums v USING (la)
	WHERE (p.n, p.lb, p.mb) IS DISTINCT FROM (v.n, v.lb, v.mb)")
[ "$wrong" = 0 ] || fail "$wrong groups of wide texts differ from the batch query"
say "ok: 3,001 events with texts over 126 bytes after short ones, through the stream's COPY"
say "PASS ($((SECONDS - t0))s)"
