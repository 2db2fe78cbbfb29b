#!/usr/bin/env bash
# Scale benchmark: the weekly cycle at several operator sizes, retain against the peer (the same
# steps in pandas + LightGBM + scikit-learn, bench/scale_peer.py) on the same synthetic files,
# measured in the same run. Every step is its own process under /usr/bin/time (wall time and
# peak resident memory).
#
#   bash bench/scale.sh [SUBSCRIBERS ...]        (default: 100000 1000000)
#
# Environment:
#   OUT                 working directory (default $TMPDIR/retain-bench-scale); each size uses
#                       OUT/<size>/{in,ws,peer} and is removed when done unless KEEP=1
#   MONTHS              months of history (default 12)
#   RETAIN_BIN          use this retain binary instead of building one
#   RETAIN_BENCH_VENV   Python virtualenv for the peer (default ~/.cache/retain-bench-venv)
#   PEER=0              measure retain alone
#   NETWORK=1           retain also loads the network's tables (cells, network_weekly,
#                       calling_circle; docs/network.md), which the peer does not read: what
#                       they add to the cycle
#
# Prints a Markdown table per size and a summary (paste into docs/scaling.md); the raw
# measurements go to OUT/scale.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out="${OUT:-${TMPDIR:-/tmp}/retain-bench-scale}"
months="${MONTHS:-12}"
venv="${RETAIN_BENCH_VENV:-$HOME/.cache/retain-bench-venv}"
export RETAIN_LOG="${RETAIN_LOG:-warn}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
mkdir -p "$out"

if [ -n "${RETAIN_BIN:-}" ]; then
  bin="$RETAIN_BIN"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/retain-target}"
  cargo build --release --quiet -p retain
  bin="$CARGO_TARGET_DIR/release/retain"
fi

peer="${PEER:-1}"
if [ "$peer" = 1 ]; then
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -c 'import venv, ensurepip' 2> /dev/null; then
      sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
      $sudo apt-get install -y python3-venv > /dev/null
    fi
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet 'lightgbm~=4.7' 'scikit-learn~=1.9' 'pandas~=3.1' \
    'pyarrow~=26.0'
fi

tsv="$out/scale.tsv"
printf 'subscribers\tside\tstep\tseconds\tpeak_kib\tstatus\n' > "$tsv"

# measure SIZE SIDE STEP command...: one process, its wall time and peak memory appended to
# the TSV; a failure is recorded, not fatal (the peer may run out of memory).
measure() {
  local size="$1" side="$2" step="$3"; shift 3
  local log status=ok
  log=$(mktemp)
  if ! /usr/bin/time -f '%e %M' -o "$log" "$@" > "$out/last.out" 2> "$out/last.err"; then
    status="failed: $(tail -n 1 "$out/last.err" | cut -c1-120)"
    grep -q 'Killed\|MemoryError\|signal 9' "$out/last.err" "$log" 2> /dev/null &&
      status="out of memory"
  fi
  local seconds kib
  read -r seconds kib < <(grep -E '^[0-9.]+ [0-9]+$' "$log" | tail -n 1 || echo "0 0")
  rm -f "$log"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$side" "$step" "$seconds" "$kib" "$status" >> "$tsv"
  [ "$status" = ok ]
}

for size in "${sizes[@]}"; do
  dir="$out/$size"
  rm -rf "$dir"
  mkdir -p "$dir"
  measure "$size" data synth "$bin" synth --subscribers "$size" --months "$months" --out "$dir/in"
  du -sb "$dir/in" | cut -f1 > "$dir/bytes"

  # retain: the weekly cycle, one step per process.
  ok=1
  tables=(plans subscribers contracts usage_monthly usage_weekly events campaign_history)
  [ "${NETWORK:-0}" = 1 ] && tables+=(cells network_weekly calling_circle)
  for table in "${tables[@]}"; do
    measure "$size" retain "ingest $table" "$bin" ingest --dir "$dir/ws" --table "$table" \
      "$dir/in/$table.csv" || ok=0
  done
  if [ $ok = 1 ]; then
    # Computed once into the workspace; scoring and matching read the snapshot.
    measure "$size" retain features "$bin" features --dir "$dir/ws" || true
    measure "$size" retain warn "$bin" warn --dir "$dir/ws" || true
    measure "$size" retain train "$bin" train --dir "$dir/ws" || true
    measure "$size" retain score "$bin" score --dir "$dir/ws" || true
    measure "$size" retain segment "$bin" segment --dir "$dir/ws" || true
    measure "$size" retain match "$bin" match --dir "$dir/ws" --budget "$size" || true
  fi
  # KEEP=1 keeps the workspace too, e.g. for bench/decision-load.sh at this size.
  [ "${KEEP:-0}" = 1 ] || rm -rf "$dir/ws"

  if [ "$peer" = 1 ]; then
    for step in ingest features warn score segment match; do
      measure "$size" peer "$step" "$venv/bin/python" "$repo/bench/scale_peer.py" "$step" \
        --in "$dir/in" --work "$dir/peer" || break
    done
  fi
  [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
done

python3 bench/scale_report.py "$tsv" "$months" | tee "$out/scale.md"
