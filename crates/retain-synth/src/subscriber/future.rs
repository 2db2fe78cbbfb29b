//! The synthetic operator's months after its export: the same subscribers, traits, hazards and
//! true offer effects, advanced one month at a time and reacting to the treatments a retention
//! policy gives. Only a simulation reads it; the pipeline never does.

use std::collections::HashMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_pcg::Pcg64Mcg;

use super::churn::{Exposure, HAZARD_SCALE, Path as ExitPath, downgrade_target, draw_path};
use super::profile::{Contract, Traits};
use super::{SIGNAL_MONTHS, add_months, next_month, rng_for, weighted};
use crate::catalog::{
    Cause, HISTORIC_OFFERS, PLANS, contact_cost, offer_cost, plan_index, save_probability,
};
use crate::{Error, Result};

/// Months of revenue an exit loses: the value a save keeps.
pub const VALUE_MONTHS: f64 = 12.0;

const STREAM_FUTURE: u64 = 5;

/// An intent to leave that has not ended yet.
#[derive(Clone, Copy)]
struct Pending {
    cause: Cause,
    path: ExitPath,
    /// Months since it formed: signals show at 0, 1 and 2; the exit comes at 3.
    age: usize,
}

struct Subscriber {
    id: i64,
    plan: usize,
    join: NaiveDate,
    channel: &'static str,
    traits: Traits,
    contracts: Vec<Contract>,
    intent: Option<Pending>,
    active: bool,
    /// Value churners stay but spend less; they form no new intent.
    downgraded: bool,
}

/// One exit of a month.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub subscriber_id: i64,
    pub cause: &'static str,
    /// Quantity churn (the line is lost) or value churn (it spends less).
    pub quantity: bool,
    pub value_lost: f64,
}

/// What one month brought before any treatment.
#[derive(Debug, Clone, Default)]
pub struct MonthStart {
    pub month: NaiveDate,
    pub exits: Vec<Exit>,
    pub new_intents: usize,
    pub active: usize,
}

/// What a treatment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    pub reached: bool,
    pub saved: bool,
}

/// The world after the export, one month at a time.
pub struct Future {
    subscribers: Vec<Subscriber>,
    by_id: HashMap<i64, usize>,
    month: NaiveDate,
    rng: Pcg64Mcg,
}

/// The offer kinds whose true effects the world knows, in a fixed order.
#[must_use]
pub fn offer_kinds() -> Vec<&'static str> {
    HISTORIC_OFFERS.iter().map(|o| o.kind).collect()
}

/// The share of leavers with `cause` whom `kind` keeps when reached; `None` for a kind or cause
/// the world does not know.
#[must_use]
pub fn true_effect(cause: &str, kind: &str) -> Option<f64> {
    let cause = Cause::ALL.into_iter().find(|c| c.name() == cause)?;
    let offer = HISTORIC_OFFERS.iter().position(|o| o.kind == kind)?;
    Some(save_probability(cause, offer))
}

/// The cost of `kind` accepted by a subscriber paying `fee` a month.
#[must_use]
pub fn true_offer_cost(kind: &str, fee: f64) -> f64 {
    HISTORIC_OFFERS
        .iter()
        .position(|o| o.kind == kind)
        .map_or(0.0, |i| offer_cost(i, fee))
}

/// The cost of one contact through `channel`.
#[must_use]
pub fn true_contact_cost(channel: &str) -> f64 {
    contact_cost(channel)
}

/// The chance a contact through `channel` reaches the subscriber.
#[must_use]
pub fn reach(channel: &str) -> f64 {
    match channel {
        "manager_visit" => 0.9,
        "sms" => 0.6,
        _ => 0.75,
    }
}

/// Of contacts that saved nobody, the share that still take the offer (and cost it).
pub const TAKE_ANYWAY: f64 = 0.25;

