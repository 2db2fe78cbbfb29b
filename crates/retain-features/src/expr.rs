//! The condition language of warning rules, tags and (later) offer eligibility: a small typed
//! expression language over per-subscriber measures, windows, event counts, segments and
//! warnings, compiled to SQL for DataFusion.
//!
//! ```text
//! at(fee, 1m) < at(fee, 2m) and at(fee, 1m) < 0.9 * avg(fee, 6m)
//! count(complaint, 1w, severity = "serious") >= 1 or days(forward_to_competitor, 1w) > 2
//! avg(fee, 1w) < 0.5 * avg(fee, 2w..5w)
//! coalesce(subsidy_months_left, 0) <= 3
//! ```
//!
//! Windows count back from the as-of date: `3m` is the last three complete months, `1w` the last
//! complete week, `2w..5w` the four weeks before that, `30d` the last thirty days (events only).
//!
//! The text comes from requests (target expressions, edited rules and offers), so everything it
//! can make the parser and compiler do is bounded: its length ([`MAX_CONDITION_BYTES`]), its
//! nesting ([`MAX_DEPTH`]), its characters (no control characters), its windows
//! ([`MAX_WINDOW_MONTHS`], [`MAX_WINDOW_WEEKS`], [`MAX_WINDOW_DAYS`]) and its numbers
//! ([`MAX_NUMBER`]). A condition inside the bounds compiles to SQL whose nesting the engine
//! plans at once; one outside them is refused when it is parsed, with its position.

use std::fmt::Write as _;

/// The longest condition accepted, in bytes of UTF-8 text. The longest shipped rule is under
/// 200 bytes; a target expression naming every tag of a large library stays under 1 KiB.
pub const MAX_CONDITION_BYTES: usize = 4096;

/// The deepest nesting accepted: a name, number or window is one level; parentheses, function
/// calls, `not`, unary minus and comparisons each add one, and so does every further operand of
/// a chain of `+ - * /` (a chain of `and` or of `or` adds one however long it is). Shipped rules
/// nest a few levels deep. The bound is the engine's: its SQL parser backtracks over nested
/// function calls, and its time grows about threefold with each level past 16 (a condition of
/// 16 levels plans in well under a second, one of 20 took minutes).
pub const MAX_DEPTH: usize = 16;

/// The longest window back from the as-of date, per unit: ten years.
pub const MAX_WINDOW_MONTHS: u32 = 120;
/// See [`MAX_WINDOW_MONTHS`].
pub const MAX_WINDOW_WEEKS: u32 = 522;
/// See [`MAX_WINDOW_MONTHS`].
pub const MAX_WINDOW_DAYS: u32 = 3660;

/// The largest magnitude of a number written in a condition (fees, minutes, megabytes, counts).
pub const MAX_NUMBER: f64 = 1e15;

/// A syntax or type error at a byte offset of the condition text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

impl ExprError {
    /// `line L, column C: message`, the position counted in `text` (the condition the error is
    /// about) as [`line_column`] counts it.
    #[must_use]
    pub fn describe(&self, text: &str) -> String {
        let (line, column) = line_column(text, self.offset);
        format!("line {line}, column {column}: {}", self.message)
    }
}

type Result<T> = std::result::Result<T, ExprError>;

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

/// 1-based line and column (in characters) of a byte offset in `text`, for error messages
/// about conditions inside rules and tag files. Any offset is accepted: one past the end counts
/// as the end, one inside a character as that character.
#[must_use]
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |p| before[p + 1..].chars().count())
        + 1;
    (line, column)
}

/// The largest character boundary of `text` at or before `offset` (the end when past it).
fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Where byte `value_offset` of a TOML string's value lies in its literal: `literal` is the
/// source text from the opening quote on (a basic, literal or multi-line string), and the
/// answer counts from that quote. Escapes (`\t`, `\u00e9`, a line-ending backslash) and the
/// newline trimmed after `"""` make the two differ; an error found in a condition is reported
/// at its place in the file with this. An offset past the value maps to its closing quote.
#[must_use]
pub fn toml_literal_offset(literal: &str, value_offset: usize) -> usize {
    let bytes = literal.as_bytes();
    let (quote, multi) = match bytes {
        [b'"', b'"', b'"', ..] => (b'"', true),
        [b'\'', b'\'', b'\'', ..] => (b'\'', true),
        [q @ (b'"' | b'\''), ..] => (*q, false),
        _ => return floor_char_boundary(literal, value_offset),
    };
    let closing = if quote == b'"' { "\"\"\"" } else { "'''" };
    let mut i = if multi { 3 } else { 1 };
    if multi {
        if literal[i..].starts_with("\r\n") {
            i += 2;
        } else if literal[i..].starts_with('\n') {
            i += 1;
        }
    }
    let mut produced = 0;
    while i < bytes.len() && produced < value_offset {
        let b = bytes[i];
        if b == quote && (!multi || literal[i..].starts_with(closing)) {
            break;
        }
        if quote == b'"' && b == b'\\' {
            let Some(&e) = bytes.get(i + 1) else { break };
            let (raw, value) = match e {
                b'x' | b'u' | b'U' => {
                    let digits = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let width = literal
                        .get(i + 2..i + 2 + digits)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .map_or(1, char::len_utf8);
                    (2 + digits, width)
                }
                b' ' | b'\t' | b'\r' | b'\n' if multi => {
                    // A line-ending backslash: the whitespace up to the next text is dropped.
                    let mut j = i + 1;
                    while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n') {
                        j += 1;
                    }
                    (j - i, 0)
                }
                _ => (2, 1),
            };
            i += raw;
            produced += value;
            continue;
        }
        let width = literal[i..].chars().next().map_or(1, char::len_utf8);
        i += width;
        produced += width;
    }
    // A line-ending backslash here stands for nothing: the value goes on after it.
    if multi && quote == b'"' && bytes.get(i) == Some(&b'\\') {
        let mut j = i + 1;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n') {
            j += 1;
        }
        if j > i + 1 && bytes[i + 1..j].contains(&b'\n') {
            i = j;
        }
    }
    floor_char_boundary(literal, i)
}

