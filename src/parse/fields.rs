//! Fields found by the text parsers (nginx, apache, ltsv, logfmt, regex),
//! and how they fill a record: its time, level and message from the
//! configured keys, its typed `[[columns]]`, and the `fields` column as one
//! JSON object.
//!
//! Values borrow from the line; only the `fields` JSON text is built per
//! record (one allocation). The JSON writer is hand-written because it is on
//! the hot path and needs nothing but string escaping.

use std::borrow::Cow;

use super::body::{normalize_level, rfc3339_micros, Scalar};
use super::rules::{BodyRules, Known, TimeKey, CLF_TIME};
use super::{Flags, Record};

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The fields of one line, in line order; keys borrow from the line or
/// the rules (`'k`), values from the line (`'a`).
#[derive(Debug, Default)]
pub struct Fields<'k, 'a> {
    items: Vec<(&'k str, Value<'a>)>,
}

impl Fields<'_, '_> {
    /// Room for the fields of a typical line (one allocation).
    pub fn new() -> Self {
        Self {
            items: Vec::with_capacity(16),
        }
    }
}

impl<'k, 'a> Fields<'k, 'a> {
    /// Add a field; `-` means absent (as access logs write it), and a key
    /// seen again replaces its earlier value (logfmt, LTSV).
    pub fn push(&mut self, key: &'k str, value: Value<'a>) {
        if is_dash(&value) {
            return;
        }
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.items.push((key, value)),
        }
    }

    /// [`Self::push`] for a parser whose keys cannot repeat (fixed names,
    /// a regex's groups).
    pub fn push_new(&mut self, key: &'k str, value: Value<'a>) {
        if !is_dash(&value) {
            self.items.push((key, value));
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.items.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Fill `rec` from these fields of `line`: time, level and message from
    /// the rules' keys (the message is the whole line when no key has it),
    /// the extra columns, and `fields` as a JSON object.
    pub fn fill(self, line: &'a str, rules: &BodyRules, rec: &mut Record<'a>) {
        let (mut time, mut message, mut log) = (None, None, None);
        for (key, value) in &self.items {
            match (rules.classify(key), value) {
                (Known::Time, v) => time = Some(v),
                (Known::Level, Value::Str(s)) => rec.level = Some(normalize_level(s)),
                (Known::Message, Value::Str(s)) => message = Some(s),
                (Known::Log, Value::Str(s)) => log = Some(s),
                _ => {}
            }
        }
        if let Some(value) = time {
            let parsed = match value {
                Value::Str(s) => parse_time(s, rules.time_format.as_deref()),
                _ => None,
            };
            match parsed {
                Some(t)
                    if matches!(rules.time_key, TimeKey::Key(_)) || rec.timestamp_us.is_none() =>
                {
                    rec.timestamp_us = Some(t)
                }
                Some(_) => {}
                None if rules.time_required() => rec.flags.insert(Flags::CONVERSION_ERROR),
                None => {}
            }
        }
        rec.message = Some(message.or(log).cloned().unwrap_or(Cow::Borrowed(line)));
        rec.extras = rules
            .extra_keys
            .iter()
            .map(|k| self.get(k).map(Value::to_scalar))
            .collect();
        rec.fields = Some(Cow::Owned(self.to_json(line.len())));
    }

    /// The fields as one JSON object; `hint`: the line's length, to size
    /// the text at once.
    pub fn to_json(&self, hint: usize) -> String {
        let mut out = String::with_capacity(hint + 16 + self.items.len() * 24);
        out.push('{');
        for (i, (key, value)) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_str(&mut out, key);
            out.push(':');
            match value {
                Value::Str(s) => write_json_str(&mut out, s),
                Value::Int(n) => out.push_str(itoa::Buffer::new().format(*n)),
                Value::Float(f) if f.is_finite() => out.push_str(ryu::Buffer::new().format(*f)),
                Value::Float(_) => out.push_str("null"),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            }
        }
        out.push('}');
        out
    }
}

fn is_dash(value: &Value) -> bool {
    matches!(value, Value::Str(s) if s == "-")
}

impl<'a> Value<'a> {
    fn to_scalar(&self) -> Scalar<'a> {
        match self {
            Value::Str(s) => Scalar::Str(s.clone()),
            Value::Int(n) => Scalar::Int(*n),
            Value::Float(f) => Scalar::Float(*f),
            Value::Bool(b) => Scalar::Bool(*b),
        }
    }
}

