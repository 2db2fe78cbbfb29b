//! How commands run: the allocator's settings per command, and one JSON object per command.

use crate::common::*;

/// The purge delay and the transparent huge pages setting mimalloc reports using at start-up,
/// from its verbose option listing, in the last process that started; `preset` sets both.
fn allocator_in_use(args: &[&str], preset: Option<(&str, &str)>) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_retain"));
    command
        .args(args)
        .env("RETAIN_LOG", "warn")
        .env("MIMALLOC_VERBOSE", "1");
    match preset {
        Some((delay, thp)) => command
            .env("MIMALLOC_PURGE_DELAY", delay)
            .env("MIMALLOC_ALLOW_THP", thp),
        None => command
            .env_remove("MIMALLOC_PURGE_DELAY")
            .env_remove("MIMALLOC_ALLOW_THP"),
    };
    let out = command.output().expect("the retain binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let option = |name: &str| {
        let prefix = format!("option '{name}': ");
        stderr
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .expect("mimalloc lists its options when verbose")
            .trim()
            .to_owned()
    };
    (option("purge_delay"), option("allow_thp"))
}

#[test]
fn batch_steps_keep_freed_memory_in_small_pages_and_other_commands_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let synth = [
        "synth",
        "--subscribers",
        "50",
        "--months",
        "6",
        "--out",
        s(&out),
    ];
    let tuned = ("-1".to_owned(), "0".to_owned());
    assert_eq!(allocator_in_use(&synth, None), tuned);
    // Options the operator chose are kept.
    assert_eq!(
        allocator_in_use(&synth, Some(("250", "1"))),
        ("250".to_owned(), "1".to_owned())
    );
    // Quick commands and the server keep mimalloc's defaults.
    let (delay, thp) = allocator_in_use(&["schema"], None);
    assert_ne!(delay, "-1");
    assert_eq!(thp, "1");
}

/// A table too small to cut, where no feature can be split: `--json` still prints one object
/// (LightGBM, which retain grew its trees with before, warned on standard output there).
#[test]
fn model_eval_json_is_one_object_even_where_no_tree_can_split() {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("tiny.csv");
    let mut csv = String::from("id,a,b,churn\n");
    for i in 0..60 {
        let a = f64::from(i * 37 % 60) / 60.0;
        let level = if i % 2 == 0 { "x" } else { "y" };
        writeln!(csv, "{i},{a:.3},{level},{}", u8::from(a > 0.6)).unwrap();
    }
    std::fs::write(&table, csv).unwrap();
    let (ok, report) = retain_json(&[
        "model",
        "eval",
        "--train",
        s(&table),
        "--split",
        "0.3",
        "--target",
        "churn",
        "--json",
    ]);
    assert!(ok, "{report}");
    let rows = report["rows_train"].as_u64().unwrap() + report["rows_test"].as_u64().unwrap();
    assert_eq!(rows, 60);
    assert!(report["auc"].as_f64().is_some(), "{report}");
}
