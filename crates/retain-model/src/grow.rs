//! Gradient-boosted trees grown in Rust: the recipe's trainer.
//!
//! The method is the one LightGBM made common, written here from its description: every
//! feature is cut into at most [`MAX_BIN`] bins at quantiles of its values (missing values in a
//! bin of their own when the training rows have any), each round fits a regression tree to the
//! gradients and Hessians of the binary log loss, and a tree grows best leaf first up to
//! `num_leaves` leaves. A leaf's split is found from its histogram: per feature and bin, the
//! sums of gradients, Hessians and rows. Only the smaller child of a split is summed from its
//! rows; the larger one's histogram is its parent's minus the smaller's. Splits keep at least
//! `min_data_in_leaf` rows and `min_sum_hessian` Hessian on each side, leaf values are
//! regularized by `lambda_l2` and shrunk by the learning rate, and each tree sees a sampled
//! share of the features (and, on small tables, of the rows).
//!
//! Trees come out as a [`Forest`], the form the scorer and TreeSHAP read, with the training
//! rows' counts at every node and leaf and the gain of every split.

use crate::error::{Error, Result};
use crate::forest::{Forest, Missing, PartNode, TreeParts, as_read};
use crate::split::SplitMix;

/// Bins per feature at most, the missing values' bin included: codes are bytes.
pub(crate) const MAX_BIN: usize = 255;
/// Rows a bin holds at least where the values allow it.
const MIN_DATA_IN_BIN: usize = 3;
/// Rows whose values place a feature's bin boundaries: a sample past this many.
const BIN_SAMPLE: usize = 200_000;
/// Rows a thread is given at least when binning or computing gradients: fewer cost less than
/// starting the threads.
const ROWS_PER_THREAD: usize = 24_576;
/// Rows of a leaf worth a second thread for its histogram: summing a few thousand rows into
/// forty features' bins takes longer than starting a thread, and most leaves are small.
const HISTOGRAM_ROWS_PER_THREAD: usize = 4_096;

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

/// One feature's bins: value bins separated by `uppers` (a value `v` is in the first bin whose
/// upper bound is at least `v`), then a bin for missing values when the training rows have any.
#[derive(Debug, Clone)]
pub(crate) struct FeatureBins {
    uppers: Vec<f64>,
    nan: bool,
}

impl FeatureBins {
    /// Bins of a feature with values `values` (a sample of the rows), missing values among the
    /// rows or not.
    fn new(mut values: Vec<f64>, nan: bool) -> FeatureBins {
        values.sort_unstable_by(f64::total_cmp);
        let mut distinct: Vec<(f64, usize)> = Vec::new();
        for v in values {
            match distinct.last_mut() {
                // `==`: -0 and 0 are one value to the trees.
                #[allow(clippy::float_cmp)]
                Some((last, n)) if *last == v => *n += 1,
                _ => distinct.push((v, 1)),
            }
        }
        let most = MAX_BIN - usize::from(nan);
        let mut uppers = Vec::new();
        let mut left: usize = distinct.iter().map(|(_, n)| n).sum();
        let mut in_bin = 0;
        for (k, &(v, n)) in distinct.iter().enumerate() {
            left -= n;
            in_bin += n;
            let Some(&(next, _)) = distinct.get(k + 1) else {
                break;
            };
            let bins_left = most - uppers.len();
            if bins_left <= 1 {
                break;
            }
            // Every distinct value its own bin when they fit, else bins of about equal counts
            // over what is left; a bin holds a few rows at least, and so do the values after.
            let cut = if distinct.len() <= most {
                in_bin >= MIN_DATA_IN_BIN
            } else {
                let share = (in_bin + left) as f64 / bins_left as f64;
                in_bin as f64 >= share.max(MIN_DATA_IN_BIN as f64)
            };
            if cut && left >= MIN_DATA_IN_BIN {
                let middle = v + (next - v) / 2.0;
                uppers.push(if middle < next { middle } else { v });
                in_bin = 0;
            }
        }
        FeatureBins { uppers, nan }
    }

    /// Bins, the missing values' included.
    fn bins(&self) -> usize {
        self.uppers.len() + 1 + usize::from(self.nan)
    }

    /// The missing values' bin (the last), when there is one.
    fn nan_bin(&self) -> Option<u8> {
        self.nan.then_some((self.uppers.len() + 1) as u8)
    }

    /// The code of a value as the trees read it: without a missing bin, a missing value is
    /// read as zero.
    fn code(&self, v: f64) -> u8 {
        let v = as_read(v);
        if v.is_nan() {
            if let Some(bin) = self.nan_bin() {
                return bin;
            }
            return self.uppers.partition_point(|u| *u < 0.0) as u8;
        }
        self.uppers.partition_point(|u| *u < v) as u8
    }
}

