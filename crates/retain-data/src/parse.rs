//! Parsing and validating one field against its [`ColumnKind`].
//!
//! Operator exports are inconsistent: dates come as `2025-03-01`, `2025/3/1` or `20250301`,
//! booleans as `Y`/`是`, months as `202503`. Everything accepted here is documented in
//! `docs/ingest.md`; everything else is rejected with a reason a person can act on.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Weekday};

use crate::schema::ColumnKind;

/// A validated field value, already in its storage representation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Seconds since 1970-01-01T00:00:00 (local time).
    Timestamp(i64),
    Bool(bool),
}

/// Field-level format options (set from a mapping file).
#[derive(Debug, Clone, Default)]
pub struct FieldFormat {
    /// An explicit chrono format for dates (for example `%d.%m.%Y`), tried before the defaults.
    pub date_format: Option<String>,
    /// An explicit chrono format for timestamps.
    pub timestamp_format: Option<String>,
}

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d"];
const TIMESTAMP_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
];

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Days since the Unix epoch, as Arrow's `Date32` stores them.
#[must_use]
pub fn date_to_days(date: NaiveDate) -> i32 {
    (date - epoch()).num_days() as i32
}

/// The date of an Arrow `Date32` value.
#[must_use]
pub fn days_to_date(days: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(i64::from(days))
}

fn in_supported_range(date: NaiveDate) -> bool {
    (1900..=2100).contains(&date.year())
}

/// `str::trim`, skipped for the usual field that starts and ends with a visible ASCII
/// character: the Unicode-aware trim was a tenth of a load's time. Anything else (a full-width
/// space U+3000 included) goes through `str::trim`.
fn trim(text: &str) -> &str {
    let visible = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    let bytes = text.as_bytes();
    if visible(bytes.first()) && visible(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// Parses one field. An empty or whitespace-only field is `Null`; whether that is allowed is
/// the caller's decision (required columns).
pub fn parse_field(raw: &str, kind: ColumnKind, format: &FieldFormat) -> Result<Value, String> {
    let text = trim(raw);
    if text.is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        ColumnKind::Int { min, max } => {
            let value = parse_int(text)?;
            if value < min || value > max {
                return Err(range_message(text, min as f64, max as f64));
            }
            Ok(Value::Int(value))
        }
        ColumnKind::Float { min, max } => {
            let value = parse_float(text)?;
            if value < min || value > max {
                if value < 0.0 && min >= 0.0 {
                    return Err(format!(
                        "negative value {text}: this amount cannot be below 0"
                    ));
                }
                return Err(range_message(text, min, max));
            }
            Ok(Value::Float(value))
        }
        ColumnKind::Text { max_len } => {
            let chars = text.chars().count();
            if chars > max_len {
                return Err(format!(
                    "text of {chars} characters is longer than the {max_len} allowed"
                ));
            }
            Ok(Value::Text(text.to_owned()))
        }
        ColumnKind::Msisdn => parse_msisdn(text).map(Value::Text),
        ColumnKind::Date => parse_date(text, format).map(|d| Value::Date(date_to_days(d))),
        ColumnKind::Month => parse_month(text, format).map(|d| Value::Date(date_to_days(d))),
        ColumnKind::Week => parse_week(text, format).map(|d| Value::Date(date_to_days(d))),
        ColumnKind::Timestamp => parse_timestamp(text, format).map(Value::Timestamp),
        ColumnKind::Bool => parse_bool(text).map(Value::Bool),
        // Any case is accepted and stored as the listed spelling: `Active` is `active`, `c` is
        // the industry section `C`.
        ColumnKind::Enum(values) => {
            values
                .iter()
                .find(|v| v.eq_ignore_ascii_case(text))
                .map(|v| Value::Text((*v).to_owned()))
                .ok_or_else(|| {
                    format!(
                        "unknown value {text:?}; expected one of {} (a mapping file can translate other codes)",
                        values.join(", ")
                    )
                })
        }
    }
}

fn range_message(text: &str, min: f64, max: f64) -> String {
    if max >= 1.0e18 {
        format!("value {text} is below the minimum {min}")
    } else {
        format!("value {text} is outside the allowed range {min}–{max}")
    }
}

fn parse_int(text: &str) -> Result<i64, String> {
    if let Ok(v) = text.parse::<i64>() {
        return Ok(v);
    }
    // Spreadsheet exports write integers as `12.0`.
    if let Some(whole) = text.strip_suffix(".0").or_else(|| text.strip_suffix(".00"))
        && let Ok(v) = whole.parse::<i64>()
    {
        return Ok(v);
    }
    Err(format!("{text:?} is not a whole number"))
}

fn parse_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a number")),
    }
}

fn parse_msisdn(text: &str) -> Result<String, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a phone number (digits only)"));
    }
    if !(5..=15).contains(&digits.len()) {
        return Err(format!(
            "{text:?} has {} digits; a phone number has 5 to 15",
            digits.len()
        ));
    }
    Ok(digits.to_owned())
}

