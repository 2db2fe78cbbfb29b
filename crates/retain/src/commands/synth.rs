//! `retain synth`: write a synthetic operator.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::output;

/// The shape of a synthetic operator, shared by `synth` and `demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct OperatorArgs {
    /// Subscribers to generate.
    #[arg(long, default_value_t = 100_000)]
    pub subscribers: u64,
    /// Months of history.
    #[arg(long, default_value_t = 18)]
    pub months: u32,
    /// Random seed: the same seed gives the same operator, byte for byte.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Leave the network's weekly experience and the monthly call records out of the export:
    /// most of its rows at scale. The operator, and its truth, are the same.
    #[arg(long)]
    pub without_network: bool,
}

impl OperatorArgs {
    pub(crate) fn params(&self) -> retain_synth::SynthParams {
        retain_synth::SynthParams {
            subscribers: self.subscribers,
            months: self.months,
            seed: self.seed,
            network: !self.without_network,
            ..retain_synth::SynthParams::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// Output directory for the canonical CSV files (the truth goes to OUT/truth).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let params = args.operator.params();
    let summary = retain_synth::synthesize(&params, &args.out, &args.out.join("truth"))
        .with_context(|| format!("synthesizing into {}", args.out.display()))?;
    if args.json {
        return output::print_json(&serde_json::json!({
            "summary": summary,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    let c = &summary.counts;
    output::print_text(&format!(
        "synthetic operator (seed {}) {}–{} written to {} in {:.1}s\n  \
         {} subscribers, {} contracts, {} monthly and {} weekly usage rows, {} events, {} campaign contacts\n  \
         {} cells ({} degrading), {} weekly network rows, {} call records ({} circle waves)\n  \
         truth: {} quantity and {} value churners, {} saved by campaigns → {}",
        summary.seed,
        summary.first_month,
        summary.last_month,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        c.subscribers,
        c.contracts,
        c.usage_monthly,
        c.usage_weekly,
        c.events,
        c.campaign_history,
        c.cells,
        c.degraded_cells,
        c.network_weekly,
        c.calling_circle,
        c.circle_waves,
        c.quantity_churners,
        c.value_churners,
        c.saved_by_campaigns,
        summary.truth_dir.display()
    ));
    Ok(())
}
