//! The canonical operator data model: one [`TableSpec`] per table.
//!
//! Everything that knows a column — ingest validation, Parquet schemas, the synthetic
//! operator's headers and `docs/data-model.md` — reads it from here, so they cannot drift apart.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The type of a canonical column, with the validation that goes with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnKind {
    /// Signed 64-bit integer within `[min, max]`.
    Int { min: i64, max: i64 },
    /// Decimal number within `[min, max]` (money in yuan, volumes).
    Float { min: f64, max: f64 },
    /// Free text up to `max_len` characters.
    Text { max_len: usize },
    /// A phone number: 5 to 15 digits.
    Msisdn,
    /// A calendar date.
    Date,
    /// A calendar month, stored as its first day.
    Month,
    /// A week, stored as its Monday.
    Week,
    /// A local date and time (operator time zone), second precision.
    Timestamp,
    /// `true`/`false` (also `1`/`0`, `Y`/`N`, `是`/`否`).
    Bool,
    /// One of a fixed set of lower-case codes.
    Enum(&'static [&'static str]),
}

impl ColumnKind {
    /// The Arrow type the column is stored as.
    #[must_use]
    pub fn data_type(self) -> DataType {
        match self {
            Self::Int { .. } => DataType::Int64,
            Self::Float { .. } => DataType::Float64,
            Self::Text { .. } | Self::Msisdn | Self::Enum(_) => DataType::Utf8,
            Self::Date | Self::Month | Self::Week => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Second, None),
            Self::Bool => DataType::Boolean,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Int { min, max } if max == i64::MAX => format!("integer ≥ {min}"),
            Self::Int { min, max } => format!("integer {min}–{max}"),
            Self::Float { min, max } if max >= 1.0e9 => format!("decimal ≥ {min}"),
            Self::Float { min, max } => format!("decimal {min}–{max}"),
            Self::Text { max_len } => format!("text ≤ {max_len} chars"),
            Self::Msisdn => "phone number, 5–15 digits".to_owned(),
            Self::Date => "date".to_owned(),
            Self::Month => "month (`YYYY-MM`)".to_owned(),
            Self::Week => "week (its Monday, or `YYYY-Www`)".to_owned(),
            Self::Timestamp => "date and time".to_owned(),
            Self::Bool => "boolean".to_owned(),
            Self::Enum(values) => format!("one of `{}`", values.join("`, `")),
        }
    }
}

/// One column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
    pub required: bool,
    pub unit: &'static str,
    /// The Chinese business term, as operators' documents use it.
    pub zh: &'static str,
    pub meaning: &'static str,
}

/// A column whose values must exist as keys of another table.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    pub column: &'static str,
    pub table: Table,
    pub target_column: &'static str,
}

/// The canonical tables. Operational tables (offers, campaigns, work orders, callbacks) live in
/// the operational store; these are the analytical ones, stored as Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Plans,
    Subscribers,
    Contracts,
    UsageMonthly,
    UsageWeekly,
    Events,
    CampaignHistory,
}

/// Everything about a table that ingest and the engine need.
#[derive(Debug)]
pub struct TableSpec {
    pub table: Table,
    pub zh: &'static str,
    pub doc: &'static str,
    pub columns: &'static [Column],
    /// Columns that identify a row; loading a row with an existing key replaces that row.
    pub key: &'static [&'static str],
    pub references: &'static [Reference],
}

impl Table {
    /// All tables, in the order they must be loaded (referenced tables first).
    pub const ALL: [Table; 7] = [
        Table::Plans,
        Table::Subscribers,
        Table::Contracts,
        Table::UsageMonthly,
        Table::UsageWeekly,
        Table::Events,
        Table::CampaignHistory,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        self.spec().name()
    }

    /// Parses a table name as used on the command line (`usage_monthly`, also `usage-monthly`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Table> {
        let name = name.trim().replace('-', "_").to_ascii_lowercase();
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    #[must_use]
    pub fn spec(self) -> &'static TableSpec {
        match self {
            Table::Plans => &PLANS,
            Table::Subscribers => &SUBSCRIBERS,
            Table::Contracts => &CONTRACTS,
            Table::UsageMonthly => &USAGE_MONTHLY,
            Table::UsageWeekly => &USAGE_WEEKLY,
            Table::Events => &EVENTS,
            Table::CampaignHistory => &CAMPAIGN_HISTORY,
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TableSpec {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.table {
            Table::Plans => "plans",
            Table::Subscribers => "subscribers",
            Table::Contracts => "contracts",
            Table::UsageMonthly => "usage_monthly",
            Table::UsageWeekly => "usage_weekly",
            Table::Events => "events",
            Table::CampaignHistory => "campaign_history",
        }
    }

    #[must_use]
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    #[must_use]
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The Arrow schema the table is stored with.
    #[must_use]
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.kind.data_type(), !c.required))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The header line of the canonical CSV form.
    #[must_use]
    pub fn csv_header(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }
}

