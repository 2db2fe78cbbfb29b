//! The warning lists a run writes (`<workspace>/warnings/<as-of>-<cadence>.csv`, with a
//! Parquet copy of its first columns that conditions read): this module is their only writer
//! and reader, and the one place the warning levels are named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use retain_data::{SubscriberId, Workspace};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::Warning;

/// Warning levels, most urgent first (so `Red < Yellow < Blue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Red,
    Yellow,
    Blue,
}

impl Level {
    /// Every level, most urgent first.
    pub const ALL: [Level; 3] = [Level::Red, Level::Yellow, Level::Blue];

    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Level::Red => "red",
            Level::Yellow => "yellow",
            Level::Blue => "blue",
        }
    }

    #[must_use]
    pub fn from_code(code: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.code() == code)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The CSV's columns, in order.
const HEADER: [&str; 10] = [
    "subscriber_id",
    "level",
    "score",
    "cohort",
    "branch_id",
    "manager_id",
    "rules",
    "reasons_zh",
    "reasons_en",
    "details",
];

/// One subscriber's entry as a list file holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub subscriber_id: SubscriberId,
    pub level: Level,
    pub score: i64,
    pub cohort: String,
    pub branch_id: String,
    pub manager_id: String,
    /// Ids of the rules that fired.
    pub rules: Vec<String>,
    pub reasons_zh: String,
    pub reasons_en: String,
}

/// One warning list of a workspace.
#[derive(Debug, Clone)]
pub struct ListFile {
    pub path: PathBuf,
    /// `<as-of>-<cadence>`, from the file's name.
    pub name: String,
}

/// The newest list of either cadence, if the warning has run.
#[must_use]
pub fn latest_list(workspace: &Workspace) -> Option<ListFile> {
    ListFile::at(retain_data::newest_file(
        &retain_features::outputs::warnings_dir(workspace),
        "csv",
    )?)
}

