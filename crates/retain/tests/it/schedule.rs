//! The loop that runs itself, from the command line on a simulated clock: a delivery that
//! waits until whole, the weekly warning and its automatic campaigns (launched within the
//! automatic approval limit, waiting for an approver above it), nothing done twice.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::sync::{Arc, Mutex};

use crate::common::*;

/// An HTTP receiver on loopback that answers 200 and keeps every JSON body.
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            keep.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        }
    });
    (url, got)
}

fn cycle(w: &str, at: &str) -> serde_json::Value {
    let (ok, r) = retain_json(&["cycle", "--dir", w, "--at", at, "--json"]);
    assert!(ok, "{r}");
    r
}

fn job<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {report}"))
}

fn campaigns(w: &str) -> Vec<serde_json::Value> {
    let (ok, list) = retain_json(&["campaign", "list", "--dir", w, "--json"]);
    assert!(ok, "{list}");
    list["campaigns"].as_array().unwrap().clone()
}

/// A bundled template under another name and budget, marked automatic.
fn automatic_template(dir: &Path, name: &str, budget: u32) -> PathBuf {
    let text = std::fs::read_to_string(
        manifest_dir().join("../retain-campaign/templates/weekly-high-end.toml"),
    )
    .unwrap()
    .replace(
        "name = \"weekly-high-end\"",
        &format!("name = \"{name}\"\nautomatic = true"),
    )
    .replace("budget = 100000", &format!("budget = {budget}"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_schedule_loads_whole_deliveries_warns_and_runs_automatic_campaigns_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let w = s(&ws);
    let (ok, demo) = retain_json(&[
        "demo",
        "--subscribers",
        "1500",
        "--months",
        "12",
        "--seed",
        "11",
        "--dir",
        w,
        "--json",
    ]);
    assert!(ok, "{demo}");
    let before = campaigns(w).len();

    // Without a schedule, list says how to make one; init writes the default once.
    let out = retain(&["schedule", "list", "--dir", w, "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retain schedule init"));
    assert!(retain(&["schedule", "init", "--dir", w]).status.success());
    assert!(!retain(&["schedule", "init", "--dir", w]).status.success());
    let (ok, list) = retain_json(&["schedule", "list", "--dir", w, "--json"]);
    assert!(ok, "{list}");
    assert_eq!(list["timezone"], "Asia/Shanghai");
    let names: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"weekly-warning") && names.contains(&"monthly-train"),
        "{names:?}"
    );
    assert!(list["jobs"][0]["next_run"].is_string(), "{list}");

    // A schedule of our own: loads, the weekly warning, launches of approved campaigns.
    let (url, alerts) = webhook();
    std::fs::write(
        ws.join("schedule.toml"),
        format!(
            "[alert]\nwebhook = \"{url}\"\n[campaigns]\nauto_approval_limit = 20000\n\
             [[job]]\nname = \"load\"\nstep = \"ingest\"\ncron = \"*/10 * * * *\"\nrecheck_minutes = 10\n\
             [[job]]\nname = \"monthly-score\"\nstep = \"score\"\ncron = \"0 4 1 * *\"\n\
             [[job]]\nname = \"weekly-warning\"\nstep = \"warn\"\ncron = \"0 6 * * MON\"\n\
             [[job]]\nname = \"launch-approved\"\nstep = \"launch\"\ncron = \"*/10 * * * *\"\n"
        ),
    )
    .unwrap();
    for (name, budget) in [("auto-small", 5000), ("auto-big", 50000)] {
        let file = automatic_template(dir.path(), name, budget);
        let out = retain(&["campaign", "template-save", "--dir", w, s(&file)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A delivery still being copied: its plans file is short of the stated size.
    let plans = std::fs::read(ws.join("incoming/plans.csv")).unwrap();
    let delivery = ws.join("drop/2026-12-07");
    std::fs::create_dir_all(&delivery).unwrap();
    std::fs::write(
        delivery.join("manifest.json"),
        format!(
            r#"{{"files": [{{"table": "plans", "file": "plans.csv", "bytes": {}}}]}}"#,
            plans.len()
        ),
    )
    .unwrap();
    std::fs::write(delivery.join("plans.csv"), &plans[..plans.len() / 2]).unwrap();

    // Monday 7 December 2026, 06:00 in Shanghai.
    let r = cycle(w, "2026-12-06T22:00:00Z");
    assert_eq!(job(&r, "load")["status"], "waiting", "{r}");
    assert!(
        job(&r, "load")["error"]
            .as_str()
            .unwrap()
            .contains("plans.csv"),
        "{r}"
    );
    let warn = job(&r, "weekly-warning");
    assert_eq!(warn["status"], "succeeded", "{r}");
    let all = campaigns(w);
    let auto: Vec<&serde_json::Value> = all.iter().filter(|c| c["owner"] == "scheduler").collect();
    assert_eq!(auto.len(), 2, "{}", warn["summary"]);
    assert_eq!(all.len(), before + 2);
    let small = auto.iter().find(|c| c["template"] == "auto-small").unwrap();
    let big = auto.iter().find(|c| c["template"] == "auto-big").unwrap();
    assert_eq!(small["status"], "launched", "{small}");
    assert_eq!(big["status"], "rehearsed", "{big}");
    let notified = alerts.lock().unwrap().clone();
    let approvals: Vec<_> = notified
        .iter()
        .filter(|e| e["event"] == "approval_needed")
        .collect();
    assert_eq!(approvals.len(), 1, "{notified:?}");
    assert_eq!(approvals[0]["campaign_id"], big["id"]);
    // The missed monthly scoring ran once, late; drift at alert level was sent on.
    let score = job(&r, "monthly-score");
    assert_eq!(score["status"], "succeeded", "{r}");
    let drifted = notified
        .iter()
        .filter(|e| e["event"] == "drift_alert")
        .count();
    let level = &score["summary"]["drift"]["level"];
    assert_eq!(
        drifted,
        usize::from(level == "alert"),
        "{level} {notified:?}"
    );

    // Ten minutes later the delivery is whole: loaded once and moved aside; the warning and
    // its campaigns are not run again.
    std::fs::write(delivery.join("plans.csv"), &plans).unwrap();
    let r = cycle(w, "2026-12-06T22:10:00Z");
    assert_eq!(job(&r, "load")["status"], "succeeded", "{r}");
    assert_eq!(job(&r, "weekly-warning")["action"], "idle", "{r}");
    assert!(ws.join("drop/loaded/2026-12-07/plans.csv").exists());
    let r = cycle(w, "2026-12-06T22:10:00Z");
    assert_eq!(job(&r, "load")["action"], "idle", "{r}");
    assert_eq!(campaigns(w).len(), before + 2);

    // The approver signs the big one; the next cycle launches it, and only once.
    let id = big["id"].as_i64().unwrap().to_string();
    let out = retain(&[
        "campaign", "approve", "--dir", w, "--id", &id, "--note", "ok",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = cycle(w, "2026-12-06T22:20:00Z");
    let launched = &job(&r, "launch-approved");
    assert_eq!(launched["status"], "succeeded", "{r}");
    let r = cycle(w, "2026-12-06T22:30:00Z");
    assert_eq!(job(&r, "launch-approved")["status"], "succeeded", "{r}");
    let all = campaigns(w);
    let big = all.iter().find(|c| c["id"] == big["id"]).unwrap();
    assert_eq!(big["status"], "launched", "{big}");
    let (ok, runs) = retain_json(&[
        "schedule",
        "runs",
        "--dir",
        w,
        "--job",
        "launch-approved",
        "--json",
    ]);
    assert!(ok);
    let launched: Vec<usize> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["summary"]["launched"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(launched.iter().sum::<usize>(), 1, "{runs}");
}

#[test]
fn a_broken_schedule_is_refused_with_its_place_and_a_step_failure_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let w = s(&ws);
    assert!(retain(&["schedule", "init", "--dir", w]).status.success());
    std::fs::write(
        ws.join("schedule.toml"),
        "[[job]]\nname = \"w\"\nstep = \"warn\"\ncron = \"61 6 * * MON\"\n",
    )
    .unwrap();
    let out = retain(&["cycle", "--dir", w]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schedule.toml") && err.contains("61 6 * * MON"),
        "{err}"
    );

    // An empty workspace: the warning has nothing to do; a delivery naming an unknown table
    // fails the load, which is retried later.
    std::fs::write(
        ws.join("schedule.toml"),
        "[[job]]\nname = \"load\"\nstep = \"ingest\"\ncron = \"0 * * * *\"\n\
         [[job]]\nname = \"w\"\nstep = \"warn\"\ncron = \"0 6 * * MON\"\n",
    )
    .unwrap();
    let d = ws.join("drop/a");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("x.csv"), "a\n").unwrap();
    std::fs::write(
        d.join("manifest.json"),
        r#"{"files": [{"table": "bills", "file": "x.csv", "bytes": 2}]}"#,
    )
    .unwrap();
    let r = cycle(w, "2026-12-06T22:00:00Z");
    let load = job(&r, "load");
    assert_eq!(load["status"], "failed", "{r}");
    assert!(load["error"].as_str().unwrap().contains("\"bills\""), "{r}");
    assert_eq!(load["retry_at"], "2026-12-06T22:10:00Z");
    assert_eq!(job(&r, "w")["status"], "skipped", "{r}");
    assert!(d.exists(), "a failed delivery stays where it is");

    // A job run by hand, now: recorded like any other; an unknown one is refused by name.
    let (ok, now) = retain_json(&["schedule", "run", "--dir", w, "--job", "w", "--json"]);
    assert!(ok, "{now}");
    assert_eq!(
        (&now["action"], &now["status"]),
        (&"ran".into(), &"skipped".into()),
        "{now}"
    );
    let out = retain(&["schedule", "run", "--dir", w, "--job", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job \"nope\""));
}

#[test]
fn two_cycles_at_once_run_a_job_once_and_serve_runs_the_schedule_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let w = s(&ws);
    let (ok, demo) = retain_json(&[
        "demo",
        "--subscribers",
        "1500",
        "--months",
        "13",
        "--seed",
        "29",
        "--dir",
        w,
        "--json",
    ]);
    assert!(ok, "{demo}");
    // Training takes long enough for two cycles started together to meet on its lease.
    std::fs::write(
        ws.join("schedule.toml"),
        "[[job]]\nname = \"monthly-train\"\nstep = \"train\"\ncron = \"0 2 1 * *\"\n",
    )
    .unwrap();
    let at = "2026-12-01T00:00:00Z";
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_retain"))
            .args(["cycle", "--dir", w, "--at", at, "--json"])
            .env("RETAIN_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut actions = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        actions.push(
            job(&r, "monthly-train")["action"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    actions.sort();
    assert!(
        actions == ["busy", "ran"] || actions == ["idle", "ran"],
        "{actions:?}"
    );
    let (ok, runs) = retain_json(&["schedule", "runs", "--dir", w, "--json"]);
    assert!(ok);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["status"], "succeeded", "{runs}");

    // `retain serve` runs what is due on its own: a job due every minute has a run soon.
    std::fs::write(
        ws.join("schedule.toml"),
        "[[job]]\nname = \"often\"\nstep = \"segment\"\ncron = \"* * * * *\"\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["serve", "--dir", w, "--addr", &format!("127.0.0.1:{port}")])
        .env("RETAIN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut found = None;
    for _ in 0..120 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (_, runs) = retain_json(&["schedule", "runs", "--dir", w, "--job", "often", "--json"]);
        if let Some(r) = runs["runs"].as_array().and_then(|r| r.first())
            && r["status"] != "running"
        {
            found = Some(r.clone());
            break;
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let run = found.expect("serve ran the due job within a minute");
    assert_eq!(run["status"], "succeeded", "{run}");
}
