//! Matching a file's header against the table through the mapping: which source column, constant
//! or computation feeds each canonical column, once per month of a wide export.

use std::path::Path;

use super::{ComputedSource, FieldSource, Layout, Resolved};
use crate::error::{Error, Result};
use crate::mapping::{ColumnSource, Computed, Mapping, PERIOD, Wide, WideMonth, reference_date};
use crate::schema::TableSpec;

/// Matches the file's header against the table, through the mapping.
pub(super) fn resolve_columns(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    header: &[String],
) -> Result<Resolved> {
    let normalized: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut used = vec![false; header.len()];
    let layouts = match &mapping.wide {
        None => vec![resolve_layout(
            path,
            spec,
            mapping,
            header,
            &normalized,
            None,
            &mut used,
        )?],
        Some(wide) => {
            let months = wide
                .months()
                .map_err(|reason| Error::bad_file(path, 0, None, reason))?;
            months
                .iter()
                .map(|month| {
                    resolve_layout(
                        path,
                        spec,
                        mapping,
                        header,
                        &normalized,
                        Some((wide, month)),
                        &mut used,
                    )
                })
                .collect::<Result<_>>()?
        }
    };
    for (i, name) in normalized.iter().enumerate() {
        if !used[i] && normalized[..i].contains(name) {
            return Err(Error::bad_file(
                path,
                1,
                Some(&header[i]),
                "the header names this column twice",
            ));
        }
    }
    let ignored = header
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(h, _)| h.clone())
        .collect();
    Ok(Resolved {
        layouts,
        delimiter: mapping.delimiter.unwrap_or(','),
        ignored,
        source_names: mapping.wide.is_some(),
    })
}

/// Resolves the canonical columns for one layout: the whole row, or one month of a wide row.
fn resolve_layout(
    path: &Path,
    spec: &TableSpec,
    mapping: &Mapping,
    header: &[String],
    normalized: &[String],
    wide: Option<(&Wide, &WideMonth)>,
    used: &mut [bool],
) -> Result<Layout> {
    let find = |name: &str| {
        let wanted = name.trim().to_lowercase();
        normalized.iter().position(|h| *h == wanted)
    };
    // Whether each header column is taken, and by the mapping's naming it. A column the mapping
    // names twice is deliberate (the phone number is also the id); one taken by its canonical
    // name and again by the mapping is a slip.
    let mut claims: Vec<Option<bool>> = vec![None; header.len()];
    let mut claim = |index: usize, explicit: bool| -> Result<()> {
        if let Some(other_explicit) = claims[index]
            && !(explicit && other_explicit)
        {
            return Err(Error::bad_file(
                path,
                1,
                Some(&header[index]),
                "the same source column is mapped to two canonical columns",
            ));
        }
        claims[index] = Some(explicit);
        used[index] = true;
        Ok(())
    };
    let mut fields = Vec::with_capacity(spec.columns.len());
    let mut names = Vec::with_capacity(spec.columns.len());
    for column in spec.columns {
        if let Some((_, month)) = wide
            && column.name == PERIOD
        {
            fields.push(FieldSource::Constant(month.month.clone()));
            names.push(PERIOD.to_owned());
            continue;
        }
        let source = mapping.source(column.name);
        let per_month = wide
            .filter(|(w, _)| source.is_some() && !w.per_row.iter().any(|name| name == column.name));
        let inputs: Vec<String> = match source {
            Some(source) => source
                .inputs()
                .into_iter()
                .map(|stem| match per_month {
                    Some((w, month)) => w.column_name(stem, &month.suffix),
                    None => stem.to_owned(),
                })
                .collect(),
            None => vec![column.name.to_owned()],
        };
        let found: Vec<Option<usize>> = inputs.iter().map(|name| find(name)).collect();
        if found.iter().all(Option::is_some) {
            let indexes: Vec<usize> = found.into_iter().flatten().collect();
            for &index in &indexes {
                claim(index, source.is_some())?;
            }
            let parts: Vec<String> = indexes.iter().map(|&i| header[i].clone()).collect();
            names.push(if wide.is_some() {
                parts.join("+")
            } else {
                column.name.to_owned()
            });
            fields.push(field_source(path, source, indexes, parts)?);
            continue;
        }
        let missing = inputs
            .iter()
            .zip(&found)
            .find_map(|(name, f)| f.is_none().then_some(name.as_str()))
            .expect("one input is missing");
        if let Some((_, month)) = per_month {
            // A monthly column must exist for every month; falling back to a default would hide
            // a month the export left out.
            let stem = source.map_or("", |s| s.inputs()[0]);
            let similar: Vec<&str> = header
                .iter()
                .map(String::as_str)
                .filter(|h| h.trim().to_lowercase().starts_with(&stem.to_lowercase()))
                .collect();
            return Err(Error::bad_file(
                path,
                1,
                Some(missing),
                format!(
                    "missing column {missing}, which [columns] {} needs for {}; {}",
                    column.name,
                    month.month,
                    if similar.is_empty() {
                        format!("no column of the header starts with {stem:?}")
                    } else {
                        format!("the header has {}", similar.join(", "))
                    }
                ),
            ));
        }
        if let Some(value) = mapping.defaults.get(column.name) {
            fields.push(FieldSource::Constant(value.clone()));
        } else if column.required {
            let hint = if missing == column.name {
                String::new()
            } else {
                format!(" (mapped from {missing:?})")
            };
            return Err(Error::bad_file(
                path,
                1,
                Some(column.name),
                format!(
                    "missing required column {}{hint}; the header has: {}",
                    column.name,
                    header.join(", ")
                ),
            ));
        } else {
            fields.push(FieldSource::Absent);
        }
        names.push(column.name.to_owned());
    }
    Ok(Layout {
        fields: fields.into(),
        names: names.into(),
        month: wide.map(|(_, month)| month.month.clone()),
    })
}

fn field_source(
    path: &Path,
    source: Option<&ColumnSource>,
    indexes: Vec<usize>,
    parts: Vec<String>,
) -> Result<FieldSource> {
    match source {
        Some(ColumnSource::Computed(Computed {
            sum,
            round,
            days_before,
            ..
        })) if sum.is_some() || round.is_some() || days_before.is_some() => {
            let days_before = days_before
                .as_deref()
                .map(reference_date)
                .transpose()
                .map_err(|reason| Error::bad_file(path, 0, None, reason))?;
            Ok(FieldSource::Computed(ComputedSource {
                indexes,
                parts,
                round: *round,
                days_before,
            }))
        }
        _ => Ok(FieldSource::Index(indexes[0])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_taken_by_its_name_and_by_the_mapping_is_an_error() {
        let spec = crate::schema::Table::Plans.spec();
        let header = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let slip: Mapping = toml::from_str("[columns]\nname = \"plan_id\"\n").unwrap();
        let plans = header(&["plan_id", "monthly_fee", "data_mb", "voice_minutes", "tier"]);
        let err = resolve_columns(Path::new("p.csv"), spec, &slip, &plans).unwrap_err();
        assert!(
            err.to_string().contains("mapped to two canonical columns"),
            "{err}"
        );

        // Named twice by the mapping, it is deliberate.
        let twice: Mapping =
            toml::from_str("[columns]\nplan_id = \"code\"\nname = \"code\"\n").unwrap();
        let plans = header(&["code", "monthly_fee", "data_mb", "voice_minutes", "tier"]);
        let resolved = resolve_columns(Path::new("p.csv"), spec, &twice, &plans).unwrap();
        assert!(matches!(
            resolved.layouts[0].fields[..2],
            [FieldSource::Index(0), FieldSource::Index(0)]
        ));
    }
}
