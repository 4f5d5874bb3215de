--
-- transactions: only committed events count; sync and async commit
--
CREATE FOREIGN TABLE tx_a (k text, v int) SERVER stream_ext;
CREATE FOREIGN TABLE tx_b (k text, v int) SERVER stream_ext;
CREATE TABLE tx_plain (k text);
CREATE VIEW tx_a_v WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM tx_a GROUP BY k;
CREATE VIEW tx_a_total WITH (continuous) AS SELECT count(*) AS n FROM tx_a;
CREATE VIEW tx_b_v WITH (continuous) AS SELECT k, count(*) AS n, sum(v) AS s FROM tx_b GROUP BY k;
SHOW stream_ext.commit_mode;

-- committed transaction: visible as soon as COMMIT returns
BEGIN;
INSERT INTO tx_a VALUES ('commit', 1);
INSERT INTO tx_a VALUES ('commit', 2), ('commit', 3);
COMMIT;
SELECT * FROM tx_a_v ORDER BY k;

-- ROLLBACK contributes nothing
BEGIN;
INSERT INTO tx_a VALUES ('rollback', 1);
INSERT INTO tx_a SELECT 'rollback', g FROM generate_series(1, 100) g;
INSERT INTO tx_plain VALUES ('rollback');
ROLLBACK;
SELECT * FROM tx_a_v ORDER BY k;
SELECT count(*) FROM tx_plain;

-- ROLLBACK TO SAVEPOINT drops only the events after the savepoint
BEGIN;
INSERT INTO tx_a VALUES ('sp', 1);
SAVEPOINT s1;
INSERT INTO tx_a VALUES ('sp', 10);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO tx_a VALUES ('sp', 100);
COMMIT;
SELECT * FROM tx_a_v WHERE k = 'sp';

-- nested savepoints
BEGIN;
INSERT INTO tx_a VALUES ('nested', 1);
SAVEPOINT s1;
INSERT INTO tx_a VALUES ('nested', 2);
SAVEPOINT s2;
INSERT INTO tx_a VALUES ('nested', 4);
SAVEPOINT s3;
INSERT INTO tx_a VALUES ('nested', 8);
RELEASE SAVEPOINT s3;
ROLLBACK TO SAVEPOINT s2;
INSERT INTO tx_a VALUES ('nested', 16);
SAVEPOINT s4;
INSERT INTO tx_a VALUES ('nested', 32);
RELEASE SAVEPOINT s4;
SAVEPOINT s5;
INSERT INTO tx_a VALUES ('nested', 64);
ROLLBACK TO s5;
ROLLBACK TO s5;
INSERT INTO tx_a VALUES ('nested', 128);
COMMIT;
-- 1 + 2 + 16 + 32 + 128
SELECT * FROM tx_a_v WHERE k = 'nested';

-- a savepoint rolled back, then the whole transaction rolled back
BEGIN;
INSERT INTO tx_a VALUES ('all-rolled-back', 1);
SAVEPOINT s1;
INSERT INTO tx_a VALUES ('all-rolled-back', 2);
RELEASE SAVEPOINT s1;
ROLLBACK;
SELECT count(*) FROM tx_a_v WHERE k = 'all-rolled-back';

-- subtransactions of PL/pgSQL exception blocks
DO $$
BEGIN
  INSERT INTO tx_a VALUES ('plpgsql', 1);
  BEGIN
    INSERT INTO tx_a VALUES ('plpgsql', 10);
    RAISE EXCEPTION 'undo the block';
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO tx_a VALUES ('plpgsql', 100);
  END;
  FOR i IN 1 .. 5 LOOP
    BEGIN
      INSERT INTO tx_a VALUES ('plpgsql', 1000);
      IF i % 2 = 0 THEN
        PERFORM 1 / 0;
      END IF;
    EXCEPTION WHEN division_by_zero THEN
      NULL;
    END;
  END LOOP;
END
$$;
-- 1 + 100 + 3 * 1000
SELECT * FROM tx_a_v WHERE k = 'plpgsql';

-- one transaction writing to two streams
BEGIN;
INSERT INTO tx_a VALUES ('two', 1);
INSERT INTO tx_b VALUES ('two', 2);
INSERT INTO tx_a VALUES ('two', 3);
COMMIT;
SELECT * FROM tx_a_v WHERE k = 'two';
SELECT * FROM tx_b_v WHERE k = 'two';
BEGIN;
INSERT INTO tx_a VALUES ('two-rollback', 1);
INSERT INTO tx_b VALUES ('two-rollback', 2);
ROLLBACK;
SELECT count(*) FROM tx_a_v WHERE k = 'two-rollback';
SELECT count(*) FROM tx_b_v WHERE k = 'two-rollback';

-- an error later in the transaction discards its events
BEGIN;
INSERT INTO tx_a VALUES ('error', 1);
INSERT INTO tx_b VALUES ('error', 1);
SELECT 1 / 0;
INSERT INTO tx_a VALUES ('error', 2);
COMMIT;
SELECT count(*) FROM tx_a_v WHERE k = 'error';
SELECT count(*) FROM tx_b_v WHERE k = 'error';
-- an error in the statement itself
INSERT INTO tx_a SELECT 'error-stmt', 10 / (3 - g) FROM generate_series(1, 5) g;
SELECT count(*) FROM tx_a_v WHERE k = 'error-stmt';
-- an error at COMMIT (deferred constraint) discards the events
CREATE TABLE tx_deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED);
BEGIN;
INSERT INTO tx_a VALUES ('error-commit', 1);
INSERT INTO tx_deferred VALUES (1), (1);
COMMIT;
SELECT count(*) FROM tx_a_v WHERE k = 'error-commit';
DROP TABLE tx_deferred;

