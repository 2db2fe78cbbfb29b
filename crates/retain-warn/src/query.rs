//! Builds the one SQL query that scores every subscriber as of a date: per-subscriber features
//! from each source table in one grouped pass, every rule as a column, score, level and cohort.

use std::fmt::Write as _;

use chrono::{Datelike, Duration, Months, NaiveDate};

use crate::expr::{Source, Unit, Window};
use crate::rules::RuleSet;

/// The first day of the month of `date`.
pub(crate) fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("day 1 exists")
}

/// The Monday of the week of `date`.
pub(crate) fn week_start(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

fn sub_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_sub_months(Months::new(months))
        .expect("date in range")
}

/// `[lo, hi)` of a window counted back from `cut`.
fn bounds(cut: NaiveDate, window: Window) -> (NaiveDate, NaiveDate) {
    match window.unit {
        Unit::Month => (sub_months(cut, window.to), sub_months(cut, window.from - 1)),
        Unit::Week => (
            cut - Duration::days(7 * i64::from(window.to)),
            cut - Duration::days(7 * i64::from(window.from - 1)),
        ),
        Unit::Day => (
            cut - Duration::days(i64::from(window.to)),
            cut - Duration::days(i64::from(window.from - 1)),
        ),
    }
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

fn timestamp(d: NaiveDate) -> String {
    format!("TIMESTAMP '{d}T00:00:00'")
}

fn measure_sql(measure: &str) -> String {
    if measure == "calls" {
        "CAST(calls_out + calls_in AS DOUBLE)".to_owned()
    } else {
        format!("CAST({measure} AS DOUBLE)")
    }
}

/// Months between the first days of two months: `(y2 - y1) * 12 + (m2 - m1)`.
fn months_between(from: &str, to: &str) -> String {
    format!(
        "CAST((date_part('year', {to}) - date_part('year', {from})) * 12 + (date_part('month', {to}) - date_part('month', {from})) AS DOUBLE)"
    )
}

/// The scoring query for `as_of`, as CTE definitions plus a final SELECT, so callers can wrap
/// it (`WITH {ctes}, scored AS ({select}) …`).
pub(crate) struct ScoringQuery {
    pub ctes: String,
    pub select: String,
}

/// Builds the scoring query. Every subscriber who had joined before `as_of` and had not been
/// cancelled or ported out by then is scored.
pub(crate) fn scoring_query(rules: &RuleSet, as_of: NaiveDate) -> ScoringQuery {
    let month_cut = month_start(as_of);
    let week_cut = week_start(as_of);
    let s = date(as_of);
    let mut monthly = Vec::new();
    let mut weekly = Vec::new();
    let mut events = Vec::new();
    let mut columns = Vec::new();
    let (mut m_lo, mut w_lo, mut e_lo) = (month_cut, week_cut, as_of);

    for (index, source) in rules.compiler.sources.iter().enumerate() {
        let alias = format!("f{index}");
        match source {
            Source::Profile(name) => columns.push(format!("p.{name} AS {alias}")),
            Source::Usage {
                function,
                measure,
                window,
            } => {
                let (cut, list, table_alias) = if window.unit == Unit::Month {
                    (month_cut, &mut monthly, "m")
                } else {
                    (week_cut, &mut weekly, "w")
                };
                let (lo, hi) = bounds(cut, *window);
                if window.unit == Unit::Month {
                    m_lo = m_lo.min(lo);
                } else {
                    w_lo = w_lo.min(lo);
                }
                let value = measure_sql(measure);
                let agg = if *function == "at" {
                    format!("MAX(CASE WHEN period = {} THEN {value} END)", date(lo))
                } else {
                    format!(
                        "{}(CASE WHEN period >= {} AND period < {} THEN {value} END)",
                        function.to_uppercase(),
                        date(lo),
                        date(hi)
                    )
                };
                list.push(format!("{agg} AS {alias}"));
                columns.push(format!("{table_alias}.{alias} AS {alias}"));
            }
            Source::Events {
                distinct_days,
                kind,
                window,
                filters,
            } => {
                let (lo, hi) = bounds(as_of, *window);
                e_lo = e_lo.min(lo);
                let mut condition = format!(
                    "kind = '{kind}' AND ts >= {} AND ts < {}",
                    timestamp(lo),
                    timestamp(hi)
                );
                for (field, literal) in filters {
                    let _ = write!(condition, " AND {field} = {literal}");
                }
                let agg = if *distinct_days {
                    format!("COUNT(DISTINCT CASE WHEN {condition} THEN CAST(ts AS DATE) END)")
                } else {
                    format!("COUNT(CASE WHEN {condition} THEN 1 END)")
                };
                events.push(format!("{agg} AS {alias}"));
                columns.push(format!("CAST(COALESCE(e.{alias}, 0) AS DOUBLE) AS {alias}"));
            }
        }
    }

    let month = date(month_cut);
    let mut ctes = format!(
        "gone AS (
            SELECT DISTINCT subscriber_id FROM events
            WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" < {ts}
        ),
        bound AS (
            SELECT subscriber_id,
                   MIN(CASE WHEN kind = 'device_subsidy' AND start_date < {s} AND end_date >= {s} THEN end_date END) AS subsidy_end,
                   MIN(CASE WHEN kind IN ('service_contract', 'device_lease') AND start_date < {s} AND end_date >= {s} THEN end_date END) AS contract_end
            FROM contracts GROUP BY subscriber_id
        ),
        p AS (
            SELECT s.subscriber_id, s.branch_id, s.manager_id,
                   {tenure} AS tenure_months,
                   CAST(date_part('year', {s}) - date_part('year', s.birth_date) AS DOUBLE) AS age,
                   CAST(pl.tier AS DOUBLE) AS plan_tier,
                   pl.monthly_fee AS plan_fee,
                   s.customer_type = 'group_member' AS is_group_member,
                   b.subsidy_end IS NOT NULL AS has_subsidy,
                   {subsidy_left} AS subsidy_months_left,
                   {contract_left} AS contract_months_left
            FROM subscribers s
            LEFT JOIN plans pl ON pl.plan_id = s.plan_id
            LEFT JOIN bound b ON b.subscriber_id = s.subscriber_id
            LEFT JOIN gone g ON g.subscriber_id = s.subscriber_id
            WHERE s.join_date < {s} AND g.subscriber_id IS NULL
        )",
        ts = timestamp(as_of),
        tenure = months_between("s.join_date", &s),
        subsidy_left = months_between(&month, "b.subsidy_end"),
        contract_left = months_between(&month, "b.contract_end"),
    );
    let mut joins = String::new();
    if !monthly.is_empty() {
        let _ = write!(
            ctes,
            ", m AS (SELECT subscriber_id, {} FROM usage_monthly WHERE period >= {} AND period < {} GROUP BY subscriber_id)",
            monthly.join(", "),
            date(m_lo),
            date(month_cut)
        );
        joins.push_str(" LEFT JOIN m ON m.subscriber_id = p.subscriber_id");
    }
    if !weekly.is_empty() {
        let _ = write!(
            ctes,
            ", w AS (SELECT subscriber_id, {} FROM usage_weekly WHERE period >= {} AND period < {} GROUP BY subscriber_id)",
            weekly.join(", "),
            date(w_lo),
            date(week_cut)
        );
        joins.push_str(" LEFT JOIN w ON w.subscriber_id = p.subscriber_id");
    }
    if !events.is_empty() {
        let _ = write!(
            ctes,
            ", ev AS (
                SELECT e.subscriber_id, e.kind, e.\"timestamp\" AS ts, e.category, e.severity,
                       e.resolved_on_time, e.channel, e.competitor,
                       COALESCE(tp.tier < fp.tier, false) AS downgrade
                FROM events e
                LEFT JOIN plans fp ON fp.plan_id = e.from_plan
                LEFT JOIN plans tp ON tp.plan_id = e.to_plan
                WHERE e.\"timestamp\" >= {} AND e.\"timestamp\" < {}
            ),
            e AS (SELECT subscriber_id, {} FROM ev GROUP BY subscriber_id)",
            timestamp(e_lo),
            timestamp(as_of),
            events.join(", ")
        );
        joins.push_str(" LEFT JOIN e ON e.subscriber_id = p.subscriber_id");
    }
    let _ = write!(
        ctes,
        ", f AS (SELECT p.subscriber_id, p.branch_id, p.manager_id, p.tenure_months AS tenure{}{} FROM p{joins})",
        if columns.is_empty() { "" } else { ", " },
        columns.join(", ")
    );

    let hits: Vec<String> = rules
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("COALESCE({}, false) AS r{i}", r.sql))
        .collect();
    let _ = write!(
        ctes,
        ", r AS (SELECT f.*, {}, COALESCE({}, false) AS risk1, COALESCE({}, false) AS risk2 FROM f)",
        hits.join(", "),
        rules.risk1_sql,
        rules.risk2_sql
    );
    let score: Vec<String> = rules
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("CASE WHEN r{i} THEN {} ELSE 0 END", r.points))
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
    let select = format!(
        "SELECT sc.*,
                CASE WHEN score < {threshold} THEN NULL
                     WHEN risk1 AND special THEN 'red'
                     WHEN risk2 AND special THEN 'yellow'
                     WHEN risk1 THEN 'blue' END AS level,
                CASE WHEN tenure < 6 THEN 'lt6m' WHEN tenure <= 12 THEN '6to12m' ELSE 'gt12m' END AS cohort
         FROM sc",
        threshold = rules.scorecard.threshold
    );
    ScoringQuery { ctes, select }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_back_from_complete_periods() {
        let as_of = NaiveDate::from_ymd_opt(2026, 10, 28).unwrap();
        let cut = month_start(as_of);
        let three = Window {
            from: 1,
            to: 3,
            unit: Unit::Month,
        };
        assert_eq!(
            bounds(cut, three),
            (
                NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
                NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
            )
        );
        let week = week_start(as_of);
        assert_eq!(week, NaiveDate::from_ymd_opt(2026, 10, 26).unwrap());
        let earlier = Window {
            from: 2,
            to: 5,
            unit: Unit::Week,
        };
        assert_eq!(
            bounds(week, earlier),
            (
                NaiveDate::from_ymd_opt(2026, 9, 21).unwrap(),
                NaiveDate::from_ymd_opt(2026, 10, 19).unwrap()
            )
        );
    }
}
