//! Scoring a forest by leaf masks over byte codes (QuickScorer: Lucchese et al., SIGIR 2015).
//!
//! Each feature value is first replaced by its rank among the thresholds the trees compare it
//! with. LightGBM cuts a feature into at most 255 bins, so a forest has at most 254 distinct
//! thresholds per feature and the rank fits in a byte; every split becomes a comparison of
//! small integers, which vector instructions take for many rows at once. A tree then needs no
//! walk. Trees of up to 32 leaves (LightGBM's default is 31) compare codes widened to 32-bit
//! words, one per row's 32 leaf bits, so a comparison's result masks the leaves as it is;
//! wider trees compare bytes. Each of its leaves
//! is a bit, numbered left to right; each split a row fails (goes right at) clears the bits of
//! the leaves on its left; the row's leaf is the lowest bit left. Blocks of 64 rows pass
//! through every tree with no branch on the data while the splits stream from cache.
//!
//! Why the lowest bit is the leaf: the row's own leaf is never cleared (no split on its path
//! fails toward it, and a split off its path clears only leaves inside its own subtree), and
//! every leaf left of it is cleared by the split where the two paths part, which the row went
//! right at.

// The kernels are `inline(always)` so that they compile into the AVX-512 copy of `score` with
// its instructions, not as calls to a baseline build.
#![allow(clippy::inline_always)]

use crate::forest::{Node, as_compared};

/// Instruction sets the scorer is compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
    Avx2,
    Avx512,
}

/// Rows coded and scored together: one byte comparison covers them all.
const ROWS: usize = 64;
/// The code of a missing value; the rank of a number is at most 254.
const MISSING: u8 = u8::MAX;
/// Thresholds per feature that fit the codes.
const MOST_CUTS: usize = MISSING as usize - 1;

/// A tree's leaves as bits: `u32` for trees of up to 32 leaves (LightGBM's default is 31),
/// `u64` for up to 64.
trait Bits:
    Copy + std::ops::BitAnd<Output = Self> + std::ops::BitOr<Output = Self> + Send + Sync
{
    const ALL: Self;
    /// Every bit when `yes`, none otherwise.
    fn all_if(yes: bool) -> Self;
    /// All leaves except `lo..hi`.
    fn without(lo: usize, hi: usize) -> Self;
    fn lowest(self) -> usize;
}

impl Bits for u32 {
    const ALL: u32 = u32::MAX;
    #[inline(always)]
    fn all_if(yes: bool) -> u32 {
        0u32.wrapping_sub(u32::from(yes))
    }
    fn without(lo: usize, hi: usize) -> u32 {
        u64::without(lo, hi) as u32
    }
    #[inline(always)]
    fn lowest(self) -> usize {
        self.trailing_zeros() as usize
    }
}

impl Bits for u64 {
    const ALL: u64 = u64::MAX;
    #[inline(always)]
    fn all_if(yes: bool) -> u64 {
        0u64.wrapping_sub(u64::from(yes))
    }
    fn without(lo: usize, hi: usize) -> u64 {
        leaves_except(lo, hi)
    }
    #[inline(always)]
    fn lowest(self) -> usize {
        self.trailing_zeros() as usize
    }
}

/// A split as the masks see it: a row goes left when `code + shift <= limit` (wrapping, so a
/// shift of one sends the missing code to the left), else `clear` is and-ed into its leaves.
#[derive(Debug, Clone, Copy)]
struct Split<M> {
    clear: M,
    /// Which of the coded columns the split reads.
    column: u16,
    shift: u8,
    limit: u8,
}

#[derive(Debug, Clone)]
enum Splits {
    Narrow(Vec<Split<u32>>),
    Wide(Vec<Split<u64>>),
}

