#!/usr/bin/env bash
# Reads never block ingestion: while a reader keeps a REPEATABLE READ
# transaction open on a view (and holds its locks), sync inserts, COPY and the
# combiner go on; the reader keeps its snapshot, a new read sees everything.
source "$(dirname "$0")/lib.sh"

use_server
fresh_db t_reads

run_sql <<'SQL'
CREATE FOREIGN TABLE clicks (url text, user_id bigint, latency float8, ts timestamptz) SERVER stream_ext;
CREATE VIEW url_stats WITH (continuous) AS SELECT url, count(*) AS n FROM clicks GROUP BY url;
INSERT INTO clicks SELECT '/p/' || (i % 10), i, 1, now() FROM generate_series(1, 1000) i;
SQL

# The reader: reads, then waits (holding its snapshot and locks) until the
# writer below has finished, then reads again in the same transaction.
psql -X -At -v ON_ERROR_STOP=1 > "$SCRATCH/reader.out" 2>&1 <<'SQL' &
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 'first', sum(n) FROM url_stats;
DO $$ /* t_reads reader */ BEGIN
  -- wait (bounded) until a session named t_reads_writer_done appears;
  -- pg_stat_activity is not MVCC, but it is cached per transaction: clear it
  FOR i IN 1..600 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 't_reads_writer_done');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT 'second', sum(n) FROM url_stats;
COMMIT;
SELECT 'after', sum(n) FROM url_stats;
SQL
reader=$!
_bg_pids+=("$reader")
wait_until 30 "the reader has read" "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%t_reads reader%' AND state = 'active' AND pid <> pg_backend_pid()"

# The writer must not wait for the reader: statement_timeout makes a wait fail.
PGOPTIONS='-c statement_timeout=10s' psql -X -q -v ON_ERROR_STOP=1 <<'SQL' || fail "ingestion blocked or failed while a reader was open"
INSERT INTO clicks SELECT '/p/' || (i % 10), i, 1, now() FROM generate_series(1, 5000) i;
COPY clicks (url, user_id, latency, ts) FROM STDIN (FORMAT csv);
/p/1,1,1,2026-01-01
/p/2,2,1,2026-01-01
\.
SQL
say "ok: INSERT and COPY committed while a reader held a snapshot on the view"
# wait for the combiner to merge what the writer added, with the reader still open
delta=$(q "SELECT delta_table FROM stream_ext_internal.continuous_views WHERE view = 'url_stats'::regclass")
wait_until 30 "the combiner merged the new deltas" "SELECT count(*) = 0 FROM $delta"
say "ok: the combiner merged while the reader was open"
# tell the reader, staying visible until it has stopped waiting
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL' &
SET application_name = 't_reads_writer_done';
DO $$ BEGIN
  FOR i IN 1..600 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE query LIKE '%t_reads reader%' AND state = 'active'
                             AND pid <> pg_backend_pid());
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SQL
_bg_pids+=("$!")

wait "$reader" || fail "reader failed: $(cat "$SCRATCH/reader.out")"
grep -q '^first|1000$' "$SCRATCH/reader.out" || fail "first read: $(cat "$SCRATCH/reader.out")"
grep -q '^second|1000$' "$SCRATCH/reader.out" || fail "the reader's snapshot changed: $(cat "$SCRATCH/reader.out")"
grep -q '^after|6002$' "$SCRATCH/reader.out" || fail "a new read does not see every event: $(cat "$SCRATCH/reader.out")"
say "ok: the reader kept its snapshot (1000), a new read sees all 6002 events"
say PASS
