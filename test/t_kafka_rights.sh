#!/usr/bin/env bash
# Kafka workers act for the role that configured them, never with their own
# (superuser) rights (mock cluster; own server):
#   1. a producer formats events as the role that configured it, in a
#      security-restricted operation: a cast of the stream owner's type,
#      which json and csv messages call, runs as that role and cannot make
#      its author a superuser;
#   2. a REVOKE of SELECT on the stream stops a producer (retrying, with the
#      reason in last_error), which sends nothing written meanwhile; after a
#      GRANT it sends again;
#   3. a REVOKE of INSERT on the stream stops a consumer likewise (its
#      messages wait in Kafka), and so does leaving role stream_ext_kafka;
#   4. another member of stream_ext_kafka with the stream's privileges may
#      not change, stop, reset or drop them (a superuser may), nor through a
#      SECURITY DEFINER function of its own that kr_admin's session runs.
source "$(dirname "$0")/lib.sh"
source "$TEST_DIR/kafka/lib.sh"

unset PGHOST PGPORT
start_own_server "$SCRATCH/server" "stream_ext.kafka_batch_wait = 20ms"
fresh_db t_kafka_rights
mock_start 1 out_json:1 out_csv:1 out_def:1 out_plain:1 in_t:1

run_sql <<SQL
CREATE ROLE kr_admin LOGIN IN ROLE stream_ext_kafka;   -- manages Kafka, no superuser
CREATE ROLE kr_owner LOGIN;                            -- owns the stream, no Kafka rights
CREATE SCHEMA kr AUTHORIZATION kr_owner;
GRANT USAGE ON SCHEMA kr TO kr_admin;
SET ROLE kr_owner;
CREATE TABLE kr.calls (who text, sess text);
GRANT INSERT ON kr.calls TO PUBLIC;
CREATE TYPE kr.level AS ENUM ('low', 'high');
-- a cast that notes who runs it and tries to make its author a superuser
CREATE FUNCTION kr.as_text(x kr.level) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
  INSERT INTO kr.calls VALUES (current_user, session_user);
  BEGIN EXECUTE 'ALTER ROLE kr_owner SUPERUSER'; EXCEPTION WHEN others THEN NULL; END;
  RETURN x::name::text;
END \$\$;
CREATE CAST (kr.level AS text) WITH FUNCTION kr.as_text(kr.level);
CREATE FUNCTION kr.as_json(x kr.level) RETURNS json LANGUAGE sql AS
  \$\$ SELECT to_json(kr.as_text(x)) \$\$;
CREATE CAST (kr.level AS json) WITH FUNCTION kr.as_json(kr.level);
CREATE FOREIGN TABLE kr.s (k text, x kr.level) SERVER stream_ext;
CREATE FOREIGN TABLE kr.i (v int) SERVER stream_ext;
CREATE VIEW kr.i_n WITH (continuous) AS SELECT count(*) AS n FROM kr.i;
GRANT SELECT ON kr.s TO kr_admin;
GRANT INSERT ON kr.i TO kr_admin;
RESET ROLE;
SET ROLE kr_admin;
SELECT stream_ext.kafka_produce('kr.s', topic => 'out_json', brokers => '$BROKERS', format => 'json');
SELECT stream_ext.kafka_produce('kr.s', topic => 'out_csv', brokers => '$BROKERS', format => 'csv');
SELECT stream_ext.kafka_consume('kr.i', 'in_t', '$BROKERS', format => 'text');
RESET ROLE;
SQL

# --- 0. the role a producer acts for is the caller's current_user: inside a
# SECURITY DEFINER function, its owner, even when a superuser calls it; the
# internal function, which cannot see its caller, refuses direct calls
run_sql <<'SQL'
GRANT CREATE ON SCHEMA public TO kr_admin;
SET ROLE kr_admin;
CREATE FUNCTION kr_admin_produce() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  PERFORM stream_ext.kafka_produce('kr.s', topic => 'out_def', brokers => current_setting('kr.brokers'));
END $$;
CREATE FUNCTION kr_admin_register() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  RETURN stream_ext_internal.kafka_register_producer('kr.s', 'out_def', 'x', 'json', NULL, '{}', '{}');
END $$;
RESET ROLE;
SQL
q "SET kr.brokers = '$BROKERS'; SELECT kr_admin_produce()" >/dev/null
[ "$(q "SELECT p.created_by || ' ' || pg_get_userbyid(c.relowner) FROM stream_ext_internal.kafka_producers p
         JOIN pg_class c ON c.oid = p.staging WHERE p.topic = 'out_def'")" = "kr_admin kr_admin" ] ||
	fail "a producer made by a SECURITY DEFINER function a superuser called does not act for the function's owner"
