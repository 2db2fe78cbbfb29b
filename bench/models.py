#!/usr/bin/env python3
"""Churn-model benchmark: retain against LightGBM, XGBoost, CatBoost and logistic regression.

Every data set is split once; the exact split is written to WORK/<name>/train and test files,
the peers read those files back, and `retain model eval` gets the same files. All models are
scored by the same Python functions (`auc`, `top_decile_lift`) so that only the models differ.

    python bench/models.py --work DIR [--retain BIN] [--synthetic TRAINING.parquet]
                           [--resplits N]

Prints one Markdown table per data set, then the machine, to stdout. Run through
`bash bench/models.sh`, which prepares the environment and the synthetic operator.

One split of a few thousand rows decides a top decile by a churner or two, so `--resplits N`
also fits every model on N stratified 70/30 splits (seeds 0 … N−1) of each public table —
IBM Telco, Orange/BigML's two published files together, and its 5,000-row `mlc_churn` — and
reports each model's mean AUC and top-decile lift with retain's paired difference from it
(mean ± standard error over the splits). Times are not reported there.

Peers use fixed settings, the same for every data set (no tuning). The boosters share a
learning rate of 0.05: with it, LightGBM 500 rounds and XGBoost 500 rounds reproduce the peer
results recorded in the shared data README to the last digit, the library defaults do not.
  - LightGBM 500 rounds: LGBMClassifier(n_estimators=500, learning_rate=0.05, random_state=42).
  - LightGBM early-stopped: a stratified 20% of the training split held out (seed 42), up to
    1,000 rounds, stopping after 50 rounds without a better validation AUC; the test set is
    scored with the best iteration. Its training time is the fit on the other 80%. This one
    does not reproduce the README (IBM 0.836 here against 0.842, BigML 0.916 against 0.922):
    the README does not say how its early stopping was set up.
  - XGBoost: XGBClassifier(n_estimators=500, learning_rate=0.05, tree_method="hist",
    enable_categorical=True, random_state=42).
  - CatBoost: CatBoostClassifier with its defaults (ordered boosting, 1,000 iterations, the
    learning rate it picks for the table, native categories: `cat_features` are the categorical
    columns, missing ones the category "NA") and random_seed=42; the peer many data teams reach
    for first on tables with many categories.
  - Logistic regression: median imputation + standardization of numeric columns, most-frequent
    imputation + one-hot encoding of the others, LogisticRegression(max_iter=2000).
Preprocessing is what a data team would do in pandas: text columns where at least 95% of the
values parse as numbers become numbers (IBM's TotalCharges has blanks), other text columns
become pandas categories (with the training split's categories), the id column is dropped and
the target maps to 0/1 (Yes/True/1 → 1).

Times: every model is fitted and scored five times on the tables under 20,000 training rows,
whose fits take tens of milliseconds and move by a fifth between runs, and the median is
reported (retain: five `retain model eval` processes); once on larger ones. Scoring per core:
retain scores the test rows a second time on one thread (`score_seconds_one_core`); a peer's
all-core rate is divided by the cores, which credits it with scaling perfectly.

Top-decile lift: the churn rate among the first floor(n/10) rows after a stable sort by
descending score (ties keep file order), divided by the overall churn rate. floor, not round:
the README's BigML numbers (667 test rows → 66) were computed that way, and so does retain.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import catboost
import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow
import sklearn
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 42
LEARNING_RATE = 0.05
# Tables under this many training rows are fitted REPEATS times and timed by the median.
REPEAT_BELOW = 20_000
REPEATS = 5
REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO.parent / "shared" / "data"
# Agreement required between the metrics computed here and retain's own JSON.
TOLERANCE = 0.001


# --- metrics: one implementation for every model -------------------------------------------


def auc(y, score) -> float:
    return float(roc_auc_score(np.asarray(y), np.asarray(score, dtype=float)))


def top_decile_lift(y, score) -> float:
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    k = max(1, len(y) // 10)
    return float(y[order[:k]].mean() / y.mean())


# --- data sets --------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    train: Path
    test: Path
    target: str
    id_col: str | None
    note: str = ""


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def prepare_ibm(shared: Path, work: Path) -> Dataset:
    out = work / "ibm-telco"
    out.mkdir(parents=True, exist_ok=True)
    # Read as text so the written split keeps the raw values (e.g. the blank TotalCharges).
    raw = pd.read_csv(
        shared / "ibm-telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv",
        dtype=str,
        keep_default_na=False,
    )
    y = to_binary(raw["Churn"])
    train, test = train_test_split(raw, test_size=0.3, random_state=SEED, stratify=y)
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    return Dataset(
        "ibm-telco", out / "train.csv", out / "test.csv", "Churn", "customerID",
        "stratified 70/30 split, seed 42",
    )


def prepare_bigml(shared: Path, work: Path) -> Dataset:
    out = work / "orange-bigml"
    out.mkdir(parents=True, exist_ok=True)
    # The published 80/20 files are already the split: copy them byte for byte.
    shutil.copyfile(shared / "orange-bigml" / "churn-bigml-80.csv", out / "train.csv")
    shutil.copyfile(shared / "orange-bigml" / "churn-bigml-20.csv", out / "test.csv")
    return Dataset(
        "orange-bigml", out / "train.csv", out / "test.csv", "Churn", None,
        "the published 80/20 files; artificial data, a smoke test only",
    )


def prepare_synthetic(training: Path, work: Path) -> Dataset:
    out = work / "synthetic-operator"
    out.mkdir(parents=True, exist_ok=True)
    data = pd.read_parquet(training)
    # Out of time: the latest snapshot is the test set, every earlier one trains.
    latest = data["snapshot"].max()
    is_test = data["snapshot"] == latest
    data = data.drop(columns="snapshot")
    data[~is_test].to_parquet(out / "train.parquet", index=False)
    data[is_test].to_parquet(out / "test.parquet", index=False)
    return Dataset(
        "synthetic-operator", out / "train.parquet", out / "test.parquet", "label",
        "subscriber_id", f"retain's training set; test = latest snapshot ({latest})",
    )


def resplit_sources(shared: Path) -> list[tuple[str, pd.DataFrame, str, str | None]]:
    """The public tables to split again and again: name, rows as text, target, id column."""
    def text(path: Path) -> pd.DataFrame:
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    bigml = shared / "orange-bigml"
    return [
        ("ibm-telco", text(shared / "ibm-telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"),
         "Churn", "customerID"),
        ("orange-bigml (both files)",
         pd.concat([text(bigml / "churn-bigml-80.csv"), text(bigml / "churn-bigml-20.csv")]),
         "Churn", None),
        ("orange-bigml mlc_churn", text(bigml / "mlc_churn.csv"), "churn", None),
    ]


# --- preprocessing ----------------------------------------------------------------------------


def to_binary(values: pd.Series) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower()
    return text.isin(["yes", "true", "1", "1.0"]).to_numpy(dtype=np.int8)


def is_text(column: pd.Series) -> bool:
    # pandas 3 reads text as the `str` dtype, older versions as object.
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def features(ds: Dataset):
    """Features and 0/1 targets: numeric frames plus lists of the categorical columns."""
    train, test = read(ds.train), read(ds.test)
    y_train, y_test = to_binary(train.pop(ds.target)), to_binary(test.pop(ds.target))
    if ds.id_col:
        train, test = train.drop(columns=ds.id_col), test.drop(columns=ds.id_col)
    categorical = []
    for c in train.columns:
        if pd.api.types.is_bool_dtype(train[c]):
            train[c], test[c] = train[c].astype(np.int8), test[c].astype(np.int8)
        elif is_text(train[c]):
            parsed = pd.to_numeric(train[c], errors="coerce")
            present = train[c].notna().sum()
            if present and parsed.notna().sum() >= 0.95 * present:
                train[c], test[c] = parsed, pd.to_numeric(test[c], errors="coerce")
            else:
                categorical.append(c)
    return train, y_train, test, y_test, categorical


def as_categories(train: pd.DataFrame, test: pd.DataFrame, categorical: list[str]):
    train, test = train.copy(), test.copy()
    for c in categorical:
        train[c] = train[c].astype("category")
        test[c] = pd.Categorical(test[c], categories=train[c].cat.categories)
    return train, test


# --- models -----------------------------------------------------------------------------------


@dataclass
class Result:
    model: str
    auc: float | None = None
    lift: float | None = None
    train_s: float | None = None
    score_s: float | None = None
    rows_test: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    # Scoring on one core, where the model measures it (retain).
    score_one_core_s: float | None = None


def timed(fit, predict, X_test, repeats: int) -> tuple[np.ndarray, float, float]:
    """Fits and scores `repeats` times: the last scores, the median fit and scoring times."""
    fits, scorings = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        fit()
        trained = time.perf_counter()
        score = predict(X_test)
        scored = time.perf_counter()
        fits.append(trained - started)
        scorings.append(scored - trained)
    return score, float(np.median(fits)), float(np.median(scorings))


def repeats_for(rows_train: int) -> int:
    """Fits per model: a fit of a small table takes tens of milliseconds, and one such time
    moves by a fifth between runs on a shared machine; the median of five does not."""
    return REPEATS if rows_train < REPEAT_BELOW else 1


def run_peers(ds: Dataset, repeats: int) -> list[Result]:
    X_train, y_train, X_test, y_test, categorical = features(ds)
    C_train, C_test = as_categories(X_train, X_test, categorical)
    results = []

    def record(name, model, fit, X):
        score, train_s, score_s = timed(
            fit, lambda X: model.predict_proba(X)[:, 1], X, repeats
        )
        results.append(
            Result(name, auc(y_test, score), top_decile_lift(y_test, score), train_s, score_s,
                   len(y_test))
        )

    m = lgb.LGBMClassifier(
        n_estimators=500, learning_rate=LEARNING_RATE, random_state=SEED, verbose=-1
    )
    record("LightGBM 500 rounds", m, lambda: m.fit(C_train, y_train), C_test)

    fit_X, val_X, fit_y, val_y = train_test_split(
        C_train, y_train, test_size=0.2, random_state=SEED, stratify=y_train
    )
    # Only AUC is evaluated, so it alone decides when to stop.
    es = lgb.LGBMClassifier(
        n_estimators=1000, learning_rate=LEARNING_RATE, metric="auc", random_state=SEED,
        verbose=-1,
    )
    record(
        "LightGBM early-stopped",
        es,
        lambda: es.fit(
            fit_X, fit_y, eval_X=(val_X,), eval_y=(val_y,),
            callbacks=[lgb.early_stopping(50, verbose=False)],
        ),
        C_test,
    )
    results[-1].model += f" ({es.best_iteration_} rounds)"

    xm = xgb.XGBClassifier(
        n_estimators=500, learning_rate=LEARNING_RATE, tree_method="hist",
        enable_categorical=True, random_state=SEED,
    )
    record("XGBoost", xm, lambda: xm.fit(C_train, y_train), C_test)

    # CatBoost takes categories as text and no missing category.
    K_train, K_test = X_train.copy(), X_test.copy()
    for c in categorical:
        K_train[c] = K_train[c].astype(object).where(K_train[c].notna(), "NA").astype(str)
        K_test[c] = K_test[c].astype(object).where(K_test[c].notna(), "NA").astype(str)
    cb = catboost.CatBoostClassifier(
        random_seed=SEED, cat_features=categorical, verbose=0, allow_writing_files=False,
        thread_count=machine_cores(),
    )
    record("CatBoost", cb, lambda: cb.fit(K_train, y_train), K_test)

    numeric = [c for c in X_train.columns if c not in categorical]
    lr = Pipeline([
        ("prepare", ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             numeric),
            ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                          OneHotEncoder(handle_unknown="ignore")), categorical),
        ])),
        ("model", LogisticRegression(max_iter=2000)),
    ])
    # Plain object columns: the most-frequent imputer wants NaN, not pandas' string NA.
    L_train, L_test = X_train.copy(), X_test.copy()
    for c in categorical:
        L_train[c] = L_train[c].astype(object).where(L_train[c].notna(), np.nan)
        L_test[c] = L_test[c].astype(object).where(L_test[c].notna(), np.nan)
    record("logistic regression", lr, lambda: lr.fit(L_train, y_train), L_test)
    return results


def run_retain(ds: Dataset, binary: str | None, work: Path, repeats: int) -> Result:
    result = Result("retain")
    if not binary:
        result.error = "skipped: no retain binary given"
        return result
    predictions = work / ds.name / "retain-predictions.csv"
    predictions.unlink(missing_ok=True)
    command = [binary, "model", "eval", "--train", str(ds.train), "--test", str(ds.test),
               "--target", ds.target, "--json", "--predictions", str(predictions)]
    if ds.id_col:
        command += ["--id", ds.id_col]
    walls, trains, scorings, one_core = [], [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=3 * 3600)
        except (OSError, subprocess.TimeoutExpired) as error:
            result.error = f"failed: {error}"
            return result
        walls.append(time.perf_counter() - started)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).split())[-300:]
            result.error = f"failed (exit {done.returncode}): {tail}"
            return result
        try:
            report = json.loads(done.stdout)
            trains.append(float(report["train_seconds"]))
            scorings.append(float(report["score_seconds"]))
            one_core.append(float(report["score_seconds_one_core"]))
        except (ValueError, KeyError, TypeError) as error:
            result.error = f"failed: unreadable output: {error}"
            return result
    try:
        pred = pd.read_csv(predictions)
        y, score = pred["label"].to_numpy(), pred["probability"].to_numpy(dtype=float)
    except (ValueError, KeyError, OSError) as error:
        result.error = f"failed: unreadable output: {error}"
        return result
    result.auc, result.lift = auc(y, score), top_decile_lift(y, score)
    result.train_s, result.score_s = float(np.median(trains)), float(np.median(scorings))
    result.score_one_core_s = float(np.median(one_core))
    result.rows_test = len(pred)
    result.notes.append(
        f"retain process wall time {np.median(walls):.2f} s including reading the files"
    )
    result.notes += check_retain(ds, report, pred, result)
    return result


def check_retain(ds: Dataset, report: dict, pred: pd.DataFrame, result: Result) -> list[str]:
    """Warnings when retain's own metrics or its test rows differ from what was computed here."""
    warnings = []
    for key, mine in (("auc", result.auc), ("top_decile_lift", result.lift)):
        theirs = report.get(key)
        if theirs is None or abs(theirs - mine) > TOLERANCE:
            warnings.append(f"WARNING: retain's JSON {key} = {theirs}, computed here {mine:.4f}")
    test = read(ds.test)
    labels = to_binary(test[ds.target])
    if report.get("rows_test") != len(test) or len(pred) != len(test):
        warnings.append(
            f"WARNING: test rows: file {len(test)}, JSON rows_test {report.get('rows_test')}, "
            f"predictions {len(pred)}"
        )
    elif ds.id_col:
        expected = pd.Series(labels, index=test[ds.id_col].astype(str))
        got = pd.Series(pred["label"].to_numpy(), index=pred["id"].astype(str))
        if not got.index.isin(expected.index).all() or (
            expected.loc[got.index].to_numpy() != got.to_numpy()
        ).any():
            warnings.append("WARNING: retain's predictions do not match the test file's ids/labels")
    elif int(pred["label"].sum()) != int(labels.sum()):
        warnings.append("WARNING: retain's predictions have a different number of churners")
    for w in warnings:
        print(f"{ds.name}: {w}", file=sys.stderr)
    return warnings


