#!/usr/bin/env bash
# No SQL call, however crafted, crashes the server; internal functions are
# not executable by PUBLIC.  Own server (it crashes, and is restarted).
#
# Every function of schemas stream_ext and stream_ext_internal (pg_proc) is
# called as superuser with arguments generated from its declared types
# (seeded: SEED): NULLs; bytea that is empty, random, or a real partial state
# of a view (from its state and delta tables) truncated, extended or with
# fields overwritten, and input sets (src/agg/inputs.c) crafted with a valid
# frame around garbage values, or with lying headers, also stored out of line
# (the sliced reads of percentiles and count_distinct_union); the agg_state
# states of internal-state aggregates as the views made them (a superuser
# may enter one, and is trusted; the plain role's literals of them fail, as
# no role but a superuser can make one up, and crafted bytes given in their
# place as bytea fail the type check); huge, negative
# and zero numbers; regprocedure, regclass and oid values that are 0, a
# table, a stream, a view, an index, an aggregate of every kind (internal
# state, polymorphic, without combine function, the extension's own, hll's
# and tdigest's when installed) or no aggregate; malformed text, cstring and
# interval; large arrays and jsonb.  Aggregates are also called over several
# rows, grouped, as window functions, over no rows and with arguments that
# change from row to row; the settings functions read (stream_ext.read_time,
# TimeZone, client_encoding) change along the way.  Each call is a statement
# of its own, with statement_timeout; errors are expected.  The calls of the
# functions PUBLIC executes run again as an unprivileged role.  The calls
# found to fail when this test was written (KNOWN below) come first.
#
# Skipped, as their calls register Kafka consumers or producers whose
# workers connect to brokers: kafka_register, kafka_consume,
# kafka_register_producer and kafka_produce.  The other kafka_* functions
# only read the catalog here (no consumer or producer exists) and are
# called.  No set-returning function of the extension blocks: none is
# skipped.  Functions with an argument of type internal cannot be given one
# from SQL (only aggregates can); their calls fail at parse time, as they
# must.
#
# Fails when a server process was terminated by a signal (the server log),
# when a call ignored statement_timeout (a watchdog kills it after
# HANG_AFTER: it could be stopped no other way), when the postmaster
# changed, when the unprivileged role may execute an internal function that
# sql/trust.sql's expected output (expected/trust.out) does not list as
# PUBLIC's, or one of the Kafka functions the README reserves to
# stream_ext_kafka.  Each failing call is printed, with a backtrace when gdb
# and a core are there; the other calls still run, but for those of a site
# that failed MAX_PER_SITE times.  About 20s when nothing fails, under two
# minutes when the known calls still fail.
source "$(dirname "$0")/lib.sh"

SEED=${SEED:-20240611}
STATEMENT_TIMEOUT=${STATEMENT_TIMEOUT:-2s}
HANG_AFTER=${HANG_AFTER:-4s}
MAX_PER_SITE=${MAX_PER_SITE:-2}
t0=$SECONDS

unset PGHOST PGPORT
SRV="$SCRATCH/server"
# temp_file_limit: what a statement that ignores statement_timeout may write
# before the watchdog (below) kills it
start_own_server "$SRV" "log_min_messages = log" "temp_file_limit = '2GB'"
export PGUSER=postgres
fresh_db t_fuzz_calls
postmaster=$(head -1 "$SRV/data/postmaster.pid")
# a crashing backend leaves a core in the data directory (core_pattern
# permitting): raise the soft limit runuser left at 0 (as the server's user)
if [ "$(id -u)" = 0 ]; then
	runuser -u postgres -- prlimit --pid "$postmaster" --core=unlimited: 2>/dev/null || true
else
	prlimit --pid "$postmaster" --core=unlimited: 2>/dev/null || true
fi

have_sketches=$(q "SELECT count(*) = 2 FROM pg_available_extensions WHERE name IN ('hll', 'tdigest')")
run_sql <<'SQL'
CREATE ROLE fuzz_user LOGIN;
CREATE TYPE comp AS (a int, b text);
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE plain_t (a int);
CREATE INDEX plain_t_a ON plain_t (a);
CREATE VIEW plain_view AS SELECT 1 AS x;
CREATE MATERIALIZED VIEW mat_v AS SELECT 1 AS x;
CREATE SEQUENCE fz_seq;
CREATE TABLE part_t (a int) PARTITION BY RANGE (a);
CREATE FOREIGN TABLE s (k text, v int, t timestamptz) SERVER stream_ext;
CREATE FOREIGN TABLE s_empty (x int) SERVER stream_ext;
CREATE VIEW agg_v WITH (continuous) AS
  SELECT k, count(*) AS n, sum(v) AS sv, avg(v) AS av, count(DISTINCT v) AS dv,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50
    FROM s GROUP BY k;
CREATE VIEW rows_v WITH (continuous, ttl = '1 hour', ttl_column = 't') AS
  SELECT k, v, t FROM s WHERE v IS DISTINCT FROM 0;
CREATE VIEW slide_v WITH (continuous, sliding_window = '1 minute', step = '1 second', time_column = 't') AS
  SELECT count(*) AS n, max(v) AS mx FROM s;
CREATE VIEW inp_v WITH (continuous) AS
  SELECT k, string_agg(DISTINCT k, ',') AS sa, mode() WITHIN GROUP (ORDER BY v) AS mo,
         array_agg(v ORDER BY t) AS aa, percentile_disc(0.9) WITHIN GROUP (ORDER BY v::float8) AS pd
    FROM s GROUP BY k;
CREATE VIEW all_v WITH (continuous) AS
  SELECT k, sum(v::int8) AS s8, avg(v::int8) AS a8, sum(v::numeric) AS sn, avg(v::numeric) AS an,
         var_pop(v::int8) AS vp8, var_samp(v) AS vs4, variance(v::int2) AS v2, stddev(v::numeric) AS sdn,
         avg(v::float8) AS af, stddev(v::float8) AS sdf, regr_slope(v::float8, v::float8) AS rs,
         avg(make_interval(secs => v)) AS ai, max(k) AS mk, min(ARRAY[v]) AS ma,
         range_intersect_agg(int4range(v, v + 100)) AS ri, bit_and(v) AS ba, bool_and(v > 0) AS bo
    FROM s GROUP BY k;
GRANT SELECT ON agg_v, rows_v, slide_v, inp_v, all_v TO fuzz_user;
SQL
if [ "$have_sketches" = t ]; then
	run_sql <<'SQL'
CREATE EXTENSION hll;
CREATE EXTENSION tdigest;
CREATE VIEW sketch_v WITH (continuous) AS
  SELECT k, hll_add_agg(hll_hash_integer(v)) AS h, tdigest(v::float8, 100) AS td,
         tdigest_percentile(v::float8, 100, 0.5) AS tp
    FROM s GROUP BY k;
GRANT SELECT ON sketch_v TO fuzz_user;
SQL
fi
run_sql <<'SQL'
SELECT setseed(0.5);
INSERT INTO s SELECT 'k' || (i % 3), (i * 7919) % 1000 - 100, '2024-01-01'::timestamptz + i * interval '1 second'
  FROM generate_series(1, 60) i;
INSERT INTO s VALUES (NULL, NULL, NULL), ('k0', -5, now()), ('', 0, '2024-01-01'), ('k1', 2147483647, 'infinity');
SQL
create_pending_deltas
wait_until 60 "the combiner merged the deltas" "SELECT pending_deltas() = 0"
# and a second batch left in the delta tables
q "INSERT INTO s SELECT 'k' || (i % 4), i, now() FROM generate_series(1, 10) i" >/dev/null
say "setup done ($((SECONDS - t0))s)"

# ------------------------------------------------------------------ metadata
META="$SCRATCH/meta"
mkdir -p "$META"
tsv() { psql -X -At -F $'\t' -P null='\N' -v ON_ERROR_STOP=1 -c "$1"; }
tsv "SELECT p.oid, p.oid::regprocedure, n.nspname, p.proname, p.prokind, p.proretset,
            p.provariadic <> 0,
            coalesce((SELECT string_agg(format_type(t, NULL), ';' ORDER BY o)
                        FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)), ''),
            format_type(p.prorettype, NULL), p.pronargdefaults,
            has_function_privilege('fuzz_user', p.oid, 'EXECUTE')
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname IN ('stream_ext', 'stream_ext_internal')
      ORDER BY p.oid::regprocedure::text COLLATE \"C\"" > "$META/funcs.tsv"
tsv "SELECT r, regexp_replace(pg_get_viewdef(view), '\s+', ' ', 'g')
       FROM stream_ext_internal.continuous_views, LATERAL (VALUES (state_table::text), (delta_table::text)) v(r)
     UNION ALL
     SELECT adrelid::regclass::text, regexp_replace(pg_get_expr(adbin, adrelid), '\s+', ' ', 'g')
       FROM pg_attrdef WHERE adrelid IN (SELECT state_table FROM stream_ext_internal.continuous_views)" > "$META/exprs.tsv"
