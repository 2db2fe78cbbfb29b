//! The one SQL query that scores every subscriber as of a date: the features every rule reads
//! (from `retain-features`), every rule as a column, score, level and cohort.

use std::fmt::Write as _;

use chrono::NaiveDate;
use retain_features::conditions::feature_ctes;

use crate::rules::RuleSet;
use crate::run::COHORTS;

/// The scoring query for `as_of`, as CTE definitions plus a final SELECT, so callers can wrap
/// it (`WITH {ctes}, scored AS ({select}) …`).
pub(crate) struct ScoringQuery {
    pub ctes: String,
    pub select: String,
}

/// Builds the scoring query. Every subscriber who had joined before `as_of` and had not been
/// cancelled or ported out by then is scored.
pub(crate) fn scoring_query(rules: &RuleSet, as_of: NaiveDate) -> ScoringQuery {
    let mut ctes = feature_ctes(&rules.compiler, as_of);
    let hits: Vec<String> = rules
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("COALESCE({}, false) AS r{i}", r.sql))
        .collect();
    let _ = write!(
        ctes,
        ", r AS (SELECT f.*, {}, COALESCE({}, false) AS risk1, COALESCE({}, false) AS risk2, \
         CASE WHEN tenure < 6 THEN 'lt6m' WHEN tenure <= 12 THEN '6to12m' ELSE 'gt12m' END AS cohort \
         FROM f)",
        hits.join(", "),
        rules.risk1_sql,
        rules.risk2_sql
    );
    // A cohort's own points and threshold apply to it alone.
    let by_cohort = |value: &dyn Fn(&str) -> i64, base: i64| {
        let mut cases = String::new();
        for c in COHORTS.iter().filter(|c| value(c) != base) {
            let _ = write!(cases, " WHEN '{c}' THEN {}", value(c));
        }
        if cases.is_empty() {
            base.to_string()
        } else {
            format!("(CASE cohort{cases} ELSE {base} END)")
        }
    };
    let score: Vec<String> = rules
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let points = by_cohort(&|c| rules.points_in(i, c), r.points);
            format!("CASE WHEN r{i} THEN {points} ELSE 0 END")
        })
        .collect();
    let special: Vec<String> = rules
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.special)
        .map(|(i, _)| format!("r{i}"))
        .collect();
    let _ = write!(
        ctes,
        ", sc AS (SELECT r.*, CAST({} AS BIGINT) AS score, {} AS special FROM r)",
        score.join(" + "),
        if special.is_empty() {
            "false".to_owned()
        } else {
            special.join(" OR ")
        }
    );
    let threshold = by_cohort(&|c| rules.threshold_in(c), rules.scorecard.threshold);
    let select = format!(
        "SELECT sc.*, score >= {threshold} AS potential,
                CASE WHEN score < {threshold} THEN NULL
                     WHEN risk1 AND special THEN 'red'
                     WHEN risk2 AND special THEN 'yellow'
                     WHEN risk1 THEN 'blue' END AS level
         FROM sc"
    );
    ScoringQuery { ctes, select }
}
