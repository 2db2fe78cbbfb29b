//! The life of one synthetic subscriber: profile, latent traits, contracts, monthly and weekly
//! usage, events, past campaign contacts and, for churners, the true cause.
//!
//! Churn follows the operators' observed sequence: an intent forms for a cause; for about three
//! months the cause shows (complaints, competitor calls, forwarding, falling usage); then the
//! subscriber leaves — silently through three months of suspension before cancellation, by
//! port-out, by a formal cancellation at a store, or (value churn) by downgrading and moving
//! usage elsewhere while staying.

use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, LogNormal, Poisson};
use rand_pcg::Pcg64Mcg;

use crate::SynthCounts;
use crate::catalog::{
    CITIES, COMPETITORS, Cause, FAMILY_PLAN, GROUP_PLAN, HISTORIC_OFFERS, PLANS, PROVINCE,
    SENIOR_PLAN, contact_cost, offer_cost, plan_index, save_probability, spring_festival,
};
use crate::csvline::Line;

/// Months of visible signals between the intent to leave and the exit.
const SIGNAL_MONTHS: usize = 3;
/// Months of suspension between a silent exit and the cancellation.
const SUSPENSION_MONTHS: usize = 3;
/// Overall scale of churn hazards; calibrated to about 1.5% quantity churn a month.
const HAZARD_SCALE: f64 = 2.5;

/// Everything shared by all subscribers of one synthetic operator.
pub(crate) struct World {
    pub seed: u64,
    /// First day of each month of the window.
    pub months: Vec<NaiveDate>,
    /// Mondays of the weekly window (the last weeks of the window).
    pub weeks: Vec<NaiveDate>,
    /// Months (indexes into `months`) in which a retention campaign ran.
    pub campaign_months: Vec<usize>,
    pub groups: u64,
}

impl World {
    fn month_end(&self, t: usize) -> NaiveDate {
        next_month(self.months[t]) - Duration::days(1)
    }

    fn window_end(&self) -> NaiveDate {
        self.month_end(self.months.len() - 1)
    }
}

pub(crate) fn next_month(d: NaiveDate) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(1))
        .expect("date in range")
}

fn days_in(month: NaiveDate) -> i64 {
    (next_month(month) - month).num_days()
}

/// A deterministic generator for `(seed, stream, index)`, independent of generation order so
/// chunks can be built in parallel and still give the same operator.
pub(crate) fn rng_for(seed: u64, stream: u64, index: u64) -> Pcg64Mcg {
    let mut x = seed
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    // splitmix64 finalizer: nearby indexes give unrelated streams.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    Pcg64Mcg::seed_from_u64(x)
}

const PREFIXES: [u64; 12] = [134, 135, 136, 137, 138, 139, 150, 151, 152, 157, 158, 159];
const STREAM_SUBSCRIBER: u64 = 1;
const STREAM_FAMILY: u64 = 2;
const STREAM_GROUP: u64 = 3;
const STREAM_COUNTY: u64 = 4;

/// Output buffers of a chunk of subscribers, one per file.
#[derive(Default)]
pub(crate) struct Out {
    pub subscribers: Vec<u8>,
    pub contracts: Vec<u8>,
    pub usage_monthly: Vec<u8>,
    pub usage_weekly: Vec<u8>,
    pub events: Vec<u8>,
    pub campaign_history: Vec<u8>,
    pub truth_churn: Vec<u8>,
    pub truth_traits: Vec<u8>,
    pub counts: SynthCounts,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    ArrearsCancel,
    RequestedStopCancel,
    PortOut,
    FormalCancel,
    Downgrade,
    UsageDrop,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::ArrearsCancel => "arrears_suspension_cancel",
            Path::RequestedStopCancel => "requested_stop_cancel",
            Path::PortOut => "port_out",
            Path::FormalCancel => "formal_cancel",
            Path::Downgrade => "plan_downgrade",
            Path::UsageDrop => "usage_drop",
        }
    }

    fn is_value(self) -> bool {
        matches!(self, Path::Downgrade | Path::UsageDrop)
    }
}

struct Intent {
    cause: Cause,
    /// Month the intent formed.
    start: usize,
    path: Path,
}

struct Traits {
    price_sensitivity: f64,
    network_exposure: f64,
    competitor_exposure: f64,
    data_heaviness: f64,
    voice_heaviness: f64,
    late_payer: bool,
}

