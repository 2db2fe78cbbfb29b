//! `retain customer ID`: the 360 view of one subscriber.

use std::path::PathBuf;

use retain_data::Workspace;

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Subscriber id.
    pub id: i64,
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Print one JSON object (the default output is the same object, indented).
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = Workspace::open(&args.dir)?;
    let rt = super::runtime()?;
    let (view, msisdn) = rt.block_on(async {
        let ctx = retain_features::session(&workspace).await?;
        let view = retain_segment::customer_360(&ctx, &workspace, args.id.into()).await?;
        let msisdn = retain_offers::msisdn_map(&ctx).await?;
        Ok::<_, anyhow::Error>((view, msisdn))
    })?;
    let Some(view) = view else {
        anyhow::bail!("subscriber {} is not in this workspace", args.id);
    };
    let answer = CustomerView {
        recommendations: recommendations(&workspace, msisdn, args.id)?,
        view,
    };
    if args.json {
        output::print_json(&answer)
    } else {
        output::print_text(&serde_json::to_string_pretty(&answer)?);
        Ok(())
    }
}

/// The 360 view with the offers a counter would make now.
#[derive(serde::Serialize)]
struct CustomerView {
    #[serde(flatten)]
    view: retain_segment::Customer360,
    recommendations: serde_json::Value,
}

/// The subscriber's ranked offers from the latest match run, as a real-time decision at the
/// counter would give them now.
fn recommendations(
    workspace: &Workspace,
    msisdn: std::collections::HashMap<String, i64>,
    id: i64,
) -> anyhow::Result<serde_json::Value> {
    let Some(dir) = retain_offers::latest_run_dir(workspace) else {
        return Ok(serde_json::json!({
            "available": false,
            "note": "no offer matching yet (retain match --budget AMOUNT)",
        }));
    };
    let index = retain_offers::DecisionIndex::load(&dir, msisdn)?;
    let now = chrono::Local::now().naive_local();
    let decision = index.decide(&id.to_string(), now, None);
    let mut value = serde_json::to_value(decision)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("available".into(), true.into());
    }
    Ok(value)
}
