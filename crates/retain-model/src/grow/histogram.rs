//! A leaf's histogram: per feature and bin, the sums of its rows' gradients, Hessians and
//! count, which its best split is read from. Most of a round's time goes here.

use super::Booster;
use super::bins::{Binned, FeatureBins};

/// Rows of a leaf worth a second thread for its histogram: summing a few thousand rows into
/// forty features' bins takes longer than starting a thread, and most leaves are small.
const HISTOGRAM_ROWS_PER_THREAD: usize = 4_096;

/// Sums of a set of rows: gradients, Hessians and how many.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sums {
    pub(super) g: f64,
    pub(super) h: f64,
    pub(super) n: f64,
}

impl Sums {
    #[inline]
    pub(super) fn add(&mut self, g: f32, h: f32) {
        self.g += f64::from(g);
        self.h += f64::from(h);
        self.n += 1.0;
    }

    pub(super) fn plus(self, o: Sums) -> Sums {
        Sums {
            g: self.g + o.g,
            h: self.h + o.h,
            n: self.n + o.n,
        }
    }

    pub(super) fn minus(self, o: Sums) -> Sums {
        Sums {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// Where a feature's bins start in a histogram.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) offsets: Vec<usize>,
    total: usize,
}

impl Layout {
    pub(super) fn new(bins: &[FeatureBins]) -> Layout {
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
pub(super) struct Used {
    pub(super) column: usize,
    pub(super) offset: usize,
    pub(super) bins: usize,
}

impl Used {
    pub(super) fn range(&self) -> std::ops::Range<usize> {
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

impl Booster {
    /// The histogram of a leaf's rows `rows` (ascending), features `used`.
    pub(super) fn leaf_histogram(&mut self, hist: &mut [Sums], rows: &[u32], used: &[Used]) {
        let threads = self.params.threads;
        // Every row, in order, is read without the list of them.
        let rows = (rows.len() != self.labels.len()).then_some(rows);
        histogram(hist, &self.data, &self.grad, rows, used, threads);
    }

    pub(super) fn new_hist(&mut self) -> Vec<Sums> {
        self.spare
            .pop()
            .unwrap_or_else(|| vec![Sums::default(); self.layout.total])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grow::round_draws;
    use crate::grow::tests::{params, rows};

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
}
