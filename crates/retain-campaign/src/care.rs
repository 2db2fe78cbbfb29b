//! Care triggers (关怀): welcome and first-bill checks for new subscribers, birthday
//! greetings and contract-expiry reminders, created each month as work orders of that month's
//! care campaign under the contact policy.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Duration, Months, NaiveDate};
use datafusion::execution::context::SessionContext;
use retain_features::frame::{ids, query, texts};
use retain_offers::{Policy, read_dnd};
use retain_store::{NewWorkOrder, PlannedContact, WorkOrderRecord};
use serde::Serialize;

use crate::error::Result;

/// What a care run did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CareReport {
    /// The month's care campaign.
    pub id: i64,
    pub month: String,
    /// Subscribers each trigger found.
    pub triggered: BTreeMap<&'static str, usize>,
    /// Work orders created now, by purpose (a second run the same month creates none).
    pub created: BTreeMap<String, u64>,
    /// Triggers the contact policy held back, by rule.
    pub held_back: BTreeMap<&'static str, usize>,
    pub work_orders: u64,
}

/// What care work orders are for.
const PURPOSES: [&str; 4] = ["welcome", "first_bill", "birthday", "contract_expiry"];

/// One trigger's hit.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub subscriber_id: i64,
    pub purpose: &'static str,
    pub due: NaiveDate,
}

fn sql_date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

/// Subscribers each trigger fires for in the month starting `month`: active ones only.
pub(crate) async fn triggers(ctx: &SessionContext, month: NaiveDate) -> Result<Vec<Hit>> {
    let next = month + Months::new(1);
    let m0 = sql_date(month);
    let prev = sql_date(month - Months::new(1));
    let prev2 = sql_date(month - Months::new(2));
    let active = "status = 'active'";
    let mut hits = Vec::new();
    // Joined last month: welcome; the month before: the first full bill has arrived.
    for (purpose, lo, hi) in [("welcome", &prev, &m0), ("first_bill", &prev2, &prev)] {
        let batches = query(
            ctx,
            &format!(
                "SELECT subscriber_id FROM subscribers WHERE {active} \
                 AND join_date >= {lo} AND join_date < {hi} ORDER BY subscriber_id"
            ),
            "care triggers",
        )
        .await?;
        hits.extend(ids(&batches, "subscriber_id")?.into_iter().map(|id| Hit {
            subscriber_id: id,
            purpose,
            due: month + Duration::days(if purpose == "welcome" { 2 } else { 9 }),
        }));
    }
    let batches = query(
        ctx,
        &format!(
            "SELECT subscriber_id, CAST(birth_date AS VARCHAR) AS d FROM subscribers \
             WHERE {active} AND birth_date IS NOT NULL \
             AND date_part('month', birth_date) = {} ORDER BY subscriber_id",
            month.month()
        ),
        "care triggers",
    )
    .await?;
    let days = texts(&batches, "d")?;
    for (i, id) in ids(&batches, "subscriber_id")?.into_iter().enumerate() {
        let day = NaiveDate::parse_from_str(&days[i], "%Y-%m-%d").map_or(1, |d| d.day());
        // A birthday on the 29th–31st of a shorter month falls on its last day.
        let last = (next - Duration::days(1)).day();
        hits.push(Hit {
            subscriber_id: id,
            purpose: "birthday",
            due: month.with_day(day.min(last)).unwrap_or(month),
        });
    }
    // Contracts ending next month: reminded once, about a month ahead.
    let batches = query(
        ctx,
        &format!(
            "SELECT c.subscriber_id, CAST(MIN(c.end_date) AS VARCHAR) AS d FROM contracts c \
             JOIN subscribers s ON s.subscriber_id = c.subscriber_id \
             WHERE s.{active} AND c.end_date >= {} AND c.end_date < {} \
             GROUP BY c.subscriber_id ORDER BY c.subscriber_id",
            sql_date(next),
            sql_date(next + Months::new(1))
        ),
        "care triggers",
    )
    .await?;
    let ends = texts(&batches, "d")?;
    for (i, id) in ids(&batches, "subscriber_id")?.into_iter().enumerate() {
        let end = NaiveDate::parse_from_str(&ends[i], "%Y-%m-%d").unwrap_or(next);
        hits.push(Hit {
            subscriber_id: id,
            purpose: "contract_expiry",
            due: (end - Duration::days(30)).max(month),
        });
    }
    Ok(hits)
}

/// The channel and texts of a care contact.
fn contact(purpose: &str, has_manager: bool) -> (&'static str, &'static str, &'static str) {
    match purpose {
        "welcome" => (
            "sms",
            "欢迎加入！您的套餐已生效，如需帮助请拨打客服热线或联系营业厅。",
            "Welcome aboard! Your plan is active; call the hotline or visit a store for any help.",
        ),
        "first_bill" => (
            "outbound_call",
            "您好，您的首月账单已出，想跟您核对一下套餐和费用是否清楚，有没有疑问。",
            "Hello, your first full bill is out; may we check that the plan and charges are clear to you?",
        ),
        "birthday" => (
            "sms",
            "祝您生日快乐！感谢您一直以来的陪伴。",
            "Happy birthday, and thank you for being with us.",
        ),
        _ if has_manager => (
            "manager_visit",
            "您的合约即将到期，客户经理将为您介绍续约方案。",
            "Your contract ends soon; your account manager will present the renewal options.",
        ),
        _ => (
            "outbound_call",
            "您好，您的合约即将到期，我们为您准备了续约方案，耽误您一分钟介绍一下。",
            "Hello, your contract ends soon; may we take a minute to present the renewal options?",
        ),
    }
}

