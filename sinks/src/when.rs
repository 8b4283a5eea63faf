//! `when` conditions: which records become error events.
//!
//! A condition is comparisons joined by `and` / `or` (`and` binds tighter):
//!
//! ```text
//! level >= "error"
//! level >= "warn" and message =~ "timeout|refused"
//! namespace == "payments" or level == "fatal"
//! ```
//!
//! Fields: `level`, `message`, `namespace`, `pod`, `container`, `node`,
//! `stream`. Operators: `==`, `!=`, `=~` (regex), `!~`, and for `level` also
//! `<`, `<=`, `>`, `>=` in the order trace < debug < info < warn < error <
//! fatal. A record without the field never matches, except with `!=`/`!~`.

use std::fmt;

use regex::Regex;

use crate::event::level_rank;

/// A parsed condition: any of its `and`-groups matches. Printed (`Display`)
/// in the canonical syntax, which parses back to an equal condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    any: Vec<Vec<Comparison>>,
}

#[derive(Debug, Clone)]
struct Comparison {
    field: String,
    op: Op,
    /// The value as written (unescaped).
    value: String,
    test: Test,
}

/// Comparisons are equal when they are written the same (the compiled
/// test follows from field, operator and value).
impl PartialEq for Comparison {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field && self.op == other.op && self.value == other.value
    }
}

