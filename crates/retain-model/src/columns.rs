//! Adding a few trees' scores to many rows held column by column: what early stopping does on
//! a large table's validation rows every few rounds ([`crate::train`]).
//!
//! The leaf-mask scorer ([`crate::masks`]) first replaces every value of a row by its rank
//! among the forest's thresholds, a cost per row that a model's hundreds of trees share. A look
//! at five new trees cannot share it: coding the synthetic operator's 140,000 validation rows
//! took 17 ms of each look, a tenth of the whole fit. Here a split compares one column's values
//! with its threshold as they are, contiguous, several rows an instruction, and ands the result
//! into the rows' leaf masks as `masks.rs` does: each leaf a bit, numbered left to right; a row
//! going right at a split clears the leaves on its left; the lowest bit left is its leaf.

// The kernel is `inline(always)` so that it compiles into the AVX2 and AVX-512 copies.
#![allow(clippy::inline_always)]

use crate::error::{Error, Result};
use crate::forest::{Forest, ZERO, as_compared, rows_on_cores};
use crate::masks::leaves_except;

/// Rows scored through every tree before the next rows: their masks and scores stay in cache.
const BLOCK: usize = 256;
/// Rows worth a thread of their own.
const PER_THREAD: usize = 32 * BLOCK;

/// Rows transposed together, so that they stay in cache while each column is written.
const TILE: usize = 64;

/// Rows held column by column: `values[j * rows + i]` is row `i`'s value of column `j`.
pub(crate) struct Columns {
    values: Vec<f64>,
    rows: usize,
    width: usize,
}

impl Columns {
    /// The columns of row-major `x` with `d` columns.
    pub(crate) fn new(x: &[f64], d: usize) -> Columns {
        let rows = x.len() / d.max(1);
        let mut values = vec![0.0; rows * d];
        for (t, tile) in x.chunks(TILE * d).enumerate() {
            let first = t * TILE;
            for (i, row) in tile.chunks_exact(d).enumerate() {
                for (j, v) in row.iter().enumerate() {
                    values[j * rows + first + i] = *v;
                }
            }
        }
        Columns {
            values,
            rows,
            width: d,
        }
    }

    fn column(&self, j: usize) -> &[f64] {
        &self.values[j * self.rows..(j + 1) * self.rows]
    }
}

/// A split as compared here: a row goes left when its value is at most `threshold` (the
/// threshold [`as_compared`]), or when it is missing and `nan_left`, or when the split treats
/// zero as missing, the value is zero and `zero_left`; otherwise `clear` is anded into its leaves.
#[derive(Clone, Copy)]
struct Cut {
    threshold: f64,
    column: usize,
    nan_left: bool,
    zero_missing: bool,
    zero_left: bool,
    clear: u64,
}

/// The trees as cuts and leaves, each tree's leaves left to right.
struct Layout {
    cuts: Vec<Cut>,
    leaves: Vec<f64>,
    /// Per tree, where its cuts and its leaves start; one more entry ends the last tree.
    tree_cuts: Vec<usize>,
    tree_leaves: Vec<usize>,
}

impl Layout {
    /// The layout of `forest`, or `None` when a tree has more than 64 leaves.
    fn of(forest: &Forest) -> Option<Layout> {
        let mut layout = Layout {
            cuts: Vec::new(),
            leaves: Vec::new(),
            tree_cuts: vec![0],
            tree_leaves: vec![0],
        };
        for t in 0..forest.trees() {
            let (root, _) = forest.tree_nodes(t);
            let first = layout.leaves.len();
            layout.add(forest, root, first);
            if layout.leaves.len() - first > 64 {
                return None;
            }
            layout.tree_cuts.push(layout.cuts.len());
            layout.tree_leaves.push(layout.leaves.len());
        }
        Some(layout)
    }

    /// Adds the subtree at `at` (`< 0`: the leaf `!at`), whose tree's leaves start at `first`.
    fn add(&mut self, forest: &Forest, at: i32, first: usize) {
        if at < 0 {
            self.leaves.push(forest.leaf_values()[!at as usize]);
            return;
        }
        let node = *forest.node(at as usize);
        let cut = self.cuts.len();
        self.cuts.push(Cut {
            threshold: as_compared(node.threshold),
            column: node.feature as usize,
            nan_left: node.nan_left,
            zero_missing: node.zero_missing,
            zero_left: node.default_left,
            clear: u64::MAX,
        });
        let lo = self.leaves.len() - first;
        self.add(forest, node.left, first);
        let hi = self.leaves.len() - first;
        self.add(forest, node.right, first);
        // Leaves past the 64th have no bit; `of` refuses such a tree.
        self.cuts[cut].clear = leaves_except(lo.min(64), hi.min(64));
    }

