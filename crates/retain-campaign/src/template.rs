//! The plan library (方案库): campaign templates as data. Three ship with retain; saved
//! templates live in the operational store, every version kept, and a saved name shadows a
//! bundled one.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use retain_features::expr::{Compiler, line_column, parse};
use retain_offers::{Channel, Kind, Level};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The templates that ship with retain: (file name, text).
pub const BUNDLED: [(&str, &str); 4] = [
    (
        "weekly-high-end.toml",
        include_str!("../templates/weekly-high-end.toml"),
    ),
    (
        "level-flow.toml",
        include_str!("../templates/level-flow.toml"),
    ),
    (
        "contract-expiry.toml",
        include_str!("../templates/contract-expiry.toml"),
    ),
    ("win-back.toml", include_str!("../templates/win-back.toml")),
];

/// Whom a campaign is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Population {
    /// Subscribers at risk of leaving (维系): the warning list and the model's scores.
    #[default]
    AtRisk,
    /// Recent leavers (挽回): cancelled or ported out within `window_months`, reachable and
    /// voluntary; levels grade them by value (red the top fifth, yellow the next three
    /// tenths, blue the rest).
    Leavers,
}

/// The longest window of leavers a win-back campaign or list looks back over.
pub const MAX_WINDOW_MONTHS: u32 = 24;

/// Who a campaign targets. Every part narrows: levels, then the condition, then deciles.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Warning levels (from the warning list, else the model's probability bands).
    #[serde(default = "all_levels")]
    pub levels: Vec<Level>,
    /// The rules' condition language over features, tags (`tag('id')`), segments
    /// (`value_tier`, `rfm_group`, `lifecycle_stage`) and warnings; empty = everyone.
    #[serde(default)]
    pub condition: String,
    /// Churn-score deciles, 1 = the riskiest tenth of scored subscribers; empty = all.
    #[serde(default)]
    pub deciles: Vec<u8>,
    /// At-risk subscribers (the default) or recent leavers (a win-back campaign).
    #[serde(default)]
    pub population: Population,
    /// Leavers of the last this many months (win-back only).
    #[serde(default = "default_window_months")]
    pub window_months: u32,
    /// A leaver counts as won back when active again within this many months of the campaign
    /// date (win-back only; retention campaigns read [`retain_offers::HORIZON_MONTHS`], the
    /// window their offers' learning is measured over).
    #[serde(default = "default_return_months")]
    pub return_months: u32,
}

fn default_window_months() -> u32 {
    3
}

fn default_return_months() -> u32 {
    retain_offers::HORIZON_MONTHS
}

/// The longest return window a win-back campaign may count.
pub(crate) const MAX_RETURN_MONTHS: u32 = 12;

fn all_levels() -> Vec<Level> {
    vec![Level::Red, Level::Yellow, Level::Blue]
}

/// Which library offers a campaign may use; empty lists allow all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferFilter {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<Kind>,
}

/// Channels per level in the order they are tried: the first the subscriber can be reached
/// on is used; a callback that did not reach them escalates to the next.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    #[serde(default)]
    pub red: Vec<Channel>,
    #[serde(default)]
    pub yellow: Vec<Channel>,
    #[serde(default)]
    pub blue: Vec<Channel>,
}

impl Flow {
    #[must_use]
    pub fn for_level(&self, level: Level) -> &[Channel] {
        match level {
            Level::Red => &self.red,
            Level::Yellow => &self.yellow,
            Level::Blue => &self.blue,
        }
    }
}

/// When a channel's work orders fall due, counted from the launch date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Due {
    /// Within this many days.
    #[serde(default)]
    pub within_days: Option<u32>,
    /// On the next such weekday (`mon` … `sun`).
    #[serde(default)]
    pub weekday: Option<Weekday>,
    /// On days `[first, last]` of the month: this month's when the launch falls in or before
    /// them, else next month's.
    #[serde(default)]
    pub month_days: Option<[u32; 2]>,
}

impl Due {
    /// The due date of a work order launched on `launch`.
    #[must_use]
    pub fn date(&self, launch: NaiveDate) -> NaiveDate {
        if let Some(w) = self.weekday {
            let ahead = (7 + i64::from(w.num_days_from_monday())
                - i64::from(launch.weekday().num_days_from_monday()))
                % 7;
            return launch + Duration::days(ahead);
        }
        if let Some([_, last]) = self.month_days {
            let this = launch.with_day(last.min(28)).unwrap_or(launch);
            return if launch <= this {
                this
            } else {
                let next = launch
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(launch);
                next.with_day(last.min(28)).unwrap_or(next)
            };
        }
        launch + Duration::days(i64::from(self.within_days.unwrap_or(7)))
    }
}