const MONEY: ColumnKind = ColumnKind::Float {
    min: 0.0,
    max: 1.0e9,
};
const COUNT: ColumnKind = ColumnKind::Int {
    min: 0,
    max: i64::MAX,
};
const ID: ColumnKind = ColumnKind::Text { max_len: 64 };
const SUBSCRIBER_ID: Column = Column {
    name: "subscriber_id",
    kind: ColumnKind::Int {
        min: 1,
        max: i64::MAX,
    },
    required: true,
    unit: "",
    zh: "用户编号",
    meaning: "Subscriber id from the billing system (a positive integer).",
};

/// Subscriber status codes.
pub const STATUSES: &[&str] = &["active", "suspended", "cancelled"];
/// Customer types.
pub const CUSTOMER_TYPES: &[&str] = &["personal", "group_member"];
/// Contact channels a subscriber prefers or a campaign uses.
pub const CHANNELS: &[&str] = &["sms", "outbound_call", "store", "manager_visit", "app"];
/// Contract kinds.
pub const CONTRACT_KINDS: &[&str] = &["device_subsidy", "service_contract", "device_lease"];
/// Event kinds.
pub const EVENT_KINDS: &[&str] = &[
    "complaint",
    "competitor_service_call",
    "forward_to_competitor",
    "service_call",
    "stop_request",
    "suspension",
    "resume",
    "plan_change",
    "port_out",
    "cancel",
];
/// Event categories: complaint categories, and the reason of a suspension.
pub const EVENT_CATEGORIES: &[&str] = &[
    "network", "billing", "service", "product", "arrears", "request", "other",
];
/// Complaint severities.
pub const SEVERITIES: &[&str] = &["minor", "major", "serious"];
/// Where a contact happened.
pub const EVENT_CHANNELS: &[&str] = &["store", "hotline", "online", "manager", "sms"];
/// Arms of a randomized campaign.
pub const ARMS: &[&str] = &["treatment", "control"];
/// Kinds of retention offers (the offer library owns the offers themselves).
pub const OFFER_KINDS: &[&str] = &[
    "fee_discount",
    "data_bonus",
    "family_addon",
    "contract_renewal",
    "loyalty_upgrade",
    "vip_service",
    "network_fix",
    "bill_adjustment",
    "partner_coupon",
    "return_gift",
];

static PLANS: TableSpec = TableSpec {
    table: Table::Plans,
    zh: "套餐",
    doc: "The tariff plans (套餐) subscribers can be on.",
    columns: &[
        Column {
            name: "plan_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "套餐编码",
            meaning: "Plan code.",
        },
        Column {
            name: "name",
            kind: ColumnKind::Text { max_len: 128 },
            required: true,
            unit: "",
            zh: "套餐名称",
            meaning: "Plan name as the operator sells it.",
        },
        Column {
            name: "monthly_fee",
            kind: MONEY,
            required: true,
            unit: "yuan/month",
            zh: "月租/套餐费",
            meaning: "Recurring monthly fee of the plan.",
        },
        Column {
            name: "data_mb",
            kind: COUNT,
            required: true,
            unit: "MB/month",
            zh: "套内流量",
            meaning: "Mobile data included per month.",
        },
        Column {
            name: "voice_minutes",
            kind: COUNT,
            required: true,
            unit: "minutes/month",
            zh: "套内语音",
            meaning: "Voice minutes included per month.",
        },
        Column {
            name: "tier",
            kind: ColumnKind::Int { min: 1, max: 9 },
            required: true,
            unit: "",
            zh: "套餐档次",
            meaning: "Plan tier, 1 = lowest; a move to a lower tier is a downgrade (降档).",
        },
    ],
    key: &["plan_id"],
    references: &[],
};

