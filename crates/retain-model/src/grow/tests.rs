//! The booster as a whole: trees that learn, keep their least rows, grow alike on one thread
//! or two and from one seed, send missing values the way that gains, and roll rounds back.

use super::tree::PARALLEL_PARTITION_ROWS;
use super::*;
use crate::metrics::auc;

/// `rows` rows of four columns: a signal, an interaction of two, and noise with missing
/// values; labels drawn from their log-odds.
#[allow(clippy::many_single_char_names)]
pub(super) fn rows(rows: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut draws = round_draws(seed, 0);
    let mut x = Vec::with_capacity(rows * 4);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let (a, b, c) = (draws.unit(), draws.unit(), draws.unit());
        let noise = if draws.unit() < 0.2 {
            f64::NAN
        } else {
            draws.unit()
        };
        let z = -2.0 + 3.0 * a + if (b > 0.5) == (c > 0.5) { 1.5 } else { -1.5 };
        y.push(draws.unit() < 1.0 / (1.0 + (-z).exp()));
        x.extend([a, b, c, noise]);
    }
    (x, y)
}

pub(super) fn params() -> Params {
    Params {
        num_leaves: 15,
        feature_fraction: 0.75,
        bagging_fraction: 0.8,
        lambda_l2: 1.0,
        seed: 5,
        ..Params::default()
    }
}

fn grown(x: &[f64], y: &[bool], params: Params, rounds: usize) -> Booster {
    let mut booster = Booster::new(x, y, 4, params, None).unwrap();
    for _ in 0..rounds {
        assert!(booster.step());
    }
    booster
}

#[test]
fn trees_learn_a_signal_and_an_interaction_a_line_cannot() {
    let (x, y) = rows(6_000, 1);
    let (test_x, test_y) = rows(4_000, 2);
    let forest = grown(&x, &y, params(), 60).model().unwrap();
    let scores = forest.raw_scores(&test_x, 4).unwrap();
    let a = auc(&scores, &test_y);
    // The labels' own log-odds rank the test rows at about 0.83.
    assert!(a > 0.8, "{a}");
    // Without the interaction's columns the trees rank far worse: they learned it.
    let blind: Vec<f64> = test_x
        .chunks_exact(4)
        .flat_map(|r| [r[0], 0.5, 0.5, r[3]])
        .collect();
    let without = auc(&forest.raw_scores(&blind, 4).unwrap(), &test_y);
    assert!(a > without + 0.05, "{a} against {without}");
}

#[test]
fn leaves_keep_their_least_rows() {
    let (x, y) = rows(3_000, 4);
    for least in [20, 150] {
        let params = Params {
            min_data_in_leaf: least,
            num_leaves: 63,
            ..params()
        };
        let forest = grown(&x, &y, params, 10).model().unwrap();
        let (nodes, leaves) = forest.counts().unwrap();
        let fewest = leaves.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(fewest >= least as f64, "{fewest} rows under {least}");
        // Bagged rows: a tree's leaves hold about 80% of the rows, and its root all of
        // them.
        let root = nodes[forest.tree_nodes(0).0 as usize];
        assert!((2_200.0..=2_600.0).contains(&root), "{root}");
        // Trees of 150-row leaves hold fewer leaves than the 63 they may.
        let most = (0..forest.trees())
            .map(|t| forest.tree_nodes(t).1 + 1)
            .max()
            .unwrap();
        assert!(least == 20 || most <= 3_000 / 150, "{most}");
    }
}

#[test]
fn a_table_too_small_to_split_keeps_one_tree_of_the_starting_score() {
    let (x, y) = rows(30, 10);
    let mut booster = Booster::new(&x, &y, 4, params(), None).unwrap();
    assert!(!booster.step());
    assert!(!booster.step());
    assert_eq!(booster.rounds(), 1);
    let forest = booster.model().unwrap();
    let churn = y.iter().filter(|c| **c).count() as f64 / 30.0;
    let scores = forest.raw_scores(&x, 4).unwrap();
    assert!(
        scores
            .iter()
            .all(|s| (s - (churn / (1.0 - churn)).ln()).abs() < 1e-12)
    );
}