/// SMS batch text with variables `{offer}`, `{tail}` (last four digits), `{due}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sms {
    pub text_zh: String,
    pub text_en: String,
}

/// The talking script around each offer's own talking point.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub opening_zh: String,
    #[serde(default)]
    pub opening_en: String,
    #[serde(default)]
    pub closing_zh: String,
    #[serde(default)]
    pub closing_en: String,
}

/// A campaign template.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub name_zh: String,
    pub name_en: String,
    #[serde(default)]
    pub description_zh: String,
    #[serde(default)]
    pub description_en: String,
    /// Yuan of committed cost (contacts plus every offer made) for the whole plan, control
    /// included: the treated spend about `1 − control_share` of it.
    pub budget: f64,
    /// Share of the planned members held out as the control group, drawn within each level ×
    /// value-tier stratum.
    pub control_share: f64,
    /// The largest control share the plan may raise `control_share` to when the uplift it
    /// expects would not be detectable otherwise (docs/campaigns.md, "Power").
    #[serde(default = "default_control_share_max")]
    pub control_share_max: f64,
    /// Share of each arm called for a satisfaction survey (满意度回访) after the contacts, so
    /// that the evaluation compares satisfaction (NPS) of treated and control alike; 0: none.
    #[serde(default = "default_survey_share")]
    pub survey_share: f64,
    /// Share of the target the rehearsal plans on.
    #[serde(default = "default_rehearsal_share")]
    pub rehearsal_share: f64,
    #[serde(default = "default_target")]
    pub target: Target,
    #[serde(default)]
    pub offers: OfferFilter,
    pub flow: Flow,
    #[serde(default)]
    pub schedule: BTreeMap<Channel, Due>,
    #[serde(default)]
    pub sms: Sms,
    #[serde(default)]
    pub script: Script,
    /// Created, rehearsed and (within the schedule's automatic approval limit) approved and
    /// launched by the scheduler after each warning run; above the limit it waits for an
    /// approver, who is notified.
    #[serde(default)]
    pub automatic: bool,
}

fn default_rehearsal_share() -> f64 {
    0.2
}

fn default_control_share_max() -> f64 {
    0.5
}

fn default_survey_share() -> f64 {
    0.2
}

fn default_target() -> Target {
    Target {
        levels: all_levels(),
        condition: String::new(),
        deciles: Vec::new(),
        population: Population::AtRisk,
        window_months: default_window_months(),
        return_months: default_return_months(),
    }
}

const SMS_VARIABLES: [&str; 3] = ["offer", "tail", "due"];

/// The longest a channel's work orders may be given: a year.
pub(crate) const MAX_WITHIN_DAYS: u32 = 366;

