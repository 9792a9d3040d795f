//! The auto-detecting decoder on arbitrary bytes: plain records, array
//! batches, CloudWatch envelopes, Zscaler wrappers, gzip (the input itself may
//! start with the gzip magic). Nothing may panic, hang or allocate without
//! bound. (An empty batch — `[]`, or an envelope with no `logEvents` —
//! rightly yields no items, so there is no count to assert.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_events::{DecodeConfig, Decoder, Format, RecordMeta, TenantRule};

fuzz_target!(|data: &[u8]| {
    let cfg = DecodeConfig::new(
        Format::Auto,
        TenantRule::Static {
            tenant: "t".parse().unwrap(),
        },
    );
    let mut dec = Decoder::new(&cfg).unwrap();
    let mut out = Vec::new();
    dec.decode(data, &RecordMeta::default(), &mut out);
});
