//! The periods the workspace has loaded, and the default as-of date every stage starts from.

use chrono::{Duration, Months, NaiveDate};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Date32Type;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::{Error, Result};

/// How often the department runs the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Weekly,
    Monthly,
}

impl std::str::FromStr for Cadence {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "weekly" => Ok(Cadence::Weekly),
            "monthly" => Ok(Cadence::Monthly),
            _ => Err(format!("unknown cadence {s:?} (weekly or monthly)")),
        }
    }
}

impl Cadence {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Weekly => "weekly",
            Cadence::Monthly => "monthly",
        }
    }

    /// The usage table loaded at this cadence.
    #[must_use]
    pub fn usage_table(self) -> &'static str {
        match self {
            Cadence::Weekly => "usage_weekly",
            Cadence::Monthly => "usage_monthly",
        }
    }
}

/// The first and last period of the usage loaded at `cadence`.
pub async fn loaded_periods(
    ctx: &SessionContext,
    cadence: Cadence,
) -> Result<(NaiveDate, NaiveDate)> {
    let table = cadence.usage_table();
    let batches = crate::frame::query(
        ctx,
        &format!("SELECT MIN(period), MAX(period) FROM {table}"),
        "the loaded periods",
    )
    .await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0 && !b.column(0).is_null(0))
        .ok_or(Error::MissingTable(table))?;
    let date = |column: usize| {
        retain_data::days_to_date(batch.column(column).as_primitive::<Date32Type>().value(0))
    };
    Ok((date(0), date(1)))
}

/// The default as-of date: the day after the last complete period loaded.
pub async fn default_as_of(ctx: &SessionContext, cadence: Cadence) -> Result<NaiveDate> {
    let (_, last) = loaded_periods(ctx, cadence).await?;
    let next = match cadence {
        Cadence::Weekly => last.checked_add_signed(Duration::days(7)),
        Cadence::Monthly => last.checked_add_months(Months::new(1)),
    };
    next.ok_or_else(|| Error::Internal(format!("the period after {last} is out of range")))
}
