//! Who the subscriber is: the profile drawn once (place, family or group, age, plan, channel),
//! the latent traits churn hazards read, and the contracts that bind them.

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use rand_pcg::Pcg64Mcg;

use super::{
    STREAM_COUNTY, STREAM_FAMILY, STREAM_GROUP, World, add_months, beta, random_day, rng_for,
    weighted,
};
use crate::catalog::{CITIES, FAMILY_PLAN, GROUP_PLAN, PLANS, SENIOR_PLAN};

const PREFIXES: [u64; 12] = [134, 135, 136, 137, 138, 139, 150, 151, 152, 157, 158, 159];

/// Latent traits: never in the export, only in the truth files.
pub(super) struct Traits {
    pub(super) price_sensitivity: f64,
    pub(super) network_exposure: f64,
    pub(super) competitor_exposure: f64,
    pub(super) data_heaviness: f64,
    pub(super) voice_heaviness: f64,
    pub(super) late_payer: bool,
}

pub(super) struct Profile {
    pub(super) id: i64,
    pub(super) msisdn: String,
    pub(super) join: NaiveDate,
    pub(super) birth: NaiveDate,
    pub(super) gender: &'static str,
    pub(super) city: usize,
    pub(super) county: usize,
    pub(super) group: Option<u64>,
    pub(super) family: Option<u64>,
    pub(super) plan: usize,
    pub(super) channel: &'static str,
    pub(super) branch: String,
    pub(super) manager: Option<String>,
}

pub(super) struct Contract {
    pub(super) kind: &'static str,
    pub(super) start: NaiveDate,
    pub(super) end: NaiveDate,
    pub(super) amount: f64,
}

/// (network badness, competitor strength) of a county: some places have poor coverage, some a
/// strong competitor presence.
pub(super) fn county_factors(seed: u64, city: usize, county: usize) -> (f64, f64) {
    let mut rng = rng_for(seed, STREAM_COUNTY, (city * 100 + county) as u64);
    let network = if rng.random::<f64>() < 0.25 {
        rng.random_range(0.6..1.0)
    } else {
        rng.random_range(0.1..0.4)
    };
    let competitor = rng.random_range(0.2..1.0);
    (network, competitor)
}

pub(super) fn draw_location<R: Rng>(rng: &mut R) -> (usize, usize) {
    let weights: Vec<f64> = CITIES.iter().map(|c| c.weight).collect();
    let city = weighted(rng, &weights);
    let county = rng.random_range(0..CITIES[city].counties.len());
    (city, county)
}

pub(super) fn draw_profile(
    world: &World,
    index: u64,
    rng: &mut Pcg64Mcg,
) -> (Profile, Traits, i64) {
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

pub(super) fn draw_contracts(world: &World, p: &Profile, rng: &mut Pcg64Mcg) -> Vec<Contract> {
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