#[test]
fn a_seed_grows_the_same_trees_and_another_seed_others() {
    let (x, y) = rows(3_000, 6);
    let scores = |seed: u64| {
        let params = Params { seed, ..params() };
        grown(&x, &y, params, 20)
            .model()
            .unwrap()
            .raw_scores(&x, 4)
            .unwrap()
    };
    assert_eq!(scores(1), scores(1));
    assert_ne!(scores(1), scores(2));
}

#[test]
fn two_threads_grow_the_trees_one_thread_grows() {
    // Large enough for leaves partitioned and summed on two threads.
    let (x, y) = rows(3 * PARALLEL_PARTITION_ROWS, 8);
    let scores = |threads: usize| {
        let params = Params {
            threads,
            bagging_fraction: 1.0,
            ..params()
        };
        grown(&x, &y, params, 4)
            .model()
            .unwrap()
            .raw_scores(&x[..4_000], 4)
            .unwrap()
    };
    assert_eq!(scores(1), scores(2));
}

#[test]
fn missing_values_go_the_way_that_gains_and_zero_is_no_missing_value() {
    // Churners have no value in the first column; a value of zero is an ordinary one.
    let mut draws = round_draws(9, 0);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..4_000 {
        let churn = draws.unit() < 0.3;
        let v = if churn && draws.unit() < 0.8 {
            f64::NAN
        } else {
            (draws.unit() * 4.0).floor()
        };
        x.extend([v, draws.unit(), draws.unit(), draws.unit()]);
        y.push(churn);
    }
    let forest = grown(&x, &y, params(), 20).model().unwrap();
    let rows = [
        f64::NAN,
        0.5,
        0.5,
        0.5,
        0.0,
        0.5,
        0.5,
        0.5,
        3.0,
        0.5,
        0.5,
        0.5,
    ];
    let s = forest.raw_scores(&rows, 4).unwrap();
    assert!(s[0] > s[1] + 1.0 && s[0] > s[2] + 1.0, "{s:?}");
    // A column without missing values in training reads a missing value as zero.
    let complete: Vec<f64> = x
        .chunks_exact(4)
        .flat_map(|r| [if r[0].is_nan() { 9.0 } else { r[0] }, r[1], r[2], r[3]])
        .collect();
    let forest = grown(&complete, &y, params(), 20).model().unwrap();
    let s = forest.raw_scores(&rows, 4).unwrap();
    assert!((s[0] - s[1]).abs() < 1e-12, "{s:?}");
    assert!(s[0] < forest.raw_scores(&[9.0, 0.5, 0.5, 0.5], 4).unwrap()[0] - 1.0);
}

#[test]
fn rounds_rolled_back_take_their_scores_with_them() {
    let (x, y) = rows(2_000, 8);
    let (xv, yv) = rows(1_000, 9);
    let mut booster = Booster::new(&x, &y, 4, params(), Some((&xv, &yv))).unwrap();
    let mut losses = Vec::new();
    for _ in 0..10 {
        assert!(booster.step());
        losses.push(booster.validation_log_loss().unwrap());
    }
    assert!(losses[9] < losses[0], "{losses:?}");
    for _ in 0..4 {
        booster.rollback();
    }
    assert_eq!(booster.rounds(), 6);
    assert!((booster.validation_log_loss().unwrap() - losses[5]).abs() < 1e-12);
    let forest = booster.model().unwrap();
    let valid = forest.raw_scores(&xv, 4).unwrap();
    for (a, b) in valid.iter().zip(booster.validation_scores().unwrap()) {
        assert!((a - b).abs() < 1e-9, "{a} against {b}");
    }
    let train = forest.raw_scores(&x, 4).unwrap();
    for (a, b) in train.iter().zip(booster.training_scores()) {
        assert!((a - b).abs() < 1e-9, "{a} against {b}");
    }
}
