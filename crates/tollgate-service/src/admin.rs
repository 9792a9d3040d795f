//! The admin HTTP endpoint (axum): `/metrics` (Prometheus text
//! exposition), `/healthz` (the process is alive) and `/readyz` (every input
//! is connected: a Kafka input has received its first assignment, a file
//! input has opened its file). Binds loopback unless configured otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

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

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    ready: Arc<Readiness>,
}

/// The router, for tests and for serving.
pub fn router(metrics: Metrics, ready: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, ready })
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn ready_handler(State(s): State<AppState>) -> impl IntoResponse {
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

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound
/// address (port 0 picks a free one) once listening.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    ready: Arc<Readiness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin endpoint {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = router(metrics, ready);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok((bound, task))
}
