//! The analytic steps on an Apache Ballista cluster: a scheduler and two executors started as
//! separate processes on loopback, compared with the embedded engine's run of the same operator.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::common::*;

/// A scheduler and its executors, each a `retain cluster` process; killed when dropped.
struct Cluster {
    port: u16,
    scheduler: Child,
    executors: Vec<Child>,
    logs: tempfile::TempDir,
}

impl Cluster {
    /// Starts a scheduler and `executors` executors, and waits until every one listens.
    /// `timeout`: seconds without a heartbeat before the scheduler takes an executor for dead.
    fn start(executors: usize, timeout: u64) -> Cluster {
        let logs = tempfile::tempdir().unwrap();
        let port = free_ports(1);
        let scheduler = spawn(
            &[
                "cluster",
                "scheduler",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--executor-timeout",
                &timeout.to_string(),
            ],
            &logs.path().join("scheduler.log"),
        );
        wait_listening(port);
        let mut cluster = Cluster {
            port,
            scheduler,
            executors: Vec::new(),
            logs,
        };
        for i in 0..executors {
            // The data service and, on the next port, the task service.
            let data = free_ports(2);
            let work = cluster.logs.path().join(format!("work-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let child = spawn(
                &[
                    "cluster",
                    "executor",
                    "--scheduler",
                    &format!("127.0.0.1:{port}"),
                    "--bind",
                    &format!("127.0.0.1:{data}"),
                    "--concurrent-tasks",
                    "2",
                    "--heartbeat",
                    "1",
                    "--work-dir",
                    s(&work),
                ],
                &cluster.logs.path().join(format!("executor-{i}.log")),
            );
            cluster.executors.push(child);
            wait_listening(data);
            wait_listening(data + 1);
        }
        cluster
    }

    fn url(&self) -> String {
        format!("ballista://127.0.0.1:{}", self.port)
    }

    /// Every process's log, for a failing assertion's message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.logs.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let _ = writeln!(text, "--- {}", entry.path().display());
                for line in tail.into_iter().rev() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(args)
        .env("RETAIN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the retain binary runs")
}

/// The first of `n` consecutive free loopback ports.
fn free_ports(n: u16) -> u16 {
    'search: loop {
        let first = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if first.checked_add(n).is_none() {
            continue;
        }
        for p in first..first + n {
            if TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return first;
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rows of a Parquet file, ordered by subscriber where there is one, then by every column's
/// text: a ratio may differ in its last digit between engines, and must not reorder the rows.
fn parquet_rows(path: &Path) -> Vec<Map<String, Value>> {
    let batches: Vec<_> = retain_data::read_batches(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|b| b.unwrap())
        .collect();
    let mut rows = retain_features::json_rows(&batches);
    rows.sort_by_key(|r| {
        (
            r.get("subscriber_id").and_then(Value::as_i64),
            Value::Object(r.clone()).to_string(),
        )
    });
    rows
}

/// Rows equal column by column, numbers within a relative tolerance (sums over partitions may
/// add in another order on a cluster).
fn assert_rows_match(what: &str, here: &[Map<String, Value>], there: &[Map<String, Value>]) {
    assert_eq!(here.len(), there.len(), "{what}: row counts");
    for (row, other) in here.iter().zip(there) {
        assert_eq!(
            row.keys().collect::<Vec<_>>(),
            other.keys().collect::<Vec<_>>(),
            "{what}: columns"
        );
        for (key, value) in row {
            let theirs = &other[key];
            let same = match (value.as_f64(), theirs.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => value == theirs,
            };
            assert!(
                same,
                "{what}: {key} differs: {value} against {theirs}\n{row:?}\n{other:?}"
            );
        }
    }
}

/// The one file in `dir` with `extension`.
fn only_file(dir: &Path, extension: &str) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    assert_eq!(files.len(), 1, "{}: {files:?}", dir.display());
    files.into_iter().next().unwrap()
}

/// `retain demo` of `subscribers` over `months` from `seed`, on `engine` or embedded.
fn demo(
    dir: &Path,
    (subscribers, months, seed): (u32, u32, u64),
    engine: Option<&str>,
) -> (bool, Value) {
    let (subscribers, months, seed) = (
        subscribers.to_string(),
        months.to_string(),
        seed.to_string(),
    );
    let mut args = vec![
        "demo",
        "--subscribers",
        &subscribers,
        "--months",
        &months,
        "--seed",
        &seed,
        "--dir",
        s(dir),
        "--json",
    ];
    if let Some(engine) = engine {
        args.extend(["--engine", engine]);
    }
    retain_json(&args)
}

/// A report without the places of its files, which name the workspace it was run in.
fn placeless(json: &Value) -> Value {
    match json {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.ends_with("_file") && !k.ends_with("_dir"))
                .map(|(k, v)| (k.clone(), placeless(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(placeless).collect()),
        other => other.clone(),
    }
}

fn levels(json: &Value) -> [Value; 3] {
    ["red", "yellow", "blue"].map(|l| json[l].clone())
}

#[test]
fn the_weekly_cycle_on_a_loopback_cluster_matches_the_embedded_engine() {
    let cluster = Cluster::start(2, 10);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let embedded = dir.path().join("embedded");
    let clustered = dir.path().join("cluster");
    let operator = (1200, 13, 23);
    let (ok, here) = demo(&embedded, operator, None);
    assert!(ok, "{here}");
    let (ok, there) = demo(&clustered, operator, Some(&url));
    assert!(ok, "{there}\n{}", cluster.logs());

    // The demo's reports: warnings, backtest, segments, matching, the model.
    assert_eq!(levels(&here["warnings"]), levels(&there["warnings"]));
    assert_eq!(here["warn_backtest"], there["warn_backtest"]);
    assert_eq!(placeless(&here["segments"]), placeless(&there["segments"]));
    assert_eq!(here["features"]["rows"], there["features"]["rows"]);
    assert_eq!(
        here["model"]["train"]["auc"],
        there["model"]["train"]["auc"]
    );
    assert_eq!(placeless(&here["matching"]), placeless(&there["matching"]));

    // The files each stage wrote.
    for dir in ["warnings", "features"] {
        assert_rows_match(
            dir,
            &parquet_rows(&only_file(&embedded.join(dir), "parquet")),
            &parquet_rows(&only_file(&clustered.join(dir), "parquet")),
        );
    }
    for file in ["segments/subscribers.parquet", "segments/tags.parquet"] {
        assert_rows_match(
            file,
            &parquet_rows(&embedded.join(file)),
            &parquet_rows(&clustered.join(file)),
        );
    }
    // Scored on the executors, with the model carried in the plan, and written by one of
    // them: the embedded file, byte for byte, in its order.
    assert_eq!(
        std::fs::read_to_string(only_file(&embedded.join("scores"), "csv")).unwrap(),
        std::fs::read_to_string(only_file(&clustered.join("scores"), "csv")).unwrap(),
        "scores"
    );

    // The interface outside checks use: the same counts with and without --engine, and the
    // engine from RETAIN_ENGINE or retain.toml.
    let (ok, local) = retain_json(&["warn", "--dir", s(&clustered), "--json"]);
    assert!(ok, "{local}");
    let (ok, remote) = retain_json(&["warn", "--dir", s(&clustered), "--engine", &url, "--json"]);
    assert!(ok, "{remote}\n{}", cluster.logs());
    assert_eq!(levels(&local), levels(&remote));
    assert_eq!(levels(&local), levels(&here["warnings"]));
    let (ok, local) = retain_json(&["segment", "--dir", s(&clustered), "--json"]);
    assert!(ok, "{local}");
    let config = clustered.join("retain.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("url = \"embedded\"", &format!("url = \"{url}\"")),
    )
    .unwrap();
    let (ok, remote) = retain_json(&["segment", "--dir", s(&clustered), "--json"]);
    assert!(ok, "{remote}\n{}", cluster.logs());
    assert_eq!(local, remote);
    assert_eq!(placeless(&local), placeless(&here["segments"]));
}

#[test]
fn an_unreachable_or_malformed_engine_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("w");
    let (ok, json) = demo(&ws, (300, 6, 5), None);
    assert!(ok, "{json}");
    let out = retain(&["warn", "--dir", s(&ws), "--engine", "spark://h:7077"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ballista://HOST:PORT"), "{stderr}");

    // Nothing listens there: the step fails naming the scheduler, and the list it would have
    // replaced is untouched.
    let before = std::fs::read_dir(ws.join("warnings")).unwrap().count();
    let port = free_ports(1);
    let out = retain(&[
        "warn",
        "--dir",
        s(&ws),
        "--engine",
        &format!("ballista://127.0.0.1:{port}"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert_eq!(
        std::fs::read_dir(ws.join("warnings")).unwrap().count(),
        before
    );
}

#[test]
fn an_executor_killed_mid_run_leaves_the_same_result_or_a_clear_error_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("w");
    let (ok, json) = demo(&ws, (1500, 13, 31), None);
    assert!(ok, "{json}");
    let report = ws.join("reports/warn-backtest.json");
    let embedded = std::fs::read(&report).unwrap();

    // The backtest runs one plan per labelled month: many jobs, so that the executor dies with
    // work still to come. The scheduler takes it for dead after three seconds of silence.
    let mut cluster = Cluster::start(2, 3);
    let out = dir.path().join("backtest.out");
    let err = dir.path().join("backtest.err");
    let mut backtest = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["warn", "--dir", s(&ws), "--backtest", "--json"])
        .args(["--engine", &cluster.url()])
        .env("RETAIN_LOG", "warn")
        // A scheduler may lose track of a stage whose executor died at the wrong moment and
        // wait for ever: the step's deadline turns that into a clear failure.
        .env("RETAIN_ENGINE_TIMEOUT", "150")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let victim = cluster.logs.path().join("executor-0.log");
    let deadline = Instant::now() + Duration::from_mins(2);
    let mut killed = false;
    while backtest.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let log = std::fs::read_to_string(&victim).unwrap_or_default();
        if log.contains("Execute task") {
            cluster.executors[0].kill().unwrap();
            cluster.executors[0].wait().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = backtest.wait().unwrap();
    let stdout = std::fs::read_to_string(&out).unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        killed,
        "the executor ran no task: {stdout}\n{stderr}\n{}",
        cluster.logs()
    );
    if status.success() {
        // Its tasks ran again on the other executor: the report is the embedded engine's.
        let there: Value = serde_json::from_str(stdout.trim()).unwrap();
        let here: Value = serde_json::from_slice(&embedded).unwrap();
        assert_eq!(here, there);
    } else {
        // Or the step failed, said so, and left the report it would have replaced.
        assert!(
            stderr.contains("error"),
            "a failed step explains itself: {stderr}"
        );
        assert_eq!(std::fs::read(&report).unwrap(), embedded, "{stderr}");
    }
}
