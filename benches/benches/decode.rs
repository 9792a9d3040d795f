//! Decode throughput per format on one core: records/s and bytes/s.
//! `apigw` is a rich REST line (≈ 560 B: Cognito claims, latency, user agent,
//! epoch and CLF times); `apigw_default_template` is the console's default
//! template (≈ 250 B); the `_auto` variants add format detection;
//! `mixed_kafka_load` is the Kafka load benchmark's topic (every simulated
//! feed interleaved, 100 tenants, `auto`, the tenant from the record key).
//! Run: `cargo bench -p tollgate-benches --bench decode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_benches as fx;
use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, RecordMeta, TenantRule};

fn decoder(format: Format, tenant: TenantRule) -> Decoder {
    Decoder::new(&DecodeConfig::new(format, tenant)).expect("valid config")
}

fn ptr(p: &str) -> TenantRule {
    TenantRule::Pointer {
        pointer: p.to_owned(),
    }
}

fn bench_lines(
    c: &mut Criterion,
    name: &str,
    lines: &[Vec<u8>],
    dec: Decoder,
    events_per_record: usize,
) {
    bench_keyed(c, name, lines, &[], dec, events_per_record);
}

/// [`bench_lines`] with each record's Kafka key (`keys[i]` for `lines[i]`;
/// none past the end of `keys`).
fn bench_keyed(
    c: &mut Criterion,
    name: &str,
    lines: &[Vec<u8>],
    keys: &[String],
    mut dec: Decoder,
    events_per_record: usize,
) {
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let metas: Vec<RecordMeta<'_>> = (0..lines.len())
        .map(|i| RecordMeta {
            key: keys.get(i).map(String::as_bytes),
            ..RecordMeta::default()
        })
        .collect();
    // Benchmark decoding, not rejecting: every record must yield its events.
    let mut out = Vec::with_capacity(1024);
    for (l, meta) in lines.iter().zip(&metas) {
        dec.decode(l, meta, &mut out);
    }
    let events = out
        .iter()
        .filter(|d| matches!(d, Decoded::Event(_)))
        .count();
    assert_eq!(
        events,
        lines.len() * events_per_record,
        "{name}: {:?}",
        out.iter().find(|d| !matches!(d, Decoded::Event(_)))
    );
    let mut g = c.benchmark_group(name);
    for (label, tp) in [
        ("events", Throughput::Elements(events as u64)),
        ("bytes", Throughput::Bytes(bytes as u64)),
    ] {
        g.throughput(tp);
        g.bench_function(label, |b| {
            b.iter(|| {
                for (l, meta) in lines.iter().zip(&metas) {
                    dec.decode(l, meta, &mut out);
                    out.clear();
                }
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    const N: usize = 2000;
    bench_lines(
        c,
        "apigw",
        &fx::apigw_lines(N),
        decoder(Format::Apigw, ptr("/authorizer/claims/custom:tenant_id")),
        1,
    );
    bench_lines(
        c,
        "apigw_default_template",
        &fx::apigw_default_lines(N),
        decoder(
            Format::Apigw,
            TenantRule::Static {
                tenant: "acme".parse().expect("valid"),
            },
        ),
        1,
    );
    bench_lines(
        c,
        "apigw_auto",
        &fx::apigw_lines(N),
        decoder(Format::Auto, ptr("/authorizer/claims/custom:tenant_id")),
        1,
    );
    bench_lines(
        c,
        "zscaler_web",
        &fx::zscaler_web_lines(N),
        decoder(Format::ZscalerWeb, ptr("/company")),
        1,
    );
    bench_lines(
        c,
        "zscaler_web_auto",
        &fx::zscaler_web_lines(N),
        decoder(Format::Auto, ptr("/company")),
        1,
    );
    bench_lines(
        c,
        "zscaler_fw",
        &fx::zscaler_fw_lines(N),
        decoder(Format::ZscalerFw, ptr("/company")),
        1,
    );
    bench_lines(
        c,
        "zscaler_dns",
        &fx::zscaler_dns_lines(N),
        decoder(Format::ZscalerDns, ptr("/company")),
        1,
    );
    bench_lines(
        c,
        "zpa",
        &fx::zpa_lines(N),
        decoder(Format::Zpa, ptr("/Customer")),
        1,
    );
    bench_lines(
        c,
        "cloudwatch_gzip_x50",
        &fx::cloudwatch_records(40, 50),
        decoder(
            Format::Cloudwatch,
            ptr("/authorizer/claims/custom:tenant_id"),
        ),
        50,
    );
    let (keys, lines): (Vec<String>, Vec<Vec<u8>>) =
        fx::mixed_records(N, 100, 1).into_iter().unzip();
    bench_keyed(
        c,
        "mixed_kafka_load",
        &lines,
        &keys,
        decoder(Format::Auto, TenantRule::KafkaKey {}),
        1,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = decode
}
criterion_main!(benches);
