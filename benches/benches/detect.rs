//! Featurize + score + learn on warm tenants, one core: events/s through
//! `Engine::process`. Events are decoded from the scenario generator's
//! traffic up front, so only the detection engine is measured. Each
//! measured pass sends the last 50,000 events again, later by one more span
//! of their own time each pass (made before the pass, not timed), so the
//! engine always sees time move forward as in a live stream.
//! Run: `cargo bench -p tollgate-benches --bench detect`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tollgate_detect::{DetectConfig, Engine, MemStore};

fn detect(c: &mut Criterion) {
    let events = tollgate_benches::sim_events(400_000, 20, 7, 1);
    let (warm, hot) = events.split_at(events.len() - 50_000);
    // as every scoring thread of the service does
    let _pool = tollgate_detect::refits_on_this_thread();
    let cfg = DetectConfig::default()
        .check()
        .expect("default config is valid");
    let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
    let mut updates = Vec::new();
    for ev in warm {
        engine.process(ev, &mut updates);
        updates.clear();
    }
    let warm_tenants = hot
        .iter()
        .filter(|e| engine.tenant(&e.tenant).is_some())
        .count();
    assert_eq!(
        warm_tenants,
        hot.len(),
        "every measured event's tenant is resident"
    );
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(hot.len() as u64));
    let mut pass = 0;
    g.bench_function("process_warm", |b| {
        b.iter_batched(
            || {
                pass += 1;
                tollgate_benches::shifted(hot, pass)
            },
            |evs| {
                for ev in &evs {
                    engine.process(ev, &mut updates);
                    updates.clear();
                }
                evs
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(5));
    targets = detect
}
criterion_main!(benches);
