//! Champion and challenger: which saved version scores, kept in `models/champion.json` with
//! the history of every decision, and the rule by which a newly trained version (the
//! challenger) takes the champion's place.
//!
//! A training saves its model as a new version, then compares it with the champion on the
//! out-of-time month it was tested on; the challenger is promoted only when it is no lower on
//! EMPC, AUC and top-decile lift and higher on at least one ([`beats`]; docs/decisions.md).
//! A workspace without the file (trained before champions were recorded) treats its newest
//! version as the champion. Decisions and rollbacks hold the registry's lock, so two
//! trainings finishing at once decide one after the other, the second against the champion
//! the first left.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use retain_data::Workspace;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{Metrics, evaluate};
use crate::registry::{ModelMeta, load, models_dir, read_meta, saved_versions};
use crate::table::Table;
use crate::train::ChurnModel;

const FILE: &str = "champion.json";
const LOCK: &str = ".champion.lock";

/// `models/champion.json`: the champion and how it came to be.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChampionRecord {
    pub version: u32,
    /// Every decision, oldest first.
    pub history: Vec<Decision>,
}

/// What a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The challenger became the champion.
    Promoted,
    /// The challenger was kept in the registry; the champion stayed.
    NotPromoted,
    /// `retain model rollback` made an earlier (or any named) version the champion.
    RolledBack,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Promoted => "promoted",
            Action::NotPromoted => "not promoted",
            Action::RolledBack => "rolled back",
        })
    }
}

/// One version's AUC, top-decile lift and EMPC on the month compared: what promotion weighs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    pub version: u32,
    pub auc: f64,
    pub top_decile_lift: f64,
    pub empc: f64,
}

impl Standing {
    #[must_use]
    pub fn of(version: u32, metrics: &Metrics) -> Standing {
        Standing {
            version,
            auc: metrics.auc,
            top_decile_lift: metrics.top_decile_lift,
            empc: metrics.empc,
        }
    }
}

/// One entry of the history: a training's promotion decision or a rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// The version decided on: the challenger, or the version rolled back to.
    pub version: u32,
    /// The champion after the decision.
    pub champion: u32,
    /// The champion before it; none for the first model.
    pub previous: Option<u32>,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// The out-of-time month compared on (a training's decision only).
    pub test_month: Option<String>,
    pub challenger: Option<Standing>,
    /// The champion's standing on the same rows, when it could be evaluated.
    pub incumbent: Option<Standing>,
}

/// Whether `challenger` beats `champion`: no lower on EMPC, AUC or top-decile lift, higher on
/// at least one; and why, naming the measures. The metrics are compared as reported (four
/// decimals), so a tie is a tie.
#[must_use]
pub fn beats(challenger: &Standing, champion: &Standing) -> (bool, String) {
    let measures = [
        ("EMPC", challenger.empc, champion.empc),
        ("AUC", challenger.auc, champion.auc),
        (
            "top-decile lift",
            challenger.top_decile_lift,
            champion.top_decile_lift,
        ),
    ];
    let lower: Vec<String> = measures
        .iter()
        .filter(|(_, new, old)| new < old)
        .map(|(name, new, old)| format!("{name} {new} < {old}"))
        .collect();
    if !lower.is_empty() {
        return (
            false,
            format!(
                "lower than the champion v{}: {}",
                champion.version,
                lower.join(", ")
            ),
        );
    }
    let higher: Vec<String> = measures
        .iter()
        .filter(|(_, new, old)| new > old)
        .map(|(name, new, old)| format!("{name} {new} > {old}"))
        .collect();
    if higher.is_empty() {
        return (
            false,
            format!(
                "no better than the champion v{}: EMPC, AUC and top-decile lift equal",
                champion.version
            ),
        );
    }
    (
        true,
        format!(
            "beats the champion v{}: {}, none lower",
            champion.version,
            higher.join(", ")
        ),
    )
}

/// The champion record, if the workspace has one.
pub fn champion_record(workspace: &Workspace) -> Result<Option<ChampionRecord>> {
    Ok(retain_data::read_json(&models_dir(workspace).join(FILE))?)
}

