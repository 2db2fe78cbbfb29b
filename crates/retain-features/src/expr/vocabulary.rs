//! What a condition can name: the static types, the sources a name or an aggregate reads, and
//! the usage measures, profile features and segment, warning and event fields behind them.

use std::fmt::Write as _;

use super::Window;

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Number,
    Bool,
    Text,
}

/// What a name or an aggregate reads, so the compiler can build one query per source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A column of the per-subscriber profile (tenure, tier, contracts…).
    Profile(&'static str),
    /// An aggregate of a usage measure over a window.
    Usage {
        function: &'static str,
        measure: &'static str,
        window: Window,
    },
    /// A statistic of events over a window, with filters: `count`, `days` (distinct days with
    /// one) or `days_since` (days from the latest one to the as-of date).
    Events {
        stat: &'static str,
        kind: String,
        window: Window,
        /// (field, SQL literal), sorted.
        filters: Vec<(&'static str, String)>,
    },
    /// A column of the latest segmentation (`segments` table).
    Segment(&'static str),
    /// Whether the subscriber is in a scenario group of the latest segmentation.
    Scenario(String),
    /// A column of the latest warning list (`latest_warnings` table).
    Warning(&'static str),
    /// Membership of a tag of the tag library (`tags` table).
    Tag(String),
}

/// Usage measures, as columns of `usage_monthly`/`usage_weekly` (`calls` is out + in,
/// `active_share` is active days over the period's days).
pub const MEASURES: &[&str] = &[
    "fee",
    "voice_minutes",
    "calls",
    "calls_out",
    "calls_in",
    "data_mb",
    "sms",
    "bundled_services",
    "vas_fee",
    "recharge",
    "arrears",
    "suspended_days",
    "active_days",
    "active_share",
    "dropped_call_rate",
    "setup_failures",
    "weak_coverage_minutes",
    "data_stall_seconds",
    "throughput_mbps",
];

/// The measures of `network_weekly`, the network's experience: weekly, whatever the window's
/// unit (a month window reads the weeks starting in it).
pub const NETWORK_MEASURES: &[&str] = &[
    "dropped_call_rate",
    "setup_failures",
    "weak_coverage_minutes",
    "data_stall_seconds",
    "throughput_mbps",
];

/// Profile features read from the calling circle over the three months before the as-of date
/// (the on-net peers called, `circle_size`; the share of them who left, `circle_left_share`;
/// the share of calls to competitors' numbers, `competitor_call_share`, and over the last month
/// `competitor_call_share_1m`) and from the home cell over six (its share of leavers and of
/// subscribers with a network complaint).
pub const SOCIAL: &[&str] = &[
    "circle_size",
    "circle_left_share",
    "competitor_call_share",
    "competitor_call_share_1m",
    "cell_churn_rate",
    "cell_complaint_rate",
];

/// Profile features and their types.
pub const PROFILE: &[(&str, Type)] = &[
    ("tenure_months", Type::Number),
    ("age", Type::Number),
    ("plan_tier", Type::Number),
    ("plan_fee", Type::Number),
    ("is_group_member", Type::Bool),
    ("has_subsidy", Type::Bool),
    ("subsidy_months_left", Type::Number),
    ("contract_months_left", Type::Number),
    ("family_size", Type::Number),
    ("group_size", Type::Number),
    ("circle_size", Type::Number),
    ("circle_left_share", Type::Number),
    ("competitor_call_share", Type::Number),
    ("competitor_call_share_1m", Type::Number),
    ("cell_churn_rate", Type::Number),
    ("cell_complaint_rate", Type::Number),
];

/// Columns of the latest segmentation usable in conditions.
pub const SEGMENT_FIELDS: &[(&str, Type)] = &[
    ("rfm_group", Type::Text),
    ("value_tier", Type::Text),
    ("lifecycle_stage", Type::Text),
    ("clv", Type::Number),
    ("midhigh", Type::Bool),
    ("cluster", Type::Number),
    ("home_cell", Type::Text),
    ("district", Type::Text),
    ("circle", Type::Number),
    ("circle_leader", Type::Bool),
    ("circle_churn_rate", Type::Number),
];

/// Columns of the latest warning list usable in conditions: (name, column, type).
pub const WARNING_FIELDS: &[(&str, &str, Type)] = &[
    ("warning_level", "level", Type::Text),
    ("warning_score", "score", Type::Number),
];

/// Event fields usable as filters, with their types.
pub(super) const EVENT_FIELDS: &[(&str, Type)] = &[
    ("category", Type::Text),
    ("severity", Type::Text),
    ("resolved_on_time", Type::Bool),
    ("channel", Type::Text),
    ("competitor", Type::Text),
    ("downgrade", Type::Bool),
];

pub(super) const FUNCTIONS: &str =
    "avg, sum, min, max, stddev, slope, at, count, days, days_since, scenario, tag, coalesce, abs";

impl Source {
    /// A readable label for reports: `avg(fee, 6m)`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Source::Profile(name) | Source::Segment(name) => (*name).to_owned(),
            Source::Warning(column) => format!("warning_{column}"),
            Source::Scenario(name) => format!("scenario({name:?})"),
            Source::Tag(name) => format!("tag({name:?})"),
            Source::Usage {
                function,
                measure,
                window,
            } => format!("{function}({measure}, {window})"),
            Source::Events {
                stat,
                kind,
                window,
                filters,
            } => {
                let mut s = format!("{stat}({kind}, {window}");
                for (f, v) in filters {
                    let _ = write!(s, ", {f} = {}", v.replace('\'', "\""));
                }
                s.push(')');
                s
            }
        }
    }
}
