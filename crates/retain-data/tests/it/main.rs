//! Ingest against the bad inputs operators actually send: each gives a clear error or
//! quarantined rows, and `read = loaded + quarantined` always holds.
//!
//! One test binary, so one link; its modules go by subject and share the helpers of `common`.

mod common;
mod keys;
mod properties;
mod rows;
mod sources;
mod wide;
