//! Exact TreeSHAP contributions of a [`Forest`], as LightGBM's `predict_contrib` gives them
//! (a test checks them against the Shapley values' definition).
//!
//! TreeSHAP (Lundberg et al. 2020) walks every path of every tree for each row, at a cost that
//! grows with the square of the path's depth: explaining a hundred thousand subscribers took
//! LightGBM minutes. The contributions a leaf makes depend on the row only through which of its
//! path's features the row follows (a 0/1 "one fraction" per feature; the "zero fractions" are the
//! training counts). So for the paths with at most [`TABLE_DEPTH`] distinct features, shallowest
//! first up to [`TABLE_VALUES`], the contributions of each of the 2ⁿ patterns are computed once,
//! scaled by the leaf value; a row then costs one decision per node and one table row per leaf.
//! Other paths are computed per row with the same arithmetic. Rows go through a tree a block at a time, so its tables stay in
//! cache.

use crate::error::{Error, Result};
use crate::forest::{Forest, on_cores};

/// Paths with at most this many distinct features may get a table (2ⁿ × n values).
const TABLE_DEPTH: usize = 12;
/// Values of all tables together (8 bytes each): shallow paths are tabulated first.
const TABLE_VALUES: usize = 48 << 20;
/// Rows explained through one tree before the next: enough that a table's lines are used by
/// many rows while in cache.
const BLOCK: usize = 1024;

/// One root-to-leaf path.
#[derive(Debug, Clone)]
struct Path {
    /// Distinct features on the path, in the order they first appear: `features[k..k + n]`.
    first_feature: u32,
    n: u32,
    /// The path's nodes: `checks[c..c + m]`.
    first_check: u32,
    checks: u32,
    /// Offset of the 2ⁿ × n table (leaf value included), when the path has one.
    table: Option<usize>,
    leaf_value: f64,
}

/// A node the path passes: the row follows the path there when its decision goes `left`.
#[derive(Debug, Clone, Copy)]
struct Check {
    /// Node index within the tree.
    node: u32,
    left: bool,
    /// Which of the path's distinct features the node splits on.
    slot: u16,
}

#[derive(Debug, Clone)]
struct TreePaths {
    /// The tree's nodes are `first_node..first_node + nodes` of the forest.
    first_node: u32,
    nodes: u32,
    paths: std::ops::Range<usize>,
}

/// A forest prepared for explaining rows.
#[derive(Debug, Clone)]
pub struct Explainer<'a> {
    forest: std::borrow::Cow<'a, Forest>,
    trees: Vec<TreePaths>,
    paths: Vec<Path>,
    features: Vec<u32>,
    zeros: Vec<f64>,
    checks: Vec<Check>,
    tables: Vec<f64>,
    /// LightGBM's expected value of the forest: the last contribution of every row.
    bias: f64,
}

/// The weights of the permutations of a path, as TreeSHAP extends it element by element.
struct Weights {
    zero: Vec<f64>,
    one: Vec<f64>,
    w: Vec<f64>,
}

impl Weights {
    fn new(capacity: usize) -> Self {
        Self {
            zero: Vec::with_capacity(capacity + 1),
            one: Vec::with_capacity(capacity + 1),
            w: Vec::with_capacity(capacity + 1),
        }
    }

    /// Starts a path with its root element (zero and one fractions 1).
    fn reset(&mut self) {
        self.zero.clear();
        self.one.clear();
        self.w.clear();
        self.extend(1.0, 1.0);
    }

    fn extend(&mut self, zero: f64, one: f64) {
        let depth = self.w.len();
        self.zero.push(zero);
        self.one.push(one);
        self.w.push(if depth == 0 { 1.0 } else { 0.0 });
        let d = depth as f64;
        for i in (0..depth).rev() {
            self.w[i + 1] += one * self.w[i] * (i as f64 + 1.0) / (d + 1.0);
            self.w[i] = zero * self.w[i] * (d - i as f64) / (d + 1.0);
        }
    }

    /// The total weight of the path without element `at`.
    fn unwound_sum(&self, at: usize) -> f64 {
        let depth = self.w.len() - 1;
        let d = depth as f64;
        let (zero, one) = (self.zero[at], self.one[at]);
        let mut next = self.w[depth];
        let mut total = 0.0;
        for i in (0..depth).rev() {
            if one == 0.0 {
                total += self.w[i] * (d + 1.0) / (zero * (d - i as f64));
            } else {
                let t = next * (d + 1.0) / ((i as f64 + 1.0) * one);
                total += t;
                next = self.w[i] - t * zero * (d - i as f64) / (d + 1.0);
            }
        }
        total
    }

