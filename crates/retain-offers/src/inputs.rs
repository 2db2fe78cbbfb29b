//! Everything a match run reads from the workspace: features and eligibility as of the run date,
//! levels, churn probabilities and lifetime values, contact history and the do-not-disturb list.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use retain_features::conditions::{feature_ctes, register_outputs};
use retain_features::frame::{floats, for_each_text_row, ids, query, texts};
use retain_features::stored::Origin;
use retain_features::{FeatureSet, stream_features_as_of};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::library::{Channel, Library};
use crate::policy::{Level, Policy};

/// Feature rows, row-major, `NaN` for missing.
#[derive(Debug, Default, Clone)]
pub struct Features {
    pub names: Vec<String>,
    pub ids: Vec<i64>,
    pub x: Vec<f64>,
}

impl Features {
    #[must_use]
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.names.len();
        &self.x[i * d..(i + 1) * d]
    }

    #[must_use]
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Appends the rows of `batch` (with `subscriber_id` and the named feature columns) whose
    /// subscriber `keep` accepts.
    fn extend(
        &mut self,
        batch: &datafusion::arrow::array::RecordBatch,
        keep: impl Fn(i64) -> bool,
    ) -> Result<()> {
        let batches = std::slice::from_ref(batch);
        let ids = ids(batches, "subscriber_id")?;
        let rows: Vec<usize> = (0..ids.len()).filter(|&i| keep(ids[i])).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let columns: Vec<Vec<f64>> = self
            .names
            .iter()
            .map(|n| floats(batches, n))
            .collect::<retain_features::Result<_>>()?;
        for i in rows {
            self.ids.push(ids[i]);
            self.x.extend(
                columns
                    .iter()
                    .map(|c| c.get(i).copied().unwrap_or(f64::NAN)),
            );
        }
        Ok(())
    }

    /// The same rows ordered by subscriber, so that a run does not depend on the order in
    /// which the engine returned them.
    fn sorted(self) -> Features {
        let d = self.names.len();
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        order.sort_unstable_by_key(|&i| self.ids[i]);
        let mut x = Vec::with_capacity(self.x.len());
        for &i in &order {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        Features {
            ids: order.iter().map(|&i| self.ids[i]).collect(),
            names: self.names,
            x,
        }
    }

    /// Reads batches with `subscriber_id` and the named feature columns.
    pub(crate) fn from_batches(
        batches: &[datafusion::arrow::array::RecordBatch],
        names: &[String],
    ) -> Result<Features> {
        let ids = ids(batches, "subscriber_id")?;
        let columns: Vec<Vec<f64>> = names
            .iter()
            .map(|n| floats(batches, n))
            .collect::<retain_features::Result<_>>()?;
        let mut x = Vec::with_capacity(ids.len() * names.len());
        for i in 0..ids.len() {
            x.extend(
                columns
                    .iter()
                    .map(|c| c.get(i).copied().unwrap_or(f64::NAN)),
            );
        }
        Ok(Features {
            names: names.to_vec(),
            ids,
            x,
        })
    }
}

/// A subscriber at risk, as the arbitration sees them.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub subscriber_id: i64,
    pub msisdn: String,
    pub level: Level,
    /// On the warning list (else graded by the model's probability).
    pub warned: bool,
    pub p_churn: f64,
    /// `model` or `level prior`.
    pub p_source: &'static str,
    /// The value a save keeps: the segment's lifetime value or `value_months` of ARPU,
    /// whichever is higher.
    pub clv: f64,
    pub arpu: f64,
    /// Index into [`crate::REASONS`].
    pub reason: usize,
    /// The value tier of the segmentation (`high`, `medium`, `low`), `unknown` without one.
    pub tier: String,
    pub preferred: Channel,
    pub has_manager: bool,
    /// Indices of the library offers the subscriber is eligible for.
    pub eligible: Vec<u16>,
    /// Row in [`Inputs::features`].
    #[serde(skip)]
    pub row: usize,
}