/// Who a subscriber belongs to.
pub(crate) struct Reach<'a> {
    pub profiles: &'a HashMap<i64, crate::plan::Profile>,
    pub msisdn: &'a HashMap<String, i64>,
}

/// A contact the policy counts: when, for what (`""` when not this month's care), refused.
type Contacts = HashMap<i64, Vec<(NaiveDate, &'static str, bool)>>;

/// Turns hits into work orders under the contact policy: no one on the do-not-disturb list,
/// none within the cool-off after a refusal, and at most `max_contacts_30d` contacts within 30
/// days of each due date — contacts planned by other campaigns, past ones, this month's care
/// orders from earlier runs and this run's included. SMS go out after the quiet hours.
#[allow(clippy::too_many_arguments)] // the policy's inputs, each from its own source
pub(crate) fn orders(
    hits: &[Hit],
    root: &std::path::Path,
    policy: &Policy,
    planned: &[PlannedContact],
    own: &[WorkOrderRecord],
    history: &HashMap<i64, Vec<(NaiveDate, bool)>>,
    reach: &Reach<'_>,
    report: &mut CareReport,
) -> Result<Vec<NewWorkOrder>> {
    let dnd = read_dnd(&root.join(&policy.dnd_file), reach.msisdn)?;
    let mut contacts: Contacts = HashMap::new();
    for (id, cs) in history {
        let e = contacts.entry(*id).or_default();
        e.extend(cs.iter().map(|(d, refused)| (*d, "", *refused)));
    }
    let date = |t: &str| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
    for p in planned {
        if let Some(d) = date(&p.due_date) {
            contacts
                .entry(p.subscriber_id)
                .or_default()
                .push((d, "", p.refused));
        }
    }
    for w in own {
        if let (Some(d), Some(&purpose)) = (
            date(&w.due_date),
            PURPOSES.iter().find(|p| **p == w.purpose),
        ) {
            contacts
                .entry(w.subscriber_id)
                .or_default()
                .push((d, purpose, false));
        }
    }
    let mut out = Vec::new();
    // Contract reminders first: they matter most when the policy allows only one contact.
    let rank = |p: &str| match p {
        "contract_expiry" => 0,
        "first_bill" => 1,
        "welcome" => 2,
        _ => 3,
    };
    let mut sorted: Vec<&Hit> = hits.iter().collect();
    sorted.sort_by_key(|h| (rank(h.purpose), h.due, h.subscriber_id));
    let send_at = policy
        .quiet_end
        .max(chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap_or_default());
    for h in sorted {
        *report.triggered.entry(h.purpose).or_insert(0) += 1;
        if dnd.contains(&h.subscriber_id) {
            *report.held_back.entry("do_not_disturb").or_insert(0) += 1;
            continue;
        }
        let theirs = contacts
            .get(&h.subscriber_id)
            .map_or(&[][..], Vec::as_slice);
        let cool_off = i64::from(policy.cool_off_days);
        if theirs
            .iter()
            .any(|(d, _, refused)| *refused && *d <= h.due && (h.due - *d).num_days() < cool_off)
        {
            *report.held_back.entry("cool_off").or_insert(0) += 1;
            continue;
        }
        // Any 30 days around the due date; this order's own earlier copy is not another contact.
        let near = theirs
            .iter()
            .filter(|(d, purpose, _)| *purpose != h.purpose && (h.due - *d).num_days().abs() < 30)
            .count();
        if near as u32 >= policy.max_contacts_30d {
            *report.held_back.entry("contact_limit").or_insert(0) += 1;
            continue;
        }
        let Some(profile) = reach.profiles.get(&h.subscriber_id) else {
            continue;
        };
        let (channel, zh, en) = contact(h.purpose, !profile.manager_id.is_empty());
        if !theirs.iter().any(|(_, p, _)| *p == h.purpose) {
            contacts
                .entry(h.subscriber_id)
                .or_default()
                .push((h.due, h.purpose, false));
        }
        out.push(NewWorkOrder {
            subscriber_id: h.subscriber_id,
            channel: channel.into(),
            purpose: h.purpose.into(),
            offer_id: String::new(),
            branch_id: profile.branch_id.clone(),
            manager_id: profile.manager_id.clone(),
            due_date: h.due.to_string(),
            payload: if channel == "sms" {
                serde_json::json!({
                    "msisdn": profile.msisdn, "text_zh": zh, "text_en": en,
                    "send_at": send_at.format("%H:%M").to_string(),
                })
            } else {
                serde_json::json!({ "msisdn": profile.msisdn, "script_zh": zh, "script_en": en })
            },
        });
    }
    Ok(out)
}
