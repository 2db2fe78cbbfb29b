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
    let (version, _) = retain_model::save(&ws, &model, &report, vec!["a".into()], 1, None).unwrap();
    assert_eq!(version, 1);
    let (loaded, meta) = retain_model::load(&ws, 1).unwrap();
    assert_eq!(meta.features, t.features);
    let a = model.score(&t, 1.0).unwrap();
    let b = loaded.score(&t, 1.0).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x.probability - y.probability).abs() < 1e-9);
    }
    let (second, _) = retain_model::save(&ws, &model, &report, vec![], 1, None).unwrap();
    assert_eq!(second, 2);
    // Trainings saving at once each get a version of their own, whole.
    let mut saved: Vec<u32> = std::thread::scope(|scope| {
        let savers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    retain_model::save(&ws, &model, &report, vec![], 1, None)
                        .unwrap()
                        .0
                })
            })
            .collect();
        savers.into_iter().map(|s| s.join().unwrap()).collect()
    });
    saved.sort_unstable();
    assert_eq!(saved, [3, 4, 5, 6]);
    // Without a champion record, the newest version scores.
    let (_, newest) = retain_model::load_champion(&ws).unwrap().unwrap();
    assert_eq!(newest.version, 6);
}

#[test]
fn too_few_snapshots_is_a_clear_error() {
    let err = train(&table(100, 2)).err().unwrap();
    assert!(err.to_string().contains("at least 3 snapshots"), "{err}");
}

/// The test snapshot of `t` and the standing of `model` (saved as `version`) on it.
fn standing_on(
    model: &retain_model::ChurnModel,
    version: u32,
    t: &Table,
) -> (Table, retain_model::Standing) {
    let last = *retain_model::snapshots(t).last().unwrap();
    let test = t.subset(&retain_model::rows_where(t, |s| s == last));
    let p = model.probabilities(&test.x).unwrap();
    let standing = retain_model::Standing::of(version, &retain_model::evaluate(&p, &test.label));
    (test, standing)
}

#[test]
fn a_worse_challenger_is_kept_out_and_a_rollback_brings_any_version_back() {
    use retain_model::{Action, contest, load_champion, rollback};
    let t = table(1500, 3);
    let (good, report) = train(&t).unwrap();
    // A model of labels drawn without regard to the features: it ranks at random.
    let mut noise = table(1500, 3);
    let mut rng = Lcg(99);
    for l in &mut noise.label {
        *l = rng.next() < 0.1;
    }
    let (worse, worse_report) = train(&noise).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = retain_data::Workspace::create_or_open(dir.path()).unwrap();

    let (v1, _) = retain_model::save(&ws, &good, &report, vec![], 1, None).unwrap();
    let (test, first) = standing_on(&good, v1, &t);
    let decision = contest(&ws, first, &test, "2026-07").unwrap();
    assert_eq!(decision.action, Action::Promoted, "{}", decision.reason);
    assert_eq!(decision.reason, "the first model");
    assert_eq!((decision.champion, decision.previous), (1, None));

    let (v2, _) = retain_model::save(&ws, &worse, &worse_report, vec![], 1, None).unwrap();
    let (_, challenger) = standing_on(&worse, v2, &t);
    let decision = contest(&ws, challenger, &test, "2026-07").unwrap();
    assert_eq!(decision.action, Action::NotPromoted, "{}", decision.reason);
    assert_eq!((decision.champion, decision.previous), (1, Some(1)));
    assert!(
        decision.reason.contains("lower than the champion v1"),
        "{}",
        decision.reason
    );
    // The champion was evaluated again on the same rows: its standing is the one it had.
    assert_eq!(decision.incumbent, Some(first));
    assert!(challenger.auc < first.auc);
    assert_eq!(load_champion(&ws).unwrap().unwrap().1.version, 1);

    // Trainings finishing at once decide one after the other: no decision is lost.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| contest(&ws, challenger, &test, "2026-07").unwrap());
        }
    });
    let record = retain_model::champion_record(&ws).unwrap().unwrap();
    assert_eq!(record.history.len(), 6);
    assert_eq!(record.version, 1);

    let back = rollback(&ws, Some(2)).unwrap();
    assert_eq!(
        (back.action, back.champion, back.previous),
        (Action::RolledBack, 2, Some(1))
    );
    assert_eq!(load_champion(&ws).unwrap().unwrap().1.version, 2);
    // By default, back to the champion it replaced; further back there is none.
    assert_eq!(rollback(&ws, None).unwrap().champion, 1);
    let err = rollback(&ws, None).unwrap_err().to_string();
    assert!(err.contains("no earlier champion"), "{err}");
    let err = rollback(&ws, Some(7)).unwrap_err().to_string();
    assert!(
        err.contains("no model v7") && err.contains("v1, v2"),
        "{err}"
    );
    let err = rollback(&ws, Some(1)).unwrap_err().to_string();
    assert!(err.contains("champion already"), "{err}");
    assert_eq!(retain_model::champion_version(&ws).unwrap(), Some(1));

    let listing = retain_model::list(&ws).unwrap();
    let marked: Vec<(u32, bool, Option<Action>)> = listing
        .versions
        .iter()
        .map(|v| (v.version, v.champion, v.decision))
        .collect();
    assert_eq!(
        marked,
        [
            (1, true, Some(Action::Promoted)),
            (2, false, Some(Action::NotPromoted))
        ]
    );
    assert_eq!(listing.history.len(), 8);
}

#[test]
fn a_workspace_without_a_champion_record_begins_one_from_its_newest_version() {
    let t = table(1500, 3);
    let (model, report) = train(&t).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = retain_data::Workspace::create_or_open(dir.path()).unwrap();
    for _ in 0..3 {
        retain_model::save(&ws, &model, &report, vec![], 1, None).unwrap();
    }
    assert!(retain_model::champion_record(&ws).unwrap().is_none());
    assert_eq!(retain_model::champion_version(&ws).unwrap(), Some(3));
    // v3 met v2, the newest before it, and tied: the same model.
    let (test, standing) = standing_on(&model, 3, &t);
    let decision = retain_model::contest(&ws, standing, &test, "2026-07").unwrap();
    assert_eq!(decision.action, retain_model::Action::NotPromoted);
    assert!(decision.reason.contains("equal"), "{}", decision.reason);
    let record = retain_model::champion_record(&ws).unwrap().unwrap();
    assert_eq!(record.version, 2);
    assert_eq!(record.history.len(), 2);
    assert_eq!(record.history[0].version, 2);
    // The record's lineage begins at v2; earlier versions are named with `--to`.
    let err = retain_model::rollback(&ws, None).unwrap_err().to_string();
    assert!(err.contains("no earlier champion"), "{err}");
}
