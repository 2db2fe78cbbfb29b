//! Rules as data: the rules file, its validation, and compilation of every condition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use retain_features::expr::{Compiler, ExprError, line_column, parse, toml_offset};

/// The rules shipped with retain.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// Rule categories.
pub const CATEGORIES: &[&str] = &[
    "call_pattern",
    "arrears",
    "complaints",
    "service_contacts",
    "value_added_services",
    "behaviour",
    "network_experience",
    "social_circle",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnType {
    Value,
    Quantity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    scorecard: Scorecard,
    levels: LevelsFile,
    #[serde(rename = "rule")]
    rules: Vec<RuleFile>,
    #[serde(default)]
    cohorts: BTreeMap<String, CohortRules>,
}

/// What differs for one tenure cohort (`lt6m`, `6to12m`, `gt12m`): its own threshold and the
/// points of rules re-tuned for it (`retain warn --propose`). Applies to that cohort only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub points: BTreeMap<String, i64>,
}

/// The largest number of points a rule may carry, and the largest threshold.
pub const MAX_POINTS: i64 = 100;

/// Scorecard settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scorecard {
    /// A total score at or above this marks a potential churner.
    pub threshold: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelsFile {
    risk1: toml::Spanned<String>,
    risk2: toml::Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    name_zh: String,
    name_en: String,
    category: String,
    churn_type: ChurnType,
    points: i64,
    #[serde(default)]
    special: bool,
    when: toml::Spanned<String>,
}

/// A compiled rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub category: String,
    pub churn_type: ChurnType,
    pub points: i64,
    pub special: bool,
    pub when: String,
    /// The condition as SQL over the feature aliases.
    #[serde(skip)]
    pub sql: String,
    /// Feature aliases the condition reads: the values reported when it fires.
    #[serde(skip)]
    pub inputs: Vec<String>,
}

/// A compiled rule set: rules, level conditions and the features they need.
#[derive(Debug)]
pub struct RuleSet {
    pub source: PathBuf,
    pub scorecard: Scorecard,
    pub rules: Vec<Rule>,
    pub risk1_sql: String,
    pub risk2_sql: String,
    pub compiler: Compiler,
    /// Per tenure cohort, what differs from the scorecard.
    pub cohorts: BTreeMap<String, CohortRules>,
}

