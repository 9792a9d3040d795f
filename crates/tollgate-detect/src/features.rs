//! Per-event feature extraction: the stateless half of featurizing.
//!
//! [`featurize`] turns one [`Event`] into a fixed-size, `Copy` [`Features`]
//! value without allocating: strings are hashed (with [`crate::hash`], seeded
//! per feature kind) rather than copied, numbers are log-scaled. The stateful
//! features (per-principal rates over sliding windows, first-seen flags) are
//! filled in by the tenant model, which owns the state they need. Labels for
//! explanations are recomputed from the event only when an alert is built.

use std::net::IpAddr;

use chrono::{Offset, TimeZone};
use memchr::memmem;
use tollgate_events::{Event, Source};

use crate::hash::{hash_bytes, hash_lower, hash_u64, mix2};

/// Seeds that namespace each hashed feature.
pub(crate) mod seed {
    pub const ISSUER: u64 = 0x1001;
    pub const PRINCIPAL: u64 = 0x1002;
    pub const NET: u64 = 0x1003;
    pub const UA: u64 = 0x1004;
    pub const DOMAIN: u64 = 0x1005;
    pub const SIGNATURE: u64 = 0x1006;
    pub const QNAME: u64 = 0x1007;
    pub const ROUTE: u64 = 0x1008;
}

/// Coarse response-content buckets for the egress signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentBucket {
    None,
    Html,
    Json,
    Text,
    Image,
    Media,
    Binary,
    Form,
    Script,
    Other,
}

/// Client software family, from the user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UaFamily {
    Edge,
    Opera,
    Chrome,
    Firefox,
    Safari,
    Curl,
    Wget,
    PythonRequests,
    Python,
    Okhttp,
    GoHttp,
    Java,
    Postman,
    AwsSdk,
    Node,
    Other,
}

impl UaFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            UaFamily::Edge => "Edge",
            UaFamily::Opera => "Opera",
            UaFamily::Chrome => "Chrome",
            UaFamily::Firefox => "Firefox",
            UaFamily::Safari => "Safari",
            UaFamily::Curl => "curl",
            UaFamily::Wget => "Wget",
            UaFamily::PythonRequests => "python-requests",
            UaFamily::Python => "Python",
            UaFamily::Okhttp => "okhttp",
            UaFamily::GoHttp => "Go-http-client",
            UaFamily::Java => "Java",
            UaFamily::Postman => "PostmanRuntime",
            UaFamily::AwsSdk => "aws-sdk",
            UaFamily::Node => "node",
            UaFamily::Other => "other",
        }
    }
}

/// Operating system family, from the user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsFamily {
    Windows,
    Mac,
    Ios,
    Android,
    Linux,
    Unknown,
}

impl OsFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Windows => "Windows",
            OsFamily::Mac => "macOS",
            OsFamily::Ios => "iOS",
            OsFamily::Android => "Android",
            OsFamily::Linux => "Linux",
            OsFamily::Unknown => "unknown OS",
        }
    }
}

/// Classify a user agent into (family, OS, key hash). Unknown families are
/// keyed by their first product token so two unknown tools stay distinct.
pub fn ua_family(ua: &str) -> (UaFamily, OsFamily, u64) {
    let b = ua.as_bytes();
    let has = |n: &str| memmem::find(b, n.as_bytes()).is_some();
    let fam = if has("Edg/") || has("Edge/") {
        UaFamily::Edge
    } else if has("OPR/") {
        UaFamily::Opera
    } else if has("Chrome/") || has("CriOS/") {
        UaFamily::Chrome
    } else if has("Firefox/") || has("FxiOS/") {
        UaFamily::Firefox
    } else if has("Safari/") {
        UaFamily::Safari
    } else if b.starts_with(b"curl/") {
        UaFamily::Curl
    } else if b.starts_with(b"Wget") {
        UaFamily::Wget
    } else if has("python-requests") {
        UaFamily::PythonRequests
    } else if has("Python") || has("python") || has("aiohttp") {
        UaFamily::Python
    } else if has("okhttp") {
        UaFamily::Okhttp
    } else if b.starts_with(b"Go-http-client") {
        UaFamily::GoHttp
    } else if b.starts_with(b"Java") || has("Apache-HttpClient") {
        UaFamily::Java
    } else if b.starts_with(b"PostmanRuntime") {
        UaFamily::Postman
    } else if has("aws-sdk") || has("Boto3") || has("aws-cli") || has("Botocore") {
        UaFamily::AwsSdk
    } else if has("node-fetch") || has("axios") || b.starts_with(b"node") {
        UaFamily::Node
    } else {
        UaFamily::Other
    };
    let os = if has("Windows") {
        OsFamily::Windows
    } else if has("iPhone") || has("iPad") {
        OsFamily::Ios
    } else if has("Android") {
        OsFamily::Android
    } else if has("Mac OS X") || has("Macintosh") {
        OsFamily::Mac
    } else if has("Linux") || has("X11") {
        OsFamily::Linux
    } else {
        OsFamily::Unknown
    };
    let base = if fam == UaFamily::Other {
        let end = b
            .iter()
            .position(|&c| c == b'/' || c == b' ')
            .unwrap_or(b.len())
            .min(32);
        hash_bytes(seed::UA, &b[..end])
    } else {
        hash_u64(seed::UA, fam as u64 + 1)
    };
    (fam, os, mix2(base, os as u64))
}

