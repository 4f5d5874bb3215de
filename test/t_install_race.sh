#!/usr/bin/env bash
# CREATE EXTENSION in two databases at the same time succeeds in both: the
# install script creates the cluster-wide role stream_ext_kafka, which both
# may try to create at once.  Own server (the role is dropped between rounds).
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-20}

unset PGHOST PGPORT
start_own_server "$SCRATCH/server"
for db in race_a race_b; do
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
done

for round in $(seq 1 "$ROUNDS"); do
	psql -X -q -d race_a -c "CREATE EXTENSION stream_ext" >"$SCRATCH/a.out" 2>&1 & a=$!
	psql -X -q -d race_b -c "CREATE EXTENSION stream_ext" >"$SCRATCH/b.out" 2>&1 & b=$!
	_bg_pids=("$a" "$b")
	rc_a=0; rc_b=0
	wait "$a" || rc_a=$?
	wait "$b" || rc_b=$?
	_bg_pids=()
	[ "$rc_a" -eq 0 ] || fail "round $round: CREATE EXTENSION in race_a failed: $(cat "$SCRATCH/a.out")"
	[ "$rc_b" -eq 0 ] || fail "round $round: CREATE EXTENSION in race_b failed: $(cat "$SCRATCH/b.out")"
	for db in race_a race_b; do
		[ "$(psql -X -At -d $db -c "SELECT has_function_privilege('stream_ext_kafka',
			'stream_ext_internal.kafka_control(regclass, text, boolean, text)', 'EXECUTE')")" = t ] ||
			fail "round $round: stream_ext_kafka cannot manage consumers in $db"
		psql -X -q -d $db -v ON_ERROR_STOP=1 -c "DROP EXTENSION stream_ext"
	done
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "DROP ROLE stream_ext_kafka"
done
say "ok: $ROUNDS rounds of CREATE EXTENSION in two databases at once"
say PASS
