//! Arbitration: every at-risk subscriber gets the offer and channel with the best expected net
//! value, or none, under the total budget, per-offer budgets, per-channel daily capacity and the
//! contact policy, red before yellow before blue. Every decision keeps its why.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate, NaiveTime};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::estimator::{Method, Uplift};
use crate::inputs::{Candidate, Inputs};
use crate::library::{Channel, Kind, Library};
use crate::policy::{Level, Policy};

/// Acceptance assumed for offer kinds no campaign tried.
const UNTESTED_ACCEPT: f64 = 0.3;

/// One way to treat a candidate, valued.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Choice {
    pub offer: u16,
    pub channel: Channel,
    pub save_rate: f64,
    pub method: Method,
    /// Contact cost plus the full offer cost: what the budget reserves.
    pub cost: f64,
    /// Contact cost plus the offer cost times the chance it is accepted.
    pub expected_cost: f64,
    /// P(churn) × save rate × lifetime value − expected cost.
    pub expected_value: f64,
}

/// Every eligible (offer, channel) of every candidate, best first.
#[must_use]
pub fn choices(
    inputs: &Inputs,
    library: &Library,
    policy: &Policy,
    uplift: &Uplift,
    individual: Option<&[[f32; 10]]>,
) -> Vec<Vec<Choice>> {
    let mean_reach = uplift.cells.mean_reach();
    inputs
        .candidates
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let mut out = Vec::new();
            for &o in &c.eligible {
                let offer = &library.offers[o as usize];
                if !offer.valid_on(inputs.as_of) {
                    continue;
                }
                let own = individual
                    .map(|s| f64::from(s[ci][offer.kind.index()]))
                    .filter(|v| v.is_finite());
                let (save, method) = uplift.refine(
                    c,
                    offer,
                    uplift.save_rate(c.reason, offer, own),
                    policy.exploration_share,
                );
                let accept = uplift
                    .cells
                    .accept_rate(offer.kind)
                    .unwrap_or(UNTESTED_ACCEPT);
                let offer_cost = offer.cost.cost(c.arpu);
                for &channel in &offer.channels {
                    if !c.reachable(channel) {
                        continue;
                    }
                    let reach = match (uplift.cells.reach(channel), mean_reach) {
                        (Some(r), Some(m)) if m > 0.0 => r / m,
                        _ => 1.0,
                    };
                    let save_rate = (save * reach).clamp(0.0, 1.0);
                    let contact = policy.channel(channel).contact_cost;
                    let expected_cost = contact + accept * offer_cost;
                    out.push(Choice {
                        offer: o,
                        channel,
                        save_rate,
                        method,
                        cost: contact + offer_cost,
                        expected_cost,
                        expected_value: c.p_churn * save_rate * c.clv - expected_cost,
                    });
                }
            }
            out.sort_by(|a, b| b.expected_value.total_cmp(&a.expected_value));
            out
        })
        .collect()
}

/// How assignments are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The best expected net value per yuan, red first.
    Retain,
    /// A random eligible offer to random at-risk subscribers (a baseline).
    Random(u64),
    /// The biggest discount to everyone at risk, riskiest first (a baseline).
    MaxDiscount,
}

/// One planned contact.
#[derive(Debug, Clone, Serialize)]
pub struct Assignment {
    pub subscriber_id: i64,
    pub level: Level,
    pub offer_id: String,
    pub kind: Kind,
    pub channel: Channel,
    pub day: NaiveDate,
    /// The contact time for remote channels (outside quiet hours).
    pub time: Option<NaiveTime>,
    pub reason: &'static str,
    pub p_churn: f64,
    pub clv: f64,
    pub save_rate: f64,
    pub method: Method,
    pub cost: f64,
    pub expected_cost: f64,
    pub expected_value: f64,
    /// The constraint that kept a better choice from this subscriber, if one did.
    pub binding: Option<String>,
}

/// An at-risk subscriber left without an offer, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub subscriber_id: i64,
    pub level: Level,
    /// `no_positive_value`, `no_eligible_offer`, `do_not_disturb`, `contact_limit`,
    /// `cool_off`, `offer_limit`, `offer_budget`, `exploration_budget`, `budget`,
    /// `channel_capacity`.
    pub constraint: &'static str,
    pub detail: String,
    /// The cheapest choice the total budget blocked, if the budget blocked any.
    pub blocked_by_budget: Option<f64>,
    /// Channels whose capacity blocked a choice.
    pub blocked_channels: Vec<Channel>,
}

/// An arbitration's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub assignments: Vec<Assignment>,
    pub skipped: Vec<Skipped>,
    pub cost: f64,
    pub expected_cost: f64,
    pub expected_value: f64,
}

/// Contact slots per channel and day.
struct Slots<'a> {
    policy: &'a Policy,
    start: NaiveDate,
    used: HashMap<Channel, Vec<u32>>,
}

