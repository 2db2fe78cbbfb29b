//! The forest's scores against LightGBM's decisions and the trainer's own, by every layout;
//! its helpers grow the forests other modules' tests score.

use super::*;
use crate::grow::{Booster, Params};
use crate::masks::Isa;

/// One tree by hand: feature 0 split at 1.5 with missing type `typ` and default direction.
fn stump(decision_type: u8) -> Forest {
    let text = format!(
        "tree\nversion=v4\nmax_feature_idx=1\n\nTree=0\nnum_leaves=2\nnum_cat=0\n\
         split_feature=0\nthreshold=1.5\ndecision_type={decision_type}\nleft_child=-1\n\
         right_child=-2\nleaf_value=-1 1\nis_linear=0\nshrinkage=1\n\n\nend of trees\n"
    );
    Forest::from_lightgbm(&text).unwrap()
}

fn scores(forest: &Forest, values: &[f64]) -> Vec<f64> {
    let x: Vec<f64> = values.iter().flat_map(|v| [*v, 0.0]).collect();
    forest.raw_scores(&x, 2).unwrap()
}

#[test]
fn missing_values_go_where_lightgbm_sends_them() {
    let values = [1.0, 2.0, f64::NAN, 0.0, 1.5];
    // Missing type none: NaN is read as 0, which is left of 1.5.
    assert_eq!(scores(&stump(0), &values), [-1.0, 1.0, -1.0, -1.0, -1.0]);
    // Missing type NaN, default right (decision type 8) and left (10).
    assert_eq!(scores(&stump(8), &values), [-1.0, 1.0, 1.0, -1.0, -1.0]);
    assert_eq!(scores(&stump(10), &values), [-1.0, 1.0, -1.0, -1.0, -1.0]);
    // Missing type zero, default right (4): zero and NaN both go right.
    assert_eq!(scores(&stump(4), &values), [-1.0, 1.0, 1.0, 1.0, -1.0]);
}

#[test]
fn missing_values_take_the_leaf_masks_unless_zero_is_missing() {
    assert!(stump(0).scores_by_masks() && stump(8).scores_by_masks());
    assert!(stump(10).scores_by_masks() && !stump(4).scores_by_masks());
}

/// Stumps on feature 0, one per threshold, with leaves `-(i + 1)` and `i + 1`, NaN left
/// on every other one.
fn stumps(thresholds: &[&str]) -> Forest {
    use std::fmt::Write as _;
    let mut text = String::from("tree\nversion=v4\nmax_feature_idx=1\n\n");
    for (i, t) in thresholds.iter().enumerate() {
        let decision = if i % 2 == 0 { 8 } else { 10 };
        let leaf = i + 1;
        writeln!(
            text,
            "Tree={i}\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold={t}\n\
             decision_type={decision}\nleft_child=-1\nright_child=-2\n\
             leaf_value=-{leaf} {leaf}\nis_linear=0\nshrinkage=1\n"
        )
        .unwrap();
    }
    text.push_str("end of trees\n");
    Forest::from_lightgbm(&text).unwrap()
}

#[test]
fn the_masks_tell_signed_zeros_infinities_and_missing_values_as_the_walk_does() {
    let forest = stumps(&["0", "-0", "1e-300", "-1e300", "inf", "-inf", "1.5"]);
    assert!(forest.scores_by_masks());
    let values = [
        f64::NEG_INFINITY,
        -1e300,
        -1.0,
        -0.0,
        0.0,
        1e-300,
        1.5,
        1e300,
        f64::INFINITY,
        f64::NAN,
    ];
    let got = scores(&forest, &values);
    assert_eq!(got, scores(&forest.walking(), &values));
    // LightGBM reads a value within 1e-35 of zero as zero: right of -1e-36.
    let zero = ZERO;
    let near = [-5e-36, -zero, (-zero).next_down(), zero, 0.0];
    for t in ["-1e-36", "1e-36", "-0"] {
        let tiny = stumps(&[t]);
        let t: f64 = t.parse().unwrap();
        let lightgbm: Vec<f64> = near
            .iter()
            .map(|v| if as_read(*v) <= t { -1.0 } else { 1.0 })
            .collect();
        assert_eq!(scores(&tiny, &near), lightgbm, "{t}");
        assert_eq!(scores(&tiny.walking(), &near), lightgbm, "{t}");
    }
    assert_eq!(
        scores(&stumps(&["-1e-36"]), &near),
        [1.0, 1.0, -1.0, 1.0, 1.0]
    );
    // NaN goes right at the even stumps (+1, +3, ...) and left at the odd ones (-2, ...).
    assert!((got[9] - (1.0 - 2.0 + 3.0 - 4.0 + 5.0 - 6.0 + 7.0)).abs() < 1e-12);
}

