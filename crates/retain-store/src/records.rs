//! Records of campaigns, their members, work orders, callbacks and outcomes, the plan library
//! and the audit log, as the store keeps them. The campaign crate gives them meaning.

use serde::{Deserialize, Serialize};

/// A campaign to create.
#[derive(Debug, Clone, Serialize)]
pub struct NewCampaign {
    pub name: String,
    /// `retention` or `care`.
    pub kind: String,
    pub template: String,
    pub template_version: i64,
    pub definition: serde_json::Value,
    pub budget: f64,
    /// YYYY-MM-DD.
    pub as_of: String,
    pub seed: i64,
    pub owner: String,
    pub approval_level: i64,
}

/// Where a campaign is in its loop: planned, rehearsed on a sample, approved or rejected,
/// launched into work orders, evaluated against its control group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Rehearsed,
    Approved,
    Rejected,
    Launched,
    Evaluated,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 6] = [
        CampaignStatus::Draft,
        CampaignStatus::Rehearsed,
        CampaignStatus::Approved,
        CampaignStatus::Rejected,
        CampaignStatus::Launched,
        CampaignStatus::Evaluated,
    ];

    /// The code stored and shown.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Rehearsed => "rehearsed",
            CampaignStatus::Approved => "approved",
            CampaignStatus::Rejected => "rejected",
            CampaignStatus::Launched => "launched",
            CampaignStatus::Evaluated => "evaluated",
        }
    }

    #[must_use]
    pub fn from_code(code: &str) -> Option<CampaignStatus> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether its work orders exist: launched, or evaluated after.
    #[must_use]
    pub fn is_launched(self) -> bool {
        matches!(self, CampaignStatus::Launched | CampaignStatus::Evaluated)
    }
}

impl std::fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignRecord {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub template: String,
    pub template_version: i64,
    pub definition: serde_json::Value,
    pub budget: f64,
    pub as_of: String,
    pub seed: i64,
    pub owner: String,
    pub status: CampaignStatus,
    pub approval_level: i64,
    pub rehearsal: Option<serde_json::Value>,
    pub evaluation: Option<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// One decision in the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: serde_json::Value,
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: serde_json::Value,
}

/// An audit event journaled before it is appended: it carries the time it happened and a key
/// unique to it, so appending it again (a journal replayed after a crash) keeps one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournaledAudit {
    pub key: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: serde_json::Value,
}

/// A campaign member: treated or held out as control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub subscriber_id: i64,
    /// `treatment` or `control`.
    pub arm: String,
    /// The stratum the control share was drawn within (level × value tier).
    pub stratum: String,
    pub level: String,
    pub tier: String,
    pub segment: String,
    pub reason: String,
    pub offer_id: String,
    pub offer_kind: String,
    pub channel: String,
    pub p_churn: f64,
    pub clv: f64,
    pub arpu: f64,
    pub cost: f64,
    pub expected_cost: f64,
    pub expected_value: f64,
}

/// A work order to create.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewWorkOrder {
    pub subscriber_id: i64,
    pub channel: String,
    /// `retention`, `escalation`, `survey`, `welcome`, `first_bill`, `birthday` or
    /// `contract_expiry`.
    pub purpose: String,
    pub offer_id: String,
    pub branch_id: String,
    pub manager_id: String,
    /// YYYY-MM-DD.
    pub due_date: String,
    /// What the channel needs: the script, the SMS text, the talking point.
    pub payload: serde_json::Value,
}

/// A stored work order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkOrderRecord {
    pub id: i64,
    pub campaign_id: i64,
    pub subscriber_id: i64,
    pub channel: String,
    pub purpose: String,
    pub offer_id: String,
    pub branch_id: String,
    pub manager_id: String,
    pub due_date: String,
    /// `open` until a callback is recorded, then `done`.
    pub status: String,
    pub payload: serde_json::Value,
}

/// What a callback (回访) learned about one work order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackRecord {
    pub work_order_id: i64,
    pub reached: bool,
    pub accepted: bool,
    pub stated_reason: Option<String>,
    /// 0 (not at all satisfied) to 10 (extremely satisfied), when asked.
    pub satisfaction: Option<u8>,
    pub notes: String,
    /// YYYY-MM-DD.
    pub follow_up: Option<String>,
    /// Where it came from: `file.csv:12`, `simulated`, `manual`.
    pub source: String,
    pub recorded_by: String,
}

