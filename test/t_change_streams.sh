#!/usr/bin/env bash
# Change streams (stream_ext.create_change_stream), replayed against the
# views they come from, in two parts.  For every view, a row-keeping view
# logs its change stream (old, new, arrival_timestamp: one emission, one
# arrival_timestamp), and check_changes() replays the log by row identity
# (the view's group and window), in arrival order:
#   (a) the first event of a row has as old the row at the stream's
#       creation, or NULL if there was none; every later event's old equals (*=) the previous
#       event's new, NULL after a row left; no event is empty (old and new
#       NULL) or a no-op (old *= new); one event per row per emission;
#   (b) once the combiner merged and emitted everything: the last new row of
#       every identity that has one equals (*=) a row of the view, and every
#       row of the view is such a last new row (rows that left have a last
#       new NULL).
# 1. Differential, on the given server (or one of its own): random events
#    (NULL keys, NULL times) by INSERT, COPY, rolled back transactions and
#    rolled back savepoints, bursts of transactions the combiner merges
#    together, into a plain GROUP BY view (count, sum, avg, count DISTINCT,
#    min, max), a HAVING view whose rows leave and come back, a view without
#    GROUP BY, tumbling buckets with ttl, a sliding window, a hopping window
#    and sessions, and a view of rows over 126 bytes; a
#    truncate_continuous_view in the middle.  Checked along
#    the way, at the end, and after the server-wide read_time moved (the
#    sliding window slides, ttl buckets expire; the second move empties them).
# 2. Crash: an own server; the clients of test/lib.sh (crash_client_sql)
#    write batches while the server is killed -9 twice; after each restart
#    (a) holds at once, and (a) and (b) hold once the combiner caught up: no
#    change event lost or doubled.
# 3. Pages: 50,000 groups changed at once are emitted in several emissions,
#    each event once; a reader's view whose code always raises a transient
#    SQLSTATE owns it after a few tries, and the other readers go on; a
#    truncate of the view left open holds up no other view's merges.
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-48} CLIENTS=${CLIENTS:-4} CYCLES=${CYCLES:-3} EVENTS_PER_CYCLE=${EVENTS_PER_CYCLE:-30000}
export PGTZ=UTC
t0=$SECONDS

