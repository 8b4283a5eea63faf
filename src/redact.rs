//! `[[redact]]`: masking secrets in records before any sink sees them.
//!
//! ```toml
//! [[redact]]
//! pattern = '(?i)(password|passwd|token|secret|api_key)=\S+'
//! replace = '$1=[REDACTED]'      # default "[REDACTED]": the whole match
//! # sources = ["app"]            # default: every source
//! ```
//!
//! Each rule is a Rust regex ([`regex`] syntax) and a replacement in which
//! `$1`, `${1}`, `$name` and `${name}` insert a group and `$$` writes `$`
//! (the regex crate's `replace_all`). A source's rules run once per record,
//! in the order written, each on the output of the one before, on the text
//! that leaves the process: the `message` with [`Redactor::apply`], the
//! `fields` JSON (and the Pod's `labels`) with [`Redactor::apply_json`]. A
//! record that any rule changed is flagged `redacted`.
//!
//! # JSON: rules run on each string value
//!
//! A rule never sees the JSON text itself: `password=\S+` on
//! `{"msg":"login password=hunter2"}` would also eat the closing `"}`. So
//! [`Redactor::apply_json`] runs the rules on each string value, unescaped,
//! and writes back (escaped) only the values that changed; keys, numbers,
//! nesting and spacing are copied byte for byte, so the result is valid JSON
//! with the same keys in the same order. Keys are never rewritten, and
//! numbers and booleans are not strings, so are never matched.
//!
//! A consequence: a secret held by its key, `{"password": "hunter2"}`, is
//! *not* matched by `password=\S+` (the rule sees `hunter2` alone, without
//! its key). A rule can only recognise such a value by its own shape (e.g.
//! `^eyJ[\w-]+\.[\w-]+\.[\w-]+$` for a JWT, `^AKIA[0-9A-Z]{16}$` for an AWS
//! key id; `^` and `$` are the value's ends). Masking by key name would need
//! a separate key list (not implemented). In the `message`, which is plain
//! text, `password=hunter2` is matched as written.
//!
//! # Cost: words before the regex
//!
//! Most records match no rule, and for them the cost must stay at a few
//! percent of parsing (issue 15). Each rule's pattern is read (with
//! `regex-syntax`, the regex crate's parser) for words that every match
//! contains (`literal::needles`): for the issue's rule, `password`,
//! `passwd`, `token`, `secret`, `api_key`, compared without case. An ASCII
//! text holding none of them is returned as it is after one Aho-Corasick
//! scan; only texts that hold one (or any non-ASCII byte: `(?i)s` also
//! matches `ſ`) run the regexes. A first version used a single byte every
//! match holds (`=` here): in log lines full of `key=value` that let
//! nearly every record through to the regexes, and the default job with
//! the issue's rule cost 22 % more instructions (callgrind, BENCHMARKS.md,
//! "Routing and masking"). A rule without words (a pattern of classes
//! only) is its own gate: its regex runs on every text.

mod gate;
mod json;
mod literal;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;
use tidewater_sinks::config::Invalid;

/// One `[[redact]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// A Rust regex; it must not match the empty string.
    pub pattern: String,
    /// What each match becomes; `$1`, `${name}` insert groups, `$$` is `$`.
    #[serde(default = "default_replace")]
    pub replace: String,
    /// Only these sources' records (names of `[sources.*]`); absent: all.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
}

/// The replacement when `replace` is left out: the whole match.
pub const DEFAULT_REPLACE: &str = "[REDACTED]";

fn default_replace() -> String {
    DEFAULT_REPLACE.to_string()
}

/// Check every rule; keys are relative to the top level
/// (`redact[0].pattern`). The names in `sources` are checked against the
/// configured sources by [`check_sources`].
pub fn check(rules: &[RedactConfig]) -> Result<(), Invalid> {
    for (i, rule) in rules.iter().enumerate() {
        compile(rule).map_err(|e| e.under(&format!("redact[{i}]")))?;
    }
    Ok(())
}

/// Each name in a rule's `sources` must be a source: `is_source` says which
/// are (e.g. `|n| config.sources.contains_key(n)`). Keys as in [`check`]:
/// `redact[0].sources[1]`.
pub fn check_sources(
    rules: &[RedactConfig],
    is_source: impl Fn(&str) -> bool,
) -> Result<(), Invalid> {
    for (i, rule) in rules.iter().enumerate() {
        for (j, name) in rule.sources.iter().flatten().enumerate() {
            if !is_source(name) {
                return Err(Invalid::new(
                    format!("redact[{i}].sources[{j}]"),
                    format!("{name:?} is not a source: there is no [sources.{name}]"),
                ));
            }
        }
    }
    Ok(())
}

/// The `[[redact]]` rules that apply to one source, compiled.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    gate: gate::Gate,
}

#[derive(Debug, Clone)]
struct Rule {
    regex: Regex,
    replace: String,
    /// Words every match contains; `None`: the regex is its own gate.
    needles: Option<gate::Words>,
    /// The same words, for the source's gate.
    words: Option<Vec<Vec<u8>>>,
    /// May use `^`, `$`, `\A`, `\z`: a match in a JSON value may not be one
    /// in the whole JSON text.
    anchored: bool,
}

