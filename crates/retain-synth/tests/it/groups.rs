//! Group customers: deterministic rows, and a group's defection that shows in its members'
//! churn, its visits and its key people.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use retain_synth::{SynthParams, synthesize};

const GROUP_FILES: [&str; 5] = [
    "groups.csv",
    "group_key_people.csv",
    "group_products.csv",
    "group_visits.csv",
    "truth/groups.csv",
];

/// The rows of a CSV file, each as column → value.
fn rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn synthesized(params: &SynthParams) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    synthesize(params, dir.path(), &dir.path().join("truth")).unwrap();
    dir
}

#[test]
fn group_rows_are_the_same_for_a_seed() {
    let params = SynthParams {
        subscribers: 3_000,
        months: 12,
        seed: 11,
        ..SynthParams::default()
    };
    let (a, b) = (synthesized(&params), synthesized(&params));
    for file in GROUP_FILES {
        let left = std::fs::read(a.path().join(file)).unwrap();
        assert!(left.len() > 100, "{file} is nearly empty");
        assert_eq!(left, std::fs::read(b.path().join(file)).unwrap(), "{file}");
    }
}

#[test]
fn tiny_operators_write_and_ingest_their_groups() {
    for (subscribers, months) in [(1, 3), (1, 120), (10, 5), (60, 3), (60, 120), (61, 9)] {
        let params = SynthParams {
            subscribers,
            months,
            seed: subscribers + u64::from(months),
            ..SynthParams::default()
        };
        let bad = crate::quarantined(&params);
        assert!(
            bad.is_empty(),
            "{subscribers} subscribers over {months} months: {bad:?}"
        );
    }
}

#[test]
fn a_defecting_group_takes_its_members_and_stops_being_visited() {
    let params = SynthParams {
        subscribers: 20_000,
        seed: 1,
        ..SynthParams::default()
    };
    let dir = synthesized(&params);
    let path = |f: &str| dir.path().join(f);
    let last_month = params.last_month.format("%Y-%m").to_string();
    let truth: HashMap<String, HashMap<String, String>> = rows(&path("truth/groups.csv"))
        .into_iter()
        .map(|r| (r["group_id"].clone(), r))
        .collect();
    let groups: HashMap<String, HashMap<String, String>> = rows(&path("groups.csv"))
        .into_iter()
        .map(|r| (r["group_id"].clone(), r))
        .collect();
    assert_eq!(groups.len(), 333);
    assert_eq!(truth.len(), groups.len());

    // Members of groups that defect inside the window port out or cancel far more often.
    let left: HashSet<String> = rows(&path("truth/churn.csv"))
        .into_iter()
        .filter(|r| {
            r["outcome"] == "churned" && ["port_out", "formal_cancel"].contains(&r["path"].as_str())
        })
        .map(|r| r["subscriber_id"].clone())
        .collect();
    let subscribers = rows(&path("subscribers.csv"));
    let mut members: HashMap<String, String> = HashMap::new();
    let (mut followers, mut stayers) = ((0, 0), (0, 0));
    for s in &subscribers {
        let group = &s["group_id"];
        if group.is_empty() {
            continue;
        }
        members.insert(s["subscriber_id"].clone(), group.clone());
        let t = &truth[group];
        let tally = if t["defected"] == "true" && t["defection_month"] <= last_month {
            &mut followers
        } else if t["defected"] == "false" {
            &mut stayers
        } else {
            continue;
        };
        tally.0 += 1;
        tally.1 += usize::from(left.contains(&s["subscriber_id"]));
    }
    let share = |(n, k): (usize, usize)| k as f64 / n.max(1) as f64;
    assert!(followers.0 > 50, "{followers:?}");
    assert!(
        share(followers) > 0.3 && share(followers) > 4.0 * share(stayers),
        "defecting groups {followers:?}, staying groups {stayers:?}"
    );

    // A lost group is lost in its defection month, and nobody visits it after.
    let mut lost = 0;
    for (id, g) in &groups {
        let t = &truth[id];
        if g["status"] == "lost" {
            lost += 1;
            assert_eq!(t["defected"], "true");
            assert_eq!(&g["status_date"][..7], t["defection_month"], "{id}");
            assert!(g["contract_start"] < g["status_date"], "{g:?}");
        } else {
            assert!(t["defected"] == "false" || t["defection_month"] > last_month);
        }
    }
    assert!(lost > 10, "{lost} lost groups");
    let window_start = "2025-05-01";
    let window_end = "2026-10-31";
    let mut visits = 0;
    for v in rows(&path("group_visits.csv")) {
        visits += 1;
        let g = &groups[&v["group_id"]];
        let date = v["visit_date"].as_str();
        assert!((window_start..=window_end).contains(&date), "{v:?}");
        if g["status"] == "lost" {
            assert!(date < g["status_date"].as_str(), "{v:?} after {g:?}");
        }
        assert_eq!(v["manager_id"], g["manager_id"]);
    }
    assert!(visits > 500, "{visits} visits");

    // A lost group's products end with it.
    for p in rows(&path("group_products.csv")) {
        let g = &groups[&p["group_id"]];
        if g["status"] == "lost" {
            assert_eq!(p["status"], "cancelled", "{p:?}");
            assert!(p["end_date"] <= g["status_date"], "{p:?}");
        }
    }

    // Key people with a subscription are members of their group, and members carry the
    // group's manager.
    let mut key_people = 0;
    for k in rows(&path("group_key_people.csv")) {
        assert!(groups.contains_key(&k["group_id"]));
        if k["subscriber_id"].is_empty() {
            assert_eq!(k["person_id"], format!("K{}-X", k["group_id"]));
            continue;
        }
        key_people += 1;
        assert_eq!(
            members.get(&k["subscriber_id"]),
            Some(&k["group_id"]),
            "{k:?}"
        );
        assert_eq!(k["person_id"], format!("K{}", k["subscriber_id"]));
    }
    assert!(key_people > 300, "{key_people} key people");
    for s in &subscribers {
        if let Some(g) = groups.get(&s["group_id"]) {
            assert_eq!(s["manager_id"], g["manager_id"], "{s:?}");
            assert_eq!(s["branch_id"], g["branch_id"], "{s:?}");
        }
    }
}