struct Profile {
    id: i64,
    msisdn: String,
    join: NaiveDate,
    birth: NaiveDate,
    gender: &'static str,
    city: usize,
    county: usize,
    group: Option<u64>,
    family: Option<u64>,
    plan: usize,
    channel: &'static str,
    branch: String,
    manager: Option<String>,
}

struct Contract {
    kind: &'static str,
    start: NaiveDate,
    end: NaiveDate,
    amount: f64,
}

/// What a month looked like, kept to derive the weekly grain.
#[derive(Clone, Copy, Default)]
struct MonthUsage {
    fee: f64,
    minutes: f64,
    calls_out: f64,
    calls_in: f64,
    data: f64,
    sms: f64,
    vas: f64,
    recharge: f64,
    arrears: f64,
    bundled: i64,
    /// Days the line existed and was not suspended.
    active_days: i64,
}

/// Generates subscriber `index` (0-based) into `out`.
pub(crate) fn generate(world: &World, index: u64, out: &mut Out) {
    let mut rng = rng_for(world.seed, STREAM_SUBSCRIBER, index);
    let (profile, traits, age) = draw_profile(world, index, &mut rng);
    let contracts = draw_contracts(world, &profile, &mut rng);
    let mut sim = Simulation {
        world,
        profile,
        traits,
        contracts,
        rng,
        events: Vec::new(),
        months: vec![None; world.months.len()],
        suspensions: Vec::new(),
        cancel: None,
        status: ("active", NaiveDate::MIN),
        age,
    };
    sim.run(out);
}

fn weighted<R: Rng>(rng: &mut R, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn beta<R: Rng>(rng: &mut R, a: f64, b: f64) -> f64 {
    Beta::new(a, b).expect("valid shape").sample(rng)
}

fn random_day<R: Rng>(rng: &mut R, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0);
    from + Duration::days(rng.random_range(0..=span))
}

fn add_months(d: NaiveDate, months: i64) -> NaiveDate {
    if months >= 0 {
        d.checked_add_months(chrono::Months::new(months as u32))
    } else {
        d.checked_sub_months(chrono::Months::new((-months) as u32))
    }
    .expect("date in range")
}

/// (network badness, competitor strength) of a county: some places have poor coverage, some a
/// strong competitor presence.
fn county_factors(seed: u64, city: usize, county: usize) -> (f64, f64) {
    let mut rng = rng_for(seed, STREAM_COUNTY, (city * 100 + county) as u64);
    let network = if rng.random::<f64>() < 0.25 {
        rng.random_range(0.6..1.0)
    } else {
        rng.random_range(0.1..0.4)
    };
    let competitor = rng.random_range(0.2..1.0);
    (network, competitor)
}

fn draw_location<R: Rng>(rng: &mut R) -> (usize, usize) {
    let weights: Vec<f64> = CITIES.iter().map(|c| c.weight).collect();
    let city = weighted(rng, &weights);
    let county = rng.random_range(0..CITIES[city].counties.len());
    (city, county)
}

