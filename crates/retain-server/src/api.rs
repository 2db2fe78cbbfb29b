//! The data endpoints. Each handler gets the session the authorization layer admitted; the
//! per-manager scope is applied here, where the rows are known.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use retain_warn::Level;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};

type Answer = ApiResult<Json<Value>>;

fn id_of(text: &str, what: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{what} {text:?} is not a number")))
}

impl AppState {
    fn masked(&self, id: i64) -> String {
        self.0
            .msisdn
            .get(&id)
            .map_or_else(String::new, |m| retain_offers::mask(m))
    }

    /// Whether the session may see the subscriber: a manager only their own (or their
    /// branch's).
    fn sees(&self, s: &Session, id: i64) -> bool {
        let field = |m: &std::collections::HashMap<i64, String>| {
            m.get(&id).map_or_else(String::new, Clone::clone)
        };
        s.scope().is_none_or(|scope| {
            self.0.msisdn.contains_key(&id)
                && scope.admits(&field(&self.0.managers), &field(&self.0.branches))
        })
    }

    /// Audits a read or a change; the request fails when its audit cannot be recorded.
    async fn audit(
        &self,
        s: &Session,
        entity: &str,
        id: &str,
        action: &str,
        detail: Value,
    ) -> ApiResult<()> {
        self.audit_reading(s, entity, id, action, detail, None)
            .await
            .map(drop)
    }

    /// Audits a read (see `audit.rs`) and reads the open work orders of `work_orders_of`
    /// meanwhile.
    async fn audit_reading(
        &self,
        s: &Session,
        entity: &str,
        id: &str,
        action: &str,
        detail: Value,
        work_orders_of: Option<i64>,
    ) -> ApiResult<Vec<retain_store::WorkOrderRecord>> {
        let journal = &self.0.journal;
        let event = retain_store::JournaledAudit {
            key: journal.key(),
            at: chrono::Utc::now().to_rfc3339(),
            actor: s.name.clone(),
            action: action.to_owned(),
            entity: entity.to_owned(),
            entity_id: id.to_owned(),
            detail,
        };
        let orders = async {
            let Some(subscriber) = work_orders_of else {
                return Ok(Vec::new());
            };
            let (done, answer) = tokio::sync::oneshot::channel();
            let wanted = crate::audit::OrdersWanted { subscriber, done };
            match self.0.orders.send(wanted).await {
                Ok(()) => answer
                    .await
                    .unwrap_or_else(|_| Err("the work order reader stopped".into())),
                Err(_) => Err("the work order reader stopped".into()),
            }
        };
        let (journaled, orders) = tokio::join!(journal.append(event), orders);
        // Nothing is answered that the audit log does not hold.
        if let Err(e) = journaled {
            tracing::error!("audit {entity} {id} {action}: {e}");
            return Err(ApiError::audit_unavailable());
        }
        orders.map_err(ApiError::internal)
    }

    fn report(&self, name: &str) -> ApiResult<Option<Value>> {
        let path = retain_features::outputs::reports_dir(&self.0.campaigns.workspace).join(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
        }
    }
}

/// Runs planning work on a blocking thread: it is CPU-bound, and with the churn model built
/// in its future is not `Send` (the model's booster is not).
async fn off_thread<T, F, Fut>(state: AppState, f: F) -> ApiResult<T>
where
    F: FnOnce(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<T>>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f(state)))
        .await
        .map_err(ApiError::internal)?
}

