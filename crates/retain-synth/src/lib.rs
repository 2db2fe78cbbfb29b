//! A synthetic operator, deterministic from a seed.
//!
//! It writes the canonical files an operator's export would (`plans.csv`, `subscribers.csv`,
//! `contracts.csv`, `usage_monthly.csv`, `usage_weekly.csv`, `events.csv`,
//! `campaign_history.csv`, and the group customers' `groups.csv`, `group_key_people.csv`,
//! `group_products.csv`, `group_visits.csv`), so the pipeline ingests it exactly as it would real
//! data, and a separate truth directory the pipeline never reads: each churner's true cause and
//! path, the latent traits, each group's defection, and the true effect of each offer on each
//! cause.
//!
//! ```no_run
//! let params = retain_synth::SynthParams { subscribers: 1_000, ..Default::default() };
//! let summary = retain_synth::synthesize(&params, "out".as_ref(), "out/truth".as_ref())?;
//! println!("{} usage rows", summary.counts.usage_monthly);
//! # Ok::<(), retain_synth::Error>(())
//! ```

mod catalog;
mod csvline;
mod operator;
mod subscriber;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate};
use rayon::prelude::*;
use retain_data::Table;
use serde::Serialize;

use crate::catalog::{Cause, HISTORIC_OFFERS, PLANS, save_probability};
use crate::csvline::Line;
use crate::subscriber::circle::{write_calls, write_waves};
use crate::subscriber::network::{Cells, network_weeks};
use crate::subscriber::{Out, World, generate, next_month, write_group};

/// Errors of the synthesizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The synthesized files could not be loaded.
    #[error(transparent)]
    Load(#[from] retain_data::Error),
}

pub use operator::synthetic_workspace;
pub use subscriber::future::{
    Effect, Exit, Future, MonthStart, TAKE_ANYWAY, VALUE_MONTHS, offer_kinds, reach,
    true_contact_cost, true_effect, true_offer_cost,
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to synthesize.
#[derive(Debug, Clone)]
pub struct SynthParams {
    pub subscribers: u64,
    /// Months of history, ending with `last_month`.
    pub months: u32,
    pub seed: u64,
    /// The last complete month of data. Fixed by default so that a seed always gives the same
    /// operator, whatever the date.
    pub last_month: NaiveDate,
    /// Weeks of weekly usage, ending with the last full week of the window.
    pub weeks: u32,
    /// Export the network's weekly experience and the monthly call records (`network_weekly`,
    /// `calling_circle`); the operator is the same without them, only its export is smaller.
    pub network: bool,
}

impl Default for SynthParams {
    fn default() -> Self {
        Self {
            subscribers: 100_000,
            months: 18,
            seed: 42,
            last_month: NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date"),
            weeks: 26,
            network: true,
        }
    }
}

/// Row counts of what was written.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SynthCounts {
    pub plans: u64,
    pub subscribers: u64,
    pub contracts: u64,
    pub usage_monthly: u64,
    pub usage_weekly: u64,
    pub events: u64,
    pub campaign_history: u64,
    /// Subscribers who formed an intent to leave (churned, saved, or still pending at the end).
    pub churn_intents: u64,
    pub quantity_churners: u64,
    pub value_churners: u64,
    /// Intents cancelled by a past campaign contact.
    pub saved_by_campaigns: u64,
    pub groups: u64,
    pub group_key_people: u64,
    pub group_products: u64,
    pub group_visits: u64,
    /// Groups that leave for a competitor as a whole, in the window or just after it.
    pub group_defections: u64,
    pub cells: u64,
    pub network_weekly: u64,
    pub calling_circle: u64,
    /// Cells that go through a spell of degradation.
    pub degraded_cells: u64,
    /// Calling circles a wave of defection runs through.
    pub circle_waves: u64,
}

impl SynthCounts {
    fn add(&mut self, o: &SynthCounts) {
        self.plans += o.plans;
        self.subscribers += o.subscribers;
        self.contracts += o.contracts;
        self.usage_monthly += o.usage_monthly;
        self.usage_weekly += o.usage_weekly;
        self.events += o.events;
        self.campaign_history += o.campaign_history;
        self.churn_intents += o.churn_intents;
        self.quantity_churners += o.quantity_churners;
        self.value_churners += o.value_churners;
        self.saved_by_campaigns += o.saved_by_campaigns;
        self.groups += o.groups;
        self.group_key_people += o.group_key_people;
        self.group_products += o.group_products;
        self.group_visits += o.group_visits;
        self.group_defections += o.group_defections;
        self.cells += o.cells;
        self.network_weekly += o.network_weekly;
        self.calling_circle += o.calling_circle;
        self.degraded_cells += o.degraded_cells;
        self.circle_waves += o.circle_waves;
    }
}

