//! Checking each record into a typed row: every field against its column, the cross-field rules
//! a column cannot express, and the keys of the tables the row refers to.

use super::IngestOptions;
use crate::error::{Error, Result};
use crate::parse::{FieldFormat, Value, days_to_date, parse_field};
use crate::schema::{Table, TableSpec};
use crate::source::RawRecord;
use crate::table::{FastSet, KeyPart, column_values};
use crate::workspace::Workspace;

/// A record read and validated: its row, or the column, reason and line it is rejected with.
pub(super) struct Checked {
    pub(super) line: u64,
    pub(super) outcome: std::result::Result<Vec<Value>, (Option<String>, String, String)>,
}

/// Key sets of the tables a load refers to, by referencing column.
pub(super) struct ReferenceSets {
    sets: Vec<(usize, Table, FastSet<KeyPart>)>,
}

impl ReferenceSets {
    pub(super) fn load(workspace: &Workspace, spec: &TableSpec) -> Result<Self> {
        let mut sets = Vec::new();
        for reference in spec.references {
            if !workspace.has_table(reference.table) {
                return Err(Error::MissingReferencedTable {
                    table: spec.name().to_owned(),
                    target: reference.table.name().to_owned(),
                });
            }
            let values = column_values(
                &workspace.table_file(reference.table),
                reference.table.spec(),
                reference.target_column,
            )?;
            let index = spec
                .column_index(reference.column)
                .expect("checked by schema tests");
            sets.push((index, reference.table, values));
        }
        Ok(Self { sets })
    }

    fn check(&self, spec: &TableSpec, row: &[Value]) -> Option<(usize, String)> {
        for (index, table, values) in &self.sets {
            let value = &row[*index];
            if *value == Value::Null {
                continue;
            }
            let key = KeyPart::from_value(value);
            if !values.contains(&key) {
                return Some((
                    *index,
                    format!(
                        "{} {key} does not exist in {table}",
                        spec.columns[*index].name
                    ),
                ));
            }
        }
        None
    }
}

/// Cross-field checks a single column cannot express. Returns (column index, reason).
fn check_row(spec: &TableSpec, row: &[Value]) -> Option<(usize, String)> {
    let get = |name: &str| {
        let i = spec.column_index(name).expect("known column");
        (i, &row[i])
    };
    let date = |v: &Value| match v {
        Value::Date(d) => Some(*d),
        _ => None,
    };
    match spec.table {
        Table::Subscribers => {
            let (_, join) = get("join_date");
            let (bi, birth) = get("birth_date");
            if let (Some(j), Some(b)) = (date(join), date(birth))
                && b > j
            {
                return Some((bi, "birth_date is after join_date".to_owned()));
            }
            let (si, status_date) = get("status_date");
            if let (Some(j), Some(s)) = (date(join), date(status_date))
                && s < j
            {
                return Some((si, "status_date is before join_date".to_owned()));
            }
            let (_, kind) = get("customer_type");
            let (gi, group) = get("group_id");
            if *kind == Value::Text("group_member".to_owned()) && *group == Value::Null {
                return Some((gi, "a group_member needs a group_id".to_owned()));
            }
        }
        Table::Contracts => {
            let (_, start) = get("start_date");
            let (ei, end) = get("end_date");
            if let (Some(s), Some(e)) = (date(start), date(end))
                && e < s
            {
                return Some((ei, "end_date is before start_date".to_owned()));
            }
        }
        Table::UsageMonthly => {
            let (_, period) = get("period");
            if let Some(p) = date(period) {
                let first = days_to_date(p);
                let days = first
                    .checked_add_months(chrono::Months::new(1))
                    .map_or(31, |next| (next - first).num_days());
                for name in ["suspended_days", "active_days"] {
                    let (i, v) = get(name);
                    if let Value::Int(n) = v
                        && *n > days
                    {
                        return Some((i, format!("{n} days in a month of {days} days")));
                    }
                }
            }
        }
        Table::Events => {
            let (_, kind) = get("kind");
            if *kind == Value::Text("plan_change".to_owned()) {
                for name in ["from_plan", "to_plan"] {
                    let (i, v) = get(name);
                    if *v == Value::Null {
                        return Some((i, format!("a plan_change needs {name}")));
                    }
                }
            }
        }
        Table::CampaignHistory => {
            let (_, arm) = get("arm");
            let (oi, offer) = get("offer_id");
            if *arm == Value::Text("treatment".to_owned()) && *offer == Value::Null {
                return Some((oi, "the treatment arm needs an offer_id".to_owned()));
            }
        }
        Table::Groups => {
            let (_, start) = get("contract_start");
            let (ei, end) = get("contract_end");
            if let (Some(s), Some(e)) = (date(start), date(end))
                && e < s
            {
                return Some((ei, "contract_end is before contract_start".to_owned()));
            }
        }
        Table::GroupProducts => {
            let (_, start) = get("start_date");
            let (ei, end) = get("end_date");
            if let (Some(s), Some(e)) = (date(start), date(end))
                && e < s
            {
                return Some((ei, "end_date is before start_date".to_owned()));
            }
            let (_, status) = get("status");
            if *status == Value::Text("cancelled".to_owned()) && *end == Value::Null {
                return Some((ei, "a cancelled product needs its end_date".to_owned()));
            }
        }
        Table::CallingCircle => {
            // A row is an on-net pair or a competitor's numbers, never both or neither.
            let (_, subscriber) = get("subscriber_id");
            let (pi, peer) = get("peer_id");
            let (oi, operator) = get("peer_operator");
            match (peer, operator) {
                (Value::Null, Value::Null) => {
                    return Some((pi, "needs a peer_id or a peer_operator".to_owned()));
                }
                (Value::Null, _) => {}
                (_, Value::Null) if peer == subscriber => {
                    return Some((pi, "peer_id is the subscriber itself".to_owned()));
                }
                (_, Value::Null) => {}
                _ => {
                    return Some((
                        oi,
                        "a pair of subscribers has no peer_operator (give one or the other)"
                            .to_owned(),
                    ));
                }
            }
        }
        Table::Plans
        | Table::UsageWeekly
        | Table::GroupKeyPeople
        | Table::GroupVisits
        | Table::Cells
        | Table::NetworkWeekly => {}
    }
    None
}