/// The trees of a forest laid out for scoring by leaf masks.
#[derive(Debug, Clone)]
pub(crate) struct Masks {
    /// The row columns the trees read, in code order.
    columns: Vec<usize>,
    /// Per coded column, its distinct thresholds ascending, padded with infinity, and how
    /// many halvings its search takes (the first `2^steps - 1` entries hold every threshold).
    /// A byte indexes the table, so the search needs no bounds check.
    cuts: Vec<[f64; 256]>,
    cut_steps: Vec<u32>,
    splits: Splits,
    /// Per tree, where its splits and its leaves start; one more entry ends the last tree.
    tree_splits: Vec<usize>,
    tree_leaves: Vec<usize>,
    /// Leaf values, each tree's left to right.
    leaves: Vec<f64>,
    /// The widest instructions to use where the processor has them (narrower only to measure).
    pub(crate) widest: Isa,
}

impl Masks {
    /// The masks of a forest given as LightGBM's nodes, leaves and tree roots, or `None` when
    /// a tree has more than 64 leaves, a feature has more than 254 distinct thresholds, or a
    /// split treats zero as missing (LightGBM's missing type `Zero`, which a rank cannot tell).
    pub(crate) fn build(nodes: &[Node], leaf_values: &[f64], roots: &[i32]) -> Option<Masks> {
        if nodes.iter().any(|n| n.zero_missing) {
            return None;
        }
        let width = nodes
            .iter()
            .map(|n| n.feature as usize + 1)
            .max()
            .unwrap_or(0);
        let mut thresholds: Vec<Vec<f64>> = vec![Vec::new(); width];
        for node in nodes {
            thresholds[node.feature as usize].push(as_compared(node.threshold));
        }
        let mut columns = Vec::new();
        let mut code_of = vec![u16::MAX; width];
        let (mut cuts, mut cut_steps) = (Vec::new(), Vec::new());
        for (feature, t) in thresholds.iter_mut().enumerate() {
            if t.is_empty() {
                continue;
            }
            t.sort_by(f64::total_cmp);
            // `==`, not bit equality: -0 and 0 are one threshold to `<=`.
            #[allow(clippy::float_cmp)]
            t.dedup_by(|a, b| a == b);
            if t.len() > MOST_CUTS {
                return None;
            }
            code_of[feature] = u16::try_from(columns.len()).ok()?;
            columns.push(feature);
            cut_steps.push(usize::BITS - t.len().leading_zeros());
            let mut table = [f64::INFINITY; 256];
            table[..t.len()].copy_from_slice(t);
            cuts.push(table);
        }
        let most = roots
            .iter()
            .map(|&r| leaves_under(nodes, r))
            .max()
            .unwrap_or(1);
        if most > 64 {
            return None;
        }
        let wide = most > 32;
        let mut masks = Masks {
            columns,
            cuts,
            cut_steps,
            splits: if wide {
                Splits::Wide(Vec::new())
            } else {
                Splits::Narrow(Vec::new())
            },
            tree_splits: vec![0],
            tree_leaves: vec![0],
            leaves: Vec::new(),
            widest: Isa::Avx512,
        };
        for &root in roots {
            let mut tree = Tree {
                nodes,
                leaf_values,
                thresholds: &thresholds,
                code_of: &code_of,
                splits: Vec::new(),
                leaves: Vec::new(),
            };
            tree.visit(root);
            match &mut masks.splits {
                Splits::Narrow(s) => s.extend(tree.splits.iter().map(|s| narrow(*s))),
                Splits::Wide(s) => s.extend(&tree.splits),
            }
            masks.leaves.extend(&tree.leaves);
            masks
                .tree_splits
                .push(masks.tree_splits.last()? + tree.splits.len());
            masks.tree_leaves.push(masks.leaves.len());
        }
        Some(masks)
    }

    /// Adds the raw score of each row of row-major `x` (`d` columns) to `out`.
    pub(crate) fn score(&self, x: &[f64], d: usize, out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        {
            let avx512 = self.widest >= Isa::Avx512
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl");
            let avx2 = self.widest >= Isa::Avx2 && std::arch::is_x86_feature_detected!("avx2");
            // SAFETY: each copy runs only where the processor has just been found to have every
            // feature its `target_feature` names.
            #[allow(unsafe_code)]
            unsafe {
                if avx512 {
                    return self.score_avx512(x, d, out);
                }
                if avx2 {
                    return self.score_avx2(x, d, out);
                }
            }
        }
        self.score_here(x, d, out);
    }

