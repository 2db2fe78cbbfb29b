#!/usr/bin/env bash
# The weekly cycle embedded against the same cycle on a loopback Apache Ballista cluster (a
# scheduler and two executors, each its own process on this machine), on one synthetic
# operator, in the same run. The ratio is the cluster's overhead: planning, task scheduling,
# shuffles and results over Arrow Flight, with the executors and the client sharing the cores.
#
#   bash bench/cluster.sh [SUBSCRIBERS]          (default: 1000000)
#
# Environment:
#   OUT          working directory (default $TMPDIR/retain-bench-cluster), removed unless KEEP=1
#   MONTHS       months of history (default 12)
#   RETAIN_BIN   use this retain binary instead of building one
#   TASKS        concurrent tasks per executor (default: half the cores, at least 1)
#
# Prints a Markdown table (paste into docs/scaling.md); raw measurements go to OUT/cluster.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-1000000}"
out="${OUT:-${TMPDIR:-/tmp}/retain-bench-cluster}"
months="${MONTHS:-12}"
export RETAIN_LOG="${RETAIN_LOG:-warn}"
cores=$(nproc)
tasks="${TASKS:-$(( cores / 2 > 0 ? cores / 2 : 1 ))}"

if [ -n "${RETAIN_BIN:-}" ]; then
  bin="$RETAIN_BIN"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/retain-target}"
  cargo build --release --quiet -p retain
  bin="$CARGO_TARGET_DIR/release/retain"
fi

rm -rf "$out"
mkdir -p "$out/logs"
tsv="$out/cluster.tsv"
printf 'engine\tstep\tseconds\tpeak_kib\n' > "$tsv"
pids=()
# Signals go to the retain processes, the children of GNU time (which ignores SIGINT): the
# executors stop on SIGINT, the scheduler on SIGTERM.
signal() { for p in "${pids[@]}"; do pkill "$1" -P "$p" 2> /dev/null || true; done; }
stop() { signal -INT; sleep 2; signal -TERM; wait 2> /dev/null || true; }
cleanup() { signal -TERM; wait 2> /dev/null || true; }
trap cleanup EXIT

# measure ENGINE STEP command...: wall time and peak memory of one process.
measure() {
  local engine="$1" step="$2"; shift 2
  /usr/bin/time -f '%e %M' -o "$out/time" "$@" > "$out/$engine-$step.json" 2> "$out/last.err" ||
    { echo "$engine $step failed:" >&2; tail -n 5 "$out/last.err" >&2; exit 1; }
  local seconds kib
  read -r seconds kib < <(tail -n 1 "$out/time")
  printf '%s\t%s\t%s\t%s\n' "$engine" "$step" "$seconds" "$kib" >> "$tsv"
}

"$bin" synth --subscribers "$size" --months "$months" --out "$out/in" > /dev/null
for table in plans subscribers contracts usage_monthly usage_weekly events campaign_history; do
  "$bin" ingest --dir "$out/ws" --table "$table" "$out/in/$table.csv" > /dev/null
done

steps=(features warn train score segment match)
run_cycle() {
  local engine="$1"; shift
  for step in "${steps[@]}"; do
    local extra=()
    [ "$step" = match ] && extra=(--budget "$size")
    measure "$engine" "$step" "$bin" "$step" --dir "$out/ws" --json "${extra[@]}" "$@"
  done
}

run_cycle embedded
cp "$(ls "$out/ws/scores/"*.csv | tail -n 1)" "$out/embedded-scores.csv"

port=$(( 20000 + RANDOM % 20000 ))
/usr/bin/time -f '%e %M' -o "$out/logs/scheduler.time" \
  "$bin" cluster scheduler --bind "127.0.0.1:$port" 2> "$out/logs/scheduler.log" &
pids+=($!)
for i in 1 2; do
  data=$(( port + 10 * i ))
  mkdir -p "$out/work-$i"
  /usr/bin/time -f '%e %M' -o "$out/logs/executor-$i.time" \
    "$bin" cluster executor --scheduler "127.0.0.1:$port" --bind "127.0.0.1:$data" \
    --concurrent-tasks "$tasks" --work-dir "$out/work-$i" 2> "$out/logs/executor-$i.log" &
  pids+=($!)
done
sleep 3
run_cycle cluster --engine "ballista://127.0.0.1:$port"

# The executors' peak memory, once they have stopped.
stop
pids=()
executor_kib=0
for i in 1 2; do
  kib=$(awk 'END { print $2 + 0 }' "$out/logs/executor-$i.time" 2> /dev/null || echo 0)
  [ "$kib" -gt "$executor_kib" ] && executor_kib=$kib
done

# The same scores file (scored and written by the executors on the cluster; the model
# version column aside, as the cluster's training saved a version of its own), warning list and
# segments on both engines.
cmp <(cut -d, -f1-6 "$out/embedded-scores.csv") \
  <(cut -d, -f1-6 "$(ls "$out/ws/scores/"*.csv | tail -n 1)") ||
  { echo "the scores differ between the engines" >&2; exit 1; }
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def load(engine, step):
    return json.load(open(f"{out}/{engine}-{step}.json"))
for key in ("red", "yellow", "blue"):
    assert load("embedded", "warn")[key] == load("cluster", "warn")[key], key
for key in ("rfm_group", "lifecycle_stage", "value_tier", "tags"):
    assert load("embedded", "segment")[key] == load("cluster", "segment")[key], key
PY

python3 - "$tsv" "$size" "$cores" "$tasks" "$executor_kib" <<'PY'
import csv, sys
tsv, size, cores, tasks, executor_kib = sys.argv[1:]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
by = {(r["engine"], r["step"]): r for r in rows}
steps = [r["step"] for r in rows if r["engine"] == "embedded"]
print(f"{int(size):,} subscribers; {cores} cores; loopback cluster: scheduler + 2 executors "
      f"x {tasks} tasks; the same scores file, warning counts and segments on both engines.\n")
print("| step | embedded | cluster | ratio | embedded peak | client peak on cluster |")
print("|---|---:|---:|---:|---:|---:|")
total = [0.0, 0.0]
for step in steps:
    e, c = by[("embedded", step)], by[("cluster", step)]
    es, cs = float(e["seconds"]), float(c["seconds"])
    total[0] += es; total[1] += cs
    print(f"| {step} | {es:.1f} s | {cs:.1f} s | {cs / es:.2f}x | "
          f"{int(e['peak_kib']) / 1024:.0f} MiB | {int(c['peak_kib']) / 1024:.0f} MiB |")
print(f"| **cycle** | **{total[0]:.1f} s** | **{total[1]:.1f} s** | "
      f"**{total[1] / total[0]:.2f}x** | | |")
print(f"\nPeak memory of an executor: {int(executor_kib) / 1024:.0f} MiB.")
PY
[ "${KEEP:-0}" = 1 ] || rm -rf "$out"
