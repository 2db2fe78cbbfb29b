//! Uplift from past campaigns with control groups: how much of the churn an offer kind prevents,
//! learned by reason × offer cells (shrunk towards the offer kind, then the library's prior where
//! history is thin) and, with the `model` feature, by a gradient-boosted two-model; the one that
//! ranks held-out campaigns best (Qini) is used.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use datafusion::execution::context::SessionContext;
use retain_features::frame::{floats, query, texts};
use retain_features::{FeatureSet, LabelConfig, MAX_CAMPAIGN_CONTACTS, campaign_set};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::inputs::Features;
use crate::library::{Channel, Kind};
use crate::reason::{REASONS, Reasoner};

/// Months after a contact in which leaving counts against it.
pub const HORIZON_MONTHS: u32 = 4;
/// Pseudo-rows that pull a thin cell towards its parent.
const SHRINK: f64 = 30.0;

/// One past campaign contact (or control) with its outcome.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub period: NaiveDate,
    pub kind: Option<Kind>,
    pub channel: Option<Channel>,
    pub reached: bool,
    pub accepted: bool,
    pub churned: bool,
    pub reason: usize,
    /// Row in [`History::features`].
    pub row: usize,
}

/// Past campaigns whose outcome window has closed.
#[derive(Debug, Default)]
pub struct History {
    pub rows: Vec<HistoryRow>,
    pub features: Features,
    pub periods: Vec<NaiveDate>,
}

