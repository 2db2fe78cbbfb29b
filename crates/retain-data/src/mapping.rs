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

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::schema::TableSpec;

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
    /// Canonical column → source header.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Canonical column → (source value → canonical value).
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// Canonical column → constant value used when the source has no such column.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
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

    fn check(&self, spec: &TableSpec) -> std::result::Result<(), String> {
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
        if let Some(d) = self.delimiter
            && !d.is_ascii()
        {
            return Err(format!("delimiter {d:?} must be a single ASCII character"));
        }
        Ok(())
    }

    /// The source header expected for a canonical column.
    #[must_use]
    pub fn source_name<'a>(&'a self, canonical: &'a str) -> &'a str {
        self.columns
            .get(canonical)
            .map_or(canonical, String::as_str)
    }

    /// Translates a source value through `[values]`, if the column has a translation for it.
    #[must_use]
    pub fn translate<'a>(&'a self, canonical: &str, value: &'a str) -> &'a str {
        self.values
            .get(canonical)
            .and_then(|m| m.get(value.trim()))
            .map_or(value, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Table;

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
        assert_eq!(mapping.source_name("status"), "status");
    }
}
