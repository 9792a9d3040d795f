//! Snapshot encoding of a [`TenantModel`]: versioned, checksummed bytes.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `TGDM` |
//! | 2 | format version ([`VERSION`]) |
//! | 2 | reserved, 0 |
//! | 8 | payload length |
//! | 32 | BLAKE3 hash of the payload |
//! | n | payload: the model, serde-encoded with postcard |
//!
//! Decoding checks all of these, that the snapshot belongs to the tenant
//! asked for, and the decoded model's shape ([`TenantModel::check_shape`]:
//! the BLAKE3 hash is unkeyed, so a rehashed or crafted payload can decode
//! into vectors of the wrong lengths, which the hot path would index out of
//! bounds at the tenant's next event); any failure is a [`SnapshotError`],
//! never a panic, and the engine starts that tenant cold. Encoding is
//! deterministic (no maps with random order), so equal models give equal
//! bytes. Pure: no I/O here.

use tollgate_events::TenantId;

use crate::model::{TenantModel, TAKEOVER_REACH};

pub const MAGIC: [u8; 4] = *b"TGDM";
/// Bump on any change to [`TenantModel`]'s serialized shape or to the
/// hashing in [`crate::hash`]. Formats 6 and 7 are read too: 7 only
/// appended the access detector's takeover sessions, which a format-6 model
/// starts without, and 8 the counts of how large the tenant's takeover
/// sessions grew, which an older model starts at zero. Format 9 gave each
/// principal its usual numeric surprise (in the 16 bits its network and
/// user-agent counts gave up): older principals start at zero, as new ones.
/// Format 10 marks each takeover session whose user agent was familiar
/// to its principal (older formats opened sessions only on a new one).
/// Format 11 appended the per-client 404 counts, which an older model
/// gains if its budget has room for them.
pub const VERSION: u16 = 11;
const HEADER: usize = 4 + 2 + 2 + 8 + 32;

/// Why a snapshot was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is shorter than its header")]
    Truncated,
    #[error("not a tollgate model snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format version {0} is not supported (this build reads {VERSION})")]
    Version(u16),
    #[error("snapshot length field does not match its size")]
    Length,
    #[error("snapshot checksum mismatch")]
    Checksum,
    #[error("snapshot payload does not decode: {0}")]
    Decode(String),
    #[error("snapshot belongs to tenant {found}, not {expected}")]
    WrongTenant { expected: String, found: String },
    #[error("snapshot model has the wrong shape: {0}")]
    Shape(String),
}

/// A decoded model breaks an invariant its code relies on: which field
/// (a path from the model, `sources[apigw].volume.errors.season`), and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(String);

impl ShapeError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        ShapeError(msg.into())
    }

    /// The same error, for a field inside `outer`.
    pub(crate) fn within(self, outer: impl std::fmt::Display) -> Self {
        ShapeError(format!("{outer}.{}", self.0))
    }
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

/// `field` has exactly `expected` entries.
pub(crate) fn check_len(field: &str, len: usize, expected: usize) -> Result<(), ShapeError> {
    if len == expected {
        Ok(())
    } else {
        Err(ShapeError::new(format!(
            "{field} has {len} entries, expected {expected}"
        )))
    }
}

/// `field` has at most `max` entries.
pub(crate) fn check_max(field: &str, len: usize, max: usize) -> Result<(), ShapeError> {
    if len <= max {
        Ok(())
    } else {
        Err(ShapeError::new(format!(
            "{field} has {len} entries, at most {max} allowed"
        )))
    }
}

/// `field` is a table of whole buckets of `ways` slots, at least one.
pub(crate) fn check_buckets(field: &str, len: usize, ways: usize) -> Result<(), ShapeError> {
    if len > 0 && len.is_multiple_of(ways) {
        Ok(())
    } else {
        Err(ShapeError::new(format!(
            "{field} has {len} entries, expected a non-zero multiple of {ways}"
        )))
    }
}

/// Every value of `field` is finite (a NaN or infinity in a model's state
/// stays there and poisons every score computed from it).
pub(crate) fn check_finite(
    field: &str,
    values: impl IntoIterator<Item = f64>,
) -> Result<(), ShapeError> {
    match values.into_iter().find(|v| !v.is_finite()) {
        None => Ok(()),
        Some(v) => Err(ShapeError::new(format!(
            "{field} holds {v}, expected a finite number"
        ))),
    }
}

/// Every value of `field` is a finite number above zero (a scale or a
/// deviation something is divided by).
pub(crate) fn check_positive(
    field: &str,
    values: impl IntoIterator<Item = f64>,
) -> Result<(), ShapeError> {
    match values.into_iter().find(|v| !(v.is_finite() && *v > 0.0)) {
        None => Ok(()),
        Some(v) => Err(ShapeError::new(format!(
            "{field} holds {v}, expected a finite number > 0"
        ))),
    }
}

/// `field` has at most `max` items and each passes `check` (its errors
/// named `field[i]. …`).
pub(crate) fn check_each<T>(
    field: &str,
    items: &[T],
    max: usize,
    check: impl Fn(&T) -> Result<(), ShapeError>,
) -> Result<(), ShapeError> {
    check_max(field, items.len(), max)?;
    for (i, x) in items.iter().enumerate() {
        check(x).map_err(|e| e.within(format!("{field}[{i}]")))?;
    }
    Ok(())
}

