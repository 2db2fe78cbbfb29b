//! The OpenAPI 3.1 document. Every authenticated route comes from the same table as the
//! authorization rules, so the document lists who may call each one; a test checks that the
//! router, the table and this document agree.

use serde_json::{Value, json};

use crate::authz::RULES;

/// Summary, query parameters and request body schema of an authenticated route.
fn describe(method: &str, path: &str) -> (&'static str, &'static [&'static str], Option<Value>) {
    match (method, path) {
        ("GET", "/api/v1/me") => ("The logged-in user, role, scope and CSRF token", &[], None),
        ("POST", "/api/v1/logout") => ("End the session", &[], None),
        ("GET", "/api/v1/overview") => (
            "Subscribers by status, revenue, ARPU and cancellations by month, warnings by level and their trend, campaign retention",
            &[],
            None,
        ),
        ("GET", "/api/v1/warnings") => (
            "The newest warning list with reasons; filters by level, branch, manager, rule and cohort; managers see their own subscribers; format=csv exports the filtered list (audited)",
            &[
                "level", "branch", "manager", "rule", "cohort", "limit", "offset", "format",
            ],
            None,
        ),
        ("GET", "/api/v1/customers/{id}") => (
            "Customer 360: profile (number masked), usage, events, contracts, warnings, churn score and reasons, segments, value, contacts, recommendations, open work orders; every read is audited",
            &[],
            None,
        ),
        ("GET", "/api/v1/decisions/{key}") => (
            "Ranked retention offers for one subscriber (id or msisdn), with the reason, talking points, contact-policy blocks and open work orders",
            &["channel"],
            None,
        ),
        ("GET", "/api/v1/segments") => (
            "Segmentation report: clusters with names, RFM groups, value tiers, lifecycle stages, scenarios, tags, retention curves",
            &[],
            None,
        ),
        ("GET", "/api/v1/network") => (
            "The network's segmentation: cells with location, district, subscribers, churn, complaints, risk and experience for the map; districts; calling circles (count, size, waves, churn inside and outside, leaders at risk)",
            &["district"],
            None,
        ),
        ("GET", "/api/v1/tags") => (
            "The tag library (标签库) with each tag's condition and how many subscribers carry it",
            &[],
            None,
        ),
        ("GET", "/api/v1/targets") => (
            "Select a target group by a tag expression (e.g. contract_expiring and not enterprise_member): count and a masked sample; whole_circles=true widens it to the selected subscribers' whole calling circles",
            &["tags", "whole_circles"],
            None,
        ),
        ("GET", "/api/v1/model") => (
            "Churn model report: AUC, lift by decile, calibration, importance, drift",
            &[],
            None,
        ),
        ("GET", "/api/v1/rules") => (
            "The warning rules and scorecard in force, with the latest backtest",
            &[],
            None,
        ),
        ("PUT", "/api/v1/rules") => (
            "Replace the warning rules (TOML, checked first; errors name line and column); audited",
            &[],
            Some(source()),
        ),
        ("POST", "/api/v1/rules/backtest") => (
            "Backtest the posted rules (or those in force) on the labelled history",
            &[],
            Some(source()),
        ),
        ("PUT", "/api/v1/offers") => (
            "Replace the offer library (TOML, checked first); audited",
            &[],
            Some(source()),
        ),
        ("GET", "/api/v1/offers") => ("The offer library and the latest matching run", &[], None),
        ("GET", "/api/v1/templates") => (
            "The plan library: saved and bundled campaign templates",
            &[],
            None,
        ),
        ("GET", "/api/v1/campaigns") => ("All campaigns with status and uplift", &[], None),
        ("POST", "/api/v1/campaigns") => (
            "Create a draft campaign from a template",
            &[],
            Some(
                json!({ "type": "object", "required": ["template"], "properties": {
                "template": { "type": "string" }, "budget": { "type": "number", "exclusiveMinimum": 0 },
                "name": { "type": "string" }, "as_of": { "type": "string", "format": "date" },
                "seed": { "type": "integer", "minimum": 0 } } }),
            ),
        ),
        ("GET", "/api/v1/campaigns/{id}") => (
            "One campaign: definition, rehearsal, evaluation, history (audit) and work orders by channel",
            &[],
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/rehearse") => (
            "Plan on a sample and project reach, cost, saves, ROI and conflicts",
            &[],
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/approve") => (
            "Approve a rehearsed campaign (approvers of the budget's level, not the owner)",
            &[],
            Some(note()),
        ),
        ("POST", "/api/v1/campaigns/{id}/reject") => (
            "Reject a rehearsed campaign; the note says why",
            &[],
            Some(note()),
        ),
        ("POST", "/api/v1/campaigns/{id}/launch") => (
            "Launch an approved campaign: members, control group and work orders in one transaction",
            &[],
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/simulate") => (
            "Synthetic operator only: draw callbacks and outcomes from its true offer effects",
            &[],
            None,
        ),
        ("POST", "/api/v1/campaigns/{id}/evaluate") => (
            "Evaluate treated against control and feed the results back",
            &[],
            None,
        ),
        ("GET", "/api/v1/work-orders") => (
            "Work orders of launched campaigns, open first and soonest due first; a manager's own only",
            &["status", "limit"],
            None,
        ),
        ("GET", "/api/v1/groups") => (
            "The newest group warning (集团预警): groups with level, score, reasons and value, most urgent first; managers see the groups they keep",
            &["level", "limit"],
            None,
        ),
        ("GET", "/api/v1/groups/{id}") => (
            "Group 360: the group, its members (numbers masked), key people, products, visits loaded and recorded, its warning and planned visits; audited",
            &[],
            None,
        ),
        ("POST", "/api/v1/groups/{id}/visits") => (
            "Record a visit (拜访) to a group; the same group, manager and day again changes nothing; audited",
            &[],
            Some(
                json!({ "type": "object", "required": ["visit_date", "channel", "outcome"], "properties": {
                "visit_date": { "type": "string", "format": "date" },
                "channel": { "type": "string", "enum": retain_data::VISIT_CHANNELS },
                "outcome": { "type": "string", "enum": retain_data::VISIT_OUTCOMES },
                "notes": { "type": "string", "maxLength": 512 },
                "manager_id": { "type": "string", "maxLength": 64 } } }),
            ),
        ),
        ("GET", "/api/v1/visits") => (
            "The visit queue (拜访计划): planned visits, soonest first, with the day each was done; a manager's own only",
            &["limit"],
            None,
        ),
        ("GET", "/api/v1/winback") => (
            "Win-back (挽回): the leavers of the last window_months (default 3), how they left (ported out, a stop request, an arrears cut-off), their value and whether they can be reached, the most valuable first with numbers masked; a manager sees their own",
            &["window_months", "limit"],
            None,
        ),
        ("GET", "/api/v1/managers") => (
            "Managers' and branches' results (考核): retention of their base, visits against plan, work orders, callbacks, saved value; a manager sees their own",
            &[],
            None,
        ),
        ("POST", "/api/v1/work-orders/{id}/callback") => (
            "Record a callback (回访) for one work order; an unreached contact escalates to the next channel",
            &[],
            Some(
                json!({ "type": "object", "required": ["reached", "accepted"], "properties": {
                "reached": { "type": "boolean" }, "accepted": { "type": "boolean" },
                "stated_reason": { "type": "string" },
                "satisfaction": { "type": "integer", "minimum": 0, "maximum": 10 },
                "notes": { "type": "string" },
                "follow_up": { "type": "string", "format": "date" } } }),
            ),
        ),
        ("GET", "/api/v1/model/versions") => (
            "The model registry: every version with its test month, AUC, top-decile lift and EMPC, which one is the champion that scores, and the history of promotions and rollbacks",
            &[],
            None,
        ),
        ("GET", "/api/v1/rules/proposal") => (
            "The pending proposal of rules re-tuned per tenure cohort: per cohort the threshold and changed points before and after, and the backtest before and after; null when there is none",
            &[],
            None,
        ),
        ("POST", "/api/v1/rules/proposal") => (
            "Propose points and thresholds per tenure cohort from the backtest (three backtests); the rules in force stay until it is accepted; audited",
            &[],
            None,
        ),
        ("POST", "/api/v1/rules/proposal/accept") => (
            "Make the pending proposal the rules in force (409 when there is none, or the rules changed since it was made); audited",
            &[],
            None,
        ),
        ("POST", "/api/v1/rules/proposal/reject") => (
            "Discard the pending proposal (409 when there is none); audited",
            &[],
            None,
        ),
        ("GET", "/api/v1/schedule") => (
            "The workspace's schedule: each job with its cron expression, next run and last attempt; and the latest attempts (optionally of one job), newest first",
            &["job", "limit"],
            None,
        ),
        ("GET", "/api/v1/audit") => (
            "The audit log, newest first",
            &["entity", "actor", "limit"],
            None,
        ),
        _ => ("", &[], None),
    }
}

fn source() -> Value {
    json!({ "type": "object", "required": ["toml"], "properties": {
        "toml": { "type": "string" }, "note": { "type": "string" } } })
}

fn note() -> Value {
    json!({ "type": "object", "properties": { "note": { "type": "string" } } })
}

fn operation(method: &str, path: &str, roles: &[&str]) -> Value {
    let (summary, query, body) = describe(method, path);
    let error = json!({ "description": "", "content": { "application/json": { "schema": {
        "$ref": "#/components/schemas/Error" } } } });
    let with = |d: &str| {
        let mut e = error.clone();
        e["description"] = d.into();
        e
    };
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(query.iter().map(|name| {
        let schema = if matches!(*name, "limit" | "offset" | "window_months") {
            json!({ "type": "integer", "minimum": 0 })
        } else if *name == "whole_circles" {
            json!({ "type": "boolean" })
        } else {
            json!({ "type": "string" })
        };
        json!({ "name": name, "in": "query", "required": false, "schema": schema })
    }));
    let mut op = json!({
        "summary": summary,
        "description": format!("Roles: {}.", roles.join(", ")),
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "parameters": parameters,
        "responses": {
            "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } },
            "400": with("invalid input"),
            "401": with("not logged in, or the session expired"),
            "403": with("the role may not call this (or a missing CSRF token with the cookie)"),
            "404": with("not found, or not the manager's"),
        }
    });
    if let Some(schema) = body {
        op["requestBody"] =
            json!({ "required": false, "content": { "application/json": { "schema": schema } } });
    }
    if method == "POST" && path.starts_with("/api/v1/campaigns/") {
        op["responses"]["409"] = with("the campaign is not in the state this step needs");
    }
    if method == "POST" && path.starts_with("/api/v1/rules/proposal/") {
        op["responses"]["409"] =
            with("no pending proposal, or the rules changed since it was made");
    }
    op
}

/// The OpenAPI document of the whole API.
#[must_use]
pub fn openapi() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let login_body = json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "required": ["name", "password"],
        "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 64 },
                        "password": { "type": "string", "maxLength": 256 } } } } } });
    let refused = json!({ "description": "a name or password no user can have (empty, over 64 or 256 bytes, control characters)",
                          "content": { "application/json": { "schema": error } } });
    let mut paths = json!({
        "/healthz": { "get": { "summary": "Liveness and store health", "responses": {
            "200": { "description": "healthy" }, "503": { "description": "store unavailable" } } } },
        "/metrics": { "get": {
            "summary": "Prometheus metrics: requests by route and status, sessions, password checks. Admins (session or bearer token) or the server's metrics token (Authorization: Bearer TOKEN).",
            "responses": {
            "200": { "description": "text exposition format" },
            "401": { "description": "no session and not the metrics token", "content": { "application/json": { "schema": error } } },
            "403": { "description": "not an admin", "content": { "application/json": { "schema": error } } } } } },
        "/api/openapi.json": { "get": { "summary": "This document", "responses": {
            "200": { "description": "OpenAPI 3.1" } } } },
        "/api/v1/login": { "post": {
            "summary": "Log in; returns a bearer token valid for 8 hours. Five failures within 15 minutes lock the name for the rest of the window.",
            "requestBody": login_body,
            "responses": { "200": { "description": "token, name, role, manager_id, csrf, expires_in" },
                           "400": refused.clone(),
                           "401": { "description": "wrong name or password", "content": { "application/json": { "schema": error } } },
                           "429": { "description": "locked out after failed logins", "content": { "application/json": { "schema": error } } } } } },
        "/api/v1/session": { "post": {
            "summary": "Dashboard login: sets an HttpOnly SameSite=Strict session cookie (Secure unless the server runs on a loopback address or is told otherwise) and returns the CSRF token for X-CSRF-Token",
            "requestBody": login_body,
            "responses": { "200": { "description": "name, role, manager_id, csrf, expires_in" },
                           "400": refused,
                           "401": { "description": "wrong name or password", "content": { "application/json": { "schema": error } } },
                           "429": { "description": "locked out after failed logins", "content": { "application/json": { "schema": error } } } } } },
    });
    for rule in RULES {
        let method = rule.method.to_ascii_lowercase();
        paths[rule.path][method] = operation(rule.method, rule.path, rule.roles);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "retain",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Precision retention for telecom operators. Errors are JSON {code, message}. Phone numbers are always masked."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "retain_session" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" } } }
            }
        },
        "paths": paths
    })
}

/// Routes of the table without a description (kept empty by a test).
#[must_use]
pub fn undescribed() -> Vec<String> {
    RULES
        .iter()
        .filter(|r| describe(r.method, r.path).0.is_empty())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}
