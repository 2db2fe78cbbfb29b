//! A campaign's plan: the target group, the offer and channel for each member under the
//! budget and the contact policy, the stratified control group, and the work orders of the
//! treated. The same inputs always give the same plan, so a launch that died can be redone.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use datafusion::execution::context::SessionContext;
use retain_data::Workspace;
use retain_features::frame::{ids, query, texts};
use retain_offers::{Assignment, Channel, Contact, Prepared, Strategy, arbitrate, prepare, select};
use retain_store::{MemberRecord, NewWorkOrder, PlannedContact};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::template::Template;

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub template: &'a Template,
    pub budget: f64,
    pub as_of: NaiveDate,
    pub seed: u64,
    /// Plan on this share of the target only (a rehearsal).
    pub sample: Option<f64>,
    /// Hold out this control share rather than choose one (the rehearsed share at launch).
    pub control_share: Option<f64>,
    /// Contacts of campaigns already running: they count against the contact policy.
    pub running: &'a [PlannedContact],
    /// Members of other running campaigns: left out, so no one is in two experiments.
    pub busy: &'a HashSet<i64>,
}

/// Totals of the treated part of a plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Projection {
    pub members: usize,
    pub treated: usize,
    pub control: usize,
    /// Contacts expected to reach the subscriber (history's reach per channel).
    pub expected_reach: f64,
    /// Committed cost: contacts plus every offer made.
    pub cost: f64,
    /// Contacts plus the offers expected to be accepted.
    pub expected_cost: f64,
    /// Σ P(churn) × save rate over the treated.
    pub expected_saves: f64,
    /// Σ P(churn) × save rate × lifetime value over the treated.
    pub expected_saved_value: f64,
    /// (expected saved value − expected cost) / expected cost.
    pub expected_roi: f64,
    pub treated_by_channel: BTreeMap<&'static str, usize>,
    pub members_by_level: BTreeMap<&'static str, usize>,
    /// Members of either arm called for the satisfaction survey.
    pub surveys: usize,
    /// The survey calls' contact cost (measurement, apart from the campaign's cost).
    pub survey_cost: f64,
}

impl Projection {
    /// Counts one planned member; returns whether they are treated.
    pub(crate) fn count(&mut self, a: &Assignment, control: bool, reach: f64) -> bool {
        *self.members_by_level.entry(a.level.code()).or_insert(0) += 1;
        self.members += 1;
        if control {
            self.control += 1;
            return false;
        }
        self.treated += 1;
        self.expected_reach += reach;
        self.cost += a.cost;
        self.expected_cost += a.expected_cost;
        self.expected_saves += a.p_churn * a.save_rate;
        self.expected_saved_value += a.p_churn * a.save_rate * a.clv;
        *self.treated_by_channel.entry(a.channel.code()).or_insert(0) += 1;
        true
    }
}

/// A computed plan.
#[derive(Debug, Default)]
pub struct Planned {
    pub members: Vec<MemberRecord>,
    pub orders: Vec<NewWorkOrder>,
    /// At-risk subscribers the target selects (before sampling and conflicts).
    pub target: usize,
    /// Of those, the ones planned on (all, or the rehearsal's sample).
    pub sampled: usize,
    /// Target subscribers already in another running campaign.
    pub in_running_campaigns: usize,
    /// Target subscribers left without an offer, by the constraint that stopped them.
    pub skipped_by_constraint: BTreeMap<&'static str, usize>,
    /// Constraint violations the verifier found (none unless there is a bug).
    pub violations: Vec<retain_offers::Violation>,
    pub projection: Projection,
    /// What the planned sizes can detect and the control share chosen for it.
    pub power: crate::power::Power,
    pub notes: Vec<String>,
}

