#!/usr/bin/env bash
# The decision endpoint under load: `retain serve` on a workspace with a match run, asked for
# random subscribers' decisions on loopback as the store counter does.
#
#   bash bench/decision-load.sh WORKSPACE [SECONDS] [CONNECTIONS]
#   RATE=5000 bash bench/decision-load.sh WORKSPACE [SECONDS] [CONNECTIONS]
#
# Without RATE, wrk drives the server as fast as it answers (closed loop: throughput at
# saturation). With RATE, the open-loop generator crates/retain-server/examples/decision_load.rs
# sends RATE requests a second on a fixed schedule and times each from when it was due (the
# latency a store counter sees at that load). Needs wrk (Debian package `wrk`) for the first,
# and a release build (cargo build --release -p retain) for both.
# SUBSCRIBERS_CSV names the subscribers file to draw ids from when the workspace has no
# incoming/subscribers.csv (a workspace loaded with `retain ingest`, as bench/scale.sh does).
# Prints wrk's report (throughput, latency percentiles) and writes it to
# WORKSPACE/reports/decision-load.txt. With RATE, RUNS=N measures N runs on one server start
# (each appends its audit events to the store, as a day at the counter does), and each run
# also writes WORKSPACE/reports/decision-load-timeline-K.csv (per 100 ms: answers, answers over
# 5 ms, slowest) beside the server's log of audit drains and index passes
# (decision-load-server.log), to place a slow stretch against what the server was doing.
# GENERATOR names an already built decision_load to skip building it.
set -euo pipefail
ws="${1:?usage: decision-load.sh WORKSPACE [SECONDS] [CONNECTIONS]}"
seconds="${2:-20}"
connections="${3:-32}"
bin="${RETAIN_BIN:-${CARGO_TARGET_DIR:-target}/release/retain}"
rate="${RATE:-}"
if [ -n "$rate" ]; then
  generator="${GENERATOR:-}"
  if [ -z "$generator" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    cargo build --release --quiet -p retain-server --example decision_load
    generator="$CARGO_TARGET_DIR/release/examples/decision_load"
  fi
else
  command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
fi

work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# A store user for the run, and the subscribers to ask for.
name="bench-$$"
password="bench-password-$$"
echo "$password" | "$bin" user add --dir "$ws" --name "$name" --role store --password-stdin >/dev/null
cut -d, -f1 "$(ls "$ws"/offers/*/assignment.csv | sort | tail -n 1)" | tail -n +2 > "$work/ids"
subscribers="${SUBSCRIBERS_CSV:-$ws/incoming/subscribers.csv}"
tail -n +2 "$subscribers" | cut -d, -f1 | shuf -n 20000 --random-source=<(yes) >> "$work/ids"

mkdir -p "$ws/reports"
RETAIN_LOG=warn,retain_server::audit=info "$bin" serve --dir "$ws" --addr "127.0.0.1:$port" \
  2> "$ws/reports/decision-load-server.log" &
server=$!
for _ in $(seq 1 1500); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
token="$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/login" -H 'content-type: application/json' \
  -d "{\"name\":\"$name\",\"password\":\"$password\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

cat > "$work/decide.lua" <<'LUA'
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local auth = "Bearer " .. os.getenv("TOKEN")
math.randomseed(42)
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/v1/decisions/" .. id .. "?channel=store", { ["Authorization"] = auth })
end
LUA

if [ -n "$rate" ]; then
  # Warm up at the same rate, then measure.
  "$generator" "127.0.0.1:$port" "$token" "$work/ids" "$rate" 3 "$connections" >/dev/null
  {
    echo "decision endpoint, open loop at $rate requests/s, $(wc -l < "$work/ids") distinct keys, ${connections} connections, ${seconds}s, $(nproc) cores"
    for run in $(seq 1 "${RUNS:-1}"); do
      DECISION_LOAD_TIMELINE="$ws/reports/decision-load-timeline-$run.csv" \
        "$generator" "127.0.0.1:$port" "$token" "$work/ids" "$rate" "$seconds" "$connections"
    done
  } | tee "$ws/reports/decision-load.txt"
  # A clean stop empties the audit journal into the store.
  kill -TERM "$server"
  wait "$server" || true
  exit 0
fi
# Warm up, then measure.
IDS="$work/ids" TOKEN="$token" wrk -t2 -c8 -d3s -s "$work/decide.lua" "http://127.0.0.1:$port" >/dev/null
{
  echo "decision endpoint, $(wc -l < "$work/ids") distinct keys, ${connections} connections, ${seconds}s, $(nproc) cores"
  IDS="$work/ids" TOKEN="$token" wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/decide.lua" "http://127.0.0.1:$port"
} | tee "$ws/reports/decision-load.txt"