run_sql <<'SQL'
CREATE FUNCTION fz_samples() RETURNS TABLE (tab text, col text, typ text, val text) LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT a.attrelid::regclass::text AS tab, a.attname::text AS col, format_type(a.atttypid, a.atttypmod) AS typ
             FROM stream_ext_internal.continuous_views v, LATERAL (VALUES (v.state_table), (v.delta_table)) x(rel)
             JOIN pg_attribute a ON a.attrelid = x.rel
            WHERE a.attnum > 0 AND NOT a.attisdropped
  LOOP
    RETURN QUERY EXECUTE format(
      $q$SELECT %L, %L, %L, v FROM (SELECT DISTINCT %I::text AS v FROM %s) d
          WHERE v IS NULL OR (length(v) < 40000 AND strpos(v, E'\t') = 0 AND strpos(v, E'\n') = 0
                              AND strpos(v, E'\r') = 0 AND (strpos(v, '\') = 0 OR left(v, 2) = '\x' OR v ~ '^[^\\]*:\\x[0-9a-f]*$'))
          LIMIT 4$q$,
      r.tab, r.col, r.typ, r.col, r.tab);
  END LOOP;
END $$;
SQL
tsv "SELECT * FROM fz_samples()" > "$META/samples.tsv"
tsv "SELECT 'type', t, t::regtype::oid::text FROM unnest(ARRAY['integer', 'bigint', 'double precision', 'text', 'bytea',
            'boolean', 'numeric', 'timestamp with time zone', 'date', 'interval', 'integer[]', 'text[]', 'record',
            'comp', 'jsonb', 'uuid', 'mood', 'posint', 'name', 'hll', 'tdigest']) t WHERE to_regtype(t) IS NOT NULL
     UNION ALL
     SELECT 'rel', r, NULL FROM unnest(ARRAY['s', 's_empty', 'agg_v', 'rows_v', 'slide_v', 'inp_v', 'all_v', 'sketch_v',
            'plain_t', 'plain_t_a', 'plain_view', 'mat_v', 'fz_seq', 'part_t', 'comp', 'pg_class',
            'pg_toast.pg_toast_1255', 'stream_ext.continuous_views', 'stream_ext_internal.continuous_views']) r
      WHERE to_regclass(r) IS NOT NULL
     UNION ALL
     SELECT 'rel', x::text, NULL FROM stream_ext_internal.continuous_views,
            LATERAL (VALUES (state_table), (delta_table)) v(x)
     UNION ALL
     SELECT 'rel', indexrelid::regclass::text, NULL FROM pg_index
      WHERE indrelid IN (SELECT state_table FROM stream_ext_internal.continuous_views)
     UNION ALL
     SELECT 'agg', aggfnoid::regprocedure::text,
            coalesce((SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                       WHERE d.classid = 'pg_proc'::regclass AND d.objid = aggfnoid AND d.deptype = 'e')::text, 'core')
       FROM pg_aggregate
     UNION ALL
     SELECT 'func', f, NULL FROM unnest(ARRAY['lower(text)', 'now()', 'int8pl(bigint,bigint)', 'pg_sleep(double precision)',
            'numeric_avg_deserialize(bytea,internal)', 'stream_ext_internal.finalize_state(regprocedure,anyelement,anycompatible)',
            'stream_ext_internal.inputs_trans(internal,\"any\")', 'stream_ext_internal.combine_unrewritten(anyelement,anyelement)']) f
     UNION ALL
     SELECT 'xid', txid_current()::text, NULL" > "$META/objs.tsv"

/usr/bin/python3 - "$META" "$SEED" "$SCRATCH/gen" <<'PY' > "$SCRATCH/gen.out" || fail "the call generator failed: $(cat "$SCRATCH/gen.out")"
"""The calls of t_fuzz_calls.sh, from the functions, view definitions, state
samples and objects the script dumped into META (funcs.tsv, exprs.tsv,
samples.tsv, objs.tsv).  Writes into OUT: setup.sql (crafted input sets in a
table whose column is stored out of line), calls_su.sql (every function but
the skipped ones) and calls_user.sql (those PUBLIC executes, about half of
their calls), one statement a line, numbered /* #N */ and /* #uN */, with
.keys files naming each call's site (what a failure is counted against), and
plan.tsv (calls per function, and the skipped functions).  Prints the two
numbers of calls.  Everything random comes from random.Random(SEED).
"""
import os
import re
import struct
import sys

import random

META, SEED, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
R = random.Random(SEED)


def tsv(name):
    rows = []
    with open(os.path.join(META, name), encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if line:
                rows.append([None if c == '\\N' else c for c in line.split('\t')])
    return rows


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def blit(b):
    return "'\\x" + b.hex() + "'::bytea"


def pick(seq):
    return seq[R.randrange(len(seq))]


# ---------------------------------------------------------------- inputs
FUNCS = tsv('funcs.tsv')     # oid sig nsp name kind retset variadic argtypes rettype ndefaults public
EXPRS = tsv('exprs.tsv')     # state table, expression text (view definitions, generated columns)
SAMPLES = tsv('samples.tsv')  # state table, column, type, value as text
OBJS = tsv('objs.tsv')       # kind, value[, more]

objs = {}
for row in OBJS:
    objs.setdefault(row[0], []).append(row[1:])
type_oid = {r[0]: int(r[1]) for r in objs.get('type', [])}
rels = [r[0] for r in objs.get('rel', [])]
aggs = objs.get('agg', [])            # sig, extension (core: none)
agg_ext = {a[0]: a[1] for a in aggs}
nonaggs = [r[0] for r in objs.get('func', [])]
cur_xid = int(objs['xid'][0][0])

# samples: (table, column) -> [(type, text)]
samples = {}
for tab, col, typ, val in SAMPLES:
    samples.setdefault((tab, col), []).append((typ, val))


def sample_lit(typ, val):
    if val is None:
        return 'NULL::' + typ
    return lit(val) + '::' + typ


# what each state column holds: finalize_state/finalize_agg(agg, col, NULL::result)
# and finalize_inputs(col, query, aggregate, NULL::result)
TYPE_RE = r'([\w ."\[\]]+?)'
FIN_RE = re.compile(r"finalize_(?:state|agg|agg_parallel_unsafe)\('((?:[^']|'')+)'::regprocedure, (?:\w+\.)?(\w+), NULL::" + TYPE_RE + r"\)")
FINI_RE = re.compile(r"finalize_inputs\((?:\w+\.)?(\w+), '((?:[^']|'')*)'::text, '((?:[^']|'')+)'::regprocedure, NULL::" + TYPE_RE + r"\)")
PCT_RE = re.compile(r"inputs_(?:percentile_float8|count_distinct)\((?:\w+\.)?(\w+)")
triples = {}       # (agg, statetype, resulttype) -> [state literals]
finals = []        # (state literal, query, aggregate, result type)
float8_sets = []   # literals of one-column float8 input sets
inputs_sets = []   # literals of input sets
for tab, text in EXPRS:
    for agg, col, res in FIN_RE.findall(text):
        agg = agg.replace("''", "'")
        for typ, val in samples.get((tab, col), []):
            triples.setdefault((agg, typ, res), []).append(sample_lit(typ, val))
            if 'inputs_agg' in agg and val is not None:
                inputs_sets.append(val)
    for col, query, fagg, res in FINI_RE.findall(text):
        for typ, val in samples.get((tab, col), []):
            finals.append((sample_lit(typ, val), query.replace("''", "'"), fagg.replace("''", "'"), res))
            if val is not None:
                inputs_sets.append(val)
    for col in PCT_RE.findall(text):
        for typ, val in samples.get((tab, col), []):
            if val is not None:
                inputs_sets.append(val)
                if 'percentile' in text:
                    float8_sets.append(val)
if not finals or not triples:
    sys.exit('the views\' reads show no finalize_inputs or finalize_* call to take states from')
real_bytea = sorted({val for vals in samples.values() for typ, val in vals
                     if typ == 'bytea' and val is not None})


def hexbytes(v):
    return bytes.fromhex(v[2:])


# ---------------------------------------------------------------- bytes
S32 = [0, 1, -1, 2, 3, 4, 7, 8, 16, 100, 101, 255, 256, 4096, 0x7fff, 0x8000, 0xffff,
       0x7fffffff, -0x80000000, 0x3fffffff, -2, 1 << 20, 1 << 24]
S64 = [0, 1, -1, 2, 1 << 31, 1 << 32, 1 << 62, (1 << 63) - 1, -(1 << 63), 1 << 61, 10 ** 6, -1000]


def mutate(b):
    b = bytearray(b)
    for _ in range(R.randint(1, 3)):
        m = R.randrange(10)
        end = '<' if R.random() < 0.5 else '>'
        if m == 0 and b:
            del b[R.randrange(len(b) + 1):]
        elif m == 1:
            b += R.randbytes(R.randint(1, 40))
        elif m == 2 and b:
            b[R.randrange(len(b))] = R.randrange(256)
        elif m == 3 and len(b) >= 4:
            i = R.randrange(len(b) - 3)
            if R.random() < 0.5:
                i -= i % 4
            b[i:i + 4] = struct.pack(end + 'i', pick(S32))
        elif m == 4 and len(b) >= 8:
            i = R.randrange(len(b) - 7)
            if R.random() < 0.5:
                i -= i % 8
            b[i:i + 8] = struct.pack(end + 'q', pick(S64))
        elif m == 5 and len(b) >= 2:
            i = R.randrange(len(b) - 1)
            b[i:i + 2] = struct.pack(end + 'h', pick([0, 1, -1, 0x7fff, -0x8000, 0x4000, 0xC000 - 0x10000, 9999, 10000]))
        elif m == 6 and b:
            i = R.randrange(len(b))
            b[i] ^= 1 << R.randrange(8)
        elif m == 7 and len(b) < 4000:
            b = b + b
        elif m == 8 and b:
            i = R.randrange(len(b))
            del b[i:i + R.randint(1, 8)]
        else:
            b = bytearray(R.randbytes(R.randint(0, 24))) + b
    return bytes(b)


MAGIC = 0x53454932


def w32(x):
    x &= 0xffffffff
    return x - (1 << 32) if x >= 1 << 31 else x


def w64(x):
    x &= 0xffffffffffffffff
    return x - (1 << 64) if x >= 1 << 63 else x


def inputs_set(types, entries, **lie):
    """A serialized input set (src/agg/inputs.c) of rows entries [(count, bytes)]."""
    nnull = sum(1 for c, d in entries if has_null(d, len(types)))
    hdr = struct.pack('<iiqqq', w32(lie.get('magic', MAGIC)), w32(lie.get('natts', len(types))),
                      w64(lie.get('nentries', len(entries))), w64(lie.get('nrows', sum(c for c, d in entries))),
                      w64(lie.get('nnull', nnull)))
    body = b''.join(struct.pack('<I', t & 0xffffffff) for t in types)
    for c, d in entries:
        body += struct.pack('<qi', w64(c), w32(lie.get('len', len(d)))) + d
    return hdr + body


def has_null(d, natts):
    pos = 0
    for _ in range(natts):
        if pos + 4 > len(d):
            return False
        n = struct.unpack_from('<i', d, pos)[0]
        if n == -1:
            return True
        pos += 4 + max(n, 0)
    return False


def col(sendbytes):
    """One value of a row: native int32 length, then the send format."""
    if sendbytes is None:
        return struct.pack('<i', -1)
    return struct.pack('<i', len(sendbytes)) + sendbytes


def send_value(t):
    """Bytes of a value of type name t in its send format, mostly well-formed."""
    g = R.random() < 0.25
    if g:
        return R.randbytes(pick([0, 1, 2, 3, 4, 7, 8, 9, 12, 16, 33, 100]))
    if t == 'integer':
        return struct.pack('>i', pick(S32))
    if t == 'bigint':
        return struct.pack('>q', pick(S64))
    if t == 'double precision':
        return struct.pack('>d', pick([0.0, -0.0, 1.5, -1e308, 1e308, float('nan'), float('inf'), float('-inf'), 5e-324]))
    if t == 'text':
        return pick([b'', b'a', b'k0', b'\xff\xfe', b'\xc3', 'é'.encode(), b'x' * 3000])
    if t == 'bytea':
        return R.randbytes(R.randint(0, 20))
    if t == 'boolean':
        return bytes([pick([0, 1, 2, 255])])
    if t == 'numeric':
        nd = pick([0, 1, 2, -1, 1000, 0x7fff])
        digits = b''.join(struct.pack('>h', pick([0, 1, 9999, 10000, -1, 0x7fff])) for _ in range(min(max(nd, 0), 4)))
        return struct.pack('>hhHH', nd, pick([0, 1, -1, 0x7fff, -0x8000]), pick([0, 0x4000, 0xC000, 0xD000, 0xF000, 0x1234]), pick([0, 2, 0x3fff, 0x4000, 0xffff])) + digits
    if t == 'timestamp with time zone' or t == 'timestamp without time zone':
        return struct.pack('>q', pick(S64))
    if t == 'date':
        return struct.pack('>i', pick(S32))
    if t == 'interval':
        return struct.pack('>qii', pick(S64), pick(S32), pick(S32))
    if t == 'integer[]' or t == 'text[]':
        elem = 23 if t == 'integer[]' else 25
        ndim = pick([0, 1, 1, 2, 6, 7, -1])
        out = struct.pack('>iiI', ndim, pick([0, 1, 2]), pick([elem, elem, 25, 0, 2249]))
        n = 1
        for _ in range(max(0, min(ndim, 7))):
            d = pick([0, 1, 2, 3, 0x7fffffff, -1])
            n *= max(d, 0)
            out += struct.pack('>ii', d, pick([1, 0, -1, 0x7fffffff, -0x80000000]))
        for _ in range(min(n, 4)):
            out += struct.pack('>i', 4) + R.randbytes(4) if R.random() < 0.8 else struct.pack('>i', -1)
        return out
    if t == 'record' or t == 'comp':
        ncol = pick([0, 1, 2, 3, -1, 1000])
        out = struct.pack('>i', ncol)
        for _ in range(max(0, min(ncol, 3))):
            out += struct.pack('>Ii', pick([23, 25, 0, 2249, 2281, 705, 2275]), pick([4, -1, 0, 100]))
            out += R.randbytes(4)
        return out
    if t == 'jsonb':
        return bytes([pick([1, 1, 2, 0])]) + pick([b'{}', b'[1,2]', b'{"a":', b'"x"', b'[' * 300])
    if t == 'uuid':
        return R.randbytes(pick([16, 16, 15, 17]))
    return R.randbytes(R.randint(0, 16))


INPUT_TYPES = ['integer', 'bigint', 'double precision', 'text', 'bytea', 'boolean', 'numeric',
               'timestamp with time zone', 'date', 'interval', 'integer[]', 'text[]', 'record',
               'comp', 'jsonb', 'uuid', 'mood', 'posint', 'name', 'hll', 'tdigest']
INPUT_TYPES = [t for t in INPUT_TYPES if t in type_oid]


def crafted_inputs(coltypes=None):
    """A crafted input set, its column types, mostly with a consistent frame."""
    if coltypes is None:
        coltypes = [pick(INPUT_TYPES) for _ in range(pick([1, 1, 1, 2, 3]))]
    types = [type_oid[t] for t in coltypes]
    if R.random() < 0.1:
        types[R.randrange(len(types))] = pick([0, 2281, 2275, 705, 2283, 2249, 4294967295])
    entries = []
    for _ in range(pick([0, 1, 1, 2, 3, 5, 40])):
        row = b''.join(col(None if R.random() < 0.1 else send_value(t)) for t in coltypes)
        entries.append((pick([1, 1, 1, 2, 7, 1 << 40, (1 << 62)]), row))
    entries.sort(key=lambda e: e[1])
    lie = {}
    if R.random() < 0.3:
        k = pick(['magic', 'natts', 'nentries', 'nrows', 'nnull', 'len'])
        lie[k] = pick(S32) if k in ('magic', 'natts', 'len') else pick(S64)
    if any(c > 1 << 30 for c, d in entries) and R.random() < 0.7:
        entries = [(min(c, 3), d) for c, d in entries]   # a few huge counts, not all
    b = inputs_set(types, entries, **lie)
    if R.random() < 0.2:
        b = mutate(b)
    return b, coltypes


FIXED = [('integer', 23, 4), ('bigint', 20, 8), ('uuid', 2950, 16), ('date', 1082, 4),
         ('boolean', 16, 1), ('timestamp with time zone', 1184, 8), ('smallint', 21, 2)]


def fixed_set(n, lie=True):
    """A sorted one-column input set of a fixed-width type (distinct_union.c probes them)."""
    tname, toid, width = pick(FIXED)
    vals = sorted({R.randbytes(width) for _ in range(n)})
    entries = [(R.randint(1, 3), col(v)) for v in vals]
    if R.random() < 0.3:
        entries.append((R.randint(1, 3), col(None)))
    kw = {}
    if lie and R.random() < 0.4:
        k = pick(['nentries', 'nrows', 'nnull', 'len'])
        base = {'nentries': len(entries), 'nrows': sum(c for c, d in entries), 'nnull': 0, 'len': width + 4}[k]
        kw[k] = pick([base + 1, base - 1, base + (1 << 61), base + (1 << 62) + (1 << 61), -1, 0, (1 << 63) - 1, 2 * base])
        if k == 'len':
            kw[k] = pick([width + 3, width + 5, -1, 0, 0x7fffffff])
    if lie and R.random() < 0.2:
        # an entry of another width, or out of order
        i = R.randrange(len(entries))
        c, d = entries[i]
        entries[i] = (c, d + b'\0') if R.random() < 0.5 else (pick([0, -1, 1 << 62]), d)
    if lie and R.random() < 0.2:
        R.shuffle(entries)
    b = inputs_set([toid if not (lie and R.random() < 0.1) else pick([701, 25, 0])], entries, **kw)
    if lie and R.random() < 0.1:
        b = mutate(b)
    return b


def float8_set(n=None, lie=True):
    """A one-column float8 input set: entries (count, value), perhaps a NULL one."""
    n = n if n is not None else pick([0, 1, 2, 3, 10, 200])
    vals = [pick([R.uniform(-1e6, 1e6), R.random(), 0.0, -0.0, float('nan'), float('inf'),
                  float('-inf'), 1e308, 5e-324, float(R.randint(0, 100))]) for _ in range(n)]
    if R.random() < 0.7:
        vals.sort(key=lambda v: struct.pack('>d', v))
    entries = [(pick([1, 1, 2, 3, 1 << 40, (1 << 62) - 1, 0, -1]) if lie and R.random() < 0.15 else R.randint(1, 5),
                col(struct.pack('>d', v))) for v in vals]
    if R.random() < 0.3:
        entries.append((R.randint(1, 4), col(None)))
    kw = {}
    if lie and R.random() < 0.3:
        k = pick(['nentries', 'nrows', 'nnull'])
        base = {'nentries': len(entries), 'nrows': sum(c for c, d in entries), 'nnull': 0}[k]
        kw[k] = pick([base + 1, base - 1, base + (1 << 61), -1, 0, (1 << 63) - 1, 1 << 62, 2 * base])
    b = inputs_set([701], entries, **kw)
    if lie and R.random() < 0.15:
        b = mutate(b)
    return b


# ---------------------------------------------------------------- typed pools
INTS = ['NULL::integer', '0', '1', '-1', '2', '5', '6', '7', '100', '2147483647', '-2147483648', '65536']
SMALLINTS = ['NULL::smallint', '0::smallint', '1::smallint', '-1::smallint', '3::smallint', '4::smallint',
             '32767::smallint', '(-32768)::smallint', '1600::smallint']
FLOATS = ['NULL::float8', '0::float8', '1::float8', '0.5::float8', '0.99::float8', '-0.0::float8',
          "'NaN'::float8", "'Infinity'::float8", "'-Infinity'::float8", '1e308::float8', '-1e-308::float8',
          '1.0000001::float8', '5e-324::float8']
BOOLS = ['NULL::boolean', 'true', 'false']
TEXTS = ["NULL::text", "''::text", "'x'::text", "'k0'::text", "'earliest'::text", "'latest'::text",
         "'{\"0\": 5}'::text", "'{\"-1\": 5}'::text", "'{\"2147483648\": 1}'::text", "'{'::text",
         "'2024-01-01 00:00:00+00'::text", "'infinity'::text", "'SELECT 1'::text", "'%s%n%x%d'::text",
         "E'\\\\'::text", "'\"'::text", "'drop'::text", "'stop'::text", "'start'::text",
         "repeat('a', 70)::text", "repeat('ab', 5000)::text", "repeat('x', 1000000)::text",
         "'json'::text", "'csv'::text", "'text'::text", "',;'::text", "E'\\n'::text", "'\u00e9\u00e8\u4e2d'::text",
         "chr(65533)::text", "'arrival_timestamp'::text", "'s'::text", "'agg_v'::text",
         "'public.agg_v'::text", "'stream_ext_internal.state_1'::text"]
NAMES = ["NULL::name", "''::name", "'postgres'::name", "'fuzz_user'::name", "'nobody_here'::name",
         "'k'::name", "'v'::name", "'t'::name", "'arrival_timestamp'::name", "'stream_ext_kafka'::name",
         "repeat('n', 63)::name", "'pg_read_all_data'::name", "'public'::name"]
TEXTARRS = ["NULL::text[]", "'{}'::text[]", "'{a=b}'::text[]", "'{continuous=false}'::text[]",
            "'{sliding_window=1 minute}'::text[]", "'{sliding_window=1 minute,step=0}'::text[]",
            "'{sliding_window=-1 minute}'::text[]", "'{sliding_window=100000000 days}'::text[]",
            "'{tumbling_window=1 second}'::text[]", "'{ttl=1 hour,ttl_column=t}'::text[]",
            "'{ttl=1 hour,ttl_column=k}'::text[]", "'{=}'::text[]", "'{=x}'::text[]", "'{x}'::text[]",
            "'{NULL}'::text[]", "'{{a=b},{c=d}}'::text[]", "'[5:5]={changes_of=x}'::text[]",
            "'{changes_of=agg_v}'::text[]", "'{changes_of=}'::text[]", "'{time_column=k}'::text[]",
            "'{output=plain_t}'::text[]", "'{output=s}'::text[]", "'{notify=x}'::text[]",
            "'{notify=x,ttl=1 day,ttl_column=t}'::text[]", "'{allowed_lateness=-1 second}'::text[]",
            "'{hopping_window=1 minute,step=7 seconds}'::text[]", "'{session_gap=1 second}'::text[]",
            "array_fill('a=b'::text, ARRAY[1000])", "'{\"a=b=c\"}'::text[]", "'{continuous=true}'::text[]",
            "ARRAY[repeat('o', 100000) || '=1']"]
INTERVALS = ["NULL::interval", "'0'::interval", "'1 microsecond'::interval", "'1 second'::interval",
             "'1 minute'::interval", "'4 seconds'::interval", "'16 seconds'::interval", "'-1 second'::interval",
             "'1 month'::interval", "'1 day'::interval", "'1.5 seconds'::interval", "'2147483647 days'::interval",
             "'-2147483648 days'::interval", "'178000000 years'::interval", "'-178000000 years'::interval",
             "'100000000 days'::interval", "make_interval(secs => 9223372036.854775807)",
             "'2562047788 hours 54.775807 seconds'::interval", "'-2562047788 hours -54.775808 seconds'::interval"]
OIDS = ["NULL::oid", "0::oid", "1::oid", "4294967295::oid", "'pg_class'::regclass::oid",
        "'pg_foreign_table'::regclass::oid", "'pg_foreign_server'::regclass::oid",
        "'pg_foreign_data_wrapper'::regclass::oid", "'pg_user_mapping'::regclass::oid",
        "'pg_attribute'::regclass::oid", "'s'::regclass::oid", "2147483648::oid"]
JSONBS = ["NULL::jsonb", "'{}'::jsonb", "'[]'::jsonb", "'null'::jsonb", "'1'::jsonb", "'\"x\"'::jsonb",
          "'{\"password\": \"p\", \"a\": 1, \"x.pem\": 2}'::jsonb", "'{\"a\": {\"b\": [1, 2]}}'::jsonb",
          "(repeat('[', 5000) || repeat(']', 5000))::jsonb", "'{\"bootstrap.servers\": 1}'::jsonb",
          "'{\"delimiter\": \"\", \"quote\": \"\", \"null\": null}'::jsonb",
          "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 3000) g)"]
XIDS = ["NULL::xid", "'0'::xid", "'1'::xid", "'2'::xid", "'3'::xid", "'4294967295'::xid",
        "'2147483648'::xid", "'%d'::xid" % cur_xid, "'%d'::xid" % (cur_xid + 1), "'%d'::xid" % (cur_xid + 100000),
        "'%d'::xid" % max(cur_xid - 1, 3), "pg_current_xact_id()::text::xid8::text::xid"]
XID8S = ["NULL::xid8", "'0'::xid8", "'1'::xid8", "'2'::xid8", "'3'::xid8", "'4294967295'::xid8",
         "'4294967296'::xid8", "'4294967299'::xid8", "'18446744073709551615'::xid8", "'9223372036854775807'::xid8",
         "'%d'::xid8" % cur_xid, "'%d'::xid8" % (cur_xid + 1), "'%d'::xid8" % (cur_xid + 10 ** 7),
         "'%d'::xid8" % ((1 << 32) + cur_xid), "pg_current_xact_id()", "'%d'::xid8" % max(cur_xid - 2, 3)]
CSTRINGS = ["NULL::cstring", "''::cstring", "'visible'::cstring", "'1 visible'::cstring", "'1 invisible'::cstring",
            "' 1  visible'::cstring", "'-1 visible'::cstring", "'18446744073709551615 visible'::cstring",
            "'18446744073709551616 visible'::cstring", "'99999999999999999999999 invisible'::cstring",
            "'1 visibleX'::cstring", "'1\tvisible'::cstring", "'0x10 visible'::cstring", "'1 '::cstring",
            "repeat('9', 10000)::cstring", "'1 visible '::cstring", "'+1 visible'::cstring"]
WRITERS = ["NULL::stream_ext_internal.writer_xact", "'1 visible'::stream_ext_internal.writer_xact",
           "'0 invisible'::stream_ext_internal.writer_xact", "pg_current_xact_id()::stream_ext_internal.writer_xact",
           "'18446744073709551615'::xid8::stream_ext_internal.writer_xact", "'0'::xid8::stream_ext_internal.writer_xact",
           "'%d'::xid8::stream_ext_internal.writer_xact" % (cur_xid + 10 ** 7),
           "'2'::xid8::stream_ext_internal.writer_xact", "'%d'::xid8::stream_ext_internal.writer_xact" % cur_xid]

REGCLASSES = ['NULL::regclass', '0::oid::regclass', '1::oid::regclass', '4294967295::oid::regclass'] + \
    ["%s::regclass" % lit(r) for r in rels]
AGG_SIGS = [a[0] for a in aggs]
REGPROCS = ['NULL::regprocedure', '0::oid::regprocedure', '1::oid::regprocedure', '4294967295::oid::regprocedure',
            "'pg_class'::regclass::oid::regprocedure", "'s'::regclass::oid::regprocedure"] + \
    ["%s::regprocedure" % lit(s) for s in AGG_SIGS] + ["%s::regprocedure" % lit(s) for s in nonaggs]

ANY_POOL = [
    'NULL::int8', '0::int8', '1::int8', '-1::int8', '9223372036854775807::int8', '1::int4', '2147483647::int4',
    '1::int2', '1.5::numeric', "'NaN'::numeric", "'1e-1000'::numeric", '0.5::float8', "'NaN'::float8",
    "'-Infinity'::float4", "'x'::text", "''::text", 'NULL::text', "'x'::varchar(3)", "'x'::name", "'x'::\"char\"",
    "'\\x'::bytea", "'\\x00'::bytea", "'\\xdeadbeef'::bytea", 'NULL::bytea', "'{1,2}'::int8[]", "'{7,70}'::int8[]",
    "'{}'::int8[]", "'{NULL,1}'::int8[]", "'{{1,2},{3,4}}'::int8[]", "'[5:6]={1,2}'::int8[]",
    "'{9223372036854775807,9223372036854775807}'::int8[]", "'{2,3,0.5}'::float8[]", "'{3,60,1200}'::float8[]",
    "'{0,0,0}'::float8[]", "'{-1,1,1}'::float8[]", "'{NaN,1,1}'::float8[]", "'{1,2,3,4,5,6}'::float8[]",
    "'{}'::float8[]", "'{1,2,3}'::int4[]", "'{{1}}'::int4[]", "'{\"1 day\",2}'::interval[]", "'{}'::interval[]",
    "'1 day'::interval", "now()", "'2024-01-01'::timestamp", "'infinity'::timestamptz", "'2024-01-01'::date",
    "'[1,5)'::int4range", "'empty'::int4range", "'{[1,2),[5,6)}'::int4multirange", 'true', 'NULL::boolean',
    "'{\"a\": 1}'::jsonb", "ROW(1, 'a')", "ROW(1, 'a')::comp", "'sad'::mood", '5::posint', "'1.2.3.4'::inet",
    "'(0,1)'::tid", "'1 visible'::stream_ext_internal.writer_xact", '1::oid', "'count()'::regprocedure",
    "'s'::regclass", "'1'::xid8", "'1'::xid", "'0/0'::pg_lsn", "'$1'::money", "'a b'::tsvector",
    "'00000000-0000-0000-0000-000000000000'::uuid", "'<a/>'::xml", "B'101'", "'(1,2)'::point",
    "array_fill(1::int8, ARRAY[100000])", "repeat('z', 300000)::text", "'{}'::int8[][]",
    "(SELECT array_agg(g) FROM generate_series(1, 50000) g)",
]


def any_value():
    r = R.random()
    if r < 0.2 and real_bytea:
        return blit(mutate(hexbytes(pick(real_bytea))) if R.random() < 0.6 else hexbytes(pick(real_bytea)))
    if r < 0.3:
        return blit(crafted_inputs()[0])
    return pick(ANY_POOL)


def state_value(typ, vals):
    """A state of type typ: a real one, mutated, or from the pool."""
    r = R.random()
    real = [v for v in vals if v is not None]
    if typ == 'bytea':
        if r < 0.15 or not real:
            return pick(['NULL::bytea', "'\\x'::bytea", "'\\x00'::bytea", blit(R.randbytes(R.randint(1, 80)))])
        v = pick(real)
        m = re.match(r"'(\\x[0-9a-f]*)'::bytea", v)
        if not m or r < 0.3:
            return v
        return blit(mutate(hexbytes(m.group(1))))
    if r < 0.5 and real:
        return pick(real)
    if r < 0.6:
        return 'NULL::' + typ
    same = [p for p in ANY_POOL if p.endswith('::' + typ)]
    extra = {
        'bigint[]': ["'{1,2}'::int8[]", "'{}'::int8[]", "'{NULL,1}'::int8[]", "'{{1,2}}'::int8[]",
                     "'[0:1]={5,6}'::int8[]", "'{-1,0}'::int8[]", "'{0,0}'::int8[]", "'{1,2,3}'::int8[]",
                     "'{9223372036854775807,9223372036854775807}'::int8[]"],
        'double precision[]': ["'{3,60,1200}'::float8[]", "'{0,0,0}'::float8[]", "'{-1,1,1}'::float8[]",
                               "'{NaN,1,1}'::float8[]", "'{1,2}'::float8[]", "'{1,2,3,4,5,6}'::float8[]",
                               "'{0,1,2,3,4,5}'::float8[]", "'{}'::float8[]", "'{NULL,1,2}'::float8[]",
                               "'{Infinity,-Infinity,NaN}'::float8[]", "'[2:4]={1,2,3}'::float8[]"],
        'interval[]': ["'{\"1 day\",\"2 seconds\"}'::interval[]", "'{}'::interval[]", "'{\"1 day\"}'::interval[]",
                       "'{NULL,\"1 day\"}'::interval[]", "'{\"1 day\",\"0\"}'::interval[]",
                       "'{\"178000000 years\",\"1 microsecond\"}'::interval[]"],
        'bigint': ['0::int8', '-1::int8', '9223372036854775807::int8', '(-9223372036854775807 - 1)::int8'],
        'integer': ['0', '-1', '2147483647'],
        'int4range': ["'empty'::int4range", "'(,)'::int4range", "'[1,2)'::int4range"],
        'integer[]': ["'{}'::int4[]", "'{{1}}'::int4[]", "'{NULL}'::int4[]"],
    }.get(typ, [])
    cands = same + extra
    if cands:
        return pick(cands)
    return 'NULL::' + typ


def matching_triple():
    (agg, st, res), vals = pick(sorted(triples.items()))
    return "%s::regprocedure" % lit(agg), state_value(st, vals), st, res


def result_null():
    return pick(['NULL::int8', 'NULL::numeric', 'NULL::float8', 'NULL::text', 'NULL::bytea', 'NULL::int4[]',
                 'NULL::int4range', 'NULL::interval', 'NULL::record', 'NULL::comp', 'NULL::tdigest',
                 'NULL::hll', 'NULL::boolean', '1::int8', "'x'::text"])


# ---------------------------------------------------------------- per-type values
VIEW_QUERIES = ['SELECT count(*) FROM s', 'SELECT k, count(*), sum(v) FROM s GROUP BY k', 'SELECT k, v FROM s',
                'SELECT count(*) FROM s_empty', 'INSERT INTO plain_t VALUES (1)', 'DELETE FROM plain_t', 'VALUES (1)',
                'TABLE s', 'WITH x AS (SELECT 1) SELECT * FROM x', 'SELECT * FROM s FOR UPDATE', 'CREATE TABLE fz_t ()',
                'SELECT count(*) FROM s UNION SELECT 1', 'SELECT k FROM s ORDER BY 1 LIMIT 1', 'EXPLAIN SELECT 1',
                'SELECT count(*) FROM plain_t', 'SELECT 1', 'SELECT count(*) FROM agg_v', 'SELECT * FROM rows_v',
                'SELECT stream_ext.combine(n) FROM agg_v', 'SELECT count(*) FROM s, plain_t WHERE plain_t.a = s.v',
                'SELECT string_agg(DISTINCT k, $$,$$ ORDER BY k) FROM s', 'SELECT percentile_cont(ARRAY[0.1, 0.9]) WITHIN GROUP (ORDER BY v) FROM s',
                'SELECT count(*) FILTER (WHERE v > 0), max(t) FROM s GROUP BY ROLLUP (k)', 'SELECT sum(v) OVER () FROM s',
                'SELECT k, count(*) FROM s GROUP BY k HAVING count(*) > 1', 'SELECT (SELECT 1) FROM s',
                'SELECT count(*) FROM s WHERE v = (SELECT max(a) FROM plain_t)', 'SELECT count(*) FROM ONLY s',
                'SELECT arrival_timestamp FROM s', 'SELECT count(*) FROM s TABLESAMPLE SYSTEM (1)']


def value_of(t, fn):
    if t == 'integer':
        if fn == 'sliding_bound':
            return pick(INTS + ['3', '4', '5', '-2147483648'])
        return pick(INTS)
    if t == 'smallint':
        return pick(SMALLINTS)
    if t == 'double precision':
        if fn == 'inputs_percentile_float8' and R.random() < 0.75:
            return pick(['0::float8', '0.5::float8', '1::float8', '0.99::float8', '0.01::float8',
                         '1e-300::float8', '0.999999999::float8', '0.25::float8'])
        return pick(FLOATS)
    if t == 'boolean':
        return pick(BOOLS)
    if t == 'text':
        if fn == 'create_change_stream' and R.random() < 0.5:
            return "'fz_%d'::text" % R.randrange(10 ** 6)
        return pick(TEXTS)
    if t == 'text[]':
        return pick(TEXTARRS)
    if t == 'interval':
        return pick(INTERVALS)
    if t == 'oid':
        return pick(OIDS)
    if t == 'jsonb':
        return pick(JSONBS)
    if t == 'name':
        return pick(NAMES)
    if t == 'xid':
        return pick(XIDS)
    if t == 'xid8':
        return pick(XID8S)
    if t == 'cstring':
        return pick(CSTRINGS)
    if t == 'stream_ext_internal.writer_xact':
        return pick(WRITERS)
    if t == 'regclass':
        return pick(REGCLASSES)
    if t == 'regprocedure':
        return pick(REGPROCS)
    if t == 'bytea':
        if fn in ('inputs_percentile_float8',) and R.random() < 0.6:
            if float8_sets and R.random() < 0.3:
                v = pick(float8_sets)
                return blit(mutate(hexbytes(v))) if R.random() < 0.7 else lit(v) + '::bytea'
            return blit(float8_set())
        r = R.random()
        if r < 0.35 and inputs_sets:
            v = pick(inputs_sets)
            return blit(mutate(hexbytes(v))) if R.random() < 0.7 else lit(v) + '::bytea'
        if r < 0.7:
            return blit(crafted_inputs()[0])
        return pick(['NULL::bytea', "'\\x'::bytea", "'\\x00'::bytea", blit(R.randbytes(R.randint(1, 64))),
                     blit(struct.pack('<i', MAGIC)), blit(struct.pack('<iiqqq', MAGIC, 1, 0, 0, 0)),
                     blit(mutate(hexbytes(pick(real_bytea)))) if real_bytea else "'\\x01'::bytea"])
    if t in ('anyelement', 'anycompatible', '"any"'):
        return any_value()
    if t == 'internal':
        return 'NULL::internal'
    return 'NULL::' + t


# ---------------------------------------------------------------- calls
KAFKA_SKIP = {
    'kafka_register': 'registers a consumer whose workers connect to the brokers',
    'kafka_consume': 'registers a consumer whose workers connect to the brokers',
    'kafka_register_producer': 'registers a producer whose worker connects to the brokers',
    'kafka_produce': 'registers a producer whose worker connects to the brokers',
}

calls = []    # (function signature, public, sql)


def add(sig, public, sql):
    assert '\n' not in sql, sql
    calls.append((sig, public, sql))


COLDEF_TYPES = INPUT_TYPES + ['varchar(2)', 'numeric(3,1)', 'int2', 'float4', 'writer_xact']


def coldef(types):
    return ', '.join('c%d %s' % (i + 1, t if t != 'writer_xact' else 'stream_ext_internal.writer_xact')
                     for i, t in enumerate(types))


def gen_calls(f):
    oid, sig, nsp, name, kind, retset, variadic, argtypes, rettype, ndefaults, public = f
    q = '%s.%s' % (nsp, name)
    args = argtypes.split(';') if argtypes else []
    retset = retset == 't'
    public = public == 't'
    n = 12 if not args else 120
    hot = {'finalize_state': 800, 'combine_states': 700, 'finalize_agg': 700, 'combine_agg': 350,
           'finalize_agg_parallel_unsafe': 200, 'inputs_rows': 700, 'inputs_count_distinct': 250,
           'inputs_percentile_float8': 600, 'finalize_inputs': 450, 'sliding_bound': 300,
           'writer_xact_in': 60, 'writer_xact_out': 40, 'inputs_agg': 200, 'stream_fdw_validator': 60,
           'create_continuous_view': 80, 'create_change_stream': 40, 'truncate_continuous_view': 20,
           'kafka_check_start': 60, 'count_distinct_union': 300}
    n = hot.get(name, n)
    if 'internal' in args:
        n = 6     # refused at parse time: no SQL expression has type internal
    out = []

    def argv(fn):
        vals = []
        for i, t in enumerate(args):
            vals.append(value_of(t, fn))
        return vals

    for _ in range(n):
        vals = argv(name)
        form = R.random()
        # aggregate-state plumbing: mostly a state of the right type for its aggregate
        if name in ('finalize_state', 'finalize_agg', 'finalize_agg_parallel_unsafe', 'combine_states',
                    'combine_agg') and triples and R.random() < 0.75:
            agg, st, sttype, res = matching_triple()
            if R.random() < 0.1:
                res = result_null()
            else:
                res = 'NULL::' + res
            if name == 'combine_states':
                other = state_value(sttype, [v for (a, t, r), vs in triples.items() if t == sttype for v in vs])
                vals = [agg, st, other if R.random() < 0.8 else 'NULL::' + sttype]
            elif name == 'combine_agg':
                vals = [agg, st]
            else:
                vals = [agg, st, res]
        if name == 'finalize_inputs' and finals and R.random() < 0.7:
            st, query, fagg, res = pick(finals)
            r = R.random()
            if r < 0.3:
                st = blit(mutate(hexbytes(st[1:].split("'")[0]))) if st.startswith("'\\x") else st
            elif r < 0.45:
                b, types = crafted_inputs()
                st = blit(b)
                query = 'SELECT count(*)::int FROM stream_ext_internal.inputs_rows($1, %s) AS t(%s)' % (
                    pick(['true', 'false']), coldef(types))
                res = 'integer'
                fagg = 'count()'
            elif r < 0.55:
                query = pick(['', 'SELECT 1', 'SELECT $1', 'SELECT $2', 'SELECT NULL::int', 'SELECT 1, 2',
                              'SELECT generate_series(1, 3)', 'SELECT 1; SELECT 2', 'INSERT INTO plain_t VALUES (1)',
                              'COPY plain_t TO STDOUT', 'VACUUM', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT x',
                              'SET search_path = nothing', 'LISTEN x', 'NOTIFY x', 'EXPLAIN SELECT 1',
                              'DECLARE c CURSOR FOR SELECT 1', 'SHOW ALL', 'SELECT pg_sleep(30)', 'SELECT ROW(1, 2)',
                              'CALL stream_ext_internal.run_utility()', 'SELECT * FROM s', 'SELECT * FROM agg_v',
                              'SELECT stream_ext_internal.finalize_inputs($1, $q$SELECT count(*)::int FROM stream_ext_internal.inputs_rows($1, true) AS t(c1 int)$q$, $$count()$$, NULL::int)',
                              'SELECT count(*) FROM stream_ext_internal.inputs_rows($1, false) AS t(c1 int)',
                              'CREATE TABLE fz_x ()', 'DO $$BEGIN PERFORM 1; END$$', 'SELECT )', 'SELECT $1::text',
                              "SELECT 'x'::cstring", 'TABLE plain_t', 'VALUES (1), (2)', 'PREPARE p AS SELECT 1',
                              'EXECUTE p', 'SELECT stream_ext.create_continuous_view($$fz_fin$$, $$SELECT count(*) FROM s$$)',
                              'SELECT * FROM stream_ext_internal.inputs_rows($1, false) AS t(c1 int, c2 timestamptz) LIMIT 1'])
                res = pick(['integer', 'bigint', 'text', 'record', 'cstring', 'boolean', 'integer[]'])
            elif r < 0.7:
                # the real query over another column list or aggregate
                query = re.sub(r'AS t\(.*\)$', 'AS t(%s)' % coldef([pick(COLDEF_TYPES) for _ in range(pick([1, 2, 3]))]), query)
                if R.random() < 0.5:
                    query = query.replace('$1, true', '$1, false') if '$1, true' in query else query.replace('$1, false', '$1, true')
            if R.random() < 0.1:
                res = pick(['integer', 'text', 'bigint', 'numeric', 'record'])
            if R.random() < 0.1:
                fagg = pick(['count()', 'max(integer)', 'sum(bigint)', 'string_agg(text,text)'])
            vals = [st, lit(query) + '::text', lit(fagg) + '::regprocedure', 'NULL::' + res]
        if name == 'inputs_rows' and R.random() < 0.8:
            if R.random() < 0.3 and inputs_sets:
                v = pick(inputs_sets)
                b = hexbytes(v)
                if R.random() < 0.6:
                    b = mutate(b)
                natts = struct.unpack_from('<i', b, 4)[0] if len(b) >= 8 else 1
                types = []
                for i in range(max(0, min(natts, 5))):
                    o = struct.unpack_from('<I', b, 32 + 4 * i)[0] if len(b) >= 36 + 4 * i else 23
                    types.append(next((t for t, oo in type_oid.items() if oo == o), pick(COLDEF_TYPES)))
                types = types or ['integer']
            else:
                b, types = crafted_inputs()
            if R.random() < 0.15:
                types = [pick(COLDEF_TYPES) for _ in range(pick([0, 1, 2, 3]))] or ['integer']
            c = pick(['count(*)', '*', 'count(*)', 'sum(length(t::text))'])
            out.append('SELECT %s FROM %s(%s, %s) AS t(%s)' % (c, q, blit(b), pick(BOOLS), coldef(types)))
            continue
        if name == 'inputs_percentile_float8' and R.random() < 0.15:
            # through a table column stored out of line (the sliced read)
            out.append('SELECT id, %s(b, %s, %s) FROM ext_states WHERE id %% 7 = %d' % (
                q, pick(FLOATS[1:]), pick(['true', 'false']), R.randrange(7)))
            continue
        if name == 'count_distinct_union' and R.random() < 0.5:
            # stored sets (the base is kept by its TOAST pointer) and inline ones
            lo = R.randrange(200)
            other = ', '.join(value_of('bytea', name) for _ in range(R.randint(0, 3)))
            src = 'SELECT b FROM ext_states WHERE id BETWEEN %d AND %d' % (lo, lo + R.randint(0, 4))
            if other:
                src += ' UNION ALL SELECT unnest(ARRAY[%s])' % other
            out.append('SELECT %s(b) FROM (%s) x' % (q, src))
            continue
        if name == 'inputs_count_distinct' and R.random() < 0.1:
            out.append('SELECT %s(b) FROM ext_states WHERE id %% 5 = %d' % (q, R.randrange(5)))
            continue
        if name == 'create_continuous_view' and R.random() < 0.7:
            vals[0] = "'fz_%d'::text" % R.randrange(10 ** 6)
            vals[1] = lit(pick(VIEW_QUERIES)) + '::text'
        if name == 'sliding_bound' and R.random() < 0.5:
            step = pick(['1 second', '1 minute', '1 microsecond', '1 day', '2 seconds', '7 seconds'])
            vals[1] = "'%s'::interval" % step
            vals[2] = pick(["'1 minute'::interval", "'1 hour'::interval", "'1 second'::interval",
                            "'100000000 days'::interval", "'106751991 days'::interval"])
            vals[3] = pick(["'0'::interval", "'4 seconds'::interval", "'%s'::interval" % step, "'1 day'::interval"])
            vals[4] = pick(["'0'::interval", "'16 seconds'::interval", "'4 seconds'::interval", "'2 days'::interval"])
            vals[5] = pick(['NULL::timestamptz', 'NULL::timestamp', 'NULL::date', "'x'::text", 'NULL::timestamptz'])
        if variadic == 't' and args == ['"any"']:
            k = pick([1, 1, 2, 3, 5, 99])
            vals = [any_value() for _ in range(k)]
            if R.random() < 0.1:
                vals = ['VARIADIC ' + pick(["ARRAY[1,2]", "'{}'::int[]", "NULL::int[]", "ARRAY['a','b']"])]
        # omit defaulted trailing arguments sometimes
        if ndefaults and int(ndefaults) and R.random() < 0.3:
            vals = vals[:len(vals) - R.randint(1, int(ndefaults))]
        a = ', '.join(vals)
        if kind == 'p':
            out.append('CALL %s(%s)' % (q, a))
        elif kind == 'a':
            if form < 0.3:
                out.append('SELECT %s(%s)' % (q, a))
            elif form < 0.45:
                out.append('SELECT %s(%s) FROM generate_series(1, %d) g' % (q, a, pick([2, 3, 100])))
            elif form < 0.55:
                out.append('SELECT g %% 2, %s(%s) FROM generate_series(1, 5) g GROUP BY 1' % (q, a))
            elif form < 0.65:
                out.append('SELECT %s(%s) OVER (ORDER BY g %s) FROM generate_series(1, 4) g' % (
                    q, a, pick(['', 'ROWS BETWEEN 1 PRECEDING AND CURRENT ROW', 'ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING'])))
            elif form < 0.72:
                out.append('SELECT %s(%s) FILTER (WHERE false)' % (q, a))
            elif form < 0.78:
                out.append('SELECT %s(%s) FROM plain_t WHERE false' % (q, a))
            elif form < 0.85:
                out.append('SELECT %s(DISTINCT %s)' % (q, a))
            else:
                # a column whose values differ from row to row
                rows = [argv(name) for _ in range(3)]
                if name in ('finalize_agg', 'combine_agg', 'finalize_agg_parallel_unsafe') and triples:
                    agg, st, sttype, res = matching_triple()
                    cands = [state_value(sttype, triples[(agg[1:-len("'::regprocedure")].replace("''", "'"), sttype, res)])
                             for _ in range(3)]
                    rows = [[agg, c] + (['NULL::' + res] if name != 'combine_agg' else []) for c in cands]
                    if R.random() < 0.2:
                        rows[1][0] = pick(REGPROCS)
                ncol = len(rows[0])
                vs = ', '.join('(%s)' % ', '.join(r) for r in rows)
                cols = ', '.join('a%d' % i for i in range(ncol))
                out.append('SELECT %s(%s) FROM (VALUES %s) v(%s)' % (q, ', '.join('v.a%d' % i for i in range(ncol)), vs, cols))
        elif retset:
            out.append('SELECT * FROM %s(%s)' % (q, a))
        else:
            if form < 0.75:
                out.append('SELECT %s(%s)' % (q, a))
            elif form < 0.9:
                out.append('SELECT %s(%s) FROM generate_series(1, 3) g' % (q, a))
            else:
                rows = [argv(name) for _ in range(3)]
                if name in ('finalize_state', 'combine_states') and triples:
                    agg, st, sttype, res = matching_triple()
                    rows = [[agg, state_value(sttype, []), state_value(sttype, []) if name == 'combine_states' else 'NULL::' + res]
                            for _ in range(3)]
                    if R.random() < 0.3:
                        rows[2][0] = pick(REGPROCS)
                if not rows[0]:
                    out.append('SELECT %s() FROM generate_series(1, 3) g' % q)
                else:
                    ncol = len(rows[0])
                    vs = ', '.join('(%s)' % ', '.join(r) for r in rows)
                    cols = ', '.join('a%d' % i for i in range(ncol))
                    out.append('SELECT %s(%s) FROM (VALUES %s) v(%s)' % (q, ', '.join('v.a%d' % i for i in range(ncol)), vs, cols))
    return out


plan = []
skipped = []
for f in FUNCS:
    name = f[3]
    if name in KAFKA_SKIP:
        skipped.append((f[1], KAFKA_SKIP[name]))
        continue
    stmts = gen_calls(f)
    plan.append((f[1], len(stmts)))
    for s in stmts:
        add(f[1], f[10] == 't', s)

# trigger functions fired as triggers on a table of ours (and called bare above)
for f in FUNCS:
    if f[8] == 'trigger':
        q = '%s.%s' % (f[2], f[3])
        for when in ('BEFORE INSERT', 'AFTER INSERT', 'BEFORE UPDATE'):
            # one line, so that the shuffle keeps the transaction together
            add(f[1], False, 'BEGIN; CREATE TRIGGER fz_trg %s ON plain_t FOR EACH ROW EXECUTE FUNCTION %s(); '
                'INSERT INTO plain_t VALUES (1); UPDATE plain_t SET a = 2; ROLLBACK' % (when, q))

# interleave the functions (a crash should not hide behind one function's
# calls), with the session settings that change what functions see
R.shuffle(calls)
SETTINGS = ["SET stream_ext.read_time = 'infinity'", "SET stream_ext.read_time = '-infinity'",
            "SET stream_ext.read_time = '2024-01-01 00:00:10+00'", "SET stream_ext.read_time = '294276-12-31 23:59:59+00'",
            "SET stream_ext.read_time = '4713-01-01 00:00:00+00 BC'", "RESET stream_ext.read_time",
            "SET TimeZone = 'Pacific/Kiritimati'", "SET TimeZone = 'UTC'", "SET TimeZone = '-15:59'",
            "SET client_encoding = 'LATIN1'", "SET client_encoding = 'SQL_ASCII'", "RESET client_encoding",
            "SET extra_float_digits = 3", "SET DateStyle = 'SQL, DMY'", "RESET DateStyle",
            "SET search_path = stream_ext_internal, pg_catalog", "RESET search_path"]
final = []
for c in calls:
    if R.random() < 0.01:
        final.append(('(setting)', True, pick(SETTINGS)))
    final.append(c)

PLUMBING = {'finalize_state', 'finalize_agg', 'finalize_agg_parallel_unsafe', 'combine_states', 'combine_agg'}


def site(sig, sql):
    """What a crash of this call is counted against: the function, or for the
    aggregate-state plumbing the extension of the aggregate it is given."""
    name = sig.split('(')[0].split('.')[-1]
    if name in PLUMBING:
        m = re.search(r"'((?:[^']|'')+)'::regprocedure", sql)
        agg = m.group(1).replace("''", "'") if m else ''
        ext = agg_ext.get(agg, 'core')
        if ext == 'core':
            return 'aggregate states of %s' % (agg or 'an aggregate')
        return 'aggregate states of %s aggregates' % ext
    return sig


os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, 'calls_su.sql'), 'w', encoding='utf-8') as su, \
        open(os.path.join(OUT, 'calls_su.keys'), 'w', encoding='utf-8') as suk, \
        open(os.path.join(OUT, 'calls_user.sql'), 'w', encoding='utf-8') as us, \
        open(os.path.join(OUT, 'calls_user.keys'), 'w', encoding='utf-8') as usk:
    nu = 0
    for i, (sig, public, sql) in enumerate(final, 1):
        su.write('/* #%d */ %s;\n' % (i, sql))
        suk.write('%d\t%s\n' % (i, site(sig, sql)))
        if public and R.random() < 0.5:
            nu += 1
            us.write('/* #u%d */ %s;\n' % (nu, sql))
            usk.write('u%d\t%s\n' % (nu, site(sig, sql)))
