//! The admin HTTP endpoint (axum). Binds loopback unless configured
//! otherwise.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text exposition |
//! | `GET /healthz` | the process is alive |
//! | `GET /readyz` | every input is connected (a Kafka input has its first assignment, a file input its file) |
//! | `GET /api/v1/tenants?limit=&after=` | resident tenants: events, warm-up progress, memory, episodes (paged by name) |
//! | `GET /api/v1/tenants/{tenant}` | one tenant: the above plus top issuers and destinations with counts, open episodes, known-benign entries |
//! | `GET /api/v1/alerts?tenant=&since=&limit=` | recent alerts, newest first (`since` is RFC 3339 event time) |
//! | `GET /api/v1/alerts/{id}` | one recent alert (the Alertmanager `generatorURL`) |
//! | `POST /api/v1/alerts/{id}/feedback` | on-call's verdict, `{"verdict":"false_positive"\|"true_positive","by":…,"note":…}`; bearer token required |
//! | `GET /api/v1/feedback?tenant=&limit=` | the feedback audit log, newest first |
//!
//! Every error is a JSON object `{"error": …}` with a 4xx or 5xx status.
//! State-changing endpoints need `Authorization: Bearer <admin.token>`;
//! without a configured token they answer 403 (never open by default).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tollgate_detect::Verdict;
use tollgate_events::TenantId;

use crate::api::{AlertBook, AuditLog, AuditRecord, ControlError, Controls, FeedbackMark};
use crate::metrics::Metrics;

/// Readiness of each input, by name.
#[derive(Default)]
pub struct Readiness {
    inputs: std::sync::Mutex<Vec<(String, Arc<AtomicBool>)>>,
}

impl Readiness {
    /// Registers an input (not ready yet); set the returned flag when it is.
    pub fn input(&self, name: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_owned(), flag.clone()));
        flag
    }

    /// The inputs not ready yet.
    pub fn waiting(&self) -> Vec<String> {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, f)| !f.load(Ordering::Relaxed))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// What the admin endpoint serves from.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub ready: Arc<Readiness>,
    pub book: Arc<AlertBook>,
    pub controls: Controls,
    /// The feedback audit log; `None` refuses feedback.
    pub audit: Option<Arc<AuditLog>>,
    /// The bearer token for state-changing endpoints; `None` refuses them.
    pub token: Option<Arc<str>>,
}

/// A JSON error response.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let code = match e {
            ControlError::Closed | ControlError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// The router, for tests and for serving.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/api/v1/tenants", get(tenants_handler))
        .route("/api/v1/tenants/{tenant}", get(tenant_handler))
        .route("/api/v1/alerts", get(alerts_handler))
        .route("/api/v1/alerts/{id}", get(alert_handler))
        .route("/api/v1/alerts/{id}/feedback", post(feedback_handler))
        .route("/api/v1/feedback", get(audit_handler))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(state)
}

async fn metrics_handler(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn ready_handler(State(s): State<AdminState>) -> impl IntoResponse {
    let waiting = s.ready.waiting();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for inputs: {}\n", waiting.join(", ")),
        )
    }
}

/// Query strings arrive as text: numbers are parsed here so a bad one is a
/// JSON 400 like every other error.
fn limit_of(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(bad(format!(
                "limit must be a whole number from 1 to {max}, got {v:?}"
            ))),
        },
    }
}

fn tenant_of(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::new(raw).map_err(|e| bad(format!("tenant {raw:?}: {e}")))
}

#[derive(Deserialize)]
struct TenantsQuery {
    limit: Option<String>,
    after: Option<String>,
}

async fn tenants_handler(
    State(s): State<AdminState>,
    q: Result<Query<TenantsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let limit = limit_of(q.limit.as_deref(), 1000, 10_000)?;
    let all = s.controls.tenants().await?;
    let total = all.len();
    let page: Vec<_> = all
        .into_iter()
        .filter(|t| q.after.as_deref().is_none_or(|a| t.tenant.as_str() > a))
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| page[limit - 1].tenant.clone());
    let page = &page[..page.len().min(limit)];
    Ok(
        Json(serde_json::json!({ "total": total, "tenants": page, "next_after": next }))
            .into_response(),
    )
}

