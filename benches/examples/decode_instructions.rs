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
    let (lines, format, tenant) = match which.as_str() {
        "apigw" => (
            tollgate_benches::apigw_lines(2000),
            Format::Apigw,
            ptr("/authorizer/claims/custom:tenant_id"),
        ),
        "apigw_default" => (
            tollgate_benches::apigw_default_lines(2000),
            Format::Apigw,
            TenantRule::Static {
                tenant: "acme".parse().expect("valid"),
            },
        ),
        "zscaler_web" => (
            tollgate_benches::zscaler_web_lines(2000),
            Format::ZscalerWeb,
            ptr("/company"),
        ),
        "mixed" => {
            // The Kafka load benchmark's stream: every feed on one topic,
            // `auto` format, the tenant from the record's key.
            let recs = tollgate_benches::mixed_records(20_000, 100, 1);
            let mut dec = Decoder::new(&DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {}))
                .expect("valid config");
            let mut out = Vec::new();
            let mut n = 0usize;
            for _ in 0..iters {
                for (tenant, l) in &recs {
                    let meta = RecordMeta {
                        key: Some(tenant.as_bytes()),
                        ..RecordMeta::default()
                    };
                    dec.decode(l, &meta, &mut out);
                    n += out.len();
                    out.clear();
                }
            }
            println!("{n} items");
            return;
        }
        other => panic!("unknown fixture {other}"),
    };
    let mut dec = Decoder::new(&DecodeConfig::new(format, tenant)).expect("valid config");
    let meta = RecordMeta::default();
    let mut out = Vec::new();
    let mut n = 0usize;
    for _ in 0..iters {
        for l in &lines {
            dec.decode(l, &meta, &mut out);
            n += out.len();
            out.clear();
        }
    }
    println!("{n} items");
}
