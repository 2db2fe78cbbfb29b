//! The operator data model and validated ingest.
//!
//! [`Table`] names the canonical tables and [`TableSpec`] describes each column (type, unit,
//! Chinese business term). [`ingest`] loads CSV (UTF-8 or GBK/GB18030) or Parquet files into a
//! [`Workspace`], quarantining every bad row with file, line, column and reason.
//!
//! ```no_run
//! use retain_data::{IngestOptions, Table, Workspace, ingest};
//!
//! let workspace = Workspace::create_or_open("op".as_ref())?;
//! let report = ingest(&workspace, Table::Plans, &["plans.csv".into()], &IngestOptions::default())?;
//! assert_eq!(report.read, report.loaded + report.quarantined);
//! # Ok::<(), retain_data::Error>(())
//! ```

mod backup;
mod error;
mod ingest;
mod mapping;
mod parse;
mod schema;
mod source;
mod spreadsheet;
mod stage;
mod subscriber;
mod table;
mod workspace;

pub use backup::{BackedUpFile, BackupSummary, Manifest, backup, restore};
pub use error::{Error, Location, Result};
pub use ingest::{FileReport, IngestOptions, IngestReport, ingest};
pub use mapping::{ColumnSource, Computed, Encoding, Mapping, Rounding, Wide};
pub use parse::{
    FieldFormat, Value, date_to_days, days_to_date, parse_date, parse_field, parse_month,
    parse_timestamp, parse_week,
};
pub use schema::{
    ARMS, CHANNELS, CONTRACT_KINDS, CUSTOMER_TYPES, Column, ColumnKind, EVENT_CATEGORIES,
    EVENT_CHANNELS, EVENT_KINDS, GROUP_PRODUCT_KINDS, GROUP_STATUSES, GROUP_TIERS, INDUSTRIES,
    KEY_ROLES, OFFER_KINDS, PRODUCT_STATUSES, Reference, SEVERITIES, STATED_REASONS, STATUSES,
    TECHNOLOGIES, Table, TableSpec, VISIT_CHANNELS, VISIT_OUTCOMES, data_model_markdown,
};
pub use source::{SourceInfo, decode_text, first_sheet_csv, is_workbook};
pub use spreadsheet::spreadsheet_cell;
pub use subscriber::SubscriberId;
pub use table::{TableWriter, read_batches, row_count};
pub use workspace::{
    BOM, CONFIG_FILE, EngineSection, FileLock, TableLock, Workspace, WorkspaceConfig,
    is_empty_path, lock_file, newest_file, read_json, write_atomically, write_atomically_with,
    write_json,
};
