//! Where subscribers live on the network and whom they call (基站归属与交往圈): the home cell and
//! its district, calling circles found in the call graph with their leaders, and the churn of
//! both.
//!
//! A circle is a community of the on-net call graph of the last [`GRAPH_MONTHS`] months, found
//! by label propagation: each subscriber takes the label most of its calls go to, until no
//! label changes. It is linear in the calls per round, needs no count of communities, and a
//! cap on a label's members keeps one busy hub from absorbing a city. A circle's leader is the
//! member whose calls to the others weigh most: retaining it keeps the circle's centre.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, Duration, Months, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::execution::context::SessionContext;
use retain_data::{Table, Workspace};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Months of call records the call graph reads.
pub const GRAPH_MONTHS: u32 = 6;
/// Calls over the graph's months below which a pair is not a tie: a wrong number or a single
/// delivery call says nothing about whom one follows.
pub const MIN_TIE_CALLS: f64 = 3.0;
/// The most members a circle takes.
pub const MAX_CIRCLE: u32 = 50;
/// Rounds of label propagation at most: real call graphs settle in a handful.
const MAX_ROUNDS: usize = 20;
/// A circle where at least this share of members left in the last three months is in a wave of
/// defection (the `circle_in_wave` tag reads the same figure).
pub const WAVE_RATE: f64 = 0.3;
/// A subscriber whose churn probability is at least this is counted at risk on the cell map (the
/// warning list's yellow line).
const AT_RISK: f64 = 0.3;

/// The circles' file under `segments/`: one row per member of a circle.
pub(crate) const CIRCLES_FILE: &str = "circles.parquet";
/// The cells' file under `segments/`: one row per cell with its subscribers, churn and risk.
pub(crate) const CELLS_FILE: &str = "cells.parquet";

/// Where the circles of the latest segmentation are.
#[must_use]
pub fn circles_file(workspace: &Workspace) -> PathBuf {
    segments_dir(workspace).join(CIRCLES_FILE)
}

/// Where the cells of the latest segmentation are.
#[must_use]
pub fn cells_file(workspace: &Workspace) -> PathBuf {
    segments_dir(workspace).join(CELLS_FILE)
}

fn segments_dir(workspace: &Workspace) -> PathBuf {
    retain_features::outputs::segments_file(workspace)
        .parent()
        .map_or_else(|| workspace.root().join("segments"), Path::to_path_buf)
}

/// The view of every subscriber's home cell and district as of the run, which the segments
/// table joins.
pub(crate) const HOME: &str = "segment_home";
/// The circles' file as the segments table joins it.
pub(crate) const CIRCLES: &str = "segment_circles";

/// The network's part of the segmentation report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkSegments {
    /// Cells with at least one subscriber at home.
    pub cells: u64,
    /// Active subscribers with a home cell.
    pub homed: u64,
    pub circles: u64,
    /// Subscribers in a circle (those who left in the last three months included).
    pub members: u64,
    pub mean_circle_size: f64,
    /// Circles where at least [`WAVE_RATE`] of the members left in the last three months.
    pub circles_in_wave: u64,
    /// Share of circle members who left in the last three months.
    pub circle_churn_rate: f64,
    /// Share of the subscribers outside any circle who left in the same months.
    pub outside_churn_rate: Option<f64>,
    /// Share of leaders still on the network who are at risk (churn probability ≥ 0.3).
    pub leaders_at_risk: Option<f64>,
    /// Per district, by churn rate, highest first.
    pub districts: Vec<District>,
}

/// A district's subscribers, churn and risk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct District {
    pub district: String,
    pub cells: u64,
    pub subscribers: u64,
    pub churned_3m: u64,
    pub churn_rate: f64,
    /// Mean churn probability of its active subscribers; null without scores.
    pub mean_risk: Option<f64>,
    pub at_risk: u64,
    /// Cells whose churn rate is at least twice the network's.
    pub hot_cells: u64,
}

/// The on-net call graph: subscribers in id order, their ties and the ties' calls.
#[derive(Debug, Default)]
pub struct Graph {
    ids: Vec<i64>,
    offsets: Vec<usize>,
    peers: Vec<u32>,
    calls: Vec<f32>,
}

