//! What retain's own campaigns teach the matching: every member whose outcome is known counted
//! into the offers' learning (`retain_offers::Learning`) by reason, offer kind and value tier,
//! treated against control. Rebuilt whole from the store each time, so an outcome counts once
//! however often the matching runs.

use std::collections::HashMap;

use retain_data::Workspace;
use retain_offers::{Cell, Learning};
use retain_store::Store;

use crate::error::Result;

/// Counts every campaign's known outcomes and writes the learning into the workspace.
pub async fn learn(store: &Store, workspace: &Workspace) -> Result<Learning> {
    let mut learning = Learning::default();
    for campaign in store.campaigns().await? {
        // A return is not a save: win-back outcomes teach nothing about keeping subscribers.
        if crate::winback::is_win_back(&campaign) {
            continue;
        }
        let outcomes = store.outcomes(campaign.id).await?;
        if outcomes.is_empty() {
            continue;
        }
        let churned: HashMap<i64, bool> = outcomes
            .iter()
            .map(|o| (o.subscriber_id, !o.retained))
            .collect();
        for m in store.members(campaign.id).await? {
            let Some(&left) = churned.get(&m.subscriber_id) else {
                continue;
            };
            let cell = Cell {
                reason: &m.reason,
                segment: &m.tier,
            };
            if m.arm == "control" {
                learning.observe_control(cell, left);
            } else {
                learning.observe_treated(cell, &m.offer_kind, left);
            }
        }
    }
    learning.save(workspace)?;
    Ok(learning)
}