static SUBSCRIBERS: TableSpec = TableSpec {
    table: Table::Subscribers,
    zh: "用户资料",
    doc: "One row per subscriber (用户) ever active in the data window, with the status at the end of it.",
    columns: &[
        SUBSCRIBER_ID,
        Column {
            name: "msisdn",
            kind: ColumnKind::Msisdn,
            required: true,
            unit: "",
            zh: "手机号码",
            meaning: "Phone number; shown masked (138****5678) to roles that need no more.",
        },
        Column {
            name: "join_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "入网日期",
            meaning: "Date the subscriber joined; tenure (网龄) is counted from it.",
        },
        Column {
            name: "birth_date",
            kind: ColumnKind::Date,
            required: false,
            unit: "",
            zh: "出生日期",
            meaning: "Date of birth of the registered holder.",
        },
        Column {
            name: "gender",
            kind: ColumnKind::Enum(&["male", "female", "unknown"]),
            required: false,
            unit: "",
            zh: "性别",
            meaning: "Gender of the registered holder.",
        },
        Column {
            name: "province",
            kind: ColumnKind::Text { max_len: 32 },
            required: true,
            unit: "",
            zh: "省",
            meaning: "Province of the home location.",
        },
        Column {
            name: "city",
            kind: ColumnKind::Text { max_len: 32 },
            required: true,
            unit: "",
            zh: "地市",
            meaning: "City (地市分公司).",
        },
        Column {
            name: "county",
            kind: ColumnKind::Text { max_len: 32 },
            required: false,
            unit: "",
            zh: "区县",
            meaning: "County or district (区县).",
        },
        Column {
            name: "customer_type",
            kind: ColumnKind::Enum(CUSTOMER_TYPES),
            required: true,
            unit: "",
            zh: "客户类型",
            meaning: "`personal` (个人客户) or `group_member` (集团/政企成员).",
        },
        Column {
            name: "group_id",
            kind: ID,
            required: false,
            unit: "",
            zh: "集团编号",
            meaning: "Government/enterprise account (政企集团) of a group member.",
        },
        Column {
            name: "family_id",
            kind: ID,
            required: false,
            unit: "",
            zh: "家庭编号",
            meaning: "Family account (家庭/亲情网) shared by several subscribers.",
        },
        Column {
            name: "plan_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "当前套餐",
            meaning: "Current plan; must exist in `plans`.",
        },
        Column {
            name: "channel_preference",
            kind: ColumnKind::Enum(CHANNELS),
            required: false,
            unit: "",
            zh: "偏好渠道",
            meaning: "Channel through which the subscriber prefers to be contacted.",
        },
        Column {
            name: "branch_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "归属营业部",
            meaning: "Branch the subscriber is assigned to (分包).",
        },
        Column {
            name: "manager_id",
            kind: ID,
            required: false,
            unit: "",
            zh: "客户经理",
            meaning: "Account manager the subscriber is assigned to (分包到人).",
        },
        Column {
            name: "status",
            kind: ColumnKind::Enum(STATUSES),
            required: true,
            unit: "",
            zh: "用户状态",
            meaning: "`active` (正常), `suspended` (停机) or `cancelled` (销户/拆机).",
        },
        Column {
            name: "status_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "状态日期",
            meaning: "Date the current status began.",
        },
    ],
    key: &["subscriber_id"],
    references: &[Reference {
        column: "plan_id",
        table: Table::Plans,
        target_column: "plan_id",
    }],
};

static CONTRACTS: TableSpec = TableSpec {
    table: Table::Contracts,
    zh: "合约",
    doc: "Contracts binding a subscriber: device subsidies spread over months (分摊), service \
          contracts (合约) and device leases (租机).",
    columns: &[
        SUBSCRIBER_ID,
        Column {
            name: "kind",
            kind: ColumnKind::Enum(CONTRACT_KINDS),
            required: true,
            unit: "",
            zh: "合约类型",
            meaning: "`device_subsidy` (购机分摊), `service_contract` (存费送费/合约) or `device_lease` (租机).",
        },
        Column {
            name: "start_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "合约开始",
            meaning: "First day of the contract.",
        },
        Column {
            name: "end_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "合约到期",
            meaning: "Last day of the contract; not before `start_date`.",
        },
        Column {
            name: "monthly_amount",
            kind: MONEY,
            required: true,
            unit: "yuan/month",
            zh: "月分摊金额",
            meaning: "Amount spread (分摊) or committed per month.",
        },
    ],
    key: &["subscriber_id", "kind", "start_date"],
    references: &[Reference {
        column: "subscriber_id",
        table: Table::Subscribers,
        target_column: "subscriber_id",
    }],
};

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