/// The byte offset in a TOML file `text` of byte `value_offset` of the string value whose
/// literal starts at `literal_start` (the start of its span): where an error in a condition
/// read from a rules, offers or tags file is.
#[must_use]
pub fn toml_offset(text: &str, literal_start: usize, value_offset: usize) -> usize {
    let start = floor_char_boundary(text, literal_start);
    start + toml_literal_offset(&text[start..], value_offset)
}

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
enum Token {
    Number(f64),
    Str(String),
    Ident(String),
    Window(Window),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>> {
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

/// The parsed form of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Str(String),
    Bool(bool),
    Ident(usize, String),
    Window(usize, Window),
    Call(usize, String, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(usize, &'static str, Box<Expr>, Box<Expr>),
    /// A chain of `and` (or of `or`): the operands and the offsets of the operators between
    /// them. A chain is one level of nesting however long it is.
    Logic(&'static str, Vec<Expr>, Vec<usize>),
}

/// A parsed operand and its height: the levels of nesting under it, itself included.
type Parsed = (Expr, usize);

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
    /// Open parentheses, calls, `not` and unary minus around the current token: the parser's
    /// own recursion, bounded by [`MAX_DEPTH`] before it can exhaust the stack.
    open: usize,
}

/// Checks the length and the characters of a condition before it is tokenized.
fn check_text(text: &str) -> Result<()> {
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

fn too_deep<T>(offset: usize) -> Result<T> {
    err(
        offset,
        format!(
            "the condition nests more than {MAX_DEPTH} levels deep (parentheses, calls, not, \
             unary minus and chained operators each count)"
        ),
    )
}

/// Parses a condition.
pub fn parse(text: &str) -> Result<Expr> {
    check_text(text)?;
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
        end: text.len(),
        open: 0,
    };
    if p.tokens.is_empty() {
        return err(0, "the condition is empty");
    }
    let (expr, _) = p.or()?;
    if let Some((offset, token)) = p.tokens.get(p.pos) {
        return err(*offset, format!("unexpected {}", describe(token)));
    }
    Ok(expr)
}

fn describe(token: &Token) -> String {
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

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    /// Opens a level of recursion at `at` (a parenthesis, a call, `not`, unary minus); the
    /// innermost operand is a level too.
    fn open(&mut self, at: usize) -> Result<()> {
        if self.open + 1 >= MAX_DEPTH {
            return too_deep(at);
        }
        self.open += 1;
        Ok(())
    }

    /// A node over operands of the given heights, at `at`.
    fn node(at: usize, expr: Expr, heights: &[usize]) -> Result<Parsed> {
        let height = 1 + heights.iter().copied().max().unwrap_or(0);
        if height > MAX_DEPTH {
            return too_deep(at);
        }
        Ok((expr, height))
    }

    fn or(&mut self) -> Result<Parsed> {
        self.logic("or", Self::and)
    }

    fn and(&mut self) -> Result<Parsed> {
        self.logic("and", Self::not)
    }

    /// A chain of `word` over operands parsed by `operand`, flattened into one node.
    fn logic(
        &mut self,
        word: &'static str,
        operand: fn(&mut Self) -> Result<Parsed>,
    ) -> Result<Parsed> {
        let first = operand(self)?;
        if !self.keyword(word) {
            return Ok(first);
        }
        let (mut operands, mut heights, mut ats) = (vec![first.0], vec![first.1], Vec::new());
        while self.keyword(word) {
            ats.push(self.offset());
            self.pos += 1;
            let (e, h) = operand(self)?;
            operands.push(e);
            heights.push(h);
        }
        Self::node(ats[0], Expr::Logic(word, operands, ats), &heights)
    }

    fn not(&mut self) -> Result<Parsed> {
        if self.keyword("not") {
            let at = self.offset();
            self.open(at)?;
            self.pos += 1;
            let (inner, h) = self.not()?;
            self.open -= 1;
            return Self::node(at, Expr::Not(Box::new(inner)), &[h]);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Parsed> {
        let (left, lh) = self.sum()?;
        if let Some(Token::Op(op @ ("<" | "<=" | ">" | ">=" | "=" | "!="))) = self.peek() {
            let op = *op;
            let at = self.offset();
            self.pos += 1;
            let (right, rh) = self.sum()?;
            return Self::node(
                at,
                Expr::Binary(at, op, Box::new(left), Box::new(right)),
                &[lh, rh],
            );
        }
        Ok((left, lh))
    }

    fn sum(&mut self) -> Result<Parsed> {
        let (mut left, mut lh) = self.product()?;
        while let Some(Token::Op(op @ ("+" | "-"))) = self.peek() {
            let op = *op;
            let at = self.offset();
            self.pos += 1;
            let (right, rh) = self.product()?;
            (left, lh) = Self::node(
                at,
                Expr::Binary(at, op, Box::new(left), Box::new(right)),
                &[lh, rh],
            )?;
        }
        Ok((left, lh))
    }

    fn product(&mut self) -> Result<Parsed> {
        let (mut left, mut lh) = self.unary()?;
        while let Some(Token::Op(op @ ("*" | "/"))) = self.peek() {
            let op = *op;
            let at = self.offset();
            self.pos += 1;
            let (right, rh) = self.unary()?;
            (left, lh) = Self::node(
                at,
                Expr::Binary(at, op, Box::new(left), Box::new(right)),
                &[lh, rh],
            )?;
        }
        Ok((left, lh))
    }

    fn unary(&mut self) -> Result<Parsed> {
        if let Some(Token::Op("-")) = self.peek() {
            let at = self.offset();
            self.open(at)?;
            self.pos += 1;
            let (inner, h) = self.unary()?;
            self.open -= 1;
            return Self::node(at, Expr::Neg(Box::new(inner)), &[h]);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Parsed> {
        let at = self.offset();
        let Some((_, token)) = self.tokens.get(self.pos).cloned() else {
            return err(self.end, "the condition ends too early");
        };
        self.pos += 1;
        match token {
            Token::Number(n) => Ok((Expr::Number(n), 1)),
            Token::Str(s) => Ok((Expr::Str(s), 1)),
            Token::Window(w) => Ok((Expr::Window(at, w), 1)),
            Token::LParen => {
                self.open(at)?;
                let (inner, h) = self.or()?;
                self.expect_rparen()?;
                self.open -= 1;
                // A level of nesting, though not of the parsed form.
                Self::node(at, inner, &[h])
            }
            Token::Ident(name) if name == "true" => Ok((Expr::Bool(true), 1)),
            Token::Ident(name) if name == "false" => Ok((Expr::Bool(false), 1)),
            Token::Ident(name) => {
                if self.peek() == Some(&Token::LParen) {
                    self.open(at)?;
                    self.pos += 1;
                    let (mut args, mut heights) = (Vec::new(), Vec::new());
                    if self.peek() != Some(&Token::RParen) {
                        loop {
                            let (arg, h) = self.or()?;
                            args.push(arg);
                            heights.push(h);
                            if self.peek() == Some(&Token::Comma) {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect_rparen()?;
                    self.open -= 1;
                    Self::node(at, Expr::Call(at, name, args), &heights)
                } else {
                    Ok((Expr::Ident(at, name), 1))
                }
            }
            other => err(at, format!("unexpected {}", describe(&other))),
        }
    }

    fn expect_rparen(&mut self) -> Result<()> {
        if self.peek() == Some(&Token::RParen) {
            self.pos += 1;
            Ok(())
        } else {
            err(self.offset(), "expected \")\"")
        }
    }
}

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Number,
    Bool,
    Text,
}

/// What a name or an aggregate reads, so the compiler can build one query per source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A column of the per-subscriber profile (tenure, tier, contracts…).
    Profile(&'static str),
    /// An aggregate of a usage measure over a window.
    Usage {
        function: &'static str,
        measure: &'static str,
        window: Window,
    },
    /// A statistic of events over a window, with filters: `count`, `days` (distinct days with
    /// one) or `days_since` (days from the latest one to the as-of date).
    Events {
        stat: &'static str,
        kind: String,
        window: Window,
        /// (field, SQL literal), sorted.
        filters: Vec<(&'static str, String)>,
    },
    /// A column of the latest segmentation (`segments` table).
    Segment(&'static str),
    /// Whether the subscriber is in a scenario group of the latest segmentation.
    Scenario(String),
    /// A column of the latest warning list (`latest_warnings` table).
    Warning(&'static str),
    /// Membership of a tag of the tag library (`tags` table).
    Tag(String),
}

/// Usage measures, as columns of `usage_monthly`/`usage_weekly` (`calls` is out + in).
pub const MEASURES: &[&str] = &[
    "fee",
    "voice_minutes",
    "calls",
    "calls_out",
    "calls_in",
    "data_mb",
    "sms",
    "bundled_services",
    "vas_fee",
    "recharge",
    "arrears",
    "suspended_days",
    "active_days",
];

/// Profile features and their types.
pub const PROFILE: &[(&str, Type)] = &[
    ("tenure_months", Type::Number),
    ("age", Type::Number),
    ("plan_tier", Type::Number),
    ("plan_fee", Type::Number),
    ("is_group_member", Type::Bool),
    ("has_subsidy", Type::Bool),
    ("subsidy_months_left", Type::Number),
    ("contract_months_left", Type::Number),
    ("family_size", Type::Number),
    ("group_size", Type::Number),
];

/// Columns of the latest segmentation usable in conditions.
pub const SEGMENT_FIELDS: &[(&str, Type)] = &[
    ("rfm_group", Type::Text),
    ("value_tier", Type::Text),
    ("lifecycle_stage", Type::Text),
    ("clv", Type::Number),
    ("midhigh", Type::Bool),
    ("cluster", Type::Number),
];

/// Columns of the latest warning list usable in conditions: (name, column, type).
pub const WARNING_FIELDS: &[(&str, &str, Type)] = &[
    ("warning_level", "level", Type::Text),
    ("warning_score", "score", Type::Number),
];

/// Event fields usable as filters, with their types.
const EVENT_FIELDS: &[(&str, Type)] = &[
    ("category", Type::Text),
    ("severity", Type::Text),
    ("resolved_on_time", Type::Bool),
    ("channel", Type::Text),
    ("competitor", Type::Text),
    ("downgrade", Type::Bool),
];

const FUNCTIONS: &str =
    "avg, sum, min, max, stddev, slope, at, count, days, days_since, scenario, tag, coalesce, abs";

/// Compiles expressions to SQL, registering every aggregate it needs.
#[derive(Debug, Default, Clone)]
pub struct Compiler {
    /// Distinct sources, in first-use order; the SQL names them `f0`, `f1`, …
    pub sources: Vec<Source>,
    /// Extra true/false names that compile to a column of that name (tags, when a target
    /// group is selected by tags).
    pub booleans: Vec<String>,
}

impl Compiler {
    fn alias(&mut self, source: Source) -> String {
        let index = self
            .sources
            .iter()
            .position(|s| *s == source)
            .unwrap_or_else(|| {
                self.sources.push(source);
                self.sources.len() - 1
            });
        format!("f{index}")
    }

    /// Compiles a value (a number, or true/false as 1/0) for a feature column.
    pub fn value(&mut self, expr: &Expr) -> Result<String> {
        let mut used = Vec::new();
        let (sql, ty) = self.compile(expr, &mut used)?;
        match ty {
            Type::Number => Ok(format!("CAST({sql} AS DOUBLE)")),
            Type::Bool => Ok(format!(
                "CASE WHEN {sql} THEN 1.0 WHEN NOT {sql} THEN 0.0 END"
            )),
            Type::Text => err(0, "a feature must be a number or true/false, not text"),
        }
    }

    /// Compiles a condition that must be boolean. Returns the SQL and the aliases it reads.
    pub fn condition(&mut self, expr: &Expr) -> Result<(String, Vec<String>)> {
        let mut used = Vec::new();
        let (sql, ty) = self.compile(expr, &mut used)?;
        if ty != Type::Bool {
            return err(
                0,
                "the condition must be true or false (a comparison), not a value",
            );
        }
        used.sort();
        used.dedup();
        Ok((sql, used))
    }

    fn compile(&mut self, expr: &Expr, used: &mut Vec<String>) -> Result<(String, Type)> {
        match expr {
            Expr::Number(n) => Ok((format!("{n:?}"), Type::Number)),
            Expr::Str(s) => Ok((sql_string(s), Type::Text)),
            Expr::Bool(b) => Ok((b.to_string(), Type::Bool)),
            Expr::Window(at, w) => err(
                *at,
                format!("window {w} can only be an argument of an aggregate"),
            ),
            Expr::Ident(at, name) => {
                if self.booleans.contains(name) {
                    return Ok((format!("\"{name}\""), Type::Bool));
                }
                if let Some((column, ty)) = SEGMENT_FIELDS.iter().find(|(n, _)| n == name) {
                    let alias = self.alias(Source::Segment(column));
                    used.push(alias.clone());
                    return Ok((alias, *ty));
                }
                if let Some((_, column, ty)) = WARNING_FIELDS.iter().find(|(n, ..)| n == name) {
                    let alias = self.alias(Source::Warning(column));
                    used.push(alias.clone());
                    return Ok((alias, *ty));
                }
                let Some((column, ty)) = PROFILE.iter().find(|(n, _)| n == name) else {
                    let hint = if MEASURES.contains(&name.as_str()) {
                        format!(
                            " (a usage measure needs a window: avg({name}, 3m) or at({name}, 1m))"
                        )
                    } else {
                        format!(
                            "; known names: {}",
                            PROFILE
                                .iter()
                                .map(|(n, _)| *n)
                                .chain(SEGMENT_FIELDS.iter().map(|(n, _)| *n))
                                .chain(WARNING_FIELDS.iter().map(|(n, ..)| *n))
                                .chain(self.booleans.iter().map(String::as_str))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    return err(*at, format!("unknown name {name:?}{hint}"));
                };
                let alias = self.alias(Source::Profile(column));
                used.push(alias.clone());
                Ok((alias, *ty))
            }
            Expr::Not(inner) => {
                let (sql, ty) = self.compile(inner, used)?;
                if ty != Type::Bool {
                    return err(0, "`not` needs a true/false operand");
                }
                // `x = false` is `NOT x` (unknown stays unknown), written so that the engine's
                // SQL parser reads nested negations in linear time: it backtracks over each
                // `NOT (`, so 20 nested ones took it minutes.
                Ok((format!("({sql} = false)"), Type::Bool))
            }
            Expr::Neg(inner) => {
                let (sql, ty) = self.compile(inner, used)?;
                if ty != Type::Number {
                    return err(0, "`-` needs a number");
                }
                // Subtracted from 0 rather than negated, for the reason `not` is an `= false`.
                Ok((format!("(0 - {sql})"), Type::Number))
            }
            Expr::Logic(op, operands, ats) => {
                let mut parts = Vec::with_capacity(operands.len());
                for (i, operand) in operands.iter().enumerate() {
                    let (sql, ty) = self.compile(operand, used)?;
                    if ty != Type::Bool {
                        let at = ats[i.saturating_sub(1).min(ats.len() - 1)];
                        return err(at, format!("`{op}` joins comparisons, not values"));
                    }
                    // Missing data is "not fired", never "unknown".
                    parts.push(format!("COALESCE({sql}, false)"));
                }
                let joint = format!(" {} ", op.to_uppercase());
                Ok((format!("({})", parts.join(&joint)), Type::Bool))
            }
            Expr::Binary(at, op, left, right) => {
                let (l, lt) = self.compile(left, used)?;
                let (r, rt) = self.compile(right, used)?;
                match *op {
                    "+" | "-" | "*" | "/" => {
                        if lt != Type::Number || rt != Type::Number {
                            return err(*at, format!("`{op}` needs numbers on both sides"));
                        }
                        if *op == "/" {
                            Ok((
                                format!("(CAST({l} AS DOUBLE) / NULLIF({r}, 0))"),
                                Type::Number,
                            ))
                        } else {
                            Ok((format!("({l} {op} {r})"), Type::Number))
                        }
                    }
                    _ => {
                        if lt != rt {
                            return err(*at, format!("`{op}` compares values of different types"));
                        }
                        if lt == Type::Bool && !matches!(*op, "=" | "!=") {
                            return err(*at, format!("`{op}` cannot order true/false values"));
                        }
                        let op = if *op == "!=" { "<>" } else { op };
                        Ok((format!("({l} {op} {r})"), Type::Bool))
                    }
                }
            }
            Expr::Call(at, name, args) => self.call(*at, name, args, used),
        }
    }

    fn call(
        &mut self,
        at: usize,
        name: &str,
        args: &[Expr],
        used: &mut Vec<String>,
    ) -> Result<(String, Type)> {
        match name {
            "avg" | "sum" | "min" | "max" | "stddev" | "slope" | "at" => {
                let [Expr::Ident(m_at, measure), Expr::Window(w_at, window)] = args else {
                    return err(
                        at,
                        format!(
                            "{name}(MEASURE, WINDOW) takes a usage measure and a window, like {name}(fee, 3m)"
                        ),
                    );
                };
                let Some(measure) = MEASURES.iter().find(|m| *m == measure) else {
                    return err(
                        *m_at,
                        format!(
                            "unknown usage measure {measure:?}; measures: {}",
                            MEASURES.join(", ")
                        ),
                    );
                };
                if window.unit == Unit::Day {
                    return err(*w_at, "usage is monthly or weekly: use m or w windows");
                }
                if name == "at" && window.from != window.to && window.from != 1 {
                    return err(*w_at, "at() reads one period, like at(fee, 2m)");
                }
                let window = if name == "at" {
                    Window {
                        from: window.to,
                        to: window.to,
                        unit: window.unit,
                    }
                } else {
                    *window
                };
                let alias = self.alias(Source::Usage {
                    function: leak(name),
                    measure,
                    window,
                });
                used.push(alias.clone());
                Ok((alias, Type::Number))
            }
            "count" | "days" | "days_since" => {
                let (Some(Expr::Ident(k_at, kind)), Some(Expr::Window(_, window))) =
                    (args.first(), args.get(1))
                else {
                    return err(
                        at,
                        format!(
                            "{name}(EVENT_KIND, WINDOW, [field = value, …]) like {name}(complaint, 3m, severity = \"serious\")"
                        ),
                    );
                };
                if !retain_data::EVENT_KINDS.contains(&kind.as_str()) {
                    return err(
                        *k_at,
                        format!(
                            "unknown event kind {kind:?}; kinds: {}",
                            retain_data::EVENT_KINDS.join(", ")
                        ),
                    );
                }
                let mut filters = Vec::new();
                for filter in &args[2..] {
                    let Expr::Binary(f_at, "=", field, value) = filter else {
                        return err(at, "event filters are written field = value");
                    };
                    let Expr::Ident(_, field) = field.as_ref() else {
                        return err(*f_at, "an event filter starts with a field name");
                    };
                    let Some((field, ty)) = EVENT_FIELDS.iter().find(|(f, _)| f == field) else {
                        let names: Vec<&str> = EVENT_FIELDS.iter().map(|(f, _)| *f).collect();
                        return err(
                            *f_at,
                            format!(
                                "unknown event field {field:?}; fields: {}",
                                names.join(", ")
                            ),
                        );
                    };
                    let literal = match (value.as_ref(), ty) {
                        (Expr::Str(s), Type::Text) => sql_string(s),
                        (Expr::Bool(b), Type::Bool) => b.to_string(),
                        _ => {
                            return err(
                                *f_at,
                                format!(
                                    "{field} is compared with a {}",
                                    if *ty == Type::Bool {
                                        "true/false"
                                    } else {
                                        "quoted text"
                                    }
                                ),
                            );
                        }
                    };
                    filters.push((*field, literal));
                }
                filters.sort();
                let stat = match name {
                    "days" => "days",
                    "days_since" => "days_since",
                    _ => "count",
                };
                let alias = self.alias(Source::Events {
                    stat,
                    kind: kind.clone(),
                    window: *window,
                    filters,
                });
                used.push(alias.clone());
                Ok((alias, Type::Number))
            }
            "scenario" => {
                let [Expr::Str(name)] = args else {
                    return err(at, "scenario('NAME') takes a scenario group name in quotes");
                };
                let alias = self.alias(Source::Scenario(name.clone()));
                used.push(alias.clone());
                Ok((alias, Type::Bool))
            }
            "tag" => {
                let [Expr::Str(name)] = args else {
                    return err(at, "tag('ID') takes a tag id in quotes");
                };
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return err(at, "a tag id is letters, digits and _");
                }
                let alias = self.alias(Source::Tag(name.clone()));
                used.push(alias.clone());
                Ok((alias, Type::Bool))
            }
            "coalesce" => {
                if args.len() < 2 {
                    return err(at, "coalesce(a, b, …) needs at least two values");
                }
                let mut parts = Vec::new();
                let mut ty = None;
                for a in args {
                    let (sql, t) = self.compile(a, used)?;
                    if ty.is_some_and(|ty| ty != t) {
                        return err(at, "coalesce() needs values of one type");
                    }
                    ty = Some(t);
                    parts.push(sql);
                }
                Ok((
                    format!("COALESCE({})", parts.join(", ")),
                    ty.unwrap_or(Type::Number),
                ))
            }
            "abs" => {
                let [a] = args else {
                    return err(at, "abs(x) takes one number");
                };
                let (sql, t) = self.compile(a, used)?;
                if t != Type::Number {
                    return err(at, "abs() needs a number");
                }
                Ok((format!("ABS({sql})"), Type::Number))
            }
            _ => err(
                at,
                format!("unknown function {name:?}; functions: {FUNCTIONS}"),
            ),
        }
    }
}

fn leak(name: &str) -> &'static str {
    match name {
        "avg" => "avg",
        "sum" => "sum",
        "min" => "min",
        "max" => "max",
        "stddev" => "stddev",
        "slope" => "slope",
        _ => "at",
    }
}

fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

impl Source {
    /// A readable label for reports: `avg(fee, 6m)`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Source::Profile(name) | Source::Segment(name) => (*name).to_owned(),
            Source::Warning(column) => format!("warning_{column}"),
            Source::Scenario(name) => format!("scenario({name:?})"),
            Source::Tag(name) => format!("tag({name:?})"),
            Source::Usage {
                function,
                measure,
                window,
            } => format!("{function}({measure}, {window})"),
            Source::Events {
                stat,
                kind,
                window,
                filters,
            } => {
                let mut s = format!("{stat}({kind}, {window}");
                for (f, v) in filters {
                    let _ = write!(s, ", {f} = {}", v.replace('\'', "\""));
                }
                s.push(')');
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<(String, Vec<Source>)> {
        let expr = parse(text)?;
        let mut c = Compiler::default();
        let (sql, _) = c.condition(&expr)?;
        Ok((sql, c.sources))
    }

    #[test]
    fn a_scorecard_condition_compiles_and_shares_aggregates() {
        let (sql, sources) =
            compile("at(fee, 1m) < at(fee, 2m) and at(fee, 1m) < 0.9 * avg(fee, 6m)").unwrap();
        assert_eq!(sources.len(), 3, "at(fee, 1m) is registered once");
        assert!(sql.contains("(f0 < f1)"), "{sql}");
        assert!(sql.contains("(0.9 * f2)"), "{sql}");
        assert_eq!(sources[2].label(), "avg(fee, 6m)");
    }

    #[test]
    fn windows_filters_and_ranges() {
        let (_, sources) = compile(
            "count(complaint, 1w, severity = 'serious', resolved_on_time = false) >= 1 or avg(fee, 1w) < 0.5 * avg(fee, 2w..5w)",
        )
        .unwrap();
        assert_eq!(
            sources[0].label(),
            "count(complaint, 1w, resolved_on_time = false, severity = \"serious\")"
        );
        assert_eq!(
            sources[2],
            Source::Usage {
                function: "avg",
                measure: "fee",
                window: Window {
                    from: 2,
                    to: 5,
                    unit: Unit::Week
                }
            }
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("avg(fee, 3m) <", 14, "ends too early"),
            ("avg(fees, 3m) > 1", 4, "unknown usage measure \"fees\""),
            ("count(complain, 3m) > 1", 6, "unknown event kind"),
            ("fee > 10", 0, "needs a window"),
            ("avg(fee, 3m)", 0, "must be true or false"),
            ("avg(fee, 3m) > 1 and 2", 17, "joins comparisons"),
            (
                "count(complaint, 3m, colour = 'red') > 0",
                28,
                "unknown event field",
            ),
            ("avg(fee, 3m) > 1 # x", 17, "unexpected character"),
            ("avg(fee, 30d) > 1", 9, "monthly or weekly"),
            ("frobnicate(fee) > 1", 0, "unknown function"),
        ];
        for (text, offset, message) in cases {
            let e = compile(text).unwrap_err();
            assert!(e.message.contains(message), "{text}: {e:?}");
            assert_eq!(e.offset, offset, "{text}: {e:?}");
        }
    }

    #[test]
    fn division_guards_against_zero_and_strings_are_escaped() {
        let (sql, sources) = compile(
            "avg(fee, 1m) / avg(fee, 6m) < 0.5 and count(complaint, 3m, category = \"it's\") = 0",
        )
        .unwrap();
        assert!(sql.contains("NULLIF(f1, 0)"), "{sql}");
        let Source::Events { filters, .. } = &sources[2] else {
            panic!("{sources:?}")
        };
        assert_eq!(filters, &vec![("category", "'it''s'".to_owned())]);
    }

    fn is_depth_error(e: &ExprError) -> bool {
        e.message.contains(&format!("more than {MAX_DEPTH} levels"))
    }

    #[test]
    fn two_thousand_open_parentheses_are_refused_at_the_first_level_too_deep() {
        let text = "(".repeat(2000);
        let e = parse(&text).unwrap_err();
        assert!(is_depth_error(&e), "{e:?}");
        assert_eq!(
            e.offset,
            MAX_DEPTH - 1,
            "the first parenthesis past the bound"
        );
    }

    #[test]
    fn long_runs_of_minus_or_not_are_refused_by_length_or_depth() {
        // The requests of the report: 20,000 `-` and 3,000 `not` are over the length bound.
        for text in ["-".repeat(20_000), "not ".repeat(3000) + "true"] {
            let e = parse(&text).unwrap_err();
            assert!(e.message.contains("at most 4096"), "{e:?}");
            assert_eq!(e.offset, MAX_CONDITION_BYTES);
        }
        // Within the length bound, they are refused by depth.
        let minus = "-".repeat(4000) + "1 > 0";
        let e = parse(&minus).unwrap_err();
        assert!(is_depth_error(&e), "{e:?}");
        assert_eq!(e.offset, MAX_DEPTH - 1);
        let not = "not ".repeat(1000) + "true";
        let e = parse(&not).unwrap_err();
        assert!(is_depth_error(&e), "{e:?}");
        assert_eq!(e.offset, 4 * (MAX_DEPTH - 1));
    }

    /// Conditions nested `n` levels deep, one of each way of nesting.
    fn nested(n: usize) -> [String; 5] {
        [
            format!("{}true{}", "(".repeat(n - 1), ")".repeat(n - 1)),
            format!("{}true", "not ".repeat(n - 1)),
            // A comparison is a level of its own.
            format!("{}1 > 0", "-".repeat(n - 2)),
            format!("{}1{} > 0", "abs(".repeat(n - 2), ")".repeat(n - 2)),
            format!("{} > 0", vec!["1"; n - 1].join(" + ")),
        ]
    }

    #[test]
    fn nesting_up_to_the_bound_compiles_and_one_more_level_is_refused() {
        for text in nested(MAX_DEPTH) {
            compile(&text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        }
        for text in nested(MAX_DEPTH + 1) {
            let e = compile(&text).unwrap_err();
            assert!(is_depth_error(&e), "{text}: {e:?}");
        }
        // A chain of `and` or `or` is one level however long.
        let chain = ["tenure_months > 1"; 100].join(" or ");
        let (sql, _) = compile(&chain).unwrap();
        assert_eq!(sql.matches(" OR ").count(), 99);
    }

    #[test]
    fn control_characters_are_refused_with_their_position() {
        for (text, offset) in [
            ("tenure_months > 1\0", 17),
            ("count(complaint, 3m, category = 'a\0b') > 0", 34),
            ("tenure_months\u{1b} > 1", 13),
            ("tenure_months > 1 and\u{7f} age > 30", 21),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains("control character"), "{text:?}: {e:?}");
            assert_eq!(e.offset, offset, "{text:?}");
        }
        // Tabs and line breaks are layout.
        compile("tenure_months > 1\r\n\tand age > 30").unwrap();
    }

    #[test]
    fn windows_and_numbers_are_range_checked_when_parsed() {
        let long_number = format!("avg(fee, 3m) > {}", "9".repeat(400));
        for (text, offset, message) in [
            ("count(complaint, 4000000000d) > 0", 17, "at most 3660 days"),
            (
                "count(complaint, 99999999999999999999d) > 0",
                17,
                "at most 3660 days",
            ),
            ("avg(fee, 121m) > 0", 9, "at most 120 months"),
            ("avg(fee, 2w..523w) > 0", 9, "at most 522 weeks"),
            ("avg(fee, 3m) > 10000000000000000", 15, "too large"),
            (long_number.as_str(), 15, "too large"),
        ] {
            let e = compile(text).unwrap_err();
            assert!(e.message.contains(message), "{text}: {e:?}");
            assert_eq!(e.offset, offset, "{text}: {e:?}");
        }
        compile("count(complaint, 3660d) > 0 and avg(fee, 120m) > 0 and avg(fee, 522w) > 0")
            .unwrap();
        compile("avg(fee, 3m) > 1000000000000000").unwrap();
    }

    #[test]
    fn positions_map_to_lines_and_columns_for_any_offset() {
        let text = "\t中文 a\n中 b";
        for offset in 0..=text.len() + 3 {
            let (line, column) = line_column(text, offset);
            assert!(line >= 1 && column >= 1);
        }
        assert_eq!(line_column(text, 2), (1, 2), "inside 中: that character");
        assert_eq!(line_column(text, text.len()), (2, 4));
        let e = ExprError {
            offset: 5,
            message: "m".into(),
        };
        assert_eq!(e.describe(text), "line 1, column 3: m");
    }

    #[test]
    fn toml_offsets_skip_escapes_and_trimmed_newlines() {
        // (literal, value offset, the text the literal has there)
        let cases = [
            (r#""\t\t'中文' = 1""#, "\t\t'中文' ".len(), "= 1"),
            (r#""\u00e9\U0001F600 x""#, "é😀 ".len(), "x"),
            (r#""a\"b" "#, 2, "b"),
            ("'\\t x'", 3, "x"),
            ("\"\"\"\n  a \\\n   b\"\"\"", 4, "b"),
            ("'''\r\nab'''", 1, "b"),
        ];
        for (literal, offset, rest) in cases {
            let at = toml_literal_offset(literal, offset);
            assert!(literal[at..].starts_with(rest), "{literal}: {at}");
        }
        // Past the value: its closing quote.
        assert_eq!(toml_literal_offset(r#""\tab""#, 99), 5);
        // Any offset, any text: a character boundary.
        let literal = r#""\t中\u4e2d文"#;
        for offset in 0..20 {
            assert!(literal.is_char_boundary(toml_literal_offset(literal, offset)));
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Parses and compiles `text` as a condition and as a value; an error must point inside
    /// the text, on a character boundary.
    fn check(text: &str) {
        let result = parse(text).and_then(|e| {
            let mut c = Compiler::default();
            let _ = c.value(&e);
            c.condition(&e).map(|_| ())
        });
        if let Err(e) = result {
            assert!(e.offset <= text.len(), "{text:?}: {e:?}");
            assert!(text.is_char_boundary(e.offset), "{text:?}: {e:?}");
            assert!(!e.message.is_empty());
            let (line, column) = line_column(text, e.offset);
            assert!(line >= 1 && column >= 1);
        }
    }

    const WORDS: &[&str] = &[
        "(",
        ")",
        "(",
        ")",
        ",",
        "not",
        "and",
        "or",
        "-",
        "+",
        "*",
        "/",
        "<",
        ">=",
        "=",
        "!=",
        "avg",
        "at",
        "count",
        "days_since",
        "coalesce",
        "abs",
        "scenario",
        "tag",
        "fee",
        "complaint",
        "severity",
        "tenure_months",
        "value_tier",
        "warning_score",
        "true",
        "1",
        "0.5",
        "3m",
        "1w",
        "30d",
        "2w..5w",
        "0m",
        "4000000000d",
        "'serious'",
        "\"x\"",
        "'",
        "\0",
        "中文",
        "\t",
        "\n",
        "..",
        "1e5",
        "9999999999999999999999",
    ];

    /// Words of the language and pieces of garbage, with or without spaces between them.
    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec((0..WORDS.len(), any::<bool>()), 0..1500).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(w, space)| {
                    if space {
                        format!("{} ", WORDS[w])
                    } else {
                        WORDS[w].to_owned()
                    }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            check(&text);
        }

        #[test]
        fn token_soups_never_panic(text in soup()) {
            check(&text);
        }

        #[test]
        fn nesting_past_the_bound_is_a_depth_error(
            depth in MAX_DEPTH + 1..3000,
            kind in 0..4_usize,
        ) {
            let open = ["(", "not ", "-", "abs("][kind];
            let text = format!("{}1", open.repeat(depth));
            let e = parse(&text).unwrap_err();
            if text.len() > MAX_CONDITION_BYTES {
                prop_assert!(e.message.contains("bytes long"), "{:?}", e);
            } else {
                prop_assert!(e.message.contains("levels deep"), "{:?}", e);
                prop_assert_eq!(e.offset, (MAX_DEPTH - 1) * open.len());
            }
        }
    }
}