    /// Adds the raw score of rows `from..from + out.len()` of `columns` to `out`.
    fn score(&self, columns: &Columns, from: usize, out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: each copy runs only where the processor has just been found to have every
            // feature its `target_feature` names.
            #[allow(unsafe_code)]
            unsafe {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return self.score_avx512(columns, from, out);
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    return self.score_avx2(columns, from, out);
                }
            }
        }
        self.score_here(columns, from, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn score_avx512(&self, columns: &Columns, from: usize, out: &mut [f64]) {
        self.score_here(columns, from, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn score_avx2(&self, columns: &Columns, from: usize, out: &mut [f64]) {
        self.score_here(columns, from, out);
    }

    // Bitwise, not lazy, operators on the comparisons: branch-free, so the loop vectorizes.
    #[allow(clippy::needless_bitwise_bool)]
    #[inline(always)]
    fn score_here(&self, columns: &Columns, from: usize, out: &mut [f64]) {
        let mut masks = [0u64; BLOCK];
        for (b, out) in out.chunks_mut(BLOCK).enumerate() {
            let (start, masks) = (from + b * BLOCK, &mut masks[..out.len()]);
            for t in 0..self.tree_leaves.len() - 1 {
                masks.fill(u64::MAX);
                for cut in &self.cuts[self.tree_cuts[t]..self.tree_cuts[t + 1]] {
                    let values = &columns.column(cut.column)[start..start + masks.len()];
                    for (mask, v) in masks.iter_mut().zip(values) {
                        let zero = cut.zero_missing & (v.abs() <= ZERO);
                        let left = ((*v <= cut.threshold) & !zero)
                            | (v.is_nan() & cut.nan_left)
                            | (zero & cut.zero_left);
                        // Every bit when left: arithmetic, which vectorizes without a lookup.
                        *mask &= cut.clear | 0u64.wrapping_sub(u64::from(left));
                    }
                }
                let leaves = &self.leaves[self.tree_leaves[t]..self.tree_leaves[t + 1]];
                for (score, mask) in out.iter_mut().zip(masks.iter()) {
                    *score += leaves[mask.trailing_zeros() as usize];
                }
            }
        }
    }
}

impl Forest {
    /// Adds the raw scores of the rows of `columns` to `out`, one per row, on every core: the
    /// same sums, tree by tree, as walking each row through the trees.
    pub(crate) fn add_raw_scores_by_column(
        &self,
        columns: &Columns,
        out: &mut [f64],
    ) -> Result<()> {
        self.check_width(columns.width)?;
        if out.len() != columns.rows {
            return Err(Error::Data(format!(
                "{} scores for {} rows",
                out.len(),
                columns.rows
            )));
        }
        let Some(layout) = Layout::of(self) else {
            // Trees this wide are not grown by the recipe: walk each row as it is.
            let mut row = vec![0.0; columns.width];
            for (i, score) in out.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = columns.column(j)[i];
                }
                for t in 0..self.trees() {
                    *score += self.leaf_values()[self.leaf(self.tree_nodes(t).0, &row)];
                }
            }
            return Ok(());
        };
        rows_on_cores(columns.rows, out, 1, PER_THREAD, BLOCK, |first, out| {
            layout.score(columns, first, out);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grow::{Booster, Params};

    /// A forest of `leaves`-leaf trees, with splits that treat zero as missing when asked, and
    /// its training rows (6 columns, with missing values and zeros).
    fn trained(leaves: usize, zero_as_missing: bool) -> (Forest, Vec<f64>) {
        let (x, y) = crate::forest::tests::rows(3_001, 6, 5);
        let params = Params {
            num_leaves: leaves,
            min_data_in_leaf: 3,
            seed: 1,
            ..Params::default()
        };
        let mut booster = Booster::new(&x, &y, 6, params, None).unwrap();
        for _ in 0..12 {
            assert!(booster.step());
        }
        let forest = booster.model().unwrap();
        if zero_as_missing {
            (crate::forest::tests::zero_as_missing(&forest), x)
        } else {
            (forest, x)
        }
    }

    #[test]
    fn column_sums_equal_each_rows_walk() {
        // 31 leaves and 64 (every bit of the mask), zero as missing or not, and trees too wide
        // for masks, which are walked.
        for (leaves, zero_as_missing) in [(31, false), (31, true), (64, false), (100, false)] {
            let (forest, x) = trained(leaves, zero_as_missing);
            let most = (0..forest.trees())
                .map(|t| forest.tree_nodes(t).1 + 1)
                .max();
            assert_eq!(most, Some(leaves), "some tree has every leaf it may");
            let columns = Columns::new(&x, 6);
            // Added twice, to scores that are not zero: the same sums in the same order.
            let (mut walked, mut by_column) = (vec![0.0; 3_001], vec![0.0; 3_001]);
            for _ in 0..2 {
                forest.walking().add_raw_scores(&x, 6, &mut walked).unwrap();
                forest
                    .add_raw_scores_by_column(&columns, &mut by_column)
                    .unwrap();
            }
            assert_eq!(
                walked, by_column,
                "{leaves} leaves, zero as missing {zero_as_missing}"
            );
            let spread = walked.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                - walked.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(spread > 1.0, "{spread}");
        }
    }

    #[test]
    fn rows_and_scores_must_agree() {
        let (forest, x) = trained(31, false);
        let columns = Columns::new(&x, 6);
        assert!(
            forest
                .add_raw_scores_by_column(&columns, &mut [0.0; 5])
                .is_err()
        );
        let narrow = Columns::new(&x[..3_000], 1);
        assert!(
            forest
                .add_raw_scores_by_column(&narrow, &mut vec![0.0; 3_000])
                .is_err()
        );
    }

    #[test]
    fn columns_hold_each_rows_values() {
        // A part tile at the end.
        let x: Vec<f64> = (0..203 * 3).map(f64::from).collect();
        let columns = Columns::new(&x, 3);
        for (i, row) in x.chunks_exact(3).enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert_eq!(
                    columns.column(j)[i].to_bits(),
                    v.to_bits(),
                    "row {i} column {j}"
                );
            }
        }
    }
}
