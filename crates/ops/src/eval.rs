//! `eval`: derived columns from arithmetic on columns, written as pandas' `df.eval` writes
//! them: `x = 12.5 * (a + d - b - c) / (a + b + c + d)`, several assignments separated by `;`
//! or new lines, each seeing the columns the ones before it made.
//!
//! Operators `+ - * / // % **`, comparisons `< <= > >= == !=` (chained as in Python),
//! `&`/`and`, `|`/`or`, `~`/`not`, parentheses, numbers, `True`/`False`, and the NumPy
//! functions `abs sqrt exp log log10 log1p expm1 sin cos tan arcsin arccos arctan sinh cosh
//! tanh floor ceil arctan2 where minimum maximum`. `&` and `|` bind more loosely than the
//! comparisons, as in pandas' own parser. Arithmetic is NumPy's float64: a missing value is
//! NaN and stays missing, `x / 0` is `inf` (or NaN for `0 / 0`), `%` and `//` follow
//! `np.remainder` and `np.floor_divide`, `minimum`/`maximum` propagate NaN, and a comparison
//! with NaN is false (`!=` true). Results are float64 columns, or boolean for comparisons.
//! An expression that does not parse is refused when the chain is built; a column the stream
//! does not have is refused when its columns are known, before any row is processed. An empty
//! expression (the default) changes nothing.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray};
use arrow_schema::{DataType, Field, Schema};
use streamprep_core::{numeric, Batch, Step, StepError};

use crate::registry::Options;

