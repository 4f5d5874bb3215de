#!/usr/bin/env bash
# Joined tables answered from the workers' copies (src/analyze/table_copies.c):
# a view joining a table must see the table as its batch's snapshot does,
# whether a worker reads its kept copy, builds a new one or probes the index.
#
# Stream ev joined with accounts (a plain table, primary key) by an
# aggregating view and a view that keeps rows.  Each phase sends events by
# INSERT (sync commit: applied when it returns) and, in the same session right
# after, the reference: the same events joined with accounts as that session
# sees it.  Phases:
#   1. warm-up: the workers build their copies;
#   2. the table unchanged: lookups read the copies, the index is not probed
#      (pg_stat_user_indexes.idx_scan of accounts_pkey stays put);
#   3. committed changes: a delete and a one-row update that leave the
#      table's size as it is (only the pages' LSNs tell), then many;
#   4. a transaction inserts into accounts (then another updates it) and
#      stays open while events arrive (they must not see its rows), then
#      commits (later events must);
#   5. VACUUM FULL (a new file) and TRUNCATE + reload in one transaction;
#   6. stream_ext.join_cache_size = 0: every lookup probes the index;
#   7. a key type whose equality has no hash function (money[]): probed
#      through the index, without errors (a failed build, had one been
#      tried, must not cost the view its batch);
#   8. a build that fails (a hash function that errs on one value): the
#      batch is retried through the index and no event is lost.
# After every phase both views equal their references.
source "$(dirname "$0")/lib.sh"
use_server
fresh_db t_table_copies

run_sql <<'SQL'
CREATE FOREIGN TABLE ev (account_id bigint, amount int) SERVER stream_ext;
CREATE TABLE accounts (id bigint PRIMARY KEY, tier text);
INSERT INTO accounts SELECT i, 't' || (i % 7) FROM generate_series(1, 100000) i;
ANALYZE accounts;
CREATE TABLE ev_ref (account_id bigint, amount int, tier text);
CREATE VIEW per_tier WITH (continuous) AS
  SELECT a.tier, count(*) AS n, sum(e.amount) AS total
  FROM ev e JOIN accounts a ON a.id = e.account_id GROUP BY a.tier;
CREATE VIEW kept WITH (continuous) AS
  SELECT e.account_id, e.amount, a.tier FROM ev e LEFT JOIN accounts a ON a.id = e.account_id
  WHERE e.amount % 10 = 0;
-- send(n, seed): n events into ev, and into ev_ref as joined now
CREATE FUNCTION send(n int, seed int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS batch (account_id bigint, amount int) ON COMMIT DELETE ROWS;
  INSERT INTO batch SELECT (i * 7919 + seed) % 105000, (i + seed) % 1000 FROM generate_series(1, n) i;
  INSERT INTO ev SELECT * FROM batch;
  INSERT INTO ev_ref SELECT b.account_id, b.amount, a.tier FROM batch b LEFT JOIN accounts a ON a.id = b.account_id;
END $$;
SQL

# every event must be in a batch of its own transaction: send in separate transactions
send() {  # send COUNT TRANSACTIONS SEED
	local i
	for i in $(seq "$2"); do q "SELECT send($1, $3 + $i)" >/dev/null; done
}

compare() {
	local bad
	bad=$(q "SELECT (SELECT count(*) FROM (
	            (SELECT tier, n, total FROM per_tier
	             EXCEPT SELECT tier, count(*), sum(amount) FROM ev_ref WHERE tier IS NOT NULL GROUP BY tier)
	             UNION ALL
	            (SELECT tier, count(*), sum(amount) FROM ev_ref WHERE tier IS NOT NULL GROUP BY tier
	             EXCEPT SELECT tier, n, total FROM per_tier)) x)
	       + (SELECT count(*) FROM (
	            (SELECT account_id, amount, tier, count(*) FROM kept GROUP BY 1, 2, 3
	             EXCEPT SELECT account_id, amount, tier, count(*) FROM ev_ref WHERE amount % 10 = 0 GROUP BY 1, 2, 3)
	             UNION ALL
	            (SELECT account_id, amount, tier, count(*) FROM ev_ref WHERE amount % 10 = 0 GROUP BY 1, 2, 3
	             EXCEPT SELECT account_id, amount, tier, count(*) FROM kept GROUP BY 1, 2, 3)) y)")
	[ "$bad" = 0 ] || fail "$1: $bad rows of the views differ from the reference
$(q "SELECT tier, n, total FROM per_tier ORDER BY 1")
--- reference
$(q "SELECT tier, count(*), sum(amount) FROM ev_ref WHERE tier IS NOT NULL GROUP BY 1 ORDER BY 1")"
	say "ok: $1: both views equal the reference ($(q "SELECT count(*) FROM ev_ref") events)"
}

