//! The gradient-boosted two-model: one churn model on control contacts, one on treated contacts
//! with the offer kind as a feature; uplift = P(churn | control) − P(churn | offer).

use std::collections::HashMap;

use retain_model::{ChurnModel, Table, fit, stratified};

use crate::error::{Error, Result};
use crate::inputs::Features;
use crate::library::Kind;
use crate::uplift::{History, HistoryRow, systematic_sample};

/// Below this control churn probability a ratio of two small numbers is noise.
const MIN_BASELINE: f64 = 0.05;
/// Contacts each of the two models fits on at most: a large operator's campaigns reach millions,
/// and a systematic sample of this many estimates the same churn probabilities at a fixed cost.
const MAX_FIT_ROWS: usize = 150_000;

pub(crate) struct TwoModel {
    control: ChurnModel,
    treated: ChurnModel,
    tested: Vec<Kind>,
}

fn table(features: &Features, rows: &[&HistoryRow], with_kind: bool) -> Table {
    let d = features.names.len();
    let mut names = features.names.clone();
    let mut levels: Vec<Option<Vec<String>>> = vec![None; d];
    if with_kind {
        names.push("offer_kind".into());
        levels.push(Some(
            Kind::ALL.iter().map(|k| k.code().to_owned()).collect(),
        ));
    }
    let mut x = Vec::with_capacity(rows.len() * names.len());
    for r in rows {
        x.extend_from_slice(features.row(r.row));
        if with_kind {
            x.push(r.kind.map_or(f64::NAN, |k| k.index() as f64));
        }
    }
    Table {
        features: names,
        subscriber_id: rows.iter().map(|r| features.ids[r.row]).collect(),
        snapshot: vec![0; rows.len()],
        label: rows.iter().map(|r| r.churned).collect(),
        x,
        levels,
    }
}

fn fit_table(t: &Table) -> Result<ChurnModel> {
    let all: Vec<usize> = (0..t.len()).collect();
    let (train, valid) = stratified(&all, &t.label, 0.2, 7);
    let (model, _) = fit(t, &train, &valid).map_err(|e| Error::Model(e.to_string()))?;
    Ok(model)
}

impl TwoModel {
    pub(crate) fn fit(history: &History, keep: impl Fn(&HistoryRow) -> bool) -> Result<TwoModel> {
        let control: Vec<&HistoryRow> = history
            .rows
            .iter()
            .filter(|r| r.kind.is_none() && keep(r))
            .collect();
        let treated: Vec<&HistoryRow> = history
            .rows
            .iter()
            .filter(|r| r.kind.is_some() && keep(r))
            .collect();
        for (what, rows) in [("control", &control), ("treated", &treated)] {
            let churned = rows.iter().filter(|r| r.churned).count();
            if rows.len() < 200 || churned < 20 {
                return Err(Error::Model(format!(
                    "{} {what} contacts with {churned} churners: too few for trees",
                    rows.len()
                )));
            }
        }
        let mut tested: Vec<Kind> = treated.iter().filter_map(|r| r.kind).collect();
        tested.sort();
        tested.dedup();
        let control = systematic_sample(control, MAX_FIT_ROWS);
        let treated = systematic_sample(treated, MAX_FIT_ROWS);
        Ok(TwoModel {
            control: fit_table(&table(&history.features, &control, false))?,
            treated: fit_table(&table(&history.features, &treated, true))?,
            tested,
        })
    }

    /// P(churn | control) and, per tested kind, P(churn | kind), for feature rows `rows`.
    fn predict(&self, features: &Features, rows: &[usize]) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
        let d = features.names.len();
        let mut x = Vec::with_capacity(rows.len() * d);
        for r in rows {
            x.extend_from_slice(features.row(*r));
        }
        let model = |e: retain_model::Error| Error::Model(e.to_string());
        let pc = self.control.probabilities(&x).map_err(model)?;
        let mut pt = Vec::new();
        for kind in &self.tested {
            let mut xk = Vec::with_capacity(rows.len() * (d + 1));
            for row in x.chunks_exact(d.max(1)) {
                xk.extend_from_slice(row);
                xk.push(kind.index() as f64);
            }
            pt.push(self.treated.probabilities(&xk).map_err(model)?);
        }
        Ok((pc, pt))
    }

    /// Predicted reduction of churn probability per (history row, tested kind).
    pub(crate) fn uplift_rows(
        &self,
        history: &History,
        rows: &[&HistoryRow],
    ) -> Result<HashMap<(usize, Kind), f64>> {
        let idx: Vec<usize> = rows.iter().map(|r| r.row).collect();
        let (pc, pt) = self.predict(&history.features, &idx)?;
        let mut out = HashMap::new();
        for (i, r) in idx.iter().enumerate() {
            for (k, kind) in self.tested.iter().enumerate() {
                out.insert((*r, *kind), pc[i] - pt[k][i]);
            }
        }
        Ok(out)
    }

    /// Individual save rates per candidate row and kind (`NaN` for untested kinds).
    pub(crate) fn save_rates(&self, features: &Features, rows: &[usize]) -> Result<Vec<[f32; 10]>> {
        let (pc, pt) = self.predict(features, rows)?;
        Ok((0..rows.len())
            .map(|i| {
                let mut out = [f32::NAN; 10];
                for (k, kind) in self.tested.iter().enumerate() {
                    let s = (pc[i] - pt[k][i]) / pc[i].max(MIN_BASELINE);
                    out[kind.index()] = s.clamp(0.0, 1.0) as f32;
                }
                out
            })
            .collect())
    }
}
