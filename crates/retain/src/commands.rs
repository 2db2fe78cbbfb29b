//! One module per subcommand.

pub(crate) mod customer;
pub(crate) mod demo;
pub(crate) mod features;
pub(crate) mod ingest;
pub(crate) mod segment;
pub(crate) mod status;
pub(crate) mod synth;
pub(crate) mod target;
pub(crate) mod warn;

/// A current-thread runtime for the async store and engine calls of one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
