#!/usr/bin/env bash
# Paired runs of echo servers, for changes too small for one run to show: each round serves
# every server in turn (`compare serve <server> echo --cpu 0`) under the same load (`compare
# drive`, on CPU 1), in an order that rotates from round to round, and reads the server's CPU
# time (user + system) from /proc around the load. Prints each run, then every server's
# throughput and CPU per request against the first one's: median (min-max) of the per-round
# ratios. A server is `<compare binary>:<server name>`, so two builds can be compared:
#
#   bash benches/paired.sh closed 1000 4 12 old/compare:ours-uring target/release/compare:ours-uring
#   bash benches/paired.sh 50000 100 4 6 target/release/compare:ours-uring target/release/compare:tokio-ct
#
# Arguments: the load (`closed`, `closed:<depth>` or a rate per second), connections, seconds
# per run, rounds, then two or more servers. Loopback only.
set -euo pipefail
[ $# -ge 6 ] || { sed -n '2,13p' "$0"; exit 2; }
load=$1 conns=$2 secs=$3 rounds=$4
shift 4
servers=("$@")
driver=${servers[0]%%:*}
hz=$(getconf CLK_TCK)
runs=$(mktemp)
fifo=$(mktemp -u)
mkfifo "$fifo"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -f "$runs" "$fifo"
}
trap cleanup EXIT

# The server's CPU time so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for round in $(seq "$rounds"); do
  for k in $(seq 0 $((${#servers[@]} - 1))); do
    server=${servers[$(((k + round) % ${#servers[@]}))]}
    out=$(mktemp)
    # The server ends when its stdin closes: hold the fifo open for the run.
    exec 3<>"$fifo"
    "${server%%:*}" serve "${server#*:}" echo --cpu 0 <"$fifo" >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
    addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$out" | head -n 1)
    before=$(ticks "$pid")
    result=$(taskset -c 1 "$driver" drive "$addr" "$load" "$conns" "$secs")
    after=$(ticks "$pid")
    exec 3>&-
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    rm -f "$out"
    requests=$(awk '{ print $2 }' <<<"$result")
    echo "$round $server $requests $(((after - before) * 1000000 / hz)) ${result#*;}" | tee -a "$runs"
  done
done

# Per round, each server's ratios to the first server; then their medians and ranges.
awk -v first="${servers[0]}" '
  { req[$1, $2] = $3; cpu[$1, $2] = $4 / $3; rounds[$1] = 1; names[$2] = 1 }
  function report(label, v, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    printf "  %-22s %.3f (%.3f-%.3f)\n", label, (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), v[1], v[n]
  }
  END {
    for (s in names) {
      if (s == first) continue
      n = 0; delete t; delete c
      for (r in rounds) if ((r, s) in req && (r, first) in req) {
        n++; t[n] = req[r, s] / req[r, first]; c[n] = cpu[r, s] / cpu[r, first]
      }
      printf "%s against %s, %d rounds:\n", s, first, n
      report("throughput", t, n)
      report("CPU per request", c, n)
    }
  }' "$runs"