/// Parses a date in one of the accepted formats.
pub fn parse_date(text: &str, format: &FieldFormat) -> Result<NaiveDate, String> {
    let custom = format.date_format.as_deref();
    let date = custom
        .is_none()
        .then(|| iso_date(text))
        .flatten()
        .or_else(|| {
            custom
                .into_iter()
                .chain(DATE_FORMATS.iter().copied())
                .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
        })
        // A datetime in a date column keeps its date: exports often print midnight.
        .or_else(|| parse_datetime(text, format).map(|dt| dt.date()))
        .ok_or_else(|| {
            format!("{text:?} is not a date (expected YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD)")
        })?;
    if !in_supported_range(date) {
        return Err(format!("date {text} is outside 1900–2100"));
    }
    Ok(date)
}

fn parse_datetime(text: &str, format: &FieldFormat) -> Option<NaiveDateTime> {
    let custom = format.timestamp_format.as_deref();
    if custom.is_none()
        && let Some(datetime) = iso_datetime(text)
    {
        return Some(datetime);
    }
    custom
        .into_iter()
        .chain(TIMESTAMP_FORMATS.iter().copied())
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

/// The digits of `bytes` as a number, if they are all digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// `YYYY-MM-DD`, read directly: nearly every date of an export has this form, and chrono's
/// format interpreter was a visible share of a load's time. Anything else takes the general
/// path, which accepts the same text with the same result.
fn iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `YYYY-MM-DD HH:MM:SS`, read directly (see [`iso_date`]).
fn iso_datetime(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() != 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    iso_date(&text[..10])?.and_hms_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )
}

/// Parses a timestamp; a bare date means midnight.
pub fn parse_timestamp(text: &str, format: &FieldFormat) -> Result<i64, String> {
    let datetime = parse_datetime(text, format)
        .or_else(|| {
            format
                .date_format
                .as_deref()
                .into_iter()
                .chain(DATE_FORMATS.iter().copied())
                .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
                .map(|d| d.and_time(NaiveTime::MIN))
        })
        .ok_or_else(|| format!("{text:?} is not a date and time (expected YYYY-MM-DD HH:MM:SS)"))?;
    if !in_supported_range(datetime.date()) {
        return Err(format!("timestamp {text} is outside 1900–2100"));
    }
    Ok(datetime.and_utc().timestamp())
}

/// Parses a month: `2025-03`, `202503`, `2025/03`, or any date in it.
pub fn parse_month(text: &str, format: &FieldFormat) -> Result<NaiveDate, String> {
    let candidates = [
        text.split_once(['-', '/']),
        (text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.split_at(4)),
    ];
    for (year, month) in candidates.into_iter().flatten() {
        if let (Ok(y), Ok(m)) = (year.parse::<i32>(), month.parse::<u32>())
            && let Some(date) = NaiveDate::from_ymd_opt(y, m, 1)
            && in_supported_range(date)
        {
            return Ok(date);
        }
    }
    parse_date(text, format)
        .map(|d| d.with_day(1).expect("day 1 exists"))
        .map_err(|_| format!("{text:?} is not a month (expected YYYY-MM or YYYYMM)"))
}

