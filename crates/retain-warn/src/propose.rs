//! Rules re-tuned per tenure cohort: from the backtest, points and a threshold for each cohort,
//! proposed as a diff an analyst accepts or rejects.
//!
//! New subscribers leave for other reasons than old ones, so a rule's evidence differs by
//! cohort. Points: a rule whose lift in a cohort differs from its lift overall gets its points
//! scaled by the ratio there (none where its lift is below 1: it does not foretell churn in
//! that cohort); rules with too few hits in a cohort keep their points. Threshold: with those
//! points, each cohort's threshold is the lowest score whose potential churners are at least as
//! precise as the current scorecard's overall, so a warning means the same everywhere. The
//! proposal is then backtested, and the diff shows each cohort before and after.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use datafusion::execution::context::SessionContext;
use serde::{Deserialize, Serialize};

use crate::backtest::{BacktestOptions, BacktestReport, Metrics, backtest};
use crate::error::{Error, Result};
use crate::rules::{CohortRules, MAX_POINTS, RuleSet};
use crate::run::COHORTS;

/// Fewer hits of a rule in a cohort than this say too little to re-weigh it there.
pub const MIN_HITS: u64 = 30;

/// The line above the cohort sections a proposal writes into a rules file; everything below it
/// is the proposal's, replaced by the next one.
pub const MARKER: &str =
    "# --- Per tenure cohort: re-tuned by `retain warn --propose` (docs/rules.md) ---";

/// One rule's points in one cohort, before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointChange {
    pub rule: String,
    pub before: i64,
    pub after: i64,
    /// The rule's lift in the cohort and overall, which the change follows.
    pub lift: f64,
    pub lift_overall: f64,
    pub hits: u64,
}

/// One cohort's part of a proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CohortChange {
    pub cohort: String,
    pub threshold_before: i64,
    pub threshold_after: i64,
    pub points: Vec<PointChange>,
    /// Potential churners of the cohort in the backtest, with the rules as they are and as
    /// proposed.
    pub before: Metrics,
    pub after: Metrics,
}

/// A proposal: the cohort sections, what they change, and the backtests behind them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// SHA-256 of the rules text it was made from: accepting it over other rules is refused.
    pub base_sha256: String,
    /// The precision every cohort's threshold was set to reach.
    pub target_precision: f64,
    pub cohorts: Vec<CohortChange>,
    /// Potential churners overall, before and after.
    pub before: Metrics,
    pub after: Metrics,
    pub snapshots: Vec<String>,
}

/// Proposes per-cohort rules for `rules` (whose text is `text`); returns the proposal and the
/// rules text with it. Runs the backtest three times: as the rules are, with the re-weighed
/// points, and as proposed.
pub async fn propose(
    ctx: &SessionContext,
    rules: &RuleSet,
    text: &str,
    options: &BacktestOptions,
) -> Result<(Proposal, String)> {
    let base = backtest(ctx, rules, options).await?;
    if base.overall.positives == 0 {
        return Err(Error::BadRequest(
            "the backtest found no churners to tune the rules on".into(),
        ));
    }
    let mut cohorts = reweigh(rules, &base);
    let weighed = RuleSet::parse(&with_cohorts(text, &cohorts)?, &rules.source)?;
    let middle = backtest(ctx, &weighed, options).await?;
    let target = base.overall.potential_churners.precision;
    for c in COHORTS {
        let slice = &middle.cohorts[c];
        let threshold = threshold_for(&slice.scores, target, rules.scorecard.threshold);
        let entry = cohorts.entry(c.to_owned()).or_default();
        entry.threshold = (threshold != rules.scorecard.threshold).then_some(threshold);
    }
    cohorts.retain(|_, c| c.threshold.is_some() || !c.points.is_empty());
    let proposed_text = with_cohorts(text, &cohorts)?;
    let proposed = RuleSet::parse(&proposed_text, &rules.source)?;
    let after = backtest(ctx, &proposed, options).await?;
    let changes = COHORTS
        .iter()
        .map(|c| CohortChange {
            cohort: (*c).to_owned(),
            threshold_before: rules.threshold_in(c),
            threshold_after: proposed.threshold_in(c),
            points: rules
                .rules
                .iter()
                .enumerate()
                .filter(|(i, _)| rules.points_in(*i, c) != proposed.points_in(*i, c))
                .map(|(i, r)| {
                    let m = &base.cohorts[*c].rules[i].metrics;
                    PointChange {
                        rule: r.id.clone(),
                        before: rules.points_in(i, c),
                        after: proposed.points_in(i, c),
                        lift: m.lift,
                        lift_overall: base.overall.rules[i].metrics.lift,
                        hits: m.hits,
                    }
                })
                .collect(),
            before: base.cohorts[*c].potential_churners,
            after: after.cohorts[*c].potential_churners,
        })
        .collect();
    Ok((
        Proposal {
            base_sha256: sha256(text),
            target_precision: target,
            cohorts: changes,
            before: base.overall.potential_churners,
            after: after.overall.potential_churners,
            snapshots: base.snapshots,
        },
        proposed_text,
    ))
}

