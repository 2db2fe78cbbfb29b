//! Loads by key: upserts, duplicate keys within and across files, loads staged in many
//! partitions, tables stored clustered by subscriber, and loads of one table at once.

use std::fmt::Write as _;
use std::path::PathBuf;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use retain_data::{IngestOptions, IngestReport, Table, Workspace, ingest};

use crate::common::{
    fixture, ids, load, options, quarantine, table_batches, with_subscribers, workspace,
};

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
