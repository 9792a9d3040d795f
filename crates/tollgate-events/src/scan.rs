//! One pass over a JSON object that flattens it into `(dotted.path, scalar)`
//! pairs, handed one at a time to a [`Sink`], borrowing from the input
//! wherever the text has no escapes.
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
//! is the hottest code in Tollgate. It works in two passes. The first is
//! branch-free SIMD over the whole record (AVX2 or SSE2, thirty-two or
//! sixteen bytes at a time; SWAR elsewhere): it marks every quote, backslash
//! and control character in a bitmap and notices any byte ≥ 0x80. Only a record with such a byte is
//! checked for UTF-8, once; an ASCII record needs no check. The second pass
//! is the parser, which finds each string's end from the bitmap with one
//! `trailing_zeros` instead of searching for it, and reads root-level keys
//! through the *shapes* of the records before (see [`Scratch`]): a key that
//! is where the last record of its layout had it is recognized with one
//! comparison, its meaning to the sink already known. The parser stores
//! nothing itself: the sink keeps what it wants (the decoder keeps only the keys its tables
//! know), and strings with escapes are unescaped into one reusable arena, so
//! a record allocates nothing once the buffers are warm. It accepts exactly
//! the JSON that `serde_json` accepts (RFC 8259; a differential property
//! test in `tests/props.rs` and the unit tests below hold it to that).

/// A leaf value. Numbers keep their JSON type so that ids are never rounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
}

impl<'a> Scalar<'a> {
    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A leaf value as the scanner hands it over: a [`Scalar`] whose string, if
/// it had escapes, is a range of the record's unescape arena
/// ([`Scratch::unescaped`]). `Copy`, so buffers of values drop for free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    /// `Scratch::unescaped()[start..end]`.
    Esc(usize, usize),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
}

impl<'a> Value<'a> {
    /// The value, with an unescaped string read from `arena` (the record's
    /// [`Scratch::unescaped`], or the `unescaped` a [`Sink`] was given).
    #[inline]
    pub fn resolve<'r>(self, arena: &'r str) -> Scalar<'r>
    where
        'a: 'r,
    {
        match self {
            Value::Str(s) => Scalar::Str(s),
            Value::Esc(a, b) => Scalar::Str(&arena[a..b]),
            Value::U64(n) => Scalar::U64(n),
            Value::I64(n) => Scalar::I64(n),
            Value::F64(n) => Scalar::F64(n),
            Value::Bool(b) => Scalar::Bool(b),
            Value::Null => Scalar::Null,
        }
    }
}

/// A flattened path: borrowed from the record (a root-level key without
/// escapes, the common case) or built in scratch space the next pair reuses.
#[derive(Debug, Clone, Copy)]
pub enum Path<'t, 'a: 't> {
    Record(&'a str),
    Scratch(&'t str),
}

impl<'t, 'a: 't> Path<'t, 'a> {
    #[inline]
    pub fn as_str(self) -> &'t str {
        match self {
            Path::Record(s) | Path::Scratch(s) => s,
        }
    }
}

/// Receives a record's pairs in record order.
pub trait Sink<'a> {
    /// What the sink makes of a path (which slot it feeds, say): a pure
    /// function of the path, which the scanner remembers for the root keys
    /// of the records it scans (see [`Scratch`]).
    type Key: Copy;

    /// The sink's reading of `path`.
    fn key(&mut self, path: &str) -> Self::Key;

    /// One scalar at `path`, whose [`Sink::key`] is `key`. `unescaped` is
    /// the arena that [`Value::Esc`] ranges index, as far as it is written.
    fn pair(&mut self, path: Path<'_, 'a>, key: Self::Key, value: Value<'a>, unescaped: &str);
}

/// Buffers the scanner reuses from record to record, and what it remembers
/// of the records it has scanned: *shapes*, sequences of root-level keys
/// (those whose path is the key itself) of the last records, with the
/// sink's [`Sink::key`] of each. Records of one feed share a template, so the
/// n-th root key of a record is most often the n-th of the last one: when
/// the bytes at the scan position are that key, its closing quote and a
/// colon, the key is read with one comparison and its reading is known
/// without asking the sink. A feed may carry a few templates at once (API
/// Gateway REST, HTTP API and WebSocket logs on one stream), so up to
/// [`SHAPES`] shapes are kept: a record is read through the shape the last
/// record ended in, and where its key is not that shape's, through another
/// shape that has the key at that place, if one does. Otherwise the key
/// takes the general path, and the keys the shape had so far, followed by
/// this one, become a shape of their own (in place of the one used least
/// lately), so that the shape it left still serves the records of its
/// template.
#[derive(Debug, Clone)]
pub struct Scratch<K> {
    /// The specials bitmap of the current record (see [`index`]).
    specials: Vec<u64>,
    /// Unescaped strings of the current record ([`Value::Esc`] ranges).
    unescaped: String,
    /// Dotted path of the object being read, empty at the root.
    prefix: String,
    /// The current key, when it had escapes.
    key: String,
    /// `prefix.key` of the current pair.
    path: String,
    /// The shapes (at least one), the one the last record ended in first.
    shapes: Vec<Shape<K>>,
    /// Records scanned, for telling which shape was used least lately.
    tick: u64,
}

/// The root-level keys of records of one layout.
#[derive(Debug, Clone)]
struct Shape<K> {
    /// The n-th root-level key.
    keys: Vec<Learned<K>>,
    /// The text of the longer keys (see [`Learned`]).
    text: String,
    /// [`Scratch::tick`] of the last record that used it.
    used: u64,
}

impl<K> Default for Shape<K> {
    fn default() -> Self {
        Shape {
            keys: Vec::new(),
            text: String::new(),
            used: 0,
        }
    }
}

/// A key of the shape: what the record has from the key's opening quote on
/// when it is this key (the key, its closing quote and a colon: the *tag*,
/// as [`words4`] of its two halves, or a place in its shape's `text` when
/// longer than 32 bytes), what it means to the root object, and the sink's
/// reading. The tag takes in the key's end, so one comparison checks both.
#[derive(Debug, Clone, Copy)]
struct Learned<K> {
    /// [`words4`] of the tag, when it is 32 bytes or shorter.
    w: [u64; 4],
    /// Key length.
    len: u32,
    /// Tag length, or `usize::MAX` for a key that is not kept (one with
    /// escapes, or too long), which never matches.
    tag: usize,
    /// Where a tag longer than 32 bytes is in its shape's `text`.
    at: u32,
    special: Special,
    data: K,
}

/// Keys the root object treats apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    /// `event`: a Zscaler SIEM wrapper's record.
    Event,
    /// `sourcetype`: a Zscaler SIEM wrapper's feed name.
    Sourcetype,
    /// `logEvents`: a CloudWatch Logs envelope's records.
    LogEvents,
    /// `messageType`: a CloudWatch Logs envelope's kind (noted wherever the
    /// path is `messageType`, not only in the root object).
    MessageType,
}

impl Special {
    fn of(key: &str) -> Special {
        match key {
            "event" => Special::Event,
            "sourcetype" => Special::Sourcetype,
            "logEvents" => Special::LogEvents,
            "messageType" => Special::MessageType,
            _ => Special::None,
        }
    }
}

