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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = blake3::keyed_hash(key, subject.as_bytes());
    let mut buf = [0u8; 20];
    for (i, b) in h.as_bytes()[..10].iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 15) as usize];
    }
    buf
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
    fn subject_hash_is_keyed() {
        let a = subject_hash(&[1; 32], "user");
        assert_eq!(a.len(), 20);
        assert!(!a.is_heap_allocated());
        assert_eq!(a, subject_hash(&[1; 32], "user"));
        assert_ne!(a, subject_hash(&[2; 32], "user"));
        assert!(!a.contains("user"));
    }
}