#[test]
fn a_feature_with_more_thresholds_than_a_byte_codes_is_walked() {
    let thresholds: Vec<String> = (0..255).map(|i| format!("{i}.5")).collect();
    let names: Vec<&str> = thresholds.iter().map(String::as_str).collect();
    let values: Vec<f64> = (0..600).map(|i| f64::from(i) * 0.5 - 10.0).collect();
    let fits = stumps(&names[..254]);
    assert!(fits.scores_by_masks());
    assert_eq!(scores(&fits, &values), scores(&fits.walking(), &values));
    assert!(!stumps(&names).scores_by_masks());
}

#[test]
fn every_build_of_the_masks_scores_alike() {
    // 31 leaves compare words, 48 bytes.
    for leaves in [31, 48] {
        let (forest, x, _) = trained(leaves, 1_000);
        let scores = forest.raw_scores(&x, 6).unwrap();
        for widest in [Isa::Baseline, Isa::Avx2] {
            assert_eq!(forest.limited_to(widest).raw_scores(&x, 6).unwrap(), scores);
        }
    }
}

/// Rows with missing values, zeros and a signal spread over interacting features, and
/// labels from it with noise.
pub(crate) fn rows(rows: usize, width: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut state = seed;
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(rows * width);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..width)
            .map(|j| {
                let u = uniform();
                match j {
                    0 if u < 0.2 => f64::NAN,
                    1 if u < 0.3 => 0.0,
                    _ => uniform() * 10.0 - 5.0,
                }
            })
            .collect();
        let first = if row[0].is_nan() {
            1.25
        } else {
            row[0].clamp(-1.0, 3.0)
        };
        let signal = first * 0.8 + row[2] * row[3] * 0.1 - row[1] * 0.3
            + row.iter().skip(4).map(|v| v.sin()).sum::<f64>() * 0.3;
        y.push(signal + uniform() * 2.0 - 1.0 > 0.5);
        x.extend(row);
    }
    (x, y)
}

/// A forest grown on `rows` rows (6 columns) over 60 rounds of trees of `leaves` leaves,
/// the rows, and the raw scores the trainer added up for them from their bins.
pub(crate) fn trained(leaves: usize, rows: usize) -> (Forest, Vec<f64>, Vec<f64>) {
    let (x, y) = self::rows(rows, 6, 7);
    let params = Params {
        num_leaves: leaves,
        seed: 1,
        ..Params::default()
    };
    let mut booster = Booster::new(&x, &y, 6, params, None).unwrap();
    for _ in 0..60 {
        assert!(booster.step());
    }
    let scores = booster.training_scores().to_vec();
    (booster.model().unwrap(), x, scores)
}

/// The same trees with every split treating zero as missing (LightGBM's missing type
/// `Zero`, default direction kept), which the recipe never grows but model files may hold.
pub(crate) fn zero_as_missing(forest: &Forest) -> Forest {
    let text: Vec<String> = forest
        .to_lightgbm(&[])
        .lines()
        .map(|line| match line.strip_prefix("decision_type=") {
            Some(types) => {
                let types: Vec<String> = types
                    .split(' ')
                    .map(|t| ((t.parse::<u8>().unwrap() & 2) | 4).to_string())
                    .collect();
                format!("decision_type={}", types.join(" "))
            }
            None => line.to_owned(),
        })
        .collect();
    Forest::from_lightgbm(&text.join("\n")).unwrap()
}

#[test]
fn a_grown_forest_scores_rows_as_its_trainer_did_on_their_bins() {
    // Up to 32 leaves take 32-bit leaf masks, more take 64-bit ones (the widths' edges
    // included); 6,001 rows end in a part block.
    for leaves in [15, 32, 33, 48, 64] {
        let (forest, x, expected) = trained(leaves, 6_001);
        assert_eq!(forest.trees(), 60);
        assert!(forest.scores_by_masks());
        let most = (0..60).map(|t| forest.tree_nodes(t).1 + 1).max();
        assert_eq!(most, Some(leaves), "some tree has every leaf it may");
        let walking = forest.walking();
        assert!(!walking.scores_by_masks());
        for got in [
            forest.raw_scores(&x, 6).unwrap(),
            forest.raw_scores_here(&x[..6 * 100], 6).unwrap(),
            walking.raw_scores(&x, 6).unwrap(),
        ] {
            assert!(got.len() == expected.len() || got.len() == 100);
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{leaves} leaves, row {i}: {a} vs {b}"
                );
            }
        }
        assert_eq!(
            forest.raw_scores(&x, 6).unwrap(),
            walking.raw_scores(&x, 6).unwrap(),
            "the same leaves summed in the same order"
        );
    }
    let (_, _, expected) = trained(15, 6_000);
    // The scores are not all alike: the comparison means something.
    let spread = expected.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - expected.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(spread > 2.0, "{spread}");
}
