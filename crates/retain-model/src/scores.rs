//! The churn scores (`<workspace>/scores/<as-of>.csv`): one line per subscriber scored at a
//! date, riskiest first, with the decile, up to three reason categories and the model version.
//! This module is the file's only writer and reader; the other stages ask it for what they need
//! (probabilities, deciles, one subscriber's line) and never parse the file themselves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use retain_data::{SubscriberId, Workspace};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reasons::Reason;

/// The directory under the workspace root.
const DIR: &str = "scores";

/// The columns, in order; a file with any other header is not a scores file.
const HEADER: [&str; 7] = [
    "subscriber_id",
    "probability",
    "decile",
    "reason_1",
    "reason_2",
    "reason_3",
    "model_version",
];

/// One subscriber's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreLine {
    pub subscriber_id: SubscriberId,
    pub probability: f64,
    /// 1 is the riskiest tenth of the subscribers scored, 10 the safest.
    pub decile: u8,
    /// Reason categories, strongest first (at most three).
    pub reasons: Vec<String>,
    pub model_version: u32,
}

/// One scores file of a workspace.
#[derive(Debug, Clone)]
pub struct ScoresFile {
    pub path: PathBuf,
    /// The scoring date, from the file's name.
    pub as_of: String,
}

/// Where the scores at `as_of` are (or will be) written.
#[must_use]
pub fn scores_path(workspace: &Workspace, as_of: NaiveDate) -> PathBuf {
    workspace.root().join(DIR).join(format!("{as_of}.csv"))
}

/// The newest scores file, if the workspace has been scored.
#[must_use]
pub fn latest_scores(workspace: &Workspace) -> Option<ScoresFile> {
    ScoresFile::at(retain_data::newest_file(
        &workspace.root().join(DIR),
        "csv",
    )?)
}

/// The newest scores file other than `current`: what a new scoring's drift is measured against.
#[must_use]
pub fn previous_scores(workspace: &Workspace, current: &Path) -> Option<ScoresFile> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace.root().join(DIR))
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv") && p != current)
        .collect();
    files.sort();
    ScoresFile::at(files.pop()?)
}

