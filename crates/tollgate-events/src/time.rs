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

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
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

/// Eight ASCII digits (first byte most significant) as a number, or `None`
/// if any byte is not a digit: SWAR, a few multiplies for all eight.
#[inline(always)]
fn eight_digits(b: &[u8; 8]) -> Option<u64> {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let x = u64::from_le_bytes(*b);
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    if x & HIGH != ZEROS || (x.wrapping_add(0x0606_0606_0606_0606)) & HIGH != ZEROS {
        return None;
    }
    let mut v = x - ZEROS;
    v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    Some((v * 10_000 + (v >> 32)) & 0xffff_ffff)
}

/// Epoch in a string (`"1686411388123"`, `"1686411388.5"`).
#[cfg(test)]
pub fn from_epoch_str(s: &str) -> Option<DateTime<Utc>> {
    from_epoch_str_in(s, &mut DayMemo::default())
}

/// [`from_epoch_str`], with the date read through `memo`.
pub fn from_epoch_str_in(s: &str, memo: &mut DayMemo) -> Option<DateTime<Utc>> {
    let s = s.trim_ascii();
    // 9 to 16 digits (seconds to microseconds): two overlapping SWAR reads.
    if let (9..=16, Some(hi), Some(lo)) = (
        s.len(),
        s.as_bytes().first_chunk::<8>(),
        s.as_bytes().last_chunk::<8>(),
    ) {
        if let (Some(hi), Some(lo)) = (eight_digits(hi), eight_digits(lo)) {
            const SCALE: [u64; 9] = [
                1,
                10,
                100,
                1_000,
                10_000,
                100_000,
                1_000_000,
                10_000_000,
                100_000_000,
            ];
            let scale = SCALE[s.len() - 8];
            return from_epoch_int((hi * scale + lo % scale) as i64, memo);
        }
    }
    // The common case, up to 18 digits (every such string is an `i64`),
    // read in the same pass that checks the characters.
    let mut n: i64 = 0;
    let mut digits_only = true;
    for &b in s.as_bytes() {
        if b.is_ascii_digit() {
            n = n.wrapping_mul(10).wrapping_add(i64::from(b - b'0'));
        } else if b == b'.' {
            digits_only = false;
        } else {
            return None;
        }
    }
    if s.is_empty() {
        return None;
    }
    if digits_only && s.len() <= 18 {
        return from_epoch_int(n, memo);
    }
    if let Ok(i) = s.parse::<i64>() {
        // Integers go through exact arithmetic where they can.
        return from_epoch_int(i, memo);
    }
    from_epoch(s.parse().ok()?)
}

fn from_epoch_int(v: i64, memo: &mut DayMemo) -> Option<DateTime<Utc>> {
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
    memo.at(secs, nanos as u32)
}

/// The date of the last times read, and of the last CLF date text: a feed's
/// records come in time order, so most share their date with the record
/// before, and reading it again is most of the cost of a time. Remembers
/// only what pure functions gave, so a time reads the same with or without
/// it.
#[derive(Debug, Default, Clone, Copy)]
pub struct DayMemo {
    /// Days since the epoch of the last [`DayMemo::at`], and its date.
    day: i64,
    date: NaiveDate,
    /// The last CLF date text (`10/Jun/2023`) that was a date, its days
    /// since the epoch, and whether its year is inside 1991–2198.
    clf: Option<([u8; 11], i64, bool)>,
}

