//! Point-in-time features: nothing on or after the as-of date may change them.

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int32Type, Int64Type};
use retain_data::{IngestOptions, Table, Workspace, ingest};
use retain_features::{FeatureSet, LabelConfig, features_as_of, training_set};

const AS_OF: &str = "2026-07-01";

/// Loads the synthetic operator's files into a workspace, passing each line through `edit`
/// (return `None` to drop it).
fn load(
    files: &[(String, std::path::PathBuf)],
    dir: &Path,
    edit: &dyn Fn(&str, &str) -> Option<String>,
) -> Workspace {
    load_staged(files, dir, edit, IngestOptions::default().partition_bytes)
}

/// [`load`], staging each load in partitions of `partition_bytes` of input.
fn load_staged(
    files: &[(String, std::path::PathBuf)],
    dir: &Path,
    edit: &dyn Fn(&str, &str) -> Option<String>,
    partition_bytes: u64,
) -> Workspace {
    let ws = Workspace::create_or_open(&dir.join("ws")).unwrap();
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (name, file) in files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        for line in lines {
            if let Some(l) = edit(name, line) {
                out.push_str(&l);
                out.push('\n');
            }
        }
        let path = input.join(format!("{name}.csv"));
        std::fs::write(&path, out).unwrap();
        let table = Table::from_name(name).unwrap();
        let report = ingest(
            &ws,
            table,
            &[path],
            &IngestOptions {
                label: name.clone(),
                partition_bytes,
                ..IngestOptions::default()
            },
        )
        .unwrap();
        assert_eq!(report.quarantined, 0, "{name}");
    }
    ws
}

fn as_of() -> NaiveDate {
    NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d").unwrap()
}

/// Changes everything dated on or after the as-of date, and the end-of-window snapshot fields.
fn scramble(table: &str, line: &str) -> Option<String> {
    let mut f: Vec<String> = line.split(',').map(str::to_owned).collect();
    match table {
        "usage_monthly" | "usage_weekly" => {
            let period = if f[1].len() == 7 {
                format!("{}-01", f[1])
            } else {
                f[1].clone()
            };
            if period.as_str() >= AS_OF {
                f[2] = "999.00".into();
                f[6] = "1.00".into();
                f[11] = "500.00".into();
            }
        }
        "events" if f[1].as_str() >= AS_OF => return None,
        "contracts" if f[2].as_str() >= AS_OF => return None,
        "subscribers" => {
            // The end-of-window plan and status must not leak into an earlier snapshot.
            f[11] = "P008".into();
            f[15] = "active".into();
            let joined = f[2].clone();
            f[16] = joined;
        }
        _ => {}
    }
    Some(f.join(","))
}

fn sorted_values(batches: &[RecordBatch]) -> Vec<Vec<Option<f64>>> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let mut row = vec![Some(b.column(0).as_primitive::<Int64Type>().value(r) as f64)];
            for c in 1..b.num_columns() {
                let a = b.column(c).as_primitive::<Float64Type>();
                row.push((!a.is_null(r)).then(|| (a.value(r) * 1e6).round() / 1e6));
            }
            rows.push(row);
        }
    }
    rows
}

#[tokio::test]
async fn features_do_not_see_anything_on_or_after_the_as_of_date() {
    let dir = tempfile::tempdir().unwrap();
    let params = retain_synth::SynthParams {
        subscribers: 600,
        months: 12,
        seed: 5,
        ..Default::default()
    };
    let summary =
        retain_synth::synthesize(&params, &dir.path().join("src"), &dir.path().join("truth"))
            .unwrap();
    let set = FeatureSet::default_set();

    let original = load(&summary.files, &dir.path().join("a"), &|_, l| {
        Some(l.to_owned())
    });
    let ctx = retain_features::session(&original).await.unwrap();
    let before = sorted_values(&features_as_of(&ctx, &set, as_of()).await.unwrap());

    let changed = load(&summary.files, &dir.path().join("b"), &scramble);
    let ctx = retain_features::session(&changed).await.unwrap();
    let after = sorted_values(&features_as_of(&ctx, &set, as_of()).await.unwrap());

    assert!(before.len() > 400, "{}", before.len());
    assert_eq!(before[0].len(), 1 + set.names.len());
    assert_eq!(before, after);
    // The features are not all empty: the comparison means something.
    let filled = before
        .iter()
        .filter(|r| r.iter().skip(1).filter(|v| v.is_some()).count() > 40)
        .count();
    assert!(filled > before.len() / 2);
}