impl Rule {
    /// Whether the rule may match somewhere in `text` (no false negatives).
    #[inline]
    fn needle_in(&self, text: &str) -> bool {
        self.needles
            .as_ref()
            .is_none_or(|n| n.may_be_in(text.as_bytes()))
    }
}

impl Redactor {
    /// The rules whose `sources` include `source` (or that have none), in
    /// order; `None` when no rule applies, so that the source pays nothing.
    ///
    /// Panics if a rule does not compile: `rules` must have passed
    /// [`check`].
    pub fn for_source(rules: &[RedactConfig], source: &str) -> Option<Redactor> {
        let rules: Vec<Rule> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.sources
                    .as_ref()
                    .is_none_or(|s| s.iter().any(|n| n == source))
            })
            .map(|(i, r)| {
                let regex =
                    compile(r).unwrap_or_else(|e| panic!("redact[{i}] was not checked: {e}"));
                let words = literal::needles(&r.pattern);
                Rule {
                    regex,
                    replace: r.replace.clone(),
                    needles: words.as_deref().and_then(gate::Words::new),
                    words,
                    anchored: literal::has_anchor(&r.pattern),
                }
            })
            .collect();
        if rules.is_empty() {
            return None;
        }
        let gate = gate::Gate::new(rules.iter().map(|r| r.words.as_deref()));
        Some(Redactor { rules, gate })
    }

    /// `text` with every rule applied in order: `Cow::Borrowed` when no rule
    /// matched (after one needle scan, for most texts), `Cow::Owned` when one
    /// did (the record is then flagged `redacted`).
    #[inline]
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.gate.may_match(text.as_bytes()) {
            return Cow::Borrowed(text);
        }
        self.replace(text)
    }

    fn replace<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for rule in &self.rules {
            // Earlier rules may have written or removed this rule's needle.
            if !rule.needle_in(&out) {
                continue;
            }
            if let Some(s) = owned(rule.regex.replace_all(&out, rule.replace.as_str())) {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// A JSON text (a record's `fields`, the Pod's labels) with the rules
    /// applied to each string value as by [`Self::apply`], keys and all
    /// other bytes kept: still valid JSON. `Cow::Borrowed` when nothing
    /// matched. A text that is not JSON (an unterminated string) is masked
    /// as plain text.
    pub fn apply_json<'a>(&self, json: &'a str) -> Cow<'a, str> {
        if self.gate.json_clean(json.as_bytes()) || !self.json_may_match(json) {
            return Cow::Borrowed(json);
        }
        self.rewrite_json(json)
    }

    /// A record's `message` ([`Self::apply`]) and `fields`
    /// ([`Self::apply_json`]), replaced in place by their masked text when a
    /// rule matched; whether one did (then flag the record `redacted`).
    ///
    /// The same result as the two calls, for less: a message that is a
    /// slice of a `fields` text in which no rule's needle occurs is not
    /// scanned again (a JSON body's `msg`, borrowed from the line, is one).
    /// A message that is the `fields` text itself (a JSON body without a
    /// message key) is masked as JSON too, and so stays the same as `fields`.
    pub fn apply_record<'a>(
        &self,
        message: &mut Option<Cow<'a, str>>,
        fields: &mut Option<Cow<'a, str>>,
    ) -> bool {
        let mut changed = false;
        let same = match (message.as_deref(), fields.as_deref()) {
            (Some(m), Some(f)) => m.as_ptr() == f.as_ptr() && m.len() == f.len(),
            _ => false,
        };
        // The addresses of a fields text without needles.
        let mut clean = 0..0;
        if let Some(f) = fields {
            if self.gate.json_clean(f.as_bytes()) {
                let start = f.as_ptr() as usize;
                clean = start..start + f.len();
            } else if self.json_may_match(f) {
                if let Some(s) = owned(self.rewrite_json(f)) {
                    *f = Cow::Owned(s);
                    changed = true;
                }
            }
        }
        if same {
            if changed {
                message.clone_from(fields);
            }
            return changed;
        }
        if let Some(m) = message {
            let start = m.as_ptr() as usize;
            if !(clean.start <= start && start + m.len() <= clean.end) {
                if let Some(s) = owned(self.apply(m)) {
                    *m = Cow::Owned(s);
                    changed = true;
                }
            }
        }
        changed
    }

    /// [`Self::apply_json`] past its prefilter.
    fn rewrite_json<'a>(&self, json: &'a str) -> Cow<'a, str> {
        let mut out = String::new();
        let mut last = 0;
        let walked = json::strings(json, |s| {
            if s.key {
                return Ok(false);
            }
            let value = json::decode(&json[s.start..s.end], s.escaped)?;
            if let Cow::Owned(masked) = self.apply(&value) {
                if last == 0 {
                    out.reserve(json.len() + 16);
                }
                out.push_str(&json[last..s.start]);
                json::write_str(&mut out, &masked);
                last = s.end;
            }
            Ok(false)
        });
        match walked {
            Err(json::NotJson) => self.apply(json),
            // A string ends at 1 or later: 0 means none was rewritten.
            Ok(_) if last == 0 => Cow::Borrowed(json),
            Ok(_) => {
                out.push_str(&json[last..]);
                Cow::Owned(out)
            }
        }
    }

    /// Whether some string value of `json` may match a rule (no false
    /// negatives), past `Gate::json_clean`. An unescaped value is a substring of the text: its
    /// needle is in the text, and so is a match of an unanchored rule (a
    /// value's ends are `"`, which `\b` sees as it sees the end of a text).
    /// Escaped values are decoded and looked at one by one.
    fn json_may_match(&self, json: &str) -> bool {
        let whole = self
            .rules
            .iter()
            .any(|r| r.needle_in(json) && (r.anchored || r.regex.is_match(json)));
        if whole {
            return true;
        }
        if memchr::memchr(b'\\', json.as_bytes()).is_none() {
            return false;
        }
        json::strings(json, |s| {
            if s.key || !s.escaped {
                return Ok(false);
            }
            let value = json::decode(&json[s.start..s.end], true)?;
            Ok(self
                .rules
                .iter()
                .any(|r| r.needle_in(&value) && r.regex.is_match(&value)))
        })
        .unwrap_or(true)
    }
}

