//! The radio network: cells in every county, each with its own quality and, for some, a spell
//! of degradation (a failed carrier, congestion after a new estate fills up); each subscriber's
//! home cell and weekly experience on it (网络感知).
//!
//! A degraded cell raises the network-caused churn hazard of the subscribers living on it once
//! they have suffered it for a month: the experience worsens weeks before anyone complains.
//! The cells are drawn once for the whole operator, from their own stream.

use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use super::profile::county_factors;
use super::{Out, STREAM_CELL, STREAM_HOME_CELL, STREAM_NETWORK_WEEKS, Simulation, rng_for};
use crate::catalog::CITIES;
use crate::csvline::Line;

/// Each city's centre (latitude, longitude), in [`CITIES`]' order.
const CENTRES: [(f64, f64); 8] = [
    (32.06, 118.80),
    (31.30, 120.58),
    (31.49, 120.31),
    (31.81, 119.97),
    (34.26, 117.18),
    (32.01, 120.86),
    (32.39, 119.41),
    (33.35, 120.16),
];

/// Subscribers a cell serves, about: sets how many cells a county has.
const SUBSCRIBERS_PER_CELL: u64 = 250;
/// Share of cells that go through a spell of degradation in the window.
const DEGRADED_SHARE: f64 = 0.3;
/// How much a degraded cell multiplies the network hazard at full severity.
pub(super) const DEGRADED_HAZARD: f64 = 8.0;

/// One cell and its fate.
pub(crate) struct Cell {
    pub(crate) id: String,
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
    pub(crate) city: usize,
    pub(crate) county: usize,
    pub(crate) technology: &'static str,
    /// How bad the cell is at its best, 0 to 1.
    pub(crate) badness: f64,
    /// (first month, month after the last, severity 0 to 1) of its degradation, month indexes
    /// of the window (the spell may run past it).
    pub(crate) degraded: Option<(usize, usize, f64)>,
}

impl Cell {
    /// Severity of the degradation in month `t`, 0 outside it.
    pub(crate) fn severity(&self, t: usize) -> f64 {
        match self.degraded {
            Some((from, to, s)) if (from..to).contains(&t) => s,
            _ => 0.0,
        }
    }

    /// Severity in month `t` of a degradation that began at least a month before: people put
    /// up with a bad month before they think of leaving.
    pub(crate) fn endured(&self, t: usize) -> f64 {
        match self.degraded {
            Some((from, to, s)) if t > from && t < to => s,
            _ => 0.0,
        }
    }
}

/// The operator's cells, and where each county's run of them starts.
pub(crate) struct Cells {
    pub(crate) cells: Vec<Cell>,
    /// Per city, per county: (first cell, count).
    by_county: Vec<Vec<(usize, usize)>>,
}

impl Cells {
    pub(crate) fn draw(seed: u64, subscribers: u64, months: usize) -> Cells {
        let counties: usize = CITIES.iter().map(|c| c.counties.len()).sum();
        let per_county = (subscribers / (counties as u64 * SUBSCRIBERS_PER_CELL)).clamp(3, 5_000);
        let mut cells = Vec::new();
        let mut by_county = Vec::new();
        for (city, c) in CITIES.iter().enumerate() {
            let mut runs = Vec::new();
            for county in 0..c.counties.len() {
                let (net_bad, _) = county_factors(seed, city, county);
                let first = cells.len();
                for n in 0..per_county {
                    let index = cells.len() as u64;
                    let mut rng = rng_for(seed, STREAM_CELL, index);
                    let (lat, lon) = CENTRES[city];
                    // Counties spread around the centre, cells around their county's middle.
                    let angle = county as f64 * 2.4;
                    let reach = if county == 0 { 0.0 } else { 0.25 };
                    let latitude = lat + reach * angle.sin() + rng.random_range(-0.06..0.06);
                    let longitude = lon + reach * angle.cos() + rng.random_range(-0.06..0.06);
                    let technology = if rng.random::<f64>() < 0.55 {
                        "5g"
                    } else {
                        "4g"
                    };
                    let badness = (net_bad + rng.random_range(-0.15..0.15)).clamp(0.0, 1.0);
                    let degraded = (rng.random::<f64>() < DEGRADED_SHARE).then(|| {
                        let from = rng.random_range(1..months.max(2));
                        let length = rng.random_range(2..=6);
                        (from, from + length, rng.random_range(0.5..1.0))
                    });
                    cells.push(Cell {
                        id: format!("{}{:02}-{:04}", c.code, county + 1, n + 1),
                        latitude,
                        longitude,
                        city,
                        county,
                        technology,
                        badness,
                        degraded,
                    });
                }
                runs.push((first, per_county as usize));
            }
            by_county.push(runs);
        }
        Cells { cells, by_county }
    }

