//! The string values of a JSON text, found without parsing the rest: the
//! `fields` column is a JSON object whose string values are masked one by
//! one, and every other byte (keys, numbers, nesting, spacing) is copied as
//! it is.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// One string of a JSON text.
pub(super) struct Str {
    /// Byte range including the quotes.
    pub start: usize,
    pub end: usize,
    /// An object key (followed by `:`), not a value.
    pub key: bool,
    /// Holds a `\` escape: the raw bytes are not the value.
    pub escaped: bool,
}

/// The text is not JSON as far as its strings go (an unterminated string).
pub(super) struct NotJson;

/// Call `f` with each string of `json`, in order; stops early when `f`
/// returns `true`, and then returns `Ok(true)`.
pub(super) fn strings(
    json: &str,
    mut f: impl FnMut(&Str) -> Result<bool, NotJson>,
) -> Result<bool, NotJson> {
    let b = json.as_bytes();
    let mut i = 0;
    // Outside strings a `"` can only open one.
    while let Some(q) = memchr(b'"', &b[i..]) {
        let start = i + q;
        let mut j = start + 1;
        let mut escaped = false;
        let end = loop {
            let k = j + memchr2(b'"', b'\\', &b[j..]).ok_or(NotJson)?;
            if b[k] == b'"' {
                break k + 1;
            }
            escaped = true;
            // The escaped byte (`\"`, `\\`, `\u`…) cannot close the string.
            j = k + 2;
            if j > b.len() {
                return Err(NotJson);
            }
        };
        let after = b[end..].iter().find(|c| !c.is_ascii_whitespace());
        let s = Str {
            start,
            end,
            key: after == Some(&b':'),
            escaped,
        };
        if f(&s)? {
            return Ok(true);
        }
        i = end;
    }
    Ok(false)
}

/// The value of a string (`raw` includes the quotes).
pub(super) fn decode(raw: &str, escaped: bool) -> Result<Cow<'_, str>, NotJson> {
    if !escaped {
        return Ok(Cow::Borrowed(&raw[1..raw.len() - 1]));
    }
    serde_json::from_str::<String>(raw)
        .map(Cow::Owned)
        .map_err(|_| NotJson)
}

/// Append `s` as a JSON string, quotes included.
pub(super) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push_str(esc);
        }
        last = i + c.len_utf8();
    }
    out.push_str(&s[last..]);
    out.push('"');
}
