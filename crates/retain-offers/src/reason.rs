//! The churn reason an offer answers: the champion's cause model (learned from what leavers
//! said) or, without one, the strongest observed signal, from the same features the model uses,
//! so past campaign contacts and today's subscribers are read the same way.

/// Reason codes (the model's reason categories, plus `unknown`) and their Chinese names.
pub const REASONS: &[(&str, &str)] = retain_model::REASON_CODES;

/// Index of `unknown` in [`REASONS`].
pub const UNKNOWN: usize = REASONS.len() - 1;

#[must_use]
pub fn reason_index(code: &str) -> Option<usize> {
    REASONS.iter().position(|(c, _)| *c == code)
}

/// Feature columns read by [`Signals::reason`]; a column missing from the set reads as absent.
const COLUMNS: [&str; 14] = [
    "network_complaints_6m",
    "billing_complaints_6m",
    "arrears_1m",
    "arrears_stops_6m",
    "complaints_6m",
    "serious_complaints_6m",
    "competitor_calls_6m",
    "forward_days_6m",
    "subsidy_months_left",
    "contract_months_left",
    "fee_trend",
    "downgrades_6m",
    "active_days_trend",
    "data_trend",
];

/// Resolves the signal columns of a feature list once.
#[derive(Debug, Clone)]
pub struct Signals {
    at: [Option<usize>; COLUMNS.len()],
}

impl Signals {
    #[must_use]
    pub fn new(features: &[String]) -> Signals {
        Signals {
            at: COLUMNS.map(|c| features.iter().position(|f| f == c)),
        }
    }

    /// The reason with the strongest signal in `row` (one value per feature, `NaN` missing).
    #[must_use]
    pub fn reason(&self, row: &[f64]) -> usize {
        let v = |i: usize| {
            self.at[i]
                .map(|j| row[j])
                .filter(|x| x.is_finite())
                .unwrap_or(0.0)
        };
        let present = |i: usize| self.at[i].map(|j| row[j]).filter(|x| x.is_finite());
        let network = v(0);
        let billing = v(1);
        let mut strength = [0.0; REASONS.len()];
        // value_decline
        let fee_trend = present(10).unwrap_or(1.0);
        strength[0] = if fee_trend < 0.85 { 2.0 } else { 0.0 } + 2.0 * v(11);
        // network_quality
        strength[1] = if network > 0.0 { 2.0 + network } else { 0.0 };
        // service_complaints: complaints that are neither about the network nor the bill
        let other = (v(4) - network - billing).max(0.0);
        strength[2] = if other > 0.0 { 1.5 + other + v(5) } else { 0.0 };
        // competitor_lure
        let competitor = v(6) + v(7);
        strength[3] = if competitor > 0.0 {
            1.5 + competitor
        } else {
            0.0
        };
        // contract_expiry: a subsidy or contract ending within three months
        let ends_soon = [present(8), present(9)]
            .into_iter()
            .flatten()
            .any(|m| (0.0..=3.0).contains(&m));
        strength[4] = if ends_soon { 2.5 } else { 0.0 };
        // billing_arrears
        strength[5] = if billing > 0.0 || v(3) > 0.0 || v(2) > 0.0 {
            1.5 + 2.0 * billing + v(3)
        } else {
            0.0
        };
        // low_engagement
        let active = present(12).unwrap_or(1.0);
        let data = present(13).unwrap_or(1.0);
        strength[6] = if active < 0.8 { 1.5 } else { 0.0 } + if data < 0.6 { 1.0 } else { 0.0 };
        let (best, s) = strength
            .iter()
            .enumerate()
            .fold(
                (UNKNOWN, 0.0),
                |(bi, bs), (i, s)| if *s > bs { (i, *s) } else { (bi, bs) },
            );
        if s > 0.0 { best } else { UNKNOWN }
    }
}

/// Rows a [`Reasoner`] puts in the model's feature order at a time: a provincial operator's past
/// campaign contacts are half a million rows.
const CHUNK: usize = 4096;

/// Reads the reason of feature rows as the scores' first reason does: by the champion's cause
/// model when it has one (learned from what leavers said, docs/model.md), else by the strongest
/// observed signal. Past campaign contacts and today's subscribers go through the same one.
pub(crate) struct Reasoner {
    signals: Signals,
    /// The champion and, per its feature, the column of the feature rows holding it.
    model: Option<(retain_model::ChurnModel, Vec<Option<usize>>)>,
}

