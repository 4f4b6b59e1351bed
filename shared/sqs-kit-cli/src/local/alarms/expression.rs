//! The metric math the template's alarms use, and nothing more: metric ids, numbers, `+ - * /`,
//! parentheses, comparisons (`> >= < <=`), `FILL(m, number)`, `DIFF(m)`, `MAX([a, b, ...])` and
//! `IF(condition, a[, b])`. Anything else is refused with the reason, so that the alarm is
//! INSUFFICIENT_DATA rather than evaluated wrongly.
//!
//! Every value is a time series over the same periods (a number is the same in every period).
//! As in CloudWatch: an operation on two series has no datapoint where either has none;
//! `FILL` puts its number where there is none; `DIFF` is each datapoint minus the one before it
//! (none for the first); `MAX` of a list is, per period, the largest of the datapoints there; a
//! comparison is 1 or 0; `IF` takes `a` where the condition is not 0, `b` (or no datapoint)
//! where it is.

use std::collections::HashMap;

use super::rule::{Bounds, Comparison, Datapoint};

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expr {
    Number(f64),
    Metric(String),
    Negate(Box<Expr>),
    Binary(Operator, Box<Expr>, Box<Expr>),
    Compare(Comparison, Box<Expr>, Box<Expr>),
    Fill(Box<Expr>, f64),
    Diff(Box<Expr>),
    Max(Vec<Expr>),
    If(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Symbol(&'static str),
}

const SYMBOLS: [&str; 12] = [">=", "<=", ">", "<", "+", "-", "*", "/", "(", ")", "[", "]"];

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let c = rest.chars().next().expect("not empty");
        let length = if c.is_ascii_digit() || c == '.' {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let number = rest[..end].parse::<f64>().map_err(|_| format!("{:?} is not a number", &rest[..end]))?;
            tokens.push(Token::Number(number));
            end
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            tokens.push(Token::Name(rest[..end].to_owned()));
            end
        } else if c == ',' {
            tokens.push(Token::Symbol(","));
            1
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Symbol(symbol));
            symbol.len()
        } else {
            return Err(format!("{c:?} is not an operator evaluated locally"));
        };
        rest = rest[length..].trim_start();
    }
    Ok(tokens)
}

