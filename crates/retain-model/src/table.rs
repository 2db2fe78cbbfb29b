//! A labelled table as dense matrices: the common input of training, scoring and evaluation.

use std::borrow::Cow;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type};

use crate::error::{Error, Result};

/// Rows of a training set as dense matrices.
#[derive(Debug, Default)]
pub struct Table {
    pub features: Vec<String>,
    pub subscriber_id: Vec<i64>,
    /// Snapshot as days since the epoch.
    pub snapshot: Vec<i32>,
    pub label: Vec<bool>,
    /// Row-major, `NaN` for missing; a categorical column holds level codes.
    pub x: Vec<f64>,
    /// Per feature: the level names of a categorical column, `None` for a numeric one. Empty
    /// when every column is numeric.
    pub levels: Vec<Option<Vec<String>>>,
}

impl Table {
    /// Reads batches with `subscriber_id`, optional `snapshot` and `label`, and feature columns
    /// (every other column, as `Float64`).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Table> {
        let Some(first) = batches.first() else {
            return Err(Error::Data("the training set is empty".into()));
        };
        let reserved = ["subscriber_id", "snapshot", "label"];
        let features: Vec<String> = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !reserved.contains(&n.as_str()))
            .collect();
        let mut t = Table {
            features,
            ..Table::default()
        };
        for b in batches {
            let ids = b
                .column_by_name("subscriber_id")
                .ok_or_else(|| Error::Data("no subscriber_id column".into()))?;
            let ids = ids.as_primitive::<Int64Type>();
            let snapshot = b
                .column_by_name("snapshot")
                .map(|a| a.as_primitive::<Date32Type>().clone());
            let label = b
                .column_by_name("label")
                .map(|a| a.as_primitive::<Int32Type>().clone());
            let cols: Vec<_> = t
                .features
                .iter()
                .map(|n| {
                    b.column_by_name(n)
                        .map(|c| c.as_primitive::<Float64Type>().clone())
                        .ok_or_else(|| Error::Data(format!("no column {n}")))
                })
                .collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                t.subscriber_id.push(ids.value(r));
                t.snapshot.push(snapshot.as_ref().map_or(0, |s| s.value(r)));
                t.label
                    .push(label.as_ref().is_some_and(|l| l.value(r) == 1));
                for c in &cols {
                    t.x.push(if c.is_null(r) || !c.value(r).is_finite() {
                        f64::NAN
                    } else {
                        c.value(r)
                    });
                }
            }
        }
        Ok(t)
    }

    /// The columns `names`, in that order: the features a model was trained on, out of a wider
    /// table. An error names a column the table lacks.
    pub fn select(self, names: &[String]) -> Result<Table> {
        if names == self.features.as_slice() {
            return Ok(self);
        }
        let at = self.positions(names)?;
        let x = self.columns(names)?;
        Ok(Table {
            features: names.to_vec(),
            levels: if self.levels.is_empty() {
                Vec::new()
            } else {
                at.iter().map(|&j| self.levels[j].clone()).collect()
            },
            x,
            ..self
        })
    }

    /// The row-major values of the columns `names`, in that order.
    pub fn columns(&self, names: &[String]) -> Result<Vec<f64>> {
        if names == self.features.as_slice() {
            return Ok(self.x.clone());
        }
        let at = self.positions(names)?;
        let d = self.features.len();
        Ok(self
            .x
            .chunks_exact(d.max(1))
            .flat_map(|row| at.iter().map(move |&j| row[j]))
            .collect())
    }

    fn positions(&self, names: &[String]) -> Result<Vec<usize>> {
        names
            .iter()
            .map(|n| {
                self.features
                    .iter()
                    .position(|f| f == n)
                    .ok_or_else(|| Error::Data(format!("the data has no feature {n}")))
            })
            .collect()
    }

    /// Whether feature `j` holds level codes.
    #[must_use]
    pub fn is_categorical(&self, j: usize) -> bool {
        self.levels.get(j).is_some_and(Option::is_some)
    }

    /// The rows `keep`, as a table of their own.
    #[must_use]
    pub fn subset(&self, keep: &[usize]) -> Table {
        let d = self.features.len();
        Table {
            features: self.features.clone(),
            subscriber_id: keep.iter().map(|i| self.subscriber_id[*i]).collect(),
            snapshot: keep.iter().map(|i| self.snapshot[*i]).collect(),
            label: keep.iter().map(|i| self.label[*i]).collect(),
            x: keep
                .iter()
                .flat_map(|i| self.x[i * d..(i + 1) * d].iter().copied())
                .collect(),
            levels: self.levels.clone(),
        }
    }

    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.label.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.label.is_empty()
    }

    /// The feature matrix of the rows `keep`: borrowed where they are consecutive rows, as a
    /// large table's fitting and validation rows are laid out (`eval`), copied otherwise.
    pub(crate) fn matrix(&self, keep: &[usize]) -> Cow<'_, [f64]> {
        let d = self.features.len();
        match (keep.first(), keep.last()) {
            (Some(&first), Some(&last)) if keep.windows(2).all(|w| w[1] == w[0] + 1) => {
                Cow::Borrowed(&self.x[first * d..(last + 1) * d])
            }
            _ => Cow::Owned(self.copied(keep)),
        }
    }

    /// The labels of the rows `keep`.
    pub(crate) fn labels(&self, keep: &[usize]) -> Vec<bool> {
        keep.iter().map(|i| self.label[*i]).collect()
    }

    /// The feature matrix of the rows `keep`, copied.
    fn copied(&self, keep: &[usize]) -> Vec<f64> {
        let d = self.features.len();
        let mut x = Vec::with_capacity(keep.len() * d);
        for &i in keep {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_rows_are_borrowed_and_others_copied() {
        let t = Table {
            features: vec!["a".into(), "b".into()],
            label: vec![false, true, true, false],
            x: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Table::default()
        };
        for (keep, borrowed) in [
            (&[1, 2, 3][..], true),
            (&[2][..], true),
            (&[0, 2, 3][..], false),
            (&[2, 1][..], false),
            (&[][..], false),
        ] {
            let m = t.matrix(keep);
            assert_eq!(matches!(m, Cow::Borrowed(_)), borrowed, "{keep:?}");
            assert_eq!(*m, *t.copied(keep), "{keep:?}");
        }
        assert_eq!(*t.matrix(&[0, 2, 3]), [0.0, 1.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(*t.matrix(&[2, 1]), [4.0, 5.0, 2.0, 3.0]);
        assert_eq!(t.labels(&[3, 1, 2]), [false, true, true]);
    }
}
