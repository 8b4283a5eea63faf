//! JSON application-log bodies (`{"level":"info","msg":"...",...}`).
//!
//! One pass of serde_json over the body, borrowing from the input: only the
//! keys tidewater uses are materialised (message, level, time — the source's
//! `message_key`, `level_key`, `time_key` or their defaults — and the keys of
//! configured extra columns); every other value is skipped without
//! allocation. The body text itself becomes the `fields` column.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::fields::parse_time;
pub use super::rfc3339::rfc3339_micros;
use super::rules::{BodyRules, Known};

/// A JSON scalar as found in a body; objects and arrays are `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

/// What tidewater takes out of a JSON body.
#[derive(Debug, Default, PartialEq)]
pub struct Body<'a> {
    /// From `msg` or `message`, else `log`.
    pub message: Option<Cow<'a, str>>,
    /// From `level`, `severity`, `lvl` or `log.level`, normalised (see [`normalize_level`]).
    pub level: Option<Cow<'a, str>>,
    /// From `time`, `ts`, `timestamp` or `@timestamp` when it is RFC 3339
    /// (or in the source's `time_format`).
    pub time_us: Option<i64>,
    /// The time key was there but its value was not a time.
    pub time_invalid: bool,
    /// Values of the configured extra keys, in their order.
    pub extras: Vec<Option<Scalar<'a>>>,
}

/// Parse a body that must be one JSON object. `framed_time`: the line's
/// framing (CRI, Docker) gave the record its time, so the body's time is
/// read only when the rules make it replace that one or require it
/// (`time_key`, `time_format`).
pub fn parse<'a>(
    text: &'a str,
    rules: &BodyRules,
    framed_time: bool,
) -> Result<Body<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let time = !framed_time || rules.time_required();
    let body = BodySeed { rules, time }.deserialize(&mut de)?;
    de.end()?;
    Ok(body)
}

/// Map a level name (or a pino/bunyan number) to trace, debug, info, warn,
/// error or fatal; other names are kept, lower-cased.
pub fn normalize_level(s: &str) -> Cow<'static, str> {
    const NAMES: &[(&str, &str)] = &[
        ("info", "info"),
        ("error", "error"),
        ("warn", "warn"),
        ("warning", "warn"),
        ("debug", "debug"),
        ("trace", "trace"),
        ("fatal", "fatal"),
        ("err", "error"),
        ("information", "info"),
        ("notice", "info"),
        ("dbg", "debug"),
        ("critical", "fatal"),
        ("crit", "fatal"),
        ("panic", "fatal"),
        ("emerg", "fatal"),
        ("alert", "fatal"),
        ("i", "info"),
        ("w", "warn"),
        ("e", "error"),
        ("d", "debug"),
        ("f", "fatal"),
    ];
    for (name, level) in NAMES {
        if s.eq_ignore_ascii_case(name) {
            return Cow::Borrowed(level);
        }
    }
    Cow::Owned(s.to_ascii_lowercase())
}

fn numeric_level(n: i64) -> Cow<'static, str> {
    Cow::Borrowed(match n {
        i64::MIN..=10 => "trace",
        11..=20 => "debug",
        21..=30 => "info",
        31..=40 => "warn",
        41..=50 => "error",
        _ => "fatal",
    })
}

