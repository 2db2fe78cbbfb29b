//! Contact policy, channels and levels: `<workspace>/policy.toml`, every field optional.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::library::Channel;

/// One channel's cost per contact attempt and how many contacts it takes a day.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelPolicy {
    pub contact_cost: f64,
    pub daily_capacity: u32,
}

/// Warning levels, most urgent first: the warning list's own.
pub use retain_warn::Level;

/// The policy a match run honours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// At most this many contacts per subscriber in any 30 days, the new one included.
    pub max_contacts_30d: u32,
    /// No contact within this many days after a refusal (reached, offer declined).
    pub cool_off_days: u32,
    /// Remote contacts (SMS, app, calls) only between `quiet_end` and `quiet_start`.
    pub quiet_start: NaiveTime,
    pub quiet_end: NaiveTime,
    /// The do-not-disturb list (免打扰): a CSV with `msisdn` or `subscriber_id`, relative to
    /// the workspace.
    pub dnd_file: String,
    /// Days a run's contacts are spread over.
    pub campaign_days: u32,
    pub channels: BTreeMap<Channel, ChannelPolicy>,
    /// Probability bands that give a level to subscribers the warning list does not grade.
    pub red_probability: f64,
    pub yellow_probability: f64,
    pub blue_probability: f64,
    /// Churn probability assumed per level when no model has scored the subscriber.
    pub level_churn_prior: BTreeMap<Level, f64>,
    /// Untested offer kinds (no campaign history) count at this share of their prior.
    pub untested_discount: f64,
    /// A save keeps this many months of ARPU, or the segment's lifetime value when that is
    /// higher: the segment's value is discounted by the subscriber's own risk, which a save
    /// removes.
    pub value_months: f64,
    /// At most this share of the budget goes to offer kinds no campaign has measured: enough
    /// to learn what they do, not enough to bet the budget on a prior.
    pub exploration_share: f64,
}

impl Default for Policy {
    fn default() -> Self {
        let ch = |contact_cost, daily_capacity| ChannelPolicy {
            contact_cost,
            daily_capacity,
        };
        Policy {
            max_contacts_30d: 2,
            cool_off_days: 60,
            quiet_start: NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
            quiet_end: NaiveTime::from_hms_opt(9, 0, 0).expect("valid"),
            dnd_file: "dnd.csv".into(),
            campaign_days: 7,
            channels: BTreeMap::from([
                (Channel::Sms, ch(0.1, 50_000)),
                (Channel::App, ch(0.05, 50_000)),
                (Channel::OutboundCall, ch(2.0, 1_200)),
                (Channel::Store, ch(5.0, 300)),
                (Channel::ManagerVisit, ch(30.0, 40)),
            ]),
            red_probability: 0.5,
            yellow_probability: 0.3,
            blue_probability: 0.15,
            level_churn_prior: BTreeMap::from([
                (Level::Red, 0.4),
                (Level::Yellow, 0.25),
                (Level::Blue, 0.12),
            ]),
            untested_discount: 0.5,
            value_months: 24.0,
            exploration_share: 0.1,
        }
    }
}

impl Policy {
    /// `<workspace>/policy.toml` over the defaults.
    pub fn for_workspace(workspace: &retain_data::Workspace) -> Result<Policy> {
        let path = workspace.root().join("policy.toml");
        if !path.exists() {
            return Ok(Policy::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Policy> {
        let mut policy: Policy = toml::from_str(text).map_err(|e| {
            let (line, column) =
                retain_features::expr::line_column(text, e.span().map_or(0, |s| s.start));
            Error::Config(format!(
                "{}:{line}:{column}: {}",
                path.display(),
                e.message()
            ))
        })?;
        // Channels not named keep their defaults.
        for (c, p) in Policy::default().channels {
            policy.channels.entry(c).or_insert(p);
        }
        if !(1..=366).contains(&policy.campaign_days) {
            return Err(Error::Config(format!(
                "{}: campaign_days must be 1 to 366",
                path.display()
            )));
        }
        Ok(policy)
    }

    #[must_use]
    pub fn channel(&self, c: Channel) -> ChannelPolicy {
        self.channels[&c]
    }

    /// Whether a remote contact at `t` falls in the quiet hours.
    #[must_use]
    pub fn is_quiet(&self, t: NaiveTime) -> bool {
        if self.quiet_start > self.quiet_end {
            t >= self.quiet_start || t < self.quiet_end
        } else {
            t >= self.quiet_start && t < self.quiet_end
        }
    }

    /// Minutes a day open to remote contacts.
    #[must_use]
    pub fn open_minutes(&self) -> i64 {
        let quiet = (self.quiet_end - self.quiet_start)
            .num_minutes()
            .rem_euclid(24 * 60);
        24 * 60 - quiet
    }

    /// The level of a subscriber with churn probability `p` and no warning level.
    #[must_use]
    pub fn level_for(&self, p: f64) -> Option<Level> {
        if p >= self.red_probability {
            Some(Level::Red)
        } else if p >= self.yellow_probability {
            Some(Level::Yellow)
        } else if p >= self.blue_probability {
            Some(Level::Blue)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_midnight() {
        let p = Policy::default();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(p.is_quiet(t(22, 0)));
        assert!(p.is_quiet(t(3, 0)));
        assert!(p.is_quiet(t(8, 59)));
        assert!(!p.is_quiet(t(9, 0)));
        assert!(!p.is_quiet(t(20, 59)));
        assert_eq!(p.open_minutes(), 12 * 60);
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults_and_errors_name_the_line() {
        let p = Policy::parse(
            "max_contacts_30d = 1\n[channels.outbound_call]\ncontact_cost = 3.0\ndaily_capacity = 10\n",
            Path::new("policy.toml"),
        )
        .unwrap();
        assert_eq!(p.max_contacts_30d, 1);
        assert_eq!(p.channel(Channel::OutboundCall).daily_capacity, 10);
        assert_eq!(p.channel(Channel::Sms).daily_capacity, 50_000);
        let err = Policy::parse(
            "max_contacts_30d = 1\ncool_off = 3\n",
            Path::new("policy.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("policy.toml:2:1:"), "{err}");
    }
}