impl Graph {
    /// The graph of `pairs` (a, b, calls), each pair in either direction or both, repeats summed;
    /// ties below [`MIN_TIE_CALLS`] and calls to oneself are left out.
    #[must_use]
    pub fn from_pairs(mut pairs: Vec<(i64, i64, f64)>) -> Graph {
        for p in &mut pairs {
            if p.0 > p.1 {
                std::mem::swap(&mut p.0, &mut p.1);
            }
        }
        pairs.retain(|p| p.0 != p.1 && p.2.is_finite() && p.2 > 0.0);
        pairs.sort_unstable_by_key(|p| (p.0, p.1));
        let mut ties: Vec<(i64, i64, f64)> = Vec::with_capacity(pairs.len());
        for (a, b, calls) in pairs {
            match ties.last_mut() {
                Some(last) if last.0 == a && last.1 == b => last.2 += calls,
                _ => ties.push((a, b, calls)),
            }
        }
        ties.retain(|t| t.2 >= MIN_TIE_CALLS);
        let mut ids: Vec<i64> = ties.iter().flat_map(|t| [t.0, t.1]).collect();
        ids.sort_unstable();
        ids.dedup();
        let index = |id: i64| u32::try_from(ids.binary_search(&id).expect("listed")).expect("fits");
        let mut degree = vec![0usize; ids.len() + 1];
        for t in &ties {
            degree[index(t.0) as usize + 1] += 1;
            degree[index(t.1) as usize + 1] += 1;
        }
        for i in 1..degree.len() {
            degree[i] += degree[i - 1];
        }
        let offsets = degree;
        let mut fill = offsets.clone();
        let mut peers = vec![0u32; 2 * ties.len()];
        let mut calls = vec![0f32; 2 * ties.len()];
        for t in &ties {
            let (a, b) = (index(t.0), index(t.1));
            for (from, to) in [(a, b), (b, a)] {
                let slot = &mut fill[from as usize];
                peers[*slot] = to;
                calls[*slot] = t.2 as f32;
                *slot += 1;
            }
        }
        Graph {
            ids,
            offsets,
            peers,
            calls,
        }
    }

    /// Subscribers with at least one tie.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    #[must_use]
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    fn ties(&self, node: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let range = self.offsets[node]..self.offsets[node + 1];
        self.peers[range.clone()]
            .iter()
            .copied()
            .zip(self.calls[range].iter().copied())
    }
}

/// The communities of `graph`: per subscriber (in the graph's order), the index of its
/// community's label, the same for all members; labels are node indices. Deterministic: nodes
/// are visited in an order drawn from their ids, and ties between labels go to the current
/// label, then the smallest.
#[must_use]
pub fn communities(graph: &Graph, max_size: u32) -> Vec<u32> {
    let n = graph.len();
    let mut label: Vec<u32> = (0..n).map(|i| u32::try_from(i).expect("fits")).collect();
    let mut members = vec![1u32; n];
    let mut order: Vec<u32> = label.clone();
    order.sort_unstable_by_key(|&i| (mix(graph.ids[i as usize]), i));
    let mut weights: Vec<(u32, f32)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let mut changed = 0usize;
        for &node in &order {
            let node = node as usize;
            weights.clear();
            weights.extend(graph.ties(node).map(|(p, c)| (label[p as usize], c)));
            if weights.is_empty() {
                continue;
            }
            weights.sort_unstable_by_key(|w| w.0);
            let current = label[node];
            let mut best = (current, f32::NEG_INFINITY);
            let mut at = 0;
            while at < weights.len() {
                let l = weights[at].0;
                let mut sum = 0f32;
                while at < weights.len() && weights[at].0 == l {
                    sum += weights[at].1;
                    at += 1;
                }
                if l != current && members[l as usize] >= max_size {
                    continue;
                }
                // Calls are whole numbers: equal sums are true ties.
                let better = match sum.total_cmp(&best.1) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => l == current || (best.0 != current && l < best.0),
                    std::cmp::Ordering::Less => false,
                };
                if better {
                    best = (l, sum);
                }
            }
            if best.0 != current && best.1 > f32::NEG_INFINITY {
                members[current as usize] -= 1;
                members[best.0 as usize] += 1;
                label[node] = best.0;
                changed += 1;
            }
        }
        if changed == 0 {
            break;
        }
    }
    label
}

/// SplitMix64's finalizer: a visiting order that does not follow the ids' (consecutive ids
/// are often one family or one shop's sales).
fn mix(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether a subscriber in the graph is still on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    /// Left in the last three months.
    LeftRecently,
    /// Left before: not counted in any circle.
    Gone,
}

/// A member's row in the circles' file.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub subscriber_id: i64,
    /// The circle's id: its smallest member's subscriber id.
    pub circle: i64,
    pub circle_size: u32,
    pub circle_left_3m: u32,
    pub circle_churn_rate: f64,
    pub leader: bool,
    /// Calls with the circle's other members over the graph's months.
    pub calls: f64,
    pub left_3m: bool,
}

/// The circles of `graph` from its communities, counting only those who were on the network
/// three months ago; a community with fewer than two such members is no circle.
#[must_use]
pub fn circles(graph: &Graph, labels: &[u32], standing: &[Standing]) -> Vec<Member> {
    let n = graph.len();
    let counted = |i: usize| standing[i] != Standing::Gone;
    let mut strength = vec![0f64; n];
    for (node, s) in strength.iter_mut().enumerate() {
        *s = graph
            .ties(node)
            .filter(|(p, _)| labels[*p as usize] == labels[node] && counted(*p as usize))
            .map(|(_, c)| f64::from(c))
            .sum();
    }
    // Per label: members, leavers, smallest id and leader (most calls, then smallest id).
    let mut groups: BTreeMap<u32, (u32, u32, i64, usize)> = BTreeMap::new();
    for node in (0..n).filter(|&i| counted(i)) {
        let g = groups
            .entry(labels[node])
            .or_insert((0, 0, graph.ids[node], node));
        g.0 += 1;
        g.1 += u32::from(standing[node] == Standing::LeftRecently);
        g.2 = g.2.min(graph.ids[node]);
        if strength[node] > strength[g.3] {
            g.3 = node;
        }
    }
    (0..n)
        .filter(|&i| counted(i))
        .filter_map(|node| {
            let &(size, left, circle, leader) = groups.get(&labels[node])?;
            (size >= 2).then(|| Member {
                subscriber_id: graph.ids[node],
                circle,
                circle_size: size,
                circle_left_3m: left,
                circle_churn_rate: f64::from(left) / f64::from(size),
                leader: leader == node,
                calls: strength[node],
                left_3m: standing[node] == Standing::LeftRecently,
            })
        })
        .collect()
}

