//! Statistical power: the smallest uplift in retention a campaign of given arm sizes can tell
//! from zero, and the control share that makes the uplift a plan expects detectable.
//!
//! A two-sided test at 5% with 80% power on the difference of two proportions, with the
//! variance of the control arm's expected retention in both arms: the usual planning formula
//! (Fleiss), which the evaluation's Wald interval matches.

use serde::{Deserialize, Serialize};

/// z of a two-sided 5% test.
pub(crate) const Z_ALPHA: f64 = 1.959_963_985;
/// z of 80% power.
pub(crate) const Z_POWER: f64 = 0.841_621_234;

/// The grid a control share is chosen on.
const SHARE_STEP: f64 = 0.01;

/// The smallest retention uplift a campaign with `treated` and `control` members whose control
/// retention is `retention` detects at 5% with 80% power; none without both arms.
#[must_use]
pub fn min_detectable_uplift(treated: f64, control: f64, retention: f64) -> Option<f64> {
    if !(treated >= 1.0 && control >= 1.0 && retention.is_finite()) {
        return None;
    }
    // A predicted retention of exactly 0 or 1 would claim any uplift detectable.
    let p = retention.clamp(0.01, 0.99);
    Some((Z_ALPHA + Z_POWER) * (p * (1.0 - p) * (1.0 / treated + 1.0 / control)).sqrt())
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// The chance that a campaign of these sizes finds `uplift` significant (two-sided 5%).
#[must_use]
pub fn power_of(treated: f64, control: f64, retention: f64, uplift: f64) -> Option<f64> {
    let mde = min_detectable_uplift(treated, control, retention)?;
    let se = mde / (Z_ALPHA + Z_POWER);
    Some(phi(uplift.abs() / se - Z_ALPHA))
}

/// What a plan's sizes can detect, and the control share chosen for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Power {
    /// The share of members held out as the control group.
    pub control_share: f64,
    /// The template's share, which `control_share` raises when the expected uplift needs it.
    pub template_control_share: f64,
    /// The retention uplift the plan expects on the treated: mean P(churn) × save rate.
    pub expected_uplift: f64,
    /// The control arm's expected retention: 1 − mean P(churn).
    pub expected_control_retention: f64,
    /// The smallest uplift the planned sizes detect (5% two-sided, 80% power).
    pub min_detectable_uplift: Option<f64>,
    /// Whether the expected uplift is at least the minimum detectable one.
    pub detectable: bool,
    /// The chance that the evaluation finds the expected uplift significant.
    pub power: Option<f64>,
}

/// Chooses the control share for `members` planned members: the template's `floor` when the
/// expected uplift is detectable with it (80% power), else the smallest share up to `ceiling`
/// with which it is. When no share up to `ceiling` makes it detectable, the ceiling if it
/// gives at least even odds of a significant result, else the floor: a larger control would
/// only forgo saves without making the result readable.
#[must_use]
pub fn choose(
    members: f64,
    expected_uplift: f64,
    retention: f64,
    floor: f64,
    ceiling: f64,
) -> Power {
    let arms = |share: f64| (members * (1.0 - share), members * share);
    let mde = |share: f64| {
        let (t, c) = arms(share);
        min_detectable_uplift(t, c, retention)
    };
    let chance = |share: f64| {
        let (t, c) = arms(share);
        power_of(t, c, retention, expected_uplift)
    };
    let detects = |share: f64| mde(share).is_some_and(|m| expected_uplift >= m);
    let mut share = floor;
    if !detects(floor) {
        // The interval narrows as the arms even out: past a half, a larger control only hurts.
        let top = ceiling.min(0.5).max(floor);
        let steps = ((top - floor) / SHARE_STEP).ceil() as usize;
        share = (1..=steps)
            .map(|k| (floor + k as f64 * SHARE_STEP).min(top))
            .find(|s| detects(*s))
            .or_else(|| chance(top).filter(|p| *p >= 0.5).map(|_| top))
            .map_or(floor, |s| (s * 100.0).round() / 100.0);
    }
    let m = mde(share);
    Power {
        control_share: share,
        template_control_share: floor,
        expected_uplift: round6(expected_uplift),
        expected_control_retention: round6(retention),
        min_detectable_uplift: m.map(round6),
        detectable: m.is_some_and(|m| expected_uplift >= m),
        power: chance(share).map(|p| (p * 1e4).round() / 1e4),
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detectable_uplift_is_the_textbook_one() {
        // 1,000 per arm at 80% retention: 2.8016 × sqrt(0.16 × 0.002) = 0.050118.
        let m = min_detectable_uplift(1000.0, 1000.0, 0.8).unwrap();
        assert!((m - 0.050_118).abs() < 1e-5, "{m}");
        // Four times the members halve it.
        let q = min_detectable_uplift(4000.0, 4000.0, 0.8).unwrap();
        assert!((q - m / 2.0).abs() < 1e-9);
        assert_eq!(min_detectable_uplift(100.0, 0.0, 0.8), None);
        assert_eq!(min_detectable_uplift(0.0, 10.0, 0.8), None);
    }

    #[test]
    #[allow(clippy::float_cmp)] // rounded values and shares on the grid, compared exactly
    fn the_share_rises_only_as_far_as_detection_needs() {
        // 2,000 members at 80% retention, 6 points expected: 20% control cannot see it
        // (minimum 0.0626), half can (0.0501).
        let p = choose(2000.0, 0.06, 0.8, 0.2, 0.5);
        assert!(p.control_share > 0.2 && p.control_share <= 0.5, "{p:?}");
        assert!(p.detectable);
        let below = choose(
            2000.0,
            0.06,
            0.8,
            p.control_share - 0.01,
            p.control_share - 0.01,
        );
        assert!(!below.detectable, "the share is the smallest that detects");
        // A large campaign keeps the template's share.
        let big = choose(100_000.0, 0.05, 0.8, 0.2, 0.5);
        assert_eq!(big.control_share, 0.2);
        assert!(big.detectable);
        // Hopeless even at half: the template's share, flagged.
        let small = choose(200.0, 0.02, 0.8, 0.2, 0.5);
        assert_eq!(small.control_share, 0.2);
        assert!(!small.detectable);
        assert!(small.power.unwrap() < 0.2);
        assert_eq!(small.template_control_share, 0.2);
        // Short of 80% at half but better than even odds there: half.
        let near = choose(2000.0, 0.045, 0.8, 0.2, 0.5);
        assert_eq!(near.control_share, 0.5);
        assert!(!near.detectable);
        assert!((0.5..0.8).contains(&near.power.unwrap()), "{near:?}");
        // At exactly the minimum detectable uplift the power is 80%.
        let m = min_detectable_uplift(1000.0, 1000.0, 0.8).unwrap();
        assert!((power_of(1000.0, 1000.0, 0.8, m).unwrap() - 0.8).abs() < 1e-4);
        assert!((phi(0.0) - 0.5).abs() < 1e-7 && (phi(1.96) - 0.975).abs() < 1e-4);
        // A ceiling below the floor never lowers the share.
        assert_eq!(choose(2000.0, 0.05, 0.8, 0.3, 0.1).control_share, 0.3);
    }
}
