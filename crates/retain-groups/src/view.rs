//! Group 360 (集团视图): one group's members, key people, products and visits, read with the
//! group's id as a value, never spliced into SQL.

use datafusion::execution::context::SessionContext;
use datafusion::prelude::{col, lit};
use retain_data::{Table, Workspace};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The most members a view lists; the group's size says how many there are.
pub const MAX_MEMBERS: usize = 500;

/// Everything the data holds about one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    /// The `groups` row.
    pub group: Map<String, Value>,
    pub members_total: u64,
    /// Current members first, then by id; at most [`MAX_MEMBERS`].
    pub members: Vec<Map<String, Value>>,
    pub key_people: Vec<Map<String, Value>>,
    pub products: Vec<Map<String, Value>>,
    /// Newest first.
    pub visits: Vec<Map<String, Value>>,
}

async fn rows(
    ctx: &SessionContext,
    workspace: &Workspace,
    table: Table,
    group_id: &str,
    columns: &[&str],
    order: Vec<datafusion::logical_expr::SortExpr>,
    limit: Option<usize>,
) -> Result<Vec<Map<String, Value>>> {
    if !workspace.has_table(table) {
        return Ok(Vec::new());
    }
    let what = || format!("reading {table} of group {group_id:?}");
    let frame = ctx
        .table(table.name())
        .await
        .and_then(|f| f.filter(col("group_id").eq(lit(group_id))))
        .and_then(|f| f.select_columns(columns))
        .and_then(|f| f.sort(order))
        .and_then(|f| f.limit(0, limit))
        .map_err(|e| Error::engine(what(), e))?;
    let batches = frame
        .collect()
        .await
        .map_err(|e| Error::engine(what(), e))?;
    Ok(retain_features::json_rows(&batches))
}

/// The view of `group_id`, or `None` when no such group is loaded.
pub async fn group_view(
    ctx: &SessionContext,
    workspace: &Workspace,
    group_id: &str,
) -> Result<Option<GroupView>> {
    let group = rows(
        ctx,
        workspace,
        Table::Groups,
        group_id,
        &Table::Groups.spec().csv_header(),
        vec![col("group_id").sort(true, false)],
        Some(1),
    )
    .await?;
    let Some(group) = group.into_iter().next() else {
        return Ok(None);
    };
    let members_total = if workspace.has_table(Table::Subscribers) {
        ctx.table("subscribers")
            .await
            .and_then(|f| f.filter(col("group_id").eq(lit(group_id))))
            .map_err(|e| Error::engine("counting a group's members", e))?
            .count()
            .await
            .map_err(|e| Error::engine("counting a group's members", e))? as u64
    } else {
        0
    };
    let members = rows(
        ctx,
        workspace,
        Table::Subscribers,
        group_id,
        &[
            "subscriber_id",
            "msisdn",
            "join_date",
            "plan_id",
            "status",
            "status_date",
            "manager_id",
        ],
        vec![
            col("status").sort(true, false),
            col("subscriber_id").sort(true, false),
        ],
        Some(MAX_MEMBERS),
    )
    .await?;
    let key_people = rows(
        ctx,
        workspace,
        Table::GroupKeyPeople,
        group_id,
        &["person_id", "role", "subscriber_id", "title"],
        vec![
            col("role").sort(true, false),
            col("person_id").sort(true, false),
        ],
        Some(MAX_MEMBERS),
    )
    .await?;
    let products = rows(
        ctx,
        workspace,
        Table::GroupProducts,
        group_id,
        &[
            "product_id",
            "kind",
            "monthly_fee",
            "start_date",
            "end_date",
            "status",
        ],
        vec![col("product_id").sort(true, false)],
        Some(MAX_MEMBERS),
    )
    .await?;
    let visits = rows(
        ctx,
        workspace,
        Table::GroupVisits,
        group_id,
        &[
            "visit_id",
            "manager_id",
            "visit_date",
            "channel",
            "outcome",
            "notes",
        ],
        vec![
            col("visit_date").sort(false, false),
            col("visit_id").sort(true, false),
        ],
        Some(MAX_MEMBERS),
    )
    .await?;
    Ok(Some(GroupView {
        group,
        members_total,
        members,
        key_people,
        products,
        visits,
    }))
}
