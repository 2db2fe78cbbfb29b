//! The group-customer tables (集团客户): the government and enterprise accounts, their key people,
//! the group products they buy and the account managers' visits to them. Members are the
//! subscribers whose `group_id` names the group.

use super::{Column, ColumnKind, ID, MONEY, Reference, Table, TableSpec};

/// Top-level sections (门类) of the national industry classification GB/T 4754-2017: code, 中文.
pub const INDUSTRIES: &[(&str, &str)] = &[
    ("A", "农、林、牧、渔业"),
    ("B", "采矿业"),
    ("C", "制造业"),
    ("D", "电力、热力、燃气及水生产和供应业"),
    ("E", "建筑业"),
    ("F", "批发和零售业"),
    ("G", "交通运输、仓储和邮政业"),
    ("H", "住宿和餐饮业"),
    ("I", "信息传输、软件和信息技术服务业"),
    ("J", "金融业"),
    ("K", "房地产业"),
    ("L", "租赁和商务服务业"),
    ("M", "科学研究和技术服务业"),
    ("N", "水利、环境和公共设施管理业"),
    ("O", "居民服务、修理和其他服务业"),
    ("P", "教育"),
    ("Q", "卫生和社会工作"),
    ("R", "文化、体育和娱乐业"),
    ("S", "公共管理、社会保障和社会组织"),
    ("T", "国际组织"),
];
const INDUSTRY_CODES: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S",
    "T",
];
/// Group value grades as operators keep them (A类 the most valuable).
pub const GROUP_TIERS: &[&str] = &["A", "B", "C", "D"];
/// Group statuses.
pub const GROUP_STATUSES: &[&str] = &["active", "lost"];
/// Roles of a group's key people (关键人).
pub const KEY_ROLES: &[&str] = &["decision_maker", "contact", "finance"];
/// Kinds of group products (集团产品).
pub const GROUP_PRODUCT_KINDS: &[&str] = &["vpmn", "dedicated_line", "data_pool", "other"];
/// Statuses of a group product.
pub const PRODUCT_STATUSES: &[&str] = &["active", "cancelled"];
/// How a visit was made.
pub const VISIT_CHANNELS: &[&str] = &["onsite", "phone", "wechat", "meeting"];
/// What a visit found.
pub const VISIT_OUTCOMES: &[&str] = &[
    "routine",
    "needs_follow_up",
    "complaint",
    "competitor_offer",
    "renewal_agreed",
    "expansion",
];

const GROUP_ID: Column = Column {
    name: "group_id",
    kind: ID,
    required: true,
    unit: "",
    zh: "集团编号",
    meaning: "Group account; members carry it in `subscribers.group_id`.",
};
const GROUP_REFERENCE: Reference = Reference {
    column: "group_id",
    table: Table::Groups,
    target_column: "group_id",
};

