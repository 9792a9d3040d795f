//! The dispatcher against real components: a real Alertmanager
//! (`prometheus-alertmanager`, routing through its webhook receiver to a
//! stand-in on-call server), and a local HTTP server standing in for
//! webhooks and PagerDuty that can answer 503 for a while (an outage).
//! Every wait is on an event or a condition, with a deadline.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use tollgate_alerts::{AlertsConfig, AlertsMetrics, Dispatcher, LaneMetrics};
use tollgate_detect::{Alert, AlertUpdate, Contribution, Detector, Severity};
use tollgate_events::{Ack, Source, TenantId};

// ---------------------------------------------------------------- stand-in

/// One request the stand-in answered with 2xx.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Req {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

#[derive(Default)]
struct Seen {
    ok: Vec<Req>,
    refused: usize,
}

struct StandInState {
    /// The status every request gets; anything but 2xx is not recorded.
    status: AtomicU16,
    seen: Mutex<Seen>,
    changed: Condvar,
}

/// A local HTTP server (axum) that records what it accepts.
struct StandIn {
    addr: SocketAddr,
    state: Arc<StandInState>,
    _rt: tokio::runtime::Runtime,
}

impl StandIn {
    fn start(status: u16) -> StandIn {
        let state = Arc::new(StandInState {
            status: AtomicU16::new(status),
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let st = state.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let app = axum::Router::new().fallback(
                move |uri: axum::http::Uri,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let st = st.clone();
                    async move {
                        let code = st.status.load(Ordering::SeqCst);
                        let mut seen = st.seen.lock().unwrap();
                        if (200..300).contains(&code) {
                            seen.ok.push(Req {
                                path: uri.path().to_string(),
                                headers: headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().to_string(), v.to_str().unwrap_or("").into())
                                    })
                                    .collect(),
                                body: body.to_vec(),
                            });
                        } else {
                            seen.refused += 1;
                        }
                        drop(seen);
                        st.changed.notify_all();
                        axum::http::StatusCode::from_u16(code).unwrap()
                    }
                },
            );
            axum::serve(listener, app).await.unwrap();
        });
        StandIn {
            addr,
            state,
            _rt: rt,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set_status(&self, code: u16) {
        self.state.status.store(code, Ordering::SeqCst);
    }

    fn ok(&self) -> Vec<Req> {
        self.state.seen.lock().unwrap().ok.clone()
    }

    fn refused(&self) -> usize {
        self.state.seen.lock().unwrap().refused
    }

    /// Waits (on the server's own notifications) until `pred` holds.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> Vec<Req> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.state.seen.lock().unwrap();
        while !pred(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; accepted so far: {:#?}",
                seen.ok
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            seen = self.state.changed.wait_timeout(seen, left).unwrap().0;
        }
        seen.ok.clone()
    }
}

// ---------------------------------------------------------------- helpers

/// Waits until a condition on shared state holds (for counters the
/// dispatcher's threads update), checking it every few milliseconds.
fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn alert(tenant: &str, episode: &str, severity: Severity) -> Alert {
    Alert {
        id: format!("al-{episode}"),
        tenant: TenantId::new(tenant).unwrap(),
        source: Source::Apigw,
        detector: Detector::OffHours,
        entity_key: 1,
        severity,
        score: 7.5,
        grade: 0.9991,
        ts: Utc::now() - chrono::Duration::minutes(2),
        event_id: Some(format!("ev-{episode}")),
        entity: "alice".into(),
        episode: episode.into(),
        explanation: vec![Contribution {
            feature: "hour_of_week".into(),
            value: "Sun 03:00".into(),
            typical: "weekdays 08:00-18:00".into(),
            reason: "Admin activity at an hour acme is rarely active.".into(),
        }],
        summary: format!("off-hours admin activity by alice ({episode})"),
    }
}

fn fired(tenant: &str, episode: &str, severity: Severity) -> AlertUpdate {
    AlertUpdate::Fired(alert(tenant, episode, severity))
}

fn resolved(tenant: &str, episode: &str) -> AlertUpdate {
    AlertUpdate::Resolved {
        episode: episode.into(),
        tenant: TenantId::new(tenant).unwrap(),
        detector: Detector::OffHours,
        entity: "alice".into(),
        ts: Utc::now(),
    }
}

