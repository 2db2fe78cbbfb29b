//! How well group risk ranks the groups that truly leave, on the synthetic operator, whose hidden
//! truth (`truth/groups.csv`) says which groups defect and when. Never read by the warning.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::risk::GroupWarning;

/// Group risk against the truth.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TruthCheck {
    /// Active groups ranked.
    pub groups: u64,
    /// Those among them whose defection comes on or after the as-of month.
    pub leaving: u64,
    pub auc: f64,
    /// Share of the leaving among the riskiest tenth, over their share among all.
    pub top_decile_lift: f64,
    /// Share of the leaving that are red or yellow.
    pub leaving_warned: f64,
}

/// Compares the warnings with `truth_dir/groups.csv`, when the workspace has one.
pub(crate) fn check(
    truth_dir: &Path,
    warnings: &[GroupWarning],
    as_of: NaiveDate,
) -> Result<Option<TruthCheck>> {
    let path = truth_dir.join("groups.csv");
    if !path.exists() {
        return Ok(None);
    }
    let mut reader = csv::Reader::from_path(&path)
        .map_err(|e| Error::BadRequest(format!("reading {}: {e}", path.display())))?;
    let mut leaving: HashMap<String, bool> = HashMap::new();
    let as_of_month = as_of.format("%Y-%m").to_string();
    for record in reader.records() {
        let record =
            record.map_err(|e| Error::BadRequest(format!("reading {}: {e}", path.display())))?;
        let id = record.get(0).unwrap_or_default().to_owned();
        let defected = record.get(1) == Some("true");
        // `YYYY-MM` orders as text.
        let month = record.get(2).unwrap_or_default();
        leaving.insert(id, defected && month >= as_of_month.as_str());
    }
    let ranked: Vec<(f64, bool)> = warnings
        .iter()
        .filter(|w| w.status == "active")
        .map(|w| {
            (
                f64::from(w.score),
                leaving.get(&w.group_id).copied().unwrap_or(false),
            )
        })
        .collect();
    let positives = ranked.iter().filter(|(_, y)| *y).count();
    if positives == 0 || positives == ranked.len() {
        return Ok(None);
    }
    let warned = warnings
        .iter()
        .filter(|w| {
            w.status == "active"
                && leaving.get(&w.group_id).copied().unwrap_or(false)
                && matches!(w.level.as_deref(), Some("red" | "yellow"))
        })
        .count();
    Ok(Some(TruthCheck {
        groups: ranked.len() as u64,
        leaving: positives as u64,
        auc: round4(auc(&ranked)),
        top_decile_lift: round4(top_decile_lift(warnings, &leaving)),
        leaving_warned: round4(warned as f64 / positives as f64),
    }))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The probability that a random positive outranks a random negative, ties counting half
/// (Mann–Whitney with mid-ranks).
pub(crate) fn auc(scored: &[(f64, bool)]) -> f64 {
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0.total_cmp(&sorted[i].0).is_eq() {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0;
        rank_sum += mid * sorted[i..j].iter().filter(|(_, y)| *y).count() as f64;
        i = j;
    }
    let p = sorted.iter().filter(|(_, y)| *y).count() as f64;
    let n = sorted.len() as f64 - p;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Ranked by score, then lifetime value (the department sees the valuable first among equals),
/// then id.
fn top_decile_lift(warnings: &[GroupWarning], leaving: &HashMap<String, bool>) -> f64 {
    let mut active: Vec<&GroupWarning> = warnings.iter().filter(|w| w.status == "active").collect();
    active.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.lifetime_value.total_cmp(&a.lifetime_value))
            .then(a.group_id.cmp(&b.group_id))
    });
    let is = |w: &&&GroupWarning| leaving.get(&w.group_id).copied().unwrap_or(false);
    let top = active.len().div_ceil(10);
    let base = active.iter().filter(is).count() as f64 / active.len() as f64;
    let hit = active[..top].iter().filter(is).count() as f64 / top as f64;
    hit / base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        assert!((auc(&[(1.0, false), (2.0, true)]) - 1.0).abs() < 1e-12);
        assert!((auc(&[(2.0, false), (1.0, true)]) - 0.0).abs() < 1e-12);
        assert!((auc(&[(1.0, false), (1.0, true)]) - 0.5).abs() < 1e-12);
        let mixed = [(0.0, false), (1.0, true), (1.0, false), (3.0, true)];
        // Pairs: (1,0) win, (1,1) tie, (3,0) win, (3,1) win → 3.5 of 4.
        assert!((auc(&mixed) - 0.875).abs() < 1e-12);
    }
}
