//! The CloudWatch Logs envelope decoder (`Format::Cloudwatch`) on arbitrary
//! bytes, fed twice: as they are, then gzip-compressed inside the target so
//! that the bounded-inflate path (and the concatenated-values stream reader
//! behind it) sees the same mutated payloads as the plain path. Nothing may
//! panic, hang or allocate without bound.
#![no_main]

use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use libfuzzer_sys::fuzz_target;
use tollgate_events::{DecodeConfig, Decoder, Format, RecordMeta, TenantRule};

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

    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), Compression::fast());
    enc.write_all(data).unwrap();
    let gz = enc.finish().unwrap();
    out.clear();
    dec.decode(&gz, &meta, &mut out);
});