    /// `score` compiled for AVX-512: each comparison and update of 16 rows' leaves is one
    /// instruction, where AVX2 takes two and SSE2 four.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn score_avx512(&self, x: &[f64], d: usize, out: &mut [f64]) {
        self.score_here(x, d, out);
    }

    /// `score` compiled for AVX2, which nearly every x86 processor since 2015 has.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn score_avx2(&self, x: &[f64], d: usize, out: &mut [f64]) {
        self.score_here(x, d, out);
    }

    /// Scores trees of up to 32 leaves on codes widened to 32-bit words, twice (as they are,
    /// and plus one so that the missing code wraps to zero, for splits that send it left): a
    /// comparison of words yields the masks of the rows' leaves as it is. Comparing bytes,
    /// spreading each result over the leaves' words took shuffles, which AVX2 and SSE2 run
    /// one at a time (AVX2 0.5 against 0.96 million rows a second per core, `cargo bench`).
    /// Wider trees compare bytes.
    #[inline(always)]
    fn score_here(&self, x: &[f64], d: usize, out: &mut [f64]) {
        let mut codes = vec![0u8; self.columns.len() * ROWS];
        let mut block = [0.0; ROWS];
        let mut words = match &self.splits {
            Splits::Narrow(_) => vec![[0i32; ROWS]; 2 * self.columns.len()],
            Splits::Wide(_) => Vec::new(),
        };
        for (rows, out) in x.chunks(ROWS * d).zip(out.chunks_mut(ROWS)) {
            self.code(rows, d, &mut codes);
            block[..out.len()].copy_from_slice(out);
            match &self.splits {
                Splits::Narrow(splits) => {
                    widen(&codes, &mut words);
                    self.walk_words(splits, &words, &mut block);
                }
                Splits::Wide(splits) => self.walk_block(splits, &codes, &mut block),
            }
            out.copy_from_slice(&block[..out.len()]);
        }
    }

    /// [`Masks::walk_block`] on codes widened to words: `words[2 * column + shift]`.
    #[inline(always)]
    fn walk_words(&self, splits: &[Split<u32>], words: &[[i32; ROWS]], out: &mut [f64; ROWS]) {
        self.walk(splits, out, |split, alive| {
            let codes = &words[2 * usize::from(split.column) + usize::from(split.shift)];
            let (clear, limit) = (split.clear, i32::from(split.limit));
            for (alive, code) in alive.iter_mut().zip(codes) {
                *alive &= clear | u32::all_if(*code <= limit);
            }
        });
    }

    /// The codes of up to `ROWS` rows, column after column (rows past the end get codes no
    /// score reads).
    #[inline(always)]
    fn code(&self, rows: &[f64], d: usize, codes: &mut [u8]) {
        let mut values = [0.0; ROWS];
        let mut at = [0u32; ROWS];
        for (c, &column) in self.columns.iter().enumerate() {
            for (v, row) in values.iter_mut().zip(rows.chunks_exact(d)) {
                *v = row[column];
            }
            let cuts = &self.cuts[c];
            // Rank among the cuts (how many are below the value) by a search of `steps`
            // halvings, all rows in step: no branch, and the probes vectorize as gathers.
            at.fill(0);
            for step in (0..self.cut_steps[c]).rev() {
                let half = 1u32 << step;
                for (at, v) in at.iter_mut().zip(&values) {
                    // At most 254: a probe stays inside the thresholds and their padding.
                    let probe = cuts[usize::from((*at + half - 1) as u8)];
                    *at += half & 0u32.wrapping_sub(u32::from(probe < *v));
                }
            }
            let codes = &mut codes[c * ROWS..(c + 1) * ROWS];
            for ((code, at), v) in codes.iter_mut().zip(&at).zip(&values) {
                *code = if v.is_nan() { MISSING } else { *at as u8 };
            }
        }
    }

    #[inline(always)]
    fn walk_block<M: Bits>(&self, splits: &[Split<M>], codes: &[u8], out: &mut [f64; ROWS]) {
        self.walk(splits, out, |split, alive| {
            let column = split.column as usize * ROWS;
            let codes: &[u8; ROWS] = codes[column..column + ROWS]
                .try_into()
                .expect("a column of codes");
            for (alive, code) in alive.iter_mut().zip(codes) {
                let left = code.wrapping_add(split.shift) <= split.limit;
                *alive = *alive & (split.clear | M::all_if(left));
            }
        });
    }

    /// Adds each tree's leaf to the scores of a block of rows, its leaves narrowed down by
    /// `fail` at each of its splits.
    #[inline(always)]
    fn walk<M: Bits>(
        &self,
        splits: &[Split<M>],
        out: &mut [f64; ROWS],
        fail: impl Fn(Split<M>, &mut [M; ROWS]),
    ) {
        for tree in 0..self.tree_leaves.len() - 1 {
            let mut alive = [M::ALL; ROWS];
            for split in &splits[self.tree_splits[tree]..self.tree_splits[tree + 1]] {
                // Passed by value: read through the reference inside the loop over rows, the
                // compiler fetched `clear` for each row with a gather.
                fail(*split, &mut alive);
            }
            let leaves = &self.leaves[self.tree_leaves[tree]..self.tree_leaves[tree + 1]];
            for (score, alive) in out.iter_mut().zip(alive) {
                *score += leaves[alive.lowest()];
            }
        }
    }
}

