//! Ingest against the bad inputs operators actually send: each gives a clear error or
//! quarantined rows, and `read = loaded + quarantined` always holds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use retain_data::{
    Encoding, Error, IngestOptions, IngestReport, Mapping, Table, Workspace, ingest,
};

mod properties;
mod wide;

/// This crate's directory, read at run time: a test binary reused from a build in another
/// checkout must still look at this one.
fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests"))
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures").join(name)
}

struct Setup {
    _dir: tempfile::TempDir,
    ws: Workspace,
    scratch: PathBuf,
}

fn workspace() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::create_or_open(&dir.path().join("ws")).unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    Setup {
        _dir: dir,
        ws,
        scratch,
    }
}

fn options(label: &str) -> IngestOptions {
    IngestOptions {
        label: label.to_owned(),
        ..IngestOptions::default()
    }
}

fn load(ws: &Workspace, table: Table, file: &Path, label: &str) -> IngestReport {
    let report = ingest(ws, table, &[file.to_path_buf()], &options(label)).unwrap();
    assert_eq!(
        report.read,
        report.loaded + report.quarantined,
        "{report:?}"
    );
    report
}

/// Workspace with plans and the four good subscribers loaded.
fn with_subscribers() -> Setup {
    let s = workspace();
    load(&s.ws, Table::Plans, &fixture("plans.csv"), "plans");
    load(
        &s.ws,
        Table::Subscribers,
        &fixture("subscribers.csv"),
        "subs",
    );
    s
}

/// The quarantine file as (line, column, reason) triples.
fn quarantine(report: &IngestReport) -> Vec<(u64, String, String)> {
    let mut reader = csv::Reader::from_path(&report.quarantine_file).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].parse().unwrap(), r[2].to_owned(), r[3].to_owned())
        })
        .collect()
}

