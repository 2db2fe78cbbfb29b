//! `retain train` and `retain score` in a build without the churn model.

pub(crate) use super::model_args::{Args, ScoreArgs};

const UNAVAILABLE: &str = "this retain was built without the churn model: build with `--features model` \
     (LightGBM needs clang, libclang-dev and CMake >= 3.28; `.ci/run` shows how to install them)";

pub(crate) fn run(_: &Args) -> anyhow::Result<()> {
    anyhow::bail!(UNAVAILABLE)
}

pub(crate) fn score(_: &ScoreArgs) -> anyhow::Result<()> {
    anyhow::bail!(UNAVAILABLE)
}

pub(crate) fn model(_: &super::model_args::ModelArgs) -> anyhow::Result<()> {
    anyhow::bail!(UNAVAILABLE)
}
