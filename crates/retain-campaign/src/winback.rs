//! Win-back (挽回/召回): the subscribers who left recently, how they left (ported out, a stop
//! request, an arrears cut-off), what they were worth and whether they can still be reached; the
//! list for the call centre and the account managers; and, on the synthetic operator, who would
//! come back and how much an offer moves them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{Months, NaiveDate};
use datafusion::execution::context::SessionContext;
use rand::{Rng, SeedableRng};
use retain_data::Workspace;
use retain_features::frame::{floats, ids, query, texts};
use retain_offers::{Channel, Policy};
use retain_store::{CallbackRecord, MemberRecord, OutcomeRecord, WorkOrderRecord};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::template::MAX_WINDOW_MONTHS;

/// How far before leaving the events that tell how someone left are read.
const EXIT_EVENTS_MONTHS: u32 = 6;

/// The purpose of a win-back work order.
pub(crate) const WIN_BACK: &str = "win_back";

/// Whether a campaign wins back leavers (its template's population), rather than keeps
/// subscribers at risk.
#[must_use]
pub fn is_win_back(c: &retain_store::CampaignRecord) -> bool {
    c.definition["target"]["population"] == "leavers"
}

/// The months within which a win-back campaign's leaver must be active again to count as
/// returned (its template's `return_months`; campaigns saved before it count
/// [`retain_offers::HORIZON_MONTHS`]).
#[must_use]
pub(crate) fn return_months(c: &retain_store::CampaignRecord) -> u32 {
    c.definition["target"]["return_months"]
        .as_u64()
        .and_then(|m| u32::try_from(m).ok())
        .filter(|m| (1..=crate::template::MAX_RETURN_MONTHS).contains(m))
        .unwrap_or(retain_offers::HORIZON_MONTHS)
}

/// The chance of returning within `months` of one whose chance within
/// [`retain_offers::HORIZON_MONTHS`] is `p`, at a constant monthly hazard: the truth's and the
/// offers' return rates are of that horizon.
#[must_use]
pub(crate) fn within(p: f64, months: u32) -> f64 {
    let p = p.clamp(0.0, 1.0);
    1.0 - (1.0 - p).powf(f64::from(months) / f64::from(retain_offers::HORIZON_MONTHS))
}

/// One recent leaver.
#[derive(Debug, Clone, Serialize)]
pub struct Leaver {
    pub subscriber_id: i64,
    pub msisdn: String,
    pub left_on: NaiveDate,
    /// `port_out` (携号转出), `requested` (a stop request, 主动销户), `arrears` (cut off for
    /// unpaid bills, 欠费销户) or `cancel` (cancelled without either in the data).
    pub exit: &'static str,
    /// An arrears cut-off is not a defection: involuntary leavers go to arrears handling.
    pub voluntary: bool,
    pub competitor: String,
    /// Mean monthly fee over the billed months of the four before leaving.
    pub arpu: f64,
    pub tenure_months: u32,
    /// `value_months` of that ARPU: what a return keeps.
    pub value: f64,
    /// The churn reason (a code of `retain_offers::REASONS`) the exit shows.
    pub reason: &'static str,
    /// How they can be reached: a ported-out number lives on at the other operator (a call);
    /// a cancelled number is closed, so only an account manager reaches its owner.
    pub channel: Option<Channel>,
    pub do_not_disturb: bool,
    pub branch_id: String,
    pub manager_id: String,
}

impl Leaver {
    /// Whether a win-back offer may go to them: voluntary, reachable, not on the DND list.
    #[must_use]
    pub fn targetable(&self) -> bool {
        self.voluntary && self.channel.is_some() && !self.do_not_disturb
    }

    /// The channels that reach them.
    #[must_use]
    pub fn reaches(&self, channel: Channel) -> bool {
        match self.channel {
            Some(Channel::OutboundCall) => {
                matches!(channel, Channel::OutboundCall | Channel::Sms)
                    || (channel == Channel::ManagerVisit && !self.manager_id.is_empty())
            }
            Some(c) => c == channel,
            None => false,
        }
    }
}

