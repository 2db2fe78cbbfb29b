#!/usr/bin/env bash
# Pipeline benchmark: synthesize N subscribers, load them, then time the weekly warning run, the
# rule backtest and the segmentation with the release binary, recording wall time and peak
# memory of each step.
#
#   bash bench/pipeline.sh [SUBSCRIBERS] [MONTHS] [DIR]
#
# Prints a Markdown table to stdout (paste into docs/benchmarks.md).
#
#   RETAIN_BIN   use this retain binary instead of building one (to compare two builds)
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers="${1:-1000000}"
months="${2:-12}"
dir="${3:-${TMPDIR:-/tmp}/retain-bench-$subscribers}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/retain-target}"
export RETAIN_LOG="${RETAIN_LOG:-warn}"
if [ -n "${RETAIN_BIN:-}" ]; then
  bin="$RETAIN_BIN"
else
  cargo build --release --quiet
  bin="$CARGO_TARGET_DIR/release/retain"
fi
rm -rf "$dir"
mkdir -p "$dir"

measure() { # label, command...
  local label="$1"; shift
  local log; log=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$log" "$@" > /dev/null
  read -r seconds kib < "$log"
  rm -f "$log"
  printf '| %s | %s | %.0f |\n' "$label" "$seconds" "$((kib / 1024))"
}

printf '| step (%s subscribers × %s months) | wall s | peak MiB |\n|---|---|---|\n' "$subscribers" "$months"
measure "synth (CSV)" "$bin" synth --subscribers "$subscribers" --months "$months" --out "$dir/in"
for table in plans subscribers contracts usage_monthly usage_weekly events campaign_history; do
  measure "ingest $table" "$bin" ingest --dir "$dir/ws" --table "$table" "$dir/in/$table.csv"
done
measure "warn (weekly list)" "$bin" warn --dir "$dir/ws"
measure "warn --backtest" "$bin" warn --dir "$dir/ws" --backtest
measure "segment (RFM, value, clusters, tags)" "$bin" segment --dir "$dir/ws"