fn draw_profile(world: &World, index: u64, rng: &mut Pcg64Mcg) -> (Profile, Traits, i64) {
    let window_start = world.months[0];
    // Families are blocks of consecutive subscribers sharing a home.
    let block = index / 5;
    let mut family_rng = rng_for(world.seed, STREAM_FAMILY, block);
    let in_family_block = family_rng.random::<f64>() < 0.3;
    let family_size = family_rng.random_range(2..=5);
    let family = (in_family_block && index % 5 < family_size).then_some(block);
    let (city, county) = if family.is_some() {
        draw_location(&mut family_rng)
    } else {
        draw_location(rng)
    };
    let group = if family.is_none() && rng.random::<f64>() < 0.15 {
        // A few large accounts and many small ones.
        let g = (rng.random::<f64>().powi(2) * world.groups as f64) as u64;
        Some(g.min(world.groups - 1))
    } else {
        None
    };
    let (city, county) = match group {
        Some(g) => draw_location(&mut rng_for(world.seed, STREAM_GROUP, g)),
        None => (city, county),
    };

    let age: i64 = if group.is_some() {
        rng.random_range(24..58)
    } else {
        match weighted(rng, &[0.2, 0.35, 0.3, 0.15]) {
            0 => rng.random_range(16..26),
            1 => rng.random_range(26..41),
            2 => rng.random_range(41..61),
            _ => rng.random_range(61..82),
        }
    };
    let young = age < 26;
    let senior = age > 60;
    let (net_bad, competitor_strength) = county_factors(world.seed, city, county);
    let wealth: f64 = LogNormal::new(0.0, 0.45).expect("valid").sample(rng);
    let data_heaviness: f64 = LogNormal::new(
        if young {
            0.5
        } else if senior {
            -1.2
        } else {
            0.0
        },
        0.6,
    )
    .expect("valid")
    .sample(rng);
    let voice_heaviness: f64 = LogNormal::new(
        if group.is_some() {
            0.5
        } else if young {
            -0.4
        } else {
            0.0
        },
        0.5,
    )
    .expect("valid")
    .sample(rng);

    // Plan: spend follows wealth and appetite for data; seniors, families and groups have
    // their own plans.
    let plan = if senior && rng.random::<f64>() < 0.4 {
        SENIOR_PLAN
    } else if group.is_some() && rng.random::<f64>() < 0.5 {
        GROUP_PLAN
    } else if family.is_some() && rng.random::<f64>() < 0.4 {
        FAMILY_PLAN
    } else {
        let target = 38.0 * wealth * (0.7 + 0.3 * data_heaviness.min(3.0));
        PLANS
            .iter()
            .enumerate()
            .filter(|(i, _)| ![SENIOR_PLAN, GROUP_PLAN, FAMILY_PLAN].contains(i))
            .min_by(|a, b| {
                (a.1.fee - target)
                    .abs()
                    .total_cmp(&(b.1.fee - target).abs())
            })
            .map_or(2, |(i, _)| i)
    };
    let tier = PLANS[plan].tier as f64;
    let traits = Traits {
        price_sensitivity: (beta(rng, 2.0, 3.0) + if young || senior { 0.15 } else { 0.0 }
            - 0.06 * (tier - 1.0))
            .clamp(0.0, 1.0),
        network_exposure: (net_bad * beta(rng, 2.0, 2.5)).clamp(0.0, 1.0),
        competitor_exposure: (competitor_strength * beta(rng, 2.0, 3.0)
            + if young { 0.1 } else { 0.0 })
        .clamp(0.0, 1.0),
        data_heaviness,
        voice_heaviness,
        late_payer: rng.random::<f64>() < 0.06,
    };

    let months = world.months.len() as i64;
    let join = if rng.random::<f64>() < 0.12 {
        let t = rng.random_range(0..months) as usize;
        random_day(rng, world.months[t], world.month_end(t))
    } else {
        let tenure_days = (rng.random::<f64>().ln() * -1500.0).min(7000.0) as i64 + 1;
        window_start - Duration::days(tenure_days)
    };
    let birth = join.min(window_start) - Duration::days(age * 365 + rng.random_range(0..365));
    let gender = match weighted(rng, &[0.51, 0.47, 0.02]) {
        0 => "male",
        1 => "female",
        _ => "unknown",
    };
    let channel = if group.is_some() && rng.random::<f64>() < 0.5 {
        "manager_visit"
    } else if senior {
        ["outbound_call", "store"][rng.random_range(0..2)]
    } else if young {
        ["app", "sms"][rng.random_range(0..2)]
    } else {
        ["sms", "outbound_call", "app", "store"][weighted(rng, &[0.4, 0.3, 0.2, 0.1])]
    };
    let branch = format!("{}{:02}", CITIES[city].code, county + 1);
    let manager = (group.is_some() || tier >= 4.0 || rng.random::<f64>() < 0.1)
        .then(|| format!("{branch}-M{:02}", rng.random_range(1..=4)));
    // Unique numbers: an odd multiplier coprime with 10^8 permutes the suffixes.
    let suffix = (index
        .wrapping_mul(7919)
        .wrapping_add(world.seed % 100_000_000))
        % 100_000_000;
    let prefix =
        PREFIXES[((index / 100_000_000) as usize + (world.seed as usize)) % PREFIXES.len()];
    let profile = Profile {
        id: 100_000_001 + index as i64,
        msisdn: format!("{prefix}{suffix:08}"),
        join,
        birth,
        gender,
        city,
        county,
        group,
        family,
        plan,
        channel,
        branch,
        manager,
    };
    (profile, traits, age)
}

