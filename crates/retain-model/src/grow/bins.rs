//! Features cut into at most [`MAX_BIN`] bins at quantiles of their values, and rows coded
//! into them column by column: the trees split on bin codes, never on the values themselves.

use super::ROWS_PER_THREAD;
use crate::forest::as_read;

/// Bins per feature at most, the missing values' bin included: codes are bytes.
pub(crate) const MAX_BIN: usize = 255;
/// Rows a bin holds at least where the values allow it.
const MIN_DATA_IN_BIN: usize = 3;
/// Rows whose values place a feature's bin boundaries: a sample past this many.
const BIN_SAMPLE: usize = 200_000;

/// One feature's bins: value bins separated by `uppers` (a value `v` is in the first bin whose
/// upper bound is at least `v`), then a bin for missing values when the training rows have any.
#[derive(Debug, Clone)]
pub(crate) struct FeatureBins {
    pub(super) uppers: Vec<f64>,
    pub(super) nan: bool,
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
    pub(super) fn bins(&self) -> usize {
        self.uppers.len() + 1 + usize::from(self.nan)
    }

    /// The missing values' bin (the last), when there is one.
    pub(super) fn nan_bin(&self) -> Option<u8> {
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
    pub(super) fn column(&self, j: usize) -> &[u8] {
        &self.codes[j * self.rows..(j + 1) * self.rows]
    }

    /// Feature `j`'s code of row `i`.
    pub(super) fn code(&self, i: usize, j: usize) -> u8 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
