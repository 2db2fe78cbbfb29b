//! Callbacks (回访): what each work order found — reached or not, offer accepted or not, the
//! reason the subscriber gave — imported from the call centre's result files and validated
//! like any ingest, or simulated from the synthetic operator's true offer effects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike as _, NaiveDate};
use rand::{Rng, SeedableRng};
use retain_offers::{Channel, REASONS, Truth};
use retain_store::{CallbackRecord, MemberRecord, OutcomeRecord, WorkOrderRecord};
use serde::Serialize;

use crate::error::{Error, Result};

/// The years a follow-up date may fall in: a date a person types, which the escalation's
/// schedule counts days from.
const FOLLOW_UP_YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

/// Reasons only a conversation reveals, beside the model's reason categories (but
/// `unknown`): together they are the reasons a subscriber may state.
pub const STATED_ONLY: &[(&str, &str)] = &[
    ("price", "资费偏高"),
    ("relocation", "迁居/离开本地"),
    ("other", "其他"),
];

/// Every reason a subscriber may state: (code, Chinese name).
pub fn stated_reasons() -> impl Iterator<Item = (&'static str, &'static str)> {
    REASONS
        .iter()
        .filter(|(c, _)| *c != "unknown")
        .chain(STATED_ONLY)
        .copied()
}

/// What an import did. `read = loaded + quarantined`.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub file: PathBuf,
    pub read: usize,
    pub loaded: usize,
    pub quarantined: usize,
    pub inserted: u64,
    pub updated: u64,
    pub quarantine_file: PathBuf,
    /// The first few rejections, each naming file, line, column and reason.
    pub errors: Vec<String>,
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "y" | "yes" | "true" | "是" => Some(true),
        "0" | "n" | "no" | "false" | "否" => Some(false),
        _ => None,
    }
}

/// A satisfaction score as a person types it: a whole number from 0 to 10 (`8`, `8.0`, `8分`).
pub(crate) fn satisfaction(v: &str) -> Option<u8> {
    let v = v.trim();
    let v = v.strip_suffix('分').unwrap_or(v).trim();
    let v = v.strip_suffix(".0").unwrap_or(v);
    v.parse::<u8>().ok().filter(|s| *s <= 10)
}

/// A parsed result file: the good rows, the rejected ones with their error, the header and
/// the rows read.
pub(crate) struct Parsed {
    pub good: Vec<CallbackRecord>,
    pub bad: Vec<(Vec<String>, String)>,
    pub headers: Vec<String>,
    pub read: usize,
}

/// Parses a result file against the campaign's work orders. Rejected rows come back with
/// their error; nothing is written here.
pub(crate) fn parse(path: &Path, orders: &[WorkOrderRecord], actor: &str) -> Result<Parsed> {
    // A filled-in call list comes back as the workbook it went out as, or as CSV.
    let bytes = if retain_data::is_workbook(path) {
        retain_data::first_sheet_csv(path)?
    } else {
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?
    };
    let (text, _) = retain_data::decode_text(&bytes).map_err(|why| {
        Error::BadRequest(format!(
            "{}: {why}: save the result file as CSV (UTF-8 or GBK)",
            path.display()
        ))
    })?;
    parse_text(path, &text, orders, actor)
}

