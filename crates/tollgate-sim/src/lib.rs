//! `tollgate-sim` generates realistic, seeded, multi-tenant traffic as the raw
//! vendor records Tollgate reads — API Gateway JSON access-log lines and
//! Zscaler ZIA NSS web, firewall and DNS records — with labelled injected
//! incidents (new token issuer, stolen token, credential stuffing, route
//! enumeration, exfiltration, beaconing, DNS tunnelling, off-hours admin
//! activity, volume surge). It feeds the scenario evaluation, the demo,
//! integration tests and load benchmarks. The same [`SimConfig`] always
//! yields byte-identical records; records stream in event-time order in
//! constant memory, so ten million are as cheap to hold as ten.
//!
//! Layout, in the order a record is made:
//! - [`config`]: [`SimConfig`], [`SimFormat`], [`Scenario`] and their check.
//! - `world`: the tenants (Zipf sizes, time zones, log templates, issuers,
//!   users, networks, APIs, routes, destinations), drawn once from the seed.
//! - `traffic`: when benign records happen (diurnal and weekly cycles per
//!   time zone) and what each one is.
//! - [`incident`]: where and when incidents happen, and their records.
//! - `render`: one decided request → one vendor JSON line.
//! - [`sim`]: [`Simulation`], the iterator merging it all in time order.
//! - [`export`]: NDJSON per feed, labels, malicious-record ids.
//!
//! Deliberately absent: decoding (that is `tollgate-events`, whose
//! [`tollgate_events::Event`] these lines decode into), clocks, and any
//! network I/O. Randomness is our own xoshiro256++ (see `rng`) so output does
//! not change when a dependency does.

pub mod config;
pub mod export;
pub mod incident;
mod render;
mod rng;
pub mod sim;
mod timefmt;
mod traffic;
mod world;

pub use config::{Scenario, SimConfig, SimConfigError, SimFormat, UnknownScenario};
pub use export::{write_dir, write_ndjson, ExportSummary};
pub use incident::{EntityKind, Incident};
pub use sim::{Labels, SimRecord, Simulation, TenantInfo};