/// Rows as bin codes, column by column: a leaf's histogram reads one feature's codes of its
/// rows at a time, a column small enough to stay in cache while its rows pass.
#[derive(Debug, Clone)]
pub(crate) struct Binned {
    rows: usize,
    codes: Vec<u8>,
}

impl Binned {
    /// Feature `j`'s codes of every row.
    fn column(&self, j: usize) -> &[u8] {
        &self.codes[j * self.rows..(j + 1) * self.rows]
    }

    /// Feature `j`'s code of row `i`.
    fn code(&self, i: usize, j: usize) -> u8 {
        self.codes[j * self.rows + i]
    }
}

/// The bins of every feature of row-major `x` (`d` columns), from one pass over the rows for
/// the missing values and one over a sample of them for the values.
pub(crate) fn find_bins(x: &[f64], d: usize, threads: usize) -> Vec<FeatureBins> {
    let rows = x.len() / d.max(1);
    let step = rows.div_ceil(BIN_SAMPLE).max(1);
    let mut nan = vec![false; d];
    for row in x.chunks_exact(d) {
        for (n, v) in nan.iter_mut().zip(row) {
            *n |= v.is_nan();
        }
    }
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(rows / step + 1); d];
    for row in x.chunks_exact(d).step_by(step) {
        for (values, v) in values.iter_mut().zip(row) {
            let v = as_read(*v);
            if !v.is_nan() {
                values.push(v);
            }
        }
    }
    let work: Vec<(Vec<f64>, bool)> = values.into_iter().zip(nan).collect();
    if threads <= 1 || rows < ROWS_PER_THREAD {
        return work
            .into_iter()
            .map(|(v, n)| FeatureBins::new(v, n))
            .collect();
    }
    // Sorting each feature's sample is the cost: shared out among the threads.
    let per = d.div_ceil(threads.min(d).max(1));
    let mut out: Vec<Option<FeatureBins>> = vec![None; d];
    let mut work: Vec<Option<(Vec<f64>, bool)>> = work.into_iter().map(Some).collect();
    std::thread::scope(|scope| {
        for (slots, work) in out.chunks_mut(per).zip(work.chunks_mut(per)) {
            scope.spawn(move || {
                for (slot, work) in slots.iter_mut().zip(work) {
                    let (values, nan) = work.take().expect("each feature once");
                    *slot = Some(FeatureBins::new(values, nan));
                }
            });
        }
    });
    out.into_iter()
        .map(|b| b.expect("every feature binned"))
        .collect()
}

/// Row-major `x` (`d` columns) coded into `bins`.
pub(crate) fn bin_rows(x: &[f64], d: usize, bins: &[FeatureBins], threads: usize) -> Binned {
    let rows = x.len() / d.max(1);
    let mut codes = vec![0u8; rows * d];
    if rows == 0 {
        return Binned { rows, codes };
    }
    // Rows shared out among the threads; each codes a block of rows at a time, column by
    // column, so the block's values stay in cache while its columns are written.
    let code = |first: usize, count: usize, columns: &mut [&mut [u8]]| {
        const BLOCK: usize = 512;
        let mut start = first;
        while start < first + count {
            let end = (start + BLOCK).min(first + count);
            let block = &x[start * d..end * d];
            for (j, (column, b)) in columns.iter_mut().zip(bins).enumerate() {
                let out = &mut column[start - first..end - first];
                for (c, v) in out.iter_mut().zip(block[j..].iter().step_by(d)) {
                    *c = b.code(*v);
                }
            }
            start = end;
        }
    };
    let threads = threads.min(rows / ROWS_PER_THREAD).max(1);
    let per = rows.div_ceil(threads);
    // Per thread, its rows' part of every column.
    let mut parts: Vec<Vec<&mut [u8]>> = (0..threads).map(|_| Vec::with_capacity(d)).collect();
    for column in codes.chunks_mut(rows) {
        for (part, piece) in parts.iter_mut().zip(column.chunks_mut(per)) {
            part.push(piece);
        }
    }
    if threads == 1 {
        code(0, rows, &mut parts[0]);
    } else {
        std::thread::scope(|scope| {
            for (k, part) in parts.iter_mut().enumerate() {
                let code = &code;
                let count = per.min(rows - k * per);
                scope.spawn(move || code(k * per, count, part));
            }
        });
    }
    Binned { rows, codes }
}

/// Sums of a set of rows: gradients, Hessians and how many.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    g: f64,
    h: f64,
    n: f64,
}

