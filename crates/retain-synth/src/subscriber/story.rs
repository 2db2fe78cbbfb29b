//! The month-by-month run of one subscriber: intents forming, campaigns, exits and
//! suspensions, payments, and the usage and events of each month, in a fixed order of draws.

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use super::churn::{Intent, Path, downgrade_target};
use super::events::Event;
use super::rows::truth_row;
use super::usage::write_month;
use super::{Out, SIGNAL_MONTHS, SUSPENSION_MONTHS, Simulation, add_months, days_in, random_day};
use crate::catalog::{COMPETITORS, Cause, PLANS};

impl Simulation<'_> {
    pub(super) fn run(&mut self, out: &mut Out) {
        let world = self.world;
        let n = world.months.len();
        let join_month = world.months.iter().rposition(|m| *m <= self.profile.join);
        let first = join_month.unwrap_or(0);
        let mut intent: Option<Intent> = None;
        let mut value_churn_from: Option<usize> = None;
        let mut plan = self.profile.plan;
        let mut dispute_until: Option<usize> = None;
        let mut discount_until: Option<usize> = None;
        let mut bundled: i64 = Poisson::new(0.4 + 0.3 * PLANS[plan].tier as f64)
            .map_or(1.0, |p| p.sample(&mut self.rng)) as i64;
        let vas_base = if self.rng.random::<f64>() < 0.45 {
            LogNormal::new(1.6, 0.6)
                .expect("valid")
                .sample(&mut self.rng)
        } else {
            0.0
        };
        let mut arrears_balance = 0.0_f64;
        let mut truth: Option<(Intent, Option<String>, usize, Option<usize>)> = None;
        // When an intent lured by a competitor formed: the calls to its numbers grow from then.
        let mut lured = n;
        self.status = ("active", self.profile.join);

        for t in first..n {
            let month = world.months[t];
            let month_end = world.month_end(t);
            if self.cancel.is_some_and(|c| c < month) {
                break;
            }
            let tenure_months = (month - self.profile.join).num_days() / 30;

            // 1. An intent to leave may form. A member following its group out forms it in the
            // group's month, unless it is already leaving or has left (an exit covers value
            // churn and cancellation); that month's own draws are then skipped.
            let follows = self.follow.filter(|(m, ..)| *m == t);
            if let Some((_, path, social)) = follows
                && intent.is_none()
                && truth.is_none()
            {
                intent = Some(Intent {
                    cause: Cause::Competitor,
                    start: t,
                    path,
                    social,
                });
                out.counts.churn_intents += 1;
            } else if intent.is_none() && value_churn_from.is_none() && tenure_months >= 1 {
                if dispute_until.is_none_or(|u| u < t) && self.rng.random::<f64>() < 0.003 {
                    dispute_until = Some(t + 1);
                }
                let disputed = dispute_until.is_some_and(|u| u >= t);
                if let Some(cause) = self.draw_intent(t, tenure_months, disputed) {
                    let path = self.draw_path(cause);
                    intent = Some(Intent {
                        cause,
                        start: t,
                        path,
                        social: false,
                    });
                    out.counts.churn_intents += 1;
                }
            }

            if let Some(i) = &intent
                && i.cause == Cause::Competitor
            {
                lured = lured.min(i.start);
            }

            // 2. A retention campaign may reach the subscriber while the signals show.
            let in_signals = intent
                .as_ref()
                .is_some_and(|i| t >= i.start && t < i.start + SIGNAL_MONTHS);
            if world.campaign_months.contains(&t)
                && tenure_months >= 3
                && self.cancel.is_none()
                && let Some(saved_by) =
                    self.campaign(t, intent.as_ref().filter(|_| in_signals), plan, out)
            {
                {
                    if saved_by.1 == "fee_discount" {
                        discount_until = Some(t + 6);
                    }
                    let saved = intent.take().expect("saved only with an intent");
                    out.counts.saved_by_campaigns += 1;
                    truth_row(
                        out,
                        self.profile.id,
                        &saved,
                        "saved",
                        Some(&saved_by.0),
                        None,
                        None,
                        world,
                    );
                }
            }

            // 3. The exit, three months after the intent formed. A device subsidy with months
            // still to run makes leaving expensive: half of those intents fade.
            if let Some(i) = &intent
                && t == i.start + SIGNAL_MONTHS
                && self.contracts.iter().any(|c| {
                    c.kind == "device_subsidy"
                        && c.start <= month
                        && c.end > add_months(month_end, 3)
                })
                && self.rng.random::<f64>() < 0.5
            {
                let deterred = intent.take().expect("checked");
                truth_row(
                    out,
                    self.profile.id,
                    &deterred,
                    "deterred",
                    None,
                    None,
                    None,
                    world,
                );
            }
            let mut exit_now = false;
            if let Some(i) = &intent
                && t == i.start + SIGNAL_MONTHS
                && truth.is_none()
            {
                exit_now = true;
                let path = i.path;
                let churn_month = match path {
                    Path::ArrearsCancel | Path::RequestedStopCancel => t + SUSPENSION_MONTHS,
                    _ => t,
                };
                if path.is_value() {
                    value_churn_from = Some(t);
                    out.counts.value_churners += 1;
                } else {
                    out.counts.quantity_churners += 1;
                }
                let intent = intent.take().expect("checked");
                truth = Some((intent, None, t, Some(churn_month)));
            }

            // 4. Usage of the month.
            let signals = match (&intent, &truth) {
                (Some(i), _) if t >= i.start => Some(Self::signals(i, t - i.start)),
                _ => None,
            };
            let exiting_path = truth.as_ref().map(|(i, ..)| i.path);
            let days = days_in(month);
            let alive_from = self.profile.join.max(month);
            let mut exists_days = (month_end - alive_from).num_days() + 1;

            if exit_now {
                let cause = truth
                    .as_ref()
                    .map(|(i, ..)| i.cause)
                    .expect("exit has a cause");
                match exiting_path.expect("exit has a path") {
                    Path::Downgrade => {
                        let lower = downgrade_target(plan);
                        let at = self.random_time(alive_from, month_end);
                        let mut e = Event::new(at, "plan_change");
                        e.from_plan = PLANS[plan].id;
                        e.to_plan = PLANS[lower].id;
                        e.channel = ["store", "online", "hotline"][self.rng.random_range(0..3)];
                        if e.channel != "online" {
                            e.stated_reason = self.stated_reason(cause);
                        }
                        self.events.push(e);
                        plan = lower;
                    }
                    Path::UsageDrop => {
                        if self.rng.random::<f64>() < 0.4 {
                            let lower = downgrade_target(plan);
                            let at = self.random_time(alive_from, month_end);
                            let mut e = Event::new(at, "plan_change");
                            e.from_plan = PLANS[plan].id;
                            e.to_plan = PLANS[lower].id;
                            e.channel = "online";
                            self.events.push(e);
                            plan = lower;
                        }
                        bundled = (bundled - 1).max(0);
                    }
                    Path::PortOut => {
                        let day = random_day(&mut self.rng, alive_from, month_end);
                        let at = day
                            .and_hms_opt(
                                self.rng.random_range(9..20),
                                self.rng.random_range(0..60),
                                0,
                            )
                            .expect("valid");
                        let mut code = Event::new(
                            at - Duration::days(self.rng.random_range(1..5)),
                            "service_call",
                        );
                        code.channel = "sms";
                        code.detail = "查询携号转网授权码";
                        self.events.push(code);
                        let mut e = Event::new(at, "port_out");
                        e.competitor = COMPETITORS[self.rng.random_range(0..COMPETITORS.len())];
                        e.channel = "store";
                        e.stated_reason = self.stated_reason(cause);
                        self.events.push(e);
                        self.events
                            .push(Event::new(at + Duration::minutes(5), "cancel"));
                        self.cancel = Some(day);
                    }
                    Path::FormalCancel => {
                        let day = random_day(&mut self.rng, alive_from, month_end);
                        let at = self.time_on(day);
                        let mut e = Event::new(at, "stop_request");
                        e.channel = "store";
                        e.detail = if cause == Cause::Relocation {
                            "异地迁移"
                        } else {
                            ""
                        };
                        e.stated_reason = self.stated_reason(cause);
                        self.events.push(e);
                        let cancel_day =
                            (day + Duration::days(self.rng.random_range(0..8))).min(month_end);
                        let at = self.time_on(cancel_day);
                        self.events.push(Event::new(at, "cancel"));
                        self.cancel = Some(cancel_day);
                    }
                    Path::ArrearsCancel | Path::RequestedStopCancel => {
                        let from = random_day(
                            &mut self.rng,
                            alive_from,
                            month_end.min(alive_from + Duration::days(20)),
                        );
                        if exiting_path == Some(Path::RequestedStopCancel) {
                            let mut e = Event::new(
                                self.time_on(from - Duration::days(1).min(from - alive_from)),
                                "stop_request",
                            );
                            e.channel = "hotline";
                            e.detail = "报停";
                            e.stated_reason = self.stated_reason(cause);
                            self.events.push(e);
                        }
                        let mut e = Event::new(self.time_on(from), "suspension");
                        e.category = if exiting_path == Some(Path::ArrearsCancel) {
                            "arrears"
                        } else {
                            "request"
                        };
                        self.events.push(e);
                        let cancel_month = add_months(month, SUSPENSION_MONTHS as i64);
                        let cancel_day =
                            cancel_month + Duration::days(self.rng.random_range(0..10));
                        self.suspensions
                            .push((from, cancel_day - Duration::days(1)));
                        if cancel_day <= world.window_end() {
                            let at = self.time_on(cancel_day);
                            self.events.push(Event::new(at, "cancel"));
                            self.cancel = Some(cancel_day);
                        } else {
                            self.status = ("suspended", from);
                        }
                    }
                }
            }

            // A short arrears suspension now and then for late payers (noise for the rules).
            if !exit_now
                && self.traits.late_payer
                && self.cancel.is_none()
                && self.suspended_on(month_end).is_none()
                && self.rng.random::<f64>() < 0.03
            {
                let from = random_day(&mut self.rng, alive_from, month_end);
                let to = (from + Duration::days(self.rng.random_range(2..10))).min(month_end);
                let mut e = Event::new(self.time_on(from), "suspension");
                e.category = "arrears";
                self.events.push(e);
                if to < month_end {
                    let at = self.time_on(to + Duration::days(1));
                    self.events.push(Event::new(at, "resume"));
                    self.suspensions.push((from, to));
                } else {
                    self.suspensions.push((from, to + Duration::days(3)));
                    let resume = to + Duration::days(4);
                    let at = self.time_on(resume);
                    self.events.push(Event::new(at, "resume"));
                }
            }

            if let Some(c) = self.cancel
                && c <= month_end
            {
                exists_days = (c - alive_from).num_days().max(0);
            }
            let suspended_days =
                self.suspended_days(alive_from, alive_from + Duration::days(exists_days - 1));
            let live_days = (exists_days - suspended_days).max(0);
            let live_share = live_days as f64 / days as f64;

            let usage = self.month_usage(
                t,
                plan,
                live_share,
                signals.as_ref(),
                value_churn_from.is_some_and(|v| t >= v),
                discount_until.is_some_and(|d| t <= d),
                bundled,
                vas_base,
            );
            let mut usage = usage;
            // Payments: most pay the bill; silent leavers stop paying; disputes leave a balance.
            let silent_exit = matches!(exiting_path, Some(Path::ArrearsCancel));
            let disputed = dispute_until.is_some_and(|u| u >= t);
            let paid = if silent_exit
                || (signals.is_some()
                    && matches!(intent.as_ref().map(|i| i.path), Some(Path::ArrearsCancel))
                    && t + 1 >= intent.as_ref().map_or(0, |i| i.start + SIGNAL_MONTHS))
            {
                0.0
            } else if disputed {
                (usage.fee + arrears_balance) * 0.6
            } else if self.traits.late_payer && self.rng.random::<f64>() < 0.3 {
                usage.fee * 0.5
            } else {
                usage.fee + arrears_balance
            };
            arrears_balance = (arrears_balance + usage.fee - paid).max(0.0);
            usage.recharge = if paid > 0.0 {
                (paid / 10.0).ceil() * 10.0
            } else {
                0.0
            };
            usage.arrears = arrears_balance;
            usage.active_days = ((live_days as f64)
                * (signals.as_ref().map_or(1.0, |s| s.active))
                * self.rng.random_range(0.85..1.0))
            .round() as i64;
            if live_days == 0 {
                usage.active_days = 0;
            }
            self.month_events(
                t,
                alive_from,
                month_end.min(self.cancel.unwrap_or(month_end)),
                intent.as_ref(),
                disputed,
                tenure_months,
            );
            self.months[t] = Some(usage);
            write_month(
                out,
                self.profile.id,
                month,
                &usage,
                suspended_days,
                PLANS[plan].id,
            );
        }

        if let Some((intent, _, exit, churn_month)) = truth {
            truth_row(
                out,
                self.profile.id,
                &intent,
                "churned",
                None,
                Some(exit),
                churn_month,
                world,
            );
        }
        if let Some(pending) = intent {
            let exit = pending.start + SIGNAL_MONTHS;
            truth_row(
                out,
                self.profile.id,
                &pending,
                "pending",
                None,
                Some(exit),
                None,
                world,
            );
        }
        if let Some(c) = self.cancel {
            self.status = ("cancelled", c);
        }
        out.lives.push(self.life(lured));
        // The subscriber row shows the plan at the end of the window.
        self.profile.plan = plan;
        self.write(out);
    }

    /// What the call records need of the subscriber's life ([`super::circle::Life`]).
    fn life(&self, lured: usize) -> super::circle::Life {
        let world = self.world;
        let n = world.months.len();
        let month_of = |day: NaiveDate| world.months.iter().rposition(|m| *m <= day);
        let first = month_of(self.profile.join).unwrap_or(0);
        let gone = self
            .cancel
            .map_or(n, |c| month_of(c).map_or(0, |t| t + 1).min(n));
        let ported = self
            .events
            .iter()
            .find(|e| e.kind == "port_out")
            .and_then(|e| COMPETITORS.iter().position(|c| *c == e.competitor))
            .map_or(0, |k| k as u8 + 1);
        super::circle::Life {
            first: first as u16,
            gone: gone as u16,
            ported,
            lured: lured.min(n) as u16,
            exposure: (self.traits.competitor_exposure * 100.0).round() as u8,
        }
    }

    pub(super) fn suspended_on(&self, day: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        self.suspensions
            .iter()
            .copied()
            .find(|(a, b)| *a <= day && day <= *b)
    }

    pub(super) fn suspended_days(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return 0;
        }
        days_covered(&self.suspensions, from, to)
    }
}