impl Reasoner {
    /// The reasoner for rows with feature columns `names`, from `workspace`'s champion.
    pub(crate) fn for_workspace(
        workspace: &retain_data::Workspace,
        names: &[String],
    ) -> crate::error::Result<Reasoner> {
        let model = retain_model::load_champion(workspace)?
            .map(|(model, _)| model)
            .filter(|m| m.causes.is_some())
            .map(|m| {
                let at = m
                    .features
                    .iter()
                    .map(|f| names.iter().position(|n| n == f))
                    .collect();
                (m, at)
            });
        Ok(Reasoner {
            signals: Signals::new(names),
            model,
        })
    }

    /// `cause_model` or `signals`: what the reasons come from.
    #[must_use]
    pub(crate) fn source(&self) -> &'static str {
        if self.model.is_some() {
            "cause_model"
        } else {
            "signals"
        }
    }

    /// The reason index of each of `rows` (one value per feature name, `NaN` missing).
    pub(crate) fn reasons<'a>(&self, rows: impl Iterator<Item = &'a [f64]>) -> Vec<usize> {
        let Some((model, at)) = &self.model else {
            return rows.map(|r| self.signals.reason(r)).collect();
        };
        let mut out = Vec::new();
        let mut x = Vec::with_capacity(CHUNK * at.len());
        let flush = |x: &mut Vec<f64>, out: &mut Vec<usize>| {
            let causes = model.top_causes(x).unwrap_or_default();
            out.extend(causes.iter().map(|c| reason_index(c).unwrap_or(UNKNOWN)));
            x.clear();
        };
        for row in rows {
            x.extend(at.iter().map(|j| j.map_or(f64::NAN, |j| row[j])));
            if x.len() >= CHUNK * at.len().max(1) {
                flush(&mut x, &mut out);
            }
        }
        if !x.is_empty() {
            flush(&mut x, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(signals: &Signals, names: &[String], set: &[(&str, f64)]) -> usize {
        let mut r = vec![f64::NAN; names.len()];
        for (n, v) in set {
            r[names.iter().position(|x| x == n).unwrap()] = *v;
        }
        signals.reason(&r)
    }

    #[test]
    fn the_strongest_signal_wins() {
        let names: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        let s = Signals::new(&names);
        assert_eq!(row(&s, &names, &[]), UNKNOWN);
        assert_eq!(
            REASONS[row(
                &s,
                &names,
                &[("network_complaints_6m", 1.0), ("complaints_6m", 1.0)]
            )]
            .0,
            "network_quality"
        );
        assert_eq!(
            REASONS[row(
                &s,
                &names,
                &[("competitor_calls_6m", 3.0), ("fee_trend", 0.8)]
            )]
            .0,
            "competitor_lure"
        );
        assert_eq!(
            REASONS[row(&s, &names, &[("subsidy_months_left", 2.0)])].0,
            "contract_expiry"
        );
        assert_eq!(
            REASONS[row(&s, &names, &[("subsidy_months_left", 9.0)])].0,
            "unknown"
        );
        assert_eq!(
            REASONS[row(
                &s,
                &names,
                &[("complaints_6m", 2.0), ("billing_complaints_6m", 2.0)]
            )]
            .0,
            "billing_arrears"
        );
        assert_eq!(
            REASONS[row(&s, &names, &[("fee_trend", 0.5)])].0,
            "value_decline"
        );
        assert_eq!(
            REASONS[row(&s, &names, &[("active_days_trend", 0.5)])].0,
            "low_engagement"
        );
    }

    #[test]
    fn missing_columns_read_as_no_signal() {
        let s = Signals::new(&["tenure_months".to_owned()]);
        assert_eq!(s.reason(&[12.0]), UNKNOWN);
    }

    #[test]
    fn reasons_are_the_models_categories() {
        let ours: Vec<&str> = REASONS
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| *c != "unknown")
            .collect();
        let model: Vec<&str> = retain_model::CATEGORIES.iter().map(|(c, _)| *c).collect();
        assert_eq!(ours, model);
    }
}