out=$(q "SELECT kr_admin_register()" 2>&1 || true)
grep -q "are configured through stream_ext.kafka_consume and stream_ext.kafka_produce" <<< "$out" ||
	fail "a direct call of the internal function: $out"
run_sql -c "SELECT stream_ext.kafka_drop_producer('kr.s', 'out_def')" -c "DROP FUNCTION kr_admin_produce(), kr_admin_register()"
# a public call that failed inside the internal function, and was caught,
# leaves no note for a direct call after it: kr_admin runs a superuser's
# SECURITY DEFINER function that produces kr.i (which kr_admin may not read:
# refused), then calls the internal function itself
run_sql <<SQL
CREATE FUNCTION kr_su_produce() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS \$\$
BEGIN
  PERFORM stream_ext.kafka_produce('kr.i', topic => 'out_def', brokers => '$BROKERS');
END \$\$;
GRANT EXECUTE ON FUNCTION kr_su_produce() TO kr_admin;
SQL
out=$(psql -X -q -U kr_admin -c "DO \$\$
BEGIN
  BEGIN
    PERFORM kr_su_produce();
  EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'refused: %', SQLERRM;
  END;
  PERFORM stream_ext_internal.kafka_register_producer('kr.s', 'out_def', 'x', 'json', NULL, '{}', '{}');
END \$\$" 2>&1 || true)
grep -q "refused: permission denied for stream" <<< "$out" || fail "the superuser's function was not refused to kr_admin: $out"
grep -q "are configured through stream_ext.kafka_consume and stream_ext.kafka_produce" <<< "$out" ||
	fail "a direct call after a caught failure of the public function: $out"
[ "$(q "SELECT count(*) FROM stream_ext_internal.kafka_producers WHERE topic = 'out_def'")" = 0 ] ||
	fail "a direct call after a caught failure made a producer"
run_sql -c "DROP FUNCTION kr_su_produce()"
say "ok: a producer made inside a SECURITY DEFINER function acts for its owner, not the calling superuser; direct internal calls are refused"

# --- 1. user code of the sink runs as the configuring role, restricted
psql -X -q -U kr_owner -v ON_ERROR_STOP=1 -c "INSERT INTO kr.s VALUES ('a', 'high'), ('b', 'low')"
wait_until 30 "both producers sent the two events" \
	"SELECT sum(messages) = 4 FROM stream_ext.kafka_producers"
[ "$(q "SELECT rolsuper FROM pg_roles WHERE rolname = 'kr_owner'")" = f ] ||
	fail "the stream owner's cast made it a superuser through the producer"
who=$(q "SELECT string_agg(DISTINCT who, ',') FROM kr.calls")
[ "$who" = kr_admin ] || fail "the producers ran the stream owner's cast as: $who"
kcat -C -b "$BROKERS" -t out_json -e -q -f '%s\n' > "$SCRATCH/json.out" || fail "kcat could not read out_json"
grep -q '"x":"high"' "$SCRATCH/json.out" || fail "json messages: $(cat "$SCRATCH/json.out")"
say "ok: producers run casts of the stream's types as the role that configured them ($who), who stays no superuser"

# --- 2. a REVOKE stops the producer: events written meanwhile are not its
# to send (its staging view sets them aside, as any view of a role without
# SELECT does); after a GRANT the producer sends again
run_sql -c "REVOKE SELECT ON kr.s FROM kr_admin"
psql -X -q -U kr_owner -v ON_ERROR_STOP=1 -c "INSERT INTO kr.s VALUES ('c', 'high')"
wait_until 30 "the producers stop on the REVOKE" \
	"SELECT bool_and(state = 'retrying' AND last_error LIKE '%has no SELECT privilege on stream \"s\"%') FROM stream_ext.kafka_producers"
sleep 1
[ "$(q "SELECT sum(messages) FROM stream_ext.kafka_producers")" = 4 ] ||
	fail "a producer sent events after its role lost SELECT on the stream"
run_sql -c "GRANT SELECT ON kr.s TO kr_admin"
psql -X -q -U kr_owner -v ON_ERROR_STOP=1 -c "INSERT INTO kr.s VALUES ('d', 'low')"
wait_until 120 "the event after the GRANT sent" \
	"SELECT sum(messages) = 6 AND bool_and(state = 'running') FROM stream_ext.kafka_producers"
kcat -C -b "$BROKERS" -t out_csv -e -q -f '%s\n' > "$SCRATCH/csv.out" || fail "kcat could not read out_csv"
[ "$(cut -d, -f1 "$SCRATCH/csv.out" | sort | tr '\n' ' ')" = "a b d " ] ||
	fail "csv messages after the REVOKE and GRANT: $(cat "$SCRATCH/csv.out")"
say "ok: a producer whose role lost SELECT on the stream stops (retrying, the reason in last_error), sends nothing written meanwhile, and sends again after the GRANT"

# --- 2b. the same for messages a writer put in the outbox itself (a stream of
# built-in types, sink_stage.c): staged while the producer is stopped, then
# SELECT revoked: started again, the producer sends none of them until the
# GRANT
run_sql <<SQL
SET ROLE kr_owner;
CREATE FOREIGN TABLE kr.p (k text, n int) SERVER stream_ext;
GRANT SELECT ON kr.p TO kr_admin;
RESET ROLE;
SET ROLE kr_admin;
SELECT stream_ext.kafka_produce('kr.p', topic => 'out_plain', brokers => '$BROKERS', key_column => 'k');
SELECT stream_ext.kafka_stop_producer('kr.p', 'out_plain');
RESET ROLE;
SQL
psql -X -q -U kr_owner -v ON_ERROR_STOP=1 -c "INSERT INTO kr.p VALUES ('e', 1), ('f', 2)"
[ "$(q "SELECT sum(n) FROM stream_ext_internal.kafka_outbox o JOIN stream_ext_internal.kafka_producers p
        ON p.id = o.producer_id WHERE p.topic = 'out_plain'")" = 2 ] || fail "the writer did not stage kr.p's events"
run_sql -c "REVOKE SELECT ON kr.p FROM kr_admin" -c "SELECT stream_ext.kafka_start_producer('kr.p', 'out_plain')"
wait_until 30 "the producer of kr.p stops on the REVOKE" \
	"SELECT state = 'retrying' AND last_error LIKE '%has no SELECT privilege on stream \"p\"%' FROM stream_ext.kafka_producers WHERE topic = 'out_plain'"
sleep 1
[ "$(q "SELECT messages FROM stream_ext.kafka_producers WHERE topic = 'out_plain'")" = 0 ] ||
	fail "a producer sent the outbox's messages after its role lost SELECT on the stream"
kcat -C -b "$BROKERS" -t out_plain -e -q -f '%k\n' > "$SCRATCH/plain.out" || fail "kcat could not read out_plain"
[ ! -s "$SCRATCH/plain.out" ] || fail "the topic got the outbox's messages after the REVOKE: $(cat "$SCRATCH/plain.out")"
run_sql -c "GRANT SELECT ON kr.p TO kr_admin"
wait_until 120 "the outbox's messages sent after the GRANT" \
	"SELECT messages = 2 FROM stream_ext.kafka_producers WHERE topic = 'out_plain'"
say "ok: messages writers staged in the outbox are not sent while the producer's role may not read the stream"

# --- 3. consumers: REVOKE INSERT, then leaving stream_ext_kafka
seq 1 10 | produce in_t
wait_until 30 "the consumer consumes" "SELECT n = 10 FROM kr.i_n"
run_sql -c "REVOKE INSERT ON kr.i FROM kr_admin"
seq 11 15 | produce in_t
wait_until 30 "the consumer stops on the REVOKE" \
	"SELECT state = 'retrying' AND last_error LIKE '%has no INSERT privilege on stream \"i\"%' FROM stream_ext.kafka_consumers"
sleep 1
[ "$(q "SELECT n FROM kr.i_n")" = 10 ] || fail "the consumer inserted after its role lost INSERT"
run_sql -c "GRANT INSERT ON kr.i TO kr_admin" -c "REVOKE stream_ext_kafka FROM kr_admin"
wait_until 90 "the consumer reports the lost membership" \
	"SELECT last_error LIKE '%is no longer a member of role stream_ext_kafka%' FROM stream_ext.kafka_consumers"
[ "$(q "SELECT n FROM kr.i_n")" = 10 ] || fail "the consumer inserted after its role left stream_ext_kafka"
run_sql -c "GRANT stream_ext_kafka TO kr_admin"
wait_until 90 "the waiting messages consumed after the GRANT" "SELECT n = 15 FROM kr.i_n"
say "ok: a consumer whose role lost INSERT, then stream_ext_kafka, stops, and consumes the waiting messages once both are back"

# --- 4. another member, with SELECT and INSERT on the streams, may not
# manage kr_admin's producer or consumer: dropping the producer would drop
# the events it has not sent, changing either would make it act for another
run_sql <<SQL
CREATE ROLE kr_other LOGIN IN ROLE stream_ext_kafka;
GRANT USAGE ON SCHEMA kr TO kr_other;
GRANT SELECT ON kr.s TO kr_other;
GRANT INSERT ON kr.i TO kr_other;
SQL
for call in "stream_ext.kafka_drop_producer('kr.s', 'out_json')" \
	"stream_ext.kafka_stop_producer('kr.s', 'out_json')" \
	"stream_ext.kafka_produce('kr.s', topic => 'out_json', brokers => '$BROKERS')" \
	"stream_ext_internal.kafka_control_producer('kr.s', 'out_json', 'drop')" \
	"stream_ext.kafka_stop('kr.i', 'in_t')" \
	"stream_ext.kafka_reset('kr.i', 'in_t', 'earliest')" \
	"stream_ext.kafka_consume('kr.i', 'in_t', '$BROKERS', format => 'text')" \
	"stream_ext_internal.kafka_control('kr.i', 'in_t', false, NULL)"; do
	out=$(psql -X -q -U kr_other -c "SELECT $call" 2>&1 || true)
	grep -q 'permission denied to manage the Kafka .* of stream' <<< "$out" ||
		fail "another member's $call was not refused: $out"
done
# nor through a SECURITY DEFINER function of its own that kr_admin's session
# runs: the code that calls is checked, not only the session's role
run_sql <<'SQL'
CREATE SCHEMA kr_other_fns AUTHORIZATION kr_other;
GRANT USAGE ON SCHEMA kr_other_fns TO kr_admin;
SQL
psql -X -q -v ON_ERROR_STOP=1 -U kr_other <<'SQL' >/dev/null
CREATE FUNCTION kr_other_fns.stop_it() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog AS $$ BEGIN PERFORM stream_ext.kafka_stop('kr.i', 'in_t'); END $$;
CREATE FUNCTION kr_other_fns.drop_it() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog AS $$ BEGIN PERFORM stream_ext.kafka_drop_producer('kr.s', 'out_json'); END $$;
CREATE FUNCTION kr_other_fns.drop_directly() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog AS $$ BEGIN PERFORM stream_ext_internal.kafka_control_producer('kr.s', 'out_json', 'drop'); END $$;
SQL
for call in "kr_other_fns.stop_it()" "kr_other_fns.drop_it()" "kr_other_fns.drop_directly()"; do
	out=$(psql -X -q -U kr_admin -c "SELECT $call" 2>&1 || true)
	grep -q 'permission denied to manage the Kafka .* of stream\|are configured through stream_ext.kafka_consume' <<< "$out" ||
		fail "kr_other's $call, run by kr_admin, was not refused: $out"
done
[ "$(q "SELECT count(*) FILTER (WHERE enabled AND created_by = 'kr_admin') FROM stream_ext_internal.kafka_producers WHERE topic = 'out_json'")" = 1 ] ||
	fail "the producer changed after the refused calls"
[ "$(q "SELECT count(*) FILTER (WHERE enabled AND created_by = 'kr_admin') FROM stream_ext_internal.kafka_consumers WHERE topic = 'in_t'")" = 1 ] ||
	fail "the consumer changed after the refused calls"
seq 16 17 | produce in_t
wait_until 30 "the consumer goes on after the refused calls" "SELECT n = 17 FROM kr.i_n"
run_sql -c "SELECT stream_ext.kafka_stop_producer('kr.s', 'out_csv')"
[ "$(q "SELECT enabled FROM stream_ext_internal.kafka_producers WHERE topic = 'out_csv'")" = f ] ||
	fail "a superuser could not stop another role's producer"
say "ok: another member of stream_ext_kafka may not change, stop, reset or drop a producer or consumer acting for kr_admin; a superuser may"
say PASS