/// A member's outcome at the end of the horizon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeRecord {
    pub subscriber_id: i64,
    pub retained: bool,
    pub arpu_after: Option<f64>,
    /// `simulated` (the synthetic truth) or `observed` (later data).
    pub source: String,
}

/// A saved version of a plan template.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateRecord {
    pub name: String,
    pub version: i64,
    pub definition: serde_json::Value,
    pub created_at: String,
    pub created_by: String,
}

/// What launching did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Launched {
    /// False when the campaign had already been launched: nothing was written.
    pub created: bool,
    pub work_orders: u64,
    pub members: u64,
}

/// A contact planned by a running campaign, for the contact policy of the next one.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedContact {
    pub campaign_id: i64,
    pub subscriber_id: i64,
    pub channel: String,
    pub offer_id: String,
    pub due_date: String,
    /// The callback found the subscriber and the offer was declined.
    pub refused: bool,
}

/// A user as stored; the password hash never leaves the store but for verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub name: String,
    /// `admin`, `analyst`, `approver`, `manager` or `store`.
    pub role: String,
    /// The account manager this user is, whose subscribers they see.
    pub manager_id: Option<String>,
    /// For a manager without a manager id: the branch whose subscribers they see.
    pub branch_id: Option<String>,
    pub approval_level: i64,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: String,
    pub disabled: bool,
}

/// The longest user name, account manager id or branch id a user may have, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Whether `name` may be a user's name: 1 to [`MAX_NAME_BYTES`] bytes of letters, digits and
/// `.` `_` `-` `@`, starting with a letter or a digit. Names end up in audit events, logs and
/// exports: no spaces, quotes, control characters or leading formula characters.
pub fn check_user_name(name: &str) -> Result<(), String> {
    check_identifier("a user name", name, &['.', '_', '-', '@'])
}

/// Whether `id` may be the account manager or branch id a manager is scoped to: 1 to
/// [`MAX_NAME_BYTES`] bytes of letters, digits and `.` `_` `-` `@` `/`, starting with a letter
/// or a digit. An empty id is refused: it would match every subscriber without a manager.
pub fn check_scope_id(what: &str, id: &str) -> Result<(), String> {
    check_identifier(what, id, &['.', '_', '-', '@', '/'])
}

fn check_identifier(what: &str, text: &str, punctuation: &[char]) -> Result<(), String> {
    let rule = format!(
        "{what} is 1 to {MAX_NAME_BYTES} bytes of letters, digits and {}, starting with a \
         letter or a digit",
        punctuation
            .iter()
            .map(char::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if text.is_empty() {
        return Err(format!("{rule}; it is empty"));
    }
    if text.len() > MAX_NAME_BYTES {
        return Err(format!("{rule}; this one has {} bytes", text.len()));
    }
    let first_ok = text.chars().next().is_some_and(char::is_alphanumeric);
    if !first_ok
        || !text
            .chars()
            .all(|c| c.is_alphanumeric() || punctuation.contains(&c))
    {
        return Err(format!("{rule}: not {text:?}"));
    }
    Ok(())
}

impl UserRecord {
    /// Checks the name, the manager or branch id and the role's scope before the user is
    /// stored: a manager needs exactly one non-empty id to scope the subscribers they see.
    pub fn check(&self) -> Result<(), String> {
        check_user_name(&self.name)?;
        if let Some(m) = &self.manager_id {
            check_scope_id("a manager id", m)?;
        }
        if let Some(b) = &self.branch_id {
            check_scope_id("a branch id", b)?;
        }
        if self.role == "manager" && self.manager_id.is_none() && self.branch_id.is_none() {
            return Err(
                "a manager needs a manager id or a branch id: it scopes the subscribers they see"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// Whose subscribers a user may see and act on: one account manager's book, or a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Manager(String),
    Branch(String),
}

impl Scope {
    /// Whether a subscriber (or work order) of this manager and branch is in scope.
    #[must_use]
    pub fn admits(&self, manager_id: &str, branch_id: &str) -> bool {
        match self {
            Scope::Manager(m) => m == manager_id,
            Scope::Branch(b) => b == branch_id,
        }
    }

    /// (manager id, branch id) to filter on, each `None` when not filtered.
    #[must_use]
    pub fn filters(scope: Option<&Scope>) -> (Option<&str>, Option<&str>) {
        match scope {
            None => (None, None),
            Some(Scope::Manager(m)) => (Some(m), None),
            Some(Scope::Branch(b)) => (None, Some(b)),
        }
    }
}