/// The text of an `Owned` (a rewritten text), without its borrow.
fn owned(text: Cow<'_, str>) -> Option<String> {
    match text {
        Cow::Owned(s) => Some(s),
        Cow::Borrowed(_) => None,
    }
}

/// Compile a rule, with its checks; errors name the key inside the table.
fn compile(rule: &RedactConfig) -> Result<Regex, Invalid> {
    let regex = Regex::new(&rule.pattern)
        .map_err(|e| Invalid::new("pattern", format!("is not a valid Rust regex: {e}")))?;
    if matches_empty(&regex) {
        return Err(Invalid::new(
            "pattern",
            "can match the empty string, so it would rewrite every record: make it match at least one character (e.g. `+` instead of `*`)",
        ));
    }
    check_replace(&regex, &rule.replace).map_err(|m| Invalid::new("replace", m))?;
    if rule.sources.as_ref().is_some_and(|s| s.is_empty()) {
        return Err(Invalid::new(
            "sources",
            "must not be empty: leave it out to apply the rule to every source",
        ));
    }
    Ok(regex)
}

/// Whether `regex` can match the empty string anywhere. Whether an empty
/// match is possible at a position depends only on the characters on either
/// side (the assertions `^ $ \A \z \b \B \< \>` look no further), so every
/// pair of characters from the classes they tell apart is tried.
fn matches_empty(regex: &Regex) -> bool {
    const SIDES: [&str; 11] = ["", "\n", "\r", "a", "_", "0", " ", "=", "é", "\"", "-"];
    SIDES.iter().any(|before| {
        SIDES.iter().any(|after| {
            let text = format!("{before}{after}");
            regex.shortest_match_at(&text, before.len()) == Some(before.len())
                || regex.find_iter(&text).any(|m| m.is_empty())
        })
    })
}

/// Every group reference in `replace` names a group of `regex`, read as
/// the regex crate reads it (`$1a` is the group named `1a`).
fn check_replace(regex: &Regex, replace: &str) -> Result<(), String> {
    let groups = regex.captures_len() - 1;
    let mut rest = replace;
    while let Some(i) = rest.find('$') {
        rest = &rest[i..];
        if rest.starts_with("$$") {
            rest = &rest[2..];
            continue;
        }
        let Some((name, len)) = group_ref(rest) else {
            rest = &rest[1..];
            continue;
        };
        let written = &rest[..len];
        rest = &rest[len..];
        if let Ok(n) = name.parse::<usize>() {
            if n > groups {
                return Err(format!(
                    "refers to group {written}, but the pattern has {}",
                    count(groups, "group")
                ));
            }
            continue;
        }
        if regex.capture_names().flatten().any(|g| g == name) {
            continue;
        }
        let digits = name.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && !written.starts_with("${") {
            return Err(format!(
                "{written} is read as the group named {name:?}, which the pattern does not have; for group {} followed by {:?}, write ${{{}}}{}",
                &name[..digits],
                &name[digits..],
                &name[..digits],
                &name[digits..]
            ));
        }
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        return Err(if names.is_empty() {
            format!("refers to the group {name:?}, but the pattern names no group")
        } else {
            format!(
                "refers to the group {name:?}, but the pattern's named groups are: {}",
                names.join(", ")
            )
        });
    }
    Ok(())
}

/// At a `$`: the group it refers to and the reference's length (`$name`,
/// `${name}`), or `None` for a literal `$`.
fn group_ref(s: &str) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'{') {
        let close = s[2..].find('}')?;
        return Some((&s[2..2 + close], close + 3));
    }
    let len = b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (len > 0).then(|| (&s[1..1 + len], 1 + len))
}

fn count(n: usize, what: &str) -> String {
    match n {
        0 => format!("no {what}"),
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}