impl Future {
    /// The world as the export `input` (canonical CSV files) and its truth (`truth`) left it,
    /// ready for the month after `last_month`.
    pub fn open(input: &Path, truth: &Path, last_month: NaiveDate, seed: u64) -> Result<Future> {
        let mut subscribers = Vec::new();
        let mut by_id = HashMap::new();
        read_csv(&input.join("subscribers.csv"), |r| {
            let status = r.get("status")?;
            let plan_id = r.get("plan_id")?;
            let plan = PLANS
                .iter()
                .position(|p| p.id == plan_id)
                .unwrap_or_else(|| plan_index("P008"));
            let channel = match r.get("channel_preference")? {
                "manager_visit" => "manager_visit",
                "outbound_call" => "outbound_call",
                "store" => "store",
                _ => "sms",
            };
            let id = r.int("subscriber_id")?;
            by_id.insert(id, subscribers.len());
            subscribers.push(Subscriber {
                id,
                plan,
                join: r.date("join_date")?,
                channel,
                traits: Traits {
                    price_sensitivity: 0.0,
                    network_exposure: 0.0,
                    competitor_exposure: 0.0,
                    data_heaviness: 0.0,
                    voice_heaviness: 0.0,
                    late_payer: false,
                },
                contracts: Vec::new(),
                intent: None,
                active: status == "active",
                downgraded: false,
            });
            Ok(())
        })?;
        read_csv(&input.join("contracts.csv"), |r| {
            if let Some(&i) = by_id.get(&r.int("subscriber_id")?) {
                subscribers[i].contracts.push(Contract {
                    kind: if r.get("kind")? == "device_subsidy" {
                        "device_subsidy"
                    } else {
                        "service_contract"
                    },
                    start: r.date("start_date")?,
                    end: r.date("end_date")?,
                    amount: r.float("monthly_amount")?,
                });
            }
            Ok(())
        })?;
        read_csv(&truth.join("traits.csv"), |r| {
            if let Some(&i) = by_id.get(&r.int("subscriber_id")?) {
                let t = &mut subscribers[i].traits;
                t.price_sensitivity = r.float("price_sensitivity")?;
                t.network_exposure = r.float("network_exposure")?;
                t.competitor_exposure = r.float("competitor_exposure")?;
            }
            Ok(())
        })?;
        read_csv(&truth.join("churn.csv"), |r| {
            let Some(&i) = by_id.get(&r.int("subscriber_id")?) else {
                return Ok(());
            };
            let s = &mut subscribers[i];
            match r.get("outcome")? {
                "pending" => {
                    let cause_name = r.get("cause")?;
                    let cause = Cause::ALL
                        .into_iter()
                        .find(|c| c.name() == cause_name)
                        .ok_or_else(|| r.bad("cause"))?;
                    let path_name = r.get("path")?;
                    let path = ExitPath::ALL
                        .into_iter()
                        .find(|p| p.name() == path_name)
                        .ok_or_else(|| r.bad("path"))?;
                    let formed = NaiveDate::parse_from_str(
                        &format!("{}-01", r.get("intent_month")?),
                        "%Y-%m-%d",
                    )
                    .map_err(|_| r.bad("intent_month"))?;
                    // Its age in the export's last month; the first simulated month adds one.
                    let age = months_between(formed, last_month);
                    s.intent = Some(Pending { cause, path, age });
                }
                // A value churner of the window keeps spending less.
                _ if r.get("churn_type")? == "value" && !r.get("exit_month")?.is_empty() => {
                    s.downgraded = true;
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(Future {
            subscribers,
            by_id,
            month: last_month,
            rng: rng_for(seed, STREAM_FUTURE, 0),
        })
    }

    /// The month being simulated (its first day).
    #[must_use]
    pub fn month(&self) -> NaiveDate {
        self.month
    }

    /// Moves to the next month: intents due leave (or are deterred by a device subsidy still
    /// running), new intents form. Treatments of the month come after this.
    pub fn begin_month(&mut self) -> MonthStart {
        self.month = next_month(self.month);
        let month = self.month;
        let month_end = next_month(month) - chrono::Duration::days(1);
        let mut start = MonthStart {
            month,
            ..MonthStart::default()
        };
        for s in &mut self.subscribers {
            if !s.active {
                continue;
            }
            if let Some(p) = &mut s.intent {
                p.age += 1;
            }
            if let Some(p) = s.intent.filter(|p| p.age >= SIGNAL_MONTHS) {
                s.intent = None;
                let subsidy = s.contracts.iter().any(|c| {
                    c.kind == "device_subsidy"
                        && c.start <= month
                        && c.end > add_months(month_end, 3)
                });
                if subsidy && self.rng.random::<f64>() < 0.5 {
                    continue;
                }
                let fee = PLANS[s.plan].fee;
                let quantity = !p.path.is_value();
                let value_lost = if quantity {
                    s.active = false;
                    fee * VALUE_MONTHS
                } else {
                    s.downgraded = true;
                    let lower = downgrade_target(s.plan);
                    let lost = (fee - PLANS[lower].fee).max(0.5 * fee) * VALUE_MONTHS;
                    s.plan = lower;
                    lost
                };
                start.exits.push(Exit {
                    subscriber_id: s.id,
                    cause: p.cause.name(),
                    quantity,
                    value_lost,
                });
                continue;
            }
            let tenure_months = (month - s.join).num_days() / 30;
            if s.intent.is_some() || s.downgraded || tenure_months < 1 {
                continue;
            }
            let exposure = Exposure::at(&s.contracts, month, month_end, tenure_months, false);
            let hazards = super::churn::intent_hazards(&s.traits, &exposure);
            let total: f64 = hazards.iter().sum::<f64>() * HAZARD_SCALE;
            if self.rng.random::<f64>() < total {
                let cause = Cause::ALL[weighted(&mut self.rng, &hazards)];
                let path = draw_path(&mut self.rng, cause);
                s.intent = Some(Pending {
                    cause,
                    path,
                    age: 0,
                });
                start.new_intents += 1;
            }
        }
        start.active = self.subscribers.iter().filter(|s| s.active).count();
        start
    }

    /// The subscribers, in the export's order: (id, still a subscriber).
    pub fn subscribers(&self) -> impl Iterator<Item = (i64, bool)> + '_ {
        self.subscribers.iter().map(|s| (s.id, s.active))
    }

    /// A subscriber's place in [`Future::subscribers`].
    #[must_use]
    pub fn index(&self, subscriber_id: i64) -> Option<usize> {
        self.by_id.get(&subscriber_id).copied()
    }

    #[must_use]
    pub fn subscriber_id(&self, i: usize) -> i64 {
        self.subscribers[i].id
    }

    /// The monthly fee the subscriber pays now.
    #[must_use]
    pub fn fee(&self, i: usize) -> f64 {
        PLANS[self.subscribers[i].plan].fee
    }

    /// The channel the subscriber prefers (`sms` for the app).
    #[must_use]
    pub fn channel(&self, i: usize) -> &'static str {
        self.subscribers[i].channel
    }

    /// The true cause of an intent whose signals show this month; what only an oracle knows.
    #[must_use]
    pub fn cause(&self, i: usize) -> Option<&'static str> {
        let s = &self.subscribers[i];
        s.intent
            .filter(|p| s.active && p.age < SIGNAL_MONTHS)
            .map(|p| p.cause.name())
    }

    /// The month a pending intent formed, whether or not its signals still show.
    #[must_use]
    pub fn intent_formed(&self, i: usize) -> Option<NaiveDate> {
        let s = &self.subscribers[i];
        let p = s.intent.filter(|_| s.active)?;
        self.month
            .checked_sub_months(chrono::Months::new(u32::try_from(p.age).ok()?))
    }

    /// What the subscriber's exit would lose, were the pending intent not stopped.
    #[must_use]
    pub fn at_stake(&self, i: usize) -> f64 {
        let s = &self.subscribers[i];
        let fee = PLANS[s.plan].fee;
        match s.intent {
            Some(p) if s.active && p.path.is_value() => {
                (fee - PLANS[downgrade_target(s.plan)].fee).max(0.5 * fee) * VALUE_MONTHS
            }
            Some(_) if s.active => fee * VALUE_MONTHS,
            _ => 0.0,
        }
    }

    /// Whether offering `kind` would save the subscriber, given the draws of whether the
    /// contact reaches them and whether the offer works (each uniform on [0, 1)). The draws
    /// are the caller's so that several policies can be compared on the same luck.
    #[must_use]
    pub fn would_save(&self, i: usize, kind: &str, reach_draw: f64, save_draw: f64) -> Effect {
        let reached = reach_draw < reach(self.subscribers[i].channel);
        let effect = self
            .cause(i)
            .and_then(|c| true_effect(c, kind))
            .unwrap_or(0.0);
        Effect {
            reached,
            saved: reached && save_draw < effect,
        }
    }

    /// Gives the treatment: a saved intent ends there.
    pub fn treat(&mut self, i: usize, kind: &str, reach_draw: f64, save_draw: f64) -> Effect {
        let effect = self.would_save(i, kind, reach_draw, save_draw);
        if effect.saved {
            self.subscribers[i].intent = None;
        }
        effect
    }
}

fn months_between(from: NaiveDate, to: NaiveDate) -> usize {
    let m = (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32;
    usize::try_from(m).unwrap_or(0)
}

/// One row of a CSV file read by its header.
struct Row<'a> {
    path: &'a Path,
    line: u64,
    header: &'a csv::StringRecord,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn bad(&self, column: &str) -> Error {
        Error::Params(format!(
            "{}:{}: column {column}: unreadable value",
            self.path.display(),
            self.line
        ))
    }

