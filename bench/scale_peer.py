#!/usr/bin/env python3
"""Scale-benchmark peer: retain's weekly pipeline written the way a data team would in pandas.

This is *not* part of retain. It is the comparison point of the scale benchmark: the same six
steps retain runs each week, written in ordinary, vectorised pandas + LightGBM + scikit-learn,
the way a competent data team would write them without retain: whole tables loaded into memory,
`read_csv` with explicit dtypes and date parsing, `groupby`/`merge`, no chunking and no per-row
Python loops. At 10M subscribers it may run out of memory; that is a result, not a bug.

    python bench/scale_peer.py STAGE --in CSV_DIR --work WORK_DIR

The benchmark driver runs each stage as its own process (under `/usr/bin/time`), in this order;
each stage reads what the earlier ones wrote to WORK_DIR (Parquet, via pyarrow) and prints one
JSON line `{"stage": ..., "rows": ..., ...}` to stdout.

  stage      retain equivalent          writes
  ingest     retain ingest (7 tables)   tables/<table>.parquet
  features   retain features            features.parquet  (as of the month after the last one)
  warn       retain warn                warnings.parquet  (rule scorecard, red/yellow/blue)
  score      retain model train+score   scores.parquet    (LightGBM churn probability, decile)
  segment    retain segment             segments.parquet  (RFM, value tier, lifecycle, k-means)
  match      retain offers match        matches.parquet   (best offer, greedy under a budget)

Churn label (stage `score`), a simplified copy of retain-features' labels (`labels.rs`):
quantity churn is a `cancel` or `port_out` event (retain also counts `stop_request`; here a stop
request is only a feature). A cancellation preceded by a suspension in the 4 months before it is
traced back 3 months (倒追): its *effective* month is the cancellation month minus 3. For a
snapshot S (first day of a month), the population is everyone who joined before S and whose
effective churn month is not before S; label = 1 when the effective month is S (horizon 1 month
after the 3-month suspension gap, so features for a cancellation in month M come from M-4 and
earlier). Features at S use the same feature function as stage `features`, with as_of = S.
The two latest snapshots with 6 months of history before them and 3 months of outcome after
them are used: the earlier one trains, the later one is the (time-based) early-stopping
validation set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.preprocessing import StandardScaler

SEED = 42
EXIT_KINDS = ["cancel", "port_out"]  # quantity churn
SUSPENSION_GAP_MONTHS = 3
EVENT_KINDS = [
    "complaint", "competitor_service_call", "forward_to_competitor", "service_call",
    "stop_request", "suspension", "resume", "plan_change", "port_out", "cancel",
]
MEASURES = [
    "fee", "voice_minutes", "calls", "data_mb", "sms", "vas_fee", "recharge", "active_days",
    "bundled_services",
]

# --- 1. ingest ---------------------------------------------------------------------------------
# Column kinds: id/int -> Int64 (nullable at read, int64 after validation), dec -> float64,
# str -> string, cat -> category, bool -> boolean, date/month/ts -> datetime with a format.
DATE_FORMATS = {"date": "%Y-%m-%d", "month": "%Y-%m", "week": "%Y-%m-%d", "ts": "%Y-%m-%d %H:%M:%S"}
# Also accepted, tried only when a column does not parse with its main format.
ALT_DATE_FORMATS = {"month": ["%Y-%m-%d", "%Y%m"], "ts": ["%Y-%m-%d %H:%M", "%Y-%m-%d"]}
USAGE_COLUMNS = {
    "subscriber_id": ("id", True), "fee": ("dec", True), "voice_minutes": ("int", True),
    "calls_out": ("int", True), "calls_in": ("int", True), "data_mb": ("dec", True),
    "sms": ("int", True), "bundled_services": ("int", True), "vas_fee": ("dec", True),
    "recharge": ("dec", True), "arrears": ("dec", True), "suspended_days": ("int", True),
    "active_days": ("int", True), "plan_id": ("cat", False),
}
SCHEMAS: dict[str, dict] = {
    "plans": {
        "columns": {
            "plan_id": ("str", True), "name": ("str", True), "monthly_fee": ("dec", True),
            "data_mb": ("int", True), "voice_minutes": ("int", True), "tier": ("int", True),
        },
        "key": ["plan_id"],
    },
    "subscribers": {
        "columns": {
            "subscriber_id": ("id", True), "msisdn": ("str", True), "join_date": ("date", True),
            "birth_date": ("date", False), "gender": ("cat", False), "province": ("cat", True),
            "city": ("cat", True), "county": ("cat", False), "customer_type": ("cat", True),
            "group_id": ("str", False), "family_id": ("str", False), "plan_id": ("cat", True),
            "channel_preference": ("cat", False), "branch_id": ("cat", True),
            "manager_id": ("cat", False), "status": ("cat", True), "status_date": ("date", True),
        },
        "key": ["subscriber_id"],
    },
    "contracts": {
        "columns": {
            "subscriber_id": ("id", True), "kind": ("cat", True), "start_date": ("date", True),
            "end_date": ("date", True), "monthly_amount": ("dec", True),
        },
        "key": ["subscriber_id", "kind", "start_date"],
    },
    "usage_monthly": {
        "columns": {"subscriber_id": ("id", True), "period": ("month", True),
                    **{k: v for k, v in USAGE_COLUMNS.items() if k != "subscriber_id"}},
        "key": ["subscriber_id", "period"],
    },
    "usage_weekly": {
        "columns": {"subscriber_id": ("id", True), "period": ("week", True),
                    **{k: v for k, v in USAGE_COLUMNS.items() if k != "subscriber_id"}},
        "key": ["subscriber_id", "period"],
    },
    "events": {
        "columns": {
            "subscriber_id": ("id", True), "timestamp": ("ts", True), "kind": ("cat", True),
            "category": ("cat", False), "severity": ("cat", False),
            "resolved_on_time": ("bool", False), "from_plan": ("cat", False),
            "to_plan": ("cat", False), "channel": ("cat", False), "competitor": ("cat", False),
            "detail": ("str", False),
        },
        "key": ["subscriber_id", "timestamp", "kind"],
    },
    "campaign_history": {
        "columns": {
            "campaign_id": ("cat", True), "period": ("month", True), "subscriber_id": ("id", True),
            "arm": ("cat", True), "offer_id": ("cat", False), "offer_kind": ("cat", False),
            "channel": ("cat", True), "contact_date": ("date", True), "reached": ("bool", True),
            "accepted": ("bool", True), "cost": ("dec", True),
        },
        "key": ["campaign_id", "subscriber_id"],
    },
}
TABLE_ORDER = ["plans", "subscribers", "contracts", "usage_monthly", "usage_weekly", "events",
               "campaign_history"]
PANDAS_DTYPE = {"id": "Int64", "int": "Int64", "dec": "float64", "str": "str", "cat": "category",
                "bool": "boolean"}


def read_table(path: Path, columns: dict) -> pd.DataFrame:
    """read_csv with explicit dtypes and date formats; falls back to coercion on bad values."""
    dtypes = {c: PANDAS_DTYPE[k] for c, (k, _) in columns.items() if k in PANDAS_DTYPE}
    dates = {c: DATE_FORMATS[k] for c, (k, _) in columns.items() if k in DATE_FORMATS}
    bools = dict(true_values=["true", "True", "TRUE", "1"], false_values=["false", "False", "FALSE", "0"])
    try:
        df = pd.read_csv(path, dtype=dtypes, parse_dates=list(dates), date_format=dates,
                         usecols=list(columns), **bools)
    except (ValueError, TypeError):
        # A malformed number somewhere: read numbers as text and coerce, bad values become NaN.
        numeric = [c for c, (k, _) in columns.items() if k in ("id", "int", "dec")]
        text_dtypes = {**dtypes, **{c: "str" for c in numeric}}
        df = pd.read_csv(path, dtype=text_dtypes, parse_dates=list(dates), date_format=dates,
                         usecols=list(columns), **bools)
        for c in numeric:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(dtypes[c])
    for c, fmt in dates.items():
        if not pd.api.types.is_datetime64_any_dtype(df[c]):  # some value did not parse
            parsed = pd.to_datetime(df[c], format=fmt, errors="coerce")
            for alt in ALT_DATE_FORMATS.get(columns[c][0], []):
                parsed = parsed.fillna(pd.to_datetime(df[c], format=alt, errors="coerce"))
            df[c] = parsed
    for c, (kind, _) in columns.items():
        if kind == "month":  # stored as the first day of the month
            df[c] = df[c].dt.to_period("M").dt.to_timestamp()
    return df


def validate(name: str, df: pd.DataFrame, subscriber_ids, plan_ids) -> tuple[pd.DataFrame, dict]:
    schema = SCHEMAS[name]
    columns = schema["columns"]
    read = len(df)
    required = [c for c, (_, req) in columns.items() if req]
    ok = df[required].notna().all(axis=1)
    for c, (kind, _) in columns.items():
        if kind in ("id", "int", "dec"):
            ok &= ~(df[c] < 0).fillna(False)  # negative fees, amounts, counts
        if kind == "id":
            ok &= ~(df[c] < 1).fillna(False)
    if name == "contracts":
        ok &= df["end_date"] >= df["start_date"]
    df = df[ok]
    invalid = read - len(df)
    before = len(df)
    df = df.drop_duplicates(subset=schema["key"], keep="first")
    duplicates = before - len(df)
    before = len(df)
    if name == "subscribers":
        df = df[df["plan_id"].isin(plan_ids)]
    elif name != "plans":
        df = df[df["subscriber_id"].isin(subscriber_ids)]
    orphans = before - len(df)
    for c, (kind, req) in columns.items():
        if kind in ("id", "int") and req:
            df[c] = df[c].astype("int64")
    df = df.reset_index(drop=True)
    return df, {"read": read, "loaded": len(df), "dropped_invalid": invalid,
                "dropped_duplicate": duplicates, "dropped_orphan": orphans}


def stage_ingest(in_dir: Path, work: Path) -> dict:
    out = work / "tables"
    out.mkdir(parents=True, exist_ok=True)
    report, subscriber_ids, plan_ids = {}, None, None
    for name in TABLE_ORDER:
        df = read_table(in_dir / f"{name}.csv", SCHEMAS[name]["columns"])
        df, counts = validate(name, df, subscriber_ids, plan_ids)
        if name == "plans":
            plan_ids = df["plan_id"]
        elif name == "subscribers":
            subscriber_ids = df["subscriber_id"]
        df.to_parquet(out / f"{name}.parquet", engine="pyarrow", index=False)
        report[name] = counts
        del df
    return {"stage": "ingest", "rows": sum(r["loaded"] for r in report.values()),
            "read": sum(r["read"] for r in report.values()), "tables": report}


# --- 2. features -------------------------------------------------------------------------------


def load(work: Path, name: str, columns=None) -> pd.DataFrame:
    return pd.read_parquet(work / "tables" / f"{name}.parquet", engine="pyarrow", columns=columns)


def load_feature_tables(work: Path) -> dict[str, pd.DataFrame]:
    usage = ["subscriber_id", "period", "fee", "voice_minutes", "calls_out", "calls_in", "data_mb",
             "sms", "vas_fee", "recharge", "arrears", "suspended_days", "active_days",
             "bundled_services"]
    return {
        "plans": load(work, "plans"),
        "subscribers": load(work, "subscribers", ["subscriber_id", "join_date", "birth_date",
                                                  "customer_type", "group_id", "family_id",
                                                  "plan_id"]),
        "contracts": load(work, "contracts"),
        "usage_monthly": load(work, "usage_monthly", usage + ["plan_id"]),
        "usage_weekly": load(work, "usage_weekly", ["subscriber_id", "period", "fee",
                                                    "voice_minutes", "data_mb", "active_days"]),
        "events": load(work, "events", ["subscriber_id", "timestamp", "kind", "category",
                                        "severity", "resolved_on_time", "from_plan", "to_plan"]),
    }


def month_number(dates) -> pd.Series | int:
    """Months since year 0: differences of these count calendar months."""
    if isinstance(dates, pd.Timestamp):
        return dates.year * 12 + dates.month - 1
    return dates.dt.year * 12 + dates.dt.month - 1


def last_monthly_as_of(usage_monthly: pd.DataFrame) -> pd.Timestamp:
    return usage_monthly["period"].max() + pd.DateOffset(months=1)


def churn_effective_months(events: pd.DataFrame) -> pd.Series:
    """First effective quantity-churn month per subscriber (cancel/port_out, traced back 倒追)."""
    exits = events.loc[events["kind"].isin(EXIT_KINDS), ["subscriber_id", "timestamp", "kind"]]
    exits = exits.assign(kind=exits["kind"].astype("str"), exit_id=np.arange(len(exits)))
    susp = events.loc[events["kind"] == "suspension", ["subscriber_id", "timestamp"]]
    pairs = exits.merge(susp.rename(columns={"timestamp": "susp_ts"}), on="subscriber_id")
    window_start = pairs["timestamp"] - pd.DateOffset(months=SUSPENSION_GAP_MONTHS + 1)
    pairs = pairs[(pairs["susp_ts"] < pairs["timestamp"]) & (pairs["susp_ts"] >= window_start)]
    suspended_before = exits["exit_id"].isin(pairs["exit_id"])
    churn_month = exits["timestamp"].dt.to_period("M").dt.to_timestamp()
    traced = (exits["kind"] == "cancel") & suspended_before
    effective = churn_month.where(~traced, churn_month - pd.DateOffset(months=SUSPENSION_GAP_MONTHS))
    return effective.groupby(exits["subscriber_id"]).min().rename("effective_month")


def build_features(t: dict[str, pd.DataFrame], as_of: pd.Timestamp,
                   population: pd.Index | None = None) -> pd.DataFrame:
    """One row per subscriber alive at `as_of`, from data strictly before `as_of`.

    Alive: joined before as_of and no cancel/port_out event before it. `population`, when
    given, restricts the rows further (the training snapshots pass retain's population).
    """
    as_of = pd.Timestamp(as_of)
    as_of_month = month_number(as_of)
    subs = t["subscribers"]
    events = t["events"]
    events = events[events["timestamp"] < as_of]
    gone = events.loc[events["kind"].isin(EXIT_KINDS), "subscriber_id"].unique()
    subs = subs[(subs["join_date"] < as_of) & ~subs["subscriber_id"].isin(gone)]
    if population is not None:
        subs = subs[subs["subscriber_id"].isin(population)]
    f = subs[["subscriber_id"]].set_index("subscriber_id")

    # Profile.
    s = subs.set_index("subscriber_id")
    f["tenure_months"] = as_of_month - month_number(s["join_date"])
    f["age"] = (as_of - s["birth_date"]).dt.days / 365.25
    f["is_group_member"] = (s["customer_type"] == "group_member").astype("int8")
    f["family_size"] = s.groupby("family_id")["family_id"].transform("size")
    f["group_size"] = s.groupby("group_id")["group_id"].transform("size")
    f[["family_size", "group_size"]] = f[["family_size", "group_size"]].fillna(1)

    # Monthly usage: complete months before as_of, `ago` = 1 for the last one.
    m = t["usage_monthly"]
    m = m[m["period"] < as_of]
    m = m.assign(ago=as_of_month - month_number(m["period"]),
                 calls=m["calls_out"] + m["calls_in"])
    m6 = m[m["ago"] <= 6]
    m3 = m6[m6["ago"] <= 3]
    m1 = m6[m6["ago"] == 1].set_index("subscriber_id")
    f = f.join(m1[MEASURES + ["arrears", "suspended_days"]].add_suffix("_1m"))
    f = f.join(m3.groupby("subscriber_id")[MEASURES].mean().add_suffix("_3m"))
    f = f.join(m6.groupby("subscriber_id")[MEASURES].mean().add_suffix("_6m"))
    f["arpu"] = f["fee_3m"]
    prev3 = m6[m6["ago"] >= 4].groupby("subscriber_id")["fee"].mean()
    f["fee_prev3m"] = prev3
    f["arpu_trend"] = f["fee_3m"] / prev3.where(prev3 > 0)
    f["fee_std_6m"] = m6.groupby("subscriber_id")["fee"].std()
    f["months_6m"] = m6.groupby("subscriber_id").size()
    # Least-squares slope per month over 6 months, from grouped sums (x = -ago).
    x = -m6["ago"].astype("float64")
    sums = pd.DataFrame({"subscriber_id": m6["subscriber_id"], "n": 1.0, "x": x, "xx": x * x,
                         "fee": m6["fee"], "xfee": x * m6["fee"], "data": m6["data_mb"],
                         "xdata": x * m6["data_mb"]}).groupby("subscriber_id").sum()
    denom = sums["n"] * sums["xx"] - sums["x"] ** 2
    denom = denom.where(denom > 0)
    f["fee_slope_6m"] = (sums["n"] * sums["xfee"] - sums["x"] * sums["fee"]) / denom
    f["data_slope_6m"] = (sums["n"] * sums["xdata"] - sums["x"] * sums["data"]) / denom
    # Arrears and suspension.
    g3 = m3.groupby("subscriber_id")
    f["arrears_max_3m"] = g3["arrears"].max()
    f["months_in_arrears_3m"] = (m3["arrears"] > 0).groupby(m3["subscriber_id"]).sum()
    f["suspended_days_3m"] = g3["suspended_days"].sum()
    f["months_since_recharge"] = m[m["recharge"] > 0].groupby("subscriber_id")["ago"].min()
    # The plan billed in the last month (not the current plan, which would leak later changes).
    billed = m.sort_values("ago").drop_duplicates("subscriber_id").set_index("subscriber_id")
    plan_id = billed["plan_id"].astype("str").reindex(f.index)
    plan_id = plan_id.fillna(s["plan_id"].astype("str"))
    plans = t["plans"].set_index("plan_id")
    f["plan_fee"] = plan_id.map(plans["monthly_fee"]).astype("float64")
    f["plan_tier"] = plan_id.map(plans["tier"]).astype("float64")
    f["plan_data_mb"] = plan_id.map(plans["data_mb"]).astype("float64")
    del m, m6, m3, m1, sums, billed

    # Weekly usage: complete weeks (Monday + 7 days <= as_of), last 4 against the 4 before.
    w = t["usage_weekly"]
    week_end = w["period"] + pd.Timedelta(days=7)
    w = w[(week_end <= as_of) & (week_end > as_of - pd.Timedelta(weeks=8))]
    ago_w = (as_of - (w["period"] + pd.Timedelta(days=7))).dt.days // 7 + 1
    weekly_cols = ["fee", "voice_minutes", "data_mb", "active_days"]
    last4 = w[ago_w <= 4].groupby("subscriber_id")[weekly_cols].sum().add_suffix("_4w")
    prev4 = w[ago_w > 4].groupby("subscriber_id")[weekly_cols].sum().add_suffix("_prev4w")
    f = f.join(last4).join(prev4)
    for c in weekly_cols:
        f[f"{c}_4w_ratio"] = f[f"{c}_4w"] / f[f"{c}_prev4w"].where(f[f"{c}_prev4w"] > 0)
    w1 = w[ago_w == 1].set_index("subscriber_id")[["fee", "data_mb"]].add_suffix("_1w")
    w25 = w[(ago_w >= 2) & (ago_w <= 5)].groupby("subscriber_id")[["fee", "data_mb"]].mean()
    f = f.join(w1).join(w25.add_suffix("_w2_5"))
    del w, last4, prev4, w1, w25

    # Events: counts per kind over 1 and 3 months, complaint details, days since.
    e = events[events["subscriber_id"].isin(f.index)]
    e3 = e[e["timestamp"] >= as_of - pd.DateOffset(months=3)]
    e1 = e3[e3["timestamp"] >= as_of - pd.DateOffset(months=1)]
    for window, frame in (("3m", e3), ("1m", e1)):
        counts = frame.groupby(["subscriber_id", "kind"], observed=True).size().unstack("kind")
        counts = counts.reindex(columns=[k for k in EVENT_KINDS if k not in EXIT_KINDS])
        f = f.join(counts.add_prefix("n_").add_suffix(f"_{window}"))
    complaints = e3[e3["kind"] == "complaint"]
    f["n_complaint_network_3m"] = (complaints["category"] == "network").groupby(
        complaints["subscriber_id"]).sum()
    f["n_complaint_serious_3m"] = (complaints["severity"] == "serious").groupby(
        complaints["subscriber_id"]).sum()
    f["n_complaint_late_3m"] = (complaints["resolved_on_time"] == False).groupby(  # noqa: E712
        complaints["subscriber_id"]).sum()
    fwd = e3[e3["kind"] == "forward_to_competitor"]
    f["forward_days_3m"] = fwd.assign(day=fwd["timestamp"].dt.normalize()).groupby(
        "subscriber_id")["day"].nunique()
    changes = e3[e3["kind"] == "plan_change"]
    from_tier = changes["from_plan"].astype("str").map(plans["tier"]).astype("float64")
    to_tier = changes["to_plan"].astype("str").map(plans["tier"]).astype("float64")
    f["n_downgrade_3m"] = (to_tier < from_tier).groupby(changes["subscriber_id"]).sum()
    for kind in ("complaint", "competitor_service_call"):
        last = e[e["kind"] == kind].groupby("subscriber_id")["timestamp"].max()
        f[f"days_since_{kind}"] = (as_of - last).dt.days
    last_event = e.groupby("subscriber_id")["timestamp"].max()
    f["days_since_event"] = (as_of - last_event).dt.days
    count_cols = [c for c in f.columns if c.startswith(("n_", "forward_days"))]
    f[count_cols] = f[count_cols].fillna(0)
    del e, e3, e1, complaints, fwd, changes

    # Contracts in force at as_of.
    c = t["contracts"]
    c = c[(c["start_date"] < as_of) & (c["end_date"] >= as_of)]
    c = c.assign(months_left=month_number(c["end_date"]) - as_of_month)
    subsidy = c[c["kind"] == "device_subsidy"].groupby("subscriber_id")
    f["subsidy_months_left"] = subsidy["months_left"].max()
    f["subsidy_monthly"] = subsidy["monthly_amount"].sum()
    f["has_subsidy"] = f["subsidy_months_left"].notna().astype("int8")
    f["contract_months_left"] = c[c["kind"] != "device_subsidy"].groupby(
        "subscriber_id")["months_left"].min()

    f = f.reset_index()
    f.insert(1, "as_of", as_of)
    return f


def stage_features(in_dir: Path, work: Path) -> dict:
    t = load_feature_tables(work)
    as_of = last_monthly_as_of(t["usage_monthly"])
    f = build_features(t, as_of)
    f.to_parquet(work / "features.parquet", engine="pyarrow", index=False)
    return {"stage": "features", "rows": len(f), "columns": f.shape[1] - 2,
            "as_of": str(as_of.date())}


# --- 3. warn -----------------------------------------------------------------------------------
# (code, points, description, condition over the features frame). A missing value never fires
# (comparisons with NaN are False).
RULES = [
    ("PW01", 3, "ARPU of the last 3 months down 30% or more against the 3 before",
     lambda f: (f["fee_prev3m"] >= 10) & (f["arpu_trend"] <= 0.7)),
    ("PW02", 2, "Data last month below half the 6-month average",
     lambda f: (f["data_mb_6m"] >= 100) & (f["data_mb_1m"] < 0.5 * f["data_mb_6m"])),
    ("PW03", 3, "Two or more complaints in 3 months", lambda f: f["n_complaint_3m"] >= 2),
    ("PW04", 1, "A complaint in 3 months", lambda f: f["n_complaint_3m"] >= 1),
    ("PW05", 3, "Serious network complaint in 3 months",
     lambda f: f["n_complaint_network_3m"].gt(0) & f["n_complaint_serious_3m"].gt(0)),
    ("PW06", 4, "Called a competitor's service line in 3 months",
     lambda f: f["n_competitor_service_call_3m"] >= 1),
    ("PW07", 3, "Calls forwarded to competitor numbers in 3 months",
     lambda f: f["n_forward_to_competitor_3m"] >= 1),
    ("PW08", 2, "Contract or lease ends within 2 months", lambda f: f["contract_months_left"] <= 2),
    ("PW09", 2, "Arrears of 50 yuan or more last month", lambda f: f["arrears_1m"] >= 50),
    ("PW10", 6, "Stopped for arrears / suspended in the last 3 months",
     lambda f: (f["suspended_days_3m"] > 0) | (f["n_suspension_3m"] >= 1)),
    ("PW11", 1, "Low engagement: under 10 active days last month after 20+ on average",
     lambda f: (f["active_days_1m"] < 10) & (f["active_days_6m"] >= 20)),
    ("PW12", 5, "Plan downgrade in 3 months", lambda f: f["n_downgrade_3m"] >= 1),
    ("PW13", 10, "Asked to stop or cancel the line in 3 months",
     lambda f: f["n_stop_request_3m"] >= 1),
    ("PW14", 2, "Weekly fee of the last 4 weeks below half the 4 before",
     lambda f: (f["fee_prev4w"] >= 5) & (f["fee_4w_ratio"] < 0.5)),
]
WARN_THRESHOLD = 5  # a score at or above it puts the subscriber on the list
LEVELS = [("red", 10), ("yellow", 7), ("blue", WARN_THRESHOLD)]


def stage_warn(in_dir: Path, work: Path) -> dict:
    f = pd.read_parquet(work / "features.parquet", engine="pyarrow")
    hits = pd.DataFrame({code: cond(f).fillna(False).astype(bool) for code, _, _, cond in RULES})
    points = pd.Series({code: pts for code, pts, _, _ in RULES})
    score = hits.astype("int16").mul(points, axis=1).sum(axis=1)
    at_risk = score >= WARN_THRESHOLD
    level = np.select([score >= lo for _, lo in LEVELS], [name for name, _ in LEVELS], default="")
    rules = pd.Series("", index=f.index, dtype="str")[at_risk]
    for code in hits.columns:  # one vectorised concatenation per rule, over the listed rows
        rules = rules + np.where(hits.loc[at_risk, code], code + ",", "")
    rules = rules.str.rstrip(",")
    cohort = pd.cut(f["tenure_months"], [-np.inf, 5, 12, np.inf], labels=["lt6m", "6to12m", "gt12m"])
    subs = load(work, "subscribers", ["subscriber_id", "branch_id", "manager_id"])
    out = pd.DataFrame({"subscriber_id": f["subscriber_id"], "as_of": f["as_of"],
                        "score": score, "level": level, "cohort": cohort})[at_risk]
    out["rules"] = rules
    out = out.merge(subs, on="subscriber_id", how="left").sort_values(
        ["score", "subscriber_id"], ascending=[False, True])
    out.to_parquet(work / "warnings.parquet", engine="pyarrow", index=False)
    counts = out["level"].value_counts()
    return {"stage": "warn", "rows": len(out), "scored": len(f),
            **{name: int(counts.get(name, 0)) for name, _ in LEVELS},
            "rule_hits": {k: int(v) for k, v in hits.sum().items()}}


# --- 4. score ----------------------------------------------------------------------------------
MAX_TRAIN_ROWS = 500_000
MAX_VALID_ROWS = 125_000
NON_FEATURES = ["subscriber_id", "as_of", "snapshot", "label"]


def labelled_snapshot(t: dict, snapshot: pd.Timestamp, effective: pd.Series) -> pd.DataFrame:
    # Population of S: effective quantity churn not before S (gone subscribers are not at risk).
    alive = t["subscribers"]["subscriber_id"]
    alive = alive[~alive.isin(effective.index[effective < snapshot])]
    f = build_features(t, snapshot, population=pd.Index(alive))
    label = f["subscriber_id"].map(effective).eq(snapshot).astype("int8")
    return f.assign(snapshot=snapshot, label=label)


def stage_score(in_dir: Path, work: Path) -> dict:
    t = load_feature_tables(work)
    last_month = t["usage_monthly"]["period"].max()
    first_month = t["usage_monthly"]["period"].min()
    effective = churn_effective_months(t["events"])
    # The latest snapshot whose outcome (a cancellation up to S + gap) is fully observed, the one
    # before it, and six months of history before both.
    valid_s = last_month - pd.DateOffset(months=SUSPENSION_GAP_MONTHS)
    train_s = valid_s - pd.DateOffset(months=1)
    if train_s < first_month + pd.DateOffset(months=6):
        sys.exit(f"scale_peer: not enough months for two snapshots ({first_month}..{last_month})")
    train = labelled_snapshot(t, train_s, effective)
    valid = labelled_snapshot(t, valid_s, effective)
    del t
    if len(train) > MAX_TRAIN_ROWS:
        train = train.sample(MAX_TRAIN_ROWS, random_state=SEED)
    if len(valid) > MAX_VALID_ROWS:
        valid = valid.sample(MAX_VALID_ROWS, random_state=SEED)
    features = [c for c in train.columns if c not in NON_FEATURES]
    params = {"objective": "binary", "learning_rate": 0.05, "metric": "auc", "seed": SEED,
              "verbose": -1}
    started = time.perf_counter()
    booster = lgb.train(
        params, lgb.Dataset(train[features], train["label"]), num_boost_round=500,
        valid_sets=[lgb.Dataset(valid[features], valid["label"])],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    train_seconds = time.perf_counter() - started
    valid_auc = roc_auc_score(valid["label"], booster.predict(valid[features],
                                                              num_iteration=booster.best_iteration))

    f = pd.read_parquet(work / "features.parquet", engine="pyarrow")
    started = time.perf_counter()
    p = booster.predict(f[features], num_iteration=booster.best_iteration)
    predict_seconds = time.perf_counter() - started
    scores = pd.DataFrame({"subscriber_id": f["subscriber_id"], "as_of": f["as_of"],
                           "p_churn": p})
    rank = scores["p_churn"].rank(method="first", ascending=False)
    scores["decile"] = (pd.qcut(rank, 10, labels=False) + 1).astype("int8")  # 1 = riskiest
    scores.to_parquet(work / "scores.parquet", engine="pyarrow", index=False)
    return {"stage": "score", "rows": len(scores), "train_rows": len(train),
            "valid_rows": len(valid), "train_snapshot": str(train_s.date()),
            "valid_snapshot": str(valid_s.date()), "train_churn_rate": round(train["label"].mean(), 5),
            "best_iteration": booster.best_iteration, "valid_auc": round(valid_auc, 4),
            "train_seconds": round(train_seconds, 2), "predict_seconds": round(predict_seconds, 2)}


# --- 5. segment --------------------------------------------------------------------------------
CLV_HORIZON_MONTHS = 36
DEFAULT_MONTHLY_CHURN = 0.015
CLUSTER_FEATURES = ["fee_3m", "voice_minutes_3m", "data_mb_3m", "sms_3m", "active_days_3m",
                    "tenure_months", "arpu_trend"]


def quintile(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    # Missing values rank lowest, i.e. get the worst score (1).
    rank = values.rank(method="first", ascending=higher_is_better, na_option="top")
    return (pd.qcut(rank, 5, labels=False) + 1).astype("int8")


def expected_months(p_churn: pd.Series) -> pd.Series:
    """Expected paying months over the horizon with a constant monthly churn probability."""
    p = p_churn.clip(1e-4, 1.0)
    return (1 - p) * (1 - (1 - p) ** CLV_HORIZON_MONTHS) / p


def stage_segment(in_dir: Path, work: Path) -> dict:
    f = pd.read_parquet(work / "features.parquet", engine="pyarrow")
    scores_path = work / "scores.parquet"
    if scores_path.exists():
        scores = pd.read_parquet(scores_path, engine="pyarrow", columns=["subscriber_id", "p_churn"])
        f = f.merge(scores, on="subscriber_id", how="left")
    else:
        f["p_churn"] = np.nan
    f["p_churn"] = f["p_churn"].fillna(DEFAULT_MONTHLY_CHURN)
    seg = f[["subscriber_id", "as_of"]].copy()

    # RFM: recency = months since the last recharge, frequency = active days, monetary = ARPU.
    seg["r"] = quintile(f["months_since_recharge"], higher_is_better=False)
    seg["f"] = quintile(f["active_days_3m"].fillna(0))
    seg["m"] = quintile(f["fee_3m"].fillna(0))
    seg["rfm"] = seg["r"].astype("str") + seg["f"].astype("str") + seg["m"].astype("str")
    r, fr, m = seg["r"], seg["f"], seg["m"]
    seg["rfm_group"] = np.select(
        [(r >= 4) & (fr >= 4) & (m >= 4), (fr >= 4) & (m >= 3), m == 5, (r <= 2) & (m >= 3),
         (r <= 2) & (fr <= 2), (r >= 4) & (fr <= 2)],
        ["champions", "loyal", "big_spenders", "at_risk", "hibernating", "promising"],
        default="needs_attention")

    # Value: CLV = ARPU × expected remaining months (from the churn probability).
    seg["clv"] = f["fee_3m"].fillna(0) * expected_months(f["p_churn"])
    pct = seg["clv"].rank(pct=True, method="average")
    seg["value_tier"] = np.select([pct > 0.95, pct > 0.80, pct > 0.50],
                                  ["diamond", "gold", "silver"], default="bronze")
    seg["midhigh"] = (pct > 0.80).astype("int8")

    # Lifecycle stage from tenure and ARPU trend.
    tenure, trend = f["tenure_months"], f["arpu_trend"]
    seg["lifecycle_stage"] = np.select(
        [tenure < 6, trend < 0.8, (trend > 1.1) & (tenure < 24), tenure >= 60],
        ["new", "declining", "growing", "loyal"], default="mature")

    # k-means on standardised, log-scaled usage; k in 4..8 by silhouette on a 3,000-row sample.
    x = f[CLUSTER_FEATURES].copy()
    for c in ["fee_3m", "voice_minutes_3m", "data_mb_3m", "sms_3m", "tenure_months"]:
        x[c] = np.log1p(x[c].clip(lower=0))
    x["arpu_trend"] = x["arpu_trend"].clip(0, 3)
    x = x.fillna(x.median()).fillna(0)
    X = StandardScaler().fit_transform(x.to_numpy(dtype="float64"))
    rng = np.random.default_rng(SEED)
    sample = X[rng.choice(len(X), size=min(3000, len(X)), replace=False)]
    silhouettes = {}
    for k in range(4, 9):
        labels = KMeans(n_clusters=k, n_init=4, random_state=SEED).fit_predict(sample)
        silhouettes[k] = float(silhouette_score(sample, labels))
    best_k = max(silhouettes, key=silhouettes.get)
    km = MiniBatchKMeans(n_clusters=best_k, n_init=3, batch_size=4096, random_state=SEED).fit(X)
    seg["cluster"] = km.predict(X).astype("int8")
    seg["p_churn"] = f["p_churn"]
    seg.to_parquet(work / "segments.parquet", engine="pyarrow", index=False)
    return {"stage": "segment", "rows": len(seg), "k": best_k,
            "silhouette": {k: round(v, 3) for k, v in silhouettes.items()},
            "value_tiers": {k: int(v) for k, v in seg["value_tier"].value_counts().items()},
            "lifecycle": {k: int(v) for k, v in seg["lifecycle_stage"].value_counts().items()}}


# --- 6. match ----------------------------------------------------------------------------------
OFFERS = pd.DataFrame([
    # offer_id, kind, channel, cost (yuan, booked if taken)
    ("O-BILL20", "bill_discount", "outbound_call", 20.0),
    ("O-DATA10G", "data_pack", "sms", 6.0),
    ("O-DEVICE", "device_subsidy", "store", 200.0),
    ("O-NETFIX", "network_fix", "outbound_call", 30.0),
    ("O-GIFT", "loyalty_gift", "app", 10.0),
    ("O-RENEW", "contract_renewal", "outbound_call", 40.0),
    ("O-VIP", "vip_service", "manager_visit", 60.0),
], columns=["offer_id", "offer_kind", "channel", "cost"])
REASONS = ["network", "competitor", "contract_end", "price", "data", "arrears", "general"]
# Assumed acceptance (and stay) probability of each offer per churn reason.
ACCEPT = pd.DataFrame({
    #              network competitor contract price data arrears general
    "O-BILL20":  [0.05, 0.20, 0.15, 0.30, 0.10, 0.15, 0.12],
    "O-DATA10G": [0.03, 0.10, 0.08, 0.12, 0.30, 0.05, 0.08],
    "O-DEVICE":  [0.05, 0.30, 0.40, 0.10, 0.10, 0.02, 0.10],
    "O-NETFIX":  [0.45, 0.10, 0.02, 0.02, 0.10, 0.01, 0.03],
    "O-GIFT":    [0.05, 0.08, 0.08, 0.08, 0.05, 0.05, 0.10],
    "O-RENEW":   [0.05, 0.15, 0.35, 0.12, 0.08, 0.05, 0.10],
    "O-VIP":     [0.20, 0.25, 0.20, 0.15, 0.10, 0.05, 0.15],
}, index=REASONS)
BUDGET_PER_SUBSCRIBER = 1.0  # yuan per subscriber in the data
CHANNEL_CAPACITY = {  # contacts per run, as a share of the subscribers in the data
    "outbound_call": 0.02, "store": 0.005, "manager_visit": 0.002, "sms": 1.0, "app": 1.0,
}


def stage_match(in_dir: Path, work: Path) -> dict:
    n_subscribers = len(load(work, "subscribers", ["subscriber_id"]))
    warnings = pd.read_parquet(work / "warnings.parquet", engine="pyarrow", columns=["subscriber_id"])
    scores = pd.read_parquet(work / "scores.parquet", engine="pyarrow",
                             columns=["subscriber_id", "p_churn", "decile"])
    at_risk = pd.Index(warnings["subscriber_id"]).union(
        pd.Index(scores.loc[scores["decile"] <= 2, "subscriber_id"]))
    cols = ["subscriber_id", "fee_3m", "tenure_months", "n_complaint_network_3m",
            "n_competitor_service_call_3m", "n_forward_to_competitor_3m", "contract_months_left",
            "subsidy_months_left", "arpu_trend", "n_downgrade_3m", "data_mb_1m", "data_mb_6m",
            "arrears_1m", "has_subsidy"]
    f = pd.read_parquet(work / "features.parquet", engine="pyarrow", columns=cols)
    f = f[f["subscriber_id"].isin(at_risk)].merge(scores, on="subscriber_id", how="left")
    # What a save is worth: the subscriber's CLV if retained, i.e. ARPU × expected months at the
    # base churn rate. (segments.parquet's `clv` is discounted by the subscriber's own churn
    # probability; using it here would count the risk twice: p_churn × clv ≈ one month's ARPU.)
    f["clv"] = f["fee_3m"].fillna(0) * expected_months(pd.Series(DEFAULT_MONTHLY_CHURN, f.index))
    f["reason"] = np.select(
        [f["n_complaint_network_3m"] >= 1,
         (f["n_competitor_service_call_3m"] + f["n_forward_to_competitor_3m"]) >= 1,
         (f["contract_months_left"] <= 2) | (f["subsidy_months_left"] <= 2),
         (f["arpu_trend"] <= 0.7) | (f["n_downgrade_3m"] >= 1),
         f["data_mb_1m"] < 0.5 * f["data_mb_6m"],
         f["arrears_1m"] > 0],
        REASONS[:-1], default="general")

    # Every (subscriber, offer) pair with its acceptance for the subscriber's reason.
    accept = ACCEPT.rename_axis("reason").reset_index().melt(
        id_vars="reason", var_name="offer_id", value_name="p_accept").merge(OFFERS, on="offer_id")
    pairs = f.merge(accept, on="reason")
    kind = pairs["offer_kind"]
    eligible = (
        ((kind != "device_subsidy") | ((pairs["tenure_months"] >= 12) & (pairs["fee_3m"] >= 50)
                                       & (pairs["subsidy_months_left"].fillna(0) <= 3)))
        & ((kind != "network_fix") | (pairs["n_complaint_network_3m"] >= 1))
        & ((kind != "vip_service") | (pairs["fee_3m"] >= 100))
        & ((kind != "contract_renewal") | (pairs["contract_months_left"].fillna(0) <= 3))
        & ((kind != "bill_discount") | (pairs["fee_3m"] >= 30))
    )
    pairs = pairs[eligible]
    pairs = pairs.assign(expected_value=pairs["p_churn"] * pairs["p_accept"] * pairs["clv"]
                         - pairs["cost"])
    pairs = pairs[pairs["expected_value"] > 0]
    best = pairs.sort_values(["expected_value", "subscriber_id"], ascending=[False, True])
    best = best.drop_duplicates("subscriber_id", keep="first")

    # Greedy allocation in order of expected value: channel capacities, then the budget.
    capacity = best["channel"].map({c: int(s * n_subscribers) for c, s in CHANNEL_CAPACITY.items()})
    best = best[best.groupby("channel").cumcount() < capacity]
    budget = BUDGET_PER_SUBSCRIBER * n_subscribers
    best = best[best["cost"].cumsum() <= budget]
    out = best[["subscriber_id", "reason", "offer_id", "offer_kind", "channel", "cost", "p_churn",
                "p_accept", "clv", "expected_value"]].reset_index(drop=True)
    out.to_parquet(work / "matches.parquet", engine="pyarrow", index=False)
    return {"stage": "match", "rows": len(out), "at_risk": len(at_risk), "assigned": len(out),
            "committed_cost": round(float(out["cost"].sum()), 2), "budget": budget,
            "expected_saved_value": round(float(out["expected_value"].sum()), 2),
            "by_channel": {k: int(v) for k, v in out["channel"].value_counts().items()}}


# --- CLI ---------------------------------------------------------------------------------------
STAGES = {"ingest": stage_ingest, "features": stage_features, "warn": stage_warn,
          "score": stage_score, "segment": stage_segment, "match": stage_match}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--in", dest="in_dir", type=Path, required=True, help="canonical CSV dir")
    parser.add_argument("--work", type=Path, required=True, help="work dir (Parquet in and out)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = STAGES[args.stage](args.in_dir, args.work)
    report["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(report, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
