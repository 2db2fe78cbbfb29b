//! The operational store: runs and ingest history now; campaigns, work orders, callbacks,
//! users and the audit log as those capabilities arrive.
//!
//! Only this crate knows SQL of the operational store. [`Store::connect`] picks the backend
//! from the URL scheme; SQLite (`sqlite://path`) is the embedded default.
//!
//! ```no_run
//! # async fn f() -> retain_store::Result<()> {
//! let store = retain_store::Store::connect("sqlite://retain.db").await?;
//! let run = store.begin_run("ingest", &serde_json::json!({"table": "plans"})).await?;
//! store.finish_run(run, &serde_json::json!({"loaded": 13})).await?;
//! # Ok(()) }
//! ```

mod error;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::{Error, Result};

/// The id of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunId(pub i64);

/// A recorded run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    pub params: serde_json::Value,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// One input file loaded into a table.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFileRecord {
    pub table: String,
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub read: u64,
    pub loaded: u64,
    pub quarantined: u64,
    pub quarantine_file: String,
}

/// The operational store, over whichever backend the URL named.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteStore::connect(url).await?)
        } else {
            let scheme = url.split(':').next().unwrap_or(url);
            return Err(Error::UnsupportedUrl(format!(
                "{scheme}: this build supports sqlite:// URLs"
            )));
        };
        Ok(Store { backend })
    }

    /// Records the start of a run.
    pub async fn begin_run(&self, kind: &str, params: &serde_json::Value) -> Result<RunId> {
        match &self.backend {
            Backend::Sqlite(s) => s.begin_run(kind, params).await,
        }
    }

    /// Marks a run succeeded with its summary.
    pub async fn finish_run(&self, run: RunId, summary: &serde_json::Value) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.end_run(run, "succeeded", Some(summary), None).await,
        }
    }

    /// Marks a run failed with the error a user saw.
    pub async fn fail_run(&self, run: RunId, error: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.end_run(run, "failed", None, Some(error)).await,
        }
    }

    /// Records the files of a successful load, in one transaction.
    pub async fn record_ingest(&self, run: RunId, files: &[IngestFileRecord]) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.record_ingest(run, files).await,
        }
    }

    /// Whether a file with this content was loaded into `table` before.
    pub async fn loaded_before(&self, table: &str, sha256: &str) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => s.loaded_before(table, sha256).await,
        }
    }

    /// Replaces the stored offer library with `offers` (id, definition), in one transaction.
    pub async fn replace_offers(&self, offers: &[(String, serde_json::Value)]) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.replace_offers(offers).await,
        }
    }

    /// The stored offer library, by id.
    pub async fn offers(&self) -> Result<Vec<(String, serde_json::Value)>> {
        match &self.backend {
            Backend::Sqlite(s) => s.offers().await,
        }
    }

    /// The most recent runs, newest first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        match &self.backend {
            Backend::Sqlite(s) => s.runs(limit).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store story: every backend must tell it the same way.
    async fn story(store: &Store) {
        let offers = vec![
            ("A".to_owned(), serde_json::json!({"kind": "fee_discount"})),
            ("B".to_owned(), serde_json::json!({"kind": "data_bonus"})),
        ];
        store.replace_offers(&offers).await.unwrap();
        store.replace_offers(&offers[1..]).await.unwrap();
        assert_eq!(store.offers().await.unwrap(), offers[1..].to_vec());

        let run = store
            .begin_run("ingest", &serde_json::json!({"table": "plans"}))
            .await
            .unwrap();
        let file = IngestFileRecord {
            table: "plans".into(),
            path: "plans.csv".into(),
            sha256: "ab".repeat(32),
            bytes: 120,
            read: 10,
            loaded: 9,
            quarantined: 1,
            quarantine_file: "q.csv".into(),
        };
        assert!(!store.loaded_before("plans", &file.sha256).await.unwrap());
        store
            .record_ingest(run, std::slice::from_ref(&file))
            .await
            .unwrap();
        store
            .finish_run(run, &serde_json::json!({"loaded": 9}))
            .await
            .unwrap();
        assert!(store.loaded_before("plans", &file.sha256).await.unwrap());
        assert!(
            !store
                .loaded_before("subscribers", &file.sha256)
                .await
                .unwrap()
        );

        let failed = store
            .begin_run("ingest", &serde_json::json!({}))
            .await
            .unwrap();
        store.fail_run(failed, "bad file").await.unwrap();

        let runs = store.runs(10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id, failed.0);
        assert_eq!(runs[0].status, "failed");
        assert_eq!(runs[0].error.as_deref(), Some("bad file"));
        assert_eq!(runs[1].status, "succeeded");
        assert_eq!(runs[1].summary, Some(serde_json::json!({"loaded": 9})));
        assert!(runs[1].finished_at.is_some());

        // Counts that do not reconcile are refused by the schema itself.
        let bad = IngestFileRecord { loaded: 10, ..file };
        assert!(store.record_ingest(run, &[bad]).await.is_err());
    }

    #[tokio::test]
    async fn sqlite_store_story() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("retain.db").display());
        let store = Store::connect(&url).await.unwrap();
        story(&store).await;
        // Reconnecting keeps the data and does not re-run migrations.
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(again.runs(10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        let err = Store::connect("mysql://x").await.unwrap_err();
        assert!(err.to_string().contains("mysql"), "{err}");
    }
}
