//! Alertmanager API v2: `POST {url}/api/v2/alerts` with a JSON array of
//! alerts. A `Fired` becomes a firing alert whose `endsAt` lies four
//! re-send intervals ahead (as Prometheus does), so Alertmanager resolves
//! it by itself if Tollgate goes away; the lane re-sends active alerts every
//! `resend_interval`. A `Resolved` re-sends the episode's alert, same
//! labels, with `endsAt` = the resolution time. One target is one
//! Alertmanager; an HA pair is two lanes with their own retries and spools.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tollgate_detect::{Alert, AlertUpdate, Detector};

use super::{
    alert_url, description, http_client, post_json, rfc3339, Deliver, DeliveryError, Entry, Outcome,
};

/// Re-sends are split into requests of at most this many alerts.
const RESEND_CHUNK: usize = 500;

/// `Tollgate` + the detector in CamelCase: `TollgateOffHours`.
pub fn alertname(d: Detector) -> String {
    let mut s = String::from("Tollgate");
    for part in d.as_str().split('_') {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            s.extend(c.to_uppercase());
            s.push_str(cs.as_str());
        }
    }
    s
}

/// One alert in Alertmanager's v2 shape. `ends_at` is the resolution time
/// or, for a firing alert, how long Alertmanager should consider it active
/// without hearing from us.
pub fn am_alert(a: &Alert, ends_at: DateTime<Utc>, admin: Option<&str>) -> Value {
    let mut v = json!({
        "labels": {
            "alertname": alertname(a.detector),
            "tenant": a.tenant.as_str(),
            "detector": a.detector.as_str(),
            "severity": a.severity.as_str(),
            "source": a.source.as_str(),
            "episode": a.episode,
        },
        "annotations": {
            "summary": a.summary,
            "description": description(a),
            "score": format!("{:.3}", a.score),
            "explanation": serde_json::to_string(&a.explanation).unwrap_or_default(),
            "entity": a.entity,
            "alert_id": a.id,
        },
        "startsAt": rfc3339(a.ts),
        "endsAt": rfc3339(ends_at.max(a.ts)),
    });
    if let Some(u) = alert_url(admin, &a.id) {
        v["generatorURL"] = Value::String(u);
    }
    v
}

/// The request body for one entry, or why there is none.
pub fn body_for(
    e: &Entry,
    now: DateTime<Utc>,
    resend: Duration,
    admin: Option<&str>,
) -> Result<Value, DeliveryError> {
    match (&e.update, &e.fired) {
        (AlertUpdate::Fired(a), _) => Ok(json!([am_alert(a, firing_until(a, now, resend), admin)])),
        (AlertUpdate::Resolved { ts, .. }, Some(a)) => Ok(json!([am_alert(a, *ts, admin)])),
        (AlertUpdate::Resolved { .. }, None) => Err(DeliveryError::Reject(
            "resolved episode unknown to this Alertmanager target".into(),
        )),
    }
}

fn firing_until(a: &Alert, now: DateTime<Utc>, resend: Duration) -> DateTime<Utc> {
    let ahead = chrono::Duration::from_std(resend * 4).unwrap_or(chrono::Duration::hours(1));
    now.max(a.ts) + ahead
}

pub struct AlertmanagerSink {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    resend_interval: Duration,
    admin: Option<String>,
}

impl AlertmanagerSink {
    pub fn new(
        base_url: &str,
        resend_interval: Duration,
        timeout: Duration,
        admin: Option<String>,
    ) -> Result<AlertmanagerSink, String> {
        let base = base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}/api/v2/alerts"))
            .map_err(|e| format!("alertmanager url: {e}"))?;
        Ok(AlertmanagerSink {
            client: http_client(timeout)?,
            url,
            headers: Default::default(),
            resend_interval,
            admin,
        })
    }

    fn post(&self, body: &Value) -> Result<(), DeliveryError> {
        let bytes = serde_json::to_vec(body).expect("json");
        post_json(&self.client, &self.url, &self.headers, bytes)
    }
}

impl Deliver for AlertmanagerSink {
    fn deliver(&mut self, batch: &[Entry]) -> Outcome {
        for (i, e) in batch.iter().enumerate() {
            let r = body_for(e, Utc::now(), self.resend_interval, self.admin.as_deref())
                .and_then(|b| self.post(&b));
            if let Err(err) = r {
                return Outcome::failed(i, err);
            }
        }
        Outcome::all(batch.len())
    }

    fn resend_interval(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }

    fn resend(&mut self, active: &[&Alert]) -> Result<(), DeliveryError> {
        let now = Utc::now();
        for chunk in active.chunks(RESEND_CHUNK) {
            let body: Vec<Value> = chunk
                .iter()
                .map(|a| {
                    am_alert(
                        a,
                        firing_until(a, now, self.resend_interval),
                        self.admin.as_deref(),
                    )
                })
                .collect();
            self.post(&Value::Array(body))?;
        }
        Ok(())
    }

    fn accepts_unknown_resolved(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::testdata::alert;
    use chrono::TimeZone;
    use tollgate_detect::Severity;

    #[test]
    fn alertnames_are_camel_case() {
        assert_eq!(alertname(Detector::OffHours), "TollgateOffHours");
        assert_eq!(alertname(Detector::Issuer), "TollgateIssuer");
        for d in Detector::ALL {
            let n = alertname(d);
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
        }
    }

    #[test]
    fn firing_and_resolved_bodies() {
        let a = alert("ep-1", Severity::High);
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 4, 0, 0).unwrap();
        let fired = Entry {
            update: AlertUpdate::Fired(a.clone()),
            fired: None,
        };
        let b = body_for(&fired, now, Duration::from_secs(60), Some("http://tg:9898")).unwrap();
        let x = &b[0];
        assert_eq!(x["labels"]["alertname"], "TollgateOffHours");
        assert_eq!(x["labels"]["tenant"], "acme");
        assert_eq!(x["labels"]["detector"], "off_hours");
        assert_eq!(x["labels"]["severity"], "high");
        assert_eq!(x["labels"]["source"], "apigw");
        assert_eq!(x["labels"]["episode"], "ep-1");
        assert_eq!(x["annotations"]["score"], "5.250");
        assert!(x["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("never used admin routes"));
        let expl: Value =
            serde_json::from_str(x["annotations"]["explanation"].as_str().unwrap()).unwrap();
        assert_eq!(expl[0]["feature"], "hour_of_week");
        assert_eq!(x["startsAt"], "2024-05-01T03:00:00.000Z");
        assert_eq!(x["endsAt"], "2024-05-01T04:04:00.000Z");
        assert_eq!(x["generatorURL"], "http://tg:9898/api/v1/alerts/al-ep-1");

        let resolved_at = Utc.with_ymd_and_hms(2024, 5, 1, 3, 20, 0).unwrap();
        let res = Entry {
            update: AlertUpdate::Resolved {
                episode: "ep-1".into(),
                tenant: a.tenant.clone(),
                detector: a.detector,
                entity: a.entity.clone(),
                ts: resolved_at,
            },
            fired: Some(a.clone()),
        };
        let b = body_for(&res, now, Duration::from_secs(60), None).unwrap();
        assert_eq!(
            b[0]["labels"], x["labels"],
            "same labels resolve the same alert"
        );
        assert_eq!(b[0]["endsAt"], "2024-05-01T03:20:00.000Z");
        assert!(b[0].get("generatorURL").is_none());

        let unknown = Entry { fired: None, ..res };
        assert!(matches!(
            body_for(&unknown, now, Duration::from_secs(60), None),
            Err(DeliveryError::Reject(_))
        ));
    }
}
