//! PagerDuty Events API v2: a `Fired` is a `trigger` and a `Resolved` a
//! `resolve`, both with `dedup_key` = the episode id, so PagerDuty groups
//! the repeats of an episode into one incident and resolves that incident.
//! The routing key comes from the tenant's entry in `routing_keys`, else the
//! default; a tenant with neither is refused (counted, logged by tenant,
//! never by key). Keys appear only in request bodies.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate_detect::{AlertUpdate, Severity};

use super::{alert_url, http_client, post_json, rfc3339, Deliver, DeliveryError, Entry, Outcome};
use crate::config::{PagerDutyConfig, Secret};

/// PagerDuty's severities: critical, error, warning, info.
pub fn pd_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

/// PagerDuty caps `payload.summary` at 1024 characters.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The event for one entry.
pub fn event(e: &Entry, routing_key: &str, admin: Option<&str>) -> Value {
    match &e.update {
        AlertUpdate::Fired(a) => {
            let mut v = json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": a.episode,
                "payload": {
                    "summary": clip(&a.summary, 1024),
                    "severity": pd_severity(a.severity),
                    "source": if a.entity.is_empty() { a.tenant.as_str() } else { a.entity.as_str() },
                    "timestamp": rfc3339(a.ts),
                    "component": a.source.as_str(),
                    "group": a.tenant.as_str(),
                    "class": a.detector.as_str(),
                    "custom_details": {
                        "explanation": a.explanation,
                        "tenant": a.tenant.as_str(),
                        "detector": a.detector.as_str(),
                        "entity": a.entity,
                        "score": a.score,
                        "grade": a.grade,
                        "alert_id": a.id,
                    },
                },
                "client": "Tollgate",
            });
            if let Some(u) = alert_url(admin, &a.id) {
                v["client_url"] = Value::String(u.clone());
                v["links"] = json!([{ "href": u, "text": "Tollgate alert" }]);
            }
            v
        }
        AlertUpdate::Resolved { episode, .. } => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": episode,
        }),
    }
}

pub struct PagerDutySink {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    default_key: Option<Secret>,
    keys: BTreeMap<String, Secret>,
    admin: Option<String>,
}

impl PagerDutySink {
    pub fn new(
        c: &PagerDutyConfig,
        timeout: Duration,
        admin: Option<String>,
    ) -> Result<PagerDutySink, String> {
        Ok(PagerDutySink {
            client: http_client(timeout)?,
            url: reqwest::Url::parse(&c.url).map_err(|e| format!("pagerduty url: {e}"))?,
            default_key: c.routing_key.clone(),
            keys: c.routing_keys.clone(),
            admin,
        })
    }
}

impl Deliver for PagerDutySink {
    fn deliver(&mut self, batch: &[Entry]) -> Outcome {
        for (i, e) in batch.iter().enumerate() {
            let Some(key) = self.keys.get(e.tenant()).or(self.default_key.as_ref()) else {
                return Outcome::failed(
                    i,
                    DeliveryError::Reject(format!("no routing key for tenant {}", e.tenant())),
                );
            };
            let body =
                serde_json::to_vec(&event(e, key.expose(), self.admin.as_deref())).expect("json");
            if let Err(err) = post_json(&self.client, &self.url, &Default::default(), body) {
                return Outcome::failed(i, err);
            }
        }
        Outcome::all(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::testdata::alert;

    #[test]
    fn trigger_and_resolve_events() {
        let a = alert("ep-9", Severity::Critical);
        let e = Entry {
            update: AlertUpdate::Fired(a.clone()),
            fired: None,
        };
        let v = event(&e, "KEY", Some("http://tg"));
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "ep-9");
        assert_eq!(v["routing_key"], "KEY");
        assert_eq!(v["payload"]["severity"], "critical");
        assert_eq!(v["payload"]["source"], "alice");
        assert_eq!(v["payload"]["summary"], a.summary);
        assert_eq!(
            v["payload"]["custom_details"]["explanation"][1]["feature"],
            "principal"
        );
        assert_eq!(v["client_url"], "http://tg/api/v1/alerts/al-ep-9");
        let r = Entry {
            update: AlertUpdate::Resolved {
                episode: "ep-9".into(),
                tenant: a.tenant.clone(),
                detector: a.detector,
                entity: a.entity.clone(),
                ts: a.ts,
            },
            fired: None,
        };
        let v = event(&r, "KEY", None);
        assert_eq!(
            v,
            json!({"routing_key": "KEY", "event_action": "resolve", "dedup_key": "ep-9"})
        );
    }

    #[test]
    fn severities_map_onto_pagerdutys() {
        assert_eq!(pd_severity(Severity::Low), "info");
        assert_eq!(pd_severity(Severity::Medium), "warning");
        assert_eq!(pd_severity(Severity::High), "error");
        assert_eq!(pd_severity(Severity::Critical), "critical");
        assert_eq!(clip(&"x".repeat(2000), 1024).chars().count(), 1024);
    }
}
