//! What a pattern's text says about its matches, read without compiling it:
//! a byte string that every match contains (the prefilter's needle), and
//! whether the pattern uses a text or line anchor.
//!
//! Both readings are conservative: when the reader meets syntax it does not
//! follow (verbose mode `(?x)`, hex escapes, a top-level `|`), it finds no
//! needle, and the rule is gated by its regex instead. A needle that is not
//! in every match would let a secret through, so each construct that can
//! make a literal optional (a quantifier with minimum 0, an alternation,
//! a class) drops what it covers; the tests check the needles against the
//! regex crate on many texts.
//!
//! The regex crate's own literal optimisations cannot be reused: it does not
//! expose them, and `regex-syntax` is not a dependency of this crate.

/// A byte string that every match of `pattern` contains, if one is found:
/// the longest run of consecutive required literal characters (under
/// `(?i)`, only ASCII characters without case: digits, punctuation,
/// whitespace), and among runs of one byte the rarest in logs.
///
/// `pattern` must compile (`regex::Regex::new`); on anything else the
/// answer is `None`, never a wrong needle.
pub(super) fn required_literal(pattern: &str) -> Option<Vec<u8>> {
    let mut reader = Reader {
        chars: pattern.chars().collect(),
        pos: 0,
    };
    let level = reader.level(false, 0).ok()?;
    if reader.pos != reader.chars.len() || level.alternation {
        return None;
    }
    level
        .runs
        .into_iter()
        .filter(|r| !r.is_empty())
        .max_by_key(|r| (r.len(), rarity(r)))
}

/// Whether `pattern` may use `^`, `$`, `\A` or `\z` (in any mode): then a
/// match inside a JSON string value is not necessarily a match of the whole
/// JSON text. Errs towards `true` (a `$` inside a class counts).
pub(super) fn has_anchor(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                if matches!(bytes.get(i + 1), Some(b'A' | b'z')) {
                    return true;
                }
                i += 2;
                continue;
            }
            b'^' if i > 0 && bytes[i - 1] == b'[' && (i < 2 || bytes[i - 2] != b'\\') => {}
            b'^' | b'$' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Higher is rarer in log text, for choosing between one-byte needles.
fn rarity(run: &[u8]) -> u8 {
    match run {
        [b] if b.is_ascii_alphanumeric() || *b == b' ' => 0,
        [b'"' | b',' | b':' | b'.' | b'/' | b'-' | b'_' | b'{' | b'}' | b'[' | b']'] => 1,
        [_] => 2,
        _ => 3,
    }
}

/// Syntax the reader does not follow: no needle for this pattern.
struct GiveUp;

/// What one level of a pattern (the whole pattern, or a group's inside)
/// requires.
struct Level {
    /// Byte strings every match of this level contains.
    runs: Vec<Vec<u8>>,
    /// A `|` at this level: no run is required by every branch.
    alternation: bool,
}

/// One parsed element of a concatenation.
enum Atom {
    /// A character matched as written (case folding already ruled out).
    Literal(char),
    /// A group whose inside requires these runs.
    Group(Vec<Vec<u8>>),
    /// Anything else: a class, `.`, an escape class, an assertion, a
    /// literal letter under `(?i)`.
    Other,
}

struct Reader {
    chars: Vec<char>,
    pos: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<char, GiveUp> {
        let c = self.peek().ok_or(GiveUp)?;
        self.pos += 1;
        Ok(c)
    }

    /// A concatenation (with `|` between branches) up to a `)` at `depth`
    /// > 0, or the end. `ci`: `(?i)` is on at its start.
    fn level(&mut self, mut ci: bool, depth: usize) -> Result<Level, GiveUp> {
        if depth > 64 {
            return Err(GiveUp);
        }
        let mut level = Level {
            runs: Vec::new(),
            alternation: false,
        };
        let mut run: Vec<u8> = Vec::new();
        while let Some(c) = self.peek() {
            let atom = match c {
                ')' if depth > 0 => break,
                ')' => return Err(GiveUp),
                '|' => {
                    self.pos += 1;
                    level.alternation = true;
                    flush(&mut level.runs, &mut run);
                    continue;
                }
                '(' => {
                    self.pos += 1;
                    match self.group_opening(&mut ci)? {
                        // `(?i)`: flags for the rest of this level.
                        None => continue,
                        Some(inner_ci) => {
                            let inner = self.level(inner_ci, depth + 1)?;
                            if self.next()? != ')' {
                                return Err(GiveUp);
                            }
                            Atom::Group(if inner.alternation {
                                Vec::new()
                            } else {
                                inner.runs
                            })
                        }
                    }
                }
                '[' => {
                    self.pos += 1;
                    self.class()?;
                    Atom::Other
                }
                '\\' => {
                    self.pos += 1;
                    self.escape()?
                }
                '.' | '^' | '$' => {
                    self.pos += 1;
                    Atom::Other
                }
                '*' | '+' | '?' | '{' => return Err(GiveUp),
                c => {
                    self.pos += 1;
                    literal(c, ci)
                }
            };
            let min = self.quantifier()?;
            match (atom, min) {
                // Optional: nothing it holds is required.
                (_, Some(0)) => flush(&mut level.runs, &mut run),
                (Atom::Literal(c), None) => push_char(&mut run, c),
                // `ab+c`: "ab" and "bc" are both in every match.
                (Atom::Literal(c), Some(_)) => {
                    push_char(&mut run, c);
                    flush(&mut level.runs, &mut run);
                    push_char(&mut run, c);
                }
                (Atom::Group(runs), _) => {
                    flush(&mut level.runs, &mut run);
                    level.runs.extend(runs);
                }
                (Atom::Other, _) => flush(&mut level.runs, &mut run),
            }
        }
        flush(&mut level.runs, &mut run);
        Ok(level)
    }

