//! The parser: tokens to an [`Expr`] tree by recursive descent, counting the nesting as it goes
//! so that a condition deeper than [`MAX_DEPTH`] is refused before it can exhaust the stack.

use super::lexer::{Token, check_text, describe, tokenize};
use super::{MAX_DEPTH, Result, Window, err};

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