impl Template {
    /// Parses and validates a template; errors name the file, line and column (of the field
    /// when the text shows where it is).
    pub fn parse(text: &str, path: &Path) -> Result<Template> {
        let template: Template = toml::from_str(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            Error::Config(format!(
                "{}:{line}:{column}: {}",
                path.display(),
                e.message()
            ))
        })?;
        template.validate().map_err(|(field, message)| {
            // A key, or a table of that name.
            let at = text
                .find(&format!("\n{field}"))
                .or_else(|| text.find(&format!("\n[{field}")))
                .map_or(0, |i| i + 1)
                .min(text.len());
            let (line, column) = line_column(text, at);
            Error::Config(format!(
                "{}:{line}:{column}: {field}: {message}",
                path.display()
            ))
        })?;
        Ok(template)
    }

    /// Reads a template stored as JSON (the plan library's copy).
    pub fn from_json(value: &serde_json::Value, what: &str) -> Result<Template> {
        let t: Template = serde_json::from_value(value.clone())
            .map_err(|e| Error::Config(format!("{what}: {e}")))?;
        t.validate()
            .map_err(|(field, message)| Error::Config(format!("{what}: {field}: {message}")))?;
        Ok(t)
    }

    fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(("name", "a template name is letters, digits, - and _".into()));
        }
        if !(self.budget.is_finite() && self.budget >= 0.0) {
            return Err(("budget", "a number of yuan ≥ 0".into()));
        }
        if !(self.control_share > 0.0 && self.control_share < 1.0) {
            return Err((
                "control_share",
                "a share in (0, 1): every campaign keeps a control group".into(),
            ));
        }
        if !(self.control_share_max > 0.0 && self.control_share_max < 1.0) {
            return Err((
                "control_share_max",
                "a share in (0, 1); the plan never holds out less than control_share".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.survey_share) {
            return Err(("survey_share", "a share in [0, 1]".into()));
        }
        if !(self.rehearsal_share > 0.0 && self.rehearsal_share <= 1.0) {
            return Err(("rehearsal_share", "a share in (0, 1]".into()));
        }
        if self.target.levels.is_empty() {
            return Err(("levels", "at least one level".into()));
        }
        if let Some(d) = self.target.deciles.iter().find(|d| !(1..=10).contains(*d)) {
            return Err(("deciles", format!("deciles are 1–10, not {d}")));
        }
        if !(1..=MAX_WINDOW_MONTHS).contains(&self.target.window_months) {
            return Err((
                "window_months",
                format!("leavers of the last 1 to {MAX_WINDOW_MONTHS} months"),
            ));
        }
        if !(1..=MAX_RETURN_MONTHS).contains(&self.target.return_months) {
            return Err((
                "return_months",
                format!("a return counted within 1 to {MAX_RETURN_MONTHS} months"),
            ));
        }
        if self.target.population == Population::Leavers
            && (!self.target.condition.trim().is_empty() || !self.target.deciles.is_empty())
        {
            return Err((
                "population",
                "a leavers campaign has no condition or deciles: leavers have no current \
                 features or scores; narrow it by levels (value) and offers"
                    .into(),
            ));
        }
        // Checked when saved, as the offers' eligibility is: a condition the language refuses
        // (a window beyond ten years, a control character) never reaches a rehearsal.
        let condition = &self.target.condition;
        if !condition.trim().is_empty() {
            parse(condition)
                .and_then(|e| Compiler::default().condition(&e))
                .map_err(|e| ("condition", e.describe(condition)))?;
        }
        for level in &self.target.levels {
            if self.flow.for_level(*level).is_empty() {
                return Err((
                    "flow",
                    format!(
                        "the target has {} but the flow has no channel for it",
                        level.code()
                    ),
                ));
            }
        }
        for (channel, due) in &self.schedule {
            let rules = usize::from(due.within_days.is_some())
                + usize::from(due.weekday.is_some())
                + usize::from(due.month_days.is_some());
            if rules != 1 {
                return Err((
                    "schedule",
                    format!(
                        "{}: give exactly one of within_days, weekday, month_days",
                        channel.code()
                    ),
                ));
            }
            if due.within_days.is_some_and(|d| d > MAX_WITHIN_DAYS) {
                return Err((
                    "schedule",
                    format!(
                        "{}: within_days is at most {MAX_WITHIN_DAYS}",
                        channel.code()
                    ),
                ));
            }
            if let Some([a, b]) = due.month_days
                && !(1 <= a && a <= b && b <= 28)
            {
                return Err((
                    "schedule",
                    format!("{}: month_days are 1 ≤ first ≤ last ≤ 28", channel.code()),
                ));
            }
        }
        for text in [&self.sms.text_zh, &self.sms.text_en] {
            let mut rest = text.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    return Err(("sms", format!("an unclosed {{ in {text:?}")));
                };
                let name = &rest[open + 1..open + close];
                if !SMS_VARIABLES.contains(&name) {
                    return Err((
                        "sms",
                        format!(
                            "unknown variable {{{name}}} (known: {})",
                            SMS_VARIABLES.join(", ")
                        ),
                    ));
                }
                rest = &rest[open + close + 1..];
            }
        }
        Ok(())
    }

    /// When a channel's work orders fall due.
    #[must_use]
    pub fn due(&self, channel: Channel, launch: NaiveDate) -> NaiveDate {
        self.schedule
            .get(&channel)
            .copied()
            .unwrap_or(Due {
                within_days: Some(7),
                weekday: None,
                month_days: None,
            })
            .date(launch)
    }

    /// The SMS text for one subscriber.
    #[must_use]
    pub fn render_sms(&self, zh: bool, offer: &str, msisdn: &str, due: NaiveDate) -> String {
        let text = if zh {
            &self.sms.text_zh
        } else {
            &self.sms.text_en
        };
        let tail: String = msisdn
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        text.replace("{offer}", offer)
            .replace("{tail}", &tail)
            .replace("{due}", &due.format("%Y-%m-%d").to_string())
    }
}

