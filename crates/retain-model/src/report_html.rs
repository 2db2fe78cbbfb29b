//! `reports/model.html`: the model's evaluation as a page a manager can open without tools —
//! headline metrics, lift and cumulative gains by decile, calibration, cohorts, backtest and
//! drift, with charts drawn as inline SVG (no scripts, no network).

use std::fmt::Write as _;

use serde_json::Value;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Bars of `values` with `labels` under them, scaled to the largest.
fn bars(title: &str, labels: &[String], values: &[f64]) -> String {
    let (w, h, pad) = (480.0, 200.0, 24.0);
    let max = values.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let step = (w - 2.0 * pad) / values.len().max(1) as f64;
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#,
        esc(title)
    );
    for (i, (v, l)) in values.iter().zip(labels).enumerate() {
        let bh = (h - 2.0 * pad) * v / max;
        let x = pad + step * i as f64;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#c0392b"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{v:.2}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
            x + 2.0,
            h - pad - bh,
            step - 4.0,
            x + step / 2.0,
            h - pad - bh - 3.0,
            x + step / 2.0,
            h - 8.0,
            esc(l)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A line through `points` in the unit square, with the diagonal for reference.
fn curve(title: &str, points: &[(f64, f64)], x_label: &str, y_label: &str) -> String {
    let (size, pad) = (220.0, 28.0);
    let span = size - 2.0 * pad;
    let at = |x: f64, y: f64| (pad + x * span, size - pad - y * span);
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| {
            let (px, py) = at(*x, *y);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    let (x0, y0) = at(0.0, 0.0);
    let (x1, y1) = at(1.0, 1.0);
    format!(
        r##"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img"><line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#999" stroke-dasharray="4"/><polyline points="{}" fill="none" stroke="#2471a3" stroke-width="2"/><text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text><text x="10" y="{}" font-size="10" transform="rotate(-90 10 {})" text-anchor="middle">{}</text></svg></figure>"##,
        esc(title),
        path.join(" "),
        size / 2.0,
        size - 6.0,
        esc(x_label),
        size / 2.0,
        size / 2.0,
        esc(y_label)
    )
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for h in head {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr>");
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            let _ = write!(t, "<td>{}</td>", esc(c));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

/// The challenger against the champion on the test month, and the decision: the page may
/// describe a model that does not score.
fn promotion(page: &mut String, decision: &Value) {
    if !decision.is_object() {
        return;
    }
    let promoted = decision["action"] == "promoted";
    let _ = write!(
        page,
        "<h2>冠军/挑战者 · Champion and challenger ({})</h2><p>{} v{} · 冠军 / champion v{}: {}</p>",
        esc(decision["test_month"].as_str().unwrap_or("")),
        if promoted {
            "已晋升 / promoted"
        } else {
            "未晋升 / not promoted"
        },
        decision["version"],
        decision["champion"],
        esc(decision["reason"].as_str().unwrap_or(""))
    );
    let rows: Vec<Vec<String>> = [("challenger", "challenger"), ("champion", "incumbent")]
        .iter()
        .filter(|(_, key)| decision[*key].is_object())
        .map(|(role, key)| {
            let standing = &decision[*key];
            vec![
                format!("{role} v{}", standing["version"]),
                standing["empc"].to_string(),
                standing["auc"].to_string(),
                standing["top_decile_lift"].to_string(),
            ]
        })
        .collect();
    page.push_str(&table(&["", "EMPC", "AUC", "top-decile lift"], &rows));
}

/// The page for `retain train`'s summary object.
/// How the reasons were ranked, and how often the top one names the cause: against what the
/// caught leavers said and, on a synthetic operator, against the truth.
fn reasons(page: &mut String, r: &Value) {
    if r.is_null() {
        return;
    }
    page.push_str("<h2>流失原因 · Reasons</h2>");
    let _ = write!(
        page,
        "<p>排序 ranked by: <b>{}</b> · 学习样本 leavers learned from: {} · 自述噪声 stated noise: {}</p>",
        esc(r["ranked_by"].as_str().unwrap_or("")),
        r["learned_from"],
        r["stated_noise"],
    );
    let rows = |by: &Value| -> Vec<Vec<String>> {
        by.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, a)| {
                        let (c, g) = (num(&a["caught"]), num(&a["agreed"]));
                        vec![
                            k.clone(),
                            format!("{c:.0}"),
                            format!("{g:.0}"),
                            if c > 0.0 {
                                format!("{:.0}%", 100.0 * g / c)
                            } else {
                                String::new()
                            },
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let head = [
        "cause",
        "caught 抓到",
        "top reason agrees 首因一致",
        "share",
    ];
    page.push_str("<h3>对客户自述 · Against what leavers said</h3>");
    page.push_str(&table(&head, &rows(&r["by_stated_reason"])));
    if !r["by_true_cause"].is_null() {
        page.push_str("<h3>对真实原因 · Against the synthetic truth</h3>");
        page.push_str(&table(&head, &rows(&r["by_true_cause"])));
    }
}

pub(crate) fn html(s: &Value) -> String {
    let empty = Vec::new();
    let list = |key: &str| s[key].as_array().unwrap_or(&empty).clone();
    let deciles = list("deciles");
    let mut page = String::from(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>流失预测模型评估 · Churn model evaluation</title><style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:bold}</style></head><body>"#,
    );
    let _ = write!(
        page,
        "<h1>流失预测模型 v{} · Churn model v{}</h1><p>测试快照 / test snapshot: AUC <b>{}</b> · PR-AUC {} · 前10%提升度 / top-decile lift <b>{}</b> · log loss {} · Brier {} · EMPC {}</p><p>训练 / train {} · 验证 / validation {} · 测试 / test {} rows · {} trees · {:.1}s</p>",
        s["version"],
        s["version"],
        s["auc"],
        s["pr_auc"],
        s["top_decile_lift"],
        s["log_loss"],
        s["brier"],
        s["empc"],
        s["rows_train"],
        s["rows_valid"],
        s["rows_test"],
        s["best_iteration"],
        num(&s["train_seconds"])
    );
    promotion(&mut page, &s["promotion"]);
    let labels: Vec<String> = deciles.iter().map(|d| d["decile"].to_string()).collect();
    let lifts: Vec<f64> = deciles.iter().map(|d| num(&d["lift"])).collect();
    page.push_str(&bars("各十分位提升度 · Lift by decile", &labels, &lifts));
    let mut gains = vec![(0.0, 0.0)];
    gains.extend(
        deciles
            .iter()
            .enumerate()
            .map(|(i, d)| ((i + 1) as f64 / 10.0, num(&d["cumulative_gain"]))),
    );
    page.push_str(&curve(
        "累计捕获 · Cumulative gains",
        &gains,
        "contacted share",
        "churners caught",
    ));
    let calibration = list("calibration");
    let points: Vec<(f64, f64)> = calibration
        .iter()
        .map(|c| (num(&c["mean_predicted"]), num(&c["observed_rate"])))
        .collect();
    page.push_str(&curve(
        "校准 · Calibration",
        &points,
        "predicted",
        "observed",
    ));
    page.push_str("<h2>十分位 · Deciles</h2>");
    page.push_str(&table(
        &[
            "decile",
            "subscribers",
            "churners",
            "churn rate",
            "lift",
            "cumulative gain",
        ],
        &deciles
            .iter()
            .map(|d| {
                [
                    "decile",
                    "subscribers",
                    "churners",
                    "churn_rate",
                    "lift",
                    "cumulative_gain",
                ]
                .iter()
                .map(|k| d[*k].to_string())
                .collect()
            })
            .collect::<Vec<_>>(),
    ));
    page.push_str("<h2>校准 · Calibration</h2>");
    page.push_str(&table(
        &["from", "to", "subscribers", "mean predicted", "observed"],
        &calibration
            .iter()
            .map(|c| {
                [
                    "from",
                    "to",
                    "subscribers",
                    "mean_predicted",
                    "observed_rate",
                ]
                .iter()
                .map(|k| c[*k].to_string())
                .collect()
            })
            .collect::<Vec<_>>(),
    ));
    if let Some(cohorts) = s["cohorts"].as_object() {
        page.push_str("<h2>网龄分群 · Tenure cohorts</h2>");
        page.push_str(&table(
            &[
                "cohort",
                "rows",
                "churners",
                "AUC",
                "PR-AUC",
                "top-decile lift",
                "Brier",
            ],
            &cohorts
                .iter()
                .map(|(name, m)| {
                    std::iter::once(name.clone())
                        .chain(
                            [
                                "rows",
                                "churners",
                                "auc",
                                "pr_auc",
                                "top_decile_lift",
                                "brier",
                            ]
                            .iter()
                            .map(|k| m[*k].to_string()),
                        )
                        .collect()
                })
                .collect::<Vec<_>>(),
        ));
    }
    let backtest = list("backtest");
    if !backtest.is_empty() {
        page.push_str("<h2>滚动回测 · Rolling backtest</h2>");
        page.push_str(&table(
            &[
                "test month",
                "train rows",
                "test rows",
                "AUC",
                "PR-AUC",
                "top-decile lift",
                "Brier",
            ],
            &backtest
                .iter()
                .map(|f| {
                    [
                        "test_snapshot",
                        "rows_train",
                        "rows_test",
                        "auc",
                        "pr_auc",
                        "top_decile_lift",
                        "brier",
                    ]
                    .iter()
                    .map(|k| f[*k].to_string().trim_matches('"').to_string())
                    .collect()
                })
                .collect::<Vec<_>>(),
        ));
    }
    reasons(&mut page, &s["reasons"]);
    page.push_str("<h2>特征漂移 · Feature drift (PSI, training rows → test snapshot)</h2>");
    page.push_str(&table(
        &["feature", "PSI"],
        &list("feature_drift")
            .iter()
            .map(|f| {
                vec![
                    f["feature"].as_str().unwrap_or("").to_string(),
                    f["psi"].to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    page.push_str("<h2>重要性 · Importance (gain)</h2>");
    page.push_str(&table(
        &["feature", "gain"],
        &list("importance")
            .iter()
            .map(|f| {
                vec![
                    f[0].as_str().unwrap_or("").to_string(),
                    format!("{:.0}", num(&f[1])),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_escapes_and_draws_every_section() {
        let s = serde_json::json!({
            "version": 2, "auc": 0.9, "deciles": [{"decile": 1, "lift": 3.0, "cumulative_gain": 0.3}],
            "calibration": [{"mean_predicted": 0.1, "observed_rate": 0.12}],
            "cohorts": {"tenure_under_6": {"auc": 0.8}},
            "backtest": [{"test_snapshot": "2026-05", "auc": 0.85}],
            "feature_drift": [{"feature": "fee<x>", "psi": 0.3}],
            "importance": [["fee", 10.0]],
            "promotion": {"action": "not_promoted", "version": 2, "champion": 1,
                "test_month": "2026-07", "reason": "lower than the champion v1: AUC 0.9 < 0.95",
                "challenger": {"version": 2, "auc": 0.9, "top_decile_lift": 3.0, "empc": 0.2},
                "incumbent": {"version": 1, "auc": 0.95, "top_decile_lift": 3.5, "empc": 0.3}},
            "reasons": {"ranked_by": "cause_model", "learned_from": 900, "stated_noise": 0.12,
                "by_stated_reason": {"network_quality": {"caught": 8, "agreed": 6}},
                "by_true_cause": {"<b>": {"caught": 4, "agreed": 1}}},
        });
        let page = super::html(&s);
        assert!(page.contains("<svg") && page.contains("Rolling backtest"));
        assert!(page.contains("fee&lt;x&gt;") && !page.contains("fee<x>"));
        assert!(page.contains("2026-05"));
        assert!(page.contains("未晋升 / not promoted v2 · 冠军 / champion v1"));
        assert!(page.contains("AUC 0.9 &lt; 0.95"));
        assert!(page.contains("<td>champion v1</td><td>0.3</td><td>0.95</td><td>3.5</td>"));
        assert!(page.contains("<td>network_quality</td><td>8</td><td>6</td><td>75%</td>"));
        assert!(page.contains("<td>&lt;b&gt;</td><td>4</td><td>1</td><td>25%</td>"));
    }
}