/// A synthetic operator loaded as it is into a workspace under `dir`.
fn synthetic_workspace(dir: &Path, subscribers: u64, months: u32, seed: u64) -> Workspace {
    let params = retain_synth::SynthParams {
        subscribers,
        months,
        seed,
        ..Default::default()
    };
    let summary = retain_synth::synthesize(&params, &dir.join("src"), &dir.join("truth")).unwrap();
    load(&summary.files, dir, &|_, l| Some(l.to_owned()))
}

#[tokio::test]
async fn features_computed_partition_by_partition_are_the_features_of_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 500, 12, 11);
    let set = FeatureSet::default_set();
    let ctx = retain_features::session(&ws).await.unwrap();
    let whole = sorted_values(&features_as_of(&ctx, &set, as_of()).await.unwrap());
    let mut stream = retain_features::stream_features_partitioned(&ws, &set, as_of(), 3);
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch.unwrap());
    }
    assert!(whole.len() > 400, "{}", whole.len());
    // A stream comes in no particular order.
    let mut parts = sorted_values(&batches);
    parts.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
    assert_eq!(parts.len(), whole.len());
    for (a, b) in parts.iter().zip(&whole) {
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            let name = if j == 0 {
                "subscriber_id"
            } else {
                &set.names[j - 1]
            };
            assert_eq!(x, y, "{name} of subscriber {:?}", a[0]);
        }
    }
}

async fn drain(mut features: retain_features::stored::Features<'_>) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    while let Some(batch) = features.next().await {
        batches.push(batch.unwrap());
    }
    batches
}

#[tokio::test]
async fn a_stored_snapshot_is_read_while_nothing_it_came_from_changed() {
    use retain_features::stored::{self, Origin};
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 400, 12, 13);
    let set = FeatureSet::default_set();
    let ctx = retain_features::session(&ws).await.unwrap();
    let computed = sorted_values(&features_as_of(&ctx, &set, as_of()).await.unwrap());

    // Nothing stored yet: computed.
    let first = stored::features(&ws, &set, as_of(), 2).await.unwrap();
    assert_eq!(first.origin(), Origin::Computed);
    assert!(stored::fresh(&ws, &set, as_of()).unwrap().is_none());

    let manifest = stored::write(&ws, &set, as_of(), 2).await.unwrap();
    assert_eq!(manifest.rows as usize, computed.len());
    assert_eq!(manifest.features, set.names);
    let read = stored::features(&ws, &set, as_of(), 2).await.unwrap();
    assert_eq!(read.origin(), Origin::Stored);
    let mut rows = sorted_values(&drain(read).await);
    rows.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
    assert_eq!(
        rows, computed,
        "the stored snapshot holds exactly the computed features"
    );

    // Another date, or another feature set, is not served by this snapshot.
    let next_month = NaiveDate::from_ymd_opt(2026, 8, 1).unwrap();
    assert!(stored::fresh(&ws, &set, next_month).unwrap().is_none());
    let fewer = FeatureSet::compile(&retain_features::DEFAULT_FEATURES[..10]).unwrap();
    assert!(stored::fresh(&ws, &fewer, as_of()).unwrap().is_none());

    // A new load of any table makes it stale: the next run computes again.
    let events = ws.table_file(Table::Events);
    let csv = dir.path().join("in/events.csv");
    let report = ingest(
        &ws,
        Table::Events,
        &[csv],
        &IngestOptions {
            label: "again".into(),
            ..IngestOptions::default()
        },
    )
    .unwrap();
    assert!(report.loaded > 0 && events.exists());
    assert!(stored::fresh(&ws, &set, as_of()).unwrap().is_none());
    let again = stored::features(&ws, &set, as_of(), 2).await.unwrap();
    assert_eq!(again.origin(), Origin::Computed);

    // A snapshot file replaced behind its manifest is not trusted either.
    stored::write(&ws, &set, as_of(), 1).await.unwrap();
    let file = ws
        .root()
        .join("features")
        .join(format!("{}.parquet", as_of()));
    std::fs::write(&file, b"not parquet").unwrap();
    assert!(stored::fresh(&ws, &set, as_of()).unwrap().is_none());
}

#[tokio::test]
async fn only_the_newest_snapshots_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 150, 12, 17);
    let set = FeatureSet::compile(&retain_features::DEFAULT_FEATURES[..5]).unwrap();
    for month in 3..=7 {
        let day = NaiveDate::from_ymd_opt(2026, month, 1).unwrap();
        retain_features::stored::write(&ws, &set, day, 1)
            .await
            .unwrap();
    }
    let mut kept: Vec<String> = std::fs::read_dir(ws.root().join("features"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "2026-05-01.json",
            "2026-05-01.parquet",
            "2026-06-01.json",
            "2026-06-01.parquet",
            "2026-07-01.json",
            "2026-07-01.parquet"
        ]
    );
}

