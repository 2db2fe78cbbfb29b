//! The uplift estimate the arbitration uses: a method chosen by held-out Qini, refitted on all
//! campaigns, with the library's priors for offer kinds no campaign has tried.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::library::{Kind, Offer};
use crate::policy::Policy;
use crate::uplift::{Cells, History, HistoryRow, KindPredictions, Qini, evaluate};

/// Campaign periods held out to evaluate the methods (the latest ones).
const HELD_OUT_PERIODS: usize = 2;
/// Held-out contacts the methods are compared on at most (a systematic sample beyond that):
/// the Qini of a few hundred thousand contacts is as telling as that of millions.
const MAX_EVAL_ROWS: usize = 200_000;

/// Resamples of the held-out contacts behind the Qini's interval, and the contacts they draw
/// from at most (a systematic sample beyond that).
const BOOTSTRAP_DRAWS: usize = 200;
const BOOTSTRAP_ROWS: usize = 20_000;

/// How a save rate was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Reason × offer-kind cells of past campaigns against their control groups.
    Cells,
    /// Gradient-boosted two-model: churn of controls and of treated, per subscriber.
    TwoModel,
    /// The mean of the two.
    Blend,
    /// The library's prior: no campaign tried the kind.
    Prior,
    /// Offers that learn: the outcomes of retain's own campaigns per reason × kind × value
    /// tier, starting from the estimate above.
    Learned,
    /// A draw from the learned belief (Thompson sampling), for a subscriber in the exploration
    /// share: spent from the exploration budget like an untested offer.
    Explored,
}

impl Method {
    /// Whether a choice valued so is exploring, and so spends the exploration share.
    #[must_use]
    pub fn explores(self) -> bool {
        matches!(self, Method::Prior | Method::Explored)
    }
}

/// What the uplift evaluation found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpliftReport {
    pub method: Method,
    pub campaign_rows: usize,
    pub campaign_periods: Vec<String>,
    pub held_out_periods: Vec<String>,
    /// Weighted Qini on the held-out campaigns, per method tried.
    pub qini_by_method: Vec<(Method, f64)>,
    /// The chosen method's Qini on the held-out campaigns.
    pub qini: f64,
    /// Its 95% bootstrap interval over resampled held-out contacts, when campaigns were held
    /// out.
    #[serde(default)]
    pub qini_interval: Option<(f64, f64)>,
    pub auuc: f64,
    pub by_kind: Vec<Qini>,
    /// Learned save rates per reason × tested kind (cells, on all campaigns).
    pub save_rates: Vec<SaveRate>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveRate {
    pub reason: String,
    pub kind: String,
    pub save_rate: f64,
    pub control_churn: f64,
}

/// A fitted uplift estimate.
pub struct Uplift {
    pub cells: Cells,
    pub method: Method,
    trees: Option<crate::trees::TwoModel>,
    untested_discount: f64,
    pub report: UpliftReport,
    /// What retain's own campaigns taught, and the seed of this run's exploration draws.
    learner: Option<(crate::Learning, u64)>,
}