with open(os.path.join(OUT, 'plan.tsv'), 'w', encoding='utf-8') as p:
    for sig, n in plan:
        p.write('%s\t%d\n' % (sig, n))
    for sig, why in skipped:
        p.write('%s\tskipped: %s\n' % (sig, why))

# crafted values in a table whose column is stored out of line, uncompressed
with open(os.path.join(OUT, 'setup.sql'), 'w', encoding='utf-8') as s:
    s.write('CREATE TABLE ext_states (id int, b bytea);\n')
    s.write('ALTER TABLE ext_states ALTER COLUMN b SET STORAGE EXTERNAL;\n')
    for i in range(140):
        if i % 7 == 0 and float8_sets:
            b = hexbytes(pick(float8_sets))
        else:
            b = float8_set(n=pick([90, 100, 150, 300, 1000]), lie=(i % 3 != 0))
            if i % 11 == 0:
                b = mutate(b)
        s.write('INSERT INTO ext_states VALUES (%d, %s);\n' % (i, blit(b)))
    for i in range(140, 160):
        b, types = crafted_inputs()
        s.write('INSERT INTO ext_states VALUES (%d, %s);\n' % (i, blit(b)))
    for i in range(160, 220):
        s.write('INSERT INTO ext_states VALUES (%d, %s);\n' % (
            i, blit(fixed_set(n=pick([5, 100, 300, 1000, 3000]), lie=(i % 3 != 0)))))