/// Reads every campaign whose `HORIZON_MONTHS` outcome window lies within the data.
pub async fn load_history(
    ctx: &SessionContext,
    workspace: &retain_data::Workspace,
) -> Result<History> {
    if !ctx.table_exist("campaign_history").unwrap_or(false) {
        return Ok(History::default());
    }
    let batches = query(
        ctx,
        "SELECT DISTINCT CAST(c.period AS VARCHAR) AS period FROM campaign_history c
         WHERE c.period <= (SELECT MAX(period) FROM usage_monthly)",
        "campaign periods",
    )
    .await?;
    let last = query(
        ctx,
        "SELECT CAST(MAX(period) AS VARCHAR) AS p FROM usage_monthly",
        "the data window",
    )
    .await?;
    let Some(last) = texts(&last, "p")?
        .first()
        .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
    else {
        return Ok(History::default());
    };
    let mut periods: Vec<NaiveDate> = texts(&batches, "period")?
        .iter()
        .filter_map(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .filter(|p| *p + Months::new(HORIZON_MONTHS) <= last + Months::new(1))
        .collect();
    periods.sort();
    if periods.is_empty() {
        return Ok(History::default());
    }
    let set = FeatureSet::default_set();
    let batches = campaign_set(
        workspace,
        &set,
        &periods,
        HORIZON_MONTHS,
        &LabelConfig::default(),
        MAX_CAMPAIGN_CONTACTS,
    )
    .await?;
    let features = Features::from_batches(&batches, &set.names)?;
    let reasons = Reasoner::for_workspace(workspace, &features.names)?
        .reasons((0..features.ids.len()).map(|i| features.row(i)));
    let snapshot = texts(&batches, "snapshot")?;
    let arm = texts(&batches, "arm")?;
    let kind = texts(&batches, "offer_kind")?;
    let channel = texts(&batches, "channel")?;
    let reached = floats(&batches, "reached")?;
    let accepted = floats(&batches, "accepted")?;
    let label = floats(&batches, "label")?;
    let rows = (0..features.ids.len())
        .map(|i| HistoryRow {
            period: NaiveDate::parse_from_str(&snapshot[i], "%Y-%m-%d").unwrap_or_default(),
            kind: if arm[i] == "treatment" {
                Kind::from_code(&kind[i])
            } else {
                None
            },
            channel: Channel::from_code(&channel[i]),
            reached: reached[i] > 0.5,
            accepted: accepted[i] > 0.5,
            churned: label[i] > 0.5,
            reason: reasons[i],
            row: i,
        })
        .filter(|r| arm[r.row] == "control" || r.kind.is_some())
        .collect();
    Ok(History {
        rows,
        features,
        periods,
    })
}

/// Every `k`-th row, so that at most `max` remain (all of them when there are fewer). History
/// rows are in period and subscriber order, so each period keeps its share.
pub(crate) fn systematic_sample<T>(rows: Vec<T>, max: usize) -> Vec<T> {
    if rows.len() <= max {
        return rows;
    }
    let step = rows.len().div_ceil(max);
    rows.into_iter().step_by(step).collect()
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Count {
    n: f64,
    k: f64,
}

impl Count {
    fn add(&mut self, hit: bool) {
        self.n += 1.0;
        self.k += f64::from(u8::from(hit));
    }

    fn rate_towards(self, prior: f64) -> f64 {
        (self.k + SHRINK * prior) / (self.n + SHRINK)
    }
}

/// Churn of control and treated subscribers by reason × offer kind.
#[derive(Debug, Clone, Default)]
pub struct Cells {
    control: Vec<Count>,
    control_all: Count,
    treated: Vec<Vec<Count>>,
    treated_kind: Vec<Count>,
    reach: BTreeMap<Channel, Count>,
    accept: Vec<Count>,
}

impl Cells {
    #[must_use]
    pub fn fit(history: &History, keep: impl Fn(&HistoryRow) -> bool) -> Cells {
        let mut c = Cells {
            control: vec![Count::default(); REASONS.len()],
            treated: vec![vec![Count::default(); Kind::ALL.len()]; REASONS.len()],
            treated_kind: vec![Count::default(); Kind::ALL.len()],
            accept: vec![Count::default(); Kind::ALL.len()],
            ..Cells::default()
        };
        for r in history.rows.iter().filter(|r| keep(r)) {
            match r.kind {
                None => {
                    c.control[r.reason].add(r.churned);
                    c.control_all.add(r.churned);
                }
                Some(k) => {
                    c.treated[r.reason][k.index()].add(r.churned);
                    c.treated_kind[k.index()].add(r.churned);
                    c.accept[k.index()].add(r.accepted);
                    if let Some(ch) = r.channel {
                        c.reach.entry(ch).or_default().add(r.reached);
                    }
                }
            }
        }
        c
    }

    /// Whether any campaign tried the kind.
    #[must_use]
    pub fn tested(&self, kind: Kind) -> bool {
        self.treated_kind[kind.index()].n > 0.0 && self.control_all.n > 0.0
    }

    fn control_rate(&self, reason: usize) -> f64 {
        let all = self.control_all.k / self.control_all.n.max(1.0);
        self.control[reason].rate_towards(all)
    }

    /// The share of would-be churners with `reason` that `kind` keeps, or `None` untested.
    #[must_use]
    pub fn save_rate(&self, reason: usize, kind: Kind) -> Option<f64> {
        if !self.tested(kind) {
            return None;
        }
        let all = self.control_all.k / self.control_all.n.max(1.0);
        let kind_rate = self.treated_kind[kind.index()].k / self.treated_kind[kind.index()].n;
        let kind_save = (1.0 - kind_rate / all.max(1e-9)).clamp(0.0, 1.0);
        let control = self.control_rate(reason);
        let treated = self.treated[reason][kind.index()].rate_towards(control * (1.0 - kind_save));
        Some((1.0 - treated / control.max(1e-9)).clamp(0.0, 1.0))
    }

    /// Churn among controls with the reason: what the offer works on.
    #[must_use]
    pub fn baseline(&self, reason: usize) -> f64 {
        self.control_rate(reason)
    }

    /// Share of contacts through `channel` that reached the subscriber.
    #[must_use]
    pub fn reach(&self, channel: Channel) -> Option<f64> {
        self.reach
            .get(&channel)
            .filter(|c| c.n >= 20.0)
            .map(|c| c.k / c.n)
    }

    /// Mean reach over all treated contacts.
    #[must_use]
    pub fn mean_reach(&self) -> Option<f64> {
        let (n, k) = self
            .reach
            .values()
            .fold((0.0, 0.0), |(n, k), c| (n + c.n, k + c.k));
        (n >= 20.0).then(|| k / n)
    }

    /// Share of treated contacts that accepted the kind (the cost is paid only then).
    #[must_use]
    pub fn accept_rate(&self, kind: Kind) -> Option<f64> {
        let c = self.accept[kind.index()];
        (c.n >= 20.0).then(|| c.k / c.n)
    }

    /// Treated contacts per kind.
    #[must_use]
    pub fn treated_count(&self, kind: Kind) -> u64 {
        self.treated_kind[kind.index()].n as u64
    }

    #[must_use]
    pub fn control_count(&self) -> u64 {
        self.control_all.n as u64
    }
}

/// Qini and AUUC of one ranking on held-out rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Qini {
    pub kind: String,
    pub treated: usize,
    pub control: usize,
    /// Mean gap between the Qini curve and the random line, per treated subscriber: > 0 means
    /// the ranking finds the persuadable ones better than chance.
    pub qini: f64,
    /// Mean of the Qini curve (area under the uplift curve), per treated subscriber.
    pub auuc: f64,
    /// Extra stays per treated subscriber when everyone is treated.
    pub overall_uplift: f64,
}

/// Qini of `score` (higher = more uplift) over treated (`Some(true)`) and control rows, the
/// outcome being staying.
#[must_use]
pub fn qini(kind: &str, rows: &[(f64, bool, bool)]) -> Qini {
    // (score, treated, stayed)
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|a, b| rows[*b].0.total_cmp(&rows[*a].0).then(a.cmp(b)));
    let n_t = rows.iter().filter(|r| r.1).count();
    let n_c = rows.len() - n_t;
    let mut curve = Vec::with_capacity(rows.len());
    let (mut t, mut c, mut yt, mut yc) = (0.0, 0.0, 0.0, 0.0);
    for i in order {
        let (_, treated, stayed) = rows[i];
        if treated {
            t += 1.0;
            yt += f64::from(u8::from(stayed));
        } else {
            c += 1.0;
            yc += f64::from(u8::from(stayed));
        }
        let q = if c > 0.0 { yt - yc * t / c } else { yt };
        curve.push(q / (n_t.max(1) as f64));
    }
    let n = curve.len().max(1) as f64;
    let end = curve.last().copied().unwrap_or(0.0);
    let auuc = curve.iter().sum::<f64>() / n;
    let random: f64 = (1..=curve.len()).map(|i| end * i as f64 / n).sum::<f64>() / n;
    Qini {
        kind: kind.to_owned(),
        treated: n_t,
        control: n_c,
        qini: crate::round6(auuc - random),
        auuc: crate::round6(auuc),
        overall_uplift: crate::round6(end),
    }
}