/// The leavers of the `window_months` before `as_of` (first day excluded from none: a leaver
/// of `as_of − window` is in, one of `as_of` is not), ordered by subscriber.
pub async fn leavers(
    ctx: &SessionContext,
    workspace: &Workspace,
    as_of: NaiveDate,
    window_months: u32,
) -> Result<Vec<Leaver>> {
    if !(1..=MAX_WINDOW_MONTHS).contains(&window_months) {
        return Err(Error::BadRequest(format!(
            "--window-months: leavers of the last 1 to {MAX_WINDOW_MONTHS} months, not {window_months}"
        )));
    }
    let as_of = retain_features::conditions::check_as_of(as_of).map_err(Error::BadRequest)?;
    let policy = Policy::for_workspace(workspace)?;
    let from = as_of - Months::new(window_months);
    let events_from = from - Months::new(EXIT_EVENTS_MONTHS);
    let left = format!(
        "SELECT subscriber_id, msisdn, join_date, status_date, branch_id, manager_id \
         FROM subscribers WHERE status = 'cancelled' \
         AND status_date >= DATE '{from}' AND status_date < DATE '{as_of}'"
    );
    let batches = query(
        ctx,
        &format!(
            "SELECT subscriber_id, msisdn, CAST(join_date AS VARCHAR) AS join_date, \
             CAST(status_date AS VARCHAR) AS left_on, branch_id, \
             COALESCE(manager_id, '') AS manager_id FROM ({left}) ORDER BY subscriber_id"
        ),
        "recent leavers",
    )
    .await?;
    let (sub, msisdn, joined, left_on, branch, manager) = (
        ids(&batches, "subscriber_id")?,
        texts(&batches, "msisdn")?,
        texts(&batches, "join_date")?,
        texts(&batches, "left_on")?,
        texts(&batches, "branch_id")?,
        texts(&batches, "manager_id")?,
    );
    let events = query(
        ctx,
        &format!(
            "SELECT e.subscriber_id, e.kind, COALESCE(e.category, '') AS category, \
             COALESCE(e.competitor, '') AS competitor, CAST(e.timestamp AS VARCHAR) AS at \
             FROM events e JOIN ({left}) l ON e.subscriber_id = l.subscriber_id \
             WHERE e.kind IN ('port_out', 'stop_request', 'suspension', 'resume') \
             AND e.timestamp >= TIMESTAMP '{events_from}T00:00:00' \
             AND e.timestamp < TIMESTAMP '{as_of}T00:00:00' \
             ORDER BY e.subscriber_id, at"
        ),
        "leavers' exit events",
    )
    .await?;
    let (e_sub, e_kind, e_category, e_competitor) = (
        ids(&events, "subscriber_id")?,
        texts(&events, "kind")?,
        texts(&events, "category")?,
        texts(&events, "competitor")?,
    );
    let fees = query(
        ctx,
        &format!(
            "SELECT u.subscriber_id, AVG(u.fee) AS arpu FROM usage_monthly u \
             JOIN ({left}) l ON u.subscriber_id = l.subscriber_id \
             WHERE u.fee > 0 AND u.period < l.status_date \
             AND u.period >= l.status_date - INTERVAL '4 months' \
             GROUP BY u.subscriber_id"
        ),
        "leavers' fees",
    )
    .await?;
    let arpu: HashMap<i64, f64> = ids(&fees, "subscriber_id")?
        .into_iter()
        .zip(floats(&fees, "arpu")?)
        .collect();
    let by_msisdn: HashMap<String, i64> = msisdn.iter().cloned().zip(sub.iter().copied()).collect();
    let dnd = retain_offers::read_dnd(&workspace.root().join(&policy.dnd_file), &by_msisdn)?;

    // How each left, from its events before the leaving day (in subscriber order, as queried).
    let mut exits: HashMap<i64, Exit> = HashMap::new();
    for i in 0..e_sub.len() {
        let exit = exits.entry(e_sub[i]).or_default();
        match e_kind[i].as_str() {
            "port_out" => {
                exit.ported = true;
                exit.competitor.clone_from(&e_competitor[i]);
            }
            "stop_request" => exit.requested = true,
            // Events come in time order: the last suspension and whether a resume followed it.
            "suspension" => {
                exit.last_suspension = if e_category[i] == "arrears" {
                    Suspension::Arrears
                } else {
                    Suspension::Requested
                };
            }
            "resume" => exit.last_suspension = Suspension::Resumed,
            _ => {}
        }
    }
    let parse = |s: &str| NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok();
    let mut out = Vec::with_capacity(sub.len());
    for i in 0..sub.len() {
        let id = sub[i];
        let Some(left) = parse(&left_on[i]) else {
            continue;
        };
        let exit = exits.remove(&id).unwrap_or_default();
        let (kind, voluntary, reason) = if exit.ported {
            ("port_out", true, "competitor_lure")
        } else if exit.requested {
            ("requested", true, "unknown")
        } else if exit.last_suspension == Suspension::Arrears {
            ("arrears", false, "billing_arrears")
        } else {
            ("cancel", true, "unknown")
        };
        let channel = if exit.ported {
            Some(Channel::OutboundCall)
        } else if manager[i].is_empty() {
            None
        } else {
            Some(Channel::ManagerVisit)
        };
        let fee = arpu
            .get(&id)
            .copied()
            .filter(|f| f.is_finite())
            .unwrap_or(0.0);
        let tenure = parse(&joined[i]).map_or(0, |j| months_between(j, left));
        out.push(Leaver {
            subscriber_id: id,
            msisdn: msisdn[i].clone(),
            left_on: left,
            exit: kind,
            voluntary,
            competitor: exit.competitor,
            arpu: (fee * 100.0).round() / 100.0,
            tenure_months: tenure,
            value: (fee * policy.value_months * 100.0).round() / 100.0,
            reason,
            channel,
            do_not_disturb: dnd.contains(&id),
            branch_id: branch[i].clone(),
            manager_id: manager[i].clone(),
        });
    }
    Ok(out)
}

