//! One pass over a JSON object that flattens it into `(dotted.path, scalar)`
//! pairs, borrowing from the input wherever the text has no escapes.
//!
//! Flattening makes the two ways operators log nested data look the same:
//! `{"authorizer":{"claims":{"iss":…}}}` and `{"authorizer.claims.iss":…}` both
//! yield the path `authorizer.claims.iss`. A Zscaler SIEM wrapper
//! (`{"sourcetype":…,"event":{…}}`) is unwrapped here: the inner object's keys
//! are flattened without the `event.` prefix and the `sourcetype` is kept.
//!
//! Arrays inside a record carry nothing Tollgate needs: they are validated and
//! skipped. Nesting deeper than the configured limit is an error.
//!
//! This is a hand-written parser rather than a `serde_json` visitor because it
//! is the hottest code in Tollgate: it validates UTF-8 once for the whole
//! record instead of once per string, finds string ends with `memchr`, and
//! builds no intermediate values. It accepts exactly the JSON that
//! `serde_json` accepts (RFC 8259; a differential property test in
//! `tests/props.rs` and the unit tests below hold it to that).

use std::borrow::Cow;

/// A leaf value. Numbers keep their JSON type so that ids are never rounded.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A flattened record.
#[derive(Debug, Default)]
pub struct Flat<'a> {
    pub pairs: Vec<(Cow<'a, str>, Scalar<'a>)>,
    /// `sourcetype` of a Zscaler SIEM wrapper, when the record had one.
    pub sourcetype: Option<Cow<'a, str>>,
    /// The root had a `logEvents` array (a CloudWatch Logs envelope, if it
    /// also has `messageType`).
    pub log_events: bool,
}

impl<'a> Flat<'a> {
    /// The value at a dotted path, if present.
    pub fn get(&self, path: &str) -> Option<&Scalar<'a>> {
        self.pairs.iter().find(|(k, _)| k == path).map(|(_, v)| v)
    }

    /// Up to `n` keys, for error messages.
    pub fn key_sample(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, (k, _)) in self.pairs.iter().take(n).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.extend(k.chars().take(40));
        }
        if self.pairs.len() > n {
            out.push_str(", …");
        }
        out
    }
}

/// A pair vector's allocation, kept between records. Emptying it and
/// collecting it in place moves it to another lifetime without copying or
/// allocating (std reuses the buffer when the layouts match) and without
/// `unsafe`.
#[derive(Debug, Default, Clone)]
pub struct Pairs(Vec<(Cow<'static, str>, Scalar<'static>)>);

impl Pairs {
    /// Takes the buffer for a record's lifetime.
    pub fn take<'a>(&mut self) -> Vec<(Cow<'a, str>, Scalar<'a>)> {
        recycle(std::mem::take(&mut self.0))
    }

    /// Gives a record's buffer back.
    pub fn put(&mut self, v: Vec<(Cow<'_, str>, Scalar<'_>)>) {
        self.0 = recycle(v);
    }
}

// `filter_map` is what changes the element type; its closure never runs.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'x, 'y>(mut v: Vec<(Cow<'x, str>, Scalar<'x>)>) -> Vec<(Cow<'y, str>, Scalar<'y>)> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Why a record could not be flattened.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanError {
    NotJson,
    NotObject,
    TooDeep,
}

/// Flattens one JSON object. `bytes` must hold exactly one JSON value
/// (surrounding whitespace allowed).
#[cfg(test)]
pub fn flatten(bytes: &[u8], max_depth: usize) -> Result<Flat<'_>, ScanError> {
    flatten_into(bytes, max_depth, Vec::with_capacity(48))
}

/// [`flatten`] into a caller-supplied (empty) vector, so that its allocation
/// can be reused from record to record (see [`Pairs::recycle`]).
pub fn flatten_into<'a>(
    bytes: &'a [u8],
    max_depth: usize,
    pairs: Vec<(Cow<'a, str>, Scalar<'a>)>,
) -> Result<Flat<'a>, ScanError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ScanError::NotJson)?;
    let mut p = Parser {
        s: text,
        b: bytes,
        i: 0,
        max_depth,
        flat: Flat {
            pairs,
            sourcetype: None,
            log_events: false,
        },
        prefix: String::new(),
    };
    p.ws();
    if p.peek() != Some(b'{') {
        // Valid JSON that is not an object, or not JSON at all.
        p.skip_value(0)?;
        p.ws();
        return Err(if p.i == p.b.len() {
            ScanError::NotObject
        } else {
            ScanError::NotJson
        });
    }
    p.i += 1;
    p.root_object()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(ScanError::NotJson);
    }
    Ok(p.flat)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    max_depth: usize,
    flat: Flat<'a>,
    /// Dotted path of the object being read, empty at the root.
    prefix: String,
}

