//! The quarantine file: every rejected row with its file, line, column and reason, in line
//! order, quoted so a spreadsheet shows the operator's data instead of running it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One rejected row.
pub(super) struct Rejection {
    /// Index of the file in the load.
    pub(super) file: usize,
    pub(super) line: u64,
    pub(super) column: Option<String>,
    pub(super) reason: String,
    pub(super) raw: String,
}

pub(super) struct QuarantineWriter {
    writer: csv::Writer<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    files: Vec<String>,
    by_column: BTreeMap<String, u64>,
    /// Rejections found after the read (duplicates), merged into line order at the end.
    late: Vec<Rejection>,
}

impl QuarantineWriter {
    pub(super) fn create(path: PathBuf, files: &[PathBuf]) -> Result<Self> {
        let tmp = path.with_extension("csv.tmp");
        let mut writer = csv::Writer::from_path(&tmp).map_err(|e| Error::Io {
            context: format!("creating {}", tmp.display()),
            source: e.into(),
        })?;
        writer
            .write_record(["file", "line", "column", "reason", "raw"])
            .map_err(|e| Error::io("writing the quarantine file", e.into()))?;
        Ok(Self {
            writer,
            tmp,
            path,
            files: files.iter().map(|f| f.display().to_string()).collect(),
            by_column: BTreeMap::new(),
            late: Vec::new(),
        })
    }

    fn count(&mut self, r: &Rejection) {
        let column = r.column.as_deref().unwrap_or("");
        *self
            .by_column
            .entry(if column.is_empty() {
                "(row)".to_owned()
            } else {
                column.to_owned()
            })
            .or_default() += 1;
    }

    pub(super) fn write(&mut self, r: &Rejection) -> Result<()> {
        self.count(r);
        write_rejection(&mut self.writer, &self.files, r)
    }

    pub(super) fn write_late(&mut self, r: Rejection) {
        self.count(&r);
        self.late.push(r);
    }

    pub(super) fn discard(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.tmp);
    }

    pub(super) fn finish(self) -> Result<(PathBuf, BTreeMap<String, u64>)> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| Error::io("writing the quarantine file", e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("syncing the quarantine file", e))?;
        drop(file);
        let written = if self.late.is_empty() {
            self.tmp
        } else {
            let merged = merge_late(&self.tmp, self.late, &self.files)?;
            let _ = std::fs::remove_file(&self.tmp);
            merged
        };
        std::fs::rename(&written, &self.path)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        Ok((self.path, self.by_column))
    }
}

/// Writes the rejections of `tmp` with the late ones in their places, by file and line, to a
/// new file; returns its path.
fn merge_late(tmp: &Path, mut late: Vec<Rejection>, files: &[String]) -> Result<PathBuf> {
    let quarantine_io = |e: csv::Error| Error::io("writing the quarantine file", e.into());
    late.sort_by_key(|r| (r.file, r.line));
    let merged_path = tmp.with_extension("merging");
    let mut merged = csv::Writer::from_path(&merged_path).map_err(quarantine_io)?;
    merged
        .write_record(["file", "line", "column", "reason", "raw"])
        .map_err(quarantine_io)?;
    let mut reader = csv::Reader::from_path(tmp).map_err(quarantine_io)?;
    let mut late = late.into_iter().peekable();
    for record in reader.records() {
        let record = record.map_err(quarantine_io)?;
        let place = (
            files
                .iter()
                .position(|f| crate::spreadsheet_cell(f) == record[0])
                .unwrap_or(usize::MAX),
            record[1].parse::<u64>().unwrap_or(u64::MAX),
        );
        while let Some(r) = late.next_if(|r| (r.file, r.line) <= place) {
            write_rejection(&mut merged, files, &r)?;
        }
        merged.write_record(&record).map_err(quarantine_io)?;
    }
    for r in late {
        write_rejection(&mut merged, files, &r)?;
    }
    merged
        .into_inner()
        .map_err(|e| Error::io("writing the quarantine file", e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("syncing the quarantine file", e))?;
    Ok(merged_path)
}

fn write_rejection(
    writer: &mut csv::Writer<std::fs::File>,
    files: &[String],
    r: &Rejection,
) -> Result<()> {
    // People open the quarantine file in a spreadsheet: a rejected row is the operator's data.
    let cell = crate::spreadsheet_cell;
    writer
        .write_record([
            cell(&files[r.file]).as_ref(),
            r.line.to_string().as_str(),
            &cell(r.column.as_deref().unwrap_or("")),
            &cell(&r.reason),
            &cell(&r.raw),
        ])
        .map_err(|e| Error::io("writing the quarantine file", e.into()))
}
