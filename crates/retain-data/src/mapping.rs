//! Column mapping files: how an operator's own export maps onto a canonical table.
//!
//! ```toml
//! encoding = "gbk"            # auto (default), utf-8, gbk or gb18030
//! delimiter = ","
//! date_format = "%Y%m%d"      # tried before the built-in formats
//!
//! [columns]                   # canonical name = the export's header
//! subscriber_id = "用户编号"
//! status = "用户状态"
//!
//! [values.status]             # the export's codes → canonical codes
//! "正常" = "active"
//! "停机" = "suspended"
//! "销户" = "cancelled"
//!
//! [defaults]                  # constants for columns the export lacks
//! province = "江苏"
//! ```
//!
//! A `[columns]` entry may also compute its value ([`Computed`]): a sum of columns
//! (`{ sum = ["主叫时长", "被叫时长"], round = "up" }`) or a date some days before a reference
//! date. A `[wide]` section reads an export with one row per subscriber and one column per
//! measure and month (`arpu_6`, `arpu_7`, …): each source row then yields one canonical row per
//! month, and `[columns]` names the stem (`fee = "arpu"`). See `docs/wide-exports.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::parse::{FieldFormat, parse_date, parse_month};
use crate::schema::{ColumnKind, TableSpec};

/// Text encodings accepted for CSV input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 unless the start of the file is not UTF-8 but is valid GB18030.
    #[default]
    Auto,
    #[serde(alias = "utf8")]
    Utf8,
    /// GBK is a subset of GB18030, so both decode as GB18030.
    #[serde(alias = "GBK")]
    Gbk,
    #[serde(alias = "GB18030")]
    Gb18030,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Self::Auto),
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "gbk" | "cp936" => Ok(Self::Gbk),
            "gb18030" => Ok(Self::Gb18030),
            other => Err(format!(
                "unknown encoding {other:?} (auto, utf-8, gbk, gb18030)"
            )),
        }
    }
}

/// Where a canonical column's value comes from in the export.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSource {
    /// One column (in a wide mapping, the stem of one column per month).
    Column(String),
    /// A value computed from export columns.
    Computed(Computed),
}

/// A value computed from export columns: `{ sum = ["a", "b"], round = "up" }` or
/// `{ column = "aon", days_before = "2014-09-30" }`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Computed {
    /// The one column the value comes from (with `round` or `days_before`).
    #[serde(default)]
    pub column: Option<String>,
    /// Columns whose numbers are added up.
    #[serde(default)]
    pub sum: Option<Vec<String>>,
    /// Rounds the number to a whole one, for exports with fractions where retain counts units.
    #[serde(default)]
    pub round: Option<Rounding>,
    /// The column holds a number of days before this date (`YYYY-MM-DD`); the value is that date.
    #[serde(default)]
    pub days_before: Option<String>,
}

/// How `round` makes a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// Half away from zero.
    Nearest,
    /// Up, as billing counts a started minute: only an exact 0 stays 0.
    Up,
}

impl ColumnSource {
    /// The export columns (or stems) this source reads.
    #[must_use]
    pub fn inputs(&self) -> Vec<&str> {
        match self {
            ColumnSource::Column(name) => vec![name.as_str()],
            ColumnSource::Computed(c) => c
                .column
                .iter()
                .chain(c.sum.iter().flatten())
                .map(String::as_str)
                .collect(),
        }
    }
}

