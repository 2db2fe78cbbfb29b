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

use std::fmt::Write as _;

/// A syntax or type error at a byte offset of the condition text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, ExprError>;

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

/// 1-based line and column (in characters) of a byte offset in `text`, for error messages
/// about conditions inside rules and tag files.
#[must_use]
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |p| before[p + 1..].chars().count())
        + 1;
    (line, column)
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
                let from: u32 = number
                    .parse()
                    .or_else(|_| err(start, format!("window {number:?} needs a whole number")))?;
                let mut to = from;
                let mut from_n = 1;
                if text[i..].starts_with("..") {
                    i += 2;
                    let s = i;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    let end: u32 = text[s..i]
                        .parse()
                        .or_else(|_| err(s, "expected the end of the window range, like 2w..5w"))?;
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
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

/// Parses a condition.
pub fn parse(text: &str) -> Result<Expr> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
        end: text.len(),
    };
    if p.tokens.is_empty() {
        return err(0, "the condition is empty");
    }
    let expr = p.or()?;
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

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let at = self.offset();
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Binary(at, "or", Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.not()?;
        while self.keyword("and") {
            let at = self.offset();
            self.pos += 1;
            let right = self.not()?;
            left = Expr::Binary(at, "and", Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let left = self.sum()?;
        if let Some(Token::Op(op @ ("<" | "<=" | ">" | ">=" | "=" | "!="))) = self.peek() {
            let op = *op;
            let at = self.offset();
            self.pos += 1;
            let right = self.sum()?;
            return Ok(Expr::Binary(at, op, Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr> {
        let mut left = self.product()?;
        while let Some(Token::Op(op @ ("+" | "-"))) = self.peek() {
            let op = *op;
            let at = self.offset();
            self.pos += 1;
            let right = self.product()?;
            left = Expr::Binary(at, op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op @ ("*" | "/"))) = self.peek() {
            let op = *op;
            let at = self.offset();
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Binary(at, op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        if let Some(Token::Op("-")) = self.peek() {
            self.pos += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        let at = self.offset();
        let Some((_, token)) = self.tokens.get(self.pos).cloned() else {
            return err(self.end, "the condition ends too early");
        };
        self.pos += 1;
        match token {
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::Window(w) => Ok(Expr::Window(at, w)),
            Token::LParen => {
                let inner = self.or()?;
                self.expect_rparen()?;
                Ok(inner)
            }
            Token::Ident(name) if name == "true" => Ok(Expr::Bool(true)),
            Token::Ident(name) if name == "false" => Ok(Expr::Bool(false)),
            Token::Ident(name) => {
                if self.peek() == Some(&Token::LParen) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Token::RParen) {
                        loop {
                            args.push(self.or()?);
                            if self.peek() == Some(&Token::Comma) {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect_rparen()?;
                    Ok(Expr::Call(at, name, args))
                } else {
                    Ok(Expr::Ident(at, name))
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
                Ok((format!("(NOT {sql})"), Type::Bool))
            }
            Expr::Neg(inner) => {
                let (sql, ty) = self.compile(inner, used)?;
                if ty != Type::Number {
                    return err(0, "`-` needs a number");
                }
                Ok((format!("(-{sql})"), Type::Number))
            }
            Expr::Binary(at, op, left, right) => {
                let (l, lt) = self.compile(left, used)?;
                let (r, rt) = self.compile(right, used)?;
                match *op {
                    "and" | "or" => {
                        if lt != Type::Bool || rt != Type::Bool {
                            return err(*at, format!("`{op}` joins comparisons, not values"));
                        }
                        // Missing data is "not fired", never "unknown".
                        Ok((
                            format!(
                                "(COALESCE({l}, false) {} COALESCE({r}, false))",
                                op.to_uppercase()
                            ),
                            Type::Bool,
                        ))
                    }
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
}