/// Days from `from` to `to` (both included) inside any of `spans` (inclusive ranges). Spans may
/// overlap (a short arrears stop spilling into a month where a long one starts), so the days are
/// counted over their union, or a month could hold more suspended days than it has.
fn days_covered(spans: &[(NaiveDate, NaiveDate)], from: NaiveDate, to: NaiveDate) -> i64 {
    let mut clipped: Vec<(NaiveDate, NaiveDate)> = spans
        .iter()
        .map(|(a, b)| ((*a).max(from), (*b).min(to)))
        .filter(|(a, b)| a <= b)
        .collect();
    clipped.sort_unstable();
    let mut days = 0;
    let mut covered_to: Option<NaiveDate> = None;
    for (a, b) in clipped {
        let start = match covered_to {
            Some(c) if c >= a => c + Duration::days(1),
            _ => a,
        };
        if start <= b {
            days += (b - start).num_days() + 1;
        }
        covered_to = Some(covered_to.map_or(b, |c| c.max(b)));
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn overlapping_suspensions_count_each_day_once() {
        let spans = [(day(10), day(31)), (day(5), day(14)), (day(20), day(25))];
        assert_eq!(days_covered(&spans, day(1), day(31)), 27);
        assert_eq!(days_covered(&spans, day(12), day(12)), 1);
        assert_eq!(days_covered(&spans, day(1), day(4)), 0);
        assert_eq!(days_covered(&[], day(1), day(31)), 0);
        assert_eq!(days_covered(&spans, day(31), day(1)), 0);
        let apart = [(day(1), day(2)), (day(30), day(31))];
        assert_eq!(days_covered(&apart, day(1), day(31)), 4);
    }
}
