//! Every default rule and every level, on hand-made subscribers: each subscriber is a plain
//! baseline plus one story, and must fire exactly the rules that story implies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use retain_data::{IngestOptions, Table, Workspace, ingest};
use retain_warn::RuleSet;

const MONTHS: [&str; 6] = [
    "2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05",
];
const WEEKS: [&str; 5] = [
    "2026-05-25",
    "2026-06-01",
    "2026-06-08",
    "2026-06-15",
    "2026-06-22",
];

#[derive(Clone)]
struct Month {
    fee: f64,
    minutes: i64,
    calls: i64,
    bundled: i64,
    vas: f64,
    arrears: f64,
}

const BASE: Month = Month {
    fee: 100.0,
    minutes: 300,
    calls: 120,
    bundled: 2,
    vas: 10.0,
    arrears: 0.0,
};

/// A change to one month of the baseline.
type Edit = (usize, fn(&mut Month));

/// One hand-made subscriber.
struct Story {
    id: i64,
    expected: &'static [&'static str],
    level: Option<&'static str>,
    group: bool,
    /// Monthly overrides, by index into `MONTHS`.
    months: Vec<Edit>,
    /// Weekly fee by index into `WEEKS` (default 25).
    week_fee: Vec<(usize, f64)>,
    /// (timestamp, kind, category, severity, resolved_on_time, from, to, channel)
    events: Vec<[&'static str; 8]>,
    /// (kind, start, end)
    contracts: Vec<[&'static str; 3]>,
    /// The last four weeks' (dropped-call rate, weak-coverage minutes); the eight before are
    /// 0.5% and 40 minutes. No network rows without it.
    network: Option<(f64, f64)>,
    /// Monthly call records: (month, peer id or 0, competitor or "", calls).
    calls: Vec<(&'static str, i64, &'static str, i64)>,
}

fn story(id: i64, expected: &'static [&'static str]) -> Story {
    Story {
        id,
        expected,
        level: None,
        group: false,
        months: Vec::new(),
        week_fee: Vec::new(),
        events: Vec::new(),
        contracts: Vec::new(),
        network: None,
        calls: Vec::new(),
    }
}

fn ev(ts: &'static str, kind: &'static str) -> [&'static str; 8] {
    [ts, kind, "", "", "", "", "", ""]
}

