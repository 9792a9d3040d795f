//! A generic webhook: each update is POSTed as JSON — the `AlertUpdate`
//! (tagged by `type`) plus `tenant` and `state` (`firing`/`resolved`) —
//! with the configured headers and, when a secret is set,
//! `X-Tollgate-Signature: sha256=<hex HMAC-SHA256 of the exact body>`.
//! Header values and the secret are never logged.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use sha2::Sha256;
use tollgate_detect::AlertUpdate;

use super::{http_client, post_json, Deliver, Entry, Outcome};
use crate::config::{Secret, WebhookConfig};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Tollgate-Signature";

/// The request body for one entry.
pub fn body(e: &Entry) -> Vec<u8> {
    let mut v = serde_json::to_value(&e.update).expect("json");
    let state = match e.update {
        AlertUpdate::Fired(_) => "firing",
        AlertUpdate::Resolved { .. } => "resolved",
    };
    if let Value::Object(m) = &mut v {
        m.insert("tenant".into(), Value::String(e.tenant().to_string()));
        m.insert("state".into(), Value::String(state.into()));
    }
    serde_json::to_vec(&v).expect("json")
}

/// `sha256=<lowercase hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let out = mac.finalize().into_bytes();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256=");
    for b in out.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub struct WebhookSink {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    secret: Option<Secret>,
}

impl WebhookSink {
    pub fn new(c: &WebhookConfig, timeout: Duration) -> Result<WebhookSink, String> {
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid header name {k:?}"))?;
            let mut value = HeaderValue::from_str(v.expose())
                .map_err(|_| format!("invalid value for header {k:?}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(WebhookSink {
            client: http_client(timeout)?,
            url: reqwest::Url::parse(&c.url).map_err(|e| format!("webhook url: {e}"))?,
            headers,
            secret: c.secret.clone(),
        })
    }
}

impl Deliver for WebhookSink {
    fn deliver(&mut self, batch: &[Entry]) -> Outcome {
        for (i, e) in batch.iter().enumerate() {
            let body = body(e);
            let mut headers = self.headers.clone();
            if let Some(s) = &self.secret {
                let sig = signature(s.expose().as_bytes(), &body);
                headers.insert(
                    HeaderName::from_static("x-tollgate-signature"),
                    HeaderValue::from_str(&sig).expect("hex is a valid header value"),
                );
            }
            if let Err(err) = post_json(&self.client, &self.url, &headers, body) {
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
    use tollgate_detect::Severity;

    #[test]
    fn body_carries_the_update_tenant_and_state() {
        let a = alert("ep-2", Severity::Low);
        let e = Entry {
            update: AlertUpdate::Fired(a),
            fired: None,
        };
        let v: Value = serde_json::from_slice(&body(&e)).unwrap();
        assert_eq!(v["type"], "fired");
        assert_eq!(v["state"], "firing");
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["episode"], "ep-2");
        assert_eq!(v["detector"], "off_hours");
    }

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