const NAME: &str = "eval";

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Bool(bool),
    Col(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    /// `a < b <= c`: the operands and the comparisons between them.
    Cmp(Vec<Expr>, Vec<Cmp>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    /// A NumPy function of one argument, by name.
    Unary(&'static str),
    Arctan2,
    Where,
    Minimum,
    Maximum,
}

/// A function of one float64.
type Unary = fn(f64) -> f64;

/// The functions of one argument: name and NumPy's function on float64.
const UNARY: [(&str, Unary); 18] = [
    ("abs", f64::abs),
    ("sqrt", f64::sqrt),
    ("exp", f64::exp),
    ("log", f64::ln),
    ("log10", f64::log10),
    ("log1p", f64::ln_1p),
    ("expm1", f64::exp_m1),
    ("sin", f64::sin),
    ("cos", f64::cos),
    ("tan", f64::tan),
    ("arcsin", f64::asin),
    ("arccos", f64::acos),
    ("arctan", f64::atan),
    ("sinh", f64::sinh),
    ("cosh", f64::cosh),
    ("tanh", f64::tanh),
    ("floor", f64::floor),
    ("ceil", f64::ceil),
];

/// The functions by name, with their number of arguments.
fn func(name: &str) -> Option<(Func, usize)> {
    if let Some((n, _)) = UNARY.iter().find(|(n, _)| *n == name) {
        return Some((Func::Unary(n), 1));
    }
    match name {
        "arctan2" => Some((Func::Arctan2, 2)),
        "where" => Some((Func::Where, 3)),
        "minimum" => Some((Func::Minimum, 2)),
        "maximum" => Some((Func::Maximum, 2)),
        _ => None,
    }
}

const FUNCTIONS: &str = "abs sqrt exp log log10 log1p expm1 sin cos tan arcsin arccos arctan sinh cosh tanh floor ceil arctan2 where minimum maximum";

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(&'static str),
    Sep,
}

fn tokens(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    const OPS: [&str; 24] = [
        "**", "//", "<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "%", "&", "|", "~", "(",
        ")", ",", "=", "[", "]", "{", "}",
    ];
    while i < b.len() {
        let c = b[i];
        if c == b'\n' || c == b';' {
            out.push(Tok::Sep);
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text = src[start..i].replace('_', "");
            let n = text
                .parse::<f64>()
                .map_err(|_| format!("'{}' is not a number", &src[start..i]))?;
            out.push(Tok::Num(n));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Name(src[start..i].to_string()));
        } else if c == b'`' {
            let start = i + 1;
            let end = src[start..]
                .find('`')
                .ok_or("a name in backticks is not closed")?;
            out.push(Tok::Name(src[start..start + end].to_string()));
            i = start + end + 1;
        } else if let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) {
            if matches!(*op, "[" | "]" | "{" | "}") {
                return Err(format!("'{op}' is not part of an expression"));
            }
            out.push(Tok::Op(op));
            i += op.len();
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(format!("'{ch}' is not part of an expression"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    /// Nesting so far (parentheses, calls, unary operators): bounded, so no expression can
    /// exhaust the stack.
    depth: usize,
}

/// The deepest nesting an expression may have.
const MAX_DEPTH: usize = 64;

/// The most tokens an assignment may have.
const MAX_TOKENS: usize = 1_000;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn eat_op(&mut self, op: &'static str) -> bool {
        if self.peek() == Some(&Tok::Op(op)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the expression nests deeper than {MAX_DEPTH} levels"
            ));
        }
        let e = self.or_inner();
        self.depth -= 1;
        e
    }

    fn or_inner(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.eat_op("|") || self.eat_word("or") {
            e = Expr::Bin(Op::Or, Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.eat_op("&") || self.eat_word("and") {
            e = Expr::Bin(Op::And, Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_word("not") {
            self.depth += 1;
            if self.depth > MAX_DEPTH * 4 {
                return Err(format!(
                    "the expression nests deeper than {MAX_DEPTH} levels"
                ));
            }
            let e = self.not();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let first = self.arith()?;
        let mut operands = vec![first];
        let mut cmps = Vec::new();
        loop {
            let c = match self.peek() {
                Some(Tok::Op("<")) => Cmp::Lt,
                Some(Tok::Op("<=")) => Cmp::Le,
                Some(Tok::Op(">")) => Cmp::Gt,
                Some(Tok::Op(">=")) => Cmp::Ge,
                Some(Tok::Op("==")) => Cmp::Eq,
                Some(Tok::Op("!=")) => Cmp::Ne,
                _ => break,
            };
            self.at += 1;
            cmps.push(c);
            operands.push(self.arith()?);
        }
        Ok(if cmps.is_empty() {
            operands.pop().expect("one")
        } else {
            Expr::Cmp(operands, cmps)
        })
    }

    fn arith(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        loop {
            let op = if self.eat_op("+") {
                Op::Add
            } else if self.eat_op("-") {
                Op::Sub
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                Op::Mul
            } else if self.eat_op("//") {
                Op::FloorDiv
            } else if self.eat_op("/") {
                Op::Div
            } else if self.eat_op("%") {
                Op::Mod
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH * 4 {
            return Err(format!(
                "the expression nests deeper than {MAX_DEPTH} levels"
            ));
        }
        let e = self.unary_inner();
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self) -> Result<Expr, String> {
        if self.eat_op("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.eat_op("+") {
            return self.unary();
        }
        if self.eat_op("~") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.atom()?;
        if self.eat_op("**") {
            // right-associative, and binds tighter than a unary minus on its left
            return Ok(Expr::Bin(Op::Pow, Box::new(base), Box::new(self.unary()?)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.at).cloned() {
            Some(Tok::Num(n)) => {
                self.at += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Name(n)) => {
                self.at += 1;
                match n.as_str() {
                    "True" => return Ok(Expr::Bool(true)),
                    "False" => return Ok(Expr::Bool(false)),
                    "and" | "or" | "not" => return Err(format!("'{n}' needs something before it")),
                    _ => {}
                }
                if self.eat_op("(") {
                    let (f, arity) = func(&n).ok_or_else(|| {
                        format!("'{n}' is not a function eval knows ({FUNCTIONS})")
                    })?;
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat_op(")") {
                                break;
                            }
                            if !self.eat_op(",") {
                                return Err(format!("{n}(...): a ',' or ')' is missing"));
                            }
                        }
                    }
                    if args.len() != arity {
                        return Err(format!("{n} takes {arity} argument(s), got {}", args.len()));
                    }
                    return Ok(Expr::Call(f, args));
                }
                Ok(Expr::Col(n))
            }
            Some(Tok::Op("(")) => {
                self.at += 1;
                let e = self.or()?;
                if !self.eat_op(")") {
                    return Err("a ')' is missing".into());
                }
                Ok(e)
            }
            Some(Tok::Op(op)) => Err(format!("'{op}' cannot start a value here")),
            Some(Tok::Sep) | None => Err("the expression ends too early".into()),
        }
    }
}

/// `target = expr` statements, in order.
fn parse(src: &str) -> Result<Vec<(String, Expr)>, String> {
    let toks = tokens(src)?;
    let mut out = Vec::new();
    for stmt in toks.split(|t| *t == Tok::Sep).filter(|s| !s.is_empty()) {
        // a bound on an expression's size bounds its tree's depth (evaluating and dropping it
        // recurse): far beyond any formula a sensor needs
        if stmt.len() > MAX_TOKENS {
            return Err(format!(
                "an assignment of {} pieces: at most {MAX_TOKENS}",
                stmt.len()
            ));
        }
        let (target, rest) = match stmt {
            [Tok::Name(n), Tok::Op("="), rest @ ..] => (n.clone(), rest),
            _ => return Err("each part is an assignment, `name = expression` (x = a + b)".into()),
        };
        if func(&target).is_some()
            || matches!(target.as_str(), "True" | "False" | "and" | "or" | "not")
        {
            return Err(format!("'{target}' cannot be assigned to"));
        }
        let mut p = Parser {
            toks: rest.to_vec(),
            at: 0,
            depth: 0,
        };
        let e = p.or()?;
        if p.at != p.toks.len() {
            return Err(format!(
                "{target} = ...: something is left over after the expression ({:?})",
                p.toks[p.at]
            ));
        }
        out.push((target, e));
    }
    Ok(out)
}

/// A value while evaluating.
#[derive(Debug, Clone)]
enum Val {
    F(Vec<f64>),
    B(Vec<bool>),
    Sf(f64),
    Sb(bool),
}

impl Val {
    fn floats(&self, n: usize) -> Result<std::borrow::Cow<'_, [f64]>, String> {
        use std::borrow::Cow;
        match self {
            Val::F(v) => Ok(Cow::Borrowed(v)),
            Val::Sf(x) => Ok(Cow::Owned(vec![*x; n])),
            // NumPy takes booleans as 0 and 1 in arithmetic
            Val::B(v) => Ok(Cow::Owned(
                v.iter().map(|b| f64::from(u8::from(*b))).collect(),
            )),
            Val::Sb(b) => Ok(Cow::Owned(vec![f64::from(u8::from(*b)); n])),
        }
    }

    fn bools(&self, n: usize, what: &str) -> Result<std::borrow::Cow<'_, [bool]>, String> {
        use std::borrow::Cow;
        match self {
            Val::B(v) => Ok(Cow::Borrowed(v)),
            Val::Sb(b) => Ok(Cow::Owned(vec![*b; n])),
            _ => Err(format!(
                "{what} takes true/false values (comparisons), not numbers"
            )),
        }
    }

    fn scalar(&self) -> bool {
        matches!(self, Val::Sf(_) | Val::Sb(_))
    }
}

/// `np.remainder` for float64.
fn remainder(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return a % b; // fmod: NaN
    }
    let m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m + b
        } else {
            m
        }
    } else {
        0.0f64.copysign(b)
    }
}

/// `np.floor_divide` for float64 (NumPy's `npy_divmod`).
fn floor_divide(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(a / b)
    }
}

struct Frame<'a> {
    n: usize,
    columns: &'a std::collections::HashMap<String, Val>,
}

fn zip(a: &Val, b: &Val, n: usize, f: impl Fn(f64, f64) -> f64) -> Result<Val, String> {
    if let (Val::Sf(x), Val::Sf(y)) = (a, b) {
        return Ok(Val::Sf(f(*x, *y)));
    }
    let (x, y) = (a.floats(n)?, b.floats(n)?);
    Ok(Val::F(
        x.iter().zip(y.iter()).map(|(p, q)| f(*p, *q)).collect(),
    ))
}

fn eval(e: &Expr, fr: &Frame<'_>) -> Result<Val, String> {
    let n = fr.n;
    Ok(match e {
        Expr::Num(x) => Val::Sf(*x),
        Expr::Bool(b) => Val::Sb(*b),
        Expr::Col(c) => fr
            .columns
            .get(c)
            .cloned()
            .ok_or_else(|| format!("no column '{c}'"))?,
        Expr::Neg(x) => match eval(x, fr)? {
            Val::Sf(v) => Val::Sf(-v),
            Val::F(v) => Val::F(v.into_iter().map(|x| -x).collect()),
            _ => return Err("'-' takes numbers, not true/false".into()),
        },
        Expr::Not(x) => match eval(x, fr)? {
            Val::Sb(b) => Val::Sb(!b),
            Val::B(v) => Val::B(v.into_iter().map(|b| !b).collect()),
            _ => {
                return Err("'not' / '~' take true/false values (comparisons), not numbers".into())
            }
        },
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval(a, fr)?, eval(b, fr)?);
            match op {
                Op::Add => zip(&a, &b, n, |x, y| x + y)?,
                Op::Sub => zip(&a, &b, n, |x, y| x - y)?,
                Op::Mul => zip(&a, &b, n, |x, y| x * y)?,
                Op::Div => zip(&a, &b, n, |x, y| x / y)?,
                Op::FloorDiv => zip(&a, &b, n, floor_divide)?,
                Op::Mod => zip(&a, &b, n, remainder)?,
                Op::Pow => zip(&a, &b, n, f64::powf)?,
                Op::And | Op::Or => {
                    let what = if *op == Op::And {
                        "'&' / 'and'"
                    } else {
                        "'|' / 'or'"
                    };
                    if let (Val::Sb(x), Val::Sb(y)) = (&a, &b) {
                        Val::Sb(if *op == Op::And { *x && *y } else { *x || *y })
                    } else {
                        let (x, y) = (a.bools(n, what)?, b.bools(n, what)?);
                        Val::B(
                            x.iter()
                                .zip(y.iter())
                                .map(|(p, q)| if *op == Op::And { *p && *q } else { *p || *q })
                                .collect(),
                        )
                    }
                }
            }
        }
        Expr::Cmp(operands, cmps) => {
            let vals = operands
                .iter()
                .map(|o| eval(o, fr))
                .collect::<Result<Vec<_>, _>>()?;
            let mut acc: Option<Val> = None;
            for (i, c) in cmps.iter().enumerate() {
                let f = |x: f64, y: f64| match c {
                    Cmp::Lt => x < y,
                    Cmp::Le => x <= y,
                    Cmp::Gt => x > y,
                    Cmp::Ge => x >= y,
                    Cmp::Eq => x == y,
                    Cmp::Ne => x != y,
                };
                let (a, b) = (&vals[i], &vals[i + 1]);
                let this = if a.scalar() && b.scalar() {
                    Val::Sb(f(a.floats(1)?[0], b.floats(1)?[0]))
                } else {
                    let (x, y) = (a.floats(n)?, b.floats(n)?);
                    Val::B(x.iter().zip(y.iter()).map(|(p, q)| f(*p, *q)).collect())
                };
                acc = Some(match acc {
                    None => this,
                    Some(prev) => {
                        let (x, y) = (
                            prev.bools(n, "a comparison")?,
                            this.bools(n, "a comparison")?,
                        );
                        Val::B(x.iter().zip(y.iter()).map(|(p, q)| *p && *q).collect())
                    }
                });
            }
            acc.expect("a comparison has two operands")
        }
        Expr::Call(f, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, fr))
                .collect::<Result<Vec<_>, _>>()?;
            match f {
                Func::Unary(name) => {
                    let g = UNARY
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(f64::abs as Unary, |(_, g)| *g);
                    match &vals[0] {
                        Val::Sf(x) => Val::Sf(g(*x)),
                        v => Val::F(v.floats(n)?.iter().map(|x| g(*x)).collect()),
                    }
                }
                Func::Arctan2 => zip(&vals[0], &vals[1], n, f64::atan2)?,
                Func::Minimum => zip(&vals[0], &vals[1], n, numeric::np_minimum)?,
                Func::Maximum => zip(&vals[0], &vals[1], n, numeric::np_maximum)?,
                Func::Where => {
                    let cond = vals[0].bools(n, "where's first argument")?;
                    match (&vals[1], &vals[2]) {
                        (Val::B(_) | Val::Sb(_), Val::B(_) | Val::Sb(_)) => {
                            let (x, y) = (vals[1].bools(n, "where")?, vals[2].bools(n, "where")?);
                            Val::B((0..n).map(|i| if cond[i] { x[i] } else { y[i] }).collect())
                        }
                        _ => {
                            let (x, y) = (vals[1].floats(n)?, vals[2].floats(n)?);
                            Val::F((0..n).map(|i| if cond[i] { x[i] } else { y[i] }).collect())
                        }
                    }
                }
            }
        }
    })
}

