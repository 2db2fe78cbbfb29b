//! The fitted model and its scoring: calibrated probabilities a chunk of rows at a time on
//! every core, and the reasons behind the riskiest scores.

use serde::Serialize;

use super::calibration::{Blend, Platt};
use super::encoding::{for_trees, recode_for_trees};
use crate::causes::CauseModel;
use crate::error::{Error, Result};
use crate::forest::{Forest, on_cores};
use crate::logistic::Logistic;
use crate::reasons::{Reason, cause_reasons, top_reasons};
use crate::table::Table;

/// A trained, calibrated churn model.
pub struct ChurnModel {
    /// The trees, evaluated in Rust: what scoring uses ([`Forest`]).
    pub forest: Forest,
    pub features: Vec<String>,
    /// Per categorical feature, the trees' code of each level (see
    /// [`target_order`](super::encoding::target_order)).
    pub level_order: Vec<Option<Vec<f64>>>,
    pub platt: Platt,
    pub logistic: Logistic,
    pub blend: Blend,
    /// Ranks the reasons by cause when the training set taught one ([`CauseModel`]).
    pub causes: Option<CauseModel>,
}

/// Rows scored together by [`ChurnModel::probabilities`]: their copy in the trees' encoding
/// stays in cache.
const CHUNK: usize = 1024;
/// Rows worth a thread of their own when scoring.
const SCORED_PER_THREAD: usize = 8 * CHUNK;

impl ChurnModel {
    /// The trees in LightGBM's text format, as the registry saves them.
    #[must_use]
    pub fn text(&self) -> String {
        self.forest.to_lightgbm(&self.features)
    }
}

/// One subscriber's score.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub subscriber_id: i64,
    pub probability: f64,
    pub reasons: Vec<Reason>,
}

impl ChurnModel {
    /// Calibrated churn probabilities of row-major `x` (the model's features, in order).
    ///
    /// One pass over the rows on every core: per chunk, the trees' raw scores (on a copy in
    /// the trees' encoding when there are categorical columns), the regression's log-odds, the
    /// blend and its calibration. Done as whole-table passes, the copy, the regression and
    /// the calibration ran on one core beside the trees' two and wrote and read vectors of
    /// every row in between.
    pub fn probabilities(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.probabilities_on(x, SCORED_PER_THREAD)
    }

    /// [`ChurnModel::probabilities`] on this thread alone: a core's throughput, as the
    /// scoring goal counts it.
    pub fn probabilities_on_one_core(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.probabilities_on(x, usize::MAX)
    }

