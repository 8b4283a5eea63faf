//! The prefilter: the words of a source's rules ([`super::literal::needles`]),
//! compared without case, so that an ASCII text holding none of them is
//! known not to match after one vector scan. A text with a non-ASCII byte
//! is always handed to the regexes (case folding reaches outside ASCII).
//!
//! The scan is the SIMD "Teddy" searcher of `aho-corasick` (its `packed`
//! module) over every case variant of the rarest three bytes of each word
//! (`_ke` of `api_key`: a window of common letters such as `api` would hit
//! in every `/api/` path; 64 patterns at most), each hit checked against
//! the whole word. The
//! automaton with `ascii_case_insensitive` scans a byte at a time: about
//! 15 instructions a byte against under 1 (callgrind, BENCHMARKS.md); it
//! stays the fallback for words with too many variants.

use aho_corasick::packed;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// How many bytes of each word the vector scan looks for.
const WINDOW: usize = 3;

/// Letters from the most to the least common in English text (and, near
/// enough, in log lines); anything else (`_`, `-`, digits) counts as rare.
const COMMON: &[u8] = b"etaoinsrhldcumfpgwybvkxjqz";

/// How common `b` is: higher is more common.
fn commonness(b: u8) -> usize {
    COMMON
        .iter()
        .position(|&c| c == b.to_ascii_lowercase())
        .map_or(0, |i| COMMON.len() - i)
}

/// Words searched for without case.
#[derive(Debug, Clone)]
pub(super) struct Words {
    /// Each word, with the offset of its window.
    words: Vec<(Vec<u8>, usize)>,
    scan: Scan,
}

#[derive(Debug, Clone)]
enum Scan {
    /// Every case variant of the rarest window of each word; a hit is
    /// checked against every word whose window is there.
    Windows(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Words {
    pub fn new(words: &[Vec<u8>]) -> Option<Self> {
        let mut variants: Vec<Vec<u8>> = Vec::new();
        let mut offsets = Vec::new();
        for w in words {
            let len = w.len().min(WINDOW);
            let offset = (0..=w.len() - len)
                .min_by_key(|&o| w[o..o + len].iter().map(|&b| commonness(b)).sum::<usize>())
                .unwrap_or(0);
            offsets.push(offset);
            let mut cased = vec![Vec::new()];
            for &b in &w[offset..offset + len] {
                let both = [b.to_ascii_lowercase(), b.to_ascii_uppercase()];
                let bytes: &[u8] = if both[0] == both[1] {
                    &both[..1]
                } else {
                    &both
                };
                cased = cased
                    .iter()
                    .flat_map(|p| bytes.iter().map(move |&c| [p.as_slice(), &[c]].concat()))
                    .collect();
            }
            variants.extend(cased);
        }
        variants.sort();
        variants.dedup();
        let packed = (variants.len() <= 64)
            .then(|| {
                packed::Config::new()
                    .match_kind(packed::MatchKind::LeftmostFirst)
                    .builder()
                    .extend(&variants)
                    .build()
            })
            .flatten();
        let scan = match packed {
            Some(searcher) => Scan::Windows(searcher),
            None => Scan::Automaton(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(words)
                    .ok()?,
            ),
        };
        Some(Words {
            words: words.iter().cloned().zip(offsets).collect(),
            scan,
        })
    }

    /// Whether one of the words may be in `text` (never `false` when a
    /// rule whose words these are matches).
    #[inline]
    pub fn may_be_in(&self, text: &[u8]) -> bool {
        if !text.is_ascii() {
            return true;
        }
        match &self.scan {
            Scan::Windows(searcher) => {
                // One hit stands for every window that starts there, and
                // hits may overlap a word (`aba` of `abab_x` in `ababab_x`):
                // each word is checked at a hit, then the scan goes on one
                // byte later.
                let mut from = 0;
                while let Some(m) = searcher.find(&text[from..]) {
                    let hit = from + m.start();
                    let is_word = self.words.iter().any(|(w, offset)| {
                        hit.checked_sub(*offset)
                            .and_then(|start| text.get(start..start + w.len()))
                            .is_some_and(|t| t.eq_ignore_ascii_case(w))
                    });
                    if is_word {
                        return true;
                    }
                    from = hit + 1;
                }
                false
            }
            Scan::Automaton(ac) => ac.is_match(text),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Gate {
    /// Every rule's words; `None` when a rule has none (any text may match).
    words: Option<Words>,
    /// The bytes of all words, both cases, as a bit set (the words are ASCII).
    ascii: u128,
}

impl Gate {
    /// The words of each rule (`None`: the rule has none).
    pub fn new<'a>(rules: impl IntoIterator<Item = Option<&'a [Vec<u8>]>>) -> Self {
        let mut all = Vec::new();
        let mut open = false;
        let mut ascii = 0u128;
        for words in rules {
            let Some(words) = words else {
                open = true;
                continue;
            };
            for w in words {
                for &b in w {
                    ascii |= 1 << b.to_ascii_lowercase();
                    ascii |= 1 << b.to_ascii_uppercase();
                }
                all.push(w.clone());
            }
        }
        let words = if open { None } else { Words::new(&all) };
        Gate { words, ascii }
    }

    /// Whether a rule may match in `text` (never `false` when one does).
    #[inline]
    pub fn may_match(&self, text: &[u8]) -> bool {
        self.words.as_ref().is_none_or(|w| w.may_be_in(text))
    }

    /// For a JSON text: `true` when no string value of it can hold a word,
    /// escaped or not (never `true` when one can).
    #[inline]
    pub fn json_clean(&self, json: &[u8]) -> bool {
        if self.may_match(json) {
            return false;
        }
        let mut pos = 0;
        while let Some(k) = memchr::memchr(b'\\', &json[pos..]) {
            match self.past_escape(json, pos + k) {
                Some(next) => pos = next,
                None => return false,
            }
        }
        true
    }

    /// The position after the escape at `i` (a backslash), if the character
    /// it stands for is ASCII and in no word: then a word that is not in
    /// the text as written cannot be in the value by this escape.
    fn past_escape(&self, json: &[u8], i: usize) -> Option<usize> {
        let (c, next) = match json.get(i + 1)? {
            b'u' => {
                let hex = json.get(i + 2..i + 6)?;
                let n = hex
                    .iter()
                    .try_fold(0, |n, d| (*d as char).to_digit(16).map(|d| n * 16 + d))?;
                (n, i + 6)
            }
            b'b' => (8, i + 2),
            b'f' => (12, i + 2),
            b'n' => (u32::from(b'\n'), i + 2),
            b'r' => (u32::from(b'\r'), i + 2),
            b't' => (u32::from(b'\t'), i + 2),
            c @ (b'"' | b'\\' | b'/') => (u32::from(*c), i + 2),
            _ => return None,
        };
        (c < 0x80 && self.ascii & (1 << c) == 0).then_some(next)
    }
}