# --- report -----------------------------------------------------------------------------------


def seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def ratio(a: float | None, b: float | None, digits: int) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.{digits}f}×"


def machine_cores() -> int:
    """The cores this process may run on: every model scores on all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def table(ds: Dataset, rows_train: int, rate: float, results: list[Result], repeats: int) -> str:
    cores = machine_cores()
    peers = [r for r in results if r.model != "retain"]
    retain = next((r for r in results if r.model == "retain"), None)
    lines = [
        f"### {ds.name}: {rows_train:,} training / {peers[0].rows_test:,} test rows, "
        f"{100 * rate:.2f}% churn in test ({ds.note})",
        "",
        "| model | AUC | top-decile lift | train s | score s | score rows/s | per core |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.error.replace('|', '/')} | | | | | |")
            continue
        throughput = f"{r.rows_test / r.score_s:,.0f}" if r.score_s else "—"
        # retain times its scoring again on one core; a peer's rate is shared out among the
        # cores it scored on, which credits it with perfect scaling.
        one_core = r.score_one_core_s or (r.score_s * cores if r.score_s else None)
        per_core = f"{r.rows_test / one_core:,.0f}" if one_core else "—"
        lines.append(
            f"| {r.model} | {r.auc:.3f} | {r.lift:.2f} | {seconds(r.train_s)} | "
            f"{seconds(r.score_s)} | {throughput} | {per_core} |"
        )
    if retain and not retain.error:
        early = next(r for r in peers if r.model.startswith("LightGBM early-stopped"))
        best = max(peers, key=lambda r: r.auc)
        against = [("LightGBM early-stopped", early)]
        if best is not early:
            against.append((f"best peer by AUC, {best.model}", best))
        for label, peer in against:
            lines.append(
                f"| retain / {label} | {ratio(retain.auc, peer.auc, 3)} | "
                f"{ratio(retain.lift, peer.lift, 2)} | {ratio(retain.train_s, peer.train_s, 2)} | "
                f"{ratio(retain.score_s, peer.score_s, 2)} | | |"
            )
    notes = [n for r in results for n in r.notes]
    if repeats > 1:
        notes.append(f"times are the median of {repeats} fits and scorings of every model")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines)


RESPLIT_TEST = 0.3


def resplits(shared: Path, work: Path, binary: str | None, n: int) -> str:
    """Every model on `n` stratified splits of each public table: mean AUC and lift, and
    retain's paired difference from each peer."""
    sections = []
    for name, raw, target, id_col in resplit_sources(shared):
        y = to_binary(raw[target])
        scores: dict[str, list[tuple[float, float]]] = {}
        errors: dict[str, str] = {}
        for seed in range(n):
            print(f"{name}: split {seed + 1} of {n}", file=sys.stderr)
            sub = f"resplits/{name.replace(' ', '-')}/seed-{seed}"
            out = work / sub
            out.mkdir(parents=True, exist_ok=True)
            train, test = train_test_split(
                raw, test_size=RESPLIT_TEST, random_state=seed, stratify=y
            )
            train.to_csv(out / "train.csv", index=False)
            test.to_csv(out / "test.csv", index=False)
            ds = Dataset(sub, out / "train.csv", out / "test.csv", target, id_col)
            for r in run_peers(ds, 1) + [run_retain(ds, binary, work, 1)]:
                model = r.model.split(" (")[0]
                if r.error:
                    errors[model] = r.error
                else:
                    scores.setdefault(model, []).append((r.auc, r.lift))
        sections.append(resplit_table(name, len(raw), n, scores, errors))
    return "\n\n".join(sections)


