//! The subscriber's rows in the export (profile, contracts, sorted events), its latent traits
//! and its churn truth, in the files' column order.

use chrono::Duration;

use super::churn::Intent;
use super::group::group_id;
use super::{Out, Simulation, World};
use crate::catalog::{CITIES, PLANS, PROVINCE};
use crate::csvline::Line;

impl Simulation<'_> {
    pub(super) fn write(&mut self, out: &mut Out) {
        let p = &self.profile;
        let city = &CITIES[p.city];
        let mut line = Line::default();
        line.int(p.id)
            .text(&p.msisdn)
            .date(p.join)
            .date(p.birth)
            .text(p.gender)
            .text(PROVINCE)
            .text(city.name)
            .text(city.counties[p.county])
            .text(if p.group.is_some() {
                "group_member"
            } else {
                "personal"
            })
            .text(&p.group.map(group_id).unwrap_or_default())
            .text(&p.family.map(|f| format!("F{f:07}")).unwrap_or_default())
            .text(PLANS[p.plan].id)
            .text(p.channel)
            .text(&p.branch)
            .text(p.manager.as_deref().unwrap_or(""))
            .text(self.status.0)
            .date(self.status.1);
        out.subscribers.extend_from_slice(line.finish());
        out.counts.subscribers += 1;

        for c in &self.contracts {
            let mut line = Line::default();
            line.int(p.id)
                .text(c.kind)
                .date(c.start)
                .date(c.end)
                .float(c.amount);
            out.contracts.extend_from_slice(line.finish());
            out.counts.contracts += 1;
        }

        // Events sorted by time; equal (time, kind) pairs are moved a second apart so the
        // event key stays unique as a billing system's would.
        self.events
            .retain(|e| self.cancel.is_none_or(|c| e.at.date() <= c));
        self.events
            .sort_by(|a, b| a.at.cmp(&b.at).then(a.kind.cmp(b.kind)));
        for i in 1..self.events.len() {
            if self.events[i].at <= self.events[i - 1].at
                && self.events[i].kind == self.events[i - 1].kind
            {
                self.events[i].at = self.events[i - 1].at + Duration::seconds(1);
            }
        }
        for e in &self.events {
            let mut line = Line::default();
            line.int(p.id)
                .text(&e.at.format("%Y-%m-%d %H:%M:%S").to_string())
                .text(e.kind)
                .text(e.category)
                .text(e.severity)
                .text(e.resolved)
                .text(e.from_plan)
                .text(e.to_plan)
                .text(e.channel)
                .text(e.competitor)
                .text(e.detail)
                .text(e.stated_reason);
            out.events.extend_from_slice(line.finish());
            out.counts.events += 1;
        }

        self.write_weeks(out);
        self.write_network(out);

        let t = &self.traits;
        let mut line = Line::default();
        line.int(p.id)
            .float(t.price_sensitivity)
            .float(t.network_exposure)
            .float(t.competitor_exposure)
            .float(t.data_heaviness)
            .float(t.voice_heaviness)
            .text(if t.late_payer { "true" } else { "false" });
        out.truth_traits.extend_from_slice(line.finish());
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn truth_row(
    out: &mut Out,
    id: i64,
    intent: &Intent,
    outcome: &str,
    saved_by: Option<&str>,
    exit: Option<usize>,
    churn_month: Option<usize>,
    world: &World,
) {
    let month_text = |t: usize| world.month_text(t);
    let mut line = Line::default();
    line.int(id)
        .text(outcome)
        .text(if intent.path.is_value() {
            "value"
        } else {
            "quantity"
        })
        .text(intent.cause.name())
        .text(intent.path.name())
        .text(&month_text(intent.start))
        .text(&exit.map(month_text).unwrap_or_default())
        .text(&churn_month.map(month_text).unwrap_or_default())
        .text(saved_by.unwrap_or(""));
    out.truth_churn.extend_from_slice(line.finish());
}
