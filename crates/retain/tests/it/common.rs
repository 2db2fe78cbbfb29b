//! Running the binary as a user would, and the files the tests read.

pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Command, Output};

/// This crate's directory, read at run time: a test binary reused from a build in another
/// checkout must still look at this one.
pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests"))
}

pub(crate) fn retain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(args)
        .env("RETAIN_LOG", "warn")
        .output()
        .expect("the retain binary runs")
}

/// Runs a `--json` command and parses its one stdout object.
pub(crate) fn retain_json(args: &[&str]) -> (bool, serde_json::Value) {
    let out = retain(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON line on stdout, got: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        serde_json::from_str(lines[0]).unwrap(),
    )
}

/// `retain demo --json` over twelve months, the shortest window the churn model trains on.
pub(crate) fn demo_months_12(ws: &Path, subscribers: u32, seed: u64) -> serde_json::Value {
    let (subscribers, seed) = (subscribers.to_string(), seed.to_string());
    let (ok, json) = retain_json(&[
        "demo",
        "--subscribers",
        &subscribers,
        "--months",
        "12",
        "--seed",
        &seed,
        "--dir",
        s(ws),
        "--json",
    ]);
    assert!(ok, "{json}");
    json
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    manifest_dir()
        .join("../retain-data/tests/fixtures")
        .join(name)
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub(crate) fn retain_warn_default() -> String {
    std::fs::read_to_string(manifest_dir().join("../retain-warn/rules/default.toml")).unwrap()
}

/// `retain user add ARGS --password-stdin` with `password` on standard input.
pub(crate) fn user_add(args: &[&str], password: &str) -> (bool, serde_json::Value) {
    user_with_password("add", args, password)
}

/// `retain user SUB ARGS --password-stdin` with `password` on standard input.
pub(crate) fn user_with_password(
    sub: &str,
    args: &[&str],
    password: &str,
) -> (bool, serde_json::Value) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["user", sub])
        .args(args)
        .arg("--password-stdin")
        .env("RETAIN_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
    )
}

pub(crate) fn id_of(json: &serde_json::Value) -> String {
    json["id"].as_i64().expect("an id").to_string()
}