/// A stable pseudo-random number in [0, 1) for a subscriber: the rehearsal sample and the
/// control draw must not change between a launch and its retry.
pub(crate) fn unit(seed: u64, id: i64, salt: u64) -> f64 {
    let mut z = seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The control share for `assigned` planned members (of the rehearsal's sample, if one): the
/// rehearsed share at launch, else the one [`crate::power::choose`] picks within the template's
/// limits for the whole target.
pub(crate) fn choose_power(
    req: &PlanRequest<'_>,
    assigned: usize,
    expected_uplift: f64,
    retention: f64,
) -> crate::power::Power {
    let t = req.template;
    let planned = assigned as f64 / req.sample.unwrap_or(1.0);
    let (floor, ceiling) = req
        .control_share
        .map_or((t.control_share, t.control_share_max), |s| (s, s));
    crate::power::choose(planned, expected_uplift, retention, floor, ceiling)
}

/// The control group: within each stratum (lists of indices into `n` planned members), the
/// `share` with the lowest stable draws of the seed and the subscriber (`id` of an index), so a
/// launch that is redone draws the same.
pub(crate) fn draw_control<K: Ord>(
    seed: u64,
    strata: BTreeMap<K, Vec<usize>>,
    id: impl Fn(usize) -> i64,
    n: usize,
    share: f64,
) -> Vec<bool> {
    let mut control = vec![false; n];
    for mut members in strata.into_values() {
        members.sort_by(|a, b| unit(seed, id(*a), 0xC0).total_cmp(&unit(seed, id(*b), 0xC0)));
        let k = (members.len() as f64 * share).round() as usize;
        for i in &members[..k] {
            control[*i] = true;
        }
    }
    control
}

/// Who a subscriber belongs to and how to reach them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profile {
    pub msisdn: String,
    pub branch_id: String,
    pub manager_id: String,
}

pub(crate) async fn profiles(ctx: &SessionContext) -> Result<HashMap<i64, Profile>> {
    let batches = query(
        ctx,
        "SELECT subscriber_id, msisdn, branch_id, manager_id FROM subscribers",
        "subscriber assignments",
    )
    .await?;
    let (msisdn, branch, manager) = (
        texts(&batches, "msisdn")?,
        texts(&batches, "branch_id")?,
        texts(&batches, "manager_id")?,
    );
    Ok(ids(&batches, "subscriber_id")?
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id,
                Profile {
                    msisdn: msisdn[i].clone(),
                    branch_id: branch[i].clone(),
                    manager_id: manager[i].clone(),
                },
            )
        })
        .collect())
}

/// Value tier and lifecycle stage from the latest segmentation.
async fn segments(
    ctx: &SessionContext,
    workspace: &Workspace,
) -> Result<HashMap<i64, (String, String)>> {
    if !retain_features::outputs::register_segments(ctx, workspace).await? {
        return Ok(HashMap::new());
    }
    let batches = query(
        ctx,
        "SELECT subscriber_id, value_tier, lifecycle_stage FROM segments",
        "segments",
    )
    .await?;
    let (tier, stage) = (
        texts(&batches, "value_tier")?,
        texts(&batches, "lifecycle_stage")?,
    );
    Ok(ids(&batches, "subscriber_id")?
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, (tier[i].clone(), stage[i].clone())))
        .collect())
}

