//! Visits to group customers recorded through retain: one per group, manager and day, so a
//! form sent twice (a double click, a retried request) records one visit.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::error::Result;
use crate::sql::{now, query};

/// A visit to record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewVisit {
    pub group_id: String,
    pub manager_id: String,
    /// YYYY-MM-DD.
    pub visit_date: String,
    pub channel: String,
    pub outcome: String,
    pub notes: String,
}

/// A recorded visit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VisitRecord {
    pub id: i64,
    #[serde(flatten)]
    pub visit: NewVisit,
    pub recorded_by: String,
    pub recorded_at: String,
}

fn visit(row: &AnyRow) -> Result<VisitRecord> {
    Ok(VisitRecord {
        id: row.try_get("id")?,
        visit: NewVisit {
            group_id: row.try_get("group_id")?,
            manager_id: row.try_get("manager_id")?,
            visit_date: row.try_get("visit_date")?,
            channel: row.try_get("channel")?,
            outcome: row.try_get("outcome")?,
            notes: row.try_get("notes")?,
        },
        recorded_by: row.try_get("recorded_by")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

impl Store {
    /// Records a visit; the same group, manager and day again changes nothing and answers the
    /// visit already recorded, with `false`.
    pub async fn record_visit(&self, v: &NewVisit, actor: &str) -> Result<(VisitRecord, bool)> {
        let done = query(
            self.d,
            "INSERT INTO recorded_visits (group_id, manager_id, visit_date, channel, outcome, notes, \
             recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (group_id, manager_id, visit_date) DO NOTHING",
        )
        .bind(&v.group_id)
        .bind(&v.manager_id)
        .bind(&v.visit_date)
        .bind(&v.channel)
        .bind(&v.outcome)
        .bind(&v.notes)
        .bind(actor)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = query(
            self.d,
            "SELECT * FROM recorded_visits WHERE group_id = ? AND manager_id = ? AND visit_date = ?",
        )
        .bind(&v.group_id)
        .bind(&v.manager_id)
        .bind(&v.visit_date)
        .fetch_one(&self.pool)
        .await?;
        Ok((visit(&row)?, done.rows_affected() == 1))
    }

    /// A group's recorded visits, newest first (at most `limit`).
    pub async fn group_visits(&self, group_id: &str, limit: u32) -> Result<Vec<VisitRecord>> {
        query(
            self.d,
            "SELECT * FROM recorded_visits WHERE group_id = ? ORDER BY visit_date DESC, id DESC LIMIT ?",
        )
        .bind(group_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(visit)
        .collect()
    }

    /// Every recorded visit from `from` to before `until` (YYYY-MM-DD), oldest first: what the
    /// visit plans and the managers' results add to the visits loaded as a table.
    pub async fn visits_between(&self, from: &str, until: &str) -> Result<Vec<VisitRecord>> {
        query(
            self.d,
            "SELECT * FROM recorded_visits WHERE visit_date >= ? AND visit_date < ? \
             ORDER BY visit_date, id",
        )
        .bind(from)
        .bind(until)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(visit)
        .collect()
    }
}
