//! Gradient-boosted trees grown in Rust: the recipe's trainer.
//!
//! The method is the one LightGBM made common, written here from its description: every feature
//! is cut into at most [`MAX_BIN`](bins::MAX_BIN) bins at quantiles of its values (missing
//! values in a bin of their own when the training rows have any), each round fits a regression
//! tree to the gradients and Hessians of the binary log loss, and a tree grows best leaf first
//! up to `num_leaves` leaves. A leaf's split is found from its histogram: per feature and bin,
//! the sums of gradients, Hessians and rows. Only the smaller child of a split is summed from
//! its rows; the larger one's histogram is its parent's minus the smaller's. Splits keep at
//! least `min_data_in_leaf` rows and `min_sum_hessian` Hessian on each side, leaf values are
//! regularized by `lambda_l2` and shrunk by the learning rate, and each tree sees a sampled
//! share of the features (and, on small tables, of the rows).
//!
//! Trees come out as a [`Forest`], the form the scorer and TreeSHAP read, with the training
//! rows' counts at every node and leaf and the gain of every split.
//!
//! In parts: `bins` cuts the features into bins and codes the rows, `histogram` sums a leaf's
//! rows bin by bin, and `tree` grows one tree leaf by leaf; this module holds the parameters and
//! the [`Booster`], which grows a round at a time and rolls rounds back.

mod bins;
mod histogram;
#[cfg(test)]
mod tests;
mod tree;

use crate::error::{Error, Result};
use crate::forest::{Forest, TreeParts};
use crate::split::SplitMix;
use bins::{Binned, FeatureBins, bin_rows, find_bins};
use histogram::{Layout, Sums, Used};
use tree::{Grown, Tree};

/// Rows a thread is given at least when binning or computing gradients: fewer cost less than
/// starting the threads.
const ROWS_PER_THREAD: usize = 24_576;

/// How the trees grow.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) learning_rate: f64,
    pub(crate) num_leaves: usize,
    pub(crate) min_data_in_leaf: usize,
    pub(crate) min_sum_hessian: f64,
    pub(crate) lambda_l2: f64,
    /// Share of the features each tree may split on.
    pub(crate) feature_fraction: f64,
    /// Share of the rows each tree grows on (1: every row, no sampling).
    pub(crate) bagging_fraction: f64,
    pub(crate) seed: u64,
    /// Threads for a large leaf's histogram, the gradients and the binning.
    pub(crate) threads: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            learning_rate: 0.1,
            num_leaves: 31,
            min_data_in_leaf: 20,
            min_sum_hessian: 1e-3,
            lambda_l2: 0.0,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            seed: 0,
            threads: 1,
        }
    }
}