fn draw_contracts(world: &World, p: &Profile, rng: &mut Pcg64Mcg) -> Vec<Contract> {
    let window_start = world.months[0];
    let window_end = world.window_end();
    let tier = PLANS[p.plan].tier;
    let mut contracts = Vec::new();
    let mut draw = |rng: &mut Pcg64Mcg, kind: &'static str, share: f64, amount: f64| {
        if rng.random::<f64>() >= share {
            return;
        }
        let term = if rng.random::<f64>() < 0.6 { 12 } else { 24 };
        let earliest = p.join.max(add_months(window_start, -term));
        let latest = window_end - Duration::days(20);
        if earliest >= latest {
            return;
        }
        let start = random_day(rng, earliest, latest);
        let end = add_months(start, term) - Duration::days(1);
        contracts.push(Contract {
            kind,
            start,
            end,
            amount: (amount / term as f64 * 100.0).round() / 100.0,
        });
    };
    let device_price = rng.random_range(1200.0..6500.0);
    draw(
        rng,
        "device_subsidy",
        0.22 + 0.07 * tier as f64,
        device_price,
    );
    let commitment = PLANS[p.plan].fee * 12.0 * 0.3;
    draw(rng, "service_contract", 0.18, commitment);
    draw(rng, "device_lease", 0.03, device_price * 1.1);
    contracts
}

struct Event {
    at: chrono::NaiveDateTime,
    kind: &'static str,
    category: &'static str,
    severity: &'static str,
    resolved: &'static str,
    from_plan: &'static str,
    to_plan: &'static str,
    channel: &'static str,
    competitor: &'static str,
    detail: &'static str,
}

impl Event {
    fn new(at: chrono::NaiveDateTime, kind: &'static str) -> Self {
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
        }
    }
}

struct Simulation<'w> {
    world: &'w World,
    profile: Profile,
    traits: Traits,
    contracts: Vec<Contract>,
    rng: Pcg64Mcg,
    events: Vec<Event>,
    months: Vec<Option<MonthUsage>>,
    /// (first day, last day) of each suspension.
    suspensions: Vec<(NaiveDate, NaiveDate)>,
    cancel: Option<NaiveDate>,
    status: (&'static str, NaiveDate),
    age: i64,
}

/// How the cause of an intent shows in the signal months, as multipliers and event rates.
struct Signals {
    voice: f64,
    data: f64,
    vas: f64,
    active: f64,
    calls_in: f64,
}

