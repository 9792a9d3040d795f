//! KPL de-aggregation: splits a Kinesis record written by the Kinesis
//! Producer Library's aggregation into its user records. Pure: no I/O, no
//! allocation beyond the returned list, no protobuf library.
//!
//! An aggregated record is the 4 magic bytes `F3 89 9A C2`, a protobuf
//! `AggregatedRecord`, and the 16-byte MD5 of the protobuf bytes:
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;   // skipped
//! }
//! ```
//!
//! [`deaggregate`] tells the three cases apart: not aggregated (no magic —
//! the record is passed on as it is), aggregated (the user records, borrowing
//! from the input), and invalid (magic present but the MD5, the protobuf or an
//! index is wrong — the caller passes the raw record on and counts it, as the
//! KPL's own consumers do). Deliberately absent: aggregation itself (only the
//! tests build aggregates) and the `tags` field, which carries nothing
//! Tollgate uses.

use md5::{Digest, Md5};

/// The first bytes of every KPL-aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

const MD5_LEN: usize = 16;

/// One user record inside an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// The user record's own partition key (from the aggregate's key table).
    pub partition_key: &'a [u8],
    /// Its explicit hash key, when the producer set one.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// The payload, untouched.
    pub data: &'a [u8],
}

/// What a Kinesis record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deaggregated<'a> {
    /// No KPL magic: an ordinary record.
    NotAggregated,
    /// A valid aggregate and its user records, in order.
    Aggregated(Vec<UserRecord<'a>>),
    /// The magic is there but the rest is not a valid aggregate; pass the raw
    /// record on.
    Invalid(KplError),
}

/// Why a record with the KPL magic is not a valid aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KplError {
    #[error("shorter than magic + checksum")]
    TooShort,
    #[error("MD5 checksum does not match")]
    Checksum,
    #[error("malformed protobuf: {0}")]
    Protobuf(&'static str),
    #[error("partition key index out of range")]
    KeyIndex,
    #[error("aggregate holds no records")]
    Empty,
}

/// Splits `data` into its user records, if it is a KPL aggregate.
pub fn deaggregate(data: &[u8]) -> Deaggregated<'_> {
    if !data.starts_with(&KPL_MAGIC) {
        return Deaggregated::NotAggregated;
    }
    match parse(data) {
        Ok(records) => Deaggregated::Aggregated(records),
        Err(e) => Deaggregated::Invalid(e),
    }
}

fn parse(data: &[u8]) -> Result<Vec<UserRecord<'_>>, KplError> {
    if data.len() < KPL_MAGIC.len() + MD5_LEN {
        return Err(KplError::TooShort);
    }
    let (body, digest) = data[KPL_MAGIC.len()..].split_at(data.len() - KPL_MAGIC.len() - MD5_LEN);
    if Md5::digest(body).as_slice() != digest {
        return Err(KplError::Checksum);
    }
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut hash_keys: Vec<&[u8]> = Vec::new();
    // (partition key index, explicit hash key index, data), resolved once the
    // tables are complete: protobuf does not promise the tables come first.
    let mut raw: Vec<(u64, Option<u64>, &[u8])> = Vec::new();
    let mut r = Reader::new(body);
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => keys.push(r.bytes()?),
            (2, WIRE_LEN) => hash_keys.push(r.bytes()?),
            (3, WIRE_LEN) => raw.push(parse_record(r.bytes()?)?),
            _ => r.skip(wire)?,
        }
    }
    if raw.is_empty() {
        return Err(KplError::Empty);
    }
    raw.into_iter()
        .map(|(pk, ehk, data)| {
            let partition_key = *usize::try_from(pk)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or(KplError::KeyIndex)?;
            let explicit_hash_key = match ehk {
                None => None,
                Some(i) => Some(
                    *usize::try_from(i)
                        .ok()
                        .and_then(|i| hash_keys.get(i))
                        .ok_or(KplError::KeyIndex)?,
                ),
            };
            Ok(UserRecord {
                partition_key,
                explicit_hash_key,
                data,
            })
        })
        .collect()
}

