//! The lexer: the checks on a condition's raw text, and its tokens (numbers, strings, names,
//! windows like `2w..5w`, operators), with windows and numbers range-checked as they are read.

use super::position::floor_char_boundary;
use super::{
    MAX_CONDITION_BYTES, MAX_NUMBER, MAX_WINDOW_DAYS, MAX_WINDOW_MONTHS, MAX_WINDOW_WEEKS, Result,
    err,
};

/// The unit of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Month,
    Week,
    Day,
}

/// `from..to` periods back from the as-of date, both inclusive, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub from: u32,
    pub to: u32,
    pub unit: Unit,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let u = match self.unit {
            Unit::Month => "m",
            Unit::Week => "w",
            Unit::Day => "d",
        };
        if self.from == 1 {
            write!(f, "{}{u}", self.to)
        } else {
            write!(f, "{}{u}..{}{u}", self.from, self.to)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Number(f64),
    Str(String),
    Ident(String),
    Window(Window),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

pub(super) fn tokenize(text: &str) -> Result<Vec<(usize, Token)>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                // `2w..5w`: a dot followed by a dot ends the number.
                if bytes[i] == b'.' && bytes.get(i + 1) == Some(&b'.') {
                    break;
                }
                i += 1;
            }
            let number = &text[start..i];
            if let Some(unit) = bytes.get(i).and_then(|u| unit_of(*u))
                && !bytes
                    .get(i + 1)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            {
                i += 1;
                if !number.bytes().all(|b| b.is_ascii_digit()) {
                    return err(start, format!("window {number:?} needs a whole number"));
                }
                let from = window_count(number);
                let mut to = from;
                let mut from_n = 1;
                if text[i..].starts_with("..") {
                    i += 2;
                    let s = i;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    if s == i {
                        return err(s, "expected the end of the window range, like 2w..5w");
                    }
                    let end = window_count(&text[s..i]);
                    if bytes.get(i).and_then(|u| unit_of(*u)) != Some(unit) {
                        return err(i, "both ends of a window range need the same unit");
                    }
                    i += 1;
                    from_n = from;
                    to = end;
                }
                if from_n == 0 || to < from_n {
                    return err(start, "a window runs from 1 or more to at least its start");
                }
                let (max, unit_name) = match unit {
                    Unit::Month => (MAX_WINDOW_MONTHS, "months"),
                    Unit::Week => (MAX_WINDOW_WEEKS, "weeks"),
                    Unit::Day => (MAX_WINDOW_DAYS, "days"),
                };
                if to > max {
                    return err(
                        start,
                        format!(
                            "window {} reaches back too far: at most {max} {unit_name} (ten years)",
                            &text[start..i]
                        ),
                    );
                }
                tokens.push((
                    start,
                    Token::Window(Window {
                        from: from_n,
                        to,
                        unit,
                    }),
                ));
                continue;
            }
            let value: f64 = number
                .parse()
                .or_else(|_| err(start, format!("{number:?} is not a number")))?;
            if value.is_nan() || value.abs() > MAX_NUMBER {
                return err(
                    start,
                    format!("{number} is too large: numbers are at most {MAX_NUMBER:e}"),
                );
            }
            tokens.push((start, Token::Number(value)));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push((start, Token::Ident(text[start..i].to_ascii_lowercase())));
            continue;
        }
        if c == b'"' || c == b'\'' {
            i += 1;
            let s = i;
            while i < bytes.len() && bytes[i] != c {
                i += 1;
            }
            if i >= bytes.len() {
                return err(start, "unterminated string");
            }
            tokens.push((start, Token::Str(text[s..i].to_owned())));
            i += 1;
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        let op = match two {
            "<=" => Some("<="),
            ">=" => Some(">="),
            "!=" | "<>" => Some("!="),
            "==" => Some("="),
            _ => None,
        };
        if let Some(op) = op {
            tokens.push((start, Token::Op(op)));
            i += 2;
            continue;
        }
        let token = match c {
            b'(' => Token::LParen,
            b')' => Token::RParen,
            b',' => Token::Comma,
            b'<' => Token::Op("<"),
            b'>' => Token::Op(">"),
            b'=' => Token::Op("="),
            b'+' => Token::Op("+"),
            b'-' => Token::Op("-"),
            b'*' => Token::Op("*"),
            b'/' => Token::Op("/"),
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return err(start, format!("unexpected character {ch:?}"));
            }
        };
        tokens.push((start, token));
        i += 1;
    }
    Ok(tokens)
}

/// The count of a window's end, saturated: any count past `u32::MAX` is out of range anyway.
fn window_count(digits: &str) -> u32 {
    digits
        .bytes()
        .try_fold(0_u32, |n, d| {
            n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        })
        .unwrap_or(u32::MAX)
}

fn unit_of(b: u8) -> Option<Unit> {
    match b {
        b'm' => Some(Unit::Month),
        b'w' => Some(Unit::Week),
        b'd' => Some(Unit::Day),
        _ => None,
    }
}

/// Checks the length and the characters of a condition before it is tokenized.
pub(super) fn check_text(text: &str) -> Result<()> {
    if text.len() > MAX_CONDITION_BYTES {
        return err(
            floor_char_boundary(text, MAX_CONDITION_BYTES),
            format!(
                "the condition is {} bytes long; at most {MAX_CONDITION_BYTES} are accepted",
                text.len()
            ),
        );
    }
    if let Some((at, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return err(
            at,
            format!(
                "control character U+{:04X} is not allowed in a condition",
                u32::from(c)
            ),
        );
    }
    Ok(())
}

pub(super) fn describe(token: &Token) -> String {
    match token {
        Token::Number(n) => format!("number {n}"),
        Token::Str(s) => format!("string {s:?}"),
        Token::Ident(s) => format!("name {s:?}"),
        Token::Window(w) => format!("window {w}"),
        Token::Op(op) => format!("operator {op:?}"),
        Token::LParen => "\"(\"".to_owned(),
        Token::RParen => "\")\"".to_owned(),
        Token::Comma => "\",\"".to_owned(),
    }
}
