//! Contacts and other events: the background rate of calls and complaints, the signals of a
//! pending intent, and the times events happen at.

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_distr::{Distribution, Poisson};

use super::churn::Intent;
use super::{SIGNAL_MONTHS, Simulation, random_day, weighted};
use crate::catalog::{COMPETITORS, Cause};

/// One row of `events.csv`: the fields a kind has no use for stay empty.
pub(super) struct Event {
    pub(super) at: chrono::NaiveDateTime,
    pub(super) kind: &'static str,
    pub(super) category: &'static str,
    pub(super) severity: &'static str,
    pub(super) resolved: &'static str,
    pub(super) from_plan: &'static str,
    pub(super) to_plan: &'static str,
    pub(super) channel: &'static str,
    pub(super) competitor: &'static str,
    pub(super) detail: &'static str,
    /// The reason the subscriber gave for leaving or downgrading, as recorded.
    pub(super) stated_reason: &'static str,
}

impl Event {
    pub(super) fn new(at: chrono::NaiveDateTime, kind: &'static str) -> Self {
        Event {
            at,
            kind,
            category: "",
            severity: "",
            resolved: "",
            from_plan: "",
            to_plan: "",
            channel: "",
            competitor: "",
            detail: "",
            stated_reason: "",
        }
    }
}

impl Simulation<'_> {
    pub(super) fn time_on(&mut self, day: NaiveDate) -> chrono::NaiveDateTime {
        day.and_hms_opt(
            self.rng.random_range(8..22),
            self.rng.random_range(0..60),
            self.rng.random_range(0..60),
        )
        .expect("valid time")
    }

    pub(super) fn random_time(&mut self, from: NaiveDate, to: NaiveDate) -> chrono::NaiveDateTime {
        let day = random_day(&mut self.rng, from, to);
        self.time_on(day)
    }

    /// Background contacts plus the signals of a pending intent.
    pub(super) fn month_events(
        &mut self,
        t: usize,
        from: NaiveDate,
        to: NaiveDate,
        intent: Option<&Intent>,
        disputed: bool,
        tenure_months: i64,
    ) {
        if to < from {
            return;
        }
        let tr = &self.traits;
        let k = intent
            .and_then(|i| t.checked_sub(i.start))
            .filter(|k| *k < SIGNAL_MONTHS);
        let cause = intent.map(|i| i.cause).filter(|_| k.is_some());
        let ramp = k.map_or(0.0, |k| (k as f64 + 1.0) / 3.0);
        let is = |c: Cause| if cause == Some(c) { ramp } else { 0.0 };
        // Followers of friends rarely ask a competitor's shop or divert their calls.
        let lure = if intent.is_some_and(|i| i.social) {
            0.2
        } else {
            1.0
        };
        let senior = self.age > 60;
        let rates = [
            // (kind, category, rate)
            (
                "service_call",
                "",
                0.12 + if senior { 0.08 } else { 0.0 }
                    + 0.5 * is(Cause::Price)
                    + 0.5 * is(Cause::Network)
                    + 0.7 * is(Cause::Billing)
                    + 0.3 * is(Cause::Relocation)
                    + if tenure_months < 3 { 0.2 } else { 0.0 },
            ),
            (
                "complaint",
                "network",
                // Most who suffer a bad network never complain: leavers for it only now and
                // then, and a few of everyone on a degraded cell.
                0.01 + 0.06 * tr.network_exposure
                    + 0.06 * self.world.cells.cells[self.cell].severity(t)
                    + 0.3 * is(Cause::Network),
            ),
            (
                "complaint",
                "billing",
                0.004 + if disputed { 0.8 } else { 0.0 } + 0.9 * is(Cause::Billing),
            ),
            ("complaint", "service", 0.004 + 0.1 * is(Cause::Price)),
            (
                "competitor_service_call",
                "",
                0.01 * tr.competitor_exposure
                    + 0.35 * is(Cause::Price)
                    + 0.6 * lure * is(Cause::Competitor)
                    + 0.5 * is(Cause::ContractExpiry),
            ),
            (
                "forward_to_competitor",
                "",
                0.002 + 1.2 * lure * is(Cause::Competitor) + 0.3 * is(Cause::ContractExpiry),
            ),
        ];
        for (kind, category, rate) in rates {
            let count =
                Poisson::new(rate.max(1e-6)).map_or(0.0, |d| d.sample(&mut self.rng)) as usize;
            if kind == "forward_to_competitor" && count > 0 && cause.is_some() {
                // Forwarding comes in runs on consecutive days: calls diverted to a new number.
                let days = count + 2;
                let start = random_day(&mut self.rng, from, to);
                for d in 0..days {
                    let day = (start + Duration::days(d as i64)).min(to);
                    let mut e = Event::new(self.time_on(day), kind);
                    e.competitor = COMPETITORS[(self.profile.id as usize) % COMPETITORS.len()];
                    self.events.push(e);
                }
                continue;
            }
            for _ in 0..count {
                let at = self.random_time(from, to);
                let mut e = Event::new(at, kind);
                match kind {
                    "complaint" => {
                        e.category = category;
                        let serious = if cause.is_some() { 0.35 } else { 0.08 };
                        e.severity = ["minor", "major", "serious"]
                            [weighted(&mut self.rng, &[0.7 - serious, 0.3, serious])];
                        let late = if cause.is_some() || disputed {
                            0.4
                        } else {
                            0.1
                        };
                        e.resolved = if self.rng.random::<f64>() < late {
                            "false"
                        } else {
                            "true"
                        };
                        e.channel = ["hotline", "online", "store"]
                            [weighted(&mut self.rng, &[0.7, 0.2, 0.1])];
                    }
                    "service_call" => {
                        e.channel =
                            if self.profile.group.is_some() && self.rng.random::<f64>() < 0.3 {
                                "manager"
                            } else {
                                "hotline"
                            };
                    }
                    "competitor_service_call" | "forward_to_competitor" => {
                        e.competitor = COMPETITORS[self.rng.random_range(0..COMPETITORS.len())];
                    }
                    _ => {}
                }
                self.events.push(e);
            }
        }
    }
}