impl DayMemo {
    /// `DateTime::from_timestamp(secs, nanos)` (as chrono computes it), the
    /// date remembered.
    #[inline]
    pub fn at(&mut self, secs: i64, nanos: u32) -> Option<DateTime<Utc>> {
        let (day, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // The default memo holds day 0, 1970-01-01: it is always coherent.
        if day != self.day {
            // Days since 0001-01-01 (day 1), as `from_timestamp` counts.
            const UNIX_EPOCH_DAY: i64 = 719_163;
            let ce = i32::try_from(day + UNIX_EPOCH_DAY).ok()?;
            self.date = NaiveDate::from_num_days_from_ce_opt(ce)?;
            self.day = day;
        }
        let time = NaiveTime::from_num_seconds_from_midnight_opt(sod as u32, nanos)?;
        Some(self.date.and_time(time).and_utc())
    }
}

fn month(m: &[u8]) -> Option<u32> {
    const fn tri(s: &[u8; 3]) -> u32 {
        s[0] as u32 | (s[1] as u32) << 8 | (s[2] as u32) << 16
    }
    const JAN: u32 = tri(b"jan");
    const FEB: u32 = tri(b"feb");
    const MAR: u32 = tri(b"mar");
    const APR: u32 = tri(b"apr");
    const MAY: u32 = tri(b"may");
    const JUN: u32 = tri(b"jun");
    const JUL: u32 = tri(b"jul");
    const AUG: u32 = tri(b"aug");
    const SEP: u32 = tri(b"sep");
    const OCT: u32 = tri(b"oct");
    const NOV: u32 = tri(b"nov");
    const DEC: u32 = tri(b"dec");
    let [a, b, c] = m else {
        return None;
    };
    // `| 0x20` lower-cases letters, and makes a letter of nothing else.
    Some(match tri(&[a | 0x20, b | 0x20, c | 0x20]) {
        JAN => 1,
        FEB => 2,
        MAR => 3,
        APR => 4,
        MAY => 5,
        JUN => 6,
        JUL => 7,
        AUG => 8,
        SEP => 9,
        OCT => 10,
        NOV => 11,
        DEC => 12,
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
    let (h, m, s) = hh_mm_ss(b.first_chunk::<8>()?)?;
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

/// `HH:MM:SS` (two digits each) in one word: what three [`num`] reads
/// give, for a tenth of the work.
#[inline(always)]
fn hh_mm_ss(b: &[u8; 8]) -> Option<(u32, u32, u32)> {
    // Little-endian: byte i of the word is b[i]; colons at 2 and 5.
    const DIGITS: u64 = 0xffff_00ff_ff00_ffff;
    const TEMPLATE: u64 = u64::from_le_bytes(*b"00:00:00");
    let x = u64::from_le_bytes(*b);
    // The colons are colons, and the other bytes are 0x30..=0x39: high
    // nibble 3, and still 3 after adding 6.
    if (x ^ TEMPLATE) & !DIGITS != 0
        || x & DIGITS & 0xf0f0_f0f0_f0f0_f0f0 != TEMPLATE & DIGITS & 0xf0f0_f0f0_f0f0_f0f0
        || (x & DIGITS).wrapping_add(0x0606_0006_0600_0606) & DIGITS & 0xf0f0_f0f0_f0f0_f0f0
            != TEMPLATE & DIGITS & 0xf0f0_f0f0_f0f0_f0f0
    {
        return None;
    }
    let v = (x - TEMPLATE) & DIGITS;
    // Each pair's first digit × 10 plus its second, in the pair's first byte.
    let v = v * 10 + (v >> 8);
    Some((
        (v & 0xff) as u32,
        (v >> 24 & 0xff) as u32,
        (v >> 48 & 0xff) as u32,
    ))
}

fn naive(y: u32, mo: u32, d: u32, (h, mi, s, n): (u32, u32, u32, u32)) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_hms_nano_opt(h, mi, s, n)
}

/// The instant of a local date and time `off` seconds east of UTC: `naive`
/// read in `FixedOffset::east_opt(off)` (`off` less than a day either way),
/// without the offset arithmetic when `off` is 0, the common case.
fn instant(y: u32, mo: u32, d: u32, t: (u32, u32, u32, u32), off: i32) -> Option<DateTime<Utc>> {
    let nt = naive(y, mo, d, t)?;
    if off == 0 {
        return Some(Utc.from_utc_datetime(&nt));
    }
    Some(
        FixedOffset::east_opt(off)?
            .from_local_datetime(&nt)
            .single()?
            .with_timezone(&Utc),
    )
}

/// Two ASCII digits at `b[i..i + 2]`.
#[inline]
fn d2(b: &[u8], i: usize) -> Option<u32> {
    let (h, l) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (h < 10 && l < 10).then(|| u32::from(h) * 10 + u32::from(l))
}

/// `+0000`, `-07:00`, `Z`.
fn offset(b: &[u8]) -> Option<FixedOffset> {
    FixedOffset::east_opt(offset_secs(b)?)
}

/// [`offset`] in seconds east of UTC (less than a day either way).
fn offset_secs(b: &[u8]) -> Option<i32> {
    if b == b"+0000" || b == b"Z" || b == b"z" {
        return Some(0);
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
    Some(sign * (h * 3600 + m * 60) as i32)
}

/// CLF: `10/Jun/2023:15:36:28 +0000`.
#[cfg(test)]
pub fn parse_clf(s: &str) -> Option<DateTime<Utc>> {
    parse_clf_in(s, &mut DayMemo::default())
}

/// [`parse_clf`], with the date read through `memo`.
pub fn parse_clf_in(s: &str, memo: &mut DayMemo) -> Option<DateTime<Utc>> {
    let b = s.trim_ascii().as_bytes();
    if let Some(secs) = clf_fixed(b, memo) {
        return memo.at(secs?, 0);
    }
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let d = num(&b[0..2])?;
    let mo = month(&b[3..6])?;
    let y = num(&b[7..11])?;
    let t = hms(&b[12..20])?;
    let rest = &b[20..];
    let off = if rest.is_empty() {
        0
    } else if rest[0] == b' ' {
        offset_secs(&rest[1..])?
    } else {
        return None;
    };
    in_range(instant(y, mo, d, t, off)?)
}

/// The seconds since the epoch of a CLF time in the shape API Gateway
/// writes (what [`parse_clf`] gives it, as a number); `None` for any other
/// string. The decoder compares it with the epoch time without building a
/// `DateTime`.
pub fn clf_secs(s: &str, memo: &mut DayMemo) -> Option<i64> {
    clf_fixed(s.trim_ascii().as_bytes(), memo).flatten()
}

/// [`parse_clf`] of the shape API Gateway writes (`10/Jun/2023:15:36:28
/// +0000`, 26 bytes), read at fixed offsets, in seconds since the epoch:
/// `None` if `b` is not in that shape, `Some(None)` if it is but is not a
/// time (in the accepted window).
#[inline]
fn clf_fixed(b: &[u8], memo: &mut DayMemo) -> Option<Option<i64>> {
    if b.len() != 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let mut read = || {
        let date: [u8; 11] = b[..11].try_into().expect("11 bytes");
        let (day, usual_year) = match memo.clf {
            Some((text, day, usual)) if text == date => (day, usual),
            _ => {
                let (d, mo) = (d2(b, 0)?, month(&b[3..6])?);
                let y = d2(b, 7)? * 100 + d2(b, 9)?;
                let day = civil_day(y, mo, d)?;
                let usual = (1991..=2198).contains(&y);
                memo.clf = Some((date, day, usual));
                (day, usual)
            }
        };
        let (h, mi, s) = hh_mm_ss(b[12..20].try_into().expect("8 bytes"))?;
        if h > 23 || mi > 59 || s > 59 {
            return None;
        }
        // API Gateway writes UTC.
        let off = match &b[21..] {
            b"+0000" => 0,
            off => i64::from(offset_secs(off)?),
        };
        let at = day * 86_400 + i64::from(h * 3600 + mi * 60 + s) - off;
        // Less than a day off local time: inside the window for the usual
        // years.
        (usual_year || (MIN_EPOCH_S..MAX_EPOCH_S).contains(&at)).then_some(at)
    };
    Some(read())
}

/// Days since the epoch of a date (year at most 9999), checked as chrono
/// checks it (`None` if the month has no such day): plain arithmetic
/// (H. Hinnant's days from the civil date) rather than chrono's calendar.
fn civil_day(y: u32, mo: u32, d: u32) -> Option<i64> {
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let month_days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y > 9999 || !(1..=month_days).contains(&d) {
        return None;
    }
    // Years start in March, so that the leap day is the last of the year.
    let y = i64::from(y) - i64::from(mo <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = i64::from((153 * ((mo + 9) % 12) + 2) / 5 + d - 1);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
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
            if *tz == Tz::UTC {
                return instant(y, mo, d, t, 0);
            }
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

    /// The fixed-offset CLF reading against the general one.
    #[test]
    fn clf_fast_path_agrees() {
        let general = |s: &str| -> Option<DateTime<Utc>> {
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
        };
        let mut memo = DayMemo::default();
        let base = b"10/Jun/2023:15:36:28 +0000";
        let subs: &[u8] = b"0123456789+-:/ aJnZz\xff";
        for i in 0..base.len() {
            for &c in subs {
                let mut v = base.to_vec();
                v[i] = c;
                if let Ok(s) = std::str::from_utf8(&v) {
                    assert_eq!(parse_clf(s), general(s), "{s}");
                    // Through a memo that has seen the times before.
                    assert_eq!(parse_clf_in(s, &mut memo), general(s), "{s}");
                    if let Some(secs) = clf_secs(s, &mut memo) {
                        assert_eq!(Some(secs), general(s).map(|t| t.timestamp()), "{s}");
                    }
                }
            }
        }
        for s in [
            "29/Feb/2024:23:59:59 -2359",
            "29/Feb/2023:00:00:00 +0000",
            "31/Apr/2023:00:00:00 +0000",
            "01/Jan/1990:00:00:00 +0100",
            "31/Dec/2199:23:59:59 -0100",
            "00/Jan/2023:00:00:00 +0000",
            "10/jun/2023:15:36:28 +00:00",
            "10/JUN/2023:24:00:00 +0000",
            "10/Jun/2023:15:60:28 +0000",
        ] {
            assert_eq!(parse_clf(s), general(s), "{s}");
            assert_eq!(parse_clf_in(s, &mut memo), general(s), "{s}");
            if s.len() == 26 {
                let secs = clf_secs(s, &mut memo);
                assert_eq!(secs, general(s).map(|t| t.timestamp()), "{s}");
            }
        }
    }

    #[test]
    fn months_read_in_any_case_and_nothing_else() {
        let names = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        for a in 0..=255u8 {
            for b in [b'a', b'A', b'e', b'E', b'u', b'@', b'`', 0xc3] {
                for c in [
                    b'n', b'N', b'b', b'r', b'y', b'l', b'g', b'p', b't', b'v', b'c', b'.',
                ] {
                    let m = [a, b, c];
                    let want = names
                        .iter()
                        .position(|n| n.as_bytes() == m.to_ascii_lowercase())
                        .map(|i| i as u32 + 1);
                    assert_eq!(month(&m), want, "{m:?}");
                }
            }
        }
        assert_eq!(month(b"ja"), None);
        assert_eq!(month(b"janu"), None);
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

    /// `instant` against chrono, over valid and invalid dates, times and
    /// offsets.
    #[test]
    fn instants_agree_with_chrono() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as u32
        };
        for i in 0..200_000 {
            let y = match i % 4 {
                0 => next(10_000),
                1 => 1900 + next(400),
                2 => [0, 4, 100, 400, 1900, 2000, 2100, 2400, 9999][next(9) as usize],
                _ => 1968 + next(8),
            };
            let (mo, d) = (next(14), next(33));
            let t = (next(25), next(61), next(61), next(2) * next(1_000_000_000));
            let off = next(86_399 * 2) as i32 - 86_399;
            let want = naive(y, mo, d, t).and_then(|nt| {
                FixedOffset::east_opt(off)?
                    .from_local_datetime(&nt)
                    .single()
                    .map(|d| d.with_timezone(&Utc))
            });
            assert_eq!(instant(y, mo, d, t, off), want, "{y}-{mo}-{d} {t:?} {off}");
            assert_eq!(
                civil_day(y, mo, d),
                NaiveDate::from_ymd_opt(y as i32, mo, d)
                    .map(|d| d.signed_duration_since(NaiveDate::default()).num_days()),
                "{y}-{mo}-{d}"
            );
            if i % 3 == 0 {
                assert_eq!(
                    instant(y, mo, d, t, 0),
                    naive(y, mo, d, t).map(|nt| nt.and_utc())
                );
            }
        }
    }

    #[test]
    fn hh_mm_ss_reads_like_three_nums() {
        let general = |b: &[u8; 8]| -> Option<(u32, u32, u32)> {
            if b[2] != b':' || b[5] != b':' {
                return None;
            }
            Some((num(&b[0..2])?, num(&b[3..5])?, num(&b[6..8])?))
        };
        let base = *b"15:36:28";
        let subs = [
            b'0', b'5', b'9', b':', b'/', b';', b'@', b' ', 0x00, 0xff, 0x3a, 0x2f, b'a',
        ];
        for i in 0..8 {
            for &c in &subs {
                for j in 0..8 {
                    for &d in b"09:." {
                        let mut b = base;
                        b[i] = c;
                        b[j] = d;
                        assert_eq!(hh_mm_ss(&b), general(&b), "{b:?}");
                    }
                }
            }
        }
        assert_eq!(hh_mm_ss(b"99:99:99"), Some((99, 99, 99)));
        assert_eq!(hh_mm_ss(b"00:00:00"), Some((0, 0, 0)));
    }

    #[test]
    fn eight_digits_read_like_parse() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for i in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = *format!("{:08}", x % 100_000_000)
                .as_bytes()
                .first_chunk::<8>()
                .unwrap();
            if i % 2 == 0 {
                b[(x >> 40) as usize % 8] = (x >> 48) as u8;
            }
            let want = std::str::from_utf8(&b)
                .ok()
                .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            assert_eq!(eight_digits(&b), want, "{b:?}");
        }
        for b in [
            *b"00000000",
            *b"99999999",
            *b"/0000000",
            *b"0000000:",
            *b"12345678",
        ] {
            let want = std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            assert_eq!(eight_digits(&b), want, "{b:?}");
        }
    }

    #[test]
    fn epoch_strings_agree_with_the_general_reading() {
        let mut memo = DayMemo::default();
        let general = |s: &str| -> Option<DateTime<Utc>> {
            let s = s.trim_ascii();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return None;
            }
            if let Ok(i) = s.parse::<i64>() {
                return from_epoch_int(i, &mut DayMemo::default());
            }
            from_epoch(s.parse().ok()?)
        };
        for s in [
            "",
            " ",
            "0",
            "1686411388",
            " 1686411388 ",
            "1686411388000",
            "01686411388",
            "1686411388000000",
            "1686411388000000000",
            "9223372036854775807",
            "9223372036854775808",
            "99999999999999999999",
            "168641138800000000",
            "1686411388.5",
            "1686411388.",
            ".5",
            "1.2.3",
            "-5",
            "+5",
            "12a",
            "631152000",
            "631151999",
            "7258118399",
            "7258118400",
            "000000000000000000001686411388",
            "123456789",
            "1686411388000000",
            "16864113880000000",
            "168641138800000a",
            "a686411388",
            "1686411388.00",
            "0000000000000000",
            "99999999999999999",
            "1686 11388",
        ] {
            assert_eq!(from_epoch_str(s), general(s), "{s:?}");
            assert_eq!(from_epoch_str_in(s, &mut memo), general(s), "{s:?}");
        }
    }

    /// A memo's date is that of the last time read, whatever came before.
    #[test]
    fn memo_dates_are_chronos() {
        let mut memo = DayMemo::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of nearby times, with jumps, either side of midnight.
            let secs = if i % 50 == 0 {
                MIN_EPOCH_S + (x % (MAX_EPOCH_S - MIN_EPOCH_S) as u64) as i64
            } else {
                1_686_441_600 + (x % 4000) as i64 - 2000
            };
            let nanos = [0, 1, 999_999_999, 1_000_000_000, 1_500_000_000][i % 5];
            assert_eq!(
                memo.at(secs, nanos),
                DateTime::from_timestamp(secs, nanos),
                "{secs} {nanos}"
            );
        }
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