/// Two words that, with the length, are a key of up to 16 bytes exactly:
/// its first and last eight bytes (four, for keys of 4 to 7 bytes; for
/// shorter ones, every byte).
#[inline(always)]
pub(crate) fn words(k: &[u8]) -> (u64, u64) {
    let n = k.len();
    if n >= 8 {
        let a = u64::from_le_bytes(k[..8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(k[n - 8..].try_into().expect("8 bytes"));
        (a, b)
    } else if n >= 4 {
        let a = u32::from_le_bytes(k[..4].try_into().expect("4 bytes"));
        let b = u32::from_le_bytes(k[n - 4..].try_into().expect("4 bytes"));
        (u64::from(a), u64::from(b))
    } else if n > 0 {
        let a = u64::from(k[0]) | u64::from(k[n / 2]) << 8 | u64::from(k[n - 1]) << 16;
        (a, 0)
    } else {
        (0, 0)
    }
}

/// [`words`] of a key's first and last 16 bytes: with the length, a key of
/// up to 32 bytes exactly.
#[inline(always)]
fn words4(k: &[u8]) -> [u64; 4] {
    if k.len() <= 16 {
        let (a, b) = words(k);
        [a, b, 0, 0]
    } else {
        let (a, b) = words(&k[..16]);
        let (c, d) = words(&k[k.len() - 16..]);
        [a, b, c, d]
    }
}

/// Bounds on the shapes: how many, entries, key length, and text kept.
const SHAPES: usize = 32;
const SHAPE_KEYS: usize = 256;
const SHAPE_KEY_LEN: usize = 128;
const SHAPE_TEXT: usize = 16 << 10;

impl<K> Default for Scratch<K> {
    fn default() -> Self {
        Scratch {
            specials: Vec::new(),
            unescaped: String::new(),
            prefix: String::new(),
            key: String::new(),
            path: String::new(),
            shapes: vec![Shape::default()],
            tick: 0,
        }
    }
}

impl<K> Scratch<K> {
    /// What [`Value::Esc`] ranges of the last scanned record index.
    pub fn unescaped(&self) -> &str {
        &self.unescaped
    }
}

/// What the scanner itself notes at the root of a record.
#[derive(Debug, Default, Clone, Copy)]
pub struct Root<'a> {
    /// `sourcetype` of a Zscaler SIEM wrapper, when the record had one (as a
    /// string; it is then not handed to the sink).
    pub sourcetype: Option<Value<'a>>,
    /// The root had a `logEvents` array (a CloudWatch Logs envelope, if it
    /// also has `messageType`).
    pub log_events: bool,
    /// A scalar was handed to the sink at the path `messageType`.
    pub message_type: bool,
}

/// Why a record could not be flattened.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanError {
    NotJson,
    NotObject,
    TooDeep,
}

/// Flattens one JSON object into `sink`. `bytes` must hold exactly one JSON
/// value (surrounding whitespace allowed).
pub fn scan<'a, S: Sink<'a>>(
    bytes: &'a [u8],
    max_depth: usize,
    scratch: &mut Scratch<S::Key>,
    sink: &mut S,
) -> Result<Root<'a>, ScanError> {
    let s = if index(bytes, &mut scratch.specials) {
        std::str::from_utf8(bytes).map_err(|_| ScanError::NotJson)?
    } else {
        // SAFETY: `index` found no byte ≥ 0x80 in `bytes`: it is ASCII, and
        // ASCII is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    };
    scratch.unescaped.clear();
    scratch.prefix.clear();
    scratch.tick += 1;
    scratch.shapes[0].used = scratch.tick;
    let mut p = Parser {
        s,
        b: bytes,
        specials: &scratch.specials,
        i: 0,
        max_depth,
        unescaped: &mut scratch.unescaped,
        prefix: &mut scratch.prefix,
        key: &mut scratch.key,
        path: &mut scratch.path,
        shapes: &mut scratch.shapes,
        tick: scratch.tick,
        ordinal: 0,
        sink,
        root: Root::default(),
    };
    p.document()
}

struct Parser<'a, 's, S: Sink<'a>> {
    s: &'a str,
    /// `s` as bytes.
    b: &'a [u8],
    /// Where `b`'s quotes, backslashes and control characters are.
    specials: &'s [u64],
    i: usize,
    max_depth: usize,
    unescaped: &'s mut String,
    prefix: &'s mut String,
    key: &'s mut String,
    path: &'s mut String,
    /// The scratch's shapes; the record is read through the first.
    shapes: &'s mut Vec<Shape<S::Key>>,
    tick: u64,
    /// The number of root-level keys read so far.
    ordinal: usize,
    sink: &'s mut S,
    root: Root<'a>,
}

/// A member's key: borrowed from the record, or unescaped into `Parser::key`.
#[derive(Clone, Copy)]
enum Key<'a> {
    Record(&'a str),
    Unescaped,
}

type R<T> = Result<T, ScanError>;
const BAD: ScanError = ScanError::NotJson;

impl<'a, S: Sink<'a>> Parser<'a, '_, S> {
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

