//! Which line continues the record open on its stream, and which starts
//! one: the built-in stack-trace rules per language, or a `start_pattern`.
//!
//! The built-in rules are a small state machine per stream. Its state
//! ([`Mode`]) says what the open record is so far — one ordinary line held
//! in case a trace follows it, Java/Node/Ruby frames, a Python traceback
//! (frames, the exception line, a chained exception), a Go goroutine dump,
//! a Node crash report — and so which lines may follow. Most lines are
//! rejected on their first bytes; the few regexes run only on lines that
//! passed such a check.

use regex::Regex;

use super::Language;

/// What the open record holds so far (built-in rules), and so which lines
/// continue it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One ordinary line, held in case a stack trace follows it (a logger's
    /// message line, `Error: boom`, Ruby's `app.rb:3:in 'f': boom (E)`).
    #[default]
    Line,
    /// Java, Node or Ruby frames: `at ...`, `Caused by: ...`, `from ...`.
    Frames,
    /// Python: after `Traceback (most recent call last):`, indented frames.
    PyFrames,
    /// Python: after the exception line; a chained exception may follow.
    PyException,
    /// Python: after "During handling of the above exception, …:".
    PyChain,
    /// Go: a panic, fatal error or SIGQUIT and its goroutine dump.
    GoDump,
    /// Node crash report: after its location line (`/app/index.js:3`).
    NodeSource,
    /// Node crash report: after the source line, before the caret.
    NodeCode,
    /// Node crash report: after the caret line, before the error line.
    NodeCaret,
    /// Node crash report: the error line and its frames.
    NodeFrames,
    /// `start_pattern`: every line up to the next match.
    Pattern,
    /// Complete (Go's `exit status 2`, Node's `Node.js v20.1.0`): emitted now.
    Done,
}

const TRACEBACK: &str = "Traceback (most recent call last):";
const PY_DURING: &str = "During handling of the above exception, another exception occurred:";
const PY_CAUSE: &str = "The above exception was the direct cause of the following exception:";

/// The compiled line rules of one source.
#[derive(Debug)]
pub(crate) enum LineRules {
    Builtin(Box<Builtin>),
    /// A line matching it starts a record; every other line continues one.
    Pattern(Regex),
}

/// The built-in rules for the languages named.
#[derive(Debug)]
pub(crate) struct Builtin {
    java: bool,
    python: bool,
    go: bool,
    ruby: bool,
    node: bool,
    /// `java.lang.IllegalStateException: boom`, `com.x.FooError`.
    exception_class: Regex,
    /// `... 3 more`, `... 12 common frames omitted` (after the indent).
    omitted: Regex,
    /// `\tfrom app.rb:7:in '<main>'` and Logger's bare `app.rb:3:in 'divide'`.
    ruby_frame: Regex,
    /// In a Go dump: `main.(*T).f(0xc000012345, {0x1, 0x2})`, register
    /// lines (`rax    0x0`), `PC=0x46a1e1 m=0 sigcode=0`.
    go_line: Regex,
    /// `goroutine 7 [running]:`.
    goroutine: Regex,
    /// A Node crash report's first line: `/app/index.js:3`, `node:internal/x:12`.
    node_location: Regex,
}

impl Builtin {
    pub(crate) fn new(languages: &[Language]) -> Result<Self, regex::Error> {
        let has = |l: Language| languages.contains(&l);
        Ok(Self {
            java: has(Language::Java),
            python: has(Language::Python),
            go: has(Language::Go),
            ruby: has(Language::Ruby),
            node: has(Language::Node),
            exception_class: Regex::new(
                r"^(?:[\p{L}_$][\w$]*\.)+[\w$]*(?:Exception|Error|Throwable|Failure)(?::\s.*)?$",
            )?,
            omitted: Regex::new(r"^\.\.\. \d+ (?:more|common frames omitted)")?,
            ruby_frame: Regex::new(r"^(?:\s+from \S.*:\d+:in [`']|\S+:\d+:in [`'][^`']*'$)")?,
            go_line: Regex::new(r"^(?:\S+\(.*\)|[a-z0-9]{2,6} +0x[0-9a-f]+|PC=0x.*)$")?,
            goroutine: Regex::new(r"^goroutine \d+ .*\]:$")?,
            node_location: Regex::new(r"^(?:\S+\.(?:[cm]?[jt]s|[jt]sx)|node:\S+):\d+$")?,
        })
    }

    /// The mode the open record is in after `line`, or `None` when `line`
    /// does not belong to it.
    pub(crate) fn continues(&self, mode: Mode, line: &str) -> Option<Mode> {
        if line.starts_with('{') {
            return None; // a JSON object is a record of its own
        }
        match mode {
            // Inside a Java or Node trace, any indented line belongs to it:
            // exception details (PostgreSQL's `  Detail: ...`), a message
            // over several lines.
            Mode::Frames if (self.java || self.node) && indented(line) => Some(Mode::Frames),
            Mode::Line | Mode::Frames => self.frame(mode, line),
            Mode::PyFrames if indented(line) => Some(Mode::PyFrames),
            // The first line back at the margin is the exception line.
            Mode::PyFrames => (!line.is_empty()).then_some(Mode::PyException),
            Mode::PyException if blank(line) => Some(Mode::PyException),
            Mode::PyException => (line == PY_DURING || line == PY_CAUSE).then_some(Mode::PyChain),
            Mode::PyChain if blank(line) => Some(Mode::PyChain),
            Mode::PyChain => line.starts_with(TRACEBACK).then_some(Mode::PyFrames),
            Mode::GoDump => self.go_dump(line),
            Mode::NodeSource => Some(Mode::NodeCode),
            Mode::NodeCode => caret(line).then_some(Mode::NodeCaret),
            // After the caret and a blank line: the error line.
            Mode::NodeCaret if blank(line) => Some(Mode::NodeCaret),
            Mode::NodeCaret => Some(Mode::NodeFrames),
            Mode::NodeFrames => node_frame(line),
            Mode::Pattern | Mode::Done => None,
        }
    }

