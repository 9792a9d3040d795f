//! `tollgate run` and `tollgate check-config`: load and check the service
//! configuration, then (for `run`) start the service and stop it gracefully
//! on SIGTERM or SIGINT.

use std::path::Path;

use anyhow::Context;
use tollgate_service::ServiceConfig;

/// Loads the configuration, reporting every problem (exit 2 when invalid).
fn load(path: &Path) -> Result<ServiceConfig, i32> {
    ServiceConfig::load(path).map_err(|e| {
        eprintln!("{}: invalid configuration:", path.display());
        for p in &e.0 {
            eprintln!("  - {p}");
        }
        2
    })
}

pub fn check(path: &Path) -> anyhow::Result<i32> {
    match load(path) {
        Ok(cfg) => {
            println!(
                "{}: ok ({} input(s): {})",
                path.display(),
                cfg.inputs.len(),
                cfg.inputs
                    .iter()
                    .map(|i| format!("{} ({:?})", i.name, i.source))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Err(code) => Ok(code),
    }
}

pub fn run(path: &Path) -> anyhow::Result<i32> {
    let cfg = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    for i in &cfg.inputs {
        if i.decode.subject_key == tollgate_events::SubjectKey::INSECURE_DEFAULT {
            eprintln!(
                "tollgate: warning: input {:?} hashes token subjects with the built-in demo key; set TOLLGATE_SUBJECT_KEY or decode.subject_key",
                i.name
            );
        }
    }
    tollgate_service::abort_on_panic();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("tollgate-io")
        .build()
        .context("starting the runtime")?;
    let report = rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel::<std::net::SocketAddr>();
        tokio::spawn(async move {
            if let Ok(addr) = rx.await {
                eprintln!("tollgate: admin endpoint on http://{addr}/metrics");
            }
        });
        tollgate_service::run(
            cfg,
            shutdown_signal(),
            tollgate_service::Hooks {
                admin_bound: Some(tx),
                ..Default::default()
            },
        )
        .await
    })?;
    let records: Vec<String> = report
        .records
        .iter()
        .map(|(n, r)| format!("{n}={r}"))
        .collect();
    eprintln!(
        "tollgate: stopped; records {}; events scored {}",
        records.join(" "),
        report.events_scored()
    );
    Ok(0)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("tollgate: shutting down (signal received)");
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
