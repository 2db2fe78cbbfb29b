//! The schedule file, `<workspace>/schedule.toml`: which steps run when, in which time zone,
//! how failures are retried and where alerts go.

use std::path::Path;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file's name in a workspace.
pub const FILE: &str = "schedule.toml";

/// The schedule `retain schedule init` writes: the operator's weekly and monthly cadence.
pub const DEFAULT: &str = include_str!("../schedule.toml");

/// A larger file is refused unread.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// More jobs than an operator could mean.
pub const MAX_JOBS: usize = 100;

/// What a job runs: one of retain's steps over the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Loads complete deliveries from the drop folder (`<workspace>/drop/<delivery>/`).
    Ingest,
    /// The red/yellow/blue warning list; then the automatic campaigns.
    Warn,
    /// The point-in-time feature snapshot.
    Features,
    /// Retrains the churn model.
    Train,
    /// Scores every subscriber with the model.
    Score,
    /// RFM, value tiers, lifecycle stages and clusters.
    Segment,
    /// Group-customer warning and the account managers' visit plans.
    Groups,
    /// Offer matching under the budget.
    Match,
    /// Launches automatic campaigns an approver has approved since.
    Launch,
}

impl Step {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Step::Ingest => "ingest",
            Step::Warn => "warn",
            Step::Features => "features",
            Step::Train => "train",
            Step::Score => "score",
            Step::Segment => "segment",
            Step::Groups => "groups",
            Step::Match => "match",
            Step::Launch => "launch",
        }
    }
}

/// The warning list's cadence, for `warn` jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    #[default]
    Weekly,
    Monthly,
}

/// A job as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobText {
    name: String,
    step: Step,
    cron: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default = "default_backoff")]
    backoff_minutes: u32,
    #[serde(default = "default_recheck")]
    recheck_minutes: u32,
    #[serde(default = "default_lease")]
    lease_minutes: u32,
    #[serde(default = "yes")]
    catch_up: bool,
    #[serde(default)]
    cadence: Cadence,
    #[serde(default)]
    budget: Option<f64>,
}

fn yes() -> bool {
    true
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> u32 {
    10
}
fn default_recheck() -> u32 {
    15
}
fn default_lease() -> u32 {
    360
}

/// Where failures and approvals go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// `http://HOST[:PORT]/PATH`: receives one JSON object per event by POST.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Seconds a webhook may take to answer.
    #[serde(default = "default_alert_timeout")]
    pub timeout_seconds: u64,
}

fn default_alert_timeout() -> u64 {
    10
}

impl Default for Alert {
    fn default() -> Self {
        Alert {
            webhook: None,
            timeout_seconds: default_alert_timeout(),
        }
    }
}

/// What the scheduler may do with campaigns on its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRules {
    /// An automatic campaign whose budget (yuan) is at most this launches without an
    /// approver; above it, it waits for one, who is notified.
    #[serde(default = "default_auto_limit")]
    pub auto_approval_limit: f64,
}

impl Default for CampaignRules {
    fn default() -> Self {
        CampaignRules {
            auto_approval_limit: default_auto_limit(),
        }
    }
}

fn default_auto_limit() -> f64 {
    20_000.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    alert: Alert,
    #[serde(default)]
    campaigns: CampaignRules,
    #[serde(default)]
    job: Vec<JobText>,
}

/// A scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Unique in the file: `[a-z0-9_-]`, 1–64 characters.
    pub name: String,
    pub step: Step,
    /// The cron expression as written: minute hour day-of-month month day-of-week, with an
    /// optional leading seconds field.
    pub cron_text: String,
    cron: Cron,
    pub enabled: bool,
    /// Attempts per slot before the slot is given up (1 = no retry).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each further one.
    pub backoff_minutes: u32,
    /// How soon a job waiting for its input looks again.
    pub recheck_minutes: u32,
    /// How long the job's lease lasts without renewal: a process that died holding it frees
    /// the job after this long.
    pub lease_minutes: u32,
    /// Whether a slot missed while nothing ran is run late (once, however many were missed).
    pub catch_up: bool,
    pub cadence: Cadence,
    /// Yuan, for `match` jobs; defaults to one yuan per subscriber.
    pub budget: Option<f64>,
}

