//! The monthly results workbook (考核月报): the managers' league table and the branches, with
//! Chinese headers, for the people who read results in Excel.

use std::path::Path;

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use crate::error::{Error, Result};
use crate::managers::PerformanceReport;

/// A cell: text stays text (never a formula), numbers stay numbers.
enum Cell<'a> {
    Text(&'a str),
    Number(f64),
}

fn write_sheet(
    sheet: &mut Worksheet,
    name: &str,
    header: &[&str],
    rows: &[Vec<Cell<'_>>],
) -> std::result::Result<(), XlsxError> {
    sheet.set_name(name)?;
    let bold = Format::new().set_bold();
    let share = Format::new().set_num_format("0.0%");
    for (j, h) in header.iter().enumerate() {
        sheet.write_string_with_format(0, j as u16, *h, &bold)?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = (i + 1) as u32;
        for (j, cell) in row.iter().enumerate() {
            let c = j as u16;
            match cell {
                Cell::Text(t) => sheet.write_string(r, c, *t)?,
                // Shares read as percentages.
                Cell::Number(v) if header[j].contains('率') => {
                    sheet.write_number_with_format(r, c, *v, &share)?
                }
                Cell::Number(v) => sheet.write_number(r, c, *v)?,
            };
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

/// Writes `report` as an xlsx workbook at `path`, whole or not at all.
pub fn write_workbook(report: &PerformanceReport, path: &Path) -> Result<()> {
    let err = |e: XlsxError| Error::BadRequest(format!("writing {}: {e}", path.display()));
    let period = format!(
        "{} 至 {}",
        report.period_start,
        report.as_of.pred_opt().unwrap_or(report.as_of)
    );
    let n = |x: u64| Cell::Number(x as f64);
    let managers: Vec<Vec<Cell<'_>>> = report
        .managers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            vec![
                Cell::Number((i + 1) as f64),
                Cell::Text(&m.manager_id),
                Cell::Text(&m.branch_id),
                n(m.groups),
                n(m.subscribers),
                n(m.left),
                Cell::Number(m.retention_rate),
                Cell::Number(m.targets.retention_rate),
                n(m.visits_planned),
                n(m.visits_done),
                Cell::Number(m.visit_coverage),
                Cell::Number(m.targets.visit_coverage),
                n(m.work_orders),
                n(m.callbacks),
                Cell::Number(m.callbacks_on_time_rate),
                Cell::Number(m.targets.callbacks_on_time),
                n(m.accepted),
                Cell::Number(m.incremental_saves),
                Cell::Number(m.saved_value),
                Cell::Number(f64::from(m.targets_met)),
                Cell::Text(&period),
            ]
        })
        .collect();
    let branches: Vec<Vec<Cell<'_>>> = report
        .branches
        .iter()
        .map(|b| {
            vec![
                Cell::Text(&b.branch_id),
                n(b.managers),
                n(b.subscribers),
                n(b.left),
                Cell::Number(b.retention_rate),
                n(b.visits_planned),
                n(b.visits_done),
                n(b.work_orders),
                n(b.callbacks),
                n(b.callbacks_on_time),
                Cell::Number(b.saved_value),
                Cell::Text(&period),
            ]
        })
        .collect();
    let mut book = Workbook::new();
    write_sheet(
        book.add_worksheet(),
        "客户经理考核",
        &[
            "排名",
            "客户经理",
            "营业部",
            "集团数",
            "期初用户数",
            "流失用户数",
            "保有率",
            "保有率目标",
            "应拜访次数",
            "实际拜访次数",
            "拜访达成率",
            "拜访达成率目标",
            "工单数",
            "回访数",
            "回访及时率",
            "回访及时率目标",
            "接受优惠数",
            "增量挽留用户",
            "挽留价值(元)",
            "达标项数",
            "考核期",
        ],
        &managers,
    )
    .map_err(err)?;
    write_sheet(
        book.add_worksheet(),
        "营业部考核",
        &[
            "营业部",
            "客户经理数",
            "期初用户数",
            "流失用户数",
            "保有率",
            "应拜访次数",
            "实际拜访次数",
            "工单数",
            "回访数",
            "及时回访数",
            "挽留价值(元)",
            "考核期",
        ],
        &branches,
    )
    .map_err(err)?;
    let bytes = book.save_to_buffer().map_err(err)?;
    retain_data::write_atomically(path, &bytes)?;
    Ok(())
}