/// Whole months from `a` to `b`.
fn months_between(a: NaiveDate, b: NaiveDate) -> u32 {
    use chrono::Datelike as _;
    let m = (b.year() - a.year()) * 12 + b.month() as i32
        - a.month() as i32
        - i32::from(b.day() < a.day());
    u32::try_from(m.max(0)).unwrap_or(0)
}

/// What the events say of one leaver's way out.
#[derive(Debug, Default)]
struct Exit {
    ported: bool,
    competitor: String,
    requested: bool,
    last_suspension: Suspension,
}

/// The state the last suspension left a line in.
#[derive(Debug, Default, PartialEq, Eq)]
enum Suspension {
    #[default]
    None,
    /// Cut off for arrears, and never resumed: an involuntary exit.
    Arrears,
    /// Suspended at the subscriber's request.
    Requested,
    Resumed,
}

/// The win-back list and its summary, which `retain winback --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct WinbackReport {
    #[serde(flatten)]
    pub summary: WinbackSummary,
    pub list_file: PathBuf,
    pub xlsx_file: PathBuf,
}

/// Counts of a list of leavers.
#[derive(Debug, Clone, Serialize)]
pub struct WinbackSummary {
    pub as_of: NaiveDate,
    pub window_months: u32,
    pub leavers: usize,
    pub voluntary: usize,
    pub involuntary: usize,
    /// Voluntary, reachable and not on the do-not-disturb list: whom a win-back campaign may
    /// contact.
    pub reachable: usize,
    pub unreachable: usize,
    pub do_not_disturb: usize,
    pub by_exit: BTreeMap<&'static str, usize>,
    pub by_channel: BTreeMap<&'static str, usize>,
    /// Σ value of the reachable leavers.
    pub reachable_value: f64,
}

