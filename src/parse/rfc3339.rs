//! RFC 3339 timestamps to microseconds since the epoch.
//!
//! Every CRI line starts with one (`2026-11-22T03:00:00.001376331Z`), and
//! most JSON bodies hold another, so this runs twice per record. The common
//! layout — `YYYY-MM-DDTHH:MM:SS`, up to nine fraction digits, `Z` or
//! `±HH:MM` — is read at fixed positions here (about ten times faster than
//! chrono's general parser, `benches/stages.rs`); anything else (a leap
//! second, more than nine fraction digits, a malformed string) goes to
//! chrono, so the result is always exactly chrono's.

/// Parse an RFC 3339 timestamp to microseconds since the epoch (fractions
/// below a microsecond are cut, as chrono's `timestamp_micros` does).
pub fn rfc3339_micros(s: &str) -> Option<i64> {
    fast(s.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

/// The fixed layout, or `None` for the general parser to decide.
fn fast(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = (h * 3600 + m * 60) as i64;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month, day);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_s;
    Some(secs * 1_000_000 + micros)
}

/// ASCII decimal digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_micros(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
    }

    #[test]
    fn agrees_with_chrono() {
        let cases = [
            "2026-11-22T03:00:00.001376331Z",
            "2026-11-22T03:00:00Z",
            "2026-11-22t03:00:00.5z",
            "2026-11-22 03:00:00.123456+09:00",
            "2026-11-22T03:00:00.1234567-05:30",
            "1969-12-31T23:59:59.999999Z",
            "1900-02-28T00:00:00Z",
            "2000-02-29T12:00:00Z",
            "2100-02-29T12:00:00Z",
            "2024-02-29T23:59:59.9Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T03:60:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-22T03:00:00.Z",
            "2026-11-22T03:00:00.1234567891Z",
            "2026-11-22T03:00:00",
            "2026-11-22T03:00:00+0900",
            "2026-11-22T03:00:00+24:00",
            "2026-11-22T03:00:00ZZ",
            "2026-1-22T03:00:00Z",
            "２026-11-22T03:00:00Z",
            "+2026-11-22T03:00:00Z",
            "",
            "not a time",
        ];
        for s in cases {
            assert_eq!(rfc3339_micros(s), chrono_micros(s), "{s:?}");
        }
    }

    #[test]
    fn agrees_with_chrono_on_every_day_and_offset() {
        // Every day of 1968..2031 (leap years, century rules through the
        // civil algorithm), with fractions and offsets that vary by day.
        let mut checked = 0;
        for year in 1968..2031 {
            for month in 1..=12 {
                for day in 1..=31 {
                    let frac = ["", ".7", ".123", ".000001", ".999999999"][day % 5];
                    let tz = ["Z", "+00:00", "-08:00", "+05:45", "+14:00"][(day + month) % 5];
                    let s = format!(
                        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}{tz}",
                        day % 24,
                        (day * 7) % 60,
                        (day * 13) % 60
                    );
                    assert_eq!(fast(s.as_bytes()), chrono_micros(&s), "{s}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 63 * 12 * 31);
    }
}