/// Millionths: the unit of the cells' sums.
const MICRO: f64 = 1e6;

/// `x` to `digits` decimals.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

fn timestamp(d: NaiveDate) -> String {
    format!("TIMESTAMP '{d}T00:00:00'")
}

fn engine(what: &str) -> impl Fn(datafusion::error::DataFusionError) -> Error + '_ {
    move |e| Error::engine(what, e)
}

/// The first day of the month of `d`.
fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

/// The network's segmentation as of `as_of`: registers the home cells ([`HOME`]) and the
/// circles ([`CIRCLES`]) for the segments table to join, writes the circles' and the cells'
/// files, and sums them up; `None` when the workspace holds neither cells nor call records.
/// `scores` names the registered churn scores, if any.
pub(crate) async fn segment_network(
    ctx: &SessionContext,
    workspace: &Workspace,
    as_of: NaiveDate,
    scores: Option<&str>,
) -> Result<Option<NetworkSegments>> {
    let dir = segments_dir(workspace);
    let from3 = as_of.checked_sub_months(Months::new(3)).unwrap_or(as_of);
    let week_cut = as_of - Duration::days(i64::from(as_of.weekday().num_days_from_monday()));
    // Leavers of the last three months still have their last weeks in these 16.
    let home_from = week_cut - Duration::days(16 * 7);
    let _ = ctx.deregister_table(HOME);
    let located = workspace.has_table(Table::NetworkWeekly) && workspace.has_table(Table::Cells);
    if located {
        ctx.sql(&format!(
            "CREATE VIEW {HOME} AS
         SELECT h.subscriber_id, h.cell AS home_cell, c.district
         FROM (SELECT subscriber_id, last_value(home_cell ORDER BY week) AS cell
               FROM network_weekly
               WHERE week >= {} AND week < {} AND home_cell IS NOT NULL
               GROUP BY subscriber_id) h
         LEFT JOIN cells c ON c.cell_id = h.cell",
            date(home_from),
            date(week_cut)
        ))
        .await
        .map_err(engine("registering the home cells"))?;
    } else {
        // An empty table, not a view over the empty stand-ins of absent tables: the optimizer
        // trips over the stand-ins' constant columns once the segments table joins them.
        let schema = Arc::new(Schema::new(vec![
            Field::new("subscriber_id", DataType::Int64, false),
            Field::new("home_cell", DataType::Utf8, true),
            Field::new("district", DataType::Utf8, true),
        ]));
        let empty = datafusion::datasource::MemTable::try_new(schema, vec![Vec::new()])
            .map_err(engine("registering the home cells"))?;
        ctx.register_table(HOME, Arc::new(empty))
            .map_err(engine("registering the home cells"))?;
    }

    let graph = read_graph(ctx, as_of).await?;
    let standing = standing(ctx, &graph, from3, as_of).await?;
    let labels = communities(&graph, MAX_CIRCLE);
    let members = circles(&graph, &labels, &standing);
    let circles_path = circles_file(workspace);
    write_members(&circles_path, &members)?;
    let _ = ctx.deregister_table(CIRCLES);
    ctx.register_parquet(
        CIRCLES,
        &*circles_path.to_string_lossy(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .map_err(engine("reading the circles"))?;

    if !workspace.has_table(Table::Cells) && !workspace.has_table(Table::CallingCircle) {
        let _ = std::fs::remove_file(cells_file(workspace));
        return Ok(None);
    }
    let cells = if workspace.has_table(Table::Cells) {
        write_cells(
            ctx,
            &dir,
            &cells_file(workspace),
            from3,
            as_of,
            week_cut,
            scores,
        )
        .await?
    } else {
        // Circles without cells: nothing to place on a map.
        write_cells_file(&dir, &cells_file(workspace), &[])?;
        Vec::new()
    };
    let leaders_at_risk = match scores {
        Some(scores) => leaders_at_risk(ctx, scores).await?,
        None => None,
    };
    let mut summary = summarize(&members, &cells);
    summary.outside_churn_rate = outside_churn_rate(ctx, from3, as_of).await?;
    summary.leaders_at_risk = leaders_at_risk;
    Ok(Some(summary))
}

/// The on-net ties of the graph's months before `as_of`.
async fn read_graph(ctx: &SessionContext, as_of: NaiveDate) -> Result<Graph> {
    let cut = month_start(as_of);
    let lo = cut
        .checked_sub_months(Months::new(GRAPH_MONTHS))
        .unwrap_or(cut);
    let sql = format!(
        "SELECT subscriber_id, peer_id, CAST(SUM(calls) AS DOUBLE) AS calls FROM calling_circle
         WHERE peer_id IS NOT NULL AND month >= {} AND month < {}
         GROUP BY subscriber_id, peer_id",
        date(lo),
        date(cut)
    );
    let batches = retain_features::frame::query(ctx, &sql, "the call graph").await?;
    let mut pairs = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for b in &batches {
        let (a, p, c) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        for row in 0..b.num_rows() {
            if !a.is_null(row) && !p.is_null(row) && !c.is_null(row) {
                pairs.push((a.value(row), p.value(row), c.value(row)));
            }
        }
    }
    Ok(Graph::from_pairs(pairs))
}

/// Who in the graph left, and when: before `from3`, between it and `as_of`, or not at all.
async fn standing(
    ctx: &SessionContext,
    graph: &Graph,
    from3: NaiveDate,
    as_of: NaiveDate,
) -> Result<Vec<Standing>> {
    let mut standing = vec![Standing::Active; graph.len()];
    if graph.is_empty() {
        return Ok(standing);
    }
    let sql = format!(
        "SELECT subscriber_id, MIN(\"timestamp\") >= {} AS recent FROM events
         WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" < {}
         GROUP BY subscriber_id",
        timestamp(from3),
        timestamp(as_of)
    );
    for b in &retain_features::frame::query(ctx, &sql, "the leavers").await? {
        let (ids, recent) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_boolean(),
        );
        for row in 0..b.num_rows() {
            if ids.is_null(row) {
                continue;
            }
            if let Ok(i) = graph.ids.binary_search(&ids.value(row)) {
                standing[i] = if !recent.is_null(row) && recent.value(row) {
                    Standing::LeftRecently
                } else {
                    Standing::Gone
                };
            }
        }
    }
    Ok(standing)
}

fn members_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("subscriber_id", DataType::Int64, false),
        Field::new("circle", DataType::Int64, false),
        Field::new("circle_size", DataType::Int64, false),
        Field::new("circle_left_3m", DataType::Int64, false),
        Field::new("circle_churn_rate", DataType::Float64, false),
        Field::new("circle_leader", DataType::Boolean, false),
        Field::new("circle_calls", DataType::Float64, false),
        Field::new("left_3m", DataType::Boolean, false),
    ]))
}