print(len(final), nu)
PY
read -r n_su n_user < "$SCRATCH/gen.out"
n_funcs=$(grep -vc 'skipped:' "$SCRATCH/gen/plan.tsv")
say "generated $n_su calls of $n_funcs functions as superuser and $n_user as fuzz_user (seed $SEED); skipped:"
grep 'skipped:' "$SCRATCH/gen/plan.tsv" | sed 's/^/    /'
run_sql -f "$SCRATCH/gen/setup.sql"

# Calls that crashed the server or ignored statement_timeout when this test
# was written (site, then the call; as PUBLIC may make them): each pass makes
# them first, whatever the seed.
cat > "$SCRATCH/known.tsv" <<'KNOWN'
stream_ext_internal.sliding_bound(integer,interval,interval,interval,interval,anyelement)	SELECT stream_ext_internal.sliding_bound(0, NULL::interval, '1 minute', '0', '0', NULL::timestamptz)
aggregate states of tdigest aggregates	SELECT stream_ext_internal.finalize_agg('tdigest(double precision,integer)'::regprocedure, '\x07000000000000000000000064000000ffffff7f00000000'::bytea, NULL::tdigest)
aggregate states of hll aggregates	SELECT stream_ext_internal.finalize_agg('hll_add_agg(hll_hashval)'::regprocedure, '\x050000000000000000080000000000000b00000000000000fbffffffffffffff0100000000000000020000000000000002000000000000003ba1d27b7fde4848fb1d467eb669277f'::bytea, NULL::hll)
aggregate states of stddev(numeric)	SELECT stream_ext_internal.finalize_agg('stddev(numeric)'::regprocedure, '\x0000000000000017000000010000000000000000000000001b410000000200270f01000000000000000001891a4f000000000000000000000017000000000000000000000000000000000000000000000000'::bytea, NULL::numeric)
stream_ext_internal.inputs_rows(bytea,boolean)	SELECT count(*) FROM stream_ext_internal.inputs_rows('\x3249455301000000010000000000000000000000000100000000000000000000170000000000000000010000080000000400000000000007'::bytea, false) AS t(c1 int)
KNOWN
for pass in su user; do
	prefix=k; [ $pass = user ] && prefix=uk
	awk -F'\t' -v p=$prefix '{ printf "/* #%s%d */ %s;\n", p, NR, $2 }' "$SCRATCH/known.tsv" |
		cat - "$SCRATCH/gen/calls_$pass.sql" > "$SCRATCH/gen/calls.tmp"
	mv "$SCRATCH/gen/calls.tmp" "$SCRATCH/gen/calls_$pass.sql"
	awk -F'\t' -v p=$prefix '{ printf "%s%d\t%s\n", p, NR, $1 }' "$SCRATCH/known.tsv" |
		cat - "$SCRATCH/gen/calls_$pass.keys" > "$SCRATCH/gen/keys.tmp"
	mv "$SCRATCH/gen/keys.tmp" "$SCRATCH/gen/calls_$pass.keys"
