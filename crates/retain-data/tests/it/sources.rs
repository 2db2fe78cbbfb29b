//! Whole files: what is refused with a file error (missing columns, empty or non-CSV files,
//! unloaded referenced tables, broken Parquet) and the formats and encodings that load.

use arrow::array::AsArray;
use retain_data::{Encoding, Error, IngestOptions, Mapping, Table, ingest};

use crate::common::{
    fixture, load, options, quarantine, table_batches, with_subscribers, workspace,
};

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

/// An Excel workbook loads its first sheet like a CSV file: numbers, dates and text as a CSV
/// export would hold them, a bad cell rejected naming its sheet row and column, a header below
/// blank rows found where it is.
#[test]
fn an_excel_workbook_loads_its_first_sheet() {
    let s = workspace();
    let path = s.scratch.join("套餐.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    // Two blank rows above the header: the rows keep their sheet numbers.
    let header = [
        "plan_id",
        "name",
        "monthly_fee",
        "data_mb",
        "voice_minutes",
        "tier",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(2, c as u16, *h).unwrap();
    }
    let rows: [(&str, &str, f64, f64, f64, f64); 3] = [
        ("P019", "19元畅享套餐", 19.0, 5120.0, 100.0, 1.0),
        ("P059", "59元5G畅享", 59.5, 30720.0, 500.0, 3.0),
        ("P129", "129元5G畅享", 129.0, 81920.0, 1000.0, 4.0),
    ];
    for (r, (id, name, fee, data, voice, tier)) in rows.iter().enumerate() {
        let r = 3 + r as u32;
        sheet.write_string(r, 0, *id).unwrap();
        sheet.write_string(r, 1, *name).unwrap();
        sheet.write_number(r, 2, *fee).unwrap();
        sheet.write_number(r, 3, *data).unwrap();
        sheet.write_number(r, 4, *voice).unwrap();
        sheet.write_number(r, 5, *tier).unwrap();
    }
    // A row whose data volume is text: rejected, naming row 7 and the column.
    sheet.write_string(6, 0, "P999").unwrap();
    sheet.write_string(6, 1, "坏行").unwrap();
    sheet.write_number(6, 2, 9.0).unwrap();
    sheet.write_string(6, 3, "很多").unwrap();
    sheet.write_number(6, 4, 0.0).unwrap();
    sheet.write_number(6, 5, 1.0).unwrap();
    book.save(&path).unwrap();

    let report = load(&s.ws, Table::Plans, &path, "xlsx");
    assert_eq!(
        (report.read, report.loaded, report.quarantined),
        (4, 3, 1),
        "{report:?}"
    );
    let q = quarantine(&report);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!((q[0].0, q[0].1.as_str()), (7, "data_mb"), "{q:?}");
    assert_eq!(s.ws.table_rows(Table::Plans).unwrap(), 3);

    // Not a workbook inside, though named like one: refused, naming the file.
    let fake = s.scratch.join("fake.xlsx");
    std::fs::write(&fake, b"PK\x03\x04not really a zip").unwrap();
    let err = ingest(&s.ws, Table::Plans, &[fake], &options("fake")).unwrap_err();
    assert!(
        err.to_string().contains("not a readable Excel workbook")
            && err.to_string().contains("fake.xlsx"),
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