fn parse_record(buf: &[u8]) -> Result<(u64, Option<u64>, &[u8]), KplError> {
    let mut pk = None;
    let mut ehk = None;
    let mut data = None;
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_VARINT) => pk = Some(r.varint()?),
            (2, WIRE_VARINT) => ehk = Some(r.varint()?),
            (3, WIRE_LEN) => data = Some(r.bytes()?),
            _ => r.skip(wire)?,
        }
    }
    match (pk, data) {
        (Some(pk), Some(data)) => Ok((pk, ehk, data)),
        (None, _) => Err(KplError::Protobuf("record without partition_key_index")),
        (_, None) => Err(KplError::Protobuf("record without data")),
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// A cursor over protobuf wire format.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, KplError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(KplError::Protobuf("truncated varint"))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(KplError::Protobuf("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(KplError::Protobuf("varint longer than 10 bytes"))
    }

    fn key(&mut self) -> Result<(u64, u8), KplError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(KplError::Protobuf("field number 0"));
        }
        Ok((field, (k & 7) as u8))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], KplError> {
        let n = usize::try_from(n).map_err(|_| KplError::Protobuf("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(KplError::Protobuf("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], KplError> {
        let n = self.varint()?;
        self.take(n)
    }

    fn skip(&mut self, wire: u8) -> Result<(), KplError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_I64 => self.take(8).map(drop),
            WIRE_LEN => self.bytes().map(drop),
            WIRE_I32 => self.take(4).map(drop),
            _ => Err(KplError::Protobuf("unsupported wire type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn field_bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = KPL_MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    /// Encodes an aggregate: each record is (key index, data).
    fn aggregate(keys: &[&[u8]], records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for k in keys {
            field_bytes(1, k, &mut body);
        }
        for (i, d) in records {
            let mut rec = Vec::new();
            varint(1 << 3, &mut rec);
            varint(*i, &mut rec);
            field_bytes(3, d, &mut rec);
            field_bytes(3, &rec, &mut body);
        }
        frame(&body)
    }

    #[test]
    fn a_hand_encoded_aggregate_yields_its_user_records() {
        // Written out byte by byte (not by the encoder above): keys "a", "bc";
        // records (0, "x"), (1, "yz") with explicit hash key index 0 and a tag.
        let body: &[u8] = &[
            0x0a, 0x01, b'a', // partition_key_table "a"
            0x0a, 0x02, b'b', b'c', // partition_key_table "bc"
            0x12, 0x01, b'7', // explicit_hash_key_table "7"
            0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, b'x', // record 0
            0x1a, 0x0d, 0x08, 0x01, 0x10, 0x00, 0x1a, 0x02, b'y', b'z', // record 1 …
            0x22, 0x03, 0x0a, 0x01, b't', // … with a tag (skipped)
        ];
        let rec = frame(body);
        assert_eq!(
            deaggregate(&rec),
            Deaggregated::Aggregated(vec![
                UserRecord {
                    partition_key: b"a",
                    explicit_hash_key: None,
                    data: b"x"
                },
                UserRecord {
                    partition_key: b"bc",
                    explicit_hash_key: Some(b"7"),
                    data: b"yz"
                },
            ])
        );
    }

    #[test]
    fn records_without_the_magic_are_not_aggregates() {
        assert_eq!(deaggregate(b""), Deaggregated::NotAggregated);
        assert_eq!(deaggregate(b"{\"a\":1}"), Deaggregated::NotAggregated);
        assert_eq!(
            deaggregate(&[0x1f, 0x8b, 8, 0]),
            Deaggregated::NotAggregated
        );
    }

    #[test]
    fn a_wrong_checksum_or_a_short_record_is_invalid() {
        let mut rec = aggregate(&[b"k"], &[(0, b"payload")]);
        assert!(matches!(deaggregate(&rec), Deaggregated::Aggregated(v) if v.len() == 1));
        let last = rec.len() - 1;
        rec[last] ^= 1;
        assert_eq!(deaggregate(&rec), Deaggregated::Invalid(KplError::Checksum));
        assert_eq!(
            deaggregate(&[0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3]),
            Deaggregated::Invalid(KplError::TooShort)
        );
    }

    #[test]
    fn bad_indexes_and_broken_protobuf_are_invalid() {
        let rec = aggregate(&[b"k"], &[(1, b"x")]);
        assert_eq!(deaggregate(&rec), Deaggregated::Invalid(KplError::KeyIndex));
        assert_eq!(
            deaggregate(&aggregate(&[b"k"], &[])),
            Deaggregated::Invalid(KplError::Empty)
        );
        // A length running past the end.
        let rec = frame(&[0x0a, 0x05, b'a']);
        assert!(matches!(
            deaggregate(&rec),
            Deaggregated::Invalid(KplError::Protobuf(_))
        ));
        // A record without data.
        let rec = frame(&[0x0a, 0x01, b'a', 0x1a, 0x02, 0x08, 0x00]);
        assert!(matches!(
            deaggregate(&rec),
            Deaggregated::Invalid(KplError::Protobuf(_))
        ));
        // Wire type 3 (groups) is not supported.
        let rec = frame(&[0x0b]);
        assert!(matches!(
            deaggregate(&rec),
            Deaggregated::Invalid(KplError::Protobuf(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic() {
        // A small deterministic fuzz: every prefix of a valid aggregate and
        // every single-byte corruption of its body, with a fresh checksum.
        let rec = aggregate(&[b"key-1", b"key-2"], &[(0, b"one"), (1, b"two"), (0, b"")]);
        for n in 0..rec.len() {
            let _ = deaggregate(&rec[..n]);
        }
        let body = &rec[4..rec.len() - 16];
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = body.to_vec();
                b[i] ^= flip;
                let _ = deaggregate(&frame(&b));
            }
        }
        match deaggregate(&rec) {
            Deaggregated::Aggregated(v) => {
                let datas: Vec<&[u8]> = v.iter().map(|u| u.data).collect();
                assert_eq!(datas, [&b"one"[..], b"two", b""]);
            }
            other => panic!("{other:?}"),
        }
    }
}