/// [`parse`] over text already read; `path` names it in errors and sources.
pub(crate) fn parse_text(
    path: &Path,
    text: &str,
    orders: &[WorkOrderRecord],
    actor: &str,
) -> Result<Parsed> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let file = path.display().to_string();
    let headers = reader.headers().map_err(|e| Error::csv(&file, e))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let required = ["work_order_id", "reached", "accepted"];
    for (i, name) in required.iter().enumerate() {
        if col(name).is_none() {
            return Err(Error::BadRequest(format!(
                "{file}:1:{}: the header has no column {name} (required: {})",
                headers.len() + 1 + i,
                required.join(", ")
            )));
        }
    }
    let (id_c, reached_c, accepted_c) = (
        col("work_order_id").unwrap_or(0),
        col("reached").unwrap_or(0),
        col("accepted").unwrap_or(0),
    );
    let (reason_c, notes_c, follow_c) = (col("stated_reason"), col("notes"), col("follow_up"));
    let satisfaction_c = col("satisfaction");
    let purpose: HashMap<i64, &str> = orders.iter().map(|w| (w.id, w.purpose.as_str())).collect();
    let mut seen: HashMap<i64, u64> = HashMap::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let mut read = 0;
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(&file, e))?;
        read += 1;
        let line = record
            .position()
            .map_or(read as u64 + 1, csv::Position::line);
        let fields: Vec<String> = record.iter().map(str::to_owned).collect();
        let get = |c: usize| record.get(c).unwrap_or("").trim();
        let fail = |c: usize, why: String| format!("{file}:{line}:{}: {why}", c + 1);
        let row = (|| {
            let id: i64 = get(id_c).parse().map_err(|_| {
                fail(
                    id_c,
                    format!("work_order_id {:?} is not a number", get(id_c)),
                )
            })?;
            let Some(&purpose) = purpose.get(&id) else {
                return Err(fail(
                    id_c,
                    format!("work order {id} is not one of this campaign's"),
                ));
            };
            let reached = boolean(get(reached_c)).ok_or_else(|| {
                fail(
                    reached_c,
                    format!("reached {:?} is not yes/no (1/0, 是/否)", get(reached_c)),
                )
            })?;
            let accepted = boolean(get(accepted_c)).ok_or_else(|| {
                fail(
                    accepted_c,
                    format!("accepted {:?} is not yes/no (1/0, 是/否)", get(accepted_c)),
                )
            })?;
            if accepted && !reached {
                return Err(fail(accepted_c, "accepted but not reached".into()));
            }
            if accepted && purpose == crate::workorder::SURVEY {
                return Err(fail(
                    accepted_c,
                    format!(
                        "work order {id} is a satisfaction survey: it offers nothing to accept"
                    ),
                ));
            }
            let satisfaction = match satisfaction_c.map(get).filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => {
                    let at = satisfaction_c.unwrap_or(0);
                    let score = satisfaction(v).ok_or_else(|| {
                        fail(at, format!("satisfaction {v:?} is not a whole number 0–10"))
                    })?;
                    if !reached {
                        return Err(fail(at, "a satisfaction score but not reached".into()));
                    }
                    Some(score)
                }
            };
            let stated = match reason_c.map(get).filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => {
                    let code = stated_reasons()
                        .find(|(c, zh)| *c == v || *zh == v)
                        .map(|(c, _)| c.to_owned())
                        .ok_or_else(|| {
                            let codes: Vec<&str> = stated_reasons().map(|(c, _)| c).collect();
                            fail(
                                reason_c.unwrap_or(0),
                                format!("unknown reason {v:?} (known: {})", codes.join(", ")),
                            )
                        })?;
                    if !reached {
                        return Err(fail(
                            reason_c.unwrap_or(0),
                            "a stated reason but not reached".into(),
                        ));
                    }
                    Some(code)
                }
            };
            let follow_up = match follow_c.map(get).filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => {
                    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                        fail(
                            follow_c.unwrap_or(0),
                            format!("follow_up {v:?} is not YYYY-MM-DD"),
                        )
                    })?;
                    if !FOLLOW_UP_YEARS.contains(&date.year()) {
                        return Err(fail(
                            follow_c.unwrap_or(0),
                            format!(
                                "follow_up {v:?} is not between {}-01-01 and {}-12-31",
                                FOLLOW_UP_YEARS.start(),
                                FOLLOW_UP_YEARS.end()
                            ),
                        ));
                    }
                    Some(date.to_string())
                }
            };
            if let Some(first) = seen.get(&id) {
                return Err(fail(
                    id_c,
                    format!("work order {id} was already given on line {first}"),
                ));
            }
            Ok(CallbackRecord {
                work_order_id: id,
                reached,
                accepted,
                stated_reason: stated,
                satisfaction,
                notes: notes_c.map_or("", get).to_owned(),
                follow_up,
                source: format!(
                    "{}:{line}",
                    path.file_name()
                        .map_or(file.clone(), |n| n.to_string_lossy().into_owned())
                ),
                recorded_by: actor.to_owned(),
            })
        })();
        match row {
            Ok(c) => {
                seen.insert(c.work_order_id, line);
                good.push(c);
            }
            Err(why) => bad.push((fields, why)),
        }
    }
    Ok(Parsed {
        good,
        bad,
        headers: headers.iter().map(str::to_owned).collect(),
        read,
    })
}

/// Writes the rejected rows, each with its error, to `path`.
pub(crate) fn quarantine(
    path: &Path,
    headers: &[String],
    bad: &[(Vec<String>, String)],
) -> Result<()> {
    let mut w = csv::Writer::from_writer(retain_data::BOM.to_vec());
    let ctx = |e| Error::csv(path.display().to_string(), e);
    let mut header = headers.to_vec();
    header.push("error".into());
    // People open it in a spreadsheet to fix the rows: none of them may run as a formula.
    let cell = |t: &String| retain_data::spreadsheet_cell(t).into_owned();
    w.write_record(header.iter().map(cell)).map_err(ctx)?;
    for (fields, why) in bad {
        let mut row = fields.clone();
        row.resize(headers.len(), String::new());
        row.push(why.clone());
        w.write_record(row.iter().map(cell)).map_err(ctx)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    retain_data::write_atomically(path, &bytes)?;
    Ok(())
}

/// The true cause of the synthetic operator as a stated reason.
pub(crate) fn stated(cause: &str) -> &'static str {
    match cause {
        "billing_dispute" => "billing_arrears",
        "network_quality" => "network_quality",
        "competitor_lure" => "competitor_lure",
        "contract_expiry" => "contract_expiry",
        "price" => "price",
        "relocation" => "relocation",
        _ => "other",
    }
}