/// The client network: /24 for IPv4, /48 for IPv6, hashed; plus a label.
pub fn network_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash_u64(seed::NET, u64::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut w = [0u8; 8];
            w[..6].copy_from_slice(&o[..6]);
            hash_u64(seed::NET ^ 0x66, u64::from_le_bytes(w))
        }
    }
}

/// A printable network label (`10.1.2.0/24`, `2001:db8:1::/48`), for
/// explanations only.
pub fn network_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// The registrable domain ("eTLD+1") of a host, via the public suffix list;
/// the host itself when it has none (an IP literal, a single label).
pub fn registrable_domain(host: &str) -> &str {
    let h = host.strip_suffix('.').unwrap_or(host);
    match psl::domain(h.as_bytes()) {
        Some(d) => {
            let n = d.as_bytes().len();
            &h[h.len() - n..]
        }
        None => h,
    }
}

/// The shortest subdomain (left of the registrable domain) a DNS name
/// must have to be judged as a tunnelling candidate; shorter ones carry
/// too few bytes per query to tunnel through, and their entropy is not
/// computed.
pub const TUNNEL_MIN_SUB_LEN: u16 = 12;

/// Shannon entropy (bits per byte) of a string, 0 for an empty one:
/// log2 n − Σ c·log2 c / n over the counts c of its distinct bytes.
pub fn shannon_entropy(b: &[u8]) -> f32 {
    if b.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    // the distinct bytes, in order of first appearance: a label has a few
    // dozen at most, so summing over them beats scanning all 256 counts
    let mut distinct = [0u8; 256];
    let mut k = 0;
    for &c in b {
        if counts[c as usize] == 0 {
            distinct[k] = c;
            k += 1;
        }
        counts[c as usize] += 1;
    }
    let n = b.len() as f64;
    let mut sum = 0.0;
    for &c in &distinct[..k] {
        let c = f64::from(counts[c as usize]);
        if c > 1.0 {
            sum += c * c.log2();
        }
    }
    (n.log2() - sum / n).max(0.0) as f32
}

fn content_bucket(ct: Option<&str>) -> ContentBucket {
    let Some(ct) = ct else {
        return ContentBucket::None;
    };
    let b = ct.as_bytes();
    let starts = |p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"text/html") {
        ContentBucket::Html
    } else if starts(b"application/json") || memmem::find(b, b"+json").is_some() {
        ContentBucket::Json
    } else if starts(b"text/javascript") || starts(b"application/javascript") {
        ContentBucket::Script
    } else if starts(b"text/") {
        ContentBucket::Text
    } else if starts(b"image/") {
        ContentBucket::Image
    } else if starts(b"video/") || starts(b"audio/") {
        ContentBucket::Media
    } else if starts(b"multipart/") || starts(b"application/x-www-form-urlencoded") {
        ContentBucket::Form
    } else if starts(b"application/octet-stream")
        || starts(b"application/zip")
        || starts(b"application/x-")
    {
        ContentBucket::Binary
    } else {
        ContentBucket::Other
    }
}

