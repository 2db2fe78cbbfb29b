//! How many rounds the trees grow: early stopping on the validation rows, and the refit that
//! follows an early-stopped fit's pace from another thread and keeps a share more rounds.

use super::encoding::for_trees;
use super::params::{MAX_ROUNDS, REFIT_ROUNDS};
use crate::columns::Columns;
use crate::error::{Error, Result};
use crate::grow::{Booster, Params};
use crate::metrics::auc_by_radix;
use crate::table::Table;

/// How a booster decides when to stop growing.
pub(super) enum Rounds<'a> {
    /// Up to [`MAX_ROUNDS`], stopping once the validation rows' `watch` has not improved for
    /// `patience` rounds and dropping those; `pace` tells a refit growing beside it.
    EarlyStopped {
        patience: i32,
        watch: Watch,
        pace: Option<&'a Pace>,
    },
    /// [`REFIT_ROUNDS`] times the rounds an early-stopped fit kept, grown beside it.
    Following(&'a Pace),
}

/// What early stopping watches on the validation rows.
#[derive(Clone, Copy)]
pub(super) enum Watch {
    /// The booster's binary log loss, lower is better.
    LogLoss,
    /// The AUC of the validation probabilities ([`auc_by_radix`]), higher is better.
    Auc,
}

/// How far an early-stopped fit has grown, for a refit growing beside it: the refit may run
/// ahead to [`refit_rounds`] of the rounds grown so far (it will keep no more than that), and
/// drops what it grew beyond the rounds finally kept.
pub(super) struct Pace {
    state: std::sync::Mutex<Progress>,
    changed: std::sync::Condvar,
}

#[derive(Clone, Copy)]
pub(super) enum Progress {
    Grown(i32),
    Kept(i32),
    /// The early-stopped fit failed; the refit stops too.
    Failed,
}

impl Pace {
    pub(super) fn new() -> Pace {
        Pace {
            state: std::sync::Mutex::new(Progress::Grown(0)),
            changed: std::sync::Condvar::new(),
        }
    }