def resplit_table(name: str, rows: int, n: int, scores: dict, errors: dict) -> str:
    lines = [
        f"### {name}: {rows:,} rows, {n} stratified 70/30 splits (seeds 0–{n - 1})",
        "",
        "| model | mean AUC | mean top-decile lift | retain − model, AUC | retain − model, lift "
        "| splits where retain ≥ model (AUC / lift) |",
        "|---|---|---|---|---|---|",
    ]
    mine = np.array(scores.get("retain", []))
    for model, got in scores.items():
        got = np.array(got)
        row = f"| {model} | {got[:, 0].mean():.4f} | {got[:, 1].mean():.3f} |"
        if model == "retain" or len(mine) != len(got):
            lines.append(row + " | | |")
            continue
        diff = mine - got
        se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else [0.0, 0.0]
        wins = (diff >= 0).sum(axis=0)
        lines.append(
            row + f" {diff[:, 0].mean():+.4f} ± {se[0]:.4f} | {diff[:, 1].mean():+.3f} ± "
            f"{se[1]:.3f} | {wins[0]} / {wins[1]} of {len(diff)} |"
        )
    lines += [f"| {model} | {error.replace('|', '/')} | | | | |" for model, error in errors.items()]
    return "\n".join(lines)


def machine(binary: str | None) -> str:
    cpu, ram = platform.processor() or "unknown CPU", "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
        kib = next(int(line.split()[1]) for line in open("/proc/meminfo")
                   if line.startswith("MemTotal"))
        ram = f"{kib / 1024 ** 2:.1f} GiB"
    except (OSError, StopIteration):
        pass
    cores = machine_cores()
    retain = "none"
    if binary:
        try:
            retain = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                    timeout=60).stdout.strip() or "unknown"
        except OSError:
            retain = "not runnable"
    return (
        f"Machine: {cores} cores ({cpu}), {ram} RAM; "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {retain}; "
        f"Python {platform.python_version()}, LightGBM {lgb.__version__}, "
        f"XGBoost {xgb.__version__}, CatBoost {catboost.__version__}, "
        f"scikit-learn {sklearn.__version__}, "
        f"pandas {pd.__version__}, NumPy {np.__version__}, pyarrow {pyarrow.__version__}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="directory for the splits")
    parser.add_argument("--retain", help="retain binary (omit to benchmark the peers only)")
    parser.add_argument("--synthetic", type=Path, help="retain's training-set parquet")
    parser.add_argument(
        "--shared", type=Path,
        default=Path(os.environ.get("RETAIN_SHARED_DATA", DEFAULT_SHARED)),
        help="the shared data directory (env RETAIN_SHARED_DATA)",
    )
    parser.add_argument(
        "--resplits", type=int, default=0,
        help="also fit every model on this many stratified splits of each public table",
    )
    args = parser.parse_args()

    datasets = [prepare_ibm(args.shared, args.work), prepare_bigml(args.shared, args.work)]
    if args.synthetic:
        datasets.append(prepare_synthetic(args.synthetic, args.work))

    sections = []
    for ds in datasets:
        rows_train = len(read(ds.train))
        repeats = repeats_for(rows_train)
        print(f"{ds.name}: training the peers", file=sys.stderr)
        results = run_peers(ds, repeats)
        print(f"{ds.name}: retain model eval", file=sys.stderr)
        results.append(run_retain(ds, args.retain, args.work, repeats))
        test = read(ds.test)
        rate = float(to_binary(test[ds.target]).mean())
        sections.append(table(ds, rows_train, rate, results, repeats))
    if args.resplits > 0:
        sections.append(resplits(args.shared, args.work, args.retain, args.resplits))
    print("\n\n".join(sections) + "\n\n" + machine(args.retain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