impl Candidate {
    /// Whether the subscriber can be reached through `c`: remote channels always (the number
    /// is known), a visit only with an account manager, the counter when the subscriber
    /// prefers the store or has a manager to bring them.
    #[must_use]
    pub fn reachable(&self, c: Channel) -> bool {
        match c {
            Channel::Sms | Channel::OutboundCall => true,
            Channel::App => self.preferred == Channel::App,
            Channel::Store => self.preferred == Channel::Store || self.has_manager,
            Channel::ManagerVisit => self.has_manager,
        }
    }
}

/// One past contact.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub date: NaiveDate,
    pub offer_id: String,
    pub channel: String,
    /// Reached and declined the offer.
    pub refused: bool,
}

/// Past contacts per subscriber and the do-not-disturb list.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub contacts: HashMap<i64, Vec<Contact>>,
    pub dnd: HashSet<i64>,
}

impl Ledger {
    /// Contacts in the 30 days up to and including `day`.
    #[must_use]
    pub fn contacts_30d(&self, id: i64, day: NaiveDate) -> u32 {
        self.contacts.get(&id).map_or(0, |cs| {
            cs.iter()
                .filter(|c| c.date <= day && (day - c.date).num_days() < 30)
                .count() as u32
        })
    }

    /// The latest refusal within `days` before `day`.
    #[must_use]
    pub fn refused_within(&self, id: i64, day: NaiveDate, days: u32) -> Option<NaiveDate> {
        self.contacts.get(&id).and_then(|cs| {
            cs.iter()
                .filter(|c| {
                    c.refused && c.date <= day && (day - c.date).num_days() < i64::from(days)
                })
                .map(|c| c.date)
                .max()
        })
    }

    /// Times the subscriber received `offer_id` within `days` before `day`.
    #[must_use]
    pub fn offer_count(&self, id: i64, offer_id: &str, day: NaiveDate, days: u32) -> u32 {
        self.contacts.get(&id).map_or(0, |cs| {
            cs.iter()
                .filter(|c| {
                    c.offer_id == offer_id
                        && c.date <= day
                        && (day - c.date).num_days() < i64::from(days)
                })
                .count() as u32
        })
    }
}

/// What a match run reads.
#[derive(Debug, Default)]
pub struct Inputs {
    pub as_of: NaiveDate,
    pub subscribers: usize,
    pub candidates: Vec<Candidate>,
    pub features: Features,
    pub ledger: Ledger,
    /// msisdn → subscriber, for real-time lookups.
    pub msisdn: HashMap<String, i64>,
    /// What was missing and how it was replaced.
    pub notes: Vec<String>,
    /// Whether the features were read from the stored snapshot or computed.
    pub features_origin: Origin,
    /// What the candidates' reasons come from: `cause_model` or `signals` ([`crate::reason::Reasoner`]).
    pub reasons_from: &'static str,
}

/// Every subscriber's msisdn → id.
pub async fn msisdn_map(ctx: &SessionContext) -> Result<HashMap<String, i64>> {
    let batches = query(
        ctx,
        "SELECT subscriber_id, msisdn FROM subscribers",
        "subscribers",
    )
    .await?;
    Ok(texts(&batches, "msisdn")?
        .into_iter()
        .zip(ids(&batches, "subscriber_id")?)
        .collect())
}

/// Features and offer eligibility of the subscribers at risk, and how many subscribers there are.
struct AtRisk {
    features: Features,
    eligible: HashMap<i64, Vec<u16>>,
    subscribers: usize,
    origin: Origin,
}