/// The bundled templates, parsed.
pub fn bundled() -> Result<Vec<Template>> {
    BUNDLED
        .iter()
        .map(|(file, text)| Template::parse(text, Path::new(file)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_templates_parse_and_include_the_weekly_high_end_study() {
        let all = bundled().unwrap();
        let weekly = all.iter().find(|t| t.name == "weekly-high-end").unwrap();
        assert_eq!(weekly.flow.red[0], Channel::ManagerVisit);
        // Calls fall due on day 3 of the month; the SMS on the next Wednesday.
        let launch = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(); // a Monday
        assert_eq!(
            weekly.due(Channel::OutboundCall, launch),
            NaiveDate::from_ymd_opt(2026, 11, 3).unwrap()
        );
        assert_eq!(
            weekly.due(Channel::Sms, launch),
            NaiveDate::from_ymd_opt(2026, 11, 4).unwrap()
        );
        let late = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        assert_eq!(
            weekly.due(Channel::OutboundCall, late),
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
        );
        let sms = weekly.render_sms(true, "流量包", "13800001234", launch);
        assert!(sms.contains("1234") && sms.contains("流量包") && sms.contains("2026-11-02"));
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let text = include_str!("../templates/level-flow.toml")
            .replace("control_share = 0.2", "control_share = 1.5");
        let err = Template::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:") && err.contains("control_share"),
            "{err}"
        );
        let text = include_str!("../templates/level-flow.toml").replace("{offer}", "{price}");
        let err = Template::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("{price}"), "{err}");
        let text = include_str!("../templates/level-flow.toml")
            .replace("budget = 50000", "budget = \"x\"");
        let err = Template::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        let line = text.lines().position(|l| l.starts_with("budget")).unwrap() + 1;
        assert!(err.starts_with(&format!("t.toml:{line}:")), "{err}");
        let text = include_str!("../templates/level-flow.toml").replace("blue = [\"sms\"]", "");
        let err = Template::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("blue"), "{err}");
        // Leavers have no current features or scores to select by, and a window is bounded.
        let winback = include_str!("../templates/win-back.toml");
        for (from, to, field) in [
            (
                "window_months = 3",
                "window_months = 3\ncondition = \"plan_fee > 50\"",
                "population",
            ),
            (
                "window_months = 3",
                "window_months = 3\ndeciles = [1]",
                "population",
            ),
            ("window_months = 3", "window_months = 25", "window_months"),
            ("window_months = 3", "window_months = 0", "window_months"),
            ("return_months = 4", "return_months = 0", "return_months"),
            ("return_months = 4", "return_months = 13", "return_months"),
            ("survey_share = 0", "survey_share = 1.5", "survey_share"),
            (
                "control_share_max = 0.5",
                "control_share_max = 1",
                "control_share_max",
            ),
        ] {
            let err = Template::parse(&winback.replace(from, to), Path::new("w.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("w.toml:") && err.contains(field), "{err}");
        }
    }

    #[test]
    fn a_target_condition_and_due_days_are_checked_when_a_template_is_read() {
        let weekly = include_str!("../templates/weekly-high-end.toml");
        let cond = "condition = \"value_tier = 'high' or midhigh or plan_fee >= 88\"";
        for (from, to, message) in [
            (
                cond,
                "condition = \"count(complaint, 4000000000d) > 0\"",
                "at most 3660 days",
            ),
            (
                cond,
                "condition = \"plan_fee >= \\u0000\"",
                "control character",
            ),
            (cond, "condition = \"plan_fee >= 'x'\"", "different types"),
            (
                "store = { within_days = 14 }",
                "store = { within_days = 4000000000 }",
                "within_days is at most 366",
            ),
        ] {
            let text = weekly.replace(from, to);
            assert_ne!(text, weekly);
            let err = Template::parse(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{to}: {err}");
            let json = serde_json::to_value(toml::from_str::<Template>(&text).unwrap()).unwrap();
            let err = Template::from_json(&json, "saved template").unwrap_err();
            assert!(err.to_string().contains(message), "{to}: {err}");
        }
    }
}
