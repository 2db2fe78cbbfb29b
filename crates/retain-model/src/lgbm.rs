//! LightGBM's C API, a round at a time. `lightgbm3` grows a booster in one call; the recipe
//! needs each round: to grow the small tables' refit on its own core beside the early-stopped
//! fit, which alone says how many rounds the refit keeps, and to read a large table's trees
//! back as they grow, to score its validation rows itself.
//!
//! Every handle here is owned by one value and freed on drop, boosters before the data they
//! were grown on.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use lightgbm3_sys as sys;

use crate::error::{Error, Result};

/// LightGBM's last error on this thread when `code` says a call failed.
fn check(code: c_int) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: LightGBM returns a pointer to its thread-local, NUL-terminated message buffer.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) };
    Err(Error::Model(message.to_string_lossy().into_owned()))
}

fn text(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Model(format!("{s:?} holds a NUL byte")))
}

/// Rows and columns as LightGBM's C API counts them.
fn shape(rows: usize, d: usize) -> Result<(c_int, c_int)> {
    Ok((
        c_int::try_from(rows).map_err(|_| Error::Data("too many rows".into()))?,
        c_int::try_from(d).map_err(|_| Error::Data("too many features".into()))?,
    ))
}

/// Parameters as LightGBM reads them: `key=value` pairs separated by spaces.
pub(crate) fn parameters(params: &serde_json::Value) -> String {
    let Some(map) = params.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rows binned for LightGBM, with their labels.
pub(crate) struct Data {
    handle: sys::DatasetHandle,
}

// SAFETY: a dataset is plain memory owned by its handle; LightGBM ties it to no thread.
unsafe impl Send for Data {}

impl Data {
    /// Bins row-major `x` (`d` columns) labelled `y` with LightGBM `params`; with `reference`,
    /// on its bins, as validation rows must be.
    pub(crate) fn new(
        x: &[f64],
        y: &[f32],
        d: usize,
        names: &[String],
        params: &str,
        reference: Option<&Data>,
    ) -> Result<Data> {
        let (rows, columns) = shape(y.len(), d)?;
        if x.len() != y.len() * d || names.len() != d {
            return Err(Error::Data(format!(
                "{} values, {} labels and {} names do not make rows of {d} columns",
                x.len(),
                y.len(),
                names.len()
            )));
        }
        let params = text(params)?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `x` holds `rows * columns` doubles, row-major, and outlives the call (LightGBM
        // copies what it bins); `reference` is a live dataset or null.
        check(unsafe {
            sys::LGBM_DatasetCreateFromMat(
                x.as_ptr().cast::<c_void>(),
                sys::C_API_DTYPE_FLOAT64 as c_int,
                rows,
                columns,
                1,
                params.as_ptr(),
                reference.map_or(std::ptr::null_mut(), |r| r.handle),
                &raw mut handle,
            )
        })?;
        let data = Data { handle };
        let label = text("label")?;
        // SAFETY: `y` holds `rows` floats; LightGBM copies them.
        check(unsafe {
            sys::LGBM_DatasetSetField(
                data.handle,
                label.as_ptr(),
                y.as_ptr().cast::<c_void>(),
                rows,
                sys::C_API_DTYPE_FLOAT32 as c_int,
            )
        })?;
        let names = names
            .iter()
            .map(|n| text(n))
            .collect::<Result<Vec<CString>>>()?;
        let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: `columns` pointers to NUL-terminated names that outlive the call.
        check(unsafe {
            sys::LGBM_DatasetSetFeatureNames(data.handle, pointers.as_mut_ptr(), columns)
        })?;
        Ok(data)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: the handle is live and freed once, after any booster grown on it (`Trainer`).
        unsafe { sys::LGBM_DatasetFree(self.handle) };
    }
}

/// A booster growing on its training rows, optionally evaluated on validation rows.
pub(crate) struct Trainer {
    handle: sys::BoosterHandle,
    // Held, not read: the booster points into both until it is freed.
    _train: Data,
    _valid: Option<Data>,
}

// SAFETY: a booster and its datasets are owned here alone and used from one thread at a time.
unsafe impl Send for Trainer {}

impl Trainer {
    pub(crate) fn new(train: Data, valid: Option<Data>, params: &str) -> Result<Trainer> {
        let params = text(params)?;
        let valid_handle = valid.as_ref().map(|v| v.handle);
        let mut handle = std::ptr::null_mut();
        // SAFETY: `train` is a live dataset, kept alive by the trainer as long as the booster.
        check(unsafe { sys::LGBM_BoosterCreate(train.handle, params.as_ptr(), &raw mut handle) })?;
        let trainer = Trainer {
            handle,
            _train: train,
            _valid: valid,
        };
        if let Some(valid) = valid_handle {
            // SAFETY: both handles are live, the dataset held by the trainer; the validation
            // rows were binned on the training rows' bins.
            check(unsafe { sys::LGBM_BoosterAddValidData(trainer.handle, valid) })?;
        }
        Ok(trainer)
    }

    /// Grows one round; false when no tree could split, which adds no round.
    pub(crate) fn step(&mut self) -> Result<bool> {
        let mut finished: c_int = 0;
        // SAFETY: the handle is live.
        check(unsafe { sys::LGBM_BoosterUpdateOneIter(self.handle, &raw mut finished) })?;
        Ok(finished == 0)
    }

    /// Removes the last round.
    pub(crate) fn rollback(&mut self) -> Result<()> {
        // SAFETY: the handle is live.
        check(unsafe { sys::LGBM_BoosterRollbackOneIter(self.handle) })
    }

    pub(crate) fn rounds(&self) -> Result<i32> {
        let mut rounds: c_int = 0;
        // SAFETY: the handle is live.
        check(unsafe { sys::LGBM_BoosterGetCurrentIteration(self.handle, &raw mut rounds) })?;
        Ok(rounds)
    }

    /// The first metric of the parameters on the validation rows.
    pub(crate) fn validation_metric(&self) -> Result<f64> {
        let mut count: c_int = 0;
        // SAFETY: the handle is live.
        check(unsafe { sys::LGBM_BoosterGetEvalCounts(self.handle, &raw mut count) })?;
        if count < 1 {
            return Err(Error::Model("the booster evaluates no metric".into()));
        }
        let mut values = vec![0.0; count as usize];
        let mut written: c_int = 0;
        // SAFETY: `values` has room for every metric; data index 1 is the first validation set.
        check(unsafe {
            sys::LGBM_BoosterGetEval(self.handle, 1, &raw mut written, values.as_mut_ptr())
        })?;
        values
            .first()
            .copied()
            .filter(|_| written >= 1)
            .ok_or_else(|| Error::Model("the validation rows were not evaluated".into()))
    }

    /// LightGBM's raw scores (log-odds) of row-major `x` (`d` columns) by every round grown,
    /// on one thread.
    pub(crate) fn raw_scores(&self, x: &[f64], d: usize) -> Result<Vec<f64>> {
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(Error::Data(format!(
                "{} values do not make rows of {d}",
                x.len()
            )));
        }
        let rows = x.len() / d;
        let (nrow, ncol) = shape(rows, d)?;
        let mut out = vec![0.0; rows];
        let mut written: i64 = 0;
        // Silent, as every LightGBM call here: its messages go to standard output.
        let params = text("verbose=-1 num_threads=1")?;
        // SAFETY: the handle is live; `x` holds `nrow * ncol` doubles, row-major; `out` has room
        // for one raw score a row, all a binary model's prediction writes.
        check(unsafe {
            sys::LGBM_BoosterPredictForMat(
                self.handle,
                x.as_ptr().cast::<c_void>(),
                sys::C_API_DTYPE_FLOAT64 as c_int,
                nrow,
                ncol,
                1,
                sys::C_API_PREDICT_RAW_SCORE as c_int,
                0,
                -1,
                params.as_ptr(),
                &raw mut written,
                out.as_mut_ptr(),
            )
        })?;
        if usize::try_from(written).ok() != Some(rows) {
            return Err(Error::Model(format!(
                "LightGBM scored {written} of {rows} rows"
            )));
        }
        Ok(out)
    }

    /// The model in LightGBM's text format.
    pub(crate) fn model(&self) -> Result<String> {
        self.trees(0, -1)
    }

    /// `rounds` rounds from round `first` (from 0; -1 rounds: all the rest), in LightGBM's
    /// text format.
    pub(crate) fn trees(&self, first: c_int, rounds: c_int) -> Result<String> {
        // LightGBM writes the whole text to learn its size, so one call with room enough
        // halves the cost; a tree of 31 leaves takes about 3 KB.
        let trees = if rounds < 0 {
            usize::try_from(self.rounds()? - first).unwrap_or(0)
        } else {
            usize::try_from(rounds).unwrap_or(0)
        };
        let mut buffer = vec![0u8; 64 * 1024 + trees * 8 * 1024];
        for _ in 0..2 {
            let mut size: i64 = 0;
            // SAFETY: `buffer` holds `buffer.len()` bytes; LightGBM writes at most that many
            // and says in `size` how many the whole text needs.
            check(unsafe {
                sys::LGBM_BoosterSaveModelToString(
                    self.handle,
                    first,
                    rounds,
                    0,
                    i64::try_from(buffer.len()).unwrap_or(i64::MAX),
                    &raw mut size,
                    buffer.as_mut_ptr().cast::<c_char>(),
                )
            })?;
            let size = usize::try_from(size).unwrap_or(0);
            if size <= buffer.len() {
                let text = CStr::from_bytes_until_nul(&buffer[..size])
                    .map_err(|_| Error::Model("LightGBM's model text is not terminated".into()))?;
                return Ok(text.to_string_lossy().into_owned());
            }
            buffer = vec![0u8; size];
        }
        Err(Error::Model("LightGBM's model text kept growing".into()))
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        // SAFETY: the handle is live and freed once; the datasets are dropped after it.
        unsafe { sys::LGBM_BoosterFree(self.handle) };
    }
}
