//! CSV files made for people to open in a spreadsheet program (exports, channel files,
//! quarantine files). Excel, LibreOffice and WPS run a cell that starts with `=`, `+`, `-` or
//! `@` as a formula, and a formula can fetch a link or run a command: a subscriber's name or a
//! branch id from an operator's export must not become one ("CSV injection").

use std::borrow::Cow;

/// The characters that make a spreadsheet program read a cell as a formula, with their
/// full-width forms (a Chinese input method types those).
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// A cell of a CSV file for people: text starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return (or a full-width `＝`, `＋`, `－`, `＠`) gets a leading `'`, so a spreadsheet shows it
/// as the text it is instead of running it. Anything else is left as it is.
///
/// Only for files people open. Files retain reads back itself (warning lists, decisions,
/// scores, quarantine reasons it merges) and the phone numbers of the channel files, which a
/// dialler reads as numbers, are written as they are.
///
/// ```
/// use retain_data::spreadsheet_cell;
/// assert_eq!(spreadsheet_cell("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
/// assert_eq!(spreadsheet_cell("B-12"), "B-12");
/// ```
#[must_use]
pub fn spreadsheet_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_quoted_and_others_kept() {
        for (cell, shown) in [
            ("=1+1", "'=1+1"),
            ("+8613800000000", "'+8613800000000"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("＝1+1", "'＝1+1"),
            ("", ""),
            ("B01", "B01"),
            ("话费优惠", "话费优惠"),
            ("a=b", "a=b"),
            ("13800000000", "13800000000"),
        ] {
            assert_eq!(spreadsheet_cell(cell), shown, "{cell:?}");
        }
        assert!(matches!(spreadsheet_cell("plain"), Cow::Borrowed(_)));
    }
}