/// Ranks the subscribers riskiest first (ties in id order, so a file is the same from run to
/// run), gives each its decile and writes `scores/<as-of>.csv` whole or not at all. `reasons`
/// holds the strongest categories of those explained. Returns the file.
pub fn write_scores<S: std::hash::BuildHasher>(
    workspace: &Workspace,
    as_of: NaiveDate,
    model_version: u32,
    ids: &[i64],
    probabilities: &[f64],
    reasons: &HashMap<i64, Vec<Reason>, S>,
) -> Result<ScoresFile> {
    if ids.len() != probabilities.len() {
        return Err(Error::Data(format!(
            "{} subscribers but {} probabilities to write",
            ids.len(),
            probabilities.len()
        )));
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|a, b| {
        probabilities[*b]
            .total_cmp(&probabilities[*a])
            .then(ids[*a].cmp(&ids[*b]))
    });
    let path = scores_path(workspace, as_of);
    let dir = workspace.root().join(DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let n = ids.len().max(1);
    retain_data::write_atomically_with(&path, |out| {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(HEADER)?;
        let version = model_version.to_string();
        for (rank, &i) in order.iter().enumerate() {
            let reasons = reasons.get(&ids[i]);
            let reason = |k: usize| reasons.and_then(|r| r.get(k)).map_or("", |r| r.category);
            w.write_record([
                ids[i].to_string().as_str(),
                &format!("{:.6}", probabilities[i]),
                &(rank * 10 / n + 1).to_string(),
                reason(0),
                reason(1),
                reason(2),
                &version,
            ])?;
        }
        w.flush()?;
        Ok(())
    })?;
    Ok(ScoresFile {
        path,
        as_of: as_of.to_string(),
    })
}

impl ScoresFile {
    pub(crate) fn at(path: PathBuf) -> Option<ScoresFile> {
        let as_of = path.file_stem()?.to_string_lossy().into_owned();
        Some(ScoresFile { path, as_of })
    }

    /// The file's name, as reports cite it.
    #[must_use]
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Calls `each` with every line's fields, after checking the header.
    fn scan(&self, mut each: impl FnMut(&csv::ByteRecord) -> Result<bool>) -> Result<()> {
        let bad = |e: csv::Error| Error::Data(format!("{}: {e}", self.path.display()));
        let mut reader = csv::Reader::from_path(&self.path).map_err(bad)?;
        let header = reader.byte_headers().map_err(bad)?;
        if !header.iter().eq(HEADER.iter().map(|h| h.as_bytes())) {
            return Err(Error::Data(format!(
                "{}: not a scores file (its columns are not {})",
                self.path.display(),
                HEADER.join(", ")
            )));
        }
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).map_err(bad)? {
            if !each(&record)? {
                break;
            }
        }
        Ok(())
    }

    fn field<T: std::str::FromStr>(&self, record: &csv::ByteRecord, i: usize) -> Result<T> {
        std::str::from_utf8(record.get(i).unwrap_or_default())
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                let line = record.position().map_or(0, csv::Position::line);
                Error::Data(format!(
                    "{}: line {line}, column {}: not a valid {}",
                    self.path.display(),
                    i + 1,
                    HEADER[i]
                ))
            })
    }

    /// Every subscriber's churn probability, sorted by subscriber id.
    pub fn probabilities(&self) -> Result<Probabilities> {
        let mut out = Vec::new();
        self.scan(|r| {
            out.push((self.field(r, 0)?, self.field(r, 1)?));
            Ok(true)
        })?;
        out.sort_unstable_by_key(|&(id, _)| id);
        Ok(Probabilities(out))
    }

    /// Every subscriber's decile (1 = riskiest).
    pub fn deciles(&self) -> Result<HashMap<i64, u8>> {
        let mut out = HashMap::new();
        self.scan(|r| {
            out.insert(self.field(r, 0)?, self.field(r, 2)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every line, in the file's order (riskiest first).
    pub fn lines(&self) -> Result<Vec<ScoreLine>> {
        let mut out = Vec::new();
        self.scan(|r| {
            out.push(self.score_line(r, SubscriberId::from(self.field::<i64>(r, 0)?))?);
            Ok(true)
        })?;
        Ok(out)
    }

    fn score_line(&self, r: &csv::ByteRecord, subscriber_id: SubscriberId) -> Result<ScoreLine> {
        let reasons = (3..6)
            .filter_map(|i| std::str::from_utf8(r.get(i)?).ok())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(ScoreLine {
            subscriber_id,
            probability: self.field(r, 1)?,
            decile: self.field(r, 2)?,
            reasons,
            model_version: self.field(r, 6)?,
        })
    }

    /// One subscriber's line, if the subscriber was scored.
    pub fn line(&self, subscriber_id: SubscriberId) -> Result<Option<ScoreLine>> {
        let mut found = None;
        self.scan(|r| {
            if self.field::<i64>(r, 0)? != subscriber_id.get() {
                return Ok(true);
            }
            found = Some(self.score_line(r, subscriber_id)?);
            Ok(false)
        })?;
        Ok(found)
    }
}

/// Churn probabilities by subscriber id, sorted by id.
#[derive(Debug, Clone, Default)]
pub struct Probabilities(Vec<(i64, f64)>);

impl Probabilities {
    #[must_use]
    pub fn get(&self, subscriber_id: i64) -> Option<f64> {
        self.0
            .binary_search_by_key(&subscriber_id, |&(id, _)| id)
            .ok()
            .map(|at| self.0[at].1)
    }

    /// The probabilities alone, in subscriber order.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.0.iter().map(|&(_, p)| p)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(category: &'static str) -> Reason {
        Reason {
            category,
            name_zh: "",
            weight: 1.0,
            top_feature: String::new(),
            confidence: None,
        }
    }

    #[test]
    fn scores_are_written_riskiest_first_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        assert!(latest_scores(&ws).is_none());
        let ids: Vec<i64> = (1..=20).collect();
        let probabilities: Vec<f64> = ids.iter().map(|&i| (i % 7) as f64 / 10.0).collect();
        let reasons = HashMap::from([(6, vec![reason("usage_decline"), reason("complaints")])]);
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let file = write_scores(&ws, day, 3, &ids, &probabilities, &reasons).unwrap();
        assert_eq!(file.as_of, "2026-11-01");
        let latest = latest_scores(&ws).unwrap();
        assert_eq!(latest.path, file.path);
        let text = std::fs::read_to_string(&file.path).unwrap();
        let first: Vec<&str> = text.lines().take(3).collect();
        // 6 and 13 share the highest probability: the smaller id comes first.
        assert_eq!(
            first,
            [
                HEADER.join(",").as_str(),
                "6,0.600000,1,usage_decline,complaints,,3",
                "13,0.600000,1,,,,3"
            ]
        );
        let p = latest.probabilities().unwrap();
        assert_eq!(p.len(), 20);
        assert_eq!(p.get(6), Some(0.6));
        assert_eq!(p.get(21), None);
        let deciles = latest.deciles().unwrap();
        assert_eq!(deciles[&6], 1);
        assert_eq!(deciles[&7], 10);
        assert_eq!(
            latest.line(SubscriberId(6)).unwrap().unwrap(),
            ScoreLine {
                subscriber_id: SubscriberId(6),
                probability: 0.6,
                decile: 1,
                reasons: vec!["usage_decline".into(), "complaints".into()],
                model_version: 3,
            }
        );
        assert_eq!(latest.line(SubscriberId(99)).unwrap(), None);
        // No temporary file is left beside it.
        let names = std::fs::read_dir(file.path.parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(names, 1);

        let later = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let newer = write_scores(&ws, later, 4, &ids, &probabilities, &reasons).unwrap();
        assert_eq!(latest_scores(&ws).unwrap().as_of, "2026-12-01");
        assert_eq!(
            previous_scores(&ws, &newer.path).unwrap().name(),
            "2026-11-01.csv"
        );
    }

    #[test]
    fn a_file_that_is_not_a_scores_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create_or_open(dir.path()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let path = scores_path(&ws, day);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "id,p\n1,0.5\n").unwrap();
        let err = latest_scores(&ws).unwrap().probabilities().unwrap_err();
        assert!(err.to_string().contains("not a scores file"), "{err}");
        std::fs::write(
            &path,
            format!("{}\n1,0.5,1,,,,2\n2,high,1,,,,2\n", HEADER.join(",")),
        )
        .unwrap();
        let err = latest_scores(&ws).unwrap().probabilities().unwrap_err();
        assert!(
            err.to_string()
                .contains("line 3, column 2: not a valid probability"),
            "{err}"
        );
    }
}