done
n_known=$(wc -l < "$SCRATCH/known.tsv")
n_su=$((n_su + n_known))
n_user=$((n_user + n_known))
q "GRANT SELECT ON ext_states, plain_t TO fuzz_user" >/dev/null

# ------------------------------------------------------------------ the calls
crashes=()
CRASH_RE='terminated by signal|server process .* was terminated|was terminated by exception|exited with exit code [^01]|PANIC:|TRAP:'
bt_seen=" "
# backtrace: print the backtrace of the core a crash left (once per crash
# site, for the first few), then remove the core
backtrace() {
	local core bt site
	core=$(find "$SRV/data" -maxdepth 1 -name 'core*' -type f 2>/dev/null | head -1)
	[ -n "$core" ] || return 0
	if command -v gdb >/dev/null && [ $(echo $bt_seen | wc -w) -lt 6 ]; then
		bt=$(timeout 60 gdb -q -batch -ex bt "$PGBIN/postgres" "$core" 2>/dev/null | grep '^#' | uniq | head -12 || true)
		site=$(echo "$bt" | grep -o ' in [a-z_A-Z0-9]*' | head -4 | tr -d ' ' | tr '\n' '/' || true)
		if [ -n "$bt" ] && [[ "$bt_seen" != *" $site "* ]]; then
			bt_seen+="$site "
			echo "    backtrace:"
			echo "$bt" | cut -c1-200 | sed 's/^/      /'
		fi
	fi
	rm -f "$core"
}
# watchdog: a call still running HANG_AFTER after it started ignores
# statement_timeout; if it still runs once its backtrace is taken, it cannot
# be cancelled (nor terminated): note it and kill -9 its backend, which
# restarts the server as a crash would
watchdog() {
	local pid start query
	while :; do
		sleep 0.5
		psql -X -At -F $'\t' -c "SELECT pid, query_start, query FROM pg_stat_activity
		                            WHERE application_name = 'fuzz_calls' AND state = 'active'
		                              AND clock_timestamp() - query_start > interval '$HANG_AFTER'" 2>/dev/null |
		while IFS=$'\t' read -r pid start query; do
			[ -n "$pid" ] || continue
			if command -v gdb >/dev/null; then
				timeout 30 gdb -q -batch -p "$pid" -ex bt 2>/dev/null | grep '^#' | head -12 > "$SCRATCH/hang.$pid.bt" || true
			fi
			[ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active'
			                        AND query_start = '$start'" 2>/dev/null)" = 1 ] || continue
			printf '%s\t%s\n' "$pid" "$query" >> "$SCRATCH/hangs.tsv"
			kill -9 "$pid" 2>/dev/null || true
		done || true
	done
}
touch "$SCRATCH/hangs.tsv"
hangs=()

