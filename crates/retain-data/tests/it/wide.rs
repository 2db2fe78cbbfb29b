//! Wide exports: one line per subscriber, one column per measure and month, in the layout of the
//! Indian "Telecom Churn Case Study" (`arpu_6` … `arpu_9`). The fixture's rows are invented.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use retain_data::{Error, IngestOptions, IngestReport, Mapping, Table, Workspace, ingest};

use crate::common::{
    Setup, fixture, load, manifest_dir, options, quarantine, table_batches, workspace,
};

const EXPORT: &str = "telecom_india_wide.csv";

fn mapping(name: &str, table: Table) -> Mapping {
    Mapping::load(&fixture(name), table.spec()).unwrap()
}

fn load_mapped(ws: &Workspace, table: Table, file: &Path, mapping: Mapping) -> IngestReport {
    let report = ingest(
        ws,
        table,
        &[file.to_path_buf()],
        &IngestOptions {
            mapping,
            ..options(table.name())
        },
    )
    .unwrap();
    assert_eq!(
        report.read,
        report.loaded + report.quarantined,
        "{report:?}"
    );
    report
}

/// Plans and subscribers loaded from the case study layout, as docs/wide-exports.md does it.
fn with_india_subscribers() -> (Setup, IngestReport) {
    with_india_subscribers_from(&fixture(EXPORT))
}

/// Plans, and subscribers from `export` (a file in the case study layout).
fn with_india_subscribers_from(export: &Path) -> (Setup, IngestReport) {
    let s = workspace();
    load(
        &s.ws,
        Table::Plans,
        &fixture("telecom_india_plans.csv"),
        "plans",
    );
    let report = load_mapped(
        &s.ws,
        Table::Subscribers,
        export,
        mapping("telecom_india_subscribers.toml", Table::Subscribers),
    );
    (s, report)
}

/// One usage row as loaded: fee, voice minutes, data MB, recharge, calls out.
type Usage = (f64, i64, f64, f64, i64);

/// The usage table keyed by (subscriber, month).
fn usage(ws: &Workspace) -> BTreeMap<(i64, String), Usage> {
    let spec = Table::UsageMonthly.spec();
    let col = |name: &str| spec.column_index(name).unwrap();
    let mut rows = BTreeMap::new();
    for batch in table_batches(ws, Table::UsageMonthly) {
        let id = batch
            .column(col("subscriber_id"))
            .as_primitive::<Int64Type>();
        let period = batch.column(col("period")).as_primitive::<Date32Type>();
        let float = |name| batch.column(col(name)).as_primitive::<Float64Type>();
        let int = |name| batch.column(col(name)).as_primitive::<Int64Type>();
        let (fee, data, recharge) = (float("fee"), float("data_mb"), float("recharge"));
        let (voice, calls_out) = (int("voice_minutes"), int("calls_out"));
        for r in 0..batch.num_rows() {
            let month = retain_data::days_to_date(period.value(r))
                .format("%Y-%m")
                .to_string();
            rows.insert(
                (id.value(r), month),
                (
                    fee.value(r),
                    voice.value(r),
                    data.value(r),
                    recharge.value(r),
                    calls_out.value(r),
                ),
            );
        }
    }
    rows
}