/// The champion's version: the record's, or else the newest saved; none without a model.
pub fn champion_version(workspace: &Workspace) -> Result<Option<u32>> {
    Ok(match champion_record(workspace)? {
        Some(record) => Some(record.version),
        None => saved_versions(workspace).last().copied(),
    })
}

/// The champion, loaded: what scoring uses.
pub fn load_champion(workspace: &Workspace) -> Result<Option<(ChurnModel, ModelMeta)>> {
    let Some(version) = champion_version(workspace)? else {
        return Ok(None);
    };
    load(workspace, version).map(Some).map_err(|e| match e {
        Error::Registry(_) => Error::Registry(format!(
            "the champion v{version} is missing from {}: make another version the champion \
             with `retain model rollback --to N`",
            models_dir(workspace).display()
        )),
        other => other,
    })
}

/// Decides whether the saved version `challenger` (its metrics on `test`, the rows of
/// `test_month` it was tested on) takes the champion's place; records and returns the
/// decision. The first model is promoted; so is a challenger whose champion cannot be
/// evaluated on these rows (missing, unreadable, or lacking a feature they have not).
pub fn contest(
    workspace: &Workspace,
    challenger: Standing,
    test: &Table,
    test_month: &str,
) -> Result<Decision> {
    let _lock = lock(workspace)?;
    let record = champion_record(workspace)?;
    // Without a record the newest version before the challenger has been scoring.
    let current = match &record {
        Some(r) => Some(r.version),
        None => saved_versions(workspace)
            .into_iter()
            .filter(|v| *v < challenger.version)
            .max(),
    };
    let (promoted, reason, incumbent) = match current {
        None => (true, "the first model".to_owned(), None),
        Some(version) => match evaluate_on(workspace, version, test) {
            Ok((incumbent, meta)) => {
                let (promoted, mut reason) = beats(&challenger, &incumbent);
                if fitted_on(&meta, test_month) {
                    let _ = write!(
                        reason,
                        "; the champion was fitted on {test_month}, so its metrics there are \
                         in-sample"
                    );
                }
                (promoted, reason, Some(incumbent))
            }
            Err(e) => (
                true,
                format!("the champion v{version} cannot be evaluated: {e}"),
                None,
            ),
        },
    };
    let decision = Decision {
        action: if promoted {
            Action::Promoted
        } else {
            Action::NotPromoted
        },
        version: challenger.version,
        champion: if promoted {
            challenger.version
        } else {
            current.unwrap_or(challenger.version)
        },
        previous: current,
        at: Utc::now(),
        reason,
        test_month: Some(test_month.to_owned()),
        challenger: Some(challenger),
        incumbent,
    };
    record_decision(workspace, record, current, decision.clone())?;
    Ok(decision)
}

/// Makes `to` the champion, by default the champion before the current one (the one it
/// replaced, skipping champions rolled back from); records and returns the decision.
pub fn rollback(workspace: &Workspace, to: Option<u32>) -> Result<Decision> {
    let _lock = lock(workspace)?;
    let record = champion_record(workspace)?;
    let saved = saved_versions(workspace);
    let Some(current) = record
        .as_ref()
        .map(|r| r.version)
        .or_else(|| saved.last().copied())
    else {
        return Err(Error::Registry(
            "no churn model in this workspace: run `retain train` first".into(),
        ));
    };
    // Without a record every version was the champion in its turn.
    let target = match to {
        Some(version) => version,
        None => before(
            &record
                .as_ref()
                .map_or_else(|| saved.clone(), |r| lineage(&r.history)),
            current,
        )?,
    };
    if !saved.contains(&target) {
        let listed: Vec<String> = saved.iter().map(|v| format!("v{v}")).collect();
        return Err(Error::Registry(format!(
            "there is no model v{target} to roll back to; the registry holds {}",
            if listed.is_empty() {
                "none".to_owned()
            } else {
                listed.join(", ")
            }
        )));
    }
    if target == current {
        return Err(Error::Registry(format!(
            "v{target} is the champion already"
        )));
    }
    // Only a version that loads whole may score.
    load(workspace, target)?;
    let decision = Decision {
        action: Action::RolledBack,
        version: target,
        champion: target,
        previous: Some(current),
        at: Utc::now(),
        reason: format!("rolled back from v{current}"),
        test_month: None,
        challenger: None,
        incumbent: None,
    };
    record_decision(workspace, record, Some(current), decision.clone())?;
    Ok(decision)
}

