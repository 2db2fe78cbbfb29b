//! Usage: a month's calls, data, messages and fee drawn from the traits and the signals, and
//! the monthly and weekly rows it becomes.

use chrono::{Datelike, Duration, NaiveDate};
use rand_distr::{Distribution, LogNormal, Poisson};

use super::churn::Signals;
use super::{Out, Simulation, days_in};
use crate::catalog::{PLANS, spring_festival};
use crate::csvline::Line;

/// What a month looked like, kept to derive the weekly grain.
#[derive(Clone, Copy, Default)]
pub(super) struct MonthUsage {
    pub(super) fee: f64,
    pub(super) minutes: f64,
    pub(super) calls_out: f64,
    pub(super) calls_in: f64,
    pub(super) data: f64,
    pub(super) sms: f64,
    pub(super) vas: f64,
    pub(super) recharge: f64,
    pub(super) arrears: f64,
    pub(super) bundled: i64,
    /// Days the line existed and was not suspended.
    pub(super) active_days: i64,
}

impl Simulation<'_> {
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    pub(super) fn month_usage(
        &mut self,
        t: usize,
        plan: usize,
        live_share: f64,
        signals: Option<&Signals>,
        value_churned: bool,
        discounted: bool,
        bundled: i64,
        vas_base: f64,
    ) -> MonthUsage {
        let month = self.world.months[t];
        let p = &PLANS[plan];
        let festival = spring_festival(month.year()).is_some_and(|f| f.month() == month.month());
        let season_voice = if festival { 1.2 } else { 1.0 };
        let season_data = if festival {
            1.12
        } else if matches!(month.month(), 7 | 8) && self.age < 26 {
            1.08
        } else {
            1.0
        };
        let noise = LogNormal::new(0.0, 0.12).expect("valid");
        let senior = self.age > 60;
        let one = Signals {
            voice: 1.0,
            data: 1.0,
            vas: 1.0,
            active: 1.0,
            calls_in: 1.0,
        };
        let sig = signals.unwrap_or(&one);
        let (vc_voice, vc_data, vc_vas) = if value_churned {
            (0.45, 0.5, 0.2)
        } else {
            (1.0, 1.0, 1.0)
        };
        let minutes = 160.0
            * self.traits.voice_heaviness
            * if senior { 0.8 } else { 1.0 }
            * season_voice
            * sig.voice
            * vc_voice
            * noise.sample(&mut self.rng)
            * live_share;
        let data = 9000.0
            * self.traits.data_heaviness
            * season_data
            * sig.data
            * vc_data
            * noise.sample(&mut self.rng)
            * live_share;
        let call_len = if senior { 3.2 } else { 2.4 };
        let calls = minutes / call_len;
        let calls_out = calls * 0.55;
        let calls_in = calls * 0.45 * sig.calls_in;
        let sms = Poisson::new((if senior { 3.0 } else { 8.0 }) * live_share + 0.01)
            .map_or(0.0, |d| d.sample(&mut self.rng));
        let vas = vas_base * sig.vas * vc_vas * noise.sample(&mut self.rng) * live_share;
        let overage_data = ((data - p.data_mb as f64).max(0.0) * 0.005).min(60.0);
        let overage_voice = ((minutes - p.minutes as f64).max(0.0) * 0.15).min(150.0);
        let mut fee = (p.fee * live_share.min(1.0) + overage_data + overage_voice + vas)
            * if discounted { 0.8 } else { 1.0 };
        if live_share == 0.0 {
            fee = 0.0;
        }
        MonthUsage {
            fee: round2(fee),
            minutes: minutes.round(),
            calls_out: calls_out.round(),
            calls_in: calls_in.round(),
            data: round2(data),
            sms,
            vas: round2(vas),
            recharge: 0.0,
            arrears: 0.0,
            bundled: if live_share > 0.0 { bundled } else { 0 },
            active_days: 0,
        }
    }

    /// The weekly grain: each day gets its month's usage spread over the month's live days.
    pub(super) fn write_weeks(&self, out: &mut Out) {
        let world = self.world;
        for &monday in &world.weeks {
            let sunday = monday + Duration::days(6);
            if sunday < self.profile.join || self.cancel.is_some_and(|c| c <= monday) {
                continue;
            }
            let mut acc = MonthUsage::default();
            let mut suspended = 0;
            let mut live = 0;
            let mut last_month: Option<MonthUsage> = None;
            for d in 0..7 {
                let day = monday + Duration::days(d);
                let Some(t) = world.months.iter().rposition(|m| *m <= day) else {
                    continue;
                };
                let Some(month) = self.months.get(t).copied().flatten() else {
                    continue;
                };
                last_month = Some(month);
                if day < self.profile.join || self.cancel.is_some_and(|c| day >= c) {
                    continue;
                }
                if self.suspended_on(day).is_some() {
                    suspended += 1;
                    continue;
                }
                live += 1;
                let share = 1.0
                    / (days_in(world.months[t])
                        - self.suspended_days(world.months[t], world.month_end(t)))
                    .max(1) as f64;
                acc.fee += month.fee * share;
                acc.minutes += month.minutes * share;
                acc.calls_out += month.calls_out * share;
                acc.calls_in += month.calls_in * share;
                acc.data += month.data * share;
                acc.sms += month.sms * share;
                acc.vas += month.vas * share;
                acc.recharge += month.recharge * share;
            }
            let Some(month) = last_month else { continue };
            let active = (f64::from(live) * month.active_days as f64
                / days_in(monday.with_day(1).expect("day 1")).max(1) as f64
                * 1.1)
                .round()
                .min(f64::from(live)) as i64;
            let mut line = Line::default();
            line.int(self.profile.id)
                .date(monday)
                .float(acc.fee)
                .int(acc.minutes.round() as i64)
                .int(acc.calls_out.round() as i64)
                .int(acc.calls_in.round() as i64)
                .float(acc.data)
                .int(acc.sms.round() as i64)
                .int(month.bundled)
                .float(acc.vas)
                .float(acc.recharge)
                .float(month.arrears)
                .int(suspended)
                .int(active)
                .text("");
            out.usage_weekly.extend_from_slice(line.finish());
            out.counts.usage_weekly += 1;
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(super) fn write_month(
    out: &mut Out,
    id: i64,
    month: NaiveDate,
    u: &MonthUsage,
    suspended_days: i64,
    plan: &str,
) {
    let mut line = Line::default();
    line.int(id)
        .text(&month.format("%Y-%m").to_string())
        .float(u.fee)
        .int(u.minutes as i64)
        .int(u.calls_out as i64)
        .int(u.calls_in as i64)
        .float(u.data)
        .int(u.sms as i64)
        .int(u.bundled)
        .float(u.vas)
        .float(u.recharge)
        .float(u.arrears)
        .int(suspended_days)
        .int(u.active_days)
        .text(plan);
    out.usage_monthly.extend_from_slice(line.finish());
    out.counts.usage_monthly += 1;
}