/// ASCII case-insensitive substring test without allocating, for a
/// non-empty lowercase ASCII-letter-led `needle`. Every event's route, app
/// and principal are searched for "admin", so this is on the hot path: it
/// looks for the needle's first letter eight bytes at a time (SWAR: each
/// byte `| 0x20`, which folds exactly 'A' onto 'a', XOR the letter, then the
/// zero-byte test) and compares the whole needle only where the letter
/// stands. The zero-byte test never misses a match; it may flag a byte just
/// above a real one, which the comparison then rejects. (A byte-at-a-time
/// loop took ~5 instructions a byte; `memchr2`'s set-up costs more than
/// these short strings.)
pub(crate) fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let h = hay.as_bytes();
    let Some(&first) = needle.first() else {
        return true;
    };
    debug_assert!(
        first.is_ascii_lowercase(),
        "the needle leads with a lowercase letter"
    );
    let n = needle.len();
    let Some(last) = h.len().checked_sub(n) else {
        return false;
    };
    let at = |i: usize| h[i..i + n].eq_ignore_ascii_case(needle);
    let letter = LO * u64::from(first);
    let mut base = 0;
    while base <= last && h.len() - base >= 8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[base..base + 8]);
        let y = (u64::from_le_bytes(w) | (LO * 0x20)) ^ letter;
        let mut m = y.wrapping_sub(LO) & !y & HI;
        while m != 0 {
            let i = base + (m.trailing_zeros() / 8) as usize;
            if i > last {
                // candidates only grow from here
                return false;
            }
            if at(i) {
                return true;
            }
            m &= m - 1;
        }
        base += 8;
    }
    (base..=last).any(|i| (h[i] | 0x20) == first && at(i))
}

/// The stateless features of one event. Hash fields are `0` when the event
/// did not carry the field; numeric fields are `NaN` when missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    pub source: Source,
    /// Event time in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Hour of the week in the tenant's time zone, 0 = Monday 00:00–00:59.
    pub hour_of_week: u8,
    pub issuer: u64,
    pub principal: u64,
    /// Client network (/24 or /48).
    pub client_net: u64,
    /// User-agent family + OS.
    pub ua: u64,
    pub ua_family: UaFamily,
    /// Registrable domain of the destination (Zscaler, ZPA), or the
    /// destination /24 when only an IP is known.
    pub domain: u64,
    /// Compact egress signature: Zscaler (domain, URL category, app, method,
    /// content bucket, destination network); API Gateway (method, route,
    /// status class).
    pub signature: u64,
    /// API Gateway route (method + route), 0 elsewhere.
    pub route: u64,
    /// DNS: hash of the full query name; 0 elsewhere.
    pub qname: u64,
    /// DNS: length and entropy of the part left of the registrable domain
    /// (the entropy only where the length is at least
    /// [`TUNNEL_MIN_SUB_LEN`], the shortest a tunnelling candidate has; 0
    /// for shorter ones).
    pub sub_len: u16,
    pub sub_entropy: f32,
    /// HTTP status class 1..=5, 0 if none.
    pub status_class: u8,
    pub auth_failure: bool,
    pub not_found: bool,
    /// Status >= 400, or a gateway that blocked.
    pub error: bool,
    /// Route, app or principal names administration.
    pub admin: bool,
    pub ln_bytes_in: f32,
    pub ln_bytes_out: f32,
    pub ln_latency: f32,
    /// Raw bytes out (0 when missing), for volume sums.
    pub bytes_out: u64,
}

/// A memo of pure string classifications (user-agent family, registrable
/// domain), shared by all tenants of an engine. It holds no tenant data that
/// could change a result: an entry is the output of a pure function of the
/// string whose 64-bit hash keys it, so scores are the same with or without
/// it. Direct-mapped, fixed size, never allocates after construction.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    ua: Vec<(u64, u64, UaFamily)>,
    domain: Vec<(u64, u64, u16)>,
}

const UA_CACHE: usize = 512;
const DOMAIN_CACHE: usize = 2048;

impl Default for FeatureCache {
    fn default() -> Self {
        FeatureCache {
            ua: vec![(0, 0, UaFamily::Other); UA_CACHE],
            domain: vec![(0, 0, 0); DOMAIN_CACHE],
        }
    }
}

