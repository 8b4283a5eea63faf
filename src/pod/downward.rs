//! The Downward API's file format for `metadata.labels` and
//! `metadata.annotations`.
//!
//! The kubelet writes a map as one `key="value"` line per entry, keys
//! sorted, the value quoted by Go's `strconv.Quote` (`fieldpath.FormatMap`:
//! `fmt.Sprintf("%v=%q\n", key, value)`, the last newline trimmed). No
//! crate parses this format (it is neither TOML, nor JSON, nor dotenv: Go's
//! quoting has `\xNN`, `\a`, `\v` and octal escapes that those lack), and it
//! takes fifty lines, so it is written here.
//!
//! Label and annotation keys cannot hold `=` (a DNS-subdomain prefix and a
//! name of letters, digits, `-`, `_` and `.`), so a line splits at its first
//! `=`. A line that is not `key="value"` (no `=`, an empty key, a value that
//! is not one quoted string, an unknown escape) is skipped and reported in
//! [`Parsed::skipped`]: the rest of the file is still good, and the caller
//! logs the count once per read. Empty lines are ignored.

use std::collections::BTreeMap;

/// A file's entries and the lines that could not be read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: BTreeMap<String, String>,
    /// `(line number from 1, why)` of each skipped line.
    pub skipped: Vec<(usize, &'static str)>,
}

/// Parse a whole labels or annotations file.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok((key, value)) => {
                out.entries.insert(key.to_string(), value);
            }
            Err(why) => out.skipped.push((i + 1, why)),
        }
    }
    out
}

fn parse_line(line: &str) -> Result<(&str, String), &'static str> {
    let (key, quoted) = line.split_once('=').ok_or("no '='")?;
    if key.is_empty() {
        return Err("an empty key");
    }
    let value = unquote(quoted)?;
    Ok((key, value))
}

/// The inverse of Go's `strconv.Quote` (what `strconv.Unquote` accepts for
/// a double-quoted string). `\xNN` and octal escapes are bytes, so the
/// result is decoded as UTF-8 at the end; bytes that are not (Kubernetes
/// stores metadata as JSON, so it never writes any) become U+FFFD.
fn unquote(quoted: &str) -> Result<String, &'static str> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or("the value is not a quoted string")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Err("an unescaped '\"' inside the value"),
            '\\' => {}
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        }
        let simple = match chars.next().ok_or("a '\\' at the end of the value")? {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            'x' => Some(hex(&mut chars, 2)? as u8),
            d @ '0'..='7' => {
                let rest = hex_digits(&mut chars, 2, 8)?;
                let n = (d as u32 - '0' as u32) * 64 + rest;
                Some(u8::try_from(n).map_err(|_| "an octal escape above \\377")?)
            }
            'u' => {
                push_char(&mut out, hex(&mut chars, 4)?)?;
                None
            }
            'U' => {
                push_char(&mut out, hex(&mut chars, 8)?)?;
                None
            }
            _ => return Err("an unknown escape"),
        };
        if let Some(byte) = simple {
            out.push(byte);
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Result<u32, &'static str> {
    hex_digits(chars, n, 16)
}

fn hex_digits(chars: &mut std::str::Chars<'_>, n: usize, radix: u32) -> Result<u32, &'static str> {
    let mut value = 0u32;
    for _ in 0..n {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(radix))
            .ok_or("a short or invalid numeric escape")?;
        value = value * radix + digit;
    }
    Ok(value)
}

fn push_char(out: &mut Vec<u8>, code: u32) -> Result<(), &'static str> {
    let c = char::from_u32(code).ok_or("a \\u or \\U escape that is not a character")?;
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        let parsed = parse(text);
        assert_eq!(parsed.skipped, [], "{text:?}");
        parsed.entries.into_iter().collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn labels_as_the_kubelet_writes_them() {
        // The last line has no newline (FormatMap trims it).
        let text = "app.kubernetes.io/name=\"web\"\n\
                    app.kubernetes.io/version=\"1.4.2\"\n\
                    pod-template-hash=\"7d9f8c6b5\"\n\
                    team=\"payments\"";
        assert_eq!(
            entries(text),
            [
                pair("app.kubernetes.io/name", "web"),
                pair("app.kubernetes.io/version", "1.4.2"),
                pair("pod-template-hash", "7d9f8c6b5"),
                pair("team", "payments"),
            ]
        );
        // A trailing newline changes nothing.
        assert_eq!(entries(&format!("{text}\n")).len(), 4);
    }

    #[test]
    fn annotations_with_go_escapes() {
        // What %q makes of JSON, a multi-line value, a tab, unicode
        // (printable kept as is, a zero-width space escaped) and a bell.
        let text = concat!(
            r#"kubectl.kubernetes.io/last-applied-configuration="{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}\n""#,
            "\n",
            r#"note="line one\nline two\ttabbed \\ done""#,
            "\n",
            r#"owner="Zoë 日本 🚀 \u200b\a""#,
            "\n",
            r#"wide="\U0001f680 \x41\101""#,
            "\n",
            r#"empty="""#,
        );
        assert_eq!(
            entries(text),
            [
                pair("empty", ""),
                pair(
                    "kubectl.kubernetes.io/last-applied-configuration",
                    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}\n"
                ),
                pair("note", "line one\nline two\ttabbed \\ done"),
                pair("owner", "Zoë 日本 🚀 \u{200b}\u{7}"),
                pair("wide", "🚀 AA"),
            ]
        );
    }

    #[test]
    fn a_value_may_hold_equals_signs_and_quotes() {
        assert_eq!(
            entries(r#"query="a=b&c=\"d\"""#),
            [pair("query", "a=b&c=\"d\"")]
        );
    }

    #[test]
    fn an_empty_file_is_an_empty_map() {
        assert_eq!(parse(""), Parsed::default());
        assert_eq!(parse("\n"), Parsed::default());
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported() {
        let text = concat!(
            "good=\"1\"\n",
            "no equals sign\n",
            "=\"no key\"\n",
            "bare=value\n",
            "open=\"unterminated\n",
            "inner=\"a\"b\"\n",
            "esc=\"\\q\"\n",
            "short=\"\\x4\"\n",
            "surrogate=\"\\ud800\"\n",
            "octal=\"\\400\"\n",
            "trailing=\"\\\"\n",
            "also_good=\"2\"",
        );
        let parsed = parse(text);
        assert_eq!(
            parsed.entries.into_iter().collect::<Vec<_>>(),
            [pair("also_good", "2"), pair("good", "1")]
        );
        let lines: Vec<usize> = parsed.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(parsed.skipped[0].1, "no '='");
        assert_eq!(parsed.skipped[3].1, "the value is not a quoted string");
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        assert_eq!(entries(r#"raw="a\xffb""#), [pair("raw", "a\u{fffd}b")]);
        // Two escaped bytes that together are UTF-8 stay one character.
        assert_eq!(entries(r#"e="\xc3\xa9""#), [pair("e", "é")]);
    }
}