/// Append `s` as a JSON string. Most values need no escape: that is
/// checked 8 bytes at a time and the string copied whole.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let b = s.as_bytes();
    if !has_escape(b) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let escape = match b[i] {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(b"0123456789abcdef"[usize::from(b[i] >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b[i] & 15)]));
        } else {
            out.push_str(escape);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether `b` holds a byte JSON must escape, 8 bytes at a time (the
/// tail as the last 8 bytes, overlapping: fixed-size loads only).
fn has_escape(b: &[u8]) -> bool {
    if b.len() < 8 {
        return b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let mut i = 0;
    while i + 8 <= b.len() {
        if needs_escape(word(i)) {
            return true;
        }
        i += 8;
    }
    i < b.len() && needs_escape(word(b.len() - 8))
}

/// Whether any of the 8 bytes is a quote, a backslash or below 0x20 (the classic
/// "has a zero byte" and "has a byte less than n" word tests).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))) != 0
}

/// A time in `format` (chrono strftime; a format without a zone is UTC),
/// with surrounding brackets ignored; RFC 3339 is always accepted.
pub fn parse_time(text: &str, format: Option<&str>) -> Option<i64> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    if let Some(format) = format {
        if format == CLF_TIME {
            if let Some(t) = clf_time(text) {
                return Some(t);
            }
        }
        if let Ok(t) = chrono::DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_micros());
        }
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    rfc3339_micros(text)
}

/// `10/Oct/2000:13:55:36 -0700`, the access logs' time, read by position:
/// chrono's general format parser costs several times more per line.
fn clf_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { s.get(r)?.parse().ok() };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &s[3..6])? as u32 + 1;
    let date = chrono::NaiveDate::from_ymd_opt(num(7..11)? as i32, month, num(0..2)?)?;
    let time = date.and_hms_opt(num(12..14)?, num(15..17)?, num(18..20)?)?;
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset = sign * (num(22..24)? as i64 * 3600 + num(24..26)? as i64 * 60);
    Some((time.and_utc().timestamp() - offset) * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_escapes_and_types() {
        let mut f = Fields::default();
        f.push("a", Value::Str("x \"q\" \\ \u{1}\n".into()));
        f.push("n", Value::Int(-3));
        f.push("f", Value::Float(0.25));
        f.push("b", Value::Bool(true));
        f.push("dash", Value::Str("-".into()));
        f.push("n", Value::Int(4));
        let json = f.to_json(0);
        assert_eq!(
            json,
            r#"{"a":"x \"q\" \\ \u0001\n","n":4,"f":0.25,"b":true}"#
        );
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(v["a"], "x \"q\" \\ \u{1}\n");
    }

    #[test]
    fn escapes_are_found_in_whole_words_and_in_the_tail() {
        for s in [
            "",
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "a\"b",
            "0123456\"89",
            "01234567\\9abcdef\u{1f}",
            "x\u{0}y",
            "tab\there and a quote \" at 22",
            "日本語のUTF-8 with é and \u{7f}",
        ] {
            let mut out = String::new();
            write_json_str(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(back, s);
            assert_eq!(out, serde_json::to_string(s).expect("serde_json"), "{s:?}");
        }
    }

    #[test]
    fn times() {
        let clf = parse_time("[10/Oct/2000:13:55:36 -0700]", Some(CLF_TIME));
        assert_eq!(clf, Some(971_211_336_000_000));
        assert_eq!(clf_time("10/Oct/2000:13:55:36 -0700"), clf);
        assert_eq!(
            parse_time("10/Oct/2000:22:55:36 +0900", Some(CLF_TIME)),
            Some(971_186_136_000_000)
        );
        assert_eq!(
            parse_time("2000-10-10 20:55:36", Some("%Y-%m-%d %H:%M:%S")),
            Some(971_211_336_000_000)
        );
        assert_eq!(
            parse_time("2000-10-10T20:55:36Z", Some("%d/%b")),
            Some(971_211_336_000_000)
        );
        assert_eq!(parse_time("yesterday", Some(CLF_TIME)), None);
        assert_eq!(clf_time("10/Foo/2000:13:55:36 -0700"), None);
    }
}