#[derive(Debug, Clone)]
enum Test {
    Eq(String),
    Ne(String),
    Matches(Regex),
    NotMatches(Regex),
    /// `level` compared by rank: the record's rank must be in this range.
    Rank(std::ops::Range<usize>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Matches,
    NotMatches,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    /// Longest first, so that `>=` is not read as `>`.
    const ALL: [Op; 8] = [
        Op::Eq,
        Op::Ne,
        Op::Matches,
        Op::NotMatches,
        Op::Ge,
        Op::Le,
        Op::Gt,
        Op::Lt,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

/// The fields a condition may name.
pub const FIELDS: [&str; 7] = [
    "level",
    "message",
    "namespace",
    "pod",
    "container",
    "node",
    "stream",
];

/// Why a condition does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct WhenError {
    /// 1-based, in characters, of where the problem starts.
    pub column: usize,
    /// The byte offset of the same place.
    pub offset: usize,
    pub message: String,
}

impl Condition {
    /// Parse `text`; the error says what is wrong and where.
    ///
    /// `and` and `or` may be written in any case (`AND`, `Or`); values are
    /// quoted with `"` or `'`, and inside them `\"`, `\'` and `\\` stand for
    /// the quote and the backslash (any other `\x` is kept as it is, so
    /// regexes such as `"\d+"` need no doubling).
    pub fn parse(text: &str) -> Result<Self, WhenError> {
        let tokens = tokenize(text);
        let err = |offset: usize, message: String| WhenError {
            column: text[..offset].chars().count() + 1,
            offset,
            message,
        };
        let end = text.len();
        if tokens.is_empty() {
            return Err(err(
                end,
                "empty condition: expected FIELD OP \"VALUE\", as in level >= \"error\"".into(),
            ));
        }
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut i = 0;
        loop {
            all.push(parse_comparison(text, &tokens, &mut i, &err)?);
            match tokens.get(i) {
                None => {
                    any.push(std::mem::take(&mut all));
                    break;
                }
                Some(Token {
                    kind: Kind::Word(w),
                    ..
                }) if w.eq_ignore_ascii_case("and") => {}
                Some(Token {
                    kind: Kind::Word(w),
                    ..
                }) if w.eq_ignore_ascii_case("or") => any.push(std::mem::take(&mut all)),
                Some(Token {
                    kind: Kind::Bad(e), ..
                }) => return Err(e.clone()),
                Some(t) => {
                    return Err(err(
                        t.start,
                        format!(
                            "expected `and`, `or` or the end after a comparison, found {}",
                            t.describe(text)
                        ),
                    ))
                }
            }
            i += 1;
            if i == tokens.len() {
                return Err(err(
                    end,
                    format!(
                        "expected a comparison after `{}`",
                        &text[tokens[i - 1].start..tokens[i - 1].end]
                    ),
                ));
            }
        }
        Ok(Self { any })
    }

    /// Whether a record matches; `get` returns a field's value.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.any
            .iter()
            .any(|all| all.iter().all(|c| c.test.holds(get(&c.field))))
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (g, all) in self.any.iter().enumerate() {
            if g > 0 {
                f.write_str(" or ")?;
            }
            for (c, comparison) in all.iter().enumerate() {
                if c > 0 {
                    f.write_str(" and ")?;
                }
                write!(f, "{comparison}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} \"", self.field, self.op.as_str())?;
        for c in self.value.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

impl Test {
    fn holds(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Test::Eq(want), Some(v)) => v == want,
            (Test::Ne(want), v) => v != Some(want.as_str()),
            (Test::Matches(re), Some(v)) => re.is_match(v),
            (Test::NotMatches(re), v) => !v.is_some_and(|v| re.is_match(v)),
            (Test::Rank(range), Some(v)) => level_rank(v).is_some_and(|r| range.contains(&r)),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A field name or `and` / `or`.
    Word(String),
    Op(Op),
    /// A quoted value, unescaped.
    Value(String),
    /// What could not be read; the last token. Reported only if the parser
    /// gets this far, so that errors come in the order of the text.
    Bad(WhenError),
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Byte offsets in the text.
    start: usize,
    end: usize,
}

impl Token {
    fn describe(&self, text: &str) -> String {
        format!("`{}`", &text[self.start..self.end])
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let err = |offset: usize, message: String| WhenError {
        column: text[..offset].chars().count() + 1,
        offset,
        message,
    };
    let bad = |tokens: &mut Vec<Token>, e: WhenError| {
        tokens.push(Token {
            start: e.offset,
            end: text.len(),
            kind: Kind::Bad(e),
        });
    };
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            let mut end = start;
            while let Some(&(at, c)) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                end = at + c.len_utf8();
                chars.next();
            }
            tokens.push(Token {
                kind: Kind::Word(text[start..end].to_string()),
                start,
                end,
            });
            continue;
        }
        if c == '"' || c == '\'' {
            let quote = c;
            chars.next();
            let mut value = String::new();
            let mut end = None;
            while let Some((at, c)) = chars.next() {
                if c == '\\' {
                    match chars.peek() {
                        Some(&(_, next)) if next == '\\' || next == '"' || next == '\'' => {
                            value.push(next);
                            chars.next();
                        }
                        _ => value.push('\\'),
                    }
                } else if c == quote {
                    end = Some(at + 1);
                    break;
                } else {
                    value.push(c);
                }
            }
            let Some(end) = end else {
                bad(
                    &mut tokens,
                    err(
                        start,
                        format!("the value starting here has no closing {c} (write \\{c} for a {c} inside it)"),
                    ),
                );
                break;
            };
            tokens.push(Token {
                kind: Kind::Value(value),
                start,
                end,
            });
            continue;
        }
        let rest = &text[start..];
        if let Some(op) = Op::ALL.into_iter().find(|op| rest.starts_with(op.as_str())) {
            let end = start + op.as_str().len();
            while chars.peek().is_some_and(|&(at, _)| at < end) {
                chars.next();
            }
            tokens.push(Token {
                kind: Kind::Op(op),
                start,
                end,
            });
            continue;
        }
        let hint = match c {
            '=' => " (did you mean ==?)",
            '!' => " (did you mean != or !~?)",
            '&' => " (write and)",
            '|' => " (write or)",
            '(' | ')' => " (parentheses are not supported: and binds tighter than or)",
            _ => "",
        };
        bad(&mut tokens, err(start, format!("unexpected {c:?}{hint}")));
        break;
    }
    tokens
}

/// One `FIELD OP "VALUE"` from `tokens[*i..]`, leaving `*i` after it.
fn parse_comparison(
    text: &str,
    tokens: &[Token],
    i: &mut usize,
    err: &impl Fn(usize, String) -> WhenError,
) -> Result<Comparison, WhenError> {
    let shape = || {
        format!(
            "expected FIELD OP \"VALUE\" with OP one of {}",
            Op::ALL.map(Op::as_str).join(" ")
        )
    };
    let field_token = &tokens[*i];
    let field = match &field_token.kind {
        Kind::Word(w) => w.clone(),
        Kind::Bad(e) => return Err(e.clone()),
        _ => {
            return Err(err(
                field_token.start,
                format!("{}, found {}", shape(), field_token.describe(text)),
            ))
        }
    };
    if !FIELDS.contains(&field.as_str()) {
        return Err(err(
            field_token.start,
            format!(
                "unknown field {field:?}; expected one of {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let op = match tokens.get(*i + 1) {
        Some(Token {
            kind: Kind::Op(op), ..
        }) => *op,
        Some(Token {
            kind: Kind::Bad(e), ..
        }) => return Err(e.clone()),
        Some(t) => {
            return Err(err(
                t.start,
                format!("{} after {field}, found {}", shape(), t.describe(text)),
            ))
        }
        None => return Err(err(text.len(), format!("{} after {field}", shape()))),
    };
    let op_token = &tokens[*i + 1];
    let value = match tokens.get(*i + 2) {
        Some(Token {
            kind: Kind::Value(v),
            ..
        }) => v.clone(),
        Some(Token {
            kind: Kind::Bad(e), ..
        }) => return Err(e.clone()),
        Some(t) => {
            return Err(err(
                t.start,
                format!(
                    "the value must be quoted, as in level >= \"error\"; found {}",
                    t.describe(text)
                ),
            ))
        }
        None => {
            return Err(err(
                text.len(),
                format!("expected a quoted value after {field} {}", op.as_str()),
            ))
        }
    };
    let value_start = tokens[*i + 2].start;
    *i += 3;
    let regex = |v: &str| Regex::new(v).map_err(|e| err(value_start, format!("bad regex: {e}")));
    let rank = |v: &str| {
        if field != "level" {
            return Err(err(
                op_token.start,
                format!(
                    "{} compares levels; use == != =~ !~ for {field}",
                    op.as_str()
                ),
            ));
        }
        level_rank(v).ok_or_else(|| {
            err(
                value_start,
                format!(
                    "unknown level {v:?}; expected one of {}",
                    crate::event::LEVELS.join(", ")
                ),
            )
        })
    };
    let levels = crate::event::LEVELS.len();
    let test = match op {
        Op::Eq => Test::Eq(value.clone()),
        Op::Ne => Test::Ne(value.clone()),
        Op::Matches => Test::Matches(regex(&value)?),
        Op::NotMatches => Test::NotMatches(regex(&value)?),
        Op::Ge => Test::Rank(rank(&value)?..levels),
        Op::Gt => Test::Rank(rank(&value)? + 1..levels),
        Op::Le => Test::Rank(0..rank(&value)? + 1),
        Op::Lt => Test::Rank(0..rank(&value)?),
    };
    Ok(Comparison {
        field,
        op,
        value,
        test,
    })
}

#[cfg(test)]
#[path = "when_tests.rs"]
mod tests;