/// Writes the circles' members in subscriber order, under a temporary name renamed into place
/// once complete; an empty file (the columns, no rows) without circles.
fn write_members(path: &Path, members: &[Member]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let partial = path.with_extension(format!("parquet.{}.writing", std::process::id()));
    let schema = members_schema();
    let mut writer = retain_data::TableWriter::create(&partial, schema.clone())?;
    for chunk in members.chunks(1 << 16) {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                chunk.iter().map(|m| m.subscriber_id),
            )),
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|m| m.circle))),
            Arc::new(Int64Array::from_iter_values(
                chunk.iter().map(|m| i64::from(m.circle_size)),
            )),
            Arc::new(Int64Array::from_iter_values(
                chunk.iter().map(|m| i64::from(m.circle_left_3m)),
            )),
            Arc::new(Float64Array::from_iter_values(
                chunk.iter().map(|m| m.circle_churn_rate),
            )),
            Arc::new(
                chunk
                    .iter()
                    .map(|m| Some(m.leader))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(Float64Array::from_iter_values(
                chunk.iter().map(|m| m.calls),
            )),
            Arc::new(
                chunk
                    .iter()
                    .map(|m| Some(m.left_3m))
                    .collect::<BooleanArray>(),
            ),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("building the circles: {e}")))?;
        writer.write(&batch)?;
    }
    writer.close()?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// A cell's line of the cells' file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    pub cell_id: String,
    pub latitude: f64,
    pub longitude: f64,
    pub district: Option<String>,
    pub technology: Option<String>,
    /// Active subscribers at home on it.
    pub subscribers: u64,
    pub churned_3m: u64,
    /// Leavers of the last three months over them and the active.
    pub churn_rate: f64,
    /// Share of its active subscribers who complained in the last three months.
    pub complaint_rate: f64,
    /// Mean churn probability of its active subscribers; null without scores.
    pub mean_risk: Option<f64>,
    /// Active subscribers with a churn probability of at least 0.3.
    pub at_risk: u64,
    /// Means of its subscribers' last four weeks.
    pub dropped_call_rate_4w: Option<f64>,
    pub weak_coverage_4w: Option<f64>,
    pub data_stall_4w: Option<f64>,
    /// The sum of its scored subscribers' churn probabilities in millionths, and how many:
    /// what a district's mean is summed from, exactly.
    #[serde(skip)]
    risk_micros: (i64, u64),
}

