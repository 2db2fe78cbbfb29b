//! The operational store: runs and ingest history, the offer library, campaigns with their
//! members, work orders, callbacks and outcomes, the plan library, the audit log, and the
//! scheduler's runs and leases.
//!
//! Only this crate knows SQL of the operational store. [`Store::connect`] picks the backend
//! from the URL scheme: SQLite (`sqlite://path`) is the embedded default, PostgreSQL
//! (`postgres://user@host/db`) the production store.
//!
//! ```no_run
//! # async fn f() -> retain_store::Result<()> {
//! let store = retain_store::Store::connect("sqlite://retain.db").await?;
//! let run = store.begin_run("ingest", &serde_json::json!({"table": "plans"})).await?;
//! store.finish_run(run, &serde_json::json!({"loaded": 13})).await?;
//! # Ok(()) }
//! ```

mod audit;
mod campaigns;
mod error;
mod jobs;
mod library;
mod records;
mod responses;
mod runs;
mod sql;
mod users;
mod visits;
mod work_orders;

use chrono::Utc;
use sqlx::AnyPool;

pub use error::{Error, Result};
pub use jobs::{JobEnd, JobRunRecord, JobStatus};
pub use records::{
    Audit, AuditEvent, CallbackRecord, CampaignRecord, CampaignStatus, JournaledAudit, Launched,
    MAX_NAME_BYTES, MemberRecord, NewCampaign, NewWorkOrder, OutcomeRecord, PlannedContact, Scope,
    TemplateRecord, UserRecord, WorkOrderRecord, check_scope_id, check_user_name,
};
pub use runs::{IngestFileRecord, RunId, RunRecord};
pub use visits::{NewVisit, VisitRecord};
pub use work_orders::ManagerWork;

/// The operational store over SQLite or PostgreSQL, whichever the URL named. One SQL
/// implementation serves both (see `sql.rs`), so each operation is written once.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    d: sql::Dialect,
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        let dialect = if url.starts_with("sqlite:") {
            sql::Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            sql::Dialect::Postgres
        } else {
            let scheme = url.split(':').next().unwrap_or(url);
            return Err(Error::UnsupportedUrl(format!(
                "{scheme}: use sqlite://PATH or postgres://USER@HOST/DATABASE"
            )));
        };
        Store::open(url, dialect).await
    }

    /// Closes every connection once it is returned; later calls fail. On SQLite the last
    /// connection to close folds the write-ahead log back into the database file.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a consistent copy of a SQLite store to the new file `path` while others may be
    /// writing (`VACUUM INTO`), for `retain backup`; a PostgreSQL store is backed up with the
    /// server's own tools and gives `false`.
    pub async fn snapshot_into(&self, path: &std::path::Path) -> Result<bool> {
        if self.d != sql::Dialect::Sqlite {
            return Ok(false);
        }
        sqlx::query("VACUUM INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Whether the store answers a trivial query: tells a store that is down from one that
    /// refuses a particular write.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// For test suites that run on both backends: a new, empty PostgreSQL database on the server
/// `RETAIN_TEST_POSTGRES_URL` names, and its URL. Without the variable there is none (`None`),
/// unless `RETAIN_REQUIRE_POSTGRES` is set, as CI sets it, and then that is an error.
pub async fn scratch_postgres_database(label: &str) -> Result<Option<String>> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Some(server) = std::env::var("RETAIN_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        if std::env::var_os("RETAIN_REQUIRE_POSTGRES").is_some() {
            return Err(Error::UnsupportedUrl(
                "RETAIN_REQUIRE_POSTGRES is set but RETAIN_TEST_POSTGRES_URL is not".into(),
            ));
        }
        return Ok(None);
    };
    let name = format!(
        "retain_{}_{}_{}_{}",
        label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        Utc::now().timestamp_micros() % 1_000_000
    );
    sqlx::any::install_default_drivers();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let (base, _) = server.rsplit_once('/').unwrap_or((&server, ""));
    Ok(Some(format!("{base}/{name}")))
}

#[cfg(test)]
mod tests;
