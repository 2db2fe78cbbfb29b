//! The training recipe, the same for every data set: gradient-boosted trees ([`crate::grow`])
//! early-stopped on validation rows,
//! a logistic-regression floor, and a blend of the two weighted by validation log loss,
//! calibrated by Platt scaling; small tables are fitted again on every training row. `train`
//! applies it to stacked snapshots with a time-based split.
//!
//! In parts: `params` holds the recipe's fixed choices, `encoding` the categorical columns as the
//! trees see them, `rounds` early stopping and the refit that grows in step with it,
//! `calibration` Platt scaling and the blend, `fit` the fit that puts them together, `model` the
//! fitted model and its scoring, and `snapshots` training and backtesting split by time.

mod calibration;
mod encoding;
mod fit;
mod model;
mod params;
mod rounds;
mod snapshots;
#[cfg(test)]
pub(crate) mod tests;

pub use calibration::{Blend, Platt};
pub use fit::{FitReport, fit};
pub use model::{ChurnModel, Score};
pub(crate) use params::REFIT_BELOW;
pub use snapshots::{Fold, TrainReport, rolling_backtest, rows_where, snapshots, train};