# the replay checks and the wait for the combiner, in the current database
create_check_functions() {
	run_sql <<'SQL'
-- the rows of a view, named by a value
CREATE FUNCTION stream_ext_count(v regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', v) INTO n;
  RETURN n;
END $$;
-- the changed groups the combiner has not emitted yet, over all views
CREATE FUNCTION pending_changes() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r record; total bigint := 0; n bigint;
BEGIN
  FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
            WHERE s.nspname = 'stream_ext_internal' AND c.relkind = 'r' AND c.relname ~ '^changed_[0-9]+$' LOOP
    EXECUTE format('SELECT count(*) FROM %s', r.t) INTO n;
    total := total + n;
  END LOOP;
  RETURN total;
END $$;
-- the rows of each view when its change stream was made (its first events'
-- old rows), by identity, as text
CREATE TABLE at_creation (view regclass, id text, r text, PRIMARY KEY (view, id));
-- the change stream of view v, with its log view log_<v> and its rows now in
-- at_creation (ident: its rows' identity, an expression of x, the row)
CREATE FUNCTION make_change_stream(v regclass, ident text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM stream_ext.create_change_stream(v, v::text || '_changes');
  EXECUTE format('CREATE VIEW %I WITH (continuous) AS SELECT old, new, arrival_timestamp FROM %I',
                 'log_' || v::text, v::text || '_changes');
  EXECUTE format('INSERT INTO at_creation SELECT %L, (%s)::text, x::text FROM %s x', v, ident, v);
END $$;
-- the log of view v's change stream, by identity (ident: an expression of
-- x, the event's row), in arrival order; chained: its old is the previous
-- event's new (the first's, the row at creation or NULL)
CREATE FUNCTION replay(v regclass, ident text)
RETURNS TABLE (id text, at timestamptz, old text, new text, chained boolean, rn bigint, same_at bigint,
               no_op boolean)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format(
    $f$SELECT id, at, old::text, new::text,
              CASE WHEN rn = 1 THEN old::text IS NOT DISTINCT FROM
                                    (SELECT c.r FROM at_creation c WHERE c.view = %3$L::regclass AND c.id = e2.id)
                   WHEN old::text IS NULL OR prev::text IS NULL THEN old::text IS NULL AND prev::text IS NULL
                   ELSE old OPERATOR(pg_catalog.*=) prev END,
              rn, same_at, coalesce(old OPERATOR(pg_catalog.*=) new, false)
         FROM (SELECT id, at, old, new, lag(new) OVER w AS prev, row_number() OVER w AS rn,
                      count(*) OVER (PARTITION BY id, at) AS same_at
                 FROM (SELECT (%2$s)::text AS id, l.arrival_timestamp AS at, l.old, l.new
                         FROM %1$s l, LATERAL (SELECT coalesce(l.new, l.old) AS x) s) e
               WINDOW w AS (PARTITION BY id ORDER BY at)) e2$f$,
    'log_' || v::text, ident, v::text);
END $$;
-- what is wrong with the change stream of v: one row per problem
CREATE FUNCTION check_changes(v regclass, ident text, settled boolean)
RETURNS TABLE (problem text) LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE replayed ON COMMIT DROP AS SELECT * FROM replay(v, ident);
  RETURN QUERY
    SELECT format('%s: event %s of row %s at %s has old %s, previous new %s', v, r.rn, r.id, r.at, r.old,
                  (SELECT p.new FROM replayed p WHERE p.id = r.id AND p.rn = r.rn - 1))
      FROM replayed r WHERE NOT r.chained
    UNION ALL
    SELECT format('%s: %s events of row %s at %s', v, r.same_at, r.id, r.at) FROM replayed r WHERE r.same_at > 1
    UNION ALL
    SELECT format('%s: empty event of row %s at %s', v, r.id, r.at) FROM replayed r
     WHERE r.old IS NULL AND r.new IS NULL
    UNION ALL
    SELECT format('%s: no-op event of row %s at %s: %s', v, r.id, r.at, r.new) FROM replayed r WHERE r.no_op;
  DROP TABLE replayed;
  IF settled THEN
    -- the last new row of each identity, as the log has it, against the view
    RETURN QUERY EXECUTE format(
      $f$WITH last AS (SELECT DISTINCT ON (id) id, new
                         FROM (SELECT (%3$s)::text AS id, l.arrival_timestamp AS at, l.new
                                 FROM %2$s l, LATERAL (SELECT coalesce(l.new, l.old) AS x) s
                               UNION ALL
                               SELECT c.id, '-infinity', c.r::%1$s FROM at_creation c
                                WHERE c.view = %1$L::regclass) e
                        ORDER BY id, at DESC)
         SELECT format('%%s: row %%s of the view is no last new row (that of its identity: %%s)', %1$L, v::text,
                       (SELECT l.new::text FROM last l WHERE l.id = (SELECT (%3$s)::text FROM (SELECT v AS x) s)))
           FROM %1$s v
          WHERE NOT EXISTS (SELECT 1 FROM last l WHERE l.new OPERATOR(pg_catalog.*=) v)
         UNION ALL
         SELECT format('%%s: last new row %%s of %%s is not in the view', %1$L, l.new::text, l.id)
           FROM last l
          WHERE l.new::text IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM %1$s v WHERE l.new OPERATOR(pg_catalog.*=) v)$f$,
      v::text, 'log_' || v::text, ident);
  END IF;
END $$;
SQL
}

# settle TIMEOUT WHAT: wait until the combiner merged every delta and emitted
# every noted change
settle() {
	wait_until "$1" "$2" "SELECT pending_deltas() = 0 AND pending_changes() = 0"
}

# check LABEL SETTLED [VIEW ...]: check_changes of every case (or the given
# views); failures are collected
check() {
	local label=$1 settled=$2 bad views
	shift 2
	views=$(printf "'%s'," "$@")
	bad=$(q "SELECT string_agg(p, E'\n') FROM (SELECT p FROM cases c, check_changes(c.view, c.ident, $settled) p
	           WHERE ($# = 0 OR c.view::text IN (${views%,})) LIMIT 12) x")
	if [ -n "$bad" ]; then
		echo "$bad" | sed "s/^/[$TEST_NAME]   /"
		failures+=("$label")
		say "FAILED: $label"
		return 0
	fi
	say "ok: $label: $(q "SELECT string_agg(format('%s %s/%s', view, (SELECT count(*) FROM replay(view, ident)),
	                               stream_ext_count(view)), ', ' ORDER BY view) FROM cases
	                       WHERE ($# = 0 OR view::text IN (${views%,}))") (events/view rows)"
}
failures=()

###########################################################################
say "part 1: random views' change streams replayed"
use_server
fresh_db t_change_streams
create_pending_deltas
create_check_functions
T0='2052-01-01 12:00:00+00'
set_server_setting stream_ext.read_time "2052-01-01 13:30:00+00"
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (k1 text, k2 int, v int, u int, ts timestamptz) SERVER stream_ext;
CREATE VIEW c_plain WITH (continuous) AS
  SELECT k1, k2, count(*), sum(v), avg(v), count(DISTINCT u) AS users, min(v), max(v)
    FROM ev GROUP BY k1, k2;
CREATE VIEW c_having WITH (continuous) AS
  SELECT k1, count(*) AS n, sum(v) FROM ev GROUP BY k1 HAVING count(*) % 3 <> 0;
CREATE VIEW c_all WITH (continuous) AS
  SELECT count(*), sum(v), avg(v) FROM ev;
CREATE VIEW c_tumble WITH (continuous, ttl = '1 hour', ttl_column = 'bucket') AS
  SELECT date_bin('10 minutes', ts, '2000-01-01') AS bucket, k1, count(*), sum(v) FROM ev
   GROUP BY bucket, k1;
CREATE VIEW c_slide WITH (continuous, sliding_window = '20 minutes', step = '1 minute', time_column = 'ts',
                          allowed_lateness = '1 day') AS
  SELECT k1, count(*), max(v), avg(v) FROM ev GROUP BY k1;
SELECT stream_ext.create_continuous_view('c_hop', 'SELECT k1, count(*), sum(v) FROM ev GROUP BY k1',
  ARRAY['time_column=ts', 'hop_size=30 minutes', 'hop_slide=10 minutes', 'allowed_lateness=1 day']);
CREATE VIEW c_session WITH (continuous, session_gap = '4 minutes', time_column = 'ts',
                            allowed_lateness = '1 day') AS
  SELECT k2, count(*), sum(v) FROM ev GROUP BY k2;
-- rows of more than 126 bytes (events of their change stream hold them with
-- 4-byte headers, after alignment padding)
CREATE VIEW c_wide WITH (continuous) AS
  SELECT k1, count(*), max(lpad(v::text, 130 + u, k1)) AS widest FROM ev GROUP BY k1;
-- events before the change streams exist: their rows are the starting point
INSERT INTO ev SELECT 'k' || g % 3, g % 2, g, g, '2052-01-01 13:00:00+00'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 20) g;
-- each view's change stream and its log; a row's identity
CREATE TABLE cases (view regclass PRIMARY KEY, ident text);
INSERT INTO cases VALUES
  ('c_plain', 'ROW((x).k1, (x).k2)'), ('c_having', 'ROW((x).k1)'), ('c_all', 'ROW()'),
  ('c_tumble', 'ROW((x).bucket, (x).k1)'), ('c_slide', 'ROW((x).k1)'),
  ('c_hop', 'ROW((x).window_start, (x).k1)'), ('c_session', 'ROW((x).session_start, (x).k2)'),
  ('c_wide', 'ROW((x).k1)');
SELECT make_change_stream(view, ident) FROM cases;
SQL

# round R N: N random events (about 8% NULL keys, 3% NULL times, within the
# 90 minutes before the read time), as a SELECT of ev's columns
events_sql() {
	printf "SELECT CASE WHEN random() < 0.08 THEN NULL ELSE 'k' || (random() * 5)::int END, "
	printf "CASE WHEN random() < 0.08 THEN NULL ELSE (random() * 3)::int END, (random() * 1000)::int - 100, "
	printf "(random() * 40)::int, CASE WHEN random() < 0.03 THEN NULL "
	printf "ELSE '%s'::timestamptz + random() * interval '90 minutes' END FROM generate_series(1, %s)" "$T0" "$2"
}
for r in $(seq 1 "$ROUNDS"); do
	n=$((RANDOM % 150 + 1))
	case $((r % 8)) in
	0) { echo "BEGIN;"; echo "INSERT INTO ev $(events_sql "$r" "$n");"; echo "ROLLBACK;"; } | run_sql ;;
	1) { echo "BEGIN;"; echo "INSERT INTO ev $(events_sql "$r" "$n");"; echo "SAVEPOINT s;"
	     echo "INSERT INTO ev $(events_sql "$r" 40);"; echo "ROLLBACK TO s;"
	     echo "INSERT INTO ev $(events_sql "$r" 3);"; echo "COMMIT;"; } | run_sql ;;
	2) psql -X -q -At -c "COPY ($(events_sql "$r" "$n")) TO STDOUT" > "$SCRATCH/round.copy"
	   run_sql -c "\\copy ev FROM '$SCRATCH/round.copy'" ;;
	3) # a burst of small transactions, merged together or not
	   for i in 1 2 3 4 5; do echo "INSERT INTO ev $(events_sql "$r" 3);"; done | run_sql ;;
	*) echo "INSERT INTO ev $(events_sql "$r" "$n");" | run_sql ;;
	esac
	if [ $((r % 16)) = 0 ]; then
		settle 60 "round $r merged and emitted"
		check "round $r" true
	elif [ $((r % 16)) = 8 ]; then
		check "round $r, while the combiner works" false
	fi
	if [ "$r" = $((ROUNDS / 2)) ]; then
		q "SELECT stream_ext.truncate_continuous_view('c_plain')" >/dev/null
		# emitted before more events come: else a group whose events come
		# back first is emitted changed, not leaving (both are right)
		settle 60 "the truncate emitted"
		say "round $r: truncated c_plain"
	fi
