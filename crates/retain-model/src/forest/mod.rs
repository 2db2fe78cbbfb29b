//! The trees of a trained model (grown by `grow/`, or read from a model file in LightGBM's
//! text format), evaluated in Rust.
//!
//! Scoring every subscriber is the model's hot path: LightGBM's own prediction turns each dense
//! row into sparse pairs and walks every tree with a mispredicted branch at most levels. Here the
//! trees are flattened into one array of nodes and walked tree by tree over blocks of rows with
//! branch-free steps, so a tree stays in cache while many rows pass through it and independent
//! rows overlap in the processor. The decision at each node is LightGBM's, missing values
//! included, so the raw scores are LightGBM's for its model files, and the trainer's for the
//! trees it grew (a test checks they agree on every row).
//!
//! In parts: `lightgbm` reads and writes LightGBM's text format, `score` runs rows through the
//! trees (or hands them to the leaf masks), and `cores` shares rows out among the cores; this
//! module holds the trees themselves and how they are put together.

mod cores;
mod lightgbm;
mod score;
#[cfg(test)]
pub(crate) mod tests;

use crate::error::{Error, Result};
use crate::masks::Masks;
use score::{Step, Walk};

pub(crate) use cores::{on_cores, rows_on_cores};

/// LightGBM's `kZeroThreshold`: a value this close to zero counts as zero.
pub(crate) const ZERO: f64 = 1e-35_f32 as f64;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub(crate) threshold: f64,
    pub(crate) feature: u32,
    /// Where a missing value (NaN) goes.
    pub(crate) nan_left: bool,
    /// Whether a zero is missing too (LightGBM's missing type `Zero`), going `default_left`.
    pub(crate) zero_missing: bool,
    pub(crate) default_left: bool,
    pub(crate) missing: Missing,
    /// Children: `>= 0` a node of this forest, `< 0` the leaf `!child` of this forest.
    pub(crate) left: i32,
    pub(crate) right: i32,
}

/// A forest of numerical-split regression trees whose raw score is the sum of one leaf per tree.
#[derive(Debug, Clone)]
pub struct Forest {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    /// Per tree, its root: `>= 0` a node, `< 0` a single leaf.
    roots: Vec<i32>,
    /// Per tree, how many nodes it has (they follow its root).
    sizes: Vec<u32>,
    /// Training rows that reached each node and each leaf, when the model file has them
    /// (explaining needs them, scoring does not).
    node_counts: Vec<f64>,
    leaf_counts: Vec<f64>,
    /// Per node, what its split gained in training (0 when the model file does not say).
    gains: Vec<f64>,
    features: usize,
    /// The same trees for lock-step walks, when no split treats zero as missing (LightGBM's
    /// default); otherwise rows take the node-by-node walk.
    steps: Vec<Step>,
    step_values: Vec<f64>,
    walks: Option<Vec<Walk>>,
    /// The same trees for scoring by leaf masks, when they fit them (`masks.rs`); the fastest
    /// layout, so scoring takes it when it is there.
    masks: Option<Masks>,
}

/// How a split treats missing values (LightGBM's missing types, which its text format names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// The training rows had none: a missing value is read as zero.
    None,
    /// Zero counts as missing and goes the default way, as NaN does.
    Zero,
    /// NaN goes the default way.
    Nan,
}

/// A split as a trainer or a model file gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartNode {
    pub(crate) feature: u32,
    pub(crate) threshold: f64,
    pub(crate) missing: Missing,
    pub(crate) default_left: bool,
    /// Children within the tree: `>= 0` a node, `< 0` the leaf `!child`.
    pub(crate) left: i32,
    pub(crate) right: i32,
    /// What the split gained on the training rows (0 when unknown).
    pub(crate) gain: f64,
    /// Training rows through the node (`NaN` when unknown).
    pub(crate) count: f64,
}

/// One tree as a trainer or a model file gives it: its splits (the root first, when any) and
/// its leaves, with the training rows of each leaf (empty when unknown).
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeParts {
    pub(crate) nodes: Vec<PartNode>,
    pub(crate) leaves: Vec<f64>,
    pub(crate) leaf_counts: Vec<f64>,
}

impl Forest {
    fn empty() -> Forest {
        Forest {
            nodes: Vec::new(),
            leaves: Vec::new(),
            roots: Vec::new(),
            sizes: Vec::new(),
            node_counts: Vec::new(),
            leaf_counts: Vec::new(),
            gains: Vec::new(),
            features: 0,
            steps: Vec::new(),
            step_values: Vec::new(),
            walks: None,
            masks: None,
        }
    }

    /// The forest of trees grown in memory, over rows of `features` columns.
    pub(crate) fn from_parts(trees: Vec<TreeParts>, features: usize) -> Result<Forest> {
        let mut forest = Forest::empty();
        forest.features = features;
        for (t, tree) in trees.into_iter().enumerate() {
            forest
                .push_parts(&format!("Tree={t}"), &tree)
                .map_err(Error::Model)?;
        }
        forest.finish().map_err(Error::Model)
    }