/// What `synthesize` produced.
#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    pub seed: u64,
    pub first_month: String,
    pub last_month: String,
    /// The day after the window: the natural as-of date for the pipeline.
    pub as_of: NaiveDate,
    pub counts: SynthCounts,
    /// Canonical files by table name, in load order.
    pub files: Vec<(String, PathBuf)>,
    pub truth_dir: PathBuf,
}

const CHUNK: u64 = 2_048;
const GROUP_CHUNK: u64 = 256;

/// Writes a synthetic operator's export to `out` and its hidden truth to `truth_dir`.
#[tracing::instrument(skip_all, fields(subscribers = params.subscribers, months = params.months, seed = params.seed))]
pub fn synthesize(params: &SynthParams, out: &Path, truth_dir: &Path) -> Result<SynthSummary> {
    if params.subscribers == 0 {
        return Err(Error::Params("--subscribers must be at least 1".into()));
    }
    if !(3..=120).contains(&params.months) {
        return Err(Error::Params("--months must be between 3 and 120".into()));
    }
    let world = world(params);
    for dir in [out, truth_dir] {
        std::fs::create_dir_all(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
    }

    let files: Vec<(Table, PathBuf)> = Table::ALL
        .iter()
        .map(|t| (*t, out.join(format!("{}.csv", t.name()))))
        .collect();
    let mut writers = Writers::create(&files, truth_dir)?;
    write_plans(&mut writers.plans)?;

    let mut counts = SynthCounts {
        plans: PLANS.len() as u64,
        ..SynthCounts::default()
    };
    let mut cells = Vec::new();
    counts.cells = world.cells.write(&mut cells);
    counts.degraded_cells = world
        .cells
        .cells
        .iter()
        .filter(|c| c.degraded.is_some())
        .count() as u64;
    writers
        .cells
        .write_all(&cells)
        .map_err(|e| io("writing cells.csv", e))?;
    let mut truth = Vec::new();
    world.cells.write_truth(&world.months, &mut truth);
    writers
        .truth_cells
        .write_all(&truth)
        .map_err(|e| io("writing truth/cells.csv", e))?;
    let mut waves = Vec::new();
    counts.circle_waves = write_waves(&world, &mut waves);
    writers
        .truth_circles
        .write_all(&waves)
        .map_err(|e| io("writing truth/circles.csv", e))?;

    let n = params.subscribers;
    // Each subscriber's life, for the call records written once every life is known: a few
    // bytes a subscriber.
    let mut lives = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    in_chunks(
        n,
        CHUNK,
        |index, out| generate(&world, index, out),
        |mut o| {
            writers.write(&o)?;
            counts.add(&o.counts);
            lives.append(&mut o.lives);
            Ok(())
        },
    )?;
    if world.network {
        in_chunks(
            n,
            CHUNK,
            |index, out| write_calls(&world, &lives, index, index + 1, out),
            |o| {
                writers.write(&o)?;
                counts.add(&o.counts);
                Ok(())
            },
        )?;
    }
    in_chunks(
        world.groups,
        GROUP_CHUNK,
        |g, out| write_group(&world, g, out),
        |o| {
            writers.write(&o)?;
            counts.add(&o.counts);
            Ok(())
        },
    )?;
    writers.finish()?;

    write_offer_effects(&truth_dir.join("offer_effects.csv"))?;
    write_return_effects(&truth_dir.join("return_effects.csv"))?;
    let summary = SynthSummary {
        seed: params.seed,
        first_month: world.months[0].format("%Y-%m").to_string(),
        last_month: params.last_month.format("%Y-%m").to_string(),
        as_of: next_month(params.last_month),
        counts,
        files: files
            .into_iter()
            .map(|(t, p)| (t.name().to_owned(), p))
            .collect(),
        truth_dir: truth_dir.to_path_buf(),
    };
    let manifest = serde_json::to_vec_pretty(&summary).expect("summary serializes");
    std::fs::write(truth_dir.join("manifest.json"), manifest)
        .map_err(|e| io("writing manifest.json", e))?;
    tracing::info!(?counts, "synthetic operator written");
    Ok(summary)
}

/// Runs `each` over `0..n` in chunks of `size` on every core, and hands the chunks' outputs to
/// `take` in order. A bounded window of chunks in flight keeps memory flat at any size.
fn in_chunks(
    n: u64,
    size: u64,
    each: impl Fn(u64, &mut Out) + Sync,
    mut take: impl FnMut(Out) -> Result<()>,
) -> Result<()> {
    let chunks: Vec<u64> = (0..n.div_ceil(size)).collect();
    for window in chunks.chunks(rayon::current_num_threads().max(1) * 4) {
        let outs: Vec<Out> = window
            .par_iter()
            .map(|&chunk| {
                let mut out = Out::default();
                for index in chunk * size..((chunk + 1) * size).min(n) {
                    each(index, &mut out);
                }
                out
            })
            .collect();
        for o in outs {
            take(o)?;
        }
    }
    Ok(())
}

fn world(params: &SynthParams) -> World {
    let last = params.last_month.with_day(1).expect("day 1");
    let months: Vec<NaiveDate> = (0..params.months)
        .rev()
        .map(|k| {
            last.checked_sub_months(chrono::Months::new(k))
                .expect("date in range")
        })
        .collect();
    let window_end = next_month(last) - Duration::days(1);
    let last_sunday =
        window_end - Duration::days(i64::from(window_end.weekday().num_days_from_sunday()));
    let weeks: Vec<NaiveDate> = (0..params.weeks)
        .rev()
        .map(|k| last_sunday - Duration::days(6 + 7 * i64::from(k)))
        .filter(|monday| *monday >= months[0])
        .collect();
    let n = months.len();
    // Monthly campaigns in the middle of the window: late enough to have history before,
    // early enough for their outcome to be observed after.
    let campaign_months = if n >= 10 {
        (n - 10..=n - 4).collect()
    } else {
        (1..n.saturating_sub(2)).collect()
    };
    World {
        seed: params.seed,
        cells: Cells::draw(params.seed, params.subscribers, months.len()),
        network_weeks: network_weeks(&months, window_end),
        months,
        weeks,
        campaign_months,
        subscribers: params.subscribers,
        groups: (params.subscribers / 60).max(1),
        network: params.network,
    }
}

fn io(context: impl Into<String>, source: std::io::Error) -> Error {
    Error::Io {
        context: context.into(),
        source,
    }
}

struct Writers {
    plans: BufWriter<File>,
    subscribers: BufWriter<File>,
    contracts: BufWriter<File>,
    usage_monthly: BufWriter<File>,
    usage_weekly: BufWriter<File>,
    events: BufWriter<File>,
    campaign_history: BufWriter<File>,
    groups: BufWriter<File>,
    group_key_people: BufWriter<File>,
    group_products: BufWriter<File>,
    group_visits: BufWriter<File>,
    cells: BufWriter<File>,
    network_weekly: BufWriter<File>,
    calling_circle: BufWriter<File>,
    truth_churn: BufWriter<File>,
    truth_traits: BufWriter<File>,
    truth_groups: BufWriter<File>,
    truth_cells: BufWriter<File>,
    truth_circles: BufWriter<File>,
}

fn create(path: &Path, header: &[&str]) -> Result<BufWriter<File>> {
    let file = File::create(path).map_err(|e| io(format!("creating {}", path.display()), e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    writeln!(w, "{}", header.join(","))
        .map_err(|e| io(format!("writing {}", path.display()), e))?;
    Ok(w)
}

impl Writers {
    fn create(files: &[(Table, PathBuf)], truth: &Path) -> Result<Self> {
        let open = |table: Table| {
            let path = &files
                .iter()
                .find(|(t, _)| *t == table)
                .expect("all tables")
                .1;
            create(path, &table.spec().csv_header())
        };
        Ok(Self {
            plans: open(Table::Plans)?,
            subscribers: open(Table::Subscribers)?,
            contracts: open(Table::Contracts)?,
            usage_monthly: open(Table::UsageMonthly)?,
            usage_weekly: open(Table::UsageWeekly)?,
            events: open(Table::Events)?,
            campaign_history: open(Table::CampaignHistory)?,
            groups: open(Table::Groups)?,
            group_key_people: open(Table::GroupKeyPeople)?,
            group_products: open(Table::GroupProducts)?,
            group_visits: open(Table::GroupVisits)?,
            cells: open(Table::Cells)?,
            network_weekly: open(Table::NetworkWeekly)?,
            calling_circle: open(Table::CallingCircle)?,
            truth_churn: create(
                &truth.join("churn.csv"),
                &[
                    "subscriber_id",
                    "outcome",
                    "churn_type",
                    "cause",
                    "path",
                    "intent_month",
                    "exit_month",
                    "churn_month",
                    "saved_by_campaign",
                ],
            )?,
            truth_traits: create(
                &truth.join("traits.csv"),
                &[
                    "subscriber_id",
                    "price_sensitivity",
                    "network_exposure",
                    "competitor_exposure",
                    "data_heaviness",
                    "voice_heaviness",
                    "late_payer",
                ],
            )?,
            truth_groups: create(
                &truth.join("groups.csv"),
                &["group_id", "defected", "defection_month", "tier"],
            )?,
            truth_cells: create(
                &truth.join("cells.csv"),
                &[
                    "cell_id",
                    "badness",
                    "degraded_from",
                    "degraded_until",
                    "severity",
                ],
            )?,
            truth_circles: create(
                &truth.join("circles.csv"),
                &["circle", "leader_id", "wave_month"],
            )?,
        })
    }

    fn write(&mut self, o: &Out) -> Result<()> {
        let pairs: [(&mut BufWriter<File>, &[u8]); 15] = [
            (&mut self.subscribers, &o.subscribers),
            (&mut self.contracts, &o.contracts),
            (&mut self.usage_monthly, &o.usage_monthly),
            (&mut self.usage_weekly, &o.usage_weekly),
            (&mut self.events, &o.events),
            (&mut self.campaign_history, &o.campaign_history),
            (&mut self.groups, &o.groups),
            (&mut self.group_key_people, &o.group_key_people),
            (&mut self.group_products, &o.group_products),
            (&mut self.group_visits, &o.group_visits),
            (&mut self.network_weekly, &o.network_weekly),
            (&mut self.calling_circle, &o.calling_circle),
            (&mut self.truth_churn, &o.truth_churn),
            (&mut self.truth_traits, &o.truth_traits),
            (&mut self.truth_groups, &o.truth_groups),
        ];
        for (w, bytes) in pairs {
            w.write_all(bytes)
                .map_err(|e| io("writing synthetic data", e))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        for w in [
            self.plans,
            self.subscribers,
            self.contracts,
            self.usage_monthly,
            self.usage_weekly,
            self.events,
            self.campaign_history,
            self.groups,
            self.group_key_people,
            self.group_products,
            self.group_visits,
            self.cells,
            self.network_weekly,
            self.calling_circle,
            self.truth_churn,
            self.truth_traits,
            self.truth_groups,
            self.truth_cells,
            self.truth_circles,
        ] {
            w.into_inner()
                .map_err(|e| io("flushing synthetic data", e.into_error()))?
                .sync_all()
                .map_err(|e| io("syncing synthetic data", e))?;
        }
        Ok(())
    }
}

fn write_plans(w: &mut BufWriter<File>) -> Result<()> {
    for p in PLANS {
        let mut line = Line::default();
        line.text(p.id)
            .text(p.name)
            .float(p.fee)
            .int(p.data_mb)
            .int(p.minutes)
            .int(p.tier);
        w.write_all(line.finish())
            .map_err(|e| io("writing plans.csv", e))?;
    }
    Ok(())
}

fn write_return_effects(path: &Path) -> Result<()> {
    let mut w = create(path, &["path", "cause", "return_base", "return_lift"])?;
    for exit in catalog::EXIT_PATHS {
        for cause in Cause::ALL {
            let (base, lift) = catalog::return_effect(exit, cause);
            let mut line = Line::default();
            line.text(exit).text(cause.name()).float(base).float(lift);
            w.write_all(line.finish())
                .map_err(|e| io("writing return_effects.csv", e))?;
        }
    }
    w.into_inner()
        .map_err(|e| io("flushing return_effects.csv", e.into_error()))?;
    Ok(())
}

fn write_offer_effects(path: &Path) -> Result<()> {
    let mut w = create(
        path,
        &["cause", "offer_kind", "offer_id", "save_probability"],
    )?;
    for cause in Cause::ALL {
        for (i, offer) in HISTORIC_OFFERS.iter().enumerate() {
            let mut line = Line::default();
            line.text(cause.name())
                .text(offer.kind)
                .text(offer.id)
                .float(save_probability(cause, i));
            w.write_all(line.finish())
                .map_err(|e| io("writing offer_effects.csv", e))?;
        }
    }
    w.into_inner()
        .map_err(|e| io("flushing offer_effects.csv", e.into_error()))?;
    Ok(())
}