#[tokio::test]
async fn a_partition_session_reads_only_the_row_groups_of_its_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let params = retain_synth::SynthParams {
        subscribers: 400,
        months: 6,
        seed: 5,
        ..Default::default()
    };
    let summary =
        retain_synth::synthesize(&params, &dir.path().join("src"), &dir.path().join("truth"))
            .unwrap();
    // Small staged partitions, as a large operator's loads have: the tables come out
    // clustered by subscriber range.
    let ws = load_staged(
        &summary.files,
        dir.path(),
        &|_, l| Some(l.to_owned()),
        16 << 10,
    );
    let distinct = "SELECT count(DISTINCT subscriber_id) AS n FROM usage_monthly";
    let count =
        |batches: Vec<RecordBatch>| batches[0].column(0).as_primitive::<Int64Type>().value(0);
    let everyone = retain_features::session(&ws).await.unwrap();
    let all = count(
        everyone
            .sql(distinct)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    assert!(all > 300, "{all}");
    let groups = {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let file = std::fs::File::open(ws.table_file(retain_data::Table::UsageMonthly)).unwrap();
        SerializedFileReader::new(file)
            .unwrap()
            .metadata()
            .num_row_groups() as u64
    };
    assert!(groups >= 8, "{groups} row groups");
    let mut seen = 0;
    for part in 0..4 {
        let ctx = retain_features::partition_session(&ws, part, 4)
            .await
            .unwrap();
        seen += count(ctx.sql(distinct).await.unwrap().collect().await.unwrap());
        let explained = ctx
            .sql(&format!("EXPLAIN ANALYZE {distinct}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&explained)
            .unwrap()
            .to_string();
        // "row_groups_pruned_statistics=4 total → 3 matched": the scan reads the bytes of
        // the partition's row groups (and the row groups at its edges), statistics prune the
        // rest of those.
        let metric = text
            .split("row_groups_pruned_statistics=")
            .nth(1)
            .expect("the scan reports row-group pruning");
        let numbers: Vec<u64> = metric
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .map(|s| s.parse().unwrap())
            .collect();
        let (considered, matched) = (numbers[0], numbers[1]);
        assert!(
            considered * 2 <= groups && matched <= considered,
            "partition {part} looked at {considered} and read {matched} of {groups} row groups"
        );
    }
    // The partitions split the subscribers: everyone once.
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_sample_session_keeps_whole_subscribers_and_about_as_many_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 1500, 6, 3);
    let count = |ctx: &datafusion::prelude::SessionContext, sql: &str| {
        let sql = sql.to_owned();
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            batches[0].column(0).as_primitive::<Int64Type>().value(0)
        }
    };
    let (all, sampled) = retain_features::sample_session(&ws, 5_000).await.unwrap();
    assert!(!sampled);
    assert_eq!(count(&all, "SELECT count(*) FROM subscribers").await, 1500);

    let (ctx, sampled) = retain_features::sample_session(&ws, 500).await.unwrap();
    assert!(sampled);
    let kept = count(&ctx, "SELECT count(*) FROM subscribers").await;
    assert!((350..650).contains(&kept), "{kept}");
    // Family and group sizes still see everyone.
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM subscribers__all").await,
        1500
    );
    // A sampled subscriber keeps all their usage; the others keep none.
    let usage_of_kept = count(
        &ctx,
        "SELECT count(*) FROM usage_monthly__all u JOIN subscribers s USING (subscriber_id)",
    )
    .await;
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM usage_monthly").await,
        usage_of_kept
    );
    assert!(usage_of_kept > 0);
}

#[tokio::test]
async fn training_sets_stack_snapshots_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 1500, 12, 9);
    let ctx = retain_features::session(&ws).await.unwrap();
    let set = FeatureSet::default_set();
    let snapshots = [
        NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
    ];
    let batches = training_set(&ctx, &set, &snapshots, 1, &LabelConfig::default())
        .await
        .unwrap();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let positives: i64 = batches
        .iter()
        .map(|b| {
            let a = b
                .column_by_name("label")
                .unwrap()
                .as_primitive::<Int32Type>();
            (0..b.num_rows())
                .map(|r| i64::from(a.value(r)))
                .sum::<i64>()
        })
        .sum();
    assert!(rows > 2 * 1200, "{rows}");
    let rate = positives as f64 / rows as f64;
    assert!((0.005..0.08).contains(&rate), "churn rate {rate}");
    assert!(batches[0].column_by_name("snapshot").is_some());
}

