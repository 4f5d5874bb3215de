# Kafka helpers for test scripts (sourced after test/lib.sh).
#
#   mock_start NBROKERS TOPIC:PARTITIONS...   build and start test/kafka/mock_broker;
#                                             sets BROKERS (bootstrap address)
#   mock_cmd "down 1"                         send a command, wait for its answer
#   produce TOPIC [kcat options] < lines      produce one message per line
#   mock_extra NBROKERS TOPIC:PARTITIONS...   one more cluster; sets EXTRA_BROKERS
KAFKA_DIR="$TEST_DIR/kafka"
_mock_answers=0

mock_start() {
	local bin="$SCRATCH/mock_broker"
	[ -x "$bin" ] || cc -O2 -Wall -o "$bin" "$KAFKA_DIR/mock_broker.c" -lrdkafka ||
		fail "could not build the mock broker"
	rm -f "$SCRATCH/mock.in"; mkfifo "$SCRATCH/mock.in"
	exec 7<>"$SCRATCH/mock.in"
	"$bin" "$@" <&7 >"$SCRATCH/mock.out" 2>"$SCRATCH/mock.err" &
	_bg_pids+=($!)
	MOCK_PID=$!
	local deadline=$((SECONDS + 20))
	until grep -q '^bootstrap ' "$SCRATCH/mock.out" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "mock broker did not start: $(cat "$SCRATCH/mock.err")"
		kill -0 $MOCK_PID 2>/dev/null || fail "mock broker exited: $(cat "$SCRATCH/mock.err")"
		sleep 0.05
	done
	BROKERS=$(sed -n 's/^bootstrap //p' "$SCRATCH/mock.out")
	_mock_answers=0
	export BROKERS
}

mock_cmd() {
	local deadline=$((SECONDS + 20)) n
	echo "$1" >&7
	_mock_answers=$((_mock_answers + 1))
	while :; do
		n=$(grep -c -E '^(ok|error)' "$SCRATCH/mock.out" || true)
		[ "$n" -ge $_mock_answers ] && break
		[ $SECONDS -lt $deadline ] || fail "mock broker did not answer '$1'"
		sleep 0.05
	done
	tail -n 1 "$SCRATCH/mock.out" | grep -q '^ok' || fail "mock broker: '$1': $(tail -n 1 "$SCRATCH/mock.out")"
}

produce() {
	local topic=$1; shift
	kcat -P -b "$BROKERS" -t "$topic" -X queue.buffering.max.ms=5 "$@" ||
		fail "kcat could not produce to $topic"
}

# mock_extra NBROKERS TOPIC:PARTITIONS...: one more mock cluster (it takes no
# commands); sets EXTRA_BROKERS.  Its input stays open (the helper stops at
# the end of its input) until the script ends.
mock_extra() {
	local n=$((${_mock_extras:-0} + 1)) deadline=$((SECONDS + 20))
	_mock_extras=$n
	mkfifo "$SCRATCH/mock$n.in"
	sleep 100000 > "$SCRATCH/mock$n.in" &
	_bg_pids+=($!)
	"$SCRATCH/mock_broker" "$@" < "$SCRATCH/mock$n.in" > "$SCRATCH/mock$n.out" 2> "$SCRATCH/mock$n.err" &
	_bg_pids+=($!)
	until grep -q '^bootstrap ' "$SCRATCH/mock$n.out" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "mock cluster $n did not start: $(cat "$SCRATCH/mock$n.err")"
		sleep 0.05
	done
	EXTRA_BROKERS=$(sed -n 's/^bootstrap //p' "$SCRATCH/mock$n.out")
}

# sink_refuses INSERT: true when the INSERT (with kafka_sink_full_wait 100 ms)
# fails because a Kafka producer of its stream has too many events staged;
# the error is left in $SCRATCH/bp.err
sink_refuses() {
	! psql -X -q -v ON_ERROR_STOP=1 -c "SET stream_ext.kafka_sink_full_wait = '100ms'" \
		-c "$1" 2>"$SCRATCH/bp.err" >/dev/null &&
		grep -q 'has too many events waiting for Kafka producer' "$SCRATCH/bp.err"
}
