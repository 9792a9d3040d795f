//! The admin API and the metrics exposition, against the running service
//! (`tollgate_service::run` in-process, a followed file as input):
//!
//! - feedback: a false positive on one tenant's alert stops the same
//!   pattern alerting for that tenant, the other tenant still alerts, and
//!   the audit record and the lesson survive a restart; bad requests get
//!   JSON 4xx;
//! - the tenants API shows warm-up, memory and top values;
//! - a flood of 100,000 distinct tenants keeps the tenant-labelled series
//!   within `metrics.top_tenants` + the allow-list + `_other`;
//! - Debian's real `prometheus` scrapes the service (`up == 1`, Tollgate
//!   series queryable) and `promtool check metrics` passes on the exposition.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_service::{Hooks, Metrics, ServiceConfig};

const TOKEN: &str = "test-admin-token-0123456789";
const T0: u64 = 1_686_400_000_000;

/// A running service on a background thread; dropped = shut down.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<tollgate_service::RunReport>>,
    metrics: Metrics,
}

impl Running {
    fn start(cfg: ServiceConfig) -> Running {
        let metrics = Metrics::new();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let m = metrics.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(tollgate_service::run(
                cfg,
                async move {
                    let _ = stop_rx.await;
                },
                Hooks {
                    metrics: Some(m),
                    admin_bound: Some(bound_tx),
                    ..Hooks::default()
                },
            ))
            .expect("service run")
        });
        let addr = bound_rx.blocking_recv().expect("admin endpoint bound");
        Running {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            metrics,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::blocking::get(self.url(path)).expect("GET");
        let code = r.status().as_u16();
        (code, r.json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().expect("POST");
        let code = r.status().as_u16();
        (code, r.json().unwrap_or(Value::Null))
    }

    /// Waits for the service to end by itself (its inputs ended).
    fn join(mut self) -> tollgate_service::RunReport {
        self.thread.take().unwrap().join().expect("service thread")
    }

    fn stop(mut self) -> tollgate_service::RunReport {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().expect("service thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `f` until it returns `Some` or `within` passes (the service
/// works on its own threads; this waits for an outcome, not for time).
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// API Gateway access-log lines for `tenant` (a `tenant` field the
/// tenant rule reads), one every 3 s of event time from `from`.
fn lines(tenant: &str, from: u64, n: u64, issuer: impl Fn(u64) -> String) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            format!(
                r#"{{"tenant":"{tenant}","requestId":"{tenant}-{i}","ip":"198.51.100.7","requestTimeEpoch":"{}","httpMethod":"GET","resourcePath":"/pets","status":"200","authorizer":{{"claims":{{"iss":"{}","sub":"u{}"}}}}}}"#,
                T0 + i * 3_000,
                issuer(i),
                i % 7
            )
        })
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

fn config(dir: &Path, input: &Path, follow: bool, extra: &str) -> ServiceConfig {
    let text = format!(
        r#"
[service]
workers = 1
model_dir = "{dir}/models"
[alerts]
path = "{dir}/alerts.ndjson"
[dead_letter]
path = "{dir}/dead.ndjson"
[admin]
addr = "127.0.0.1:0"
token = "{TOKEN}"
[detect]
warmup_events = 100
warmup = "10m"
{extra}
[[inputs]]
name = "files"
source = "file"
decode = {{ format = "apigw", tenant = {{ type = "pointer", pointer = "/tenant" }} }}
file = {{ paths = ["{input}"], follow = {follow}, poll_interval = "20ms" }}
"#,
        dir = dir.display(),
        input = input.display()
    );
    ServiceConfig::parse(&text, "test", Vec::new()).expect("valid config")
}

fn issuer_alerts(svc: &Running, tenant: &str) -> Vec<Value> {
    let (code, v) = svc.get(&format!("/api/v1/alerts?tenant={tenant}"));
    assert_eq!(code, 200, "{v}");
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["detector"] == "issuer")
        .cloned()
        .collect()
}