impl<'de> Deserialize<'de> for ColumnSource {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ColumnSource;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a column name, or a table such as { sum = [\"a\", \"b\"] }")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(ColumnSource::Column(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                Computed::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ColumnSource::Computed)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The `[wide]` section: one source row holds several months, one column per measure and month.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wide {
    /// The month suffix in the export's column names → the canonical month (`"6" = "2014-06"`).
    pub months: BTreeMap<String, String>,
    /// How a column name is made of a stem and a suffix.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Columns of `[columns]` read once per source row (the subscriber id), not per month.
    #[serde(default)]
    pub per_row: Vec<String>,
}

fn default_pattern() -> String {
    "{column}_{month}".to_owned()
}

/// One month of a wide export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WideMonth {
    pub suffix: String,
    /// The canonical month, `YYYY-MM`.
    pub month: String,
}

impl Wide {
    /// The months in calendar order, checked: each a valid month, none twice.
    pub(crate) fn months(&self) -> std::result::Result<Vec<WideMonth>, String> {
        if self.months.is_empty() {
            return Err("[wide] months is empty: name at least one suffix and its month".into());
        }
        let mut months = Vec::with_capacity(self.months.len());
        let mut seen = BTreeMap::new();
        for (suffix, text) in &self.months {
            let date = parse_month(text.trim(), &FieldFormat::default())
                .map_err(|e| format!("[wide] months {suffix:?}: {e}"))?;
            if let Some(other) = seen.insert(date, suffix) {
                return Err(format!(
                    "[wide] months {other:?} and {suffix:?} are both {}",
                    date.format("%Y-%m")
                ));
            }
            months.push((
                date,
                WideMonth {
                    suffix: suffix.clone(),
                    month: date.format("%Y-%m").to_string(),
                },
            ));
        }
        months.sort_by_key(|(date, _)| *date);
        Ok(months.into_iter().map(|(_, m)| m).collect())
    }

    /// The export's column for a stem and a month suffix.
    pub(crate) fn column_name(&self, stem: &str, suffix: &str) -> String {
        self.pattern
            .replace("{column}", stem)
            .replace("{month}", suffix)
    }

