//! The role × endpoint matrix derived from the authorization table, and managers seeing only
//! their own subscribers, on SQLite and PostgreSQL.

use crate::common::*;

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_table_says_on_sqlite() {
    role_matrix(false).await;
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_table_says_on_postgres() {
    role_matrix(true).await;
}

async fn role_matrix(postgres: bool) {
    let Some(url) = store_url(postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), url).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    add_user(&store, "root", "admin", None).await;
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "approver", None).await;
    add_user(&store, "zhou", "store", None).await;
    let state = AppState::open(&ws).await.unwrap();
    let app = router(state.clone());
    let server_dir = dir.path().to_string_lossy().into_owned();

    // A launched campaign, through the API, so work orders exist.
    let root = login(&app, "root").await;
    let (status, c) = call(
        &app,
        "POST",
        "/api/v1/campaigns",
        Some(&root),
        Some(serde_json::json!({ "template": "level-flow", "budget": 5000 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    let id = c["id"].as_i64().unwrap();
    for step in ["rehearse", "approve", "launch"] {
        let (status, body) = call(
            &app,
            "POST",
            &format!("/api/v1/campaigns/{id}/{step}"),
            Some(&root),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    let (_, queue) = call(
        &app,
        "GET",
        "/api/v1/work-orders?limit=5000",
        Some(&root),
        None,
    )
    .await;
    let orders = queue["items"].as_array().unwrap();
    assert!(!orders.is_empty(), "the launch made work orders");
    // The manager keeps a group too, so the group endpoints have something of theirs to show.
    let (_, groups) = retain_groups::latest_list(&ws).unwrap().unwrap();
    let keeps_group = |m: &str| groups.iter().any(|g| g.manager_id.as_deref() == Some(m));
    let order = orders
        .iter()
        .find(|w| keeps_group(w["manager_id"].as_str().unwrap()))
        .expect("a work order whose account manager keeps a group");
    let manager = order["manager_id"].as_str().unwrap().to_owned();
    let order_id = order["id"].as_i64().unwrap();
    let customer = order["subscriber_id"].as_i64().unwrap();
    let group = groups
        .iter()
        .find(|g| g.manager_id.as_deref() == Some(manager.as_str()))
        .unwrap()
        .group_id
        .clone();
    let others_group = groups
        .iter()
        .find(|g| g.manager_id.as_deref() != Some(manager.as_str()))
        .unwrap()
        .group_id
        .clone();
    add_user(&store, "wang", "manager", Some(&manager)).await;

    // A follow-up date past any schedule is refused before the callback is recorded, so the
    // work order stays open and a valid answer still escalates it.
    let other = orders
        .iter()
        .find(|w| w["id"] != order_id && w["channel"] == "outbound_call")
        .or_else(|| orders.iter().find(|w| w["id"] != order_id))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/work-orders/{other}/callback"),
        Some(&root),
        Some(serde_json::json!({ "reached": false, "accepted": false, "follow_up": "+262142-12-31" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("follow_up"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/work-orders/{other}/callback"),
        Some(&root),
        Some(serde_json::json!({ "reached": false, "accepted": false, "follow_up": "2100-12-31" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Satisfaction is 0–10, and only from someone reached.
    for (answer, why) in [
        (
            serde_json::json!({ "reached": true, "accepted": false, "satisfaction": 11 }),
            "0–10",
        ),
        (
            serde_json::json!({ "reached": false, "accepted": false, "satisfaction": 7 }),
            "not reached",
        ),
        (
            serde_json::json!({ "reached": true, "accepted": false, "satisfaction": -1 }),
            "",
        ),
        (
            serde_json::json!({ "reached": true, "accepted": false, "satisfaction": 1e9 }),
            "",
        ),
    ] {
        let (status, body) = call(
            &app,
            "POST",
            &format!("/api/v1/work-orders/{other}/callback"),
            Some(&root),
            Some(answer.clone()),
        )
        .await;
        assert!(status.is_client_error(), "{answer}: {status} {body}");
        assert!(body.to_string().contains(why), "{answer}: {body}");
    }
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/work-orders/{other}/callback"),
        Some(&root),
        Some(serde_json::json!({ "reached": true, "accepted": false, "satisfaction": 9 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["satisfaction"], 9, "{body}");

    // The strategy table comes with the library; a library that drops an offer the
    // workspace's own table names is refused, naming the offer.
    let (status, offers) = call(&app, "GET", "/api/v1/offers", Some(&root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        offers["strategies"].as_array().unwrap().len(),
        16,
        "{offers}"
    );
    let table = ws.root().join("strategies.toml");
    std::fs::write(&table, retain_offers::DEFAULT_STRATEGIES).unwrap();
    let without =
        retain_offers::DEFAULT_OFFERS.replace("id = \"NETFIX-VISIT\"", "id = \"NETFIX-GONE\"");
    let (status, body) = call(
        &app,
        "PUT",
        "/api/v1/offers",
        Some(&root),
        Some(serde_json::json!({ "toml": without })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("NETFIX-VISIT"),
        "{body}"
    );
    std::fs::remove_file(&table).unwrap();

    // Win-back: the recent leavers, numbers masked, a manager's own only; the counter may not.
    let (status, all) = call(&app, "GET", "/api/v1/winback", Some(&root), None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let items = all["items"].as_array().unwrap();
    assert!(
        all["leavers"].as_u64().unwrap() >= items.len() as u64 && !items.is_empty(),
        "{all}"
    );
    assert!(
        items
            .iter()
            .all(|l| l["msisdn"].as_str().unwrap().contains('*')),
        "{all}"
    );
    assert_eq!(
        all["voluntary"].as_u64().unwrap() + all["involuntary"].as_u64().unwrap(),
        all["leavers"].as_u64().unwrap()
    );
    for bad in [
        "window_months=0",
        "window_months=25",
        "limit=0",
        "window_months=x",
        "what=1",
    ] {
        let (status, body) = call(
            &app,
            "GET",
            &format!("/api/v1/winback?{bad}"),
            Some(&root),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let wang = login(&app, "wang").await;
    let (status, own) = call(
        &app,
        "GET",
        "/api/v1/winback?window_months=12",
        Some(&wang),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert!(
        own["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["manager_id"] == manager.as_str()),
        "{own}"
    );

    // The counter's decision shows the subscriber's open work orders (read by the audit
    // writer with its group) and is audited.
    let zhou = login(&app, "zhou").await;
    let (status, _) = call(&app, "GET", "/api/v1/winback", Some(&zhou), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, decision) = call(
        &app,
        "GET",
        &format!("/api/v1/decisions/{customer}?channel=store"),
        Some(&zhou),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    let open: Vec<i64> = decision["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert!(open.contains(&order_id), "{decision}");
    assert!(
        open.iter().all(|id| orders
            .iter()
            .any(|w| w["id"] == *id && w["subscriber_id"] == customer)),
        "{decision}"
    );
    state.flush_audit().await;
    let audited = store
        .audit_log("customer", Some(&customer.to_string()))
        .await
        .unwrap();
    assert!(
        audited
            .iter()
            .any(|e| e.actor == "zhou" && e.action == "decision"),
        "{audited:?}"
    );

    let users = [
        ("root", "admin"),
        ("ana", "analyst"),
        ("li", "approver"),
        ("wang", "manager"),
        ("zhou", "store"),
    ];
    let mut tokens = Vec::new();
    for (name, role) in users {
        tokens.push((name, role, login(&app, name).await));
    }
    let concrete = |path: &str| {
        let path = if path == "/api/v1/targets" {
            "/api/v1/targets?tags=contract_expiring"
        } else {
            path
        };
        path.replace("/campaigns/{id}", &format!("/campaigns/{id}"))
            .replace("/work-orders/{id}", &format!("/work-orders/{order_id}"))
            .replace("/groups/{id}", &format!("/groups/{group}"))
            .replace("{id}", &customer.to_string())
            .replace("{key}", &customer.to_string())
    };
    // No answer to any role shows a full phone number; looking one up by number neither.
    let numbers = phone_numbers(dir.path());
    let by_number = subscribers(dir.path())
        .iter()
        .zip(&numbers)
        .find(|((id, _, _), _)| *id == customer.to_string())
        .map(|(_, n)| n.clone())
        .unwrap();
    for (_, _, token) in &tokens {
        let (_, answer) = call(
            &app,
            "GET",
            &format!("/api/v1/decisions/{by_number}?channel=store"),
            Some(token),
            None,
        )
        .await;
        assert!(
            full_numbers(&answer.to_string(), &numbers).is_empty(),
            "{answer}"
        );
    }
    // A manager sees the groups they keep and nobody else's, and records only their own visits.
    let wang = &tokens.iter().find(|(n, _, _)| *n == "wang").unwrap().2;
    let (status, mine) = call(&app, "GET", "/api/v1/groups?limit=1000", Some(wang), None).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let listed = mine["groups"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|g| g["manager_id"] == manager.as_str()),
        "{mine}"
    );
    for (method, path) in [
        ("GET", format!("/api/v1/groups/{others_group}")),
        ("POST", format!("/api/v1/groups/{others_group}/visits")),
    ] {
        let body = (method == "POST").then(|| {
            serde_json::json!({ "visit_date": "2026-10-20", "channel": "phone", "outcome": "routine" })
        });
        let (status, answer) = call(&app, method, &path, Some(wang), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let (status, answer) = call(
        &app,
        "POST",
        &format!("/api/v1/groups/{group}/visits"),
        Some(wang),
        Some(
            serde_json::json!({ "visit_date": "2026-10-20", "channel": "phone",
                                 "outcome": "routine", "manager_id": "SOMEONE-ELSE" }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = call(
        &app,
        "POST",
        &format!("/api/v1/groups/{group}/visits"),
        Some(wang),
        Some(serde_json::json!({ "visit_date": "2999-01-01", "channel": "phone", "outcome": "routine" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("2999-01-01"),
        "{answer}"
    );
    let (status, league) = call(&app, "GET", "/api/v1/managers", Some(wang), None).await;
    assert_eq!(status, StatusCode::OK, "{league}");
    assert!(
        league["managers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["manager_id"] == manager.as_str()),
        "{league}"
    );

    // Logging out ends the session the rest of the matrix uses: it goes last.
    let mut rules: Vec<_> = RULES.iter().collect();
    rules.sort_by_key(|r| r.path == "/api/v1/logout");
    for rule in rules {
        let uri = concrete(rule.path);
        let body = match (rule.method, rule.path) {
            ("POST", "/api/v1/campaigns") => Some(serde_json::json!({ "template": "level-flow" })),
            (_, "/api/v1/work-orders/{id}/callback") => {
                Some(serde_json::json!({ "reached": true, "accepted": false }))
            }
            (_, "/api/v1/campaigns/{id}/reject") => Some(serde_json::json!({ "note": "no" })),
            ("PUT", "/api/v1/rules") => {
                Some(serde_json::json!({ "toml": retain_warn::DEFAULT_RULES }))
            }
            ("PUT", "/api/v1/offers") => {
                Some(serde_json::json!({ "toml": retain_offers::DEFAULT_OFFERS }))
            }
            ("POST", "/api/v1/groups/{id}/visits") => Some(serde_json::json!({
                "visit_date": chrono::Local::now().date_naive().to_string(),
                "channel": "onsite",
                "outcome": "routine",
                "notes": "例行拜访",
                "manager_id": manager,
            })),
            _ => None,
        };
        let (status, _) = call(&app, rule.method, &uri, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {uri} without a token",
            rule.method
        );
        for (name, role, token) in &tokens {
            let (status, answer) = call(&app, rule.method, &uri, Some(token), body.clone()).await;
            let what = format!("{name} ({role}) {} {uri}: {status} {answer}", rule.method);
            let leaked = full_numbers(&answer.to_string(), &numbers);
            assert!(
                leaked.is_empty(),
                "{name} ({role}) {} {uri} shows {leaked:?}",
                rule.method
            );
            // Where the workspace lies on the server's disk is nobody's business.
            assert!(
                !answer.to_string().contains(server_dir.as_str()),
                "{what} shows the server's directories"
            );
            if rule.roles.contains(role) {
                let ok = status.is_success()
                    // A step the campaign's state no longer allows: authorized all the same.
                    || (status == StatusCode::CONFLICT && uri.contains("/campaigns/"))
                    // The proposal another role accepted or rejected first.
                    || (status == StatusCode::CONFLICT && uri.contains("/rules/proposal/"))
                    // Reports this test does not build (segments, model): authorized, not ready.
                    || (status == StatusCode::SERVICE_UNAVAILABLE
                        && answer["code"] == "not_ready");
                assert!(ok, "{what}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                assert_eq!(answer["code"], "forbidden", "{what}");
            }
        }
    }
}

#[tokio::test]
async fn managers_see_only_their_own_subscribers_on_sqlite() {
    manager_scope(false).await;
}

#[tokio::test]
async fn managers_see_only_their_own_subscribers_on_postgres() {
    manager_scope(true).await;
}

async fn manager_scope(postgres: bool) {
    let Some(url) = store_url(postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path(), url).await;
    let store = Store::connect(&ws.store_url()).await.unwrap();
    let subs = subscribers(dir.path());
    let (mine, manager, branch) = subs.iter().find(|(_, m, _)| !m.is_empty()).unwrap().clone();
    let (theirs, _, _) = subs
        .iter()
        .find(|(_, m, _)| !m.is_empty() && *m != manager)
        .expect("two managers")
        .clone();
    let (elsewhere, _, _) = subs
        .iter()
        .find(|(_, _, b)| *b != branch)
        .expect("two branches")
        .clone();
    let (unmanaged, _, _) = subs
        .iter()
        .find(|(_, m, b)| m.is_empty() && *b == branch)
        .expect("a subscriber of the branch without an account manager")
        .clone();
    add_user(&store, "ana", "analyst", None).await;
    add_user(&store, "li", "approver", None).await;
    add_user(&store, "wang", "manager", Some(&manager)).await;
    add_user(&store, "zhou", "store", None).await;
    let head = UserRecord {
        name: "zhao".into(),
        role: "manager".into(),
        manager_id: None,
        branch_id: Some(branch.clone()),
        approval_level: 0,
        password_hash: hash_password(PASSWORD).unwrap(),
        created_at: String::new(),
        disabled: false,
    };
    store.add_user(&head, "test").await.unwrap();
    let state = AppState::open(&ws).await.unwrap();
    let app = router(state.clone());

    // A branch head (a manager scoped to a branch) sees the whole branch and nothing else.
    let zhao = login(&app, "zhao").await;
    for (id, expected) in [
        (&mine, StatusCode::OK),
        (&unmanaged, StatusCode::OK),
        (&elsewhere, StatusCode::NOT_FOUND),
    ] {
        let uri = format!("/api/v1/customers/{id}");
        let (status, body) = call(&app, "GET", &uri, Some(&zhao), None).await;
        assert_eq!(status, expected, "{uri}: {body}");
    }
    let (_, list) = call(
        &app,
        "GET",
        "/api/v1/warnings?limit=1000",
        Some(&zhao),
        None,
    )
    .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["branch_id"] == branch.as_str()),
        "{list}"
    );

    let (status, body) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    for (name, password) in [("ana", "wrong password"), ("nobody", PASSWORD)] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/login",
            None,
            Some(serde_json::json!({ "name": name, "password": password })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "unauthorized");
    }

    let wang = login(&app, "wang").await;
    for uri in [
        format!("/api/v1/customers/{mine}"),
        format!("/api/v1/decisions/{mine}?channel=store"),
    ] {
        let (status, body) = call(&app, "GET", &uri, Some(&wang), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let number = body["msisdn"]
            .as_str()
            .or(body["profile"]["msisdn"].as_str())
            .unwrap();
        assert!(number.contains("****"), "masked: {number}");
    }
    for uri in [
        format!("/api/v1/customers/{theirs}"),
        format!("/api/v1/decisions/{theirs}"),
    ] {
        let (status, body) = call(&app, "GET", &uri, Some(&wang), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    let (status, list) = call(
        &app,
        "GET",
        "/api/v1/warnings?limit=1000",
        Some(&wang),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert!(
        items.iter().all(|w| w["manager_id"] == manager.as_str()),
        "{list}"
    );
    let ana = login(&app, "ana").await;
    let (_, all) = call(&app, "GET", "/api/v1/warnings?limit=1000", Some(&ana), None).await;
    assert!(all["total"].as_u64() > list["total"].as_u64());

    state.flush_audit().await;
    // Reads of customer data are in the audit log.
    let log = store.audit_log("customer", Some(&mine)).await.unwrap();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("zhao", "read"), ("wang", "read"), ("wang", "decision")]
    );
    state.flush_audit().await;
    let log = store.audit_log("user", Some("ana")).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["add", "login_failed", "login"]);

    let (status, doc) = call(&app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/decisions/{key}"]["get"].is_object());
    add_user(&store, "root", "admin", None).await;
    let root = login(&app, "root").await;
    let (_, metrics) = call(&app, "GET", "/metrics", Some(&root), None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            "retain_http_requests_total{route=\"/api/v1/decisions/{key}\",status=\"404\"} 1"
        ),
        "{text}"
    );
    // A latency histogram per route, its buckets cumulative up to the count; the metrics
    // request itself is in flight while it is answered.
    let route = "route=\"/api/v1/decisions/{key}\"";
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let inf = value(&format!(
        "retain_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}"
    ));
    let count = value(&format!(
        "retain_http_request_duration_seconds_count{{{route}}}"
    ));
    let first = value(&format!(
        "retain_http_request_duration_seconds_bucket{{{route},le=\"0.005\"}}"
    ));
    assert!(
        inf >= 1.0 && (inf - count).abs() < 1e-9 && first <= inf,
        "{text}"
    );
    assert!(value("retain_http_requests_in_flight ") >= 1.0, "{text}");
    grafana_asks_only_for_what_is_served(text);
}

/// The Grafana dashboard in deploy/ queries metric families this page declares, by labels
/// their series carry.
fn grafana_asks_only_for_what_is_served(text: &str) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/retain.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("retain_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            // Labels grouped by, filtered on or shown in the legend.
            let mut labels: Vec<&str> = legend
                .split("{{")
                .skip(1)
                .filter_map(|l| l.split("}}").next())
                .collect();
            for clause in expr.split("by (").skip(1) {
                labels.extend(clause.split(')').next().unwrap().split(", "));
            }
            labels.extend(expr.split('{').skip(1).filter_map(|l| l.split('=').next()));
            for name in names {
                queried += 1;
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|f| families.contains(f))
                    .unwrap_or(name);
                assert!(families.contains(&family), "{name} is not served:\n{text}");
                for series in text.lines().filter(|l| l.starts_with(&format!("{name}{{"))) {
                    for label in labels
                        .iter()
                        .filter(|l| **l != "le" || name.ends_with("_bucket"))
                    {
                        assert!(
                            series.contains(&format!("{label}=\"")),
                            "{expr}: {series} has no {label}"
                        );
                    }
                }
            }
        }
    }
    assert!(queried >= 10, "{queried}");
}
