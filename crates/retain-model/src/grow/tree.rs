//! One tree grown leaf by leaf: each leaf's best split read from its histogram, its rows
//! partitioned between its children, and the smaller child's histogram summed from its rows.

use super::Booster;
use super::bins::{Binned, FeatureBins};
use super::histogram::{Sums, Used};
use crate::forest::{Missing, PartNode, TreeParts};

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
pub(super) struct Tree {
    pub(super) nodes: Vec<TreeNode>,
    pub(super) leaves: Vec<f64>,
    pub(super) leaf_counts: Vec<f64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct TreeNode {
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
    pub(super) fn leaf(&self, data: &Binned, i: usize) -> usize {
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

    pub(super) fn parts(&self, bins: &[FeatureBins]) -> TreeParts {
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

/// Rows of a leaf before it is partitioned on two threads.
pub(super) const PARALLEL_PARTITION_ROWS: usize = 65_536;

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
pub(super) type Grown = (Vec<u32>, Vec<(usize, usize)>);

impl Booster {
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
    pub(super) fn grow(&mut self, mut order: Vec<u32>, used: &[Used]) -> Option<(Tree, Grown)> {
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
}