/// The champion before `current` in `lineage`.
fn before(lineage: &[u32], current: u32) -> Result<u32> {
    let at = lineage.iter().rposition(|v| *v == current).unwrap_or(0);
    at.checked_sub(1)
        .and_then(|k| lineage.get(k).copied())
        .ok_or_else(|| {
            Error::Registry(format!(
                "v{current} has no earlier champion to roll back to: name a version with --to"
            ))
        })
}

/// The registry's lock, held while a decision reads and writes the record.
fn lock(workspace: &Workspace) -> Result<retain_data::FileLock> {
    let dir = models_dir(workspace);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(retain_data::lock_file(&dir.join(LOCK))?)
}

/// Appends `decision` to the record (begun, in a workspace without one, with the champion it
/// had: `current`) and writes it whole.
fn record_decision(
    workspace: &Workspace,
    record: Option<ChampionRecord>,
    current: Option<u32>,
    decision: Decision,
) -> Result<()> {
    let mut record = record.unwrap_or_else(|| ChampionRecord {
        version: decision.champion,
        history: current
            .map(|version| Decision {
                action: Action::Promoted,
                version,
                champion: version,
                previous: None,
                at: decision.at,
                reason: "the newest version when the workspace began recording its champion"
                    .to_owned(),
                test_month: None,
                challenger: None,
                incumbent: None,
            })
            .into_iter()
            .collect(),
    });
    record.version = decision.champion;
    record.history.push(decision);
    Ok(retain_data::write_json(
        &models_dir(workspace).join(FILE),
        &record,
    )?)
}

/// The champions in force, oldest first, as rollbacks unwind them: a promotion stacks its
/// version; a rollback to a version in the stack drops those above it, to another stacks it.
fn lineage(history: &[Decision]) -> Vec<u32> {
    let mut stack: Vec<u32> = Vec::new();
    for decision in history {
        match decision.action {
            Action::Promoted => stack.push(decision.version),
            Action::NotPromoted => {}
            Action::RolledBack => match stack.iter().rposition(|v| *v == decision.version) {
                Some(k) => stack.truncate(k + 1),
                None => stack.push(decision.version),
            },
        }
    }
    stack
}

/// Version `version`'s standing on `test`, its features taken by name.
fn evaluate_on(workspace: &Workspace, version: u32, test: &Table) -> Result<(Standing, ModelMeta)> {
    let (model, meta) = load(workspace, version)?;
    let x = test.columns(&model.features)?;
    let p = model.probabilities(&x)?;
    Ok((Standing::of(version, &evaluate(&p, &test.label)), meta))
}

/// Whether `month` was among the snapshots a model was fitted or validated on (all but its
/// last, its own test month).
fn fitted_on(meta: &ModelMeta, month: &str) -> bool {
    meta.snapshots
        .split_last()
        .is_some_and(|(_, fitted)| fitted.iter().any(|s| s == month))
}

/// Every saved version with its test metrics, and the champion.
pub fn list(workspace: &Workspace) -> Result<Listing> {
    let record = champion_record(workspace)?;
    let champion = match &record {
        Some(r) => Some(r.version),
        None => saved_versions(workspace).last().copied(),
    };
    let history = record.map(|r| r.history).unwrap_or_default();
    let versions = saved_versions(workspace)
        .into_iter()
        .map(|version| {
            let decision = history
                .iter()
                .rfind(|d| d.version == version && d.action != Action::RolledBack)
                .map(|d| d.action);
            let entry = ListedVersion {
                version,
                champion: Some(version) == champion,
                decision,
                ..ListedVersion::default()
            };
            match read_meta(&models_dir(workspace).join(format!("v{version}"))) {
                Ok(meta) => ListedVersion::with_meta(entry, &meta),
                Err(e) => ListedVersion {
                    error: Some(e.to_string()),
                    ..entry
                },
            }
        })
        .collect();
    Ok(Listing {
        champion,
        versions,
        history,
    })
}

