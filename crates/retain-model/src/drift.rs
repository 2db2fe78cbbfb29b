//! Drift of a scored population from the one its model was tested on. Training keeps, in the
//! model's `meta.json`, the decile bins of the test month's probabilities and of every feature
//! (a dozen numbers each, never the rows); scoring counts everyone into the same bins as the
//! chunks stream by and reports the population stability index (PSI) of each, with its level.

use serde::{Deserialize, Serialize};

use crate::metrics::round;
use crate::table::Table;

/// The usual PSI convention: below 0.1 stable, from 0.25 a shift.
const WATCH: f64 = 0.1;
const ALERT: f64 = 0.25;
/// A floor on a bin's share keeps an empty bin from making the index infinite.
const FLOOR: f64 = 1e-4;
/// Features listed in a drift report, the most shifted first.
const LISTED: usize = 10;

/// A reference distribution as bins: cut at its deciles, missing values a bin of their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Ascending cut points without repeats; a value equal to one falls in the bin above it.
    pub edges: Vec<f64>,
    /// The reference's share of each bin: the `edges.len() + 1` bins of values, then the
    /// missing values'.
    pub shares: Vec<f64>,
}

impl Bins {
    /// The bins of `values`, at their deciles.
    #[must_use]
    pub fn of(values: &[f64]) -> Bins {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..10)
            .filter_map(|k| sorted.get(k * sorted.len() / 10).copied())
            .collect();
        edges.dedup();
        let mut bins = Bins {
            edges,
            shares: Vec::new(),
        };
        let mut counts = bins.empty();
        for v in values {
            bins.count(&mut counts, *v);
        }
        bins.shares = shares(&counts);
        bins
    }

    /// Zero counts, one per bin.
    pub(crate) fn empty(&self) -> Vec<u64> {
        vec![0; self.edges.len() + 2]
    }

    pub(crate) fn count(&self, counts: &mut [u64], v: f64) {
        let bin = if v.is_nan() {
            self.edges.len() + 1
        } else {
            self.edges.partition_point(|e| *e <= v)
        };
        counts[bin] += 1;
    }

    /// The PSI of a population counted into these bins against the reference:
    /// Σ (a − e) · ln(a / e) over the bins' shares.
    fn psi(&self, counts: &[u64]) -> f64 {
        let actual = shares(counts);
        round(
            self.shares
                .iter()
                .zip(&actual)
                .map(|(e, a)| {
                    let (e, a) = (e.max(FLOOR), a.max(FLOOR));
                    (a - e) * (a / e).ln()
                })
                .sum(),
        )
    }

    /// The PSI of `values` against the reference.
    #[must_use]
    pub fn psi_of(&self, values: &[f64]) -> f64 {
        let mut counts = self.empty();
        for v in values {
            self.count(&mut counts, *v);
        }
        self.psi(&counts)
    }
}

fn shares(counts: &[u64]) -> Vec<f64> {
    let n = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|c| *c as f64 / n).collect()
}

/// How far a population moved, by the usual PSI convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftLevel {
    /// Below 0.1: stable.
    Ok,
    /// From 0.1 to below 0.25: worth a look.
    Watch,
    /// From 0.25: the population shifted; the model's scores may no longer hold.
    Alert,
}

impl DriftLevel {
    #[must_use]
    pub fn of(psi: f64) -> DriftLevel {
        if psi >= ALERT {
            DriftLevel::Alert
        } else if psi >= WATCH {
            DriftLevel::Watch
        } else {
            DriftLevel::Ok
        }
    }
}

impl std::fmt::Display for DriftLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriftLevel::Ok => "ok",
            DriftLevel::Watch => "watch",
            DriftLevel::Alert => "alert",
        })
    }
}

/// One feature's reference bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    pub feature: String,
    #[serde(flatten)]
    pub bins: Bins,
}

/// The population a model was tested on, as bins: kept in its `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    /// The test month, `YYYY-MM`.
    pub month: String,
    pub rows: usize,
    /// The model's probabilities there.
    pub score: Bins,
    pub features: Vec<FeatureBins>,
}

