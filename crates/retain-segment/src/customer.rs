//! Customer 360 (客户全景视图): everything retain knows about one subscriber, in one object.

use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use retain_data::{SubscriberId, Workspace};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// A table's row as loaded: its columns are the data model's, so they travel as they are.
pub type Row = serde_json::Map<String, Value>;

/// Everything retain knows about one subscriber (客户全景视图).
#[derive(Debug, Clone, Serialize)]
pub struct Customer360 {
    pub subscriber_id: SubscriberId,
    /// The subscriber's row with their plan's name, fee, tier and allowances.
    pub profile: Row,
    pub contracts: Vec<Row>,
    pub usage: Usage,
    /// Newest first.
    pub events: Vec<Row>,
    /// Their entry in the newest warning list (`{"listed": false, …}` when not on it).
    pub warnings: Value,
    /// Their line of the newest churn scores (`{"available": false, "note": …}` without one).
    pub churn: Value,
    /// RFM, lifecycle stage, cluster and scenarios (`{"note": …}` before a segmentation).
    pub segments: Value,
    pub tags: Vec<TagRef>,
    /// Lifetime value, value tier and whether mid-to-high value.
    pub value: Value,
    /// Past retention contacts, newest first.
    pub contacts: Vec<Row>,
    /// Where they live on the network and whom they call: `home_cell` (the cell's line of the
    /// cells' file, with its churn and risk), `district`, and `circle` (id, size, leavers, churn
    /// rate, whether they lead it, and its members, leader first); null parts where unknown.
    pub network: Value,
}

/// Monthly and weekly usage, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub monthly: Vec<Row>,
    pub weekly: Vec<Row>,
}