impl FeatureCache {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn ua(&mut self, ua: &str) -> (u64, UaFamily) {
        let h = hash_bytes(0xcace, ua.as_bytes()) | 1;
        let slot = &mut self.ua[(h as usize) % UA_CACHE];
        if slot.0 == h {
            return (slot.1, slot.2);
        }
        let (f, _, k) = ua_family(ua);
        *slot = (h, k, f);
        (k, f)
    }

    /// (hash of the registrable domain, its length in bytes)
    #[inline]
    fn domain(&mut self, host: &str) -> (u64, usize) {
        let h = hash_lower(0xd0d0, host.as_bytes()) | 1;
        let slot = &mut self.domain[(h as usize) % DOMAIN_CACHE];
        if slot.0 == h {
            return (slot.1, usize::from(slot.2));
        }
        let reg = registrable_domain(host);
        let out = (hash_lower(seed::DOMAIN, reg.as_bytes()), reg.len());
        *slot = (h, out.0, out.1.min(usize::from(u16::MAX)) as u16);
        out
    }
}

/// Local hour of week of an instant (Monday 00:00 = 0).
#[inline]
pub fn hour_of_week_at(ts_ms: i64, tz: chrono_tz::Tz) -> u8 {
    let local_ms = if tz == chrono_tz::UTC {
        ts_ms
    } else {
        ts_ms + offset_ms(tz, ts_ms)
    };
    local_hour_of_week(local_ms)
}

/// `tz`'s offset from UTC at an instant, in milliseconds.
fn offset_ms(tz: chrono_tz::Tz, ts_ms: i64) -> i64 {
    let t = chrono::DateTime::from_timestamp_millis(ts_ms).unwrap_or_default();
    i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    ) * 1000
}

/// A tenant's time zone with its offset remembered for one UTC hour:
/// [`hour_of_week_at`] looks the offset up in the zone's transitions each
/// time (~60 instructions), and a tenant asks for the hour of week of every
/// event and of every volume interval it closes, nearly always in the hour
/// it asked about last. An hour is remembered only when the offset at its
/// first and last millisecond agree, so an hour holding a transition (at
/// :30 UTC in a half-hour zone) is looked up exactly every time; that
/// assumes no zone changes its offset twice within one hour and back.
/// Two `Zone`s are equal when their zones are: the memo is not state.
#[derive(Debug, Clone, Copy)]
pub struct Zone {
    tz: chrono_tz::Tz,
    /// UTC hour (ms / 3,600,000) the offset holds for; `i64::MIN`: none.
    hour: i64,
    offset_ms: i64,
}