fn stories() -> Vec<Story> {
    let far_subsidy = ["device_subsidy", "2025-06-01", "2027-06-30"];
    vec![
        story(1001, &[]),
        Story {
            months: vec![(4, |m| m.fee = 90.0), (5, |m| m.fee = 80.0)],
            ..story(1002, &["EW001"])
        },
        Story {
            months: vec![(4, |m| m.minutes = 270), (5, |m| m.minutes = 240)],
            ..story(1003, &["EW002"])
        },
        Story {
            months: vec![(4, |m| m.calls = 100), (5, |m| m.calls = 80)],
            ..story(1004, &["EW003"])
        },
        Story {
            months: vec![(5, |m| m.bundled = 1)],
            ..story(1005, &["EW004"])
        },
        Story {
            months: vec![(5, |m| m.vas = 7.0)],
            ..story(1006, &["EW005"])
        },
        Story {
            events: vec![[
                "2026-06-10 10:00:00",
                "plan_change",
                "",
                "",
                "",
                "P129",
                "P039",
                "store",
            ]],
            ..story(1007, &["EW006"])
        },
        Story {
            events: vec![[
                "2026-06-15 10:00:00",
                "stop_request",
                "",
                "",
                "",
                "",
                "",
                "store",
            ]],
            level: Some("blue"),
            ..story(1008, &["EW007"])
        },
        Story {
            events: vec![[
                "2026-06-15 10:00:00",
                "stop_request",
                "",
                "",
                "",
                "",
                "",
                "hotline",
            ]],
            level: Some("blue"),
            ..story(1009, &["EW008"])
        },
        Story {
            events: vec![[
                "2026-06-05 10:00:00",
                "suspension",
                "arrears",
                "",
                "",
                "",
                "",
                "",
            ]],
            ..story(1010, &["EW009", "EW013"])
        },
        Story {
            months: vec![
                (3, |m| m.fee = 80.0),
                (4, |m| m.fee = 80.0),
                (5, |m| m.fee = 80.0),
            ],
            ..story(1011, &["EW010"])
        },
        Story {
            events: vec![ev("2026-04-15 10:00:00", "forward_to_competitor")],
            ..story(1012, &["EW011"])
        },
        Story {
            events: vec![ev("2026-06-10 10:00:00", "forward_to_competitor")],
            ..story(1013, &["EW011", "EW012"])
        },
        Story {
            events: vec![[
                "2026-02-10 10:00:00",
                "suspension",
                "arrears",
                "",
                "",
                "",
                "",
                "",
            ]],
            ..story(1014, &["EW013"])
        },
        Story {
            months: vec![(5, |m| m.arrears = 60.0)],
            ..story(1015, &["EW014"])
        },
        Story {
            months: vec![
                (3, |m| m.arrears = 20.0),
                (4, |m| m.arrears = 20.0),
                (5, |m| m.arrears = 20.0),
            ],
            ..story(1016, &["EW015"])
        },
        Story {
            events: vec![[
                "2026-05-10 10:00:00",
                "complaint",
                "network",
                "serious",
                "true",
                "",
                "",
                "hotline",
            ]],
            ..story(1017, &["EW016", "EW018"])
        },
        Story {
            events: vec![
                [
                    "2026-04-10 10:00:00",
                    "complaint",
                    "billing",
                    "minor",
                    "true",
                    "",
                    "",
                    "hotline",
                ],
                [
                    "2026-05-10 10:00:00",
                    "complaint",
                    "billing",
                    "minor",
                    "true",
                    "",
                    "",
                    "hotline",
                ],
            ],
            ..story(1018, &["EW017", "EW018"])
        },
        Story {
            events: vec![[
                "2026-05-10 10:00:00",
                "complaint",
                "product",
                "minor",
                "true",
                "",
                "",
                "hotline",
            ]],
            ..story(1019, &["EW018"])
        },
        Story {
            events: vec![
                ev("2026-01-10 10:00:00", "service_call"),
                ev("2026-03-10 10:00:00", "service_call"),
                ev("2026-05-10 10:00:00", "service_call"),
            ],
            ..story(1020, &["EW019"])
        },
        Story {
            events: vec![ev("2026-03-10 10:00:00", "competitor_service_call")],
            ..story(1021, &["EW020"])
        },
        Story {
            group: true,
            events: vec![
                [
                    "2026-04-10 10:00:00",
                    "service_call",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "manager",
                ],
                [
                    "2026-05-10 10:00:00",
                    "service_call",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "manager",
                ],
            ],
            ..story(1022, &["EW021"])
        },
        Story {
            months: vec![(5, |m| m.bundled = 3)],
            ..story(1023, &["EW022"])
        },
        Story {
            months: vec![(4, |m| m.vas = 7.0), (5, |m| m.vas = 7.0)],
            ..story(1024, &["EW023"])
        },
        // The network and the calling circle.
        Story {
            network: Some((2.0, 60.0)),
            ..story(1025, &["EW024"])
        },
        Story {
            // Two peers called in April, one of whom (9001) cancelled in May.
            calls: vec![("2026-04", 9001, "", 6), ("2026-04", 1001, "", 4)],
            ..story(1026, &["EW025"])
        },
        Story {
            // Most of May's calls went to a competitor's numbers, fewer before.
            calls: vec![
                ("2026-03", 1001, "", 10),
                ("2026-04", 1001, "", 10),
                ("2026-05", 1001, "", 5),
                ("2026-05", 0, "联通", 20),
            ],
            ..story(1027, &["EW026"])
        },
        // Special conditions of the week 2026-06-22..28.
        Story {
            events: vec![[
                "2026-06-24 10:00:00",
                "complaint",
                "service",
                "serious",
                "true",
                "",
                "",
                "hotline",
            ]],
            ..story(1101, &["EW101", "EW018"])
        },
        Story {
            week_fee: vec![(4, 10.0)],
            ..story(1102, &["EW102"])
        },
        Story {
            contracts: vec![["service_contract", "2025-07-16", "2026-07-15"]],
            ..story(1103, &["EW103"])
        },
        Story {
            events: vec![
                ev("2026-06-23 10:00:00", "forward_to_competitor"),
                ev("2026-06-24 10:00:00", "forward_to_competitor"),
                ev("2026-06-25 10:00:00", "forward_to_competitor"),
            ],
            ..story(1104, &["EW011", "EW012", "EW104"])
        },
        Story {
            events: vec![
                ev("2026-06-23 10:00:00", "competitor_service_call"),
                ev("2026-06-24 11:00:00", "competitor_service_call"),
            ],
            ..story(1105, &["EW020", "EW105"])
        },
        // Levels: a potential churner (a store stop request alone scores 10) graded by the
        // subsidy risk and the special conditions.
        Story {
            level: Some("red"),
            events: vec![
                [
                    "2026-06-15 10:00:00",
                    "stop_request",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "store",
                ],
                ev("2026-06-23 10:00:00", "forward_to_competitor"),
                ev("2026-06-24 10:00:00", "forward_to_competitor"),
                ev("2026-06-25 10:00:00", "forward_to_competitor"),
            ],
            ..story(2001, &["EW007", "EW011", "EW012", "EW104"])
        },
        Story {
            level: Some("yellow"),
            contracts: vec![far_subsidy],
            events: vec![
                [
                    "2026-06-15 10:00:00",
                    "stop_request",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "store",
                ],
                ev("2026-06-23 10:00:00", "competitor_service_call"),
                ev("2026-06-24 11:00:00", "competitor_service_call"),
            ],
            ..story(2002, &["EW007", "EW020", "EW105"])
        },
        Story {
            level: Some("blue"),
            contracts: vec![["device_subsidy", "2024-09-01", "2026-08-31"]],
            events: vec![[
                "2026-06-15 10:00:00",
                "stop_request",
                "",
                "",
                "",
                "",
                "",
                "store",
            ]],
            ..story(2003, &["EW007"])
        },
        // Bound for a year and no special condition: a potential churner, but no level.
        Story {
            contracts: vec![far_subsidy],
            events: vec![[
                "2026-06-15 10:00:00",
                "stop_request",
                "",
                "",
                "",
                "",
                "",
                "store",
            ]],
            ..story(2004, &["EW007"])
        },
    ]
}