impl Job {
    /// The latest slot at or before `now`, in `tz`.
    #[must_use]
    pub fn slot_at_or_before(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first slot after `t`, in `tz`.
    #[must_use]
    pub fn slot_after(&self, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The expression in words (English).
    #[must_use]
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// A workspace's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone: Tz,
    pub alert: Alert,
    pub campaigns: CampaignRules,
    /// In the file's order, which is the order due jobs run in within one cycle.
    pub jobs: Vec<Job>,
}

impl Schedule {
    /// Reads `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Schedule>> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(Error::invalid(
                path,
                format!(
                    "{} bytes; a schedule is at most {MAX_FILE_BYTES}",
                    meta.len()
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Schedule::parse(&text, path).map(Some)
    }

    /// Parses and checks a schedule; errors name the file and, where the text shows it, the
    /// line and column.
    pub fn parse(text: &str, path: &Path) -> Result<Schedule> {
        let file: FileText = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (line, column) = line_column(text, s.start);
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            Error::invalid(path, format!("{at}{}", e.message()))
        })?;
        let tz_name = file.timezone.as_deref().unwrap_or("Asia/Shanghai");
        let timezone: Tz = tz_name.parse().map_err(|_| {
            Error::invalid(
                path,
                format!("timezone {tz_name:?} is not an IANA time zone (e.g. Asia/Shanghai)"),
            )
        })?;
        if let Some(url) = &file.alert.webhook {
            crate::alert::Endpoint::parse(url).map_err(|m| Error::invalid(path, m))?;
        }
        if !(1..=300).contains(&file.alert.timeout_seconds) {
            return Err(Error::invalid(
                path,
                "alert.timeout_seconds must be 1–300".into(),
            ));
        }
        let limit = file.campaigns.auto_approval_limit;
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(Error::invalid(
                path,
                format!("campaigns.auto_approval_limit must be a number ≥ 0, not {limit}"),
            ));
        }
        if file.job.len() > MAX_JOBS {
            return Err(Error::invalid(
                path,
                format!("{} jobs; a schedule has at most {MAX_JOBS}", file.job.len()),
            ));
        }
        let mut jobs: Vec<Job> = Vec::with_capacity(file.job.len());
        for j in file.job {
            let bad = |m: String| Error::invalid(path, format!("job {:?}: {m}", j.name));
            if j.name.is_empty()
                || j.name.len() > 64
                || !j
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "a job name is 1–64 characters of a–z, 0–9, '-' and '_'".into(),
                ));
            }
            if jobs.iter().any(|k| k.name == j.name) {
                return Err(bad("named twice".into()));
            }
            let cron = parse_cron(&j.cron).map_err(&bad)?;
            for (what, value, range) in [
                ("attempts", j.attempts, 1..=20),
                ("backoff_minutes", j.backoff_minutes, 1..=1440),
                ("recheck_minutes", j.recheck_minutes, 1..=1440),
                ("lease_minutes", j.lease_minutes, 5..=10_080),
            ] {
                if !range.contains(&value) {
                    return Err(bad(format!(
                        "{what} must be {}–{}, not {value}",
                        range.start(),
                        range.end()
                    )));
                }
            }
            if let Some(b) = j.budget {
                if j.step != Step::Match {
                    return Err(bad("budget applies to match jobs only".into()));
                }
                if !(b.is_finite() && b >= 0.0) {
                    return Err(bad(format!("budget must be a number ≥ 0, not {b}")));
                }
            }
            if j.cadence != Cadence::Weekly && j.step != Step::Warn {
                return Err(bad("cadence applies to warn jobs only".into()));
            }
            jobs.push(Job {
                name: j.name,
                step: j.step,
                cron_text: j.cron,
                cron,
                enabled: j.enabled,
                attempts: j.attempts,
                backoff_minutes: j.backoff_minutes,
                recheck_minutes: j.recheck_minutes,
                lease_minutes: j.lease_minutes,
                catch_up: j.catch_up,
                cadence: j.cadence,
                budget: j.budget,
            });
        }
        Ok(Schedule {
            timezone,
            alert: file.alert,
            campaigns: file.campaigns,
            jobs,
        })
    }

    #[must_use]
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