/// `active_share` is active days over the period's days: a month of 30 days (June, as of July
/// first) divides by 30, a week by 7, whatever the subscriber.
#[tokio::test]
async fn the_active_share_divides_active_days_by_the_days_of_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 400, 12, 13);
    let ctx = retain_features::session(&ws).await.unwrap();
    let set = FeatureSet::compile(&[
        ("share_m", "avg(active_share, 1m)"),
        ("days_m", "avg(active_days, 1m)"),
        ("share_w", "avg(active_share, 1w)"),
        ("days_w", "avg(active_days, 1w)"),
    ])
    .unwrap();
    let batches = features_as_of(&ctx, &set, as_of()).await.unwrap();
    let mut checked = 0;
    for row in sorted_values(&batches) {
        if let [_, Some(share_m), Some(days_m), share_w, days_w] = row[..] {
            assert!((share_m - days_m / 30.0).abs() < 1e-5, "{row:?}");
            if let (Some(share_w), Some(days_w)) = (share_w, days_w) {
                assert!((share_w - days_w / 7.0).abs() < 1e-5, "{row:?}");
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "{checked}");
}

/// Voluntary or involuntary (自愿/非自愿): the labels tell an arrears cut-off from a
/// defection as the synthetic operator's truth does, on two seeds.
#[tokio::test]
async fn labels_tell_arrears_cut_offs_from_defections() {
    for seed in [9, 23] {
        let dir = tempfile::tempdir().unwrap();
        let ws = synthetic_workspace(dir.path(), 3000, 12, seed);
        let ctx = retain_features::session(&ws).await.unwrap();
        retain_features::register_labels(&ctx, &LabelConfig::default())
            .await
            .unwrap();
        let batches = ctx
            .sql(&format!(
                "SELECT subscriber_id, CAST(MAX(voluntary) AS BIGINT) AS voluntary FROM {} \
                 WHERE churn_type = 'quantity' GROUP BY subscriber_id",
                retain_features::LABELS_VIEW
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let truth = std::fs::read_to_string(dir.path().join("truth/churn.csv")).unwrap();
        let path: std::collections::HashMap<i64, String> = truth
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((f[0].parse().ok()?, f[4].to_owned()))
            })
            .collect();
        let (mut agree, mut total, mut involuntary) = (0, 0, 0);
        for b in &batches {
            let ids = b.column(0).as_primitive::<Int64Type>();
            let voluntary = b.column(1).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                let Some(p) = path.get(&ids.value(r)) else {
                    continue;
                };
                total += 1;
                let cut_off = voluntary.value(r) == 0;
                involuntary += usize::from(cut_off);
                agree += usize::from(cut_off == (p == "arrears_suspension_cancel"));
            }
        }
        assert!(
            involuntary > 10 && involuntary < total,
            "seed {seed}: {involuntary} of {total}"
        );
        assert!(
            agree * 100 >= total * 98,
            "seed {seed}: {agree} of {total} agree with the truth"
        );
    }
}

#[test]
fn a_bad_feature_names_itself() {
    let err = FeatureSet::compile(&[("x", "avg(fee, 3m) +")]).unwrap_err();
    assert!(err.to_string().contains("feature x"), "{err}");
}

