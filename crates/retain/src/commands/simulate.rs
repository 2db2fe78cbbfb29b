//! `retain simulate`: the closed loop on a synthetic operator. The operator is synthesized and
//! loaded, the churn model trained and every subscriber scored, as in the demo; then the
//! operator's world advances month by month (`retain_synth::Future`: the same subscribers,
//! hazards and true offer effects), while the scheduler, on a simulated clock, reads last
//! month's outcomes into the offers' learning, takes the month's warning list and matches it.
//! The learning policy's treatments are the ones the world lives through; the fixed-priors,
//! random and oracle policies are valued on the same list with the same luck (common random
//! numbers), so a month's comparison is paired.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{NaiveDate, TimeZone as _};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_pcg::Pcg64Mcg;
use retain_data::Workspace;
use retain_offers::{Cell, Learning, Library, Policy};
use retain_schedule::{Attempt, FakeClock, Job, Outcome, Schedule, Scheduler, Step, Steps};
use retain_store::{JobStatus, Store};
use retain_synth::{Future, VALUE_MONTHS};
use serde::Serialize;

use crate::output;

/// The most months one simulation advances.
const MAX_MONTHS: u32 = 36;
/// Subscribers the model needs to learn from at all.
const MIN_SUBSCRIBERS: u64 = 1_000;
/// The most subscribers: the world is held in memory, a few hundred bytes each.
const MAX_SUBSCRIBERS: u64 = 10_000_000;
/// Share of each month's list held out as the control group.
const CONTROL_SHARE: f64 = 0.1;
/// Months a contacted subscriber is left alone (the contact policy's cool-off).
const COOL_OFF_MONTHS: usize = 2;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Subscribers of the synthetic operator.
    #[arg(long, default_value_t = 20_000)]
    pub subscribers: u64,
    /// Months to advance after the export.
    #[arg(long, default_value_t = 6)]
    pub months: u32,
    /// Random seed of the operator and of the months after it.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// An empty (or new) directory for the simulation's workspace.
    #[arg(long)]
    pub dir: PathBuf,
    /// Budget of each month's retention, yuan, for every policy alike; defaults to one yuan
    /// per subscriber.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Share of the subscribers on each month's warning list.
    #[arg(long, default_value_t = 0.03)]
    pub list_share: f64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Four numbers, one per policy.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct ByPolicy {
    pub learning: f64,
    pub fixed_priors: f64,
    pub random: f64,
    pub oracle: f64,
}

impl ByPolicy {
    fn get_mut(&mut self, p: PolicyKind) -> &mut f64 {
        match p {
            PolicyKind::Learning => &mut self.learning,
            PolicyKind::FixedPriors => &mut self.fixed_priors,
            PolicyKind::Random => &mut self.random,
            PolicyKind::Oracle => &mut self.oracle,
        }
    }

    fn get(self, p: PolicyKind) -> f64 {
        match p {
            PolicyKind::Learning => self.learning,
            PolicyKind::FixedPriors => self.fixed_priors,
            PolicyKind::Random => self.random,
            PolicyKind::Oracle => self.oracle,
        }
    }

    /// The two values of each policy combined.
    fn zip(self, o: ByPolicy, f: impl Fn(f64, f64) -> f64) -> ByPolicy {
        ByPolicy {
            learning: f(self.learning, o.learning),
            fixed_priors: f(self.fixed_priors, o.fixed_priors),
            random: f(self.random, o.random),
            oracle: f(self.oracle, o.oracle),
        }
    }