    fn document(&mut self) -> R<Root<'a>> {
        self.ws();
        if self.peek() != Some(b'{') {
            // Valid JSON that is not an object, or not JSON at all.
            self.skip_value(0)?;
            self.ws();
            return Err(if self.i == self.b.len() {
                ScanError::NotObject
            } else {
                ScanError::NotJson
            });
        }
        self.i += 1;
        self.root_object()?;
        self.ws();
        if self.i != self.b.len() {
            return Err(BAD);
        }
        Ok(self.root)
    }

    /// Iterates an object's members after its `{`: calls `f` with each key,
    /// positioned at the value. When `root_level` (paths are the keys), the
    /// keys are read through the shape and `f` gets the sink's reading and
    /// the key's [`Special`]; otherwise `None` and `Special::None`.
    #[inline(always)]
    fn members(
        &mut self,
        root_level: bool,
        mut f: impl FnMut(&mut Self, Key<'a>, Option<S::Key>, Special) -> R<()>,
    ) -> R<()> {
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
            if !(root_level && self.plain_members()) {
                let (key, data, special) = if root_level {
                    self.shaped_key()?
                } else {
                    self.i += 1;
                    let key = self.key()?;
                    self.expect(b':')?;
                    (key, None, Special::None)
                };
                self.ws();
                f(self, key, data, special)?;
            }
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

    /// The common members, read in one go: at a root-level key's opening
    /// quote, as long as there is the shape's next key (an ordinary one)
    /// with a string value without escapes, hands the pairs to the sink,
    /// and goes on to the next member when a comma and a quote follow
    /// (nothing else is between members of one-line records). Leaves the
    /// scan after the last value read, or, if the first member is not such
    /// (`false`), where it was: the general path reads the rest as it would
    /// have read these.
    #[inline(always)]
    fn plain_members(&mut self) -> bool {
        // Locals, which the loop keeps in registers (the sink writes memory
        // that, for all the compiler knows, could be the parser's fields).
        let (s, b, specials) = (self.s, self.b, self.specials);
        let sh = &self.shapes[0];
        let (shape, text) = (&sh.keys[..], sh.text.as_bytes());
        let (sink, unescaped) = (&mut *self.sink, self.unescaped.as_str());
        let (mut i, mut n) = (self.i, self.ordinal);
        // Just past the last value read.
        let mut end = i;
        while let Some(e) = shape.get(n) {
            let start = i + 1;
            if e.special != Special::None || !at_tag(b, text, e, start) {
                break;
            }
            // The value's opening quote, and its closing one (a marked
            // byte that is not a quote is an escape or an error, left to
            // the general path).
            let at = start + e.tag;
            if b.get(at) != Some(&b'"') {
                break;
            }
            let Some(close) = next_special(specials, at + 1) else {
                break;
            };
            if b[close] != b'"' {
                break;
            }
            // The tag has no quote, backslash or control character (its key
            // was read as a whole string without escapes), so the key that
            // starts at `start` ends at its length, as the general path reads
            // it.
            let key = quoted(s, b, start, start + e.len as usize);
            let value = quoted(s, b, at + 1, close);
            sink.pair(Path::Record(key), e.data, Value::Str(value), unescaped);
            (end, n) = (close + 1, n + 1);
            if !matches!(b.get(end..), Some([b',', b'"', ..])) {
                break;
            }
            i = end + 1;
        }
        if n == self.ordinal {
            return false;
        }
        self.i = end;
        self.ordinal = n;
        true
    }

    /// The text between an opening quote at `start - 1` and a quote at
    /// `end`, as the scan found them.
    #[inline(always)]
    fn quoted(&self, start: usize, end: usize) -> &'a str {
        quoted(self.s, self.b, start, end)
    }

    /// At a root-level key's opening quote: the key, read through the shapes
    /// (see [`Scratch`]), the sink's reading of it, and what it means to the
    /// root object. Leaves the scan past the colon.
    #[inline(always)]
    fn shaped_key(&mut self) -> R<(Key<'a>, Option<S::Key>, Special)> {
        let n = self.ordinal;
        self.ordinal += 1;
        let start = self.i + 1;
        let sh = &self.shapes[0];
        let hit = match sh.keys.get(n) {
            Some(e) if at_tag(self.b, sh.text.as_bytes(), e, start) => Some(e),
            _ => self.other_shape(n, start),
        };
        if let Some(&Learned {
            tag,
            len,
            data,
            special,
            ..
        }) = hit
        {
            // The bytes between the quotes are the shape's key, which has
            // no quote, backslash or control character (it was read as a
            // whole string without escapes), so the string that starts at
            // `start` ends where the key does, as the general path reads it.
            self.i = start + tag;
            let key = self.quoted(start, start + len as usize);
            return Ok((Key::Record(key), Some(data), special));
        }
        self.i += 1;
        let key = self.key()?;
        self.expect(b':')?;
        let text = match key {
            Key::Record(s) => s,
            Key::Unescaped => self.key.as_str(),
        };
        let special = Special::of(text);
        let data = self.sink.key(text);
        self.learn(n, key, special, data);
        Ok((key, Some(data), special))
    }

    /// Another shape whose `n`-th key is at `start`, made the current one
    /// (the first), and that key.
    #[cold]
    #[inline(never)]
    fn other_shape(&mut self, n: usize, start: usize) -> Option<&Learned<S::Key>> {
        let b = self.b;
        let j = 1 + self.shapes[1..].iter().position(|sh| {
            sh.keys
                .get(n)
                .is_some_and(|e| at_tag(b, sh.text.as_bytes(), e, start))
        })?;
        self.shapes.swap(0, j);
        self.shapes[0].used = self.tick;
        Some(&self.shapes[0].keys[n])
    }

    /// Makes `key` the current shape's `n`-th key. When the shape has an
    /// `n`-th key already (another), its keys before `n` are first copied
    /// to a shape of their own, which becomes the current one (see
    /// [`Scratch`]).
    #[cold]
    fn learn(&mut self, n: usize, key: Key<'a>, special: Special, data: S::Key) {
        if n >= SHAPE_KEYS || n > self.shapes[0].keys.len() {
            return;
        }
        if n < self.shapes[0].keys.len() {
            self.fork(n);
        }
        let sh = &mut self.shapes[0];
        let mut e = Learned {
            w: [0; 4],
            len: 0,
            tag: usize::MAX,
            at: 0,
            special,
            data,
        };
        if let Key::Record(k) = key {
            if k.len() <= SHAPE_KEY_LEN {
                let mut tag = [0; SHAPE_KEY_LEN + 2];
                let tag = &mut tag[..k.len() + 2];
                tag[..k.len()].copy_from_slice(k.as_bytes());
                tag[k.len()..].copy_from_slice(b"\":");
                if tag.len() > 32 {
                    if sh.text.len() + tag.len() > SHAPE_TEXT {
                        // Start over rather than grow without bound.
                        sh.keys.clear();
                        sh.text.clear();
                        return;
                    }
                    e.at = sh.text.len() as u32;
                    sh.text.push_str(k);
                    sh.text.push_str("\":");
                }
                e.w = words4(tag);
                e.len = k.len() as u32;
                e.tag = tag.len();
            }
        }
        if n == sh.keys.len() {
            sh.keys.push(e);
        } else {
            sh.keys[n] = e;
        }
    }

    /// Copies the current shape's first `n` keys to a new shape (or over the
    /// one used least lately, when there are [`SHAPES`]) and makes it the
    /// current one (the first).
    fn fork(&mut self, n: usize) {
        let to = if self.shapes.len() < SHAPES {
            self.shapes.push(Shape::default());
            self.shapes.len() - 1
        } else {
            1 + (self.shapes[1..].iter().enumerate())
                .min_by_key(|(_, sh)| sh.used)
                .map(|(j, _)| j)
                .expect("SHAPES > 1 shapes, so one besides the current")
        };
        let (head, rest) = self.shapes.split_at_mut(to);
        let (from, into) = (&head[0], &mut rest[0]);
        into.keys.clear();
        into.text.clear();
        into.used = self.tick;
        for e in &from.keys[..n] {
            let mut e = *e;
            if e.tag != usize::MAX && e.tag > 32 {
                let at = e.at as usize;
                e.at = into.text.len() as u32;
                into.text.push_str(&from.text[at..at + e.tag]);
            }
            into.keys.push(e);
        }
        self.shapes.swap(0, to);
    }

    fn root_object(&mut self) -> R<()> {
        self.members(
            true,
            #[inline(always)]
            |p, key, data, special| match (special, p.peek()) {
                (Special::Event, Some(b'{')) => {
                    // Zscaler SIEM wrapper: flatten the inner object at the root.
                    p.i += 1;
                    p.object_body(2)
                }
                (Special::Sourcetype, Some(b'"')) => {
                    p.i += 1;
                    let v = p.string_value()?;
                    p.root.sourcetype = Some(v);
                    Ok(())
                }
                (Special::LogEvents, Some(b'[')) => {
                    p.root.log_events = true;
                    p.value(key, data, special, 1)
                }
                _ => p.value(key, data, special, 1),
            },
        )
    }

    /// An object's members after its `{`, flattened under the current prefix.
    fn object_body(&mut self, depth: usize) -> R<()> {
        let root_level = self.prefix.is_empty();
        self.members(
            root_level,
            #[inline(always)]
            |p, key, data, special| p.value(key, data, special, depth),
        )
    }

    /// A member value at `depth`, handed to the sink under `prefix.key`.
    /// `data` is the sink's reading of the key and `special` what it is to
    /// the root object, when the key is the path.
    #[inline(always)]
    fn value(
        &mut self,
        key: Key<'a>,
        data: Option<S::Key>,
        special: Special,
        depth: usize,
    ) -> R<()> {
        let v = match self.peek().ok_or(BAD)? {
            b'"' => {
                self.i += 1;
                self.string_value()?
            }
            b'{' => return self.nested(key, depth),
            b'[' => return self.skip_value(depth),
            b't' => {
                self.literal(b"true")?;
                Value::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Value::Bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                Value::Null
            }
            _ => self.number()?,
        };
        let path = if self.prefix.is_empty() {
            match key {
                Key::Record(s) => Path::Record(s),
                Key::Unescaped => Path::Scratch(self.key.as_str()),
            }
        } else {
            self.path.clear();
            self.path.push_str(self.prefix);
            self.path.push('.');
            match key {
                Key::Record(s) => self.path.push_str(s),
                Key::Unescaped => self.path.push_str(self.key),
            }
            Path::Scratch(self.path.as_str())
        };
        let data = match data {
            Some(d) => d,
            None => self.sink.key(path.as_str()),
        };
        self.root.message_type |= special == Special::MessageType;
        self.sink.pair(path, data, v, self.unescaped);
        Ok(())
    }

    /// An object member value at `depth`: its members are flattened under
    /// `prefix.key`.
    #[inline(never)]
    fn nested(&mut self, key: Key<'a>, depth: usize) -> R<()> {
        if depth >= self.max_depth {
            return Err(ScanError::TooDeep);
        }
        self.i += 1;
        let saved = self.prefix.len();
        if !self.prefix.is_empty() {
            self.prefix.push('.');
        }
        match key {
            Key::Record(s) => self.prefix.push_str(s),
            Key::Unescaped => self.prefix.push_str(self.key),
        }
        self.object_body(depth + 1)?;
        self.prefix.truncate(saved);
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
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
                if let Err(start) = self.string_raw()? {
                    self.key.clear();
                    self.unescape(start, Into::Key)?;
                }
                Ok(())
            }
            c @ (b'{' | b'[') => {
                if depth >= self.max_depth {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                if c == b'{' {
                    return self.members(false, |p, _, _, _| p.skip_value(depth + 1));
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
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// A key after its opening quote.
    #[inline(always)]
    fn key(&mut self) -> R<Key<'a>> {
        match self.string_raw()? {
            Ok(s) => Ok(Key::Record(s)),
            Err(start) => {
                self.key.clear();
                self.unescape(start, Into::Key)?;
                Ok(Key::Unescaped)
            }
        }
    }

    /// A string value after its opening quote: borrowed unless it has
    /// escapes, else unescaped into the arena.
    #[inline(always)]
    fn string_value(&mut self) -> R<Value<'a>> {
        match self.string_raw()? {
            Ok(s) => Ok(Value::Str(s)),
            Err(start) => {
                let from = self.unescaped.len();
                self.unescape(start, Into::Arena)?;
                Ok(Value::Esc(from, self.unescaped.len()))
            }
        }
    }

    /// A string after its opening quote: `Ok(text)` when it has no escapes
    /// (then the scan is past its closing quote), else `Err(start)` with the
    /// scan at its first backslash, for [`Self::unescape`].
    #[inline(always)]
    fn string_raw(&mut self) -> R<Result<&'a str, usize>> {
        let start = self.i;
        let end = next_special(self.specials, start).ok_or(BAD)?;
        match self.b.get(end) {
            Some(b'"') => {
                self.i = end + 1;
                Ok(Ok(self.quoted(start, end)))
            }
            Some(b'\\') => {
                self.i = end;
                Ok(Err(start))
            }
            _ => Err(BAD), // a control character
        }
    }

    /// Unescapes a string into the key buffer or the arena: `b[start..i]`
    /// is its plain beginning and `i` is at its first backslash. Leaves the
    /// scan past the closing quote.
    fn unescape(&mut self, start: usize, into: Into) -> R<()> {
        let out: &mut String = match into {
            Into::Key => self.key,
            Into::Arena => self.unescaped,
        };
        let (s, b) = (self.s, self.b);
        let mut i = self.i;
        out.push_str(s.get(start..i).ok_or(BAD)?);
        loop {
            // At a backslash.
            let e = *b.get(i + 1).ok_or(BAD)?;
            i += 2;
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
                    let hi = hex4(b, &mut i)?;
                    let c = if (0xD800..0xDC00).contains(&hi) {
                        if b.get(i..i + 2) != Some(b"\\u") {
                            return Err(BAD);
                        }
                        i += 2;
                        let lo = hex4(b, &mut i)?;
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
            let end = next_special(self.specials, i).ok_or(BAD)?;
            out.push_str(s.get(i..end).ok_or(BAD)?);
            i = end;
            match b[i] {
                b'"' => {
                    self.i = i + 1;
                    return Ok(());
                }
                b'\\' => {}
                _ => return Err(BAD),
            }
        }
    }

    /// A JSON number: integers that fit are `U64`/`I64`, the rest `F64`.
    fn number(&mut self) -> R<Value<'a>> {
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
        if !float {
            let digits = &b[if neg { start + 1 } else { start }..int_end];
            let mut u: Option<u64> = Some(0);
            for &d in digits {
                u = u
                    .and_then(|u| u.checked_mul(10))
                    .and_then(|u| u.checked_add(u64::from(d - b'0')));
            }
            if let Some(u) = u {
                if !neg {
                    return Ok(Value::U64(u));
                }
                if u <= i64::MAX as u64 + 1 {
                    return Ok(Value::I64((u as i64).wrapping_neg()));
                }
            }
        }
        let f: f64 = self.s.get(start..i).ok_or(BAD)?.parse().map_err(|_| BAD)?;
        if f.is_finite() {
            Ok(Value::F64(f))
        } else {
            // serde_json rejects numbers out of f64 range.
            Err(BAD)
        }
    }
}

