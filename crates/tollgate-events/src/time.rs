//! Hand-written parsers for the timestamp shapes the vendors write.
//!
//! They are written by hand rather than with `chrono`'s format strings because
//! they sit on the hot path (one per record) and because the shapes need
//! leniency that format strings don't give: Zscaler's double-space padded
//! days and weekdays that are wrong for the date (ignored, never checked).
//!
//! Shapes:
//! - CLF, API Gateway `requestTime`: `10/Jun/2023:15:36:28 +0000`;
//! - Zscaler/ZPA: `Mon Oct 16 22:55:48 2023`, `Tue Dec  31 02:22:22 2022`,
//!   `2021-12-31 08:08:08` (local to the feed's time zone);
//! - RFC 3339 / ISO 8601 with an offset (ZPA `Timestamp*`);
//! - epoch seconds, milliseconds, microseconds or nanoseconds, told apart by
//!   magnitude.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Epoch values are accepted between 1990 and 2200 (in whichever unit their
/// magnitude implies); anything else is not a timestamp.
const MIN_EPOCH_S: i64 = 631_152_000; // 1990-01-01
const MAX_EPOCH_S: i64 = 7_258_118_400; // 2200-01-01

/// A parsed time, kept only inside the accepted 1990–2200 window (the same
/// window as epochs, so a text time cannot smuggle in a year 1970 or 9999).
fn in_range(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (MIN_EPOCH_S..MAX_EPOCH_S)
        .contains(&t.timestamp())
        .then_some(t)
}

/// Epoch seconds, ms, µs or ns, told apart by magnitude.
pub fn from_epoch(v: f64) -> Option<DateTime<Utc>> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let (secs, nanos) = if v >= 1e17 {
        ((v / 1e9).trunc(), (v % 1e9))
    } else if v >= 1e14 {
        ((v / 1e6).trunc(), (v % 1e6) * 1e3)
    } else if v >= 1e11 {
        ((v / 1e3).trunc(), (v % 1e3) * 1e6)
    } else {
        (v.trunc(), v.fract() * 1e9)
    };
    let secs = secs as i64;
    if !(MIN_EPOCH_S..MAX_EPOCH_S).contains(&secs) {
        return None;
    }
    DateTime::from_timestamp(secs, nanos.max(0.0) as u32)
}

/// Epoch in a string (`"1686411388123"`, `"1686411388.5"`).
pub fn from_epoch_str(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim_ascii();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        // Integers go through exact arithmetic where they can.
        return from_epoch_int(i);
    }
    from_epoch(s.parse().ok()?)
}

fn from_epoch_int(v: i64) -> Option<DateTime<Utc>> {
    let (secs, nanos) = if v >= 100_000_000_000_000_000 {
        (v / 1_000_000_000, v % 1_000_000_000)
    } else if v >= 100_000_000_000_000 {
        (v / 1_000_000, (v % 1_000_000) * 1_000)
    } else if v >= 100_000_000_000 {
        (v / 1_000, (v % 1_000) * 1_000_000)
    } else {
        (v, 0)
    };
    if !(MIN_EPOCH_S..MAX_EPOCH_S).contains(&secs) {
        return None;
    }
    DateTime::from_timestamp(secs, nanos as u32)
}

fn month(m: &[u8]) -> Option<u32> {
    if m.len() != 3 {
        return None;
    }
    let l = [
        m[0].to_ascii_lowercase(),
        m[1].to_ascii_lowercase(),
        m[2].to_ascii_lowercase(),
    ];
    Some(match &l {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
}

/// `HH:MM:SS` with optional `.fff` fraction → (h, m, s, nanos).
fn hms(b: &[u8]) -> Option<(u32, u32, u32, u32)> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, s) = (num(&b[0..2])?, num(&b[3..5])?, num(&b[6..8])?);
    let mut nanos = 0;
    if b.len() > 8 {
        if b[8] != b'.' || b.len() > 18 || b.len() == 9 {
            return None;
        }
        let frac = &b[9..];
        if !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut n: u32 = frac.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0'));
        for _ in frac.len()..9 {
            n *= 10;
        }
        nanos = n;
    }
    Some((h, m, s, nanos))
}

fn naive(y: u32, mo: u32, d: u32, (h, mi, s, n): (u32, u32, u32, u32)) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_hms_nano_opt(h, mi, s, n)
}