    /// The mode of a record that `line` starts, or `None` when it starts
    /// none and is a record on its own (a blank line, a JSON object).
    pub(crate) fn starts(&self, line: &str) -> Option<Mode> {
        let first = *line.as_bytes().first()?;
        if first == b'{' || blank(line) {
            return None;
        }
        if self.go
            && (line.starts_with("panic: ")
                || line.starts_with("fatal error: ")
                || line == "SIGQUIT: quit"
                || self.goroutine_line(line))
        {
            return Some(Mode::GoDump);
        }
        if self.python && line.starts_with(TRACEBACK) {
            return Some(Mode::PyFrames);
        }
        if self.node && first != b' ' && ends_with_digit(line) && self.node_location.is_match(line)
        {
            return Some(Mode::NodeSource);
        }
        // A frame with nothing open (the record before was cut at
        // max_lines, or reading resumed there): the frames after it join it.
        if self.frame(Mode::Frames, line).is_some() {
            return Some(Mode::Frames);
        }
        Some(Mode::Line)
    }

    /// A line of a Java, Node or Ruby trace after `mode` (`Line` or `Frames`).
    fn frame(&self, mode: Mode, line: &str) -> Option<Mode> {
        let first = *line.as_bytes().first()?;
        if first == b' ' || first == b'\t' {
            let t = line.trim_start();
            let hit = ((self.java || self.node) && t.starts_with("at "))
                || (self.java && self.java_chain(t))
                || (self.ruby && t.starts_with("from ") && self.ruby_frame.is_match(line));
            return hit.then_some(Mode::Frames);
        }
        if self.java && self.java_chain(line) {
            return Some(Mode::Frames);
        }
        if mode == Mode::Line {
            // The logger's message line came first; the trace follows it.
            if self.python && line.starts_with(TRACEBACK) {
                return Some(Mode::PyFrames);
            }
            if self.go && self.goroutine_line(line) {
                return Some(Mode::GoDump);
            }
            if self.java && first.is_ascii_alphabetic() && self.exception_class.is_match(line) {
                return Some(Mode::Frames);
            }
        }
        if self.ruby && memchr::memmem::find(line.as_bytes(), b":in ").is_some() {
            return self.ruby_frame.is_match(line).then_some(Mode::Frames);
        }
        None
    }

    /// `Caused by: `, `Suppressed: `, `... 3 more` (without the indent).
    fn java_chain(&self, t: &str) -> bool {
        t.starts_with("Caused by: ")
            || t.starts_with("Suppressed: ")
            || (t.starts_with("... ") && self.omitted.is_match(t))
    }

    fn goroutine_line(&self, line: &str) -> bool {
        line.starts_with("goroutine ") && self.goroutine.is_match(line)
    }

    /// A line of a goroutine dump: blank, indented (`\t/app/main.go:12
    /// +0x1d`), `goroutine N [...]:`, a function line, `created by ...`,
    /// `[signal ...`, `runtime stack:`; `exit status N` ends it.
    fn go_dump(&self, line: &str) -> Option<Mode> {
        if blank(line)
            || indented(line)
            || line.starts_with("goroutine ")
            || line.starts_with("created by ")
            || line.starts_with("[signal ")
            || line.starts_with("runtime stack:")
            || line.starts_with("...additional frames elided...")
            || self.go_line.is_match(line)
        {
            return Some(Mode::GoDump);
        }
        line.starts_with("exit status ").then_some(Mode::Done)
    }
}

/// After a Node crash report's error line: frames (and the error's
/// properties, `{ code: 'X' }`), blank lines; `Node.js v20.1.0` ends it.
fn node_frame(line: &str) -> Option<Mode> {
    if blank(line) || indented(line) || line == "}" || line.starts_with("(Use `node --trace") {
        return Some(Mode::NodeFrames);
    }
    line.starts_with("Node.js v").then_some(Mode::Done)
}

fn blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t')
}

fn indented(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b' ' | b'\t'))
}

/// `    ^` (or `^^^^^`) under a Node crash report's source line.
fn caret(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.bytes().all(|b| b == b'^')
}

fn ends_with_digit(line: &str) -> bool {
    line.as_bytes().last().is_some_and(u8::is_ascii_digit)
}

impl LineRules {
    /// The mode after `line` if it continues a record in `mode`.
    pub(crate) fn continues(&self, mode: Mode, line: &str) -> Option<Mode> {
        match self {
            LineRules::Builtin(b) => b.continues(mode, line),
            LineRules::Pattern(start) => (!start.is_match(line)).then_some(Mode::Pattern),
        }
    }

    /// The mode of the record `line` starts, or `None`: a record on its own.
    pub(crate) fn starts(&self, line: &str) -> Option<Mode> {
        match self {
            LineRules::Builtin(b) => b.starts(line),
            LineRules::Pattern(_) => (!blank(line)).then_some(Mode::Pattern),
        }
    }

    pub(crate) fn is_builtin(&self) -> bool {
        matches!(self, LineRules::Builtin(_))
    }
}
