//! Text to comparisons: the tokenizer and the parser, with their errors.

use regex::Regex;

use super::eval::{Num, Test};
use super::{field_text, Comparison, Op, Value, WhenError};
use crate::event::{level_rank, LEVELS};

/// The 1-based character column of byte `offset`.
fn column_of(text: &str, offset: usize) -> usize {
    text[..offset].chars().count() + 1
}

fn error_at(text: &str, offset: usize, message: String) -> WhenError {
    WhenError {
        column: column_of(text, offset),
        offset,
        message,
    }
}

/// The `and`-groups of `text`.
pub(super) fn parse(text: &str) -> Result<Vec<Vec<Comparison>>, WhenError> {
    let tokens = tokenize(text);
    let err = |offset: usize, message: String| error_at(text, offset, message);
    let end = text.len();
    if tokens.is_empty() {
        return Err(err(
            end,
            "empty condition: expected FIELD OP VALUE, as in level >= \"error\"".into(),
        ));
    }
    let mut any = Vec::new();
    let mut all = Vec::new();
    let mut i = 0;
    loop {
        all.push(parse_comparison(text, &tokens, &mut i)?);
        match tokens.get(i) {
            None => {
                any.push(std::mem::take(&mut all));
                break;
            }
            Some(t) if t.keyword("and") => {}
            Some(t) if t.keyword("or") => any.push(std::mem::take(&mut all)),
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
    Ok(any)
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A field: the column and the keys after it; or `and` / `or`.
    Path(Vec<String>),
    Op(Op),
    /// A quoted value, unescaped.
    Value(String),
    /// An unquoted value (right after an operator): a number, or a mistake.
    Bare(String),
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

    /// Whether this is the keyword `word`, in any case.
    fn keyword(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Path(p) if p.len() == 1 && p[0].eq_ignore_ascii_case(word))
    }
}

/// A column name's characters.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// An unquoted key's characters.
fn key_char(c: char) -> bool {
    name_char(c) || c == '-'
}

/// The characters of an unquoted value: a number, or a word to complain
/// about as a whole.
fn bare_char(c: char) -> bool {
    name_char(c) || matches!(c, '.' | '+' | '-')
}

/// The end of the run of `ok` characters from `start`.
fn scan(text: &str, start: usize, ok: impl Fn(char) -> bool) -> usize {
    text[start..]
        .char_indices()
        .find(|&(_, c)| !ok(c))
        .map_or(text.len(), |(at, _)| start + at)
}

/// The quoted text whose opening quote is at `start`: unescaped, and the
/// offset after its closing quote.
fn quoted(text: &str, start: usize, what: &str) -> Result<(String, usize), WhenError> {
    let mut chars = text[start..].char_indices();
    let Some((_, quote)) = chars.next() else {
        unreachable!("called at a quote")
    };
    let mut chars = chars.peekable();
    let mut value = String::new();
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
            return Ok((value, start + at + 1));
        } else {
            value.push(c);
        }
    }
    Err(error_at(
        text,
        start,
        format!(
            "the {what} starting here has no closing {quote} (write \\{quote} for a {quote} inside it)"
        ),
    ))
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let bad = |tokens: &mut Vec<Token>, e: WhenError| {
        tokens.push(Token {
            start: e.offset,
            end: text.len(),
            kind: Kind::Bad(e),
        });
    };
    let mut pos = 0;
    while let Some(c) = text[pos..].chars().next() {
        let start = pos;
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let after_op = matches!(
            tokens.last(),
            Some(Token {
                kind: Kind::Op(_),
                ..
            })
        );
        if after_op && bare_char(c) {
            pos = scan(text, start, bare_char);
            tokens.push(Token {
                kind: Kind::Bare(text[start..pos].to_string()),
                start,
                end: pos,
            });
            continue;
        }
        if name_char(c) {
            pos = scan(text, start, name_char);
            let mut path = vec![text[start..pos].to_string()];
            while text[pos..].starts_with('.') {
                let key = pos + 1;
                match text[key..].chars().next() {
                    Some('"' | '\'') => match quoted(text, key, "key") {
                        Ok((k, end)) => {
                            path.push(k);
                            pos = end;
                        }
                        Err(e) => {
                            bad(&mut tokens, e);
                            return tokens;
                        }
                    },
                    Some(c) if key_char(c) => {
                        pos = scan(text, key, key_char);
                        path.push(text[key..pos].to_string());
                    }
                    _ => {
                        let e = error_at(
                            text,
                            key,
                            format!(
                                "expected a key after `{}.`; quote a key with other characters than letters, digits, _ and -, as in labels.\"app.kubernetes.io/name\"",
                                &text[start..pos]
                            ),
                        );
                        bad(&mut tokens, e);
                        return tokens;
                    }
                }
            }
            tokens.push(Token {
                kind: Kind::Path(path),
                start,
                end: pos,
            });
            continue;
        }
        if c == '"' || c == '\'' {
            match quoted(text, start, "value") {
                Ok((value, end)) => {
                    tokens.push(Token {
                        kind: Kind::Value(value),
                        start,
                        end,
                    });
                    pos = end;
                }
                Err(e) => {
                    bad(&mut tokens, e);
                    break;
                }
            }
            continue;
        }
        let rest = &text[start..];
        if let Some(op) = Op::ALL.into_iter().find(|op| rest.starts_with(op.as_str())) {
            pos = start + op.as_str().len();
            tokens.push(Token {
                kind: Kind::Op(op),
                start,
                end: pos,
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
        bad(
            &mut tokens,
            error_at(text, start, format!("unexpected {c:?}{hint}")),
        );
        break;
    }
    tokens
}

/// One `FIELD OP VALUE` from `tokens[*i..]`, leaving `*i` after it.
fn parse_comparison(text: &str, tokens: &[Token], i: &mut usize) -> Result<Comparison, WhenError> {
    let err = |offset: usize, message: String| error_at(text, offset, message);
    let shape = || {
        format!(
            "expected FIELD OP VALUE with OP one of {}",
            Op::ALL.map(Op::as_str).join(" ")
        )
    };
    let field_token = &tokens[*i];
    let (column, path) = match &field_token.kind {
        Kind::Path(p) => {
            if p[0].eq_ignore_ascii_case("and") || p[0].eq_ignore_ascii_case("or") {
                return Err(err(
                    field_token.start,
                    format!("expected a comparison, found the keyword `{}`", &p[0]),
                ));
            }
            (p[0].clone(), p[1..].to_vec())
        }
        Kind::Bad(e) => return Err(e.clone()),
        _ => {
            return Err(err(
                field_token.start,
                format!("{}, found {}", shape(), field_token.describe(text)),
            ))
        }
    };
    let field = field_text(&column, &path);
    let op_token = match tokens.get(*i + 1) {
        Some(
            t @ Token {
                kind: Kind::Op(_), ..
            },
        ) => t,
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
    let Kind::Op(op) = op_token.kind else {
        unreachable!("matched above")
    };
    let value_token = match tokens.get(*i + 2) {
        Some(t) => t,
        None => {
            return Err(err(
                text.len(),
                format!(
                    "expected a value after {field} {}: quoted text or a number",
                    op.as_str()
                ),
            ))
        }
    };
    let value = match &value_token.kind {
        Kind::Value(v) => Value::Text(v.clone()),
        Kind::Bare(v) if Num::parse(v).is_some() => Value::Number(v.clone()),
        Kind::Bare(v) => {
            return Err(err(
                value_token.start,
                format!(
                    "`{v}` is not a number; text is quoted, as in {field} {} \"{v}\"",
                    op.as_str()
                ),
            ))
        }
        Kind::Bad(e) => return Err(e.clone()),
        _ => {
            return Err(err(
                value_token.start,
                format!(
                    "expected a value (quoted text or a number), found {}",
                    value_token.describe(text)
                ),
            ))
        }
    };
    let value_start = value_token.start;
    *i += 3;
    let test = test(&field, path.is_empty() && column == "level", op, &value).map_err(
        |(on_op, message)| err(if on_op { op_token.start } else { value_start }, message),
    )?;
    Ok(Comparison {
        field,
        column,
        path,
        op,
        value,
        test,
        offset: field_token.start,
        at: column_of(text, field_token.start),
        json: None,
    })
}

/// The test of `field op value`; `level` says whether the field is the
/// `level` column, whose `<` … `>=` compare levels. The error says whether
/// it is about the operator (else the value).
fn test(field: &str, level: bool, op: Op, value: &Value) -> Result<Test, (bool, String)> {
    let o = op.as_str();
    let regex = |v: &str| Regex::new(v).map_err(|e| (false, format!("bad regex: {e}")));
    let levels = LEVELS.len();
    Ok(match value {
        Value::Text(v) => match op {
            Op::Eq | Op::Ne => Test::text(v, op == Op::Ne),
            Op::Matches => Test::Regex {
                re: regex(v)?,
                negate: false,
            },
            Op::NotMatches => Test::Regex {
                re: regex(v)?,
                negate: true,
            },
            _ if !level => {
                let example = if Num::parse(v).is_some() {
                    v.as_str()
                } else {
                    "500"
                };
                return Err((
                    true,
                    format!(
                        "{o} compares numbers (or levels, on level); write {field} {o} {example} with the number unquoted, or compare text with == != =~ !~"
                    ),
                ));
            }
            _ => {
                let rank = level_rank(v).ok_or_else(|| {
                    (
                        false,
                        format!("unknown level {v:?}; expected one of {}", LEVELS.join(", ")),
                    )
                })?;
                Test::Rank(match op {
                    Op::Ge => rank..levels,
                    Op::Gt => rank + 1..levels,
                    Op::Le => 0..rank + 1,
                    _ => 0..rank,
                })
            }
        },
        Value::Number(v) => {
            let num = Num::parse(v).ok_or_else(|| (false, format!("`{v}` is not a number")))?;
            match op {
                Op::Matches | Op::NotMatches => {
                    return Err((
                        false,
                        format!("{o} takes a quoted regex, as in {field} {o} \"{v}\""),
                    ))
                }
                _ if level && op.orders() => {
                    return Err((
                        false,
                        format!(
                            "{o} on level compares levels: write a quoted level, one of {}",
                            LEVELS.join(", ")
                        ),
                    ))
                }
                _ => Test::Num { op, num },
            }
        }
    })
}