static USAGE_MONTHLY: TableSpec = TableSpec {
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

static USAGE_WEEKLY: TableSpec = TableSpec {
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

static EVENTS: TableSpec = TableSpec {
    table: Table::Events,
    zh: "客户接触与状态事件",
    doc: "Dated events: complaints, contacts with our and competitors' service lines, call \
          forwarding (呼转) to competitor numbers, stop requests, suspensions (停机), plan changes, \
          port-outs (携号转网) and cancellations (销户).",
    columns: &[
        SUBSCRIBER_ID,
        Column {
            name: "timestamp",
            kind: ColumnKind::Timestamp,
            required: true,
            unit: "local time",
            zh: "发生时间",
            meaning: "When the event happened, operator local time.",
        },
        Column {
            name: "kind",
            kind: ColumnKind::Enum(EVENT_KINDS),
            required: true,
            unit: "",
            zh: "事件类型",
            meaning: "complaint 投诉, competitor_service_call 拨打竞争对手客服, forward_to_competitor \
                      呼转竞争对手号码, service_call 拨打本网客服, stop_request 申请停机/销户, \
                      suspension 停机, resume 复机, plan_change 套餐变更, port_out 携号转出, cancel 销户.",
        },
        Column {
            name: "category",
            kind: ColumnKind::Enum(EVENT_CATEGORIES),
            required: false,
            unit: "",
            zh: "类别",
            meaning: "Complaint category (network 网络, billing 计费, service 服务, product 产品), or \
                      the reason of a suspension (arrears 欠费停机, request 申请停机).",
        },
        Column {
            name: "severity",
            kind: ColumnKind::Enum(SEVERITIES),
            required: false,
            unit: "",
            zh: "严重程度",
            meaning: "Complaint or fault severity: minor 一般, major 较重, serious 严重.",
        },
        Column {
            name: "resolved_on_time",
            kind: ColumnKind::Bool,
            required: false,
            unit: "",
            zh: "是否按时办结",
            meaning: "Whether a complaint was answered within the service-level deadline.",
        },
        Column {
            name: "from_plan",
            kind: ID,
            required: false,
            unit: "",
            zh: "原套餐",
            meaning: "Plan before a `plan_change`.",
        },
        Column {
            name: "to_plan",
            kind: ID,
            required: false,
            unit: "",
            zh: "新套餐",
            meaning: "Plan after a `plan_change`.",
        },
        Column {
            name: "channel",
            kind: ColumnKind::Enum(EVENT_CHANNELS),
            required: false,
            unit: "",
            zh: "受理渠道",
            meaning: "Where the contact happened (营业厅 store, 10086-style hotline, online, account manager).",
        },
        Column {
            name: "competitor",
            kind: ColumnKind::Text { max_len: 32 },
            required: false,
            unit: "",
            zh: "竞争对手",
            meaning: "Competitor involved in a competitor call, forwarding or port-out.",
        },
        Column {
            name: "detail",
            kind: ColumnKind::Text { max_len: 512 },
            required: false,
            unit: "",
            zh: "备注",
            meaning: "Free text from the source system.",
        },
    ],
    key: &["subscriber_id", "timestamp", "kind"],
    references: &[
        Reference {
            column: "subscriber_id",
            table: Table::Subscribers,
            target_column: "subscriber_id",
        },
        Reference {
            column: "from_plan",
            table: Table::Plans,
            target_column: "plan_id",
        },
        Reference {
            column: "to_plan",
            table: Table::Plans,
            target_column: "plan_id",
        },
    ],
};

static CAMPAIGN_HISTORY: TableSpec = TableSpec {
    table: Table::CampaignHistory,
    zh: "历史维系活动",
    doc: "Past retention campaigns with randomized control groups: who was targeted, in which arm, \
          with which offer, and whether they were reached and accepted. Outcomes come from the \
          subscriber and usage tables, so uplift can be learned from it.",
    columns: &[
        Column {
            name: "campaign_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "活动编号",
            meaning: "Campaign code.",
        },
        Column {
            name: "period",
            kind: ColumnKind::Month,
            required: true,
            unit: "",
            zh: "活动月份",
            meaning: "Month the campaign ran.",
        },
        SUBSCRIBER_ID,
        Column {
            name: "arm",
            kind: ColumnKind::Enum(ARMS),
            required: true,
            unit: "",
            zh: "实验组/对照组",
            meaning: "`treatment` (received the offer) or `control` (held out at random).",
        },
        Column {
            name: "offer_id",
            kind: ID,
            required: false,
            unit: "",
            zh: "维系政策",
            meaning: "Offer made (empty for the control arm).",
        },
        Column {
            name: "offer_kind",
            kind: ColumnKind::Enum(OFFER_KINDS),
            required: false,
            unit: "",
            zh: "政策类型",
            meaning: "Kind of the offer (fee discount, data bonus, contract renewal, network fix, …).",
        },
        Column {
            name: "channel",
            kind: ColumnKind::Enum(CHANNELS),
            required: true,
            unit: "",
            zh: "触达渠道",
            meaning: "Channel used (or that would have been used, for the control arm).",
        },
        Column {
            name: "contact_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "接触日期",
            meaning: "Date of the contact attempt (the assignment date for the control arm).",
        },
        Column {
            name: "reached",
            kind: ColumnKind::Bool,
            required: true,
            unit: "",
            zh: "是否触达",
            meaning: "Whether the subscriber was reached (always false for the control arm).",
        },
        Column {
            name: "accepted",
            kind: ColumnKind::Bool,
            required: true,
            unit: "",
            zh: "是否接受",
            meaning: "Whether the subscriber took the offer.",
        },
        Column {
            name: "cost",
            kind: MONEY,
            required: true,
            unit: "yuan",
            zh: "维系成本",
            meaning: "Cost booked for the offer (contact cost plus the offer's cost if accepted).",
        },
    ],
    key: &["campaign_id", "subscriber_id"],
    references: &[Reference {
        column: "subscriber_id",
        table: Table::Subscribers,
        target_column: "subscriber_id",
    }],
};

/// The data model as Markdown: the generated part of `docs/data-model.md`.
#[must_use]
pub fn data_model_markdown() -> String {
    let mut out = String::new();
    for table in Table::ALL {
        let spec = table.spec();
        let _ = writeln!(out, "### `{}` — {}\n\n{}\n", spec.name(), spec.zh, spec.doc);
        let _ = writeln!(
            out,
            "Key: `{}`. {}\n",
            spec.key.join("`, `"),
            if spec.references.is_empty() {
                String::new()
            } else {
                let refs: Vec<String> = spec
                    .references
                    .iter()
                    .map(|r| format!("`{}` → `{}.{}`", r.column, r.table, r.target_column))
                    .collect();
                format!("References: {}.", refs.join(", "))
            }
        );
        out.push_str("| column | 中文 | type | unit | required | meaning |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for c in spec.columns {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                c.name,
                c.zh,
                c.kind.describe(),
                c.unit,
                if c.required { "yes" } else { "no" },
                c.meaning
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_reference_names_a_real_column() {
        for table in Table::ALL {
            let spec = table.spec();
            for key in spec.key {
                assert!(spec.column(key).is_some(), "{table}: key {key}");
            }
            for r in spec.references {
                assert!(spec.column(r.column).is_some(), "{table}: {}", r.column);
                assert!(
                    r.table.spec().column(r.target_column).is_some(),
                    "{table}: {}",
                    r.target_column
                );
                assert!(
                    Table::ALL.iter().position(|t| *t == r.table)
                        < Table::ALL.iter().position(|t| *t == table),
                    "{table} must load after {}",
                    r.table
                );
            }
        }
    }

    #[test]
    fn the_data_model_document_is_generated_from_this_schema() {
        // Read at run time: a test binary reused from a build in another checkout must still look
        // at this one.
        let path = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .join("../../docs/data-model.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let begin = "<!-- generated by `retain schema`: do not edit below -->\n";
        let start = doc.find(begin).expect("generated marker") + begin.len();
        assert_eq!(
            &doc[start..],
            data_model_markdown(),
            "docs/data-model.md is stale: regenerate its tail with `retain schema`"
        );
    }

    #[test]
    fn table_names_round_trip() {
        for table in Table::ALL {
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
        assert_eq!(Table::from_name("Usage-Monthly"), Some(Table::UsageMonthly));
        assert_eq!(Table::from_name("usage"), None);
    }
}
