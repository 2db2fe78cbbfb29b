//! Network experience (网络感知) and calling circles (交往圈): the cells of the radio network,
//! each subscriber's weekly experience on it, and who calls whom each month.

use super::{COUNT, Column, ColumnKind, ID, Reference, SUBSCRIBER_ID, Table, TableSpec};

/// Radio technologies of a cell.
pub const TECHNOLOGIES: &[&str] = &["4g", "5g"];

const SUBSCRIBER_REFERENCE: Reference = Reference {
    column: "subscriber_id",
    table: Table::Subscribers,
    target_column: "subscriber_id",
};

const CELL_ID: Column = Column {
    name: "cell_id",
    kind: ID,
    required: true,
    unit: "",
    zh: "小区编号",
    meaning: "Cell (基站小区) id from the network management system.",
};

pub(super) static CELLS: TableSpec = TableSpec {
    table: Table::Cells,
    zh: "基站小区",
    doc: "The radio cells subscribers are served by, with where they are.",
    columns: &[
        CELL_ID,
        Column {
            name: "latitude",
            kind: ColumnKind::Float {
                min: -90.0,
                max: 90.0,
            },
            required: true,
            unit: "degrees",
            zh: "纬度",
            meaning: "Latitude of the site (WGS-84).",
        },
        Column {
            name: "longitude",
            kind: ColumnKind::Float {
                min: -180.0,
                max: 180.0,
            },
            required: true,
            unit: "degrees",
            zh: "经度",
            meaning: "Longitude of the site (WGS-84).",
        },
        Column {
            name: "district",
            kind: ColumnKind::Text { max_len: 64 },
            required: true,
            unit: "",
            zh: "区县",
            meaning: "District (区县) the site is in.",
        },
        Column {
            name: "branch_id",
            kind: ID,
            required: false,
            unit: "",
            zh: "归属分公司",
            meaning: "Branch (分公司) whose area the site is in, as subscribers' branch_id.",
        },
        Column {
            name: "technology",
            kind: ColumnKind::Enum(TECHNOLOGIES),
            required: true,
            unit: "",
            zh: "制式",
            meaning: "Radio technology of the cell.",
        },
    ],
    key: &["cell_id"],
    references: &[],
};

pub(super) static NETWORK_WEEKLY: TableSpec = TableSpec {
    table: Table::NetworkWeekly,
    zh: "周网络感知",
    doc: "Each subscriber's network experience per ISO week, from the network's probes (MR/XDR): \
          what degrades before a complaint.",
    columns: &[
        SUBSCRIBER_ID,
        Column {
            name: "week",
            kind: ColumnKind::Week,
            required: true,
            unit: "",
            zh: "周",
            meaning: "ISO week, given as its Monday (`2025-03-03`) or as `2025-W10`.",
        },
        Column {
            name: "dropped_call_rate",
            kind: ColumnKind::Float {
                min: 0.0,
                max: 100.0,
            },
            required: true,
            unit: "%",
            zh: "掉话率",
            meaning: "Share of the week's calls that dropped, in percent.",
        },
        Column {
            name: "setup_failures",
            kind: COUNT,
            required: true,
            unit: "calls",
            zh: "呼叫建立失败次数",
            meaning: "Call attempts that failed to set up.",
        },
        Column {
            name: "weak_coverage_minutes",
            kind: ColumnKind::Float {
                min: 0.0,
                max: 10_080.0,
            },
            required: true,
            unit: "minutes",
            zh: "弱覆盖时长",
            meaning: "Minutes of the week spent on weak coverage (RSRP below −110 dBm).",
        },
        Column {
            name: "data_stall_seconds",
            kind: ColumnKind::Float {
                min: 0.0,
                max: 604_800.0,
            },
            required: true,
            unit: "seconds",
            zh: "数据卡顿时长",
            meaning: "Seconds of data sessions with no throughput (卡顿).",
        },
        Column {
            name: "throughput_mbps",
            kind: ColumnKind::Float {
                min: 0.0,
                max: 100_000.0,
            },
            required: false,
            unit: "Mbit/s",
            zh: "平均下载速率",
            meaning: "Mean downlink throughput of the week's data sessions; empty without data use.",
        },
        Column {
            name: "home_cell",
            kind: ID,
            required: false,
            unit: "",
            zh: "常驻小区",
            meaning: "The cell the subscriber spent most of the week's nights on.",
        },
    ],
    key: &["subscriber_id", "week"],
    references: &[
        SUBSCRIBER_REFERENCE,
        Reference {
            column: "home_cell",
            table: Table::Cells,
            target_column: "cell_id",
        },
    ],
};

pub(super) static CALLING_CIRCLE: TableSpec = TableSpec {
    table: Table::CallingCircle,
    zh: "交往圈",
    doc: "Who calls whom per month: a pair of the operator's subscribers (each pair once, the \
          calls of both directions), or a subscriber's calls to a competitor's numbers.",
    columns: &[
        Column {
            name: "month",
            kind: ColumnKind::Month,
            required: true,
            unit: "",
            zh: "月份",
            meaning: "Calendar month (`2025-03` or `202503`); stored as its first day.",
        },
        SUBSCRIBER_ID,
        Column {
            name: "peer_id",
            kind: ColumnKind::Int {
                min: 1,
                max: i64::MAX,
            },
            required: false,
            unit: "",
            zh: "对端用户编号",
            meaning: "The other subscriber of an on-net pair; empty for calls to a competitor.",
        },
        Column {
            name: "peer_operator",
            kind: ColumnKind::Text { max_len: 32 },
            required: false,
            unit: "",
            zh: "对端运营商",
            meaning: "The competitor (联通, 电信, 广电, …) whose numbers were called; empty for an \
                      on-net pair.",
        },
        Column {
            name: "calls",
            kind: COUNT,
            required: true,
            unit: "calls",
            zh: "通话次数",
            meaning: "Calls between the two in the month, both directions.",
        },
        Column {
            name: "minutes",
            kind: ColumnKind::Float {
                min: 0.0,
                max: 1.0e6,
            },
            required: true,
            unit: "minutes",
            zh: "通话时长",
            meaning: "Minutes of those calls.",
        },
    ],
    key: &["month", "subscriber_id", "peer_id", "peer_operator"],
    references: &[
        SUBSCRIBER_REFERENCE,
        Reference {
            column: "peer_id",
            table: Table::Subscribers,
            target_column: "subscriber_id",
        },
    ],
};