    fn map(self, f: impl Fn(f64) -> f64) -> ByPolicy {
        ByPolicy {
            learning: f(self.learning),
            fixed_priors: f(self.fixed_priors),
            random: f(self.random),
            oracle: f(self.oracle),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    Learning,
    FixedPriors,
    Random,
    Oracle,
}

const POLICIES: [PolicyKind; 4] = [
    PolicyKind::Learning,
    PolicyKind::FixedPriors,
    PolicyKind::Random,
    PolicyKind::Oracle,
];

/// One simulated month.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SimMonth {
    /// 1 for the first month after the export.
    pub month: u32,
    pub period: String,
    pub active: usize,
    pub new_intents: usize,
    /// Subscribers who left (or cut their spending) this month, and the value they took.
    pub exits: usize,
    pub value_lost: f64,
    /// Subscribers on the warning list, and how many of them truly meant to leave.
    pub listed: usize,
    pub listed_leavers: usize,
    /// Lifetime value kept: the value the saved leavers' exits would have cost.
    pub saved_value: ByPolicy,
    /// Leavers saved.
    pub saved: ByPolicy,
    /// Subscribers contacted with an offer.
    pub treated: ByPolicy,
    /// Share of the treated who still left.
    pub churn_treated: ByPolicy,
    /// What the contacts and the offers taken cost.
    pub spent: ByPolicy,
    /// Saved value less what was spent.
    pub net_value: ByPolicy,
    /// Outcomes the learning had read before this month's match.
    pub outcomes_learned: u64,
    /// The learning policy's saved value over the oracle's.
    pub learning_vs_oracle: f64,
}

/// How good the warning list is, measured on the first month's real scores.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Calibration {
    /// Share of the subscribers meaning to leave whom the list holds.
    pub recall: f64,
    /// Share of the list meaning to leave.
    pub precision: f64,
    /// Share of listed leavers whose top reason is their true cause.
    pub reason_agreement: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub dir: PathBuf,
    pub subscribers: u64,
    pub seed: u64,
    pub budget: f64,
    pub list_share: f64,
    pub calibration: Calibration,
    pub months: Vec<SimMonth>,
    /// Sums over the months.
    pub total_saved_value: ByPolicy,
    /// What the learning holds at the end, cell by cell.
    pub learned: Vec<retain_offers::LearnedRow>,
    pub seconds: f64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let report = simulate(args)?;
    if args.json {
        output::print_json(&report)?;
    } else {
        print!("{}", describe(&report));
    }
    Ok(())
}

fn check(args: &Args) -> anyhow::Result<()> {
    if !(MIN_SUBSCRIBERS..=MAX_SUBSCRIBERS).contains(&args.subscribers) {
        anyhow::bail!(
            "--subscribers must be {MIN_SUBSCRIBERS}–{MAX_SUBSCRIBERS}, not {}",
            args.subscribers
        );
    }
    if !(1..=MAX_MONTHS).contains(&args.months) {
        anyhow::bail!("--months must be 1–{MAX_MONTHS}, not {}", args.months);
    }
    if !(args.list_share > 0.0 && args.list_share <= 0.5) {
        anyhow::bail!(
            "--list-share must be above 0 and at most 0.5, not {}",
            args.list_share
        );
    }
    if let Some(b) = args.budget
        && !(b.is_finite() && b > 0.0)
    {
        anyhow::bail!("--budget must be a positive number of yuan, not {b}");
    }
    if std::fs::read_dir(&args.dir).is_ok_and(|mut d| d.next().is_some()) {
        anyhow::bail!(
            "{} is not empty: a simulation builds its own operator in a new directory",
            args.dir.display()
        );
    }
    Ok(())
}

