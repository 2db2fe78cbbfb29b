//! Offers that learn: what each treatment did, counted per reason × offer kind × segment, as
//! Bayesian (Beta) beliefs about churn among the treated and among the control group, with the
//! library's prior as the starting point. The mean of a belief serves the plan; a draw from it
//! (Thompson sampling) serves the share of the budget set aside for exploring, so offers that
//! look worse than they are still get tried, as much as their uncertainty warrants.
//!
//! Beliefs pool upwards: a reason × kind × segment cell starts from its reason × kind belief
//! (all segments), which starts from the prior, so a thin segment borrows from its neighbours
//! until its own outcomes speak.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Where the learning is kept in a workspace.
pub const LEARNING_FILE: &str = "offers/learning.json";

/// Pseudo-observations the prior is worth. An offer moves churn by a few points against a
/// churn near a third, so fewer outcomes than this tell noise, not effect: a weaker prior lets
/// a lucky handful of saves send the budget after an expensive offer.
const PRIOR_STRENGTH: f64 = 50.0;
/// Pseudo-observations a pooled belief is worth to the cells below it.
const POOL_STRENGTH: f64 = 50.0;
/// The same for the control group's churn, which differs less between cells than it is
/// noisy in them: the control group is a tenth of the treated.
const CONTROL_POOL_STRENGTH: f64 = 100.0;

/// Outcomes counted in one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Treated (or held out) subscribers who left within the outcome window.
    pub churned: u64,
    pub stayed: u64,
}

impl Counts {
    #[must_use]
    pub fn n(self) -> u64 {
        self.churned + self.stayed
    }

    fn add(&mut self, churned: bool) {
        if churned {
            self.churned += 1;
        } else {
            self.stayed += 1;
        }
    }

    fn plus(self, o: Counts) -> Counts {
        Counts {
            churned: self.churned + o.churned,
            stayed: self.stayed + o.stayed,
        }
    }

    /// The Beta posterior over the churn rate from a prior of `mean` worth `strength`
    /// observations.
    fn posterior(self, mean: f64, strength: f64) -> Posterior {
        let mean = mean.clamp(1e-4, 1.0 - 1e-4);
        Posterior {
            alpha: mean * strength + self.churned as f64,
            beta: (1.0 - mean) * strength + self.stayed as f64,
        }
    }
}

/// A Beta belief about a churn rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    pub alpha: f64,
    pub beta: f64,
}

impl Posterior {
    #[must_use]
    pub fn mean(self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// One draw from the belief (Thompson sampling).
    pub fn draw<R: Rng + ?Sized>(self, rng: &mut R) -> f64 {
        Beta::new(self.alpha, self.beta).map_or_else(|_| self.mean(), |b| b.sample(rng))
    }
}

/// What a subscriber is, for learning: the reason the warning gave, the segment it falls in.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub reason: &'a str,
    pub segment: &'a str,
}

/// The learning of one workspace: outcome counts per cell, written after every update.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Learning {
    /// `reason/kind/segment` → outcomes of those treated with the kind.
    pub treated: BTreeMap<String, Counts>,
    /// `reason/segment` → outcomes of the control group.
    pub control: BTreeMap<String, Counts>,
}

/// A save rate as the learning sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learned {
    /// Churn expected without a treatment.
    pub control: Posterior,
    /// Churn expected with the kind.
    pub treated: Posterior,
    /// Outcomes of this very cell behind the belief.
    pub observed: u64,
    /// Outcomes of the kind for the reason, all segments.
    pub pooled: u64,
}

impl Learned {
    /// The share of would-be leavers the kind keeps, by the beliefs' means.
    #[must_use]
    pub fn save_rate(&self) -> f64 {
        save(self.control.mean(), self.treated.mean())
    }

    /// The same from one draw of each belief.
    pub fn draw_save_rate<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        save(self.control.draw(rng), self.treated.draw(rng))
    }

    /// Churn the kind takes away: control churn less treated churn, by the means. What the
    /// outcomes measure directly, so a noisy control moves every kind of a cell alike.
    #[must_use]
    pub fn uplift(&self) -> f64 {
        (self.control.mean() - self.treated.mean()).max(0.0)
    }

    /// The same from one draw of each belief (Thompson sampling).
    pub fn draw_uplift<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        (self.control.draw(rng) - self.treated.draw(rng)).max(0.0)
    }
}