fn engine(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

pub(crate) async fn overview(State(state): State<AppState>) -> Answer {
    let base = state
        .0
        .overview
        .get_or_try_init(|| async {
            let o = retain_features::overview(&state.0.campaigns.ctx)
                .await
                .map_err(engine)?;
            serde_json::to_value(o).map_err(engine)
        })
        .await?
        .clone();
    let list = state
        .0
        .warnings
        .latest(&state.0.campaigns.workspace)
        .map_err(engine)?;
    let by_level = list.as_ref().map(|l| {
        json!({
            "as_of": l.as_of, "red": l.count(Level::Red), "yellow": l.count(Level::Yellow),
            "blue": l.count(Level::Blue),
        })
    });
    let campaigns: Vec<Value> = state
        .0
        .store
        .campaigns()
        .await?
        .into_iter()
        .filter(|c| c.kind != "care")
        .map(|c| {
            let e = c.evaluation.as_ref();
            json!({
                "id": c.id, "name": c.name, "status": c.status,
                "treated_retention": e.and_then(|e| e.get("treated_retention")),
                "control_retention": e.and_then(|e| e.get("control_retention")),
                "uplift": e.and_then(|e| e.get("uplift")),
                "roi": e.and_then(|e| e.get("roi")),
            })
        })
        .collect();
    Ok(Json(json!({
        "operator": base,
        "warnings": by_level,
        "warning_trend": crate::warnings::trend(&state.0.campaigns.workspace),
        "campaigns": campaigns,
    })))
}

#[derive(Deserialize)]
pub(crate) struct WarningQuery {
    level: Option<String>,
    branch: Option<String>,
    manager: Option<String>,
    rule: Option<String>,
    cohort: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    /// `csv` exports the whole filtered list.
    format: Option<String>,
}

pub(crate) async fn warnings(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<WarningQuery>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = q?;
    let csv = match q.format.as_deref() {
        None | Some("" | "json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {f:?} is not json or csv"
            )));
        }
    };
    let level = match q.level.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(Level::from_code(l).ok_or_else(|| {
            ApiError::bad_request(format!("level {l:?} is not red, yellow or blue"))
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let Some(list) = state
        .0
        .warnings
        .latest(&state.0.campaigns.workspace)
        .map_err(engine)?
    else {
        return Err(ApiError::unavailable(
            "no warning list yet: run retain warn first",
        ));
    };
    let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    let (branch, manager, rule, cohort) = (
        given(&q.branch),
        given(&q.manager),
        given(&q.rule),
        given(&q.cohort),
    );
    let scope = s.scope();
    let matching: Vec<&retain_warn::Listed> = list
        .items
        .iter()
        .filter(|w| {
            scope
                .as_ref()
                .is_none_or(|sc| sc.admits(&w.manager_id, &w.branch_id))
        })
        .filter(|w| level.is_none_or(|l| w.level == l))
        .filter(|w| branch.as_ref().is_none_or(|b| &w.branch_id == b))
        .filter(|w| manager.as_ref().is_none_or(|m| &w.manager_id == m))
        .filter(|w| cohort.as_ref().is_none_or(|c| &w.cohort == c))
        .filter(|w| rule.as_ref().is_none_or(|r| w.rules.contains(r)))
        .collect();
    if csv {
        return export_warnings(&state, &s, &list.as_of, &matching)
            .await
            .map(IntoResponse::into_response);
    }
    let count = |lv: Level| matching.iter().filter(|w| w.level == lv).count();
    let items: Vec<Value> = matching
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(|w| {
            let mut v = serde_json::to_value(w).unwrap_or(Value::Null);
            v["msisdn"] = state.masked(w.subscriber_id).into();
            v
        })
        .collect();
    state
        .audit(
            &s,
            "warnings",
            &list.as_of,
            "list",
            json!({ "rows": items.len(), "total": matching.len(), "offset": q.offset.unwrap_or(0) }),
        )
        .await?;
    Ok(Json(json!({
        "as_of": list.as_of,
        "total": matching.len(),
        "by_level": {
            "red": count(Level::Red), "yellow": count(Level::Yellow), "blue": count(Level::Blue),
        },
        "items": items,
    }))
    .into_response())
}

/// The filtered warning list as a CSV download (UTF-8 with a byte-order mark, so spreadsheet
/// programs read the Chinese right), numbers masked; every export is audited.
async fn export_warnings(
    state: &AppState,
    s: &Session,
    as_of: &str,
    rows: &[&retain_warn::Listed],
) -> ApiResult<impl axum::response::IntoResponse> {
    let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let header = [
        "subscriber_id",
        "msisdn",
        "level",
        "score",
        "cohort",
        "branch_id",
        "manager_id",
        "rules",
        "reasons_zh",
        "reasons_en",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    // Ids, branches and reasons come from the operator's data: never a formula when opened.
    let cell = |t: &str| retain_data::spreadsheet_cell(t).into_owned();
    for w in rows {
        out.write_record([
            w.subscriber_id.to_string(),
            state.masked(w.subscriber_id),
            w.level.code().to_owned(),
            w.score.to_string(),
            cell(&w.cohort),
            cell(&w.branch_id),
            cell(&w.manager_id),
            cell(&w.rules.join(" ")),
            cell(&w.reasons_zh),
            cell(&w.reasons_en),
        ])
        .map_err(ApiError::internal)?;
    }
    let bytes = out.into_inner().map_err(ApiError::internal)?;
    state
        .audit(
            s,
            "warnings",
            as_of,
            "export",
            json!({ "rows": rows.len() }),
        )
        .await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"warnings-{as_of}.csv\""),
            ),
        ],
        bytes,
    ))
}

