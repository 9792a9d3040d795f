//! Vendor timestamp text from epoch milliseconds, without allocation:
//! API Gateway CLF (`10/Jun/2023:15:36:28 +0000`) and Zscaler NSS
//! (`Mon Oct 16 22:55:48 2023`). All output is UTC; the simulated feeds are
//! configured for GMT. Parsing is the decoder's job, not this module's.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32, // 1..=12
    pub day: u32,   // 1..=31
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub weekday: usize, // index into WEEKDAYS
}

impl Civil {
    pub(crate) fn from_ms(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's days_from_civil inverse.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            weekday: days.rem_euclid(7) as usize,
        }
    }
}

fn push2(out: &mut String, v: u32) {
    out.push((b'0' + (v / 10 % 10) as u8) as char);
    out.push((b'0' + (v % 10) as u8) as char);
}

fn push_hms(out: &mut String, c: &Civil) {
    push2(out, c.hour);
    out.push(':');
    push2(out, c.minute);
    out.push(':');
    push2(out, c.second);
}

/// `10/Jun/2023:15:36:28 +0000`
pub(crate) fn push_clf(out: &mut String, ms: i64) {
    let c = Civil::from_ms(ms);
    push2(out, c.day);
    out.push('/');
    out.push_str(MONTHS[c.month as usize - 1]);
    out.push('/');
    out.push_str(itoa::Buffer::new().format(c.year));
    out.push(':');
    push_hms(out, &c);
    out.push_str(" +0000");
}

/// `Mon Oct 16 22:55:48 2023`; with `pad_day_with_space` the day is
/// space-padded (`Mon Oct  6 …`) as some NSS feeds print it, else zero-padded.
pub(crate) fn push_nss(out: &mut String, ms: i64, pad_day_with_space: bool) {
    let c = Civil::from_ms(ms);
    out.push_str(WEEKDAYS[c.weekday]);
    out.push(' ');
    out.push_str(MONTHS[c.month as usize - 1]);
    out.push(' ');
    if pad_day_with_space && c.day < 10 {
        out.push(' ');
        out.push((b'0' + c.day as u8) as char);
    } else {
        push2(out, c.day);
    }
    out.push(' ');
    push_hms(out, &c);
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(c.year));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn chrono_fmt(ms: i64, f: &str) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .format(f)
            .to_string()
    }

    #[test]
    fn matches_chrono_over_a_span_of_dates() {
        // Every ~7.3 hours from 1999 to 2031, including leap days.
        let mut ms = 915_148_800_000i64;
        while ms < 1_924_992_000_000 {
            let mut clf = String::new();
            push_clf(&mut clf, ms);
            assert_eq!(clf, chrono_fmt(ms, "%d/%b/%Y:%H:%M:%S +0000"));
            let mut nss = String::new();
            push_nss(&mut nss, ms, false);
            assert_eq!(nss, chrono_fmt(ms, "%a %b %d %H:%M:%S %Y"));
            let mut nss_e = String::new();
            push_nss(&mut nss_e, ms, true);
            assert_eq!(nss_e, chrono_fmt(ms, "%a %b %e %H:%M:%S %Y"));
            ms += 26_345_123;
        }
    }

    #[test]
    fn known_vendor_examples() {
        let mut s = String::new();
        push_clf(&mut s, 1_686_411_388_000);
        assert_eq!(s, "10/Jun/2023:15:36:28 +0000");
        let mut s = String::new();
        push_nss(&mut s, 1_697_496_948_000, false);
        assert_eq!(s, "Mon Oct 16 22:55:48 2023");
    }
}