fn simulate(args: &Args) -> anyhow::Result<Report> {
    check(args)?;
    let started = std::time::Instant::now();
    let workspace = Workspace::create_or_open(&args.dir)?;
    let rt = super::runtime()?;
    let store = rt.block_on(Store::connect(&workspace.store_url()))?;
    let params = retain_synth::SynthParams {
        subscribers: args.subscribers,
        seed: args.seed,
        ..retain_synth::SynthParams::default()
    };
    tracing::info!(
        subscribers = params.subscribers,
        "synthesizing the operator"
    );
    let synth =
        retain_synth::synthesize(&params, &workspace.incoming_dir(), &workspace.truth_dir())
            .context("synthesizing the operator")?;
    super::demo::load_synthetic(&rt, &store, &workspace, &synth)?;
    let train = super::train::Args::defaults(workspace.root());
    super::train::execute(&rt, &store, &workspace, &train)?;
    super::train::score_execute(&rt, &workspace, None)?;

    let future = Future::open(
        &workspace.incoming_dir(),
        &workspace.truth_dir(),
        params.last_month,
        args.seed,
    )?;
    let scores = retain_model::latest_scores(&workspace)
        .context("the model scored nobody")?
        .lines()?;
    let library = Library::for_workspace(&workspace)?;
    let policy = Policy::for_workspace(&workspace)?;
    let budget = args.budget.unwrap_or(args.subscribers as f64).max(1.0);
    let sim = RefCell::new(Sim {
        workspace: &workspace,
        future,
        scores: scores
            .into_iter()
            .map(|l| {
                let reason = l
                    .reasons
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "unknown".into());
                (l.subscriber_id.get(), l.probability, reason)
            })
            .collect(),
        library,
        exploration_share: policy.exploration_share,
        budget,
        list_share: args.list_share,
        rng: Pcg64Mcg::seed_from_u64(args.seed ^ 0x5EED_F100),
        learning: Learning::default(),
        calibration: None,
        confusion: Confusion::default(),
        list: Vec::new(),
        pending: Vec::new(),
        last_contact: HashMap::new(),
        exited: HashMap::new(),
        month_index: 0,
        tally: None,
        months: Vec::new(),
    });

    let schedule = Schedule::parse(SCHEDULE, std::path::Path::new("simulation schedule"))?;
    let first = retain_synth::SynthParams::default().last_month;
    let clock = Arc::new(FakeClock::new(chrono::Utc::now()));
    let scheduler = Scheduler {
        store: &store,
        schedule: &schedule,
        clock: clock.clone(),
        holder: retain_schedule::holder_name(),
    };
    let steps = SimSteps(&sim);
    for m in 1..=args.months {
        let start = sim.borrow_mut().begin_month();
        tracing::info!(month = m, period = %start.month.format("%Y-%m"), "simulating");
        let at = first
            .checked_add_months(chrono::Months::new(m))
            .context("a month past the calendar")?;
        // The month's jobs are due at 08:00 on its 1st; the cycle runs them in order.
        let local = schedule
            .timezone
            .from_local_datetime(&at.and_hms_opt(8, 30, 0).context("a valid time")?)
            .single()
            .context("an unambiguous local time")?;
        clock.set(local.with_timezone(&chrono::Utc));
        let report = scheduler.cycle(&rt, &steps)?;
        for job in &report.jobs {
            if job.status != Some(JobStatus::Succeeded) {
                anyhow::bail!(
                    "month {m}: job {} did not succeed: {}",
                    job.job,
                    job.error.as_deref().unwrap_or("no run")
                );
            }
        }
        sim.borrow_mut().close_month(&start);
    }
    let sim = sim.into_inner();
    sim.learning.save(&workspace)?;
    let total = sim.months.iter().fold(ByPolicy::default(), |acc, m| {
        acc.zip(m.saved_value, |a, b| a + b)
    });
    let base = sim.calibration.map_or(0.0, |c| c.precision);
    let report = Report {
        dir: workspace.root().to_path_buf(),
        subscribers: args.subscribers,
        seed: args.seed,
        budget,
        list_share: args.list_share,
        calibration: sim.calibration.context("no month was simulated")?,
        learned: sim
            .learning
            .table(base, |r, k| sim.library.prior_save(r, k).unwrap_or(0.0)),
        months: sim.months,
        total_saved_value: total.map(round2),
        seconds: started.elapsed().as_secs_f64(),
    };
    retain_data::write_json(&workspace.root().join("reports/simulation.json"), &report)?;
    Ok(report)
}

/// The simulation's schedule: last month's outcomes read, the month's list, the match.
const SCHEDULE: &str = r#"
timezone = "Asia/Shanghai"

[[job]]
name = "outcomes"
step = "ingest"
cron = "0 5 1 * *"

[[job]]
name = "monthly-warning"
step = "warn"
cron = "0 6 1 * *"
cadence = "monthly"