/// Counts leavers by how they left and how they can be reached.
#[must_use]
pub fn summarize(as_of: NaiveDate, window_months: u32, leavers: &[Leaver]) -> WinbackSummary {
    let mut by_exit = BTreeMap::new();
    let mut by_channel = BTreeMap::new();
    for l in leavers {
        *by_exit.entry(l.exit).or_insert(0) += 1;
        if l.targetable() {
            *by_channel
                .entry(l.channel.map_or("none", Channel::code))
                .or_insert(0) += 1;
        }
    }
    let reachable: Vec<&Leaver> = leavers.iter().filter(|l| l.targetable()).collect();
    let voluntary = leavers.iter().filter(|l| l.voluntary).count();
    WinbackSummary {
        as_of,
        window_months,
        leavers: leavers.len(),
        voluntary,
        involuntary: leavers.len() - voluntary,
        reachable: reachable.len(),
        unreachable: leavers.len() - reachable.len(),
        do_not_disturb: leavers.iter().filter(|l| l.do_not_disturb).count(),
        by_exit,
        by_channel,
        reachable_value: (reachable.iter().map(|l| l.value).sum::<f64>() * 100.0).round() / 100.0,
    }
}

const LIST_COLUMNS: [&str; 15] = [
    "subscriber_id",
    "msisdn",
    "left_on",
    "exit",
    "voluntary",
    "competitor",
    "arpu",
    "tenure_months",
    "value",
    "reason",
    "channel",
    "reachable",
    "do_not_disturb",
    "branch_id",
    "manager_id",
];

/// Writes `winback/<as_of>.csv` (UTF-8 with a BOM) and `.xlsx`, most valuable first, and
/// returns the summary.
pub fn write_list(
    workspace: &Workspace,
    as_of: NaiveDate,
    window_months: u32,
    leavers: &[Leaver],
) -> Result<WinbackReport> {
    let dir = workspace.root().join("winback");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut order: Vec<&Leaver> = leavers.iter().collect();
    order.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then(a.subscriber_id.cmp(&b.subscriber_id))
    });
    let cell = |t: &str| retain_data::spreadsheet_cell(t).into_owned();
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|l| {
            vec![
                l.subscriber_id.to_string(),
                l.msisdn.clone(),
                l.left_on.to_string(),
                l.exit.to_owned(),
                u8::from(l.voluntary).to_string(),
                cell(&l.competitor),
                format!("{:.2}", l.arpu),
                l.tenure_months.to_string(),
                format!("{:.2}", l.value),
                l.reason.to_owned(),
                l.channel.map_or("", Channel::code).to_owned(),
                u8::from(l.targetable()).to_string(),
                u8::from(l.do_not_disturb).to_string(),
                cell(&l.branch_id),
                cell(&l.manager_id),
            ]
        })
        .collect();
    let list_file = dir.join(format!("{as_of}.csv"));
    let mut csv = csv::Writer::from_writer(retain_data::BOM.to_vec());
    let ctx = |e| Error::csv(list_file.display().to_string(), e);
    csv.write_record(LIST_COLUMNS).map_err(ctx)?;
    for row in &rows {
        csv.write_record(row).map_err(ctx)?;
    }
    let bytes = csv
        .into_inner()
        .map_err(|e| Error::Internal(e.to_string()))?;
    retain_data::write_atomically(&list_file, &bytes)?;
    let xlsx_file = dir.join(format!("{as_of}.xlsx"));
    crate::workorder::write_xlsx(&xlsx_file, "流失客户清单", &LIST_COLUMNS, &rows)?;

    Ok(WinbackReport {
        summary: summarize(as_of, window_months, leavers),
        list_file,
        xlsx_file,
    })
}

/// The synthetic operator's truth about returns: each leaver's exit path and cause, and the
/// return propensity of each (`truth/return_effects.csv`).
pub(crate) struct ReturnTruth {
    leavers: HashMap<i64, (String, String)>,
    effects: HashMap<(String, String), (f64, f64)>,
}