fn write(dir: &Path, name: &str, header: &str, rows: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut text = format!("{header}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn build(stories: &[Story], dir: &Path) -> Workspace {
    let ws = Workspace::create_or_open(&dir.join("ws")).unwrap();
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut subscribers = Vec::new();
    let mut monthly = Vec::new();
    let mut weekly = Vec::new();
    let mut events = Vec::new();
    let mut contracts = Vec::new();
    let mut network = Vec::new();
    let mut calls = Vec::new();
    for s in stories {
        subscribers.push(format!(
            "{},138{:08},2020-01-01,1980-01-01,male,江苏,南京,玄武区,{},{},,P129,sms,NJ01,NJ01-M01,active,2020-01-01",
            s.id,
            s.id,
            if s.group { "group_member" } else { "personal" },
            if s.group { "G1" } else { "" }
        ));
        for (i, period) in MONTHS.iter().enumerate() {
            let mut m = BASE.clone();
            for (k, f) in &s.months {
                if *k == i {
                    f(&mut m);
                }
            }
            monthly.push(format!(
                "{},{period},{},{},{},{},10000,10,{},{},{},{},0,28,P129",
                s.id,
                m.fee,
                m.minutes,
                m.calls / 2,
                m.calls - m.calls / 2,
                m.bundled,
                m.vas,
                m.fee,
                m.arrears
            ));
        }
        for (i, week) in WEEKS.iter().enumerate() {
            let fee = s
                .week_fee
                .iter()
                .find(|(k, _)| *k == i)
                .map_or(25.0, |(_, f)| *f);
            weekly.push(format!(
                "{},{week},{fee},70,14,14,2500,2,2,2.5,25,0,0,7,P129",
                s.id
            ));
        }
        for e in &s.events {
            events.push(format!(
                "{},{},{},{},{},{},{},{},{},,,",
                s.id, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]
            ));
        }
        for c in &s.contracts {
            contracts.push(format!("{},{},{},{},100", s.id, c[0], c[1], c[2]));
        }
        if let Some((dropped, weak)) = s.network {
            let first = NaiveDate::from_ymd_opt(2026, 4, 6).unwrap();
            for k in 0..12 {
                let week = first + chrono::Duration::days(7 * k);
                let (d, w) = if k >= 8 { (dropped, weak) } else { (0.5, 40.0) };
                network.push(format!("{},{week},{d},0,{w},10,50,NJ01-0001", s.id));
            }
        }
        for (month, peer, operator, n) in &s.calls {
            let peer = if *peer == 0 {
                String::new()
            } else {
                peer.to_string()
            };
            calls.push(format!(
                "{month}-01,{},{peer},{operator},{n},{}",
                s.id,
                n * 3
            ));
        }
    }
    // Left before the as-of date: never scored.
    subscribers.push("9001,13899999999,2020-01-01,1980-01-01,male,江苏,南京,玄武区,personal,,,P129,sms,NJ01,,cancelled,2026-05-02".to_owned());
    events.push("9001,2026-05-02 10:00:00,cancel,,,,,,,,,".to_owned());

    let header = |t: Table| t.spec().csv_header().join(",");
    let files = [
        (
            Table::Plans,
            write(
                &input,
                "plans.csv",
                &header(Table::Plans),
                &[
                    "P039,39元,39,20480,300,2".to_owned(),
                    "P129,129元,129,81920,1000,5".to_owned(),
                ],
            ),
        ),
        (
            Table::Subscribers,
            write(
                &input,
                "subscribers.csv",
                &header(Table::Subscribers),
                &subscribers,
            ),
        ),
        (
            Table::Contracts,
            write(
                &input,
                "contracts.csv",
                &header(Table::Contracts),
                &contracts,
            ),
        ),
        (
            Table::UsageMonthly,
            write(
                &input,
                "usage_monthly.csv",
                &header(Table::UsageMonthly),
                &monthly,
            ),
        ),
        (
            Table::UsageWeekly,
            write(
                &input,
                "usage_weekly.csv",
                &header(Table::UsageWeekly),
                &weekly,
            ),
        ),
        (
            Table::Events,
            write(&input, "events.csv", &header(Table::Events), &events),
        ),
        (
            Table::Cells,
            write(
                &input,
                "cells.csv",
                &header(Table::Cells),
                &["NJ01-0001,32.06,118.80,玄武区,NJ01,5g".to_owned()],
            ),
        ),
        (
            Table::NetworkWeekly,
            write(
                &input,
                "network_weekly.csv",
                &header(Table::NetworkWeekly),
                &network,
            ),
        ),
        (
            Table::CallingCircle,
            write(
                &input,
                "calling_circle.csv",
                &header(Table::CallingCircle),
                &calls,
            ),
        ),
    ];
    for (table, file) in files {
        let report = ingest(
            &ws,
            table,
            &[file],
            &IngestOptions {
                label: table.name().into(),
                ..IngestOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            report.quarantined,
            0,
            "{table}: {:?}",
            std::fs::read_to_string(&report.quarantine_file)
        );
    }
    ws
}

#[tokio::test]
async fn every_default_rule_and_level_fires_for_its_story_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let stories = stories();
    let ws = build(&stories, dir.path());
    let ctx = retain_features::session(&ws).await.unwrap();
    let rules = RuleSet::default_rules();
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 29).unwrap();
    let (scored, warnings, hits, potential) =
        retain_warn::evaluate(&ctx, &rules, as_of).await.unwrap();
    assert_eq!(
        scored,
        stories.len() as u64,
        "the cancelled subscriber is not scored"
    );

    // A large operator is scored one partition of the subscribers at a time: the same list.
    let (p_scored, p_warnings, p_hits, p_potential) =
        retain_warn::evaluate_partitioned(&ws, &rules, as_of, 3)
            .await
            .unwrap();
    assert_eq!((p_scored, &p_hits, p_potential), (scored, &hits, potential));
    assert_eq!(
        serde_json::to_string(&p_warnings).unwrap(),
        serde_json::to_string(&warnings).unwrap()
    );

    // Every default rule is exercised by some story.
    let covered: BTreeSet<&str> = stories
        .iter()
        .flat_map(|s| s.expected.iter().copied())
        .collect();
    for rule in &rules.rules {
        assert!(
            covered.contains(rule.id.as_str()),
            "no story for {}",
            rule.id
        );
    }

    // evaluate() returns only leveled subscribers; the counts cover everyone, so check the
    // rule hits per rule against the stories.
    let mut expected_hits: BTreeMap<String, u64> =
        rules.rules.iter().map(|r| (r.id.clone(), 0)).collect();
    for s in &stories {
        for id in s.expected {
            *expected_hits.get_mut(*id).unwrap() += 1;
        }
    }
    assert_eq!(hits, expected_hits);

    let levels: BTreeMap<i64, &str> = warnings
        .iter()
        .map(|w| (w.subscriber_id, w.level.code()))
        .collect();
    for s in &stories {
        assert_eq!(levels.get(&s.id).copied(), s.level, "level of {}", s.id);
        if let Some(w) = warnings.iter().find(|w| w.subscriber_id == s.id) {
            let fired: Vec<&str> = w.rules.iter().map(|r| r.id.as_str()).collect();
            let mut want: Vec<&str> = s.expected.to_vec();
            want.sort_unstable();
            assert_eq!(fired, want, "rules of {}", s.id);
        }
    }
    // The values that made a rule fire travel with it.
    let red = warnings.iter().find(|w| w.subscriber_id == 2001).unwrap();
    let forwarding = red.rules.iter().find(|r| r.id == "EW104").unwrap();
    assert_eq!(
        forwarding.values["days(forward_to_competitor, 1w)"],
        serde_json::json!(3.0)
    );
    assert_eq!(
        warnings[0].level,
        retain_warn::Level::Red,
        "most serious first"
    );
}

