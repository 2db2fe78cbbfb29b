//! Scoring everyone with a churn model: features arrive as a stream of batches and are scored
//! a chunk at a time, so memory follows the chunk, not the operator; the riskiest subscribers'
//! feature rows are kept (a min-heap) and explained at the end, since explaining (TreeSHAP
//! over every tree) is the slow part.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use datafusion::arrow::array::RecordBatch;

use crate::drift::{Drift, DriftReference, Tally};
use crate::error::Result;
use crate::reasons::Reason;
use crate::table::Table;
use crate::train::ChurnModel;

/// Share of subscribers, riskiest first, whose scores carry reasons (deciles 1–3)...
pub(crate) const REASONS_SHARE: f64 = 0.3;
/// ...but at most this many: more than a retention department contacts in a cycle.
pub(crate) const REASONS_MAX: usize = 100_000;
/// Subscribers scored per step.
const CHUNK_ROWS: usize = 262_144;

/// Everyone's probability, and the reasons of the riskiest.
#[derive(Debug, Default)]
pub struct Scored {
    pub ids: Vec<i64>,
    pub probabilities: Vec<f64>,
    /// The strongest reason categories of the riskiest 30% (at most 100,000), by subscriber.
    pub reasons: HashMap<i64, Vec<Reason>>,
    /// How far the scored population moved from the reference it was watched against.
    pub drift: Option<Drift>,
}

/// A scored subscriber kept as a candidate for reasons, ordered by probability (ties: the
/// smaller id is the riskier, as in the scores file).
struct Candidate {
    probability: f64,
    subscriber_id: i64,
    x: Vec<f64>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.probability
            .total_cmp(&other.probability)
            .then(other.subscriber_id.cmp(&self.subscriber_id))
    }
}

/// Scores batches of feature rows as they come; [`Scorer::finish`] explains the riskiest.
pub struct Scorer<'m> {
    model: &'m ChurnModel,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    features: Vec<String>,
    ids: Vec<i64>,
    probabilities: Vec<f64>,
    riskiest: BinaryHeap<Reverse<Candidate>>,
    drift: Option<Tally<'m>>,
}

impl<'m> Scorer<'m> {
    #[must_use]
    pub fn new(model: &'m ChurnModel) -> Scorer<'m> {
        Scorer {
            model,
            pending: Vec::new(),
            pending_rows: 0,
            features: Vec::new(),
            ids: Vec::new(),
            probabilities: Vec::new(),
            riskiest: BinaryHeap::new(),
            drift: None,
        }
    }

    /// Also counts every scored row into `reference`'s bins: [`Scored::drift`] then says how
    /// far the population moved from the one the model was tested on.
    #[must_use]
    pub fn watching(mut self, reference: &'m DriftReference) -> Scorer<'m> {
        self.drift = Some(Tally::new(reference));
        self
    }

    /// Adds a batch of feature rows (a `subscriber_id` column and the model's features).
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= CHUNK_ROWS {
            self.score_pending()?;
        }
        Ok(())
    }

    fn score_pending(&mut self) -> Result<()> {
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        // The batches may carry features the model left out (see `leave_out_unseen`).
        let table = Table::from_batches(&batches)?.select(&self.model.features)?;
        let d = table.features.len();
        let p = self.model.probabilities(&table.x)?;
        if let Some(tally) = &mut self.drift {
            tally.add(&table.features, &table.x);
        }
        for (i, (&id, &probability)) in table.subscriber_id.iter().zip(&p).enumerate() {
            let full = self.riskiest.len() >= REASONS_MAX;
            if full
                && self
                    .riskiest
                    .peek()
                    .is_some_and(|least| least.0.probability >= probability)
            {
                continue;
            }
            if full {
                self.riskiest.pop();
            }
            self.riskiest.push(Reverse(Candidate {
                probability,
                subscriber_id: id,
                x: table.x[i * d..(i + 1) * d].to_vec(),
            }));
        }
        self.ids.extend_from_slice(&table.subscriber_id);
        self.probabilities.extend(p);
        self.features = table.features;
        Ok(())
    }

    /// Scores what is left and explains the riskiest.
    pub fn finish(mut self) -> Result<Scored> {
        self.score_pending()?;
        let drift = self.drift.take().map(|t| t.finish(&self.probabilities));
        let n = self.ids.len();
        let explained = ((n as f64 * REASONS_SHARE).ceil() as usize).min(REASONS_MAX);
        let mut riskiest: Vec<Candidate> = self
            .riskiest
            .into_sorted_vec()
            .into_iter()
            .map(|c| c.0)
            .take(explained)
            .collect();
        riskiest.sort_by_key(|c| c.subscriber_id);
        let table = Table {
            features: self.features,
            subscriber_id: riskiest.iter().map(|c| c.subscriber_id).collect(),
            snapshot: vec![0; riskiest.len()],
            label: vec![false; riskiest.len()],
            x: riskiest.iter().flat_map(|c| c.x.iter().copied()).collect(),
            levels: Vec::new(),
        };
        let reasons = if table.is_empty() {
            HashMap::new()
        } else {
            self.model
                .score(&table, 1.0)?
                .into_iter()
                .map(|s| (s.subscriber_id, s.reasons))
                .collect()
        };
        Ok(Scored {
            ids: self.ids,
            probabilities: self.probabilities,
            reasons,
            drift,
        })
    }
}