fn save(control: f64, treated: f64) -> f64 {
    if control <= 0.0 {
        return 0.0;
    }
    (1.0 - treated / control).clamp(0.0, 1.0)
}

impl Learning {
    /// The workspace's learning, empty when nothing was learned yet.
    pub fn for_workspace(workspace: &retain_data::Workspace) -> Result<Learning> {
        Ok(retain_data::read_json(&Self::path(workspace))?.unwrap_or_default())
    }

    #[must_use]
    pub fn path(workspace: &retain_data::Workspace) -> PathBuf {
        workspace.root().join(LEARNING_FILE)
    }

    /// Writes the learning whole, replacing the last.
    pub fn save(&self, workspace: &retain_data::Workspace) -> Result<()> {
        Ok(retain_data::write_json(&Self::path(workspace), self)?)
    }

    /// Counts the outcome of a subscriber treated with `kind`.
    pub fn observe_treated(&mut self, cell: Cell<'_>, kind: &str, churned: bool) {
        self.treated
            .entry(format!("{}/{kind}/{}", cell.reason, cell.segment))
            .or_default()
            .add(churned);
    }

    /// Counts the outcome of a subscriber of the control group.
    pub fn observe_control(&mut self, cell: Cell<'_>, churned: bool) {
        self.control
            .entry(format!("{}/{}", cell.reason, cell.segment))
            .or_default()
            .add(churned);
    }

    /// Churn in every control group counted, if any was.
    #[must_use]
    pub fn control_churn(&self) -> Option<f64> {
        let all = self
            .control
            .values()
            .fold(Counts::default(), |a, c| a.plus(*c));
        (all.n() > 0).then(|| all.churned as f64 / all.n() as f64)
    }

    /// The learned cells for people, against the library's priors.
    #[must_use]
    pub fn view(&self, library: &crate::Library) -> LearningView {
        // Without any control group the churn of a warned subscriber is a third, about what
        // the warning lists' precision is.
        let base = self.control_churn().unwrap_or(1.0 / 3.0);
        LearningView {
            observations: self.observations(),
            control_churn: self.control_churn().map(crate::round6),
            cells: self.table(base, |r, k| library.prior_save(r, k).unwrap_or(0.0)),
        }
    }

    /// Outcomes counted, treated and control.
    #[must_use]
    pub fn observations(&self) -> u64 {
        self.treated
            .values()
            .chain(self.control.values())
            .map(|c| c.n())
            .sum()
    }

    /// The beliefs about `kind` for `cell`, starting from a churn rate of `base` among those
    /// the warning picks and the library's `prior_save` for the kind.
    #[must_use]
    pub fn belief(&self, cell: Cell<'_>, kind: &str, base: f64, prior_save: f64) -> Learned {
        let sum = |map: &BTreeMap<String, Counts>, prefix: &str| {
            map.range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .fold(Counts::default(), |acc, (_, c)| acc.plus(*c))
        };
        let reason = cell.reason;
        let all_control = sum(&self.control, "").posterior(base, PRIOR_STRENGTH);
        let control_pool = sum(&self.control, &format!("{reason}/"))
            .posterior(all_control.mean(), CONTROL_POOL_STRENGTH);
        let control = self
            .control
            .get(&format!("{reason}/{}", cell.segment))
            .copied()
            .unwrap_or_default()
            .posterior(control_pool.mean(), CONTROL_POOL_STRENGTH);
        let treated_prior = control_pool.mean() * (1.0 - prior_save.clamp(0.0, 1.0));
        let pooled = sum(&self.treated, &format!("{reason}/{kind}/"));
        let treated_pool = pooled.posterior(treated_prior, PRIOR_STRENGTH);
        let own = self
            .treated
            .get(&format!("{reason}/{kind}/{}", cell.segment))
            .copied()
            .unwrap_or_default();
        Learned {
            control,
            treated: own.posterior(treated_pool.mean(), POOL_STRENGTH),
            observed: own.n(),
            pooled: pooled.n(),
        }
    }