#[tokio::test]
async fn runs_report_changes_since_the_previous_list() {
    let dir = tempfile::tempdir().unwrap();
    let ws = build(&stories(), dir.path());
    let ctx = retain_features::session(&ws).await.unwrap();
    let rules = RuleSet::default_rules();
    let cadence = retain_features::Cadence::Weekly;
    let first = NaiveDate::from_ymd_opt(2026, 6, 22).unwrap();
    let (a, _) = retain_warn::run(&ctx, &rules, &ws, first, cadence)
        .await
        .unwrap();
    assert!(a.changes.previous.is_none());
    assert_eq!(a.changes.new, a.red + a.yellow + a.blue);
    let second = NaiveDate::from_ymd_opt(2026, 6, 29).unwrap();
    let (b, _) = retain_warn::run(&ctx, &rules, &ws, second, cadence)
        .await
        .unwrap();
    assert!(b.changes.previous.is_some());
    let c = &b.changes;
    assert_eq!(
        c.new + c.escalated + c.de_escalated + c.unchanged,
        b.red + b.yellow + b.blue
    );
    assert_eq!(
        c.escalated + c.de_escalated + c.unchanged + c.resolved,
        a.red + a.yellow + a.blue
    );
    // The week of 22 June holds the special conditions: new red and yellow warnings appear.
    assert!(b.red > a.red, "{a:?} {b:?}");
    assert!(b.warnings_file.exists());
    let text = std::fs::read_to_string(&b.warnings_file).unwrap();
    // A byte order mark first, so a Chinese-language Excel reads the names right.
    let text = text.strip_prefix('\u{feff}').expect("a BOM");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("subscriber_id,level,score")
    );
    assert_eq!(text.lines().count() as u64, 1 + b.red + b.yellow + b.blue);
}
