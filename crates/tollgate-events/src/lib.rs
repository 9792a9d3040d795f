//! `tollgate-events` turns the bytes of one stream record into normalized
//! [`Event`]s, or into typed rejections and skips, and does nothing else: no
//! I/O, no clocks, no async. It reads AWS API Gateway access logs (REST, HTTP
//! API, WebSocket), CloudWatch Logs subscription envelopes (gzip or plain),
//! Zscaler ZIA NSS web / firewall / DNS feeds and ZPA LSS user activity.

pub mod event;

pub use event::{Event, Source, TenantId, TenantIdError, Text};
