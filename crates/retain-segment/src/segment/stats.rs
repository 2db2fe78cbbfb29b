//! Exact order statistics from counts: a column's distinct values and how often each occurs,
//! aggregated where the rows are, give the same quintiles, ranks and percentiles as the sorted
//! column would, without the column ever reaching this process.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;

use crate::error::{Error, Result};

/// A column's distinct values in ascending order with their counts. Values equal as numbers
/// (0.0 and -0.0) are one value, as ties are.
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    values: Vec<f64>,
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    /// From `(value, count)` pairs in any order, repeated values summed.
    #[allow(clippy::float_cmp)] // a tie is exactly equal values
    pub(crate) fn from_pairs(mut pairs: Vec<(f64, u64)>) -> Histogram {
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut h = Histogram::default();
        for (v, n) in pairs {
            h.total += n;
            match h.values.last() {
                Some(last) if *last == v => *h.counts.last_mut().expect("paired") += n,
                _ => {
                    h.values.push(v);
                    h.counts.push(n);
                }
            }
        }
        h
    }

    /// The histogram of `column` over the rows of `from` meeting `filter`, aggregated by the
    /// engine.
    pub(crate) async fn query(
        ctx: &SessionContext,
        column: &str,
        from: &str,
        filter: &str,
    ) -> Result<Histogram> {
        let sql = format!(
            "SELECT v, COUNT(*) AS n FROM (SELECT CAST({column} AS DOUBLE) AS v FROM {from} \
             WHERE {filter}) GROUP BY v"
        );
        let batches = retain_features::frame::query(ctx, &sql, "counting values").await?;
        Ok(Histogram::from_pairs(pairs(&batches)?))
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// `(value, values below it, its ties)` in ascending order.
    fn runs(&self) -> impl Iterator<Item = (f64, u64, u64)> + '_ {
        self.values
            .iter()
            .zip(&self.counts)
            .scan(0u64, |below, (&v, &n)| {
                let run = (v, *below, n);
                *below += n;
                Some(run)
            })
    }

    /// Cut points of the quintile scores 1–5 by mid-rank (values below plus half the ties, so
    /// ties share a score and a tie at the top scores high): `cuts[k]` is the least value
    /// scoring `k + 2` or more, infinite when none does. See [`score`].
    pub(crate) fn quintile_cuts(&self) -> [f64; 4] {
        let n = self.total.max(1) as f64;
        let mut cuts = [f64::INFINITY; 4];
        for (v, below, ties) in self.runs() {
            let score = 1
                + (((below as f64 + ties as f64 / 2.0) / n) * 5.0)
                    .floor()
                    .min(4.0) as usize;
            for cut in cuts.iter_mut().take(score - 1) {
                if cut.is_infinite() {
                    *cut = v;
                }
            }
        }
        cuts
    }

    /// The least value whose share of values strictly below it is at least `share`, infinite
    /// when none is.
    pub(crate) fn rank_cut(&self, share: f64) -> f64 {
        let n = self.total.max(1) as f64;
        self.runs()
            .find(|(_, below, _)| *below as f64 / n >= share)
            .map_or(f64::INFINITY, |(v, ..)| v)
    }

    /// The value at position round((n − 1) q) of the sorted column (0 for an empty one).
    pub(crate) fn percentile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let at = ((self.total - 1) as f64 * q).round() as u64;
        self.runs()
            .find(|(_, below, ties)| at < below + ties)
            .map_or(0.0, |(v, ..)| v)
    }
}

/// The score 1–5 of `v` under [`Histogram::quintile_cuts`].
pub(crate) fn score(v: f64, cuts: &[f64; 4]) -> u8 {
    1 + cuts.iter().filter(|c| v >= **c).count() as u8
}

/// `(v, n)` rows of an aggregation, the value as `Float64` and the count as `Int64`.
pub(crate) fn pairs(batches: &[RecordBatch]) -> Result<Vec<(f64, u64)>> {
    let mut out = Vec::new();
    for b in batches {
        let v = datafusion::arrow::compute::cast(b.column(0), &DataType::Float64)
            .map_err(|e| Error::Internal(format!("reading counted values: {e}")))?;
        let v = v.as_primitive::<Float64Type>();
        let n = b
            .column(1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::Internal("a count that is not Int64".into()))?;
        for row in 0..b.num_rows() {
            if !v.is_null(row) {
                out.push((v.value(row), u64::try_from(n.value(row)).unwrap_or(0)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Values with many ties, a few distinct ones and both zeros.
    fn values(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        (0..n)
            .map(|i| match i % 7 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::from(rng.random_range(0..5u8)),
                _ => rng.random_range(-50.0..200.0),
            })
            .collect()
    }

    fn histogram(values: &[f64]) -> Histogram {
        Histogram::from_pairs(values.iter().map(|&v| (v, 1)).collect())
    }

    /// The counts give what sorting the column gives, value by value.
    #[test]
    #[allow(clippy::float_cmp)] // exact: the values themselves, not computed ones
    fn counts_give_the_sorted_columns_scores_ranks_and_percentiles() {
        for (seed, n) in [(1, 0), (2, 1), (3, 2), (4, 37), (5, 1000), (6, 5)] {
            let values = values(seed, n);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let total = n.max(1) as f64;
            let below = |v: f64| sorted.partition_point(|x| *x < v) as f64;
            let ties = |v: f64| sorted.partition_point(|x| *x <= v) as f64 - below(v);
            let h = histogram(&values);
            assert_eq!(h.total(), n as u64);
            let cuts = h.quintile_cuts();
            for &v in &values {
                let expected = 1
                    + (((below(v) + ties(v) / 2.0) / total) * 5.0)
                        .floor()
                        .min(4.0) as u8;
                assert_eq!(score(v, &cuts), expected, "n = {n}, v = {v}");
                for share in [0.5, 0.8] {
                    assert_eq!(
                        v >= h.rank_cut(share),
                        below(v) / total >= share,
                        "n = {n}, v = {v}"
                    );
                }
            }
            for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
                let expected = if n == 0 {
                    0.0
                } else {
                    sorted[((n - 1) as f64 * q).round() as usize]
                };
                assert_eq!(h.percentile(q), expected, "n = {n}, q = {q}");
            }
        }
        // Every score is used, and a tie spanning the top quintile scores 4.
        let five = histogram(&[1.0, 2.0, 3.0, 4.0, 5.0]).quintile_cuts();
        assert_eq!(five, [2.0, 3.0, 4.0, 5.0]);
        let tied = histogram(&[1.0, 9.0, 9.0, 9.0, 9.0]).quintile_cuts();
        assert_eq!([1.0, 9.0].map(|v| score(v, &tied)), [1, 4], "{tied:?}");
    }
}
