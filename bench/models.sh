#!/usr/bin/env bash
# Model benchmark: retain's churn model against LightGBM, XGBoost, CatBoost and logistic
# regression on the public data sets in ../shared/data and on a synthetic operator, same rows
# for everyone.
#
#   bash bench/models.sh [OUT]
#
# OUT (default $TMPDIR/retain-bench-models) receives the splits, the synthetic workspace and
# models.md; the Markdown tables also go to stdout (paste into docs/benchmarks.md).
#
# Environment:
#   RETAIN_BIN          use this retain binary instead of building one
#   RETAIN_BENCH_VENV   Python virtualenv (default ~/.cache/retain-bench-venv)
#   RETAIN_SHARED_DATA  the public data sets (default ../shared/data)
#   SYNTH_SUBSCRIBERS   synthetic operator size (default 100000; 0 skips it)
#   RESPLITS            stratified splits of each public table fitted again (default 12; 0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-${TMPDIR:-/tmp}/retain-bench-models}}"
subscribers="${SYNTH_SUBSCRIBERS:-100000}"
venv="${RETAIN_BENCH_VENV:-$HOME/.cache/retain-bench-venv}"
export RETAIN_SHARED_DATA="${RETAIN_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
export RETAIN_LOG="${RETAIN_LOG:-warn}"
mkdir -p "$out"

# Python peers. Debian-style systems ship the venv module separately.
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -c 'import venv, ensurepip' 2> /dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get install -y python3-venv > /dev/null
  fi
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
py="$venv/bin/python"
"$py" -m pip install --quiet 'lightgbm~=4.7' 'xgboost~=3.2' 'catboost~=1.2' \
  'scikit-learn~=1.9' 'pandas~=3.1' 'pyarrow~=26.0'

# retain, the churn model included.
if [ -n "${RETAIN_BIN:-}" ]; then
  bin="$RETAIN_BIN"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/retain-target}"
  cargo build --release --quiet -p retain
  bin="$CARGO_TARGET_DIR/release/retain"
fi

# Synthetic operator: retain's own training set, kept between runs unless the binary is newer.
synthetic=()
if [ "$subscribers" -gt 0 ]; then
  dir="$out/synth-$subscribers"
  training="$dir/training.parquet"
  if [ ! -s "$training" ] || [ "$bin" -nt "$training" ]; then
    rm -rf "$dir"
    "$bin" synth --out "$dir/export" --subscribers "$subscribers" --months 18 > /dev/null
    for table in plans subscribers contracts usage_monthly usage_weekly events campaign_history; do
      "$bin" ingest --dir "$dir/ws" --table "$table" --max-bad-ratio 0 \
        "$dir/export/$table.csv" > /dev/null
    done
    "$bin" features --dir "$dir/ws" --training --out "$training" > /dev/null
  fi
  synthetic=(--synthetic "$training")
fi

"$py" bench/models.py --work "$out/splits" --retain "$bin" "${synthetic[@]}" \
  --resplits "${RESPLITS:-12}" \
  | tee "$out/models.md"
echo "written to $out/models.md" >&2