impl ReturnTruth {
    /// `None` when the workspace has no such truth (not a synthetic operator, or an older one).
    pub(crate) fn load(dir: &Path) -> Result<Option<ReturnTruth>> {
        let (churn, effects) = (dir.join("churn.csv"), dir.join("return_effects.csv"));
        if !churn.exists() || !effects.exists() {
            return Ok(None);
        }
        let read = |path: &Path| -> Result<Vec<HashMap<String, String>>> {
            let mut r = csv::Reader::from_path(path)
                .map_err(|e| Error::csv(path.display().to_string(), e))?;
            let h = r
                .headers()
                .map_err(|e| Error::csv(path.display().to_string(), e))?
                .clone();
            r.records()
                .map(|rec| {
                    let rec = rec.map_err(|e| Error::csv(path.display().to_string(), e))?;
                    Ok(h.iter()
                        .zip(rec.iter())
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect())
                })
                .collect()
        };
        let get = |row: &HashMap<String, String>, k: &str| row.get(k).cloned().unwrap_or_default();
        let leavers = read(&churn)?
            .into_iter()
            .filter(|r| get(r, "outcome") == "churned" && get(r, "churn_type") == "quantity")
            .filter_map(|r| {
                Some((
                    get(&r, "subscriber_id").parse().ok()?,
                    (get(&r, "path"), get(&r, "cause")),
                ))
            })
            .collect();
        let effects = read(&effects)?
            .into_iter()
            .filter_map(|r| {
                Some((
                    (get(&r, "path"), get(&r, "cause")),
                    (
                        get(&r, "return_base").parse().ok()?,
                        get(&r, "return_lift").parse().ok()?,
                    ),
                ))
            })
            .collect();
        Ok(Some(ReturnTruth { leavers, effects }))
    }

    /// (unprompted return chance, added chance when reached with an offer) of a leaver.
    fn of(&self, id: i64) -> ((f64, f64), Option<&str>) {
        match self.leavers.get(&id) {
            Some((path, cause)) => (
                self.effects
                    .get(&(path.clone(), cause.clone()))
                    .copied()
                    .unwrap_or((0.03, 0.0)),
                Some(cause.as_str()),
            ),
            None => ((0.03, 0.0), None),
        }
    }
}

/// Draws what the synthetic operator's leavers would do: a member comes back unprompted with
/// the truth's base chance; a treated one reached comes back with the base plus the lift of
/// the rest, and took the offer if so. `true_uplift` is the mean over members of reach × the
/// added chance.
pub(crate) fn simulate(
    members: &[MemberRecord],
    orders: &[WorkOrderRecord],
    truth: &ReturnTruth,
    reach: &dyn Fn(Channel) -> f64,
    seed: u64,
    months: u32,
) -> crate::callbacks::Simulation {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let order_of: HashMap<i64, &WorkOrderRecord> = orders
        .iter()
        .filter(|w| w.purpose == WIN_BACK)
        .map(|w| (w.subscriber_id, w))
        .collect();
    let mut sim = crate::callbacks::Simulation::default();
    let mut effect = 0.0;
    for m in members {
        let ((base4, lift), cause) = truth.of(m.subscriber_id);
        let channel = Channel::from_code(&m.channel).unwrap_or(Channel::OutboundCall);
        // The truth's chances are of the four-month horizon; the campaign counts `months`.
        let base = within(base4, months);
        let added = within(base4 + (1.0 - base4) * lift, months) - base;
        effect += reach(channel) * added;
        let u = rng.random::<f64>();
        let mut returned = u < base;
        if m.arm == "treatment"
            && let Some(w) = order_of.get(&m.subscriber_id)
        {
            let reached = rng.random::<f64>() < reach(channel);
            let accepted = reached && u < base + added;
            returned |= accepted;
            sim.callbacks.push(CallbackRecord {
                work_order_id: w.id,
                reached,
                accepted,
                stated_reason: reached
                    .then(|| crate::callbacks::stated(cause.unwrap_or("")).to_owned()),
                satisfaction: None,
                notes: String::new(),
                follow_up: None,
                source: "simulated".into(),
                recorded_by: "simulation".into(),
            });
        }
        sim.outcomes.push(OutcomeRecord {
            subscriber_id: m.subscriber_id,
            retained: returned,
            arpu_after: Some(if returned { m.arpu } else { 0.0 }),
            source: "simulated".into(),
        });
    }
    if !members.is_empty() {
        sim.true_uplift = effect / members.len() as f64;
    }
    sim
}