/// Each column of byte codes as two columns of words: the codes, and the codes plus one
/// (wrapping, so the missing code becomes zero).
#[inline(always)]
fn widen(codes: &[u8], words: &mut [[i32; ROWS]]) {
    for (codes, words) in codes.chunks_exact(ROWS).zip(words.chunks_exact_mut(2)) {
        let [plain, wrapped] = words else {
            unreachable!("words come in pairs")
        };
        for ((plain, wrapped), code) in plain.iter_mut().zip(wrapped).zip(codes) {
            *plain = i32::from(*code);
            *wrapped = i32::from(code.wrapping_add(1));
        }
    }
}

/// Up to 64 leaves as bits, all but leaves `lo..hi`: what a split clears when a row goes right.
pub(crate) fn leaves_except(lo: usize, hi: usize) -> u64 {
    let below = |n: usize| if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    !(below(hi) & !below(lo))
}

fn narrow(split: Split<u64>) -> Split<u32> {
    Split {
        clear: split.clear as u32,
        column: split.column,
        shift: split.shift,
        limit: split.limit,
    }
}

/// Leaves under node `at` (`< 0`: a leaf).
fn leaves_under(nodes: &[Node], at: i32) -> usize {
    if at < 0 {
        return 1;
    }
    let node = &nodes[at as usize];
    leaves_under(nodes, node.left) + leaves_under(nodes, node.right)
}

/// One tree being laid out: its splits in any order, its leaves left to right.
struct Tree<'a> {
    nodes: &'a [Node],
    leaf_values: &'a [f64],
    /// Per feature, its distinct thresholds ascending.
    thresholds: &'a [Vec<f64>],
    code_of: &'a [u16],
    splits: Vec<Split<u64>>,
    leaves: Vec<f64>,
}

impl Tree<'_> {
    /// Lays out the subtree at `at` (`< 0`: a leaf).
    fn visit(&mut self, at: i32) {
        if at < 0 {
            self.leaves.push(self.leaf_values[!at as usize]);
            return;
        }
        let node = self.nodes[at as usize];
        let first = self.leaves.len();
        self.visit(node.left);
        let middle = self.leaves.len();
        self.visit(node.right);
        let feature = node.feature as usize;
        // `v <= threshold` exactly when fewer than `rank + 1` thresholds are below `v`.
        let threshold = as_compared(node.threshold);
        let rank = self.thresholds[feature].partition_point(|t| *t < threshold);
        let shift = u8::from(node.nan_left);
        self.splits.push(Split {
            clear: u64::without(first, middle),
            column: self.code_of[feature],
            shift,
            limit: rank as u8 + shift,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_masks_clear_exactly_the_range() {
        assert_eq!(u32::without(0, 1), !1);
        assert_eq!(u32::without(2, 5), !0b11100);
        assert_eq!(u32::without(0, 32), 0);
        assert_eq!(u64::without(0, 64), 0);
        assert_eq!(u64::without(63, 64), !(1 << 63));
    }
}
