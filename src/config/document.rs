//! Parsing the TOML document and substituting `${VAR}` in its string values.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// toml's message already quotes the line and names the key; add the line
/// number in words for people grepping logs.
fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.to_string();
    match e.span() {
        Some(span) => {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            if message.contains("line") {
                message
            } else {
                format!("line {line}: {message}")
            }
        }
        None => message,
    }
}

/// Parse a configuration document and substitute `${VAR}` in its string
/// values (never in keys, comments or the TOML syntax around them). The
/// spans are kept, so later errors can still point at a line. With `only`,
/// just that top-level table is substituted (the rest is not read).
pub(super) fn parse_document<'i>(
    text: &'i str,
    path: &Path,
    only: Option<&str>,
) -> Result<toml::Spanned<toml::de::DeTable<'i>>, ConfigError> {
    let mut root = toml::de::DeTable::parse(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(&e, text),
    })?;
    match only {
        None => substitute_table(root.get_mut(), "", text, path)?,
        Some(only) => {
            for (key, value) in root.get_mut().iter_mut() {
                if key.get_ref() == only {
                    substitute_value(value, only, text, path)?;
                }
            }
        }
    }
    Ok(root)
}

/// Deserialize a parsed (and substituted) document; errors keep their
/// line and column.
pub(super) fn deserialize_document<'i, T: Deserialize<'i>>(
    root: toml::Spanned<toml::de::DeTable<'i>>,
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    T::deserialize(toml::de::Deserializer::from(root)).map_err(|mut e| {
        e.set_input(Some(text));
        ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(&e, text),
        }
    })
}

/// Take the routing keys (`keys`) out of every table of the top-level
/// table `kind` (`sources` or `sinks`), and read them as `T`, by the
/// name of their table. The tables keep every other key, for their type
/// to read; a table without the keys gets `T::default()`.
pub(super) fn take_keys<'i, T: Deserialize<'i> + Default>(
    root: &mut toml::Spanned<toml::de::DeTable<'i>>,
    kind: &str,
    keys: &[&str],
    text: &str,
    path: &Path,
) -> Result<std::collections::BTreeMap<String, T>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    let Some(tables) = root.get_mut().get_mut(kind) else {
        return Ok(out);
    };
    let toml::de::DeValue::Table(tables) = tables.get_mut() else {
        return Ok(out); // not a table: reading the document says so
    };
    for (name, table) in tables.iter_mut() {
        let span = table.span();
        let toml::de::DeValue::Table(table) = table.get_mut() else {
            continue;
        };
        let mut taken = toml::de::DeTable::new();
        for key in keys {
            if let Some((k, v)) = table.remove_entry(*key) {
                taken.insert(k, v);
            }
        }
        let value = deserialize_document(toml::Spanned::new(span, taken), text, path).map_err(
            |e| match e {
                ConfigError::Parse { path, message } => ConfigError::Parse {
                    path,
                    message: format!("{kind}.{}: {message}", name.get_ref()),
                },
                other => other,
            },
        )?;
        out.insert(name.get_ref().to_string(), value);
    }
    Ok(out)
}

fn substitute_table(
    table: &mut toml::de::DeTable<'_>,
    prefix: &str,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        // `[[redact]]` is regex syntax, where `${1}` and `${name}` are groups.
        if prefix.is_empty() && key.get_ref() == "redact" {
            continue;
        }
        let key = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        substitute_value(value, &key, text, path)?;
    }
    Ok(())
}

fn substitute_value(
    value: &mut toml::Spanned<toml::de::DeValue<'_>>,
    key: &str,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    let span = value.span();
    match value.get_mut() {
        toml::de::DeValue::String(s) if s.contains('$') => {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            let replaced =
                substitute_env(s, |var| std::env::var(var).ok()).map_err(|e| match e {
                    Substitution::Unset(var) => ConfigError::MissingEnv {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        line,
                        var,
                    },
                    Substitution::Malformed(message) => ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        message,
                    },
                })?;
            *s = replaced.into();
        }
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{key}[{i}]"), text, path)?;
            }
        }
        toml::de::DeValue::Table(table) => substitute_table(table, key, text, path)?,
        _ => {}
    }
    Ok(())
}

/// Why a string's `${VAR}` could not be replaced.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Substitution {
    /// The variable is not set.
    Unset(String),
    /// `${` without `}`, or `${}`.
    Malformed(String),
}

/// Replace `${VAR}` in one string value with `lookup(VAR)`; `$${` is a
/// literal `${`. A `$` not followed by `{` stays as it is.
pub(super) fn substitute_env(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Substitution> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(Substitution::Malformed(format!(
                    "{value:?} has a ${{ without a closing }} (write $${{ for a literal ${{)"
                )));
            };
            let var = &after[..end];
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Substitution::Malformed(format!(
                    "${{{var}}} is not an environment variable name (letters, digits and _; write $${{ for a literal ${{)"
                )));
            }
            out.push_str(&lookup(var).ok_or_else(|| Substitution::Unset(var.to_string()))?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
