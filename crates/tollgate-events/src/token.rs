//! Reading what a feature needs from a token, and keeping nothing else.
//!
//! A logged JWT (or `Bearer <jwt>`) has its payload segment base64url-decoded
//! without verification — Tollgate only reads `iss`, `sub` and the client id
//! from it, as the gateway already verified it. The token text is never
//! copied into an [`crate::Event`]: the subject is stored as a keyed hash.

use base64::Engine as _;
use serde::Deserialize;

#[cfg(test)]
use crate::event::Text;

/// Claims read from a JWT payload. Anything else in the token is dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TokenClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default, deserialize_with = "lenient")]
    iss: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    sub: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    azp: Option<String>,
}

/// A claim that is a string; any other JSON type reads as absent.
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// Payloads larger than this are not decoded (a JWT is a few hundred bytes).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Reads the claims of a JWT, optionally prefixed by `Bearer `. Returns `None`
/// for anything that is not a well-formed JWT (an opaque bearer token, say).
pub fn read_jwt(value: &str) -> Option<TokenClaims> {
    let v = value.trim();
    let v = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .unwrap_or(v)
        .trim();
    if v.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = v.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?; // a signature segment (possibly empty) must follow
    let payload = payload.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let p: Payload = serde_json::from_slice(&bytes).ok()?;
    Some(TokenClaims {
        iss: p.iss,
        sub: p.sub,
        client_id: p.client_id.or(p.azp),
    })
}

/// Keyed hash of a token subject: BLAKE3 keyed with the deployment's secret,
/// truncated to 80 bits, lower-case hex (20 characters, so that it and the
/// `sub:` principal derived from it are stored inline). Stable for a key,
/// useless without it; 80 bits keep collisions negligible (p < 1e-12 for a
/// million subjects per tenant).
pub fn subject_hex(key: &[u8; 32], subject: &str) -> [u8; 20] {
    to_hex(&subject_bits(key, subject))
}

/// The 80 bits [`subject_hex`] writes out.
fn subject_bits(key: &[u8; 32], subject: &str) -> [u8; 10] {
    let h = blake3::keyed_hash(key, subject.as_bytes());
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&h.as_bytes()[..10]);
    bits
}

fn to_hex(bits: &[u8; 10]) -> [u8; 20] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 20];
    for (i, b) in bits.iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 15) as usize];
    }
    buf
}

/// The keyed hashes of the subjects met last, per decoder: a user's
/// requests carry the same subject over and over, and BLAKE3's keyed hash of
/// one was ≈ 620 instructions, a tenth of decoding an API Gateway line. A
/// direct-mapped table of [`SubjectCache::SLOTS`] entries of one cache line
/// each, holding the whole subject (compared in full, so a collision of the
/// slot index is a miss, never another user's hash) and its 80 bits;
/// subjects longer than [`SubjectCache::MAX_LEN`] bytes (a UUID is 36, an
/// Entra ID `sub` 43) are hashed every time. 4,096 entries, 256 KiB per
/// decoder: the replay benchmark's first 100,000 API Gateway lines carry
/// 12,190 subjects (20 tenants), and 256 entries kept only two in five.
/// Process memory only: the subjects are never written anywhere (the record
/// they came from is in memory as long).
#[derive(Clone)]
pub struct SubjectCache {
    key: [u8; 32],
    slots: Box<[CachedSubject]>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CachedSubject {
    /// Zero-padded, as little-endian words.
    subject: [u64; SubjectCache::MAX_LEN / 8],
    bits: [u8; 10],
    /// 0: empty (an empty subject is never cached).
    len: u8,
}

// one cache line per entry
const _: () = assert!(std::mem::size_of::<CachedSubject>() == 64);

impl SubjectCache {
    const SLOTS: usize = 1 << 12;
    const MAX_LEN: usize = 48;

    pub fn new(key: [u8; 32]) -> Self {
        let empty = CachedSubject {
            subject: [0; Self::MAX_LEN / 8],
            bits: [0; 10],
            len: 0,
        };
        SubjectCache {
            key,
            slots: vec![empty; Self::SLOTS].into_boxed_slice(),
        }
    }

