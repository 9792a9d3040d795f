//! Tollgate's alert output: it takes the alert updates the detection
//! workers emit (`AlertUpdate::Fired` / `Resolved`, each with its record's
//! [`Ack`](tollgate_events::Ack)) and gets them to the people on call —
//! Alertmanager, PagerDuty, a webhook, an NDJSON file or a Kafka topic —
//! without losing one and without holding up the pipeline longer than it
//! must. An update's ack is released only once every sink it is routed to
//! has delivered it or written it durably to that sink's on-disk spool, so
//! an input's checkpoint never passes an alert that could still be lost;
//! a sink that is down fills its spool (capped, oldest dropped and counted)
//! instead of stalling the others, and catches up in order when it returns,
//! also after a restart. Each episode triggers once per sink and its
//! `Resolved` resolves the same incident.
//!
//! Layout:
//! - [`config`]: `[alerts]` — [`AlertsConfig`] (serde, unknown keys
//!   rejected) → [`AlertsConfig::check`] (every problem at once).
//! - [`dispatcher`]: [`Dispatcher::start`] / [`Dispatcher::send`] (routing,
//!   backpressure) / [`Dispatcher::shutdown`] (deadline).
//! - [`lane`]: one thread per sink target: queue, backoff, spool, episodes,
//!   Alertmanager re-sends.
//! - [`spool`]: the append-only segment files (format in its docs).
//! - [`sinks`]: the wire formats and one delivery attempt per sink.
//! - [`metrics`]: plain atomics per sink target, read by the service.
//!
//! Deliberately absent: no metrics library, no async runtime of its own
//! (lanes are OS threads; HTTP uses reqwest's blocking client), no reading
//! of the environment, and nothing in the core crates depends on this one.

pub mod config;
pub mod dispatcher;
pub mod lane;
pub mod metrics;
pub mod sinks;
pub mod spool;

pub use config::{AlertsConfig, CheckedAlerts, ConfigError, ConfigErrors, Secret, SinkConfig};
pub use dispatcher::{Dispatcher, ShutdownReport, StartError};
pub use lane::LaneReport;
pub use metrics::{AlertsMetrics, DispatchMetrics, LaneInfo, LaneMetrics};