    /// Tells the refit the first fit failed when dropped before [`Progress::Kept`] was told.
    pub(super) fn failed_unless_kept(&self) -> impl Drop + '_ {
        struct Over<'a>(&'a Pace);
        impl Drop for Over<'_> {
            fn drop(&mut self) {
                let mut state = self
                    .0
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if matches!(*state, Progress::Grown(_)) {
                    *state = Progress::Failed;
                    self.0.changed.notify_all();
                }
            }
        }
        Over(self)
    }

    pub(super) fn tell(&self, progress: Progress) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = progress;
        self.changed.notify_all();
    }

    /// Waits until the refit, at `grown` rounds, may grow another, or knows what to keep.
    fn next(&self, grown: i32) -> Progress {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = self
            .changed
            .wait_while(state, |p| match *p {
                Progress::Grown(rounds) => grown >= refit_rounds(rounds),
                Progress::Kept(_) | Progress::Failed => false,
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state
    }
}

/// Rounds of a refit on every row for `kept` rounds of the early-stopped fit.
fn refit_rounds(kept: i32) -> i32 {
    ((f64::from(kept) * REFIT_ROUNDS).round() as i32).max(1)
}

/// Grows the trees on `rows` (in the trees' encoding, `level_order`), evaluated on `valid`
/// when given; returns the booster. The rows' copy, if they needed one, is dropped once
/// they are binned.
pub(super) fn grow(
    table: &Table,
    rows: &[usize],
    level_order: &[Option<Vec<f64>>],
    valid: Option<(&[f64], &[bool])>,
    params: &Params,
    rounds: &Rounds<'_>,
) -> Result<Booster> {
    let d = table.features.len();
    // The booster bins and scores the validation rows itself only for the log loss; the AUC
    // is watched on scores of them held column by column (`stop_early`).
    let by_booster = matches!(
        rounds,
        Rounds::EarlyStopped {
            watch: Watch::LogLoss,
            ..
        }
    );
    let mut trainer = {
        let (x, y) = (table.matrix(rows), table.labels(rows));
        let x = for_trees(&x, d, level_order);
        let valid = valid.filter(|_| by_booster);
        Booster::new(&x, &y, d, params.clone(), valid)?
    };
    let fit = if valid.is_some() { "first" } else { "refit" };
    tracing::debug!(fit, rows = rows.len(), "rows binned for the trees");
    match rounds {
        Rounds::EarlyStopped {
            patience,
            watch,
            pace,
        } => {
            let (xv, labels) = valid.unwrap_or_default();
            let kept = stop_early(&mut trainer, *patience, *watch, (xv, d), labels, *pace);
            if let Some(pace) = pace {
                pace.tell(
                    kept.as_ref()
                        .map_or(Progress::Failed, |k| Progress::Kept(*k)),
                );
            }
            kept?;
        }
        Rounds::Following(pace) => follow(&mut trainer, pace)?,
    }
    tracing::debug!(fit, rounds = trainer.rounds(), "trees grown");
    Ok(trainer)
}

/// Grows up to [`MAX_ROUNDS`], stopping once `watch` on the validation rows (`valid`, `d`
/// columns in the trees' encoding, labelled `labels`) has not improved for `patience` rounds
/// and dropping those; returns the rounds kept.
///
/// The log loss is the booster's, every round, on the validation rows it binned. The AUC is
/// watched every [`AUC_EVERY`] rounds: the trees grown since the last look are scored on the
/// validation rows held column by column ([`Columns`]), in one pass over the rows for all of
/// them; updating binned rows every round walked them row by row (with LightGBM, on the
/// synthetic operator's 140,000 validation rows, 4.5 ms of a 37 ms round, its probabilities
/// another millisecond and the AUC 2.3 ms).
fn stop_early(
    trainer: &mut Booster,
    patience: i32,
    watch: Watch,
    (valid, d): (&[f64], usize),
    labels: &[bool],
    pace: Option<&Pace>,
) -> Result<i32> {
    let every = match watch {
        Watch::LogLoss => 1,
        Watch::Auc => AUC_EVERY,
    };
    // The raw scores of the validation rows by the first `scored` rounds (the AUC only):
    // log-odds, ranked as the probabilities are.
    let mut scores = vec![0.0; labels.len()];
    let mut scored = 0;
    // The validation rows column by column, for scoring a few trees at a time.
    let mut columns = None;
    // The best value seen and the rounds grown when it was.
    let mut best: Option<(f64, i32)> = None;
    // Time in the booster's rounds and in the looks at the validation rows, for the log.
    let (mut growing, mut looking) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while trainer.rounds() < MAX_ROUNDS {
        let started = std::time::Instant::now();
        if !trainer.step() {
            break;
        }
        growing += started.elapsed();
        let grown = trainer.rounds();
        if let Some(pace) = pace {
            pace.tell(Progress::Grown(grown));
        }
        if grown % every != 0 {
            continue;
        }
        let started = std::time::Instant::now();
        let (metric, higher_is_better) = match watch {
            Watch::LogLoss => (trainer.validation_log_loss()?, false),
            Watch::Auc => {
                let trees = trainer.forest(scored as usize, (grown - scored) as usize)?;
                let columns = columns.get_or_insert_with(|| Columns::new(valid, d));
                trees.add_raw_scores_by_column(columns, &mut scores)?;
                scored = grown;
                (auc_by_radix(&scores, labels), true)
            }
        };
        looking += started.elapsed();
        let improved = best.is_none_or(|(value, _)| {
            if higher_is_better {
                metric > value
            } else {
                metric < value
            }
        });
        match best {
            _ if improved => best = Some((metric, grown)),
            Some((_, at)) if grown - at >= patience => {
                for _ in at..grown {
                    trainer.rollback();
                }
                break;
            }
            _ => {}
        }
    }
    tracing::debug!(
        growing = growing.as_secs_f64(),
        looking = looking.as_secs_f64(),
        "early stopping done"
    );
    Ok(trainer.rounds())
}

/// Rounds between looks at a large table's validation AUC: scoring the rows for five trees at
/// once reads them once, where every round read them five times.
const AUC_EVERY: i32 = 5;

/// Grows in step with an early-stopped fit, then keeps [`refit_rounds`] of its rounds.
fn follow(trainer: &mut Booster, pace: &Pace) -> Result<()> {
    let mut split = true;
    loop {
        // Once no tree can split, only the rounds to keep are left to hear.
        let grown = if split { trainer.rounds() } else { i32::MAX };
        match pace.next(grown) {
            Progress::Kept(kept) => {
                let target = refit_rounds(kept);
                while trainer.rounds() > target {
                    trainer.rollback();
                }
                while split && trainer.rounds() < target {
                    split = trainer.step();
                }
                return Ok(());
            }
            Progress::Failed => return Err(Error::Model("the early-stopped fit failed".into())),
            Progress::Grown(_) => split = trainer.step(),
        }
    }
}