[[job]]
name = "monthly-match"
step = "match"
cron = "0 8 1 * *"
"#;

/// The scheduler's steps in the simulation.
struct SimSteps<'s, 'w>(&'s RefCell<Sim<'w>>);

impl Steps for SimSteps<'_, '_> {
    fn run(&self, job: &Job, _attempt: &Attempt<'_>) -> Result<Outcome, String> {
        let mut sim = self.0.borrow_mut();
        let done = match job.step {
            Step::Ingest => sim.read_outcomes().map_err(|e| format!("{e:#}"))?,
            Step::Warn => sim.warn(),
            Step::Match => sim.treat(),
            other => return Err(format!("the simulation has no {} step", other.code())),
        };
        Ok(Outcome::Done(done))
    }
}

/// The kinds the world knows that the library has an offer of, for `reason`.
fn kinds(library: &Library, reason: &str) -> Vec<&'static str> {
    retain_synth::offer_kinds()
        .into_iter()
        .filter(|k| library.prior_save(reason, k).is_some())
        .collect()
}

/// One subscriber of a month's list, with the luck every policy shares.
#[derive(Debug, Clone)]
struct Listed {
    index: usize,
    reason: String,
    segment: &'static str,
    reach_draw: f64,
    save_draw: f64,
    take_draw: f64,
    explore_draw: f64,
    control_draw: f64,
    random_kind: usize,
}

/// An outcome the learning reads a month after the contact.
struct Pending {
    index: usize,
    reason: String,
    segment: &'static str,
    /// `None` for the control group.
    kind: Option<&'static str>,
    /// The month of the contact (its first day).
    month: NaiveDate,
}

struct Sim<'w> {
    workspace: &'w Workspace,
    future: Future,
    /// (subscriber, churn probability, top reason) from the model, riskiest first.
    scores: Vec<(i64, f64, String)>,
    library: Library,
    exploration_share: f64,
    budget: f64,
    list_share: f64,
    rng: Pcg64Mcg,
    learning: Learning,
    calibration: Option<Calibration>,
    confusion: Confusion,
    list: Vec<Listed>,
    pending: Vec<Pending>,
    /// Subscriber index → the month index of the last contact.
    last_contact: HashMap<usize, usize>,
    /// Subscribers who left (or cut their spending) since the simulation began, and when.
    exited: HashMap<i64, NaiveDate>,
    month_index: usize,
    /// The month's match, until the month closes.
    tally: Option<MonthTally>,
    months: Vec<SimMonth>,
}

/// The reasons the model gave, by the true cause of the listed (none for those not leaving).
#[derive(Default)]
struct Confusion(HashMap<Option<&'static str>, HashMap<String, f64>>);

impl Confusion {
    fn count(&mut self, cause: Option<&'static str>, reason: &str) {
        *self
            .0
            .entry(cause)
            .or_default()
            .entry(reason.to_owned())
            .or_default() += 1.0;
    }

    /// A reason as the model would give it; every reason keeps a little weight, so a cause
    /// the first month did not list still gets some.
    fn draw(&self, cause: Option<&'static str>, rng: &mut Pcg64Mcg) -> String {
        let seen = self.0.get(&cause);
        let weights: Vec<(&str, f64)> = retain_offers::REASONS
            .iter()
            .map(|(code, _)| {
                let n = seen.and_then(|m| m.get(*code)).copied().unwrap_or(0.0);
                (*code, n + 0.5)
            })
            .collect();
        let total: f64 = weights.iter().map(|w| w.1).sum();
        let mut x = rng.random::<f64>() * total;
        for (code, w) in &weights {
            if x < *w {
                return (*code).to_owned();
            }
            x -= w;
        }
        "unknown".to_owned()
    }
}

/// The segment learning counts by: the value tier of the monthly fee.
fn segment(fee: f64) -> &'static str {
    if fee >= 79.0 {
        "high"
    } else if fee >= 39.0 {
        "medium"
    } else {
        "low"
    }
}

