//! Work orders as the channels need them: the outbound call list with its script (CSV and
//! xlsx), the SMS batch, the store counter's pop-up entries and the account managers' visits.
//! The files are rewritten from the store, so they always show what the store holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use retain_offers::{Assignment, Channel, Offer, REASONS, reason_index};
use retain_store::WorkOrderRecord;
use serde_json::json;

use crate::error::{Error, Result};
use crate::template::Template;

fn reason_zh(code: &str) -> &'static str {
    reason_index(code).map_or("", |i| REASONS[i].1)
}

/// What a work order carries for its channel.
pub(crate) fn payload(
    t: &Template,
    offer: &Offer,
    a: &Assignment,
    msisdn: &str,
    due: NaiveDate,
) -> serde_json::Value {
    let join = |parts: [&str; 3]| {
        parts
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut p = json!({
        "msisdn": msisdn,
        "level": a.level.code(),
        "reason": a.reason,
        "reason_zh": reason_zh(a.reason),
        "offer_name_zh": offer.name_zh,
        "offer_name_en": offer.name_en,
        "p_churn": (a.p_churn * 1e4).round() / 1e4,
        "clv": (a.clv * 100.0).round() / 100.0,
    });
    let extra = match a.channel {
        Channel::OutboundCall | Channel::ManagerVisit | Channel::Store => json!({
            "script_zh": join([&t.script.opening_zh, &offer.talking_point_zh, &t.script.closing_zh]),
            "script_en": join([&t.script.opening_en, &offer.talking_point_en, &t.script.closing_en]),
        }),
        Channel::Sms | Channel::App => json!({
            "text_zh": t.render_sms(true, &offer.name_zh, msisdn, due),
            "text_en": t.render_sms(false, &offer.name_en, msisdn, due),
            "send_at": a.time.map(|t| t.format("%H:%M").to_string()),
        }),
    };
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    p
}

/// The purpose of a satisfaction survey's work order (满意度回访).
pub(crate) const SURVEY: &str = "survey";

/// What a survey call carries: the question, asked alike of treated and control.
pub(crate) fn survey_payload(a: &Assignment, msisdn: &str) -> serde_json::Value {
    json!({
        "msisdn": msisdn,
        "level": a.level.code(),
        "script_zh": "您好，这里是客户服务满意度回访。请问您对我们的服务总体满意度打几分？\
                      0 分表示非常不满意，10 分表示非常满意。",
        "script_en": "Hello, this is a short satisfaction survey. On a scale from 0 (not at all \
                      satisfied) to 10 (extremely satisfied), how satisfied are you with our \
                      service overall?",
    })
}

fn text(w: &WorkOrderRecord, key: &str) -> String {
    match w.payload.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The columns each channel's file has; the last six are left for the callback results, so
/// a filled-in call list can be imported back as it is.
fn columns(channel: &str) -> (&'static [&'static str], bool) {
    match channel {
        "outbound_call" | "manager_visit" | "store" => (
            &[
                "level",
                "reason_zh",
                "offer_id",
                "offer_name_zh",
                "script_zh",
                "script_en",
            ],
            true,
        ),
        _ => (&["offer_id", "send_at", "text_zh", "text_en"], false),
    }
}

pub(crate) const RESULT_COLUMNS: [&str; 6] = [
    "reached",
    "accepted",
    "stated_reason",
    "satisfaction",
    "notes",
    "follow_up",
];

/// Writes `<dir>/<channel>.csv` per channel (and the call list as xlsx); returns the files.
pub(crate) fn write_files(dir: &Path, orders: &[WorkOrderRecord]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut by_channel: BTreeMap<&str, Vec<&WorkOrderRecord>> = BTreeMap::new();
    for w in orders {
        by_channel.entry(w.channel.as_str()).or_default().push(w);
    }
    let mut files = Vec::new();
    for (channel, orders) in by_channel {
        let (extra, results) = columns(channel);
        let mut header: Vec<&str> = vec![
            "work_order_id",
            "purpose",
            "due_date",
            "branch_id",
            "manager_id",
            "subscriber_id",
            "msisdn",
        ];
        header.extend(extra);
        if results {
            header.extend(RESULT_COLUMNS);
        }
        // People open the files in a spreadsheet: no cell may run as a formula there. The
        // phone number stays as it is (digits), for the dialler.
        let cell = |t: &str| retain_data::spreadsheet_cell(t).into_owned();
        let rows: Vec<Vec<String>> = orders
            .iter()
            .map(|w| {
                let mut row = vec![
                    w.id.to_string(),
                    cell(&w.purpose),
                    cell(&w.due_date),
                    cell(&w.branch_id),
                    cell(&w.manager_id),
                    w.subscriber_id.to_string(),
                    text(w, "msisdn"),
                ];
                row.extend(extra.iter().map(|k| {
                    if *k == "offer_id" {
                        cell(&w.offer_id)
                    } else {
                        cell(&text(w, k))
                    }
                }));
                if results {
                    row.extend(RESULT_COLUMNS.iter().map(|_| String::new()));
                }
                row
            })
            .collect();
        let path = dir.join(format!("{channel}.csv"));
        let mut csv = csv::Writer::from_writer(retain_data::BOM.to_vec());
        let ctx = |e| Error::csv(path.display().to_string(), e);
        csv.write_record(&header).map_err(ctx)?;
        for row in &rows {
            csv.write_record(row).map_err(ctx)?;
        }
        let bytes = csv
            .into_inner()
            .map_err(|e| Error::Internal(e.to_string()))?;
        retain_data::write_atomically(&path, &bytes)?;
        files.push(path);
        // Every list also as a workbook: whoever works it (call centre, SMS team, store,
        // account manager) opens it in Excel, and an xlsx keeps every cell as text.
        let path = dir.join(format!("{channel}.xlsx"));
        write_xlsx(&path, "外呼清单", &header, &rows)?;
        files.push(path);
    }
    Ok(files)
}

/// Writes `rows` under a bold, frozen `header` as the one sheet `sheet` of a workbook, every
/// cell text.
pub(crate) fn write_xlsx(
    path: &Path,
    sheet_name: &str,
    header: &[&str],
    rows: &[Vec<String>],
) -> Result<()> {
    use rust_xlsxwriter::{Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| Error::Xlsx {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(sheet_name).map_err(err)?;
    let bold = Format::new().set_bold();
    for (j, h) in header.iter().enumerate() {
        sheet
            .write_string_with_format(0, j as u16, *h, &bold)
            .map_err(err)?;
    }
    for (i, row) in rows.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            sheet
                .write_string((i + 1) as u32, j as u16, v)
                .map_err(err)?;
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(err)?;
    let bytes = book.save_to_buffer().map_err(err)?;
    retain_data::write_atomically(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text from the operator's data or the offer library that a spreadsheet would run is
    /// quoted in the channel files; the phone number stays digits for the dialler.
    #[test]
    fn channel_files_quote_formulas_and_keep_phone_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let order = |id: i64, channel: &str| WorkOrderRecord {
            id,
            campaign_id: 1,
            subscriber_id: 7,
            channel: channel.to_owned(),
            purpose: "retention".to_owned(),
            offer_id: "+OFFER".to_owned(),
            branch_id: "=HYPERLINK(\"http://x\",\"B1\")".to_owned(),
            manager_id: "@M1".to_owned(),
            due_date: "2026-11-05".to_owned(),
            status: "open".to_owned(),
            payload: json!({
                "msisdn": "13800000001",
                "level": "red",
                "reason_zh": "-1+1",
                "offer_name_zh": "话费优惠",
                "script_zh": "\t=1",
                "script_en": "Hello",
                "text_zh": "＝1",
                "text_en": "Hi",
            }),
        };
        let files = write_files(dir.path(), &[order(1, "outbound_call"), order(2, "sms")]).unwrap();
        for name in ["outbound_call.csv", "sms.csv"] {
            let path = dir.path().join(name);
            assert!(files.contains(&path));
            let mut reader = csv::Reader::from_path(&path).unwrap();
            let header = reader.headers().unwrap().clone();
            let row = reader.records().next().unwrap().unwrap();
            let get = |k: &str| &row[header.iter().position(|h| h == k).unwrap()];
            assert_eq!(get("msisdn"), "13800000001");
            assert_eq!(get("branch_id"), "'=HYPERLINK(\"http://x\",\"B1\")");
            assert_eq!(get("manager_id"), "'@M1");
            assert_eq!(get("offer_id"), "'+OFFER");
            assert_eq!(get("due_date"), "2026-11-05");
            if name == "sms.csv" {
                assert_eq!((get("text_zh"), get("text_en")), ("'＝1", "Hi"));
            } else {
                assert_eq!(get("reason_zh"), "'-1+1");
                assert_eq!(get("script_zh"), "'\t=1");
                assert_eq!(get("offer_name_zh"), "话费优惠");
            }
        }
    }
}