    /// After `(`: `Ok(None)` for a flag group `(?flags)` (applied to `ci`),
    /// else the inside's `(?i)` state, the reader after `(`, `(?:`,
    /// `(?flags:`, `(?P<name>` or `(?<name>`.
    fn group_opening(&mut self, ci: &mut bool) -> Result<Option<bool>, GiveUp> {
        if self.peek() != Some('?') {
            return Ok(Some(*ci));
        }
        self.pos += 1;
        match self.peek() {
            Some('P') | Some('<') => {
                while self.next()? != '>' {}
                return Ok(Some(*ci));
            }
            _ => {}
        }
        let mut on = true;
        let mut flags_ci = *ci;
        loop {
            match self.next()? {
                '-' => on = false,
                'i' => flags_ci = on,
                // Verbose mode changes what whitespace and `#` mean.
                'x' => return Err(GiveUp),
                'm' | 's' | 'U' | 'u' | 'R' => {}
                ':' => return Ok(Some(flags_ci)),
                ')' => {
                    *ci = flags_ci;
                    return Ok(None);
                }
                _ => return Err(GiveUp),
            }
        }
    }

    /// Skip a class after its `[`, nested classes included. A `]` right
    /// after `[` or `[^` is a literal, as in regex-syntax.
    fn class(&mut self) -> Result<(), GiveUp> {
        let mut depth = 1;
        let mut at_start = true;
        while depth > 0 {
            let c = self.next()?;
            if at_start && c == '^' && self.chars[self.pos - 2] == '[' {
                continue;
            }
            let start = at_start;
            at_start = false;
            match c {
                ']' if start => {}
                ']' => depth -= 1,
                '[' => {
                    depth += 1;
                    at_start = true;
                }
                '\\' => {
                    let e = self.next()?;
                    if matches!(e, 'p' | 'P' | 'x' | 'u' | 'U') && self.peek() == Some('{') {
                        while self.next()? != '}' {}
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// After `\`.
    fn escape(&mut self) -> Result<Atom, GiveUp> {
        let e = self.next()?;
        let atom = match e {
            // `\<`, `\>`: word-boundary assertions.
            '<' | '>' => Atom::Other,
            e if e.is_ascii_punctuation() || e == ' ' => Atom::Literal(e),
            't' => Atom::Literal('\t'),
            'n' => Atom::Literal('\n'),
            'r' => Atom::Literal('\r'),
            'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'A' | 'z' | 'B' => Atom::Other,
            'b' => {
                // `\b{start}` and the other half boundaries.
                if self.peek() == Some('{') {
                    while self.next()? != '}' {}
                }
                Atom::Other
            }
            'p' | 'P' => {
                if self.next()? == '{' {
                    while self.next()? != '}' {}
                }
                Atom::Other
            }
            // Hex escapes, `\f`, `\v`, `\a`, and anything unforeseen.
            _ => return Err(GiveUp),
        };
        Ok(atom)
    }

    /// The minimum of the repetition after an atom, if there is one (`a*`:
    /// 0, `a+`: 1, `a{2,}`: 2), with a lazy `?` after it.
    fn quantifier(&mut self) -> Result<Option<u32>, GiveUp> {
        let mut min: Option<u32> = None;
        loop {
            let this = match self.peek() {
                Some('?') | Some('*') => 0,
                Some('+') => 1,
                Some('{') => {
                    self.pos += 1;
                    let mut n: u32 = 0;
                    let mut digits = 0;
                    while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
                        n = n.saturating_mul(10).saturating_add(d);
                        digits += 1;
                        self.pos += 1;
                    }
                    if digits == 0 {
                        return Err(GiveUp);
                    }
                    while self.peek() != Some('}') {
                        self.next()?;
                    }
                    n
                }
                _ => return Ok(min),
            };
            self.pos += 1;
            // Lazy (`a+?`): the same minimum.
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            // Nested repetitions: 0 if either allows none.
            min = Some(min.map_or(this, |m| m.min(this)));
        }
    }
}

/// A character as written: a literal, unless `(?i)` may match it in
/// another case (then only ASCII without case is kept).
fn literal(c: char, ci: bool) -> Atom {
    if ci && (!c.is_ascii() || c.is_ascii_alphabetic()) {
        Atom::Other
    } else {
        Atom::Literal(c)
    }
}

fn push_char(run: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    run.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn flush(runs: &mut Vec<Vec<u8>>, run: &mut Vec<u8>) {
    if !run.is_empty() {
        runs.push(std::mem::take(run));
    }
}
