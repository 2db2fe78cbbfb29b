//! The analytical side of retain: workspace tables registered in Apache DataFusion, and the
//! queries that run over them.
//!
//! Every analytical step is a DataFusion plan or SQL over the Parquet tables, so the same
//! pipeline can later run on a cluster engine (Ballista) unchanged.
//!
//! ```no_run
//! # async fn f() -> retain_features::Result<()> {
//! let workspace = retain_data::Workspace::open("op".as_ref())?;
//! let ctx = retain_features::session(&workspace).await?;
//! let overview = retain_features::overview(&ctx).await?;
//! println!("{} active subscribers", overview.active);
//! # Ok(()) }
//! ```

pub mod conditions;
pub mod engine;
mod error;
pub mod expr;
pub mod frame;
mod labels;
pub mod outputs;
mod overview;
mod period;
mod ranged;
mod rows;
mod snapshot;
pub mod stored;

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use retain_data::{Table, Workspace};

/// The batches features come in.
pub use datafusion::arrow::array::RecordBatch;
pub use error::{Error, Result};
pub use labels::{LABELS_VIEW, LabelConfig, cut_offs_sql, labels_sql, register_labels};
pub use overview::{MonthSummary, Overview, overview};
pub use period::{Cadence, default_as_of, loaded_periods};
pub use rows::json_rows;
pub use snapshot::{
    DEFAULT_FEATURES, FeatureSet, FeatureStream, MAX_CAMPAIGN_CONTACTS, NETWORK_FEATURES,
    PartitionedFeatures, campaign_set, features_as_of, features_sql, observable_snapshots,
    stream_features_as_of, stream_features_partitioned, training_set,
};

/// A DataFusion session with every loaded table of the workspace registered under its
/// canonical name.
pub async fn session(workspace: &Workspace) -> Result<SessionContext> {
    partition_session(workspace, 0, 1).await
}

/// The session for partition `part` of `parts`: `whole` itself, as the caller set it up, when
/// there is one partition; else a [`partition_session`].
pub async fn session_for<'a>(
    whole: &'a SessionContext,
    workspace: &Workspace,
    part: u32,
    parts: u32,
) -> Result<std::borrow::Cow<'a, SessionContext>> {
    if parts <= 1 {
        return Ok(std::borrow::Cow::Borrowed(whole));
    }
    Ok(std::borrow::Cow::Owned(
        partition_session(workspace, part, parts).await?,
    ))
}

/// A session in which every table keyed by subscriber holds only the subscribers of partition
/// `part` of `parts`: the `part`-th of `parts` equal ranges of subscriber ids
/// ([`Workspace::subscriber_cuts`]); other tables (plans) are whole. Per-subscriber plans run
/// on it unchanged and see a `parts`-th of the operator: that is how their memory stays bounded
/// at any size. Ingest stores subscriber-keyed tables clustered by id range, so the engine
/// reads only the row groups of the partition's range.
pub async fn partition_session(
    workspace: &Workspace,
    part: u32,
    parts: u32,
) -> Result<SessionContext> {
    if parts <= 1 {
        return filtered_session(workspace, None, None, None).await;
    }
    let cuts = subscriber_cuts(workspace, parts)?;
    let part = usize::try_from(part).expect("a partition number fits");
    let lower = part.checked_sub(1).and_then(|i| cuts.get(i)).copied();
    let upper = cuts.get(part).copied();
    let condition = match (lower, upper) {
        (Some(lower), Some(upper)) => {
            format!("subscriber_id >= {lower} AND subscriber_id < {upper}")
        }
        (Some(lower), None) => format!("subscriber_id >= {lower}"),
        (None, Some(upper)) => format!("subscriber_id < {upper}"),
        (None, None) => "TRUE".to_owned(),
    };
    filtered_session(workspace, Some(&condition), None, Some((lower, upper))).await
}

/// [`Workspace::subscriber_cuts`], remembered for the stored subscribers file as it is now:
/// a partitioned pass asks once per partition, and the answer costs a read and a sort of
/// every subscriber id.
fn subscriber_cuts(workspace: &Workspace, parts: u32) -> Result<Arc<[i64]>> {
    type Cached = (
        std::path::PathBuf,
        Option<std::time::SystemTime>,
        u32,
        Arc<[i64]>,
    );
    static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);
    let path = workspace.table_file(Table::Subscribers);
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((p, m, n, cuts)) = cache.as_ref()
        && *p == path
        && *m == modified
        && *n == parts
    {
        return Ok(cuts.clone());
    }
    let cuts: Arc<[i64]> = workspace
        .subscriber_cuts(usize::try_from(parts).expect("a partition count fits"))?
        .into();
    *cache = Some((path, modified, parts, cuts.clone()));
    Ok(cuts)
}

/// Subscribers per feature partition: the engine's aggregation state for a million subscribers
/// is about 3 GiB, so a larger operator's features are computed a million subscribers at a time.
pub const SUBSCRIBERS_PER_PARTITION: u64 = 1_000_000;

