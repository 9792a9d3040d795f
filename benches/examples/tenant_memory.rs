//! Memory per tenant with many active tenants: builds an engine, feeds every
//! tenant `per_tenant` events of realistic traffic (the scenario generator's
//! records, re-labelled round-robin across tenants), then reports the models'
//! own accounting (`resident_bytes`) and the process's resident-set growth,
//! both divided by the tenant count.
//!
//! `cargo run --release -p tollgate-benches --example tenant_memory -- [tenants] [per_tenant]`

use tollgate_detect::{DetectConfig, Engine, MemStore};
use tollgate_events::TenantId;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tenants: usize = args.next().map_or(10_000, |s| s.parse().expect("tenants"));
    let per_tenant: usize = args.next().map_or(200, |s| s.parse().expect("per_tenant"));
    let mut events = tollgate_benches::sim_events(tenants * per_tenant, 20, 7, 7);
    let ids: Vec<TenantId> = (0..tenants)
        .map(|i| TenantId::new(&format!("tenant-{i:05}")).expect("valid"))
        .collect();
    for (i, ev) in events.iter_mut().enumerate() {
        ev.tenant = ids[i % tenants].clone();
    }
    let before = rss_bytes();
    let cfg = DetectConfig {
        max_resident_tenants: tenants,
        ..DetectConfig::default()
    }
    .check()
    .expect("valid config");
    let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
    let mut updates = Vec::new();
    for ev in &events {
        engine.process(ev, &mut updates);
        updates.clear();
    }
    let after = rss_bytes();
    let st = engine.stats();
    println!(
        "tenants={tenants} resident={} events={} model_bytes_per_tenant={} rss_growth_per_tenant={} budget_hits={} evictions={}",
        st.tenants_resident,
        events.len(),
        engine.resident_bytes() / tenants,
        after.saturating_sub(before) / tenants as u64,
        st.budget_hits,
        st.evictions_lru + st.evictions_idle
    );
}
