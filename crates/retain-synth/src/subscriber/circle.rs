//! Calling circles (交往圈): blocks of consecutive subscribers who call each other, a wave of
//! defection through some of them, and the monthly call records.
//!
//! In a wave (a circle's leader moves to a competitor's offer) the leader forms the intent to
//! leave first; after it has gone, each other member follows with some chance: churn spreads
//! through the circle, as the research on call graphs finds. The calls are written in a second
//! pass, once every subscriber's life is known, so a pair is called only while both have a
//! line and a ported peer's calls become calls to its new network.

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use super::churn::Path;
use super::{
    Out, STREAM_CIRCLE, STREAM_CIRCLE_MEMBER, STREAM_CIRCLE_TIES, STREAM_OFFNET, World, rng_for,
};
use crate::catalog::COMPETITORS;
use crate::csvline::Line;

/// Subscribers in a circle.
pub(super) const CIRCLE: u64 = 6;
/// Share of circles a wave runs through in the window.
const WAVE_SHARE: f64 = 0.12;
/// Chance a member follows its leader out.
const FOLLOW: f64 = 0.45;
/// Each competitor's share of the calls that leave the network.
const OFFNET_SHARES: [f64; 3] = [0.5, 0.4, 0.1];

/// What the call records need of a subscriber's life, in the window's months.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Life {
    /// First month with a line (0 when it had one before the window).
    pub(crate) first: u16,
    /// First month without it (the window's length when it never left).
    pub(crate) gone: u16,
    /// 1 + the competitor it ported out to, 0 otherwise.
    pub(crate) ported: u8,
    /// Month an intent lured by a competitor formed, the window's length otherwise.
    pub(crate) lured: u16,
    /// How exposed it is to competitors, in hundredths.
    pub(crate) exposure: u8,
}

/// A wave through a circle: its month (in the window's months, possibly after it) and which
/// member leads.
pub(super) struct Wave {
    pub(super) month: usize,
    pub(super) leader: u64,
}

pub(super) fn wave(world: &World, circle: u64) -> Option<Wave> {
    let mut rng = rng_for(world.seed, STREAM_CIRCLE, circle);
    if rng.random::<f64>() >= WAVE_SHARE {
        return None;
    }
    let n = world.months.len();
    Some(Wave {
        month: rng.random_range(1..n + 3),
        leader: circle * CIRCLE + rng.random_range(0..CIRCLE),
    })
}

/// The intent subscriber `index` forms because its circle's wave takes it: (month, path,
/// whether it follows friends rather than leads).
pub(super) fn follow(world: &World, index: u64) -> Option<(usize, Path, bool)> {
    let w = wave(world, index / CIRCLE)?;
    if w.leader >= world.subscribers {
        return None;
    }
    if index == w.leader {
        return Some((w.month, Path::PortOut, false));
    }
    let mut rng = rng_for(world.seed, STREAM_CIRCLE_MEMBER, index);
    if rng.random::<f64>() >= FOLLOW {
        return None;
    }
    // After the leader has gone (its signals run three months), within a quarter.
    let month = w.month + 3 + rng.random_range(0..3);
    let path = if rng.random::<f64>() < 0.7 {
        Path::PortOut
    } else {
        Path::FormalCancel
    };
    Some((month, path, true))
}

/// The tie between two members of a circle: mean calls a month, none for a pair that does not
/// call.
fn tie(world: &World, a: u64, b: u64) -> Option<f64> {
    let mut rng = rng_for(world.seed, STREAM_CIRCLE_TIES, a * CIRCLE + b % CIRCLE);
    (rng.random::<f64>() < 0.65).then(|| LogNormal::new(1.6, 0.7).expect("valid").sample(&mut rng))
}

/// Writes the month's call records of subscribers `from..to`: each on-net pair once (by its
/// lower member) while both have a line, and each subscriber's calls to competitors' numbers,
/// which include the calls to peers who ported out.
pub(crate) fn write_calls(world: &World, lives: &[Life], from: u64, to: u64, out: &mut Out) {
    let n = world.months.len();
    let minutes = LogNormal::new(0.9, 0.5).expect("valid");
    for index in from..to {
        let me = lives[index as usize];
        let id = 100_000_001 + index as i64;
        let circle = index / CIRCLE;
        let last = ((circle + 1) * CIRCLE).min(world.subscribers);
        let mut rng = rng_for(world.seed, STREAM_OFFNET, index);
        let ties: Vec<(u64, f64)> = (circle * CIRCLE..last)
            .filter(|&p| p != index)
            .filter_map(|p| tie(world, index.min(p), index.max(p)).map(|l| (p, l)))
            .collect();
        for t in usize::from(me.first)..usize::from(me.gone).min(n) {
            let month = world.months[t];
            let mut offnet = [0.0; 3];
            for &(peer, mean) in &ties {
                let other = lives[peer as usize];
                let alive = usize::from(other.first) <= t && t < usize::from(other.gone);
                if alive {
                    if peer > index {
                        let calls = Poisson::new(mean).map_or(0.0, |p| p.sample(&mut rng));
                        if calls > 0.0 {
                            let mut line = Line::default();
                            line.date(month)
                                .int(id)
                                .int(100_000_001 + peer as i64)
                                .text("")
                                .int(calls as i64)
                                .float((calls * minutes.sample(&mut rng) * 10.0).round() / 10.0);
                            out.calling_circle.extend_from_slice(line.finish());
                            out.counts.calling_circle += 1;
                        }
                    }
                } else if usize::from(other.gone) <= t && other.ported > 0 {
                    // The friend's number now rings on a competitor's network.
                    offnet[usize::from(other.ported - 1)] += mean;
                }
            }
            let exposure = f64::from(me.exposure) / 100.0;
            let lured = if t >= usize::from(me.lured) { 2.5 } else { 1.0 };
            let base = (1.0 + 14.0 * exposure * exposure) * lured;
            for (k, share) in OFFNET_SHARES.iter().enumerate() {
                let mean = base * share + offnet[k];
                let calls = Poisson::new(mean.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng));
                if calls > 0.0 {
                    let mut line = Line::default();
                    line.date(month)
                        .int(id)
                        .text("")
                        .text(COMPETITORS[k])
                        .int(calls as i64)
                        .float((calls * minutes.sample(&mut rng) * 10.0).round() / 10.0);
                    out.calling_circle.extend_from_slice(line.finish());
                    out.counts.calling_circle += 1;
                }
            }
        }
    }
}

/// The truth of the waves: `truth/circles.csv`, one row per circle a wave runs through.
pub(crate) fn write_waves(world: &World, out: &mut Vec<u8>) -> u64 {
    let mut count = 0;
    for circle in 0..world.subscribers.div_ceil(CIRCLE) {
        if let Some(w) = wave(world, circle)
            && w.leader < world.subscribers
        {
            let mut line = Line::default();
            line.int(circle as i64)
                .int(100_000_001 + w.leader as i64)
                .text(&world.month_text(w.month));
            out.extend_from_slice(line.finish());
            count += 1;
        }
    }
    count
}