/// Feature rows of a campaign set by (subscriber, snapshot day), rounded like `sorted_values`.
fn campaign_rows(
    batches: &[RecordBatch],
    set: &FeatureSet,
) -> std::collections::BTreeMap<(i64, i32), Vec<Option<f64>>> {
    let mut rows = std::collections::BTreeMap::new();
    for b in batches {
        let ids = b
            .column_by_name("subscriber_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let days = b
            .column_by_name("snapshot")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        for r in 0..b.num_rows() {
            let values = set
                .names
                .iter()
                .map(|name| {
                    let a = b
                        .column_by_name(name)
                        .unwrap()
                        .as_primitive::<Float64Type>();
                    (!a.is_null(r)).then(|| (a.value(r) * 1e6).round() / 1e6)
                })
                .collect();
            let previous = rows.insert((ids.value(r), days.value(r)), values);
            assert!(previous.is_none(), "one row per contact and period");
        }
    }
    rows
}

#[tokio::test]
async fn a_campaign_set_holds_each_contacts_features_as_of_its_campaign_and_samples_beyond_its_cap()
{
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 1500, 12, 17);
    let set = FeatureSet::default_set();
    let labels = LabelConfig::default();
    let ctx = retain_features::session(&ws).await.unwrap();
    let periods: Vec<NaiveDate> = ctx
        .sql("SELECT DISTINCT period FROM campaign_history ORDER BY period")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
            (0..b.num_rows())
                .map(|r| retain_data::days_to_date(a.value(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    let periods = &periods[..periods.len().min(3)];
    assert!(periods.len() >= 2, "{periods:?}");

    let all = retain_features::campaign_set(&ws, &set, periods, 4, &labels, u64::MAX)
        .await
        .unwrap();
    let all = campaign_rows(&all, &set);
    assert!(all.len() > 100, "{}", all.len());
    // Each contact's features are its features as of the campaign computed on everyone.
    for &p in periods {
        let whole = features_as_of(&ctx, &set, p).await.unwrap();
        let whole: std::collections::BTreeMap<i64, Vec<Option<f64>>> = sorted_values(&whole)
            .into_iter()
            .map(|row| (row[0].unwrap() as i64, row[1..].to_vec()))
            .collect();
        let day = retain_data::date_to_days(p);
        let contacts: Vec<_> = all.iter().filter(|((_, d), _)| *d == day).collect();
        assert!(!contacts.is_empty(), "contacts in {p}");
        for ((id, _), values) in contacts {
            assert_eq!(Some(values), whole.get(id), "subscriber {id} as of {p}");
        }
    }

    // Beyond the cap, a sample of the same rows in every period.
    let cap = (all.len() / 4) as u64;
    let sampled = retain_features::campaign_set(&ws, &set, periods, 4, &labels, cap)
        .await
        .unwrap();
    let sampled = campaign_rows(&sampled, &set);
    assert!(
        sampled.len() as u64 > cap / 2 && (sampled.len() as u64) < cap * 2,
        "{} rows for a cap of {cap}",
        sampled.len()
    );
    for (key, values) in &sampled {
        assert_eq!(Some(values), all.get(key), "{key:?}");
    }
    let days: std::collections::BTreeSet<i32> = sampled.keys().map(|(_, d)| *d).collect();
    assert_eq!(days.len(), periods.len(), "every period is sampled");
}

/// The deepest condition of each way of nesting that the language accepts, `depth` levels.
fn deepest(depth: usize) -> Vec<String> {
    let n = depth - 3;
    vec![
        format!(
            "{}tenure_months > 1{}",
            "(".repeat(n + 1),
            ")".repeat(n + 1)
        ),
        format!("{}tenure_months > 1", "not ".repeat(n + 1)),
        format!("{}avg(fee, 3m) > 0", "-".repeat(n)),
        format!("{}avg(fee, 3m){} > 0", "abs(".repeat(n), ")".repeat(n)),
        format!("avg(fee, 3m){} > 0", " / 2".repeat(n)),
        format!("avg(fee, 3m){} > 0", " - 1".repeat(n)),
        format!(
            "{}avg(fee, 3m){} > 0",
            "coalesce(".repeat(n),
            ", 0)".repeat(n)
        ),
        format!(
            "{}tenure_months > 1{}",
            "not (tenure_months > 2 and ".repeat(n / 3),
            ")".repeat(n / 3)
        ),
        ["count(complaint, 3m) > 0"; 100].join(" or "),
    ]
}

#[tokio::test]
async fn the_deepest_conditions_the_language_accepts_run_in_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let ws = synthetic_workspace(dir.path(), 100, 6, 3);
    let ctx = retain_features::session(&ws).await.unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    for text in deepest(retain_features::expr::MAX_DEPTH) {
        // The engine's SQL parser backtracks over each `NOT (` and `-(`, so nested ones
        // once took it minutes: the SQL must hold neither, and grow with the text only.
        let parsed = retain_features::expr::parse(&text).unwrap();
        let (sql, _) = retain_features::expr::Compiler::default()
            .condition(&parsed)
            .unwrap();
        assert!(
            !sql.contains("NOT (") && !sql.contains("-("),
            "{text}: {sql}"
        );
        assert!(
            sql.len() <= 40 * text.len(),
            "{text}: {} bytes of SQL",
            sql.len()
        );
        let set = FeatureSet::compile(&[("deep", text.as_str())])
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let batches = features_as_of(&ctx, &set, as_of)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(batches.iter().map(RecordBatch::num_rows).sum::<usize>() > 50);
    }
    for text in deepest(retain_features::expr::MAX_DEPTH + 1)
        .into_iter()
        .take(7)
    {
        let err = FeatureSet::compile(&[("deep", text.as_str())]).unwrap_err();
        assert!(err.to_string().contains("levels deep"), "{text}: {err}");
    }
}
