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

use regex::Regex;

use crate::event::level_rank;

/// A parsed condition: any of its `and`-groups matches.
#[derive(Debug, Clone)]
pub struct Condition {
    any: Vec<Vec<Comparison>>,
}

#[derive(Debug, Clone)]
struct Comparison {
    field: String,
    test: Test,
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

impl Condition {
    /// Parse `text`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut any = Vec::new();
        for group in split_words(text, "or") {
            let mut all = Vec::new();
            for clause in split_words(&group, "and") {
                all.push(parse_comparison(clause.trim())?);
            }
            any.push(all);
        }
        if any.is_empty() {
            return Err("empty condition".into());
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

/// Split on a keyword surrounded by whitespace, outside quotes.
fn split_words(text: &str, word: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quote: Option<char> = None;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' && i + 1 < chars.len() {
                if let Some(p) = parts.last_mut() {
                    p.extend([c, chars[i + 1]]);
                }
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c.is_whitespace() {
            let rest: String = chars[i + 1..].iter().collect();
            if rest.starts_with(word) && rest[word.len()..].starts_with(char::is_whitespace) {
                parts.push(String::new());
                i += 1 + word.len();
                continue;
            }
        }
        if let Some(p) = parts.last_mut() {
            p.push(c);
        }
        i += 1;
    }
    parts
}

fn parse_comparison(clause: &str) -> Result<Comparison, String> {
    const OPS: [&str; 8] = ["==", "!=", "=~", "!~", ">=", "<=", ">", "<"];
    let (at, op) = OPS
        .iter()
        .filter_map(|op| clause.find(op).map(|at| (at, *op)))
        .min_by_key(|(at, op)| (*at, std::cmp::Reverse(op.len())))
        .ok_or_else(|| {
            format!(
                "{clause:?}: expected FIELD OP \"VALUE\" with OP one of {}",
                OPS.join(" ")
            )
        })?;
    let field = clause[..at].trim().to_string();
    if !FIELDS.contains(&field.as_str()) {
        return Err(format!(
            "{clause:?}: unknown field {field:?}; expected one of {}",
            FIELDS.join(", ")
        ));
    }
    let value = unquote(clause[at + op.len()..].trim())
        .ok_or_else(|| format!("{clause:?}: the value must be quoted, as in level >= \"error\""))?;
    let regex = |v: &str| Regex::new(v).map_err(|e| format!("{clause:?}: bad regex: {e}"));
    let rank = |v: &str| {
        if field != "level" {
            return Err(format!(
                "{clause:?}: {op} compares levels; use == != =~ !~ for {field}"
            ));
        }
        level_rank(v).ok_or_else(|| {
            format!(
                "{clause:?}: unknown level {v:?}; expected one of {}",
                crate::event::LEVELS.join(", ")
            )
        })
    };
    let levels = crate::event::LEVELS.len();
    let test = match op {
        "==" => Test::Eq(value),
        "!=" => Test::Ne(value),
        "=~" => Test::Matches(regex(&value)?),
        "!~" => Test::NotMatches(regex(&value)?),
        ">=" => Test::Rank(rank(&value)?..levels),
        ">" => Test::Rank(rank(&value)? + 1..levels),
        "<=" => Test::Rank(0..rank(&value)? + 1),
        _ => Test::Rank(0..rank(&value)?),
    };
    Ok(Comparison { field, test })
}

fn unquote(text: &str) -> Option<String> {
    let q = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = text.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                if next != q && next != '\\' {
                    out.push('\\');
                }
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(level: &'a str, message: &'a str) -> impl Fn(&str) -> Option<&'a str> {
        move |f| match f {
            "level" => Some(level),
            "message" => Some(message),
            "namespace" => Some("shop"),
            _ => None,
        }
    }

    #[test]
    fn levels_compare_in_order() {
        let c = Condition::parse(r#"level >= "error""#).expect("parses");
        assert!(c.matches(record("error", "x")));
        assert!(c.matches(record("fatal", "x")));
        assert!(!c.matches(record("warn", "x")));
        assert!(!c.matches(|_| None), "no level never matches");
        let c = Condition::parse(r#"level < "info""#).expect("parses");
        assert!(c.matches(record("debug", "x")) && !c.matches(record("info", "x")));
    }

    #[test]
    fn and_binds_tighter_than_or_and_regexes_work() {
        let c = Condition::parse(
            r#"level >= "warn" and message =~ "time ?out" or namespace == 'shop and more'"#,
        )
        .expect("parses");
        assert!(c.matches(record("warn", "request timeout")));
        assert!(!c.matches(record("warn", "refused")));
        let c = Condition::parse(r#"message !~ "health" and level == "info""#).expect("parses");
        assert!(c.matches(record("info", "GET /orders")));
        assert!(!c.matches(record("info", "GET /health")));
    }

    #[test]
    fn mistakes_are_explained() {
        for (text, says) in [
            (r#"lvl >= "error""#, "unknown field"),
            (r#"level >= error"#, "quoted"),
            (r#"level >= "loud""#, "unknown level"),
            (r#"message > "a""#, "compares levels"),
            (r#"message =~ "(""#, "bad regex"),
            ("level", "expected FIELD OP"),
        ] {
            let err = Condition::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