/// Computes features and eligibility as of `as_of` for everyone and keeps those of the
/// subscribers `at_risk` accepts. Above a million subscribers this runs one partition of
/// them at a time (as scoring does), so memory follows the partition and the candidates, not
/// the operator. The features come from the workspace's stored snapshot when it is fresh
/// (`retain features`); eligibility is always computed, as offers' conditions are the
/// library's own.
async fn at_risk_features(
    ctx: &SessionContext,
    workspace: &Workspace,
    library: &Library,
    as_of: NaiveDate,
    partitions: Option<u32>,
    at_risk: impl Fn(i64) -> bool,
) -> Result<AtRisk> {
    let set = FeatureSet::default_set();
    let parts = match partitions {
        Some(p) => p.max(1),
        None => retain_features::feature_partitions(workspace)?,
    };
    let columns: Vec<String> = library
        .offers
        .iter()
        .enumerate()
        .map(|(i, o)| format!("COALESCE({}, false) AS e{i}", o.sql))
        .collect();
    let eligibility = format!(
        "WITH {} SELECT subscriber_id, {} FROM f",
        feature_ctes(&library.compiler, as_of),
        columns.join(", ")
    );
    let mut out = AtRisk {
        features: Features {
            names: set.names.clone(),
            ..Features::default()
        },
        eligible: HashMap::new(),
        subscribers: 0,
        origin: Origin::Computed,
    };
    // Computed features are not drawn from here: each partition computes its own below, on
    // the session its eligibility query shares.
    let mut clock = std::time::Instant::now();
    let mut lap = |step: &str| {
        tracing::debug!(
            seconds = clock.elapsed().as_secs_f64(),
            "match inputs: {step}"
        );
        clock = std::time::Instant::now();
    };
    let mut stored = retain_features::stored::features(workspace, &set, as_of, parts).await?;
    out.origin = stored.origin();
    if out.origin == Origin::Stored {
        while let Some(batch) = stored.next().await {
            let batch = batch?;
            out.subscribers += batch.num_rows();
            out.features.extend(&batch, &at_risk)?;
        }
    }
    for part in 0..parts {
        let session = retain_features::session_for(ctx, workspace, part, parts).await?;
        let ctx: &SessionContext = &session;
        if out.origin == Origin::Computed {
            let mut stream = stream_features_as_of(ctx, &set, as_of).await?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                out.subscribers += batch.num_rows();
                out.features.extend(&batch, &at_risk)?;
            }
        }
        lap(&format!("features of partition {part}"));
        register_outputs(ctx, workspace, &library.compiler).await?;
        let batches = query(ctx, &eligibility, "offer eligibility").await?;
        lap(&format!("eligibility of partition {part}"));
        let eligible_ids = ids(&batches, "subscriber_id")?;
        // Asked once a subscriber, not once an offer: a million subscribers and twenty offers
        // made twenty million lookups.
        let risky: Vec<usize> = (0..eligible_ids.len())
            .filter(|r| at_risk(eligible_ids[*r]))
            .collect();
        for (i, offer) in library.offers.iter().enumerate() {
            // Win-back offers are for leavers, never for subscribers at risk.
            if offer.stage != crate::library::Stage::Retain {
                continue;
            }
            let flags = floats(&batches, &format!("e{i}"))?;
            for &r in &risky {
                if flags.get(r).is_some_and(|f| *f > 0.5) {
                    out.eligible
                        .entry(eligible_ids[r])
                        .or_default()
                        .push(i as u16);
                }
            }
        }
    }
    out.features = out.features.sorted();
    lap("eligibility gathered, features sorted");
    Ok(out)
}