done
settle 60 "all rounds merged and emitted"
check "after $ROUNDS rounds" true
[ "$(q "SELECT count(*) FROM log_c_plain WHERE new IS NULL")" -gt 0 ] || fail "the truncate emitted no leaving rows"
[ "$(q "SELECT count(*) FROM log_c_having WHERE new IS NULL")" -gt 0 ] || fail "c_having: no row left the view"
[ "$(q "SELECT count(*) FROM replay('c_having', 'ROW((x).k1)') WHERE old IS NULL AND rn > 1")" -gt 0 ] ||
	fail "c_having: no row came back"

# time moves: the sliding window slides, tumbling buckets expire (ttl);
# the views that follow time are compared whole every second
for rt in "2052-01-01 13:42:00+00" "2052-01-01 16:00:00+00"; do
	set_server_setting stream_ext.read_time "$rt"
	for v in c_slide c_tumble; do
		if ! try_wait 30 "$v's change stream follows read time $rt" \
			"SELECT NOT EXISTS (SELECT FROM check_changes('$v', (SELECT ident FROM cases WHERE view = '$v'::regclass), true))"; then
			failures+=("$v at read time $rt")
		fi
	done
	settle 60 "merged and emitted at read time $rt"
	check "at read time $rt" true
done
[ "$(q "SELECT stream_ext_count('c_slide') + (SELECT count(*) FROM c_tumble WHERE bucket IS NOT NULL)")" = 0 ] ||
	fail "the sliding view, or the tumbling view's dated buckets, are not empty at the last read time"
