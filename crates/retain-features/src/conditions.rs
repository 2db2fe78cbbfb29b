//! Compiles the sources of conditions into per-subscriber feature columns as of a date: one
//! grouped pass over each source table, joined on the subscriber.

use std::fmt::Write as _;

use std::path::Path;

use chrono::{Datelike, Duration, Months, NaiveDate};
use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use retain_data::Workspace;

use crate::error::{Error, Result};
use crate::expr::{Compiler, NETWORK_MEASURES, SOCIAL, Source, Unit, Window};

/// The first day of the month of `date`.
#[must_use]
pub fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("day 1 exists")
}

/// The Monday of the week of `date`.
#[must_use]
pub fn week_start(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// The earliest as-of date accepted from a request: a window of ten years before it still
/// falls in the calendar the engine reads.
pub const FIRST_AS_OF: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a date");
/// The latest as-of date accepted from a request.
pub const LAST_AS_OF: NaiveDate = NaiveDate::from_ymd_opt(2100, 12, 31).expect("a date");

/// Checks an as-of date given in a request: `Err` says why it is refused.
pub fn check_as_of(date: NaiveDate) -> std::result::Result<NaiveDate, String> {
    if (FIRST_AS_OF..=LAST_AS_OF).contains(&date) {
        Ok(date)
    } else {
        Err(format!(
            "as_of {date} is outside the accepted range {FIRST_AS_OF} to {LAST_AS_OF}"
        ))
    }
}

/// `months` before `date`; the earliest date when that is before the calendar (the
/// condition language bounds windows, so only an as-of date far outside
/// [`FIRST_AS_OF`]..=[`LAST_AS_OF`] gets there, and its query then finds no data).
fn sub_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_sub_months(Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

fn sub_days(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_sub_signed(Duration::days(days))
        .unwrap_or(NaiveDate::MIN)
}

/// `[lo, hi)` of a window counted back from `cut`.
fn bounds(cut: NaiveDate, window: Window) -> (NaiveDate, NaiveDate) {
    match window.unit {
        Unit::Month => (sub_months(cut, window.to), sub_months(cut, window.from - 1)),
        Unit::Week => (
            sub_days(cut, 7 * i64::from(window.to)),
            sub_days(cut, 7 * i64::from(window.from - 1)),
        ),
        Unit::Day => (
            sub_days(cut, i64::from(window.to)),
            sub_days(cut, i64::from(window.from - 1)),
        ),
    }
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

fn timestamp(d: NaiveDate) -> String {
    format!("TIMESTAMP '{d}T00:00:00'")
}

fn measure_sql(measure: &str, unit: Unit) -> String {
    match (measure, unit) {
        ("calls", _) => "CAST(calls_out + calls_in AS DOUBLE)".to_owned(),
        // Active days over the period's days: July's 31 and February's 28 are the same share
        // of an active subscriber's month, so a trend over months of different lengths is flat.
        ("active_share", Unit::Month) => "CAST(active_days AS DOUBLE) / CAST(date_part('day', \
             period + INTERVAL '1 month' - INTERVAL '1 day') AS DOUBLE)"
            .to_owned(),
        ("active_share", _) => "CAST(active_days AS DOUBLE) / 7.0".to_owned(),
        _ => format!("CAST({measure} AS DOUBLE)"),
    }
}

/// Months between the first days of two months: `(y2 - y1) * 12 + (m2 - m1)`.
fn months_between(from: &str, to: &str) -> String {
    format!(
        "CAST((date_part('year', {to}) - date_part('year', {from})) * 12 + (date_part('month', {to}) - date_part('month', {from})) AS DOUBLE)"
    )
}

/// The CTE definitions (without `WITH`) that end in `f`: one row per subscriber who had joined
/// before `as_of` and had not been cancelled or ported out by then, with `subscriber_id`,
/// `branch_id`, `manager_id`, `tenure` and one column `f<i>` per source of the compiler.
///
/// Segment and warning sources read the `segments` and `latest_warnings` tables, which the
/// caller registers.
#[must_use]
pub fn feature_ctes(compiler: &Compiler, as_of: NaiveDate) -> String {
    let month_cut = month_start(as_of);
    let week_cut = week_start(as_of);
    let s = date(as_of);
    let mut monthly = Vec::new();
    let mut weekly = Vec::new();
    let mut network = Vec::new();
    let mut events = Vec::new();
    let mut columns = Vec::new();
    let (mut m_lo, mut w_lo, mut e_lo) = (month_cut, week_cut, as_of);
    let mut n_lo = week_cut;
    let mut social = false;

    let (mut segments, mut warnings, mut tags) = (false, false, false);
    for (index, source) in compiler.sources.iter().enumerate() {
        let alias = format!("f{index}");
        match source {
            Source::Profile(name) if SOCIAL.contains(name) => {
                social = true;
                columns.push(format!("{} AS {alias}", social_column(name)));
            }
            Source::Profile(name) => columns.push(format!("p.{name} AS {alias}")),
            Source::Segment(name) => {
                segments = true;
                columns.push(format!("sg.{name} AS {alias}"));
            }
            Source::Scenario(name) => {
                segments = true;
                let pattern = format!("% {} %", name.replace('\'', "''"));
                columns.push(format!(
                    "COALESCE((' ' || sg.scenarios || ' ') LIKE '{pattern}', false) AS {alias}"
                ));
            }
            Source::Warning(column) => {
                warnings = true;
                columns.push(format!("wl.{column} AS {alias}"));
            }
            Source::Tag(name) => {
                tags = true;
                columns.push(format!("COALESCE(tg.\"{name}\", false) AS {alias}"));
            }
            Source::Usage {
                function,
                measure,
                window,
            } => {
                let on_network = NETWORK_MEASURES.contains(measure);
                let cut = if window.unit == Unit::Month {
                    month_cut
                } else {
                    week_cut
                };
                let (lo, hi) = bounds(cut, *window);
                // The network's experience is weekly whatever the window: a month window reads
                // the weeks that start in it.
                let (list, table_alias, period) = if on_network {
                    n_lo = n_lo.min(lo);
                    (&mut network, "nw", "week")
                } else if window.unit == Unit::Month {
                    m_lo = m_lo.min(lo);
                    (&mut monthly, "m", "period")
                } else {
                    w_lo = w_lo.min(lo);
                    (&mut weekly, "w", "period")
                };
                let value = measure_sql(measure, window.unit);
                let inside = format!("{period} >= {} AND {period} < {}", date(lo), date(hi));
                let agg = match *function {
                    "at" => format!("MAX(CASE WHEN {period} = {} THEN {value} END)", date(lo)),
                    // Change per period: months are counted as year * 12 + month, weeks as days / 7.
                    "slope" => {
                        let index = if window.unit == Unit::Month && !on_network {
                            "CAST(date_part('year', period) * 12 + date_part('month', period) AS DOUBLE)".to_owned()
                        } else {
                            format!("CAST(CAST({period} AS INT) AS DOUBLE) / 7.0")
                        };
                        format!(
                            "REGR_SLOPE(CASE WHEN {inside} THEN {value} END, CASE WHEN {inside} THEN {index} END)"
                        )
                    }
                    other => format!(
                        "{}(CASE WHEN {inside} THEN {value} END)",
                        other.to_uppercase()
                    ),
                };
                list.push(format!("{agg} AS {alias}"));
                columns.push(format!("{table_alias}.{alias} AS {alias}"));
            }
            Source::Events {
                stat,
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
                let agg = match *stat {
                    "days" => {
                        format!("COUNT(DISTINCT CASE WHEN {condition} THEN CAST(ts AS DATE) END)")
                    }
                    "days_since" => format!(
                        "MIN(CASE WHEN {condition} THEN (to_unixtime({}) - to_unixtime(ts)) / 86400.0 END)",
                        timestamp(as_of)
                    ),
                    _ => format!("COUNT(CASE WHEN {condition} THEN 1 END)"),
                };
                events.push(format!("{agg} AS {alias}"));
                // No event in the window is 0 events, but an unknown recency.
                columns.push(if *stat == "days_since" {
                    format!("CAST(e.{alias} AS DOUBLE) AS {alias}")
                } else {
                    format!("CAST(COALESCE(e.{alias}, 0) AS DOUBLE) AS {alias}")
                });
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
        billed_plan AS (
            -- The plan as billed before the as-of date: the subscriber table holds the plan at
            -- the end of the data, which would leak a later downgrade into earlier snapshots.
            SELECT subscriber_id, last_value(plan_id ORDER BY period) AS plan_id
            FROM usage_monthly WHERE period < {month} AND plan_id IS NOT NULL
            GROUP BY subscriber_id
        ),
        fam AS (SELECT family_id, COUNT(*) AS n FROM subscribers__all WHERE family_id IS NOT NULL GROUP BY family_id),
        grp AS (SELECT group_id, COUNT(*) AS n FROM subscribers__all WHERE group_id IS NOT NULL GROUP BY group_id),
        p AS (
            SELECT s.subscriber_id, s.branch_id, s.manager_id,
                   {tenure} AS tenure_months,
                   CAST(date_part('year', {s}) - date_part('year', s.birth_date) AS DOUBLE) AS age,
                   CAST(pl.tier AS DOUBLE) AS plan_tier,
                   pl.monthly_fee AS plan_fee,
                   s.customer_type = 'group_member' AS is_group_member,
                   b.subsidy_end IS NOT NULL AS has_subsidy,
                   {subsidy_left} AS subsidy_months_left,
                   {contract_left} AS contract_months_left,
                   CAST(COALESCE(fam.n, 1) AS DOUBLE) AS family_size,
                   CAST(COALESCE(grp.n, 0) AS DOUBLE) AS group_size
            FROM subscribers s
            LEFT JOIN billed_plan bp ON bp.subscriber_id = s.subscriber_id
            LEFT JOIN plans pl ON pl.plan_id = COALESCE(bp.plan_id, s.plan_id)
            LEFT JOIN fam ON fam.family_id = s.family_id
            LEFT JOIN grp ON grp.group_id = s.group_id
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
    if !network.is_empty() {
        let _ = write!(
            ctes,
            ", nw AS (SELECT subscriber_id, {} FROM network_weekly WHERE week >= {} AND week < {} GROUP BY subscriber_id)",
            network.join(", "),
            date(n_lo),
            date(week_cut)
        );
        joins.push_str(" LEFT JOIN nw ON nw.subscriber_id = p.subscriber_id");
    }
    if social {
        ctes.push_str(&social_ctes(as_of));
        // One join onto `p`: a plan decoded on a cluster's scheduler must stay within its
        // depth limit, and a chain of joins is as deep as it is long.
        joins.push_str(" LEFT JOIN social ON social.subscriber_id = p.subscriber_id");
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
    if segments {
        joins.push_str(" LEFT JOIN segments sg ON sg.subscriber_id = p.subscriber_id");
    }
    if warnings {
        joins.push_str(" LEFT JOIN latest_warnings wl ON wl.subscriber_id = p.subscriber_id");
    }
    if tags {
        joins.push_str(" LEFT JOIN tags tg ON tg.subscriber_id = p.subscriber_id");
    }
    let _ = write!(
        ctes,
        ", f AS (SELECT p.subscriber_id, p.branch_id, p.manager_id, p.tenure_months AS tenure{}{} FROM p{joins})",
        if columns.is_empty() { "" } else { ", " },
        columns.join(", ")
    );
    ctes
}

/// The column of a [`SOCIAL`] feature among the CTEs of [`social_ctes`].
fn social_column(name: &str) -> &'static str {
    match name {
        "circle_size" => "COALESCE(social.circle_size, 0.0)",
        "circle_left_share" => "social.circle_left_share",
        "competitor_call_share" => "social.share_3m",
        "competitor_call_share_1m" => "social.share_1m",
        "cell_churn_rate" => "social.churn_rate",
        _ => "social.complaint_rate",
    }
}

/// Subscribers' worth of the whole network's rate each cell's rates are shrunk towards.
const CELL_PRIOR: f64 = 200.0;

/// The CTEs of the [`SOCIAL`] features, ending in `social` (one row per subscriber): the
/// calling circle over the three months before `as_of`, the home cell over six. They read the whole
/// tables (`__all`), since a subscriber's peers and cell-mates may be in another partition.
fn social_ctes(as_of: NaiveDate) -> String {
    let month_cut = month_start(as_of);
    let week_cut = week_start(as_of);
    let lo3 = date(sub_months(month_cut, 3));
    let lo1 = date(sub_months(month_cut, 1));
    let weeks_lo = date(sub_days(week_cut, 27 * 7));
    let (from, to) = (timestamp(sub_months(as_of, 3)), timestamp(as_of));
    // A cell's rates count six months: a few hundred subscribers' three months are too few
    // leavers to tell a bad cell from a chance one.
    let cell_from = timestamp(sub_months(as_of, 6));
    let (month, week) = (date(month_cut), date(week_cut));
    format!(
        ", cc AS (
            SELECT subscriber_id AS a, peer_id AS b, peer_operator, CAST(calls AS DOUBLE) AS calls, month
            FROM calling_circle__all WHERE month >= {lo3} AND month < {month}
        ),
        cc_both AS (
            SELECT a AS subscriber_id, b AS peer, peer_operator, calls, month FROM cc
            UNION ALL
            SELECT b AS subscriber_id, a AS peer, peer_operator, calls, month FROM cc WHERE b IS NOT NULL
        ),
        left_recent AS (
            SELECT DISTINCT subscriber_id FROM events__all
            WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" >= {from} AND \"timestamp\" < {to}
        ),
        circ AS (
            SELECT pr.subscriber_id, CAST(COUNT(*) AS DOUBLE) AS circle_size,
                   CAST(COUNT(lr.subscriber_id) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE) AS circle_left_share
            FROM (SELECT DISTINCT subscriber_id, peer FROM cc_both WHERE peer IS NOT NULL) pr
            LEFT JOIN left_recent lr ON lr.subscriber_id = pr.peer
            GROUP BY pr.subscriber_id
        ),
        offnet AS (
            SELECT subscriber_id,
                   SUM(CASE WHEN peer_operator IS NOT NULL THEN calls ELSE 0 END) / NULLIF(SUM(calls), 0) AS share_3m,
                   SUM(CASE WHEN peer_operator IS NOT NULL AND month >= {lo1} THEN calls ELSE 0 END)
                     / NULLIF(SUM(CASE WHEN month >= {lo1} THEN calls ELSE 0 END), 0) AS share_1m
            FROM cc_both GROUP BY subscriber_id
        ),
        home AS (
            SELECT subscriber_id, last_value(home_cell ORDER BY week) AS cell
            FROM network_weekly__all
            WHERE week >= {weeks_lo} AND week < {week} AND home_cell IS NOT NULL
            GROUP BY subscriber_id
        ),
        cell_left AS (
            SELECT DISTINCT subscriber_id FROM events__all
            WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" >= {cell_from} AND \"timestamp\" < {to}
        ),
        net_complaints AS (
            SELECT DISTINCT subscriber_id FROM events__all
            WHERE kind = 'complaint' AND category = 'network'
              AND \"timestamp\" >= {cell_from} AND \"timestamp\" < {to}
        ),
        cell_counts AS (
            SELECT h.cell, CAST(COUNT(*) AS DOUBLE) AS n,
                   CAST(COUNT(lr.subscriber_id) AS DOUBLE) AS leavers,
                   CAST(COUNT(ncm.subscriber_id) AS DOUBLE) AS complainers
            FROM home h
            LEFT JOIN cell_left lr ON lr.subscriber_id = h.subscriber_id
            LEFT JOIN net_complaints ncm ON ncm.subscriber_id = h.subscriber_id
            GROUP BY h.cell
        ),
        all_cells AS (
            SELECT SUM(leavers) / SUM(n) AS churn_rate, SUM(complainers) / SUM(n) AS complaint_rate
            FROM cell_counts
        ),
        -- Each cell's rates shrunk towards the whole network's by {CELL_PRIOR} subscribers' worth:
        -- a small cell's few leavers say little (small-area estimation).
        cell_rates AS (
            SELECT c.cell,
                   (c.leavers + {CELL_PRIOR} * a.churn_rate) / (c.n + {CELL_PRIOR}) AS churn_rate,
                   (c.complainers + {CELL_PRIOR} * a.complaint_rate) / (c.n + {CELL_PRIOR}) AS complaint_rate
            FROM cell_counts c CROSS JOIN all_cells a
        ),
        -- One row per subscriber: the circle's, the calls' and the home cell's figures side by
        -- side (a union grouped, not a chain of joins).
        social AS (
            SELECT subscriber_id, MAX(circle_size) AS circle_size,
                   MAX(circle_left_share) AS circle_left_share,
                   MAX(share_3m) AS share_3m, MAX(share_1m) AS share_1m,
                   MAX(churn_rate) AS churn_rate, MAX(complaint_rate) AS complaint_rate
            FROM (
                SELECT subscriber_id, circle_size, circle_left_share,
                       CAST(NULL AS DOUBLE) AS share_3m, CAST(NULL AS DOUBLE) AS share_1m,
                       CAST(NULL AS DOUBLE) AS churn_rate, CAST(NULL AS DOUBLE) AS complaint_rate
                FROM circ
                UNION ALL
                SELECT subscriber_id, CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), share_3m, share_1m,
                       CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE)
                FROM offnet
                UNION ALL
                SELECT h.subscriber_id, CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE),
                       CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), cr.churn_rate, cr.complaint_rate
                FROM home h JOIN cell_rates cr ON cr.cell = h.cell
            ) u
            GROUP BY subscriber_id
        )"
    )
}

/// Registers the outputs of other stages that the compiler's conditions read: `segments`
/// (the latest segmentation), `latest_warnings` (the newest warning list) and `tags` (the tag
/// library's memberships). A stage that has not run yet reads as empty — its conditions are
/// false — except tags, whose absence is an error naming the tag.
pub async fn register_outputs(
    ctx: &SessionContext,
    workspace: &Workspace,
    compiler: &Compiler,
) -> Result<()> {
    let uses = |f: &dyn Fn(&Source) -> bool| compiler.sources.iter().any(f);
    if uses(&|s| matches!(s, Source::Segment(_) | Source::Scenario(_)))
        && !ctx.table_exist("segments").unwrap_or(false)
    {
        let file = crate::outputs::segments_file(workspace);
        if file.exists() {
            register_output(ctx, "segments", &file).await?;
        } else {
            register_empty(
                ctx,
                "segments",
                "SELECT CAST(NULL AS BIGINT) AS subscriber_id, CAST(NULL AS VARCHAR) AS rfm_group,
                        CAST(NULL AS VARCHAR) AS value_tier, CAST(NULL AS VARCHAR) AS lifecycle_stage,
                        CAST(NULL AS DOUBLE) AS clv, CAST(NULL AS BOOLEAN) AS midhigh,
                        CAST(NULL AS BIGINT) AS cluster, CAST(NULL AS VARCHAR) AS scenarios,
                        CAST(NULL AS VARCHAR) AS home_cell, CAST(NULL AS VARCHAR) AS district,
                        CAST(NULL AS BIGINT) AS circle, CAST(NULL AS BOOLEAN) AS circle_leader,
                        CAST(NULL AS DOUBLE) AS circle_churn_rate WHERE false",
            )
            .await?;
        }
    }
    if uses(&|s| matches!(s, Source::Warning(_)))
        && !ctx.table_exist("latest_warnings").unwrap_or(false)
    {
        match retain_data::newest_file(&crate::outputs::warnings_dir(workspace), "parquet") {
            Some(file) => register_output(ctx, "latest_warnings", &file).await?,
            None => {
                register_empty(
                    ctx,
                    "latest_warnings",
                    "SELECT CAST(NULL AS BIGINT) AS subscriber_id, CAST(NULL AS VARCHAR) AS level,
                            CAST(NULL AS BIGINT) AS score WHERE false",
                )
                .await?;
            }
        }
    }
    let tags: Vec<&String> = compiler
        .sources
        .iter()
        .filter_map(|s| {
            if let Source::Tag(t) = s {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    if !tags.is_empty() {
        if !ctx.table_exist("tags").unwrap_or(false) {
            let file = crate::outputs::tags_file(workspace);
            if !file.exists() {
                return Err(Error::MissingOutput(format!(
                    "tag {:?} is used, but no tags have been computed yet: run `retain segment` first",
                    tags[0]
                )));
            }
            register_output(ctx, "tags", &file).await?;
        }
        let table = ctx
            .table("tags")
            .await
            .map_err(|e| Error::engine("reading tags", e))?;
        for tag in tags {
            if table.schema().field_with_unqualified_name(tag).is_err() {
                return Err(Error::MissingOutput(format!(
                    "there is no tag {tag:?} in the tag library"
                )));
            }
        }
    }
    Ok(())
}

/// Registers another stage's output, keyed by subscriber, as `name`: whole in a whole session,
/// and in a filtered one (a partition, a sample) only the rows of its subscribers, as the
/// tables are.
async fn register_output(ctx: &SessionContext, name: &str, file: &Path) -> Result<()> {
    let filter = ctx
        .state()
        .config()
        .get_extension::<crate::SubscriberFilter>();
    let Some(filter) = filter else {
        return register_parquet(ctx, name, file).await;
    };
    let all = format!("{name}__all");
    // A stage that rewrote the output drops the view; the whole file is registered afresh.
    let _ = ctx.deregister_table(all.as_str());
    register_parquet(ctx, &all, file).await?;
    ctx.sql(&format!(
        "CREATE VIEW {name} AS SELECT * FROM {all} WHERE {}",
        filter.0
    ))
    .await
    .map_err(|e| Error::engine(format!("partitioning {name}"), e))?;
    Ok(())
}

pub(crate) async fn register_parquet(ctx: &SessionContext, name: &str, file: &Path) -> Result<()> {
    ctx.register_parquet(
        name,
        file.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(|e| Error::engine(format!("reading {}", file.display()), e))
}

async fn register_empty(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let view = ctx
        .sql(sql)
        .await
        .map_err(|e| Error::engine(format!("preparing an empty {name}"), e))?
        .into_view();
    ctx.register_table(name, view)
        .map_err(|e| Error::engine(format!("registering {name}"), e))?;
    Ok(())
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