/// Every list, oldest first.
#[must_use]
pub fn all_lists(workspace: &Workspace) -> Vec<ListFile> {
    let Ok(entries) = std::fs::read_dir(retain_features::outputs::warnings_dir(workspace)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    files.into_iter().filter_map(ListFile::at).collect()
}

impl ListFile {
    fn at(path: PathBuf) -> Option<ListFile> {
        let name = path.file_stem()?.to_string_lossy().into_owned();
        Some(ListFile { path, name })
    }

    /// Calls `each` with every line, after checking the header; `each` returns false to stop.
    fn scan(&self, mut each: impl FnMut(&csv::StringRecord) -> Result<bool>) -> Result<()> {
        let bad = |e: csv::Error| Error::BadRequest(format!("{}: {e}", self.path.display()));
        let mut reader = csv::Reader::from_path(&self.path).map_err(bad)?;
        let header = reader.headers().map_err(bad)?;
        if !header.iter().eq(HEADER) {
            return Err(Error::BadRequest(format!(
                "{}: not a warning list (its columns are not {})",
                self.path.display(),
                HEADER.join(", ")
            )));
        }
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(bad)? {
            if !each(&record)? {
                break;
            }
        }
        Ok(())
    }

    fn invalid(&self, record: &csv::StringRecord, column: usize) -> Error {
        let line = record.position().map_or(0, csv::Position::line);
        Error::BadRequest(format!(
            "{}: line {line}, column {}: not a valid {}",
            self.path.display(),
            column + 1,
            HEADER[column]
        ))
    }

    fn id(&self, r: &csv::StringRecord) -> Result<i64> {
        r[0].parse().map_err(|_| self.invalid(r, 0))
    }

    fn level(&self, r: &csv::StringRecord) -> Result<Level> {
        Level::from_code(&r[1]).ok_or_else(|| self.invalid(r, 1))
    }

    fn listed(&self, r: &csv::StringRecord) -> Result<Listed> {
        Ok(Listed {
            subscriber_id: SubscriberId(self.id(r)?),
            level: self.level(r)?,
            score: r[2].parse().map_err(|_| self.invalid(r, 2))?,
            cohort: r[3].to_owned(),
            branch_id: r[4].to_owned(),
            manager_id: r[5].to_owned(),
            rules: r[6].split_whitespace().map(str::to_owned).collect(),
            reasons_zh: r[7].to_owned(),
            reasons_en: r[8].to_owned(),
        })
    }

    /// Every entry, in the list's order (red first, highest score first).
    pub fn read(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        self.scan(|r| {
            out.push(self.listed(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every listed subscriber's level.
    pub fn levels(&self) -> Result<HashMap<i64, Level>> {
        let mut out = HashMap::new();
        self.scan(|r| {
            out.insert(self.id(r)?, self.level(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// One subscriber's entry with the rules that fired and their values, if listed.
    pub fn find(&self, subscriber_id: SubscriberId) -> Result<Option<(Listed, serde_json::Value)>> {
        let mut found = None;
        self.scan(|r| {
            if self.id(r)? != subscriber_id.get() {
                return Ok(true);
            }
            let details = serde_json::from_str(&r[9]).map_err(|_| self.invalid(r, 9))?;
            found = Some((self.listed(r)?, details));
            Ok(false)
        })?;
        Ok(found)
    }
}

/// The list `stem` (`<as-of>-<cadence>`) in `dir`: the CSV, then its Parquet copy, each
/// written whole or not at all. Returns the CSV's path.
pub(crate) fn write(dir: &Path, stem: &str, warnings: &[Warning]) -> Result<PathBuf> {
    let csv_path = dir.join(format!("{stem}.csv"));
    retain_data::write_atomically_with(&csv_path, |out| {
        std::io::Write::write_all(out, retain_data::BOM)?;
        let mut w = csv::Writer::from_writer(out);
        w.write_record(HEADER)?;
        for warning in warnings {
            let ids: Vec<&str> = warning.rules.iter().map(|r| r.id.as_str()).collect();
            let zh: Vec<&str> = warning.rules.iter().map(|r| r.name_zh.as_str()).collect();
            let en: Vec<&str> = warning.rules.iter().map(|r| r.name_en.as_str()).collect();
            let details = serde_json::to_string(&warning.rules)?;
            w.write_record([
                warning.subscriber_id.to_string().as_str(),
                warning.level.code(),
                &warning.score.to_string(),
                &warning.cohort,
                warning.branch_id.as_deref().unwrap_or(""),
                warning.manager_id.as_deref().unwrap_or(""),
                &ids.join(" "),
                &zh.join("；"),
                &en.join("; "),
                &details,
            ])?;
        }
        w.flush()
    })?;
    write_parquet(&dir.join(format!("{stem}.parquet")), warnings)?;
    Ok(csv_path)
}

/// The columns conditions read (`latest_warnings`), and the previous run's levels.
fn write_parquet(path: &Path, warnings: &[Warning]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscriber_id", DataType::Int64, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("score", DataType::Int64, false),
        Field::new("cohort", DataType::Utf8, false),
        Field::new("rules", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                warnings.iter().map(|w| w.subscriber_id),
            )),
            Arc::new(StringArray::from_iter_values(
                warnings.iter().map(|w| w.level.code()),
            )),
            Arc::new(Int64Array::from_iter_values(
                warnings.iter().map(|w| w.score),
            )),
            Arc::new(StringArray::from_iter_values(
                warnings.iter().map(|w| w.cohort.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(warnings.iter().map(|w| {
                w.rules
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }))),
        ],
    )
    .map_err(|e| Error::BadRequest(format!("building the warning list: {e}")))?;
    let name = path
        .file_name()
        .map_or_else(|| "list".into(), |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut writer = retain_data::TableWriter::create(&tmp, schema)?;
        writer.write(&batch)?;
        writer.close()?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::run::FiredRule;

    fn warning(id: i64, level: Level, score: i64, rule: &str) -> Warning {
        Warning {
            subscriber_id: id,
            level,
            score,
            cohort: "gt12m".into(),
            branch_id: Some("B01".into()),
            manager_id: None,
            rules: vec![FiredRule {
                id: rule.into(),
                name_zh: "携号转网查询".into(),
                name_en: "port-out query".into(),
                points: score,
                values: BTreeMap::from([("x".to_owned(), serde_json::json!(2.0))]),
            }],
        }
    }

    #[test]
    fn levels_order_most_urgent_first_and_read_their_codes() {
        assert!(Level::Red < Level::Yellow && Level::Yellow < Level::Blue);
        for level in Level::ALL {
            assert_eq!(Level::from_code(level.code()), Some(level));
            assert_eq!(
                serde_json::to_value(level).unwrap(),
                serde_json::json!(level.code())
            );
        }
        assert_eq!(Level::from_code("purple"), None);
    }

    #[test]
    fn a_list_is_written_whole_and_read_back_by_its_only_reader() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        assert!(latest_list(&ws).is_none());
        let out = retain_features::outputs::warnings_dir(&ws);
        std::fs::create_dir_all(&out).unwrap();
        let warnings = [
            warning(7, Level::Red, 90, "EW101"),
            warning(3, Level::Blue, 20, "EW202"),
        ];
        let path = write(&out, "2026-11-01-monthly", &warnings).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["2026-11-01-monthly.csv", "2026-11-01-monthly.parquet"],
            "no temporary file is left"
        );
        let list = latest_list(&ws).unwrap();
        assert_eq!(
            (list.path.as_path(), list.name.as_str()),
            (path.as_path(), "2026-11-01-monthly")
        );
        let read = list.read().unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].level, Level::Red);
        assert_eq!(read[0].branch_id, "B01");
        assert_eq!(read[0].manager_id, "");
        assert_eq!(read[0].rules, ["EW101"]);
        assert_eq!(read[0].reasons_zh, "携号转网查询");
        assert_eq!(
            list.levels().unwrap(),
            HashMap::from([(7, Level::Red), (3, Level::Blue)])
        );
        let (listed, details) = list.find(SubscriberId(3)).unwrap().unwrap();
        assert_eq!(listed.score, 20);
        assert_eq!(details[0]["values"]["x"], serde_json::json!(2.0));
        assert!(list.find(SubscriberId(4)).unwrap().is_none());

        write(&out, "2026-12-01-monthly", &warnings[..1]).unwrap();
        let all: Vec<String> = all_lists(&ws).into_iter().map(|l| l.name).collect();
        assert_eq!(all, ["2026-11-01-monthly", "2026-12-01-monthly"]);
        assert_eq!(latest_list(&ws).unwrap().read().unwrap().len(), 1);
    }

    #[test]
    fn a_damaged_list_is_an_error_naming_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let out = retain_features::outputs::warnings_dir(&ws);
        std::fs::create_dir_all(&out).unwrap();
        let path = out.join("2026-11-01-weekly.csv");
        std::fs::write(&path, "subscriber_id,level\n1,red\n").unwrap();
        let err = latest_list(&ws).unwrap().read().unwrap_err().to_string();
        assert!(err.contains("not a warning list"), "{err}");
        std::fs::write(
            &path,
            format!(
                "{}\n1,red,9,gt12m,,,,,,[]\n2,purple,9,gt12m,,,,,,[]\n",
                HEADER.join(",")
            ),
        )
        .unwrap();
        let err = latest_list(&ws).unwrap().levels().unwrap_err().to_string();
        assert!(err.contains("line 3, column 2: not a valid level"), "{err}");
    }
}
