//! The canonical operator data model: one [`TableSpec`] per table.
//!
//! Everything that knows a column — ingest validation, Parquet schemas, the synthetic
//! operator's headers and `docs/data-model.md` — reads it from here, so they cannot drift apart.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

// The tables' specs, by group; this module holds what describes them and what reads them.
mod accounts;
mod groups;
mod history;
mod network;
mod usage;

use accounts::{CONTRACTS, PLANS, SUBSCRIBERS};
use groups::{GROUP_KEY_PEOPLE, GROUP_PRODUCTS, GROUP_VISITS, GROUPS};
pub use groups::{
    GROUP_PRODUCT_KINDS, GROUP_STATUSES, GROUP_TIERS, INDUSTRIES, KEY_ROLES, PRODUCT_STATUSES,
    VISIT_CHANNELS, VISIT_OUTCOMES,
};
use history::{CAMPAIGN_HISTORY, EVENTS};
pub use network::TECHNOLOGIES;
use network::{CALLING_CIRCLE, CELLS, NETWORK_WEEKLY};
use usage::{USAGE_MONTHLY, USAGE_WEEKLY};

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
    Groups,
    GroupKeyPeople,
    GroupProducts,
    GroupVisits,
    Cells,
    NetworkWeekly,
    CallingCircle,
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
    pub const ALL: [Table; 14] = [
        Table::Plans,
        Table::Subscribers,
        Table::Contracts,
        Table::UsageMonthly,
        Table::UsageWeekly,
        Table::Events,
        Table::CampaignHistory,
        Table::Groups,
        Table::GroupKeyPeople,
        Table::GroupProducts,
        Table::GroupVisits,
        Table::Cells,
        Table::NetworkWeekly,
        Table::CallingCircle,
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
            Table::Groups => &GROUPS,
            Table::GroupKeyPeople => &GROUP_KEY_PEOPLE,
            Table::GroupProducts => &GROUP_PRODUCTS,
            Table::GroupVisits => &GROUP_VISITS,
            Table::Cells => &CELLS,
            Table::NetworkWeekly => &NETWORK_WEEKLY,
            Table::CallingCircle => &CALLING_CIRCLE,
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
            Table::Groups => "groups",
            Table::GroupKeyPeople => "group_key_people",
            Table::GroupProducts => "group_products",
            Table::GroupVisits => "group_visits",
            Table::Cells => "cells",
            Table::NetworkWeekly => "network_weekly",
            Table::CallingCircle => "calling_circle",
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

// Column kinds and the id column that several table groups share.
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
/// Reasons a subscriber states when leaving or downgrading (离网/降档原因), as the counter or the
/// port-out retention call records them: the model's reason categories, and what only a
/// conversation reveals (price 资费偏高, relocation 迁居, other 其他).
pub const STATED_REASONS: &[&str] = &[
    "value_decline",
    "network_quality",
    "service_complaints",
    "competitor_lure",
    "contract_expiry",
    "billing_arrears",
    "low_engagement",
    "price",
    "relocation",
    "other",
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
