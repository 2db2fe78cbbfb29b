//! The recipe as a whole: refits beside the first fit, rollbacks, early stopping, the model
//! file and categorical columns; its helpers make the tables other modules' tests fit.

use super::encoding::{for_trees, target_order};
use super::params::{REFIT_BELOW, REFIT_ROUNDS, params};
use super::rounds::{Pace, Progress, Rounds, grow};
use super::*;
use crate::error::Result;
use crate::forest::Forest;
use crate::grow::Booster;
use crate::metrics::auc;
use crate::table::Table;

/// A uniform draw in [0, 1) from a fixed sequence.
pub(crate) fn draws(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `rows` rows of two signal columns (one an interaction the regression cannot see) and
/// one of noise.
pub(super) fn table(rows: usize, seed: u64) -> Table {
    let mut next = draws(seed);
    let mut x = Vec::with_capacity(rows * 3);
    let mut label = Vec::with_capacity(rows);
    for _ in 0..rows {
        let (a, b, noise) = (next(), next(), next());
        let z = -2.5 + 3.0 * a + if (a > 0.5) == (b > 0.5) { 1.5 } else { -1.0 };
        label.push(next() < 1.0 / (1.0 + (-z).exp()));
        x.extend([a, b, noise]);
    }
    Table {
        features: vec!["a".into(), "b".into(), "noise".into()],
        subscriber_id: (0..rows as i64).collect(),
        snapshot: vec![0; rows],
        label,
        x,
        levels: Vec::new(),
    }
}

/// A booster on `rows` of a three-column table with the recipe's parameters for a small or
/// large table, nothing grown yet.
fn trainer(t: &Table, rows: &[usize], small: bool) -> Booster {
    let params = params(rows.len(), small);
    let (x, y) = (t.matrix(rows), t.labels(rows));
    Booster::new(&x, &y, 3, params, None).unwrap()
}

/// A refit on `rows` following `pace`.
fn refit(t: &Table, rows: &[usize], pace: &Pace) -> Result<Forest> {
    let order = target_order(t, rows);
    let params = params(rows.len(), true);
    grow(t, rows, &order, None, &params, &Rounds::Following(pace))?.model()
}

#[test]
fn the_model_file_reads_back_the_same_trees() {
    // What the registry saves, read back as a saved model is.
    let t = table(3_000, 4);
    let rows: Vec<usize> = (0..t.len()).collect();
    let mut trainer = trainer(&t, &rows, true);
    for _ in 0..30 {
        assert!(trainer.step());
    }
    let forest = trainer.model().unwrap();
    let names: Vec<String> = vec!["a".into(), "b c".into(), "noise".into()];
    let text = forest.to_lightgbm(&names);
    assert!(text.contains("feature_names=a b_c noise"), "{text}");
    let read = Forest::from_lightgbm(&text).unwrap();
    assert_eq!(read.trees(), 30);
    let by_forest = forest.raw_scores(&t.x, 3).unwrap();
    assert_eq!(read.raw_scores(&t.x, 3).unwrap(), by_forest);
    assert_eq!(read.importance(3), forest.importance(3));
    assert_eq!(read.counts(), forest.counts());
    assert_eq!(read.to_lightgbm(&names), text);
    let spread = by_forest.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - by_forest.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(spread > 0.5, "{spread}");
    // The signal's columns matter, the noise little.
    let importance = forest.importance(3);
    assert!(importance[0] > 3.0 * importance[2], "{importance:?}");
    assert!(forest.raw_scores(&t.x[..5], 3).is_err(), "rows cut short");
}

#[test]
fn a_small_table_is_fitted_again_on_every_training_row() {
    let t = table(3_000, 4);
    let rows: Vec<usize> = (0..t.len()).collect();
    let (fit_rows, valid_rows) = rows.split_at(2_400);
    let (model, report) = fit(&t, fit_rows, valid_rows).unwrap();
    assert!(report.refit, "{report:?}");
    let expected = (f64::from(report.best_iteration) * REFIT_ROUNDS).round() as i32;
    assert_eq!(report.trees, expected.max(1), "{report:?}");
    assert_eq!(model.forest.trees() as i32, report.trees);
    // The refit model still ranks held-out rows well.
    let test = table(2_000, 5);
    let p = model.probabilities(&test.x).unwrap();
    assert!(auc(&p, &test.label) > 0.75, "{}", auc(&p, &test.label));

    // Grown beside the first fit, the refit has the trees of one grown after it.
    let told = Pace::new();
    told.tell(Progress::Kept(report.best_iteration));
    let order = target_order(&t, &rows);
    let after = refit(&t, &rows, &told).unwrap();
    assert_eq!(after.trees() as i32, report.trees);
    let codes = for_trees(&test.x, 3, &order);
    assert_eq!(
        after.raw_scores(&codes, 3).unwrap(),
        model.forest.raw_scores(&codes, 3).unwrap()
    );
}

#[test]
fn rounds_rolled_back_leave_the_trees_of_a_shorter_fit() {
    let t = table(2_000, 9);
    let rows: Vec<usize> = (0..t.len()).collect();
    let grown = |rounds: usize, back: usize| {
        let mut trainer = trainer(&t, &rows, true);
        for _ in 0..rounds {
            assert!(trainer.step());
        }
        for _ in 0..back {
            trainer.rollback();
        }
        assert_eq!(trainer.rounds() as usize, rounds - back);
        // Grown on after the rollback, as the trees of a shorter fit would.
        if back > 0 {
            assert!(trainer.step());
            trainer.rollback();
        }
        trainer.model().unwrap()
    };
    let (short, long) = (grown(12, 0), grown(30, 18));
    assert_eq!(short.trees(), 12);
    assert_eq!(
        short.raw_scores(&t.x, 3).unwrap(),
        long.raw_scores(&t.x, 3).unwrap()
    );
    assert_ne!(
        short.raw_scores(&t.x, 3).unwrap(),
        grown(13, 0).raw_scores(&t.x, 3).unwrap()
    );
}

#[test]
fn a_refit_stops_when_the_first_fit_fails() {
    let t = table(2_000, 10);
    let rows: Vec<usize> = (0..t.len()).collect();
    let pace = Pace::new();
    let error = std::thread::scope(|scope| {
        let refit = scope.spawn(|| refit(&t, &rows, &pace));
        // The first fit gives up having told of two rounds, without a count to keep.
        let over = pace.failed_unless_kept();
        pace.tell(Progress::Grown(2));
        drop(over);
        refit.join().unwrap().unwrap_err()
    });
    assert!(
        error.to_string().contains("early-stopped fit failed"),
        "{error}"
    );
}

#[test]
fn trees_read_back_a_round_at_a_time_add_up_to_the_model() {
    // How a large table's validation rows are scored while its trees grow.
    let t = table(3_000, 12);
    let rows: Vec<usize> = (0..t.len()).collect();
    let mut trainer = trainer(&t, &rows, false);
    let mut scores = vec![0.0; t.len()];
    // Rounds read back one, then four, then twenty at a time.
    for (first, count) in [(0, 1), (1, 4), (5, 20)] {
        for _ in 0..count {
            assert!(trainer.step());
        }
        let trees = trainer.forest(first, count).unwrap();
        assert_eq!(trees.trees(), count);
        trees.add_raw_scores(&t.x, 3, &mut scores).unwrap();
    }
    let whole = trainer.model().unwrap();
    assert_eq!(whole.trees(), 25);
    let expected = whole.raw_scores(&t.x, 3).unwrap();
    for (a, b) in scores.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-9, "{a} against {b}");
    }
    assert!(auc(&scores, &t.label) > 0.75);
}

