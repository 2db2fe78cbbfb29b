//! The churn story's drivers: when an intent to leave forms and for which cause, the path it
//! takes out, how it shows in usage, and the retention campaigns that may save it.

use chrono::{Datelike, Duration};
use rand::Rng;

use super::{Out, Simulation, add_months, next_month, weighted};
use crate::catalog::{
    Cause, HISTORIC_OFFERS, PLANS, contact_cost, offer_cost, plan_index, save_probability,
    spring_festival,
};
use crate::csvline::Line;

/// Overall scale of churn hazards; calibrated to about 1.5% quantity churn a month.
pub(super) const HAZARD_SCALE: f64 = 2.5;

/// How an intent ends: a way out of the network (quantity churn) or of spending less while
/// staying (value churn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    ArrearsCancel,
    RequestedStopCancel,
    PortOut,
    FormalCancel,
    Downgrade,
    UsageDrop,
}

impl Path {
    pub(super) const ALL: [Path; 6] = [
        Path::ArrearsCancel,
        Path::RequestedStopCancel,
        Path::PortOut,
        Path::FormalCancel,
        Path::Downgrade,
        Path::UsageDrop,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Path::ArrearsCancel => "arrears_suspension_cancel",
            Path::RequestedStopCancel => "requested_stop_cancel",
            Path::PortOut => "port_out",
            Path::FormalCancel => "formal_cancel",
            Path::Downgrade => "plan_downgrade",
            Path::UsageDrop => "usage_drop",
        }
    }

    pub(super) fn is_value(self) -> bool {
        matches!(self, Path::Downgrade | Path::UsageDrop)
    }
}

/// An intent to leave, from the month it forms to the exit.
pub(super) struct Intent {
    pub(super) cause: Cause,
    /// Month the intent formed.
    pub(super) start: usize,
    pub(super) path: Path,
    /// Formed because friends in the calling circle left: it shows in the calls to their new
    /// network far more than in visits to a competitor's shop.
    pub(super) social: bool,
}

/// How the cause of an intent shows in the signal months, as multipliers and event rates.
pub(super) struct Signals {
    pub(super) voice: f64,
    pub(super) data: f64,
    pub(super) vas: f64,
    pub(super) active: f64,
    pub(super) calls_in: f64,
}

