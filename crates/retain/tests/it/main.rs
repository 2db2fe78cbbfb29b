//! The command-line interface that outside checks rely on, run as a user would run it.

mod backup;
mod campaigns;
mod champion;
mod cluster;
mod cohorts;
mod common;
mod demo;
mod load;
mod network;
mod reasons;
mod runtime;
mod schedule;
mod simulate;
mod users;