impl Zone {
    pub fn new(tz: chrono_tz::Tz) -> Self {
        Zone {
            tz,
            hour: i64::MIN,
            offset_ms: 0,
        }
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// [`hour_of_week_at`] in this zone.
    #[inline]
    pub fn hour_of_week(&mut self, ts_ms: i64) -> u8 {
        if self.tz == chrono_tz::UTC {
            return local_hour_of_week(ts_ms);
        }
        let hour = ts_ms.div_euclid(3_600_000);
        let off = if hour == self.hour {
            self.offset_ms
        } else {
            let start = hour.saturating_mul(3_600_000);
            let first = offset_ms(self.tz, start);
            if first == offset_ms(self.tz, start.saturating_add(3_599_999)) {
                self.hour = hour;
                self.offset_ms = first;
                first
            } else {
                offset_ms(self.tz, ts_ms)
            }
        };
        local_hour_of_week(ts_ms + off)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.tz == other.tz
    }
}

#[inline]
fn local_hour_of_week(local_ms: i64) -> u8 {
    // 1970-01-01 was a Thursday: hour 72 of its week
    (local_ms.div_euclid(3_600_000) + 72).rem_euclid(168) as u8
}

/// Extract the stateless features of `ev`, with hour-of-week in `tz`.
pub fn featurize(ev: &Event, tz: chrono_tz::Tz) -> Features {
    let ts_ms = ev.ts.timestamp_millis();
    featurize_with(ev, ts_ms, hour_of_week_at(ts_ms, tz), None)
}

/// [`featurize`] with a memo for user-agent and domain classification and
/// the zone's offset (the engine's hot path).
#[inline]
pub fn featurize_cached(ev: &Event, zone: &mut Zone, cache: &mut FeatureCache) -> Features {
    let ts_ms = ev.ts.timestamp_millis();
    featurize_with(ev, ts_ms, zone.hour_of_week(ts_ms), Some(cache))
}

fn featurize_with(
    ev: &Event,
    ts_ms: i64,
    hour_of_week: u8,
    mut cache: Option<&mut FeatureCache>,
) -> Features {
    let h = |seed: u64, s: &Option<tollgate_events::Text>| {
        s.as_deref().map_or(0, |s| hash_bytes(seed, s.as_bytes()))
    };
    let (ua, ua_fam) = match ev.user_agent.as_deref() {
        Some(u) => match cache.as_deref_mut() {
            Some(c) => c.ua(u),
            None => {
                let (f, _, k) = ua_family(u);
                (k, f)
            }
        },
        None => (0, UaFamily::Other),
    };
    let status_class = ev.status.map_or(0, |s| (s / 100).min(9) as u8);
    let blocked = ev
        .action
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case("blocked"));
    let (mut domain, mut qname, mut sub_len, mut sub_entropy) = (0u64, 0u64, 0u16, 0.0f32);
    if let Some(host) = ev.destination_host.as_deref() {
        let host = host.strip_suffix('.').unwrap_or(host);
        let (dh, reg_len) = match cache {
            Some(c) => c.domain(host),
            None => {
                let reg = registrable_domain(host);
                (hash_lower(seed::DOMAIN, reg.as_bytes()), reg.len())
            }
        };
        domain = dh;
        if ev.source == Source::ZscalerDns {
            qname = hash_lower(seed::QNAME, host.as_bytes());
            let sub = &host.as_bytes()[..host.len() - reg_len];
            let sub = sub.strip_suffix(b".").unwrap_or(sub);
            sub_len = sub.len().min(u16::MAX as usize) as u16;
            if sub_len >= TUNNEL_MIN_SUB_LEN {
                sub_entropy = shannon_entropy(sub);
            }
        }
    } else if let Some(ip) = ev.destination_ip {
        if ev.source != Source::Apigw {
            domain = network_key(ip) ^ seed::DOMAIN;
        }
    }
    if ev.source == Source::Apigw {
        domain = 0;
    }
    let method = h(seed::SIGNATURE, &ev.method);
    let route = match ev.source {
        Source::Apigw => mix2(method, h(seed::ROUTE, &ev.route)),
        _ => 0,
    };
    let signature = match ev.source {
        Source::Apigw => mix2(route, status_class as u64),
        _ => {
            let mut s = mix2(domain, h(seed::SIGNATURE ^ 1, &ev.url_category));
            s = mix2(s, h(seed::SIGNATURE ^ 2, &ev.app));
            s = mix2(s, method);
            s = mix2(s, content_bucket(ev.content_type.as_deref()) as u64);
            mix2(s, ev.destination_ip.map_or(0, network_key))
        }
    };
    let admin = [
        ev.route.as_deref(),
        ev.app.as_deref(),
        ev.principal.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|s| contains_ci(s, b"admin"));
    // ln(1 + x) as `ln` of the sum: x is a count (≥ 0, where log1p's extra
    // precision near 0 buys nothing at f32) and glibc's logf takes a
    // quarter of log1pf's instructions.
    let ln = |v: Option<u64>| v.map_or(f32::NAN, |b| (b as f32 + 1.0).ln());
    Features {
        source: ev.source,
        ts_ms,
        hour_of_week,
        issuer: h(seed::ISSUER, &ev.token_issuer),
        principal: ev
            .principal
            .as_deref()
            .map_or(0, |p| hash_lower(seed::PRINCIPAL, p.as_bytes())),
        client_net: ev.client_ip.map_or(0, network_key),
        ua,
        ua_family: ua_fam,
        domain,
        signature,
        route,
        qname,
        sub_len,
        sub_entropy,
        status_class,
        auth_failure: matches!(ev.status, Some(401 | 403)),
        not_found: ev.status == Some(404),
        error: status_class >= 4 || blocked,
        admin,
        ln_bytes_in: ln(ev.bytes_in),
        ln_bytes_out: ln(ev.bytes_out),
        ln_latency: ev
            .latency_ms
            .map_or(f32::NAN, |l| (l.max(0.0) as f32 + 1.0).ln()),
        bytes_out: ev.bytes_out.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use tollgate_events::TenantId;

    #[test]
    fn entropy_is_shannons() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"ab") - 1.0).abs() < 1e-6);
        assert!((shannon_entropy(b"abcdabcd") - 2.0).abs() < 1e-6);
        // Against the textbook sum over all byte values.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [1, 2, 7, 30, 63, 200, 1000] {
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"abcdefghij0123456789-"[(x % 21) as usize]
                })
                .collect();
            let n = len as f64;
            let h: f64 = (0..=255u8)
                .map(|c| s.iter().filter(|&&b| b == c).count() as f64 / n)
                .filter(|&p| p > 0.0)
                .map(|p| -p * p.log2())
                .sum();
            assert!((f64::from(shannon_entropy(&s)) - h).abs() < 1e-5, "{len}");
        }
    }

    fn ev(source: Source) -> Event {
        let ts: DateTime<Utc> = "2026-03-02T09:30:00Z".parse().unwrap(); // a Monday
        Event::new(TenantId::new("acme").unwrap(), source, ts)
    }

    #[test]
    fn registrable_domains_follow_the_public_suffix_list() {
        assert_eq!(registrable_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registrable_domain("x.y.github.io"), "y.github.io");
        assert_eq!(registrable_domain("mail.google.com."), "google.com");
        assert_eq!(registrable_domain("localhost"), "localhost");
    }

    #[test]
    fn user_agents_fold_into_families() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
        let chrome2 = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Safari/537.36";
        let (f, os, k) = ua_family(chrome);
        assert_eq!((f, os), (UaFamily::Chrome, OsFamily::Windows));
        assert_eq!(k, ua_family(chrome2).2, "versions do not split a family");
        assert_eq!(
            ua_family("python-requests/2.31.0").0,
            UaFamily::PythonRequests
        );
        assert_ne!(ua_family("toolA/1").2, ua_family("toolB/1").2);
        assert_eq!(ua_family("toolA/1").2, ua_family("toolA/2").2);
    }

    #[test]
    fn contains_ci_finds_a_word_in_any_case_at_any_place() {
        for (hay, found) in [
            ("admin", true),
            ("/v1/ADMIN/users", true),
            ("svc-Admin", true),
            ("xadmi", false),
            ("a-d-m-i-n", false),
            ("aaaadmin", true),
            ("adm", false),
            ("", false),
            // across and after the first eight-byte chunk
            ("/v1/pet/Admin", true),
            ("/v1/pets/admin", true),
            ("/v1/pets/Admi", false),
            ("/api/v2/pets/12/admIN/x", true),
        ] {
            assert_eq!(contains_ci(hay, b"admin"), found, "{hay}");
            assert_eq!(has_admin_at_some_window(hay), found, "{hay}");
        }
    }

    /// The definition `contains_ci` must agree with: "admin", in any
    /// case, compared at every position.
    fn has_admin_at_some_window(hay: &str) -> bool {
        hay.as_bytes()
            .windows(5)
            .any(|w| w.eq_ignore_ascii_case(b"admin"))
    }

    proptest::proptest! {
        // letters that make near-misses likely around at most one
        // occurrence of the word in any case, at any place in or across
        // the eight-byte chunks and in the tail
        #[test]
        fn contains_ci_is_a_case_insensitive_window_search(
            hay in "[aAdDmMiInN/@`!\\-]{0,24}([aA][dD][mM][iI][nN])?[aAdDmMiInN/@`!\\-]{0,12}"
        ) {
            proptest::prop_assert_eq!(contains_ci(&hay, b"admin"), has_admin_at_some_window(&hay));
        }
    }

    #[test]
    fn networks_group_by_prefix() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b: IpAddr = "10.1.2.200".parse().unwrap();
        let c: IpAddr = "10.1.3.3".parse().unwrap();
        assert_eq!(network_key(a), network_key(b));
        assert_ne!(network_key(a), network_key(c));
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:ffff::1".parse().unwrap();
        assert_eq!(network_key(v6a), network_key(v6b));
        assert_eq!(network_label(a), "10.1.2.0/24");
        assert_eq!(network_label(v6a), "2001:db8:1::/48");
    }

    #[test]
    fn dns_subdomains_are_measured() {
        let mut e = ev(Source::ZscalerDns);
        e.destination_host = Some("a9f3k2m8q7z1x0c5v6b4n.tunnel.example.com".into());
        let f = featurize(&e, chrono_tz::UTC);
        assert_eq!(f.sub_len, 28, "a9f3k2m8q7z1x0c5v6b4n.tunnel");
        assert!(f.sub_entropy > 3.5, "{}", f.sub_entropy);
        let mut e2 = e.clone();
        e2.destination_host = Some("www.example.com".into());
        assert_eq!(
            featurize(&e2, chrono_tz::UTC).domain,
            featurize(&e, chrono_tz::UTC).domain
        );
    }

    #[test]
    fn hour_of_week_uses_the_tenant_zone() {
        let e = ev(Source::Apigw);
        assert_eq!(featurize(&e, chrono_tz::UTC).hour_of_week, 9);
        assert_eq!(featurize(&e, chrono_tz::America::New_York).hour_of_week, 4);
        assert_eq!(featurize(&e, chrono_tz::Asia::Tokyo).hour_of_week, 18);
    }

    #[test]
    fn cached_and_uncached_features_agree() {
        let mut cache = FeatureCache::new();
        let mut e = ev(Source::ZscalerWeb);
        e.user_agent = Some("curl/8.5.0".into());
        for host in [
            "a.example.co.uk",
            "b.example.co.uk",
            "x.y.github.io",
            "a.example.co.uk",
        ] {
            e.destination_host = Some(host.into());
            // compared as Debug text: missing numbers are NaN
            assert_eq!(
                format!(
                    "{:?}",
                    featurize_cached(&e, &mut Zone::new(chrono_tz::UTC), &mut cache)
                ),
                format!("{:?}", featurize(&e, chrono_tz::UTC))
            );
        }
        for h in 0..500i64 {
            let ms = 1_772_409_600_000 + h * 3_600_000 + 59_000;
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            use chrono::{Datelike, Timelike};
            let slow = |d: chrono::DateTime<chrono_tz::Tz>| {
                (d.weekday().num_days_from_monday() * 24 + d.hour()) as u8
            };
            assert_eq!(
                hour_of_week_at(ms, chrono_tz::UTC),
                slow(t.with_timezone(&chrono_tz::UTC))
            );
            let ny = chrono_tz::America::New_York;
            assert_eq!(hour_of_week_at(ms, ny), slow(t.with_timezone(&ny)));
        }
    }

    #[test]
    fn a_zones_remembered_offset_gives_what_a_lookup_gives() {
        // every 7 minutes over a year, in zones with hour and half-hour
        // daylight saving (Lord Howe moves by 30 minutes at :30 UTC) and
        // quarter-hour offsets, forwards and with steps back in time
        for tz in [
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::Australia::Adelaide,
            chrono_tz::Asia::Kathmandu,
            chrono_tz::Pacific::Chatham,
            chrono_tz::Europe::London,
            chrono_tz::UTC,
        ] {
            let mut zone = Zone::new(tz);
            let start = 1_767_225_600_000i64; // 2026-01-01
            for i in 0..(366 * 24 * 60 / 7) {
                let ms = start + i * 7 * 60_000 - if i % 5 == 0 { 3_600_000 } else { 0 };
                assert_eq!(zone.hour_of_week(ms), hour_of_week_at(ms, tz), "{tz} {ms}");
            }
        }
    }

    #[test]
    fn status_and_admin_flags() {
        let mut e = ev(Source::Apigw);
        e.status = Some(403);
        e.route = Some("/Admin/users".into());
        let f = featurize(&e, chrono_tz::UTC);
        assert!(f.auth_failure && f.error && f.admin && !f.not_found);
        assert_eq!(f.status_class, 4);
        assert!(f.ln_bytes_out.is_nan());
        assert_eq!(f.domain, 0);
    }
}