    /// Probabilities, with a thread for every `per_thread` rows up to one per core.
    fn probabilities_on(&self, x: &[f64], per_thread: usize) -> Result<Vec<f64>> {
        let d = self.features.len();
        let w = self.blend.gbdt_weight;
        if w > 0.0 {
            self.forest.check_width(d)?;
        }
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(Error::Data(format!(
                "{} values do not make rows of {d} columns",
                x.len()
            )));
        }
        let recode = self.level_order.iter().any(Option::is_some);
        let mut out = vec![0.0; x.len() / d];
        on_cores(x, d, &mut out, 1, per_thread, CHUNK, |x, out| {
            let mut coded = Vec::new();
            for (rows, out) in x.chunks(CHUNK * d).zip(out.chunks_mut(CHUNK)) {
                if w > 0.0 {
                    let rows = if recode {
                        coded.clear();
                        coded.extend_from_slice(rows);
                        recode_for_trees(&mut coded, d, &self.level_order);
                        &coded
                    } else {
                        rows
                    };
                    self.forest.score_rows(rows, d, out);
                }
                for (z, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
                    let trees = if w > 0.0 { self.platt.logit(*z) } else { 0.0 };
                    let linear = if w < 1.0 {
                        self.logistic.logit(row)
                    } else {
                        0.0
                    };
                    *z = self.blend.calibration.apply(w * trees + (1.0 - w) * linear);
                }
            }
        });
        Ok(out)
    }

    /// Per-feature contributions to the churn score of row-major `x` (the model's features, in
    /// order), `d` a row, all in calibrated log-odds: the trees' SHAP values scaled by both
    /// calibrations, the regression's terms by the final one.
    pub(crate) fn contributions(
        &self,
        x: &[f64],
        explainer: Option<&crate::shap::Explainer<'_>>,
    ) -> Result<Vec<f64>> {
        let d = self.features.len();
        let rows = x.len() / d.max(1);
        let w = self.blend.gbdt_weight;
        let contrib = if w > 0.0 && rows > 0 {
            let coded = for_trees(x, d, &self.level_order);
            match explainer {
                Some(explainer) => explainer.contributions(&coded, d)?,
                None => crate::shap::Explainer::new(&self.forest)?.contributions(&coded, d)?,
            }
        } else {
            Vec::new()
        };
        let tree_scale = w * -self.platt.a;
        let mut mixed = vec![0.0; rows * d];
        for k in 0..rows {
            let linear = if w < 1.0 {
                self.logistic.contributions(&x[k * d..(k + 1) * d])
            } else {
                vec![0.0; d]
            };
            for j in 0..d {
                // Tree contributions come one per feature, then the bias.
                let tree = if w > 0.0 {
                    contrib[k * (d + 1) + j]
                } else {
                    0.0
                };
                mixed[k * d + j] = tree_scale * tree + (1.0 - w) * linear[j];
            }
        }
        Ok(mixed)
    }

    /// The three reasons of a row with its contributions: ranked by the cause model when there
    /// is one, else by the contributions summed per category.
    fn reasons(&self, x: &[f64], contributions: &[f64]) -> Vec<Reason> {
        match &self.causes {
            Some(causes) => {
                let p = causes.causes(x);
                let mut reasons =
                    cause_reasons(&self.features, contributions, &causes.classes, &p, 3);
                // Categories the cause model never learned (too few said them) follow by weight.
                for r in top_reasons(&self.features, contributions, 3) {
                    if reasons.len() < 3 && reasons.iter().all(|k| k.category != r.category) {
                        reasons.push(r);
                    }
                }
                reasons
            }
            None => top_reasons(&self.features, contributions, 3),
        }
    }

    /// The likeliest cause of each row of row-major `x` (the model's features, in order), as a
    /// reason category; `None` when the model has no cause model.
    #[must_use]
    pub fn top_causes(&self, x: &[f64]) -> Option<Vec<&'static str>> {
        let causes = self.causes.as_ref()?;
        let d = self.features.len().max(1);
        let classes: Vec<&'static str> = causes
            .classes
            .iter()
            .map(|c| {
                crate::reasons::CATEGORIES
                    .iter()
                    .find(|(code, _)| code == c)
                    .map_or("unknown", |(code, _)| *code)
            })
            .collect();
        Some(
            x.chunks_exact(d)
                .map(|row| {
                    let p = causes.causes(row);
                    (0..p.len())
                        .max_by(|a, b| p[*a].total_cmp(&p[*b]).then(b.cmp(a)))
                        .map_or("unknown", |k| classes[k])
                })
                .collect(),
        )
    }

    /// Calibrated probabilities of every row of `table`, and top reasons for the riskiest
    /// `explained` share of them (others get none). Exact TreeSHAP costs about a thousand times
    /// a prediction, and a retention team acts on the top of the list, not on the safe majority.
    pub fn score(&self, table: &Table, explained: f64) -> Result<Vec<Score>> {
        self.score_explained_by(table, explained, None)
    }

    /// [`ChurnModel::score`] with `explainer` (of this model's forest) when given, rather than
    /// one prepared for this call.
    pub(crate) fn score_explained_by(
        &self,
        table: &Table,
        explained: f64,
        explainer: Option<&crate::shap::Explainer<'_>>,
    ) -> Result<Vec<Score>> {
        if table.features != self.features {
            return Err(Error::Data(
                "the feature columns differ from the model's".into(),
            ));
        }
        let d = self.features.len();
        let p = self.probabilities(&table.x)?;
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        order.truncate((p.len() as f64 * explained.clamp(0.0, 1.0)).ceil() as usize);
        order.sort_unstable();
        let x: Vec<f64> = order
            .iter()
            .flat_map(|i| table.x[i * d..(i + 1) * d].iter().copied())
            .collect();
        let mixed = self.contributions(&x, explainer)?;
        let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); p.len()];
        for (k, &i) in order.iter().enumerate() {
            let row = k * d..(k + 1) * d;
            reasons[i] = self.reasons(&x[row.clone()], &mixed[row]);
        }
        Ok(table
            .subscriber_id
            .iter()
            .zip(p)
            .zip(reasons)
            .map(|((id, probability), reasons)| Score {
                subscriber_id: *id,
                probability,
                reasons,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fit;
    use crate::train::tests::{draws, table};

    #[test]
    fn probabilities_in_chunks_on_every_core_are_each_rows_own() {
        // A categorical column (level 3 churns, level 1 missing from the training rows) and a
        // missing number, so the trees' recoding and the regression's flags are both taken.
        let mut t = table(3_000, 21);
        let mut next = draws(22);
        let mut x = Vec::with_capacity(t.len() * 4);
        for (i, row) in t.x.chunks_exact(3).enumerate() {
            let level = [0, 2, 3][(next() * 3.0) as usize];
            if level == 3 && next() < 0.5 {
                t.label[i] = true;
            }
            let a = if next() < 0.1 { f64::NAN } else { row[0] };
            x.extend([a, row[1], row[2], f64::from(level)]);
        }
        t.x = x;
        t.features.push("plan".into());
        t.levels = vec![
            None,
            None,
            None,
            Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        ];
        let rows: Vec<usize> = (0..t.len()).collect();
        let (mut model, _) = fit(&t, &rows[..2_400], &rows[2_400..]).unwrap();
        // Enough rows for two threads and several chunks each, with a ragged end.
        let x: Vec<f64> = t.x.iter().copied().cycle().take(20_003 * 4).collect();
        for w in [model.blend.gbdt_weight, 0.0, 0.5, 1.0] {
            model.blend.gbdt_weight = w;
            let got = model.probabilities(&x).unwrap();
            assert_eq!(got.len(), 20_003);
            assert_eq!(got, model.probabilities_on_one_core(&x).unwrap());
            for (k, row) in x.chunks_exact(4).enumerate().step_by(97) {
                let trees = model
                    .forest
                    .raw_scores(&for_trees(row, 4, &model.level_order), 4)
                    .unwrap()[0];
                let z = w * model.platt.logit(trees) + (1.0 - w) * model.logistic.logit(row);
                let expected = model.blend.calibration.apply(z);
                assert_eq!(got[k].to_bits(), expected.to_bits(), "row {k}, weight {w}");
            }
        }
        assert!(model.probabilities(&x[..5]).is_err());
    }
}