impl Sums {
    #[inline]
    fn add(&mut self, g: f32, h: f32) {
        self.g += f64::from(g);
        self.h += f64::from(h);
        self.n += 1.0;
    }

    fn plus(self, o: Sums) -> Sums {
        Sums {
            g: self.g + o.g,
            h: self.h + o.h,
            n: self.n + o.n,
        }
    }

    fn minus(self, o: Sums) -> Sums {
        Sums {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// Where a feature's bins start in a histogram.
#[derive(Debug, Clone)]
struct Layout {
    offsets: Vec<usize>,
    total: usize,
}

impl Layout {
    fn new(bins: &[FeatureBins]) -> Layout {
        let mut offsets = Vec::with_capacity(bins.len());
        let mut total = 0;
        for b in bins {
            offsets.push(total);
            total += b.bins();
        }
        Layout { offsets, total }
    }
}

/// A feature a tree may split on: its column, where its bins start in a histogram, and how
/// many it has.
#[derive(Debug, Clone, Copy)]
struct Used {
    column: usize,
    offset: usize,
    bins: usize,
}

impl Used {
    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.bins
    }
}

/// Features summed in one pass over the rows: each row's gradient is read once for all of
/// them instead of once per feature, which made the histograms wait on memory.
const GROUP: usize = 4;

/// Copies kept of each histogram of a group: consecutive rows in one bin would otherwise each
/// wait for the previous one's sum; row `k` goes into copy `k % COPIES`.
const COPIES: usize = 2;

/// The bins of one feature in one copy: 256, so a byte code indexes them without a check.
type Bins<'a> = &'a mut [Sums; 256];

/// Sums `count` rows into `bins[copy][f]`, the bins of the features whose columns are
/// `columns`: the `k`th is row `index(k)`, with gradient and Hessian `grad[index(k)]`. Each
/// thread reads the gradients of its rows itself, rather than one gathering them first.
#[inline]
fn add_group<const F: usize>(
    bins: &mut [[Bins<'_>; F]; COPIES],
    columns: [&[u8]; F],
    grad: &[[f32; 2]],
    count: usize,
    index: impl Fn(usize) -> usize,
) {
    let whole = count / COPIES * COPIES;
    for k in (0..whole).step_by(COPIES) {
        for (c, copy) in bins.iter_mut().enumerate() {
            let i = index(k + c);
            let [g, h] = grad[i];
            for f in 0..F {
                copy[f][usize::from(columns[f][i])].add(g, h);
            }
        }
    }
    for k in whole..count {
        let i = index(k);
        let [g, h] = grad[i];
        for f in 0..F {
            bins[0][f][usize::from(columns[f][i])].add(g, h);
        }
    }
}

/// [`add_group`] for `F` features of `group`, then each feature's copies summed into `hist`
/// (which starts at bin `first`).
fn add_features<const F: usize>(
    hist: &mut [Sums],
    scratch: &mut [Sums],
    (data, grad, rows): (&Binned, &[[f32; 2]], Option<&[u32]>),
    group: &[Used],
    first: usize,
) {
    let mut chunks = scratch
        .chunks_exact_mut(256)
        .map(|c| <Bins<'_>>::try_from(c).expect("chunks of 256"));
    let mut bins: [[Bins<'_>; F]; COPIES] = std::array::from_fn(|_| {
        std::array::from_fn(|_| chunks.next().expect("room for every copy of every feature"))
    });
    for copy in &mut bins {
        for (b, u) in copy.iter_mut().zip(group) {
            b[..u.bins].fill(Sums::default());
        }
    }
    let columns: [&[u8]; F] = std::array::from_fn(|f| data.column(group[f].column));
    match rows {
        None => add_group(&mut bins, columns, grad, grad.len(), |k| k),
        Some(rows) => add_group(&mut bins, columns, grad, rows.len(), |k| rows[k] as usize),
    }
    for (f, u) in group.iter().enumerate() {
        let mine = &mut hist[u.offset - first..u.offset - first + u.bins];
        for (b, sum) in mine.iter_mut().enumerate() {
            *sum = bins[0][f][b];
            for copy in &bins[1..] {
                *sum = sum.plus(copy[f][b]);
            }
        }
    }
}

/// Sums the rows `rows` (every row when `None`), whose gradients are in `grad`, into `hist`,
/// for the features `used`, a group of them at a time.
fn add_columns(
    hist: &mut [Sums],
    data: &Binned,
    grad: &[[f32; 2]],
    rows: Option<&[u32]>,
    used: &[Used],
    first: usize,
) {
    let mut scratch = vec![Sums::default(); COPIES * GROUP * 256];
    let input = (data, grad, rows);
    for group in used.chunks(GROUP) {
        match group.len() {
            1 => add_features::<1>(hist, &mut scratch, input, group, first),
            2 => add_features::<2>(hist, &mut scratch, input, group, first),
            3 => add_features::<3>(hist, &mut scratch, input, group, first),
            _ => add_features::<GROUP>(hist, &mut scratch, input, group, first),
        }
    }
}

/// The histogram of `rows` (every row, in order, when `None`), its features shared out among
/// up to `threads` threads; `grad` holds every row's gradient.
fn histogram(
    hist: &mut [Sums],
    data: &Binned,
    grad: &[[f32; 2]],
    rows: Option<&[u32]>,
    used: &[Used],
    threads: usize,
) {
    let threads = threads
        .min(rows.map_or(grad.len(), <[u32]>::len) / HISTOGRAM_ROWS_PER_THREAD)
        .min(used.len())
        .max(1);
    if threads == 1 {
        add_columns(hist, data, grad, rows, used, 0);
        return;
    }
    // Each thread its run of features: disjoint ranges of the histogram.
    let per = used.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut rest = hist;
        let mut at = 0;
        for features in used.chunks(per) {
            let start = features[0].offset;
            let end = features[features.len() - 1].offset + features[features.len() - 1].bins;
            let (_, tail) = rest.split_at_mut(start - at);
            let (mine, tail) = tail.split_at_mut(end - start);
            rest = tail;
            at = end;
            scope.spawn(move || add_columns(mine, data, grad, rows, features, start));
        }
    });
}

/// A split of a leaf: rows whose code of `feature` is at most `bin` go left, missing values
/// (when the feature has a missing bin) go left when `nan_left`.
#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: u8,
    nan_left: bool,
    gain: f64,
    left: Sums,
}

/// A tree as grown, on codes and on values.
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<TreeNode>,
    leaves: Vec<f64>,
    leaf_counts: Vec<f64>,
}

#[derive(Debug, Clone, Copy)]
struct TreeNode {
    feature: usize,
    bin: u8,
    nan_bin: Option<u8>,
    nan_left: bool,
    threshold: f64,
    /// `>= 0` a node, `< 0` the leaf `!child`.
    left: i32,
    right: i32,
    gain: f64,
    count: f64,
}

impl Tree {
    /// The leaf row `i` of `data` reaches.
    fn leaf(&self, data: &Binned, i: usize) -> usize {
        if self.nodes.is_empty() {
            return 0;
        }
        let mut at = 0i32;
        while at >= 0 {
            let node = &self.nodes[at as usize];
            let code = data.code(i, node.feature);
            let left = if Some(code) == node.nan_bin {
                node.nan_left
            } else {
                code <= node.bin
            };
            at = if left { node.left } else { node.right };
        }
        !at as usize
    }

