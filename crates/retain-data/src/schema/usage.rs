//! The usage tables: billed usage per subscriber by month and by ISO week, two grains of the
//! same measures, so one macro lists the columns for both.

use super::{COUNT, Column, ColumnKind, ID, MONEY, Reference, SUBSCRIBER_ID, Table, TableSpec};

/// Usage columns shared by the monthly and weekly grains.
macro_rules! usage_columns {
    ($period:expr, $days_max:expr) => {
        &[
            SUBSCRIBER_ID,
            $period,
            Column {
                name: "fee",
                kind: MONEY,
                required: true,
                unit: "yuan",
                zh: "出账收入(ARPU)",
                meaning: "Billed revenue of the period; its monthly average is ARPU.",
            },
            Column {
                name: "voice_minutes",
                kind: COUNT,
                required: true,
                unit: "minutes",
                zh: "通话时长(MOU)",
                meaning: "Billed voice minutes, outgoing and incoming.",
            },
            Column {
                name: "calls_out",
                kind: COUNT,
                required: true,
                unit: "calls",
                zh: "主叫次数",
                meaning: "Outgoing calls.",
            },
            Column {
                name: "calls_in",
                kind: COUNT,
                required: true,
                unit: "calls",
                zh: "被叫次数",
                meaning: "Incoming calls.",
            },
            Column {
                name: "data_mb",
                kind: ColumnKind::Float {
                    min: 0.0,
                    max: 1.0e9,
                },
                required: true,
                unit: "MB",
                zh: "流量(DOU)",
                meaning: "Mobile data used.",
            },
            Column {
                name: "sms",
                kind: COUNT,
                required: true,
                unit: "messages",
                zh: "短信条数",
                meaning: "Outgoing SMS.",
            },
            Column {
                name: "bundled_services",
                kind: COUNT,
                required: true,
                unit: "services",
                zh: "捆绑业务数",
                meaning: "Services bundled with the line (broadband, IPTV, family net, …).",
            },
            Column {
                name: "vas_fee",
                kind: MONEY,
                required: true,
                unit: "yuan",
                zh: "增值业务费",
                meaning: "Value-added service (增值业务) revenue of the period.",
            },
            Column {
                name: "recharge",
                kind: MONEY,
                required: true,
                unit: "yuan",
                zh: "充值/缴费",
                meaning: "Amount recharged or paid in the period.",
            },
            Column {
                name: "arrears",
                kind: MONEY,
                required: true,
                unit: "yuan",
                zh: "欠费",
                meaning: "Amount owed at the end of the period.",
            },
            Column {
                name: "suspended_days",
                kind: ColumnKind::Int {
                    min: 0,
                    max: $days_max,
                },
                required: true,
                unit: "days",
                zh: "停机天数",
                meaning: "Days the line was suspended (停机) in the period.",
            },
            Column {
                name: "active_days",
                kind: ColumnKind::Int {
                    min: 0,
                    max: $days_max,
                },
                required: true,
                unit: "days",
                zh: "活跃天数",
                meaning: "Days with any billed usage.",
            },
            Column {
                name: "plan_id",
                kind: ID,
                required: false,
                unit: "",
                zh: "当期套餐",
                meaning: "Plan billed in the period, when the export carries it.",
            },
        ]
    };
}

pub(super) static USAGE_MONTHLY: TableSpec = TableSpec {
    table: Table::UsageMonthly,
    zh: "月度使用与出账",
    doc: "Billed usage and revenue per subscriber and calendar month.",
    columns: usage_columns!(
        Column {
            name: "period",
            kind: ColumnKind::Month,
            required: true,
            unit: "",
            zh: "账期",
            meaning: "Billing month (`2025-03` or `202503`); stored as its first day.",
        },
        31
    ),
    key: &["subscriber_id", "period"],
    references: &[Reference {
        column: "subscriber_id",
        table: Table::Subscribers,
        target_column: "subscriber_id",
    }],
};

pub(super) static USAGE_WEEKLY: TableSpec = TableSpec {
    table: Table::UsageWeekly,
    zh: "周使用",
    doc: "The same measures per ISO week (Monday to Sunday): the early-warning rules run weekly.",
    columns: usage_columns!(
        Column {
            name: "period",
            kind: ColumnKind::Week,
            required: true,
            unit: "",
            zh: "周",
            meaning: "ISO week, given as its Monday (`2025-03-03`) or as `2025-W10`.",
        },
        7
    ),
    key: &["subscriber_id", "period"],
    references: &[Reference {
        column: "subscriber_id",
        table: Table::Subscribers,
        target_column: "subscriber_id",
    }],
};