pub(crate) async fn customer(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Answer {
    let id = id_of(&id, "customer id")?;
    let not_found = || ApiError::not_found(format!("no subscriber {id}"));
    if !state.sees(&s, id) {
        return Err(not_found());
    }
    let mut view =
        retain_segment::customer_360(&state.0.campaigns.ctx, &state.0.campaigns.workspace, id)
            .await
            .map_err(engine)?
            .ok_or_else(not_found)?;
    view["profile"]["msisdn"] = state.masked(id).into();
    let now = chrono::Local::now().naive_local();
    view["recommendations"] = match &state.0.decisions {
        Some(index) => {
            serde_json::to_value(index.decide(&id.to_string(), now, None)).map_err(engine)?
        }
        None => Value::Null,
    };
    view["work_orders"] =
        serde_json::to_value(state.0.store.open_work_orders(id).await?).map_err(engine)?;
    state
        .audit(&s, "customer", &id.to_string(), "read", json!({}))
        .await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
pub(crate) struct DecisionQuery {
    channel: Option<String>,
}

pub(crate) async fn decision(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(key): Path<String>,
    q: Result<Query<DecisionQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q?;
    let Some(index) = &state.0.decisions else {
        return Err(ApiError::unavailable(
            "no match run yet: run retain match first",
        ));
    };
    let channel = match q.channel.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            retain_offers::Channel::from_code(c)
                .ok_or_else(|| ApiError::bad_request(format!("unknown channel {c:?}")))?,
        ),
    };
    let now = chrono::Local::now().naive_local();
    let not_found = || ApiError::not_found("no such subscriber");
    let decision = index.decide(&key, now, channel).ok_or_else(not_found)?;
    // A manager sees only their own subscribers; others look as if they did not exist.
    if !state.sees(&s, decision.subscriber_id) {
        return Err(not_found());
    }
    let mut value = serde_json::to_value(&decision).map_err(engine)?;
    let work_orders = state
        .audit_reading(
            &s,
            "customer",
            &decision.subscriber_id.to_string(),
            "decision",
            json!({ "channel": q.channel }),
            Some(decision.subscriber_id),
        )
        .await?;
    value["work_orders"] = serde_json::to_value(work_orders).map_err(engine)?;
    Ok(Json(value))
}