-- a transaction larger than a batch (stream_ext.batch_size events)
SHOW stream_ext.batch_size;
BEGIN;
INSERT INTO tx_a SELECT 'big-rollback', 1 FROM generate_series(1, 50000);
ROLLBACK;
BEGIN;
INSERT INTO tx_a SELECT 'big', 1 FROM generate_series(1, 30000);
INSERT INTO tx_a SELECT 'big', 2 FROM generate_series(1, 30000);
COMMIT;
SELECT * FROM tx_a_v WHERE k LIKE 'big%' ORDER BY k;

SELECT * FROM tx_a_v ORDER BY k;
SELECT * FROM tx_a_total;

-- other sessions see committed events only (a second session through dblink)
CREATE EXTENSION dblink;
SELECT dblink_connect('tx_other', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user)) AS connected;
BEGIN;
INSERT INTO tx_a VALUES ('isolation', 1);
SELECT * FROM dblink('tx_other', $$SELECT count(*) FROM tx_a_v WHERE k = 'isolation'$$) AS t(n bigint);
COMMIT;
SELECT * FROM dblink('tx_other', $$SELECT n FROM tx_a_v WHERE k = 'isolation'$$) AS t(n bigint);
-- the other session's committed events are visible here at once
SELECT dblink_exec('tx_other', $$INSERT INTO tx_a VALUES ('from-other', 5)$$);
SELECT n, s FROM tx_a_v WHERE k = 'from-other';
-- its rolled back events are not
SELECT dblink_exec('tx_other', 'BEGIN');
SELECT dblink_exec('tx_other', $$INSERT INTO tx_a VALUES ('from-other', 7)$$);
SELECT n, s FROM tx_a_v WHERE k = 'from-other';
SELECT dblink_exec('tx_other', 'ROLLBACK');
SELECT n, s FROM tx_a_v WHERE k = 'from-other';
-- a REPEATABLE READ transaction keeps its snapshot of the view
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT n FROM tx_a_v WHERE k = 'from-other';
SELECT dblink_exec('tx_other', $$INSERT INTO tx_a VALUES ('from-other', 9)$$);
SELECT n FROM tx_a_v WHERE k = 'from-other';
COMMIT;
SELECT n, s FROM tx_a_v WHERE k = 'from-other';
SELECT dblink_disconnect('tx_other');
DROP EXTENSION dblink;

-- async commit: COMMIT returns at once, the events show up shortly after
SET stream_ext.commit_mode = 'async';
SHOW stream_ext.commit_mode;
CREATE FUNCTION tx_wait(view regclass, key text, expected bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  got bigint;
BEGIN
  FOR i IN 1 .. 3000 LOOP
    EXECUTE format('SELECT coalesce(sum(n), 0) FROM %s WHERE k = $1', view) INTO got USING key;
    EXIT WHEN got >= expected;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN got;
END
$$;
INSERT INTO tx_a VALUES ('async', 1);
INSERT INTO tx_a SELECT 'async', g FROM generate_series(1, 99) g;
SELECT tx_wait('tx_a_v', 'async', 100);
SELECT * FROM tx_a_v WHERE k = 'async';
-- async: rolled back events never appear (checked after a later committed event shows up)
BEGIN;
INSERT INTO tx_a VALUES ('async-rollback', 1);
ROLLBACK;
BEGIN;
INSERT INTO tx_a VALUES ('async-2', 1);
SAVEPOINT s;
INSERT INTO tx_a VALUES ('async-2', 1000);
ROLLBACK TO s;
INSERT INTO tx_b VALUES ('async-2', 2);
COMMIT;
INSERT INTO tx_a VALUES ('async-marker', 1);
SELECT tx_wait('tx_a_v', 'async-marker', 1);
SELECT tx_wait('tx_b_v', 'async-2', 1);
SELECT * FROM tx_a_v WHERE k LIKE 'async%' ORDER BY k;
SELECT * FROM tx_b_v WHERE k LIKE 'async%' ORDER BY k;
-- back to sync, per transaction with SET LOCAL
BEGIN;
SET LOCAL stream_ext.commit_mode = 'sync';
INSERT INTO tx_a VALUES ('local-sync', 1);
COMMIT;
SELECT n FROM tx_a_v WHERE k = 'local-sync';
SHOW stream_ext.commit_mode;
RESET stream_ext.commit_mode;
SHOW stream_ext.commit_mode;
INSERT INTO tx_a VALUES ('sync-again', 1);
SELECT n FROM tx_a_v WHERE k = 'sync-again';
SET stream_ext.commit_mode = 'sometimes';

-- PREPARE TRANSACTION needs max_prepared_transactions > 0: not tested here

SET client_min_messages = warning;
DROP FUNCTION tx_wait;
DROP FOREIGN TABLE tx_a, tx_b CASCADE;
DROP TABLE tx_plain;
RESET client_min_messages;
