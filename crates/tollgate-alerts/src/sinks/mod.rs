//! The sinks: what one delivery attempt to one target is. Each sink turns
//! spool entries into its wire format (pure functions beside it, tested
//! without a network) and reports per batch how many entries were taken and
//! whether the rest should be retried or was refused for good. Queues,
//! retries, spooling and episode bookkeeping are the lane's
//! ([`crate::lane`]), not the sinks'.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tollgate_detect::{Alert, AlertUpdate};

pub mod alertmanager;
pub mod file;
pub mod kafka;
pub mod pagerduty;
pub mod webhook;

/// What a lane queues and spools for one target: the update, and for a
/// `Resolved` the `Fired` alert of its episode when this target fired it
/// (Alertmanager needs its labels to resolve it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub update: AlertUpdate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<Alert>,
}

impl Entry {
    pub fn tenant(&self) -> &str {
        match &self.update {
            AlertUpdate::Fired(a) => a.tenant.as_str(),
            AlertUpdate::Resolved { tenant, .. } => tenant.as_str(),
        }
    }

    pub fn episode(&self) -> &str {
        match &self.update {
            AlertUpdate::Fired(a) => &a.episode,
            AlertUpdate::Resolved { episode, .. } => episode,
        }
    }
}

/// Why a delivery stopped short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// Try the same entry again later (network, 5xx, 408, 429, timeouts).
    Retry(String),
    /// The target refused this entry for good (other 4xx, no routing key):
    /// drop it, count it, go on with the next.
    Reject(String),
}

/// The result of one attempt: the first `delivered` entries were taken;
/// `error` says what happened to the next one, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub delivered: usize,
    pub error: Option<DeliveryError>,
}

impl Outcome {
    pub fn all(n: usize) -> Outcome {
        Outcome {
            delivered: n,
            error: None,
        }
    }

    pub fn failed(delivered: usize, e: DeliveryError) -> Outcome {
        Outcome {
            delivered,
            error: Some(e),
        }
    }
}

/// One target of one sink, driven by its lane's thread.
pub trait Deliver: Send {
    /// Most entries handed to one `deliver` call.
    fn max_batch(&self) -> usize {
        1
    }

    /// Delivers `batch` in order.
    fn deliver(&mut self, batch: &[Entry]) -> Outcome;

    /// How often active alerts are re-sent, for sinks that need it.
    fn resend_interval(&self) -> Option<Duration> {
        None
    }

    /// Re-sends the target's active alerts (Alertmanager).
    fn resend(&mut self, _active: &[&Alert]) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// Whether a `Resolved` of an episode this target never saw fire can be
    /// sent at all (Alertmanager cannot: it needs the alert's labels).
    fn accepts_unknown_resolved(&self) -> bool {
        true
    }
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `{admin_base_url}/api/v1/alerts/{id}`.
pub(crate) fn alert_url(admin: Option<&str>, id: &str) -> Option<String> {
    admin.map(|b| format!("{b}/api/v1/alerts/{id}"))
}

/// The explanation's sentences, joined.
pub(crate) fn description(a: &Alert) -> String {
    if a.explanation.is_empty() {
        return a.summary.clone();
    }
    let mut s = String::new();
    for c in &a.explanation {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(c.reason.trim());
    }
    s
}

/// A blocking HTTP client for one lane (built on the lane's own thread:
/// reqwest's blocking client must not be created or dropped inside an
/// async runtime, and the dispatcher may be started from one).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tollgate-alerts/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// POSTs a JSON body; classifies the answer. Errors never carry the URL
/// (it may hold credentials) nor the request.
pub(crate) fn post_json(
    client: &reqwest::blocking::Client,
    url: &reqwest::Url,
    headers: &reqwest::header::HeaderMap,
    body: Vec<u8>,
) -> Result<(), DeliveryError> {
    let resp = client
        .post(url.clone())
        .headers(headers.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .map_err(|e| DeliveryError::Retry(e.without_url().to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let mut text = resp.text().unwrap_or_default();
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let msg = format!("HTTP {}: {}", status.as_u16(), text.trim());
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(DeliveryError::Reject(msg))
    } else {
        Err(DeliveryError::Retry(msg))
    }
}

#[cfg(test)]
pub(crate) mod testdata {
    use chrono::TimeZone;
    use tollgate_detect::{Contribution, Detector, Severity};
    use tollgate_events::{Source, TenantId};

    use super::*;

    pub fn alert(episode: &str, severity: Severity) -> Alert {
        Alert {
            id: format!("al-{episode}"),
            tenant: TenantId::new("acme").unwrap(),
            source: Source::Apigw,
            detector: Detector::OffHours,
            entity_key: 1,
            severity,
            score: 5.25,
            grade: 0.999,
            ts: Utc.with_ymd_and_hms(2024, 5, 1, 3, 0, 0).unwrap(),
            event_id: Some("e1".into()),
            entity: "alice".into(),
            episode: episode.into(),
            explanation: vec![
                Contribution {
                    feature: "hour_of_week".into(),
                    value: "Wed 03:00".into(),
                    typical: "Mon-Fri 08:00-18:00".into(),
                    reason: "Admin activity at an hour this tenant is rarely active.".into(),
                },
                Contribution {
                    feature: "principal".into(),
                    value: "alice".into(),
                    typical: "no admin events".into(),
                    reason: "alice never used admin routes before.".into(),
                },
            ],
            summary: "off-hours admin activity by alice".into(),
        }
    }
}