#[test]
fn a_large_table_keeps_the_early_stopped_model() {
    let t = table(REFIT_BELOW + 1_000, 6);
    let rows: Vec<usize> = (0..t.len()).collect();
    let (fit_rows, valid_rows) = rows.split_at(REFIT_BELOW - 4_000);
    let (model, report) = fit(&t, fit_rows, valid_rows).unwrap();
    assert!(!report.refit);
    assert_eq!(report.trees, report.best_iteration);
    assert_eq!(model.forest.trees() as i32, report.best_iteration);
}

#[test]
fn early_stopping_stops_soon_where_there_is_nothing_to_learn() {
    let signal = table(3_000, 30);
    let mut noise = table(3_000, 30);
    let mut next = draws(31);
    for label in &mut noise.label {
        *label = next() < 0.3;
    }
    let rows: Vec<usize> = (0..3_000).collect();
    let (_, learned) = fit(&signal, &rows[..2_400], &rows[2_400..]).unwrap();
    let (_, nothing) = fit(&noise, &rows[..2_400], &rows[2_400..]).unwrap();
    assert!(nothing.best_iteration < 15, "{nothing:?}");
    assert!(
        learned.best_iteration > nothing.best_iteration + 10,
        "{learned:?}"
    );
}

#[test]
fn a_categorical_column_is_split_by_its_levels_churn_rates() {
    // Churn rates by level in no order of the codes.
    let rates = [0.1, 0.5, 0.02, 0.3, 0.1, 0.7];
    let mut next = draws(40);
    let (mut x, mut label) = (Vec::new(), Vec::new());
    for _ in 0..4_000 {
        let level = (next() * 6.0) as usize;
        label.push(next() < rates[level]);
        x.extend([level as f64, next()]);
    }
    let t = Table {
        features: vec!["plan".into(), "noise".into()],
        subscriber_id: (0..4_000).collect(),
        snapshot: vec![0; 4_000],
        label,
        x,
        levels: vec![Some((0..6).map(|l| format!("p{l}")).collect()), None],
    };
    let rows: Vec<usize> = (0..4_000).collect();
    let (model, _) = fit(&t, &rows[..3_200], &rows[3_200..]).unwrap();
    let probe: Vec<f64> = (0..6).flat_map(|l| [f64::from(l), 0.5]).collect();
    let p = model.probabilities(&probe).unwrap();
    for (a, b) in [(2, 0), (0, 3), (4, 3), (3, 1), (1, 5)] {
        assert!(p[a] < p[b], "level {a} against {b}: {p:?}");
    }
}
