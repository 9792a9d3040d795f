//! Featurize + score + learn on warm tenants, one core: events/s through
//! `Engine::process`. Events are decoded from the scenario generator's
//! traffic up front, so only the detection engine is measured. Each
//! measured pass sends the last 50,000 events again, later by one more span
//! of their own time each pass (made before the pass, not timed), so the
//! engine always sees time move forward as in a live stream.
//! Run: `cargo bench -p tollgate-benches --bench detect`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn detect(c: &mut Criterion) {
    let (mut engine, hot, _pool) = tollgate_benches::warm_detect();
    let hot = &hot[..];
    let mut updates = Vec::new();
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
