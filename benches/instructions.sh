#!/usr/bin/env bash
# User-space instructions per request of echo servers: each server runs under valgrind
# (cachegrind, no cache simulation) while `compare drive` loads it from CPU 1; the count is
# what the server's threads executed, divided by the requests it answered. Unlike time, the
# count does not depend on what else the machine runs, so a change of a few percent shows in
# one run. It leaves out the kernel, and the server runs many times slower than natively, so
# its turns batch more requests than they would: compare servers with each other in one run,
# not with a native profile.
#
#   bash benches/instructions.sh 100 10 target/release/compare:ours-uring target/release/compare:tokio-ct
#
# Arguments: connections, seconds, then one or more servers (`<compare binary>:<server name>`).
# Valgrind 3.19 cannot tell that io_uring_enter blocks, and holds every other thread of the
# process while a reactor waits in it, and takes no signal then: ours waits at most 1 ms at a
# time here (RUNTIME_MAX_PARK), so that the SIGTERM that ends the run gets through. Loopback
# only.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,16p' "$0"; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
conns=$1 secs=$2
shift 2
fifo=$(mktemp -u)
mkfifo "$fifo"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -f "$fifo"
}
trap cleanup EXIT

for server in "$@"; do
  out=$(mktemp)
  exec 3<>"$fifo"
  RUNTIME_MAX_PARK=1ms valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "${server%%:*}" serve "${server#*:}" echo --cpu 0 <"$fifo" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 300); do grep -q listening "$out" && break; sleep 0.1; done
  addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$out" | head -n 1)
  result=$(taskset -c 1 "${server%%:*}" drive "$addr" closed "$conns" "$secs")
  # Valgrind prints the count as the server ends, on SIGTERM too. A server asleep in
  # io_uring_enter with no timeout (tuned monoio, once the load is gone) takes the signal only
  # when its wait ends: a connection to it ends the wait.
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    (exec 9<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null || true
    sleep 0.2
  done
  wait "$pid" || true
  exec 3>&-
  pid=""
  requests=$(awk '{ print $2 }' <<<"$result")
  refs=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$out" | tr -d ,)
  rm -f "$out"
  [ -n "$refs" ] || { echo "$server: no instruction count (did it exit?)" >&2; exit 1; }
  echo "$server $requests requests, $((refs / requests)) instructions per request"
done
