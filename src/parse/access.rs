//! Access logs: nginx's `combined` format (and the common `main`
//! extensions), Apache's common and combined formats.
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//!   ["$http_x_forwarded_for"] [$request_time [$upstream_response_time]] [rt=… urt=… uct=… uht=…]
//! ```
//!
//! Fields take nginx's variable names for both servers; `$request` is split
//! into `method`, `path` and `protocol`; `status` and `body_bytes_sent` are
//! numbers, `request_time` and the upstream times too when they are one
//! number. Quoted values are unescaped as both servers write them: nginx's
//! `\xHH` and Apache's `\"`, `\\`. After the user agent, what is not
//! recognised is ignored (the whole line stays in `message`).

use std::borrow::Cow;

use super::fields::{Fields, Value};

/// Parse one access log line into `out`; the error says what was expected.
pub fn parse<'k, 'a: 'k>(line: &'a str, out: &mut Fields<'k, 'a>) -> Result<(), String> {
    let mut c = Cursor { s: line, pos: 0 };
    let remote_addr = c.word().ok_or("empty line")?;
    let ident = c
        .word()
        .ok_or("expected the ident (-) after the client address")?;
    let remote_user = c.word().ok_or("expected the user after the ident")?;
    let time = c
        .bracketed()
        .ok_or("expected [time] after the user: not an access log line")?;
    let request = c
        .quoted()
        .ok_or("expected the quoted request after the time")?;
    let status = c.word().ok_or("expected the status after the request")?;
    let status: i64 = status
        .parse()
        .map_err(|_| format!("the status {status:?} is not a number"))?;
    let bytes = c.word().ok_or("expected the body size after the status")?;
    out.push_new("remote_addr", Value::Str(Cow::Borrowed(remote_addr)));
    if ident != "-" {
        out.push_new("ident", Value::Str(Cow::Borrowed(ident)));
    }
    out.push_new("remote_user", Value::Str(Cow::Borrowed(remote_user)));
    out.push_new("time_local", Value::Str(Cow::Borrowed(time)));
    split_request(request, out);
    out.push_new("status", Value::Int(status));
    if bytes != "-" {
        let n: i64 = bytes
            .parse()
            .map_err(|_| format!("the body size {bytes:?} is not a number"))?;
        out.push_new("body_bytes_sent", Value::Int(n));
    }
    if c.at_quote() {
        let referer = c.quoted().ok_or("unterminated quoted referer")?;
        out.push_new("http_referer", Value::Str(referer));
        let agent = c
            .quoted()
            .ok_or("expected the quoted user agent after the referer")?;
        out.push_new("http_user_agent", Value::Str(agent));
    }
    extensions(&mut c, out);
    Ok(())
}

/// `"GET /path HTTP/1.1"` into method, path and protocol; a request that
/// does not split so (a TLS handshake sent to a plain port) stays whole in
/// `request`.
fn split_request<'k, 'a: 'k>(request: Cow<'a, str>, out: &mut Fields<'k, 'a>) {
    match request {
        Cow::Borrowed(r) => split(r, Cow::Borrowed, out),
        Cow::Owned(r) => split(&r, |s| Cow::Owned(s.to_string()), out),
    }
}

fn split<'r, 'k, 'a: 'k>(
    r: &'r str,
    text: impl Fn(&'r str) -> Cow<'a, str>,
    out: &mut Fields<'k, 'a>,
) {
    let mut parts = r.splitn(2, ' ');
    let (Some(method), Some(rest)) = (parts.next(), parts.next()) else {
        out.push_new("request", Value::Str(text(r)));
        return;
    };
    let (path, protocol) = match rest.rsplit_once(' ') {
        Some((path, proto)) if proto.starts_with("HTTP/") => (path, Some(proto)),
        _ => (rest, None),
    };
    out.push_new("method", Value::Str(text(method)));
    out.push_new("path", Value::Str(text(path)));
    if let Some(p) = protocol {
        out.push_new("protocol", Value::Str(text(p)));
    }
}

/// What common `log_format`s add after the user agent: a quoted
/// `$http_x_forwarded_for`, bare `$request_time $upstream_response_time`,
/// and `key=value` pairs (`rt=`, `urt=`, `uct=`, `uht=` get nginx's names).
fn extensions<'k, 'a: 'k>(c: &mut Cursor<'a>, out: &mut Fields<'k, 'a>) {
    const POSITIONAL: [&str; 2] = ["request_time", "upstream_response_time"];
    let mut quoted = 0;
    let mut positional = 0;
    loop {
        c.skip_spaces();
        if c.at_end() {
            return;
        }
        if c.at_quote() {
            let Some(v) = c.quoted() else { return };
            if quoted == 0 {
                out.push_new("http_x_forwarded_for", Value::Str(v));
            }
            quoted += 1;
            continue;
        }
        let Some(word) = c.word() else { return };
        if let Some((key, value)) = word.split_once('=') {
            let value = match value.strip_prefix('"') {
                Some(v) => c.rest_of_quoted(v),
                None => value,
            };
            let key = match key {
                "rt" => "request_time",
                "urt" => "upstream_response_time",
                "uct" => "upstream_connect_time",
                "uht" => "upstream_header_time",
                other => other,
            };
            out.push_new(key, time_value(value));
        } else if let Some(key) = POSITIONAL.get(positional) {
            positional += 1;
            // Several upstreams: `0.001, 0.002 : 0.003`.
            let mut value = word;
            while value.ends_with(',') || value.ends_with(':') {
                match c.word() {
                    Some(next) => value = c.span(value, next),
                    None => break,
                }
            }
            out.push_new(key, time_value(value));
        }
    }
}

