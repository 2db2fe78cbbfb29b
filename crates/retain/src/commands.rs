//! One module per subcommand.

pub(crate) mod backup;
pub(crate) mod campaign;
pub(crate) mod cluster;
pub(crate) mod customer;
pub(crate) mod demo;
pub(crate) mod features;
pub(crate) mod groups;
pub(crate) mod ingest;
pub(crate) mod model_args;
pub(crate) mod offers;
pub(crate) mod schedule;
pub(crate) mod segment;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod status;
pub(crate) mod synth;
pub(crate) mod target;
pub(crate) mod train;
pub(crate) mod user;
pub(crate) mod warn;

/// Parses an `--as-of` date.
pub(crate) fn parse_as_of(text: &str) -> anyhow::Result<chrono::NaiveDate> {
    retain_data::parse_date(text, &retain_data::FieldFormat::default())
        .and_then(retain_features::conditions::check_as_of)
        .map_err(|reason| anyhow::anyhow!("--as-of: {reason}"))
}

/// `--as-of` for the monthly steps: the first day of the month it names.
pub(crate) fn parse_month_start(text: &str) -> anyhow::Result<chrono::NaiveDate> {
    Ok(chrono::Datelike::with_day(&parse_as_of(text)?, 1).expect("day 1 exists"))
}

/// Runs `work` as a run of `kind` in the operational store: recorded as started, then as
/// succeeded with `summarize(result)` or as failed with the error the user saw.
pub(crate) fn recorded<T>(
    rt: &tokio::runtime::Runtime,
    store: &retain_store::Store,
    kind: &str,
    params: &serde_json::Value,
    work: impl FnOnce() -> anyhow::Result<T>,
    summarize: impl FnOnce(&T) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<T> {
    let run = rt.block_on(store.begin_run(kind, params))?;
    match work() {
        Ok(value) => {
            rt.block_on(store.finish_run(run, &summarize(&value)?))?;
            Ok(value)
        }
        Err(error) => {
            rt.block_on(store.fail_run(run, &format!("{error:#}")))?;
            Err(error)
        }
    }
}

/// A current-thread runtime for the async store and engine calls of one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
