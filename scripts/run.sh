#!/usr/bin/env bash
# Starts pstated on a data dir, drives it with `pstatectl load` for a while,
# prints the throughput and the status, then leaves the daemon serving in the
# foreground until Ctrl-C (INT or TERM is forwarded to the daemon, which stops
# cleanly with a final checkpoint).
#
# Usage: scripts/run.sh BIN DATA ADDR LOADTIME
#   BIN       directory holding pstated and pstatectl (built by make)
#   DATA      the data dir (created when missing)
#   ADDR      TCP address to listen on besides the unix socket DATA/pstated.sock
#   LOADTIME  how long the load runs, e.g. 30s
set -euo pipefail

if [ "$#" -ne 4 ]; then
	echo "usage: $0 BIN DATA ADDR LOADTIME" >&2
	exit 2
fi
bin=$1 data=$2 addr=$3 loadtime=$4
pstated=$bin/pstated
pstatectl=$bin/pstatectl

for b in "$pstated" "$pstatectl"; do
	if [ ! -x "$b" ]; then
		echo "run: $b is not built; 'make build' builds it from cmd/$(basename "$b")" >&2
		exit 1
	fi
done

mkdir -p "$data"
sock=$data/pstated.sock
ctl=("$pstatectl" --addr "unix:$sock")

# The daemon runs in a process group of its own (set -m), so that a Ctrl-C
# on the terminal reaches this script only and the daemon gets exactly one
# TERM: a second signal would make it stop at once, without its final
# checkpoint.
set -m
"$pstated" --data-dir "$data" --listen "unix:$sock,$addr" --log-format console &
pid=$!
set +m

# stop_daemon sends TERM to the daemon and waits for it; the daemon's exit
# status becomes ours. A trapped signal interrupts `wait`, hence the loop.
status=0
stop_daemon() {
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
	fi
	while kill -0 "$pid" 2>/dev/null; do
		wait "$pid" && status=0 || status=$?
	done
	wait "$pid" 2>/dev/null && status=0 || status=$?
}
# Whatever ends the script stops the daemon: a failure keeps its own exit
# status; INT or TERM ends with the daemon's (0 after a clean stop).
trap 'rc=$?; trap - EXIT; stop_daemon; exit "$rc"' EXIT
trap 'trap - EXIT; stop_daemon; exit "$status"' INT TERM

# Wait for readiness: the daemon recovers the data dir first, which takes
# as long as its log is. Poll /readyz a bounded number of times.
tries=600 # 0.2s apart: 2 minutes
for ((i = 0; i < tries; i++)); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run: pstated exited before it was ready (see its log above)" >&2
		exit 1
	fi
	if "${ctl[@]}" ready -q 2>/dev/null; then
		break
	fi
	sleep 0.2
done
if ((i == tries)); then
	"${ctl[@]}" ready || true
	echo "run: pstated not ready after $((tries / 5))s" >&2
	exit 1
fi

echo "run: pstated ready on unix:$sock and $addr; load for $loadtime" >&2
if ! "${ctl[@]}" load --duration "$loadtime"; then
	echo "run: the load failed; stopping pstated" >&2
	exit 1
fi
echo
"${ctl[@]}" status
echo
echo "run: pstated (pid $pid) serving on unix:$sock and $addr; Ctrl-C stops it" >&2

# Serve until the daemon stops by itself or a signal arrives (the trap runs
# stop_daemon and exits with the daemon's status).
while kill -0 "$pid" 2>/dev/null; do
	wait "$pid" && status=0 || status=$?
done
trap - EXIT
echo "run: pstated exited with status $status" >&2
exit "$status"