    fn check(&self, spec: &TableSpec, columns: &BTreeMap<String, ColumnSource>) -> CheckResult {
        if !matches!(spec.column(PERIOD).map(|c| c.kind), Some(ColumnKind::Month)) {
            return Err(format!(
                "[wide] needs a table with a monthly period column; {} has none",
                spec.name()
            ));
        }
        for placeholder in ["{column}", "{month}"] {
            if self.pattern.matches(placeholder).count() != 1 {
                return Err(format!(
                    "[wide] pattern {:?} must hold {placeholder} exactly once",
                    self.pattern
                ));
            }
        }
        self.months()?;
        for name in &self.per_row {
            if !columns.contains_key(name) {
                return Err(format!(
                    "[wide] per_row names {name:?}, which [columns] does not map"
                ));
            }
        }
        Ok(())
    }
}

/// The canonical column a wide mapping fills from the month suffix.
pub(crate) const PERIOD: &str = "period";

type CheckResult = std::result::Result<(), String>;

/// A parsed mapping file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default)]
    pub delimiter: Option<char>,
    #[serde(default)]
    pub date_format: Option<String>,
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// Canonical column → where its value comes from.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSource>,
    /// Canonical column → (source value → canonical value).
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// Canonical column → constant value used when the source has no such column.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// Set for an export with one column per measure and month.
    #[serde(default)]
    pub wide: Option<Wide>,
}

impl Mapping {
    /// Reads and checks a mapping file against the table it will be used for.
    pub fn load(path: &Path, spec: &TableSpec) -> Result<Mapping> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading mapping file {}", path.display()), e))?;
        let mapping: Mapping = toml::from_str(&text).map_err(|e| Error::BadMapping {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        mapping.check(spec).map_err(|reason| Error::BadMapping {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(mapping)
    }

    fn check(&self, spec: &TableSpec) -> CheckResult {
        let sections = [
            ("columns", self.columns.keys().collect::<Vec<_>>()),
            ("values", self.values.keys().collect()),
            ("defaults", self.defaults.keys().collect()),
        ];
        for (section, names) in sections {
            for name in names {
                if spec.column(name).is_none() {
                    return Err(format!(
                        "[{section}] names {name:?}, which is not a column of {} (columns: {})",
                        spec.name(),
                        spec.csv_header().join(", ")
                    ));
                }
            }
        }
        for (name, source) in &self.columns {
            let kind = spec.column(name).expect("checked above").kind;
            check_source(name, kind, source)?;
        }
        if let Some(wide) = &self.wide {
            wide.check(spec, &self.columns)?;
            let named = [
                ("columns", self.columns.contains_key(PERIOD)),
                ("defaults", self.defaults.contains_key(PERIOD)),
            ];
            if let Some((section, _)) = named.iter().find(|(_, named)| *named) {
                return Err(format!(
                    "[{section}] names {PERIOD}, which [wide] fills from the month suffix"
                ));
            }
        }
        if let Some(d) = self.delimiter
            && !d.is_ascii()
        {
            return Err(format!("delimiter {d:?} must be a single ASCII character"));
        }
        Ok(())
    }

    /// Where a canonical column's value comes from, when the mapping says.
    #[must_use]
    pub fn source(&self, canonical: &str) -> Option<&ColumnSource> {
        self.columns.get(canonical)
    }

    /// Translates a source value through `[values]`, if the column has a translation for it.
    #[must_use]
    pub fn translate<'a>(&'a self, canonical: &str, value: &'a str) -> &'a str {
        if self.values.is_empty() {
            return value;
        }
        self.values
            .get(canonical)
            .and_then(|m| m.get(value.trim()))
            .map_or(value, String::as_str)
    }
}

fn check_source(name: &str, kind: ColumnKind, source: &ColumnSource) -> CheckResult {
    let inputs = source.inputs();
    if inputs.iter().any(|i| i.trim().is_empty()) {
        return Err(format!("[columns] {name} names an empty column"));
    }
    let ColumnSource::Computed(c) = source else {
        return Ok(());
    };
    let numeric = matches!(kind, ColumnKind::Int { .. } | ColumnKind::Float { .. });
    match (&c.column, &c.sum) {
        (Some(_), None) => {}
        (None, Some(parts)) if !parts.is_empty() => {
            if !numeric {
                return Err(format!(
                    "[columns] {name}: sum needs a numeric column, and {name} is not one"
                ));
            }
            let distinct: BTreeSet<&String> = parts.iter().collect();
            if distinct.len() != parts.len() {
                return Err(format!("[columns] {name}: sum names a column twice"));
            }
        }
        (None, Some(_)) => return Err(format!("[columns] {name}: sum is empty")),
        _ => {
            return Err(format!(
                "[columns] {name}: give either column = \"…\" or sum = [\"…\", …]"
            ));
        }
    }
    if c.round.is_some() && !numeric {
        return Err(format!(
            "[columns] {name}: round needs a numeric column, and {name} is not one"
        ));
    }
    if let Some(date) = &c.days_before {
        if kind != ColumnKind::Date {
            return Err(format!(
                "[columns] {name}: days_before gives a date, and {name} is not a date column"
            ));
        }
        if c.column.is_none() || c.round.is_some() {
            return Err(format!(
                "[columns] {name}: days_before reads one column of whole days, without round"
            ));
        }
        reference_date(date).map_err(|e| format!("[columns] {name}: {e}"))?;
    }
    Ok(())
}

/// The reference date of `days_before`.
pub(crate) fn reference_date(text: &str) -> std::result::Result<NaiveDate, String> {
    parse_date(text.trim(), &FieldFormat::default())
        .map_err(|e| format!("days_before {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Table;

    fn check(text: &str, table: Table) -> std::result::Result<Mapping, String> {
        let mapping: Mapping = toml::from_str(text).map_err(|e| e.to_string())?;
        mapping.check(table.spec())?;
        Ok(mapping)
    }

    #[test]
    fn a_mapping_naming_an_unknown_column_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[columns]\nsubscriber = \"用户编号\"\n").unwrap();
        let err = Mapping::load(&path, Table::Subscribers.spec()).unwrap_err();
        assert!(err.to_string().contains("\"subscriber\""), "{err}");
    }

    #[test]
    fn values_are_translated() {
        let mapping: Mapping =
            toml::from_str("encoding = \"gbk\"\n[values.status]\n\"正常\" = \"active\"\n").unwrap();
        assert_eq!(mapping.encoding, Encoding::Gbk);
        assert_eq!(mapping.translate("status", " 正常 "), "active");
        assert_eq!(mapping.translate("status", "停机"), "停机");
        assert_eq!(mapping.source("status"), None);
    }

    #[test]
    fn computed_columns_parse_and_unknown_keys_are_rejected() {
        let mapping = check(
            "[columns]\nvoice_minutes = { sum = [\"og\", \"ic\"], round = \"up\" }\nfee = \"arpu\"\n",
            Table::UsageMonthly,
        )
        .unwrap();
        assert_eq!(
            mapping.source("voice_minutes"),
            Some(&ColumnSource::Computed(Computed {
                sum: Some(vec!["og".into(), "ic".into()]),
                round: Some(Rounding::Up),
                ..Computed::default()
            }))
        );
        assert_eq!(
            mapping.source("fee"),
            Some(&ColumnSource::Column("arpu".into()))
        );
        let err = check(
            "[columns]\nfee = { sum = [\"a\"], sun = 1 }\n",
            Table::UsageMonthly,
        )
        .unwrap_err();
        assert!(err.contains("unknown field `sun`"), "{err}");
        let err = check(
            "[columns]\nfee = { column = \"a\", round = \"sideways\" }\n",
            Table::UsageMonthly,
        )
        .unwrap_err();
        assert!(err.contains("unknown variant `sideways`"), "{err}");
    }

    #[test]
    fn computed_columns_must_fit_their_column() {
        let cases = [
            (
                "plan_id = { sum = [\"a\", \"b\"] }",
                "sum needs a numeric column",
            ),
            ("fee = { sum = [] }", "sum is empty"),
            ("fee = { sum = [\"a\", \"a\"] }", "names a column twice"),
            ("fee = { round = \"up\" }", "give either column"),
            (
                "fee = { column = \"a\", sum = [\"b\"] }",
                "give either column",
            ),
            ("fee = \"\"", "names an empty column"),
            (
                "fee = { column = \"a\", days_before = \"2014-09-30\" }",
                "not a date column",
            ),
        ];
        for (line, want) in cases {
            let err = check(&format!("[columns]\n{line}\n"), Table::UsageMonthly).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
        let err = check(
            "[columns]\njoin_date = { column = \"aon\", days_before = \"2014-13-01\" }\n",
            Table::Subscribers,
        )
        .unwrap_err();
        assert!(err.contains("days_before \"2014-13-01\""), "{err}");
        check(
            "[columns]\njoin_date = { column = \"aon\", days_before = \"2014-09-30\" }\n",
            Table::Subscribers,
        )
        .unwrap();
    }

    #[test]
    fn wide_sections_are_checked() {
        let ok = "[wide]\nmonths = { \"6\" = \"2014-06\", \"10\" = \"201410\" }\nper_row = [\"subscriber_id\"]\n\
                  [columns]\nsubscriber_id = \"mobile_number\"\nfee = \"arpu\"\n";
        let mapping = check(ok, Table::UsageMonthly).unwrap();
        let wide = mapping.wide.as_ref().unwrap();
        // Calendar order, not the order of the suffixes as text ("10" < "6").
        let months: Vec<(String, String)> = wide
            .months()
            .unwrap()
            .into_iter()
            .map(|m| (m.suffix, m.month))
            .collect();
        assert_eq!(
            months,
            vec![
                ("6".into(), "2014-06".into()),
                ("10".into(), "2014-10".into())
            ]
        );
        assert_eq!(wide.column_name("arpu", "6"), "arpu_6");

        let cases = [
            (
                "[wide]\nmonths = { \"6\" = \"2014-06\" }\n",
                Table::Subscribers,
                "monthly period column",
            ),
            (
                "[wide]\nmonths = {}\n",
                Table::UsageMonthly,
                "months is empty",
            ),
            (
                "[wide]\nmonths = { \"6\" = \"June\" }\n",
                Table::UsageMonthly,
                "[wide] months \"6\": \"June\" is not a month",
            ),
            (
                "[wide]\nmonths = { \"6\" = \"2014-06\", \"06\" = \"201406\" }\n",
                Table::UsageMonthly,
                "are both 2014-06",
            ),
            (
                "[wide]\nmonths = { \"6\" = \"2014-06\" }\npattern = \"{column}\"\n",
                Table::UsageMonthly,
                "must hold {month} exactly once",
            ),
            (
                "[wide]\nmonths = { \"6\" = \"2014-06\" }\nper_row = [\"subscriber_id\"]\n",
                Table::UsageMonthly,
                "per_row names \"subscriber_id\", which [columns] does not map",
            ),
            (
                "[wide]\nmonths = { \"6\" = \"2014-06\" }\n[defaults]\nperiod = \"2014-06\"\n",
                Table::UsageMonthly,
                "[defaults] names period",
            ),
            (
                "[wide]\nmonths = { \"6\" = \"2014-06\" }\nmonth = \"x\"\n",
                Table::UsageMonthly,
                "unknown field `month`",
            ),
        ];
        for (text, table, want) in cases {
            let err = check(text, table).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