/// The share of leavers assumed to come back unprompted when planning for power: returns are
/// rare without an offer (the synthetic operator's are 2–5%).
const UNPROMPTED_RETURN: f64 = 0.03;

/// The share of win-back contacts assumed to reach the leaver (the history's reach is
/// measured on subscribers, who answer more often).
const REACH: f64 = 0.75;

/// A leaver's best win-back offer and channel, valued.
struct Pick<'a> {
    leaver: &'a Leaver,
    level: retain_offers::Level,
    offer: &'a retain_offers::Offer,
    channel: Channel,
    rate: f64,
    cost: f64,
    expected_cost: f64,
    expected_value: f64,
}

/// A win-back campaign's plan: the target's reachable voluntary leavers, graded by value into
/// levels, each with the welcome-back offer and channel of the best expected value (the
/// offer's return rate × their value − its cost), the most value per yuan first under the
/// budget and the channels' capacity; a control group drawn as in any campaign.
pub(crate) async fn plan(
    ctx: &SessionContext,
    workspace: &Workspace,
    req: &crate::plan::PlanRequest<'_>,
) -> Result<crate::plan::Planned> {
    use retain_offers::{Assignment, Level, Library, Method, Stage};

    let t = req.template;
    let library = Library::for_workspace(workspace)?;
    let policy = Policy::for_workspace(workspace)?;
    let all = leavers(ctx, workspace, req.as_of, t.target.window_months).await?;
    let mut notes = Vec::new();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut eligible: Vec<&Leaver> = Vec::new();
    for l in &all {
        // Counted in the rehearsal's sample only, as every other constraint is.
        let sampled = req
            .sample
            .is_none_or(|share| crate::plan::unit(req.seed, l.subscriber_id, 0x5A3E) < share);
        let why = if !l.voluntary {
            Some("involuntary")
        } else if l.do_not_disturb {
            Some("do_not_disturb")
        } else if l.channel.is_none() {
            Some("unreachable")
        } else {
            None
        };
        match why {
            Some(w) if sampled => *skipped.entry(w).or_insert(0) += 1,
            Some(_) => {}
            None => eligible.push(l),
        }
    }
    if skipped.get("involuntary").is_some_and(|n| *n > 0) {
        notes.push(format!(
            "{} arrears cut-offs are left to arrears handling, not offered a return",
            skipped["involuntary"]
        ));
    }
    // Levels grade the whole reachable target by value, before sampling, so a member's level
    // does not depend on the rehearsal's draw.
    let mut by_value: Vec<&Leaver> = eligible.clone();
    by_value.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then(a.subscriber_id.cmp(&b.subscriber_id))
    });
    let n = by_value.len().max(1) as f64;
    let level_of: HashMap<i64, Level> = by_value
        .iter()
        .enumerate()
        .map(|(rank, l)| {
            let q = rank as f64 / n;
            let level = if q < 0.2 {
                Level::Red
            } else if q < 0.5 {
                Level::Yellow
            } else {
                Level::Blue
            };
            (l.subscriber_id, level)
        })
        .collect();
    let offers: Vec<(u16, &retain_offers::Offer)> = library
        .offers
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.stage == Stage::WinBack
                && o.valid_on(req.as_of)
                && (t.offers.ids.is_empty() || t.offers.ids.contains(&o.id))
                && (t.offers.kinds.is_empty() || t.offers.kinds.contains(&o.kind))
        })
        .filter_map(|(i, o)| Some((u16::try_from(i).ok()?, o)))
        .collect();
    if offers.is_empty() {
        return Err(Error::BadRequest(
            "no win-back offer in the library is allowed by the template (stage = \"win_back\")"
                .into(),
        ));
    }

    // Each leaver's best (offer, channel) by expected value.
    let mut target = 0;
    let mut busy = 0;
    let mut picks: Vec<Pick> = Vec::new();
    for l in &eligible {
        let level = level_of[&l.subscriber_id];
        if !t.target.levels.contains(&level) {
            continue;
        }
        target += 1;
        if req.busy.contains(&l.subscriber_id) {
            busy += 1;
            continue;
        }
        if let Some(share) = req.sample
            && crate::plan::unit(req.seed, l.subscriber_id, 0x5A3E) >= share
        {
            continue;
        }
        let mut best: Option<Pick> = None;
        for &(_, offer) in &offers {
            // The offer's return rate is of those reached.
            let prior = if offer.addresses(l.reason) {
                offer.prior_save_rate
            } else {
                offer.prior_save_rate * 0.2
            };
            let rate = REACH * within(prior, t.target.return_months);
            let offer_cost = offer.cost.cost(l.arpu);
            // The level's flow, in order: the first channel that reaches them and the offer uses.
            let Some(channel) = t
                .flow
                .for_level(level)
                .iter()
                .copied()
                .find(|ch| l.reaches(*ch) && offer.channels.contains(ch))
            else {
                continue;
            };
            let contact = policy.channel(channel).contact_cost;
            let expected_cost = contact + rate * offer_cost;
            let expected_value = rate * l.value - expected_cost;
            if best
                .as_ref()
                .is_none_or(|b| expected_value > b.expected_value)
            {
                best = Some(Pick {
                    leaver: l,
                    level,
                    offer,
                    channel,
                    rate,
                    cost: contact + offer_cost,
                    expected_cost,
                    expected_value,
                });
            }
        }
        match best {
            Some(p) if p.expected_value > 0.0 => picks.push(p),
            Some(_) => *skipped.entry("no_positive_value").or_insert(0) += 1,
            None => *skipped.entry("no_eligible_offer").or_insert(0) += 1,
        }
    }
    let sampled = picks.len();
    // The most value per yuan first, under the budget and each channel's capacity over the run.
    picks.sort_by(|a, b| {
        (b.expected_value / b.cost.max(0.01))
            .total_cmp(&(a.expected_value / a.cost.max(0.01)))
            .then(a.leaver.subscriber_id.cmp(&b.leaver.subscriber_id))
    });
    let budget = req.budget * req.sample.unwrap_or(1.0);
    let mut spent = 0.0;
    let mut used: HashMap<Channel, u64> = HashMap::new();
    let mut assigned: Vec<Pick> = Vec::new();
    for p in picks {
        let capacity = u64::from(policy.channel(p.channel).daily_capacity)
            * u64::from(policy.campaign_days.max(1));
        let taken = used.entry(p.channel).or_insert(0);
        if spent + p.cost > budget + 1e-9 {
            *skipped.entry("budget").or_insert(0) += 1;
        } else if *taken >= capacity {
            *skipped.entry("channel_capacity").or_insert(0) += 1;
        } else {
            spent += p.cost;
            *taken += 1;
            assigned.push(p);
        }
    }

    let power = {
        let k = assigned.len().max(1) as f64;
        let expected: f64 = assigned.iter().map(|p| p.rate).sum::<f64>() / k;
        // The control's "retention" here is the share that comes back unprompted.
        crate::plan::choose_power(
            req,
            assigned.len(),
            expected,
            within(UNPROMPTED_RETURN, t.target.return_months),
        )
    };
    // Strata by level, the stable draw of any campaign.
    let mut strata: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    for (i, p) in assigned.iter().enumerate() {
        strata.entry(p.level.code()).or_default().push(i);
    }
    let control = crate::plan::draw_control(
        req.seed,
        strata,
        |i| assigned[i].leaver.subscriber_id,
        assigned.len(),
        power.control_share,
    );
    let mut planned = crate::plan::Planned {
        target,
        sampled,
        in_running_campaigns: busy,
        skipped_by_constraint: skipped,
        power,
        notes,
        ..crate::plan::Planned::default()
    };
    for (i, p) in assigned.iter().enumerate() {
        let l = p.leaver;
        let arm = if control[i] { "control" } else { "treatment" };
        let tier = match p.level {
            Level::Red => "high",
            Level::Yellow => "medium",
            Level::Blue => "low",
        };
        planned.members.push(MemberRecord {
            subscriber_id: l.subscriber_id,
            arm: arm.into(),
            stratum: p.level.code().into(),
            level: p.level.code().into(),
            tier: tier.into(),
            segment: "churned".into(),
            reason: l.reason.into(),
            offer_id: p.offer.id.clone(),
            offer_kind: p.offer.kind.code().into(),
            channel: p.channel.code().into(),
            p_churn: 1.0,
            clv: l.value,
            arpu: l.arpu,
            cost: p.cost,
            expected_cost: p.expected_cost,
            expected_value: p.expected_value,
        });
        let due = t.due(p.channel, req.as_of);
        let assignment = Assignment {
            subscriber_id: l.subscriber_id,
            level: p.level,
            offer_id: p.offer.id.clone(),
            kind: p.offer.kind,
            channel: p.channel,
            day: req.as_of,
            time: None,
            reason: l.reason,
            p_churn: 1.0,
            clv: l.value,
            save_rate: p.rate,
            method: Method::Prior,
            cost: p.cost,
            expected_cost: p.expected_cost,
            expected_value: p.expected_value,
            binding: None,
        };
        if !planned.projection.count(&assignment, control[i], REACH) {
            continue;
        }
        planned.orders.push(retain_store::NewWorkOrder {
            subscriber_id: l.subscriber_id,
            channel: p.channel.code().into(),
            purpose: WIN_BACK.into(),
            offer_id: p.offer.id.clone(),
            branch_id: l.branch_id.clone(),
            manager_id: l.manager_id.clone(),
            due_date: due.to_string(),
            payload: crate::workorder::payload(t, p.offer, &assignment, &l.msisdn, due),
        });
    }
    let projection = &mut planned.projection;
    if projection.expected_cost > 0.0 {
        projection.expected_roi =
            (projection.expected_saved_value - projection.expected_cost) / projection.expected_cost;
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_chance_scales_with_its_window_at_a_constant_hazard() {
        assert!((within(0.2, 4) - 0.2).abs() < 1e-12);
        assert!((within(0.5, 8) - 0.75).abs() < 1e-12);
        assert!((within(0.36, 2) - 0.2).abs() < 1e-12);
        assert!(within(0.1, 1) < within(0.1, 4) && within(0.1, 4) < within(0.1, 12));
        assert!(within(0.0, 12).abs() < 1e-15);
        assert!((within(1.5, 2) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn whole_months_count_only_completed_ones() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(months_between(d("2025-01-15"), d("2025-03-14")), 1);
        assert_eq!(months_between(d("2025-01-15"), d("2025-03-15")), 2);
        assert_eq!(months_between(d("2025-03-15"), d("2025-01-15")), 0);
    }

    fn leaver(channel: Option<Channel>, manager: &str) -> Leaver {
        Leaver {
            subscriber_id: 1,
            msisdn: "13800000000".into(),
            left_on: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            exit: "port_out",
            voluntary: true,
            competitor: String::new(),
            arpu: 100.0,
            tenure_months: 30,
            value: 2400.0,
            reason: "competitor_lure",
            channel,
            do_not_disturb: false,
            branch_id: "B".into(),
            manager_id: manager.into(),
        }
    }

    #[test]
    fn a_ported_number_is_called_and_a_closed_one_only_visited() {
        let ported = leaver(Some(Channel::OutboundCall), "");
        assert!(ported.reaches(Channel::Sms) && !ported.reaches(Channel::ManagerVisit));
        assert!(leaver(Some(Channel::OutboundCall), "M1").reaches(Channel::ManagerVisit));
        let closed = leaver(Some(Channel::ManagerVisit), "M1");
        assert!(!closed.reaches(Channel::OutboundCall) && closed.reaches(Channel::ManagerVisit));
        assert!(!leaver(None, "").targetable());
        let mut dnd = leaver(Some(Channel::OutboundCall), "");
        dnd.do_not_disturb = true;
        assert!(!dnd.targetable());
        let mut cut = leaver(Some(Channel::OutboundCall), "");
        cut.voluntary = false;
        assert!(
            !cut.targetable(),
            "arrears cut-offs get arrears handling, not offers"
        );
    }
}