/// The text of `s` (whose bytes are `b`) between an opening quote at
/// `start - 1` and a quote at `end`, as the scan found them.
#[inline(always)]
fn quoted<'a>(s: &'a str, b: &[u8], start: usize, end: usize) -> &'a str {
    debug_assert!(b[start - 1] == b'"' && b[end] == b'"');
    // SAFETY: `s` is valid UTF-8 (checked, or ASCII, in `scan`); every
    // caller passes a `start` that follows an ASCII `"` and an `end` at an
    // ASCII `"` of `s` (found by `next_special`, or checked), with
    // `start <= end`: both are character boundaries within `s`.
    unsafe { s.get_unchecked(start..end) }
}

/// Whether `b` has `e`'s tag (its key, the closing quote and a colon) at
/// `start`, just past a key's opening quote; `text` is the shape's text.
#[inline(always)]
fn at_tag<K>(b: &[u8], text: &[u8], e: &Learned<K>, start: usize) -> bool {
    let Some(t) = b.get(start..).and_then(|r| r.get(..e.tag)) else {
        return false;
    };
    if t.len() <= 16 {
        words(t) == (e.w[0], e.w[1])
    } else if t.len() <= 32 {
        words4(t) == e.w
    } else {
        text.get(e.at as usize..e.at as usize + t.len()) == Some(t)
    }
}

/// ASCII bytes as text (`None` if any is not ASCII): cheaper than a UTF-8
/// check, for strings built of ASCII, such as hex digits.
pub(crate) fn ascii(b: &[u8]) -> Option<&str> {
    if !b.is_ascii() {
        return None;
    }
    // SAFETY: ASCII is valid UTF-8 (checked just above).
    Some(unsafe { std::str::from_utf8_unchecked(b) })
}