    /// The home cell of a subscriber of `(city, county)`: a family shares one (`key` is the
    /// family's for its members, the subscriber's otherwise).
    pub(crate) fn home(&self, seed: u64, city: usize, county: usize, key: u64) -> usize {
        let (first, count) = self.by_county[city][county];
        let mut rng = rng_for(seed, STREAM_HOME_CELL, key);
        first + rng.random_range(0..count)
    }

    /// The cells' rows: `cells.csv`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) -> u64 {
        for c in &self.cells {
            let city = &CITIES[c.city];
            let mut line = Line::default();
            line.text(&c.id)
                .float((c.latitude * 1e5).round() / 1e5)
                .float((c.longitude * 1e5).round() / 1e5)
                .text(city.counties[c.county])
                .text(&format!("{}{:02}", city.code, c.county + 1))
                .text(c.technology);
            out.extend_from_slice(line.finish());
        }
        self.cells.len() as u64
    }

    /// The truth of the cells' degradations: `truth/cells.csv`.
    pub(crate) fn write_truth(&self, world_months: &[NaiveDate], out: &mut Vec<u8>) {
        let month = |t: usize| {
            world_months.get(t).map_or_else(
                || {
                    let last = *world_months.last().expect("a window");
                    super::add_months(last, (t + 1 - world_months.len()) as i64)
                        .format("%Y-%m")
                        .to_string()
                },
                |m| m.format("%Y-%m").to_string(),
            )
        };
        for c in &self.cells {
            let mut line = Line::default();
            line.text(&c.id).float((c.badness * 1e3).round() / 1e3);
            match c.degraded {
                Some((from, to, s)) => line
                    .text(&month(from))
                    .text(&month(to))
                    .float((s * 1e3).round() / 1e3),
                None => line.text("").text("").text(""),
            };
            out.extend_from_slice(line.finish());
        }
    }
}

/// Mondays of every full week of the window: the network's probes keep the whole history.
pub(crate) fn network_weeks(months: &[NaiveDate], window_end: NaiveDate) -> Vec<NaiveDate> {
    let first = months[0];
    let mut monday =
        first + Duration::days(i64::from((7 - first.weekday().num_days_from_monday()) % 7));
    let mut weeks = Vec::new();
    while monday + Duration::days(6) <= window_end {
        weeks.push(monday);
        monday += Duration::days(7);
    }
    weeks
}

impl Simulation<'_> {
    /// The weekly experience rows of the subscriber on its home cell, while it had a line.
    pub(super) fn write_network(&self, out: &mut Out) {
        let world = self.world;
        if !world.network {
            return;
        }
        let cell = &world.cells.cells[self.cell];
        let mut rng = rng_for(world.seed, STREAM_NETWORK_WEEKS, self.profile.id as u64);
        let noise = LogNormal::new(0.0, 0.3).expect("valid");
        let wide = LogNormal::new(0.0, 0.45).expect("valid");
        let speed = if cell.technology == "5g" { 180.0 } else { 45.0 };
        let exposure = self.traits.network_exposure;
        for &monday in &world.network_weeks {
            let middle = monday + Duration::days(3);
            if middle < self.profile.join
                || self.cancel.is_some_and(|c| c <= middle)
                || self.suspended_on(middle).is_some()
            {
                continue;
            }
            let Some(t) = world.months.iter().rposition(|m| *m <= middle) else {
                continue;
            };
            let Some(month) = self.months.get(t).copied().flatten() else {
                continue;
            };
            // Where the subscriber lives on the cell (indoors, at its edge) and the cell itself.
            let bad = (0.55 * exposure + 0.45 * cell.badness + 0.9 * cell.severity(t)).min(2.0);
            let weekly = 7.0 / 30.4;
            let calls = (month.calls_out + month.calls_in) * weekly;
            let data = month.data * weekly;
            let drop_rate = ((0.2 + 2.2 * bad) * noise.sample(&mut rng)).min(100.0);
            let failures = Poisson::new((calls * (0.003 + 0.025 * bad)).max(1e-9))
                .map_or(0.0, |p| p.sample(&mut rng));
            let weak = ((20.0 + 500.0 * bad * bad) * wide.sample(&mut rng)).min(10_080.0);
            let stall = (data * (0.02 + 0.25 * bad) * wide.sample(&mut rng)).min(604_800.0);
            let mut line = Line::default();
            line.int(self.profile.id)
                .date(monday)
                .float((drop_rate * 100.0).round() / 100.0)
                .int(failures as i64)
                .float(weak.round())
                .float(stall.round());
            if data > 1.0 {
                let throughput =
                    speed * (1.0 - 0.45 * bad.min(1.5)).max(0.05) * noise.sample(&mut rng);
                line.float((throughput * 10.0).round() / 10.0);
            } else {
                line.text("");
            }
            line.text(&cell.id);
            out.network_weekly.extend_from_slice(line.finish());
            out.counts.network_weekly += 1;
        }
    }
}