/// One round's random draws, seeded by the model's seed and the round.
fn round_draws(seed: u64, round: usize) -> SplitMix {
    SplitMix(seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
}

/// Validation rows binned like the training rows, with their raw scores as the trees grow.
struct Valid {
    data: Binned,
    labels: Vec<bool>,
    scores: Vec<f64>,
}

/// A booster growing trees a round at a time on binned rows.
pub(crate) struct Booster {
    params: Params,
    bins: Vec<FeatureBins>,
    layout: Layout,
    data: Binned,
    labels: Vec<bool>,
    /// The training rows' raw scores by every round grown.
    scores: Vec<f64>,
    grad: Vec<[f32; 2]>,
    init: f64,
    trees: Vec<Tree>,
    valid: Option<Valid>,
    /// Histograms of leaves no longer growing, kept for the next ones.
    spare: Vec<Vec<Sums>>,
}

impl Booster {
    /// A booster on row-major `x` (`d` columns) labelled `labels`, evaluating the log loss of
    /// `valid` rows when given.
    pub(crate) fn new(
        x: &[f64],
        labels: &[bool],
        d: usize,
        params: Params,
        valid: Option<(&[f64], &[bool])>,
    ) -> Result<Booster> {
        if d == 0 || x.len() != labels.len() * d || labels.is_empty() {
            return Err(Error::Data(format!(
                "{} values and {} labels do not make rows of {d} columns",
                x.len(),
                labels.len()
            )));
        }
        let bins = find_bins(x, d, params.threads);
        let data = bin_rows(x, d, &bins, params.threads);
        let positive = labels.iter().filter(|l| **l).count() as f64;
        let rate = (positive / labels.len() as f64).clamp(1e-15, 1.0 - 1e-15);
        let init = (rate / (1.0 - rate)).ln();
        let valid = match valid {
            Some((xv, yv)) => {
                if xv.len() != yv.len() * d {
                    return Err(Error::Data("validation rows of the wrong width".into()));
                }
                Some(Valid {
                    data: bin_rows(xv, d, &bins, params.threads),
                    labels: yv.to_vec(),
                    scores: vec![init; yv.len()],
                })
            }
            None => None,
        };
        Ok(Booster {
            layout: Layout::new(&bins),
            scores: vec![init; labels.len()],
            grad: vec![[0.0; 2]; labels.len()],
            labels: labels.to_vec(),
            params,
            bins,
            data,
            init,
            trees: Vec::new(),
            valid,
            spare: Vec::new(),
        })
    }

    /// Rounds grown.
    pub(crate) fn rounds(&self) -> i32 {
        self.trees.len() as i32
    }

    /// The binary log loss of the validation rows by every round grown.
    pub(crate) fn validation_log_loss(&self) -> Result<f64> {
        let valid = self
            .valid
            .as_ref()
            .ok_or_else(|| Error::Model("the booster has no validation rows".into()))?;
        let loss: f64 = valid
            .scores
            .iter()
            .zip(&valid.labels)
            .map(|(s, y)| {
                let z = if *y { -s } else { *s };
                // ln(1 + e^z), stable both ways.
                z.max(0.0) + (-z.abs()).exp().ln_1p()
            })
            .sum();
        Ok(loss / valid.labels.len().max(1) as f64)
    }

    /// The raw scores of the training rows by every round grown.
    #[cfg(test)]
    pub(crate) fn training_scores(&self) -> &[f64] {
        &self.scores
    }

    /// The raw scores of the validation rows by every round grown, when there are any.
    pub(crate) fn validation_scores(&self) -> Option<&[f64]> {
        self.valid.as_ref().map(|v| &v.scores[..])
    }

    /// Grows one round; false when the tree could not split, which adds no round.
    pub(crate) fn step(&mut self) -> bool {
        let round = self.trees.len();
        let mut draws = round_draws(self.params.seed, round);
        self.gradients();
        let rows = self.bag(&mut draws);
        let used = self.sample_features(&mut draws);
        let bagged = rows.len() as f64;
        let Some((tree, grown)) = self.grow(rows, &used) else {
            // The first round keeps a tree of one leaf, the starting score, as LightGBM does:
            // a model then always has a tree.
            if self.trees.is_empty() {
                self.trees.push(Tree {
                    nodes: Vec::new(),
                    leaves: vec![0.0],
                    leaf_counts: vec![bagged],
                });
            }
            return false;
        };
        self.add_tree_scores(&tree, Some(grown), 1.0);
        self.trees.push(tree);
        true
    }

    /// Removes the last round.
    pub(crate) fn rollback(&mut self) {
        if let Some(tree) = self.trees.pop() {
            self.add_tree_scores(&tree, None, -1.0);
        }
    }

    /// The trees of rounds `first..first + count` as a forest.
    pub(crate) fn forest(&self, first: usize, count: usize) -> Result<Forest> {
        let end = (first + count).min(self.trees.len());
        let first = first.min(end);
        let parts: Vec<TreeParts> = self.trees[first..end]
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let mut parts = t.parts(&self.bins);
                // The first tree carries the starting score, the labels' log-odds.
                if first + k == 0 {
                    for v in &mut parts.leaves {
                        *v += self.init;
                    }
                }
                parts
            })
            .collect();
        Forest::from_parts(parts, self.bins.len())
    }

    /// Every tree grown, as a forest.
    pub(crate) fn model(&self) -> Result<Forest> {
        self.forest(0, self.trees.len())
    }

    /// Binary log loss gradients and Hessians of the training rows at their current scores.
    fn gradients(&mut self) {
        let one = |scores: &[f64], labels: &[bool], grad: &mut [[f32; 2]]| {
            for ((s, y), g) in scores.iter().zip(labels).zip(grad) {
                let p = 1.0 / (1.0 + (-s).exp());
                let y = f64::from(u8::from(*y));
                *g = [(p - y) as f32, (p * (1.0 - p)).max(1e-16) as f32];
            }
        };
        let n = self.labels.len();
        let threads = self.params.threads.min(n / (4 * ROWS_PER_THREAD)).max(1);
        if threads == 1 {
            one(&self.scores, &self.labels, &mut self.grad);
            return;
        }
        let per = n.div_ceil(threads);
        std::thread::scope(|scope| {
            for ((s, y), g) in self
                .scores
                .chunks(per)
                .zip(self.labels.chunks(per))
                .zip(self.grad.chunks_mut(per))
            {
                let one = &one;
                scope.spawn(move || one(s, y, g));
            }
        });
    }

    /// The rows this round grows on: all of them, or a sample of `bagging_fraction`.
    fn bag(&self, draws: &mut SplitMix) -> Vec<u32> {
        let n = self.labels.len() as u32;
        if self.params.bagging_fraction >= 1.0 {
            return (0..n).collect();
        }
        (0..n)
            .filter(|_| draws.unit() < self.params.bagging_fraction)
            .collect()
    }

    /// The features this tree may split on (those with two bins or more), sorted, with their
    /// histogram offsets.
    fn sample_features(&self, draws: &mut SplitMix) -> Vec<Used> {
        let mut usable: Vec<usize> = (0..self.bins.len())
            .filter(|j| self.bins[*j].bins() >= 2)
            .collect();
        let fraction = self.params.feature_fraction;
        if fraction < 1.0 && !usable.is_empty() {
            let keep = ((usable.len() as f64 * fraction).round() as usize).clamp(1, usable.len());
            for k in 0..keep {
                let pick = k + draws.below(usable.len() - k);
                usable.swap(k, pick);
            }
            usable.truncate(keep);
            usable.sort_unstable();
        }
        usable
            .into_iter()
            .map(|j| Used {
                column: j,
                offset: self.layout.offsets[j],
                bins: self.bins[j].bins(),
            })
            .collect()
    }

    /// Adds `sign` times a tree's leaves to the scores of the training rows (those of each leaf
    /// given by `grown`, the rows it grew on and each leaf's range of them, or every row walked
    /// down the tree) and of the validation rows.
    fn add_tree_scores(&mut self, tree: &Tree, grown: Option<Grown>, sign: f64) {
        match grown {
            Some((order, ranges)) if order.len() == self.scores.len() => {
                for ((start, len), value) in ranges.into_iter().zip(&tree.leaves) {
                    for &i in &order[start..start + len] {
                        self.scores[i as usize] += sign * value;
                    }
                }
            }
            _ => {
                for (i, score) in self.scores.iter_mut().enumerate() {
                    *score += sign * tree.leaves[tree.leaf(&self.data, i)];
                }
            }
        }
        if let Some(valid) = &mut self.valid {
            for (i, score) in valid.scores.iter_mut().enumerate() {
                *score += sign * tree.leaves[tree.leaf(&valid.data, i)];
            }
        }
    }
}

impl Forest {
    /// `rounds` trees of up to 31 leaves grown on row-major `x` (`d` columns) labelled `labels`,
    /// at a learning rate of 0.05 with leaves of 50 rows at least, on every core: a forest
    /// shaped like an operator's model, for benchmarks.
    pub fn grown(x: &[f64], labels: &[bool], d: usize, rounds: usize) -> Result<Forest> {
        let params = Params {
            learning_rate: 0.05,
            min_data_in_leaf: 50,
            seed: 1,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            ..Params::default()
        };
        let mut booster = Booster::new(x, labels, d, params, None)?;
        for _ in 0..rounds {
            if !booster.step() {
                break;
            }
        }
        booster.model()
    }
}