impl Simulation<'_> {
    pub(super) fn draw_intent(
        &mut self,
        t: usize,
        tenure_months: i64,
        disputed: bool,
    ) -> Option<Cause> {
        let month = self.world.months[t];
        let month_end = self.world.month_end(t);
        let mut exposure = Exposure::at(&self.contracts, month, month_end, tenure_months, disputed);
        exposure.cell = self.world.cells.cells[self.cell].endured(t);
        let hazards = intent_hazards(&self.traits, &exposure);
        let total: f64 = hazards.iter().sum::<f64>() * HAZARD_SCALE;
        if self.rng.random::<f64>() >= total {
            return None;
        }
        Some(Cause::ALL[weighted(&mut self.rng, &hazards)])
    }

    pub(super) fn draw_path(&mut self, cause: Cause) -> Path {
        draw_path(&mut self.rng, cause)
    }

    /// What a subscriber leaving for `cause` says when asked at the counter or on the port-out
    /// retention call, as recorded: often the cause, often the polite "too expensive" or
    /// "other", sometimes nothing. Drawn from its own stream, so no other draw moves.
    pub(super) fn stated_reason(&self, cause: Cause) -> &'static str {
        let r: f64 = super::rng_for(
            self.world.seed,
            super::STREAM_STATED,
            self.profile.id as u64,
        )
        .random();
        if r < 0.15 {
            ""
        } else if r < 0.25 {
            "other"
        } else if r < 0.4 {
            "price"
        } else {
            match cause {
                Cause::Price => "price",
                Cause::Network => "network_quality",
                Cause::ContractExpiry => "contract_expiry",
                Cause::Competitor => "competitor_lure",
                Cause::Billing => "billing_arrears",
                Cause::Relocation => "relocation",
            }
        }
    }

    /// The signal profile of a cause, `k` months after the intent formed (k = 0, 1, 2, then the
    /// exit months).
    pub(super) fn signals(intent: &Intent, k: usize) -> Signals {
        if intent.social {
            let s = (k as f64 + 1.0).min(3.0) / 3.0;
            return Signals {
                voice: 1.0 - 0.2 * s,
                data: 1.0,
                vas: 1.0,
                active: 1.0,
                calls_in: 1.0,
            };
        }
        Self::cause_signals(intent.cause, k)
    }

    fn cause_signals(cause: Cause, k: usize) -> Signals {
        let s = (k as f64 + 1.0).min(3.0) / 3.0;
        let mut sig = Signals {
            voice: 1.0,
            data: 1.0,
            vas: 1.0,
            active: 1.0,
            calls_in: 1.0,
        };
        match cause {
            Cause::Price => {
                sig.vas = 1.0 - 0.6 * s;
                sig.voice = 1.0 - 0.2 * s;
                sig.data = 1.0 - 0.15 * s;
            }
            Cause::Network => {
                sig.data = 1.0 - 0.35 * s;
                sig.voice = 1.0 - 0.15 * s;
            }
            Cause::ContractExpiry => {
                sig.voice = 1.0 - 0.15 * s;
            }
            Cause::Competitor => {
                sig.voice = 1.0 - 0.45 * s;
                sig.data = 1.0 - 0.25 * s;
                sig.vas = 1.0 - 0.3 * s;
            }
            Cause::Billing => {
                sig.vas = 1.0 - 0.3 * s;
            }
            Cause::Relocation => {
                sig.active = 1.0 - 0.35 * s;
                sig.calls_in = 1.0 - 0.4 * s;
                sig.voice = 1.0 - 0.3 * s;
            }
        }
        sig
    }

    /// Runs this month's campaign for the subscriber, if targeted. Returns (campaign id, offer
    /// kind) when the contact saved a pending intent.
    pub(super) fn campaign(
        &mut self,
        t: usize,
        intent: Option<&Intent>,
        plan: usize,
        out: &mut Out,
    ) -> Option<(String, &'static str)> {
        let tr = &self.traits;
        let p_target = if intent.is_some() {
            0.6
        } else {
            0.02 + 0.08 * (tr.competitor_exposure + tr.price_sensitivity) / 2.0
        };
        if self.rng.random::<f64>() >= p_target {
            return None;
        }
        let month = self.world.months[t];
        let campaign_id = format!("HC{}{:02}", month.year(), month.month());
        let channel = match self.profile.channel {
            "app" => "sms",
            other => other,
        };
        let contact_date = month + Duration::days(self.rng.random_range(2..25));
        let control = self.rng.random::<f64>() < 0.25;
        let mut line = Line::default();
        line.text(&campaign_id).date(month).int(self.profile.id);
        if control {
            line.text("control")
                .text("")
                .text("")
                .text(channel)
                .date(contact_date)
                .text("false")
                .text("false")
                .float(0.0);
            out.campaign_history.extend_from_slice(line.finish());
            out.counts.campaign_history += 1;
            return None;
        }
        let offer = self.rng.random_range(0..HISTORIC_OFFERS.len());
        let reach = match channel {
            "manager_visit" => 0.9,
            "sms" => 0.6,
            _ => 0.75,
        };
        let reached = self.rng.random::<f64>() < reach;
        let save = intent.map_or(0.0, |i| save_probability(i.cause, offer));
        let saved = reached && intent.is_some() && self.rng.random::<f64>() < save;
        let accepted = saved || (reached && self.rng.random::<f64>() < 0.25);
        let fee = PLANS[plan].fee;
        let cost = contact_cost(channel)
            + if accepted {
                offer_cost(offer, fee)
            } else {
                0.0
            };
        line.text("treatment")
            .text(HISTORIC_OFFERS[offer].id)
            .text(HISTORIC_OFFERS[offer].kind)
            .text(channel)
            .date(contact_date)
            .text(if reached { "true" } else { "false" })
            .text(if accepted { "true" } else { "false" })
            .float(cost);
        out.campaign_history.extend_from_slice(line.finish());
        out.counts.campaign_history += 1;
        saved.then_some((campaign_id, HISTORIC_OFFERS[offer].kind))
    }
}