#[test]
fn a_wide_export_loads_one_row_per_subscriber_and_month() {
    let (s, _) = with_india_subscribers();
    let report = load_mapped(
        &s.ws,
        Table::UsageMonthly,
        &fixture(EXPORT),
        mapping("telecom_india_usage_monthly.toml", Table::UsageMonthly),
    );

    // Counts are canonical rows: 5 lines × 4 months read, each ending in the table or the
    // quarantine file, which holds one entry per rejected row.
    let file = &report.files[0];
    assert_eq!(file.source.lines, 5);
    assert_eq!(
        (report.read, report.loaded, report.quarantined),
        (20, 14, 6)
    );
    assert_eq!(report.read, file.source.lines * 4);
    assert_eq!((file.read, file.loaded, file.quarantined), (20, 14, 6));
    assert_eq!(report.table_rows, 14);
    assert_eq!(quarantine(&report).len(), 6);
    assert_eq!(
        file.source.ignored_columns,
        vec!["circle_id", "fb_user_8", "aon"]
    );

    // Each rejection names the export's own column, so the month is in it.
    let expected: &[(u64, &str, &str)] = &[
        (3, "arpu_7", "negative value -12.50"),
        (5, "total_ic_mou_8", "\"n/a\" is not a number"),
        (
            6,
            "",
            "expected 28 fields like the header, found 3 (the 2014-06 row)",
        ),
        (6, "", "(the 2014-07 row)"),
        (6, "", "(the 2014-08 row)"),
        (6, "", "(the 2014-09 row)"),
    ];
    let rows = quarantine(&report);
    for ((line, column, reason), (want_line, want_column, want_reason)) in rows.iter().zip(expected)
    {
        assert_eq!((line, column.as_str()), (want_line, *want_column));
        assert!(reason.contains(want_reason), "line {line}: {reason}");
    }
    assert_eq!(report.rejected_by_column["(row)"], 4);
    assert_eq!(report.rejected_by_column["arpu_7"], 1);

    let usage = usage(&s.ws);
    let months = |id: i64| -> Vec<&str> {
        usage
            .keys()
            .filter(|(i, _)| *i == id)
            .map(|(_, m)| m.as_str())
            .collect()
    };
    let all = ["2014-06", "2014-07", "2014-08", "2014-09"];
    assert_eq!(months(9_990_000_001), all);
    assert_eq!(months(9_990_000_002), ["2014-06", "2014-08", "2014-09"]);
    assert_eq!(months(9_990_000_003), all);
    assert_eq!(months(9_990_000_004), ["2014-06", "2014-07", "2014-09"]);
    assert!(months(9_990_000_005).is_empty());

    let row = |id: i64, month: &str| usage[&(id, month.to_owned())];
    // 120.40 + 60.15 = 180.55 minutes, counted as 181; 30.5 + 100 MB.
    assert_eq!(row(9_990_000_001, "2014-06"), (210.5, 181, 130.5, 250.0, 0));
    assert_eq!(
        row(9_990_000_001, "2014-09"),
        (190.75, 169, 83.25, 210.0, 0)
    );
    // A fifth of a minute is a started minute; no use at all stays 0.
    assert_eq!(row(9_990_000_003, "2014-08").1, 1);
    assert_eq!(row(9_990_000_003, "2014-09"), (0.0, 0, 0.0, 0.0, 0));
    // 4.4 + 0.6 is 5.0, not 5.000000000000001.
    assert_eq!(row(9_990_000_004, "2014-09").2.to_bits(), 5.0_f64.to_bits());
}

#[test]
fn the_profile_comes_from_the_same_export_with_join_date_from_age_on_network() {
    let (s, report) = with_india_subscribers();
    // A plain (not wide) load counts lines: the short line is one rejected row.
    assert_eq!((report.read, report.loaded, report.quarantined), (5, 4, 1));
    assert_eq!(report.files[0].source.lines, 5);

    let spec = Table::Subscribers.spec();
    let batch = &table_batches(&s.ws, Table::Subscribers)[0];
    let col = |name: &str| batch.column(spec.column_index(name).unwrap());
    let ids = col("subscriber_id").as_primitive::<Int64Type>();
    let msisdn = col("msisdn").as_string::<i32>();
    let join = col("join_date").as_primitive::<Date32Type>();
    let province = col("province").as_string::<i32>();
    let mut got = Vec::new();
    for r in 0..batch.num_rows() {
        got.push((
            ids.value(r),
            msisdn.value(r).to_owned(),
            retain_data::days_to_date(join.value(r)).to_string(),
            province.value(r).to_owned(),
        ));
    }
    got.sort();
    let want: Vec<(i64, String, String, String)> = [
        (9_990_000_001, "2013-08-26"), // 400 days before 2014-09-30
        (9_990_000_002, "2011-06-18"),
        (9_990_000_003, "2009-04-09"),
        (9_990_000_004, "2014-01-23"),
    ]
    .into_iter()
    .map(|(id, date)| (id, id.to_string(), date.to_owned(), "109".to_owned()))
    .collect();
    assert_eq!(got, want);
    assert!(col("birth_date").is_null(0));
}

