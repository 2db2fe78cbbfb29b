//! Training on a table whose churn depends on known features: the model must find them.

use retain_model::{Table, train};

/// A small deterministic generator (the test needs no statistical quality).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn table(rows: usize, snapshots: i32) -> Table {
    let features: Vec<String> = ["forward_days_1m", "fee_trend", "tenure_months", "noise"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut rng = Lcg(7);
    let mut t = Table {
        features,
        ..Table::default()
    };
    for s in 0..snapshots {
        for i in 0..rows {
            let forward = if rng.next() < 0.1 {
                (rng.next() * 5.0).floor()
            } else {
                0.0
            };
            let trend = 0.6 + rng.next() * 0.8;
            let tenure = rng.next() * 120.0;
            let noise = rng.next();
            // Churn risk rises with forwarding and a falling fee.
            let logit = -4.0 + 1.2 * forward + 3.0 * (1.0 - trend);
            let p = 1.0 / (1.0 + (-logit).exp());
            t.subscriber_id.push(i as i64);
            t.snapshot.push(s);
            t.label.push(rng.next() < p);
            t.x.extend([
                forward,
                trend,
                tenure,
                if i % 17 == 0 { f64::NAN } else { noise },
            ]);
        }
    }
    t
}

#[test]
fn the_model_ranks_calibrates_and_explains() {
    let t = table(4000, 4);
    let (model, report) = train(&t).unwrap();
    assert_eq!(
        (report.rows_train, report.rows_valid, report.rows_test),
        (8000, 4000, 4000)
    );
    assert!(report.test.auc > 0.75, "{}", report.test.auc);
    assert!(
        report.test.top_decile_lift > 2.5,
        "{}",
        report.test.top_decile_lift
    );
    // Calibrated: the mean probability is close to the observed rate.
    let scores = model.score(&t, 1.0).unwrap();
    let mean: f64 = scores.iter().map(|s| s.probability).sum::<f64>() / scores.len() as f64;
    let rate = t.label.iter().filter(|l| **l).count() as f64 / t.label.len() as f64;
    assert!((mean - rate).abs() < 0.02, "mean {mean} vs rate {rate}");
    // The riskiest subscriber's reasons name the drivers, not the profile or the noise.
    let top = scores
        .iter()
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .unwrap();
    let categories: Vec<&str> = top.reasons.iter().map(|r| r.category).collect();
    assert!(
        categories.contains(&"competitor_lure") || categories.contains(&"value_decline"),
        "{categories:?}"
    );
    assert!(report.importance[0].0 == "forward_days_1m" || report.importance[0].0 == "fee_trend");
    // Reasons for the riskiest tenth only, the same probabilities.
    let partial = model.score(&t, 0.1).unwrap();
    let explained = partial.iter().filter(|s| !s.reasons.is_empty()).count();
    assert!(explained <= t.len() / 10 + 1, "{explained}");
    let riskiest = partial
        .iter()
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .unwrap();
    assert!(!riskiest.reasons.is_empty());
    assert!((riskiest.probability - top.probability).abs() < 1e-12);
    // The rolling backtest's last fold is the reported model.
    let folds = retain_model::rolling_backtest(&t, 2).unwrap();
    assert_eq!(folds.len(), 2);
    assert!((folds[1].auc - report.test.auc).abs() < 1e-9);
    assert!(folds[0].rows_train < folds[1].rows_train);
}

#[test]
fn saved_models_load_and_score_the_same() {
    let t = table(1500, 3);
    let (model, report) = train(&t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = retain_data::Workspace::create_or_open(dir.path()).unwrap();
    let (version, _) = retain_model::save(&ws, &model, &report, vec!["a".into()], 1).unwrap();
    assert_eq!(version, 1);
    let (loaded, meta) = retain_model::load_latest(&ws).unwrap().unwrap();
    assert_eq!(meta.features, t.features);
    let a = model.score(&t, 1.0).unwrap();
    let b = loaded.score(&t, 1.0).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x.probability - y.probability).abs() < 1e-9);
    }
    let (second, _) = retain_model::save(&ws, &model, &report, vec![], 1).unwrap();
    assert_eq!(second, 2);
    // Trainings saving at once each get a version of their own, whole.
    let mut saved: Vec<u32> = std::thread::scope(|scope| {
        let savers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    retain_model::save(&ws, &model, &report, vec![], 1)
                        .unwrap()
                        .0
                })
            })
            .collect();
        savers.into_iter().map(|s| s.join().unwrap()).collect()
    });
    saved.sort_unstable();
    assert_eq!(saved, [3, 4, 5, 6]);
    let (_, newest) = retain_model::load_latest(&ws).unwrap().unwrap();
    assert_eq!(newest.version, 6);
}

#[test]
fn too_few_snapshots_is_a_clear_error() {
    let err = train(&table(100, 2)).err().unwrap();
    assert!(err.to_string().contains("at least 3 snapshots"), "{err}");
}