# index probes of accounts so far, once the workers have sent their statistics
probes() {
	sleep 1.5   # workers send statistics at most once a second, and when idle
	q "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'accounts_pkey'::regclass"
}
# send_counting_probes COUNT TRANSACTIONS SEED: send, setting probed to the
# index probes it took
send_counting_probes() {
	local before
	before=$(probes)
	send "$@"
	probed=$(($(probes) - before))
}

# the workers' plans look accounts up through the copies, the index below them
plan_uses_copies() {
	local v
	for v in per_tier kept; do
		q "SELECT string_agg(p, E'\n') FROM stream_ext.explain_continuous_view('$v') p" |
			grep -q 'Custom Scan (Table Copy Lookup) on accounts' ||
			fail "$1: the plan of $v does not look accounts up in a copy:
$(q "SELECT * FROM stream_ext.explain_continuous_view('$v')")"
	done
}
plan_uses_copies "at the start"

say "1. warm-up"
send 20000 6 100
compare "warm-up"

say "2. accounts unchanged"
send_counting_probes 20000 5 200
[ "$probed" -lt 1000 ] || fail "100,000 events probed the index $probed times: the copies were not used"
compare "unchanged"
say "ok: 100,000 events joined with $probed index probes"

say "3. committed changes"
# changes that leave the table's size as it is: only the pages' LSNs tell
size=$(q "SELECT pg_relation_size('accounts')")
q "DELETE FROM accounts WHERE id % 17 = 0" >/dev/null
send 20000 2 300
compare "after a delete"
q "UPDATE accounts SET tier = 'again' WHERE id = 42" >/dev/null
send 5000 2 330
compare "after a one-row update"
[ "$(q "SELECT pg_relation_size('accounts')")" = "$size" ] ||
	fail "the delete and the one-row update changed the size of accounts: the pages' LSNs were not what told"
run_sql <<'SQL'
UPDATE accounts SET tier = 'moved' WHERE id % 10 = 3;
INSERT INTO accounts SELECT i, 'new' FROM generate_series(100001, 100500) i;
SQL
send 20000 3 360
compare "after an update of many rows and inserts"

say "4. changes in an open transaction"
# open_transaction SQL: run SQL in a transaction left open (commit_transaction)
open_transaction() {
	fifo_session open 3 -v ON_ERROR_STOP=1
	open_psql=$SESSION_PID
	echo "BEGIN; $1; SELECT 'changed';" >&3
	for _ in $(seq 100); do grep -q changed "$SCRATCH/open.out" && break; sleep 0.1; done
	grep -q changed "$SCRATCH/open.out" || fail "the open transaction did not run: $(cat "$SCRATCH/open.out")"
}
commit_transaction() {
	echo "COMMIT;" >&3
	exec 3>&-
	wait "$open_psql" || fail "the open transaction failed: $(cat "$SCRATCH/open.out")"
}
# inserts only: nothing to prune once committed, so no page changes after
# the commit; a copy made while they were in progress must not be kept
open_transaction "INSERT INTO accounts SELECT i, 'pending' FROM generate_series(100501, 101000) i"
send 20000 3 400
[ "$(q "SELECT count(*) FROM ev_ref WHERE tier = 'pending'")" = 0 ] || fail "the reference saw uncommitted rows"
compare "while a transaction inserting into accounts is open"
commit_transaction
send 20000 3 500
[ "$(q "SELECT count(*) > 0 FROM ev_ref WHERE tier = 'pending'")" = t ] || fail "the reference missed the committed rows"
compare "after it committed"
open_transaction "UPDATE accounts SET tier = 'held' WHERE id % 5 = 0"
send 20000 3 550
compare "while a transaction updating accounts is open"
commit_transaction
send 20000 3 580
[ "$(q "SELECT count(*) > 0 FROM ev_ref WHERE tier = 'held'")" = t ] || fail "the reference missed the updated rows"
compare "after it committed"

say "5. a new file for accounts"
q "VACUUM FULL accounts" >/dev/null
send 20000 2 600
compare "after VACUUM FULL"
run_sql <<'SQL'
BEGIN;
TRUNCATE accounts;
INSERT INTO accounts SELECT i, 'r' || (i % 3) FROM generate_series(1, 101000) i;
COMMIT;
ANALYZE accounts;
SQL
send 20000 3 700
compare "after TRUNCATE and reload"

