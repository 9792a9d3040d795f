//! One pass over a JSON object that flattens it into `(dotted.path, scalar)`
//! pairs, borrowing from the input wherever the text has no escapes.
//!
//! Flattening makes the two ways operators log nested data look the same:
//! `{"authorizer":{"claims":{"iss":…}}}` and `{"authorizer.claims.iss":…}` both
//! yield the path `authorizer.claims.iss`. A Zscaler SIEM wrapper
//! (`{"sourcetype":…,"event":{…}}`) is unwrapped here: the inner object's keys
//! are flattened without the `event.` prefix and the `sourcetype` is kept.
//!
//! Arrays inside a record carry nothing Tollgate needs and are skipped (serde
//! still parses them, so malformed JSON anywhere is still an error). Nesting
//! deeper than the configured limit is an error.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// Why a record could not be flattened.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanError {
    NotJson,
    NotObject,
    TooDeep,
}

/// Flattens one JSON object. `bytes` must hold exactly one JSON value.
pub fn flatten(bytes: &[u8], max_depth: usize) -> Result<Flat<'_>, ScanError> {
    let too_deep = Cell::new(false);
    let not_object = Cell::new(false);
    let mut flat = Flat {
        pairs: Vec::with_capacity(48),
        sourcetype: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = RootSeed {
        flat: &mut flat,
        max_depth,
        too_deep: &too_deep,
        not_object: &not_object,
    };
    let res = seed.deserialize(&mut de).and_then(|()| de.end());
    match res {
        Ok(()) => Ok(flat),
        Err(_) if too_deep.get() => Err(ScanError::TooDeep),
        Err(_) if not_object.get() => Err(ScanError::NotObject),
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(ScanError::TooDeep),
        Err(_) => Err(ScanError::NotJson),
    }
}

struct RootSeed<'f, 'a, 'c> {
    flat: &'f mut Flat<'a>,
    max_depth: usize,
    too_deep: &'c Cell<bool>,
    not_object: &'c Cell<bool>,
}

