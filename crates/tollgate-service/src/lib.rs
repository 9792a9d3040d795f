//! `tollgate-service` is Tollgate as a long-running service: it reads the
//! configuration (`tollgate.toml` plus `TOLLGATE_…` overrides), starts the
//! inputs (Kafka, files, stdin), decodes on the input side, routes events by
//! tenant to worker threads that own the tenants' models, writes alert
//! updates and dead letters, serves `/metrics`, `/healthz` and `/readyz`,
//! and shuts down gracefully. The pure work — decoding and detection — lives
//! in `tollgate-events` and `tollgate-detect`; this crate is the I/O around
//! them.
//!
//! Layout:
//! - [`config`]: the configuration file, environment overrides, checks;
//! - [`pipeline`]: [`pipeline::Router`] (an input's decode + admission +
//!   routing), the worker threads, the alert and dead-letter writers;
//! - [`lanes`]: a Kafka input's records decoded on several threads;
//! - [`admission`]: per-tenant token buckets (the fairness guard);
//! - [`file_input`]: files and stdin, plain or gzip, optionally followed;
//! - [`metrics`], [`admin`]: the Prometheus registry and the HTTP endpoint;
//! - [`service`]: start-up, run, shutdown.
//!
//! At-least-once: an input's checkpoint passes a record only when the
//! record's [`tollgate_events::Ack`] was released by every piece of work it
//! became (events scored, alert updates and dead letters written).

pub mod admin;
pub mod admission;
pub mod api;
pub mod config;
pub mod file_input;
pub mod lanes;
pub mod metrics;
pub mod pipeline;
pub mod service;

pub use config::{ConfigProblems, ServiceConfig};
pub use metrics::Metrics;
pub use metrics::TenantLabels;
pub use service::{abort_on_panic, run, Hooks, RunReport};