/// Where [`Parser::unescape`] writes.
#[derive(Clone, Copy)]
enum Into {
    Key,
    Arena,
}

fn hex4(b: &[u8], i: &mut usize) -> R<u32> {
    let h = b.get(*i..*i + 4).ok_or(BAD)?;
    let mut v = 0u32;
    for &c in h {
        v = v * 16 + (c as char).to_digit(16).ok_or(BAD)?;
    }
    *i += 4;
    Ok(v)
}

/// Marks every `"`, `\\` and control character (< 0x20) of `b` in
/// `specials` (bit `i % 64` of word `i / 64` for byte `i`) and returns
/// whether `b` has a byte ≥ 0x80 (is not ASCII).
///
/// The parser then finds a string's end as the next marked byte: inside a
/// string every marked byte ends it, escapes it or makes it invalid. A
/// single pass without branches over all bytes beats a search per string,
/// which pays its setup per call and again for every string's last block.
///
/// Most records are one line without control characters: a first pass
/// marks only quotes and backslashes, noting on the way whether any byte is
/// a control character; only then does a second pass mark those too.
fn index(b: &[u8], specials: &mut Vec<u64>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let (high, control) = if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above; the answer is
            // cached after the first record).
            unsafe { index_quotes_avx2(b, specials) }
        } else {
            index_quotes(b, specials)
        };
        if !control {
            return high;
        }
    }
    index_all(b, specials)
}

/// [`index_quotes`] with AVX2, 32 bytes at a time: half the instructions,
/// where the record's bytes are the cost.
///
/// # Safety
///
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn index_quotes_avx2(b: &[u8], specials: &mut Vec<u64>) -> (bool, bool) {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_max_epu8, _mm256_min_epu8,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    let blocks = b.chunks_exact(64);
    let rest = blocks.remainder();
    let mut pad = [b' '; 64];
    pad[..rest.len()].copy_from_slice(rest);
    specials.clear();
    specials.reserve(blocks.len() + 1);
    // SAFETY: the caller checked for AVX2; every load reads
    // block[32k..32k + 32] for k < 2 of a 64-byte block, and `loadu` has no
    // alignment requirement.
    unsafe {
        let (q, bs, ctl) = (
            _mm256_set1_epi8(b'"' as i8),
            _mm256_set1_epi8(b'\\' as i8),
            _mm256_set1_epi8(0x1f),
        );
        // The bytewise minimum and OR of all bytes.
        let (mut min, mut any) = (_mm256_set1_epi8(-1), _mm256_set1_epi8(0));
        // A macro rather than a closure, which would not inherit AVX2.
        macro_rules! mark {
            ($block:expr) => {{
                let p = $block.as_ptr().cast::<__m256i>();
                let (lo, hi) = (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)));
                let lo_hit = _mm256_or_si256(_mm256_cmpeq_epi8(lo, q), _mm256_cmpeq_epi8(lo, bs));
                let hi_hit = _mm256_or_si256(_mm256_cmpeq_epi8(hi, q), _mm256_cmpeq_epi8(hi, bs));
                min = _mm256_min_epu8(min, _mm256_min_epu8(lo, hi));
                any = _mm256_or_si256(any, _mm256_or_si256(lo, hi));
                let (lo, hi) = (_mm256_movemask_epi8(lo_hit), _mm256_movemask_epi8(hi_hit));
                // `black_box` keeps LLVM from fusing the two masks into one
                // of 64 lanes, which it then builds a bit at a time (ten
                // times the instructions of the whole block).
                u64::from(lo as u32) | u64::from(std::hint::black_box(hi) as u32) << 32
            }};
        }
        for block in blocks {
            specials.push(mark!(block));
        }
        if !rest.is_empty() {
            // Spaces are neither marked, nor high, nor control characters.
            specials.push(mark!(pad));
        }
        // Some byte is <= 0x1f exactly when max(min, 0x1f) == 0x1f somewhere.
        let control = _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(min, ctl), ctl)) != 0;
        (_mm256_movemask_epi8(any) != 0, control)
    }
}

/// [`index`] for records without control characters: marks quotes and
/// backslashes, and returns whether any byte is ≥ 0x80 and whether any is a
/// control character (then the marks are not [`index`]'s).
#[cfg(target_arch = "x86_64")]
fn index_quotes(b: &[u8], specials: &mut Vec<u64>) -> (bool, bool) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_min_epu8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    let blocks = b.chunks_exact(64);
    let rest = blocks.remainder();
    let mut pad = [b' '; 64];
    pad[..rest.len()].copy_from_slice(rest);
    specials.clear();
    // SAFETY: SSE2 is in the x86_64 baseline; every load reads
    // block[16k..16k + 16] for k < 4 of a 64-byte block, and `loadu` has no
    // alignment requirement.
    unsafe {
        let (q, bs, ctl) = (
            _mm_set1_epi8(b'"' as i8),
            _mm_set1_epi8(b'\\' as i8),
            _mm_set1_epi8(0x1f),
        );
        // The bytewise minimum and OR of all bytes.
        let (mut min, mut any) = (_mm_set1_epi8(-1), _mm_set1_epi8(0));
        let mut mark = |block: &[u8; 64]| -> u64 {
            let p = block.as_ptr().cast::<__m128i>();
            let mut m = 0u64;
            for k in 0..4 {
                let v = _mm_loadu_si128(p.add(k));
                let hit = _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs));
                m |= u64::from(_mm_movemask_epi8(hit) as u16) << (16 * k);
                min = _mm_min_epu8(min, v);
                any = _mm_or_si128(any, v);
            }
            m
        };
        specials.extend(blocks.map(|block| mark(block.try_into().expect("64 bytes"))));
        if !rest.is_empty() {
            // Spaces are neither marked, nor high, nor control characters.
            specials.push(mark(&pad));
        }
        // Some byte is <= 0x1f exactly when max(min, 0x1f) == 0x1f somewhere.
        let control = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(min, ctl), ctl)) != 0;
        (_mm_movemask_epi8(any) != 0, control)
    }
}

/// [`index`], marking control characters too.
fn index_all(b: &[u8], specials: &mut Vec<u64>) -> bool {
    let blocks = b.chunks_exact(64);
    let rest = blocks.remainder();
    let mut high = false;
    specials.clear();
    specials.extend(blocks.map(|block| {
        let (m, h) = mark(block.try_into().expect("64 bytes"));
        high |= h;
        m
    }));
    if !rest.is_empty() {
        // Spaces are neither marked nor high.
        let mut pad = [b' '; 64];
        pad[..rest.len()].copy_from_slice(rest);
        let (m, h) = mark(&pad);
        specials.push(m);
        high |= h;
    }
    high
}

/// The next marked byte at or after `i`.
#[inline(always)]
fn next_special(specials: &[u64], i: usize) -> Option<usize> {
    let mut w = i / 64;
    let mut m = *specials.get(w)? & (!0u64 << (i % 64));
    while m == 0 {
        w += 1;
        m = *specials.get(w)?;
    }
    Some(w * 64 + m.trailing_zeros() as usize)
}