type R<T> = Result<T, ScanError>;
const BAD: ScanError = ScanError::NotJson;

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(BAD)
        }
    }

    /// Iterates an object's members after its `{`: calls `f` with each key,
    /// positioned at the value.
    fn members(&mut self, mut f: impl FnMut(&mut Self, Cow<'a, str>) -> R<()>) -> R<()> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(BAD);
            }
            self.i += 1;
            let key = self.string()?;
            self.expect(b':')?;
            self.ws();
            f(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(BAD),
            }
        }
    }

    fn root_object(&mut self) -> R<()> {
        self.members(|p, key| match &*key {
            "event" if p.peek() == Some(b'{') => {
                // Zscaler SIEM wrapper: flatten the inner object at the root.
                p.i += 1;
                p.object_body(2)
            }
            "sourcetype" if p.peek() == Some(b'"') => {
                p.i += 1;
                let v = p.string()?;
                p.flat.sourcetype = Some(v);
                Ok(())
            }
            "logEvents" if p.peek() == Some(b'[') => {
                p.flat.log_events = true;
                p.value(key, 1)
            }
            _ => p.value(key, 1),
        })
    }

    /// An object's members after its `{`, flattened under the current prefix.
    fn object_body(&mut self, depth: usize) -> R<()> {
        self.members(|p, key| p.value(key, depth))
    }

    /// A member value at `depth`, stored under `prefix.key`.
    fn value(&mut self, key: Cow<'a, str>, depth: usize) -> R<()> {
        let v = match self.peek().ok_or(BAD)? {
            b'"' => {
                self.i += 1;
                Scalar::Str(self.string()?)
            }
            b'{' => {
                if depth >= self.max_depth {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                let saved = self.prefix.len();
                if !self.prefix.is_empty() {
                    self.prefix.push('.');
                }
                self.prefix.push_str(&key);
                self.object_body(depth + 1)?;
                self.prefix.truncate(saved);
                return Ok(());
            }
            b'[' => return self.skip_value(depth),
            b't' => self.literal(b"true", Scalar::Bool(true))?,
            b'f' => self.literal(b"false", Scalar::Bool(false))?,
            b'n' => self.literal(b"null", Scalar::Null)?,
            _ => self.number()?,
        };
        let path = if self.prefix.is_empty() {
            key
        } else {
            let mut p = String::with_capacity(self.prefix.len() + 1 + key.len());
            p.push_str(&self.prefix);
            p.push('.');
            p.push_str(&key);
            Cow::Owned(p)
        };
        self.flat.pairs.push((path, v));
        Ok(())
    }

    fn literal(&mut self, word: &[u8], v: Scalar<'a>) -> R<Scalar<'a>> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(BAD)
        }
    }

    /// Validates and skips any value at `depth` (containers count toward the
    /// depth limit).
    fn skip_value(&mut self, depth: usize) -> R<()> {
        match self.peek().ok_or(BAD)? {
            b'"' => {
                self.i += 1;
                self.string().map(drop)
            }
            c @ (b'{' | b'[') => {
                if depth >= self.max_depth {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                if c == b'{' {
                    return self.members(|p, _| p.skip_value(depth + 1));
                }
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(BAD),
                    }
                }
            }
            b't' => self.literal(b"true", Scalar::Null).map(drop),
            b'f' => self.literal(b"false", Scalar::Null).map(drop),
            b'n' => self.literal(b"null", Scalar::Null).map(drop),
            _ => self.number().map(drop),
        }
    }

    /// A string after its opening quote; borrowed unless it has escapes.
    fn string(&mut self) -> R<Cow<'a, str>> {
        let start = self.i;
        let rest = self.b.get(start..).ok_or(BAD)?;
        let end = find_special(rest).ok_or(BAD)?;
        match rest[end] {
            b'"' => {
                self.i = start + end + 1;
                // SAFETY: `s` is valid UTF-8 (checked once in `flatten`);
                // `start` follows an ASCII `"` and `start + end` is an ASCII
                // `"`, so both are character boundaries, and both are within
                // `s` (`find_special` returned an index into `rest`).
                let text = unsafe { self.s.get_unchecked(start..start + end) };
                return Ok(Cow::Borrowed(text));
            }
            b'\\' => {}
            _ => return Err(BAD), // a control character
        }
        // Escapes: unescape into an owned string.
        let mut out = String::with_capacity(end + 16);
        out.push_str(&self.s[start..start + end]);
        self.i = start + end;
        loop {
            let end = find_special(&self.b[self.i..]).ok_or(BAD)?;
            out.push_str(&self.s[self.i..self.i + end]);
            self.i += end;
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {}
                _ => return Err(BAD),
            }
            let e = *self.b.get(self.i + 1).ok_or(BAD)?;
            self.i += 2;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = self.hex4()?;
                    let c = if (0xD800..0xDC00).contains(&hi) {
                        if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                            return Err(BAD);
                        }
                        self.i += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(BAD);
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00..0xE000).contains(&hi) {
                        return Err(BAD);
                    } else {
                        hi
                    };
                    out.push(char::from_u32(c).ok_or(BAD)?);
                }
                _ => return Err(BAD),
            }
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let h = self.b.get(self.i..self.i + 4).ok_or(BAD)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16).ok_or(BAD)?;
        }
        self.i += 4;
        Ok(v)
    }

    /// A JSON number: integers that fit are `U64`/`I64`, the rest `F64`.
    fn number(&mut self) -> R<Scalar<'a>> {
        let start = self.i;
        let b = self.b;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            _ => return Err(BAD),
        }
        let int_end = i;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            float = true;
            i += 1;
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(BAD);
            }
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            float = true;
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(BAD);
            }
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
        }
        self.i = i;
        let text = &self.s[start..i];
        if !float {
            let digits = &self.s[if neg { start + 1 } else { start }..int_end];
            if let Ok(u) = digits.parse::<u64>() {
                if !neg {
                    return Ok(Scalar::U64(u));
                }
                if u <= i64::MAX as u64 + 1 {
                    return Ok(Scalar::I64((u as i64).wrapping_neg()));
                }
            }
        }
        let f: f64 = text.parse().map_err(|_| BAD)?;
        if f.is_finite() {
            Ok(Scalar::F64(f))
        } else {
            // serde_json rejects numbers out of f64 range.
            Err(BAD)
        }
    }
}