    fn get(&self, column: &str) -> Result<&str> {
        self.header
            .iter()
            .position(|h| h == column)
            .and_then(|i| self.record.get(i))
            .ok_or_else(|| self.bad(column))
    }

    fn int(&self, column: &str) -> Result<i64> {
        self.get(column)?.parse().map_err(|_| self.bad(column))
    }

    fn float(&self, column: &str) -> Result<f64> {
        self.get(column)?.parse().map_err(|_| self.bad(column))
    }

    fn date(&self, column: &str) -> Result<NaiveDate> {
        NaiveDate::parse_from_str(self.get(column)?, "%Y-%m-%d").map_err(|_| self.bad(column))
    }
}

fn read_csv(path: &Path, mut each: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
    let io = |e: csv::Error| Error::Params(format!("{}: {e}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(io)?;
    let header = reader.headers().map_err(io)?.clone();
    let mut record = csv::StringRecord::new();
    let mut line = 1;
    while reader.read_record(&mut record).map_err(io)? {
        line += 1;
        each(&Row {
            path,
            line,
            header: &header,
            record: &record,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{SynthParams, synthesize};

    fn world(seed: u64) -> (tempfile::TempDir, Future) {
        let dir = tempfile::tempdir().unwrap();
        let params = SynthParams {
            subscribers: 3_000,
            seed,
            ..SynthParams::default()
        };
        let out = dir.path().join("in");
        let truth = dir.path().join("truth");
        synthesize(&params, &out, &truth).unwrap();
        let future = Future::open(&out, &truth, params.last_month, seed).unwrap();
        (dir, future)
    }

    fn leavers(f: &Future) -> Vec<usize> {
        (0..f.subscribers.len())
            .filter(|&i| f.cause(i).is_some())
            .collect()
    }

    #[test]
    fn leavers_left_alone_go_when_their_signals_end() {
        for seed in [1, 9] {
            let (_dir, mut f) = world(seed);
            f.begin_month();
            let first = leavers(&f);
            assert!(first.len() > 20, "seed {seed}: {} leavers", first.len());
            let mut gone = HashSet::new();
            for _ in 0..3 {
                gone.extend(f.begin_month().exits.iter().map(|e| e.subscriber_id));
            }
            // Deterred by a device subsidy or not, none of them still means to leave.
            assert!(first.iter().all(|&i| f.cause(i).is_none()));
            let left = first
                .iter()
                .filter(|&&i| gone.contains(&f.subscriber_id(i)))
                .count();
            assert!(
                left * 3 >= first.len() * 2,
                "seed {seed}: {left} of {}",
                first.len()
            );
        }
    }

    #[test]
    fn the_right_offer_saves_and_the_wrong_one_does_not() {
        let (_dir, mut f) = world(4);
        f.begin_month();
        let i = leavers(&f)[0];
        let cause = f.cause(i).unwrap();
        let best = offer_kinds()
            .into_iter()
            .max_by(|a, b| {
                true_effect(cause, a)
                    .unwrap()
                    .total_cmp(&true_effect(cause, b).unwrap())
            })
            .unwrap();
        let effect = true_effect(cause, best).unwrap();
        assert!(!f.would_save(i, best, 0.0, effect + 1e-9).saved);
        assert!(!f.would_save(i, best, 0.999, 0.0).saved, "not reached");
        assert_eq!(
            f.treat(i, best, 0.0, effect - 1e-9),
            Effect {
                reached: true,
                saved: true
            }
        );
        assert_eq!(f.cause(i), None);
        assert_eq!(f.intent_formed(i), None);
        let id = f.subscriber_id(i);
        for _ in 0..3 {
            assert!(f.begin_month().exits.iter().all(|e| e.subscriber_id != id));
        }
        // A subscriber without an intent is saved by nothing.
        let calm = (0..f.subscribers.len())
            .find(|&j| f.subscribers[j].active && f.cause(j).is_none())
            .unwrap();
        assert!(!f.would_save(calm, best, 0.0, 0.0).saved);
    }

    #[test]
    fn the_effects_are_the_truth_files() {
        let (dir, _) = world(2);
        let mut rows = 0;
        read_csv(&dir.path().join("truth/offer_effects.csv"), |r| {
            let want: f64 = r.float("save_probability")?;
            let got = true_effect(r.get("cause")?, r.get("offer_kind")?).unwrap();
            assert!((want - got).abs() < 1e-6);
            rows += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, Cause::ALL.len() * offer_kinds().len());
        assert_eq!(true_effect("price", "no_such_offer"), None);
    }
}