/// One block's marks (bit `i` for byte `i`), and whether it has a byte
/// ≥ 0x80.
#[inline(always)]
fn mark(block: &[u8; 64]) -> (u64, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86_64 baseline; the loads read
        // block[16k..16k + 16] for k < 4, inside the 64-byte block, and
        // `loadu` has no alignment requirement.
        unsafe {
            let p = block.as_ptr().cast::<__m128i>();
            let v = [
                _mm_loadu_si128(p),
                _mm_loadu_si128(p.add(1)),
                _mm_loadu_si128(p.add(2)),
                _mm_loadu_si128(p.add(3)),
            ];
            let (q, bs, ctl) = (
                _mm_set1_epi8(b'"' as i8),
                _mm_set1_epi8(b'\\' as i8),
                _mm_set1_epi8(0x1f),
            );
            let mut m = 0u64;
            for (k, &v) in v.iter().enumerate() {
                let hit = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)),
                    // c <= 0x1f (unsigned) exactly when max(c, 0x1f) == 0x1f.
                    _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl),
                );
                m |= u64::from(_mm_movemask_epi8(hit) as u16) << (16 * k);
            }
            // The top bits of the bytes themselves: the non-ASCII ones.
            let any = _mm_or_si128(_mm_or_si128(v[0], v[1]), _mm_or_si128(v[2], v[3]));
            (m, _mm_movemask_epi8(any) != 0)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    mark_swar(block)
}