impl DriftReference {
    /// The bins of the test rows `test` and the model's `probabilities` of them.
    #[must_use]
    pub fn of(test: &Table, probabilities: &[f64], month: String) -> DriftReference {
        let d = test.features.len();
        let features = test
            .features
            .iter()
            .enumerate()
            .map(|(j, feature)| {
                let column: Vec<f64> = test.x.iter().skip(j).step_by(d).copied().collect();
                FeatureBins {
                    feature: feature.clone(),
                    bins: Bins::of(&column),
                }
            })
            .collect();
        DriftReference {
            month,
            rows: test.len(),
            score: Bins::of(probabilities),
            features,
        }
    }
}

/// The PSI of one distribution against the reference, and its level.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    pub psi: f64,
    pub level: DriftLevel,
}

impl Stability {
    fn of(psi: f64) -> Stability {
        Stability {
            psi,
            level: DriftLevel::of(psi),
        }
    }
}

/// One feature's stability.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureStability {
    pub feature: String,
    #[serde(flatten)]
    pub stability: Stability,
}

/// How far a scored population moved from the model's test month (`retain score --json`'s
/// `drift`).
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// The month the model was tested on.
    pub reference: String,
    /// The worst level of the probabilities and the features.
    pub level: DriftLevel,
    pub score: Stability,
    /// Features at each level.
    pub features_watch: usize,
    pub features_alert: usize,
    /// The ten features that moved most.
    pub features: Vec<FeatureStability>,
}

/// Everyone's feature values counted into a reference's bins, a chunk at a time.
#[derive(Debug)]
pub(crate) struct Tally<'r> {
    reference: &'r DriftReference,
    /// Per reference feature, its column in the scored rows (found on the first chunk).
    columns: Vec<Option<usize>>,
    counts: Vec<Vec<u64>>,
}