    /// Checks the trees are there and lays them out for scoring.
    fn finish(mut self) -> std::result::Result<Forest, String> {
        if self.roots.is_empty() {
            return Err("no trees".to_owned());
        }
        if self.node_counts.len() != self.nodes.len()
            || self.leaf_counts.len() != self.leaves.len()
            || self.node_counts.iter().any(|c| c.is_nan())
        {
            self.node_counts.clear();
            self.leaf_counts.clear();
        }
        self.lay_out_walks();
        self.masks = Masks::build(&self.nodes, &self.leaves, &self.roots);
        Ok(self)
    }

    fn push_parts(&mut self, name: &str, tree: &TreeParts) -> std::result::Result<(), String> {
        let num_leaves = tree.leaves.len();
        let internal = tree.nodes.len();
        if num_leaves == 0 || internal + 1 != num_leaves {
            return Err(format!(
                "{name} has {internal} splits and {num_leaves} leaves"
            ));
        }
        if tree.nodes.iter().any(|n| n.threshold.is_nan()) {
            return Err(format!("{name} has a threshold that is not a number"));
        }
        let leaf_base = i32::try_from(self.leaves.len()).map_err(|e| e.to_string())?;
        let node_base = i32::try_from(self.nodes.len()).map_err(|e| e.to_string())?;
        self.leaves.extend(&tree.leaves);
        if tree.leaf_counts.len() == num_leaves {
            self.leaf_counts.extend(&tree.leaf_counts);
        }
        if internal == 0 {
            self.roots.push(!leaf_base);
            self.sizes.push(0);
            return Ok(());
        }
        let child = |c: i32| -> std::result::Result<i32, String> {
            let inside = if c >= 0 {
                usize::try_from(c).is_ok_and(|c| c < internal)
            } else {
                usize::try_from(!c).is_ok_and(|l| l < num_leaves)
            };
            if !inside {
                return Err(format!("{name} has a child {c} outside the tree"));
            }
            Ok(if c >= 0 {
                node_base + c
            } else {
                !(leaf_base + !c)
            })
        };
        for n in &tree.nodes {
            let nan_left = match n.missing {
                Missing::None => 0.0 <= n.threshold,
                Missing::Zero | Missing::Nan => n.default_left,
            };
            self.features = self.features.max(n.feature as usize + 1);
            self.nodes.push(Node {
                threshold: n.threshold,
                feature: n.feature,
                nan_left,
                zero_missing: n.missing == Missing::Zero,
                default_left: n.default_left,
                missing: n.missing,
                left: child(n.left)?,
                right: child(n.right)?,
            });
            self.node_counts.push(n.count);
            self.gains.push(n.gain);
        }
        self.roots.push(node_base);
        self.sizes.push(internal as u32);
        Ok(())
    }

    /// Per feature of rows `d` wide, the gains of its splits summed: LightGBM's "gain"
    /// importance.
    #[must_use]
    pub fn importance(&self, d: usize) -> Vec<f64> {
        let mut out = vec![0.0; d.max(self.features)];
        for (node, gain) in self.nodes.iter().zip(&self.gains) {
            if gain.is_finite() {
                out[node.feature as usize] += gain;
            }
        }
        out.truncate(d);
        out
    }

    /// Trees in the forest.
    #[must_use]
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// An error unless rows of `d` columns hold every feature the trees read.
    pub(crate) fn check_width(&self, d: usize) -> Result<()> {
        if d < self.features {
            return Err(Error::Model(format!(
                "the trees read {} features, the rows have {d}",
                self.features
            )));
        }
        Ok(())
    }

    pub(crate) fn node(&self, at: usize) -> &Node {
        &self.nodes[at]
    }

    /// Tree `t`'s root (`< 0`: a single leaf) and how many nodes it has.
    pub(crate) fn tree_nodes(&self, t: usize) -> (i32, usize) {
        (self.roots[t], self.sizes[t] as usize)
    }

    pub(crate) fn leaf_values(&self) -> &[f64] {
        &self.leaves
    }

    /// Training rows through each node and each leaf, when the model file has them.
    pub(crate) fn counts(&self) -> Option<(&[f64], &[f64])> {
        (!self.leaf_counts.is_empty()).then_some((&self.node_counts[..], &self.leaf_counts[..]))
    }
}

/// A value as LightGBM's prediction reads it: a dense row keeps only values farther from zero
/// than its zero threshold (and NaN), so anything nearer is zero.
#[inline]
pub(crate) fn as_read(v: f64) -> f64 {
    if v.abs() <= ZERO { 0.0 } else { v }
}

/// The threshold that sends values as LightGBM does when compared with them as they are,
/// not as it reads them ([`as_read`]): only a threshold within the zero band sees the
/// difference, and it moves to the band's edge on its side. The hot layouts compare raw
/// values against these, at no cost a row.
pub(crate) fn as_compared(threshold: f64) -> f64 {
    if (0.0..ZERO).contains(&threshold) {
        ZERO
    } else if (-ZERO..0.0).contains(&threshold) {
        (-ZERO).next_down()
    } else {
        threshold
    }
}
