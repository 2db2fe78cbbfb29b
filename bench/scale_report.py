#!/usr/bin/env python3
"""Renders bench/scale.sh's measurements (a TSV) as Markdown tables: per size, each stage of
the weekly cycle for retain and the peer with their ratios, then a summary across sizes.

    python3 bench/scale_report.py OUT/scale.tsv MONTHS
"""
import csv, sys
from collections import defaultdict

tsv, months = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
# The cycle's stages; retain's ingest is seven loads, its scoring a training and a scoring run.
stages = [("ingest", lambda s: s.startswith("ingest")), ("features", lambda s: s == "features"),
          ("warn", lambda s: s == "warn"), ("train + score", lambda s: s in ("train", "score")),
          ("segment", lambda s: s == "segment"), ("match", lambda s: s == "match")]
peer_step = {"ingest": "ingest", "features": "features", "warn": "warn", "train + score": "score",
             "segment": "segment", "match": "match"}

def fmt_s(x):
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"

def cell(steps):
    if not steps:
        return None, None, "not run"
    failed = [r for r in steps if r["status"] != "ok"]
    seconds = sum(float(r["seconds"]) for r in steps)
    peak = max(int(r["peak_kib"]) for r in steps) / 1024
    return seconds, peak, (failed[0]["status"] if failed else "ok")

summary = []
for size in dict.fromkeys(r["subscribers"] for r in rows):
    at = [r for r in rows if r["subscribers"] == size]
    synth = next(r for r in at if r["step"] == "synth")
    print(f"\n### {int(size):,} subscribers × {months} months\n")
    print(f"synth (not part of the cycle): {fmt_s(float(synth['seconds']))} s, "
          f"{int(synth['peak_kib']) / 1024:,.0f} MiB peak\n")
    print("| stage | retain s | retain peak MiB | peer s | peer peak MiB | time retain/peer | memory retain/peer |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = {"retain": [0.0, 0.0, "ok"], "peer": [0.0, 0.0, "ok"]}
    for name, match in stages:
        r = cell([x for x in at if x["side"] == "retain" and match(x["step"])])
        p = cell([x for x in at if x["side"] == "peer" and x["step"] == peer_step[name]])
        for side, c in (("retain", r), ("peer", p)):
            if c[2] == "ok":
                totals[side][0] += c[0]
                totals[side][1] = max(totals[side][1], c[1])
            elif totals[side][2] == "ok":
                totals[side][2] = f"{name}: {c[2]}"
        def show(c):
            return (fmt_s(c[0]), f"{c[1]:,.0f}") if c[2] == "ok" else (c[2], "")
        rs, rm = show(r)
        ps, pm = show(p)
        ratio_t = f"{r[0] / p[0]:.2f}×" if r[2] == p[2] == "ok" and p[0] > 0 else ""
        ratio_m = f"{r[1] / p[1]:.2f}×" if r[2] == p[2] == "ok" and p[1] > 0 else ""
        print(f"| {name} | {rs} | {rm} | {ps} | {pm} | {ratio_t} | {ratio_m} |")
    def total(side):
        t = totals[side]
        return (fmt_s(t[0]), f"{t[1]:,.0f}") if t[2] == "ok" else (t[2], "")
    rt, rm = total("retain")
    pt, pm = total("peer")
    both = totals["retain"][2] == totals["peer"][2] == "ok" and totals["peer"][0] > 0
    ratio = f"{totals['retain'][0] / totals['peer'][0]:.2f}×" if both else ""
    mratio = f"{totals['retain'][1] / totals['peer'][1]:.2f}×" if both else ""
    print(f"| **whole cycle** | **{rt}** | {rm} | **{pt}** | {pm} | {ratio} | {mratio} |")
    summary.append((size, rt, rm, pt, pm, ratio))
    print("\nretain steps:", ", ".join(
        f"{x['step']} {fmt_s(float(x['seconds']))} s" for x in at if x["side"] == "retain"))

print("\n| subscribers | retain cycle s | retain peak MiB | peer cycle s | peer peak MiB | retain/peer |")
print("|---:|---:|---:|---:|---:|---:|")
for size, rt, rm, pt, pm, ratio in summary:
    print(f"| {int(size):,} | {rt} | {rm} | {pt} | {pm} | {ratio} |")