impl Uplift {
    /// Fits on the campaign history: evaluates each method on the latest campaigns after
    /// fitting on the earlier ones, keeps the best, and refits it on all of them.
    pub fn fit(history: &History, policy: &Policy) -> Result<Uplift> {
        let mut notes = Vec::new();
        let periods = &history.periods;
        let held: Vec<_> = if periods.len() > HELD_OUT_PERIODS {
            periods[periods.len() - HELD_OUT_PERIODS..].to_vec()
        } else {
            Vec::new()
        };
        let is_held = |r: &HistoryRow| held.contains(&r.period);
        let evaluated: std::collections::HashSet<usize> = crate::uplift::systematic_sample(
            history
                .rows
                .iter()
                .filter(|r| is_held(r))
                .map(|r| r.row)
                .collect(),
            MAX_EVAL_ROWS,
        )
        .into_iter()
        .collect();
        let is_evaluated = |r: &HistoryRow| evaluated.contains(&r.row);
        let mut tried: Vec<(Method, f64, f64, Vec<Qini>)> = Vec::new();
        // The contacts the Qini's bootstrap resamples, and each method's predictions on them.
        let boot_rows: Vec<&HistoryRow> = crate::uplift::systematic_sample(
            history.rows.iter().filter(|r| is_evaluated(r)).collect(),
            BOOTSTRAP_ROWS,
        );
        let mut boot: Vec<(Method, Vec<KindPredictions>)> = Vec::new();
        if held.is_empty() {
            notes.push(format!(
                "{} campaign periods with a closed outcome window: too few to hold any out, no Qini",
                periods.len()
            ));
        } else {
            let cells = Cells::fit(history, |r| !is_held(r));
            let cell_uplift = |r: &HistoryRow, k: Kind| {
                cells.baseline(r.reason) * cells.save_rate(r.reason, k).unwrap_or(0.0)
            };
            let (by_kind, q) = evaluate(history, is_evaluated, cell_uplift);
            tried.push((Method::Cells, q, auuc(&by_kind), by_kind));
            boot.push((Method::Cells, predict_on(&boot_rows, cell_uplift)));
            match crate::trees::TwoModel::fit(history, |r| !is_held(r)) {
                Ok(trees) => {
                    let rows: Vec<&HistoryRow> =
                        history.rows.iter().filter(|r| is_evaluated(r)).collect();
                    let predicted = trees.uplift_rows(history, &rows)?;
                    let lookup = |r: &HistoryRow, k: Kind| {
                        predicted.get(&(r.row, k)).copied().unwrap_or(0.0)
                    };
                    let (by_kind, q) = evaluate(history, is_evaluated, lookup);
                    tried.push((Method::TwoModel, q, auuc(&by_kind), by_kind));
                    boot.push((Method::TwoModel, predict_on(&boot_rows, lookup)));
                    let blend = |r: &HistoryRow, k: Kind| 0.5 * (lookup(r, k) + cell_uplift(r, k));
                    let (by_kind, q) = evaluate(history, is_evaluated, blend);
                    tried.push((Method::Blend, q, auuc(&by_kind), by_kind));
                    boot.push((Method::Blend, predict_on(&boot_rows, blend)));
                }
                Err(e) => notes.push(format!("two-model not fitted: {e}")),
            }
        }
        let mut best = tried
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Method::Cells, |t| t.0);
        let mut qini_interval = None;
        if !boot.is_empty() {
            let draws = bootstrap(&boot_rows, &boot);
            // A richer method is kept only when it beats the cells on the resampled contacts
            // more than 95% of the time: at small sizes its Qini lead is mostly luck.
            if best != Method::Cells
                && let Some(lead) = draws
                    .get(&best)
                    .zip(draws.get(&Method::Cells))
                    .map(|(b, c)| b.iter().zip(c).filter(|(b, c)| b > c).count())
                && (lead as f64) < 0.95 * BOOTSTRAP_DRAWS as f64
            {
                notes.push(format!(
                    "{} led the cells in {lead} of {BOOTSTRAP_DRAWS} resamples of the held-out \
                     contacts, too few to trust: the cells are used",
                    method_name(best)
                ));
                best = Method::Cells;
            }
            qini_interval = draws.get(&best).map(|d| interval(d));
        }
        let cells = Cells::fit(history, |_| true);
        let trees = if matches!(best, Method::TwoModel | Method::Blend) {
            Some(crate::trees::TwoModel::fit(history, |_| true)?)
        } else {
            None
        };
        let mut save_rates = Vec::new();
        for (reason, (code, _)) in crate::REASONS.iter().enumerate() {
            for kind in Kind::ALL {
                if let Some(s) = cells.save_rate(reason, kind) {
                    save_rates.push(SaveRate {
                        reason: (*code).to_owned(),
                        kind: kind.code().to_owned(),
                        save_rate: crate::round6(s),
                        control_churn: crate::round6(cells.baseline(reason)),
                    });
                }
            }
        }
        if history.rows.is_empty() {
            notes.push("no campaign history: every save rate is a library prior".into());
        }
        let chosen = tried.iter().find(|t| t.0 == best);
        let report = UpliftReport {
            method: if history.rows.is_empty() {
                Method::Prior
            } else {
                best
            },
            campaign_rows: history.rows.len(),
            campaign_periods: periods.iter().map(ToString::to_string).collect(),
            held_out_periods: held.iter().map(ToString::to_string).collect(),
            qini_by_method: tried.iter().map(|t| (t.0, t.1)).collect(),
            qini: chosen.map_or(0.0, |t| t.1),
            qini_interval,
            auuc: chosen.map_or(0.0, |t| t.2),
            by_kind: chosen.map(|t| t.3.clone()).unwrap_or_default(),
            save_rates,
            notes,
        };
        Ok(Uplift {
            cells,
            method: best,
            trees,
            untested_discount: policy.untested_discount,
            report,
            learner: None,
        })
    }

    /// Per candidate row (of `features`) and offer kind, the individual save rate from the
    /// chosen method, for kinds some campaign tried. Cells need only the reason.
    pub fn individual(
        &self,
        features: &crate::inputs::Features,
        rows: &[usize],
    ) -> Result<Option<Vec<[f32; 10]>>> {
        if let Some(trees) = &self.trees {
            return trees.save_rates(features, rows).map(Some);
        }
        Ok(None)
    }

    /// Lets the outcomes of retain's own campaigns refine every estimate; `seed` fixes the
    /// exploration draws, so a run repeated with it values the same.
    #[must_use]
    pub fn with_learning(mut self, learning: crate::Learning, seed: u64) -> Uplift {
        self.learner = (learning.observations() > 0).then_some((learning, seed));
        self
    }

    /// The estimate `save` (from [`Uplift::save_rate`]) refined by what the learning holds for
    /// the candidate's reason, the offer's kind and the candidate's value tier: the belief's
    /// mean, or, for a subscriber in the exploration share, a draw from it.
    #[must_use]
    pub fn refine(
        &self,
        candidate: &crate::Candidate,
        offer: &Offer,
        estimate: (f64, Method),
        exploration_share: f64,
    ) -> (f64, Method) {
        let Some((learning, seed)) = &self.learner else {
            return estimate;
        };
        let cell = crate::Cell {
            reason: crate::REASONS[candidate.reason].0,
            segment: &candidate.tier,
        };
        let belief = learning.belief(cell, offer.kind.code(), candidate.p_churn, estimate.0);
        if belief.pooled == 0 {
            return estimate;
        }
        let mut rng = rand_pcg::Pcg64Mcg::new(
            u128::from(*seed) << 64
                | u128::from(candidate.subscriber_id.unsigned_abs())
                    ^ (offer.kind.index() as u128) << 56,
        );
        if rand::Rng::random::<f64>(&mut rng) < exploration_share {
            (belief.draw_save_rate(&mut rng), Method::Explored)
        } else {
            (belief.save_rate(), Method::Learned)
        }
    }

    /// The share of would-be churners with `reason` that `offer` keeps, and where it came
    /// from. `individual` is the two-model's rate for this subscriber and kind, if any.
    #[must_use]
    pub fn save_rate(
        &self,
        reason: usize,
        offer: &Offer,
        individual: Option<f64>,
    ) -> (f64, Method) {
        let Some(cell) = self.cells.save_rate(reason, offer.kind) else {
            let prior = if offer.addresses(crate::REASONS[reason].0) {
                offer.prior_save_rate
            } else {
                offer.prior_save_rate * 0.2
            };
            return (prior * self.untested_discount, Method::Prior);
        };
        match (self.method, individual) {
            (Method::TwoModel, Some(t)) => (t, Method::TwoModel),
            (Method::Blend, Some(t)) => (0.5 * (t + cell), Method::Blend),
            _ => (cell, Method::Cells),
        }
    }
}

