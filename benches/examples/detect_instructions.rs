//! Runs the detect benchmark's workload (`benches/detect.rs`) with a chosen
//! number of passes over the hot events, for counting instructions per event
//! under `valgrind --tool=callgrind`, which does not move with machine load:
//! run with two pass counts and divide the difference by the extra events.
//!
//! `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg target/release/examples/detect_instructions 2`

use tollgate_detect::{DetectConfig, Engine, MemStore};

fn main() {
    let passes: usize = std::env::args()
        .nth(1)
        .map_or(1, |s| s.parse().expect("passes"));
    let events = tollgate_benches::sim_events(400_000, 20, 7, 1);
    let (warm, hot) = events.split_at(events.len() - 50_000);
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
    let mut n = 0usize;
    for _ in 0..passes {
        for ev in hot {
            engine.process(ev, &mut updates);
            n += updates.len();
            updates.clear();
        }
    }
    println!("{} events, {n} updates", passes * hot.len());
}
