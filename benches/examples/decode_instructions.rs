//! Decodes the benchmark fixtures `iters` times, for counting instructions
//! per record under `valgrind --tool=callgrind` (deterministic whatever else
//! the machine is doing): run with two iteration counts and divide the
//! difference by the extra records.
//!
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/decode_instructions apigw 3`

use tollgate_events::{DecodeConfig, Decoder, Format, RecordMeta, TenantRule};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "apigw".into());
    let iters: usize = args.next().map_or(1, |s| s.parse().expect("iterations"));
    let ptr = |p: &str| TenantRule::Pointer {
        pointer: p.to_owned(),
    };
    let keyless = |lines: Vec<Vec<u8>>| lines.into_iter().map(|l| (None, l)).collect();
    // (record key, record) pairs, the format and the tenant rule
    let (records, format, tenant): (Vec<(Option<String>, Vec<u8>)>, _, _) = match which.as_str() {
        "apigw" => (
            keyless(tollgate_benches::apigw_lines(2000)),
            Format::Apigw,
            ptr("/authorizer/claims/custom:tenant_id"),
        ),
        "apigw_default" => (
            keyless(tollgate_benches::apigw_default_lines(2000)),
            Format::Apigw,
            TenantRule::Static {
                tenant: "acme".parse().expect("valid"),
            },
        ),
        "zscaler_web" => (
            keyless(tollgate_benches::zscaler_web_lines(2000)),
            Format::ZscalerWeb,
            ptr("/company"),
        ),
        // The Kafka load benchmark's stream: every feed on one topic, `auto`
        // format, the tenant from the record's key.
        "mixed" => (
            tollgate_benches::mixed_records(20_000, 100, 1)
                .into_iter()
                .map(|(t, l)| (Some(t), l))
                .collect(),
            Format::Auto,
            TenantRule::KafkaKey {},
        ),
        other => panic!("unknown fixture {other}"),
    };
    let mut dec = Decoder::new(&DecodeConfig::new(format, tenant)).expect("valid config");
    let mut out = Vec::new();
    let mut n = 0usize;
    for _ in 0..iters {
        for (key, l) in &records {
            let meta = RecordMeta {
                key: key.as_deref().map(str::as_bytes),
                ..RecordMeta::default()
            };
            dec.decode(l, &meta, &mut out);
            n += out.len();
            out.clear();
        }
    }
    println!("{n} items");
}