/// The index of the first `"`, `\\` or control character (< 0x20).
///
/// On x86_64 sixteen bytes at a time with SSE2 (part of the x86_64 baseline,
/// so always available); the tail, and other targets, eight bytes at a time
/// with SWAR. Strings in access logs are short, where both beat a general
/// SIMD search that pays a setup cost per call.
#[inline]
fn find_special(b: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        let mut i = 0;
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is in the x86_64 baseline; the load reads
            // b[i..i + 16], in bounds by the loop condition, and `loadu`
            // has no alignment requirement.
            let mask = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
                let ctl = _mm_set1_epi8(0x1f);
                let hit = _mm_or_si128(
                    _mm_or_si128(
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                        _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                    ),
                    // c <= 0x1f (unsigned) exactly when max(c, 0x1f) == 0x1f.
                    _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl),
                );
                _mm_movemask_epi8(hit) as u32
            };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
        find_special_swar(&b[i..]).map(|p| i + p)
    }
    #[cfg(not(target_arch = "x86_64"))]
    find_special_swar(b)
}

/// Eight bytes at a time. Only the lowest flagged byte is trusted, which the
/// borrow-propagation tricks below guarantee is exact.
#[inline]
fn find_special_swar(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let x = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let q = x ^ (LO * u64::from(b'"'));
        let bs = x ^ (LO * u64::from(b'\\'));
        let t = ((q.wrapping_sub(LO) & !q)
            | (bs.wrapping_sub(LO) & !bs)
            | (x.wrapping_sub(LO * 0x20) & !x))
            & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn find_special_matches_a_plain_scan() {
        let mut data: Vec<u8> = (0u8..=255).cycle().take(600).collect();
        for start in 0..40 {
            for &c in &[b'"', b'\\', 0x1f, 0x00, b'a'] {
                let mut d = data.clone();
                for b in d.iter_mut() {
                    if *b < 0x20 || *b == b'"' || *b == b'\\' {
                        *b = b'x';
                    }
                }
                d[start + 13] = c;
                let want = d.iter().position(|&x| x == b'"' || x == b'\\' || x < 0x20);
                assert_eq!(super::find_special(&d[start..]), want.map(|w| w - start));
                assert_eq!(
                    super::find_special_swar(&d[start..]),
                    want.map(|w| w - start)
                );
            }
        }
        data.clear();
        assert_eq!(super::find_special(&data), None);
    }

    use super::*;

    fn keys(f: &Flat) -> Vec<String> {
        f.pairs.iter().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn the_pair_buffer_is_reused() {
        let mut pairs = Pairs::default();
        let rec = br#"{"a":"x","b":1}"#.to_vec();
        let mut v = pairs.take();
        v.reserve(64);
        let cap = v.capacity();
        let flat = flatten_into(&rec, 8, v).unwrap();
        assert_eq!(flat.pairs.len(), 2);
        pairs.put(flat.pairs);
        assert_eq!(pairs.take().capacity(), cap);
    }

    #[test]
    fn nested_and_dotted_keys_flatten_alike() {
        let a = flatten(br#"{"authorizer":{"claims":{"iss":"x"}},"n":1}"#, 8).unwrap();
        let b = flatten(br#"{"authorizer.claims.iss":"x","n":1}"#, 8).unwrap();
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(
            a.get("authorizer.claims.iss"),
            Some(&Scalar::Str("x".into()))
        );
        assert_eq!(a.get("n"), Some(&Scalar::U64(1)));
    }

    #[test]
    fn zscaler_wrapper_is_unwrapped() {
        let f = flatten(
            br#"{"sourcetype":"zscalernss-web","event":{"user":"a","n":{"x":1}}}"#,
            8,
        )
        .unwrap();
        assert_eq!(f.sourcetype.as_deref(), Some("zscalernss-web"));
        assert_eq!(keys(&f), ["user", "n.x"]);
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let f = flatten(
            br#"{"a":"plain","b":"esc\"aped \u00e9\ud83d\ude00\n","c":"\u2013"}"#,
            8,
        )
        .unwrap();
        assert!(matches!(f.get("a"), Some(Scalar::Str(Cow::Borrowed(_)))));
        assert_eq!(f.get("b").unwrap().as_str(), Some("esc\"aped é😀\n"));
        assert_eq!(f.get("c").unwrap().as_str(), Some("–"));
    }

    #[test]
    fn numbers_keep_their_type() {
        let f = flatten(
            br#"{"u":18446744073709551615,"i":-5,"f":1.5e3,"big":18446744073709551616,"m":-9223372036854775808}"#,
            8,
        )
        .unwrap();
        assert_eq!(f.get("u"), Some(&Scalar::U64(u64::MAX)));
        assert_eq!(f.get("i"), Some(&Scalar::I64(-5)));
        assert_eq!(f.get("f"), Some(&Scalar::F64(1500.0)));
        assert_eq!(f.get("big"), Some(&Scalar::F64(18446744073709551616.0)));
        assert_eq!(f.get("m"), Some(&Scalar::I64(i64::MIN)));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(flatten(b"{", 8).unwrap_err(), ScanError::NotJson);
        assert_eq!(flatten(b"[1]", 8).unwrap_err(), ScanError::NotObject);
        assert_eq!(flatten(b"\"s\"", 8).unwrap_err(), ScanError::NotObject);
        assert_eq!(flatten(b"{} x", 8).unwrap_err(), ScanError::NotJson);
        let deep = format!(
            "{}{}",
            r#"{"a":"#.repeat(10),
            "1}".to_owned() + &"}".repeat(9)
        );
        assert_eq!(flatten(deep.as_bytes(), 5).unwrap_err(), ScanError::TooDeep);
        assert!(flatten(deep.as_bytes(), 20).is_ok());
        let arrays = format!(r#"{{"a":{}{}}}"#, "[".repeat(40), "]".repeat(40));
        assert_eq!(
            flatten(arrays.as_bytes(), 32).unwrap_err(),
            ScanError::TooDeep
        );
        assert!(flatten(arrays.as_bytes(), 50).is_ok());
    }

    /// The scanner accepts exactly what serde_json accepts.
    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        let cases: &[&[u8]] = &[
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":.5}"#,
            br#"{"a":-}"#,
            br#"{"a":1e}"#,
            br#"{"a":1e+5}"#,
            br#"{"a":-0}"#,
            br#"{"a":1,}"#,
            br#"{,"a":1}"#,
            br#"{"a" 1}"#,
            br#"{"a":tru}"#,
            br#"{"a":true}"#,
            br#"{"a":nul}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\u00zz"}"#,
            b"{\"a\":\"tab\there\"}",
            b"{\"a\":\"\xff\"}",
            br#"{"a":[1,2,]}"#,
            br#"{"a":[,]}"#,
            br#"{"a":[]}"#,
            br#"{"a":{}}"#,
            br#"{"a":1e400}"#,
            br#"{"a":"x"}  "#,
            br#"  {"a":"x"}"#,
            br#"{"a":"x"}{}"#,
            br#"{"a" : [ {"b" : [ null ] } ] , "c" : -1.25E-2 }"#,
            b"",
            b"   ",
            b"nul",
            b"123",
            b"{\"a\":1}\n",
            b"{\"a\":\"\\/\"}",
        ];
        for c in cases {
            let ours = flatten(c, 16);
            let theirs = serde_json::from_slice::<serde_json::Value>(c);
            let ours_ok = matches!(ours, Ok(_) | Err(ScanError::NotObject));
            assert_eq!(
                ours_ok,
                theirs.is_ok(),
                "{:?}: ours {:?}, serde_json {:?}",
                String::from_utf8_lossy(c),
                ours.map(|f| f.pairs.len()),
                theirs
            );
        }
    }
}
