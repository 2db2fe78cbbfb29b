//! The stories every backend must tell the same way, told on SQLite and, when a server is
//! given, on PostgreSQL.

mod audit;
mod jobs;

use super::*;
use audit::{
    audit_is_append_only, journaled_events_are_appended_once,
    journaled_events_are_found_through_the_bulk_index,
};

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
            &[CampaignStatus::Draft],
            CampaignStatus::Rehearsed,
            Some(("rehearsal", &serde_json::json!({"reach": 1}))),
            &event("rehearse"),
        )
        .await
        .unwrap();
    assert!(
        store
            .transition(
                id,
                &[CampaignStatus::Draft],
                CampaignStatus::Rehearsed,
                None,
                &event("rehearse")
            )
            .await
            .is_err()
    );
    store
        .transition(
            id,
            &[CampaignStatus::Rehearsed],
            CampaignStatus::Approved,
            None,
            &event("approve"),
        )
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
        .transition(
            other,
            &[CampaignStatus::Draft],
            CampaignStatus::Rehearsed,
            None,
            &event("rehearse"),
        )
        .await
        .unwrap();
    store
        .transition(
            other,
            &[CampaignStatus::Rehearsed],
            CampaignStatus::Approved,
            None,
            &event("approve"),
        )
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
        CampaignStatus::Approved
    );
    let orders = store.work_orders(id).await.unwrap();
    assert_eq!(orders.len(), 1);
    let mut callback = CallbackRecord {
        work_order_id: orders[0].id,
        reached: true,
        accepted: false,
        stated_reason: Some("price".into()),
        satisfaction: Some(7),
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
            &[CampaignStatus::Launched],
            CampaignStatus::Evaluated,
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
    // Disabled once however often it is asked, enabled, removed: each change audited once.
    assert!(store.set_user_disabled("li", true, "admin").await.unwrap());
    assert!(!store.set_user_disabled("li", true, "admin").await.unwrap());
    assert!(store.user("li").await.unwrap().unwrap().disabled);
    assert!(store.set_user_disabled("li", false, "admin").await.unwrap());
    assert!(matches!(
        store.set_user_disabled("nobody", true, "admin").await,
        Err(Error::NotFound(_))
    ));
    store.remove_user("li", "admin").await.unwrap();
    assert!(store.user("li").await.unwrap().is_none());
    let actions: Vec<String> = store
        .audit_log("user", Some("li"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions.len(), 4, "{actions:?}");
    store.add_user(&user, "admin").await.unwrap();

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
    jobs::job_story(&store).await;
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
    jobs::job_story(&store).await;
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

#[tokio::test]
async fn unknown_schemes_are_refused() {
    let err = Store::connect("mysql://x").await.unwrap_err();
    assert!(err.to_string().contains("mysql"), "{err}");
}