plan_uses_copies "after TRUNCATE"

say "6. stream_ext.join_cache_size = 0"
set_server_setting stream_ext.join_cache_size 0
send_counting_probes 10000 2 800
[ "$probed" -ge 20000 ] || fail "with join_cache_size = 0, 20,000 events probed the index only $probed times"
compare "without copies"
say "ok: without copies 20,000 events made $probed index probes"

say "7. a key whose type cannot be hashed"
run_sql <<'SQL'
CREATE TABLE prices (amounts money[] PRIMARY KEY, label text);
INSERT INTO prices SELECT ARRAY[i::money, (i * 2)::money], 'l' || (i % 3) FROM generate_series(1, 30000) i;
ANALYZE prices;
CREATE FOREIGN TABLE quotes (amounts money[]) SERVER stream_ext;
CREATE VIEW per_label WITH (continuous) AS
  SELECT p.label, count(*) AS n FROM quotes q JOIN prices p ON p.amounts = q.amounts GROUP BY 1;
SQL
set_server_setting stream_ext.join_cache_size 65536
q "INSERT INTO quotes SELECT ARRAY[(i % 31000)::money, ((i % 31000) * 2)::money] FROM generate_series(1, 40000) i" >/dev/null
[ "$(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'per_label'::regclass")" = 0 ] ||
	fail "the view over money[] keys has errors: $(q "SELECT message FROM stream_ext.view_errors LIMIT 1")"
[ "$(q "SELECT sum(n) FROM per_label")" = "$(q "SELECT count(*) FROM generate_series(1, 40000) i WHERE i % 31000 BETWEEN 1 AND 30000")" ] ||
	fail "the view over money[] keys counts $(q "SELECT sum(n) FROM per_label")"
say "ok: money[] keys looked up through the index, counted exactly"

say "8. a copy whose build fails"
# a hash function that fails on one value: the first build of a copy of
# picky errs, the batch is retried, and the retry (and every later batch, until
# the table's size changes) must take the index instead, losing nothing
run_sql <<'SQL'
CREATE FUNCTION picky_eq(int8, int8) RETURNS bool IMMUTABLE STRICT LANGUAGE internal AS 'int8eq';
CREATE FUNCTION picky_hash(int8) RETURNS int4 IMMUTABLE STRICT LANGUAGE plpgsql AS $$
BEGIN
  IF $1 = 13 THEN RAISE EXCEPTION 'picky_hash refuses 13'; END IF;
  RETURN hashint8($1);
END $$;
CREATE OPERATOR === (LEFTARG = int8, RIGHTARG = int8, FUNCTION = picky_eq, COMMUTATOR = ===,
                     RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR CLASS picky_btree_ops FOR TYPE int8 USING btree AS
  OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 ===, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 btint8cmp(int8, int8);
CREATE OPERATOR CLASS picky_hash_ops FOR TYPE int8 USING hash AS
  OPERATOR 1 ===, FUNCTION 1 picky_hash(int8);
CREATE TABLE picky (k int8, label text);
INSERT INTO picky SELECT i, 'p' || (i % 4) FROM generate_series(1, 100000) i;
CREATE INDEX ON picky (k picky_btree_ops);
ANALYZE picky;
CREATE FOREIGN TABLE picks (k int8) SERVER stream_ext;
CREATE VIEW per_pick WITH (continuous) AS
  SELECT p.label, count(*) AS n FROM picks s JOIN picky p ON p.k === s.k GROUP BY 1;
SQL
q "SELECT string_agg(p, E'\n') FROM stream_ext.explain_continuous_view('per_pick') p" |
	grep -q 'Custom Scan (Table Copy Lookup) on picky' ||
	fail "the plan of per_pick does not look picky up in a copy: $(q "SELECT * FROM stream_ext.explain_continuous_view('per_pick')")"
for i in 1 2 3; do
	q "INSERT INTO picks SELECT (i * 7 + $i) % 100000 + 1 FROM generate_series(1, 20000) i" >/dev/null
done
[ "$(q "SELECT count(*) FROM stream_ext.view_errors WHERE name = 'per_pick'::regclass")" = 0 ] ||
	fail "a failed copy cost per_pick events: $(q "SELECT message FROM stream_ext.view_errors WHERE name = 'per_pick'::regclass LIMIT 1")"
[ "$(q "SELECT sum(n) FROM per_pick")" = 60000 ] || fail "per_pick counts $(q "SELECT sum(n) FROM per_pick") of 60000 events"
say "ok: a copy whose build failed cost no event: 60,000 events through the index"