impl Slots<'_> {
    /// Takes the first free slot of `channel`: its day and, for remote channels, a time spread
    /// over the open hours.
    fn take(&mut self, channel: Channel) -> Option<(NaiveDate, Option<NaiveTime>)> {
        let cap = self.policy.channel(channel).daily_capacity;
        let days = self.policy.campaign_days as usize;
        let used = self.used.entry(channel).or_insert_with(|| vec![0; days]);
        let d = used.iter().position(|n| *n < cap)?;
        let k = used[d];
        used[d] += 1;
        let time = channel.is_remote().then(|| {
            let minutes = i64::from(k) * self.policy.open_minutes() / i64::from(cap.max(1));
            self.policy.quiet_end + Duration::minutes(minutes)
        });
        Some((self.start + Duration::days(d as i64), time))
    }
}

/// Assigns offers under every constraint. `budget` is in yuan of committed cost.
#[must_use]
pub fn arbitrate(
    inputs: &Inputs,
    library: &Library,
    policy: &Policy,
    choices: &[Vec<Choice>],
    budget: f64,
    strategy: Strategy,
) -> Plan {
    let start = inputs.as_of;
    let cands = &inputs.candidates;
    let mut order: Vec<usize> = (0..cands.len()).collect();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(match strategy {
        Strategy::Random(seed) => seed,
        _ => 0,
    });
    // The options each strategy considers for a candidate, in preference order.
    let lambda = match strategy {
        Strategy::Retain => shadow_price(choices, budget),
        _ => 0.0,
    };
    let adjusted = |c: &Choice| c.expected_value - lambda * c.cost;
    let mut picks: Vec<Vec<Choice>> = match strategy {
        Strategy::Retain => choices
            .iter()
            .map(|cs| {
                let mut v: Vec<Choice> = cs
                    .iter()
                    .copied()
                    .filter(|c| c.expected_value > 0.0)
                    .collect();
                v.sort_by(|a, b| adjusted(b).total_cmp(&adjusted(a)));
                v
            })
            .collect(),
        Strategy::Random(_) => choices
            .iter()
            .map(|cs| {
                let mut v = cs.clone();
                v.shuffle(&mut rng);
                v
            })
            .collect(),
        Strategy::MaxDiscount => choices
            .iter()
            .zip(cands)
            .map(|(cs, c)| {
                let mut v: Vec<Choice> = cs
                    .iter()
                    .copied()
                    .filter(|x| library.offers[x.offer as usize].kind == Kind::FeeDiscount)
                    .collect();
                // The biggest discount first; its preferred channel first.
                v.sort_by(|a, b| {
                    b.cost
                        .total_cmp(&a.cost)
                        .then((b.channel == c.preferred).cmp(&(a.channel == c.preferred)))
                });
                v
            })
            .collect(),
    };
    let density = |i: usize, picks: &[Vec<Choice>]| {
        picks[i]
            .first()
            .map_or(f64::NEG_INFINITY, |c| adjusted(c) / c.cost.max(0.01))
    };
    match strategy {
        Strategy::Retain => order.sort_by(|a, b| {
            cands[*a]
                .level
                .cmp(&cands[*b].level)
                .then(density(*b, &picks).total_cmp(&density(*a, &picks)))
        }),
        Strategy::Random(_) => {
            order.shuffle(&mut rng);
            order.sort_by_key(|i| cands[*i].level);
        }
        Strategy::MaxDiscount => order.sort_by(|a, b| {
            cands[*a]
                .level
                .cmp(&cands[*b].level)
                .then(cands[*b].p_churn.total_cmp(&cands[*a].p_churn))
        }),
    }

    let mut plan = Plan::default();
    let mut slots = Slots {
        policy,
        start,
        used: HashMap::new(),
    };
    let mut offer_spent: BTreeMap<u16, f64> = BTreeMap::new();
    let explore_cap = policy.exploration_share * budget;
    let mut explored = 0.0;
    for i in order {
        let c = &cands[i];
        let options = std::mem::take(&mut picks[i]);
        let skip = |constraint, detail: String| Skipped {
            subscriber_id: c.subscriber_id,
            level: c.level,
            constraint,
            detail,
            blocked_by_budget: None,
            blocked_channels: Vec::new(),
        };
        // The contact lands on some day of the run: it must be allowed on every one, or a
        // contact already planned inside the window could be broken on the day it lands.
        if let Some(s) = (0..i64::from(policy.campaign_days.max(1)))
            .find_map(|d| subscriber_block(c, inputs, policy, start + Duration::days(d)))
        {
            plan.skipped.push(skip(s.0, s.1));
            continue;
        }
        if options.is_empty() {
            let (what, detail) = if choices[i].is_empty() {
                (
                    "no_eligible_offer",
                    "no offer in the library applies".to_owned(),
                )
            } else {
                (
                    "no_positive_value",
                    "no offer keeps more value than it costs".to_owned(),
                )
            };
            plan.skipped.push(skip(what, detail));
            continue;
        }
        let mut first_block: Option<(&'static str, String)> = None;
        let mut blocked_by_budget: Option<f64> = None;
        let mut blocked_channels = Vec::new();
        let mut done = false;
        for choice in &options {
            let offer = &library.offers[choice.offer as usize];
            // Like the contact rules, the offer's limit must hold on whichever day of the run
            // the contact lands: the ledger may hold contacts planned inside the window.
            let given = (0..i64::from(policy.campaign_days.max(1)))
                .map(|d| {
                    inputs.ledger.offer_count(
                        c.subscriber_id,
                        &offer.id,
                        start + Duration::days(d),
                        offer.limit_days,
                    )
                })
                .max()
                .unwrap_or(0);
            let block = if given >= offer.limit_per_subscriber {
                Some((
                    "offer_limit",
                    format!(
                        "{} already given {} time(s) in {} days",
                        offer.id, offer.limit_per_subscriber, offer.limit_days
                    ),
                ))
            } else if offer.budget.is_some_and(|b| {
                offer_spent.get(&choice.offer).copied().unwrap_or(0.0) + choice.cost > b + 1e-9
            }) {
                Some((
                    "offer_budget",
                    format!("the budget of {} is spent", offer.id),
                ))
            } else if choice.method.explores() && explored + choice.cost > explore_cap + 1e-9 {
                Some((
                    "exploration_budget",
                    format!(
                        "the exploration share for untested offers is spent ({} is untested)",
                        offer.id
                    ),
                ))
            } else if plan.cost + choice.cost > budget + 1e-9 {
                blocked_by_budget =
                    Some(blocked_by_budget.map_or(choice.cost, |b: f64| b.min(choice.cost)));
                Some((
                    "budget",
                    format!(
                        "the total budget is spent ({:.2} left, {} costs {:.2})",
                        budget - plan.cost,
                        offer.id,
                        choice.cost
                    ),
                ))
            } else {
                None
            };
            if let Some(b) = block {
                first_block.get_or_insert(b);
                continue;
            }
            let Some((day, time)) = slots.take(choice.channel) else {
                blocked_channels.push(choice.channel);
                first_block.get_or_insert((
                    "channel_capacity",
                    format!("{} is full on every day of the run", choice.channel.code()),
                ));
                continue;
            };
            plan.cost += choice.cost;
            if choice.method.explores() {
                explored += choice.cost;
            }
            plan.expected_cost += choice.expected_cost;
            plan.expected_value += choice.expected_value;
            *offer_spent.entry(choice.offer).or_default() += choice.cost;
            plan.assignments.push(Assignment {
                subscriber_id: c.subscriber_id,
                level: c.level,
                offer_id: offer.id.clone(),
                kind: offer.kind,
                channel: choice.channel,
                day,
                time,
                reason: crate::REASONS[c.reason].0,
                p_churn: c.p_churn,
                clv: c.clv,
                save_rate: choice.save_rate,
                method: choice.method,
                cost: choice.cost,
                expected_cost: choice.expected_cost,
                expected_value: choice.expected_value,
                binding: first_block.as_ref().map(|b| b.1.clone()),
            });
            done = true;
            break;
        }
        if !done {
            let (constraint, detail) = first_block.unwrap_or(("no_positive_value", String::new()));
            blocked_channels.sort();
            blocked_channels.dedup();
            plan.skipped.push(Skipped {
                subscriber_id: c.subscriber_id,
                level: c.level,
                constraint,
                detail,
                blocked_by_budget,
                blocked_channels,
            });
        }
    }
    plan
}

/// The budget's shadow price: the smallest λ at which everyone's best choice by
/// `expected_value − λ × cost` fits the budget together. Ranking by that value spends a tight
/// budget where a yuan keeps the most, instead of on the single richest option per subscriber.
fn shadow_price(choices: &[Vec<Choice>], budget: f64) -> f64 {
    let spend = |lambda: f64| -> f64 {
        choices
            .iter()
            .filter_map(|cs| {
                cs.iter()
                    .filter(|c| c.expected_value - lambda * c.cost > 0.0)
                    .max_by(|a, b| {
                        (a.expected_value - lambda * a.cost)
                            .total_cmp(&(b.expected_value - lambda * b.cost))
                    })
                    .map(|c| c.cost)
            })
            .sum()
    };
    if spend(0.0) <= budget {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while spend(hi) > budget && hi < 1e6 {
        hi *= 2.0;
    }
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if spend(mid) > budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The contact-policy rule that rules the subscriber out on `day`, if any.
pub(crate) fn subscriber_block(
    c: &Candidate,
    inputs: &Inputs,
    policy: &Policy,
    day: NaiveDate,
) -> Option<(&'static str, String)> {
    let id = c.subscriber_id;
    if inputs.ledger.dnd.contains(&id) {
        return Some(("do_not_disturb", "on the do-not-disturb list".into()));
    }
    let recent = inputs.ledger.contacts_30d(id, day);
    if recent >= policy.max_contacts_30d {
        return Some((
            "contact_limit",
            format!(
                "contacted {recent} time(s) in the last 30 days (limit {})",
                policy.max_contacts_30d
            ),
        ));
    }
    if let Some(when) = inputs.ledger.refused_within(id, day, policy.cool_off_days) {
        return Some((
            "cool_off",
            format!(
                "refused an offer on {when}; cool-off {} days",
                policy.cool_off_days
            ),
        ));
    }
    None
}