pub(crate) async fn segments(State(state): State<AppState>) -> Answer {
    let mut report = state
        .report(retain_segment::SEGMENTS_REPORT)?
        .ok_or_else(|| ApiError::unavailable("no segmentation yet: run retain segment first"))?;
    if let Some(o) = report.as_object_mut() {
        // Paths of the server's disk are no business of the browser.
        o.remove("segments_file");
        o.remove("report_file");
    }
    report["rfm_grid"] = rfm_grid(&state).await?;
    Ok(Json(report))
}

/// Subscribers by recency × frequency score (1–5 each) with their mean monetary score: the
/// RFM grid of the segment explorer.
async fn rfm_grid(state: &AppState) -> ApiResult<Value> {
    let ctx = &state.0.campaigns.ctx;
    if !retain_offers::register_segments(ctx, &state.0.campaigns.workspace)
        .await
        .map_err(engine)?
    {
        return Ok(Value::Null);
    }
    let batches = retain_features::frame::query(
        ctx,
        "SELECT rfm_r AS r, rfm_f AS f, COUNT(*) AS subscribers, AVG(rfm_m) AS m \
         FROM segments WHERE rfm_r IS NOT NULL AND rfm_f IS NOT NULL \
         GROUP BY rfm_r, rfm_f ORDER BY r, f",
        "the RFM grid",
    )
    .await
    .map_err(engine)?;
    Ok(Value::Array(
        retain_features::json_rows(&batches)
            .into_iter()
            .map(Value::Object)
            .collect(),
    ))
}

pub(crate) async fn tags(State(state): State<AppState>) -> Answer {
    let library =
        retain_segment::TagLibrary::for_workspace(&state.0.campaigns.workspace).map_err(engine)?;
    let counts = state
        .report(retain_segment::SEGMENTS_REPORT)?
        .and_then(|r| r.get("tags").cloned())
        .unwrap_or(Value::Null);
    let tags: Vec<Value> = library
        .tags
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
            v["count"] = counts.get(&t.id).cloned().unwrap_or(Value::Null);
            v
        })
        .collect();
    Ok(Json(json!({
        "source": library.source.file_name().map(|n| n.to_string_lossy().into_owned()),
        "tags": tags,
    })))
}

fn segment_error(e: retain_segment::Error) -> ApiError {
    match e {
        retain_segment::Error::BadRequest(m) => ApiError::bad_request(m),
        other => ApiError::internal(other),
    }
}

#[derive(Deserialize)]
pub(crate) struct TargetQuery {
    tags: String,
}

pub(crate) async fn targets(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<TargetQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q?;
    let library =
        retain_segment::TagLibrary::for_workspace(&state.0.campaigns.workspace).map_err(engine)?;
    // A bad expression is the caller's error whatever state the workspace is in.
    retain_segment::check_target_expression(&library, &q.tags).map_err(segment_error)?;
    if !retain_features::outputs::tags_file(&state.0.campaigns.workspace).exists() {
        return Err(ApiError::unavailable(
            "no tags computed yet: run retain segment first",
        ));
    }
    let ids = retain_segment::select_by_tags(
        &state.0.campaigns.ctx,
        &state.0.campaigns.workspace,
        &library,
        &q.tags,
    )
    .await
    .map_err(segment_error)?;
    let sample: Vec<Value> = ids
        .iter()
        .take(20)
        .map(|id| json!({ "subscriber_id": id, "msisdn": state.masked(*id) }))
        .collect();
    state
        .audit(
            &s,
            "target",
            &q.tags,
            "select",
            json!({ "count": ids.len() }),
        )
        .await?;
    Ok(Json(
        json!({ "expression": q.tags, "count": ids.len(), "sample": sample }),
    ))
}

pub(crate) async fn model(State(state): State<AppState>) -> Answer {
    let mut report = retain_model::read_model_report(&state.0.campaigns.workspace)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unavailable("no churn model yet: run retain train first"))?;
    if let Some(o) = report.as_object_mut() {
        o.remove("model_dir");
    }
    Ok(Json(report))
}