impl Sim<'_> {
    fn begin_month(&mut self) -> retain_synth::MonthStart {
        self.month_index += 1;
        let start = self.future.begin_month();
        self.exited
            .extend(start.exits.iter().map(|e| (e.subscriber_id, start.month)));
        start
    }

    /// Reads the outcomes of last month's contacts: a contacted subscriber who left, or who
    /// still shows the intent they had then (by now a stop request, a port-out code or a
    /// suspension), counts as churned.
    fn read_outcomes(&mut self) -> anyhow::Result<serde_json::Value> {
        let month = self.future.month();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.month < month);
        self.pending = later;
        let mut churned = 0;
        for p in &due {
            let id = self.future.subscriber_id(p.index);
            let left = self.exited.get(&id).is_some_and(|&at| at > p.month)
                || self
                    .future
                    .intent_formed(p.index)
                    .is_some_and(|formed| formed <= p.month);
            churned += usize::from(left);
            let cell = Cell {
                reason: &p.reason,
                segment: p.segment,
            };
            match p.kind {
                Some(kind) => self.learning.observe_treated(cell, kind, left),
                None => self.learning.observe_control(cell, left),
            }
        }
        self.learning.save(self.workspace)?;
        Ok(serde_json::json!({ "outcomes": due.len(), "churned": churned }))
    }

    /// The month's warning list: in the first month the model's riskiest subscribers with its
    /// reasons; afterwards a list of the same measured quality drawn from the world (as many
    /// of the leavers, each reason drawn as the model gave reasons to leavers of the same
    /// true cause, and to those not leaving), since the simulated months export no new usage
    /// to score.
    fn warn(&mut self) -> serde_json::Value {
        let f = &self.future;
        let active: Vec<usize> = f
            .subscribers()
            .enumerate()
            .filter(|(i, (_, active))| {
                *active
                    && self
                        .last_contact
                        .get(i)
                        .is_none_or(|&m| m + COOL_OFF_MONTHS < self.month_index)
            })
            .map(|(i, _)| i)
            .collect();
        let size = ((active.len() as f64 * self.list_share).ceil() as usize).min(active.len());
        let mut chosen: Vec<(usize, String)> = Vec::with_capacity(size);
        match self.calibration {
            None => {
                let eligible: HashSet<usize> = active.iter().copied().collect();
                for (id, _, reason) in &self.scores {
                    if chosen.len() == size {
                        break;
                    }
                    if let Some(i) = f.index(*id).filter(|i| eligible.contains(i)) {
                        chosen.push((i, reason.clone()));
                    }
                }
                for (i, reason) in &chosen {
                    self.confusion.count(f.cause(*i), reason);
                }
                let leavers = active.iter().filter(|&&i| f.cause(i).is_some()).count();
                let caught: Vec<_> = chosen
                    .iter()
                    .filter_map(|(i, r)| f.cause(*i).map(|c| retain_model::cause_reason(c) == r))
                    .collect();
                self.calibration = Some(Calibration {
                    recall: ratio(caught.len(), leavers),
                    precision: ratio(caught.len(), chosen.len()),
                    reason_agreement: ratio(caught.iter().filter(|a| **a).count(), caught.len()),
                });
            }
            Some(c) => {
                let (mut leavers, mut others): (Vec<usize>, Vec<usize>) =
                    active.iter().partition(|&&i| f.cause(i).is_some());
                leavers.shuffle(&mut self.rng);
                others.shuffle(&mut self.rng);
                let caught = ((leavers.len() as f64 * c.recall).round() as usize).min(size);
                for &i in &leavers[..caught] {
                    let cause = f.cause(i).unwrap_or_default();
                    chosen.push((i, self.confusion.draw(Some(cause), &mut self.rng)));
                }
                for &i in others.iter().take(size - caught) {
                    chosen.push((i, self.confusion.draw(None, &mut self.rng)));
                }
                chosen.shuffle(&mut self.rng);
            }
        }
        let kinds = retain_synth::offer_kinds().len();
        let rng = &mut self.rng;
        self.list = chosen
            .into_iter()
            .map(|(index, reason)| Listed {
                index,
                segment: segment(f.fee(index)),
                reason,
                reach_draw: rng.random(),
                save_draw: rng.random(),
                take_draw: rng.random(),
                explore_draw: rng.random(),
                control_draw: rng.random(),
                random_kind: rng.random_range(0..kinds),
            })
            .collect();
        let leavers = self
            .list
            .iter()
            .filter(|l| f.cause(l.index).is_some())
            .count();
        serde_json::json!({ "listed": self.list.len(), "leavers": leavers })
    }

    /// The offer `policy` gives a listed subscriber, if any is worth its cost, with the net
    /// value the policy expects of it.
    fn choose(&mut self, policy: PolicyKind, l: &Listed) -> Option<(&'static str, f64)> {
        let f = &self.future;
        let fee = f.fee(l.index);
        let channel = f.channel(l.index);
        let contact = retain_synth::true_contact_cost(channel);
        // Contacts that do not reach keep nobody: the library's priors are per reached
        // subscriber, the learning's outcomes are per contact.
        let reach = retain_synth::reach(channel);
        let kinds = kinds(&self.library, &l.reason);
        let base = self.calibration.map_or(0.0, |c| c.precision);
        // The value an operator expects to keep: the churn the offer takes away times a
        // year's fee, less the contact and the offer as often as it is taken.
        let worth = |uplift: f64, kind: &str| {
            let take = (retain_synth::TAKE_ANYWAY + uplift).min(1.0);
            uplift * fee * VALUE_MONTHS - contact - take * retain_synth::true_offer_cost(kind, fee)
        };
        let best = |values: Vec<(&'static str, f64)>| {
            values
                .into_iter()
                .filter(|(_, v)| *v > 0.0)
                .max_by(|a, b| a.1.total_cmp(&b.1))
        };
        match policy {
            PolicyKind::Random => {
                let all = retain_synth::offer_kinds();
                Some((all[l.random_kind % all.len()], 0.0))
            }
            PolicyKind::FixedPriors => best(
                kinds
                    .iter()
                    .map(|k| {
                        let prior = self.library.prior_save(&l.reason, k).unwrap_or(0.0);
                        (*k, worth(base * prior * reach, k))
                    })
                    .collect(),
            ),
            PolicyKind::Learning => {
                let explore = l.explore_draw < self.exploration_share;
                let cell = Cell {
                    reason: &l.reason,
                    segment: l.segment,
                };
                let mut values = Vec::with_capacity(kinds.len());
                for k in kinds {
                    let prior = self.library.prior_save(&l.reason, k).unwrap_or(0.0) * reach;
                    let belief = self.learning.belief(cell, k, base, prior);
                    let uplift = if explore {
                        belief.draw_uplift(&mut self.rng)
                    } else {
                        belief.uplift()
                    };
                    values.push((k, worth(uplift, k)));
                }
                best(values)
            }
            PolicyKind::Oracle => {
                // The most value kept: the offer that truly works best on the true cause.
                let cause = f.cause(l.index)?;
                retain_synth::offer_kinds()
                    .into_iter()
                    .map(|k| (k, retain_synth::true_effect(cause, k).unwrap_or(0.0)))
                    .filter(|(_, e)| *e > 0.0)
                    .max_by(|a, b| {
                        a.1.total_cmp(&b.1).then_with(|| {
                            retain_synth::true_offer_cost(b.0, fee)
                                .total_cmp(&retain_synth::true_offer_cost(a.0, fee))
                        })
                    })
            }
        }
    }

    /// The offers `policy` would give, in the order it spends the budget: the random policy
    /// down the list, the others the most value per yuan first, as the matching does.
    fn plan(
        &mut self,
        policy: PolicyKind,
        list: &[Listed],
        month: NaiveDate,
    ) -> Vec<(Listed, &'static str)> {
        let list = if policy == PolicyKind::Oracle {
            self.oracle_order(list)
        } else {
            list.to_vec()
        };
        let mut plan = Vec::with_capacity(list.len());
        for l in list {
            // Every policy's campaign holds out the same control group, as retain's campaigns
            // do; only the learning reads its outcomes.
            if l.control_draw < CONTROL_SHARE {
                if policy == PolicyKind::Learning {
                    self.pending.push(Pending {
                        index: l.index,
                        reason: l.reason.clone(),
                        segment: l.segment,
                        kind: None,
                        month,
                    });
                }
                continue;
            }
            if let Some((kind, value)) = self.choose(policy, &l) {
                let cost = retain_synth::true_contact_cost(self.future.channel(l.index))
                    + retain_synth::true_offer_cost(kind, self.future.fee(l.index));
                plan.push((value / cost.max(0.01), l, kind));
            }
        }
        if matches!(policy, PolicyKind::Learning | PolicyKind::FixedPriors) {
            plan.sort_by(|a, b| b.0.total_cmp(&a.0));
        }
        plan.into_iter().map(|(_, l, k)| (l, k)).collect()
    }

    /// The list as the oracle takes it: the leavers only, the most value kept per yuan first.
    fn oracle_order(&self, list: &[Listed]) -> Vec<Listed> {
        let f = &self.future;
        let mut keyed: Vec<(f64, Listed)> = list
            .iter()
            .filter_map(|l| {
                let cause = f.cause(l.index)?;
                let fee = f.fee(l.index);
                let channel = f.channel(l.index);
                let (effect, cost) = retain_synth::offer_kinds()
                    .into_iter()
                    .map(|k| {
                        (
                            retain_synth::true_effect(cause, k).unwrap_or(0.0),
                            retain_synth::true_contact_cost(channel)
                                + retain_synth::true_offer_cost(k, fee),
                        )
                    })
                    .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)))?;
                let kept = retain_synth::reach(channel) * effect * f.at_stake(l.index);
                Some((kept / cost.max(0.01), l.clone()))
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        keyed.into_iter().map(|(_, l)| l).collect()
    }

    /// Matches the month's list under every policy, each within the month's budget, and gives
    /// the learning policy's treatments to the world.
    fn treat(&mut self) -> serde_json::Value {
        let list = std::mem::take(&mut self.list);
        let month = self.future.month();
        let mut out = MonthTally {
            listed: list.len(),
            listed_leavers: list
                .iter()
                .filter(|l| self.future.cause(l.index).is_some())
                .count(),
            outcomes_learned: self.learning.observations(),
            ..MonthTally::default()
        };
        let mut given = Vec::new();
        for policy in POLICIES {
            let plan = self.plan(policy, &list, month);
            let mut reserved = 0.0;
            let mut explored = 0.0;
            let mut leavers_treated = 0usize;
            for (l, kind) in &plan {
                let (l, kind) = (l, *kind);
                let fee = self.future.fee(l.index);
                let contact = retain_synth::true_contact_cost(self.future.channel(l.index));
                let offer = retain_synth::true_offer_cost(kind, fee);
                // The budget reserves the whole offer, as the matching does; what the learning
                // explores may take its exploration share of the budget and no more.
                let exploring =
                    policy == PolicyKind::Learning && l.explore_draw < self.exploration_share;
                if reserved + contact + offer > self.budget
                    || (exploring
                        && explored + contact + offer > self.exploration_share * self.budget)
                {
                    continue;
                }
                reserved += contact + offer;
                if exploring {
                    explored += contact + offer;
                }
                let stake = self.future.at_stake(l.index);
                let leaver = self.future.cause(l.index).is_some();
                // Every policy is valued on the world as the month found it; the learning
                // policy's treatments are given to it once all are valued.
                let effect = self
                    .future
                    .would_save(l.index, kind, l.reach_draw, l.save_draw);
                if policy == PolicyKind::Learning {
                    given.push((l.index, kind, l.reach_draw, l.save_draw));
                    self.last_contact.insert(l.index, self.month_index);
                    self.pending.push(Pending {
                        index: l.index,
                        reason: l.reason.clone(),
                        segment: l.segment,
                        kind: Some(kind),
                        month,
                    });
                }
                let taken =
                    effect.saved || (effect.reached && l.take_draw < retain_synth::TAKE_ANYWAY);
                *out.treated.get_mut(policy) += 1.0;
                *out.spent.get_mut(policy) += contact + if taken { offer } else { 0.0 };
                leavers_treated += usize::from(leaver);
                if effect.saved {
                    *out.saved.get_mut(policy) += 1.0;
                    *out.saved_value.get_mut(policy) += stake;
                }
            }
            let treated = out.treated.get(policy);
            let still_left = leavers_treated as f64 - out.saved.get(policy);
            *out.churn_treated.get_mut(policy) = if treated > 0.0 {
                still_left / treated
            } else {
                0.0
            };
        }
        for (index, kind, reach_draw, save_draw) in given {
            self.future.treat(index, kind, reach_draw, save_draw);
        }
        let summary = serde_json::json!({
            "listed": out.listed,
            "treated": out.treated.learning,
            "saved_value": round2(out.saved_value.learning),
        });
        self.tally = Some(out);
        summary
    }

    fn close_month(&mut self, start: &retain_synth::MonthStart) {
        let t = self.tally.take().unwrap_or_default();
        let oracle = t.saved_value.oracle;
        self.months.push(SimMonth {
            month: self.month_index as u32,
            period: start.month.format("%Y-%m").to_string(),
            active: start.active,
            new_intents: start.new_intents,
            exits: start.exits.len(),
            value_lost: round2(start.exits.iter().map(|e| e.value_lost).sum()),
            listed: t.listed,
            listed_leavers: t.listed_leavers,
            saved_value: t.saved_value.map(round2),
            saved: t.saved,
            treated: t.treated,
            churn_treated: t.churn_treated.map(round4),
            spent: t.spent.map(round2),
            net_value: t
                .saved_value
                .zip(t.spent, |kept, spent| round2(kept - spent)),
            outcomes_learned: t.outcomes_learned,
            learning_vs_oracle: if oracle > 0.0 {
                round4(t.saved_value.learning / oracle)
            } else {
                0.0
            },
        });
    }
}