# run_calls FILE ROLE MAX: each line of FILE (a statement, numbered /* #N */)
# in one session of ROLE.  When the connection is lost, note the statement
# the server log names (crashed, or killed by the watchdog), wait for the
# server to recover and go on with the next.  Once MAX calls of a site
# (FILE's .keys: a function, or for the aggregate state functions the
# aggregate, or the extension of it) failed so, its further calls are left
# out: they would only add crash recoveries.
run_calls() {
	local file=$1 role=$2 max=$3 keys="${1%.sql}.keys" todo="$SCRATCH/todo.sql" rc out off line stmt num key
	local failed deadline pid skip="" n=0
	local -A site_failures=()
	cp "$file" "$todo"
	while [ -s "$todo" ]; do
		n=$((n + 1))
		out="$SCRATCH/$(basename "$file" .sql).$n.out"
		off=$(log_offset)
		rc=0
		PGOPTIONS="-c statement_timeout=$STATEMENT_TIMEOUT -c client_min_messages=error" PGAPPNAME=fuzz_calls \
			timeout 300 psql -X -q -U "$role" -o /dev/null -f "$todo" >"$out" 2>&1 || rc=$?
		[ $rc -eq 0 ] && return 0
		[ $rc -ne 124 ] || fail "psql timed out running $file"
		line=$(grep -o "$todo:[0-9]*: error: connection to server was lost" "$out" | tail -1 | sed 's/.*sql:\([0-9]*\):.*/\1/')
		[ -n "$line" ] || fail "psql failed (exit $rc) running $file: $(tail -5 "$out")"
		stmt=$(sed -n "${line}p" "$todo")
		num=$(echo "$stmt" | sed -n 's|^/\* #\([a-z]*[0-9]*\) \*/.*|\1|p')
		key=$(awk -F'\t' -v n="$num" '$1 == n { print $2 }' "$keys")
		key=${key:-unknown}
		# the postmaster notes the crash once the process is gone (and its core written)
		deadline=$((SECONDS + 120))
		until log_since "$off" | grep -E "$CRASH_RE" >/dev/null; do
			[ $SECONDS -lt $deadline ] || fail "psql lost its connection at $stmt, and no crash was logged"
			sleep 0.1
		done
		wait_until 60 "the server accepts connections again" "SELECT true"
		failed=$(log_since "$off" | grep -A1 -E "$CRASH_RE" || true)
		pid=$(echo "$failed" | grep -o 'PID [0-9]*' | head -1 | cut -d' ' -f2 || true)
		if [ -n "$pid" ] && grep -qx "$pid" < <(cut -f1 "$SCRATCH/hangs.tsv"); then
			say "HANG (ignored statement_timeout; killed) in $key: $(echo "$stmt" | cut -c1-300)"
			if [ -s "$SCRATCH/hang.$pid.bt" ]; then
				echo "    backtrace while hanging:"
				cut -c1-200 "$SCRATCH/hang.$pid.bt" | sed 's/^/      /'
			fi
			hangs+=("$stmt")
			rm -f "$SRV"/data/core*
		else
			say "CRASH in $key: $(echo "$stmt" | cut -c1-300)"
			echo "$failed" | grep -v '^--' | sed 's/^/    /' | cut -c1-400
			backtrace
			crashes+=("$stmt")
		fi
		site_failures[$key]=$((${site_failures[$key]:-0} + 1))
		if [ "${site_failures[$key]}" -ge "$max" ]; then
			skip+="$key"$'\n'
			say "  (the remaining calls of $key are left out)"
		fi
		# the statements after it, but those of the sites left out
		tail -n +$((line + 1)) "$todo" |
			awk -F'\t' -v skip="$skip" '
				BEGIN { n = split(skip, a, "\n"); for (i = 1; i <= n; i++) if (a[i] != "") s[a[i]] = 1 }
				FNR == NR { site[$1] = $2; next }
				{ match($0, /^\/\* #[a-z]*[0-9]+ \*\//); if (!(site[substr($0, 5, RLENGTH - 7)] in s)) print }
			' "$keys" - > "$todo.next"
		left_out=$((left_out + $(tail -n +$((line + 1)) "$todo" | wc -l) - $(wc -l < "$todo.next")))
		mv "$todo.next" "$todo"
	done
}
left_out=0

watchdog &
_bg_pids+=($!)
t1=$SECONDS
run_calls "$SCRATCH/gen/calls_su.sql" postgres "$MAX_PER_SITE"
say "superuser calls done ($((SECONDS - t1))s)"
t1=$SECONDS
# (a site failing here after the known calls failed adds nothing)
run_calls "$SCRATCH/gen/calls_user.sql" fuzz_user 1
say "fuzz_user calls done ($((SECONDS - t1))s)"
kill "${_bg_pids[@]}" 2>/dev/null || true
_bg_pids=()

# ------------------------------------------------------------------ checks
failures=()
[ "$(head -1 "$SRV/data/postmaster.pid")" = "$postmaster" ] || failures+=("the postmaster changed")
terminated=$(grep -cE "$CRASH_RE" "$STREAM_EXT_SERVER_LOG" || true)
if [ "$terminated" -gt 0 ] || [ ${#crashes[@]} -gt 0 ] || [ ${#hangs[@]} -gt 0 ]; then
	failures+=("${#crashes[@]} calls crashed the server and ${#hangs[@]} ignored statement_timeout (killed); the server log notes $terminated terminated processes")
else
	say "ok: no server process was terminated; the postmaster is the one that started"
fi

# privileges: what the role may execute, against trust.sql's expectation
expected=$(sed -n '/AS public_executes$/,/^([0-9]* rows)$/p' "$TEST_DIR/../expected/trust.out" |
	grep -E '^ stream_ext(_internal)?\.' | awk -F'|' '{gsub(/ /, "", $1); gsub(/ /, "", $2); print $1 "|" $2}')
[ -n "$expected" ] || fail "no expectation found in expected/trust.out"
actual=$(q "SELECT replace(p.oid::regprocedure::text, ' ', '') || '|' ||
                   CASE WHEN has_function_privilege('fuzz_user', p.oid, 'EXECUTE') THEN 't' ELSE 'f' END
              FROM pg_proc p
             WHERE p.pronamespace IN ('stream_ext'::regnamespace, 'stream_ext_internal'::regnamespace)
               AND p.proname NOT LIKE 'kafka%'
             ORDER BY p.oid::regprocedure::text COLLATE \"C\"")
unexpected=$(comm -13 <(echo "$expected" | grep '|t$' | sort) <(echo "$actual" | grep '|t$' | sort) | grep 'stream_ext_internal\.' || true)
if [ -n "$unexpected" ]; then
	failures+=("fuzz_user may execute internal functions trust.out does not list as PUBLIC's: $(echo $unexpected)")
fi
differ=$(diff <(echo "$expected" | sort) <(echo "$actual" | sort) || true)
[ -z "$differ" ] || say "note: the functions and privileges differ from expected/trust.out: $(echo $differ)"
kafka_reserved=$(q "SELECT string_agg(p.oid::regprocedure::text, ', ')
                      FROM pg_proc p
                     WHERE p.pronamespace = 'stream_ext_internal'::regnamespace
                       AND p.proname IN ('kafka_register', 'kafka_control', 'kafka_register_producer',
                                         'kafka_control_producer', 'kafka_stop_workers', 'kafka_ensure_supervisor')
                       AND has_function_privilege('fuzz_user', p.oid, 'EXECUTE')")
[ -z "$kafka_reserved" ] || failures+=("fuzz_user may execute Kafka functions reserved to stream_ext_kafka: $kafka_reserved")
[ -n "$unexpected$kafka_reserved" ] || say "ok: fuzz_user executes no internal function but those trust.out lists as PUBLIC's"

if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] FAIL: $f" >&2; done
	for c in "${crashes[@]}"; do echo "[$TEST_NAME] crashing call: $c" >&2; done
	for c in "${hangs[@]}"; do echo "[$TEST_NAME] call ignoring statement_timeout: $c" >&2; done
	[ "$left_out" -eq 0 ] || echo "[$TEST_NAME] ($left_out calls of the failing sites were left out)" >&2
	exit 1
fi
say "PASS: $n_su calls of $n_funcs functions as superuser, $n_user as fuzz_user, no crash ($((SECONDS - t0))s)"