impl Simulation<'_> {
    fn run(&mut self, out: &mut Out) {
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
        self.status = ("active", self.profile.join);

        for t in first..n {
            let month = world.months[t];
            let month_end = world.month_end(t);
            if self.cancel.is_some_and(|c| c < month) {
                break;
            }
            let tenure_months = (month - self.profile.join).num_days() / 30;

            // 1. An intent to leave may form.
            if intent.is_none() && value_churn_from.is_none() && tenure_months >= 1 {
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
                    });
                    out.counts.churn_intents += 1;
                }
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
                (Some(i), _) if t >= i.start => Some(Self::signals(i.cause, t - i.start)),
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
        // The subscriber row shows the plan at the end of the window.
        self.profile.plan = plan;
        self.write(out);
    }

    fn draw_intent(&mut self, t: usize, tenure_months: i64, disputed: bool) -> Option<Cause> {
        let month = self.world.months[t];
        let month_end = self.world.month_end(t);
        let tenure = match tenure_months {
            ..6 => 1.6,
            6..12 => 1.2,
            12..36 => 1.0,
            36..96 => 0.7,
            _ => 0.5,
        };
        let locked = self
            .contracts
            .iter()
            .any(|c| c.start <= month && c.end > add_months(month_end, 2));
        let lock = if locked { 0.35 } else { 1.0 };
        // Leavers bound by a contract plan their exit for its end: the intent forms in the last
        // months, so they can go right after it.
        let ending_soon = self
            .contracts
            .iter()
            .any(|c| c.end > month_end && c.end <= add_months(month_end, 3));
        let after_festival = spring_festival(month.year()).is_some_and(|f| {
            let festival_month = f.with_day(1).expect("day 1");
            month == next_month(festival_month)
        });
        let tr = &self.traits;
        let hazards = [
            0.005 * (0.3 + 2.0 * tr.price_sensitivity.powi(2)) * tenure * lock,
            0.0035 * (0.1 + 3.0 * tr.network_exposure.powi(2)) * tenure * lock,
            if ending_soon {
                0.06 * (0.4 + tr.competitor_exposure)
            } else {
                0.0
            },
            0.004 * (0.2 + 3.0 * tr.competitor_exposure.powi(2)) * tenure * lock,
            if disputed { 0.12 } else { 0.0 },
            0.0006 * if after_festival { 4.0 } else { 1.0 },
        ];
        let total: f64 = hazards.iter().sum::<f64>() * HAZARD_SCALE;
        if self.rng.random::<f64>() >= total {
            return None;
        }
        Some(Cause::ALL[weighted(&mut self.rng, &hazards)])
    }

    fn draw_path(&mut self, cause: Cause) -> Path {
        let value_share = match cause {
            Cause::Price => 0.45,
            Cause::Competitor => 0.35,
            Cause::Network => 0.2,
            Cause::ContractExpiry => 0.15,
            Cause::Billing => 0.1,
            Cause::Relocation => 0.0,
        };
        if self.rng.random::<f64>() < value_share {
            return if cause == Cause::Price
                || cause == Cause::ContractExpiry
                || self.rng.random::<f64>() < 0.3
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
        ][weighted(&mut self.rng, &weights)]
    }

    /// The signal profile of a cause, `k` months after the intent formed (k = 0, 1, 2, then the
    /// exit months).
    fn signals(cause: Cause, k: usize) -> Signals {
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

    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn month_usage(
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

    fn time_on(&mut self, day: NaiveDate) -> chrono::NaiveDateTime {
        day.and_hms_opt(
            self.rng.random_range(8..22),
            self.rng.random_range(0..60),
            self.rng.random_range(0..60),
        )
        .expect("valid time")
    }

    fn random_time(&mut self, from: NaiveDate, to: NaiveDate) -> chrono::NaiveDateTime {
        let day = random_day(&mut self.rng, from, to);
        self.time_on(day)
    }

    fn suspended_on(&self, day: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        self.suspensions
            .iter()
            .copied()
            .find(|(a, b)| *a <= day && day <= *b)
    }

    fn suspended_days(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return 0;
        }
        days_covered(&self.suspensions, from, to)
    }

    /// Background contacts plus the signals of a pending intent.
    fn month_events(
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
                0.01 + 0.06 * tr.network_exposure + 0.9 * is(Cause::Network),
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
                    + 0.6 * is(Cause::Competitor)
                    + 0.5 * is(Cause::ContractExpiry),
            ),
            (
                "forward_to_competitor",
                "",
                0.002 + 1.2 * is(Cause::Competitor) + 0.3 * is(Cause::ContractExpiry),
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

    /// Runs this month's campaign for the subscriber, if targeted. Returns (campaign id, offer
    /// kind) when the contact saved a pending intent.
    fn campaign(
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

    fn write(&mut self, out: &mut Out) {
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
            .text(&p.group.map(|g| format!("G{g:05}")).unwrap_or_default())
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
                .text(e.detail);
            out.events.extend_from_slice(line.finish());
            out.counts.events += 1;
        }

        self.write_weeks(out);

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

    /// The weekly grain: each day gets its month's usage spread over the month's live days.
    fn write_weeks(&self, out: &mut Out) {
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

fn downgrade_target(plan: usize) -> usize {
    let tier = PLANS[plan].tier;
    PLANS
        .iter()
        .enumerate()
        .filter(|(_, p)| p.tier < tier)
        .max_by(|a, b| a.1.fee.total_cmp(&b.1.fee))
        .map_or(plan_index("P008"), |(i, _)| i)
}

fn write_month(
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

#[allow(clippy::too_many_arguments)]
fn truth_row(
    out: &mut Out,
    id: i64,
    intent: &Intent,
    outcome: &str,
    saved_by: Option<&str>,
    exit: Option<usize>,
    churn_month: Option<usize>,
    world: &World,
) {
    let month_text = |t: usize| {
        let n = world.months.len();
        let date = if t < n {
            world.months[t]
        } else {
            add_months(world.months[n - 1], (t - n + 1) as i64)
        };
        date.format("%Y-%m").to_string()
    };
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
