//! Runs the detect benchmark's workload (`benches/detect.rs`) with a chosen
//! number of passes over the hot events, for counting instructions per event
//! under `valgrind --tool=callgrind`, which does not move with machine load:
//! run with two pass counts and divide the difference by the extra events.
//! Each pass is later than the one before (`tollgate_benches::shifted`).
//!
//! `valgrind --tool=callgrind --toggle-collect='*hot_passes' --callgrind-out-file=/tmp/cg target/release/examples/detect_instructions 2`
//! counts only the passes (the warm-up and the events' generation are left
//! out): divide the total by 50,000 × passes.

use tollgate_benches::shifted;
use tollgate_detect::Engine;

fn main() {
    let passes: usize = std::env::args()
        .nth(1)
        .map_or(1, |s| s.parse().expect("passes"));
    let (mut engine, hot, _pool) = tollgate_benches::warm_detect();
    // as the criterion bench does: each pass later than the one before
    let batches: Vec<_> = (0..passes).map(|p| shifted(&hot, p as u32)).collect();
    let t = std::time::Instant::now();
    let n = hot_passes(&mut engine, &batches);
    let secs = t.elapsed().as_secs_f64();
    let events = passes * hot.len();
    // wall clock of the passes alone: noisy on a shared machine, unlike the
    // instruction count, so compare builds interleaved, several runs each
    println!(
        "{events} events, {n} updates, {secs:.3} s, {:.0} events/s",
        events as f64 / secs
    );
}

/// The measured part: with `--toggle-collect=*hot_passes` callgrind counts
/// only this.
#[inline(never)]
fn hot_passes(engine: &mut Engine, batches: &[Vec<tollgate_events::Event>]) -> usize {
    let mut updates = Vec::new();
    let mut n = 0usize;
    for evs in batches {
        for ev in evs {
            engine.process(ev, &mut updates);
            n += updates.len();
            updates.clear();
        }
    }
    n
}
