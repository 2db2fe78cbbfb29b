//! Group warning, visit plans and results on the synthetic operator, whose truth says which
//! groups leave.

use std::collections::HashMap;

use chrono::Duration;
use retain_data::Workspace;
use retain_groups::{GroupConfig, GroupRun};

fn operator(seed: u64, subscribers: u64, dir: &std::path::Path) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers,
        months: 12,
        seed,
        ..retain_synth::SynthParams::default()
    };
    retain_synth::synthetic_workspace(&params, dir).unwrap()
}

async fn warn(ws: &Workspace) -> (GroupRun, datafusion::prelude::SessionContext) {
    let ctx = retain_features::session(ws).await.unwrap();
    let as_of = retain_features::default_as_of(&ctx, retain_features::Cadence::Monthly)
        .await
        .unwrap();
    let run = retain_groups::run(&ctx, ws, &GroupConfig::default(), as_of, &[])
        .await
        .unwrap();
    (run, ctx)
}

#[tokio::test]
async fn group_risk_ranks_the_groups_that_truly_leave_for_several_seeds() {
    for seed in [3, 11] {
        let dir = tempfile::tempdir().unwrap();
        let ws = operator(seed, 24_000, dir.path());
        let (run, _) = warn(&ws).await;
        let r = &run.report;
        let truth = r
            .truth
            .as_ref()
            .expect("the synthetic operator has a truth");
        assert!(truth.leaving >= 5, "seed {seed}: {truth:?}");
        assert!(
            truth.auc > 0.75 && truth.top_decile_lift > 2.5,
            "seed {seed}: {truth:?}"
        );
        assert_eq!(r.auc, Some(truth.auc));
        assert!(r.red + r.yellow + r.blue > 0 && r.red + r.yellow + r.blue < r.groups);
        assert!(
            r.lost > 0,
            "seed {seed}: some groups left before the as-of date"
        );
        // The list holds every group, most urgent first, and the segments count the active.
        let list = std::fs::read_to_string(&r.list_file).unwrap();
        assert_eq!(list.lines().count() as u64, 1 + r.groups + r.lost);
        let active: Vec<_> = run
            .warnings
            .iter()
            .filter(|w| w.status == "active")
            .collect();
        assert!(active.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(
            run.warnings[..active.len()]
                .iter()
                .all(|w| w.status == "active"),
            "the lost groups come last"
        );
        assert_eq!(r.segments.values().map(|s| s.groups).sum::<u64>(), r.groups);
        for w in run.warnings.iter().filter(|w| w.level.is_some()) {
            assert!(!w.reasons.is_empty(), "{w:?}");
            assert_eq!(w.score, w.reasons.iter().map(|r| r.points).sum::<u32>());
        }
        let saved = retain_groups::latest_report(&ws).unwrap().unwrap();
        assert_eq!(saved.red, r.red);
        // The files read back as what was written.
        let (date, list) = retain_groups::latest_list(&ws).unwrap().unwrap();
        assert_eq!((date, &list), (r.as_of, &run.warnings));
        let (date, visits) = retain_groups::latest_visits(&ws).unwrap().unwrap();
        assert_eq!((date, &visits), (r.as_of, &run.visits));
    }
}

#[tokio::test]
async fn visit_plans_keep_the_frequency_rules_and_results_reconcile_with_the_visits() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(5, 8_000, dir.path());
    let (run, ctx) = warn(&ws).await;
    let config = GroupConfig::default();
    let rules = &config.visits;
    let as_of = run.report.as_of;
    let end = as_of + Duration::days(i64::from(rules.horizon_days));
    let by_id: HashMap<&str, &retain_groups::GroupWarning> = run
        .warnings
        .iter()
        .map(|w| (w.group_id.as_str(), w))
        .collect();
    let mut planned: HashMap<&str, Vec<&retain_groups::PlannedVisit>> = HashMap::new();
    for v in &run.visits {
        assert!(v.due_date >= as_of && v.due_date <= end, "{v:?}");
        planned.entry(v.group_id.as_str()).or_default().push(v);
    }
    for w in run.warnings.iter().filter(|w| w.status == "active") {
        let interval = Duration::days(i64::from(rules.interval(&w.value_tier)));
        let due = w.last_visit.map_or(as_of, |v| (v + interval).max(as_of));
        let visits = planned
            .get(w.group_id.as_str())
            .cloned()
            .unwrap_or_default();
        let first = visits.iter().map(|v| v.due_date).min();
        match w.level.as_deref() {
            Some("red") => assert!(
                first.is_some_and(|d| d <= as_of + Duration::days(7)),
                "{w:?}"
            ),
            Some("yellow") => assert!(
                first.is_some_and(|d| d <= as_of + Duration::days(14)),
                "{w:?}"
            ),
            // A group due within the horizon is planned by then.
            _ if due <= end => assert!(first.is_some_and(|d| d <= due), "{w:?}"),
            _ => {}
        }
        let mut routine: Vec<_> = visits
            .iter()
            .filter(|v| v.purpose != "renewal")
            .map(|v| v.due_date)
            .collect();
        routine.sort();
        assert!(
            routine.windows(2).all(|p| p[1] - p[0] >= interval),
            "{w:?}: {routine:?}"
        );
    }
    for v in &run.visits {
        assert_eq!(by_id[v.group_id.as_str()].status, "active");
    }

    let store = retain_store::Store::connect(&ws.store_url()).await.unwrap();
    let report = retain_groups::performance(&ctx, &ws, &store, &config, as_of)
        .await
        .unwrap();
    assert!(!report.managers.is_empty());
    let start = report.period_start;
    let batches = ctx
        .sql(&format!(
            "SELECT count(*) AS n FROM group_visits WHERE visit_date >= DATE '{start}' AND visit_date < DATE '{as_of}'"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let rows = retain_features::json_rows(&batches);
    let visits = rows[0]["n"].as_u64().unwrap();
    assert!(visits > 0);
    assert_eq!(
        report.managers.iter().map(|m| m.visits_done).sum::<u64>(),
        visits,
        "every visit in the period is some manager's"
    );
    for m in &report.managers {
        assert!(
            m.visits_on_plan <= m.visits_planned.min(m.visits_done),
            "{m:?}"
        );
        assert!((0.0..=1.0).contains(&m.retention_rate), "{m:?}");
    }
    for m in &report.managers {
        let met = u32::from(m.retention_rate >= m.targets.retention_rate)
            + u32::from(m.visit_coverage >= m.targets.visit_coverage)
            + u32::from(m.callbacks_on_time_rate >= m.targets.callbacks_on_time);
        assert_eq!((m.targets_met, m.targets_total), (met, 3), "{m:?}");
    }
    // The monthly workbook holds every manager under Chinese headers.
    let book = dir.path().join("考核.xlsx");
    retain_groups::write_workbook(&report, &book).unwrap();
    let sheet = String::from_utf8(retain_data::first_sheet_csv(&book).unwrap()).unwrap();
    assert!(
        sheet.lines().next().unwrap().contains("客户经理"),
        "{sheet}"
    );
    assert_eq!(sheet.lines().count(), 1 + report.managers.len());
    let base: u64 = report.branches.iter().map(|b| b.subscribers).sum();
    assert!(base > 0 && base <= 8_000);
    assert!(
        report.branches.iter().map(|b| b.visits_done).sum::<u64>() == visits,
        "branches sum their managers"
    );

    // A visit recorded through retain counts beside the table's, once however often it is sent,
    // and moves the group's last visit.
    let group = run
        .warnings
        .iter()
        .find(|w| w.status == "active" && w.manager_id.is_some())
        .unwrap();
    let day = as_of - Duration::days(3);
    let visit = retain_store::NewVisit {
        group_id: group.group_id.clone(),
        manager_id: group.manager_id.clone().unwrap(),
        visit_date: day.to_string(),
        channel: "onsite".into(),
        outcome: "competitor_offer".into(),
        notes: "对手报价低两成".into(),
    };
    retain_groups::check_visit(&visit, as_of).unwrap();
    let (first, created) = store.record_visit(&visit, "li").await.unwrap();
    assert!(created);
    let (again, created) = store.record_visit(&visit, "li").await.unwrap();
    assert!(!created);
    assert_eq!(first, again);
    let after = retain_groups::performance(&ctx, &ws, &store, &config, as_of)
        .await
        .unwrap();
    assert_eq!(
        after.managers.iter().map(|m| m.visits_done).sum::<u64>(),
        visits + 1
    );
    let recorded = store
        .visits_between(
            &(as_of - Duration::days(366)).to_string(),
            &as_of.to_string(),
        )
        .await
        .unwrap();
    let rerun = retain_groups::run(&ctx, &ws, &config, as_of, &recorded)
        .await
        .unwrap();
    let now = rerun
        .warnings
        .iter()
        .find(|w| w.group_id == group.group_id)
        .unwrap();
    assert_eq!(now.last_visit, Some(day));
    assert!(
        now.reasons.iter().any(|r| r.code == "competitor_offer"),
        "{now:?}"
    );
    // Bad visits are refused with the reason.
    for (field, value) in [
        ("channel", "pigeon"),
        ("outcome", "won"),
        ("visit_date", "2026-13-01"),
    ] {
        let mut bad = visit.clone();
        match field {
            "channel" => bad.channel = value.into(),
            "outcome" => bad.outcome = value.into(),
            _ => bad.visit_date = value.into(),
        }
        let error = retain_groups::check_visit(&bad, as_of)
            .unwrap_err()
            .to_string();
        assert!(error.contains(value), "{error}");
    }
    let mut future = visit.clone();
    future.visit_date = (as_of + Duration::days(1)).to_string();
    assert!(retain_groups::check_visit(&future, as_of).is_err());

    // Group 360 reads the group's rows by value; an id with SQL in it is just an unknown id.
    let view = retain_groups::group_view(&ctx, &ws, &group.group_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.members.len(),
        (view.members_total as usize).min(retain_groups::MAX_MEMBERS)
    );
    let members: std::collections::HashSet<i64> = view
        .members
        .iter()
        .map(|m| m["subscriber_id"].as_i64().unwrap())
        .collect();
    for k in &view.key_people {
        if let Some(id) = k["subscriber_id"].as_i64()
            && view.members_total as usize <= retain_groups::MAX_MEMBERS
        {
            assert!(members.contains(&id), "key person {k:?} is a member");
        }
    }
    assert!(
        retain_groups::group_view(&ctx, &ws, "x' OR '1'='1")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn visits_load_from_an_excel_workbook_and_bad_rows_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let ws = operator(9, 600, dir.path());
    let group = {
        let text = std::fs::read_to_string(dir.path().join("in/groups.csv")).unwrap();
        text.lines()
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_owned()
    };
    let before = ws.table_rows(retain_data::Table::GroupVisits).unwrap();
    let path = dir.path().join("拜访记录.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows = [
        [
            "visit_id",
            "group_id",
            "manager_id",
            "visit_date",
            "channel",
            "outcome",
            "notes",
        ],
        [
            "XL-1",
            group.as_str(),
            "NJ01-M01",
            "2026-10-12",
            "onsite",
            "renewal_agreed",
            "续签一年",
        ],
        [
            "XL-2",
            group.as_str(),
            "NJ01-M01",
            "2026-10-19",
            "Phone",
            "routine",
            "",
        ],
        [
            "XL-3",
            "NO-SUCH-GROUP",
            "NJ01-M01",
            "2026-10-20",
            "onsite",
            "routine",
            "",
        ],
        [
            "XL-4",
            group.as_str(),
            "NJ01-M01",
            "2026-10-21",
            "pigeon",
            "routine",
            "",
        ],
    ];
    for (i, row) in rows.iter().enumerate() {
        for (j, cell) in row.iter().enumerate() {
            sheet.write_string(i as u32, j as u16, *cell).unwrap();
        }
    }
    book.save(&path).unwrap();
    let report = retain_data::ingest(
        &ws,
        retain_data::Table::GroupVisits,
        &[path],
        &retain_data::IngestOptions::default(),
    )
    .unwrap();
    let quarantined = std::fs::read_to_string(&report.quarantine_file).unwrap_or_default();
    assert_eq!(
        (report.read, report.loaded, report.quarantined),
        (4, 2, 2),
        "{quarantined}"
    );
    assert!(
        quarantined.contains("NO-SUCH-GROUP") && quarantined.contains("pigeon"),
        "{quarantined}"
    );
    assert_eq!(
        ws.table_rows(retain_data::Table::GroupVisits).unwrap(),
        before + 2
    );
}
