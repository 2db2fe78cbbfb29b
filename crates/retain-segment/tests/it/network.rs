//! The network's segmentation on synthetic operators whose calling circles and waves of
//! defection are known: circles found in the call graph stay inside the true circles, waves
//! show as circle churn, every subscriber with network data has a home cell in its district,
//! and a target widened to whole circles holds every active friend.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use retain_segment::SegmentConfig;

/// The synthetic operator's circles are blocks of this many consecutive subscribers.
const TRUE_CIRCLE: i64 = 6;
const FIRST_ID: i64 = 100_000_001;

fn batches(path: &std::path::Path) -> Vec<datafusion::arrow::array::RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn ints(b: &datafusion::arrow::array::RecordBatch, name: &str) -> Vec<Option<i64>> {
    let c = b.column_by_name(name).unwrap().as_primitive::<Int64Type>();
    (0..c.len())
        .map(|r| (!c.is_null(r)).then(|| c.value(r)))
        .collect()
}

fn texts(b: &datafusion::arrow::array::RecordBatch, name: &str) -> Vec<Option<String>> {
    let c =
        datafusion::arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len())
        .map(|r| (!c.is_null(r)).then(|| c.value(r).to_owned()))
        .collect()
}

#[derive(Debug, Clone)]
struct Member {
    circle: i64,
    size: i64,
    left: i64,
    rate: f64,
    leader: bool,
    left_3m: bool,
}

fn read_members(path: &std::path::Path) -> BTreeMap<i64, Member> {
    let mut out = BTreeMap::new();
    for b in batches(path) {
        let (ids, circle, size, left) = (
            ints(&b, "subscriber_id"),
            ints(&b, "circle"),
            ints(&b, "circle_size"),
            ints(&b, "circle_left_3m"),
        );
        let rate = b
            .column_by_name("circle_churn_rate")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        let leader = b
            .column_by_name("circle_leader")
            .unwrap()
            .as_boolean()
            .clone();
        let gone = b.column_by_name("left_3m").unwrap().as_boolean().clone();
        for r in 0..b.num_rows() {
            out.insert(
                ids[r].unwrap(),
                Member {
                    circle: circle[r].unwrap(),
                    size: size[r].unwrap(),
                    left: left[r].unwrap(),
                    rate: rate.value(r),
                    leader: leader.value(r),
                    left_3m: gone.value(r),
                },
            );
        }
    }
    out
}

/// A segmented synthetic operator of `subscribers` × 12 months.
async fn segmented(
    dir: &std::path::Path,
    subscribers: u64,
    seed: u64,
    network: bool,
) -> (
    retain_data::Workspace,
    datafusion::execution::context::SessionContext,
    retain_segment::SegmentReport,
) {
    let params = retain_synth::SynthParams {
        subscribers,
        months: 12,
        seed,
        network,
        ..Default::default()
    };
    let ws = retain_synth::synthetic_workspace(&params, dir).unwrap();
    let ctx = retain_features::session(&ws).await.unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let report = retain_segment::segment(&ctx, &SegmentConfig::default(), &ws, as_of)
        .await
        .unwrap();
    (ws, ctx, report)
}