[ "$(q "SELECT count(*) FROM replay('c_slide', 'ROW((x).k1)') r WHERE new IS NULL")" -gt 0 ] ||
	fail "c_slide: no row left the view"

###########################################################################
say "part 2: kill -9 during ingestion loses and doubles no change event"
unset PGHOST PGPORT PGDATABASE
SRV="$SCRATCH/crash_server"
# merges (and so emissions) every 20 ms: the kill is likely to find one under way
start_own_server "$SRV" "stream_ext.workers = 2" "stream_ext.queue_size = 256kB" "stream_ext.combine_interval = 20"
fresh_db t_change_streams_crash
create_pending_deltas
create_check_functions
run_sql <<'SQL'
CREATE FOREIGN TABLE ev (batch_id bigint, size int, seq int) SERVER stream_ext;
CREATE VIEW totals WITH (continuous) AS SELECT count(*) AS n FROM ev;
CREATE VIEW k_mod WITH (continuous) AS
  SELECT batch_id % 41 AS g, count(*), sum(seq), count(DISTINCT size) AS sizes FROM ev GROUP BY g;
CREATE VIEW k_size WITH (continuous) AS
  SELECT size, seq % 2 AS odd, count(*), max(batch_id) FROM ev GROUP BY size, odd HAVING count(*) % 4 <> 0;
CREATE VIEW k_all WITH (continuous) AS SELECT count(*), avg(seq) FROM ev;
-- one row per batch: many events per emission
CREATE VIEW k_batch WITH (continuous) AS
  SELECT batch_id, count(*), sum(seq), max(size) FROM ev GROUP BY batch_id;
CREATE TABLE cases (view regclass PRIMARY KEY, ident text);
INSERT INTO cases VALUES ('k_mod', 'ROW((x).g)'), ('k_size', 'ROW((x).size, (x).odd)'), ('k_all', 'ROW()'),
  ('k_batch', 'ROW((x).batch_id)');
SELECT make_change_stream(view, ident) FROM cases;
SQL

