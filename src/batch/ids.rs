//! A batch's and a row's identity: deterministic, so that a batch read
//! again after a crash gets the same id (and object key), and a row the
//! same origin hash.

use crate::parse::Record;

/// A hash of what a record says (not of when it was read): the same line
/// hashes the same on every read. With `[[redact]]`, `message` and
/// `fields` are the masked texts: a hash of a secret must not leave either.
pub(super) fn content_hash(rec: &Record, message: Option<&str>, fields: Option<&str>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&rec.timestamp_us.unwrap_or(i64::MIN).to_le_bytes());
    for part in [rec.stream, message, fields, rec.level.as_deref()] {
        match part {
            Some(s) => {
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(&u64::MAX.to_le_bytes()),
        }
    }
    h.digest()
}

/// `<hash of all spans>-<first offset>`; `empty` for a batch without rows.
pub(super) fn batch_id(spans: &[(u64, u64, u64)]) -> String {
    let Some(first) = spans.first() else {
        return "empty".into();
    };
    let bytes: Vec<u8> = spans
        .iter()
        .flat_map(|(fp, a, b)| [fp.to_le_bytes(), a.to_le_bytes(), b.to_le_bytes()])
        .flatten()
        .collect();
    format!("{:016x}-{}", xxhash_rust::xxh3::xxh3_64(&bytes), first.1)
}

#[cfg(test)]
mod tests {
    use super::{batch_id, content_hash};
    use crate::parse::Record;

    #[test]
    fn content_hashes_follow_what_a_line_says() {
        let rec = |ts, message: &'static str| Record {
            timestamp_us: Some(ts),
            stream: Some("stdout"),
            message: Some(message.into()),
            offset: 7,
            ..Record::default()
        };
        let content_hash = |r: &Record| content_hash(r, r.message.as_deref(), r.fields.as_deref());
        assert_eq!(content_hash(&rec(1, "a")), content_hash(&rec(1, "a")));
        assert_ne!(content_hash(&rec(1, "a")), content_hash(&rec(2, "a")));
        assert_ne!(content_hash(&rec(1, "a")), content_hash(&rec(1, "b")));
        // Fields are length-prefixed: moving bytes between them changes the hash.
        let mut x = rec(1, "ab");
        x.fields = Some("c".into());
        let mut y = rec(1, "a");
        y.fields = Some("bc".into());
        assert_ne!(content_hash(&x), content_hash(&y));
    }

    #[test]
    fn batch_ids_differ_whenever_the_rows_differ() {
        // Same first row, but one batch also holds rows of a second file:
        // their objects must not overwrite each other.
        let a = batch_id(&[(1, 100, 900)]);
        let b = batch_id(&[(1, 100, 900), (2, 0, 50)]);
        let c = batch_id(&[(1, 100, 500)]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.ends_with("-100"));
        assert_eq!(a, batch_id(&[(1, 100, 900)]), "deterministic");
        assert_eq!(batch_id(&[]), "empty");
    }
}
