//! The dated history of subscribers: contact and status events, and past retention campaigns
//! with their control groups.

use super::{
    ARMS, CHANNELS, Column, ColumnKind, EVENT_CATEGORIES, EVENT_CHANNELS, EVENT_KINDS, ID, MONEY,
    OFFER_KINDS, Reference, SEVERITIES, STATED_REASONS, SUBSCRIBER_ID, Table, TableSpec,
};

pub(super) static EVENTS: TableSpec = TableSpec {
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
        Column {
            name: "stated_reason",
            kind: ColumnKind::Enum(STATED_REASONS),
            required: false,
            unit: "",
            zh: "客户自述原因",
            meaning: "The reason the subscriber gave for a `port_out`, `stop_request` or downgrading \
                      `plan_change`, as the counter or the port-out retention call recorded it: \
                      value_decline 消费下滑, network_quality 网络质量, service_complaints 服务与投诉, \
                      competitor_lure 竞争对手吸引, contract_expiry 合约到期, billing_arrears 账单与欠费, \
                      low_engagement 很少使用, price 资费偏高, relocation 迁居, other 其他. What people \
                      say is noisy; the churn model learns causes from it (docs/model.md).",
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

pub(super) static CAMPAIGN_HISTORY: TableSpec = TableSpec {
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
