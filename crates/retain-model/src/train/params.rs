//! The recipe's fixed choices: the trees' parameters by the table's size, when a small table is
//! fitted again on every row, and what early stopping watches and how long it waits.

use super::rounds::Watch;
use crate::grow::Params;

/// Below this many training rows (fit and validation together), the trees and the regression
/// are fitted again on all of them once early stopping has said how many rounds to grow: on a
/// small table the validation fifth is data the model cannot otherwise afford to leave out.
pub(crate) const REFIT_BELOW: usize = 20_000;
/// Rounds of that refit per round kept by early stopping: a quarter more rows bear more rounds.
pub(super) const REFIT_ROUNDS: f64 = 1.25;

/// Rows a leaf must hold: 50, but fewer on small tables (down to 20, LightGBM's default, below
/// 4,000 rows), where 50 cuts the trees off after a few rounds.
fn min_data_in_leaf(rows: usize) -> usize {
    (rows / 200).clamp(20, 50)
}

/// Rounds a booster may grow before early stopping has said when to stop.
pub(super) const MAX_ROUNDS: i32 = 1000;

/// The trees' parameters: fixed defaults, the same for every data set, chosen by the table's
/// size. Trees of up to 31 leaves grow on 80% of the features each, with leaf values
/// regularized by an L2 penalty of 1 (`grow/`); the values LightGBM ran with before retain
/// grew its own trees, and which the measurements below were taken with.
///
/// The booster grows up to [`MAX_ROUNDS`] and stops early on the validation AUC, or on a small
/// table ([`REFIT_BELOW`]) on the validation log loss: smoother than the AUC of a few hundred
/// rows, which stopped Orange/BigML's trees after twenty rounds. On an operator's hundreds of
/// thousands of rows the log loss kept improving to the 1,000th round, doubling training and
/// tripling scoring for no better ranking, so large tables keep the AUC ([`patience`]).
///
/// Small tables learn at 0.1, large ones at 0.05: over twelve splits of each small public
/// table the faster rate ranked as well (mean AUC within a thousandth, top-decile lift within
/// two hundredths) in half the rounds, where every round costs the same fixed overhead; 0.15
/// and 0.2 lost lift. Small tables grow each tree on a sample of 80% of the rows; large tables
/// grow without it: drawing the rows each round cost more than the smaller histograms saved.
///
/// Churners are not weighed up: weighing them by √(non-churners / churners) ranked no better
/// on any data set measured and worse on the operator's (docs/model.md). The imbalance is
/// handled by the stratified validation rows, by stopping on AUC or log loss rather than
/// accuracy, and by calibrating the scores afterwards.
///
/// Small tables grow on one thread: a round over a few thousand rows is too short to share,
/// and the regression or the refit grows beside it on the other core.
pub(super) fn params(rows: usize, small: bool) -> Params {
    Params {
        learning_rate: if small { 0.1 } else { 0.05 },
        num_leaves: 31,
        min_data_in_leaf: min_data_in_leaf(rows),
        min_sum_hessian: 1e-3,
        lambda_l2: 1.0,
        feature_fraction: 0.8,
        bagging_fraction: if small { 0.8 } else { 1.0 },
        seed: 42,
        threads: if small {
            1
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        },
    }
}

/// What early stopping watches and how many rounds without improvement it waits: the log
/// loss for 10 rounds at a small table's faster rate, the AUC for 50 on a large one. Over
/// twelve splits of each small public table, 10 rounds ranked as well as 20 (mean AUC and
/// top-decile lift equal or higher on all three) and stopped ten rounds sooner.
pub(super) fn patience(small: bool) -> (i32, Watch) {
    if small {
        (10, Watch::LogLoss)
    } else {
        (50, Watch::Auc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_smaller_only_on_small_tables() {
        assert_eq!(min_data_in_leaf(2_000), 20);
        assert_eq!(min_data_in_leaf(6_000), 30);
        assert_eq!(min_data_in_leaf(10_000), 50);
        assert_eq!(min_data_in_leaf(5_000_000), 50);
    }

    #[test]
    fn small_tables_grow_trees_on_one_thread_large_ones_on_every_core() {
        assert_eq!(params(4_000, true).threads, 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(params(400_000, false).threads, cores);
    }
}
