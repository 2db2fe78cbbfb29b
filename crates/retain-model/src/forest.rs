//! The trees of a trained model (grown by `grow.rs`, or read from a model file in LightGBM's
//! text format), evaluated in Rust.
//!
//! Scoring every subscriber is the model's hot path: LightGBM's own prediction turns each dense
//! row into sparse pairs and walks every tree with a mispredicted branch at most levels. Here the
//! trees are flattened into one array of nodes and walked tree by tree over blocks of rows with
//! branch-free steps, so a tree stays in cache while many rows pass through it and independent
//! rows overlap in the processor. The decision at each node is LightGBM's, missing values
//! included, so the raw scores are LightGBM's for its model files, and the trainer's for the
//! trees it grew (a test checks they agree on every row).

use crate::error::{Error, Result};
use crate::masks::{Isa, Masks};

/// LightGBM's `kZeroThreshold`: a value this close to zero counts as zero.
pub(crate) const ZERO: f64 = 1e-35_f32 as f64;
/// Rows walked through one tree before the next tree: the block's scores and rows stay in
/// cache while the forest streams past.
const BLOCK: usize = 128;

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

/// A node of the lock-step layout: a leaf is a node whose children are itself (and whose
/// threshold lets every value through), so a walk of a tree's full depth ends on the leaf
/// whichever path it took, without a branch on where each row stopped.
#[derive(Debug, Clone, Copy)]
struct Step {
    threshold: f64,
    feature: u32,
    left: u32,
    right: u32,
    nan_left: bool,
}

/// A tree in the lock-step layout.
#[derive(Debug, Clone, Copy)]
struct Walk {
    root: u32,
    depth: u32,
}