/// [`mark`] eight bytes at a time in a `u64`, for targets without SSE2.
/// Every byte's flag is exact (no borrow crosses a byte).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn mark_swar(block: &[u8; 64]) -> (u64, bool) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // The top bit of each byte, gathered into the low 8 bits.
    let gather = |t: u64| ((t >> 7) & LO).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    // Top bit set exactly in the zero bytes of `y`.
    let zero = |y: u64| !(((y & LOW7) + LOW7) | y | LOW7);
    let (mut m, mut h) = (0u64, 0u64);
    for (k, c) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        // Top bit set exactly in the bytes < 0x20: (c & 0x7f) + 0x60 carries
        // into the top bit when c & 0x7f >= 0x20, and never past it.
        let ctl = !(((x & LOW7) + LO * 0x60) | x) & HI;
        let t = zero(x ^ (LO * u64::from(b'"'))) | zero(x ^ (LO * u64::from(b'\\'))) | ctl;
        m |= gather(t & HI) << (8 * k);
        h |= x & HI;
    }
    (m, h != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The marks a plain loop gives.
    fn plain_marks(b: &[u8]) -> (Vec<u64>, bool) {
        let mut m = vec![0u64; b.len().div_ceil(64)];
        for (i, &c) in b.iter().enumerate() {
            if c == b'"' || c == b'\\' || c < 0x20 {
                m[i / 64] |= 1 << (i % 64);
            }
        }
        (m, b.iter().any(|&c| c >= 0x80))
    }

    #[test]
    fn the_index_matches_a_plain_scan() {
        let all: Vec<u8> = (0u8..=255).cycle().take(700).collect();
        let mut specials = Vec::new();
        for len in [0, 1, 13, 63, 64, 65, 127, 128, 200, 700] {
            for start in [0, 1, 7, 60] {
                let d = &all[start.min(all.len() - len)..][..len];
                let high = index(d, &mut specials);
                assert_eq!((specials.clone(), high), plain_marks(d), "{len} {start}");
            }
        }
        // Without control characters (the quotes-only first pass), and with
        // one anywhere.
        let printable: Vec<u8> = (0x20u8..=0xff).cycle().take(700).collect();
        for len in [0, 1, 13, 63, 64, 65, 127, 128, 200, 700] {
            let d = &printable[..len];
            let high = index(d, &mut specials);
            assert_eq!((specials.clone(), high), plain_marks(d), "{len}");
            for at in [0, len / 2, len.saturating_sub(1)] {
                if at < len {
                    let mut c = d.to_vec();
                    c[at] = b'\n';
                    let high = index(&c, &mut specials);
                    assert_eq!((specials.clone(), high), plain_marks(&c), "{len} {at}");
                }
            }
        }
        // ASCII only, and one high byte anywhere.
        let ascii: Vec<u8> = (0u8..0x80).cycle().take(300).collect();
        assert!(!index(&ascii, &mut specials));
        for at in 0..ascii.len() {
            let mut d = ascii.clone();
            d[at] = 0xc3;
            assert!(index(&d, &mut specials), "{at}");
            assert_eq!(specials, plain_marks(&d).0);
        }
    }

    /// Both quotes-only first passes, whichever one `index` picks on this
    /// CPU: the same marks as a plain scan, and the same flags.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sse2_and_avx2_passes_match_a_plain_scan() {
        type Pass = fn(&[u8], &mut Vec<u64>) -> (bool, bool);
        let mut passes: Vec<(&str, Pass)> = vec![("sse2", index_quotes)];
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            passes.push(("avx2", |b, m| unsafe { index_quotes_avx2(b, m) }));
        }
        let printable: Vec<u8> = (0x20u8..=0xff).cycle().take(700).collect();
        let mut specials = Vec::new();
        for (name, pass) in passes {
            for len in [0, 1, 13, 31, 32, 33, 63, 64, 65, 127, 128, 200, 700] {
                let d = &printable[..len];
                let (high, control) = pass(d, &mut specials);
                assert!(!control, "{name} {len}");
                assert_eq!((specials.clone(), high), plain_marks(d), "{name} {len}");
                let ascii: Vec<u8> = d.iter().map(|&c| c & 0x7f | 0x20).collect();
                let (high, _) = pass(&ascii, &mut specials);
                assert_eq!(
                    (specials.clone(), high),
                    plain_marks(&ascii),
                    "{name} {len}"
                );
                for at in [0, len / 2, len.saturating_sub(1)] {
                    if at < len {
                        let mut c = d.to_vec();
                        c[at] = 0x1f;
                        assert!(pass(&c, &mut specials).1, "{name} {len} {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_swar_marks_match_a_plain_scan() {
        let mut block = [0u8; 64];
        for round in 0..(256 * 4) {
            for (i, b) in block.iter_mut().enumerate() {
                *b = ((round * 64 + i) * 7 + round / 3) as u8;
                if round % 2 == 1 {
                    *b &= 0x7f;
                }
            }
            let (m, h) = mark_swar(&block);
            let (pm, ph) = plain_marks(&block);
            assert_eq!((m, h), (pm[0], ph), "round {round}");
            assert_eq!(mark(&block), (m, h));
        }
    }

    #[test]
    fn next_special_finds_every_mark() {
        let d: Vec<u8> = (0..300u32)
            .map(|i| if i % 37 == 5 { b'"' } else { b'a' })
            .collect();
        let mut specials = Vec::new();
        index(&d, &mut specials);
        for i in 0..d.len() {
            let want = d[i..].iter().position(|&c| c == b'"').map(|p| p + i);
            assert_eq!(next_special(&specials, i), want, "{i}");
        }
        assert_eq!(next_special(&specials, d.len()), None);
        assert_eq!(next_special(&specials, d.len() + 100), None);
    }

    /// A sink that keeps every pair, owned, for the tests.
    #[derive(Debug, Default)]
    pub(crate) struct Flat {
        pub pairs: Vec<(String, Owned)>,
        pub sourcetype: Option<String>,
        pub log_events: bool,
    }

    /// A pair's value, owned; `Str`'s flag says whether it was borrowed.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Owned {
        Str(String, bool),
        Other(Scalar<'static>),
    }

    impl<'a> Sink<'a> for Flat {
        type Key = ();

        fn key(&mut self, _: &str) {}

        fn pair(&mut self, path: Path<'_, 'a>, _: (), value: Value<'a>, unescaped: &str) {
            let v = match value.resolve(unescaped) {
                Scalar::Str(s) => Owned::Str(s.to_owned(), matches!(value, Value::Str(_))),
                Scalar::U64(n) => Owned::Other(Scalar::U64(n)),
                Scalar::I64(n) => Owned::Other(Scalar::I64(n)),
                Scalar::F64(n) => Owned::Other(Scalar::F64(n)),
                Scalar::Bool(b) => Owned::Other(Scalar::Bool(b)),
                Scalar::Null => Owned::Other(Scalar::Null),
            };
            self.pairs.push((path.as_str().to_owned(), v));
        }
    }

    impl Flat {
        /// The first value at a dotted path, if present.
        pub fn get(&self, path: &str) -> Option<Scalar<'_>> {
            self.pairs
                .iter()
                .find(|(k, _)| k == path)
                .map(|(_, v)| match v {
                    Owned::Str(s, _) => Scalar::Str(s),
                    Owned::Other(o) => *o,
                })
        }
    }

    /// Flattens a record into a [`Flat`].
    pub(crate) fn flatten(bytes: &[u8], max_depth: usize) -> Result<Flat, ScanError> {
        let mut flat = Flat::default();
        let mut scratch = Scratch::default();
        let root = scan(bytes, max_depth, &mut scratch, &mut flat)?;
        flat.sourcetype = root.sourcetype.map(|v| {
            v.resolve(scratch.unescaped())
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        flat.log_events = root.log_events;
        Ok(flat)
    }

    fn keys(f: &Flat) -> Vec<String> {
        f.pairs.iter().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn scratch_is_reused_and_escapes_are_ranges() {
        let mut scratch = Scratch::default();
        let mut flat = Flat::default();
        scan(br#"{"a":"x\ny","b":"\u00e9"}"#, 8, &mut scratch, &mut flat).unwrap();
        assert_eq!(scratch.unescaped(), "x\nyé");
        assert_eq!(flat.get("b"), Some(Scalar::Str("é")));
        let cap = scratch.unescaped.capacity();
        scan(br#"{"a":"plain"}"#, 8, &mut scratch, &mut flat).unwrap();
        assert_eq!(scratch.unescaped(), "");
        assert_eq!(scratch.unescaped.capacity(), cap);
    }

    /// A sink whose reading of a path is a hash of it, and which checks that
    /// every pair comes with the reading of its own path.
    #[derive(Default)]
    struct Checked {
        readings: usize,
        pairs: Vec<String>,
    }

    fn reading(path: &str) -> u64 {
        path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    impl<'a> Sink<'a> for Checked {
        type Key = u64;

        fn key(&mut self, path: &str) -> u64 {
            self.readings += 1;
            reading(path)
        }

        fn pair(&mut self, path: Path<'_, 'a>, key: u64, value: Value<'a>, unescaped: &str) {
            assert_eq!(key, reading(path.as_str()), "{}", path.as_str());
            let v = value.resolve(unescaped);
            self.pairs.push(format!("{}={v:?}", path.as_str()));
        }
    }

    /// Records scanned after others (whose shape the scanner remembers)
    /// read exactly as they do on their own, and each key comes with its
    /// own reading.
    #[test]
    fn the_shape_never_changes_what_is_read() {
        let long = "k".repeat(40);
        let mid = "m".repeat(24);
        // Tags either side of 16 and 32 bytes, and longer.
        let edges = format!(
            r#"{{"{}":"x","{}":"x","{}":"x","{}":"x","{long}":"x"}}"#,
            &mid[..14],
            &mid[..15],
            &long[..30],
            &long[..31]
        );
        let recs: Vec<String> = vec![
            r#"{"a":1,"b":"x","c":{"d":2},"e":[1]}"#.into(),
            r#"{"a":1,"b":"x","c":{"d":2},"e":[1]}"#.into(),
            r#"{"a":1,"bb":"x","c":{"d":2}}"#.into(),
            r#"{"a":1,"b":"x"}"#.into(),
            r#"{"a" :1,"b" : "x"}"#.into(),
            r#"{"ab":1,"b":2}"#.into(),
            r#"{"ab":1,"b":2}"#.into(),
            r#"{"a":1,"b"":2}"#.into(),
            r#"{"a":1,"b":2,"b":3}"#.into(),
            r#"{"sourcetype":"s","event":{"a":1,"b":2,"messageType":3}}"#.into(),
            r#"{"sourcetype":"s","event":{"a":1,"b":2}}"#.into(),
            r#"{"":{"a":1,"b":2}}"#.into(),
            r#"{"event":1,"sourcetype":2,"logEvents":3}"#.into(),
            r#"{"event":{"x":1},"logEvents":[],"messageType":"m"}"#.into(),
            format!(r#"{{"{long}":1,"{mid}":2,"é":3}}"#),
            format!(r#"{{"{long}":1,"{mid}":2,"é":3}}"#),
            format!(r#"{{"{}x":1,"{}y":2,"é":3}}"#, &long[1..], &mid[1..]),
            format!(r#"{{"{long}":1,"{mid}":2,"é":3}}"#),
            r#"{"a":1,"b":2"#.into(),
            r#"{"a":1,"b":2}"#.into(),
            // Runs of string members, and what ends a run.
            r#"{"a":"x","b":"y","c":"z"}"#.into(),
            r#"{"a":"x","b":"y","c":"z"}"#.into(),
            r#"{"a":"x","b":"y" ,"c":"z"}"#.into(),
            r#"{"a":"x", "b":"y","c":"z"}"#.into(),
            r#"{"a":"x","b":"y\n","c":"z"}"#.into(),
            r#"{"a":"x","b":1,"c":"z"}"#.into(),
            r#"{"a":"x","bb":"y","c":"z"}"#.into(),
            r#"{"a":"x","b":"y","c":"z","d":"w"}"#.into(),
            r#"{"a":"x","b":"y"}"#.into(),
            r#"{"a":"x","b":"y","#.into(),
            r#"{"a":"x","b":"y""#.into(),
            r#"{"a":"x","b":"y"""#.into(),
            r#"{"a":"x","b":"y","c""#.into(),
            r#"{"a":"x","b":"y","c":"z"#.into(),
            r#"{"a":"x","b":"y","c":"z"}"#.into(),
            "{\"a\":\"x\",\"b\":\"y\u{1}\",\"c\":\"z\"}".into(),
            r#"{"a":"x","b":"y","c":"z"} x"#.into(),
            r#"{"a":"x","b":"y","c":{"d":"z"}}"#.into(),
            r#"{"a":"x","b":"y","c":{"d":"z"}}"#.into(),
            r#"{"a":"x","b":"y","sourcetype":"s"}"#.into(),
            r#"{"a":"x","b":"y","sourcetype":"s"}"#.into(),
            r#"{"a":"x","b":"y","messageType":"m"}"#.into(),
            r#"{"a":"x","b":"y","messageType":"m"}"#.into(),
            // The same, twice, then with the tags one byte off.
            edges.clone(),
            edges.clone(),
            format!(
                r#"{{"{}":"x","{}":"x","{}y":"x","{}":"x","{long}y":"x"}}"#,
                &mid[..14],
                &mid[..15],
                &long[..29],
                &long[..31]
            ),
            edges,
        ];
        let mut warm = Scratch::default();
        let mut warm_readings = 0;
        let mut fresh_readings = 0;
        for rec in recs.iter().chain(recs.iter()) {
            let mut a = Checked::default();
            let ra = scan(rec.as_bytes(), 8, &mut warm, &mut a);
            let mut b = Checked::default();
            let rb = scan(rec.as_bytes(), 8, &mut Scratch::default(), &mut b);
            assert_eq!(format!("{ra:?}"), format!("{rb:?}"), "{rec}");
            assert_eq!(a.pairs, b.pairs, "{rec}");
            warm_readings += a.readings;
            fresh_readings += b.readings;
        }
        // The shape saves readings.
        assert!(
            warm_readings < fresh_readings,
            "{warm_readings} {fresh_readings}"
        );
    }

    /// Records of several layouts, interleaved (one stream carrying several
    /// templates or feeds): once each layout has been seen, every key is
    /// read through a shape, whatever the order; one layout more than
    /// [`SHAPES`] takes the place of the one used least lately; and what is
    /// read never changes.
    #[test]
    fn interleaved_layouts_each_keep_their_shape() {
        let long = "L".repeat(40);
        let mut layouts: Vec<String> = vec![
            r#"{"requestId":"a","ip":"1.2.3.4","status":"200","routeKey":"GET /x"}"#.into(),
            r#"{"requestId":"b","ip":"1.2.3.4","httpMethod":"GET","status":200,"n":[1,{"m":1}]}"#
                .into(),
            r#"{"eventType":"MESSAGE","requestId":"c","connectionId":"x=","status":"200"}"#.into(),
            format!(r#"{{"requestId":"d","{long}":"v","ip":"5.6.7.8","{long}x":1}}"#),
        ];
        // More feeds, none of whose keys another layout has at that place
        // (so that each makes one shape).
        for i in layouts.len()..=SHAPES {
            layouts.push(format!(r#"{{"a{i}":"e","b{i}":{i},"c{i}":"404"}}"#));
        }
        let (kept, extra) = layouts.split_at(SHAPES);
        let mut warm = Scratch::default();
        let read = |scratch: &mut Scratch<u64>, rec: &str| {
            let mut c = Checked::default();
            let r = scan(rec.as_bytes(), 8, scratch, &mut c);
            (format!("{r:?}"), c.pairs, c.readings)
        };
        // Learn the first SHAPES, then read them in several orders.
        for rec in kept {
            read(&mut warm, rec);
        }
        let forward: Vec<usize> = (0..SHAPES).collect();
        let backward: Vec<usize> = (0..SHAPES).rev().collect();
        let strided: Vec<usize> = (0..SHAPES).map(|i| i * 7 % SHAPES).collect();
        let last: Vec<usize> = (0..SHAPES).map(|i| (i + 2) % SHAPES).collect();
        for order in [&forward, &backward, &strided, &last] {
            for &i in order {
                let (r, pairs, readings) = read(&mut warm, &kept[i]);
                let (rf, pairs_f, _) = read(&mut Scratch::default(), &kept[i]);
                assert_eq!((r, pairs), (rf, pairs_f), "{}", kept[i]);
                assert_eq!(readings, 0, "layout {i} read through its shape");
            }
        }
        // One layout more takes the place of the one used least lately (2,
        // first in the last order above); the others are kept.
        let (_, _, readings) = read(&mut warm, &extra[0]);
        assert!(readings > 0);
        for i in (0..SHAPES).filter(|&i| i != 2) {
            let (_, _, readings) = read(&mut warm, &kept[i]);
            assert_eq!(readings, 0, "layout {i} kept");
        }
        let (_, _, readings) = read(&mut warm, &extra[0]);
        assert_eq!(readings, 0, "the new layout kept");
        let (_, _, readings) = read(&mut warm, &kept[2]);
        assert!(readings > 0, "layout 2 was replaced");
    }

    #[test]
    fn nested_and_dotted_keys_flatten_alike() {
        let a = flatten(br#"{"authorizer":{"claims":{"iss":"x"}},"n":1}"#, 8).unwrap();
        let b = flatten(br#"{"authorizer.claims.iss":"x","n":1}"#, 8).unwrap();
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a.get("authorizer.claims.iss"), Some(Scalar::Str("x")));
        assert_eq!(a.get("n"), Some(Scalar::U64(1)));
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
        assert_eq!(f.pairs[0].1, Owned::Str("plain".into(), true));
        assert_eq!(f.pairs[1].1, Owned::Str("esc\"aped é😀\n".into(), false));
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
        assert_eq!(f.get("u"), Some(Scalar::U64(u64::MAX)));
        assert_eq!(f.get("i"), Some(Scalar::I64(-5)));
        assert_eq!(f.get("f"), Some(Scalar::F64(1500.0)));
        assert_eq!(f.get("big"), Some(Scalar::F64(18446744073709551616.0)));
        assert_eq!(f.get("m"), Some(Scalar::I64(i64::MIN)));
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
        // Invalid UTF-8 makes a record not JSON wherever it is, also past
        // the point where nesting runs too deep.
        let deep_then_bad = b"{\"a\":{\"b\":{\"c\":1}},\"d\":\"\xff\"}";
        assert_eq!(flatten(deep_then_bad, 2).unwrap_err(), ScanError::NotJson);
        assert!(flatten(&deep_then_bad[..], 8).is_err());
        let deep_then_ok = "{\"a\":{\"b\":{\"c\":1}},\"d\":\"é\"}";
        assert_eq!(
            flatten(deep_then_ok.as_bytes(), 2).unwrap_err(),
            ScanError::TooDeep
        );
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
            b"{\"\xff\":1}",
            b"{\"a\":[\"\xc3\"]}",
            b"{\"a\":\"\xc3\xa9\\n\xe2\x80\"}",
            b"{\"a\":\"\\n\xed\xa0\x80\"}",
            b"{\"a\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}",
            b"{\"a\":\"\xc0\xaf\"}",
            b"{\"a\":1}\xc3\xa9",
            b"{\"a\":\xc3\xa9}",
            b"[\"\xff\"]",
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
            br#"{"a":"x","b":"y"}"#,
            br#"{"a":"x","b":"y",}"#,
            br#"{"a":"x","b":"y"}}"#,
            br#"{"a":"x","b":"y""c":"z"}"#,
            br#"{"a":"x","b":"y","c":"z\"}"#,
            br#"{"a":"x","b":"y\"","c":"z"}"#,
            b"{\"a\":\"x\",\"b\":\"y\t\"}",
            b"{\"a\":\"x\",\"b\":\"\xff\"}",
        ];
        for c in cases {
            let ours = flatten(c, 16);
            let theirs = serde_json::from_slice::<serde_json::Value>(c);
            // Read again through the shape of a valid record of the same
            // keys, which the scanner then knows.
            let mut warm = Scratch::default();
            let mut valid = c.to_vec();
            valid.retain(|&b| b != b'\\');
            let _ = scan(&valid, 16, &mut warm, &mut Flat::default());
            let mut again = Flat::default();
            let warm_ok = match scan(c, 16, &mut warm, &mut again) {
                Ok(_) => again.pairs == ours.as_ref().map(|f| f.pairs.clone()).unwrap_or_default(),
                Err(e) => Err(&e) == ours.as_ref().map(drop),
            };
            assert!(warm_ok, "{:?}", String::from_utf8_lossy(c));
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