/// Reads the inputs of a match run as of `as_of`, computing features in `partitions`
/// partitions of the subscribers (`None`: one per million).
pub async fn load(
    ctx: &SessionContext,
    workspace: &Workspace,
    library: &Library,
    policy: &Policy,
    as_of: NaiveDate,
    partitions: Option<u32>,
) -> Result<Inputs> {
    let mut notes = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |step: &str| {
        tracing::debug!(
            seconds = clock.elapsed().as_secs_f64(),
            "match inputs: {step}"
        );
        clock = std::time::Instant::now();
    };
    let levels = warning_levels(workspace)?;
    lap("warning levels");
    if levels.is_empty() {
        notes.push("no warning list: levels come from churn probabilities only".into());
    }
    let scores = probabilities(workspace)?;
    lap("churn scores");
    if scores.is_empty() {
        notes.push(
            "no churn scores: probabilities are the level priors of policy.toml (retain train, retain score)"
                .into(),
        );
    }
    let level_of = |id: i64| {
        levels
            .get(&id)
            .copied()
            .or_else(|| scores.get(id).and_then(|p| policy.level_for(p)))
    };
    let AtRisk {
        features,
        mut eligible,
        subscribers,
        origin,
    } = at_risk_features(ctx, workspace, library, as_of, partitions, |id| {
        level_of(id).is_some()
    })
    .await?;
    lap("at-risk features and eligibility");
    let reasoner = crate::reason::Reasoner::for_workspace(workspace, &features.names)?;

    let batches = query(
        ctx,
        "SELECT subscriber_id, msisdn, channel_preference, manager_id FROM subscribers",
        "subscribers",
    )
    .await?;
    let rows = batches
        .iter()
        .map(datafusion::arrow::array::RecordBatch::num_rows)
        .sum();
    let mut profile: HashMap<i64, (String, Channel, bool)> = HashMap::new();
    let mut msisdn = HashMap::with_capacity(rows);
    // Read in place: a string per field of ten million subscribers was most of this step.
    for_each_text_row(
        &batches,
        "subscriber_id",
        &["msisdn", "channel_preference", "manager_id"],
        |id, row| {
            let (number, channel, manager) = (row[0], row[1], row[2]);
            if level_of(id).is_some() {
                let preferred = Channel::from_code(channel).unwrap_or(Channel::Sms);
                profile.insert(id, (number.to_owned(), preferred, !manager.is_empty()));
            }
            msisdn.insert(number.to_owned(), id);
        },
    )?;

    lap("subscribers");
    let clv = segment_values(ctx, workspace, &mut notes).await?;
    lap("segment values");
    let ledger = ledger(ctx, workspace, policy, &msisdn).await?;
    lap("contact ledger");

    let arpu_col = features.column("fee_avg_3m");
    let mut candidates = Vec::new();
    for (row, id) in features.ids.iter().enumerate() {
        let p = scores.get(*id);
        let warned = levels.get(id).copied();
        let Some(level) = level_of(*id) else { continue };
        let Some((number, preferred, has_manager)) = profile.get(id) else {
            continue;
        };
        let (preferred, has_manager) = (*preferred, *has_manager);
        let arpu = arpu_col
            .map(|j| features.row(row)[j])
            .filter(|v| v.is_finite())
            .unwrap_or(0.0);
        let (p_churn, p_source) = match p {
            Some(p) => (p, "model"),
            None => (policy.level_churn_prior[&level], "level prior"),
        };
        candidates.push(Candidate {
            subscriber_id: *id,
            msisdn: number.clone(),
            level,
            warned: warned.is_some(),
            p_churn,
            p_source,
            clv: clv
                .get(id)
                .map_or(0.0, |v| v.0)
                .max(arpu * policy.value_months),
            tier: clv
                .get(id)
                .map_or_else(|| "unknown".to_owned(), |v| v.1.clone()),
            arpu,
            // Read for every candidate at once below.
            reason: crate::reason::UNKNOWN,
            preferred,
            has_manager,
            eligible: eligible.remove(id).unwrap_or_default(),
            row,
        });
    }
    let reasons = reasoner.reasons(candidates.iter().map(|c| features.row(c.row)));
    for (c, r) in candidates.iter_mut().zip(reasons) {
        c.reason = r;
    }
    if clv.is_empty() {
        notes.push(
            "no segmentation: the value of a save is value_months of ARPU (retain segment)".into(),
        );
    }
    Ok(Inputs {
        as_of,
        subscribers,
        candidates,
        features,
        ledger,
        msisdn,
        notes,
        features_origin: origin,
        reasons_from: reasoner.source(),
    })
}

/// Each segmented subscriber's lifetime value and value tier.
async fn segment_values(
    ctx: &SessionContext,
    workspace: &Workspace,
    notes: &mut Vec<String>,
) -> Result<HashMap<i64, (f64, String)>> {
    if !retain_features::outputs::register_segments(ctx, workspace).await? {
        return Ok(HashMap::new());
    }
    let batches = query(
        ctx,
        "SELECT subscriber_id, clv, coalesce(value_tier, 'unknown') AS value_tier FROM segments",
        "lifetime values",
    )
    .await?;
    let values: HashMap<i64, (f64, String)> = ids(&batches, "subscriber_id")?
        .into_iter()
        .zip(
            floats(&batches, "clv")?
                .into_iter()
                .zip(texts(&batches, "value_tier")?),
        )
        .filter(|(_, (v, _))| v.is_finite())
        .collect();
    if values.is_empty() {
        notes.push("the segmentation has no lifetime values".into());
    }
    Ok(values)
}