/// Beyond chrono's range of instants (±262,143 years, under 8.3e15 ms), and
/// small enough that the difference of two such times never overflows.
const MAX_TIME_MS: u64 = 1 << 53;

/// `field` is an event time (ms) that event times can be subtracted from:
/// with a stored time near `i64::MIN`, `now - last` overflows, and a volume
/// series whose open interval started there would close every interval
/// from there to now, one at a time.
pub(crate) fn check_time(field: &str, ms: i64) -> Result<(), ShapeError> {
    if ms.unsigned_abs() <= MAX_TIME_MS {
        Ok(())
    } else {
        Err(ShapeError::new(format!(
            "{field} is {ms}, outside the range of event times"
        )))
    }
}

/// Encode a model.
pub fn encode(m: &TenantModel) -> Vec<u8> {
    let payload = postcard::to_stdvec(m).expect("a TenantModel always serializes");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(blake3::hash(&payload).as_bytes());
    out.extend_from_slice(&payload);
    out
}

thread_local! {
    /// The format of the snapshot this thread is decoding ([`VERSION`] when
    /// none): the fields whose shape changed in place read it to decode
    /// their older shape (principal slots before format 9, takeover
    /// sessions before format 10).
    static DECODING: std::cell::Cell<u16> = const { std::cell::Cell::new(VERSION) };
}

/// The format of the snapshot being decoded on this thread, [`VERSION`]
/// outside [`decode`].
pub(crate) fn decoding_format() -> u16 {
    DECODING.with(std::cell::Cell::get)
}

/// Runs `f` with [`decoding_format`] at `version`.
fn decoding<T>(version: u16, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DECODING.with(|c| c.set(VERSION));
        }
    }
    DECODING.with(|c| c.set(version));
    let _reset = Reset;
    f()
}

/// Decode and verify a snapshot for `tenant`.
pub fn decode(bytes: &[u8], tenant: &TenantId) -> Result<TenantModel, SnapshotError> {
    if bytes.len() < HEADER {
        return Err(SnapshotError::Truncated);
    }
    if bytes[..4] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if !(6..=VERSION).contains(&version) {
        return Err(SnapshotError::Version(version));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(SnapshotError::Length);
    }
    if blake3::hash(payload).as_bytes() != &bytes[16..48] {
        return Err(SnapshotError::Checksum);
    }
    let upgraded;
    let payload = match version {
        // format 7 appended the takeover sessions (an empty list: 0) and
        // their room (1 until fitted below) to format 6's fields, format 8
        // the takeover session sizes (zero counts, a byte each), and
        // format 11 the scan tracks (none: the `None` tag, given them
        // below where the budget has room)
        6 => {
            upgraded = [payload, &[0, 1], &[0; TAKEOVER_REACH], &[0]].concat();
            &upgraded[..]
        }
        7 => {
            upgraded = [payload, &[0; TAKEOVER_REACH], &[0]].concat();
            &upgraded[..]
        }
        8..=10 => {
            upgraded = [payload, &[0]].concat();
            &upgraded[..]
        }
        _ => payload,
    };
    let mut m = decoding(version, || postcard::from_bytes::<TenantModel>(payload))
        .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if version == 6 {
        m.fit_takeover_cap();
    }
    if version <= 10 {
        m.fit_scans();
    }
    if m.tenant() != tenant {
        return Err(SnapshotError::WrongTenant {
            expected: tenant.to_string(),
            found: m.tenant().to_string(),
        });
    }
    m.check_shape()
        .map_err(|e| SnapshotError::Shape(e.to_string()))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectConfig;

    fn model() -> (TenantModel, TenantId) {
        let cfg = DetectConfig::default().check().unwrap();
        let t = TenantId::new("acme").unwrap();
        (TenantModel::new(t.clone(), &cfg), t)
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let (m, t) = model();
        let b = encode(&m);
        let back = decode(&b, &t).unwrap();
        assert_eq!(back, m);
        assert_eq!(encode(&back), b);
    }

    #[test]
    fn every_kind_of_damage_is_an_error() {
        let (m, t) = model();
        let b = encode(&m);
        assert_eq!(decode(&b[..10], &t), Err(SnapshotError::Truncated));
        let mut x = b.clone();
        x[0] = b'X';
        assert_eq!(decode(&x, &t), Err(SnapshotError::BadMagic));
        let mut x = b.clone();
        x[4] = 99;
        assert_eq!(decode(&x, &t), Err(SnapshotError::Version(99)));
        assert_eq!(decode(&b[..b.len() - 1], &t), Err(SnapshotError::Length));
        let mut x = b.clone();
        let n = x.len();
        x[n - 3] ^= 0x40;
        assert_eq!(decode(&x, &t), Err(SnapshotError::Checksum));
        let other = TenantId::new("other").unwrap();
        assert!(matches!(
            decode(&b, &other),
            Err(SnapshotError::WrongTenant { .. })
        ));
        // a valid checksum over garbage still fails cleanly
        let garbage = vec![0xffu8; 40];
        let mut x = Vec::new();
        x.extend_from_slice(&MAGIC);
        x.extend_from_slice(&VERSION.to_le_bytes());
        x.extend_from_slice(&0u16.to_le_bytes());
        x.extend_from_slice(&(garbage.len() as u64).to_le_bytes());
        x.extend_from_slice(blake3::hash(&garbage).as_bytes());
        x.extend_from_slice(&garbage);
        assert!(matches!(decode(&x, &t), Err(SnapshotError::Decode(_))));
    }
}