/// A simulated answer to "how satisfied are you, 0–10": lower for a subscriber about to
/// leave, higher for one who was contacted (more so who took the offer), with spread.
fn score(rng: &mut impl Rng, leaving: bool, treated: Option<bool>) -> u8 {
    let base = if leaving { 5.0 } else { 7.5 };
    let care = match treated {
        Some(true) => 1.5,
        Some(false) => 0.5,
        None => 0.0,
    };
    let noise = 3.0 * (rng.random::<f64>() + rng.random::<f64>() - 1.0);
    (base + care + noise).round().clamp(0.0, 10.0) as u8
}

/// Simulated callbacks and outcomes.
#[derive(Debug, Default)]
pub(crate) struct Simulation {
    pub callbacks: Vec<CallbackRecord>,
    pub outcomes: Vec<OutcomeRecord>,
    /// Σ over members of P(leave) × reach × true save probability, / members: the true
    /// average effect of treating them.
    pub true_uplift: f64,
}

/// Draws what the synthetic operator's subscribers would do: a member with a pending intent
/// to leave leaves unless reached and won by an offer that, for their true cause, keeps that
/// share of them; everyone else stays. Acceptance by those not leaving follows the history's
/// acceptance rate.
pub(crate) fn simulate(
    members: &[MemberRecord],
    orders: &[WorkOrderRecord],
    truth: &Truth,
    reach: &dyn Fn(Channel) -> f64,
    accept: &dyn Fn(&str) -> f64,
    arpu_share: &dyn Fn(&str) -> f64,
    seed: u64,
) -> Simulation {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let order_of: HashMap<i64, &WorkOrderRecord> = orders
        .iter()
        .filter(|w| w.purpose == "retention")
        .map(|w| (w.subscriber_id, w))
        .collect();
    let surveys: HashMap<i64, &WorkOrderRecord> = orders
        .iter()
        .filter(|w| w.purpose == crate::workorder::SURVEY)
        .map(|w| (w.subscriber_id, w))
        .collect();
    // Satisfaction has its own draws, so that the outcomes do not depend on who is surveyed.
    let mut opinion = rand_pcg::Pcg64::seed_from_u64(seed ^ 0x5A71_5FAC_7104);
    let mut sim = Simulation::default();
    let mut effect_sum = 0.0;
    for m in members {
        let cause = truth.pending.get(&m.subscriber_id);
        let channel = Channel::from_code(&m.channel).unwrap_or(Channel::Sms);
        let effect = cause.map_or(0.0, |c| {
            truth
                .effects
                .get(&(c.clone(), m.offer_kind.clone()))
                .copied()
                .unwrap_or(0.0)
        });
        effect_sum += reach(channel) * effect;
        let mut retained = cause.is_none();
        let mut accepted = false;
        // Whether the retention call reached them, and if so whether they took the offer.
        let mut contact = None;
        if m.arm == "treatment"
            && let Some(w) = order_of.get(&m.subscriber_id)
        {
            let reached = rng.random::<f64>() < reach(channel);
            if reached {
                accepted = if cause.is_some() {
                    rng.random::<f64>() < effect
                } else {
                    rng.random::<f64>() < accept(&m.offer_kind)
                };
                retained |= accepted;
                contact = Some(accepted);
            }
            sim.callbacks.push(CallbackRecord {
                work_order_id: w.id,
                reached,
                accepted,
                stated_reason: (reached && cause.is_some())
                    .then(|| stated(cause.map_or("", String::as_str)).to_owned()),
                satisfaction: reached.then(|| score(&mut opinion, cause.is_some(), Some(accepted))),
                notes: String::new(),
                follow_up: None,
                source: "simulated".into(),
                recorded_by: "simulation".into(),
            });
        }
        if let Some(w) = surveys.get(&m.subscriber_id) {
            let reached = opinion.random::<f64>() < reach(Channel::OutboundCall);
            sim.callbacks.push(CallbackRecord {
                work_order_id: w.id,
                reached,
                accepted: false,
                stated_reason: None,
                satisfaction: reached.then(|| score(&mut opinion, cause.is_some(), contact)),
                notes: String::new(),
                follow_up: None,
                source: "simulated".into(),
                recorded_by: "simulation".into(),
            });
        }
        let arpu_after = if retained {
            m.arpu
                * (1.0
                    - if accepted {
                        arpu_share(&m.offer_id)
                    } else {
                        0.0
                    })
        } else {
            0.0
        };
        sim.outcomes.push(OutcomeRecord {
            subscriber_id: m.subscriber_id,
            retained,
            arpu_after: Some((arpu_after * 100.0).round() / 100.0),
            source: "simulated".into(),
        });
    }
    if !members.is_empty() {
        sim.true_uplift = effect_sum / members.len() as f64;
    }
    sim
}