/// Points per cohort from each rule's lift there against its lift overall.
fn reweigh(rules: &RuleSet, report: &BacktestReport) -> BTreeMap<String, CohortRules> {
    let mut out = BTreeMap::new();
    for c in COHORTS {
        let mut points = BTreeMap::new();
        for (i, rule) in rules.rules.iter().enumerate() {
            // Points that protect (negative) and special conditions (none) are not scores of
            // evidence: they stay.
            if rule.points <= 0 {
                continue;
            }
            let here = &report.cohorts[c].rules[i].metrics;
            let overall = report.overall.rules[i].metrics.lift;
            if here.hits < MIN_HITS || overall <= 0.0 {
                continue;
            }
            let scaled = if here.lift < 1.0 {
                0
            } else {
                ((rule.points as f64 * here.lift / overall).round() as i64)
                    .clamp(1, (2 * rule.points).min(MAX_POINTS))
            };
            if scaled != rule.points {
                points.insert(rule.id.clone(), scaled);
            }
        }
        out.insert(
            c.to_owned(),
            CohortRules {
                threshold: None,
                points,
            },
        );
    }
    out
}

/// The lowest threshold whose potential churners reach `target` precision, from a cohort's
/// scores (score, population, churners); `fallback` when none does or there are none.
fn threshold_for(scores: &[crate::backtest::ScoreCount], target: f64, fallback: i64) -> i64 {
    let mut best = None;
    // From the top score down, accumulating those at or above each candidate.
    let mut sorted: Vec<_> = scores.iter().filter(|s| s.score > 0).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.score));
    let (mut n, mut pos) = (0u64, 0u64);
    for s in sorted {
        n += s.population;
        pos += s.positives;
        if n > 0 && pos as f64 / n as f64 >= target && s.score <= MAX_POINTS {
            best = Some(s.score);
        }
    }
    best.unwrap_or(fallback)
}

/// `text` with its cohort sections replaced by `cohorts`. Cohort sections written anywhere but
/// below [`MARKER`] are not the proposal's to replace: that is refused.
pub fn with_cohorts(text: &str, cohorts: &BTreeMap<String, CohortRules>) -> Result<String> {
    let head = text.find(MARKER).map_or(text, |at| &text[..at]);
    if head.lines().any(|l| l.trim_start().starts_with("[cohorts")) {
        return Err(Error::BadRequest(
            "the rules file has [cohorts] sections of its own: move them below the proposal's marker line, or remove them, before proposing".into(),
        ));
    }
    let mut out = head.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(MARKER);
    out.push('\n');
    for (name, c) in cohorts {
        if c.threshold.is_none() && c.points.is_empty() {
            continue;
        }
        let _ = write!(out, "\n[cohorts.{name}]\n");
        if let Some(t) = c.threshold {
            let _ = writeln!(out, "threshold = {t}");
        }
        if !c.points.is_empty() {
            let _ = write!(out, "\n[cohorts.{name}.points]\n");
            for (id, p) in &c.points {
                let _ = writeln!(out, "{id} = {p}");
            }
        }
    }
    Ok(out)
}

/// SHA-256 of a rules text, hex.
#[must_use]
pub(crate) fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Proposes per-cohort rules for the workspace's rules in force and keeps the proposal beside
/// them ([`proposal_files`]) until it is accepted or rejected.
pub async fn propose_for_workspace(
    ctx: &SessionContext,
    workspace: &retain_data::Workspace,
    options: &BacktestOptions,
) -> Result<Proposal> {
    let text = current_text(workspace)?;
    let rules = RuleSet::parse(&text, Path::new("rules.toml"))?;
    let (proposal, proposed) = propose(ctx, &rules, &text, options).await?;
    let (text_file, diff_file) = proposal_files(workspace);
    retain_data::write_atomically(&text_file, proposed.as_bytes())?;
    retain_data::write_json(&diff_file, &proposal)?;
    Ok(proposal)
}

/// Where a workspace keeps a pending proposal: the rules text and its diff.
#[must_use]
pub fn proposal_files(
    workspace: &retain_data::Workspace,
) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        workspace.root().join("rules-proposal.toml"),
        retain_features::outputs::reports_dir(workspace).join("rules-proposal.json"),
    )
}