impl<'de, 'f, 'c> DeserializeSeed<'de> for RootSeed<'f, 'de, 'c> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'f, 'c> Visitor<'de> for RootSeed<'f, 'de, 'c> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut ctx = Ctx {
            flat: self.flat,
            max_depth: self.max_depth,
            too_deep: self.too_deep,
            prefix: String::new(),
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == "event" {
                // Zscaler SIEM wrapper: flatten the inner object at the root.
                map.next_value_seed(WrappedSeed { ctx: &mut ctx })?;
            } else if key == "sourcetype" {
                let v = map.next_value_seed(ValueSeed {
                    ctx: &mut ctx,
                    key: Cow::Borrowed(""),
                    depth: 1,
                    capture: true,
                })?;
                if let Some(Scalar::Str(s)) = v {
                    ctx.flat.sourcetype = Some(s);
                }
            } else {
                map.next_value_seed(ValueSeed {
                    ctx: &mut ctx,
                    key,
                    depth: 1,
                    capture: false,
                })?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        self.not_object.set(true);
        Err(de::Error::custom("not an object"))
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<(), E> {
        self.not_object.set(true);
        Err(E::custom("not an object"))
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<(), E> {
        self.not_object.set(true);
        Err(E::custom("not an object"))
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<(), E> {
        self.not_object.set(true);
        Err(E::custom("not an object"))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<(), E> {
        self.not_object.set(true);
        Err(E::custom("not an object"))
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<(), E> {
        self.not_object.set(true);
        Err(E::custom("not an object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_object.set(true);
        Err(E::custom("not an object"))
    }
}

struct Ctx<'f, 'a, 'c> {
    flat: &'f mut Flat<'a>,
    max_depth: usize,
    too_deep: &'c Cell<bool>,
    /// Dotted path of the object being visited, empty at the root.
    prefix: String,
}

impl<'a> Ctx<'_, 'a, '_> {
    fn push(&mut self, key: Cow<'a, str>, v: Scalar<'a>) {
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
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Visits one value. Scalars are pushed under `key` (or returned, with
/// `capture`); objects recurse with `key` appended to the prefix.
struct ValueSeed<'x, 'f, 'a, 'c> {
    ctx: &'x mut Ctx<'f, 'a, 'c>,
    key: Cow<'a, str>,
    depth: usize,
    capture: bool,
}

impl<'de> ValueSeed<'_, '_, 'de, '_> {
    fn leaf<E>(self, v: Scalar<'de>) -> Result<Option<Scalar<'de>>, E> {
        if self.capture {
            Ok(Some(v))
        } else {
            self.ctx.push(self.key, v);
            Ok(None)
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, 'de, '_> {
    type Value = Option<Scalar<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, 'de, '_> {
    type Value = Option<Scalar<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.leaf(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.leaf(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.leaf(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.leaf(Scalar::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.leaf(Scalar::I64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.leaf(Scalar::F64(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.leaf(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.leaf(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.leaf(Scalar::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.depth >= self.ctx.max_depth {
            self.ctx.too_deep.set(true);
            return Err(de::Error::custom("nesting too deep"));
        }
        while seq
            .next_element_seed(SkipSeed {
                depth: self.depth + 1,
                max_depth: self.ctx.max_depth,
                too_deep: self.ctx.too_deep,
            })?
            .is_some()
        {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.depth >= self.ctx.max_depth {
            self.ctx.too_deep.set(true);
            return Err(de::Error::custom("nesting too deep"));
        }
        if self.capture {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        }
        let saved = self.ctx.prefix.len();
        if !self.ctx.prefix.is_empty() {
            self.ctx.prefix.push('.');
        }
        self.ctx.prefix.push_str(&self.key);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            map.next_value_seed(ValueSeed {
                ctx: &mut *self.ctx,
                key,
                depth: self.depth + 1,
                capture: false,
            })?;
        }
        self.ctx.prefix.truncate(saved);
        Ok(None)
    }
}

/// Skips a value inside an array, still holding it to the depth limit.
struct SkipSeed<'c> {
    depth: usize,
    max_depth: usize,
    too_deep: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for SkipSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SkipSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= self.max_depth {
            self.too_deep.set(true);
            return Err(de::Error::custom("nesting too deep"));
        }
        while seq
            .next_element_seed(SkipSeed {
                depth: self.depth + 1,
                ..self
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= self.max_depth {
            self.too_deep.set(true);
            return Err(de::Error::custom("nesting too deep"));
        }
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(SkipSeed {
                depth: self.depth + 1,
                ..self
            })?;
        }
        Ok(())
    }
}

/// The value of a root-level `event` key: an object is flattened at the root
/// (the Zscaler wrapper); anything else is an ordinary field named `event`.
struct WrappedSeed<'x, 'f, 'a, 'c> {
    ctx: &'x mut Ctx<'f, 'a, 'c>,
}

impl<'de> DeserializeSeed<'de> for WrappedSeed<'_, '_, 'de, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! wrapped_leaf {
    ($name:ident, $t:ty, $ctor:expr) => {
        fn $name<E: de::Error>(self, v: $t) -> Result<(), E> {
            #[allow(clippy::redundant_closure_call)]
            self.ctx.push(Cow::Borrowed("event"), $ctor(v));
            Ok(())
        }
    };
}

impl<'de> Visitor<'de> for WrappedSeed<'_, '_, 'de, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    wrapped_leaf!(visit_borrowed_str, &'de str, |v| Scalar::Str(
        Cow::Borrowed(v)
    ));
    wrapped_leaf!(visit_str, &str, |v: &str| Scalar::Str(Cow::Owned(
        v.to_owned()
    )));
    wrapped_leaf!(visit_string, String, |v| Scalar::Str(Cow::Owned(v)));
    wrapped_leaf!(visit_u64, u64, Scalar::U64);
    wrapped_leaf!(visit_i64, i64, Scalar::I64);
    wrapped_leaf!(visit_f64, f64, Scalar::F64);
    wrapped_leaf!(visit_bool, bool, Scalar::Bool);
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.ctx.push(Cow::Borrowed("event"), Scalar::Null);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(SkipSeed {
                depth: 2,
                max_depth: self.ctx.max_depth,
                too_deep: self.ctx.too_deep,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            map.next_value_seed(ValueSeed {
                ctx: &mut *self.ctx,
                key,
                depth: 2,
                capture: false,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(f: &Flat) -> Vec<String> {
        f.pairs.iter().map(|(k, _)| k.to_string()).collect()
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
        let f = flatten(br#"{"a":"plain","b":"esc\"aped"}"#, 8).unwrap();
        assert!(matches!(f.get("a"), Some(Scalar::Str(Cow::Borrowed(_)))));
        assert_eq!(f.get("b").unwrap().as_str(), Some("esc\"aped"));
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
        // Past serde_json's own recursion limit the answer is the same.
        let very_deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
        let r = flatten(very_deep.as_bytes(), 10_000);
        assert_eq!(r.unwrap_err(), ScanError::TooDeep);
    }
}