/// A cron expression of five fields (or six, seconds first); the year field and the
/// `@yearly` style nicknames are not taken, so every expression reads the same way.
fn parse_cron(text: &str) -> std::result::Result<Cron, String> {
    let fields = text.split_whitespace().count();
    if text.len() > 200 || !(5..=6).contains(&fields) {
        return Err(format!(
            "cron {text:?}: five fields (minute hour day-of-month month day-of-week) expected"
        ));
    }
    let cron = Cron::from_str(text).map_err(|e| format!("cron {text:?}: {e}"))?;
    // A pattern that never matches (30 February) would make every search fail.
    let probe = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err(format!("cron {text:?} never matches"));
    }
    Ok(cron)
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn parse(text: &str) -> Result<Schedule> {
        Schedule::parse(text, Path::new("schedule.toml"))
    }

    #[test]
    fn the_default_schedule_parses_and_runs_in_shanghai_time() {
        let s = parse(DEFAULT).unwrap();
        assert_eq!(s.timezone, chrono_tz::Asia::Shanghai);
        let weekly = s.jobs.iter().find(|j| j.name == "weekly-warning").unwrap();
        // Monday 7 December 2026, 05:59 in Shanghai is 21:59 UTC on Sunday.
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 22, 30, 0).unwrap();
        let next = weekly.slot_after(s.timezone, now).unwrap();
        assert_eq!(
            next.with_timezone(&s.timezone)
                .format("%a %F %R")
                .to_string(),
            "Mon 2026-12-14 06:00"
        );
        let last = weekly.slot_at_or_before(s.timezone, now).unwrap();
        assert_eq!(last, Utc.with_ymd_and_hms(2026, 12, 6, 22, 0, 0).unwrap());
        for step in [
            Step::Ingest,
            Step::Warn,
            Step::Train,
            Step::Score,
            Step::Launch,
        ] {
            assert!(s.jobs.iter().any(|j| j.step == step), "{step:?}");
        }
    }

    #[test]
    fn mistakes_are_named_with_their_place() {
        let cases = [
            (
                "[[job]]\nname = \"a\"\nstep = \"warm\"\ncron = \"0 6 * * 1\"\n",
                "line 3",
            ),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 6 * *\"\n",
                "five fields",
            ),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 25 * * 1\"\n",
                "cron",
            ),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 0 30 2 *\"\n",
                "never matches",
            ),
            ("timezone = \"Mars/Olympus\"\n", "IANA"),
            ("[alert]\nwebhook = \"ftp://x\"\n", "http://"),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 6 * * 1\"\n[[job]]\nname = \"a\"\nstep = \"train\"\ncron = \"0 6 * * 1\"\n",
                "named twice",
            ),
            (
                "[[job]]\nname = \"A b\"\nstep = \"warn\"\ncron = \"0 6 * * 1\"\n",
                "a–z",
            ),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 6 * * 1\"\nattempts = 0\n",
                "attempts",
            ),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 6 * * 1\"\nbudget = 5\n",
                "match jobs",
            ),
            (
                "[[job]]\nname = \"a\"\nstep = \"warn\"\ncron = \"0 6 * * 1\"\nbogus = 1\n",
                "unknown field",
            ),
            ("[campaigns]\nauto_approval_limit = -1\n", "≥ 0"),
        ];
        for (text, expect) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains("schedule.toml") && e.contains(expect),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn an_absent_file_is_no_schedule_and_an_oversized_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(Schedule::load(&path).unwrap().is_none());
        std::fs::write(&path, "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        assert!(
            Schedule::load(&path)
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
    }
}