impl<'r> Tally<'r> {
    pub(crate) fn new(reference: &'r DriftReference) -> Tally<'r> {
        Tally {
            reference,
            columns: Vec::new(),
            counts: reference.features.iter().map(|f| f.bins.empty()).collect(),
        }
    }

    /// Counts the row-major rows `x` of the columns `features`.
    pub(crate) fn add(&mut self, features: &[String], x: &[f64]) {
        if self.columns.is_empty() {
            self.columns = self
                .reference
                .features
                .iter()
                .map(|f| features.iter().position(|n| *n == f.feature))
                .collect();
        }
        let d = features.len();
        for row in x.chunks_exact(d) {
            for ((reference, column), counts) in self
                .reference
                .features
                .iter()
                .zip(&self.columns)
                .zip(&mut self.counts)
            {
                if let Some(j) = column {
                    reference.bins.count(counts, row[*j]);
                }
            }
        }
    }

    /// The drift of the counted features and of `probabilities`. Features the scored rows do
    /// not have are left out.
    pub(crate) fn finish(self, probabilities: &[f64]) -> Drift {
        let mut score = self.reference.score.empty();
        for p in probabilities {
            self.reference.score.count(&mut score, *p);
        }
        let (taken, counts): (Vec<String>, Vec<Vec<u64>>) = self
            .reference
            .features
            .iter()
            .zip(&self.columns)
            .zip(self.counts)
            .filter(|((_, column), _)| column.is_some())
            .map(|((reference, _), counts)| (reference.feature.clone(), counts))
            .unzip();
        from_counts(self.reference, &taken, &score, &counts)
    }
}

/// The drift of a population counted into `reference`'s bins: `score` the probabilities'
/// counts, `features` those of the reference features named `taken`, in the reference's order.
pub(crate) fn from_counts(
    reference: &DriftReference,
    taken: &[String],
    score: &[u64],
    features: &[Vec<u64>],
) -> Drift {
    let score = Stability::of(reference.score.psi(score));
    let mut features: Vec<FeatureStability> = reference
        .features
        .iter()
        .filter(|f| taken.contains(&f.feature))
        .zip(features)
        .map(|(reference, counts)| FeatureStability {
            feature: reference.feature.clone(),
            stability: Stability::of(reference.bins.psi(counts)),
        })
        .collect();
    // Sorted by name first so ties list the same way every run.
    features.sort_by(|a, b| {
        b.stability
            .psi
            .total_cmp(&a.stability.psi)
            .then_with(|| a.feature.cmp(&b.feature))
    });
    let at = |level| {
        features
            .iter()
            .filter(|f| f.stability.level == level)
            .count()
    };
    let (features_watch, features_alert) = (at(DriftLevel::Watch), at(DriftLevel::Alert));
    let level = features
        .iter()
        .map(|f| f.stability.level)
        .fold(score.level, Ord::max);
    features.truncate(LISTED);
    Drift {
        reference: reference.month.clone(),
        level,
        score,
        features_watch,
        features_alert,
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_usual_convention() {
        assert_eq!(DriftLevel::of(0.0), DriftLevel::Ok);
        assert_eq!(DriftLevel::of(0.0999), DriftLevel::Ok);
        assert_eq!(DriftLevel::of(0.1), DriftLevel::Watch);
        assert_eq!(DriftLevel::of(0.2499), DriftLevel::Watch);
        assert_eq!(DriftLevel::of(0.25), DriftLevel::Alert);
        assert_eq!(DriftLevel::of(7.0), DriftLevel::Alert);
        assert!(DriftLevel::Ok < DriftLevel::Watch && DriftLevel::Watch < DriftLevel::Alert);
    }

    #[test]
    fn bins_keep_deciles_and_the_missing_share() {
        let values: Vec<f64> = (0..100)
            .map(|i| if i < 20 { f64::NAN } else { f64::from(i) })
            .collect();
        let bins = Bins::of(&values);
        assert_eq!(bins.edges.len(), 9);
        assert_eq!(bins.shares.len(), 11);
        assert!((bins.shares[10] - 0.2).abs() < 1e-12);
        assert!((bins.shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // A constant has one edge: below it nothing, at or above it everything.
        let constant = Bins::of(&[3.0; 50]);
        assert_eq!(constant.edges, [3.0]);
        assert!(constant.psi_of(&[3.0; 7]) < 1e-9);
        assert!(constant.psi_of(&[1.0; 7]) > 1.0);
    }

    /// A stream counted chunk by chunk reports what the whole columns' PSI says, with levels.
    #[test]
    fn a_tally_over_chunks_is_the_psi_of_the_columns() {
        let n = 2_000;
        let reference_table = Table {
            features: vec!["fee".into(), "stable".into(), "gone".into()],
            x: (0..n)
                .flat_map(|i| [f64::from(i), f64::from(i % 100), 1.0])
                .collect(),
            label: vec![false; n as usize],
            ..Table::default()
        };
        let reference_p: Vec<f64> = (0..n).map(|i| f64::from(i) / f64::from(n)).collect();
        let reference = DriftReference::of(&reference_table, &reference_p, "2026-07".into());
        // Scored rows: fees shifted up by half their range, the other column the same, a
        // column the reference does not know, and no `gone`.
        let features: Vec<String> = vec!["stable".into(), "new".into(), "fee".into()];
        let rows: Vec<[f64; 3]> = (0..n)
            .map(|i| [f64::from(i % 100), 0.0, f64::from(i + n / 2)])
            .collect();
        let mut tally = Tally::new(&reference);
        for chunk in rows.chunks(300) {
            let x: Vec<f64> = chunk.iter().flatten().copied().collect();
            tally.add(&features, &x);
        }
        let drift = tally.finish(&reference_p);
        assert_eq!(drift.reference, "2026-07");
        assert!(drift.score.psi < 1e-9);
        assert_eq!(drift.score.level, DriftLevel::Ok);
        let names: Vec<&str> = drift.features.iter().map(|f| f.feature.as_str()).collect();
        assert_eq!(names, ["fee", "stable"]);
        let shifted: Vec<f64> = rows.iter().map(|r| r[2]).collect();
        let fee: Vec<f64> = (0..n).map(f64::from).collect();
        assert!((drift.features[0].stability.psi - crate::psi(&fee, &shifted)).abs() < 1e-12);
        assert_eq!(drift.features[0].stability.level, DriftLevel::Alert);
        assert_eq!(drift.features[1].stability.level, DriftLevel::Ok);
        assert_eq!((drift.features_watch, drift.features_alert), (0, 1));
        assert_eq!(drift.level, DriftLevel::Alert);
    }
}
