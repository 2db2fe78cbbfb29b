//! Categorical columns as the trees see them: each level coded by its rank in churn rate on
//! the training rows, so that one split can part risky levels from safe ones.

use std::borrow::Cow;

use crate::table::Table;

/// The trees see a categorical column as its levels ranked by their smoothed churn rate on the
/// training rows, so one split can separate risky levels from safe ones whatever their order
/// in the file (the ordered-target encoding; the trees split numbers only).
pub(super) fn target_order(table: &Table, rows: &[usize]) -> Vec<Option<Vec<f64>>> {
    let d = table.features.len();
    let base = rows.iter().filter(|i| table.label[**i]).count() as f64 / rows.len().max(1) as f64;
    (0..d)
        .map(|j| {
            let levels = table.levels.get(j)?.as_ref()?;
            let mut counts = vec![(0.0, 0.0); levels.len()];
            for &i in rows {
                let v = table.x[i * d + j];
                if v.is_finite() && (v as usize) < levels.len() {
                    let c = &mut counts[v as usize];
                    c.0 += f64::from(u8::from(table.label[i]));
                    c.1 += 1.0;
                }
            }
            // Smoothed towards the base rate by 10 pseudo-rows, so rare levels stay near it.
            let rates: Vec<f64> = counts
                .iter()
                .map(|(churn, n)| (churn + 10.0 * base) / (n + 10.0))
                .collect();
            let mut order: Vec<usize> = (0..levels.len()).collect();
            order.sort_by(|a, b| rates[*a].total_cmp(&rates[*b]).then(a.cmp(b)));
            let mut rank = vec![0.0; levels.len()];
            for (r, level) in order.into_iter().enumerate() {
                rank[level] = r as f64;
            }
            Some(rank)
        })
        .collect()
}

/// Rewrites categorical codes into the trees' ranks; without categorical columns, `x` as it is
/// (an operator's matrix is hundreds of megabytes).
pub(super) fn for_trees<'a>(x: &'a [f64], d: usize, order: &[Option<Vec<f64>>]) -> Cow<'a, [f64]> {
    if order.iter().all(Option::is_none) {
        return Cow::Borrowed(x);
    }
    let mut out = x.to_vec();
    recode_for_trees(&mut out, d, order);
    Cow::Owned(out)
}

/// Rewrites the categorical codes of row-major `x` into the trees' ranks, in place.
pub(super) fn recode_for_trees(x: &mut [f64], d: usize, order: &[Option<Vec<f64>>]) {
    for row in x.chunks_exact_mut(d) {
        for (v, o) in row.iter_mut().zip(order) {
            if let Some(rank) = o {
                *v = if v.is_finite() && (*v as usize) < rank.len() {
                    rank[*v as usize]
                } else {
                    f64::NAN
                };
            }
        }
    }
}
