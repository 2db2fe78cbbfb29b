//! The subscriber id every stage's artifacts carry.

use serde::{Deserialize, Serialize};

/// A subscriber's id as the operator's data gives it (`subscriber_id`). Stages keep ids in
/// Arrow columns as 64-bit integers; the entries they hand to each other and to people carry
/// this type, so an id is not taken for a count or a campaign id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SubscriberId(pub i64);

impl SubscriberId {
    /// The id as stored in the tables.
    #[must_use]
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for SubscriberId {
    fn from(id: i64) -> SubscriberId {
        SubscriberId(id)
    }
}

impl std::fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for SubscriberId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<SubscriberId, Self::Err> {
        s.trim().parse().map(SubscriberId)
    }
}