/// `(type, episode)` of a webhook body.
fn kind_episode(v: &Value) -> (String, String) {
    (
        v["type"].as_str().unwrap().to_string(),
        v["episode"].as_str().unwrap().to_string(),
    )
}

fn expect(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, e)| (k.to_string(), e.to_string()))
        .collect()
}

/// Acks whose closures check, when they run, that their update is already
/// in the spool on disk or accepted by the server.
struct AckLog {
    released: Arc<AtomicUsize>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl AckLog {
    fn new() -> AckLog {
        AckLog {
            released: Arc::new(AtomicUsize::new(0)),
            violations: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn ack(&self, update: &AlertUpdate, spool: &Path, server: &StandIn) -> Ack {
        let needle = serde_json::to_string(update).unwrap();
        let released = self.released.clone();
        let violations = self.violations.clone();
        let spool = spool.to_path_buf();
        let state = server.state.clone();
        Ack::new(move || {
            let in_spool = spool_text(&spool).contains(&needle);
            let delivered =
                state.seen.lock().unwrap().ok.iter().any(|r| {
                    String::from_utf8_lossy(&r.body).contains(&needle[..needle.len() - 1])
                });
            if !in_spool && !delivered {
                violations.lock().unwrap().push(needle.clone());
            }
            released.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// For an update the lane skips (a replayed state change): counted,
    /// not checked.
    fn ack_skipped(&self) -> Ack {
        let released = self.released.clone();
        Ack::new(move || {
            released.fetch_add(1, Ordering::SeqCst);
        })
    }

    fn released(&self) -> usize {
        self.released.load(Ordering::SeqCst)
    }

    fn assert_no_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(
            v.is_empty(),
            "acks released before spool or delivery: {v:#?}"
        );
    }
}

/// Everything in the spool segment files under `dir`.
fn spool_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "tgsp") {
                out.push_str(&String::from_utf8_lossy(
                    &std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

fn config(toml_src: &str) -> AlertsConfig {
    #[derive(serde::Deserialize)]
    struct Root {
        alerts: AlertsConfig,
    }
    toml::from_str::<Root>(toml_src).unwrap().alerts
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::SeqCst)
}

fn webhook_config(spool: &Path, url: &str, extra: &str) -> AlertsConfig {
    config(&format!(
        r#"
        [alerts]
        spool_dir = "{}"
        delivery = {{ backoff_initial = "20ms", backoff_max = "100ms", timeout = "5s" }}
        [alerts.sinks.hook]
        type = "webhook"
        url = "{url}"
        {extra}
        "#,
        spool.display()
    ))
}

fn shutdown_clean(d: Dispatcher) -> tollgate_alerts::ShutdownReport {
    let r = d.shutdown(Instant::now() + Duration::from_secs(10));
    assert!(r.lanes.iter().all(|l| l.finished), "{r:?}");
    r
}

// ---------------------------------------------------------------- (b) outage

#[test]
fn an_outage_delivers_every_state_change_once_in_order_after_recovery() {
    let server = StandIn::start(503);
    let dir = tempfile::tempdir().unwrap();
    let metrics = AlertsMetrics::new();
    let d = Dispatcher::start(
        webhook_config(dir.path(), &server.url("/hook"), ""),
        metrics.clone(),
    )
    .unwrap();
    let lane = metrics.lane("hook", 0).unwrap();
    let acks = AckLog::new();
    let f2 = fired("acme", "ep-2", Severity::Low);
    let r3 = resolved("globex", "ep-3");
    // (update, is a replay of a state change already sent)
    let updates = vec![
        (fired("acme", "ep-1", Severity::High), false),
        (f2.clone(), false),
        (f2, true),
        (resolved("acme", "ep-1"), false),
        (fired("globex", "ep-3", Severity::Critical), false),
        (resolved("acme", "ep-2"), false),
        (r3.clone(), false),
        (r3, true),
    ];
    for (u, replay) in &updates {
        let ack = if *replay {
            acks.ack_skipped()
        } else {
            acks.ack(u, dir.path(), &server)
        };
        d.send(u.clone(), Some(ack)).unwrap();
    }
    // While the sink is down, every ack is released — after spooling.
    wait_until(
        "all acks released while the sink is down",
        Duration::from_secs(10),
        || acks.released() == updates.len(),
    );
    acks.assert_no_violations();
    assert!(server.ok().is_empty());
    assert!(server.refused() >= 1);
    assert_eq!(load(&lane.spool_entries), 6);
    assert!(load(&lane.spool_bytes) > 0);
    assert!(load(&lane.failed_attempts) >= 1);
    assert_eq!(load(&lane.skipped), 2);
    assert!(lane.last_error_unix_ms.load(Ordering::SeqCst) > 0);
    // A few retries fail, then the sink recovers.
    wait_until("retries during the outage", Duration::from_secs(10), || {
        load(&lane.retries) >= 2
    });
    server.set_status(200);
    let want = expect(&[
        ("fired", "ep-1"),
        ("fired", "ep-2"),
        ("resolved", "ep-1"),
        ("fired", "ep-3"),
        ("resolved", "ep-2"),
        ("resolved", "ep-3"),
    ]);
    server.wait("the backlog", Duration::from_secs(10), |s| {
        s.ok.len() >= want.len()
    });
    wait_until("the spool to drain", Duration::from_secs(10), || {
        load(&lane.spool_entries) == 0 && load(&lane.delivered) == 6
    });
    let got: Vec<_> = server
        .ok()
        .iter()
        .map(|r| kind_episode(&r.json()))
        .collect();
    assert_eq!(got, want, "each state change once, in send order");
    assert_eq!(load(&lane.spool_bytes), 0);
    let body = server.ok()[0].json();
    assert_eq!(body["state"], "firing");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(server.ok()[2].json()["state"], "resolved");
    // Delivered from the spool: nothing left on disk.
    assert!(spool_text(dir.path()).is_empty());
    let r = shutdown_clean(d);
    assert!(r.is_clean(), "{r:?}");
}

// ---------------------------------------------------------------- (c) restart

#[test]
fn the_spool_survives_a_restart_of_the_dispatcher() {
    let server = StandIn::start(503);
    let dir = tempfile::tempdir().unwrap();
    let cfg = webhook_config(dir.path(), &server.url("/hook"), "");
    let metrics = AlertsMetrics::new();
    let d = Dispatcher::start(cfg.clone(), metrics.clone()).unwrap();
    let acks = AckLog::new();
    let before = vec![
        fired("acme", "ep-10", Severity::High),
        fired("acme", "ep-11", Severity::High),
        resolved("acme", "ep-10"),
    ];
    for u in &before {
        d.send(u.clone(), Some(acks.ack(u, dir.path(), &server)))
            .unwrap();
    }
    wait_until("acks released by spooling", Duration::from_secs(10), || {
        acks.released() == before.len()
    });
    acks.assert_no_violations();
    let r = shutdown_clean(d);
    assert_eq!(r.lanes[0].spooled, 3, "{r:?}");
    assert_eq!(r.lanes[0].abandoned, 0);
    assert!(server.ok().is_empty());

    // A new dispatcher over the same spool delivers the backlog in order.
    server.set_status(200);
    let metrics2 = AlertsMetrics::new();
    let d = Dispatcher::start(cfg, metrics2.clone()).unwrap();
    let lane = metrics2.lane("hook", 0).unwrap();
    server.wait("the spooled backlog", Duration::from_secs(10), |s| {
        s.ok.len() >= 3
    });
    // The open episode ep-11 survived the restart: a replayed Fired is
    // skipped, its Resolved is delivered.
    d.send(fired("acme", "ep-11", Severity::High), None)
        .unwrap();
    d.send(resolved("acme", "ep-11"), None).unwrap();
    server.wait("the resolution", Duration::from_secs(10), |s| {
        s.ok.len() >= 4
    });
    wait_until("all delivered", Duration::from_secs(10), || {
        load(&lane.delivered) == 4
    });
    let got: Vec<_> = server
        .ok()
        .iter()
        .map(|r| kind_episode(&r.json()))
        .collect();
    assert_eq!(
        got,
        expect(&[
            ("fired", "ep-10"),
            ("fired", "ep-11"),
            ("resolved", "ep-10"),
            ("resolved", "ep-11"),
        ])
    );
    assert_eq!(load(&lane.skipped), 1);
    let r = shutdown_clean(d);
    assert_eq!(r.lanes[0].spooled, 0);
}

// ---------------------------------------------------------------- (d) cap

#[test]
fn the_spool_cap_drops_the_oldest_and_counts_them() {
    let server = StandIn::start(503);
    let dir = tempfile::tempdir().unwrap();
    let cap = 4096u64;
    let cfg = webhook_config(
        dir.path(),
        &server.url("/hook"),
        &format!("delivery = {{ spool_max_bytes = {cap}, spool_segment_bytes = 1024 }}"),
    );
    let metrics = AlertsMetrics::new();
    let d = Dispatcher::start(cfg, metrics.clone()).unwrap();
    let lane = metrics.lane("hook", 0).unwrap();
    let acks = AckLog::new();
    let n = 40;
    for i in 0..n {
        let u = fired("acme", &format!("ep-{i:03}"), Severity::Medium);
        let a = acks.ack(&u, dir.path(), &server);
        d.send(u, Some(a)).unwrap();
    }
    wait_until("all acks released", Duration::from_secs(10), || {
        acks.released() == n
    });
    let dropped = load(&lane.dropped_by_cap);
    let kept = load(&lane.spool_entries);
    assert!(dropped > 0, "the cap must have dropped entries");
    assert_eq!(dropped + kept, n as u64);
    assert!(load(&lane.spool_bytes) <= cap);
    server.set_status(200);
    server.wait("the kept entries", Duration::from_secs(10), |s| {
        s.ok.len() as u64 >= kept
    });
    wait_until("the spool to drain", Duration::from_secs(10), || {
        load(&lane.spool_entries) == 0
    });
    let got: Vec<String> = server
        .ok()
        .iter()
        .map(|r| kind_episode(&r.json()).1)
        .collect();
    let want: Vec<String> = (n as u64 - kept..n as u64)
        .map(|i| format!("ep-{i:03}"))
        .collect();
    assert_eq!(got, want, "the newest entries survive, in order");
    shutdown_clean(d);
}

// ------------------------------------------------- (e) PagerDuty and webhook

#[test]
fn pagerduty_and_signed_webhook_payloads() {
    use hmac::{Hmac, KeyInit, Mac};
    let server = StandIn::start(202);
    let cfg = config(&format!(
        r#"
        [alerts]
        admin_base_url = "http://tollgate.test:9898/"
        delivery = {{ backoff_initial = "20ms", backoff_max = "100ms" }}
        [alerts.sinks.pd]
        type = "pagerduty"
        url = "{pd}"
        routing_key = "DEFAULT-KEY"
        routing_keys = {{ acme = "ACME-KEY" }}
        [alerts.sinks.hook]
        type = "webhook"
        url = "{hook}"
        headers = {{ "X-Team" = "secops" }}
        secret = "s3cret"
        [[alerts.routes]]
        tenants = ["acme"]
        min_severity = "high"
        sinks = ["pd", "hook"]
        [[alerts.routes]]
        tenants = ["glob*"]
        sinks = ["pd"]
        "#,
        pd = server.url("/pd"),
        hook = server.url("/hook"),
    ));
    let metrics = AlertsMetrics::new();
    let d = Dispatcher::start(cfg, metrics.clone()).unwrap();
    d.send(fired("acme", "ep-20", Severity::Critical), None)
        .unwrap();
    d.send(fired("acme", "ep-21", Severity::Low), None).unwrap(); // below the route: default = all
    d.send(fired("globex", "ep-22", Severity::Medium), None)
        .unwrap();
    d.send(resolved("acme", "ep-20"), None).unwrap();
    d.send(resolved("globex", "ep-22"), None).unwrap();
    // pd: 20 trigger, 21 trigger, 22 trigger, 20 resolve, 22 resolve;
    // hook: 20 fired, 21 fired, 20 resolved.
    let reqs = server.wait("every request", Duration::from_secs(10), |s| {
        s.ok.len() >= 8
    });
    let pd: Vec<Value> = reqs
        .iter()
        .filter(|r| r.path == "/pd")
        .map(Req::json)
        .collect();
    let hook: Vec<&Req> = reqs.iter().filter(|r| r.path == "/hook").collect();
    assert_eq!(pd.len(), 5);
    assert_eq!(hook.len(), 3);

    let t = &pd[0];
    assert_eq!(t["routing_key"], "ACME-KEY");
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["dedup_key"], "ep-20");
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(
        t["payload"]["summary"],
        "off-hours admin activity by alice (ep-20)"
    );
    assert_eq!(t["payload"]["source"], "alice");
    assert_eq!(t["payload"]["group"], "acme");
    assert_eq!(t["payload"]["class"], "off_hours");
    assert_eq!(
        t["payload"]["custom_details"]["explanation"][0]["feature"],
        "hour_of_week"
    );
    assert_eq!(
        t["client_url"],
        "http://tollgate.test:9898/api/v1/alerts/al-ep-20"
    );
    assert_eq!(pd[1]["payload"]["severity"], "info");
    assert_eq!(pd[2]["routing_key"], "DEFAULT-KEY");
    assert_eq!(pd[2]["payload"]["severity"], "warning");
    let resolves: Vec<(&str, &str, &str)> = pd[3..]
        .iter()
        .map(|v| {
            (
                v["event_action"].as_str().unwrap(),
                v["dedup_key"].as_str().unwrap(),
                v["routing_key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        resolves,
        [
            ("resolve", "ep-20", "ACME-KEY"),
            ("resolve", "ep-22", "DEFAULT-KEY")
        ]
    );

    for r in &hook {
        assert_eq!(r.headers["x-team"], "secops");
        assert_eq!(r.headers["content-type"], "application/json");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&r.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.headers["x-tollgate-signature"], format!("sha256={hex}"));
    }
    let kinds: Vec<_> = hook.iter().map(|r| kind_episode(&r.json())).collect();
    assert_eq!(
        kinds,
        expect(&[
            ("fired", "ep-20"),
            ("fired", "ep-21"),
            ("resolved", "ep-20")
        ])
    );
    let h0 = hook[0].json();
    assert_eq!(h0["state"], "firing");
    assert_eq!(h0["tenant"], "acme");
    assert_eq!(h0["severity"], "critical");
    assert_eq!(hook[2].json()["state"], "resolved");
    // The hook never fired globex's episode: its Resolved was skipped there.
    let hook_lane = metrics.lane("hook", 0).unwrap();
    wait_until("the skip to be counted", Duration::from_secs(5), || {
        load(&hook_lane.skipped) == 1
    });
    assert_eq!(load(&metrics.dispatch().accepted), 5);
    shutdown_clean(d);
}

// ---------------------------------------------------------------- (a) Alertmanager

/// The Alertmanager binary, or `None` when the test may be skipped.
fn alertmanager_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TOLLGATE_ALERTMANAGER_BIN") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("prometheus-alertmanager");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let skip = std::env::var("TOLLGATE_SKIP_SERVICES").as_deref() == Ok("1")
        && std::env::var("CI").as_deref() != Ok("true");
    if skip {
        eprintln!("SKIPPED: prometheus-alertmanager not found (TOLLGATE_SKIP_SERVICES=1)");
        return None;
    }
    panic!(
        "prometheus-alertmanager not found: set TOLLGATE_ALERTMANAGER_BIN or run ./scripts/test \
         (it installs the test services); TOLLGATE_SKIP_SERVICES=1 skips this outside CI"
    );
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts Alertmanager routing everything to `receiver` and waits for
    /// its "Listening on" log line.
    fn start(bin: &Path, receiver: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("am.yml");
        std::fs::write(
            &conf,
            format!(
                "route:\n  receiver: standin\n  group_by: ['alertname', 'tenant', 'episode']\n  \
                 group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: standin\n    webhook_configs:\n      - url: {receiver}\n        \
                 send_resolved: true\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut child = Command::new(bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prometheus-alertmanager");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = flume::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = Vec::new();
        loop {
            match rx.recv_deadline(deadline) {
                Ok(line) => {
                    let up = line.contains("Listening on");
                    log.push(line);
                    if up {
                        break;
                    }
                }
                Err(_) => panic!("alertmanager did not start:\n{}", log.join("\n")),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    fn alerts(&self) -> Vec<Value> {
        let v: Value = reqwest::blocking::get(format!("{}/api/v2/alerts", self.url))
            .unwrap()
            .json()
            .unwrap();
        v.as_array().unwrap().clone()
    }
}

#[test]
fn alertmanager_receives_routes_and_resolves_an_episode() {
    let Some(bin) = alertmanager_bin() else {
        return;
    };
    let oncall = StandIn::start(200);
    let am = Alertmanager::start(&bin, &oncall.url("/am"));
    let dir = tempfile::tempdir().unwrap();
    // The second Alertmanager of the "pair" is down: it must not hold up
    // the first, and gets its own retries and spool.
    let down = format!("http://127.0.0.1:{}", free_port());
    let cfg = config(&format!(
        r#"
        [alerts]
        spool_dir = "{}"
        admin_base_url = "http://tollgate.test:9898"
        delivery = {{ backoff_initial = "50ms", backoff_max = "200ms", timeout = "5s" }}
        [alerts.sinks.am]
        type = "alertmanager"
        urls = ["{}", "{down}"]
        resend_interval = "1s"
        "#,
        dir.path().display(),
        am.url
    ));
    let metrics = AlertsMetrics::new();
    let d = Dispatcher::start(cfg, metrics.clone()).unwrap();
    let up: Arc<LaneMetrics> = metrics.lane("am", 0).unwrap();
    let other: Arc<LaneMetrics> = metrics.lane("am", 1).unwrap();
    let acks = AckLog::new();
    let f = fired("acme", "ep-am-1", Severity::High);
    d.send(f.clone(), Some(acks.ack(&f, dir.path(), &oncall)))
        .unwrap();

    // Alertmanager lists it with our labels...
    wait_until("the alert in Alertmanager", Duration::from_secs(10), || {
        !am.alerts().is_empty()
    });
    let listed = am.alerts();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let a = &listed[0];
    let labels = &a["labels"];
    assert_eq!(labels["alertname"], "TollgateOffHours");
    assert_eq!(labels["tenant"], "acme");
    assert_eq!(labels["detector"], "off_hours");
    assert_eq!(labels["severity"], "high");
    assert_eq!(labels["source"], "apigw");
    assert_eq!(labels["episode"], "ep-am-1");
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(a["annotations"]["score"], "7.500");
    assert!(a["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("rarely active"));
    assert_eq!(
        a["generatorURL"],
        "http://tollgate.test:9898/api/v1/alerts/al-ep-am-1"
    );
    // ...and routes it through its webhook receiver to the on-call stand-in.
    let firing = oncall.wait("the firing notification", Duration::from_secs(15), |s| {
        s.ok.iter().any(|r| r.json()["status"] == "firing")
    });
    let n = firing[0].json();
    assert_eq!(n["alerts"][0]["labels"]["episode"], "ep-am-1");
    assert_eq!(n["alerts"][0]["labels"]["alertname"], "TollgateOffHours");

    // The active alert is re-sent while open.
    wait_until("a periodic re-send", Duration::from_secs(10), || {
        load(&up.resends) >= 1
    });

    // The fired update's ack waited for both targets: delivered to one,
    // spooled for the other.
    wait_until("the Fired's ack", Duration::from_secs(10), || {
        acks.released() == 1
    });
    assert!(load(&other.failed_attempts) >= 1);
    assert!(load(&other.spool_entries) >= 1);

    let r = resolved("acme", "ep-am-1");
    d.send(r.clone(), Some(acks.ack(&r, dir.path(), &oncall)))
        .unwrap();
    let notes = oncall.wait("the resolved notification", Duration::from_secs(15), |s| {
        s.ok.iter().any(|r| r.json()["status"] == "resolved")
    });
    let res = notes
        .iter()
        .map(Req::json)
        .find(|v| v["status"] == "resolved")
        .unwrap();
    assert_eq!(res["alerts"][0]["labels"]["episode"], "ep-am-1");
    assert_eq!(res["alerts"][0]["status"], "resolved");
    wait_until("the Resolved's ack", Duration::from_secs(10), || {
        acks.released() == 2
    });
    acks.assert_no_violations();
    assert_eq!(load(&up.delivered), 2);
    assert_eq!(load(&other.delivered), 0);
    assert_eq!(load(&other.spool_entries), 2);
    assert!(am.alerts().iter().all(|a| a["status"]["state"] != "active"));
    let rep = shutdown_clean(d);
    assert_eq!(rep.lanes[1].spooled, 2, "{rep:?}");
}

// ------------------------------------------------------- no spool configured

#[test]
fn without_a_spool_acks_wait_for_delivery_and_are_never_released_undelivered() {
    let server = StandIn::start(503);
    let cfg = config(&format!(
        r#"
        [alerts]
        delivery = {{ backoff_initial = "20ms", backoff_max = "50ms", queue_capacity = 4 }}
        [alerts.sinks.hook]
        type = "webhook"
        url = "{}"
        "#,
        server.url("/hook")
    ));
    let metrics = AlertsMetrics::new();
    let d = Dispatcher::start(cfg, metrics.clone()).unwrap();
    let acks = AckLog::new();
    d.send(
        fired("acme", "ep-30", Severity::High),
        Some(acks.ack_skipped()),
    )
    .unwrap();
    d.send(
        fired("acme", "ep-31", Severity::High),
        Some(acks.ack_skipped()),
    )
    .unwrap();
    server.wait("failed attempts", Duration::from_secs(10), |s| {
        s.refused >= 3
    });
    assert_eq!(acks.released(), 0, "held while undelivered");
    server.set_status(200);
    wait_until(
        "delivery releases the acks",
        Duration::from_secs(10),
        || acks.released() == 2,
    );
    let got: Vec<_> = server
        .ok()
        .iter()
        .map(|r| kind_episode(&r.json()))
        .collect();
    assert_eq!(got, expect(&[("fired", "ep-30"), ("fired", "ep-31")]));

    server.set_status(503);
    let refused = server.refused();
    d.send(resolved("acme", "ep-30"), Some(acks.ack_skipped()))
        .unwrap();
    server.wait("another failure", Duration::from_secs(10), |s| {
        s.refused > refused
    });
    let r = d.shutdown(Instant::now() + Duration::from_secs(1));
    assert_eq!(r.lanes[0].abandoned, 1, "{r:?}");
    assert!(r.lanes[0].finished);
    assert!(!r.is_clean());
    assert_eq!(
        acks.released(),
        2,
        "an undelivered update's ack is never released"
    );
}

#[test]
fn a_full_queue_blocks_send_until_the_sink_recovers() {
    let server = StandIn::start(503);
    let cfg = config(&format!(
        r#"
        [alerts]
        delivery = {{ backoff_initial = "20ms", backoff_max = "50ms", queue_capacity = 1 }}
        [alerts.sinks.hook]
        type = "webhook"
        url = "{}"
        "#,
        server.url("/hook")
    ));
    let d = Arc::new(Dispatcher::start(cfg, AlertsMetrics::new()).unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (d, sent) = (d.clone(), sent.clone());
        std::thread::spawn(move || {
            for i in 0..6 {
                d.send(fired("acme", &format!("ep-4{i}"), Severity::High), None)
                    .unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // One update in the lane's memory, one in its queue: the third waits.
    wait_until("the queue to fill", Duration::from_secs(10), || {
        sent.load(Ordering::SeqCst) == 2
    });
    let refused = server.refused();
    server.wait("more failed attempts", Duration::from_secs(10), |s| {
        s.refused >= refused + 3
    });
    assert_eq!(sent.load(Ordering::SeqCst), 2, "send must block while full");
    server.set_status(200);
    sender.join().unwrap();
    server.wait("every update", Duration::from_secs(10), |s| s.ok.len() == 6);
    let d = Arc::into_inner(d).unwrap();
    assert!(shutdown_clean(d).is_clean());
}