/// How many partitions of the subscribers keep a per-subscriber plan within
/// [`SUBSCRIBERS_PER_PARTITION`] (1 for most operators).
pub fn feature_partitions(workspace: &Workspace) -> Result<u32> {
    let subscribers = workspace.table_rows(Table::Subscribers)?;
    Ok(u32::try_from(subscribers.div_ceil(SUBSCRIBERS_PER_PARTITION).max(1)).unwrap_or(u32::MAX))
}

/// Buckets of the subscriber sample: ids are hashed (a multiplication modulo a prime, which
/// spreads consecutive ids) into this many buckets and the first few are kept.
const SAMPLE_BUCKETS: u64 = 65_521;

/// A session that sees a fixed hash sample of about `max_subscribers` subscribers (all of them
/// when there are fewer), filtered at the tables like [`partition_session`], so plans over it
/// cost what the sample costs. Returns whether it samples.
pub async fn sample_session(
    workspace: &Workspace,
    max_subscribers: u64,
) -> Result<(SessionContext, bool)> {
    let total = workspace.table_rows(Table::Subscribers)?;
    if total <= max_subscribers {
        return Ok((session(workspace).await?, false));
    }
    tracing::info!(total, max_subscribers, "a hash sample of the subscribers");
    let condition = hash_sample(max_subscribers, total);
    Ok((
        filtered_session(workspace, Some(&condition), None, None).await?,
        true,
    ))
}

/// A condition on `subscriber_id` that keeps a fixed hash sample of about `keep` in `of`.
#[must_use]
pub fn hash_sample(keep: u64, of: u64) -> String {
    let buckets = (u128::from(SAMPLE_BUCKETS) * u128::from(keep)).div_ceil(u128::from(of.max(1)));
    format!("(subscriber_id % {SAMPLE_BUCKETS}) * 40503 % {SAMPLE_BUCKETS} < {buckets}")
}

/// A session in which every table keyed by subscriber holds only the rows whose `subscriber_id`
/// meets `condition` (SQL; it may query any table as `<table>__all`), for plans that concern a
/// known few, such as the subscribers of one campaign.
pub async fn subset_session(workspace: &Workspace, condition: &str) -> Result<SessionContext> {
    filtered_session(workspace, Some(condition), None, None).await
}

/// The rows of every table keyed by subscriber whose `subscriber_id` meets a condition, read
/// from the workspace once and held in memory: several plans over the same few subscribers
/// (one per past campaign) then cost what the few cost, instead of a scan of every table each.
pub struct Subset {
    tables: Vec<(Table, Arc<MemTable>)>,
}

impl Subset {
    /// Reads the rows meeting `condition` (SQL on `subscriber_id`; it may query any table as
    /// `<table>__all`).
    pub async fn read(workspace: &Workspace, condition: &str) -> Result<Subset> {
        let ctx = filtered_session(workspace, Some(condition), None, None).await?;
        let parts = ctx.copied_config().target_partitions().max(1);
        let mut tables = Vec::new();
        for table in Table::ALL {
            if !workspace.has_table(table) || !keyed_by_subscriber(table) {
                continue;
            }
            let frame = ctx
                .table(table.name())
                .await
                .map_err(|e| Error::engine(format!("reading a subset of {table}"), e))?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame
                .collect()
                .await
                .map_err(|e| Error::engine(format!("reading a subset of {table}"), e))?;
            // Dealt round-robin so that a scan of the subset runs on every core.
            let mut partitions = vec![Vec::new(); parts];
            for (i, batch) in batches.into_iter().enumerate() {
                partitions[i % parts].push(batch);
            }
            let memory = MemTable::try_new(schema, partitions)
                .map_err(|e| Error::engine(format!("holding a subset of {table}"), e))?;
            tables.push((table, Arc::new(memory)));
        }
        Ok(Subset { tables })
    }

    /// A session like [`subset_session`] whose subscriber-keyed tables hold the rows of this
    /// subset meeting `condition`.
    pub async fn session(&self, workspace: &Workspace, condition: &str) -> Result<SessionContext> {
        filtered_session(workspace, Some(condition), Some(self), None).await
    }
}

/// A query of no rows with the columns of `table`.
fn empty_select(table: Table) -> String {
    use datafusion::arrow::datatypes::DataType;
    let columns: Vec<String> = table
        .spec()
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Int64 => "BIGINT",
                DataType::Float64 => "DOUBLE",
                DataType::Date32 => "DATE",
                DataType::Boolean => "BOOLEAN",
                DataType::Timestamp(..) => "TIMESTAMP",
                _ => "VARCHAR",
            };
            format!("CAST(NULL AS {ty}) AS \"{}\"", f.name())
        })
        .collect();
    format!("SELECT {} WHERE false", columns.join(", "))
}

fn keyed_by_subscriber(table: Table) -> bool {
    table.spec().column_index("subscriber_id").is_some()
}

