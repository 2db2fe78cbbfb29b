//! Per-subscriber reasons: exact TreeSHAP contributions (LightGBM's `pred_contrib`) summed into
//! the reason categories a retention team acts on.

use serde::Serialize;

/// Churn reason codes and their Chinese names, the one list every stage speaks: the categories
/// a retention team acts on, then `unknown` for a subscriber who shows no signal (offers are
/// matched on it too).
pub const REASON_CODES: &[(&str, &str)] = &[
    ("value_decline", "消费下滑"),
    ("network_quality", "网络质量"),
    ("service_complaints", "服务与投诉"),
    ("competitor_lure", "竞争对手吸引"),
    ("contract_expiry", "合约/分摊到期"),
    ("billing_arrears", "账单与欠费"),
    ("low_engagement", "活跃度低"),
    ("unknown", "无明显信号"),
];

/// The reason categories the model explains with: every reason code but `unknown`.
pub const CATEGORIES: &[(&str, &str)] = REASON_CODES
    .split_last()
    .expect("reason codes end with unknown")
    .1;

/// The category of a feature, by its name; profile features (tenure, age, plan, family) are no
/// reason an agent can act on and have none.
#[must_use]
pub fn category(feature: &str) -> Option<&'static str> {
    let f = feature;
    let is = |prefixes: &[&str]| prefixes.iter().any(|p| f.starts_with(p));
    if is(&[
        "network_complaints",
        "dropped_call",
        "setup_failures",
        "weak_coverage",
        "data_stall",
        "throughput",
        "cell_",
    ]) {
        Some("network_quality")
    } else if is(&["billing_complaints", "arrears", "suspended_days"]) {
        Some("billing_arrears")
    } else if is(&[
        "complaints",
        "serious_complaints",
        "late_complaints",
        "days_since_complaint",
        "service_calls",
        "stop_requests",
    ]) {
        Some("service_complaints")
    } else if is(&[
        "competitor",
        "days_since_competitor",
        "forward",
        "days_since_forward",
        "circle_",
    ]) {
        Some("competitor_lure")
    } else if is(&["has_subsidy", "subsidy_months", "contract_months"]) {
        Some("contract_expiry")
    } else if is(&["active_days", "sms", "calls_in_share"]) {
        Some("low_engagement")
    } else if is(&[
        "fee",
        "voice",
        "calls",
        "data",
        "vas",
        "bundled",
        "recharge",
        "downgrades",
    ]) {
        Some("value_decline")
    } else {
        None
    }
}

/// A reason with its weight (sum of the positive contributions of its features).
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub category: &'static str,
    pub name_zh: &'static str,
    pub weight: f64,
    /// The feature that pushed hardest within the category.
    pub top_feature: String,
    /// How likely this is the cause, when a cause model ranked the reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// The `n` categories that push the churn score up most.
#[must_use]
pub fn top_reasons(features: &[String], contributions: &[f64], n: usize) -> Vec<Reason> {
    let mut sums: Vec<(usize, f64, usize, f64)> = Vec::new(); // (category, weight, top feature, its weight)
    for (i, (f, c)) in features.iter().zip(contributions).enumerate() {
        if *c <= 0.0 {
            continue;
        }
        let Some(cat) =
            category(f).and_then(|c| CATEGORIES.iter().position(|(code, _)| *code == c))
        else {
            continue;
        };
        match sums.iter_mut().find(|s| s.0 == cat) {
            Some(s) => {
                s.1 += c;
                if *c > s.3 {
                    s.2 = i;
                    s.3 = *c;
                }
            }
            None => sums.push((cat, *c, i, *c)),
        }
    }
    // Sorted by weight, then by category order, so equal weights give stable reasons.
    sums.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    sums.into_iter()
        .take(n)
        .map(|(cat, w, f, _)| Reason {
            category: CATEGORIES[cat].0,
            name_zh: CATEGORIES[cat].1,
            weight: (w * 10_000.0).round() / 10_000.0,
            top_feature: features[f].clone(),
            confidence: None,
        })
        .collect()
}

/// The `n` likeliest causes among `classes` (reason categories) by `probabilities`, each
/// with its categories' positive contributions as weight and the feature that pushed hardest
/// in it (empty when none pushed).
#[must_use]
pub fn cause_reasons(
    features: &[String],
    contributions: &[f64],
    classes: &[String],
    probabilities: &[f64],
    n: usize,
) -> Vec<Reason> {
    let mut order: Vec<usize> = (0..classes.len().min(probabilities.len())).collect();
    // Likeliest first; equal ones in the categories' order, so reasons are stable.
    order.sort_by(|a, b| {
        probabilities[*b]
            .total_cmp(&probabilities[*a])
            .then(a.cmp(b))
    });
    order
        .into_iter()
        .filter_map(|k| {
            let (code, zh) = CATEGORIES.iter().find(|(c, _)| *c == classes[k])?;
            let mut weight = 0.0;
            let mut top: Option<(usize, f64)> = None;
            for (i, (f, c)) in features.iter().zip(contributions).enumerate() {
                if *c > 0.0 && category(f) == Some(code) {
                    weight += c;
                    if top.is_none_or(|(_, t)| *c > t) {
                        top = Some((i, *c));
                    }
                }
            }
            Some(Reason {
                category: code,
                name_zh: zh,
                weight: (weight * 10_000.0).round() / 10_000.0,
                top_feature: top.map(|(i, _)| features[i].clone()).unwrap_or_default(),
                confidence: Some((probabilities[k] * 10_000.0).round() / 10_000.0),
            })
        })
        .take(n)
        .collect()
}

/// The reason code that names a true churn cause of the synthetic operator (`truth/churn.csv`),
/// for measuring how often a reason is the cause.
#[must_use]
pub fn cause_reason(cause: &str) -> &'static str {
    match cause {
        "price" => "value_decline",
        "network_quality" => "network_quality",
        "contract_expiry" => "contract_expiry",
        "competitor_lure" => "competitor_lure",
        "billing_dispute" => "billing_arrears",
        _ => "low_engagement",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_feature_but_the_profile_has_a_category() {
        for f in [
            "fee_trend",
            "forward_days_1m",
            "network_complaints_6m",
            "arrears_1m",
            "subsidy_months_left",
            "active_days_avg_3m",
            "complaints_6m",
        ] {
            assert!(category(f).is_some(), "{f}");
        }
        for f in retain_features::NETWORK_FEATURES {
            let c = category(f);
            assert!(
                matches!(c, Some("network_quality" | "competitor_lure")),
                "{f}: {c:?}"
            );
        }
        for f in ["tenure_months", "age", "plan_tier", "family_size"] {
            assert!(category(f).is_none(), "{f}");
        }
    }

    #[test]
    fn reasons_sum_positive_contributions_by_category() {
        let features: Vec<String> = ["forward_days_1m", "competitor_calls_6m", "fee_trend", "age"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let reasons = top_reasons(&features, &[0.3, 0.2, 0.4, 0.9], 2);
        assert_eq!(reasons[0].category, "competitor_lure");
        assert!((reasons[0].weight - 0.5).abs() < 1e-9);
        assert_eq!(reasons[0].top_feature, "forward_days_1m");
        assert_eq!(reasons[1].category, "value_decline");
    }
}
