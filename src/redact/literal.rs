//! What a rule's pattern tells the prefilter, read from its syntax tree
//! (`regex-syntax`, the regex crate's own parser, so the reading follows
//! the regex crate's rules: flags, escapes, classes, Unicode case folding).
//!
//! [`needles`] finds words every match contains, as ASCII letters
//! compared without case: for `(?i)(password|passwd|token|secret|api_key)=\S+`
//! the five words (a match holds one of them), not just `=`. They hold for
//! ASCII text: under `(?i)`, `s` also matches `ſ` (U+017F) and `k` the
//! Kelvin sign, which an ASCII search cannot see, so a text with any
//! non-ASCII byte always goes to the regexes (`Gate`).

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Words (ASCII, lowercase) such that every match of `pattern` in an ASCII
/// text contains one of them, ignoring case; `None` when there are none
/// (the pattern does not parse, or a match may be made of classes only).
pub(super) fn needles(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    let words = of(&hir)?;
    (!words.is_empty() && words.iter().all(|w| !w.is_empty())).then_some(words)
}

/// Whether the pattern looks at the ends of its text (`^`, `$`, `\A`,
/// `\z`): a match inside a JSON value may then not be one in the whole
/// JSON text.
pub(super) fn has_anchor(pattern: &str) -> bool {
    let Ok(hir) = regex_syntax::parse(pattern) else {
        return true;
    };
    let looks = hir.properties().look_set();
    [
        Look::Start,
        Look::End,
        Look::StartLF,
        Look::EndLF,
        Look::StartCRLF,
        Look::EndCRLF,
    ]
    .into_iter()
    .any(|l| looks.contains(l))
}

/// The one ASCII letter or byte, lowercased, that `hir` matches in ASCII
/// text (`p` for `[Pp]` or `[Pp\u{...}]`, `=` for `=`), if it is one.
fn one_char(hir: &Hir) -> Option<u8> {
    let ascii_members: Vec<u8> = match hir.kind() {
        HirKind::Literal(lit) if lit.0.len() == 1 => return Some(lit.0[0].to_ascii_lowercase()),
        HirKind::Class(Class::Unicode(c)) => c
            .iter()
            .flat_map(|r| u32::from(r.start())..=u32::from(r.end()).min(0x7f))
            .filter_map(|c| u8::try_from(c).ok())
            .collect(),
        HirKind::Class(Class::Bytes(c)) => c
            .iter()
            .flat_map(|r| r.start()..=r.end().min(0x7f))
            .collect(),
        _ => return None,
    };
    let first = ascii_members.first()?.to_ascii_lowercase();
    ascii_members
        .iter()
        .all(|b| b.to_ascii_lowercase() == first)
        .then_some(first)
}

/// Every match of `hir` (in ASCII text) contains one of these words.
fn of(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Literal(lit) if lit.0.is_ascii() => Some(vec![lit.0.to_ascii_lowercase()]),
        HirKind::Class(_) => one_char(hir).map(|c| vec![vec![c]]),
        HirKind::Capture(c) => of(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => of(&r.sub),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(of(b)?);
            }
            all.sort();
            all.dedup();
            Some(all)
        }
        HirKind::Concat(parts) => {
            // Runs of single characters make words; any part's own words
            // are candidates too. The best set has the longest shortest word.
            let mut candidates: Vec<Vec<Vec<u8>>> = Vec::new();
            let mut run = Vec::new();
            for part in parts {
                match (part.kind(), one_char(part)) {
                    (_, Some(c)) => run.push(c),
                    // `b+`, `x{2,}`: the first ones end this run, the last
                    // one starts the next.
                    (HirKind::Repetition(r), None) if r.min >= 1 && one_char(&r.sub).is_some() => {
                        let c = one_char(&r.sub).unwrap_or_default();
                        let min = usize::try_from(r.min).unwrap_or(1);
                        run.extend(std::iter::repeat_n(c, min));
                        candidates.push(vec![std::mem::replace(&mut run, vec![c])]);
                    }
                    (HirKind::Literal(lit), None) if lit.0.is_ascii() => {
                        run.extend(lit.0.to_ascii_lowercase())
                    }
                    _ => {
                        if !run.is_empty() {
                            candidates.push(vec![std::mem::take(&mut run)]);
                        }
                        candidates.extend(of(part));
                    }
                }
            }
            if !run.is_empty() {
                candidates.push(vec![run]);
            }
            candidates.into_iter().max_by_key(|words| {
                let shortest = words.iter().map(Vec::len).min().unwrap_or(0);
                (shortest, usize::MAX - words.len())
            })
        }
        _ => None,
    }
}
