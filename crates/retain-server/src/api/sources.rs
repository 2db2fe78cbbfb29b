//! The rules and the offer library: read, replaced after checking, rules backtested.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::{Extension, Json};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{engine, off_thread};
use crate::AppState;
use crate::auth::Session;
use crate::error::{ApiError, ApiResult};

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
pub(crate) fn optional_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<Option<T>> {
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
) -> ApiResult<Json<Replaced>> {
    let before = source_text(&state.0.root, file, default)?;
    retain_data::write_atomically(&state.0.root.join(file), edit.toml.as_bytes())
        .map_err(ApiError::internal)?;
    let detail = json!({
        "note": edit.note, kind: count,
        "before": digest(&before), "after": digest(&edit.toml),
    });
    state.audit(s, kind, file, "change", detail).await?;
    Ok(Json(Replaced {
        file: file.to_owned(),
        count: BTreeMap::from([(kind.to_owned(), count)]),
    }))
}

/// A replaced source: the file and how many rules or offers it now holds (`"rules": 12`).
#[derive(Serialize)]
pub(crate) struct Replaced {
    file: String,
    #[serde(flatten)]
    count: BTreeMap<String, usize>,
}

/// The name of a source file, without the server's directories.
fn file_name(path: &std::path::Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[derive(Deserialize)]
pub(crate) struct SourceEdit {
    toml: String,
    #[serde(default)]
    note: String,
}

/// The rules editor: the rules in force, their text, and the last backtest.
#[derive(Serialize)]
pub(crate) struct RulesAnswer {
    source: Option<String>,
    scorecard: retain_warn::Scorecard,
    rules: Vec<retain_warn::Rule>,
    toml: String,
    backtest: Option<retain_warn::BacktestReport>,
}

pub(crate) async fn rules(State(state): State<AppState>) -> ApiResult<Json<RulesAnswer>> {
    let workspace = &state.0.campaigns.workspace;
    let set = retain_warn::RuleSet::for_workspace(workspace, None).map_err(ApiError::internal)?;
    Ok(Json(RulesAnswer {
        source: file_name(&set.source),
        toml: source_text(&state.0.root, "rules.toml", retain_warn::DEFAULT_RULES)?,
        backtest: retain_warn::read_backtest_report(workspace).map_err(engine)?,
        scorecard: set.scorecard,
        rules: set.rules,
    }))
}

/// Replaces the warning rules after checking them; the next `retain warn` uses them.
pub(crate) async fn put_rules(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: Result<Json<SourceEdit>, JsonRejection>,
) -> ApiResult<Json<Replaced>> {
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
pub(crate) async fn backtest_rules(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<retain_warn::BacktestReport>> {
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
    Ok(Json(report))
}

/// Replaces the offer library after checking it; the next `retain match` uses it.
pub(crate) async fn put_offers(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
    body: Result<Json<SourceEdit>, JsonRejection>,
) -> ApiResult<Json<Replaced>> {
    let Json(edit) = body?;
    let library = retain_offers::Library::parse(&edit.toml, std::path::Path::new("offers.toml"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The workspace's own strategy table names offers: a library without them would break it.
    retain_offers::Strategies::for_workspace(&state.0.campaigns.workspace, &library)
        .map_err(|e| ApiError::bad_request(format!("the strategy table no longer holds: {e}")))?;
    replace_source(
        &state,
        &s,
        ("offers.toml", retain_offers::DEFAULT_OFFERS),
        ("offers", library.offers.len()),
        &edit,
    )
    .await
}

/// The offer library: the offers in force, their text, and the last matching.
#[derive(Serialize)]
pub(crate) struct OffersAnswer {
    source: Option<String>,
    toml: String,
    library: Vec<retain_offers::Offer>,
    matching: Option<retain_offers::MatchReport>,
    /// What retain's own campaigns taught the matching (offers that learn).
    learning: retain_offers::LearningView,
    /// The strategy table: churn category × stage, its measures and offers.
    strategies: Vec<retain_offers::StrategyCell>,
}

pub(crate) async fn offers(State(state): State<AppState>) -> ApiResult<Json<OffersAnswer>> {
    let workspace = &state.0.campaigns.workspace;
    let library = retain_offers::Library::for_workspace(workspace).map_err(engine)?;
    let matching = retain_offers::read_match_report(workspace)
        .map_err(engine)?
        .map(|mut report| {
            // Paths of the server's disk are no business of the browser.
            for path in [
                &mut report.assignment_file,
                &mut report.skipped_file,
                &mut report.decisions_dir,
                &mut report.library,
            ] {
                *path = std::path::PathBuf::new();
            }
            report
        });
    let strategies = retain_offers::Strategies::for_workspace(workspace, &library)
        .map_err(engine)?
        .cells;
    Ok(Json(OffersAnswer {
        strategies,
        source: file_name(&library.source),
        toml: source_text(&state.0.root, "offers.toml", retain_offers::DEFAULT_OFFERS)?,
        learning: retain_offers::Learning::for_workspace(workspace)
            .map_err(engine)?
            .view(&library),
        library: library.offers,
        matching,
    }))
}

/// The pending per-cohort proposal, if any: its diff and its rules text.
#[derive(Serialize)]
pub(crate) struct ProposalAnswer {
    proposal: Option<retain_warn::Proposal>,
    toml: Option<String>,
}

pub(crate) async fn rules_proposal(
    State(state): State<AppState>,
) -> ApiResult<Json<ProposalAnswer>> {
    let workspace = &state.0.campaigns.workspace;
    let (text_file, diff_file) = retain_warn::proposal_files(workspace);
    let proposal: Option<retain_warn::Proposal> =
        retain_data::read_json(&diff_file).map_err(ApiError::internal)?;
    let toml = match proposal {
        Some(_) => Some(std::fs::read_to_string(&text_file).map_err(ApiError::internal)?),
        None => None,
    };
    Ok(Json(ProposalAnswer { proposal, toml }))
}

/// Proposes points and thresholds per tenure cohort from the backtest (docs/rules.md); the
/// rules in force stay until the proposal is accepted.
pub(crate) async fn propose_rules(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
) -> ApiResult<Json<retain_warn::Proposal>> {
    let proposal = off_thread(state.clone(), move |state| async move {
        Ok(retain_warn::propose_for_workspace(
            &state.0.campaigns.ctx,
            &state.0.campaigns.workspace,
            &retain_warn::BacktestOptions::default(),
        )
        .await?)
    })
    .await?;
    let detail = json!({ "before": proposal.before, "after": proposal.after });
    state
        .audit(&s, "rules", "rules-proposal.toml", "propose", detail)
        .await?;
    Ok(Json(proposal))
}

/// Makes the pending proposal the rules in force.
pub(crate) async fn accept_rules_proposal(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
) -> ApiResult<Json<retain_warn::Proposal>> {
    let before = source_text(&state.0.root, "rules.toml", retain_warn::DEFAULT_RULES)?;
    let proposal = retain_warn::accept_proposal(&state.0.campaigns.workspace)?;
    let after = source_text(&state.0.root, "rules.toml", retain_warn::DEFAULT_RULES)?;
    let detail = json!({ "before": digest(&before), "after": digest(&after) });
    state
        .audit(&s, "rules", "rules.toml", "accept_proposal", detail)
        .await?;
    Ok(Json(proposal))
}

/// Discards the pending proposal; 409 when there is none.
pub(crate) async fn reject_rules_proposal(
    State(state): State<AppState>,
    Extension(s): Extension<Session>,
) -> ApiResult<Json<serde_json::Value>> {
    if !retain_warn::reject_proposal(&state.0.campaigns.workspace)? {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            "there is no proposal to reject",
        ));
    }
    state
        .audit(
            &s,
            "rules",
            "rules-proposal.toml",
            "reject_proposal",
            json!({}),
        )
        .await?;
    Ok(Json(json!({ "rejected": true })))
}