impl RuleSet {
    /// Reads and compiles a rules file.
    pub fn load(path: &Path) -> Result<RuleSet> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            context: format!("reading rules file {}", path.display()),
            source: e,
        })?;
        Self::parse(&text, path)
    }

    /// The default rules.
    #[must_use]
    pub fn default_rules() -> RuleSet {
        Self::parse(DEFAULT_RULES, Path::new("<default rules>"))
            .expect("the default rules compile (tested)")
    }

    /// Compiles rules from text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<RuleSet> {
        let bad = |rule: &str, offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            Error::BadRule {
                path: path.to_path_buf(),
                rule: rule.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            bad("(file)", offset, e.message().to_owned())
        })?;
        let mut compiler = Compiler::default();
        let mut condition =
            |rule: &str, spanned: &toml::Spanned<String>| -> Result<(String, Vec<String>)> {
                // The span covers the quoted string, escapes and all.
                let start = spanned.span().start;
                parse(spanned.get_ref())
                    .and_then(|expr| compiler.condition(&expr))
                    .map_err(|ExprError { offset, message }| {
                        bad(rule, toml_offset(text, start, offset), message)
                    })
            };
        let mut rules = Vec::with_capacity(file.rules.len());
        let mut seen = std::collections::HashSet::new();
        for r in &file.rules {
            let at = r.when.span().start;
            if !seen.insert(r.id.clone()) {
                return Err(bad(&r.id, at, format!("rule id {} is used twice", r.id)));
            }
            if !CATEGORIES.contains(&r.category.as_str()) {
                return Err(bad(
                    &r.id,
                    at,
                    format!(
                        "unknown category {:?}; categories: {}",
                        r.category,
                        CATEGORIES.join(", ")
                    ),
                ));
            }
            let (sql, inputs) = condition(&r.id, &r.when)?;
            rules.push(Rule {
                id: r.id.clone(),
                name_zh: r.name_zh.clone(),
                name_en: r.name_en.clone(),
                category: r.category.clone(),
                churn_type: r.churn_type,
                points: r.points,
                special: r.special,
                when: r.when.get_ref().clone(),
                sql,
                inputs,
            });
        }
        if rules.is_empty() {
            return Err(bad("(file)", 0, "the file has no [[rule]]".to_owned()));
        }
        for (cohort, c) in &file.cohorts {
            let here = text.find(&format!("[cohorts.{cohort}")).unwrap_or(0);
            if !crate::run::COHORTS.contains(&cohort.as_str()) {
                return Err(bad(
                    "(cohorts)",
                    here,
                    format!(
                        "unknown cohort {cohort:?}; cohorts: {}",
                        crate::run::COHORTS.join(", ")
                    ),
                ));
            }
            if let Some(t) = c.threshold
                && !(1..=MAX_POINTS).contains(&t)
            {
                return Err(bad(
                    "(cohorts)",
                    here,
                    format!("cohorts.{cohort}.threshold must be 1–{MAX_POINTS}, not {t}"),
                ));
            }
            for (id, p) in &c.points {
                if !rules.iter().any(|r| &r.id == id) {
                    return Err(bad(
                        "(cohorts)",
                        here,
                        format!("cohorts.{cohort}.points names no rule {id}"),
                    ));
                }
                if p.abs() > MAX_POINTS {
                    return Err(bad(
                        "(cohorts)",
                        here,
                        format!("cohorts.{cohort}.points.{id} must be within ±{MAX_POINTS}"),
                    ));
                }
            }
        }
        let (risk1_sql, _) = condition("levels.risk1", &file.levels.risk1)?;
        let (risk2_sql, _) = condition("levels.risk2", &file.levels.risk2)?;
        Ok(RuleSet {
            source: path.to_path_buf(),
            scorecard: file.scorecard,
            rules,
            risk1_sql,
            risk2_sql,
            compiler,
            cohorts: file.cohorts,
        })
    }

    /// The points rule `i` adds in `cohort`.
    #[must_use]
    pub fn points_in(&self, i: usize, cohort: &str) -> i64 {
        let rule = &self.rules[i];
        self.cohorts
            .get(cohort)
            .and_then(|c| c.points.get(&rule.id))
            .copied()
            .unwrap_or(rule.points)
    }

    /// The score that makes a potential churner in `cohort`.
    #[must_use]
    pub fn threshold_in(&self, cohort: &str) -> i64 {
        self.cohorts
            .get(cohort)
            .and_then(|c| c.threshold)
            .unwrap_or(self.scorecard.threshold)
    }

    /// The workspace's rules file when it has one (`rules.toml`), else the defaults.
    pub fn for_workspace(
        workspace: &retain_data::Workspace,
        explicit: Option<&Path>,
    ) -> Result<RuleSet> {
        if let Some(path) = explicit {
            return Self::load(path);
        }
        let path = workspace.root().join("rules.toml");
        if path.exists() {
            Self::load(&path)
        } else {
            Ok(Self::default_rules())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_compile() {
        let rules = RuleSet::default_rules();
        assert_eq!(rules.scorecard.threshold, 10);
        assert!(rules.rules.len() >= 25);
        assert_eq!(rules.rules.iter().filter(|r| r.special).count(), 5);
        for rule in &rules.rules {
            assert!(!rule.inputs.is_empty(), "{}", rule.id);
        }
    }

    #[test]
    fn a_broken_condition_names_the_rule_and_its_line_and_column() {
        let text = DEFAULT_RULES.replace(
            "when = \"count(forward_to_competitor, 3m) >= 1\"",
            "when = \"count(forward_to_competitor, 3m) >= \"",
        );
        let err = RuleSet::parse(&text, Path::new("rules.toml")).unwrap_err();
        let Error::BadRule {
            rule,
            line,
            column,
            message,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(rule, "EW011");
        let expected_line = text
            .lines()
            .position(|l| l.contains("count(forward_to_competitor, 3m) >= \""))
            .unwrap()
            + 1;
        assert_eq!(*line, expected_line);
        assert_eq!(
            *column,
            "when = \"count(forward_to_competitor, 3m) >= ".len() + 1
        );
        assert!(message.contains("ends too early"), "{message}");
        assert!(
            err.to_string()
                .starts_with(&format!("rules.toml:{expected_line}:")),
            "{err}"
        );
    }

    #[test]
    fn an_error_after_escapes_and_chinese_text_is_placed_where_it_is_in_the_file() {
        // `\t` is two bytes in the file and one in the condition: the error's offset in the
        // condition once fell inside 中 when added to the start of the string, and panicked.
        let broken = r#"when = "\t\t\t\t\t\t\t'中文' = 1""#;
        let text =
            DEFAULT_RULES.replace("when = \"count(forward_to_competitor, 3m) >= 1\"", broken);
        let err = RuleSet::parse(&text, Path::new("rules.toml")).unwrap_err();
        let Error::BadRule {
            rule,
            line,
            column,
            message,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(rule, "EW011");
        assert!(message.contains("different types"), "{message}");
        let (index, source_line) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(broken))
            .unwrap();
        assert_eq!(*line, index + 1);
        let equals = source_line.find("' = 1").unwrap() + 2;
        assert_eq!(*column, source_line[..equals].chars().count() + 1);
    }

    #[test]
    fn windows_beyond_ten_years_are_refused_when_the_rules_are_read() {
        let text = DEFAULT_RULES.replace(
            "when = \"count(forward_to_competitor, 3m) >= 1\"",
            "when = \"count(forward_to_competitor, 4000000000d) >= 1\"",
        );
        let err = RuleSet::parse(&text, Path::new("rules.toml")).unwrap_err();
        assert!(err.to_string().contains("at most 3660 days"), "{err}");
    }

    #[test]
    fn structural_errors_are_reported_with_a_position() {
        let err =
            RuleSet::parse("[scorecard]\nthreshold = \"ten\"\n", Path::new("r.toml")).unwrap_err();
        assert!(err.to_string().contains("r.toml:2:"), "{err}");
        let dup = DEFAULT_RULES.replace("id = \"EW002\"", "id = \"EW001\"");
        let err = RuleSet::parse(&dup, Path::new("r.toml")).unwrap_err();
        assert!(err.to_string().contains("EW001 is used twice"), "{err}");
        let cat = DEFAULT_RULES.replacen("category = \"arrears\"", "category = \"money\"", 1);
        let err = RuleSet::parse(&cat, Path::new("r.toml")).unwrap_err();
        assert!(
            err.to_string().contains("unknown category \"money\""),
            "{err}"
        );
    }
}