/// Rows walked through a tree side by side: independent walks overlap in the processor where
/// one walk would wait on each load.
const LANES: usize = 8;

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

    /// The trees of a model in LightGBM's text format, as the registry keeps them (and as
    /// LightGBM writes them). Models with categorical splits or linear leaves are refused;
    /// retain trains neither.
    pub fn from_lightgbm(text: &str) -> Result<Forest> {
        let bad = |what: String| Error::Model(format!("reading the LightGBM model: {what}"));
        let mut forest = Forest::empty();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(max) = line.strip_prefix("max_feature_idx=") {
                let max: usize = max
                    .trim()
                    .parse()
                    .map_err(|e| bad(format!("{line}: {e}")))?;
                forest.features = max + 1;
            }
            if line == "end of trees" {
                break;
            }
            if !line.starts_with("Tree=") {
                continue;
            }
            let mut fields = std::collections::HashMap::new();
            while let Some(next) = lines.peek() {
                if next.is_empty() || next.starts_with("Tree=") || *next == "end of trees" {
                    break;
                }
                if let Some((key, value)) = next.split_once('=') {
                    fields.insert(key, value);
                }
                lines.next();
            }
            let parts = read_tree(line, &fields).map_err(bad)?;
            forest.push_parts(line, &parts).map_err(bad)?;
        }
        forest.finish().map_err(bad)
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

    /// The forest in LightGBM's text format, over features named `names`: what the registry
    /// saves, and what LightGBM itself reads.
    #[must_use]
    pub fn to_lightgbm(&self, names: &[String]) -> String {
        use std::fmt::Write as _;
        let d = self.features.max(names.len()).max(1);
        let names: Vec<String> = (0..d)
            .map(|j| {
                names.get(j).map_or_else(
                    || format!("Column_{j}"),
                    |n| n.replace(char::is_whitespace, "_"),
                )
            })
            .collect();
        let mut text = format!(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
             max_feature_idx={}\nobjective=binary sigmoid:1\nfeature_names={}\n\
             feature_infos={}\n\n",
            d - 1,
            names.join(" "),
            vec!["none"; d].join(" ")
        );
        let join = |values: &mut dyn Iterator<Item = String>| values.collect::<Vec<_>>().join(" ");
        let counts = self.counts();
        let mut leaf_first = 0;
        for t in 0..self.roots.len() {
            let (root, size) = self.tree_nodes(t);
            let leaves = size + 1;
            let first = usize::try_from(root).unwrap_or(0);
            let nodes = if root < 0 {
                &self.nodes[..0]
            } else {
                &self.nodes[first..first + size]
            };
            // Children as the tree's own: nodes from its root, leaves from its first.
            let local = |c: i32| -> String {
                if c >= 0 {
                    (c as usize - first).to_string()
                } else {
                    (!((!c) as usize - leaf_first) as i64).to_string()
                }
            };
            let _ = writeln!(text, "Tree={t}\nnum_leaves={leaves}\nnum_cat=0");
            if size > 0 {
                let _ = writeln!(
                    text,
                    "split_feature={}\nsplit_gain={}\nthreshold={}\ndecision_type={}\n\
                     left_child={}\nright_child={}",
                    join(&mut nodes.iter().map(|n| n.feature.to_string())),
                    join(&mut self.gains[first..first + size].iter().map(|g| number(*g))),
                    join(&mut nodes.iter().map(|n| number(n.threshold))),
                    join(&mut nodes.iter().map(|n| {
                        let missing = match n.missing {
                            Missing::None => 0,
                            Missing::Zero => 1,
                            Missing::Nan => 2,
                        };
                        (u8::from(n.default_left) * 2 + missing * 4).to_string()
                    })),
                    join(&mut nodes.iter().map(|n| local(n.left))),
                    join(&mut nodes.iter().map(|n| local(n.right))),
                );
            }
            let _ = writeln!(
                text,
                "leaf_value={}",
                join(
                    &mut self.leaves[leaf_first..leaf_first + leaves]
                        .iter()
                        .map(|v| number(*v))
                )
            );
            if let Some((node_counts, leaf_counts)) = counts {
                let _ = writeln!(
                    text,
                    "leaf_count={}",
                    join(
                        &mut leaf_counts[leaf_first..leaf_first + leaves]
                            .iter()
                            .map(ToString::to_string)
                    )
                );
                if size > 0 {
                    let _ = writeln!(
                        text,
                        "internal_count={}",
                        join(
                            &mut node_counts[first..first + size]
                                .iter()
                                .map(ToString::to_string)
                        )
                    );
                }
            }
            let _ = write!(text, "is_linear=0\nshrinkage=1\n\n\n");
            leaf_first += leaves;
        }
        text.push_str("end of trees\n");
        text
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

    /// Builds the lock-step layout of every tree, unless a split treats zero as missing.
    fn lay_out_walks(&mut self) {
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

/// Runs `work` over the rows of row-major `x` (`d` columns) on every core: each thread takes a
/// run of rows, at least `min_rows` and a multiple of `align`, and their `width` outputs a row
/// in `out`. With one thread's worth of rows, `work` runs here.
pub(crate) fn on_cores(
    x: &[f64],
    d: usize,
    out: &mut [f64],
    width: usize,
    min_rows: usize,
    align: usize,
    work: impl Fn(&[f64], &mut [f64]) + Sync,
) {
    let rows = x.len() / d.max(1);
    rows_on_cores(rows, out, width, min_rows, align, |first, chunk| {
        work(&x[first * d..(first + chunk.len() / width) * d], chunk);
    });
}

/// Runs `work` over `rows` rows held wherever the caller keeps them, on every core: each thread
/// takes a run of rows, at least `min_rows` and a multiple of `align`, given as its first row
/// and their `width` outputs a row in `out`. With one thread's worth of rows, `work` runs here.
pub(crate) fn rows_on_cores(
    rows: usize,
    out: &mut [f64],
    width: usize,
    min_rows: usize,
    align: usize,
    work: impl Fn(usize, &mut [f64]) + Sync,
) {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(rows.div_ceil(min_rows.max(1)))
        .max(1);
    if threads == 1 {
        work(0, out);
        return;
    }
    let per = rows.div_ceil(threads).div_ceil(align) * align;
    let work = &work;
    std::thread::scope(|scope| {
        for (k, chunk) in out.chunks_mut(per * width).enumerate() {
            scope.spawn(move || work(k * per, chunk));
        }
    });
}

/// A tree of a model in LightGBM's text format, from its fields.
fn read_tree(
    name: &str,
    fields: &std::collections::HashMap<&str, &str>,
) -> std::result::Result<TreeParts, String> {
    let get = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("{name} has no {key}"))
    };
    if fields.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(format!("{name} has linear leaves"));
    }
    let leaves: Vec<f64> = list(name, "leaf_value", get("leaf_value")?)?;
    let num_leaves: usize = get("num_leaves")?
        .trim()
        .parse()
        .map_err(|e| format!("{name} num_leaves: {e}"))?;
    if leaves.len() != num_leaves || num_leaves == 0 {
        return Err(format!("{name} has {} leaf values", leaves.len()));
    }
    let leaf_counts = match fields.get("leaf_count") {
        Some(counts) => list::<f64>(name, "leaf_count", counts)?,
        None => Vec::new(),
    };
    if num_leaves == 1 {
        return Ok(TreeParts {
            nodes: Vec::new(),
            leaves,
            leaf_counts,
        });
    }
    let internal = num_leaves - 1;
    let features: Vec<u32> = list(name, "split_feature", get("split_feature")?)?;
    let thresholds: Vec<f64> = list(name, "threshold", get("threshold")?)?;
    let decisions: Vec<u8> = list(name, "decision_type", get("decision_type")?)?;
    let lefts: Vec<i32> = list(name, "left_child", get("left_child")?)?;
    let rights: Vec<i32> = list(name, "right_child", get("right_child")?)?;
    let gains: Vec<f64> = match fields.get("split_gain") {
        Some(g) => list(name, "split_gain", g)?,
        None => vec![0.0; internal],
    };
    let counts: Vec<f64> = match fields.get("internal_count") {
        Some(c) => list(name, "internal_count", c)?,
        None => vec![f64::NAN; internal],
    };
    if [
        features.len(),
        thresholds.len(),
        decisions.len(),
        lefts.len(),
        rights.len(),
        gains.len(),
        counts.len(),
    ]
    .iter()
    .any(|n| *n != internal)
    {
        return Err(format!("{name} has arrays of the wrong length"));
    }
    let mut nodes = Vec::with_capacity(internal);
    for i in 0..internal {
        let decision = decisions[i];
        if decision & 1 != 0 {
            return Err(format!("{name} has a categorical split"));
        }
        // LightGBM's missing types: 0 none (NaN is read as 0), 1 zero, 2 NaN.
        let missing = match (decision >> 2) & 3 {
            0 => Missing::None,
            1 => Missing::Zero,
            _ => Missing::Nan,
        };
        nodes.push(PartNode {
            feature: features[i],
            threshold: thresholds[i],
            missing,
            default_left: decision & 2 != 0,
            left: lefts[i],
            right: rights[i],
            gain: gains[i],
            count: counts[i],
        });
    }
    Ok(TreeParts {
        nodes,
        leaves,
        leaf_counts,
    })
}

