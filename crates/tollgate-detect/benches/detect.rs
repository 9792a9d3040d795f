//! Criterion benchmarks: featurize + score + learn on warm tenants.
//!
//! `process` is measured on tenants already past warm-up and past their first
//! numeric fit, over a pre-generated, seeded stream (so no allocation for the
//! input is counted), at 1 and 100 tenants. `featurize_cached` alone is measured
//! too. Run: `cargo bench -p tollgate-detect --bench detect`.

use std::net::{IpAddr, Ipv4Addr};

use chrono::DateTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_detect::features::{featurize_cached, FeatureCache, Zone};
use tollgate_detect::{DetectConfig, Dur, Engine, MemStore};
use tollgate_events::{Event, Source, TenantId};

const UAS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "okhttp/4.12.0",
];

struct Lcg(u64);
impl Lcg {
    fn u(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.u() * n as f64) as usize % n
    }
}

fn stream(tenants: usize, n: usize, seed: u64) -> Vec<Event> {
    let ids: Vec<TenantId> = (0..tenants)
        .map(|i| TenantId::new(&format!("tenant{i}")).unwrap())
        .collect();
    let mut r = Lcg(seed);
    let mut t = 1_772_409_600_000i64;
    (0..n)
        .map(|i| {
            t += 1 + (r.u() * 200.0) as i64;
            let source = if r.u() < 0.5 {
                Source::Apigw
            } else {
                Source::ZscalerWeb
            };
            let mut e = Event::new(
                ids[r.below(tenants)].clone(),
                source,
                DateTime::from_timestamp_millis(t).unwrap(),
            );
            let p = r.below(50);
            e.id = Some(format!("e{i}").into());
            e.principal = Some(format!("user{p}@acme.example").into());
            e.client_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 1, p as u8, 7)));
            e.user_agent = Some(UAS[p % 3].into());
            e.status = Some(if r.u() < 0.01 { 404 } else { 200 });
            e.bytes_in = Some((r.u() * 2000.0) as u64);
            e.bytes_out = Some((r.u() * 20_000.0) as u64);
            e.latency_ms = Some(r.u() * 100.0);
            e.method = Some("GET".into());
            if source == Source::Apigw {
                e.token_issuer = Some("https://login.acme.example".into());
                e.route = Some(["/v1/items", "/v1/items/{id}", "/v1/orders"][r.below(3)].into());
            } else {
                let d = (r.u() * r.u() * 300.0) as usize;
                e.destination_host = Some(format!("www.site{d}.example.com").into());
                e.url_category = Some("Business".into());
                e.content_type = Some("text/html".into());
            }
            e
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("detect");
    for tenants in [1usize, 100] {
        let cfg = DetectConfig {
            warmup_events: 1000,
            warmup: Dur::secs(60),
            ..Default::default()
        }
        .check()
        .unwrap();
        let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
        let mut out = Vec::new();
        for e in stream(tenants, tenants * 3_000, 1) {
            engine.process(&e, &mut out);
        }
        let batch = stream(tenants, 20_000, 2);
        g.throughput(Throughput::Elements(batch.len() as u64));
        g.bench_function(format!("process_warm_{tenants}_tenants"), |b| {
            b.iter(|| {
                out.clear();
                let mut acc = 0.0;
                for e in &batch {
                    acc += engine.process(e, &mut out).max_grade;
                }
                acc
            })
        });
    }
    let batch = stream(1, 20_000, 3);
    g.throughput(Throughput::Elements(batch.len() as u64));
    let mut cache = FeatureCache::new();
    let mut zone = Zone::new(chrono_tz::UTC);
    g.bench_function("featurize_cached", |b| {
        b.iter(|| {
            batch
                .iter()
                .map(|e| featurize_cached(e, &mut zone, &mut cache).signature)
                .fold(0u64, |a, s| a ^ s)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