/// Parses a week: its Monday as a date, or ISO `2025-W10`. Any other date is rejected rather than
/// silently moved, because a weekly export keyed by Sunday would otherwise shift by a week.
pub fn parse_week(text: &str, format: &FieldFormat) -> Result<NaiveDate, String> {
    // Most weeks are dates: only a text with a W is copied to be read as an ISO week.
    if text.bytes().any(|b| b.eq_ignore_ascii_case(&b'w'))
        && let Some((year, week)) = text.to_ascii_uppercase().split_once("-W")
        && let (Ok(y), Ok(w)) = (year.parse::<i32>(), week.parse::<u32>())
    {
        return NaiveDate::from_isoywd_opt(y, w, Weekday::Mon)
            .filter(|d| in_supported_range(*d))
            .ok_or_else(|| format!("{text:?} is not an ISO week"));
    }
    let date = parse_date(text, format).map_err(|_| {
        format!("{text:?} is not a week (expected its Monday as YYYY-MM-DD, or YYYY-Www)")
    })?;
    if date.weekday() != Weekday::Mon {
        return Err(format!(
            "week {text} is a {:?}; weeks are given by their Monday",
            date.weekday()
        ));
    }
    Ok(date)
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "y" | "yes" | "是" => Ok(true),
        "false" | "f" | "0" | "n" | "no" | "否" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean (expected true/false, 1/0, Y/N or 是/否)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> FieldFormat {
        FieldFormat::default()
    }

    #[test]
    fn dates_in_every_accepted_form_agree() {
        let expected = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        for text in ["2025-03-01", "2025/3/1", "20250301", "2025-03-01 00:00:00"] {
            assert_eq!(parse_date(text, &f()).unwrap(), expected, "{text}");
        }
        assert!(parse_date("2025-02-30", &f()).is_err());
        assert!(parse_date("01/03/2025", &f()).is_err());
        let custom = FieldFormat {
            date_format: Some("%d/%m/%Y".into()),
            timestamp_format: None,
        };
        assert_eq!(parse_date("01/03/2025", &custom).unwrap(), expected);
    }

    #[test]
    fn fields_are_trimmed_of_ascii_and_full_width_spaces() {
        for raw in ["12", " 12", "12\t", "\u{3000}12\u{3000}", "\u{a0}12"] {
            assert_eq!(
                parse_field(raw, ColumnKind::Int { min: 0, max: 99 }, &f()),
                Ok(Value::Int(12)),
                "{raw:?}"
            );
        }
        assert_eq!(
            parse_field(" \u{3000} ", ColumnKind::Int { min: 0, max: 99 }, &f()),
            Ok(Value::Null)
        );
        assert_eq!(trim("a b"), "a b");
    }

    #[test]
    fn months_and_weeks() {
        let march = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        for text in ["2025-03", "202503", "2025/3", "2025-03-17"] {
            assert_eq!(parse_month(text, &f()).unwrap(), march, "{text}");
        }
        assert!(parse_month("2025-13", &f()).is_err());
        let monday = NaiveDate::from_ymd_opt(2025, 3, 3).unwrap();
        assert_eq!(parse_week("2025-03-03", &f()).unwrap(), monday);
        assert_eq!(parse_week("2025-W10", &f()).unwrap(), monday);
        let err = parse_week("2025-03-02", &f()).unwrap_err();
        assert!(err.contains("Sun"), "{err}");
    }

    #[test]
    fn numbers_reject_garbage_and_negative_money() {
        let money = ColumnKind::Float {
            min: 0.0,
            max: 1.0e9,
        };
        assert_eq!(parse_field(" 12.5 ", money, &f()), Ok(Value::Float(12.5)));
        assert!(
            parse_field("-3", money, &f())
                .unwrap_err()
                .contains("negative")
        );
        assert!(parse_field("NaN", money, &f()).is_err());
        assert!(parse_field("12,5", money, &f()).is_err());
        let count = ColumnKind::Int { min: 0, max: 31 };
        assert_eq!(parse_field("7.0", count, &f()), Ok(Value::Int(7)));
        assert!(parse_field("32", count, &f()).is_err());
        assert_eq!(parse_field("", count, &f()), Ok(Value::Null));
    }

    #[test]
    fn enums_bools_and_phone_numbers() {
        let kind = ColumnKind::Enum(&["active", "cancelled"]);
        assert_eq!(
            parse_field("Active", kind, &f()),
            Ok(Value::Text("active".into()))
        );
        assert!(
            parse_field("正常", kind, &f())
                .unwrap_err()
                .contains("mapping")
        );
        assert_eq!(
            parse_field("c", ColumnKind::Enum(&["A", "C"]), &f()),
            Ok(Value::Text("C".into()))
        );
        assert_eq!(
            parse_field("是", ColumnKind::Bool, &f()),
            Ok(Value::Bool(true))
        );
        assert!(parse_field("maybe", ColumnKind::Bool, &f()).is_err());
        assert_eq!(
            parse_field("13812345678", ColumnKind::Msisdn, &f()),
            Ok(Value::Text("13812345678".into()))
        );
        assert!(parse_field("138-1234", ColumnKind::Msisdn, &f()).is_err());
    }

    #[test]
    fn the_direct_iso_readers_agree_with_chrono() {
        for text in [
            "2025-03-01",
            "2024-02-29",
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-1-01",
            "2025-01-1x",
            "+025-01-01",
            "0000-01-01",
            "2025-03-01 ",
            "９９９９-01-01",
        ] {
            let chrono = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
            if let Some(direct) = iso_date(text) {
                assert_eq!(Some(direct), chrono, "{text}");
            }
        }
        for text in [
            "2025-03-01 08:30:00",
            "2025-03-01 23:59:59",
            "2025-03-01 24:00:00",
            "2025-03-01 23:59:60",
            "2025-03-01 8:30:00",
            "2025-03-01T08:30:00",
        ] {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok();
            if let Some(direct) = iso_datetime(text) {
                assert_eq!(Some(direct), chrono, "{text}");
            }
            assert_eq!(
                parse_datetime(text, &f()),
                TIMESTAMP_FORMATS
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok()),
                "{text}"
            );
        }
        assert_eq!(iso_date("2025-03-01"), NaiveDate::from_ymd_opt(2025, 3, 1));
        assert_eq!(iso_date("2025-02-30"), None);
        assert!(iso_datetime("2025-03-01 08:30:00").is_some());
        assert_eq!(parse_week("2025-03-03", &f()), parse_week("2025-w10", &f()));
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2025-03-01 08:30:00", &f()).unwrap();
        assert_eq!(t, parse_timestamp("2025-03-01T08:30:00", &f()).unwrap());
        assert_eq!(
            parse_timestamp("2025-03-01", &f()).unwrap(),
            t - 8 * 3600 - 1800
        );
    }
}