/// The condition on `subscriber_id` that a filtered session's subscriber-keyed tables meet,
/// kept with the session so that outputs registered into it later (segments, warnings, tags)
/// meet it too: a partition then reads its own subscribers' rows of them, not everyone's.
#[derive(Debug)]
pub(crate) struct SubscriberFilter(pub(crate) String);

/// A session in which every table keyed by subscriber holds the rows meeting `condition` (SQL
/// on `subscriber_id`), or everything when there is none; read from `subset` when given.
/// `range`: the bounds of a partition's subscriber ids, when `condition` is such a range; each
/// of its tables is then read over the bytes of the range's row groups only
/// ([`ranged::RangedTable`]).
///
/// The session runs on the chosen [`engine`]; one holding a subset runs embedded, as in-memory
/// tables do not travel to a cluster's nodes (a subset is a known few, read once).
async fn filtered_session(
    workspace: &Workspace,
    condition: Option<&str>,
    subset: Option<&Subset>,
    range: Option<(Option<i64>, Option<i64>)>,
) -> Result<SessionContext> {
    // The engine's options can be set for a run with `DATAFUSION_*` variables, as in
    // DataFusion's own tools (`DATAFUSION_EXECUTION_BATCH_SIZE=16384`): tuning without a build.
    let mut config = SessionConfig::from_env()
        .map_err(|e| Error::engine("reading the DATAFUSION_* settings", e))?
        .with_information_schema(true);
    if let Some(condition) = condition {
        config = config.with_extension(Arc::new(SubscriberFilter(condition.to_owned())));
    }
    let cluster = engine::cluster().filter(|_| subset.is_none());
    // A cluster scans the whole file split among its executors: the ranged reading is how one
    // machine's threads share a partition's row groups.
    let range = range.filter(|_| cluster.is_none());
    if std::env::var_os("DATAFUSION_EXECUTION_TARGET_PARTITIONS").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        // A partition's plan with twice as many streams as cores: at 10M subscribers warning
        // took 87 s in ten partitions with one stream a core and 36 s with two, features 149 s
        // and 59 s. A whole operator's plan gains nothing from it (docs/scaling.md).
        let streams = if range.is_some() { 2 * cores } else { cores };
        config = config.with_target_partitions(streams);
    }
    let ctx = match cluster {
        Some(cluster) => cluster.session(config)?,
        None => SessionContext::new_with_config(config),
    };
    if let Some(subset) = subset {
        for (table, memory) in &subset.tables {
            ctx.register_table(format!("{}__subset", table.name()), memory.clone())
                .map_err(|e| Error::engine(format!("registering a subset of {table}"), e))?;
        }
    }
    let tables: Vec<Table> = Table::ALL
        .into_iter()
        .filter(|t| workspace.has_table(*t))
        .collect();
    let filtered = |table: &Table| condition.is_some() && keyed_by_subscriber(*table);
    for table in &tables {
        let path = workspace.table_file(*table);
        // Family and group sizes count across subscribers: `<table>__all` is the whole table in
        // any session.
        let mut names = vec![format!("{}__all", table.name())];
        if !filtered(table) {
            names.push(table.name().to_owned());
        }
        for name in &names {
            ctx.register_parquet(
                name.as_str(),
                path.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| Error::engine(format!("registering {table}"), e))?;
        }
    }
    // The network's tables are optional: an operator without probes or call records still
    // gets every feature, those reading them empty.
    for table in [Table::Cells, Table::NetworkWeekly, Table::CallingCircle] {
        if workspace.has_table(table) {
            continue;
        }
        let empty = empty_select(table);
        for name in [table.name().to_owned(), format!("{}__all", table.name())] {
            ctx.sql(&format!("CREATE VIEW {name} AS {empty}"))
                .await
                .map_err(|e| Error::engine(format!("registering an empty {table}"), e))?;
        }
    }
    // Views come after every table, as a condition may query any of them.
    for table in tables.iter().filter(|t| filtered(t)) {
        if let Some(condition) = condition {
            // A subset holds every subscriber-keyed table: it was read through such a session.
            let all = if subset.is_some() {
                format!("{}__subset", table.name())
            } else if let Some((lower, upper)) = range
                && let Some(bytes) =
                    ranged::row_group_bytes(&workspace.table_file(*table), lower, upper)?
            {
                let name = format!("{}__range", table.name());
                let whole = ctx
                    .table_provider(format!("{}__all", table.name()))
                    .await
                    .map_err(|e| Error::engine(format!("registering {table}"), e))?;
                ctx.register_table(
                    name.as_str(),
                    Arc::new(ranged::RangedTable::new(whole, bytes)),
                )
                .map_err(|e| Error::engine(format!("registering {table}"), e))?;
                name
            } else {
                format!("{}__all", table.name())
            };
            let view = format!("CREATE VIEW {table} AS SELECT * FROM {all} WHERE {condition}");
            ctx.sql(&view)
                .await
                .map_err(|e| Error::engine(format!("partitioning {table}"), e))?;
        }
    }
    Ok(ctx)
}