/// `+0000`, `-07:00`, `Z`.
fn offset(b: &[u8]) -> Option<FixedOffset> {
    if b == b"Z" || b == b"z" {
        return FixedOffset::east_opt(0);
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = &b[1..];
    let (h, m) = match rest.len() {
        4 => (num(&rest[0..2])?, num(&rest[2..4])?),
        5 if rest[2] == b':' => (num(&rest[0..2])?, num(&rest[3..5])?),
        2 => (num(rest)?, 0),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60) as i32)
}

/// CLF: `10/Jun/2023:15:36:28 +0000`.
pub fn parse_clf(s: &str) -> Option<DateTime<Utc>> {
    let b = s.trim_ascii().as_bytes();
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let d = num(&b[0..2])?;
    let mo = month(&b[3..6])?;
    let y = num(&b[7..11])?;
    let t = hms(&b[12..20])?;
    let rest = &b[20..];
    let off = if rest.is_empty() {
        FixedOffset::east_opt(0)?
    } else if rest[0] == b' ' {
        offset(&rest[1..])?
    } else {
        return None;
    };
    let nt = naive(y, mo, d, t)?;
    in_range(off.from_local_datetime(&nt).single()?.with_timezone(&Utc))
}

/// Zscaler and ZPA local times: `Mon Oct 16 22:55:48 2023` (weekday ignored,
/// days may be space-padded, weekday may be absent) or `2021-12-31 08:08:08`.
/// An ISO string with an offset is also accepted and then `tz` is not used.
pub fn parse_zscaler(s: &str, tz: &Tz) -> Option<DateTime<Utc>> {
    let s = s.trim_ascii();
    let b = s.as_bytes();
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && (b[10] == b' ' || b[10] == b'T') {
        let y = num(&b[0..4])?;
        let mo = num(&b[5..7])?;
        let d = num(&b[8..10])?;
        // Time, then an optional offset.
        let tail = &b[11..];
        let tend = tail
            .iter()
            .position(|c| matches!(c, b'Z' | b'z' | b'+' | b'-' | b' '))
            .unwrap_or(tail.len());
        let t = hms(&tail[..tend])?;
        let nt = naive(y, mo, d, t)?;
        let rest = tail[tend..].strip_prefix(b" ").unwrap_or(&tail[tend..]);
        if rest.is_empty() {
            return local(tz, &nt).and_then(in_range);
        }
        let off = offset(rest)?;
        return in_range(off.from_local_datetime(&nt).single()?.with_timezone(&Utc));
    }
    // The common shape, `Mon Oct 16 22:55:48 2023`, read at fixed offsets.
    if b.len() == 24 && b[3] == b' ' && b[7] == b' ' && b[10] == b' ' && b[19] == b' ' {
        if let (Some(mo), Some(d), Some(t), Some(y)) = (
            month(&b[4..7]),
            num(&b[8..10]),
            hms(&b[11..19]),
            num(&b[20..24]),
        ) {
            return local(tz, &naive(y, mo, d, t)?);
        }
    }
    let mut toks = s.split_ascii_whitespace();
    let mut first = toks.next()?.as_bytes();
    if first.len() == 3 && month(first).is_none() {
        // A weekday: ignored, whatever it says.
        first = toks.next()?.as_bytes();
    }
    let mo = month(first)?;
    let d = num(toks.next()?.as_bytes())?;
    let t = hms(toks.next()?.as_bytes())?;
    let y = num(toks.next()?.as_bytes())?;
    if toks.next().is_some() {
        return None;
    }
    local(tz, &naive(y, mo, d, t)?).and_then(in_range)
}

/// RFC 3339 / ISO 8601 with an offset.
pub fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim_ascii())
        .ok()
        .and_then(|d| in_range(d.with_timezone(&Utc)))
}

/// A local time in `tz`. In a DST fold the earlier instant is taken; in a gap
/// the time is read as if the clock had not jumped.
fn local(tz: &Tz, nt: &NaiveDateTime) -> Option<DateTime<Utc>> {
    if *tz == Tz::UTC {
        return Some(Utc.from_utc_datetime(nt));
    }
    match tz.from_local_datetime(nt) {
        chrono::LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(*nt + chrono::Duration::hours(1)))
            .earliest()
            .map(|d| d.with_timezone(&Utc) - chrono::Duration::hours(1)),
    }
}