async fn tenant_handler(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let t = tenant_of(&tenant)?;
    match s.controls.tenant(&t).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("tenant {tenant:?} has no model here"),
        )),
    }
}

#[derive(Deserialize)]
struct AlertsQuery {
    tenant: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

async fn alerts_handler(
    State(s): State<AdminState>,
    q: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let limit = limit_of(q.limit.as_deref(), 100, 10_000)?;
    if let Some(t) = &q.tenant {
        tenant_of(t)?;
    }
    let since = match &q.since {
        None => None,
        Some(v) => Some(
            DateTime::parse_from_rfc3339(v)
                .map_err(|e| bad(format!("since must be RFC 3339 ({v:?}: {e})")))?
                .with_timezone(&Utc),
        ),
    };
    let alerts = s.book.list(q.tenant.as_deref(), since, limit);
    Ok(Json(serde_json::json!({ "alerts": alerts })).into_response())
}

async fn alert_handler(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match s.book.get(&id) {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("alert {id:?} is not among the recent alerts"),
        )),
    }
}

/// Constant-time comparison of the presented token with the configured one.
fn authorized(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    let Some(want) = token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "state-changing endpoints are disabled: no admin.token is configured".into(),
        ));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let (a, b) = (got.as_bytes(), want.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, w) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ w);
    }
    if diff == 0 && !a.is_empty() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    verdict: Verdict,
    by: String,
    #[serde(default)]
    note: Option<String>,
}

const MAX_BY: usize = 200;
const MAX_NOTE: usize = 2000;

async fn feedback_handler(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorized(&headers, s.token.as_deref())?;
    let b: FeedbackBody = serde_json::from_slice(&body).map_err(|e| {
        bad(format!(
            "body must be {{\"verdict\":\"false_positive\"|\"true_positive\",\"by\":…,\"note\":…}}: {e}"
        ))
    })?;
    let by = b.by.trim();
    if by.is_empty() || by.len() > MAX_BY {
        return Err(bad(format!(
            "by must name who decided (1 to {MAX_BY} bytes)"
        )));
    }
    if b.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
        return Err(bad(format!("note is limited to {MAX_NOTE} bytes")));
    }
    let Some(audit) = &s.audit else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "feedback needs admin.audit_log or service.model_dir (its record must survive a restart)".into(),
        ));
    };
    let Some(entry) = s.book.get(&id) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("alert {id:?} is not among the recent alerts"),
        ));
    };
    let a = &entry.alert;
    let effect = s.controls.feedback(a, b.verdict).await?;
    let rec = AuditRecord {
        at: Utc::now(),
        alert_id: a.id.clone(),
        episode: a.episode.clone(),
        tenant: a.tenant.to_string(),
        detector: a.detector.as_str().to_owned(),
        entity: a.entity.clone(),
        score: a.score,
        verdict: b.verdict,
        by: by.to_owned(),
        note: b.note.clone(),
        effect: serde_json::to_value(&effect).unwrap_or_default(),
    };
    let audit = audit.clone();
    let rec2 = rec.clone();
    tokio::task::spawn_blocking(move || audit.append(&rec2))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the verdict was applied but the audit log write failed: {e}"),
            )
        })?;
    s.book.mark(
        &id,
        FeedbackMark {
            verdict: b.verdict,
            by: rec.by.clone(),
            at: rec.at,
        },
    );
    Ok(Json(rec).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    tenant: Option<String>,
    limit: Option<String>,
}

async fn audit_handler(
    State(s): State<AdminState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let limit = limit_of(q.limit.as_deref(), 100, 10_000)?;
    let Some(audit) = s.audit.clone() else {
        return Ok(Json(serde_json::json!({ "feedback": [] })).into_response());
    };
    let tenant = q.tenant.clone();
    let recs = tokio::task::spawn_blocking(move || audit.read(tenant.as_deref(), limit))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("audit log: {e}")))?;
    Ok(Json(serde_json::json!({ "feedback": recs })).into_response())
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound
/// address (port 0 picks a free one) once listening.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin endpoint {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok((bound, task))
}