/// The `eval` step.
pub struct Eval {
    statements: Vec<(String, Expr)>,
}

impl Eval {
    /// Parse `expr`.
    pub fn new(expr: &str) -> Result<Self, String> {
        Ok(Eval {
            statements: parse(expr).map_err(|e| format!("expr: {e}"))?,
        })
    }

    /// Build from registry options.
    pub fn from_options(o: &Options) -> Result<Self, String> {
        Eval::new(o.text("expr"))
    }
}

impl Step for Eval {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let bad = |reason: String| StepError::BadInput { step: NAME, reason };
        let n = batch.num_rows();
        let schema = batch.schema();
        let mut columns = std::collections::HashMap::new();
        for (i, f) in schema.fields().iter().enumerate() {
            let col = batch.column(i);
            let v = match f.data_type() {
                DataType::Boolean => {
                    let a = col
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| bad(format!("column '{}' is not boolean", f.name())))?;
                    Some(Val::B(
                        (0..n).map(|r| a.is_valid(r) && a.value(r)).collect(),
                    ))
                }
                t if numeric::is_numeric(t) => Some(Val::F(numeric::to_f64(col))),
                _ => None,
            };
            if let Some(v) = v {
                columns.insert(f.name().clone(), v);
            }
        }
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (target, expr) in &self.statements {
            let fr = Frame {
                n,
                columns: &columns,
            };
            let v = eval(expr, &fr).map_err(|e| {
                let known: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                if let Some(c) = e.strip_prefix("no column '") {
                    let c = c.trim_end_matches('\'');
                    if schema.index_of(c).is_ok() {
                        bad(format!("{target} = ...: column '{c}' is not numeric"))
                    } else {
                        bad(format!(
                            "{target} = ...: no column '{c}' (the message has {})",
                            known.join(", ")
                        ))
                    }
                } else {
                    bad(format!("{target} = ...: {e}"))
                }
            })?;
            let (array, value): (ArrayRef, Val) = match v {
                Val::F(x) => (numeric::from_f64(x.clone()), Val::F(x)),
                Val::Sf(x) => {
                    let x = vec![x; n];
                    (numeric::from_f64(x.clone()), Val::F(x))
                }
                Val::B(x) => (Arc::new(BooleanArray::from(x.clone())), Val::B(x)),
                Val::Sb(b) => {
                    let x = vec![b; n];
                    (Arc::new(BooleanArray::from(x.clone())), Val::B(x))
                }
            };
            let field = Arc::new(Field::new(target, array.data_type().clone(), true));
            match fields.iter().position(|f| f.name() == target) {
                Some(i) => {
                    fields[i] = field;
                    arrays[i] = array;
                }
                None => {
                    fields.push(field);
                    arrays.push(array);
                }
            }
            columns.insert(target.clone(), value);
        }
        Batch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| StepError::Internal {
            step: NAME,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expr: &str, json: &str) -> Result<String, String> {
        let mut step = Eval::new(expr)?;
        let out = step
            .apply(streamprep_testkit::batch_from_json(json))
            .map_err(|e| e.to_string())?;
        Ok(streamprep_testkit::batch_to_json(&out))
    }

    #[test]
    fn the_beam_position_of_seed_002() {
        let out = run(
            "x = 12.5 * (a + d - b - c) / (a + b + c + d)",
            r#"[{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}]"#,
        )
        .expect("evaluates");
        assert!(out.contains("\"x\":0.0"), "{out}");
    }

    #[test]
    fn precedence_is_pythons_with_pandas_and_or() {
        let p = |s: &str| parse(s).expect(s).remove(0).1;
        assert_eq!(p("x = -2 ** 2"), p("x = -(2 ** 2)"));
        assert_eq!(p("x = 2 ** 3 ** 2"), p("x = 2 ** (3 ** 2)"));
        assert_eq!(p("x = a > 1 & b < 2"), p("x = (a > 1) & (b < 2)"));
        assert_eq!(p("x = a + b * c"), p("x = a + (b * c)"));
        assert_eq!(p("x = a - b - c"), p("x = (a - b) - c"));
    }

    #[test]
    fn numpys_remainder_and_floor_division() {
        assert_eq!(remainder(-7.0, 3.0), 2.0);
        assert_eq!(remainder(7.0, -3.0), -2.0);
        assert!(remainder(1.0, 0.0).is_nan());
        assert_eq!(floor_divide(-7.0, 2.0), -4.0);
        assert_eq!(floor_divide(7.0, 0.0), f64::INFINITY);
        assert!(floor_divide(0.0, 0.0).is_nan());
    }

    #[test]
    fn no_expression_makes_it_panic() {
        // expressions built at random from the grammar's pieces, and byte soup: each parses or
        // is refused, and what parses evaluates (to a value or a reason) on a small message
        let pieces = [
            "x", "=", "a", "b", "c", "(", ")", "+", "-", "*", "/", "//", "%", "**", "<", "<=",
            "==", "!=", ">", "&", "|", "~", "not", "and", "or", ",", "1", "2.5", "1e308", "0",
            "True", "sqrt(", "where(", "arctan2(", "minimum(", ";", "\n", "`a`", "`", "é", ".",
        ];
        let batch = streamprep_testkit::batch_from_json(
            r#"[{"a": 1.5, "b": 0.0, "c": -2.0}, {"a": null, "b": 3.0, "c": 4.0}]"#,
        );
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut src = String::from("x = ");
            for _ in 0..len {
                src.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                src.push(' ');
            }
            if let Ok(mut step) = Eval::new(&src) {
                let _ = step.apply(batch.clone());
            }
        }
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        for (e, says) in [
            ("a + b", "assignment"),
            ("x = a +", "ends too early"),
            ("x = frob(a)", "not a function"),
            ("x = sqrt(a, b)", "takes 1 argument"),
            ("x = (a + b", "')' is missing"),
            ("x = a $ b", "'$'"),
            ("x = a b", "left over"),
            (
                &format!("x = {}a{}", "(".repeat(100), ")".repeat(100)),
                "nests deeper",
            ),
            (&format!("x = {}a", "-".repeat(300)), "nests deeper"),
            (&format!("x = a{}", " + a".repeat(5_000)), "at most 1000"),
            (&format!("x = {}a > 1", "not ".repeat(300)), "nests deeper"),
        ] {
            let err = parse(e).expect_err(e);
            assert!(err.contains(says), "{e}: {err}");
        }
        let err = run("x = a + nope", r#"[{"a": 1.0}]"#).expect_err("unknown column");
        assert!(err.contains("no column 'nope'"), "{err}");
    }
}