    fn parts(&self, bins: &[FeatureBins]) -> TreeParts {
        TreeParts {
            nodes: self
                .nodes
                .iter()
                .map(|n| {
                    let nan = bins[n.feature].nan;
                    PartNode {
                        feature: n.feature as u32,
                        threshold: n.threshold,
                        missing: if nan { Missing::Nan } else { Missing::None },
                        default_left: nan && n.nan_left,
                        left: n.left,
                        right: n.right,
                        gain: n.gain,
                        count: n.count,
                    }
                })
                .collect(),
            leaves: self.leaves.clone(),
            leaf_counts: self.leaf_counts.clone(),
        }
    }
}

/// A leaf while its tree grows: its rows are `order[start..start + len]`.
struct Leaf {
    start: usize,
    len: usize,
    sums: Sums,
    hist: Vec<Sums>,
    best: Option<Split>,
    /// The node that points at this leaf (`None`: the root), and on which side.
    parent: Option<(usize, bool)>,
}

/// One round's random draws, seeded by the model's seed and the round.
fn round_draws(seed: u64, round: usize) -> SplitMix {
    SplitMix(seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
}

/// Rows of a leaf before it is partitioned on two threads.
const PARALLEL_PARTITION_ROWS: usize = 65_536;

/// Puts the rows `goes_left` accepts first, both sides in their order; returns how many.
fn partition(rows: &mut [u32], goes_left: impl Fn(u32) -> bool, scratch: &mut Vec<u32>) -> usize {
    scratch.clear();
    let mut write = 0;
    for k in 0..rows.len() {
        let i = rows[k];
        if goes_left(i) {
            rows[write] = i;
            write += 1;
        } else {
            scratch.push(i);
        }
    }
    rows[write..].copy_from_slice(scratch);
    write
}

/// The rows a tree grew on, in leaf order, and each leaf's range of them.
type Grown = (Vec<u32>, Vec<(usize, usize)>);

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

    /// The histogram of a leaf's rows `rows` (ascending), features `used`.
    fn leaf_histogram(&mut self, hist: &mut [Sums], rows: &[u32], used: &[Used]) {
        let threads = self.params.threads;
        // Every row, in order, is read without the list of them.
        let rows = (rows.len() != self.labels.len()).then_some(rows);
        histogram(hist, &self.data, &self.grad, rows, used, threads);
    }

    fn new_hist(&mut self) -> Vec<Sums> {
        self.spare
            .pop()
            .unwrap_or_else(|| vec![Sums::default(); self.layout.total])
    }

    /// The best split of a leaf with histogram `hist` and sums `sums`, if any gains.
    fn best_split(&self, hist: &[Sums], sums: Sums, used: &[Used]) -> Option<Split> {
        let p = &self.params;
        let min_n = p.min_data_in_leaf.max(1) as f64;
        if sums.n < 2.0 * min_n {
            return None;
        }
        let score = |s: Sums| s.g * s.g / (s.h + p.lambda_l2);
        let parent = score(sums);
        let mut best: Option<Split> = None;
        let mut consider = |feature: usize, bin: u8, nan_left: bool, left: Sums| {
            let right = sums.minus(left);
            if left.n < min_n
                || right.n < min_n
                || left.h < p.min_sum_hessian
                || right.h < p.min_sum_hessian
            {
                return;
            }
            let gain = score(left) + score(right) - parent;
            if gain > 1e-12 && best.is_none_or(|b| gain > b.gain) {
                best = Some(Split {
                    feature,
                    bin,
                    nan_left,
                    gain,
                    left,
                });
            }
        };
        for u in used {
            let (j, b) = (u.column, &self.bins[u.column]);
            let values = b.uppers.len() + 1;
            let bins = &hist[u.range()];
            let missing = if b.nan { bins[values] } else { Sums::default() };
            let mut left = Sums::default();
            for (t, s) in bins[..values].iter().enumerate() {
                left = left.plus(*s);
                let last = t + 1 == values;
                // Every value left and missing ones right: a split only with a missing bin.
                if !last || (b.nan && missing.n > 0.0) {
                    consider(j, t as u8, false, left);
                }
                if b.nan && missing.n > 0.0 && !last {
                    consider(j, t as u8, true, left.plus(missing));
                }
            }
        }
        best
    }

    /// Grows a tree on `rows`; `None` when the root cannot split.
    fn grow(&mut self, mut order: Vec<u32>, used: &[Used]) -> Option<(Tree, Grown)> {
        let mut root_hist = self.new_hist();
        self.leaf_histogram(&mut root_hist, &order, used);
        let mut sums = Sums::default();
        for &i in &order {
            let [g, h] = self.grad[i as usize];
            sums.add(g, h);
        }
        let best = self.best_split(&root_hist, sums, used);
        best?;
        let mut leaves = vec![Leaf {
            start: 0,
            len: order.len(),
            sums,
            hist: root_hist,
            best,
            parent: None,
        }];
        let mut nodes: Vec<TreeNode> = Vec::new();
        let mut scratch: Vec<u32> = Vec::with_capacity(order.len());
        while leaves.len() < self.params.num_leaves {
            // The leaf whose split gains most; the first of equals.
            let Some((at, split)) = leaves
                .iter()
                .enumerate()
                .filter_map(|(k, l)| l.best.map(|s| (k, s)))
                .fold(None, |best: Option<(usize, Split)>, (k, s)| match best {
                    Some((_, b)) if b.gain >= s.gain => best,
                    _ => Some((k, s)),
                })
            else {
                break;
            };
            let node = nodes.len();
            let new_leaf = leaves.len();
            let bins = &self.bins[split.feature];
            let nan_bin = bins.nan_bin();
            let threshold = bins
                .uppers
                .get(usize::from(split.bin))
                .copied()
                .unwrap_or(f64::INFINITY);
            // Partition the leaf's rows, stably: left ones first. A large leaf's two halves
            // are partitioned on two threads and the middle rotated into place.
            let (start, len) = (leaves[at].start, leaves[at].len);
            let data = &self.data;
            let goes_left = |i: u32| {
                let code = data.code(i as usize, split.feature);
                if Some(code) == nan_bin {
                    split.nan_left
                } else {
                    code <= split.bin
                }
            };
            let leaf = &mut order[start..start + len];
            let left_len = if self.params.threads > 1 && len >= PARALLEL_PARTITION_ROWS {
                let mid = len / 2;
                let (first, second) = leaf.split_at_mut(mid);
                let (a, b) = std::thread::scope(|scope| {
                    let other = scope.spawn(|| partition(second, goes_left, &mut Vec::new()));
                    let a = partition(first, goes_left, &mut scratch);
                    let b = other
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e));
                    (a, b)
                });
                leaf[a..mid + b].rotate_left(mid - a);
                a + b
            } else {
                partition(leaf, goes_left, &mut scratch)
            };
            let write = start + left_len;
            let parent_sums = leaves[at].sums;
            let (left_sums, right_sums) = (split.left, parent_sums.minus(split.left));
            if let Some((p, is_left)) = leaves[at].parent {
                if is_left {
                    nodes[p].left = node as i32;
                } else {
                    nodes[p].right = node as i32;
                }
            }
            nodes.push(TreeNode {
                feature: split.feature,
                bin: split.bin,
                nan_bin,
                nan_left: split.nan_left,
                threshold,
                left: !(at as i32),
                right: !(new_leaf as i32),
                gain: split.gain,
                count: parent_sums.n,
            });
            // The smaller child's histogram from its rows, the larger's by subtraction.
            let min_n = 2.0 * self.params.min_data_in_leaf.max(1) as f64;
            let grows =
                left_sums.n.max(right_sums.n) >= min_n && leaves.len() + 1 < self.params.num_leaves;
            let mut parent_hist = std::mem::take(&mut leaves[at].hist);
            let (mut left_hist, mut right_hist) = (Vec::new(), Vec::new());
            if grows {
                let mut small = self.new_hist();
                let left_smaller = left_len <= len - left_len;
                let rows = if left_smaller {
                    &order[start..write]
                } else {
                    &order[write..start + len]
                };
                self.leaf_histogram(&mut small, rows, used);
                for u in used {
                    for (p, s) in parent_hist[u.range()].iter_mut().zip(&small[u.range()]) {
                        *p = p.minus(*s);
                    }
                }
                if left_smaller {
                    (left_hist, right_hist) = (small, parent_hist);
                } else {
                    (left_hist, right_hist) = (parent_hist, small);
                }
            } else {
                self.spare.push(parent_hist);
            }
            let left_best = if grows {
                self.best_split(&left_hist, left_sums, used)
            } else {
                None
            };
            let right_best = if grows {
                self.best_split(&right_hist, right_sums, used)
            } else {
                None
            };
            leaves[at] = Leaf {
                start,
                len: left_len,
                sums: left_sums,
                hist: left_hist,
                best: left_best,
                parent: Some((node, true)),
            };
            leaves.push(Leaf {
                start: write,
                len: len - left_len,
                sums: right_sums,
                hist: right_hist,
                best: right_best,
                parent: Some((node, false)),
            });
        }
        let shrink = self.params.learning_rate;
        let mut values = Vec::with_capacity(leaves.len());
        let mut counts = Vec::with_capacity(leaves.len());
        for leaf in &mut leaves {
            let s = leaf.sums;
            values.push(-s.g / (s.h + self.params.lambda_l2) * shrink);
            counts.push(s.n);
            let hist = std::mem::take(&mut leaf.hist);
            if !hist.is_empty() {
                self.spare.push(hist);
            }
        }
        let ranges = leaves.iter().map(|l| (l.start, l.len)).collect();
        Some((
            Tree {
                nodes,
                leaves: values,
                leaf_counts: counts,
            },
            (order, ranges),
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::auc;

    /// `rows` rows of four columns: a signal, an interaction of two, and noise with missing
    /// values; labels drawn from their log-odds.
    #[allow(clippy::many_single_char_names)]
    fn rows(rows: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut draws = round_draws(seed, 0);
        let mut x = Vec::with_capacity(rows * 4);
        let mut y = Vec::with_capacity(rows);
        for _ in 0..rows {
            let (a, b, c) = (draws.unit(), draws.unit(), draws.unit());
            let noise = if draws.unit() < 0.2 {
                f64::NAN
            } else {
                draws.unit()
            };
            let z = -2.0 + 3.0 * a + if (b > 0.5) == (c > 0.5) { 1.5 } else { -1.5 };
            y.push(draws.unit() < 1.0 / (1.0 + (-z).exp()));
            x.extend([a, b, c, noise]);
        }
        (x, y)
    }

    fn params() -> Params {
        Params {
            num_leaves: 15,
            feature_fraction: 0.75,
            bagging_fraction: 0.8,
            lambda_l2: 1.0,
            seed: 5,
            ..Params::default()
        }
    }

    fn grown(x: &[f64], y: &[bool], params: Params, rounds: usize) -> Booster {
        let mut booster = Booster::new(x, y, 4, params, None).unwrap();
        for _ in 0..rounds {
            assert!(booster.step());
        }
        booster
    }

    #[test]
    fn trees_learn_a_signal_and_an_interaction_a_line_cannot() {
        let (x, y) = rows(6_000, 1);
        let (test_x, test_y) = rows(4_000, 2);
        let forest = grown(&x, &y, params(), 60).model().unwrap();
        let scores = forest.raw_scores(&test_x, 4).unwrap();
        let a = auc(&scores, &test_y);
        // The labels' own log-odds rank the test rows at about 0.83.
        assert!(a > 0.8, "{a}");
        // Without the interaction's columns the trees rank far worse: they learned it.
        let blind: Vec<f64> = test_x
            .chunks_exact(4)
            .flat_map(|r| [r[0], 0.5, 0.5, r[3]])
            .collect();
        let without = auc(&forest.raw_scores(&blind, 4).unwrap(), &test_y);
        assert!(a > without + 0.05, "{a} against {without}");
    }

    #[test]
    #[allow(clippy::float_cmp)]
    fn a_histogram_by_subtraction_is_the_one_summed_from_the_rows() {
        let (x, y) = rows(50_000, 3);
        let mut booster = Booster::new(&x, &y, 4, params(), None).unwrap();
        booster.gradients();
        let used = booster.sample_features(&mut round_draws(0, 0));
        let all: Vec<u32> = (0..50_000).collect();
        let (left, right): (Vec<u32>, Vec<u32>) = all
            .iter()
            .partition(|i| booster.data.code(**i as usize, 0) < 40);
        let mut hist = |rows: &[u32], threads: usize| {
            let mut h = booster.new_hist();
            booster.params.threads = threads;
            booster.leaf_histogram(&mut h, rows, &used);
            h
        };
        let (parent, small, large) = (hist(&all, 1), hist(&left, 1), hist(&right, 1));
        assert!(left.len() < right.len() && !left.is_empty());
        let mut compared = 0;
        for u in &used {
            for k in u.range() {
                let by_subtraction = parent[k].minus(small[k]);
                assert_eq!(by_subtraction.n, large[k].n, "bin {k}");
                assert!((by_subtraction.g - large[k].g).abs() < 1e-9, "bin {k}");
                assert!((by_subtraction.h - large[k].h).abs() < 1e-9, "bin {k}");
                compared += usize::from(large[k].n > 0.0);
            }
        }
        assert!(compared > 100, "{compared}");
        // Summed on two threads, the same sums.
        let two = hist(&all, 2);
        for u in &used {
            for k in u.range() {
                assert_eq!(two[k].n, parent[k].n);
                assert!((two[k].g - parent[k].g).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn leaves_keep_their_least_rows() {
        let (x, y) = rows(3_000, 4);
        for least in [20, 150] {
            let params = Params {
                min_data_in_leaf: least,
                num_leaves: 63,
                ..params()
            };
            let forest = grown(&x, &y, params, 10).model().unwrap();
            let (nodes, leaves) = forest.counts().unwrap();
            let fewest = leaves.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(fewest >= least as f64, "{fewest} rows under {least}");
            // Bagged rows: a tree's leaves hold about 80% of the rows, and its root all of
            // them.
            let root = nodes[forest.tree_nodes(0).0 as usize];
            assert!((2_200.0..=2_600.0).contains(&root), "{root}");
            // Trees of 150-row leaves hold fewer leaves than the 63 they may.
            let most = (0..forest.trees())
                .map(|t| forest.tree_nodes(t).1 + 1)
                .max()
                .unwrap();
            assert!(least == 20 || most <= 3_000 / 150, "{most}");
        }
    }

    #[test]
    fn a_table_too_small_to_split_keeps_one_tree_of_the_starting_score() {
        let (x, y) = rows(30, 10);
        let mut booster = Booster::new(&x, &y, 4, params(), None).unwrap();
        assert!(!booster.step());
        assert!(!booster.step());
        assert_eq!(booster.rounds(), 1);
        let forest = booster.model().unwrap();
        let churn = y.iter().filter(|c| **c).count() as f64 / 30.0;
        let scores = forest.raw_scores(&x, 4).unwrap();
        assert!(
            scores
                .iter()
                .all(|s| (s - (churn / (1.0 - churn)).ln()).abs() < 1e-12)
        );
    }

    #[test]
    fn a_seed_grows_the_same_trees_and_another_seed_others() {
        let (x, y) = rows(3_000, 6);
        let scores = |seed: u64| {
            let params = Params { seed, ..params() };
            grown(&x, &y, params, 20)
                .model()
                .unwrap()
                .raw_scores(&x, 4)
                .unwrap()
        };
        assert_eq!(scores(1), scores(1));
        assert_ne!(scores(1), scores(2));
    }

    #[test]
    fn two_threads_grow_the_trees_one_thread_grows() {
        // Large enough for leaves partitioned and summed on two threads.
        let (x, y) = rows(3 * PARALLEL_PARTITION_ROWS, 8);
        let scores = |threads: usize| {
            let params = Params {
                threads,
                bagging_fraction: 1.0,
                ..params()
            };
            grown(&x, &y, params, 4)
                .model()
                .unwrap()
                .raw_scores(&x[..4_000], 4)
                .unwrap()
        };
        assert_eq!(scores(1), scores(2));
    }

    #[test]
    fn missing_values_go_the_way_that_gains_and_zero_is_no_missing_value() {
        // Churners have no value in the first column; a value of zero is an ordinary one.
        let mut draws = round_draws(9, 0);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4_000 {
            let churn = draws.unit() < 0.3;
            let v = if churn && draws.unit() < 0.8 {
                f64::NAN
            } else {
                (draws.unit() * 4.0).floor()
            };
            x.extend([v, draws.unit(), draws.unit(), draws.unit()]);
            y.push(churn);
        }
        let forest = grown(&x, &y, params(), 20).model().unwrap();
        let rows = [
            f64::NAN,
            0.5,
            0.5,
            0.5,
            0.0,
            0.5,
            0.5,
            0.5,
            3.0,
            0.5,
            0.5,
            0.5,
        ];
        let s = forest.raw_scores(&rows, 4).unwrap();
        assert!(s[0] > s[1] + 1.0 && s[0] > s[2] + 1.0, "{s:?}");
        // A column without missing values in training reads a missing value as zero.
        let complete: Vec<f64> = x
            .chunks_exact(4)
            .flat_map(|r| [if r[0].is_nan() { 9.0 } else { r[0] }, r[1], r[2], r[3]])
            .collect();
        let forest = grown(&complete, &y, params(), 20).model().unwrap();
        let s = forest.raw_scores(&rows, 4).unwrap();
        assert!((s[0] - s[1]).abs() < 1e-12, "{s:?}");
        assert!(s[0] < forest.raw_scores(&[9.0, 0.5, 0.5, 0.5], 4).unwrap()[0] - 1.0);
    }

    #[test]
    fn bins_are_the_distinct_values_when_few_and_quantiles_when_many() {
        let few = FeatureBins::new(vec![3.0, 1.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0], false);
        assert_eq!(few.uppers, [1.5, 2.5]);
        assert_eq!(
            (few.code(1.0), few.code(1.5), few.code(2.4), few.code(7.0)),
            (0, 0, 1, 2)
        );
        // Missing values without their own bin are read as zero.
        assert_eq!(few.code(f64::NAN), few.code(0.0));
        let with_nan = FeatureBins::new(vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0], true);
        assert_eq!(with_nan.bins(), 3);
        assert_eq!(with_nan.code(f64::NAN), 2);
        let many: Vec<f64> = (0..100_000).map(|i| f64::from(i % 10_007)).collect();
        let many = FeatureBins::new(many, true);
        assert_eq!(many.bins(), MAX_BIN);
        // About equal counts in every bin.
        let mut counts = vec![0usize; MAX_BIN];
        for i in 0..10_007 {
            counts[usize::from(many.code(f64::from(i)))] += 1;
        }
        let (least, most) = (counts[..254].iter().min(), counts[..254].iter().max());
        assert!(
            least >= Some(&35) && most <= Some(&45),
            "{least:?} {most:?}"
        );
    }

    #[test]
    fn rounds_rolled_back_take_their_scores_with_them() {
        let (x, y) = rows(2_000, 8);
        let (xv, yv) = rows(1_000, 9);
        let mut booster = Booster::new(&x, &y, 4, params(), Some((&xv, &yv))).unwrap();
        let mut losses = Vec::new();
        for _ in 0..10 {
            assert!(booster.step());
            losses.push(booster.validation_log_loss().unwrap());
        }
        assert!(losses[9] < losses[0], "{losses:?}");
        for _ in 0..4 {
            booster.rollback();
        }
        assert_eq!(booster.rounds(), 6);
        assert!((booster.validation_log_loss().unwrap() - losses[5]).abs() < 1e-12);
        let forest = booster.model().unwrap();
        let valid = forest.raw_scores(&xv, 4).unwrap();
        for (a, b) in valid.iter().zip(booster.validation_scores().unwrap()) {
            assert!((a - b).abs() < 1e-9, "{a} against {b}");
        }
        let train = forest.raw_scores(&x, 4).unwrap();
        for (a, b) in train.iter().zip(booster.training_scores()) {
            assert!((a - b).abs() < 1e-9, "{a} against {b}");
        }
    }
}
