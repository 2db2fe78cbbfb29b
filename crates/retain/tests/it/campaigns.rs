//! The campaign loop from the command line, launched exactly once.

use crate::common::*;

#[test]
fn the_campaign_loop_runs_from_the_command_line_and_launches_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let demo = demo_months_12(&ws, 2000, 3);
    // The demo ran the loop on the bundled weekly high-end template.
    assert!(
        demo["campaign"]["id"].as_i64().is_some(),
        "{}",
        demo["campaign"]
    );
    let w = s(&ws);
    let (ok, templates) = retain_json(&["campaign", "templates", "--dir", w, "--json"]);
    assert!(ok);
    assert!(
        templates["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "weekly-high-end"),
        "{templates}"
    );
    let (ok, created) = retain_json(&[
        "campaign",
        "create",
        "--dir",
        w,
        "--template",
        "level-flow",
        "--budget",
        "30000",
        "--json",
    ]);
    assert!(ok, "{created}");
    let id = id_of(&created);
    assert_eq!(created["approval_level"], 2);
    let (ok, r) = retain_json(&["campaign", "rehearse", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{r}");
    assert!(r["projected"]["cost"].as_f64().unwrap() > 0.0, "{r}");
    // What the planned sizes can detect, and the control share chosen for it.
    let mde = r["min_detectable_uplift"].as_f64().unwrap();
    assert!(mde > 0.0 && mde < 1.0, "{r}");
    let share = r["power"]["control_share"].as_f64().unwrap();
    assert!((0.2..=0.5).contains(&share), "{r}");
    assert_eq!(
        r["power"]["detectable"].as_bool().unwrap(),
        r["power"]["expected_uplift"].as_f64().unwrap() >= mde,
        "{r}"
    );
    // A level-1 approver may not sign a level-2 budget; the refusal is audited.
    let (ok, li) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "li",
            "--role",
            "approver",
            "--approval-level",
            "1",
            "--json",
        ],
        "correct horse",
    );
    assert!(ok, "{li}");
    assert!(li.get("password_hash").is_none(), "{li}");
    let (ok, _) = user_add(
        &["--dir", w, "--name", "li", "--role", "approver"],
        "correct horse",
    );
    assert!(!ok, "a name is taken once");
    let (ok, _) = user_add(&["--dir", w, "--name", "wu", "--role", "approver"], "short");
    assert!(!ok, "passwords have at least 8 characters");
    // A branch head is a manager scoped to a branch; a manager needs one scope or the other.
    let (ok, zhao) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "zhao",
            "--role",
            "manager",
            "--branch-id",
            "NJ04",
            "--json",
        ],
        "correct horse",
    );
    assert!(ok && zhao["branch_id"] == "NJ04", "{zhao}");
    let (ok, _) = user_add(
        &["--dir", w, "--name", "qian", "--role", "manager"],
        "correct horse",
    );
    assert!(!ok, "a manager without a scope is refused");
    let (ok, _) = user_add(
        &[
            "--dir",
            w,
            "--name",
            "sun",
            "--role",
            "analyst",
            "--branch-id",
            "NJ04",
        ],
        "correct horse",
    );
    assert!(!ok, "only managers are scoped to a branch");
    let out = retain(&["campaign", "approve", "--dir", w, "--id", &id, "--as", "li"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("level 2"));
    let out = retain(&[
        "campaign", "approve", "--dir", w, "--id", &id, "--as", "nobody",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
    let (_, shown) = retain_json(&["campaign", "show", "--dir", w, "--id", &id, "--json"]);
    let refused: Vec<&serde_json::Value> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "approve_refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], "li");
    let (ok, a) = retain_json(&["campaign", "approve", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && a["status"] == "approved", "{a}");
    let (ok, first) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{first}");
    let orders = first["work_orders"].as_u64().unwrap();
    assert!(orders > 0);
    let (ok, again) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && again["created"] == false, "{again}");
    assert_eq!(again["work_orders"].as_u64().unwrap(), orders);
    let (ok, sim) = retain_json(&[
        "campaign",
        "callbacks",
        "--dir",
        w,
        "--id",
        &id,
        "--simulate",
        "--json",
    ]);
    assert!(ok, "{sim}");
    let (ok, e) = retain_json(&["campaign", "evaluate", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{e}");
    for key in [
        "treated_retention",
        "control_retention",
        "uplift",
        "uplift_ci_low",
        "uplift_ci_high",
        "roi",
    ] {
        assert!(e[key].is_number(), "{key}: {e}");
    }
    let (lo, up, hi) = (
        e["uplift_ci_low"].as_f64().unwrap(),
        e["uplift"].as_f64().unwrap(),
        e["uplift_ci_high"].as_f64().unwrap(),
    );
    assert!(lo <= up && up <= hi, "{e}");
    // An interval that includes zero is marked, and the ROI comes with its interval.
    assert_eq!(
        e["significant"].as_bool().unwrap(),
        lo > 0.0 || hi < 0.0,
        "{e}"
    );
    assert!(e["min_detectable_uplift"].is_number(), "{e}");
    let roi = e["roi"].as_f64().unwrap();
    assert!(
        e["roi_ci_low"].as_f64().unwrap() <= roi && roi <= e["roi_ci_high"].as_f64().unwrap(),
        "{e}"
    );
    // Satisfaction of both arms from the survey (the synthetic operator answers it): an arm's
    // NPS where some of it answered, none where nobody did (a small control arm may not).
    let mut answers = 0;
    for arm in ["treated", "control"] {
        let answered = e[format!("survey_{arm}")]["answers"].as_u64().unwrap();
        let nps = &e[format!("nps_{arm}")];
        if answered == 0 {
            assert!(nps.is_null(), "{arm}: {e}");
        } else {
            let nps = nps.as_f64().unwrap_or_else(|| panic!("{arm}: {e}"));
            assert!((-100.0..=100.0).contains(&nps), "{arm}: {e}");
        }
        answers += answered;
    }
    assert!(answers > 0, "{e}");
    assert!(e["new_service_penetration"].is_number(), "{e}");

    // The outcomes teach the next matching (offers that learn): counted once however often it
    // runs, and used for the kinds they measured.
    let learned = |run: &serde_json::Value| -> (serde_json::Value, Vec<String>) {
        let learning: serde_json::Value = serde_json::from_slice(
            &std::fs::read(std::path::Path::new(w).join("offers/learning.json")).unwrap(),
        )
        .unwrap();
        let mut file = csv::Reader::from_path(run["assignment_file"].as_str().unwrap()).unwrap();
        let at = file
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "method")
            .unwrap();
        let methods = file.records().map(|r| r.unwrap()[at].to_owned()).collect();
        (learning, methods)
    };
    let (ok, matched) = retain_json(&["match", "--dir", w, "--budget", "20000", "--json"]);
    assert!(ok, "{matched}");
    let (learning, methods) = learned(&matched);
    let counted: u64 = ["treated", "control"]
        .iter()
        .flat_map(|arm| learning[arm].as_object().unwrap().values())
        .map(|c| c["churned"].as_u64().unwrap() + c["stayed"].as_u64().unwrap())
        .sum();
    assert!(counted > 0, "{learning}");
    assert!(
        methods.iter().any(|x| x == "learned" || x == "explored"),
        "{methods:?}"
    );
    let (ok, again) = retain_json(&["match", "--dir", w, "--budget", "20000", "--json"]);
    assert!(ok, "{again}");
    assert_eq!(learned(&again), (learning, methods));

    // A launch killed inside its transaction leaves nothing; the next one makes one full set.
    let (ok, created) = retain_json(&[
        "campaign",
        "create",
        "--dir",
        w,
        "--template",
        "level-flow",
        "--budget",
        "30000",
        "--json",
    ]);
    assert!(ok, "{created}");
    let id = id_of(&created);
    assert!(
        retain(&["campaign", "rehearse", "--dir", w, "--id", &id])
            .status
            .success()
    );
    assert!(
        retain(&["campaign", "approve", "--dir", w, "--id", &id])
            .status
            .success()
    );
    let crashed = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["campaign", "launch", "--dir", w, "--id", &id])
        .env("RETAIN_LOG", "warn")
        .env("RETAIN_FAULT_ABORT_LAUNCH_AFTER", "2")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the launch was killed");
    let (_, shown) = retain_json(&["campaign", "show", "--dir", w, "--id", &id, "--json"]);
    assert_eq!(shown["campaign"]["status"], "approved", "{shown}");
    assert_eq!(
        (shown["work_orders"].as_u64(), shown["members"].as_u64()),
        (Some(0), Some(0))
    );
    let (ok, launched) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && launched["created"] == true, "{launched}");
    let (ok, twice) = retain_json(&["campaign", "launch", "--dir", w, "--id", &id, "--json"]);
    assert!(ok && twice["created"] == false, "{twice}");
    let (_, shown) = retain_json(&["campaign", "show", "--dir", w, "--id", &id, "--json"]);
    assert!(shown["treated"].as_u64().unwrap() > 2, "{shown}");
    assert_eq!(
        shown["work_orders"].as_u64().unwrap(),
        shown["treated"].as_u64().unwrap() + shown["surveys"].as_u64().unwrap(),
        "one work order per treated member, one per surveyed member"
    );
    assert_eq!(shown["work_orders"], launched["work_orders"]);
    assert_eq!(shown["work_orders"], twice["work_orders"]);
    // At the counter, the decision shows the subscriber's open work orders, number masked.
    // Every channel's list comes as CSV and as a workbook.
    let files: Vec<&str> = launched["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let csvs: Vec<&std::path::Path> = files
        .iter()
        .map(std::path::Path::new)
        .filter(|f| f.extension().is_some_and(|x| x == "csv"))
        .collect();
    assert!(csvs.len() > 1, "{files:?}");
    for csv in csvs {
        let xlsx = csv.with_extension("xlsx");
        assert!(files.contains(&xlsx.to_str().unwrap()), "{files:?}");
    }
    let file = launched["files"][0].as_str().unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.starts_with('\u{feff}'),
        "a work-order list opens in Excel"
    );
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(
        text.lines().next().unwrap().split(',').nth(5),
        Some("subscriber_id")
    );
    let (ok, decision) =
        retain_json(&["decide", row[5], "--dir", w, "--channel", "store", "--json"]);
    assert!(ok, "{decision}");
    let open = decision["work_orders"].as_array().unwrap();
    assert!(
        open.iter()
            .any(|o| o["campaign_id"].as_i64().map(|c| c.to_string()) == Some(id.clone())),
        "{decision}"
    );
    assert!(open.iter().all(|o| o["details"].get("msisdn").is_none()));
    let (ok, list) = retain_json(&["campaign", "list", "--dir", w, "--json"]);
    assert!(ok);
    assert_eq!(list["count"], 3);

    // Win-back: the recent leavers' list, and a campaign from the win-back template run like
    // any other.
    let (ok, wb) = retain_json(&["winback", "--dir", w, "--json"]);
    assert!(ok, "{wb}");
    let count = |k: &str| wb[k].as_u64().unwrap_or_else(|| panic!("{k}: {wb}"));
    assert!(count("leavers") > 0 && count("reachable") > 0, "{wb}");
    assert_eq!(
        count("voluntary") + count("involuntary"),
        count("leavers"),
        "{wb}"
    );
    assert_eq!(
        count("reachable") + count("unreachable"),
        count("leavers"),
        "{wb}"
    );
    let list_file = wb["list_file"].as_str().unwrap();
    let listed = std::fs::read_to_string(list_file).unwrap();
    assert_eq!(listed.lines().count() as u64, 1 + count("leavers"));
    assert!(listed.starts_with('\u{feff}'));
    let out = retain(&["winback", "--dir", w, "--window-months", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 24"));
    // A date the calendar can hardly hold is refused plainly, not panicked on.
    for date in ["0001-01-01", "-262143-01-01", "2999-12-31"] {
        let out = retain(&["winback", "--dir", w, &format!("--as-of={date}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("outside"),
            "{date}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (ok, created) = retain_json(&[
        "campaign",
        "create",
        "--dir",
        w,
        "--template",
        "win-back",
        "--json",
    ]);
    assert!(ok, "{created}");
    let id = id_of(&created);
    let (ok, r) = retain_json(&["campaign", "rehearse", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{r}");
    assert!(r["min_detectable_uplift"].is_number(), "{r}");
    for step in ["approve", "launch"] {
        assert!(
            retain(&["campaign", step, "--dir", w, "--id", &id])
                .status
                .success()
        );
    }
    let (ok, sim) = retain_json(&[
        "campaign",
        "callbacks",
        "--dir",
        w,
        "--id",
        &id,
        "--simulate",
        "--json",
    ]);
    assert!(ok, "{sim}");
    let (ok, e) = retain_json(&["campaign", "evaluate", "--dir", w, "--id", &id, "--json"]);
    assert!(ok, "{e}");
    assert!(
        e["significant"].is_boolean() && e["true_uplift"].is_number(),
        "{e}"
    );
}