/// A tag the subscriber carries.
#[derive(Debug, Clone, Serialize)]
pub struct TagRef {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Row>> {
    let batches = retain_features::frame::query(ctx, sql, "the customer view").await?;
    Ok(retain_features::json_rows(&batches))
}

fn has(ctx: &SessionContext, table: &str) -> bool {
    ctx.table_exist(table).unwrap_or(false)
}

/// The latest warning list entry for the subscriber.
fn latest_warning(workspace: &Workspace, id: SubscriberId) -> Result<Value> {
    let Some(list) = retain_warn::latest_list(workspace) else {
        return Ok(json!({ "listed": false, "note": "no warning run yet (retain warn)" }));
    };
    let found = list.find(id).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(match found {
        Some((w, rules)) => json!({
            "listed": true,
            "list": list.name,
            "level": w.level,
            "score": w.score,
            "cohort": w.cohort,
            "rules": rules,
        }),
        None => json!({ "listed": false, "list": list.name }),
    })
}

/// The subscriber's line of the newest churn scores.
fn latest_score(workspace: &Workspace, id: SubscriberId) -> Result<Value> {
    let Some(scores) = retain_model::latest_scores(workspace) else {
        return Ok(
            json!({ "available": false, "note": "no churn scores yet (retain train, then retain score)" }),
        );
    };
    Ok(match scores.line(id)? {
        Some(line) => json!({
            "available": true,
            "as_of": scores.as_of,
            "probability": line.probability,
            "decile": line.decile,
            "reasons": line.reasons,
            "model_version": line.model_version.to_string(),
        }),
        None => {
            json!({ "available": false, "note": "not scored (not a subscriber at the scoring date)" })
        }
    })
}

/// The 360 view of a subscriber, or `None` when the id is unknown.
pub async fn customer_360(
    ctx: &SessionContext,
    workspace: &Workspace,
    subscriber: SubscriberId,
) -> Result<Option<Customer360>> {
    let id = subscriber.get();
    if !has(ctx, "subscribers") {
        return Err(Error::BadRequest("no subscribers loaded".into()));
    }
    let profile = rows(
        ctx,
        &format!(
            "SELECT s.*, p.name AS plan_name, p.monthly_fee AS plan_fee, p.tier AS plan_tier,
                    p.data_mb AS plan_data_mb, p.voice_minutes AS plan_voice_minutes
             FROM subscribers s LEFT JOIN plans p ON p.plan_id = s.plan_id
             WHERE s.subscriber_id = {id}"
        ),
    )
    .await?;
    let Some(profile) = profile.into_iter().next() else {
        return Ok(None);
    };
    let usage = if has(ctx, "usage_monthly") {
        rows(
            ctx,
            &format!("SELECT * FROM usage_monthly WHERE subscriber_id = {id} ORDER BY period"),
        )
        .await?
    } else {
        Vec::new()
    };
    let weekly = if has(ctx, "usage_weekly") {
        rows(
            ctx,
            &format!("SELECT * FROM usage_weekly WHERE subscriber_id = {id} ORDER BY period"),
        )
        .await?
    } else {
        Vec::new()
    };
    let events = if has(ctx, "events") {
        rows(
            ctx,
            &format!("SELECT * FROM events WHERE subscriber_id = {id} ORDER BY \"timestamp\" DESC"),
        )
        .await?
    } else {
        Vec::new()
    };
    let contracts = if has(ctx, "contracts") {
        rows(
            ctx,
            &format!("SELECT * FROM contracts WHERE subscriber_id = {id} ORDER BY start_date"),
        )
        .await?
    } else {
        Vec::new()
    };
    let contacts = if has(ctx, "campaign_history") {
        rows(ctx, &format!("SELECT * FROM campaign_history WHERE subscriber_id = {id} ORDER BY contact_date DESC")).await?
    } else {
        Vec::new()
    };
    let segment = if retain_features::outputs::register_segments(ctx, workspace).await? {
        rows(
            ctx,
            &format!("SELECT * FROM segments WHERE subscriber_id = {id}"),
        )
        .await?
        .into_iter()
        .next()
    } else {
        None
    };
    let tags_file = retain_features::outputs::tags_file(workspace);
    let tags = if tags_file.exists() {
        if !has(ctx, "tags") {
            ctx.register_parquet(
                "tags",
                tags_file.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| Error::engine("reading the tags", e))?;
        }
        let library = crate::tags::TagLibrary::for_workspace(workspace)?;
        let row = rows(
            ctx,
            &format!("SELECT * FROM tags WHERE subscriber_id = {id}"),
        )
        .await?;
        library
            .tags
            .iter()
            .filter(|t| {
                row.first()
                    .is_some_and(|r| r.get(&t.id) == Some(&Value::Bool(true)))
            })
            .map(|t| TagRef {
                id: t.id.clone(),
                name_zh: t.name_zh.clone(),
                name_en: t.name_en.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let (segments, value) = match &segment {
        Some(s) => (
            json!({
                "rfm": { "r": s["rfm_r"], "f": s["rfm_f"], "m": s["rfm_m"], "group": s["rfm_group"] },
                "lifecycle_stage": s["lifecycle_stage"],
                "cluster": { "id": s["cluster"], "name_zh": s["cluster_name_zh"], "name_en": s["cluster_name_en"] },
                "scenarios": s["scenarios"].as_str().map(|t| t.split_whitespace().collect::<Vec<_>>()),
            }),
            json!({ "clv": s["clv"], "value_tier": s["value_tier"], "midhigh": s["midhigh"] }),
        ),
        None => (
            json!({ "note": "no segmentation run yet (retain segment)" }),
            json!({ "note": "no segmentation run yet (retain segment)" }),
        ),
    };
    Ok(Some(Customer360 {
        subscriber_id: subscriber,
        profile,
        contracts,
        usage: Usage {
            monthly: usage,
            weekly,
        },
        events,
        warnings: latest_warning(workspace, subscriber)?,
        churn: latest_score(workspace, subscriber)?,
        segments,
        tags,
        value,
        contacts,
        network: network_view(ctx, workspace, segment.as_ref(), id).await?,
    }))
}

/// Registers `file` as `name` unless it is registered; false when there is no such file.
async fn register(ctx: &SessionContext, name: &str, file: &std::path::Path) -> Result<bool> {
    if !file.exists() {
        return Ok(false);
    }
    if !has(ctx, name) {
        ctx.register_parquet(
            name,
            file.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| Error::engine(format!("reading {}", file.display()), e))?;
    }
    Ok(true)
}

/// The home cell, district and calling circle of subscriber `id` from the last segmentation.
async fn network_view(
    ctx: &SessionContext,
    workspace: &Workspace,
    segment: Option<&Row>,
    id: i64,
) -> Result<Value> {
    let text = |k: &str| segment.and_then(|s| s.get(k)).and_then(Value::as_str);
    let cell = match text("home_cell") {
        Some(cell)
            if register(
                ctx,
                "customer_cells",
                &crate::network::cells_file(workspace),
            )
            .await? =>
        {
            let quoted = cell.replace('\'', "''");
            rows(
                ctx,
                &format!("SELECT * FROM customer_cells WHERE cell_id = '{quoted}'"),
            )
            .await?
            .into_iter()
            .next()
            .map(Value::Object)
        }
        Some(cell) => Some(json!({ "cell_id": cell })),
        None => None,
    };
    let circle = if register(
        ctx,
        "customer_circles",
        &crate::network::circles_file(workspace),
    )
    .await?
    {
        let members = rows(
            ctx,
            &format!(
                "SELECT subscriber_id, circle, circle_size, circle_left_3m, circle_churn_rate,
                        circle_leader, circle_calls, left_3m
                 FROM customer_circles
                 WHERE circle = (SELECT MAX(circle) FROM customer_circles WHERE subscriber_id = {id})
                 ORDER BY circle_leader DESC, circle_calls DESC, subscriber_id"
            ),
        )
        .await?;
        members.first().map(|first| {
            json!({
                "id": first["circle"],
                "size": first["circle_size"],
                "left_3m": first["circle_left_3m"],
                "churn_rate": first["circle_churn_rate"],
                "in_wave": first["circle_churn_rate"].as_f64().is_some_and(|r| r >= crate::network::WAVE_RATE),
                "leader": members.iter().any(|m| m["subscriber_id"] == json!(id) && m["circle_leader"] == json!(true)),
                "members": members.iter().map(|m| json!({
                    "subscriber_id": m["subscriber_id"],
                    "leader": m["circle_leader"],
                    "calls": m["circle_calls"],
                    "left_3m": m["left_3m"],
                })).collect::<Vec<_>>(),
            })
        })
    } else {
        None
    };
    Ok(json!({
        "home_cell": cell,
        "district": text("district"),
        "circle": circle,
    }))
}
