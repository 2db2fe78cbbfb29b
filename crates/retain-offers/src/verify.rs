//! The verifier: rechecks a plan against every constraint from the inputs alone, trusting
//! nothing the arbitration computed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::assign::{Plan, subscriber_block};
use crate::inputs::Inputs;
use crate::library::{Channel, Library};
use crate::policy::{Level, Policy};

/// A broken constraint.
#[derive(Debug, Clone, Serialize, PartialEq, Deserialize)]
pub struct Violation {
    pub subscriber_id: Option<i64>,
    pub constraint: String,
    pub detail: String,
}

/// Every constraint `plan` breaks.
#[must_use]
pub fn verify(
    plan: &Plan,
    inputs: &Inputs,
    library: &Library,
    policy: &Policy,
    budget: f64,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut bad = |id: Option<i64>, constraint: &str, detail: String| {
        out.push(Violation {
            subscriber_id: id,
            constraint: constraint.to_owned(),
            detail,
        });
    };
    let cands: HashMap<i64, usize> = inputs
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.subscriber_id, i))
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0.0;
    let mut by_offer: BTreeMap<&str, f64> = BTreeMap::new();
    let mut by_channel_day: BTreeMap<(Channel, chrono::NaiveDate), u32> = BTreeMap::new();
    let last_day = inputs.as_of + chrono::Duration::days(i64::from(policy.campaign_days) - 1);
    for a in &plan.assignments {
        let id = Some(a.subscriber_id);
        if !seen.insert(a.subscriber_id) {
            bad(id, "one_offer_per_run", "assigned more than once".into());
        }
        let Some(&ci) = cands.get(&a.subscriber_id) else {
            bad(id, "at_risk", "not an at-risk candidate".into());
            continue;
        };
        let c = &inputs.candidates[ci];
        let Some((oi, offer)) = library
            .offers
            .iter()
            .enumerate()
            .find(|(_, o)| o.id == a.offer_id)
        else {
            bad(id, "offer", format!("{} is not in the library", a.offer_id));
            continue;
        };
        if !c.eligible.contains(&(oi as u16)) {
            bad(id, "eligibility", format!("not eligible for {}", offer.id));
        }
        if !offer.valid_on(a.day) {
            bad(
                id,
                "validity",
                format!("{} is not valid on {}", offer.id, a.day),
            );
        }
        if !offer.channels.contains(&a.channel) {
            bad(
                id,
                "channel",
                format!("{} is not offered by {}", offer.id, a.channel.code()),
            );
        }
        if !c.reachable(a.channel) {
            bad(
                id,
                "channel",
                format!("cannot be reached by {}", a.channel.code()),
            );
        }
        if let Some((rule, detail)) = subscriber_block(c, inputs, policy, a.day) {
            bad(id, rule, detail);
        }
        if inputs
            .ledger
            .offer_count(a.subscriber_id, &offer.id, a.day, offer.limit_days)
            >= offer.limit_per_subscriber
        {
            bad(
                id,
                "offer_limit",
                format!("{} over its limit per subscriber", offer.id),
            );
        }
        let cost = policy.channel(a.channel).contact_cost + offer.cost.cost(c.arpu);
        if (cost - a.cost).abs() > 1e-6 {
            bad(
                id,
                "cost",
                format!("cost {:.2} recorded, {cost:.2} by the cost model", a.cost),
            );
        }
        if a.day < inputs.as_of || a.day > last_day {
            bad(
                id,
                "schedule",
                format!("{} is outside the run's days", a.day),
            );
        }
        if a.channel.is_remote() {
            match a.time {
                Some(t) if !policy.is_quiet(t) => {}
                Some(t) => bad(
                    id,
                    "quiet_hours",
                    format!("{} at {t} is in quiet hours", a.channel.code()),
                ),
                None => bad(id, "quiet_hours", "a remote contact without a time".into()),
            }
        }
        total += cost;
        *by_offer.entry(offer.id.as_str()).or_default() += cost;
        *by_channel_day.entry((a.channel, a.day)).or_default() += 1;
    }
    let explored: f64 = plan
        .assignments
        .iter()
        .filter(|a| a.method.explores())
        .map(|a| a.cost)
        .sum();
    if explored > policy.exploration_share * budget + 1e-6 {
        bad(
            None,
            "exploration_budget",
            format!(
                "{explored:.2} on untested offers, cap {:.2}",
                policy.exploration_share * budget
            ),
        );
    }
    if total > budget + 1e-6 {
        bad(
            None,
            "budget",
            format!("{total:.2} committed, budget {budget:.2}"),
        );
    }
    for (offer, spent) in &by_offer {
        if let Some(b) = library.get(offer).and_then(|o| o.budget)
            && *spent > b + 1e-6
        {
            bad(
                None,
                "offer_budget",
                format!("{offer}: {spent:.2} committed, its budget {b:.2}"),
            );
        }
    }
    for ((channel, day), n) in &by_channel_day {
        let cap = policy.channel(*channel).daily_capacity;
        if *n > cap {
            bad(
                None,
                "channel_capacity",
                format!("{} on {day}: {n} contacts, capacity {cap}", channel.code()),
            );
        }
    }
    // Red before yellow before blue: a more urgent subscriber turned away for budget or
    // capacity while a less urgent one got what would have served them. What each level got
    // is summed once, so the check costs a pass over the plan, not one per turned-away
    // subscriber.
    let mut by_level: BTreeMap<Level, (f64, BTreeSet<Channel>)> = BTreeMap::new();
    for a in &plan.assignments {
        let (cost, channels) = by_level.entry(a.level).or_default();
        *cost += a.cost;
        channels.insert(a.channel);
    }
    let leftover = budget - total;
    for s in &plan.skipped {
        let lower: Vec<&(f64, BTreeSet<Channel>)> = by_level
            .range((Bound::Excluded(s.level), Bound::Unbounded))
            .map(|(_, got)| got)
            .collect();
        if lower.is_empty() {
            continue;
        }
        if let Some(need) = s.blocked_by_budget {
            let freed: f64 = lower.iter().map(|(cost, _)| cost).sum();
            if need <= leftover + freed + 1e-6 && freed > 0.0 {
                bad(
                    Some(s.subscriber_id),
                    "priority",
                    format!(
                        "{} turned away for budget while less urgent subscribers got {freed:.2}",
                        s.level.code()
                    ),
                );
            }
        }
        for ch in &s.blocked_channels {
            if lower.iter().any(|(_, channels)| channels.contains(ch)) {
                bad(
                    Some(s.subscriber_id),
                    "priority",
                    format!(
                        "{} turned away: {} full of less urgent contacts",
                        s.level.code(),
                        ch.code()
                    ),
                );
            }
        }
    }
    out
}
