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
    mut dec: Decoder,
    events_per_record: usize,
) {
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let meta = RecordMeta::default();
    // Benchmark decoding, not rejecting: every record must yield its events.
    let mut out = Vec::with_capacity(1024);
    for l in lines {
        dec.decode(l, &meta, &mut out);
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
                for l in lines {
                    dec.decode(l, &meta, &mut out);
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
}

fn mixed(c: &mut Criterion) {
    let recs = fx::mixed_records(2000, 100, 1);
    let mut dec = decoder(Format::Auto, TenantRule::KafkaKey {});
    let metas: Vec<RecordMeta<'_>> = recs
        .iter()
        .map(|(tenant, _)| RecordMeta {
            key: Some(tenant.as_bytes()),
            ..RecordMeta::default()
        })
        .collect();
    let mut out = Vec::with_capacity(16);
    let mut events = 0;
    for ((_, l), meta) in recs.iter().zip(&metas) {
        dec.decode(l, meta, &mut out);
        for d in out.drain(..) {
            assert!(matches!(d, Decoded::Event(_)), "{d:?}");
            events += 1;
        }
    }
    let mut g = c.benchmark_group("mixed_kafka_load");
    g.throughput(Throughput::Elements(events));
    g.bench_function("events", |b| {
        b.iter(|| {
            for ((_, l), meta) in recs.iter().zip(&metas) {
                dec.decode(l, meta, &mut out);
                out.clear();
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = decode, mixed
}
criterion_main!(benches);