pub(super) fn downgrade_target(plan: usize) -> usize {
    let tier = PLANS[plan].tier;
    PLANS
        .iter()
        .enumerate()
        .filter(|(_, p)| p.tier < tier)
        .max_by(|a, b| a.1.fee.total_cmp(&b.1.fee))
        .map_or(plan_index("P008"), |(i, _)| i)
}

/// The way out an intent of `cause` takes.
pub(super) fn draw_path<R: Rng>(rng: &mut R, cause: Cause) -> Path {
    let value_share = match cause {
        Cause::Price => 0.45,
        Cause::Competitor => 0.35,
        Cause::Network => 0.2,
        Cause::ContractExpiry => 0.15,
        Cause::Billing => 0.1,
        Cause::Relocation => 0.0,
    };
    if rng.random::<f64>() < value_share {
        return if cause == Cause::Price
            || cause == Cause::ContractExpiry
            || rng.random::<f64>() < 0.3
        {
            Path::Downgrade
        } else {
            Path::UsageDrop
        };
    }
    let weights = match cause {
        Cause::Relocation => [0.2, 0.1, 0.3, 0.4],
        Cause::Competitor | Cause::ContractExpiry => [0.35, 0.1, 0.45, 0.1],
        Cause::Billing => [0.6, 0.1, 0.2, 0.1],
        _ => [0.55, 0.15, 0.2, 0.1],
    };
    [
        Path::ArrearsCancel,
        Path::RequestedStopCancel,
        Path::PortOut,
        Path::FormalCancel,
    ][weighted(rng, &weights)]
}

/// What, besides its traits, raises or lowers a subscriber's hazard in a month: four facts of
/// the month, each a yes or no.
#[allow(clippy::struct_excessive_bools)]
pub(super) struct Exposure {
    pub(super) tenure_months: i64,
    /// Bound by a contract that runs beyond the next two months.
    pub(super) locked: bool,
    /// A contract ends within three months.
    pub(super) ending_soon: bool,
    /// A billing dispute is open.
    pub(super) disputed: bool,
    /// The month after the Spring Festival, when people move.
    pub(super) after_festival: bool,
    /// Severity of the home cell's degradation, once endured for a month (0 to 1).
    pub(super) cell: f64,
}

impl Exposure {
    /// The exposure in the month starting `month` (ending `month_end`).
    pub(super) fn at(
        contracts: &[super::profile::Contract],
        month: chrono::NaiveDate,
        month_end: chrono::NaiveDate,
        tenure_months: i64,
        disputed: bool,
    ) -> Exposure {
        Exposure {
            tenure_months,
            locked: contracts
                .iter()
                .any(|c| c.start <= month && c.end > add_months(month_end, 2)),
            // Leavers bound by a contract plan their exit for its end: the intent forms in the
            // last months, so they can go right after it.
            ending_soon: contracts
                .iter()
                .any(|c| c.end > month_end && c.end <= add_months(month_end, 3)),
            disputed,
            after_festival: spring_festival(month.year()).is_some_and(|f| {
                let festival_month = f.with_day(1).expect("day 1");
                month == next_month(festival_month)
            }),
            cell: 0.0,
        }
    }
}

/// The monthly hazard of an intent forming, per cause in [`Cause::ALL`]'s order, before
/// [`HAZARD_SCALE`].
pub(super) fn intent_hazards(tr: &super::profile::Traits, e: &Exposure) -> [f64; 6] {
    let tenure = match e.tenure_months {
        ..6 => 1.6,
        6..12 => 1.2,
        12..36 => 1.0,
        36..96 => 0.7,
        _ => 0.5,
    };
    let lock = if e.locked { 0.35 } else { 1.0 };
    [
        0.005 * (0.3 + 2.0 * tr.price_sensitivity.powi(2)) * tenure * lock,
        0.0035
            * (0.1 + 3.0 * tr.network_exposure.powi(2))
            * (1.0 + super::network::DEGRADED_HAZARD * e.cell)
            * tenure
            * lock,
        if e.ending_soon {
            0.06 * (0.4 + tr.competitor_exposure)
        } else {
            0.0
        },
        0.004 * (0.2 + 3.0 * tr.competitor_exposure.powi(2)) * tenure * lock,
        if e.disputed { 0.12 } else { 0.0 },
        0.0006 * if e.after_festival { 4.0 } else { 1.0 },
    ]
}