/// Validates one record into a row, or names the column and reason it was rejected for.
/// Duplicate keys are found later, over the staged rows.
pub(super) fn validate(
    spec: &TableSpec,
    record: &RawRecord,
    format: &FieldFormat,
    options: &IngestOptions,
    references: &ReferenceSets,
) -> std::result::Result<Vec<Value>, (String, String)> {
    // Problems are reported under the record's names: canonical ones, or a wide export's own.
    let name = |i: usize| record.names[i].clone();
    let mut row = Vec::with_capacity(spec.columns.len());
    for (i, column) in spec.columns.iter().enumerate() {
        let text = record
            .field(i)
            .map_or("", |f| options.mapping.translate(column.name, f));
        let value = parse_field(text, column.kind, format).map_err(|reason| (name(i), reason))?;
        if value == Value::Null && column.required {
            return Err((name(i), "required value is empty".to_owned()));
        }
        row.push(value);
    }
    if let Some((i, reason)) = check_row(spec, &row) {
        return Err((name(i), reason));
    }
    if let Some((i, reason)) = references.check(spec, &row) {
        return Err((name(i), reason));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call record is an on-net pair or a competitor's numbers, never both, neither or itself.
    #[test]
    fn a_call_record_names_one_peer_other_than_itself() {
        let spec = Table::CallingCircle.spec();
        let row = |peer: Value, operator: Value| {
            vec![
                Value::Date(20_000),
                Value::Int(7),
                peer,
                operator,
                Value::Int(3),
                Value::Float(9.0),
            ]
        };
        let text = |s: &str| Value::Text(s.to_owned());
        assert_eq!(check_row(spec, &row(Value::Int(8), Value::Null)), None);
        assert_eq!(check_row(spec, &row(Value::Null, text("联通"))), None);
        let reason = |peer, operator| {
            check_row(spec, &row(peer, operator))
                .map(|(i, r)| (spec.columns[i].name, r))
                .unwrap()
        };
        assert_eq!(
            reason(Value::Null, Value::Null),
            ("peer_id", "needs a peer_id or a peer_operator".to_owned())
        );
        assert_eq!(
            reason(Value::Int(7), Value::Null),
            ("peer_id", "peer_id is the subscriber itself".to_owned())
        );
        assert_eq!(reason(Value::Int(8), text("电信")).0, "peer_operator");
    }
}