/// Computes and writes the cells' file; returns its lines.
async fn write_cells(
    ctx: &SessionContext,
    dir: &Path,
    path: &Path,
    from3: NaiveDate,
    as_of: NaiveDate,
    week_cut: NaiveDate,
    scores: Option<&str>,
) -> Result<Vec<Cell>> {
    let (probability, scored) = match scores {
        Some(table) => (
            "sc.probability",
            format!(" LEFT JOIN {table} sc ON sc.subscriber_id = h.subscriber_id"),
        ),
        None => ("CAST(NULL AS DOUBLE)", String::new()),
    };
    let sql = format!(
        "WITH gone AS (
             SELECT subscriber_id, MIN(\"timestamp\") AS left_at FROM events
             WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" < {to}
             GROUP BY subscriber_id
         ),
         complained AS (
             SELECT DISTINCT subscriber_id FROM events
             WHERE kind = 'complaint' AND \"timestamp\" >= {from} AND \"timestamp\" < {to}
         ),
         kpi AS (
             SELECT subscriber_id, AVG(dropped_call_rate) AS dropped,
                    AVG(CAST(weak_coverage_minutes AS DOUBLE)) AS weak,
                    AVG(CAST(data_stall_seconds AS DOUBLE)) AS stall
             FROM network_weekly WHERE week >= {w4} AND week < {week} GROUP BY subscriber_id
         ),
         homed AS (
             SELECT h.home_cell AS cell, g.left_at, cm.subscriber_id IS NOT NULL AS complained,
                    {probability} AS probability,
                    CAST(ROUND({probability} * {MICRO}) AS BIGINT) AS risk_u,
                    CAST(ROUND(k.dropped * {MICRO}) AS BIGINT) AS dropped_u,
                    CAST(ROUND(k.weak * {MICRO}) AS BIGINT) AS weak_u,
                    CAST(ROUND(k.stall * {MICRO}) AS BIGINT) AS stall_u
             FROM {HOME} h
             LEFT JOIN gone g ON g.subscriber_id = h.subscriber_id
             LEFT JOIN complained cm ON cm.subscriber_id = h.subscriber_id
             LEFT JOIN kpi k ON k.subscriber_id = h.subscriber_id{scored}
             WHERE g.left_at IS NULL OR g.left_at >= {from}
         )
         SELECT c.cell_id, c.latitude, c.longitude, c.district, c.technology,
                CAST(COUNT(CASE WHEN g.cell IS NOT NULL AND g.left_at IS NULL THEN 1 END) AS BIGINT) AS subscribers,
                CAST(COUNT(g.left_at) AS BIGINT) AS churned_3m,
                CAST(COUNT(CASE WHEN g.left_at IS NULL AND g.complained THEN 1 END) AS BIGINT) AS complainers,
                CAST(COUNT(CASE WHEN g.left_at IS NULL AND g.probability >= {AT_RISK} THEN 1 END) AS BIGINT) AS at_risk,
                {sums}
         FROM cells c LEFT JOIN homed g ON g.cell = c.cell_id
         GROUP BY c.cell_id, c.latitude, c.longitude, c.district, c.technology
         ORDER BY c.cell_id",
        to = timestamp(as_of),
        from = timestamp(from3),
        w4 = date(week_cut - Duration::days(28)),
        week = date(week_cut),
        // Sums of whole millionths, not means of floats: a sum of integers is the same in any
        // order, so one machine and a cluster's executors agree to the digit.
        sums = ["risk", "dropped", "weak", "stall"]
            .map(|m| format!(
                "SUM(CASE WHEN g.left_at IS NULL THEN g.{m}_u END) AS {m}_sum, \
                 COUNT(CASE WHEN g.left_at IS NULL THEN g.{m}_u END) AS {m}_n"
            ))
            .join(", "),
    );
    let batches = retain_features::frame::query(ctx, &sql, "the cells").await?;
    let mut cells = Vec::new();
    for b in &batches {
        // Parquet's text may come as a view type: cast to plain strings to read it.
        let text = |i: usize| {
            datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                .ok()
                .and_then(|a| a.as_string_opt::<i32>().cloned())
        };
        let number = |i: usize| -> Result<Float64Array> {
            let cast = datafusion::arrow::compute::cast(b.column(i), &DataType::Float64)
                .map_err(|e| Error::Internal(format!("reading the cells: {e}")))?;
            Ok(cast.as_primitive::<Float64Type>().clone())
        };
        let ids = text(0).ok_or_else(|| Error::Internal("cell ids are not text".into()))?;
        let (district, technology) = (text(3), text(4));
        let (lat, lon) = (number(1)?, number(2)?);
        let (subs, churned, complainers, at_risk) =
            (number(5)?, number(6)?, number(7)?, number(8)?);
        let opt = |a: &Float64Array, r: usize| (!a.is_null(r)).then(|| a.value(r));
        let integer = |i: usize| -> Result<Int64Array> {
            let cast = datafusion::arrow::compute::cast(b.column(i), &DataType::Int64)
                .map_err(|e| Error::Internal(format!("reading the cells: {e}")))?;
            Ok(cast.as_primitive::<Int64Type>().clone())
        };
        // (sum of millionths, count) of the risk, dropped calls, weak coverage, data stalls.
        let sums = (0..4)
            .map(|m| Ok((integer(9 + 2 * m)?, integer(10 + 2 * m)?)))
            .collect::<Result<Vec<_>>>()?;
        let total = |m: usize, r: usize| {
            let (s, n) = &sums[m];
            let (s, n) = (
                if s.is_null(r) { 0 } else { s.value(r) },
                if n.is_null(r) { 0 } else { n.value(r) },
            );
            (s, u64::try_from(n).unwrap_or(0))
        };
        let mean = |m: usize, r: usize| {
            let (s, n) = total(m, r);
            (n > 0).then(|| round(s as f64 / n as f64 / MICRO, 6))
        };
        for r in 0..b.num_rows() {
            if ids.is_null(r) {
                continue;
            }
            let active = opt(&subs, r).unwrap_or(0.0);
            let left = opt(&churned, r).unwrap_or(0.0);
            let base = active + left;
            cells.push(Cell {
                cell_id: ids.value(r).to_owned(),
                latitude: opt(&lat, r).unwrap_or(0.0),
                longitude: opt(&lon, r).unwrap_or(0.0),
                district: district
                    .as_ref()
                    .filter(|d| !d.is_null(r))
                    .map(|d| d.value(r).to_owned()),
                technology: technology
                    .as_ref()
                    .filter(|d| !d.is_null(r))
                    .map(|d| d.value(r).to_owned()),
                subscribers: active as u64,
                churned_3m: left as u64,
                churn_rate: if base > 0.0 { left / base } else { 0.0 },
                complaint_rate: if active > 0.0 {
                    opt(&complainers, r).unwrap_or(0.0) / active
                } else {
                    0.0
                },
                mean_risk: mean(0, r),
                at_risk: opt(&at_risk, r).unwrap_or(0.0) as u64,
                dropped_call_rate_4w: mean(1, r),
                weak_coverage_4w: mean(2, r),
                data_stall_4w: mean(3, r),
                risk_micros: total(0, r),
            });
        }
    }
    write_cells_file(dir, path, &cells)?;
    Ok(cells)
}