    /// Adds each element's contribution, times `scale`, to `out[k]` (element `k + 1`).
    fn contributions(&self, scale: f64, out: &mut [f64]) {
        for (k, slot) in out.iter_mut().enumerate() {
            let at = k + 1;
            let w = self.unwound_sum(at);
            *slot += w * (self.one[at] - self.zero[at]) * scale;
        }
    }
}

impl<'a> Explainer<'a> {
    /// Enumerates the forest's paths and tabulates the shallow ones. Needs the training counts
    /// of the nodes, which every LightGBM model file holds.
    pub fn new(forest: &'a Forest) -> Result<Explainer<'a>> {
        Self::with_tables(forest, TABLE_VALUES)
    }

    /// An explainer that owns its forest, to keep beside a model while it explains batch after
    /// batch (preparing one costs far more than explaining a batch).
    pub fn owning(forest: Forest) -> Result<Explainer<'static>> {
        let Explainer {
            trees,
            paths,
            features,
            zeros,
            checks,
            tables,
            bias,
            ..
        } = Explainer::new(&forest)?;
        Ok(Explainer {
            forest: std::borrow::Cow::Owned(forest),
            trees,
            paths,
            features,
            zeros,
            checks,
            tables,
            bias,
        })
    }

    /// As [`Explainer::new`], with tables of at most `budget` values.
    fn with_tables(forest: &'a Forest, budget: usize) -> Result<Explainer<'a>> {
        let (node_counts, leaf_counts) = forest.counts().ok_or_else(|| {
            Error::Model("the model has no node counts, which explaining it needs".into())
        })?;
        let mut out = Explainer {
            forest: std::borrow::Cow::Borrowed(forest),
            trees: Vec::with_capacity(forest.trees()),
            paths: Vec::new(),
            features: Vec::new(),
            zeros: Vec::new(),
            checks: Vec::new(),
            tables: Vec::new(),
            bias: 0.0,
        };
        let leaves = forest.leaf_values();
        let count = |child: i32| {
            if child >= 0 {
                node_counts[child as usize]
            } else {
                leaf_counts[!child as usize]
            }
        };
        let mut weights = Weights::new(64);
        for tree in 0..forest.trees() {
            let (root, nodes) = forest.tree_nodes(tree);
            let first = out.paths.len();
            if root < 0 {
                out.bias += leaves[!root as usize];
                out.trees.push(TreePaths {
                    first_node: 0,
                    nodes: 0,
                    paths: first..first,
                });
                continue;
            }
            let total = count(root);
            // Depth first, keeping the nodes passed and the side taken.
            let mut stack: Vec<(i32, Vec<(i32, bool)>)> = vec![(root, Vec::new())];
            while let Some((at, passed)) = stack.pop() {
                if at < 0 {
                    let leaf = !at as usize;
                    if total > 0.0 {
                        out.bias += leaves[leaf] * leaf_counts[leaf] / total;
                    }
                    out.push_path(root, &passed, leaves[leaf], &count);
                    continue;
                }
                let node = forest.node(at as usize);
                for (child, left) in [(node.right, false), (node.left, true)] {
                    let mut next = passed.clone();
                    next.push((at, left));
                    stack.push((child, next));
                }
            }
            out.trees.push(TreePaths {
                first_node: u32::try_from(root).expect("a node index"),
                nodes: nodes as u32,
                paths: first..out.paths.len(),
            });
        }
        out.tabulate(budget, &mut weights);
        Ok(out)
    }

    /// Tabulates the paths, shallowest first, while the budget lasts.
    fn tabulate(&mut self, mut budget: usize, weights: &mut Weights) {
        let mut order: Vec<usize> = (0..self.paths.len())
            .filter(|&p| self.paths[p].n as usize <= TABLE_DEPTH)
            .collect();
        order.sort_by_key(|&p| self.paths[p].n);
        for p in order {
            let path = &self.paths[p];
            let n = path.n as usize;
            let size = n << n;
            if size > budget {
                break;
            }
            budget -= size;
            let offset = self.tables.len();
            let zeros = &self.zeros[path.first_feature as usize..][..n];
            for mask in 0..1usize << n {
                weights.reset();
                for (k, zero) in zeros.iter().enumerate() {
                    weights.extend(*zero, f64::from(u8::from(mask >> k & 1 == 1)));
                }
                let start = self.tables.len();
                self.tables.resize(start + n, 0.0);
                weights.contributions(path.leaf_value, &mut self.tables[start..]);
            }
            self.paths[p].table = Some(offset);
        }
    }

    fn push_path(
        &mut self,
        root: i32,
        passed: &[(i32, bool)],
        leaf_value: f64,
        count: &impl Fn(i32) -> f64,
    ) {
        let first_feature = self.features.len();
        let first_check = self.checks.len();
        for &(at, left) in passed {
            let node = self.forest.node(at as usize);
            let child = if left { node.left } else { node.right };
            let parent = count(at);
            let fraction = if parent > 0.0 {
                count(child) / parent
            } else {
                0.0
            };
            let known = self.features[first_feature..]
                .iter()
                .position(|f| *f == node.feature);
            let slot = if let Some(slot) = known {
                self.zeros[first_feature + slot] *= fraction;
                slot
            } else {
                self.features.push(node.feature);
                self.zeros.push(fraction);
                self.features.len() - first_feature - 1
            };
            self.checks.push(Check {
                node: (at - root) as u32,
                left,
                slot: slot as u16,
            });
        }
        let n = self.features.len() - first_feature;
        self.paths.push(Path {
            first_feature: first_feature as u32,
            n: n as u32,
            first_check: first_check as u32,
            checks: passed.len() as u32,
            table: None,
            leaf_value,
        });
    }

    /// Contributions of row-major `x` with `d` columns: per row, one per column, then the
    /// expected value (LightGBM's `predict_contrib` layout, `d + 1` per row), on every core.
    pub fn contributions(&self, x: &[f64], d: usize) -> Result<Vec<f64>> {
        self.forest.check_width(d)?;
        let mut out = vec![0.0; x.len() / d.max(1) * (d + 1)];
        on_cores(x, d, &mut out, d + 1, 4 * BLOCK, 1, |x, out| {
            self.explain_rows(x, d, out);
        });
        Ok(out)
    }

    fn explain_rows(&self, x: &[f64], d: usize, out: &mut [f64]) {
        let mut decisions = Vec::new();
        let mut weights = Weights::new(64);
        let mut scratch = Vec::new();
        for (block, phis) in out.chunks_mut(BLOCK * (d + 1)).enumerate() {
            let rows = &x[block * BLOCK * d..][..phis.len() / (d + 1) * d];
            for phi in phis.chunks_exact_mut(d + 1) {
                phi[d] = self.bias;
            }
            for tree in &self.trees {
                let paths = &self.paths[tree.paths.clone()];
                if paths.is_empty() {
                    continue;
                }
                // Every row's decisions first, then path by path, so a path's table stays in
                // cache while the block's rows pass through it.
                let nodes = tree.nodes as usize;
                decisions.clear();
                for row in rows.chunks_exact(d) {
                    decisions.extend(
                        (0..tree.nodes)
                            .map(|i| self.forest.goes_left((tree.first_node + i) as usize, row)),
                    );
                }
                for path in paths {
                    for (decided, phi) in decisions
                        .chunks_exact(nodes)
                        .zip(phis.chunks_exact_mut(d + 1))
                    {
                        self.explain_path(path, decided, phi, &mut weights, &mut scratch);
                    }
                }
            }
        }
    }

    fn explain_path(
        &self,
        path: &Path,
        decisions: &[bool],
        phi: &mut [f64],
        weights: &mut Weights,
        scratch: &mut Vec<f64>,
    ) {
        let n = path.n as usize;
        let first = path.first_feature as usize;
        let checks = &self.checks[path.first_check as usize..][..path.checks as usize];
        let features = &self.features[first..first + n];
        if let Some(offset) = path.table {
            // Bit k: the row follows the path at every node on its k-th feature.
            let mut mask = (1usize << n) - 1;
            for check in checks {
                if decisions[check.node as usize] != check.left {
                    mask &= !(1 << check.slot);
                }
            }
            let values = &self.tables[offset + mask * n..][..n];
            for (f, v) in features.iter().zip(values) {
                phi[*f as usize] += v;
            }
            return;
        }
        scratch.clear();
        scratch.resize(n, 1.0);
        for check in checks {
            if decisions[check.node as usize] != check.left {
                scratch[check.slot as usize] = 0.0;
            }
        }
        weights.reset();
        for (zero, one) in self.zeros[first..first + n].iter().zip(scratch.iter()) {
            weights.extend(*zero, *one);
        }
        scratch.fill(0.0);
        weights.contributions(path.leaf_value, scratch);
        for (f, v) in features.iter().zip(scratch.iter()) {
            phi[*f as usize] += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grow::{Booster, Params};

    fn assert_same(got: &[f64], expected: &[f64]) {
        assert_eq!(got.len(), expected.len());
        for (i, (a, b)) in got.iter().zip(expected).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "value {i}: {a} vs {b}"
            );
        }
    }

    /// The path-dependent expectation of the subtree at `at` for `row` given the features of
    /// `set` (bits): a feature in the set follows the row, one outside it both branches,
    /// weighted by their training rows, as TreeSHAP defines it.
    fn expected(forest: &Forest, at: i32, row: &[f64], set: u32) -> f64 {
        if at < 0 {
            return forest.leaf_values()[!at as usize];
        }
        let (node_counts, leaf_counts) = forest.counts().unwrap();
        let node = forest.node(at as usize);
        if set & (1 << node.feature) != 0 {
            let next = if forest.goes_left(at as usize, row) {
                node.left
            } else {
                node.right
            };
            return expected(forest, next, row, set);
        }
        let count = |c: i32| {
            if c < 0 {
                leaf_counts[!c as usize]
            } else {
                node_counts[c as usize]
            }
        };
        (count(node.left) * expected(forest, node.left, row, set)
            + count(node.right) * expected(forest, node.right, row, set))
            / node_counts[at as usize]
    }

    /// Shapley values of `row` by their definition, then the value of the empty set: per tree
    /// (they add up over trees), a weighted sum over every subset of the features the tree
    /// splits on. Slow, for a few rows only.
    fn shapley_by_subsets(forest: &Forest, row: &[f64], d: usize) -> Vec<f64> {
        let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let mut phi = vec![0.0; d + 1];
        for t in 0..forest.trees() {
            let (root, size) = forest.tree_nodes(t);
            let mut used: Vec<u32> = (0..size)
                .map(|k| forest.node(root as usize + k).feature)
                .collect();
            used.sort_unstable();
            used.dedup();
            let m = used.len();
            // A subset of the tree's features as bits of the row's features.
            let spread = |subset: u32| -> u32 {
                (0..m)
                    .filter(|k| subset & (1 << k) != 0)
                    .fold(0, |set, k| set | 1 << used[k])
            };
            let values: Vec<f64> = (0..1u32 << m)
                .map(|subset| expected(forest, root, row, spread(subset)))
                .collect();
            for (k, &feature) in used.iter().enumerate() {
                for subset in 0..1u32 << m {
                    if subset & (1 << k) != 0 {
                        continue;
                    }
                    let s = subset.count_ones() as usize;
                    let weight = factorial(s) * factorial(m - s - 1) / factorial(m);
                    phi[feature as usize] +=
                        weight * (values[(subset | 1 << k) as usize] - values[subset as usize]);
                }
            }
            phi[d] += values[0];
        }
        phi
    }

    #[test]
    fn contributions_are_the_shapley_values() {
        let (rows, width) = (1_500, 14);
        let (x, y) = crate::forest::tests::rows(rows, width, 11);
        // Deep trees over many features, so some paths are too deep for a table; and a model
        // whose splits treat zero as missing.
        for (leaves, min_data, rounds, zero) in [(127, 3, 8, false), (15, 20, 20, true)] {
            let params = Params {
                num_leaves: leaves,
                min_data_in_leaf: min_data,
                seed: 3,
                ..Params::default()
            };
            let mut booster = Booster::new(&x, &y, width, params, None).unwrap();
            for _ in 0..rounds {
                assert!(booster.step());
            }
            let mut forest = booster.model().unwrap();
            if zero {
                forest = crate::forest::tests::zero_as_missing(&forest);
            }
            let expected = Explainer::with_tables(&forest, 0)
                .unwrap()
                .contributions(&x, width)
                .unwrap();
            // A few rows against the definition.
            for r in [7, 1_499] {
                let row = &x[r * width..(r + 1) * width];
                assert_same(
                    &expected[r * (width + 1)..(r + 1) * (width + 1)],
                    &shapley_by_subsets(&forest, row, width),
                );
            }
            // All paths in tables, some (the budget runs out), none: the same values.
            for budget in [TABLE_VALUES, 5_000, 0] {
                let explainer = Explainer::with_tables(&forest, budget).unwrap();
                let tabled = explainer.paths.iter().filter(|p| p.table.is_some()).count();
                match budget {
                    0 => assert_eq!(tabled, 0),
                    5_000 => assert!(tabled > 0 && tabled < explainer.paths.len()),
                    _ => assert!(tabled > explainer.paths.len() / 2),
                }
                assert_same(&explainer.contributions(&x, width).unwrap(), &expected);
            }
            // Contributions and bias add up to the raw score, and they vary: the comparison
            // means something.
            let raw = forest.raw_scores(&x, width).unwrap();
            for (r, phi) in raw.iter().zip(expected.chunks_exact(width + 1)) {
                assert!((phi.iter().sum::<f64>() - r).abs() < 1e-9);
            }
            let first: Vec<f64> = expected.iter().step_by(width + 1).copied().collect();
            assert!(first.iter().any(|v| *v > 0.1) && first.iter().any(|v| *v < -0.1));
        }
    }

    #[test]
    fn a_model_without_counts_cannot_be_explained() {
        let text = "max_feature_idx=0\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=0\n\
                    decision_type=2\nleft_child=-1\nright_child=-2\nleaf_value=0 1\n\nend of trees\n";
        let forest = Forest::from_lightgbm(text).unwrap();
        let error = Explainer::new(&forest).unwrap_err().to_string();
        assert!(error.contains("counts"), "{error}");
    }
}
