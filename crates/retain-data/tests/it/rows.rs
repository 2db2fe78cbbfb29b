//! Rows the validation rejects — bad values, broken rules, unknown references, bad bytes,
//! over-long lines — each quarantined with its line, column and reason while the rest load.

use std::fmt::Write as _;

use arrow::array::AsArray;
use retain_data::{Error, IngestOptions, Table, ingest};

use crate::common::{
    fixture, ids, load, options, quarantine, table_batches, with_subscribers, workspace,
};

#[test]
fn good_files_load_with_every_column_typed() {
    let s = with_subscribers();
    assert_eq!(s.ws.table_rows(Table::Plans).unwrap(), 3);
    assert_eq!(ids(&s.ws, Table::Subscribers), vec![1001, 1002, 1003, 1004]);
    let batch = &table_batches(&s.ws, Table::Subscribers)[0];
    assert_eq!(batch.schema(), Table::Subscribers.spec().arrow_schema());
    // `2021/07/15` and `20230110` were read as dates.
    let join = batch
        .column(2)
        .as_primitive::<arrow::datatypes::Date32Type>();
    assert_eq!(
        retain_data::days_to_date(join.value(1)).to_string(),
        "2021-07-15"
    );
    assert_eq!(
        retain_data::days_to_date(join.value(2)).to_string(),
        "2023-01-10"
    );
}

#[test]
fn bad_subscriber_rows_are_quarantined_with_line_column_and_reason() {
    let s = workspace();
    load(&s.ws, Table::Plans, &fixture("plans.csv"), "plans");
    let report = load(
        &s.ws,
        Table::Subscribers,
        &fixture("subscribers_bad.csv"),
        "bad",
    );
    assert_eq!((report.read, report.loaded, report.quarantined), (10, 2, 8));
    let rows = quarantine(&report);
    let expected: &[(u64, &str, &str)] = &[
        (3, "join_date", "is not a date"),
        (4, "", "expected 17 fields like the header, found 16"),
        (
            5,
            "subscriber_id",
            "duplicate key subscriber_id=2001 (first seen on line 2)",
        ),
        (6, "plan_id", "plan_id P999 does not exist in plans"),
        (7, "status", "unknown value \"gone\""),
        (8, "subscriber_id", "is not a whole number"),
        (9, "msisdn", "is not a phone number"),
        (10, "group_id", "a group_member needs a group_id"),
    ];
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for ((line, column, reason), (want_line, want_column, want_reason)) in rows.iter().zip(expected)
    {
        assert_eq!(line, want_line);
        assert_eq!(column, want_column, "line {line}");
        assert!(reason.contains(want_reason), "line {line}: {reason}");
    }
    // The quoted field with a comma is a good row.
    assert_eq!(ids(&s.ws, Table::Subscribers), vec![2001, 2010]);
    assert_eq!(report.rejected_by_column["(row)"], 1);
}

/// A rejected row that a spreadsheet would run as a formula is quoted in the quarantine file
/// people open; the row is kept otherwise as it was read.
#[test]
fn quarantined_formulas_are_quoted_for_spreadsheets() {
    let s = workspace();
    load(&s.ws, Table::Plans, &fixture("plans.csv"), "plans");
    let good = std::fs::read_to_string(fixture("subscribers.csv")).unwrap();
    let mut lines = good.lines();
    let mut text = format!("{}\n", lines.next().unwrap());
    let row = lines.next().unwrap();
    let (_, rest) = row.split_once(',').unwrap();
    let _ = writeln!(text, "=2+5*cmd|calc!A0,{rest}");
    let _ = writeln!(text, "{row}");
    let file = s.scratch.join("subscribers.csv");
    std::fs::write(&file, text).unwrap();
    let report = load(&s.ws, Table::Subscribers, &file, "formula");
    assert_eq!((report.loaded, report.quarantined), (1, 1));
    let mut reader = csv::Reader::from_path(&report.quarantine_file).unwrap();
    let rejected = reader.records().next().unwrap().unwrap();
    assert_eq!(&rejected[2], "subscriber_id");
    assert!(
        rejected[4].starts_with("'=2+5*cmd|calc!A0,13800000001,"),
        "{:?}",
        &rejected[4]
    );
}