/// The rules text a workspace's warnings use now: its `rules.toml`, else the defaults.
pub fn current_text(workspace: &retain_data::Workspace) -> Result<String> {
    let path = workspace.root().join("rules.toml");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(crate::DEFAULT_RULES.to_owned()),
        Err(e) => Err(Error::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// Accepts the pending proposal: checked again, written as the workspace's `rules.toml` (the
/// previous rules kept under `rules-history/`), and the proposal removed. Refused when the
/// rules changed since it was made.
pub fn accept(workspace: &retain_data::Workspace) -> Result<Proposal> {
    let (text_file, diff_file) = proposal_files(workspace);
    let proposal: Proposal = retain_data::read_json(&diff_file)?
        .ok_or_else(|| Error::Conflict("there is no proposal: run retain warn --propose".into()))?;
    let text = std::fs::read_to_string(&text_file).map_err(|e| Error::Io {
        context: format!("reading {}", text_file.display()),
        source: e,
    })?;
    let current = current_text(workspace)?;
    if sha256(&current) != proposal.base_sha256 {
        return Err(Error::Conflict(
            "the rules changed since this proposal was made: propose again".into(),
        ));
    }
    RuleSet::parse(&text, Path::new("rules-proposal.toml"))?;
    let rules = workspace.root().join("rules.toml");
    if rules.exists() {
        let history = workspace.root().join("rules-history");
        std::fs::create_dir_all(&history).map_err(|e| Error::Io {
            context: format!("creating {}", history.display()),
            source: e,
        })?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        retain_data::write_atomically(
            &history.join(format!("rules-{stamp}.toml")),
            current.as_bytes(),
        )?;
    }
    retain_data::write_atomically(&rules, text.as_bytes())?;
    reject(workspace)?;
    Ok(proposal)
}

/// Discards the pending proposal, if any; whether there was one.
pub fn reject(workspace: &retain_data::Workspace) -> Result<bool> {
    let (text_file, diff_file) = proposal_files(workspace);
    let mut had = false;
    for f in [&diff_file, &text_file] {
        match std::fs::remove_file(f) {
            Ok(()) => had = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    context: format!("removing {}", f.display()),
                    source: e,
                });
            }
        }
    }
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::ScoreCount;

    #[test]
    fn the_threshold_is_the_lowest_score_precise_enough() {
        let s = |score, population, positives| ScoreCount {
            score,
            population,
            positives,
        };
        // At ≥ 12: 10 of 20 churn (0.5); at ≥ 10: 14 of 60 (0.23); at ≥ 8: 16 of 160.
        let scores = [s(12, 20, 10), s(10, 40, 4), s(8, 100, 2), s(0, 1000, 5)];
        assert_eq!(threshold_for(&scores, 0.2, 10), 10);
        assert_eq!(threshold_for(&scores, 0.4, 10), 12);
        assert_eq!(threshold_for(&scores, 0.05, 10), 8);
        assert_eq!(
            threshold_for(&scores, 0.9, 10),
            10,
            "none reach it: unchanged"
        );
    }

    #[test]
    fn cohort_sections_are_replaced_below_the_marker_and_refused_above_it() {
        let mut cohorts = BTreeMap::new();
        cohorts.insert(
            "lt6m".to_owned(),
            CohortRules {
                threshold: Some(8),
                points: [("EW001".to_owned(), 5)].into(),
            },
        );
        let once = with_cohorts(crate::DEFAULT_RULES, &cohorts).unwrap();
        let rules = RuleSet::parse(&once, Path::new("r.toml")).unwrap();
        assert_eq!(rules.threshold_in("lt6m"), 8);
        assert_eq!(rules.threshold_in("gt12m"), 10);
        assert_eq!(rules.points_in(0, "lt6m"), 5);
        assert_eq!(rules.points_in(0, "gt12m"), rules.rules[0].points);
        // Proposing again replaces the block rather than adding another.
        let twice = with_cohorts(&once, &BTreeMap::new()).unwrap();
        assert!(
            RuleSet::parse(&twice, Path::new("r.toml"))
                .unwrap()
                .cohorts
                .is_empty()
        );
        assert_eq!(twice.matches(MARKER).count(), 1);
        let own = format!("{}\n[cohorts.lt6m]\nthreshold = 9\n", crate::DEFAULT_RULES);
        assert!(with_cohorts(&own, &cohorts).is_err());
    }

    #[test]
    fn cohort_sections_are_checked() {
        for (extra, expect) in [
            ("[cohorts.babies]\nthreshold = 3\n", "unknown cohort"),
            ("[cohorts.lt6m]\nthreshold = 0\n", "threshold must be"),
            ("[cohorts.lt6m.points]\nEW999 = 3\n", "no rule EW999"),
            ("[cohorts.lt6m.points]\nEW001 = 300\n", "within ±100"),
            ("[cohorts.lt6m]\nlimit = 3\n", "unknown field"),
        ] {
            let text = format!("{}\n{extra}", crate::DEFAULT_RULES);
            let e = RuleSet::parse(&text, Path::new("r.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(expect) && e.starts_with("r.toml:"),
                "{extra}: {e}"
            );
        }
    }
}