#[tokio::test]
async fn circles_cells_and_whole_circle_targets_on_two_operators() {
    for seed in [3, 29] {
        let dir = tempfile::tempdir().unwrap();
        let (ws, ctx, report) = segmented(dir.path(), 6000, seed, true).await;
        let network = report
            .network
            .clone()
            .expect("the operator has network data");
        let members = read_members(&retain_segment::circles_file(&ws));

        // Circles: each inside one true circle, one leader each, counts that reconcile.
        let mut circles: BTreeMap<i64, Vec<(i64, &Member)>> = BTreeMap::new();
        for (id, m) in &members {
            circles.entry(m.circle).or_default().push((*id, m));
        }
        assert_eq!(network.circles, circles.len() as u64, "seed {seed}");
        assert!(
            network.circles as i64 >= 6000 / TRUE_CIRCLE / 2,
            "seed {seed}: {network:?}"
        );
        for (circle, list) in &circles {
            let blocks: BTreeSet<i64> = list
                .iter()
                .map(|(id, _)| (id - FIRST_ID) / TRUE_CIRCLE)
                .collect();
            assert_eq!(
                blocks.len(),
                1,
                "seed {seed}: circle {circle} spans {blocks:?}"
            );
            assert_eq!(
                list.iter().filter(|(_, m)| m.leader).count(),
                1,
                "seed {seed}: {circle}"
            );
            assert_eq!(*circle, list.iter().map(|(id, _)| *id).min().unwrap());
            let left = list.iter().filter(|(_, m)| m.left_3m).count() as i64;
            for (_, m) in list {
                assert_eq!(m.size, list.len() as i64);
                assert_eq!(m.left, left);
                assert!((m.rate - left as f64 / list.len() as f64).abs() < 1e-12);
            }
        }

        // Waves: circles a wave ran through in the half year before churn more than the rest.
        let truth = std::fs::read_to_string(ws.truth_dir().join("circles.csv")).unwrap();
        let mut recent = BTreeSet::new();
        let mut any = BTreeSet::new();
        for line in truth.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let block: i64 = f[0].parse().unwrap();
            any.insert(block);
            if ("2026-05".."2026-11").contains(&f[2]) {
                recent.insert(block);
            }
        }
        let mean = |pick: &dyn Fn(i64) -> bool| {
            let rates: Vec<f64> = circles
                .iter()
                .filter(|(c, _)| pick((*c - FIRST_ID) / TRUE_CIRCLE))
                .map(|(_, l)| l[0].1.rate)
                .collect();
            rates.iter().sum::<f64>() / rates.len().max(1) as f64
        };
        let (waved, calm) = (mean(&|b| recent.contains(&b)), mean(&|b| !any.contains(&b)));
        assert!(!recent.is_empty());
        assert!(
            waved >= 1.5 * calm,
            "seed {seed}: waves {waved} against {calm}"
        );

        // Home cells: most active subscribers have one, in the district the cells table says.
        let mut cell_district = HashMap::new();
        for b in batches(&ws.table_file(retain_data::Table::Cells)) {
            for (id, d) in texts(&b, "cell_id").into_iter().zip(texts(&b, "district")) {
                cell_district.insert(id.unwrap(), d.unwrap());
            }
        }
        let (mut homed, mut places) = (0, 0);
        for b in batches(&report.segments_file) {
            let stage = texts(&b, "lifecycle_stage");
            for ((cell, district), stage) in texts(&b, "home_cell")
                .into_iter()
                .zip(texts(&b, "district"))
                .zip(stage)
            {
                if stage.as_deref() == Some("churned") {
                    continue;
                }
                places += 1;
                if let Some(cell) = cell {
                    homed += 1;
                    assert_eq!(Some(&district.unwrap()), cell_district.get(&cell));
                }
            }
        }
        assert!(homed * 10 >= places * 8, "seed {seed}: {homed} of {places}");
        let cells = retain_segment::read_cells(&ws).unwrap();
        assert_eq!(cells.len(), cell_district.len());
        assert_eq!(
            cells.iter().map(|c| c.subscribers).sum::<u64>(),
            network.homed
        );
        let district_total: u64 = network.districts.iter().map(|d| d.subscribers).sum();
        assert_eq!(district_total, network.homed);

        // Whole circles: the plain group, and every active member of its circles.
        let library = retain_segment::TagLibrary::for_workspace(&ws).unwrap();
        let plain = retain_segment::select_by_tags(&ctx, &ws, &library, "contract_expiring")
            .await
            .unwrap();
        let whole = retain_segment::select_whole_circles(&ctx, &ws, &library, "contract_expiring")
            .await
            .unwrap();
        let whole_set: BTreeSet<i64> = whole.iter().copied().collect();
        assert!(plain.iter().all(|id| whole_set.contains(id)));
        assert!(whole.len() > plain.len(), "seed {seed}");
        let chosen_circles: BTreeSet<i64> = plain
            .iter()
            .filter_map(|id| members.get(id).map(|m| m.circle))
            .collect();
        for (id, m) in &members {
            if chosen_circles.contains(&m.circle) && !m.left_3m {
                assert!(whole_set.contains(id), "seed {seed}: friend {id} left out");
            }
        }
        for id in &whole {
            assert!(
                plain.contains(id)
                    || members
                        .get(id)
                        .is_some_and(|m| chosen_circles.contains(&m.circle)),
                "seed {seed}: {id} is neither chosen nor a friend"
            );
        }

        // Customer 360 shows the circle, leader first, with the subscriber in it.
        let (&someone, m) = members
            .iter()
            .find(|(_, m)| !m.left_3m && m.size >= 3)
            .unwrap();
        let view = retain_segment::customer_360(&ctx, &ws, retain_data::SubscriberId(someone))
            .await
            .unwrap()
            .unwrap();
        let view = serde_json::to_value(view).unwrap();
        let circle = &view["network"]["circle"];
        assert_eq!(circle["id"], m.circle);
        let listed = circle["members"].as_array().unwrap();
        assert_eq!(listed.len() as i64, m.size);
        assert_eq!(listed[0]["leader"], true);
        assert!(listed.iter().any(|x| x["subscriber_id"] == someone));
        assert!(view["network"]["home_cell"]["cell_id"].is_string());
    }
}

#[tokio::test]
async fn an_operator_without_call_records_has_no_circles_and_still_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (ws, ctx, report) = segmented(dir.path(), 1500, 5, false).await;
    assert!(read_members(&retain_segment::circles_file(&ws)).is_empty());
    if let Some(n) = &report.network {
        assert_eq!((n.circles, n.homed), (0, 0));
    }
    for b in batches(&report.segments_file) {
        assert!(texts(&b, "home_cell").iter().all(Option::is_none));
        assert!(ints(&b, "circle").iter().all(Option::is_none));
    }
    let library = retain_segment::TagLibrary::for_workspace(&ws).unwrap();
    let whole = retain_segment::select_whole_circles(&ctx, &ws, &library, "contract_expiring")
        .await
        .unwrap();
    let plain = retain_segment::select_by_tags(&ctx, &ws, &library, "contract_expiring")
        .await
        .unwrap();
    assert_eq!(whole, plain);

    // Without cells either (an operator with none of the network's tables), it still segments.
    std::fs::remove_dir_all(ws.table_file(retain_data::Table::Cells).parent().unwrap()).unwrap();
    assert!(!ws.has_table(retain_data::Table::Cells));
    let ctx = retain_features::session(&ws).await.unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let report = retain_segment::segment(&ctx, &SegmentConfig::default(), &ws, as_of)
        .await
        .unwrap();
    assert!(
        report
            .network
            .as_ref()
            .is_none_or(|n| n.cells == 0 && n.circles == 0 && n.homed == 0),
        "{:?}",
        report.network
    );
    assert!(retain_segment::read_cells(&ws).unwrap().is_empty());
    for b in batches(&report.segments_file) {
        assert!(texts(&b, "district").iter().all(Option::is_none));
    }
}
