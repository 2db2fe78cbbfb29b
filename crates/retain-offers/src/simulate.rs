//! Saved value under the synthetic operator's true offer effects (`truth/`), which the matching
//! never reads: how much lifetime value a plan would really keep.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::assign::Plan;
use crate::error::{Error, Result};
use crate::uplift::Cells;

/// The truth a simulation needs.
#[derive(Debug, Default)]
pub struct Truth {
    /// Subscribers whose intent to leave is still pending at the end of the data, and its cause.
    pub pending: HashMap<i64, String>,
    /// (cause, offer kind) → share of intending leavers the offer keeps when they are reached.
    pub effects: HashMap<(String, String), f64>,
    /// Pending leavers whose way out is an arrears cut-off (involuntary, 非自愿).
    pub involuntary: std::collections::HashSet<i64>,
}

impl Truth {
    /// Reads `<dir>/churn.csv` and `<dir>/offer_effects.csv`; `None` when absent.
    pub fn load(dir: &Path) -> Result<Option<Truth>> {
        let (churn, effects) = (dir.join("churn.csv"), dir.join("offer_effects.csv"));
        if !churn.exists() || !effects.exists() {
            return Ok(None);
        }
        let mut truth = Truth::default();
        let ctx = |p: &Path| p.display().to_string();
        let mut r = csv::Reader::from_path(&churn).map_err(|e| Error::csv(ctx(&churn), e))?;
        let h = r.headers().map_err(|e| Error::csv(ctx(&churn), e))?.clone();
        let col = |name: &str, path: &Path, h: &csv::StringRecord| {
            h.iter()
                .position(|x| x == name)
                .ok_or_else(|| Error::MissingInput(format!("{}: no column {name}", path.display())))
        };
        let (id, outcome, cause) = (
            col("subscriber_id", &churn, &h)?,
            col("outcome", &churn, &h)?,
            col("cause", &churn, &h)?,
        );
        // Older truth files have no path: nobody is known to be cut off.
        let path = h.iter().position(|x| x == "path");
        for rec in r.records() {
            let rec = rec.map_err(|e| Error::csv(ctx(&churn), e))?;
            if rec.get(outcome) == Some("pending")
                && let Some(s) = rec.get(id).and_then(|v| v.parse::<i64>().ok())
            {
                truth
                    .pending
                    .insert(s, rec.get(cause).unwrap_or("").to_owned());
                if path.and_then(|p| rec.get(p)) == Some("arrears_suspension_cancel") {
                    truth.involuntary.insert(s);
                }
            }
        }
        let mut r = csv::Reader::from_path(&effects).map_err(|e| Error::csv(ctx(&effects), e))?;
        let h = r
            .headers()
            .map_err(|e| Error::csv(ctx(&effects), e))?
            .clone();
        let (cause, kind, p) = (
            col("cause", &effects, &h)?,
            col("offer_kind", &effects, &h)?,
            col("save_probability", &effects, &h)?,
        );
        for rec in r.records() {
            let rec = rec.map_err(|e| Error::csv(ctx(&effects), e))?;
            if let Some(v) = rec.get(p).and_then(|v| v.parse::<f64>().ok()) {
                truth.effects.insert(
                    (
                        rec.get(cause).unwrap_or("").to_owned(),
                        rec.get(kind).unwrap_or("").to_owned(),
                    ),
                    v,
                );
            }
        }
        Ok(Some(truth))
    }
}

/// A plan's true outcome.
#[derive(Debug, Clone, Copy, Serialize, Default, Deserialize)]
pub struct Simulated {
    /// Expected lifetime value kept: over contacts with a pending intent, reach × true save
    /// probability × lifetime value.
    pub saved_value: f64,
    /// Saved value minus the plan's expected cost.
    pub net_value: f64,
    /// Expected subscribers kept.
    pub saved_subscribers: f64,
    /// Contacts that went to a subscriber really about to leave.
    pub contacts_at_risk: usize,
}

/// The choices an oracle would see: every candidate's eligible offers and channels valued by
/// the true effect on the candidate's true cause (nothing for those not about to leave), the
/// channel's reach and the candidate's value. Arbitrated like any plan, under the same budget,
/// capacities and contact policy, they give the most any plan could keep.
#[must_use]
pub(crate) fn oracle_choices(
    inputs: &crate::Inputs,
    library: &crate::Library,
    choices: &[Vec<crate::Choice>],
    truth: &Truth,
    cells: &Cells,
) -> Vec<Vec<crate::Choice>> {
    inputs
        .candidates
        .iter()
        .zip(choices)
        .map(|(c, own)| {
            let cause = truth.pending.get(&c.subscriber_id);
            let mut out: Vec<crate::Choice> = own
                .iter()
                .map(|choice| {
                    let kind = library.offers[choice.offer as usize].kind.code();
                    let effect = cause
                        .and_then(|cause| truth.effects.get(&(cause.clone(), kind.to_owned())))
                        .copied()
                        .unwrap_or(0.0);
                    let save_rate = effect * cells.reach(choice.channel).unwrap_or(0.75);
                    crate::Choice {
                        save_rate,
                        expected_value: save_rate * c.clv - choice.expected_cost,
                        ..*choice
                    }
                })
                .collect();
            out.sort_by(|a, b| b.expected_value.total_cmp(&a.expected_value));
            out
        })
        .collect()
}

/// Simulates `plan`. Reach per channel is the campaign history's; kinds the synthetic world
/// never tried keep nobody.
#[must_use]
pub fn simulate(plan: &Plan, truth: &Truth, cells: &Cells) -> Simulated {
    let mut s = Simulated::default();
    for a in &plan.assignments {
        let Some(cause) = truth.pending.get(&a.subscriber_id) else {
            continue;
        };
        s.contacts_at_risk += 1;
        let effect = truth
            .effects
            .get(&(cause.clone(), a.kind.code().to_owned()))
            .copied()
            .unwrap_or(0.0);
        let reach = cells.reach(a.channel).unwrap_or(0.75);
        s.saved_subscribers += reach * effect;
        s.saved_value += reach * effect * a.clv;
    }
    s.net_value = s.saved_value - plan.expected_cost;
    s.saved_value = crate::round2(s.saved_value);
    s.net_value = crate::round2(s.net_value);
    s.saved_subscribers = crate::round2(s.saved_subscribers);
    s
}