/// Levels of the newest warning list, empty before the first warning run.
fn warning_levels(workspace: &Workspace) -> Result<HashMap<i64, Level>> {
    retain_warn::latest_list(workspace)
        .map(|l| l.levels())
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(Error::Warnings)
}

/// Churn probabilities of the newest scores, empty when the workspace has none.
fn probabilities(workspace: &Workspace) -> Result<retain_model::Probabilities> {
    retain_model::latest_scores(workspace)
        .map(|f| f.probabilities())
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(Error::Scores)
}

/// Past treatment contacts from `campaign_history`, and the do-not-disturb list.
async fn ledger(
    ctx: &SessionContext,
    workspace: &Workspace,
    policy: &Policy,
    msisdn: &HashMap<String, i64>,
) -> Result<Ledger> {
    let mut ledger = Ledger::default();
    if ctx.table_exist("campaign_history").unwrap_or(false) {
        let batches = query(
            ctx,
            "SELECT subscriber_id, contact_date, offer_id, channel,
                    CAST(reached AND NOT accepted AS BOOLEAN) AS refused
             FROM campaign_history WHERE arm = 'treatment' AND contact_date IS NOT NULL",
            "contact history",
        )
        .await?;
        let dates = texts(&batches, "contact_date")?;
        let offers = texts(&batches, "offer_id")?;
        let channels = texts(&batches, "channel")?;
        let refused = floats(&batches, "refused")?;
        for (i, id) in ids(&batches, "subscriber_id")?.into_iter().enumerate() {
            let Ok(date) = NaiveDate::parse_from_str(&dates[i], "%Y-%m-%d") else {
                continue;
            };
            ledger.contacts.entry(id).or_default().push(Contact {
                date,
                offer_id: offers[i].clone(),
                channel: channels[i].clone(),
                refused: refused[i] > 0.5,
            });
        }
    }
    ledger.dnd = read_dnd(&workspace.root().join(&policy.dnd_file), msisdn)?;
    Ok(ledger)
}

/// The do-not-disturb list: one `msisdn` or `subscriber_id` per line after the header. A line
/// that is empty is an error naming the file and line; numbers that are not ours are skipped.
pub fn read_dnd<S: std::hash::BuildHasher>(
    path: &Path,
    msisdn: &HashMap<String, i64, S>,
) -> Result<HashSet<i64>> {
    let mut out = HashSet::new();
    if !path.exists() {
        return Ok(out);
    }
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| Error::csv(path.display().to_string(), e))?;
    let headers = reader
        .headers()
        .map_err(|e| Error::csv(path.display().to_string(), e))?
        .clone();
    let by_msisdn = match headers.get(0) {
        Some("msisdn") => true,
        Some("subscriber_id") => false,
        other => {
            return Err(Error::BadRequest(format!(
                "{}:1:1: the first column must be msisdn or subscriber_id, not {:?}",
                path.display(),
                other.unwrap_or("")
            )));
        }
    };
    let mut unknown = 0;
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::csv(path.display().to_string(), e))?;
        let value = record.get(0).unwrap_or("").trim();
        if value.is_empty() {
            return Err(Error::BadRequest(format!(
                "{}:{}:1: an empty entry",
                path.display(),
                n + 2
            )));
        }
        let id = if by_msisdn {
            msisdn.get(value).copied()
        } else {
            value.parse::<i64>().ok()
        };
        match id {
            Some(id) => {
                out.insert(id);
            }
            // Numbers of other operators' subscribers are common in such lists.
            None => unknown += 1,
        }
    }
    if unknown > 0 {
        tracing::info!(
            "{}: {unknown} entries name no subscriber of ours",
            path.display()
        );
    }
    Ok(out)
}
