//! The state behind the admin API: the recent-alerts ring buffer
//! ([`AlertBook`]), the feedback audit log ([`AuditLog`]) and the requests
//! the API sends to the workers that own tenant models ([`Controls`]).
//! The HTTP side is in [`crate::admin`].

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_detect::{Alert, AlertUpdate, FeedbackEffect, TenantDetail, TenantSummary, Verdict};
use tollgate_events::TenantId;

use crate::pipeline::{worker_of, Control};

/// On-call's mark on an alert in the book.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackMark {
    pub verdict: Verdict,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// An alert as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookEntry {
    #[serde(flatten)]
    pub alert: Alert,
    /// `firing` until its episode resolves, then `resolved`.
    pub status: &'static str,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The latest verdict, if on-call gave one since this process started
    /// (the full history is in the audit log).
    pub feedback: Option<FeedbackMark>,
}

/// The most recent alerts (a ring buffer of `capacity` entries), updated
/// by the alert writer as it writes each update.
pub struct AlertBook {
    capacity: usize,
    entries: Mutex<VecDeque<BookEntry>>,
}

impl AlertBook {
    pub fn new(capacity: usize) -> Self {
        AlertBook {
            capacity: capacity.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<BookEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one alert update: a fired alert is added (the oldest goes
    /// when full); a resolution marks its episode's alert resolved.
    pub fn record(&self, u: &AlertUpdate) {
        let mut e = self.lock();
        match u {
            AlertUpdate::Fired(a) => {
                if e.len() >= self.capacity {
                    e.pop_front();
                }
                e.push_back(BookEntry {
                    alert: a.clone(),
                    status: "firing",
                    resolved_at: None,
                    feedback: None,
                });
            }
            AlertUpdate::Resolved { episode, ts, .. } => {
                if let Some(x) = e.iter_mut().rev().find(|x| x.alert.episode == *episode) {
                    x.status = "resolved";
                    x.resolved_at = Some(*ts);
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<BookEntry> {
        self.lock().iter().rev().find(|x| x.alert.id == id).cloned()
    }

    /// Newest first: alerts of `tenant` (all when `None`) with event time
    /// at or after `since`, at most `limit`.
    pub fn list(
        &self,
        tenant: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Vec<BookEntry> {
        self.lock()
            .iter()
            .rev()
            .filter(|x| tenant.is_none_or(|t| x.alert.tenant.as_str() == t))
            .filter(|x| since.is_none_or(|s| x.alert.ts >= s))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn mark(&self, id: &str, mark: FeedbackMark) {
        if let Some(x) = self.lock().iter_mut().rev().find(|x| x.alert.id == id) {
            x.feedback = Some(mark);
        }
    }
}

/// One line of the feedback audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Wall-clock time the verdict was applied.
    pub at: DateTime<Utc>,
    pub alert_id: String,
    pub episode: String,
    pub tenant: String,
    pub detector: String,
    pub entity: String,
    pub score: f64,
    pub verdict: Verdict,
    pub by: String,
    pub note: Option<String>,
    /// What the verdict did to the tenant's model.
    pub effect: serde_json::Value,
}

/// The append-only feedback audit log (NDJSON). Each record is written
/// with one `write` and fsynced before the API answers, so an
/// acknowledged verdict survives a crash.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("feedback audit log {}: {e}", path.display()))?;
        // A crash mid-append leaves a torn last line: end it, so the next
        // record starts on a line of its own.
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            use std::os::unix::fs::FileExt;
            file.read_exact_at(&mut last, len - 1)?;
            if last[0] != b'\n' {
                (&file).write_all(b"\n")?;
            }
        }
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, rec: &AuditRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&line)?;
        f.sync_data()
    }

    /// The newest `limit` records (of `tenant`, or all), newest first.
    /// Lines that do not parse (a torn last line after a crash) are skipped.
    pub fn read(&self, tenant: Option<&str>, limit: usize) -> std::io::Result<Vec<AuditRecord>> {
        let f = std::fs::File::open(&self.path)?;
        let mut keep: VecDeque<AuditRecord> = VecDeque::new();
        for line in std::io::BufReader::new(f).lines() {
            let Ok(r) = serde_json::from_str::<AuditRecord>(&line?) else {
                continue;
            };
            if tenant.is_some_and(|t| r.tenant != t) {
                continue;
            }
            if keep.len() >= limit {
                keep.pop_front();
            }
            keep.push_back(r);
        }
        Ok(keep.into_iter().rev().collect())
    }
}

/// Why a request to the workers failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the pipeline is shutting down")]
    Closed,
    #[error("the worker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("saving the tenant's model failed: {0}")]
    Store(String),
}

/// How long an API request waits for a worker (it answers between batches).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends API requests to the workers that own the tenants.
#[derive(Clone)]
pub struct Controls {
    pub(crate) senders: Vec<flume::Sender<Control>>,
}

impl Controls {
    async fn ask<T>(
        &self,
        worker: usize,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Control,
    ) -> Result<T, ControlError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.senders[worker]
            .send_async(make(tx))
            .await
            .map_err(|_| ControlError::Closed)?;
        match tokio::time::timeout(CONTROL_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ControlError::Closed),
            Err(_) => Err(ControlError::Timeout(CONTROL_TIMEOUT)),
        }
    }

    /// Applies a verdict on `alert` to its tenant's model (saved at once).
    pub async fn feedback(
        &self,
        alert: &Alert,
        verdict: Verdict,
    ) -> Result<FeedbackEffect, ControlError> {
        let w = worker_of(&alert.tenant, self.senders.len());
        let tenant = alert.tenant.clone();
        let target = alert.into();
        self.ask(w, move |reply| Control::Feedback {
            tenant,
            target,
            verdict,
            reply,
        })
        .await?
        .map_err(ControlError::Store)
    }

    /// Every resident tenant, sorted.
    pub async fn tenants(&self) -> Result<Vec<TenantSummary>, ControlError> {
        let mut all = Vec::new();
        for w in 0..self.senders.len() {
            all.extend(self.ask(w, |reply| Control::Tenants { reply }).await?);
        }
        all.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(all)
    }

    /// One tenant's page (resident, or read from the model store).
    pub async fn tenant(&self, t: &TenantId) -> Result<Option<TenantDetail>, ControlError> {
        let w = worker_of(t, self.senders.len());
        let tenant = t.clone();
        self.ask(w, move |reply| Control::Tenant { tenant, reply })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_detect::{Detector, Severity};
    use tollgate_events::Source;

    fn alert(id: &str, tenant: &str, ts: &str) -> Alert {
        Alert {
            id: id.into(),
            tenant: TenantId::new(tenant).unwrap(),
            source: Source::Apigw,
            detector: Detector::Issuer,
            entity_key: 1,
            severity: Severity::High,
            score: 12.0,
            grade: 0.999,
            ts: ts.parse().unwrap(),
            event_id: None,
            entity: "https://evil.example/".into(),
            episode: format!("ep-{id}"),
            explanation: vec![],
            summary: "s".into(),
        }
    }

    #[test]
    fn the_book_keeps_the_newest_and_follows_resolutions() {
        let book = AlertBook::new(2);
        for (id, t, ts) in [
            ("a1", "acme", "2026-01-01T00:00:00Z"),
            ("a2", "beta", "2026-01-01T01:00:00Z"),
            ("a3", "acme", "2026-01-01T02:00:00Z"),
        ] {
            book.record(&AlertUpdate::Fired(alert(id, t, ts)));
        }
        assert!(book.get("a1").is_none(), "the oldest left the ring");
        let acme: Vec<_> = book
            .list(Some("acme"), None, 10)
            .into_iter()
            .map(|e| e.alert.id)
            .collect();
        assert_eq!(acme, ["a3"]);
        let since = book.list(None, Some("2026-01-01T01:30:00Z".parse().unwrap()), 10);
        assert_eq!(since.len(), 1);
        book.record(&AlertUpdate::Resolved {
            episode: "ep-a2".into(),
            tenant: TenantId::new("beta").unwrap(),
            detector: Detector::Issuer,
            entity: "x".into(),
            ts: "2026-01-01T03:00:00Z".parse().unwrap(),
        });
        let a2 = book.get("a2").unwrap();
        assert_eq!(a2.status, "resolved");
        assert_eq!(book.list(None, None, 1)[0].alert.id, "a3", "newest first");
    }

    #[test]
    fn the_audit_log_reads_back_newest_first_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit").join("feedback.ndjson");
        let log = AuditLog::open(&p).unwrap();
        for (i, t) in ["acme", "beta", "acme"].iter().enumerate() {
            log.append(&AuditRecord {
                at: Utc::now(),
                alert_id: format!("al-{i}"),
                episode: "ep".into(),
                tenant: (*t).into(),
                detector: "issuer".into(),
                entity: "e".into(),
                score: 1.0,
                verdict: Verdict::FalsePositive,
                by: "oncall".into(),
                note: None,
                effect: serde_json::Value::Null,
            })
            .unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"at\":")
            .unwrap();
        let again = AuditLog::open(&p).unwrap();
        let acme: Vec<_> = again
            .read(Some("acme"), 10)
            .unwrap()
            .into_iter()
            .map(|r| r.alert_id)
            .collect();
        assert_eq!(acme, ["al-2", "al-0"]);
        assert_eq!(again.read(None, 1).unwrap()[0].alert_id, "al-2");
    }
}