/// A number as the text format holds it: the shortest text that reads back the same
/// (`inf` as C's `strtod` reads it).
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{v:e}")
    }
}

/// A field of a tree: values separated by spaces.
fn list<T: std::str::FromStr>(name: &str, key: &str, text: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    text.split_whitespace()
        .map(|v| v.parse().map_err(|e| format!("{name} {key} {v:?}: {e}")))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::grow::{Booster, Params};

    /// One tree by hand: feature 0 split at 1.5 with missing type `typ` and default direction.
    fn stump(decision_type: u8) -> Forest {
        let text = format!(
            "tree\nversion=v4\nmax_feature_idx=1\n\nTree=0\nnum_leaves=2\nnum_cat=0\n\
             split_feature=0\nthreshold=1.5\ndecision_type={decision_type}\nleft_child=-1\n\
             right_child=-2\nleaf_value=-1 1\nis_linear=0\nshrinkage=1\n\n\nend of trees\n"
        );
        Forest::from_lightgbm(&text).unwrap()
    }

    fn scores(forest: &Forest, values: &[f64]) -> Vec<f64> {
        let x: Vec<f64> = values.iter().flat_map(|v| [*v, 0.0]).collect();
        forest.raw_scores(&x, 2).unwrap()
    }

    #[test]
    fn missing_values_go_where_lightgbm_sends_them() {
        let values = [1.0, 2.0, f64::NAN, 0.0, 1.5];
        // Missing type none: NaN is read as 0, which is left of 1.5.
        assert_eq!(scores(&stump(0), &values), [-1.0, 1.0, -1.0, -1.0, -1.0]);
        // Missing type NaN, default right (decision type 8) and left (10).
        assert_eq!(scores(&stump(8), &values), [-1.0, 1.0, 1.0, -1.0, -1.0]);
        assert_eq!(scores(&stump(10), &values), [-1.0, 1.0, -1.0, -1.0, -1.0]);
        // Missing type zero, default right (4): zero and NaN both go right.
        assert_eq!(scores(&stump(4), &values), [-1.0, 1.0, 1.0, 1.0, -1.0]);
    }

    #[test]
    fn missing_values_take_the_leaf_masks_unless_zero_is_missing() {
        assert!(stump(0).scores_by_masks() && stump(8).scores_by_masks());
        assert!(stump(10).scores_by_masks() && !stump(4).scores_by_masks());
    }

    /// Stumps on feature 0, one per threshold, with leaves `-(i + 1)` and `i + 1`, NaN left
    /// on every other one.
    fn stumps(thresholds: &[&str]) -> Forest {
        use std::fmt::Write as _;
        let mut text = String::from("tree\nversion=v4\nmax_feature_idx=1\n\n");
        for (i, t) in thresholds.iter().enumerate() {
            let decision = if i % 2 == 0 { 8 } else { 10 };
            let leaf = i + 1;
            writeln!(
                text,
                "Tree={i}\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold={t}\n\
                 decision_type={decision}\nleft_child=-1\nright_child=-2\n\
                 leaf_value=-{leaf} {leaf}\nis_linear=0\nshrinkage=1\n"
            )
            .unwrap();
        }
        text.push_str("end of trees\n");
        Forest::from_lightgbm(&text).unwrap()
    }

    #[test]
    fn the_masks_tell_signed_zeros_infinities_and_missing_values_as_the_walk_does() {
        let forest = stumps(&["0", "-0", "1e-300", "-1e300", "inf", "-inf", "1.5"]);
        assert!(forest.scores_by_masks());
        let values = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.5,
            1e300,
            f64::INFINITY,
            f64::NAN,
        ];
        let got = scores(&forest, &values);
        assert_eq!(got, scores(&forest.walking(), &values));
        // LightGBM reads a value within 1e-35 of zero as zero: right of -1e-36.
        let zero = ZERO;
        let near = [-5e-36, -zero, (-zero).next_down(), zero, 0.0];
        for t in ["-1e-36", "1e-36", "-0"] {
            let tiny = stumps(&[t]);
            let t: f64 = t.parse().unwrap();
            let lightgbm: Vec<f64> = near
                .iter()
                .map(|v| if as_read(*v) <= t { -1.0 } else { 1.0 })
                .collect();
            assert_eq!(scores(&tiny, &near), lightgbm, "{t}");
            assert_eq!(scores(&tiny.walking(), &near), lightgbm, "{t}");
        }
        assert_eq!(
            scores(&stumps(&["-1e-36"]), &near),
            [1.0, 1.0, -1.0, 1.0, 1.0]
        );
        // NaN goes right at the even stumps (+1, +3, ...) and left at the odd ones (-2, ...).
        assert!((got[9] - (1.0 - 2.0 + 3.0 - 4.0 + 5.0 - 6.0 + 7.0)).abs() < 1e-12);
    }

    #[test]
    fn a_feature_with_more_thresholds_than_a_byte_codes_is_walked() {
        let thresholds: Vec<String> = (0..255).map(|i| format!("{i}.5")).collect();
        let names: Vec<&str> = thresholds.iter().map(String::as_str).collect();
        let values: Vec<f64> = (0..600).map(|i| f64::from(i) * 0.5 - 10.0).collect();
        let fits = stumps(&names[..254]);
        assert!(fits.scores_by_masks());
        assert_eq!(scores(&fits, &values), scores(&fits.walking(), &values));
        assert!(!stumps(&names).scores_by_masks());
    }

    #[test]
    fn every_build_of_the_masks_scores_alike() {
        // 31 leaves compare words, 48 bytes.
        for leaves in [31, 48] {
            let (forest, x, _) = trained(leaves, 1_000);
            let scores = forest.raw_scores(&x, 6).unwrap();
            for widest in [Isa::Baseline, Isa::Avx2] {
                assert_eq!(forest.limited_to(widest).raw_scores(&x, 6).unwrap(), scores);
            }
        }
    }

    #[test]
    fn a_threshold_that_is_not_a_number_is_refused() {
        let text = "max_feature_idx=0\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=nan\n\
                    decision_type=8\nleft_child=-1\nright_child=-2\nleaf_value=0 1\n\nend of trees\n";
        let error = Forest::from_lightgbm(text).unwrap_err().to_string();
        assert!(error.contains("not a number"), "{error}");
    }

    #[test]
    fn categorical_splits_are_refused() {
        let text = "max_feature_idx=0\n\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=0\n\
                    decision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=0 1\n\nend of trees\n";
        let error = Forest::from_lightgbm(text).unwrap_err().to_string();
        assert!(error.contains("categorical"), "{error}");
    }

    /// Rows with missing values, zeros and a signal spread over interacting features, and
    /// labels from it with noise.
    pub(crate) fn rows(rows: usize, width: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut state = seed;
        let mut uniform = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x = Vec::with_capacity(rows * width);
        let mut y = Vec::with_capacity(rows);
        for _ in 0..rows {
            let row: Vec<f64> = (0..width)
                .map(|j| {
                    let u = uniform();
                    match j {
                        0 if u < 0.2 => f64::NAN,
                        1 if u < 0.3 => 0.0,
                        _ => uniform() * 10.0 - 5.0,
                    }
                })
                .collect();
            let first = if row[0].is_nan() {
                1.25
            } else {
                row[0].clamp(-1.0, 3.0)
            };
            let signal = first * 0.8 + row[2] * row[3] * 0.1 - row[1] * 0.3
                + row.iter().skip(4).map(|v| v.sin()).sum::<f64>() * 0.3;
            y.push(signal + uniform() * 2.0 - 1.0 > 0.5);
            x.extend(row);
        }
        (x, y)
    }

    /// A forest grown on `rows` rows (6 columns) over 60 rounds of trees of `leaves` leaves,
    /// the rows, and the raw scores the trainer added up for them from their bins.
    pub(crate) fn trained(leaves: usize, rows: usize) -> (Forest, Vec<f64>, Vec<f64>) {
        let (x, y) = self::rows(rows, 6, 7);
        let params = Params {
            num_leaves: leaves,
            seed: 1,
            ..Params::default()
        };
        let mut booster = Booster::new(&x, &y, 6, params, None).unwrap();
        for _ in 0..60 {
            assert!(booster.step());
        }
        let scores = booster.training_scores().to_vec();
        (booster.model().unwrap(), x, scores)
    }

    /// The same trees with every split treating zero as missing (LightGBM's missing type
    /// `Zero`, default direction kept), which the recipe never grows but model files may hold.
    pub(crate) fn zero_as_missing(forest: &Forest) -> Forest {
        let text: Vec<String> = forest
            .to_lightgbm(&[])
            .lines()
            .map(|line| match line.strip_prefix("decision_type=") {
                Some(types) => {
                    let types: Vec<String> = types
                        .split(' ')
                        .map(|t| ((t.parse::<u8>().unwrap() & 2) | 4).to_string())
                        .collect();
                    format!("decision_type={}", types.join(" "))
                }
                None => line.to_owned(),
            })
            .collect();
        Forest::from_lightgbm(&text.join("\n")).unwrap()
    }

    #[test]
    fn a_grown_forest_scores_rows_as_its_trainer_did_on_their_bins() {
        // Up to 32 leaves take 32-bit leaf masks, more take 64-bit ones (the widths' edges
        // included); 6,001 rows end in a part block.
        for leaves in [15, 32, 33, 48, 64] {
            let (forest, x, expected) = trained(leaves, 6_001);
            assert_eq!(forest.trees(), 60);
            assert!(forest.scores_by_masks());
            let most = (0..60).map(|t| forest.tree_nodes(t).1 + 1).max();
            assert_eq!(most, Some(leaves), "some tree has every leaf it may");
            let walking = forest.walking();
            assert!(!walking.scores_by_masks());
            for got in [
                forest.raw_scores(&x, 6).unwrap(),
                forest.raw_scores_here(&x[..6 * 100], 6).unwrap(),
                walking.raw_scores(&x, 6).unwrap(),
            ] {
                assert!(got.len() == expected.len() || got.len() == 100);
                for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "{leaves} leaves, row {i}: {a} vs {b}"
                    );
                }
            }
            assert_eq!(
                forest.raw_scores(&x, 6).unwrap(),
                walking.raw_scores(&x, 6).unwrap(),
                "the same leaves summed in the same order"
            );
        }
        let (_, _, expected) = trained(15, 6_000);
        // The scores are not all alike: the comparison means something.
        let spread = expected.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - expected.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(spread > 2.0, "{spread}");
    }
}
