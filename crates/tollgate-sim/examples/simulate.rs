//! Generates a simulation and either writes it to a directory (NDJSON per
//! feed, `labels.json`, `malicious.ndjson`) or, with `-` as the directory,
//! only counts the records and reports the generation rate.
//!
//! `cargo run -p tollgate-sim --release --example simulate -- <dir|-> [events] [seed] [tenants]`

use std::time::Instant;

use tollgate_sim::{write_dir, SimConfig, Simulation};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "-".to_owned());
    let events: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let seed: u64 = args.next().map_or(Ok(1), |s| s.parse())?;
    let tenants: usize = args.next().map_or(Ok(20), |s| s.parse())?;
    let config = SimConfig {
        seed,
        events,
        tenants,
        ..SimConfig::default()
    };
    let sim = Simulation::new(config)?;
    let started = Instant::now();
    if dir == "-" {
        let (mut n, mut bytes) = (0u64, 0usize);
        for r in sim {
            n += 1;
            bytes += r.line.len() + 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{n} records, {:.1} MB in {secs:.2}s: {:.0} records/s, {:.0} MB/s",
            bytes as f64 / 1e6,
            n as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    } else {
        let summary = write_dir(sim, std::path::Path::new(&dir))?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        println!("in {:.2}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
