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

mod compiler;
mod lexer;
mod parser;
mod position;
mod vocabulary;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

pub use self::compiler::Compiler;
pub use self::lexer::{Unit, Window};
pub use self::parser::{Expr, parse};
pub use self::position::{line_column, toml_literal_offset, toml_offset};
pub use self::vocabulary::{
    MEASURES, NETWORK_MEASURES, PROFILE, SEGMENT_FIELDS, SOCIAL, Source, Type, WARNING_FIELDS,
};

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
