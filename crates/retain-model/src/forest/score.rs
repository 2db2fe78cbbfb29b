//! Scoring rows: by the leaf masks when the trees fit them (`masks.rs`), else by the lock-step
//! walk laid out here, else node by node with LightGBM's decision at each.

use super::cores::on_cores;
use super::{Forest, ZERO, as_compared, as_read};
use crate::error::{Error, Result};
use crate::masks::Isa;

/// Rows walked through one tree before the next tree: the block's scores and rows stay in
/// cache while the forest streams past.
const BLOCK: usize = 128;

/// A node of the lock-step layout: a leaf is a node whose children are itself (and whose
/// threshold lets every value through), so a walk of a tree's full depth ends on the leaf
/// whichever path it took, without a branch on where each row stopped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    threshold: f64,
    feature: u32,
    left: u32,
    right: u32,
    nan_left: bool,
}

/// A tree in the lock-step layout.
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    root: u32,
    depth: u32,
}

/// Rows walked through a tree side by side: independent walks overlap in the processor where
/// one walk would wait on each load.
const LANES: usize = 8;

impl Forest {
    /// Raw scores (log-odds before any calibration) of row-major `x` with `d` columns, on every
    /// core.
    pub fn raw_scores(&self, x: &[f64], d: usize) -> Result<Vec<f64>> {
        let mut out = vec![0.0; x.len() / d.max(1)];
        self.add_raw_scores(x, d, &mut out)?;
        Ok(out)
    }

    /// Adds the raw scores of row-major `x` to `out`, one per row, on every core.
    pub(crate) fn add_raw_scores(&self, x: &[f64], d: usize, out: &mut [f64]) -> Result<()> {
        self.check_width(d)?;
        if out.len() * d != x.len() {
            return Err(Error::Data(format!(
                "{} scores for {} values of {d} columns",
                out.len(),
                x.len()
            )));
        }
        // A thread is worth starting for some thousands of rows, not for a few.
        on_cores(x, d, out, 1, 64 * BLOCK, BLOCK, |x, out| {
            self.score_rows(x, d, out);
        });
        Ok(())
    }

    /// Raw scores as `raw_scores`, on this thread alone: for measuring a core's throughput.
    pub fn raw_scores_here(&self, x: &[f64], d: usize) -> Result<Vec<f64>> {
        self.check_width(d)?;
        let mut out = vec![0.0; x.len() / d.max(1)];
        self.score_rows(x, d, &mut out);
        Ok(out)
    }

    /// The same forest scored by walking its trees instead of by leaf masks: the layout for
    /// forests the masks do not fit, kept reachable to compare the two.
    #[must_use]
    pub fn walking(&self) -> Forest {
        Forest {
            masks: None,
            ..self.clone()
        }
    }

    /// The same forest scored by leaf masks with instructions no wider than `widest`, even
    /// where the processor has wider: what other processors get, kept reachable to measure.
    #[must_use]
    pub fn limited_to(&self, widest: Isa) -> Forest {
        let mut forest = self.clone();
        if let Some(masks) = &mut forest.masks {
            masks.widest = widest;
        }
        forest
    }

    /// Whether scoring takes the leaf masks.
    #[must_use]
    pub fn scores_by_masks(&self) -> bool {
        self.masks.is_some()
    }

    /// Builds the lock-step layout of every tree, unless a split treats zero as missing.
    pub(super) fn lay_out_walks(&mut self) {
        if self.nodes.iter().any(|n| n.zero_missing) {
            return;
        }
        let mut walks = Vec::with_capacity(self.roots.len());
        for &root in &self.roots.clone() {
            let (at, depth) = self.lay_out(root);
            walks.push(Walk { root: at, depth });
        }
        self.walks = Some(walks);
    }

    /// Lays out the subtree at `child` (a node or a leaf); returns its step and depth.
    fn lay_out(&mut self, child: i32) -> (u32, u32) {
        let at = u32::try_from(self.steps.len()).expect("fewer than 4 billion nodes");
        if child < 0 {
            self.steps.push(Step {
                threshold: f64::INFINITY,
                feature: 0,
                left: at,
                right: at,
                nan_left: true,
            });
            self.step_values.push(self.leaves[!child as usize]);
            return (at, 0);
        }
        let node = self.nodes[child as usize];
        self.steps.push(Step {
            threshold: as_compared(node.threshold),
            feature: node.feature,
            left: 0,
            right: 0,
            nan_left: node.nan_left,
        });
        self.step_values.push(0.0);
        let (left, left_depth) = self.lay_out(node.left);
        let (right, right_depth) = self.lay_out(node.right);
        let step = &mut self.steps[at as usize];
        step.left = left;
        step.right = right;
        (at, 1 + left_depth.max(right_depth))
    }

    /// Adds the raw scores of row-major `x` (`d` columns, checked by the caller with
    /// [`Forest::check_width`]) to `out` on this thread: the rows' share of one core, whoever
    /// shares them out.
    pub(crate) fn score_rows(&self, x: &[f64], d: usize, out: &mut [f64]) {
        if let Some(masks) = &self.masks {
            masks.score(x, d, out);
            return;
        }
        for (b, scores) in out.chunks_mut(BLOCK).enumerate() {
            let rows = &x[b * BLOCK * d..(b * BLOCK + scores.len()) * d];
            let Some(walks) = &self.walks else {
                for &root in &self.roots {
                    for (score, row) in scores.iter_mut().zip(rows.chunks_exact(d)) {
                        *score += self.leaves[self.leaf(root, row)];
                    }
                }
                continue;
            };
            let lanes = scores.len() / LANES * LANES;
            for walk in walks {
                for (group, rows) in scores[..lanes]
                    .chunks_exact_mut(LANES)
                    .zip(rows.chunks_exact(d * LANES))
                {
                    let mut at = [walk.root; LANES];
                    for _ in 0..walk.depth {
                        for (lane, at) in at.iter_mut().enumerate() {
                            *at = self.step(*at, &rows[lane * d..]);
                        }
                    }
                    for (score, at) in group.iter_mut().zip(at) {
                        *score += self.step_values[at as usize];
                    }
                }
                for (score, row) in scores[lanes..]
                    .iter_mut()
                    .zip(rows[lanes * d..].chunks_exact(d))
                {
                    let mut at = walk.root;
                    for _ in 0..walk.depth {
                        at = self.step(at, row);
                    }
                    *score += self.step_values[at as usize];
                }
            }
        }
    }

    /// Where `row` goes from step `at` of the lock-step layout, without a branch.
    #[inline]
    fn step(&self, at: u32, row: &[f64]) -> u32 {
        let step = &self.steps[at as usize];
        let v = row[step.feature as usize];
        let left = (v <= step.threshold) | (v.is_nan() & step.nan_left);
        if left { step.left } else { step.right }
    }

    /// The leaf (index into `leaves`) that `row` reaches from `root`.
    #[inline]
    pub(crate) fn leaf(&self, root: i32, row: &[f64]) -> usize {
        let mut at = root;
        while at >= 0 {
            let node = &self.nodes[at as usize];
            at = if self.goes_left(at as usize, row) {
                node.left
            } else {
                node.right
            };
        }
        !at as usize
    }

    /// LightGBM's decision at node `at` for `row`, missing values included.
    #[inline]
    pub(crate) fn goes_left(&self, at: usize, row: &[f64]) -> bool {
        let node = &self.nodes[at];
        let v = as_read(row[node.feature as usize]);
        if v.is_nan() {
            node.nan_left
        } else if node.zero_missing && v.abs() <= ZERO {
            node.default_left
        } else {
            v <= node.threshold
        }
    }
}