/// The text of a workspace's file, or the shipped default when the workspace has none.
fn source_text(root: &std::path::Path, file: &str, default: &str) -> ApiResult<String> {
    let path = root.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default.to_owned()),
        Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
    }
}

/// A short, stable fingerprint of a file's text (the start of its SHA-256), so the audit log
/// tells versions apart.
fn digest(text: &str) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(text.as_bytes()).iter().take(8).fold(
        String::with_capacity(16),
        |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        },
    )
}

/// A JSON body that may be absent (empty) or present and well-formed.
fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_body",
            e.to_string(),
        )
    })
}

/// Replaces a checked workspace file (`rules.toml`, `offers.toml`) and audits the change with
/// fingerprints of the text before and after.
async fn replace_source(
    state: &AppState,
    s: &Session,
    (file, default): (&str, &str),
    (kind, count): (&str, usize),
    edit: &SourceEdit,
) -> Answer {
    let before = source_text(&state.0.root, file, default)?;
    retain_data::write_atomically(&state.0.root.join(file), edit.toml.as_bytes())
        .map_err(ApiError::internal)?;
    let detail = json!({
        "note": edit.note, kind: count,
        "before": digest(&before), "after": digest(&edit.toml),
    });
    state.audit(s, kind, file, "change", detail).await?;
    Ok(Json(json!({ kind: count, "file": file })))
}

#[derive(Deserialize)]
pub(crate) struct SourceEdit {
    toml: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn rules(State(state): State<AppState>) -> Answer {
    let set = retain_warn::RuleSet::for_workspace(&state.0.campaigns.workspace, None)
        .map_err(ApiError::internal)?;
    let text = source_text(&state.0.root, "rules.toml", retain_warn::DEFAULT_RULES)?;
    let rules: Vec<Value> = set
        .rules
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({
        "source": set.source.file_name().map(|n| n.to_string_lossy().into_owned()),
        "scorecard": serde_json::to_value(&set.scorecard).map_err(engine)?,
        "rules": rules,
        "toml": text,
        "backtest": state.report(retain_warn::BACKTEST_REPORT)?,
    })))
}

/// Replaces the warning rules after checking them; the next `retain warn` uses them.
pub(crate) async fn put_rules(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: Result<Json<SourceEdit>, JsonRejection>,
) -> Answer {
    let Json(edit) = body?;
    let set = retain_warn::RuleSet::parse(&edit.toml, std::path::Path::new("rules.toml"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    replace_source(
        &state,
        &s,
        ("rules.toml", retain_warn::DEFAULT_RULES),
        ("rules", set.rules.len()),
        &edit,
    )
    .await
}

/// Backtests rules (the posted text, or those in force) on the workspace's labelled history.
pub(crate) async fn backtest_rules(State(state): State<AppState>, body: Bytes) -> Answer {
    let text = optional_body::<SourceEdit>(&body)?.map(|e| e.toml);
    let set = match &text {
        Some(t) => retain_warn::RuleSet::parse(t, std::path::Path::new("rules.toml"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => retain_warn::RuleSet::for_workspace(&state.0.campaigns.workspace, None)
            .map_err(ApiError::internal)?,
    };
    let report = off_thread(state, move |state| async move {
        retain_warn::backtest(
            &state.0.campaigns.ctx,
            &set,
            &retain_warn::BacktestOptions::default(),
        )
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))
    })
    .await?;
    Ok(Json(serde_json::to_value(report).map_err(engine)?))
}

/// Replaces the offer library after checking it; the next `retain match` uses it.
pub(crate) async fn put_offers(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: Result<Json<SourceEdit>, JsonRejection>,
) -> Answer {
    let Json(edit) = body?;
    let library = retain_offers::Library::parse(&edit.toml, std::path::Path::new("offers.toml"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    replace_source(
        &state,
        &s,
        ("offers.toml", retain_offers::DEFAULT_OFFERS),
        ("offers", library.offers.len()),
        &edit,
    )
    .await
}

pub(crate) async fn offers(State(state): State<AppState>) -> Answer {
    let library =
        retain_offers::Library::for_workspace(&state.0.campaigns.workspace).map_err(engine)?;
    let mut matching = state.report(retain_offers::MATCH_REPORT)?;
    if let Some(o) = matching.as_mut().and_then(Value::as_object_mut) {
        for k in [
            "assignment_file",
            "skipped_file",
            "decisions_dir",
            "library",
        ] {
            o.remove(k);
        }
    }
    let text = source_text(&state.0.root, "offers.toml", retain_offers::DEFAULT_OFFERS)?;
    Ok(Json(json!({
        "source": library.source.file_name().map(|n| n.to_string_lossy().into_owned()),
        "toml": text,
        "library": library.offers,
        "matching": matching,
    })))
}

pub(crate) async fn templates(State(state): State<AppState>) -> Answer {
    let t = state.0.campaigns.templates().await?;
    Ok(Json(json!({ "templates": t })))
}

pub(crate) async fn campaigns(State(state): State<AppState>) -> Answer {
    let list: Vec<Value> = state
        .0
        .campaigns
        .list()
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id, "name": c.name, "kind": c.kind, "template": c.template,
                "status": c.status, "budget": c.budget, "as_of": c.as_of, "owner": c.owner,
                "approval_level": c.approval_level, "updated_at": c.updated_at,
                "uplift": c.evaluation.as_ref().and_then(|e| e.get("uplift")).cloned(),
            })
        })
        .collect();
    Ok(Json(json!({ "campaigns": list })))
}