fn time_value(s: &str) -> Value<'_> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::Float(f),
        _ => Value::Str(Cow::Borrowed(s)),
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_spaces(&mut self) {
        while self.s.as_bytes().get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn at_quote(&mut self) -> bool {
        self.skip_spaces();
        self.s.as_bytes().get(self.pos) == Some(&b'"')
    }

    /// The next space-separated word.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_spaces();
        let rest = &self.s[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len());
        self.pos += end;
        Some(&rest[..end])
    }

    /// `[…]`, without the brackets.
    fn bracketed(&mut self) -> Option<&'a str> {
        self.skip_spaces();
        let rest = self.s[self.pos..].strip_prefix('[')?;
        let end = memchr::memchr(b']', rest.as_bytes())?;
        self.pos += end + 2;
        Some(&rest[..end])
    }

    /// `"…"`, unescaped.
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        self.skip_spaces();
        let rest = self.s[self.pos..].strip_prefix('"')?;
        let end = closing_quote(rest)?;
        self.pos += end + 2;
        Some(unescape(&rest[..end]))
    }

    /// The value of `key="…"` whose opening quote was inside a word: the
    /// cursor is after that word, so continue to the closing quote.
    fn rest_of_quoted(&mut self, started: &'a str) -> &'a str {
        let start = self.pos - started.len();
        let from = &self.s[start..];
        match closing_quote(from) {
            Some(end) => {
                self.pos = start + end + 1;
                &from[..end]
            }
            None => started,
        }
    }

    /// The text from the start of `first` to the end of `last`.
    fn span(&self, first: &'a str, last: &'a str) -> &'a str {
        let start = first.as_ptr() as usize - self.s.as_ptr() as usize;
        let end = last.as_ptr() as usize - self.s.as_ptr() as usize + last.len();
        &self.s[start..end]
    }
}

/// The index of the first `"` not escaped by a backslash.
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(at) = memchr::memchr2(b'"', b'\\', &b[i.min(b.len())..]) {
        i += at;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
    None
}

/// nginx's `\xHH` (bytes, which may form UTF-8 together) and Apache's
/// `\"`, `\\`.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() && hex(b[i + 2]).is_some() && hex(b[i + 3]).is_some() => {
                    out.push(hex(b[i + 2]).unwrap_or(0) << 4 | hex(b[i + 3]).unwrap_or(0));
                    i += 4;
                    continue;
                }
                c @ (b'"' | b'\\') => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> serde_json::Value {
        let mut f = Fields::default();
        parse(line, &mut f).expect("parses");
        serde_json::from_str(&f.to_json(0)).expect("JSON")
    }

    #[test]
    fn nginx_combined_with_dashes_and_escaped_quotes() {
        let v = fields(
            r#"203.0.113.7 - - [02/Dec/2026:13:55:36 +0000] "GET /api/items?id=3 HTTP/1.1" 200 612 "-" "Mozilla/5.0 (X11; Linux x86_64) \x22quoted\x22 \xE3\x81\x82""#,
        );
        assert_eq!(v["remote_addr"], "203.0.113.7");
        assert!(v.get("remote_user").is_none() && v.get("http_referer").is_none());
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/api/items?id=3");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes_sent"], 612);
        assert_eq!(
            v["http_user_agent"],
            "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" あ"
        );
    }

    #[test]
    fn nginx_main_extensions() {
        let v = fields(
            r#"10.0.0.1 - alice [02/Dec/2026:13:55:36 +0900] "POST /login HTTP/2.0" 502 0 "https://ex.com/" "curl/8.0" "198.51.100.2, 10.0.0.9" 0.105 0.104, 0.001"#,
        );
        assert_eq!(v["remote_user"], "alice");
        assert_eq!(v["http_x_forwarded_for"], "198.51.100.2, 10.0.0.9");
        assert_eq!(v["request_time"], 0.105);
        assert_eq!(v["upstream_response_time"], "0.104, 0.001");
        let v = fields(
            r#"10.0.0.1 - - [02/Dec/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" rt=0.010 uct="0.001" uht="0.002" urt="0.003""#,
        );
        assert_eq!(v["request_time"], 0.01);
        assert_eq!(v["upstream_connect_time"], 0.001);
        assert_eq!(v["upstream_response_time"], 0.003);
    }

    #[test]
    fn apache_common_and_odd_requests() {
        let v = fields(
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 -"#,
        );
        assert_eq!(v["remote_user"], "frank");
        assert!(v.get("body_bytes_sent").is_none());
        let v =
            fields(r#"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "\x16\x03\x01" 400 157 "-" "-""#);
        assert_eq!(v["request"], "\u{16}\u{3}\u{1}");
        let v = fields(
            r#"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a \"b\" HTTP/1.1" 404 0 "-" "-""#,
        );
        assert_eq!(v["path"], "/a \"b\"");
    }

    #[test]
    fn non_access_lines_say_why() {
        for (line, why) in [
            ("hello world", "expected the user"),
            ("a b c d", "expected [time]"),
            (r#"a - - [t] "GET / HTTP/1.1" ok 1"#, "status \"ok\""),
            (
                r#"a - - [t] "GET / HTTP/1.1 200 1"#,
                "expected the quoted request",
            ),
        ] {
            let mut f = Fields::default();
            let e = parse(line, &mut f).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
