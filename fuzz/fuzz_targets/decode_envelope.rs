//! The CloudWatch Logs envelope decoder (`Format::Cloudwatch`) on arbitrary
//! bytes, fed twice: as they are, then gzip-compressed inside the target so
//! that the bounded-inflate path (and the concatenated-values stream reader
//! behind it) sees the same mutated payloads as the plain path. Nothing may
//! panic, hang or allocate without bound.
//!
//! The gzip member is built by hand around a deflate encoder that is kept
//! between runs: a fresh `GzEncoder` allocates and zeroes a few hundred KiB of
//! compressor state each time, which (under ASan) was most of the run time.
#![no_main]

use std::cell::RefCell;
use std::io::Write;

use flate2::{write::DeflateEncoder, Compression, Crc};
use libfuzzer_sys::fuzz_target;
use tollgate_events::{
    DecodeConfig, Decoded, Decoder, Format, RecordMeta, RejectReason, TenantRule,
};

/// A gzip member header: magic, deflate, no flags, mtime 0, no extra flags,
/// OS unknown.
const GZ_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    static DEFLATE: RefCell<DeflateEncoder<Vec<u8>>> =
        RefCell::new(DeflateEncoder::new(Vec::new(), Compression::fast()));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    DEFLATE.with(|enc| {
        let mut enc = enc.borrow_mut();
        let mut buf = Vec::with_capacity(data.len() + 64);
        buf.extend_from_slice(&GZ_HEADER);
        enc.reset(buf).unwrap();
        enc.write_all(data).unwrap();
        let mut gz = enc.reset(Vec::new()).unwrap();
        let mut crc = Crc::new();
        crc.update(data);
        gz.extend_from_slice(&crc.sum().to_le_bytes());
        gz.extend_from_slice(&crc.amount().to_le_bytes());
        gz
    })
}

fuzz_target!(|data: &[u8]| {
    let cfg = DecodeConfig::new(
        Format::Cloudwatch,
        TenantRule::Static {
            tenant: "t".parse().unwrap(),
        },
    );
    let mut dec = Decoder::new(&cfg).unwrap();
    let meta = RecordMeta::default();

    let mut out = Vec::new();
    dec.decode(data, &meta, &mut out);

    let gz = gzip(data);
    out.clear();
    dec.decode(&gz, &meta, &mut out);
    // The member is well formed, so the inflate step itself cannot fail.
    let bad_gzip =
        |d: &Decoded| matches!(d, Decoded::Rejected(r) if r.reason == RejectReason::BadGzip);
    assert!(
        !out.iter().any(bad_gzip),
        "a well-formed gzip member was rejected as bad gzip"
    );
});