/// A `tz` field: an IANA name (`America/New_York`), `UTC`/`GMT`, or an offset
/// such as `GMT-07:00`, `UTC+0530`, `+02:00`. Fixed offsets become `Etc/GMT±H`
/// zones when they are whole hours; other offsets are not supported by
/// `chrono-tz` and return `None` (the feed's zone is used then).
pub fn parse_tz(s: &str) -> Option<Tz> {
    let s = s.trim_ascii();
    if matches!(s, "GMT" | "UTC" | "Z" | "gmt" | "utc") {
        return Some(Tz::UTC);
    }
    if let Ok(tz) = s.parse::<Tz>() {
        return Some(tz);
    }
    let rest = s
        .strip_prefix("GMT")
        .or_else(|| s.strip_prefix("UTC"))
        .unwrap_or(s);
    if rest.is_empty() {
        return Some(Tz::UTC);
    }
    let off = offset(rest.as_bytes())?;
    let secs = off.local_minus_utc();
    if secs % 3600 != 0 {
        return None;
    }
    let h = secs / 3600;
    // Etc/GMT zones have inverted signs: Etc/GMT+7 is UTC-7.
    let name = match h.cmp(&0) {
        std::cmp::Ordering::Equal => "Etc/GMT".to_owned(),
        std::cmp::Ordering::Greater => format!("Etc/GMT-{h}"),
        std::cmp::Ordering::Less => format!("Etc/GMT+{}", -h),
    };
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn clf() {
        assert_eq!(
            parse_clf("10/Jun/2023:15:36:28 +0000"),
            Some(utc("2023-06-10T15:36:28Z"))
        );
        assert_eq!(
            parse_clf("10/Jun/2023:15:36:28 -0700"),
            Some(utc("2023-06-10T22:36:28Z"))
        );
        assert_eq!(parse_clf("31/Feb/2023:15:36:28 +0000"), None);
        assert_eq!(parse_clf("10/Jux/2023:15:36:28 +0000"), None);
        assert_eq!(parse_clf("garbage"), None);
    }

    #[test]
    fn zscaler_shapes_and_wrong_weekdays() {
        let tz = Tz::UTC;
        assert_eq!(
            parse_zscaler("Mon Oct 16 22:55:48 2023", &tz),
            Some(utc("2023-10-16T22:55:48Z"))
        );
        // 2022-12-31 was a Saturday: the weekday is wrong and ignored.
        assert_eq!(
            parse_zscaler("Tue Dec  31 02:22:22 2022", &tz),
            Some(utc("2022-12-31T02:22:22Z"))
        );
        assert_eq!(
            parse_zscaler("2021-12-31 08:08:08", &tz),
            Some(utc("2021-12-31T08:08:08Z"))
        );
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            parse_zscaler("2021-12-31 08:08:08", &ny),
            Some(utc("2021-12-31T13:08:08Z"))
        );
        assert_eq!(parse_zscaler("Mon Foo 16 22:55:48 2023", &tz), None);
        assert_eq!(parse_zscaler("Mon Oct 16 25:55:48 2023", &tz), None);
    }

    #[test]
    fn text_times_outside_1990_to_2200_are_not_times() {
        let tz = Tz::UTC;
        assert_eq!(parse_clf("10/Jun/1970:15:36:28 +0000"), None);
        assert_eq!(parse_clf("10/Jun/2201:15:36:28 +0000"), None);
        assert_eq!(parse_zscaler("Mon Jan  1 00:00:00 1985", &tz), None);
        assert_eq!(parse_zscaler("1989-12-31 23:59:59", &tz), None);
        assert_eq!(parse_zscaler("9999-01-01T00:00:00Z", &tz), None);
        assert_eq!(parse_iso("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            parse_iso("1990-01-01T00:00:00Z"),
            Some(utc("1990-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn epochs_by_magnitude() {
        let want = utc("2023-06-10T15:36:28Z");
        assert_eq!(from_epoch_str("1686411388"), Some(want));
        assert_eq!(from_epoch_str("1686411388000"), Some(want));
        assert_eq!(from_epoch_str("1686411388000000"), Some(want));
        assert_eq!(from_epoch_str("1686411388000000000"), Some(want));
        assert_eq!(from_epoch(1686411388.0), Some(want));
        assert_eq!(from_epoch_str("12"), None);
        assert_eq!(from_epoch_str("-5"), None);
        assert_eq!(from_epoch(f64::NAN), None);
    }

    #[test]
    fn tz_fields() {
        assert_eq!(parse_tz("GMT"), Some(Tz::UTC));
        assert_eq!(parse_tz("UTC"), Some(Tz::UTC));
        assert_eq!(
            parse_tz("America/Los_Angeles"),
            Some(Tz::America__Los_Angeles)
        );
        assert_eq!(parse_tz("GMT-07:00"), Some(Tz::Etc__GMTPlus7));
        assert_eq!(parse_tz("UTC+0200"), Some(Tz::Etc__GMTMinus2));
        assert_eq!(parse_tz("Mars/Olympus"), None);
    }
}