/// `retain model list`: the registry.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub champion: Option<u32>,
    /// Oldest first.
    pub versions: Vec<ListedVersion>,
    pub history: Vec<Decision>,
}

/// One saved version and how it tested.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListedVersion {
    pub version: u32,
    pub champion: bool,
    /// How its training's contest ended; none for versions saved before champions.
    pub decision: Option<Action>,
    pub trained_at: Option<DateTime<Utc>>,
    pub test_month: Option<String>,
    pub horizon_months: Option<u32>,
    pub rows_test: Option<u64>,
    pub auc: Option<f64>,
    pub top_decile_lift: Option<f64>,
    pub empc: Option<f64>,
    /// Why its `meta.json` could not be read.
    pub error: Option<String>,
}

impl ListedVersion {
    fn with_meta(entry: ListedVersion, meta: &ModelMeta) -> ListedVersion {
        let test = &meta.metrics["test"];
        ListedVersion {
            trained_at: meta.trained_at,
            test_month: meta.snapshots.last().cloned(),
            horizon_months: Some(meta.horizon_months),
            rows_test: test["rows"].as_u64(),
            auc: test["auc"].as_f64(),
            top_decile_lift: test["top_decile_lift"].as_f64(),
            empc: test["empc"].as_f64(),
            ..entry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(version: u32, auc: f64, top_decile_lift: f64, empc: f64) -> Standing {
        Standing {
            version,
            auc,
            top_decile_lift,
            empc,
        }
    }

    #[test]
    fn a_challenger_must_be_no_lower_anywhere_and_higher_somewhere() {
        let champion = standing(1, 0.90, 5.0, 0.30);
        let cases = [
            (standing(2, 0.91, 5.0, 0.30), true, "AUC 0.91 > 0.9"),
            (standing(2, 0.91, 5.2, 0.31), true, "EMPC 0.31 > 0.3"),
            (standing(2, 0.90, 5.0, 0.30), false, "equal"),
            // Better ranking bought with profit is no promotion, nor the other way round.
            (standing(2, 0.95, 6.0, 0.29), false, "EMPC 0.29 < 0.3"),
            (standing(2, 0.89, 5.0, 0.40), false, "AUC 0.89 < 0.9"),
            (
                standing(2, 0.92, 4.9, 0.40),
                false,
                "top-decile lift 4.9 < 5",
            ),
        ];
        for (challenger, promoted, said) in cases {
            let (decided, reason) = beats(&challenger, &champion);
            assert_eq!(decided, promoted, "{challenger:?}: {reason}");
            assert!(reason.contains(said), "{reason}");
            assert!(reason.contains("champion v1"), "{reason}");
        }
    }

    fn decision(action: Action, version: u32) -> Decision {
        Decision {
            action,
            version,
            champion: version,
            previous: None,
            at: DateTime::default(),
            reason: String::new(),
            test_month: None,
            challenger: None,
            incumbent: None,
        }
    }

    #[test]
    fn rollbacks_unwind_the_champions_in_force() {
        use Action::{NotPromoted, Promoted, RolledBack};
        let mut history = vec![
            decision(Promoted, 1),
            decision(Promoted, 2),
            decision(NotPromoted, 3),
            decision(Promoted, 4),
        ];
        assert_eq!(lineage(&history), [1, 2, 4]);
        history.push(decision(RolledBack, 2));
        assert_eq!(lineage(&history), [1, 2]);
        // A rollback to a version never champion stacks it, so the next undoes it.
        history.push(decision(RolledBack, 3));
        assert_eq!(lineage(&history), [1, 2, 3]);
        history.push(decision(RolledBack, 1));
        assert_eq!(lineage(&history), [1]);
    }
}