    /// [`subject_hex`] with this cache's key.
    #[inline]
    pub fn hex(&mut self, subject: &str) -> [u8; 20] {
        let b = subject.as_bytes();
        if b.is_empty() || b.len() > Self::MAX_LEN {
            return subject_hex(&self.key, subject);
        }
        // zero-padded to the slot's width: compared and stored as a whole
        // array, without a call to memcmp
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..b.len()].copy_from_slice(b);
        let mut padded = [0u64; Self::MAX_LEN / 8];
        for (w, c) in padded.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(c.try_into().expect("eight bytes"));
        }
        let e = &mut self.slots[slot_of(b)];
        if usize::from(e.len) != b.len() || e.subject != padded {
            *e = CachedSubject {
                subject: padded,
                bits: subject_bits(&self.key, subject),
                len: b.len() as u8,
            };
        }
        to_hex(&e.bits)
    }
}

/// Nothing about the subjects it holds.
impl std::fmt::Debug for SubjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectCache").finish_non_exhaustive()
    }
}

/// A slot of [`SubjectCache`] from the subject's first and last eight bytes
/// (`scan::words`, as the decoder's other caches key) and its length (a
/// UUID's differ in both).
#[inline]
fn slot_of(b: &[u8]) -> usize {
    let (a, z) = crate::scan::words(b);
    let h = (a ^ z.rotate_left(29) ^ b.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - SubjectCache::SLOTS.trailing_zeros())) as usize
}

/// [`subject_hex`] as text.
#[cfg(test)]
pub fn subject_hash(key: &[u8; 32], subject: &str) -> Text {
    Text::from(std::str::from_utf8(&subject_hex(key, subject)).expect("hex is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn reads_claims_from_bearer_jwt() {
        let t = jwt(r#"{"iss":"https://idp.example","sub":"u1","azp":"app","exp":1}"#);
        let c = read_jwt(&format!("Bearer {t}")).unwrap();
        assert_eq!(c.iss.as_deref(), Some("https://idp.example"));
        assert_eq!(c.sub.as_deref(), Some("u1"));
        assert_eq!(c.client_id.as_deref(), Some("app"));
    }

    #[test]
    fn opaque_and_broken_tokens_read_as_nothing() {
        assert_eq!(read_jwt("Bearer abc123"), None);
        assert_eq!(read_jwt("a.b"), None);
        assert_eq!(read_jwt("a.!!!.c"), None);
        let c = read_jwt(&jwt(r#"{"iss":5}"#)).unwrap();
        assert_eq!(c.iss, None);
    }

    #[test]
    fn the_cache_gives_each_subject_its_own_keyed_hash() {
        let key = [7; 32];
        let mut c = SubjectCache::new(key);
        // enough subjects that slots are shared and overwritten,
        // each asked for twice, interleaved with others
        let subjects: Vec<String> = (0..10_000)
            .map(|i| format!("3f1b8c2e-0d4e-4a1b-9f00-{i:012x}"))
            .chain(["a".into(), "x".repeat(48), "y".repeat(49), "".into()])
            .collect();
        for round in 0..2 {
            for (i, s) in subjects.iter().enumerate() {
                let s = if round == 1 {
                    &subjects[subjects.len() - 1 - i]
                } else {
                    s
                };
                assert_eq!(c.hex(s), subject_hex(&key, s), "{s:?}");
            }
        }
        // a hit returns what was cached for the same subject
        let s = &subjects[3];
        assert_eq!(c.hex(s), c.hex(s));
        assert_eq!(c.hex(s), subject_hex(&key, s));
    }

    #[test]
    fn subject_hash_is_keyed() {
        let a = subject_hash(&[1; 32], "user");
        assert_eq!(a.len(), 20);
        assert!(!a.is_heap_allocated());
        assert_eq!(a, subject_hash(&[1; 32], "user"));
        assert_ne!(a, subject_hash(&[2; 32], "user"));
        assert!(!a.contains("user"));
    }
}