pub(crate) async fn campaign(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let c = state.0.campaigns.get(id).await?;
    let history = state
        .0
        .store
        .audit_log("campaign", Some(&id.to_string()))
        .await?;
    let orders = state.0.store.work_orders(id).await?;
    let mut by_channel = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for w in &orders {
        let e = by_channel.entry(&w.channel).or_default();
        e.0 += 1;
        e.1 += usize::from(w.status != "open");
    }
    let by_channel: Vec<Value> = by_channel
        .into_iter()
        .map(|(ch, (n, done))| json!({ "channel": ch, "work_orders": n, "done": done }))
        .collect();
    let mut out = serde_json::to_value(&c).map_err(engine)?;
    out["history"] = serde_json::to_value(history).map_err(engine)?;
    out["work_orders"] = json!({ "total": orders.len(), "by_channel": by_channel });
    Ok(Json(out))
}

#[derive(Deserialize)]
pub(crate) struct CreateCampaign {
    template: String,
    budget: Option<f64>,
    name: Option<String>,
    /// YYYY-MM-DD.
    as_of: Option<String>,
    seed: Option<u64>,
}

pub(crate) async fn create_campaign(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: Result<Json<CreateCampaign>, JsonRejection>,
) -> Answer {
    let Json(b) = body?;
    if b.budget.is_some_and(|x| !x.is_finite() || x <= 0.0) {
        return Err(ApiError::bad_request("budget must be a positive amount"));
    }
    let as_of = match b.as_of.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::bad_request(format!("as_of {d:?} is not YYYY-MM-DD")))
                .and_then(|d| {
                    retain_features::conditions::check_as_of(d).map_err(ApiError::bad_request)
                })?,
        ),
    };
    let req = retain_campaign::CreateRequest {
        template: b.template,
        budget: b.budget,
        as_of,
        name: b.name.filter(|n| !n.trim().is_empty()),
        seed: b.seed,
    };
    let c = state.0.campaigns.create(&req, &s.actor()).await?;
    Ok(Json(serde_json::to_value(c).map_err(engine)?))
}

#[derive(Deserialize)]
struct Note {
    #[serde(default)]
    note: String,
}