    /// Every cell with outcomes, for people: what was learned against what was assumed.
    #[must_use]
    pub fn table(&self, base: f64, prior_save: impl Fn(&str, &str) -> f64) -> Vec<LearnedRow> {
        self.treated
            .iter()
            .filter_map(|(key, counts)| {
                let mut parts = key.splitn(3, '/');
                let (reason, kind, segment) = (parts.next()?, parts.next()?, parts.next()?);
                let prior = prior_save(reason, kind);
                let learned = self.belief(Cell { reason, segment }, kind, base, prior);
                Some(LearnedRow {
                    reason: reason.to_owned(),
                    kind: kind.to_owned(),
                    segment: segment.to_owned(),
                    treated: counts.n(),
                    churn_treated: crate::round6(learned.treated.mean()),
                    churn_control: crate::round6(learned.control.mean()),
                    prior_save_rate: crate::round6(prior),
                    save_rate: crate::round6(learned.save_rate()),
                })
            })
            .collect()
    }
}

/// What the learning holds, for the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LearningView {
    /// Outcomes counted, treated and control.
    pub observations: u64,
    pub control_churn: Option<f64>,
    pub cells: Vec<LearnedRow>,
}

/// One learned cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LearnedRow {
    pub reason: String,
    pub kind: String,
    pub segment: String,
    /// Treated subscribers whose outcome is known.
    pub treated: u64,
    pub churn_treated: f64,
    pub churn_control: f64,
    pub prior_save_rate: f64,
    pub save_rate: f64,
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const CELL: Cell<'static> = Cell {
        reason: "network_quality",
        segment: "high",
    };

    #[test]
    fn with_no_outcomes_the_prior_holds() {
        let l = Learning::default();
        let b = l.belief(CELL, "network_fix", 0.4, 0.5);
        assert!((b.control.mean() - 0.4).abs() < 1e-9);
        assert!((b.save_rate() - 0.5).abs() < 1e-9);
        assert_eq!(b.observed, 0);
    }

    #[test]
    fn outcomes_move_the_belief_to_the_truth() {
        // The prior says the discount keeps half; in truth it keeps a tenth.
        let mut l = Learning::default();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        for _ in 0..4000 {
            l.observe_control(CELL, rng.random::<f64>() < 0.4);
            l.observe_treated(CELL, "fee_discount", rng.random::<f64>() < 0.36);
        }
        let b = l.belief(CELL, "fee_discount", 0.4, 0.5);
        assert!((b.save_rate() - 0.1).abs() < 0.05, "{}", b.save_rate());
        assert_eq!(b.observed, 4000);
    }

    #[test]
    fn a_thin_segment_borrows_from_its_reason() {
        let mut l = Learning::default();
        let other = Cell {
            reason: CELL.reason,
            segment: "low",
        };
        for i in 0..1000 {
            l.observe_control(other, i % 2 == 0);
            l.observe_treated(other, "network_fix", i % 10 == 0);
        }
        // Nothing seen in `high`, but the reason's pool says network fixes keep ~80%.
        let b = l.belief(CELL, "network_fix", 0.5, 0.05);
        assert!(b.save_rate() > 0.6, "{}", b.save_rate());
        assert_eq!(b.observed, 0);
    }

    #[test]
    fn draws_spread_with_uncertainty_and_narrow_with_outcomes() {
        let spread = |l: &Learning| {
            let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
            let b = l.belief(CELL, "data_bonus", 0.4, 0.2);
            let draws: Vec<f64> = (0..2000).map(|_| b.draw_save_rate(&mut rng)).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64).sqrt()
        };
        let mut l = Learning::default();
        let before = spread(&l);
        for i in 0..3000 {
            l.observe_control(CELL, i % 5 < 2);
            l.observe_treated(CELL, "data_bonus", i % 10 < 3);
        }
        let after = spread(&l);
        assert!(before > 0.1, "{before}");
        assert!(after < before / 3.0, "{before} → {after}");
    }

    #[test]
    fn the_table_lists_learned_cells() {
        let mut l = Learning::default();
        l.observe_treated(CELL, "network_fix", false);
        let rows = l.table(0.4, |_, _| 0.3);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, "network_fix");
        assert_eq!(rows[0].treated, 1);
        assert_eq!(l.observations(), 1);
    }
}