/// A method as a sentence names it.
fn method_name(m: Method) -> &'static str {
    match m {
        Method::Cells => "cells",
        Method::TwoModel => "the two-model",
        Method::Blend => "the blend",
        Method::Prior => "the prior",
        Method::Learned => "learning",
        Method::Explored => "exploring",
    }
}

/// `predict` of every kind on each of `rows`.
fn predict_on(
    rows: &[&HistoryRow],
    predict: impl Fn(&HistoryRow, Kind) -> f64,
) -> Vec<KindPredictions> {
    rows.iter()
        .map(|r| Kind::ALL.map(|k| predict(r, k)))
        .collect()
}

/// Each method's weighted Qini on [`BOOTSTRAP_DRAWS`] resamples (with replacement, a fixed
/// seed) of `rows`, the same resamples for every method.
fn bootstrap(
    rows: &[&HistoryRow],
    predictions: &[(Method, Vec<KindPredictions>)],
) -> std::collections::HashMap<Method, Vec<f64>> {
    let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(0x5EED_B007);
    let mut out: std::collections::HashMap<Method, Vec<f64>> = std::collections::HashMap::new();
    if rows.is_empty() {
        return out;
    }
    let mut pick = vec![0; rows.len()];
    for _ in 0..BOOTSTRAP_DRAWS {
        for p in &mut pick {
            *p = rand::Rng::random_range(&mut rng, 0..rows.len());
        }
        for (method, predicted) in predictions {
            out.entry(*method)
                .or_default()
                .push(crate::uplift::weighted_qini(rows, predicted, &pick));
        }
    }
    out
}

/// The 2.5% and 97.5% quantiles of `draws`.
fn interval(draws: &[f64]) -> (f64, f64) {
    let mut d = draws.to_vec();
    d.sort_by(f64::total_cmp);
    let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    if d.is_empty() {
        (0.0, 0.0)
    } else {
        (crate::round6(at(0.025)), crate::round6(at(0.975)))
    }
}

/// AUUC over kinds, weighted by treated contacts.
fn auuc(by_kind: &[Qini]) -> f64 {
    let total: usize = by_kind.iter().map(|q| q.treated).sum();
    crate::round6(
        by_kind
            .iter()
            .map(|q| q.auuc * q.treated as f64)
            .sum::<f64>()
            / total.max(1) as f64,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_interval_is_the_middle_ninety_five_percent_of_the_draws() {
        let draws: Vec<f64> = (0..200).rev().map(f64::from).collect();
        assert_eq!(super::interval(&draws), (5.0, 194.0));
        assert_eq!(super::interval(&[]), (0.0, 0.0));
    }
}