#[test]
fn bad_usage_rows_negative_fees_bad_numbers_and_unknown_subscribers() {
    let s = with_subscribers();
    let report = load(
        &s.ws,
        Table::UsageMonthly,
        &fixture("usage_monthly_bad.csv"),
        "usage",
    );
    assert_eq!((report.read, report.loaded, report.quarantined), (8, 3, 5));
    let rows = quarantine(&report);
    let got: Vec<(u64, &str)> = rows.iter().map(|(l, c, _)| (*l, c.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (4, "fee"),
            (5, "fee"),
            (6, "subscriber_id"),
            (7, "period"),
            (8, "suspended_days")
        ]
    );
    assert!(rows[0].2.contains("negative"), "{}", rows[0].2);
    assert!(rows[2].2.contains("9999 does not exist in subscribers"));
    assert!(rows[4].2.contains("30 days in a month of 28 days"));
}

#[test]
fn bad_utf8_rows_are_quarantined_and_the_rest_load() {
    let s = workspace();
    let file = s.scratch.join("plans.csv");
    let mut bytes =
        b"plan_id,name,monthly_fee,data_mb,voice_minutes,tier\nP1,ok,10,1,1,1\n".to_vec();
    bytes.extend_from_slice(b"P2,bad \xff\xfe name,10,1,1,1\nP3,ok too,10,1,1,1\n");
    std::fs::write(&file, bytes).unwrap();
    let report = load(&s.ws, Table::Plans, &file, "utf8");
    assert_eq!((report.read, report.loaded, report.quarantined), (3, 2, 1));
    let rows = quarantine(&report);
    assert_eq!(rows[0].0, 3);
    assert_eq!(rows[0].1, "name");
    assert!(rows[0].2.contains("invalid UTF-8"), "{}", rows[0].2);
    assert_eq!(report.files[0].source.encoding, Some("utf-8"));
}

#[test]
fn a_ten_megabyte_line_is_quarantined_not_loaded() {
    let s = workspace();
    let file = s.scratch.join("plans.csv");
    let mut text =
        String::from("plan_id,name,monthly_fee,data_mb,voice_minutes,tier\nP1,ok,10,1,1,1\n");
    text.push_str("P2,");
    text.push_str(&"x".repeat(10 * 1024 * 1024));
    text.push_str(",10,1,1,1\nP3,ok,10,1,1,1\n");
    std::fs::write(&file, text).unwrap();
    let report = load(&s.ws, Table::Plans, &file, "long");
    assert_eq!((report.read, report.loaded, report.quarantined), (3, 2, 1));
    let rows = quarantine(&report);
    assert_eq!(rows[0].0, 3);
    assert!(rows[0].2.contains("over the limit"), "{}", rows[0].2);
}

#[test]
fn max_bad_ratio_aborts_with_nothing_written() {
    let s = workspace();
    load(&s.ws, Table::Plans, &fixture("plans.csv"), "plans");
    let err = ingest(
        &s.ws,
        Table::Subscribers,
        &[fixture("subscribers_bad.csv")],
        &IngestOptions {
            max_bad_ratio: Some(0.5),
            ..options("ratio")
        },
    )
    .unwrap_err();
    match err {
        Error::TooManyBadRows {
            read,
            quarantined,
            quarantine_file,
            ..
        } => {
            assert_eq!((read, quarantined), (10, 8));
            assert!(quarantine_file.exists(), "the reasons stay available");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!s.ws.has_table(Table::Subscribers));
    // The tables' lock files stay; no staging does.
    let mut left: Vec<String> = std::fs::read_dir(s.ws.root().join("tables"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with(".lock-"))
        .collect();
    left.sort();
    assert_eq!(left, ["plans"], "only plans, no staging left behind");
}
