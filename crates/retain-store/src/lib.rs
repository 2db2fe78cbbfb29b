//! The operational store: runs and ingest history, the offer library, campaigns with their
//! members, work orders, callbacks and outcomes, the plan library and the audit log.
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
mod library;
mod records;
mod responses;
mod runs;
mod sql;
mod users;
mod work_orders;

use chrono::Utc;
use sqlx::AnyPool;

pub use error::{Error, Result};
pub use records::{
    Audit, AuditEvent, CallbackRecord, CampaignRecord, JournaledAudit, Launched, MAX_NAME_BYTES,
    MemberRecord, NewCampaign, NewWorkOrder, OutcomeRecord, PlannedContact, Scope, TemplateRecord,
    UserRecord, WorkOrderRecord, check_scope_id, check_user_name,
};
pub use runs::{IngestFileRecord, RunId, RunRecord};

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

    /// The campaign story: states move only forward, launching is once, callbacks correct.
    async fn campaign_story(store: &Store) {
        let new = NewCampaign {
            name: "weekly".into(),
            kind: "retention".into(),
            template: "weekly-high-end".into(),
            template_version: 1,
            definition: serde_json::json!({}),
            budget: 1000.0,
            as_of: "2026-01-01".into(),
            seed: 7,
            owner: "ana".into(),
            approval_level: 1,
        };
        let id = store.create_campaign(&new, "ana").await.unwrap();
        let event = |action: &'static str| Audit {
            actor: "bo",
            action,
            detail: serde_json::json!({}),
        };
        let member = MemberRecord {
            subscriber_id: 1,
            arm: "treatment".into(),
            stratum: "red/high".into(),
            level: "red".into(),
            tier: "high".into(),
            segment: "s".into(),
            reason: "price".into(),
            offer_id: "A".into(),
            offer_kind: "fee_discount".into(),
            channel: "sms".into(),
            p_churn: 0.5,
            clv: 100.0,
            arpu: 50.0,
            cost: 10.0,
            expected_cost: 5.0,
            expected_value: 20.0,
        };
        let order = NewWorkOrder {
            subscriber_id: 1,
            channel: "sms".into(),
            purpose: "retention".into(),
            offer_id: "A".into(),
            branch_id: "B1".into(),
            manager_id: String::new(),
            due_date: "2026-01-07".into(),
            payload: serde_json::json!({"text": "hi"}),
        };
        let members = [
            member.clone(),
            MemberRecord {
                subscriber_id: 2,
                arm: "control".into(),
                ..member
            },
        ];
        // Launching a draft is refused, and nothing is written.
        let err = store
            .launch(id, &members, std::slice::from_ref(&order), &event("launch"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("draft"), "{err}");
        assert!(store.work_orders(id).await.unwrap().is_empty());
        store
            .transition(
                id,
                &["draft"],
                "rehearsed",
                Some(("rehearsal", &serde_json::json!({"reach": 1}))),
                &event("rehearse"),
            )
            .await
            .unwrap();
        assert!(
            store
                .transition(id, &["draft"], "rehearsed", None, &event("rehearse"))
                .await
                .is_err()
        );
        store
            .transition(id, &["rehearsed"], "approved", None, &event("approve"))
            .await
            .unwrap();
        let first = store
            .launch(id, &members, std::slice::from_ref(&order), &event("launch"))
            .await
            .unwrap();
        assert_eq!(
            first,
            Launched {
                created: true,
                work_orders: 1,
                members: 2
            }
        );
        // Several subscribers' open work orders in one query: what asking one by one gives.
        let one = store.open_work_orders(1).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(store.open_work_orders_of(&[2, 1, 99]).await.unwrap(), one);
        assert!(store.open_work_orders_of(&[]).await.unwrap().is_empty());
        let again = store
            .launch(id, &members, std::slice::from_ref(&order), &event("launch"))
            .await
            .unwrap();
        assert_eq!(
            again,
            Launched {
                created: false,
                work_orders: 1,
                members: 2
            }
        );
        assert_eq!(
            store
                .add_work_orders(id, std::slice::from_ref(&order))
                .await
                .unwrap(),
            0
        );
        // Another campaign planned on the same people before this one launched: refused whole.
        let other = store.create_campaign(&new, "ana").await.unwrap();
        store
            .transition(other, &["draft"], "rehearsed", None, &event("rehearse"))
            .await
            .unwrap();
        store
            .transition(other, &["rehearsed"], "approved", None, &event("approve"))
            .await
            .unwrap();
        let err = store
            .launch(
                other,
                &members,
                std::slice::from_ref(&order),
                &event("launch"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(store.work_orders(other).await.unwrap().is_empty());
        assert!(store.members(other).await.unwrap().is_empty());
        assert_eq!(
            store.campaign(other).await.unwrap().unwrap().status,
            "approved"
        );
        let orders = store.work_orders(id).await.unwrap();
        assert_eq!(orders.len(), 1);
        let mut callback = CallbackRecord {
            work_order_id: orders[0].id,
            reached: true,
            accepted: false,
            stated_reason: Some("price".into()),
            notes: String::new(),
            follow_up: None,
            source: "f.csv:2".into(),
            recorded_by: "bo".into(),
        };
        assert_eq!(
            store
                .record_callbacks(id, std::slice::from_ref(&callback), &event("callbacks"))
                .await
                .unwrap(),
            (1, 0)
        );
        callback.accepted = true;
        assert_eq!(
            store
                .record_callbacks(id, std::slice::from_ref(&callback), &event("callbacks"))
                .await
                .unwrap(),
            (0, 1)
        );
        assert_eq!(store.callbacks(id).await.unwrap(), vec![callback.clone()]);
        assert_eq!(store.work_orders(id).await.unwrap()[0].status, "done");
        // Accepted without being reached is refused by the schema.
        let bad = CallbackRecord {
            reached: false,
            ..callback
        };
        assert!(
            store
                .record_callbacks(id, &[bad], &event("callbacks"))
                .await
                .is_err()
        );
        let outcome = OutcomeRecord {
            subscriber_id: 2,
            retained: false,
            arpu_after: None,
            source: "simulated".into(),
        };
        store
            .record_outcomes(id, std::slice::from_ref(&outcome))
            .await
            .unwrap();
        store
            .record_outcomes(id, std::slice::from_ref(&outcome))
            .await
            .unwrap();
        assert_eq!(store.outcomes(id).await.unwrap(), vec![outcome]);
        let log = store
            .audit_log("campaign", Some(&id.to_string()))
            .await
            .unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "create",
                "rehearse",
                "approve",
                "launch",
                "callbacks",
                "callbacks"
            ]
        );
        assert_eq!(
            store
                .save_template("t", &serde_json::json!({"a": 1}), "ana")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .save_template("t", &serde_json::json!({"a": 2}), "ana")
                .await
                .unwrap(),
            2
        );
        assert_eq!(store.templates().await.unwrap().len(), 2);
        assert_eq!(store.planned_contacts().await.unwrap().len(), 1);
        // The callback closed the only work order.
        assert!(store.open_work_orders(1).await.unwrap().is_empty());
        assert!(store.running_members(id).await.unwrap().is_empty());
        assert_eq!(store.running_members(0).await.unwrap().len(), 2);
        // An evaluated campaign runs no more; its contacts live in the campaign history.
        store
            .transition(
                id,
                &["launched"],
                "evaluated",
                Some(("evaluation", &serde_json::json!({"uplift": 0.1}))),
                &event("evaluate"),
            )
            .await
            .unwrap();
        assert!(store.planned_contacts().await.unwrap().is_empty());
        assert!(store.running_members(0).await.unwrap().is_empty());
        let record = store.campaign(id).await.unwrap().unwrap();
        assert_eq!(record.evaluation, Some(serde_json::json!({"uplift": 0.1})));

        let user = UserRecord {
            name: "li".into(),
            role: "approver".into(),
            manager_id: None,
            branch_id: None,
            approval_level: 2,
            password_hash: "$argon2id$x".into(),
            created_at: String::new(),
            disabled: false,
        };
        store.add_user(&user, "admin").await.unwrap();
        assert!(matches!(
            store.add_user(&user, "admin").await,
            Err(Error::Conflict(_))
        ));
        let bad = UserRecord {
            name: "x".into(),
            role: "boss".into(),
            ..user.clone()
        };
        assert!(
            store.add_user(&bad, "admin").await.is_err(),
            "roles are checked by the schema"
        );
        let found = store.user("li").await.unwrap().unwrap();
        assert_eq!((found.role.as_str(), found.approval_level), ("approver", 2));
        assert_eq!(store.audit_log("user", Some("li")).await.unwrap().len(), 1);

        // Names and scopes are checked before anything is stored: an empty manager id would
        // match every subscriber without an account manager.
        let manager = UserRecord {
            name: "wang".into(),
            role: "manager".into(),
            manager_id: Some("NJ01-M01".into()),
            approval_level: 0,
            ..user.clone()
        };
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for bad in [
            UserRecord {
                name: String::new(),
                ..manager.clone()
            },
            UserRecord {
                name: long.clone(),
                ..manager.clone()
            },
            UserRecord {
                name: "wang wei".into(),
                ..manager.clone()
            },
            UserRecord {
                name: "=cmd".into(),
                ..manager.clone()
            },
            UserRecord {
                name: "wa\u{0}ng".into(),
                ..manager.clone()
            },
            UserRecord {
                manager_id: Some(String::new()),
                ..manager.clone()
            },
            UserRecord {
                manager_id: Some(long.clone()),
                ..manager.clone()
            },
            UserRecord {
                manager_id: None,
                branch_id: Some(String::new()),
                ..manager.clone()
            },
            UserRecord {
                manager_id: None,
                ..manager.clone()
            },
        ] {
            let err = store.add_user(&bad, "admin").await.unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{bad:?}: {err}");
        }
        assert_eq!(store.users().await.unwrap().len(), 1, "nothing stored");
        store.add_user(&manager, "admin").await.unwrap();
        let head = UserRecord {
            name: "赵.branch_head@nj".into(),
            manager_id: None,
            branch_id: Some("NJ01".into()),
            ..manager.clone()
        };
        store.add_user(&head, "admin").await.unwrap();
        assert_eq!(store.users().await.unwrap().len(), 3);
    }

    /// What was audited stays as it was: the store refuses updates and deletes.
    async fn audit_is_append_only(store: &Store) {
        for sql in [
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
        ] {
            let err = sqlx::query(sql).execute(&store.pool).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        assert!(!store.audit_recent(None, None, 10).await.unwrap().is_empty());
    }

    /// A group larger than one insert statement is written whole and in order, and a replay
    /// of the same journal appends nothing twice.
    async fn journaled_events_are_appended_once(store: &Store) {
        let events: Vec<JournaledAudit> = (0..600)
            .map(|n| JournaledAudit {
                key: format!("boot-{n}"),
                at: format!("2026-11-25T10:00:{:02}+00:00", n % 60),
                actor: if n % 2 == 0 { "store-1" } else { "store-2" }.to_owned(),
                action: "decision".to_owned(),
                entity: "probe".to_owned(),
                entity_id: n.to_string(),
                detail: serde_json::json!({ "n": n }),
            })
            .collect();
        assert_eq!(store.append_journaled(&events[..400]).await.unwrap(), 400);
        // A replay overlaps what was appended before the crash.
        assert_eq!(store.append_journaled(&events).await.unwrap(), 200);
        let log = store.audit_log("probe", None).await.unwrap();
        assert_eq!(log.len(), 600);
        for (n, event) in log.iter().enumerate() {
            assert_eq!(event.entity_id, n.to_string());
            assert_eq!(event.detail["n"], n);
            assert_eq!(event.at, events[n].at);
            assert_eq!(event.actor, if n % 2 == 0 { "store-1" } else { "store-2" });
            assert_eq!(event.action, "decision");
        }
        // A NUL character (a hostile target expression) is stored, as U+FFFD: PostgreSQL text
        // cannot hold NUL, and an event the store refuses would hold up the journal.
        let hostile = JournaledAudit {
            key: "boot-nul".to_owned(),
            at: "2026-11-25T11:00:00+00:00".to_owned(),
            actor: "ana\0".to_owned(),
            action: "select".to_owned(),
            entity: "probe-nul".to_owned(),
            entity_id: "contract_expiring\0 or (".to_owned(),
            detail: serde_json::json!({ "tags": "a\u{0}b" }),
        };
        assert_eq!(store.append_journaled(&[hostile]).await.unwrap(), 1);
        let log = store.audit_log("probe-nul", None).await.unwrap();
        assert_eq!(log[0].entity_id, "contract_expiring\u{fffd} or (");
        assert_eq!(log[0].actor, "ana\u{fffd}");
        assert_eq!(log[0].detail["tags"], "a\u{fffd}b");
    }

    /// The first `events` journaled events of kind `bulk` appended, in order, for two
    /// subscribers and for all, and the store's own event on subscriber 3 beside them.
    async fn bulk_log_is_whole(store: &Store, events: usize) {
        for id in [Some("3"), Some("5"), None] {
            let log = store.audit_log("bulk", id).await.unwrap();
            let want: Vec<String> = (0..events)
                .map(|n| ((n * 7) % 13).to_string())
                .filter(|e| id.is_none_or(|id| id == e))
                .collect();
            let (direct, journaled): (Vec<_>, Vec<_>) =
                log.iter().partition(|e| e.detail.get("direct").is_some());
            let journaled: Vec<String> = journaled.iter().map(|e| e.entity_id.clone()).collect();
            assert_eq!(journaled, want, "{id:?} after {events} events");
            assert_eq!(direct.len(), usize::from(id != Some("5")), "{id:?}");
            assert!(log.windows(2).all(|w| w[0].id < w[1].id), "in order");
        }
    }

    /// Journaled events are found by entity whether they are in a listed run, after the last
    /// one, or in a pass that stopped halfway; the store's own events beside them.
    async fn journaled_events_are_found_through_the_bulk_index(store: &Store) {
        let journaled = |from: usize, to: usize| -> Vec<JournaledAudit> {
            (from..to)
                .map(|n| JournaledAudit {
                    key: format!("bulk-{n:06}"),
                    at: "2026-11-25T10:00:00+00:00".to_owned(),
                    actor: "store-1".to_owned(),
                    action: "decision".to_owned(),
                    entity: "bulk".to_owned(),
                    // Out of order, so sorting them for the index matters.
                    entity_id: ((n * 7) % 13).to_string(),
                    detail: serde_json::json!({ "n": n }),
                })
                .collect()
        };
        let direct = Audit {
            actor: "admin",
            action: "note",
            detail: serde_json::json!({ "direct": true }),
        };
        let (lag, _) = store.audit_index_lag().await.unwrap();
        store.append_journaled(&journaled(0, 300)).await.unwrap();
        store.audit("bulk", "3", &direct).await.unwrap();
        store.append_journaled(&journaled(300, 500)).await.unwrap();
        assert_eq!(store.audit_index_lag().await.unwrap().0, lag + 500);
        bulk_log_is_whole(store, 500).await;

        // A pass asked to stop two steps into appending to the index (after one step per 64
        // ids of the log to sort them) leaves entries of a run it does not list.
        let last = store.audit_recent(None, None, 1).await.unwrap()[0].id;
        let sorting = (last + 63) / 64;
        let mut steps = 0;
        let stopped = store
            .index_audit(usize::MAX, 64, || {
                steps += 1;
                std::future::ready(steps < sorting + 2)
            })
            .await
            .unwrap();
        assert_eq!(stopped, 0);
        let unlisted: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_journal_index \
             WHERE run NOT IN (SELECT run FROM audit_journal_runs)",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(unlisted, 128);
        assert_eq!(store.audit_index_lag().await.unwrap().0, lag + 500);
        bulk_log_is_whole(store, 500).await;

        // Part of the way (over the stopped pass's entries), then the rest, with more events
        // arriving between.
        let go_on = || std::future::ready(true);
        let first = store
            .index_audit(lag as usize + 200, 64, go_on)
            .await
            .unwrap();
        assert_eq!(first, lag as usize + 200);
        assert_eq!(store.audit_index_lag().await.unwrap().0, 300);
        bulk_log_is_whole(store, 500).await;
        store.append_journaled(&journaled(500, 520)).await.unwrap();
        assert_eq!(
            store.index_audit(usize::MAX, 1000, go_on).await.unwrap(),
            320
        );
        let (lag, upto) = store.audit_index_lag().await.unwrap();
        assert_eq!(lag, 0);
        assert_eq!(upto, store.audit_recent(None, None, 1).await.unwrap()[0].id);
        bulk_log_is_whole(store, 520).await;
        assert_eq!(store.index_audit(usize::MAX, 64, go_on).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sqlite_campaign_story() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("retain.db").display());
        let store = Store::connect(&url).await.unwrap();
        campaign_story(&store).await;
        audit_is_append_only(&store).await;
        journaled_events_are_appended_once(&store).await;
        journaled_events_are_found_through_the_bulk_index(&store).await;
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
    async fn postgres_store_story() {
        let Some(url) = scratch_postgres_database("store").await.unwrap() else {
            eprintln!("skipped: set RETAIN_TEST_POSTGRES_URL to run on PostgreSQL");
            return;
        };
        let store = Store::connect(&url).await.unwrap();
        story(&store).await;
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(again.runs(10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn postgres_campaign_story() {
        let Some(url) = scratch_postgres_database("campaign").await.unwrap() else {
            eprintln!("skipped: set RETAIN_TEST_POSTGRES_URL to run on PostgreSQL");
            return;
        };
        let store = Store::connect(&url).await.unwrap();
        campaign_story(&store).await;
        audit_is_append_only(&store).await;
        journaled_events_are_appended_once(&store).await;
        journaled_events_are_found_through_the_bulk_index(&store).await;
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        use sql::Dialect;
        let sql = "SELECT '?' FROM t WHERE a = ? AND (?2 IS NULL OR b = ?2) AND c = ?";
        assert_eq!(
            sql::Dialect::translate(Dialect::Postgres, "SELECT '?' FROM t WHERE a = ? AND c = ?"),
            "SELECT '?' FROM t WHERE a = $1 AND c = $2"
        );
        assert_eq!(
            sql::Dialect::translate(Dialect::Postgres, "WHERE (?1 IS NULL OR e = ?1) LIMIT ?3"),
            "WHERE ($1 IS NULL OR e = $1) LIMIT $3"
        );
        assert_eq!(sql::Dialect::translate(Dialect::Sqlite, sql), sql);
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        let err = Store::connect("mysql://x").await.unwrap_err();
        assert!(err.to_string().contains("mysql"), "{err}");
    }
}
