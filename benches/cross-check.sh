#!/usr/bin/env bash
# Cross-checks with clients nobody here wrote: wrk against the HTTP example (both backends) and
# the tokio peer; wrk (HTTP/1.1) and h2load (h2c) against the hyper example on both backends and
# the same hyper service on tokio; and redis-benchmark against the kv example (both backends,
# inline and offloaded) beside a real redis-server. Servers on CPU 0, clients on CPU 1,
# loopback only.
#
#   bash benches/cross-check.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2"; }; }
need wrk wrk
need h2load nghttp2-client
need redis-benchmark redis-tools
need redis-server redis-server

cargo build --release -q -p examples --examples
cargo build --release -q -p benches --bin compare

last=""
cleanup() { [ -n "$last" ] && kill "$last" 2>/dev/null || true; }
trap cleanup EXIT

# start <command...>: runs a server on CPU 0 and prints its address once it listens.
start() {
  local out
  out=$(mktemp)
  taskset -c 0 "$@" >"$out" 2>/dev/null &
  last=$!
  for _ in $(seq 100); do
    [ -s "$out" ] && break
    sleep 0.05
  done
  head -1 "$out" | grep -oE '[0-9.]+:[0-9]+'
}

stop_last() { kill "$last" 2>/dev/null || true; wait "$last" 2>/dev/null || true; last=""; }

# wrk's pipelining script: 16 requests per write, as in TechEmpower's plaintext test, so that
# the server rather than wrk's single client thread is the bottleneck.
pipeline=$(mktemp --suffix=.lua)
cat >"$pipeline" <<'LUA'
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/plaintext") end
  req = table.concat(r)
end
request = function() return req end
LUA

echo "## wrk: HTTP plaintext (requests/s, latency p50 / p99; pipelined: 16 requests per write)"
for run in "16 plain" "256 plain" "16 pipelined"; do
  conns=${run%% *}
  mode=${run#* }
  script=$([ "$mode" = pipelined ] && echo "-s $pipeline" || true)
  for server in "uring:./target/release/examples/http --addr 127.0.0.1:0 --backend uring" \
                "epoll:./target/release/examples/http --addr 127.0.0.1:0 --backend epoll" \
                "tokio-ct:./target/release/compare serve tokio-ct http --cpu 0"; do
    name=${server%%:*}
    addr=$(start ${server#*:})
    # shellcheck disable=SC2086
    result=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency $script "http://$addr/plaintext")
    rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$result" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
    if [ "$mode" = pipelined ]; then
      # wrk times whole batches here, so its percentiles say nothing per request.
      echo "$conns conns $mode  $name: $rps req/s"
    else
      echo "$conns conns $mode  $name: $rps req/s, p50 $p50, p99 $p99"
    fi
    stop_last
  done
done
rm -f "$pipeline"

echo
echo "## hyper: GET / with wrk (HTTP/1.1, 64 conns) and h2load (h2c, 16 conns x 16 streams)"
for server in "uring:./target/release/examples/hyper --addr 127.0.0.1:0 --backend uring" \
              "epoll:./target/release/examples/hyper --addr 127.0.0.1:0 --backend epoll" \
              "tokio-ct:./target/release/compare serve tokio-ct hyper --cpu 0"; do
  name=${server%%:*}
  addr=$(start ${server#*:})
  result=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency "http://$addr/")
  rps=$(echo "$result" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$result" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$result" | awk '$1 == "99%" {print $2}')
  h2=$(taskset -c 1 h2load -D "$secs" -c16 -m16 -t1 "http://$addr/" 2>/dev/null)
  h2rps=$(echo "$h2" | awk '/^finished in/ {print $4}')
  h2ok=$(echo "$h2" | awk '/^requests:/ {print $8, "succeeded,", $10, "failed"}')
  echo "$name: wrk $rps req/s, p50 $p50, p99 $p99; h2load $h2rps req/s ($h2ok)"
  stop_last
done

echo
echo "## redis-benchmark: SET and GET, 50 clients, pipelining 16 (requests/s)"
port=$((20000 + RANDOM % 10000))
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no >/dev/null 2>&1 &
last=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
bench() {
  taskset -c 1 redis-benchmark -h 127.0.0.1 -p "$1" -c 50 -P 16 -n 500000 -t set,get -q 2>/dev/null \
    | tr '\r' '\n' | grep -oE '(SET|GET): [0-9.]+ requests per second, p50=[0-9.]+ msec' | tr '\n' ' '
}
echo "redis-server: $(bench "$port")"
stop_last
for backend in uring epoll; do
  for placement in inline offload; do
    flag=$([ "$placement" = offload ] && echo --offload || true)
    addr=$(start ./target/release/examples/kv --addr 127.0.0.1:0 --backend "$backend" --pool 1 $flag)
    echo "kv $backend $placement: $(bench "${addr##*:}")"
    stop_last
  done
done