/// Per kind and weighted over kinds: the Qini of `predict(row, kind)` (predicted reduction of
/// churn probability) on the rows `keep` selects.
pub fn evaluate(
    history: &History,
    keep: impl Fn(&HistoryRow) -> bool,
    predict: impl Fn(&HistoryRow, Kind) -> f64,
) -> (Vec<Qini>, f64) {
    let held: Vec<&HistoryRow> = history.rows.iter().filter(|r| keep(r)).collect();
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let rows: Vec<(f64, bool, bool)> = held
            .iter()
            .filter(|r| r.kind.is_none() || r.kind == Some(kind))
            .map(|r| (predict(r, kind), r.kind.is_some(), !r.churned))
            .collect();
        if rows.iter().any(|r| r.1) && rows.iter().any(|r| !r.1) {
            out.push(qini(kind.code(), &rows));
        }
    }
    let total: usize = out.iter().map(|q| q.treated).sum();
    let weighted = out.iter().map(|q| q.qini * q.treated as f64).sum::<f64>() / total.max(1) as f64;
    (out, crate::round6(weighted))
}

/// Per row, the predicted uplift of every offer kind (in [`Kind::ALL`]'s order).
pub(crate) type KindPredictions = [f64; Kind::ALL.len()];

/// The weighted Qini, as [`evaluate`] computes it, of `predictions` (one per row of `rows`) over
/// the multiset of rows `pick` (indexes into `rows`, repeats allowed).
pub(crate) fn weighted_qini(
    rows: &[&HistoryRow],
    predictions: &[KindPredictions],
    pick: &[usize],
) -> f64 {
    let (mut sum, mut total) = (0.0, 0usize);
    for kind in Kind::ALL {
        let k = kind.index();
        let tuples: Vec<(f64, bool, bool)> = pick
            .iter()
            .filter(|&&i| rows[i].kind.is_none() || rows[i].kind == Some(kind))
            .map(|&i| (predictions[i][k], rows[i].kind.is_some(), !rows[i].churned))
            .collect();
        if tuples.iter().any(|r| r.1) && tuples.iter().any(|r| !r.1) {
            let q = qini(kind.code(), &tuples);
            sum += q.qini * q.treated as f64;
            total += q.treated;
        }
    }
    sum / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weighted_qini_of_every_row_once_is_the_evaluations() {
        let mut history = History::default();
        let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(3);
        for row in 0..600 {
            let kind = match row % 3 {
                0 => None,
                1 => Some(Kind::FeeDiscount),
                _ => Some(Kind::DataBonus),
            };
            history.rows.push(HistoryRow {
                period: NaiveDate::default(),
                kind,
                channel: None,
                reached: kind.is_some(),
                accepted: false,
                churned: rand::Rng::random::<f64>(&mut rng) < 0.3,
                reason: row % 4,
                row,
            });
        }
        let predictions: Vec<KindPredictions> = history
            .rows
            .iter()
            .map(|r| Kind::ALL.map(|k| (r.reason as f64 + k.index() as f64) * 0.01))
            .collect();
        let (_, weighted) = evaluate(&history, |_| true, |r, k| predictions[r.row][k.index()]);
        let rows: Vec<&HistoryRow> = history.rows.iter().collect();
        let every: Vec<usize> = (0..rows.len()).collect();
        let got = weighted_qini(&rows, &predictions, &every);
        assert!((got - weighted).abs() < 1e-6, "{got} against {weighted}");
        // A resample that repeats rows is another population: its Qini moves.
        let doubled: Vec<usize> = every.iter().map(|i| i / 2 * 2).collect();
        assert!((weighted_qini(&rows, &predictions, &doubled) - got).abs() > 1e-9);
    }

    #[test]
    fn a_systematic_sample_keeps_at_most_max_rows_spread_over_all() {
        let rows: Vec<usize> = (0..1000).collect();
        assert_eq!(systematic_sample(rows.clone(), 2000), rows);
        let sample = systematic_sample(rows, 300);
        assert!(
            sample.len() <= 300 && sample.len() >= 250,
            "{}",
            sample.len()
        );
        assert_eq!(sample[0], 0);
        assert!(*sample.last().unwrap() >= 990);
    }

    #[test]
    fn qini_is_positive_for_a_ranking_that_finds_the_persuadable_and_zero_ish_for_noise() {
        // Persuadable rows (score 1): treated stay, controls leave. Others: everyone stays.
        let mut rows = Vec::new();
        for i in 0..400 {
            let persuadable = (i / 2) % 2 == 0;
            let treated = i % 2 == 0;
            let stayed = !persuadable || treated;
            rows.push((if persuadable { 1.0 } else { 0.0 }, treated, stayed));
        }
        let good = qini("x", &rows);
        assert!(good.qini > 0.1, "{good:?}");
        let reversed: Vec<_> = rows.iter().map(|r| (-r.0, r.1, r.2)).collect();
        assert!(qini("x", &reversed).qini < 0.0);
        assert!((good.overall_uplift - 0.5).abs() < 0.05, "{good:?}");
    }

    #[test]
    fn cells_recover_a_planted_effect_and_shrink_thin_cells() {
        let mut history = History::default();
        let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mut push = |kind, reason, churned| {
            history.rows.push(HistoryRow {
                period: d,
                kind,
                channel: Some(Channel::Sms),
                reached: true,
                accepted: false,
                churned,
                reason,
                row: 0,
            });
        };
        // reason 1: control churn 50%; network fix halves it, discount does nothing.
        for i in 0..2000 {
            push(None, 1, i % 2 == 0);
            push(Some(Kind::NetworkFix), 1, i % 4 == 0);
            push(Some(Kind::FeeDiscount), 1, i % 2 == 0);
        }
        // One thin cell: a single treated subscriber who stayed.
        push(Some(Kind::NetworkFix), 0, false);
        let cells = Cells::fit(&history, |_| true);
        let fix = cells.save_rate(1, Kind::NetworkFix).unwrap();
        assert!((fix - 0.5).abs() < 0.05, "{fix}");
        assert!(cells.save_rate(1, Kind::FeeDiscount).unwrap() < 0.05);
        assert!(cells.save_rate(1, Kind::VipService).is_none());
        let thin = cells.save_rate(0, Kind::NetworkFix).unwrap();
        // One stayer alone would claim a full save; shrunk, it stays near the kind's rate.
        assert!(thin < 0.6, "{thin}");
    }
}
