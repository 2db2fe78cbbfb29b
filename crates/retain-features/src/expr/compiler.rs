//! The compiler: type-checks a parsed condition and writes its SQL in one pass, registering
//! every source it reads under an alias (`f0`, `f1`, …) for the feature queries to fill.

use super::vocabulary::{EVENT_FIELDS, FUNCTIONS};
use super::{
    Expr, MEASURES, PROFILE, Result, SEGMENT_FIELDS, Source, Type, Unit, WARNING_FIELDS, Window,
    err,
};

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