/// Writes the cells' file (JSON lines would do for a map, but the other outputs are Parquet and
/// the cluster's executors read Parquet).
fn write_cells_file(dir: &Path, path: &Path, cells: &[Cell]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("cell_id", DataType::Utf8, false),
        Field::new("latitude", DataType::Float64, false),
        Field::new("longitude", DataType::Float64, false),
        Field::new("district", DataType::Utf8, true),
        Field::new("technology", DataType::Utf8, true),
        Field::new("subscribers", DataType::Int64, false),
        Field::new("churned_3m", DataType::Int64, false),
        Field::new("churn_rate", DataType::Float64, false),
        Field::new("complaint_rate", DataType::Float64, false),
        Field::new("mean_risk", DataType::Float64, true),
        Field::new("at_risk", DataType::Int64, false),
        Field::new("dropped_call_rate_4w", DataType::Float64, true),
        Field::new("weak_coverage_4w", DataType::Float64, true),
        Field::new("data_stall_4w", DataType::Float64, true),
    ]));
    let count = |f: fn(&Cell) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            cells
                .iter()
                .map(|c| i64::try_from(f(c)).unwrap_or(i64::MAX)),
        ))
    };
    let number = |f: fn(&Cell) -> Option<f64>| -> ArrayRef {
        Arc::new(cells.iter().map(f).collect::<Float64Array>())
    };
    let text = |f: fn(&Cell) -> Option<&str>| -> ArrayRef {
        Arc::new(
            cells
                .iter()
                .map(f)
                .collect::<datafusion::arrow::array::StringArray>(),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        text(|c| Some(c.cell_id.as_str())),
        number(|c| Some(c.latitude)),
        number(|c| Some(c.longitude)),
        text(|c| c.district.as_deref()),
        text(|c| c.technology.as_deref()),
        count(|c| c.subscribers),
        count(|c| c.churned_3m),
        number(|c| Some(c.churn_rate)),
        number(|c| Some(c.complaint_rate)),
        number(|c| c.mean_risk),
        count(|c| c.at_risk),
        number(|c| c.dropped_call_rate_4w),
        number(|c| c.weak_coverage_4w),
        number(|c| c.data_stall_4w),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(format!("building the cells: {e}")))?;
    let partial = path.with_extension(format!("parquet.{}.writing", std::process::id()));
    let mut writer = retain_data::TableWriter::create(&partial, schema)?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The report's sums of the circles and cells.
fn summarize(members: &[Member], cells: &[Cell]) -> NetworkSegments {
    let circles: BTreeMap<i64, u32> = members.iter().map(|m| (m.circle, m.circle_size)).collect();
    let left = members.iter().filter(|m| m.left_3m).count();
    let (active, churned) = cells.iter().fold((0u64, 0u64), |(a, c), cell| {
        (a + cell.subscribers, c + cell.churned_3m)
    });
    let network_rate = if active + churned > 0 {
        churned as f64 / (active + churned) as f64
    } else {
        0.0
    };
    let mut districts: BTreeMap<String, (District, i64, u64)> = BTreeMap::new();
    for cell in cells.iter().filter(|c| c.subscribers + c.churned_3m > 0) {
        let name = cell.district.clone().unwrap_or_default();
        let d = districts.entry(name.clone()).or_insert_with(|| {
            (
                District {
                    district: name,
                    cells: 0,
                    subscribers: 0,
                    churned_3m: 0,
                    churn_rate: 0.0,
                    mean_risk: None,
                    at_risk: 0,
                    hot_cells: 0,
                },
                0,
                0,
            )
        });
        d.0.cells += 1;
        d.0.subscribers += cell.subscribers;
        d.0.churned_3m += cell.churned_3m;
        d.0.at_risk += cell.at_risk;
        d.0.hot_cells += u64::from(network_rate > 0.0 && cell.churn_rate >= 2.0 * network_rate);
        d.1 += cell.risk_micros.0;
        d.2 += cell.risk_micros.1;
    }
    let mut districts: Vec<District> = districts
        .into_values()
        .map(|(mut d, risk, scored)| {
            let base = d.subscribers + d.churned_3m;
            d.churn_rate = if base > 0 {
                d.churned_3m as f64 / base as f64
            } else {
                0.0
            };
            d.churn_rate = round(d.churn_rate, 6);
            d.mean_risk = (scored > 0).then(|| round(risk as f64 / scored as f64 / MICRO, 6));
            d
        })
        .collect();
    districts.sort_by(|a, b| {
        b.churn_rate
            .total_cmp(&a.churn_rate)
            .then_with(|| a.district.cmp(&b.district))
    });
    NetworkSegments {
        cells: cells.iter().filter(|c| c.subscribers > 0).count() as u64,
        homed: active,
        circles: circles.len() as u64,
        members: members.len() as u64,
        mean_circle_size: if circles.is_empty() {
            0.0
        } else {
            round(members.len() as f64 / circles.len() as f64, 4)
        },
        circles_in_wave: members
            .iter()
            .filter(|m| m.leader && m.circle_size >= 3 && m.circle_churn_rate >= WAVE_RATE)
            .count() as u64,
        circle_churn_rate: if members.is_empty() {
            0.0
        } else {
            round(left as f64 / members.len() as f64, 6)
        },
        outside_churn_rate: None,
        leaders_at_risk: None,
        districts,
    }
}

/// The share of the subscribers outside any circle, on the network three months ago, who left
/// since: what a circle's churn compares with.
async fn outside_churn_rate(
    ctx: &SessionContext,
    from3: NaiveDate,
    as_of: NaiveDate,
) -> Result<Option<f64>> {
    let sql = format!(
        "WITH gone AS (
             SELECT subscriber_id, MIN(\"timestamp\") AS left_at FROM events
             WHERE kind IN ('cancel', 'port_out') AND \"timestamp\" < {to}
             GROUP BY subscriber_id
         )
         SELECT CAST(COUNT(g.left_at) AS DOUBLE) / CAST(NULLIF(COUNT(*), 0) AS DOUBLE)
         FROM subscribers s
         LEFT JOIN gone g ON g.subscriber_id = s.subscriber_id
         WHERE s.join_date < {start}
           AND (g.left_at IS NULL OR g.left_at >= {from})
           AND s.subscriber_id NOT IN (SELECT subscriber_id FROM {CIRCLES})",
        to = timestamp(as_of),
        from = timestamp(from3),
        start = date(from3),
    );
    let batches = retain_features::frame::query(ctx, &sql, "the churn outside circles").await?;
    Ok(batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
        let c = b.column(0).as_primitive::<Float64Type>();
        (!c.is_null(0)).then(|| round(c.value(0), 6))
    }))
}