#[derive(Debug, Default)]
struct MonthTally {
    listed: usize,
    listed_leavers: usize,
    outcomes_learned: u64,
    saved_value: ByPolicy,
    saved: ByPolicy,
    treated: ByPolicy,
    churn_treated: ByPolicy,
    spent: ByPolicy,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        round4(a as f64 / b as f64)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn describe(r: &Report) -> String {
    let c = r.calibration;
    let mut text = format!(
        "closed-loop simulation: {} subscribers, seed {}, budget {:.0} yuan a month, {} listed a month\n\
         warning list (first month, the model's): recall {:.1}%, precision {:.1}%, reason agreement {:.1}%\n\n\
         month  period   listed leavers | saved value (yuan): learning  fixed priors    random    oracle | learning/oracle\n",
        r.subscribers,
        r.seed,
        r.budget,
        r.months.first().map_or(0, |m| m.listed),
        100.0 * c.recall,
        100.0 * c.precision,
        100.0 * c.reason_agreement,
    );
    for m in &r.months {
        let s = m.saved_value;
        let _ = writeln!(
            text,
            "{:>5}  {}  {:>6} {:>7} | {:>27.0} {:>13.0} {:>9.0} {:>9.0} | {:>6.1}%",
            m.month,
            m.period,
            m.listed,
            m.listed_leavers,
            s.learning,
            s.fixed_priors,
            s.random,
            s.oracle,
            100.0 * m.learning_vs_oracle,
        );
    }
    let t = r.total_saved_value;
    let _ = writeln!(
        text,
        "total                          | {:>27.0} {:>13.0} {:>9.0} {:>9.0}\nreport: {}",
        t.learning,
        t.fixed_priors,
        t.random,
        t.oracle,
        r.dir.join("reports/simulation.json").display()
    );
    text
}
