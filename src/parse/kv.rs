//! Key/value lines: logfmt (`level=info msg="user \"x\" logged in" ok`) and
//! LTSV (`time:[10/Oct/2000:13:55:36 +0900]<TAB>host:127.0.0.1`).
//!
//! Keys are kept as written; values are strings (typed `[[columns]]`
//! convert them), a bare logfmt key is `true`, and `-` is absent.

use std::borrow::Cow;

use super::fields::{Fields, Value};

/// Parse a logfmt line; at least one `key=value` pair is required.
pub fn logfmt<'k, 'a: 'k>(line: &'a str, out: &mut Fields<'k, 'a>) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut pairs = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'=' | b'"') {
            i += 1;
        }
        if i == start {
            return Err(format!(
                "expected a key at byte {start}, found {:?}",
                b[i] as char
            ));
        }
        let key = &line[start..i];
        if i >= b.len() || b[i] != b'=' {
            if b.get(i) == Some(&b'"') {
                return Err(format!("a quote inside the key {key:?}"));
            }
            out.push(key, Value::Bool(true));
            continue;
        }
        i += 1; // '='
        pairs += 1;
        if b.get(i) == Some(&b'"') {
            let rest = &line[i + 1..];
            let (value, used) =
                quoted(rest).ok_or_else(|| format!("the quoted value of {key:?} is not closed"))?;
            out.push(key, Value::Str(value));
            i += 1 + used;
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            out.push(key, Value::Str(Cow::Borrowed(&line[start..i])));
        }
    }
    if pairs == 0 {
        return Err("no key=value pair".into());
    }
    Ok(())
}

/// A logfmt quoted value after its opening quote: the value (unescaped)
/// and the bytes used including the closing quote.
fn quoted(s: &str) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => break,
            _ => i += 1,
        }
    }
    if i >= b.len() {
        return None;
    }
    let raw = &s[..i];
    if !escaped {
        return Some((Cow::Borrowed(raw), i + 1));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some((Cow::Owned(out), i + 1))
}

/// Parse an LTSV line: tab-separated `label:value` fields.
pub fn ltsv<'k, 'a: 'k>(line: &'a str, out: &mut Fields<'k, 'a>) -> Result<(), String> {
    for (n, field) in line.split('\t').enumerate() {
        if field.is_empty() {
            continue;
        }
        let Some((label, value)) = field.split_once(':') else {
            return Err(format!(
                "field {} has no label: expected label:value",
                n + 1
            ));
        };
        if label.is_empty() {
            return Err(format!("field {} has an empty label", n + 1));
        }
        out.push(label, Value::Str(Cow::Borrowed(value)));
    }
    if out.is_empty() {
        return Err("no label:value field".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(f: Fields) -> serde_json::Value {
        serde_json::from_str(&f.to_json(0)).expect("JSON")
    }

    #[test]
    fn logfmt_quotes_bare_keys_and_dashes() {
        let mut f = Fields::default();
        logfmt(
            r#"time=2026-12-02T13:55:36Z level=warn msg="user \"bob\" logged in" took=1.5ms retry empty= user=- path="/a b""#,
            &mut f,
        )
        .expect("parses");
        let v = json(f);
        assert_eq!(v["msg"], "user \"bob\" logged in");
        assert_eq!(v["took"], "1.5ms");
        assert_eq!(v["retry"], true);
        assert_eq!(v["empty"], "");
        assert!(v.get("user").is_none());
        assert_eq!(v["path"], "/a b");
    }

    #[test]
    fn logfmt_errors() {
        for (line, why) in [
            ("just words", "no key=value"),
            (r#"a="open"#, "not closed"),
            ("=x", "expected a key"),
        ] {
            let mut f = Fields::default();
            let e = logfmt(line, &mut f).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn ltsv_fields() {
        let mut f = Fields::default();
        ltsv(
            "time:[02/Dec/2026:22:55:36 +0900]\thost:192.0.2.1\treq:GET /x HTTP/1.1\tstatus:200\tsize:-\tua:a:b",
            &mut f,
        )
        .expect("parses");
        let v = json(f);
        assert_eq!(v["time"], "[02/Dec/2026:22:55:36 +0900]");
        assert_eq!(v["status"], "200");
        assert!(v.get("size").is_none());
        assert_eq!(v["ua"], "a:b");
        let mut f = Fields::default();
        assert!(ltsv("no label here", &mut f)
            .unwrap_err()
            .contains("field 1"));
    }
}