/// The share of the circles' leaders still on the network whose churn probability is at least
/// 0.3.
async fn leaders_at_risk(ctx: &SessionContext, scores: &str) -> Result<Option<f64>> {
    let sql = format!(
        "SELECT CAST(COUNT(CASE WHEN sc.probability >= {AT_RISK} THEN 1 END) AS DOUBLE)
                / CAST(NULLIF(COUNT(sc.probability), 0) AS DOUBLE)
         FROM {CIRCLES} c JOIN {scores} sc ON sc.subscriber_id = c.subscriber_id
         WHERE c.circle_leader AND NOT c.left_3m"
    );
    let batches = retain_features::frame::query(ctx, &sql, "the leaders at risk").await?;
    Ok(batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
        let c = b.column(0).as_primitive::<Float64Type>();
        (!c.is_null(0)).then(|| round(c.value(0), 6))
    }))
}

/// The cells of the latest segmentation, in cell order; empty before one (or without cells).
pub fn read_cells(workspace: &Workspace) -> Result<Vec<Cell>> {
    let path = cells_file(workspace);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let reader = retain_data::read_batches(&path)?;
    let mut cells = Vec::new();
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::Internal(format!("reading {}: {e}", path.display())))?;
        for row in retain_features::json_rows(std::slice::from_ref(&batch)) {
            let cell: Cell = serde_json::from_value(serde_json::Value::Object(row))
                .map_err(|e| Error::Internal(format!("reading {}: {e}", path.display())))?;
            cells.push(cell);
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two cliques of four joined by one weak tie, and an isolated pair.
    fn two_cliques() -> Graph {
        let mut pairs = Vec::new();
        for block in [0i64, 10] {
            for a in 0..4 {
                for b in a + 1..4 {
                    pairs.push((block + a, block + b, 10.0 + (a + b) as f64));
                }
            }
        }
        pairs.push((3, 10, 4.0));
        pairs.push((20, 21, 5.0));
        pairs.push((21, 20, 5.0));
        // Below the tie's threshold: not in the graph at all.
        pairs.push((30, 31, 2.0));
        Graph::from_pairs(pairs)
    }

    #[test]
    fn communities_find_the_cliques_and_ignore_weak_ties() {
        let g = two_cliques();
        assert_eq!(g.ids(), &[0, 1, 2, 3, 10, 11, 12, 13, 20, 21]);
        let labels = communities(&g, MAX_CIRCLE);
        let of = |id: i64| labels[g.ids().binary_search(&id).unwrap()];
        for block in [0i64, 10] {
            for m in 1..4 {
                assert_eq!(of(block + m), of(block), "{block}+{m}");
            }
        }
        assert_ne!(of(0), of(10));
        assert_eq!(of(20), of(21));
        assert_ne!(of(20), of(0));
        // The same answer every time.
        assert_eq!(labels, communities(&g, MAX_CIRCLE));
    }

    #[test]
    fn the_cap_bounds_a_circle() {
        // A star of 30 around one hub: with a cap of 8 no label holds more than 8.
        let pairs: Vec<_> = (1..=30).map(|i| (0i64, i, 5.0)).collect();
        let g = Graph::from_pairs(pairs);
        let labels = communities(&g, 8);
        let mut sizes = BTreeMap::new();
        for l in &labels {
            *sizes.entry(*l).or_insert(0u32) += 1;
        }
        assert!(sizes.values().all(|&s| s <= 8), "{sizes:?}");
    }

    #[test]
    fn circles_count_leavers_and_name_the_leader() {
        let g = two_cliques();
        let labels = communities(&g, MAX_CIRCLE);
        let mut standing = vec![Standing::Active; g.len()];
        let at = |id: i64| g.ids().binary_search(&id).unwrap();
        standing[at(11)] = Standing::LeftRecently;
        standing[at(12)] = Standing::Gone;
        let members = circles(&g, &labels, &standing);
        // The one who left before is no member; the one who left lately is.
        assert!(members.iter().all(|m| m.subscriber_id != 12));
        let second: Vec<_> = members.iter().filter(|m| m.circle == 10).collect();
        assert_eq!(second.len(), 3);
        assert!(
            second
                .iter()
                .all(|m| m.circle_size == 3 && m.circle_left_3m == 1)
        );
        assert!((second[0].circle_churn_rate - 1.0 / 3.0).abs() < 1e-12);
        assert!(second.iter().any(|m| m.subscriber_id == 11 && m.left_3m));
        // One leader per circle: in the first, 3 has the most calls (10+3, 10+4, 10+5).
        let leaders: Vec<_> = members.iter().filter(|m| m.leader).collect();
        assert_eq!(leaders.len(), 3);
        assert!(leaders.iter().any(|m| m.subscriber_id == 3));
        // A pair is a circle of two.
        assert!(
            members
                .iter()
                .any(|m| m.subscriber_id == 20 && m.circle_size == 2)
        );
    }

    #[test]
    fn an_empty_graph_has_no_circles() {
        let g = Graph::from_pairs(vec![(1, 1, 50.0), (2, 3, f64::NAN)]);
        assert!(g.is_empty());
        assert!(circles(&g, &communities(&g, MAX_CIRCLE), &[]).is_empty());
    }

    #[test]
    fn districts_sum_their_cells() {
        let cell = |id: &str, district: &str, subs: u64, churned: u64| Cell {
            cell_id: id.into(),
            latitude: 30.0,
            longitude: 120.0,
            district: Some(district.into()),
            technology: Some("4g".into()),
            subscribers: subs,
            churned_3m: churned,
            churn_rate: churned as f64 / (subs + churned) as f64,
            complaint_rate: 0.0,
            mean_risk: Some(0.1),
            at_risk: 1,
            dropped_call_rate_4w: None,
            weak_coverage_4w: None,
            data_stall_4w: None,
            risk_micros: (100_000 * i64::try_from(subs).unwrap(), subs),
        };
        let cells = [
            cell("A1", "a", 90, 10),
            cell("A2", "a", 100, 0),
            cell("B1", "b", 50, 50),
        ];
        let s = summarize(&[], &cells);
        assert_eq!(s.cells, 3);
        assert_eq!(s.homed, 240);
        assert_eq!(s.districts[0].district, "b");
        assert_eq!(s.districts[0].hot_cells, 1);
        assert!((s.districts[1].churn_rate - 10.0 / 200.0).abs() < 1e-12);
        assert_eq!(s.districts[1].at_risk, 2);
    }
}