/// An optional JSON body `{"note": "..."}`.
fn note(body: &Bytes) -> ApiResult<String> {
    Ok(optional_body::<Note>(body)?
        .map(|n| n.note)
        .unwrap_or_default())
}

pub(crate) async fn rehearse(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let actor = s.actor();
    let r = off_thread(state, move |state| async move {
        Ok(state.0.campaigns.rehearse(id, &actor).await?)
    })
    .await?;
    Ok(Json(serde_json::to_value(r).map_err(engine)?))
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let c = state
        .0
        .campaigns
        .approve(id, &s.actor(), false, &note(&body)?)
        .await?;
    Ok(Json(serde_json::to_value(c).map_err(engine)?))
}

pub(crate) async fn reject(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let note = note(&body)?;
    if note.trim().is_empty() {
        return Err(ApiError::bad_request("a rejection needs a note saying why"));
    }
    let c = state
        .0
        .campaigns
        .approve(id, &s.actor(), true, &note)
        .await?;
    Ok(Json(serde_json::to_value(c).map_err(engine)?))
}

pub(crate) async fn launch(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let actor = s.actor();
    let r = off_thread(state, move |state| async move {
        Ok(state.0.campaigns.launch(id, &actor).await?)
    })
    .await?;
    let files: Vec<String> = r
        .files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut out = serde_json::to_value(&r).map_err(engine)?;
    out["files"] = files.into();
    Ok(Json(out))
}

pub(crate) async fn simulate(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let r = state.0.campaigns.simulate_callbacks(id, &s.actor()).await?;
    Ok(Json(serde_json::to_value(r).map_err(engine)?))
}

pub(crate) async fn evaluate(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Answer {
    let id = id_of(&id, "campaign id")?;
    let (e, _) = state.0.campaigns.evaluate(id, &s.actor()).await?;
    Ok(Json(serde_json::to_value(e).map_err(engine)?))
}

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    status: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn work_orders(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    q: Result<Query<QueueQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q?;
    let status = q.status.as_deref().filter(|v| !v.is_empty() && *v != "all");
    if let Some(v) = status
        && !["open", "done"].contains(&v)
    {
        return Err(ApiError::bad_request(format!(
            "status {v:?} is not open, done or all"
        )));
    }
    let limit = q.limit.unwrap_or(200);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::bad_request("limit must be 1 to 5000"));
    }
    let orders = state
        .0
        .store
        .work_queue(s.scope().as_ref(), status, limit)
        .await?;
    let items: Vec<Value> = orders
        .iter()
        .map(|w| {
            let mut v = serde_json::to_value(w).unwrap_or(Value::Null);
            v["msisdn"] = state.masked(w.subscriber_id).into();
            v
        })
        .collect();
    state
        .audit(
            &s,
            "work_orders",
            status.unwrap_or("all"),
            "list",
            json!({ "rows": items.len() }),
        )
        .await?;
    Ok(Json(json!({
        "items": items,
        "stated_reasons": retain_campaign::stated_reasons()
            .map(|(code, zh)| json!({ "code": code, "zh": zh }))
            .collect::<Vec<_>>(),
    })))
}

pub(crate) async fn callback(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    body: Result<Json<retain_campaign::CallbackForm>, JsonRejection>,
) -> Answer {
    let id = id_of(&id, "work order id")?;
    let Json(form) = body?;
    let cb = state
        .0
        .campaigns
        .record_callback(id, &form, s.scope().as_ref(), &s.actor())
        .await?;
    Ok(Json(serde_json::to_value(cb).map_err(engine)?))
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    entity: Option<String>,
    actor: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(200);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::bad_request("limit must be 1 to 5000"));
    }
    state.flush_audit().await;
    let events = state
        .0
        .store
        .audit_recent(
            q.entity.as_deref().filter(|v| !v.is_empty()),
            q.actor.as_deref().filter(|v| !v.is_empty()),
            limit,
        )
        .await?;
    Ok(Json(json!({ "events": events })))
}