pub(super) static GROUPS: TableSpec = TableSpec {
    table: Table::Groups,
    zh: "集团客户",
    doc: "Government and enterprise accounts (政企集团客户): industry, size, value grade, the \
          group agreement and the account manager who keeps it.",
    columns: &[
        GROUP_ID,
        Column {
            name: "name",
            kind: ColumnKind::Text { max_len: 128 },
            required: true,
            unit: "",
            zh: "集团名称",
            meaning: "Registered name of the organisation.",
        },
        Column {
            name: "industry",
            kind: ColumnKind::Enum(INDUSTRY_CODES),
            required: true,
            unit: "",
            zh: "行业门类",
            meaning: "Section (门类) of GB/T 4754-2017, `A` 农林牧渔业 to `T` 国际组织.",
        },
        Column {
            name: "employees",
            kind: ColumnKind::Int {
                min: 1,
                max: 10_000_000,
            },
            required: false,
            unit: "people",
            zh: "员工规模",
            meaning: "Headcount of the organisation (not only our subscribers among them).",
        },
        Column {
            name: "value_tier",
            kind: ColumnKind::Enum(GROUP_TIERS),
            required: true,
            unit: "",
            zh: "集团价值等级",
            meaning: "The operator's grade of the account, `A` (A类, most valuable) to `D`.",
        },
        Column {
            name: "branch_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "归属营业部",
            meaning: "Branch the account belongs to.",
        },
        Column {
            name: "manager_id",
            kind: ID,
            required: false,
            unit: "",
            zh: "客户经理",
            meaning: "Account manager (客户经理) who keeps the group.",
        },
        Column {
            name: "contract_start",
            kind: ColumnKind::Date,
            required: false,
            unit: "",
            zh: "集团协议开始",
            meaning: "First day of the current group agreement.",
        },
        Column {
            name: "contract_end",
            kind: ColumnKind::Date,
            required: false,
            unit: "",
            zh: "集团协议到期",
            meaning: "Last day of the current group agreement; not before `contract_start`.",
        },
        Column {
            name: "status",
            kind: ColumnKind::Enum(GROUP_STATUSES),
            required: true,
            unit: "",
            zh: "集团状态",
            meaning: "`active` (在网) or `lost` (整体离网: the account moved to a competitor).",
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
    key: &["group_id"],
    references: &[],
};

pub(super) static GROUP_KEY_PEOPLE: TableSpec = TableSpec {
    table: Table::GroupKeyPeople,
    zh: "集团关键人",
    doc: "A group's key people (关键人): who decides, who is the day-to-day contact and who pays, \
          with their own subscription when they have one with us.",
    columns: &[
        GROUP_ID,
        Column {
            name: "person_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "关键人编号",
            meaning: "Key person's id within the operator's group-customer system.",
        },
        Column {
            name: "role",
            kind: ColumnKind::Enum(KEY_ROLES),
            required: true,
            unit: "",
            zh: "角色",
            meaning: "`decision_maker` 决策人, `contact` 联系人 or `finance` 财务负责人.",
        },
        Column {
            name: "subscriber_id",
            kind: ColumnKind::Int {
                min: 1,
                max: i64::MAX,
            },
            required: false,
            unit: "",
            zh: "本网号码用户编号",
            meaning: "The key person's own subscription with us, if any; its churn signals are the \
                      group's.",
        },
        Column {
            name: "title",
            kind: ColumnKind::Text { max_len: 64 },
            required: false,
            unit: "",
            zh: "职务",
            meaning: "Job title.",
        },
    ],
    key: &["group_id", "person_id"],
    references: &[
        GROUP_REFERENCE,
        Reference {
            column: "subscriber_id",
            table: Table::Subscribers,
            target_column: "subscriber_id",
        },
    ],
};

pub(super) static GROUP_PRODUCTS: TableSpec = TableSpec {
    table: Table::GroupProducts,
    zh: "集团产品",
    doc: "Products a group buys as a whole: the virtual private network (VPMN 集团V网), dedicated \
          lines (专线) and shared data pools (流量池).",
    columns: &[
        GROUP_ID,
        Column {
            name: "product_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "产品实例编号",
            meaning: "Instance of the product the group holds.",
        },
        Column {
            name: "kind",
            kind: ColumnKind::Enum(GROUP_PRODUCT_KINDS),
            required: true,
            unit: "",
            zh: "产品类型",
            meaning: "`vpmn` 集团V网, `dedicated_line` 专线, `data_pool` 流量池 or `other`.",
        },
        Column {
            name: "monthly_fee",
            kind: MONEY,
            required: true,
            unit: "yuan/month",
            zh: "月费",
            meaning: "What the group pays for it a month.",
        },
        Column {
            name: "start_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "开通日期",
            meaning: "Day the product was opened.",
        },
        Column {
            name: "end_date",
            kind: ColumnKind::Date,
            required: false,
            unit: "",
            zh: "拆除日期",
            meaning: "Day it was cancelled; empty while it runs.",
        },
        Column {
            name: "status",
            kind: ColumnKind::Enum(PRODUCT_STATUSES),
            required: true,
            unit: "",
            zh: "状态",
            meaning: "`active` or `cancelled` (a cancelled product needs its `end_date`).",
        },
    ],
    key: &["group_id", "product_id"],
    references: &[GROUP_REFERENCE],
};

pub(super) static GROUP_VISITS: TableSpec = TableSpec {
    table: Table::GroupVisits,
    zh: "拜访记录",
    doc: "Account managers' visits (拜访) to their groups: who went, when, how, and what they \
          found.",
    columns: &[
        Column {
            name: "visit_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "拜访编号",
            meaning: "Visit record id.",
        },
        GROUP_ID,
        Column {
            name: "manager_id",
            kind: ID,
            required: true,
            unit: "",
            zh: "客户经理",
            meaning: "Account manager who made the visit.",
        },
        Column {
            name: "visit_date",
            kind: ColumnKind::Date,
            required: true,
            unit: "",
            zh: "拜访日期",
            meaning: "Day of the visit.",
        },
        Column {
            name: "channel",
            kind: ColumnKind::Enum(VISIT_CHANNELS),
            required: true,
            unit: "",
            zh: "拜访方式",
            meaning: "`onsite` 上门, `phone` 电话, `wechat` 微信 or `meeting` 会议.",
        },
        Column {
            name: "outcome",
            kind: ColumnKind::Enum(VISIT_OUTCOMES),
            required: true,
            unit: "",
            zh: "拜访结果",
            meaning: "`routine` 例行, `needs_follow_up` 待跟进, `complaint` 有投诉, \
                      `competitor_offer` 竞争对手接触, `renewal_agreed` 续约达成, `expansion` 业务拓展.",
        },
        Column {
            name: "notes",
            kind: ColumnKind::Text { max_len: 512 },
            required: false,
            unit: "",
            zh: "拜访纪要",
            meaning: "What was said and agreed.",
        },
    ],
    key: &["visit_id"],
    references: &[GROUP_REFERENCE],
};