struct BodySeed<'r> {
    rules: &'r BodyRules,
    /// Whether the body's time is wanted.
    time: bool,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Body<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut body = Body {
            extras: vec![None; self.rules.extra_keys.len()],
            ..Body::default()
        };
        let mut message_from_log = false;
        while let Some(CowStr(key)) = map.next_key()? {
            let known = match self.rules.classify(&key) {
                // Not wanted: skipped like any other key.
                Known::Time if !self.time => Known::None,
                known => known,
            };
            let extra = self.rules.extra_keys.iter().position(|k| *k == key);
            if known == Known::None && extra.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Scalar<'de> = map.next_value()?;
            if let Some(i) = extra {
                body.extras[i] = Some(value.clone());
            }
            match (known, value) {
                (Known::Message, Scalar::Str(s)) => {
                    body.message = Some(s);
                    message_from_log = false;
                }
                (Known::Log, Scalar::Str(s)) if body.message.is_none() || message_from_log => {
                    body.message = Some(s);
                    message_from_log = true;
                }
                (Known::Level, Scalar::Str(s)) => body.level = Some(normalize_level(&s)),
                (Known::Level, Scalar::Int(n)) => body.level = Some(numeric_level(n)),
                (Known::Time, Scalar::Str(s)) => {
                    body.time_us = match &self.rules.time_format {
                        None => rfc3339_micros(&s),
                        Some(f) => parse_time(&s, Some(f)),
                    };
                    body.time_invalid = body.time_us.is_none();
                }
                (Known::Time, _) => body.time_invalid = true,
                _ => {}
            }
        }
        Ok(body)
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v)
                    .map(Scalar::Int)
                    .unwrap_or(Scalar::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(extra: &[&str]) -> BodyRules {
        BodyRules::auto(extra.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn takes_message_level_time_and_extras() {
        let keys = rules(&["status", "level"]);
        let b = parse(
            r#"{"ts":"2026-11-22T03:00:00.002Z","level":"WARNING","msg":"slow \"db\"","status":503,"nested":{"a":[1,2]}}"#,
            &keys,
            false,
        )
        .expect("valid body");
        assert_eq!(b.message.as_deref(), Some("slow \"db\""));
        assert_eq!(b.level.as_deref(), Some("warn"));
        assert_eq!(b.time_us, Some(1_795_316_400_002_000));
        assert_eq!(b.extras[0], Some(Scalar::Int(503)));
        assert_eq!(b.extras[1], Some(Scalar::Str("WARNING".into())));
        // The framing's time wins under the default keys: the body's is not read.
        let framed = parse(r#"{"ts":"2026-11-22T03:00:00.002Z","ts2":1}"#, &keys, true);
        assert_eq!(framed.expect("valid").time_us, None);
    }

    #[test]
    fn message_beats_log_and_numbers_are_levels() {
        let b = parse(
            r#"{"log":"a","message":"b","level":50}"#,
            &rules(&[]),
            false,
        )
        .expect("valid");
        assert_eq!(b.message.as_deref(), Some("b"));
        assert_eq!(b.level.as_deref(), Some("error"));
        let b = parse(
            r#"{"message":"b","log":"a","log.level":"crit"}"#,
            &rules(&[]),
            false,
        )
        .expect("valid");
        assert_eq!(b.message.as_deref(), Some("b"));
        assert_eq!(b.level.as_deref(), Some("fatal"));
    }

    #[test]
    fn broken_json_is_an_error() {
        let r = rules(&[]);
        assert!(parse(r#"{"level":"info","msg":"#, &r, false).is_err());
        assert!(parse(r#"{"a":1} trailing"#, &r, false).is_err());
        assert!(parse(r#"[1,2]"#, &r, false).is_err());
    }

    #[test]
    fn configured_keys_replace_the_defaults() {
        use crate::parse::rules::BodyKeys;
        let r = BodyRules::new(
            &BodyKeys {
                time_key: Some("when"),
                time_format: Some("%Y-%m-%d %H:%M:%S"),
                level_key: Some("sev"),
                message_key: Some("text"),
                ..BodyKeys::default()
            },
            Vec::new().into(),
        )
        .expect("valid");
        let b = parse(
            r#"{"msg":"not this","text":"this","level":"info","sev":"E","when":"2000-10-10 20:55:36","time":"2001-01-01T00:00:00Z"}"#,
            &r,
            true,
        )
        .expect("valid");
        assert_eq!(b.message.as_deref(), Some("this"));
        assert_eq!(b.level.as_deref(), Some("error"));
        assert_eq!(b.time_us, Some(971_211_336_000_000));
        let b = parse(r#"{"when":"soon"}"#, &r, true).expect("valid");
        assert!(b.time_invalid);
    }
}
