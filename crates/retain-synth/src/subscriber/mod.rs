//! The life of one synthetic subscriber: profile, latent traits, contracts, monthly and weekly
//! usage, events, past campaign contacts and, for churners, the true cause.
//!
//! Churn follows the operators' observed sequence: an intent forms for a cause; for about three
//! months the cause shows (complaints, competitor calls, forwarding, falling usage); then the
//! subscriber leaves — silently through three months of suspension before cancellation, by
//! port-out, by a formal cancellation at a store, or (value churn) by downgrading and moving
//! usage elsewhere while staying. A member of a group that defects to a competitor as a whole
//! (`group.rs`) follows it out, decision makers first.

mod churn;
pub(crate) mod circle;
mod events;
pub(crate) mod future;
mod group;
pub(crate) mod network;
mod profile;
mod rows;
mod story;
mod usage;

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};
use rand_pcg::Pcg64Mcg;

use crate::SynthCounts;

use self::churn::Path;
use self::events::Event;
pub(crate) use self::group::write_group;
use self::group::{GroupFate, membership};
use self::profile::{Contract, Profile, Traits, draw_contracts, draw_profile};
use self::usage::MonthUsage;

/// Months of visible signals between the intent to leave and the exit.
const SIGNAL_MONTHS: usize = 3;
/// Months of suspension between a silent exit and the cancellation.
const SUSPENSION_MONTHS: usize = 3;

/// Everything shared by all subscribers of one synthetic operator.
pub(crate) struct World {
    pub seed: u64,
    /// First day of each month of the window.
    pub months: Vec<NaiveDate>,
    /// Mondays of the weekly window (the last weeks of the window).
    pub weeks: Vec<NaiveDate>,
    /// Months (indexes into `months`) in which a retention campaign ran.
    pub campaign_months: Vec<usize>,
    /// Subscribers the operator has, and the groups they may belong to.
    pub subscribers: u64,
    pub groups: u64,
    /// The radio network's cells and their fates.
    pub cells: network::Cells,
    /// Mondays of the weeks the network's experience is recorded for: the whole window.
    pub network_weeks: Vec<NaiveDate>,
    /// Whether the network's experience and the call records are exported (the world is the
    /// same either way).
    pub network: bool,
}

impl World {
    fn month_end(&self, t: usize) -> NaiveDate {
        next_month(self.months[t]) - Duration::days(1)
    }

    fn window_end(&self) -> NaiveDate {
        self.month_end(self.months.len() - 1)
    }

    /// `YYYY-MM` of month `t`, counting on past the window's end.
    fn month_text(&self, t: usize) -> String {
        let n = self.months.len();
        let date = if t < n {
            self.months[t]
        } else {
            add_months(self.months[n - 1], (t - n + 1) as i64)
        };
        date.format("%Y-%m").to_string()
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

// The generator streams: one a subscriber, family block, group and county; a group's account
// and fate; a member's part in its group. Stream 5 is the future's (`future.rs`).
const STREAM_SUBSCRIBER: u64 = 1;
const STREAM_FAMILY: u64 = 2;
const STREAM_GROUP: u64 = 3;
const STREAM_COUNTY: u64 = 4;
const STREAM_GROUP_FATE: u64 = 6;
const STREAM_GROUP_MEMBER: u64 = 7;
/// What a leaver says at the counter: a stream of its own, so recording it changes no other draw.
const STREAM_STATED: u64 = 8;
// The network's and the circles' streams: a cell's fate, a home cell (a family's or a
// subscriber's), a subscriber's weekly experience, a circle's wave, a member's part in it, the
// ties of a circle's pairs and a subscriber's calls.
const STREAM_CELL: u64 = 9;
const STREAM_HOME_CELL: u64 = 10;
const STREAM_NETWORK_WEEKS: u64 = 11;
const STREAM_CIRCLE: u64 = 12;
const STREAM_CIRCLE_MEMBER: u64 = 13;
const STREAM_CIRCLE_TIES: u64 = 14;
const STREAM_OFFNET: u64 = 15;

/// Output buffers of a chunk of subscribers or of groups, one per file.
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
    pub groups: Vec<u8>,
    pub group_key_people: Vec<u8>,
    pub group_products: Vec<u8>,
    pub group_visits: Vec<u8>,
    pub truth_groups: Vec<u8>,
    pub network_weekly: Vec<u8>,
    pub calling_circle: Vec<u8>,
    /// Each subscriber's life, in order, for the call records' pass.
    pub lives: Vec<circle::Life>,
    pub counts: SynthCounts,
}

/// Generates subscriber `index` (0-based) into `out`.
pub(crate) fn generate(world: &World, index: u64, out: &mut Out) {
    let mut rng = rng_for(world.seed, STREAM_SUBSCRIBER, index);
    let (mut profile, traits, age) = draw_profile(world, index, &mut rng);
    let contracts = draw_contracts(world, &profile, &mut rng);
    let group_follow = profile.group.and_then(|g| {
        let fate = GroupFate::draw(world, g);
        profile.manager = Some(fate.manager.clone());
        membership(world, &fate, index, profile.id, out)
            .follow
            .map(|(m, p)| (m, p, false))
    });
    // The earlier of a group's defection and a circle's wave takes the subscriber.
    let follow = match (group_follow, circle::follow(world, index)) {
        (Some(g), Some(c)) => Some(if c.0 < g.0 { c } else { g }),
        (g, c) => g.or(c),
    };
    let home_key = profile.family.map_or(index, |f| (1 << 48) + f);
    let cell = world
        .cells
        .home(world.seed, profile.city, profile.county, home_key);
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
        follow,
        cell,
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

/// One subscriber being simulated: what was drawn up front and what the months have built up.
/// Its steps live in the child modules, each an `impl` block of its own.
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
    /// (month, path, social) of the intent a member forms to follow its group or its circle
    /// out; social when it follows friends ([`churn::Intent::social`]).
    follow: Option<(usize, Path, bool)>,
    /// Index of the home cell in [`World::cells`].
    cell: usize,
}