#[test]
fn a_false_positive_teaches_its_tenant_only_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let acme_iss = |_| "https://login.acme.example/".to_owned();
    let beta_iss = |_| "https://login.beta.example/".to_owned();
    let evil = |_| "https://login.evil.example/".to_owned();
    // Benign traffic of both tenants, interleaved, each with its own issuer.
    let both = |from, n| -> Vec<String> {
        lines("acme", from, n, acme_iss)
            .into_iter()
            .zip(lines("beta", from, n, beta_iss))
            .flat_map(|(a, b)| [a, b])
            .collect()
    };
    // Both tenants learn their own issuer, then both see a new one.
    let mut first = both(0, 2_000);
    first.extend(lines("acme", 2_000, 1, evil));
    first.extend(lines("beta", 2_000, 1, evil));
    append(&input, &first);

    let svc = Running::start(config(dir.path(), &input, true, ""));
    let fired = wait_for(
        "both tenants' issuer alerts",
        Duration::from_secs(60),
        || {
            let a = issuer_alerts(&svc, "acme");
            let b = issuer_alerts(&svc, "beta");
            (a.len() == 1 && b.len() == 1).then(|| a[0].clone())
        },
    );
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["entity"], "https://login.evil.example/");
    let id = fired["id"].as_str().unwrap().to_owned();
    let fb = format!("/api/v1/alerts/{id}/feedback");
    let good = r#"{"verdict":"false_positive","by":"alice@oncall","note":"our new IdP"}"#;

    // Refusals: no token, a wrong token, a bad body, an unknown alert.
    let (code, v) = svc.post(&fb, None, good);
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].is_string());
    assert_eq!(svc.post(&fb, Some("not-the-token"), good).0, 401);
    let (code, v) = svc.post(&fb, Some(TOKEN), r#"{"verdict":"maybe","by":"x"}"#);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("verdict"), "{v}");
    assert_eq!(
        svc.post(&fb, Some(TOKEN), r#"{"verdict":"false_positive","by":""}"#)
            .0,
        400
    );
    assert_eq!(svc.post(&fb, Some(TOKEN), "not json").0, 400);
    assert_eq!(
        svc.post("/api/v1/alerts/al-nope/feedback", Some(TOKEN), good)
            .0,
        404
    );
    assert_eq!(svc.get("/api/v1/alerts?since=yesterday").0, 400);
    assert_eq!(svc.get("/api/v1/alerts?limit=0").0, 400);
    assert_eq!(svc.get("/api/v1/nothing-here").0, 404);

    let (code, rec) = svc.post(&fb, Some(TOKEN), good);
    assert_eq!(code, 200, "{rec}");
    assert_eq!(rec["tenant"], "acme");
    assert_eq!(rec["verdict"], "false_positive");
    assert_eq!(rec["by"], "alice@oncall");
    assert_eq!(
        rec["effect"]["benign"]["entity"],
        "https://login.evil.example/"
    );
    // The verdict resolves the alert's episode at once.
    wait_for("the episode resolved", Duration::from_secs(10), || {
        let (_, a) = svc.get(&format!("/api/v1/alerts/{id}"));
        (a["status"] == "resolved").then_some(())
    });
    let (_, a) = svc.get(&format!("/api/v1/alerts/{id}"));
    assert_eq!(a["feedback"]["verdict"], "false_positive");

    // Well past the cooldown, the same pattern again for both tenants.
    let mut second = both(2_001, 1_000);
    second.extend(lines("acme", 3_001, 1, evil));
    second.extend(lines("beta", 3_001, 1, evil));
    append(&input, &second);
    // One worker scores in file order: once beta's second alert is out,
    // acme's event (just before it) was scored too.
    wait_for(
        "beta's second issuer alert",
        Duration::from_secs(60),
        || (issuer_alerts(&svc, "beta").len() == 2).then_some(()),
    );
    assert_eq!(
        issuer_alerts(&svc, "acme").len(),
        1,
        "acme's known-benign issuer no longer alerts"
    );

    // The tenants API.
    let (code, v) = svc.get("/api/v1/tenants");
    assert_eq!(code, 200);
    assert_eq!(v["total"], 2);
    let acme = &v["tenants"][0];
    assert_eq!(acme["tenant"], "acme");
    assert_eq!(acme["events"], 3_002);
    assert_eq!(acme["warm"], true);
    assert_eq!(acme["warmup"]["progress"], 1.0);
    assert!(acme["resident_bytes"].as_u64().unwrap() > 0);
    let (_, page) = svc.get("/api/v1/tenants?limit=1");
    assert_eq!(page["next_after"], "acme");
    let (_, page) = svc.get("/api/v1/tenants?limit=1&after=acme");
    assert_eq!(page["tenants"][0]["tenant"], "beta");
    let (code, d) = svc.get("/api/v1/tenants/acme");
    assert_eq!(code, 200, "{d}");
    // (top values are kept as short labels)
    assert!(d["top_issuers"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("https://login.acme.ex"));
    assert!(d["top_issuers"][0]["count"].as_u64().unwrap() > 100);
    assert_eq!(d["known_benign"][0]["detector"], "issuer");
    assert!(d["counters"]["suppressed"].as_u64().unwrap() >= 1);
    assert_eq!(svc.get("/api/v1/tenants/nobody").0, 404);
    assert_eq!(svc.get("/api/v1/tenants/bad%20id").0, 400);

    let m = svc.metrics.render();
    assert!(
        m.contains(r#"tollgate_feedback_total{verdict="false_positive"} 1"#),
        "{m}"
    );
    drop(svc.stop());

    // After a restart (no new events): the audit record and the lesson.
    let empty = dir.path().join("empty.ndjson");
    append(&empty, &[]);
    let svc = Running::start(config(dir.path(), &empty, true, ""));
    let (code, v) = svc.get("/api/v1/feedback?tenant=acme");
    assert_eq!(code, 200);
    let recs = v["feedback"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{v}");
    assert_eq!(recs[0]["alert_id"], id.as_str());
    assert_eq!(recs[0]["note"], "our new IdP");
    let (code, d) = svc.get("/api/v1/tenants/acme");
    assert_eq!(code, 200, "read from the model store: {d}");
    assert_eq!(
        d["known_benign"][0]["entity"],
        "https://login.evil.example/"
    );
    let (_, d) = svc.get("/api/v1/tenants/beta");
    assert_eq!(d["known_benign"].as_array().unwrap().len(), 0);
    drop(svc.stop());
}

#[test]
fn without_a_token_state_changing_endpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    append(&input, &[]);
    let mut cfg = config(dir.path(), &input, true, "");
    cfg.admin.token = None;
    let svc = Running::start(cfg);
    let (code, v) = svc.post(
        "/api/v1/alerts/al-1/feedback",
        Some(TOKEN),
        r#"{"verdict":"true_positive","by":"x"}"#,
    );
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("admin.token"));
    assert_eq!(svc.get("/healthz").0, 200);
    drop(svc.stop());
}

/// Series in an exposition whose metric name starts with `prefix`.
fn series(expo: &str, prefix: &str) -> Vec<String> {
    expo.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_flood_of_tenants_keeps_the_exposition_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    // 100,000 distinct tenants with one event each, and two busy ones.
    let mut all = Vec::with_capacity(100_100);
    for i in 0..100_000u64 {
        all.extend(lines(&format!("t{i:06}"), i, 1, |_| {
            "https://i.example/".into()
        }));
        if i % 1000 == 0 {
            all.extend(lines("whale", i, 20, |_| "https://i.example/".into()));
            all.extend(lines("vip", i, 1, |_| "https://i.example/".into()));
        }
    }
    append(&input, &all);
    let mut cfg = config(
        dir.path(),
        &input,
        false,
        r#"budget_bytes = 32768
max_resident_tenants = 1000
[metrics]
tenants = ["vip"]
top_tenants = 5
rerank_interval = "100ms""#,
    );
    cfg.service.model_dir = None;
    cfg.admission.events_per_second = 0.0;
    cfg.service.shutdown_deadline = tollgate_detect::Dur::secs(600);
    let n = all.len() as u64;
    let svc = Running::start(cfg);
    let metrics = svc.metrics.clone();
    let report = svc.join();
    assert_eq!(report.events_scored(), n);
    let expo = metrics.render();
    let tenant_series = series(&expo, "tollgate_tenant_events_total{");
    assert!(
        tenant_series.len() <= 1 + 5 + 1,
        "allow-list + top 5 + _other at most: {tenant_series:#?}"
    );
    assert!(tenant_series.iter().any(|l| l.contains(r#"tenant="vip""#)));
    assert!(tenant_series
        .iter()
        .any(|l| l.contains(r#"tenant="_other""#)));
    let counted: f64 = tenant_series
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(counted as u64, n, "every event is counted under some label");
    let samples = expo.lines().filter(|l| !l.starts_with('#')).count();
    assert!(samples < 400, "{samples} samples in the exposition");
}

/// The Prometheus tools from `scripts/services`, or a skip outside CI.
fn prometheus_bins() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, name: &str| -> Option<PathBuf> {
        if let Ok(p) = std::env::var(var) {
            return Some(PathBuf::from(p));
        }
        let p = PathBuf::from("/usr/bin").join(name);
        p.exists().then_some(p)
    };
    match (
        find("TOLLGATE_PROMETHEUS_BIN", "prometheus"),
        find("TOLLGATE_PROMTOOL_BIN", "promtool"),
    ) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            let skip = std::env::var("TOLLGATE_SKIP_SERVICES").as_deref() == Ok("1")
                && std::env::var("CI").as_deref() != Ok("true");
            assert!(
                skip,
                "prometheus/promtool not found: set TOLLGATE_PROMETHEUS_BIN and \
                 TOLLGATE_PROMTOOL_BIN or run ./scripts/test (it installs them); \
                 TOLLGATE_SKIP_SERVICES=1 skips this outside CI"
            );
            eprintln!("SKIPPED: prometheus not found (TOLLGATE_SKIP_SERVICES=1)");
            None
        }
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_prometheus_scrapes_tollgate_and_promtool_accepts_the_exposition() {
    let Some((prometheus, promtool)) = prometheus_bins() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    append(
        &input,
        &lines("acme", 0, 500, |_| "https://login.acme.example/".into()),
    );
    let svc = Running::start(config(
        dir.path(),
        &input,
        true,
        "[metrics]\ntenants = [\"acme\"]",
    ));
    wait_for("the events scored", Duration::from_secs(30), || {
        svc.metrics
            .render()
            .contains("tollgate_events_scored_total 500")
            .then_some(())
    });

    // promtool lints the exposition exactly as served.
    let expo = reqwest::blocking::get(svc.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    lint.stdin
        .take()
        .unwrap()
        .write_all(expo.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus scrapes it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tollgate\n    static_configs:\n      - targets: ['{}']\n",
            svc.addr
        ),
    )
    .unwrap();
    let _prom = KillOnDrop(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let query = |q: &str| -> Option<Vec<Value>> {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/v1/query"))
            .query(&[("query", q)])
            .send()
            .ok()?;
        let v: Value = r.json().ok()?;
        v["data"]["result"].as_array().cloned()
    };
    wait_for("up == 1 in Prometheus", Duration::from_secs(60), || {
        let r = query(r#"up{job="tollgate"}"#)?;
        (r.first()?["value"][1] == "1").then_some(())
    });
    let scored = wait_for(
        "Tollgate series in Prometheus",
        Duration::from_secs(30),
        || {
            let r = query("tollgate_events_scored_total")?;
            r.first()
                .map(|x| x["value"][1].as_str().unwrap().to_owned())
        },
    );
    assert_eq!(scored, "500");
    let acme = wait_for("a tenant series", Duration::from_secs(30), || {
        let r = query(r#"tollgate_tenant_events_total{tenant="acme"}"#)?;
        r.first()
            .map(|x| x["value"][1].as_str().unwrap().to_owned())
    });
    assert_eq!(acme, "500");
    drop(svc.stop());
}