for cycle in $(seq 1 "$CYCLES"); do
	before=$(q "SELECT n FROM totals")
	start_crash_clients "$cycle" 10 1500
	say "cycle $cycle: $CLIENTS clients writing; crash after $EVENTS_PER_CYCLE more events"
	wait_until 120 "$EVENTS_PER_CYCLE more events" "SELECT n >= $before + $EVENTS_PER_CYCLE FROM totals"
	crash_and_recover "$SRV"
	say "restarted with $(q "SELECT pending_changes()") changed rows not emitted yet and $(q "SELECT pending_deltas()") delta rows"
	check "cycle $cycle, right after restart" false
	settle 60 "the combiner merged and emitted everything"
	check "cycle $cycle, after the combiner caught up" true
done

###########################################################################
say "part 3: a large round is emitted in pages; a reader's view that keeps failing stops no other"
fresh_db t_change_streams_pages
create_pending_deltas
create_check_functions
run_sql <<'SQL'
CREATE FOREIGN TABLE big (k int) SERVER stream_ext;
CREATE VIEW big_v WITH (continuous) AS SELECT k, count(*) FROM big GROUP BY k;
CREATE TABLE cases (view regclass PRIMARY KEY, ident text);
INSERT INTO cases VALUES ('big_v', 'ROW((x).k)');
SELECT make_change_stream(view, ident) FROM cases;
INSERT INTO big SELECT g FROM generate_series(1, 50000) g;
SQL
settle 120 "50,000 new groups merged and emitted"
check "50,000 groups changed at once" true
# one emission, one arrival_timestamp: at most 20,000 groups each (it was
# one emission of every group, as long as the view is big)
pages=$(q "SELECT count(*) || ' ' || max(n) FROM (SELECT count(*) AS n FROM log_big_v GROUP BY arrival_timestamp) p")
[ "${pages%% *}" -ge 3 ] && [ "${pages##* }" -le 20000 ] ||
	fail "50,000 changed groups were not emitted in emissions of at most 20,000 (emissions, largest: $pages)"
say "ok: emitted in $pages (emissions, largest)"
# a view of a reader of the change stream whose code raises a transient
# SQLSTATE every time: after a few failed emissions it owns that error, its
# events are set aside for it, and the other readers get theirs (every
# emission failed for ever)
run_sql <<'SQL'
CREATE FUNCTION boom(bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = 'serialization_failure'; END$$;
CREATE VIEW bad_reader WITH (continuous) AS SELECT count(boom((new).count)) FROM big_v_changes;
INSERT INTO big SELECT g FROM generate_series(50001, 50100) g;
SQL
wait_until 90 "the change stream goes on past a reader's view that always fails" \
	"SELECT count(*) = 50100 FROM log_big_v"
[ "$(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'bad_reader'::regclass AND sqlstate = '40001'")" -gt 0 ] ||
	fail "bad_reader's events were not set aside for it"
settle 60 "merged and emitted past bad_reader"
check "past a failing reader" true

# a truncate of the view left open holds its change stream's tables: the
# combiner goes on with the other views (its emission waited for the truncate,
# and every merge of the database with it)
run_sql <<'SQL'
DROP VIEW bad_reader;
CREATE FOREIGN TABLE other (k int) SERVER stream_ext;
CREATE VIEW other_v WITH (continuous) AS SELECT k, count(*) FROM other GROUP BY k;
SQL
fifo_session truncater 7 -v ON_ERROR_STOP=1
tpid=$SESSION_PID
echo "BEGIN; SELECT stream_ext.truncate_continuous_view('big_v');" >&7
wait_until 20 "the truncate holds the emitted rows" \
	"SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	                 WHERE c.relname ~ '^emitted_' AND l.mode = 'ExclusiveLock' AND l.granted)"
sleep 1   # the emission's next turn
run_sql -c "INSERT INTO other SELECT g % 5 FROM generate_series(1, 100) g"
other_delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'other_v'::regclass")
try_wait 20 "another view's deltas merged while the truncate is open" \
	"SELECT count(*) = 0 FROM $other_delta" || failures+=("the combiner waited for an open truncate")
echo "COMMIT;" >&7
exec 7>&-
wait "$tpid" || failures+=("the truncate's session failed: $(cat "$SCRATCH/truncater.out")")
settle 60 "the truncate's leaving rows emitted"
[ "$(q "SELECT count(*) FROM big_v")" = 0 ] || fail "big_v is not empty after its truncate"

if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do echo "[$TEST_NAME] failed: $f"; done
	fail "${#failures[@]} check(s) failed ($((SECONDS - t0))s)"
fi
say "PASS ($((SECONDS - t0))s)"