fn table_batches(ws: &Workspace, table: Table) -> Vec<RecordBatch> {
    retain_data::read_batches(&ws.table_file(table))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn ids(ws: &Workspace, table: Table) -> Vec<i64> {
    let mut ids: Vec<i64> = table_batches(ws, table)
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    ids.sort_unstable();
    ids
}

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
fn loading_the_same_file_twice_changes_nothing() {
    let s = with_subscribers();
    let file = s.ws.table_file(Table::Subscribers);
    let before = std::fs::read(&file).unwrap();
    let again = load(
        &s.ws,
        Table::Subscribers,
        &fixture("subscribers.csv"),
        "again",
    );
    assert_eq!(
        (again.inserted, again.replaced, again.table_rows),
        (0, 4, 4)
    );
    assert_eq!(table_batches(&s.ws, Table::Subscribers)[0].num_rows(), 4);
    let after_batches = table_batches(&s.ws, Table::Subscribers);
    let before_batches: Vec<RecordBatch> = {
        let tmp = s.scratch.join("before.parquet");
        std::fs::write(&tmp, &before).unwrap();
        retain_data::read_batches(&tmp)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(before_batches, after_batches);
}

#[test]
fn a_second_file_upserts_by_key() {
    let s = with_subscribers();
    let update = s.scratch.join("update.csv");
    std::fs::write(
        &update,
        "subscriber_id,msisdn,join_date,customer_type,province,city,plan_id,branch_id,status,status_date\n\
         1004,13800000004,2024-08-01,personal,江苏,苏州,P019,SZ04,cancelled,2025-03-01\n\
         1005,13800000005,2025-01-01,personal,江苏,苏州,P019,SZ04,active,2025-01-01\n",
    )
    .unwrap();
    let report = load(&s.ws, Table::Subscribers, &update, "update");
    assert_eq!(
        (report.inserted, report.replaced, report.table_rows),
        (1, 1, 5)
    );
    assert_eq!(
        ids(&s.ws, Table::Subscribers),
        vec![1001, 1002, 1003, 1004, 1005]
    );
}

#[test]
fn missing_required_column_is_a_file_error_naming_the_column() {
    let s = with_subscribers();
    let before = std::fs::read(s.ws.table_file(Table::Subscribers)).unwrap();
    let err = ingest(
        &s.ws,
        Table::Subscribers,
        &[fixture("subscribers_missing_column.csv")],
        &options("missing"),
    )
    .unwrap_err();
    match &err {
        Error::BadFile { location, reason } => {
            assert_eq!(location.line, 1);
            assert_eq!(location.column.as_deref(), Some("msisdn"));
            assert!(
                reason.contains("missing required column msisdn"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_user_error());
    // Nothing half-written: the table and the quarantine directory are as before.
    assert_eq!(
        std::fs::read(s.ws.table_file(Table::Subscribers)).unwrap(),
        before
    );
    assert!(
        !s.ws
            .quarantine_dir()
            .join("missing-subscribers.csv")
            .exists()
    );
}

#[test]
fn empty_file_and_header_only() {
    let s = workspace();
    let empty = s.scratch.join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    let err = ingest(&s.ws, Table::Plans, &[empty], &options("empty")).unwrap_err();
    assert!(err.to_string().contains("the file is empty"), "{err}");

    let header_only = s.scratch.join("plans_header.csv");
    std::fs::write(
        &header_only,
        "plan_id,name,monthly_fee,data_mb,voice_minutes,tier\n",
    )
    .unwrap();
    let report = load(&s.ws, Table::Plans, &header_only, "header");
    assert_eq!((report.read, report.loaded, report.quarantined), (0, 0, 0));
    assert_eq!(s.ws.table_rows(Table::Plans).unwrap(), 0);

    // A header that is not the table's is a missing-column error, not an empty load.
    let err = ingest(
        &s.ws,
        Table::Plans,
        &[fixture("header_only.csv")],
        &options("other-header"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("missing required column plan_id"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_csv_at_all() {
    let s = workspace();
    let png = s.scratch.join("logo.csv");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0").unwrap();
    let err = ingest(&s.ws, Table::Plans, &[png], &options("png")).unwrap_err();
    assert!(err.to_string().contains("not a CSV text file"), "{err}");

    let zip = s.scratch.join("plans.zip");
    std::fs::write(&zip, b"PK\x03\x04rest").unwrap();
    let err = ingest(&s.ws, Table::Plans, &[zip], &options("zip")).unwrap_err();
    assert!(err.to_string().contains("decompress"), "{err}");

    let json = s.scratch.join("plans.json");
    std::fs::write(&json, "{\"plans\": []}\n").unwrap();
    let err = ingest(&s.ws, Table::Plans, &[json], &options("json")).unwrap_err();
    assert!(err.to_string().contains("missing required column"), "{err}");
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
fn gbk_export_with_chinese_headers_loads_through_a_mapping() {
    let s = workspace();
    load(&s.ws, Table::Plans, &fixture("plans.csv"), "plans");
    let utf8 = std::fs::read_to_string(fixture("subscribers_export.csv")).unwrap();
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&utf8);
    assert!(!unmappable);
    let file = s.scratch.join("export_gbk.csv");
    std::fs::write(&file, &gbk).unwrap();
    let mapping = Mapping::load(
        &fixture("subscribers_export.toml"),
        Table::Subscribers.spec(),
    )
    .unwrap();
    let report = ingest(
        &s.ws,
        Table::Subscribers,
        std::slice::from_ref(&file),
        &IngestOptions {
            mapping,
            ..options("gbk")
        },
    )
    .unwrap();
    assert_eq!(
        (report.read, report.loaded, report.quarantined),
        (2, 2, 0),
        "{:?}",
        quarantine(&report)
    );
    assert_eq!(report.files[0].source.encoding, Some("gbk"));
    assert_eq!(
        report.files[0].source.ignored_columns,
        vec!["备注".to_owned()]
    );
    let batch = &table_batches(&s.ws, Table::Subscribers)[0];
    let city = batch.column(6).as_string::<i32>();
    assert_eq!(city.value(0), "南京");
    let status = batch.column(15).as_string::<i32>();
    assert_eq!(status.value(1), "suspended");
    let province = batch.column(5).as_string::<i32>();
    assert_eq!(province.value(1), "江苏");

    // Auto-detection finds GBK too, without the mapping's encoding line.
    let mut mapping = Mapping::load(
        &fixture("subscribers_export.toml"),
        Table::Subscribers.spec(),
    )
    .unwrap();
    mapping.encoding = Encoding::Auto;
    let report = ingest(
        &s.ws,
        Table::Subscribers,
        &[file],
        &IngestOptions {
            mapping,
            ..options("gbk-auto")
        },
    )
    .unwrap();
    assert_eq!(report.loaded, 2);
    assert_eq!(report.replaced, 2);
    assert_eq!(report.files[0].source.encoding, Some("gb18030"));
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

#[test]
fn referencing_an_unloaded_table_is_an_error() {
    let s = workspace();
    let err = ingest(
        &s.ws,
        Table::UsageMonthly,
        &[fixture("usage_monthly_bad.csv")],
        &options("noref"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("ingest subscribers first"),
        "{err}"
    );
}

#[test]
fn parquet_input_loads_and_a_truncated_parquet_is_an_error() {
    let s = with_subscribers();
    // The table file itself is valid Parquet input with canonical columns.
    let parquet = s.scratch.join("subscribers.parquet");
    std::fs::copy(s.ws.table_file(Table::Subscribers), &parquet).unwrap();
    let report = load(&s.ws, Table::Subscribers, &parquet, "parquet");
    assert_eq!((report.read, report.loaded, report.replaced), (4, 4, 4));
    assert_eq!(report.files[0].source.format, "parquet");

    let bytes = std::fs::read(&parquet).unwrap();
    let truncated = s.scratch.join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = ingest(&s.ws, Table::Subscribers, &[truncated], &options("trunc")).unwrap_err();
    assert!(
        err.to_string().contains("not a readable Parquet file"),
        "{err}"
    );
    assert_eq!(s.ws.table_rows(Table::Subscribers).unwrap(), 4);
}

#[test]
fn duplicates_across_files_of_one_load_name_the_first_file() {
    let s = with_subscribers();
    let a = s.scratch.join("a.csv");
    let b = s.scratch.join("b.csv");
    let header = "subscriber_id,period,fee,voice_minutes,calls_out,calls_in,data_mb,sms,bundled_services,vas_fee,recharge,arrears,suspended_days,active_days\n";
    std::fs::write(
        &a,
        format!("{header}1001,2025-01,10,1,1,1,1,1,1,0,10,0,0,20\n"),
    )
    .unwrap();
    std::fs::write(
        &b,
        format!("{header}1001,2025-01,12,1,1,1,1,1,1,0,10,0,0,20\n"),
    )
    .unwrap();
    let report = ingest(&s.ws, Table::UsageMonthly, &[a, b], &options("two")).unwrap();
    assert_eq!((report.read, report.loaded, report.quarantined), (2, 1, 1));
    let rows = quarantine(&report);
    assert!(rows[0].2.contains("a.csv line 2"), "{}", rows[0].2);
    assert_eq!(report.files[1].quarantined, 1);
}

/// (subscriber_id, period in days, fee) of every stored usage row, sorted.
fn usage_rows(ws: &Workspace) -> Vec<(i64, i32, String)> {
    let mut rows: Vec<(i64, i32, String)> = table_batches(ws, Table::UsageMonthly)
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>().clone();
            let periods = b
                .column(1)
                .as_primitive::<arrow::datatypes::Date32Type>()
                .clone();
            let fees = b
                .column(2)
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone();
            (0..b.num_rows()).map(move |i| {
                (
                    ids.value(i),
                    periods.value(i),
                    format!("{:.2}", fees.value(i)),
                )
            })
        })
        .collect();
    rows.sort_by_key(|r| (r.0, r.1));
    rows
}

#[test]
fn a_load_staged_in_many_partitions_ends_as_one_staged_in_one() {
    let header = "subscriber_id,period,fee,voice_minutes,calls_out,calls_in,data_mb,sms,bundled_services,vas_fee,recharge,arrears,suspended_days,active_days\n";
    let run = |partition_bytes: u64| {
        let s = with_subscribers();
        let first = s.scratch.join("first.csv");
        let mut text = header.to_owned();
        for id in 1001..=1004 {
            for month in 1..=3 {
                writeln!(
                    text,
                    "{id},2025-0{month},{month}{id},1,1,1,1,1,1,0,10,0,0,20"
                )
                .unwrap();
            }
        }
        std::fs::write(&first, text).unwrap();
        // Replaces two stored rows, adds a month, repeats a key of its own (line 5) and has a
        // bad row (line 6).
        let second = s.scratch.join("second.csv");
        std::fs::write(
            &second,
            format!(
                "{header}1001,2025-02,99,1,1,1,1,1,1,0,10,0,0,20\n\
                 1002,2025-03,98,1,1,1,1,1,1,0,10,0,0,20\n\
                 1003,2025-04,97,1,1,1,1,1,1,0,10,0,0,20\n\
                 1001,2025-02,96,1,1,1,1,1,1,0,10,0,0,20\n\
                 1004,2025-04,-5,1,1,1,1,1,1,0,10,0,0,20\n\
                 1004,2025-04,95,1,1,1,1,1,1,0,10,0,0,20\n"
            ),
        )
        .unwrap();
        let with = |label: &str| IngestOptions {
            partition_bytes,
            ..options(label)
        };
        let a = ingest(&s.ws, Table::UsageMonthly, &[first], &with("first")).unwrap();
        let b = ingest(&s.ws, Table::UsageMonthly, &[second], &with("second")).unwrap();
        let counts = |r: &IngestReport| {
            (
                r.read,
                r.loaded,
                r.quarantined,
                r.inserted,
                r.replaced,
                r.table_rows,
            )
        };
        (counts(&a), counts(&b), quarantine(&b), usage_rows(&s.ws))
    };
    let single = run(u64::MAX);
    // 64 bytes a partition: the second file's 6 rows alone are spread over several.
    let many = run(64);
    assert_eq!(single, many);
    let (first, second, rejected, rows) = many;
    assert_eq!(first, (12, 12, 0, 12, 0, 12));
    assert_eq!(second, (6, 4, 2, 2, 2, 14));
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].0, 5);
    assert_eq!(
        rejected[0].2,
        "duplicate key subscriber_id=1001, period=2025-02 (first seen on line 2)"
    );
    assert_eq!(rejected[1].0, 6);
    // The first of the repeated rows won; the replaced rows carry the new fees.
    assert!(rows.contains(&(1001, days("2025-02-01"), "99.00".to_owned())));
    assert!(rows.contains(&(1002, days("2025-03-01"), "98.00".to_owned())));
    assert!(rows.contains(&(1004, days("2025-04-01"), "95.00".to_owned())));
}

#[test]
fn duplicates_are_found_in_sorted_and_unsorted_exports_alike() {
    // A partition whose keys strictly increase skips the duplicate search, so a repeated key
    // must break the order whichever way the export is sorted.
    let header = "subscriber_id,period,fee,voice_minutes,calls_out,calls_in,data_mb,sms,bundled_services,vas_fee,recharge,arrears,suspended_days,active_days\n";
    let row = |id: u32, month: u32, fee: u32| {
        format!("{id},2025-0{month},{fee},1,1,1,1,1,1,0,10,0,0,20\n")
    };
    let by_key: Vec<(u32, u32)> = (1001..=1003)
        .flat_map(|id| (1..=3).map(move |m| (id, m)))
        .collect();
    let by_period: Vec<(u32, u32)> = (1..=3)
        .flat_map(|m| (1001..=1003).map(move |id| (id, m)))
        .collect();
    let mut shuffled = by_key.clone();
    shuffled.swap(0, 7);
    shuffled.swap(2, 4);
    for (order, keys) in [
        ("key", by_key),
        ("period", by_period),
        ("shuffled", shuffled),
    ] {
        for repeat in [None, Some(4)] {
            let s = with_subscribers();
            let mut text = header.to_owned();
            for (i, &(id, month)) in keys.iter().enumerate() {
                text.push_str(&row(id, month, 10 + u32::try_from(i).unwrap()));
                // The repeat follows its first row, the way a doubled export line does.
                if repeat == Some(i) {
                    text.push_str(&row(id, month, 99));
                }
            }
            let file = s.scratch.join(format!("{order}.csv"));
            std::fs::write(&file, text).unwrap();
            for partition_bytes in [u64::MAX, 64] {
                let options = IngestOptions {
                    partition_bytes,
                    ..options(order)
                };
                let s2 = with_subscribers();
                let report = ingest(
                    &s2.ws,
                    Table::UsageMonthly,
                    std::slice::from_ref(&file),
                    &options,
                )
                .unwrap();
                let label = format!("{order} order, repeat {repeat:?}, {partition_bytes} bytes");
                assert_eq!(report.read, report.loaded + report.quarantined, "{label}");
                assert_eq!(report.table_rows, 9, "{label}");
                let rejected = quarantine(&report);
                match repeat {
                    None => assert!(rejected.is_empty(), "{label}: {rejected:?}"),
                    Some(i) => {
                        assert_eq!(rejected.len(), 1, "{label}");
                        let line = u64::try_from(i).unwrap() + 3;
                        assert_eq!(rejected[0].0, line, "{label}");
                        assert!(rejected[0].2.starts_with("duplicate key"), "{label}");
                        // The first row read wins.
                        assert!(
                            !usage_rows(&s2.ws).iter().any(|r| r.2 == "99.00"),
                            "{label}"
                        );
                    }
                }
            }
        }
    }
}

/// The (min, max) subscriber id of each row group of a stored table, from the Parquet footer.
fn row_group_id_ranges(ws: &Workspace, table: Table) -> Vec<(i64, i64)> {
    use parquet::file::reader::FileReader;
    use parquet::file::statistics::Statistics;
    let file = std::fs::File::open(ws.table_file(table)).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    reader
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| match rg.column(0).statistics() {
            Some(Statistics::Int64(s)) => (*s.min_opt().unwrap(), *s.max_opt().unwrap()),
            other => panic!("no subscriber id statistics: {other:?}"),
        })
        .collect()
}

/// Every column chunk of a stored table has its page index (plans skip pages by it), whether
/// the load copied its staged row groups or encoded merged rows.
fn assert_page_indexes(ws: &Workspace, table: Table) {
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    let file = std::fs::File::open(ws.table_file(table)).unwrap();
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(&file)
        .unwrap();
    let columns = table.spec().columns.len();
    let groups = metadata.num_row_groups();
    assert!(groups > 0);
    assert_eq!(
        metadata.file_metadata().schema_descr().num_columns(),
        columns
    );
    let offsets = metadata.offset_index().expect("an offset index");
    let column_indexes = metadata.column_index().expect("a column index");
    assert_eq!(offsets.len(), groups);
    assert_eq!(column_indexes.len(), groups);
    for (g, group) in offsets.iter().enumerate() {
        assert_eq!(group.len(), columns);
        for (c, index) in group.iter().enumerate() {
            // The first page starts where the chunk's metadata says its data starts.
            let chunk = metadata.row_group(g).column(c);
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let first = index.page_locations()[0].offset;
            assert!(first >= start && first < start + chunk.compressed_size());
        }
    }
}

#[test]
fn a_load_in_many_partitions_stores_rows_clustered_by_subscriber() {
    let header = "subscriber_id,period,fee,voice_minutes,calls_out,calls_in,data_mb,sms,bundled_services,vas_fee,recharge,arrears,suspended_days,active_days\n";
    let s = with_subscribers();
    // Month by month, as operators export usage: read order mixes every subscriber.
    let mut text = header.to_owned();
    for month in 1..=6 {
        for id in [1003, 1001, 1004, 1002] {
            writeln!(text, "{id},2025-0{month},10,1,1,1,1,1,1,0,10,0,0,20").unwrap();
        }
    }
    let path = s.scratch.join("usage.csv");
    std::fs::write(&path, text).unwrap();
    let cut = |label: &str| IngestOptions {
        partition_bytes: 64,
        ..options(label)
    };
    ingest(
        &s.ws,
        Table::UsageMonthly,
        std::slice::from_ref(&path),
        &cut("first"),
    )
    .unwrap();
    // Each subscriber's rows form row groups of their own, in id order, so a plan over a
    // range of subscribers can skip the rest by the row groups' statistics.
    let expected: Vec<(i64, i64)> = (1001..=1004).map(|id| (id, id)).collect();
    assert_eq!(row_group_id_ranges(&s.ws, Table::UsageMonthly), expected);
    assert_page_indexes(&s.ws, Table::UsageMonthly);
    // A second load merges into the stored ranges and keeps the order.
    ingest(&s.ws, Table::UsageMonthly, &[path], &cut("again")).unwrap();
    assert_eq!(row_group_id_ranges(&s.ws, Table::UsageMonthly), expected);
    assert_page_indexes(&s.ws, Table::UsageMonthly);
    assert_eq!(s.ws.table_rows(Table::UsageMonthly).unwrap(), 24);
    // The cuts split the stored subscribers into equal ranges.
    assert_eq!(s.ws.subscriber_cuts(2).unwrap(), vec![1003]);
    assert_eq!(s.ws.subscriber_cuts(4).unwrap(), vec![1002, 1003, 1004]);
}

fn days(date: &str) -> i32 {
    retain_data::date_to_days(date.parse().unwrap())
}

/// Loads of one table at once, with one label or two (a double-clicked button, two
/// schedulers): each waits for the one before it and merges with what it swapped in, so every
/// row of every load is in the table and nothing of their staging is left.
#[test]
fn parallel_loads_of_one_table_keep_every_row() {
    let s = workspace();
    let header = "plan_id,name,monthly_fee,data_mb,voice_minutes,tier\n";
    let files: Vec<PathBuf> = (0..6)
        .map(|i| {
            let mut text = header.to_owned();
            for j in 0..200 {
                let _ = writeln!(text, "Q{i}-{j:03},plan {i}-{j},{},1024,100,1", 10 + j);
            }
            let path = s.scratch.join(format!("plans-{i}.csv"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    std::thread::scope(|scope| {
        for (i, file) in files.iter().enumerate() {
            let ws = s.ws.clone();
            scope.spawn(move || {
                let label = if i % 2 == 0 { "plans-a" } else { "plans-b" };
                let report = ingest(
                    &ws,
                    Table::Plans,
                    std::slice::from_ref(file),
                    &options(label),
                )
                .unwrap();
                assert_eq!(report.loaded, 200, "{report:?}");
            });
        }
    });
    assert_eq!(s.ws.table_rows(Table::Plans).unwrap(), 1200);
    let left: Vec<String> = std::fs::read_dir(s.ws.root().join("tables"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".staging-") || n.contains(".old"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