/// Parses an alarm's `Expression`; the error says what is not supported.
pub(super) fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokens(text)?;
    let mut parser = Parser { tokens: &tokens, at: 0 };
    let expression = parser.comparison()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expression),
        Some(token) => Err(format!("unexpected {} after a complete expression", describe(token))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Number(n) => format!("the number {n}"),
        Token::Name(name) => format!("{name:?}"),
        Token::Symbol(symbol) => format!("{symbol:?}"),
    }
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol);
        self.at += usize::from(found);
        found
    }

    fn expect(&mut self, symbol: &str) -> Result<(), String> {
        if self.eat(symbol) {
            return Ok(());
        }
        match self.peek() {
            Some(token) => Err(format!("expected {symbol:?}, found {}", describe(token))),
            None => Err(format!("expected {symbol:?} at the end")),
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.sum()?;
        let op = match self.peek() {
            Some(Token::Symbol(">")) => Comparison::Greater,
            Some(Token::Symbol(">=")) => Comparison::GreaterOrEqual,
            Some(Token::Symbol("<")) => Comparison::Less,
            Some(Token::Symbol("<=")) => Comparison::LessOrEqual,
            _ => return Ok(left),
        };
        self.at += 1;
        Ok(Expr::Compare(op, Box::new(left), Box::new(self.sum()?)))
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat("+") {
                Operator::Add
            } else if self.eat("-") {
                Operator::Subtract
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                Operator::Multiply
            } else if self.eat("/") {
                Operator::Divide
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.peek().cloned().ok_or("the expression ends where a value should be")?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Symbol("(") => {
                let inner = self.comparison()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Name(name) if self.eat("(") => self.call(&name),
            Token::Name(name) => Ok(Expr::Metric(name)),
            other => Err(format!("unexpected {}", describe(&other))),
        }
    }

    /// A function call, after its `(`.
    fn call(&mut self, name: &str) -> Result<Expr, String> {
        let call = match name {
            "FILL" => {
                let series = self.comparison()?;
                self.expect(",")?;
                let negative = self.eat("-");
                let value = match self.peek() {
                    Some(Token::Number(n)) => *n,
                    _ => return Err("FILL is evaluated locally only with a number to fill in".into()),
                };
                self.at += 1;
                Expr::Fill(Box::new(series), if negative { -value } else { value })
            }
            "DIFF" => Expr::Diff(Box::new(self.comparison()?)),
            "MAX" => {
                if !self.eat("[") {
                    return Err("MAX is evaluated locally only on a list, MAX([a, b, ...])".into());
                }
                let mut items = vec![self.comparison()?];
                while self.eat(",") {
                    items.push(self.comparison()?);
                }
                self.expect("]")?;
                Expr::Max(items)
            }
            "IF" => {
                let condition = self.comparison()?;
                self.expect(",")?;
                let then = self.comparison()?;
                let otherwise = if self.eat(",") { Some(Box::new(self.comparison()?)) } else { None };
                Expr::If(Box::new(condition), Box::new(then), otherwise)
            }
            other => return Err(format!("the function {other} is not evaluated locally (only FILL, DIFF, MAX and IF are)")),
        };
        self.expect(")")?;
        Ok(call)
    }
}

impl Expr {
    /// The metric ids the expression reads.
    pub fn metrics(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        self.visit(&mut |expr| {
            if let Expr::Metric(id) = expr {
                ids.push(id.as_str());
            }
        });
        ids
    }

    fn visit<'e>(&'e self, f: &mut impl FnMut(&'e Expr)) {
        f(self);
        match self {
            Expr::Number(_) | Expr::Metric(_) => {}
            Expr::Negate(inner) | Expr::Fill(inner, _) | Expr::Diff(inner) => inner.visit(f),
            Expr::Binary(_, a, b) | Expr::Compare(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Max(items) => items.iter().for_each(|item| item.visit(f)),
            Expr::If(condition, then, otherwise) => {
                condition.visit(f);
                then.visit(f);
                if let Some(otherwise) = otherwise {
                    otherwise.visit(f);
                }
            }
        }
    }

    /// The expression's series over `periods` periods, from the metrics' series (each as long).
    pub fn evaluate(&self, metrics: &HashMap<String, Vec<Datapoint>>, periods: usize) -> Result<Vec<Datapoint>, String> {
        let pointwise2 = |a: &Expr, b: &Expr, f: &dyn Fn(Bounds, Bounds) -> Datapoint| -> Result<Vec<Datapoint>, String> {
            let (a, b) = (a.evaluate(metrics, periods)?, b.evaluate(metrics, periods)?);
            Ok(a.into_iter().zip(b).map(|(a, b)| a.zip(b).and_then(|(a, b)| f(a, b))).collect())
        };
        Ok(match self {
            Expr::Number(n) => vec![Some(Bounds::exact(*n)); periods],
            Expr::Metric(id) => match metrics.get(id) {
                Some(series) => series.clone(),
                None => return Err(format!("it reads {id}, which is not among the alarm's Metrics")),
            },
            Expr::Negate(inner) => inner.evaluate(metrics, periods)?.into_iter().map(|p| p.map(Bounds::neg)).collect(),
            Expr::Binary(op, a, b) => pointwise2(a, b, &|a, b| match op {
                Operator::Add => Some(a.add(b)),
                Operator::Subtract => Some(a.sub(b)),
                Operator::Multiply => Some(a.mul(b)),
                Operator::Divide => a.div(b),
            })?,
            Expr::Compare(op, a, b) => pointwise2(a, b, &|a, b| {
                Some(match a.compare(*op, b) {
                    Some(holds) => Bounds::exact(if holds { 1.0 } else { 0.0 }),
                    None => Bounds { lo: 0.0, hi: 1.0 },
                })
            })?,
            Expr::Fill(inner, value) => inner.evaluate(metrics, periods)?.into_iter().map(|p| p.or(Some(Bounds::exact(*value)))).collect(),
            Expr::Diff(inner) => {
                let series = inner.evaluate(metrics, periods)?;
                let mut previous: Option<Bounds> = None;
                let mut diff = Vec::with_capacity(series.len());
                for point in series {
                    diff.push(point.zip(previous).map(|(now, before)| now.sub(before)));
                    previous = point.or(previous);
                }
                diff
            }
            Expr::Max(items) => {
                let mut result: Vec<Datapoint> = vec![None; periods];
                for item in items {
                    for (max, point) in result.iter_mut().zip(item.evaluate(metrics, periods)?) {
                        *max = match (*max, point) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        };
                    }
                }
                result
            }
            Expr::If(condition, then, otherwise) => {
                let condition = condition.evaluate(metrics, periods)?;
                let then = then.evaluate(metrics, periods)?;
                let otherwise = match otherwise {
                    Some(otherwise) => otherwise.evaluate(metrics, periods)?,
                    None => vec![None; periods],
                };
                let zero = Bounds::exact(0.0);
                condition
                    .into_iter()
                    .zip(then.into_iter().zip(otherwise))
                    .map(|(condition, (then, otherwise))| {
                        let condition = condition?;
                        let holds = if condition.lo == 0.0 && condition.hi == 0.0 {
                            Some(false)
                        } else if condition.compare(Comparison::Greater, zero) == Some(true)
                            || condition.compare(Comparison::Less, zero) == Some(true)
                        {
                            Some(true)
                        } else {
                            None
                        };
                        match holds {
                            Some(true) => then,
                            Some(false) => otherwise,
                            // Either branch may apply: what both allow, if both have a datapoint.
                            None => Some(then.zip(otherwise).map_or(Bounds::anything(), |(a, b)| a.hull(b))),
                        }
                    })
                    .collect()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn series(points: &[Option<f64>]) -> Vec<Datapoint> {
        points.iter().map(|p| p.map(Bounds::exact)).collect()
    }

    fn values(points: Vec<Datapoint>) -> Vec<Option<f64>> {
        points.into_iter().map(|p| p.and_then(Bounds::value)).collect()
    }

    #[test]
    fn the_template_expressions_evaluate_as_cloudwatch_would() {
        let metrics = HashMap::from([
            ("permanent".to_owned(), series(&[None, Some(1.0), None])),
            ("dead".to_owned(), series(&[Some(2.0), None, None])),
            ("transient".to_owned(), series(&[Some(1.0), Some(0.0), None])),
            ("processed".to_owned(), series(&[Some(3.0), Some(0.0), None])),
            ("visible".to_owned(), series(&[Some(0.0), Some(2.0), Some(2.0)])),
        ]);
        let eval = |text: &str| values(parse(text).unwrap().evaluate(&metrics, 3).unwrap());
        assert_eq!(eval("FILL(permanent, 0) + FILL(dead, 0)"), [Some(2.0), Some(1.0), Some(0.0)]);
        assert_eq!(eval("permanent + dead"), [None, None, None], "no datapoint where either has none");
        assert_eq!(eval("100 * transient / (transient + processed)"), [Some(25.0), None, None], "0 / 0 has no datapoint");
        assert_eq!(eval("DIFF(visible)"), [None, Some(2.0), Some(0.0)]);
        assert_eq!(eval("MAX([DIFF(visible), FILL(dead, 0)])"), [Some(2.0), Some(2.0), Some(0.0)]);
        assert_eq!(eval("IF(visible > 1, 10, -1)"), [Some(-1.0), Some(10.0), Some(10.0)]);
        assert_eq!(eval("IF(visible >= 2, visible)"), [None, Some(2.0), Some(2.0)]);
        assert_eq!(eval("-(1 - 3) * 2 <= 4"), [Some(1.0); 3]);
        assert_eq!(eval("FILL(permanent, -1)"), [Some(-1.0), Some(1.0), Some(-1.0)]);
        assert_eq!(parse("DIFF(m)").unwrap().metrics(), ["m"]);
    }

    #[test]
    fn what_is_not_supported_is_said() {
        let refused = |text: &str| parse(text).unwrap_err();
        assert_eq!(refused("RATE(m)"), "the function RATE is not evaluated locally (only FILL, DIFF, MAX and IF are)");
        assert_eq!(refused("MAX(m)"), "MAX is evaluated locally only on a list, MAX([a, b, ...])");
        assert_eq!(refused("FILL(m, REPEAT)"), "FILL is evaluated locally only with a number to fill in");
        assert_eq!(refused("a == b"), "'=' is not an operator evaluated locally");
        assert_eq!(refused("(a + b"), "expected \")\" at the end");
        assert_eq!(refused("a b"), "unexpected \"b\" after a complete expression");
        assert_eq!(refused(""), "the expression ends where a value should be");
        let unknown = parse("m + x").unwrap().evaluate(&HashMap::from([("m".to_owned(), series(&[Some(1.0)]))]), 1).unwrap_err();
        assert_eq!(unknown, "it reads x, which is not among the alarm's Metrics");
    }

    #[test]
    fn an_unobserved_metric_keeps_only_what_it_cannot_change() {
        let metrics = HashMap::from([
            ("visible".to_owned(), series(&[Some(0.0), Some(1.0), Some(1.0)])),
            ("sent".to_owned(), vec![Some(Bounds::unobserved()); 3]),
        ]);
        let result = parse("MAX([DIFF(visible), FILL(sent, 0)])").unwrap().evaluate(&metrics, 3).unwrap();
        // Where the depth rose, the maximum is at least 1 whatever was sent.
        assert_eq!(result[1], Some(Bounds { lo: 1.0, hi: f64::INFINITY }));
        assert_eq!(result[2], Some(Bounds::unobserved()));
    }

    proptest! {
        /// Any text parses or is refused with a reason; it never panics.
        #[test]
        fn any_text_parses_or_is_refused(text in "[a-zA-Z0-9_ ().,\\[\\]+*/<>=-]{0,40}") {
            if let Ok(expression) = parse(&text) {
                let metrics: HashMap<String, Vec<Datapoint>> =
                    expression.metrics().into_iter().map(|id| (id.to_owned(), vec![Some(Bounds::exact(1.0)), None])).collect();
                let _ = expression.evaluate(&metrics, 2);
            }
        }

        /// Arithmetic on exact datapoints is f64 arithmetic, with the usual precedence.
        #[test]
        fn exact_arithmetic_is_plain_arithmetic(a in -50i32..50, b in -50i32..50, c in 1i32..50) {
            let metrics = HashMap::from([
                ("a".to_owned(), series(&[Some(a.into())])),
                ("b".to_owned(), series(&[Some(b.into())])),
                ("c".to_owned(), series(&[Some(c.into())])),
            ]);
            let got = values(parse("a + b * c - a / c").unwrap().evaluate(&metrics, 1).unwrap());
            let (a, b, c) = (f64::from(a), f64::from(b), f64::from(c));
            prop_assert_eq!(got, vec![Some(a + b * c - a / c)]);
        }
    }
}