/// Plans a campaign.
pub async fn plan(
    ctx: &SessionContext,
    workspace: &Workspace,
    req: &PlanRequest<'_>,
) -> Result<Planned> {
    let t = req.template;
    if t.target.population == crate::template::Population::Leavers {
        return crate::winback::plan(ctx, workspace, req).await;
    }
    let Prepared {
        library,
        policy,
        mut inputs,
        uplift,
        choices,
    } = prepare(ctx, workspace, req.as_of, None, req.seed).await?;
    let mut notes = inputs.notes.clone();
    let selected = if t.target.condition.trim().is_empty() {
        None
    } else {
        Some(select(ctx, workspace, &library, &t.target.condition, req.as_of).await?)
    };
    let deciles = if t.target.deciles.is_empty() {
        HashMap::new()
    } else {
        // Churn-score deciles of the newest scores (1 = riskiest).
        let Some(scores) = retain_model::latest_scores(workspace) else {
            return Err(Error::BadRequest(
                "the target names score deciles but no scores exist (retain score)".into(),
            ));
        };
        scores.deciles().map_err(retain_offers::Error::Scores)?
    };
    let allowed_offer: Vec<bool> = library
        .offers
        .iter()
        .map(|o| {
            (t.offers.ids.is_empty() || t.offers.ids.contains(&o.id))
                && (t.offers.kinds.is_empty() || t.offers.kinds.contains(&o.kind))
        })
        .collect();
    if !allowed_offer.iter().any(|a| *a) {
        return Err(Error::BadRequest(
            "the template's offer filter leaves no offer of the library".into(),
        ));
    }

    // Narrow candidates and their choices together: the arbitration pairs them by index.
    let mut kept_candidates = Vec::new();
    let mut kept_choices = Vec::new();
    let (mut target, mut busy) = (0, 0);
    for (c, cs) in std::mem::take(&mut inputs.candidates)
        .into_iter()
        .zip(choices)
    {
        if !t.target.levels.contains(&c.level)
            || selected
                .as_ref()
                .is_some_and(|s| !s.contains(&c.subscriber_id))
            || (!t.target.deciles.is_empty()
                && !deciles
                    .get(&c.subscriber_id)
                    .is_some_and(|d| t.target.deciles.contains(d)))
        {
            continue;
        }
        target += 1;
        if req.busy.contains(&c.subscriber_id) {
            busy += 1;
            continue;
        }
        if let Some(share) = req.sample
            && unit(req.seed, c.subscriber_id, 0x5A3E) >= share
        {
            continue;
        }
        let flow = t.flow.for_level(c.level);
        let usable = |ch: Channel| {
            cs.iter()
                .any(|x| x.channel == ch && allowed_offer[x.offer as usize])
        };
        let channel = flow
            .iter()
            .copied()
            .find(|ch| c.reachable(*ch) && usable(*ch));
        let cs: Vec<_> = cs
            .into_iter()
            .filter(|x| Some(x.channel) == channel && allowed_offer[x.offer as usize])
            .collect();
        kept_candidates.push(c);
        kept_choices.push(cs);
    }
    let sampled = kept_candidates.len();
    inputs.candidates = kept_candidates;
    for p in req.running {
        let Ok(date) = NaiveDate::parse_from_str(&p.due_date, "%Y-%m-%d") else {
            continue;
        };
        inputs
            .ledger
            .contacts
            .entry(p.subscriber_id)
            .or_default()
            .push(Contact {
                date,
                offer_id: p.offer_id.clone(),
                channel: p.channel.clone(),
                refused: p.refused,
            });
    }
    let budget = req.budget * req.sample.unwrap_or(1.0);
    let plan = arbitrate(
        &inputs,
        &library,
        &policy,
        &kept_choices,
        budget,
        Strategy::Retain,
    );
    let violations = retain_offers::verify(&plan, &inputs, &library, &policy, budget);
    let mut skipped_by_constraint = BTreeMap::new();
    for s in &plan.skipped {
        *skipped_by_constraint.entry(s.constraint).or_insert(0) += 1;
    }

    let segments = segments(ctx, workspace).await?;
    if segments.is_empty() {
        notes.push("no segmentation: strata are by level only (retain segment)".into());
    }
    let profiles = profiles(ctx).await?;
    let by_id: HashMap<i64, &retain_offers::Candidate> = inputs
        .candidates
        .iter()
        .map(|c| (c.subscriber_id, c))
        .collect();

    // The control share: the template's, raised (within its limit) when the uplift the plan
    // expects would not be told from zero with it. Sizes are the whole target's, also when
    // rehearsing on a sample.
    let power = {
        let k = plan.assignments.len().max(1) as f64;
        let risk: f64 = plan.assignments.iter().map(|a| a.p_churn).sum();
        let saves: f64 = plan
            .assignments
            .iter()
            .map(|a| a.p_churn * a.save_rate)
            .sum();
        choose_power(req, plan.assignments.len(), saves / k, 1.0 - risk / k)
    };
    if let (Some(mde), Some(chance)) = (power.min_detectable_uplift, power.power) {
        let raised = power.control_share > t.control_share;
        let (expected, share) = (power.expected_uplift, power.control_share);
        if raised && power.detectable {
            notes.push(format!(
                "control share raised from {:.2} to {share:.2}: the expected uplift \
                 {expected:.3} is then detectable (minimum {mde:.3}, 5% two-sided, 80% power)",
                t.control_share
            ));
        } else if raised {
            notes.push(format!(
                "control share raised from {:.2} to its limit {share:.2}: the expected uplift \
                 {expected:.4} is still below the minimum detectable {mde:.4}; the evaluation \
                 finds it significant with a chance of {:.0}%",
                t.control_share,
                100.0 * chance
            ));
        } else if !power.detectable {
            notes.push(format!(
                "the expected uplift {expected:.3} is below the minimum detectable {mde:.3}, and \
                 a larger control would not give even odds of a significant result ({:.0}% \
                 here): the evaluation will likely not tell it from zero; widen the target or \
                 pool campaigns",
                100.0 * chance
            ));
        }
    }

    // The control draw: within each level × tier stratum, the members with the lowest draws.
    let mut strata: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, a) in plan.assignments.iter().enumerate() {
        let tier = segments
            .get(&a.subscriber_id)
            .map_or("unknown", |s| s.0.as_str());
        strata
            .entry(format!("{}/{tier}", a.level.code()))
            .or_default()
            .push(i);
    }
    let control = draw_control(
        req.seed,
        strata,
        |i| plan.assignments[i].subscriber_id,
        plan.assignments.len(),
        power.control_share,
    );

    let mut projection = Projection::default();
    // After every channel's contacts of the run, so that the treated answer having had them.
    let survey_due = req.as_of + chrono::Duration::days(i64::from(policy.campaign_days) + 7);
    let mut members = Vec::with_capacity(plan.assignments.len());
    let mut orders = Vec::new();
    for (i, a) in plan.assignments.iter().enumerate() {
        let (tier, stage) = segments
            .get(&a.subscriber_id)
            .map_or(("unknown", "unknown"), |(t, s)| (t.as_str(), s.as_str()));
        let offer = library
            .offers
            .iter()
            .find(|o| o.id == a.offer_id)
            .ok_or_else(|| Error::Internal(format!("offer {} left the library", a.offer_id)))?;
        let arm = if control[i] { "control" } else { "treatment" };
        let candidate = by_id.get(&a.subscriber_id);
        // Both arms alike: the survey compares satisfaction of treated and control.
        if unit(req.seed, a.subscriber_id, 0x5E) < t.survey_share {
            let profile = profiles.get(&a.subscriber_id).cloned().unwrap_or_default();
            projection.surveys += 1;
            projection.survey_cost += policy.channel(Channel::OutboundCall).contact_cost;
            orders.push(NewWorkOrder {
                subscriber_id: a.subscriber_id,
                channel: Channel::OutboundCall.code().into(),
                purpose: crate::workorder::SURVEY.into(),
                offer_id: String::new(),
                branch_id: profile.branch_id.clone(),
                manager_id: profile.manager_id.clone(),
                due_date: survey_due.to_string(),
                payload: crate::workorder::survey_payload(a, &profile.msisdn),
            });
        }
        members.push(MemberRecord {
            subscriber_id: a.subscriber_id,
            arm: arm.into(),
            stratum: format!("{}/{tier}", a.level.code()),
            level: a.level.code().into(),
            tier: tier.into(),
            segment: stage.into(),
            reason: a.reason.into(),
            offer_id: a.offer_id.clone(),
            offer_kind: a.kind.code().into(),
            channel: a.channel.code().into(),
            p_churn: a.p_churn,
            clv: a.clv,
            arpu: candidate.map_or(0.0, |c| c.arpu),
            cost: a.cost,
            expected_cost: a.expected_cost,
            expected_value: a.expected_value,
        });
        let reach = uplift.cells.reach(a.channel).unwrap_or(0.75);
        if !projection.count(a, control[i], reach) {
            continue;
        }
        let profile = profiles.get(&a.subscriber_id).cloned().unwrap_or_default();
        let due = t.due(a.channel, req.as_of);
        orders.push(NewWorkOrder {
            subscriber_id: a.subscriber_id,
            channel: a.channel.code().into(),
            purpose: "retention".into(),
            offer_id: a.offer_id.clone(),
            branch_id: profile.branch_id.clone(),
            manager_id: profile.manager_id.clone(),
            due_date: due.to_string(),
            payload: crate::workorder::payload(t, offer, a, &profile.msisdn, due),
        });
    }
    if projection.expected_cost > 0.0 {
        projection.expected_roi =
            (projection.expected_saved_value - projection.expected_cost) / projection.expected_cost;
    }
    Ok(Planned {
        members,
        orders,
        target,
        sampled,
        in_running_campaigns: busy,
        skipped_by_constraint,
        violations,
        projection,
        power,
        notes,
    })
}