#[test]
fn a_missing_wide_column_is_a_file_error_naming_it() {
    let (s, _) = with_india_subscribers();
    // The export without arpu_7.
    let text = std::fs::read_to_string(fixture(EXPORT)).unwrap();
    let drop = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|h| h == "arpu_7")
        .unwrap();
    let mut without = String::new();
    for line in text.lines().take(3) {
        let fields: Vec<&str> = line
            .split(',')
            .enumerate()
            .filter(|(i, _)| *i != drop)
            .map(|(_, f)| f)
            .collect();
        without.push_str(&fields.join(","));
        without.push('\n');
    }
    let file = s.scratch.join("no_arpu_7.csv");
    std::fs::write(&file, without).unwrap();

    let err = ingest(
        &s.ws,
        Table::UsageMonthly,
        &[file],
        &IngestOptions {
            mapping: mapping("telecom_india_usage_monthly.toml", Table::UsageMonthly),
            ..options("missing")
        },
    )
    .unwrap_err();
    match &err {
        Error::BadFile { location, reason } => {
            assert_eq!(location.line, 1);
            assert_eq!(location.column.as_deref(), Some("arpu_7"));
            assert!(
                reason.contains("missing column arpu_7, which [columns] fee needs for 2014-07"),
                "{reason}"
            );
            assert!(
                reason.contains("the header has arpu_6, arpu_8, arpu_9"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!s.ws.has_table(Table::UsageMonthly));
}

#[test]
fn the_wide_exports_document_shows_the_tested_mappings() {
    let doc = std::fs::read_to_string(manifest_dir().join("../../docs/wide-exports.md")).unwrap();
    for name in [
        "telecom_india_usage_monthly.toml",
        "telecom_india_subscribers.toml",
        "telecom_india_plans.csv",
    ] {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        assert!(
            doc.contains(&text),
            "docs/wide-exports.md no longer shows {name} as tested"
        );
    }
}

/// Loads the real case study sample. Not run by default: the data is not in the repository.
/// `RETAIN_INDIA_SAMPLE=/path/to/telecom_churn_data_first1000rows.csv cargo test -p retain-data
/// -- --ignored case_study`
#[test]
#[ignore = "needs RETAIN_INDIA_SAMPLE, a copy of the case study data"]
fn case_study_sample_loads_through_the_documented_mappings() {
    let sample = std::env::var_os("RETAIN_INDIA_SAMPLE")
        .expect("set RETAIN_INDIA_SAMPLE to the case study CSV");
    let sample = Path::new(&sample);
    let (s, subscribers) = with_india_subscribers_from(sample);
    let report = load_mapped(
        &s.ws,
        Table::UsageMonthly,
        sample,
        mapping("telecom_india_usage_monthly.toml", Table::UsageMonthly),
    );
    let lines = report.files[0].source.lines;
    assert_eq!(report.read, lines * 4);
    eprintln!(
        "subscribers: lines {} read {} loaded {} quarantined {}",
        subscribers.files[0].source.lines,
        subscribers.read,
        subscribers.loaded,
        subscribers.quarantined
    );
    eprintln!(
        "usage_monthly: lines {lines} read {} loaded {} quarantined {} by column {:?}",
        report.read, report.loaded, report.quarantined, report.rejected_by_column
    );
    eprintln!(
        "ignored columns: {}",
        report.files[0].source.ignored_columns.len()
    );

    // The case study's churn rule on the canonical rows: September without minutes or data.
    let usage = usage(&s.ws);
    let churned = usage
        .iter()
        .filter(|((_, m), (_, voice, data, _, _))| m == "2014-09" && *voice == 0 && *data == 0.0)
        .count();
    let september = usage.keys().filter(|(_, m)| m == "2014-09").count();
    eprintln!("september rows {september}, of which no minutes and no data: {churned}");

    // The same, read straight from the export: only negative ARPU months are rejected, and the
    // rule on canonical rows picks exactly the export's churners whose September row loaded.
    let mut reader = csv::Reader::from_path(sample).unwrap();
    let header = reader.headers().unwrap().clone();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (mut negative, mut export_churned) = (0, 0);
    for record in reader.records() {
        let record = record.unwrap();
        let number = |name: &str| record[at(name)].parse::<f64>().unwrap();
        negative += ["6", "7", "8", "9"]
            .iter()
            .filter(|m| number(&format!("arpu_{m}")) < 0.0)
            .count();
        let silent = [
            "total_ic_mou_9",
            "total_og_mou_9",
            "vol_2g_mb_9",
            "vol_3g_mb_9",
        ]
        .iter()
        .all(|c| number(c) == 0.0);
        export_churned += usize::from(silent && number("arpu_9") >= 0.0);
    }
    assert_eq!(report.quarantined, negative as u64);
    assert!(
        report
            .rejected_by_column
            .keys()
            .all(|c| c.starts_with("arpu_"))
    );
    assert_eq!(churned, export_churned);

    // High value: mean recharge of June and July at or above the 70th percentile (linear
    // interpolation, as pandas computes it) among subscribers with both months loaded.
    let mut means: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for ((id, month), (_, _, _, recharge, _)) in &usage {
        if month == "2014-06" || month == "2014-07" {
            means.entry(*id).or_default().push(*recharge);
        }
    }
    let means: BTreeMap<i64, f64> = means
        .into_iter()
        .filter(|(_, v)| v.len() == 2)
        .map(|(id, v)| (id, f64::midpoint(v[0], v[1])))
        .collect();
    let mut sorted: Vec<f64> = means.values().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let position = 0.7 * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let p70 = sorted[low] + (sorted[low + 1] - sorted[low]) * (position - low as f64);
    let high: Vec<i64> = means
        .iter()
        .filter(|(_, m)| **m >= p70)
        .map(|(id, _)| *id)
        .collect();
    let high_churned = high
        .iter()
        .filter(|id| {
            usage
                .get(&(**id, "2014-09".to_owned()))
                .is_some_and(|(_, voice, data, _, _)| *voice == 0 && *data == 0.0)
        })
        .count();
    eprintln!(
        "with June and July: {}, 70th percentile {p70:.2}, high value {}, of which churned {high_churned}",
        means.len(),
        high.len()
    );
}
