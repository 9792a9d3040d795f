//! End-to-end tests of the engine on seeded synthetic traffic: each attack
//! scenario is detected by the intended detector within its first events,
//! benign traffic stays quiet, snapshots restore to identical scores, and a
//! tenant's model and scores are isolated from every other tenant.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use tollgate_detect::{
    AlertUpdate, CheckedConfig, DetectConfig, Detector, Dur, Engine, EventScore, MemStore,
    ModelStore,
};
use tollgate_events::{Event, Source, TenantId};

const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z, a Monday

/// The tests' configuration, before it is checked.
fn detect_cfg() -> DetectConfig {
    DetectConfig {
        warmup_events: 2_000,
        warmup: Dur::secs(6 * 3600),
        ..Default::default()
    }
}

fn cfg() -> CheckedConfig {
    detect_cfg().check().unwrap()
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// Seeded benign traffic for one tenant: 40 principals with stable networks,
/// user agents and issuers; API calls, web browsing over a Zipf-like set of
/// domains, DNS; busy weekdays 08–18 UTC, quiet nights and weekends.
struct Gen {
    rng: u64,
    tenant: TenantId,
    now: i64,
    n: u64,
}

const UAS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "okhttp/4.12.0",
];
const ROUTES: [&str; 8] = [
    "/v1/items",
    "/v1/items/{id}",
    "/v1/orders",
    "/v1/orders/{id}",
    "/v1/users/me",
    "/v1/search",
    "/v1/cart",
    "/v1/health",
];
const ISSUERS: [&str; 2] = ["https://login.acme.example", "https://sts.partner.example"];

impl Gen {
    fn new(tenant: &str, seed: u64) -> Gen {
        Gen {
            rng: seed,
            tenant: TenantId::new(tenant).unwrap(),
            now: T0,
            n: 0,
        }
    }
    fn u(&mut self) -> f64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.rng >> 11) as f64) / ((1u64 << 53) as f64)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.u() * n as f64) as usize % n
    }
    fn normal(&mut self) -> f64 {
        (0..6).map(|_| self.u()).sum::<f64>() * 2.0 - 6.0
    }
    fn lognormal(&mut self, mu: f64, sd: f64) -> u64 {
        (mu + sd * self.normal()).exp() as u64
    }
    fn zipf(&mut self, n: usize) -> usize {
        // p(k) ~ 1/(k+1)
        let x = self.u() * ((n + 1) as f64).ln();
        (x.exp() as usize).saturating_sub(1).min(n - 1)
    }
    fn principal(&self, p: usize) -> String {
        if p < 3 {
            format!("admin{p}@acme.example")
        } else {
            format!("user{p}@acme.example")
        }
    }
    fn ip(&self, p: usize, alt: bool) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            10,
            (p / 200) as u8,
            (p % 200) as u8 + if alt { 100 } else { 0 },
            17,
        ))
    }
    fn tick(&mut self) {
        let how = ((self.now - T0).div_euclid(3_600_000)) % 168;
        let busy = how < 120 && (8..18).contains(&(how % 24));
        let mean_ms = if busy { 2_000.0 } else { 60_000.0 };
        self.now += (-(1.0 - self.u()).ln() * mean_ms) as i64 + 1;
    }
    fn base(&mut self, source: Source) -> Event {
        self.n += 1;
        let mut e = Event::new(self.tenant.clone(), source, at(self.now));
        e.id = Some(format!("{}-{}", self.tenant, self.n).into());
        e
    }
    /// The next benign event (advances the clock).
    fn benign(&mut self) -> Event {
        self.tick();
        let p = 3 + self.below(37);
        let r = self.u();
        if r < 0.5 {
            self.api(p)
        } else if r < 0.85 {
            self.web(p)
        } else {
            self.dns()
        }
    }
    fn api(&mut self, p: usize) -> Event {
        let mut e = self.base(Source::Apigw);
        e.principal = Some(self.principal(p).into());
        let alt = self.u() < 0.2;
        e.client_ip = Some(self.ip(p, alt));
        e.user_agent = Some(UAS[p % 4].into());
        e.token_issuer = Some(ISSUERS[usize::from(p.is_multiple_of(5))].into());
        e.method = Some(if self.u() < 0.8 { "GET" } else { "POST" }.into());
        e.route = Some(ROUTES[self.zipf(ROUTES.len())].into());
        let s = self.u();
        e.status = Some(if s < 0.005 {
            401
        } else if s < 0.015 {
            404
        } else {
            200
        });
        e.bytes_in = Some(self.lognormal(6.0, 0.5));
        e.bytes_out = Some(self.lognormal(7.5, 1.0));
        e.latency_ms = Some(self.lognormal(3.9, 0.5) as f64);
        e
    }
    fn admin_api(&mut self) -> Event {
        let p = self.below(3);
        self.admin_api_by(p)
    }
    fn admin_api_by(&mut self, p: usize) -> Event {
        let mut e = self.api(p);
        e.route = Some("/admin/settings".into());
        e
    }
    fn web(&mut self, p: usize) -> Event {
        let mut e = self.base(Source::ZscalerWeb);
        e.principal = Some(self.principal(p).into());
        e.client_ip = Some(self.ip(p, false));
        e.user_agent = Some(UAS[p % 3].into());
        let d = self.zipf(300);
        e.destination_host = Some(format!("www.site{d}.example.com").into());
        e.url_category = Some(["Business", "News", "Reference"][d % 3].into());
        e.method = Some(if self.u() < 0.9 { "GET" } else { "POST" }.into());
        e.content_type = Some("text/html".into());
        e.status = Some(200);
        e.bytes_out = Some(self.lognormal(6.5, 0.6));
        e.bytes_in = Some(self.lognormal(9.0, 1.2));
        e.latency_ms = Some(self.lognormal(4.5, 0.7) as f64);
        e
    }
    fn dns(&mut self) -> Event {
        let mut e = self.base(Source::ZscalerDns);
        let p = 3 + self.below(37);
        e.principal = Some(self.principal(p).into());
        e.client_ip = Some(self.ip(p, false));
        let d = self.zipf(300);
        e.destination_host = Some(format!("www.site{d}.example.com").into());
        e.method = Some("A".into());
        e.latency_ms = Some(self.lognormal(2.0, 0.5) as f64);
        e
    }
    /// Run `n` benign events (admins act during business hours).
    fn run(&mut self, engine: &mut Engine, n: usize, out: &mut Vec<AlertUpdate>) {
        for _ in 0..n {
            let mut e = self.benign();
            let how = ((self.now - T0).div_euclid(3_600_000)) % 168;
            if how < 120 && (9..17).contains(&(how % 24)) && self.u() < 0.01 {
                e = self.admin_api();
            }
            engine.process(&e, out);
        }
    }
}

fn fired(out: &[AlertUpdate]) -> Vec<&tollgate_detect::Alert> {
    out.iter()
        .filter_map(|u| match u {
            AlertUpdate::Fired(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// A warmed engine for tenant `acme`, benign-only alerts listed.
fn warmed(n: usize) -> (Engine, Gen, Vec<AlertUpdate>) {
    warmed_with(cfg(), n)
}

fn warmed_with(cfg: CheckedConfig, n: usize) -> (Engine, Gen, Vec<AlertUpdate>) {
    let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
    let mut g = Gen::new("acme", 11);
    let mut out = Vec::new();
    g.run(&mut engine, n, &mut out);
    (engine, g, out)
}

/// Feed attack events, return the 1-based index of the first one that fired
/// `want`, with the alert.
fn first_fire(
    engine: &mut Engine,
    events: impl IntoIterator<Item = Event>,
    want: Detector,
) -> Option<(usize, tollgate_detect::Alert)> {
    let mut out = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        out.clear();
        engine.process(&e, &mut out);
        if let Some(a) = fired(&out).into_iter().find(|a| a.detector == want) {
            return Some((i + 1, a.clone()));
        }
    }
    None
}

#[test]
fn benign_traffic_stays_quiet_after_warm_up() {
    let (engine, _, out) = warmed(60_000);
    let alerts = fired(&out);
    let shown: Vec<_> = alerts
        .iter()
        .map(|a| format!("{}: {}", a.detector, a.summary))
        .collect();
    assert!(
        alerts.is_empty(),
        "{} benign alerts in 60k events: {shown:#?}",
        alerts.len()
    );
    let m = engine.tenant(&TenantId::new("acme").unwrap()).unwrap();
    assert!(
        m.resident_bytes() <= 64 * 1024,
        "{} bytes",
        m.resident_bytes()
    );
    assert!(engine.stats().gmm_fits >= 3, "{:?}", engine.stats());
    assert_eq!(engine.stats().gmm_fit_failures, 0);
}

#[test]
fn new_token_issuer_fires_on_first_event_with_explanation() {
    let (mut engine, mut g, _) = warmed(20_000);
    let evs: Vec<Event> = (0..5)
        .map(|_| {
            g.tick();
            let mut e = g.api(7);
            e.token_issuer = Some("https://login.evil.example".into());
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Issuer).expect("issuer alert");
    assert_eq!(i, 1);
    assert_eq!(a.entity, "https://login.evil.example");
    assert!(
        a.summary
            .contains("first seen for tenant acme after 20,000 events"),
        "{}",
        a.summary
    );
    assert!(a.summary.contains("2 issuers seen before"), "{}", a.summary);
    assert_eq!(a.explanation[0].feature, "token_issuer");
    assert!(
        a.explanation[0]
            .typical
            .contains("https://login.acme.examp"),
        "{:?}",
        a.explanation
    );
}

#[test]
fn a_new_issuer_fires_in_a_tenant_just_past_warm_up() {
    // ≈ 750 token-bearing events: a first sighting is 9.6 bits, under the
    // 10-bit floor this detector had (seed 14's small `sterling-016` missed
    // its new issuer so); the floor now matches what warm-up guarantees
    let cfg = DetectConfig {
        warmup_events: 1_000,
        ..detect_cfg()
    }
    .check()
    .unwrap();
    let (mut engine, mut g, _) = warmed_with(cfg, 1_500);
    g.tick();
    let mut e = g.api(7);
    e.token_issuer = Some("https://login.evil.example".into());
    let (i, a) = first_fire(&mut engine, [e], Detector::Issuer).expect("issuer alert");
    assert_eq!(i, 1);
    assert!((9.0..10.0).contains(&a.score), "{}", a.score);
}

#[test]
fn stolen_token_from_new_network_and_user_agent_fires() {
    let (mut engine, mut g, _) = warmed(20_000);
    let evs: Vec<Event> = (0..5)
        .map(|_| {
            g.tick();
            let mut e = g.api(8);
            e.client_ip = Some("203.0.113.7".parse().unwrap());
            e.user_agent = Some("python-requests/2.31.0".into());
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Access).expect("access alert");
    assert!(i <= 1, "fired at event {i}");
    assert_eq!(a.entity, "user8@acme.example");
    assert!(
        a.summary.contains("203.0.113.0/24") && a.summary.contains("python-requests"),
        "{}",
        a.summary
    );
}

/// A principal with a handful of events (never established), then `n`
/// requests `gap_ms` apart from a new network with a user agent the tenant
/// knows but this principal never used.
fn light_principal_replayed(g: &mut Gen, engine: &mut Engine, n: usize, gap_ms: i64) -> Vec<Event> {
    light_principal_replayed_with(g, engine, n, gap_ms, UAS[2])
}

/// As [`light_principal_replayed`], the replay sending user agent `ua`
/// (the principal's own, `UAS[0]`, or another).
fn light_principal_replayed_with(
    g: &mut Gen,
    engine: &mut Engine,
    n: usize,
    gap_ms: i64,
    ua: &str,
) -> Vec<Event> {
    let mut out = Vec::new();
    for _ in 0..3 {
        g.tick();
        let mut e = g.api(8);
        e.principal = Some("light@acme.example".into());
        e.user_agent = Some(UAS[0].into());
        engine.process(&e, &mut out);
    }
    g.now += 3 * 3_600_000;
    (0..n)
        .map(|_| {
            g.now += gap_ms;
            let mut e = g.api(8);
            e.principal = Some("light@acme.example".into());
            e.client_ip = Some("203.0.113.9".parse().unwrap());
            e.user_agent = Some(ua.into());
            e
        })
        .collect()
}

#[test]
fn a_light_principals_token_replayed_from_a_new_network_fires_at_thirty_requests() {
    let (mut engine, mut g, _) = warmed(20_000);
    let evs = light_principal_replayed(&mut g, &mut engine, 40, 30_000);
    let (i, a) = first_fire(&mut engine, evs, Detector::Access).expect("access alert");
    // log2(30 + 2) = 5 bits, the access floor; 30 > 2 × 3 + 2
    assert_eq!(i, 30, "fired at event {i}");
    assert_eq!(a.entity, "light@acme.example");
    assert_eq!(
        a.explanation[2].feature, "session_from_new_network_and_user_agent",
        "{:?}",
        a.explanation
    );
    // the network was new at the session's first request, not at this one
    assert_eq!(
        a.explanation[0].reason,
        "first used by this principal 14 min ago, when this session began"
    );
    assert!(
        a.summary
            .contains("made 30 requests in 14 min from network 203.0.113.0/24")
            && a.summary.contains("3 of its events were remembered before"),
        "{}",
        a.summary
    );
}

/// A tool replaying a token often sends what the principal's own client
/// sends: the session is followed from the new network alone, and the
/// alert says the user agent was not new.
#[test]
fn a_light_principals_token_replayed_with_its_own_user_agent_fires_too() {
    let (mut engine, mut g, _) = warmed(20_000);
    let evs = light_principal_replayed_with(&mut g, &mut engine, 40, 30_000, UAS[0]);
    let (i, a) = first_fire(&mut engine, evs, Detector::Access).expect("access alert");
    assert_eq!(i, 30, "fired at event {i}");
    assert_eq!(a.entity, "light@acme.example");
    assert_eq!(
        a.explanation[2].feature, "session_from_new_network",
        "{:?}",
        a.explanation
    );
    assert_eq!(
        a.explanation[1].reason,
        "used by this principal before this session began"
    );
    assert_eq!(
        a.explanation[1].typical,
        "1 user agent famil(ies) seen for light@acme.example"
    );
    assert!(
        a.summary
            .contains("from network 203.0.113.0/24 with user agent Chrome on Windows, the network new for it, the user agent not"),
        "{}",
        a.summary
    );
}

#[test]
fn a_light_principals_new_network_over_hours_is_a_habit_not_a_takeover() {
    let (mut engine, mut g, _) = warmed(20_000);
    // 40 requests over two hours: 20 in the session's first hour
    let evs = light_principal_replayed(&mut g, &mut engine, 40, 180_000);
    assert!(first_fire(&mut engine, evs, Detector::Access).is_none());
}

/// `sessions` light principals (three requests each, never established)
/// each come back once from a network and user agent new to them, for
/// `size` requests a minute apart: the tenant's takeover sessions.
fn light_sessions(g: &mut Gen, engine: &mut Engine, sessions: usize, size: usize) {
    let mut out = Vec::new();
    for k in 0..sessions {
        let who = format!("light{k}@acme.example");
        for _ in 0..3 {
            g.tick();
            let mut e = g.api(8);
            e.principal = Some(who.as_str().into());
            e.user_agent = Some(UAS[0].into());
            engine.process(&e, &mut out);
        }
        for _ in 0..size {
            g.now += 60_000;
            let mut e = g.api(8);
            e.principal = Some(who.as_str().into());
            e.client_ip = Some(format!("198.18.{k}.9").parse().unwrap());
            e.user_agent = Some(UAS[2].into());
            engine.process(&e, &mut out);
        }
        g.now += 2 * 3_600_000;
    }
}

/// A light principal's token replayed 40 times, 30 s apart, in a tenant
/// whose 60 users' new-device sessions ran to `size` requests: at which
/// request the access alert fires, and the alert.
fn replayed_where_sessions_run_to(size: usize) -> (usize, tollgate_detect::Alert) {
    let (mut engine, mut g, _) = warmed(20_000);
    light_sessions(&mut g, &mut engine, 60, size);
    let evs = light_principal_replayed(&mut g, &mut engine, 40, 30_000);
    first_fire(&mut engine, evs, Detector::Access).expect("access alert")
}

#[test]
fn a_takeover_session_larger_than_the_tenants_sessions_ever_grow_fires_at_five_requests() {
    // users' first sessions from home on a new device: 2 requests each
    let (i, a) = replayed_where_sessions_run_to(2);
    // few of the tenant's sessions (those above and the warm-up's own)
    // reached 5 before: ≥ 5 bits, the access floor
    assert_eq!(i, 5, "fired at event {i}");
    let size = a
        .explanation
        .iter()
        .find(|c| c.feature == "session_size_in_tenant")
        .unwrap_or_else(|| panic!("{:?}", a.explanation));
    // 5 requests are not more than twice the principal's 3 + 2: the
    // explanation does not claim they are
    assert_eq!(
        a.explanation[2].reason,
        "not yet more events than twice the principal's history"
    );
    // "3 of 125 such sessions in tenant acme reached 5 events"
    let n: Vec<u32> = size
        .typical
        .split(' ')
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        n.len() == 3 && n[0] * 20 < n[1] && n[1] > 60 && n[2] == 5,
        "{}",
        size.typical
    );
}

#[test]
fn where_sessions_often_grow_large_a_takeover_waits_for_thirty_requests() {
    // the same users, but their new-device sessions run to 8 requests
    let (i, _) = replayed_where_sessions_run_to(8);
    assert_eq!(i, 30, "fired at event {i}");
}

#[test]
fn a_new_network_alone_does_not_fire_access() {
    let (mut engine, mut g, _) = warmed(20_000);
    let evs: Vec<Event> = (0..5)
        .map(|_| {
            g.tick();
            let mut e = g.api(8);
            e.client_ip = Some("198.51.100.7".parse().unwrap());
            e
        })
        .collect();
    assert!(first_fire(&mut engine, evs, Detector::Access).is_none());
}

#[test]
fn credential_stuffing_burst_fires_within_five_events() {
    let (mut engine, mut g, _) = warmed(20_000);
    let mut t = g.now;
    let evs: Vec<Event> = (0..40)
        .map(|i| {
            t += 700;
            g.now = t;
            let mut e = g.api(3);
            e.principal = Some(format!("victim{i}@acme.example").into());
            e.client_ip = Some("192.0.2.50".parse().unwrap());
            e.status = Some(401);
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Burst).expect("burst alert");
    assert!(i <= 5, "fired at event {i}");
    assert!(a.summary.contains("401/403"), "{}", a.summary);
}

#[test]
fn route_enumeration_404_burst_fires() {
    let (mut engine, mut g, _) = warmed(20_000);
    let mut t = g.now;
    let evs: Vec<Event> = (0..40)
        .map(|i| {
            t += 300;
            g.now = t;
            let mut e = g.api(9);
            e.route = Some(format!("/v1/probe{i}").into());
            e.status = Some(404);
            e
        })
        .collect();
    let (i, _) = first_fire(&mut engine, evs, Detector::Burst).expect("burst alert");
    assert!(i <= 5, "fired at event {i}");
}

#[test]
fn a_scanner_is_counted_apart_from_the_tenants_other_clients() {
    // unauthenticated 404s over many routes from one address: the burst
    // is this client's, and the alert names its network
    let (mut engine, mut g, _) = warmed(20_000);
    let mut t = g.now;
    let evs: Vec<Event> = (0..40)
        .map(|i| {
            t += 3_000;
            g.now = t;
            let mut e = g.api(9);
            e.principal = None;
            e.client_ip = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
            e.route = Some(format!("/v1/probe{i}").into());
            e.status = Some(404);
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Burst).expect("burst alert");
    assert!(i <= 5, "fired at event {i}");
    assert!(
        a.summary.contains("to client network 203.0.113.0/24"),
        "{}",
        a.summary
    );
    assert!(a
        .explanation
        .iter()
        .any(|c| c.feature == "client_network" && c.value == "203.0.113.0/24"));
}

#[test]
fn exfiltration_to_a_rare_domain_fires() {
    let (mut engine, mut g, _) = warmed(20_000);
    let evs: Vec<Event> = (0..5)
        .map(|_| {
            g.tick();
            let mut e = g.web(12);
            e.destination_host = Some("upload.dropzone-xyz.example".into());
            e.method = Some("POST".into());
            e.bytes_out = Some(60_000_000);
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Egress).expect("egress alert");
    assert_eq!(i, 1);
    assert_eq!(a.entity, "dropzone-xyz.example");
    assert!(a.summary.contains("57.2 MiB"), "{}", a.summary);
}

/// Five uploads of `bytes` each by principal 12 to a domain the tenant has
/// never visited.
fn uploads_to_a_rare_domain(g: &mut Gen, bytes: u64) -> Vec<Event> {
    (0..5)
        .map(|_| {
            g.tick();
            let mut e = g.web(12);
            e.destination_host = Some("upload.dropzone-xyz.example".into());
            e.method = Some("POST".into());
            e.bytes_out = Some(bytes);
            e
        })
        .collect()
}

#[test]
fn an_upload_under_the_egress_minimum_is_not_an_exfiltration() {
    // 400 kB where ≈ 665 B is usual: ten standard deviations out, but an
    // attachment, not data leaving (the default minimum is 1 MiB)
    let (mut engine, mut g, _) = warmed(20_000);
    let evs = uploads_to_a_rare_domain(&mut g, 400_000);
    assert!(first_fire(&mut engine, evs, Detector::Egress).is_none());

    // the minimum is the operator's: lowered, the same uploads page
    let low = DetectConfig {
        egress_min_bytes: 100 * 1024,
        ..detect_cfg()
    }
    .check()
    .unwrap();
    let (mut engine, mut g, _) = warmed_with(low, 20_000);
    let evs = uploads_to_a_rare_domain(&mut g, 400_000);
    let (i, a) = first_fire(&mut engine, evs, Detector::Egress).expect("egress alert");
    assert_eq!(i, 1);
    assert_eq!(a.entity, "dropzone-xyz.example");
}

/// `n` requests from principal `p` to `host`, `period_ms` apart (± 2 s),
/// from `g.now` on.
fn beacon(g: &mut Gen, p: usize, host: &str, period_ms: i64, n: usize) -> Vec<Event> {
    (0..n)
        .map(|_| {
            g.now += period_ms + ((g.u() - 0.5) * 4_000.0) as i64;
            let mut e = g.web(p);
            e.destination_host = Some(host.to_string().into());
            e.bytes_out = Some(300);
            e
        })
        .collect()
}

#[test]
fn a_second_beacon_is_not_graded_against_the_first() {
    // a first beacon, as regular as they come, runs for eleven hours (one
    // alert, one long episode); were its repeats learned as the tenant's
    // normal they would be 1.6 % of its beacon scores, all at the top, and
    // a second, a little less regular, would grade below the threshold
    let (mut engine, mut g, _) = warmed(20_000);
    let first = beacon(&mut g, 14, "cdn.c2-beacon.example", 120_000, 330);
    let mut out = Vec::new();
    let mut alerts = 0;
    for e in &first {
        out.clear();
        engine.process(e, &mut out);
        alerts += fired(&out)
            .iter()
            .filter(|a| a.detector == Detector::Beacon)
            .count();
    }
    assert_eq!(alerts, 1, "the first beacon is one episode");
    g.now += 3_600_000;
    let second = beacon(&mut g, 15, "cdn.update-check.example", 20_000, 40);
    let (i, a) = first_fire(&mut engine, second, Detector::Beacon).expect("second beacon");
    assert!(i <= 16, "fired at event {i}");
    assert_eq!(a.entity, "user15@acme.example -> update-check.example");
}

#[test]
fn beaconing_to_a_rare_host_fires() {
    let (mut engine, mut g, _) = warmed(20_000);
    let mut t = g.now;
    let evs: Vec<Event> = (0..30)
        .map(|_| {
            t += 60_000 + ((g.u() - 0.5) * 4_000.0) as i64;
            g.now = t;
            let mut e = g.web(14);
            e.destination_host = Some("cdn.c2-beacon.example".into());
            e.bytes_out = Some(300);
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Beacon).expect("beacon alert");
    assert!(i <= 10, "fired at event {i}");
    assert!(a.summary.contains("every 60s"), "{}", a.summary);
}

#[test]
fn dns_tunnelling_fires() {
    let (mut engine, mut g, _) = warmed(20_000);
    let mut t = g.now;
    let evs: Vec<Event> = (0..40)
        .map(|_| {
            t += 2_000;
            g.now = t;
            let mut e = g.dns();
            let label: String = (0..32)
                .map(|_| b"0123456789abcdefghijklmnopqrstuv"[g.below(32)] as char)
                .collect();
            e.destination_host = Some(format!("{label}.t.badtunnel.example").into());
            e
        })
        .collect();
    let (i, a) = first_fire(&mut engine, evs, Detector::Tunnel).expect("tunnel alert");
    assert!(i <= 5, "fired at event {i}");
    assert_eq!(a.entity, "badtunnel.example");
}

#[test]
fn off_hours_admin_activity_fires() {
    // the same calls, 30 s apart, at 03:00 on a Sunday: by a user who never
    // made an admin call, and by an admin whose business-hours admin
    // sessions have ended
    let run = |p: usize| {
        let (mut engine, mut g, _) = warmed(60_000);
        // jump to the next Sunday 03:00 UTC
        let week = 7 * 86_400_000;
        let sunday3 = T0 + ((g.now - T0) / week) * week + 6 * 86_400_000 + 3 * 3_600_000;
        g.now = sunday3.max(g.now);
        let evs: Vec<Event> = (0..8)
            .map(|_| {
                g.now += 30_000;
                g.admin_api_by(p)
            })
            .collect();
        first_fire(&mut engine, evs, Detector::OffHours).expect("off-hours alert")
    };
    // one admin call at 03:00 on a Sunday is quiet-hour activity, not yet
    // an alert; a run of them in a minute is
    let (i, a) = run(7);
    assert_eq!(i, 3, "{a:?}");
    assert!(a.summary.contains("Sun 03:00"), "{}", a.summary);
    assert!(
        a.summary.contains("3 admin calls by user7"),
        "{}",
        a.summary
    );
    // for an admin the hour counts half: the run must be longer, and
    // still pages within five calls
    let (j, b) = run(1);
    assert!(j > i && j <= 5, "the admin's alert came at call {j}: {b:?}");
    assert!(
        b.summary.contains(&format!("{j} admin calls by admin1")),
        "{}",
        b.summary
    );
    assert!(
        b.explanation
            .iter()
            .any(|c| c.reason.contains("earlier admin sessions")),
        "{:?}",
        b.explanation
    );
}

/// `hour`:00 UTC of the first weekday (of the generator's week, which
/// starts at `T0`, a Monday) after the day of `now`.
fn next_weekday_at(now: i64, hour: i64) -> i64 {
    let day = 86_400_000;
    let mut t = T0 + ((now - T0) / day + 1) * day + hour * 3_600_000;
    while ((t - T0) / day) % 7 >= 5 {
        t += day;
    }
    t
}

#[test]
fn volume_surge_fires_at_interval_close() {
    let (mut engine, mut g, _) = warmed(60_000);
    g.now = next_weekday_at(g.now, 10);
    let mut out = Vec::new();
    g.run(&mut engine, 300, &mut out); // normal morning
    let start = g.now;
    for _ in 0..3000 {
        g.now += 100;
        let e = g.api(5);
        engine.process(&e, &mut out);
    }
    out.clear();
    engine.advance(at(start + 20 * 60_000), &mut out);
    let v: Vec<_> = fired(&out)
        .into_iter()
        .filter(|a| a.detector == Detector::Volume)
        .collect();
    assert!(!v.is_empty(), "{out:#?}");
    assert!(v.iter().any(|a| a.entity == "events (apigw)"), "{v:#?}");
}

#[test]
fn a_surge_no_single_interval_shows_is_found_over_a_quarter_hour() {
    let (mut engine, mut g, _) = warmed(60_000);
    // next weekday 10:00 UTC: ~75 API calls per 5 minutes
    let start = next_weekday_at(g.now, 10);
    let mut out = Vec::new();
    // normal traffic up to it (a jump in time would be filled with empty
    // intervals, which the model learns as quiet hours)
    while g.now < start {
        let e = g.benign();
        engine.process(&e, &mut out);
    }
    out.clear();
    // for 15 minutes, 50 more calls per interval than usual: each
    // interval alone is under the floor of 6, two or three together not
    let mut extra = start;
    while g.now < start + 15 * 60_000 {
        let e = g.benign();
        while extra < g.now {
            let mut x = g.api(5);
            x.ts = at(extra);
            engine.process(&x, &mut out);
            extra += 6_000;
        }
        engine.process(&e, &mut out);
    }
    engine.advance(at(start + 20 * 60_000), &mut out);
    let v: Vec<_> = fired(&out)
        .into_iter()
        .filter(|a| a.detector == Detector::Volume && a.entity == "events (apigw)")
        .collect();
    assert_eq!(v.len(), 1, "{out:#?}");
    let e = &v[0].explanation[0];
    assert!(
        e.feature == "events_per_2_intervals" || e.feature == "events_per_3_intervals",
        "{v:#?}"
    );
    assert!(v[0].summary.contains("intervals of 5m"), "{}", v[0].summary);
}

#[test]
fn repeats_are_one_episode_that_resolves_when_quiet() {
    let (mut engine, mut g, _) = warmed(20_000);
    let mut out = Vec::new();
    for _ in 0..10 {
        g.now += 10_000;
        let mut e = g.api(7);
        e.token_issuer = Some("https://login.evil.example".into());
        engine.process(&e, &mut out);
    }
    let issuer: Vec<_> = fired(&out)
        .into_iter()
        .filter(|a| a.detector == Detector::Issuer)
        .cloned()
        .collect();
    assert_eq!(issuer.len(), 1, "one episode, one page");
    let ep = issuer[0].episode.clone();
    out.clear();
    engine.advance(at(g.now + 5 * 60_000), &mut out);
    assert!(!out
        .iter()
        .any(|u| matches!(u, AlertUpdate::Resolved { episode, .. } if *episode == ep)));
    engine.advance(at(g.now + 16 * 60_000), &mut out);
    assert!(
        out.iter()
            .any(|u| matches!(u, AlertUpdate::Resolved { episode, .. } if *episode == ep)),
        "{out:#?}"
    );
    assert_eq!(
        engine
            .tenant(&TenantId::new("acme").unwrap())
            .unwrap()
            .open_episodes(),
        0
    );
}

#[test]
fn no_alerts_during_warm_up() {
    let mut engine = Engine::new(cfg(), Box::new(MemStore::new()));
    let mut g = Gen::new("acme", 3);
    let mut out = Vec::new();
    for i in 0..500 {
        let mut e = g.benign();
        e.token_issuer = Some(format!("https://issuer{i}.example").into());
        let s = engine.process(&e, &mut out);
        assert!(!s.warm);
    }
    assert!(fired(&out).is_empty());
}

fn stream(tenant: &str, seed: u64, n: usize) -> Vec<Event> {
    let mut g = Gen::new(tenant, seed);
    let mut v: Vec<Event> = (0..n).map(|_| g.benign()).collect();
    // a little excitement so that alerts and episodes are part of the state
    for e in v.iter_mut().skip(n * 3 / 4).step_by(97) {
        e.token_issuer = Some("https://rogue.example".into());
    }
    v
}

fn small_cfg(max_resident: usize) -> CheckedConfig {
    DetectConfig {
        warmup_events: 300,
        warmup: Dur::secs(600),
        max_resident_tenants: max_resident,
        ..Default::default()
    }
    .check()
    .unwrap()
}

fn run_all(engine: &mut Engine, evs: &[Event]) -> (Vec<EventScore>, Vec<AlertUpdate>) {
    let mut out = Vec::new();
    let scores = evs.iter().map(|e| engine.process(e, &mut out)).collect();
    (scores, out)
}

#[test]
fn restoring_a_snapshot_and_replaying_gives_identical_scores() {
    let evs = stream("acme", 5, 4_000);
    let (head, tail) = evs.split_at(2_500);
    let mut a = Engine::new(small_cfg(10), Box::new(MemStore::new()));
    run_all(&mut a, head);
    let t = TenantId::new("acme").unwrap();
    let snap = a.snapshot(&t).unwrap();
    let mut store = MemStore::new();
    store.save(&t, &snap).unwrap();
    let mut b = Engine::new(small_cfg(10), Box::new(store));
    let (sa, oa) = run_all(&mut a, tail);
    let (sb, ob) = run_all(&mut b, tail);
    assert_eq!(b.stats().tenants_loaded, 1);
    assert_eq!(sa, sb);
    assert_eq!(oa, ob);
    assert!(!fired(&oa).is_empty(), "the replay covers alerts too");
    assert_eq!(a.snapshot(&t), b.snapshot(&t));
}

#[test]
fn corrupt_snapshot_starts_cold_and_is_counted() {
    let t = TenantId::new("acme").unwrap();
    let mut store = MemStore::new();
    store.save(&t, b"TGDM\x01\x00garbage").unwrap();
    let mut e = Engine::new(small_cfg(10), Box::new(store));
    let evs = stream("acme", 1, 10);
    run_all(&mut e, &evs);
    assert_eq!(e.stats().snapshot_errors, 1);
    assert_eq!(e.stats().tenants_created, 1);
    assert_eq!(e.tenant(&t).unwrap().events(), 10);
}

#[test]
fn lru_and_idle_evictions_round_trip_through_the_store() {
    let mut e = Engine::new(small_cfg(2), Box::new(MemStore::new()));
    let mut out = Vec::new();
    for (i, name) in ["a", "b", "c", "a"].iter().enumerate() {
        let mut ev = Event::new(
            TenantId::new(name).unwrap(),
            Source::Apigw,
            at(T0 + i as i64 * 1000),
        );
        ev.principal = Some("p".into());
        e.process(&ev, &mut out);
    }
    let s = e.stats();
    assert_eq!(s.evictions_lru, 2, "{s:?}");
    assert_eq!(s.tenants_loaded, 1, "a came back from the store");
    assert_eq!(e.tenant(&TenantId::new("a").unwrap()).unwrap().events(), 2);
    e.advance(at(T0 + 2 * 3_600_000), &mut out);
    assert_eq!(e.stats().evictions_idle, 2);
    assert_eq!(e.stats().tenants_resident, 0);
}

/// A store that records which tenants it was asked to write, shared with
/// the test that gave it to an engine.
#[derive(Clone, Default)]
struct Recording(std::sync::Arc<std::sync::Mutex<(MemStore, Vec<String>)>>);

impl Recording {
    /// The tenants written since the last call, in order.
    fn writes(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap().1)
    }
    fn stored(&self, t: &str) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .0
            .snapshots
            .get(&TenantId::new(t).unwrap())
            .cloned()
    }
}

impl ModelStore for Recording {
    fn load(&mut self, t: &TenantId) -> Result<Option<Vec<u8>>, tollgate_detect::StoreError> {
        self.0.lock().unwrap().0.load(t)
    }
    fn save(&mut self, t: &TenantId, bytes: &[u8]) -> Result<(), tollgate_detect::StoreError> {
        let mut g = self.0.lock().unwrap();
        g.1.push(t.as_str().to_owned());
        g.0.save(t, bytes)
    }
}

/// A snapshot round, an eviction and a hand-over write a tenant only if
/// its model changed since the store last had it: an untouched model
/// costs no write (each is a file, an fsync and a rename), and what is
/// skipped is what the store holds already.
#[test]
fn only_models_that_changed_are_written_again() {
    let store = Recording::default();
    let mut e = Engine::new(small_cfg(2), Box::new(store.clone()));
    let mut out = Vec::new();
    let mut event = |e: &mut Engine, name: &str, s: i64| {
        let mut ev = Event::new(
            TenantId::new(name).unwrap(),
            Source::Apigw,
            at(T0 + s * 1000),
        );
        ev.principal = Some("p".into());
        e.process(&ev, &mut out);
    };
    let id = |name: &str| TenantId::new(name).unwrap();
    event(&mut e, "a", 0);
    event(&mut e, "b", 1);
    e.flush().unwrap();
    assert_eq!(store.writes(), ["a", "b"]);
    e.flush().unwrap();
    assert!(store.writes().is_empty(), "nothing changed");
    event(&mut e, "a", 2);
    assert_eq!(e.changed_tenants(), [id("a")]);
    e.flush().unwrap();
    assert_eq!(store.writes(), ["a"]);
    assert_eq!(store.stored("a"), e.snapshot(&id("a")));
    // c pushes out b, unchanged since the flush: dropped, not written
    event(&mut e, "c", 3);
    assert_eq!(e.stats().evictions_lru, 1);
    assert!(e.tenant(&id("b")).is_none());
    assert!(store.writes().is_empty());
    // b comes back as it was saved, and pushes out a (unchanged too)
    event(&mut e, "b", 4);
    assert_eq!(e.stats().tenants_loaded, 1);
    assert_eq!(e.tenant(&id("b")).unwrap().events(), 2);
    assert!(e.tenant(&id("a")).is_none());
    assert!(store.writes().is_empty());
    // handed over: c and b changed, so both are written
    assert!(e.release(&id("c"), true).unwrap());
    assert!(e.release(&id("b"), true).unwrap());
    assert_eq!(store.writes(), ["c", "b"]);
    assert_eq!(e.stats().snapshots_saved, 5);
}

#[test]
fn budget_hits_are_counted_not_silent() {
    let mut e = Engine::new(small_cfg(10), Box::new(MemStore::new()));
    let mut out = Vec::new();
    for i in 0..20_000 {
        let mut ev = Event::new(
            TenantId::new("big").unwrap(),
            Source::ZscalerWeb,
            at(T0 + i * 1000),
        );
        ev.principal = Some(format!("user{i}").into());
        ev.destination_host = Some(format!("host{i}.example.com").into());
        ev.client_ip = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i as u32) * 256)));
        e.process(&ev, &mut out);
    }
    let m = e.tenant(&TenantId::new("big").unwrap()).unwrap();
    assert!(e.stats().budget_hits > 1000, "{:?}", e.stats());
    assert!(m.resident_bytes() <= 64 * 1024, "{}", m.resident_bytes());
}

fn interleave(a: &[Event], b: &[Event], picks: &[bool]) -> Vec<Event> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    for &p in picks.iter().cycle() {
        if i == a.len() && j == b.len() {
            break;
        }
        if (p && j < b.len()) || i == a.len() {
            out.push(b[j].clone());
            j += 1;
        } else {
            out.push(a[i].clone());
            i += 1;
        }
    }
    out
}

fn arb_b_event() -> impl Strategy<Value = (u8, u16, u16, u32, bool)> {
    (
        0u8..5,
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<bool>(),
    )
}

fn make_b(spec: &[(u8, u16, u16, u32, bool)]) -> Vec<Event> {
    let tb = TenantId::new("tenant-b").unwrap();
    let mut t = T0;
    spec.iter()
        .map(|&(src, who, what, size, bad)| {
            t += i64::from(what % 5000) + 1;
            let mut e = Event::new(tb.clone(), Source::ALL[src as usize], at(t));
            e.principal = Some(format!("user{}@acme.example", who % 50).into()); // same names as A
            e.client_ip = Some(IpAddr::V4(Ipv4Addr::from(u32::from(who) << 8)));
            e.user_agent = Some(UAS[usize::from(what % 4)].into());
            e.token_issuer = Some(
                if bad {
                    "https://rogue.example"
                } else {
                    ISSUERS[0]
                }
                .into(),
            );
            e.destination_host = Some(format!("www.site{}.example.com", what % 300).into());
            e.status = Some(if bad { 401 } else { 200 });
            e.bytes_out = Some(u64::from(size));
            e.route = Some("/admin/x".into());
            e
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any stream of tenant B's events, interleaved anywhere, leaves tenant
    /// A's scores, alerts and snapshot bytes unchanged — also when B's
    /// arrival forces A out of memory and back (max one resident tenant).
    #[test]
    fn tenants_are_isolated(
        spec in proptest::collection::vec(arb_b_event(), 1..300),
        picks in proptest::collection::vec(any::<bool>(), 1..64),
        max_resident in 1usize..3,
    ) {
        let a_events = stream("tenant-a", 21, 1_200);
        let ta = TenantId::new("tenant-a").unwrap();
        let mut alone = Engine::new(small_cfg(10), Box::new(MemStore::new()));
        let (s_alone, o_alone) = run_all(&mut alone, &a_events);

        let mixed_events = interleave(&a_events, &make_b(&spec), &picks);
        let mut mixed = Engine::new(small_cfg(max_resident), Box::new(MemStore::new()));
        let mut out = Vec::new();
        let mut s_mixed = Vec::new();
        for e in &mixed_events {
            let before = out.len();
            let s = mixed.process(e, &mut out);
            if e.tenant == ta {
                s_mixed.push(s);
            } else {
                out.truncate(before); // keep only A's updates
            }
        }
        prop_assert_eq!(s_alone, s_mixed);
        prop_assert_eq!(o_alone, out);
        // A may have been evicted by B's last event; bring it back with one more A event to compare.
        let probe = {
            let mut e = a_events.last().unwrap().clone();
            e.id = Some("probe".into());
            e
        };
        let mut o1 = Vec::new();
        let mut o2 = Vec::new();
        prop_assert_eq!(alone.process(&probe, &mut o1), mixed.process(&probe, &mut o2));
        prop_assert_eq!(alone.snapshot(&ta), mixed.snapshot(&ta));
    }
}

/// On-call feedback: a false positive on one tenant's issuer alert makes
/// that issuer known-benign for that tenant only; the same pattern later
/// still alerts for another tenant, and a true positive undoes the lesson.
#[test]
fn a_false_positive_teaches_only_its_tenant() {
    let mut engine = Engine::new(cfg(), Box::new(MemStore::new()));
    let mut a = Gen::new("acme", 11);
    let mut b = Gen::new("beta", 12);
    let mut out = Vec::new();
    let evil = |g: &mut Gen| {
        g.tick();
        let mut e = g.api(7);
        e.token_issuer = Some("https://login.evil.example".into());
        e
    };
    let round = |engine: &mut Engine, a: &mut Gen, b: &mut Gen, out: &mut Vec<AlertUpdate>| {
        a.run(engine, 3_000, out);
        b.run(engine, 3_000, out);
        out.clear();
        let ea = evil(a);
        let eb = evil(b);
        engine.process(&ea, out);
        engine.process(&eb, out);
        let issuer = |t: &str| {
            fired(out)
                .into_iter()
                .find(|x| x.detector == Detector::Issuer && x.tenant.as_str() == t)
                .cloned()
        };
        (issuer("acme"), issuer("beta"))
    };
    let (fa, fb) = round(&mut engine, &mut a, &mut b, &mut out);
    let fa = fa.expect("acme alerts on the new issuer");
    assert!(fb.is_some(), "beta alerts on the new issuer");
    assert_ne!(fa.entity_key, 0);

    let acme = TenantId::new("acme").unwrap();
    let beta_before = engine
        .snapshot(&TenantId::new("beta").unwrap())
        .expect("resident");
    let mut resolved = Vec::new();
    let effect = engine
        .feedback(
            &acme,
            &(&fa).into(),
            tollgate_detect::Verdict::FalsePositive,
            &mut resolved,
        )
        .expect("saved");
    let benign = effect.benign.expect("entry");
    assert!(benign.min_raw.is_infinite(), "an issuer is benign outright");
    assert!(
        matches!(&resolved[..], [AlertUpdate::Resolved { episode, .. }] if *episode == fa.episode),
        "the open episode resolves at once: {resolved:?}"
    );
    assert_eq!(
        engine.snapshot(&TenantId::new("beta").unwrap()).unwrap(),
        beta_before,
        "beta's model is untouched"
    );

    // Later (well past the cooldown), the same pattern again.
    let (fa2, fb2) = round(&mut engine, &mut a, &mut b, &mut out);
    assert!(fa2.is_none(), "acme no longer alerts on the benign issuer");
    assert!(fb2.is_some(), "beta still does");
    assert!(engine.tenant(&acme).unwrap().counters().suppressed >= 1);

    // A true positive removes the entry: the issuer alerts again.
    let effect = engine
        .feedback(
            &acme,
            &(&fa).into(),
            tollgate_detect::Verdict::TruePositive,
            &mut resolved,
        )
        .unwrap();
    assert!(effect.removed);
    assert!(engine.tenant(&acme).unwrap().benign().is_empty());
}

/// A snapshot written by the build before the takeover sessions (format 6:
/// 5,000 events of one simulated tenant, `tollgate_benches::sim_events(5_000,
/// 1, 1, 7)` through an engine with the default config) still loads: an
/// upgrade keeps its tenants' models.
/// `bytes`, a format-`format` snapshot of the fixtures' tenant (5,000
/// events), decodes to a model within budget which, written again, is a
/// current snapshot that decodes to the same model; those bytes.
fn upgraded(bytes: &[u8], format: u16) -> Vec<u8> {
    upgraded_model(bytes, "umbrella-000", format, 5_000)
}

/// As [`upgraded`], for a snapshot of `tenant` after `events` events.
fn upgraded_model(bytes: &[u8], tenant: &str, format: u16, events: u64) -> Vec<u8> {
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), format);
    let tenant = TenantId::new(tenant).unwrap();
    let m = tollgate_detect::snapshot::decode(bytes, &tenant).expect("an old format decodes");
    assert_eq!(m.tenant(), &tenant);
    assert_eq!(m.counters().events, events);
    assert!(m.resident_bytes() <= 64 * 1024, "{}", m.resident_bytes());
    let again = tollgate_detect::snapshot::encode(&m);
    assert_eq!(
        u16::from_le_bytes([again[4], again[5]]),
        tollgate_detect::snapshot::VERSION
    );
    let m2 = tollgate_detect::snapshot::decode(&again, &tenant).unwrap();
    assert_eq!(tollgate_detect::snapshot::encode(&m2), again);
    // (Debug, not ==: a beacon track's size is NaN until it has seen one)
    assert_eq!(format!("{m2:?}"), format!("{m:?}"));
    again
}

#[test]
fn a_format_6_snapshot_is_upgraded_not_dropped() {
    let bytes = include_bytes!("fixtures/umbrella-000.v6.tgdm");
    upgraded(bytes, 6);
    let tenant = TenantId::new("umbrella-000").unwrap();
    // a format 5 snapshot is not guessed at
    let mut old = bytes.to_vec();
    old[4..6].copy_from_slice(&5u16.to_le_bytes());
    assert!(matches!(
        tollgate_detect::snapshot::decode(&old, &tenant),
        Err(tollgate_detect::SnapshotError::Version(5))
    ));
}

/// A snapshot written by the build before the takeover session sizes
/// (format 7, commit 88299f7: the same 5,000 events as the format-6 one)
/// loads too: the same model with the session sizes at zero, written
/// again as the current format. (Until format 9 changed the principals'
/// layout, the re-encoded payload was byte for byte the format-7 one and
/// eight zero bytes.)
#[test]
fn a_format_7_snapshot_is_upgraded_not_dropped() {
    upgraded(include_bytes!("fixtures/umbrella-000.v7.tgdm"), 7);
}

/// A snapshot written by the build before the principals' usual numeric
/// surprise (format 8, commit 7286d1c: `tollgate replay --model-dir` of the
/// scenario generator's 20,000 events of seed 1: its largest tenant, 7,223
/// events) loads too, and is written again as the current format.
#[test]
fn a_format_8_snapshot_is_upgraded_not_dropped() {
    upgraded_model(
        include_bytes!("fixtures/hooli-000.v8.tgdm"),
        "hooli-000",
        8,
        7_223,
    );
}

/// A snapshot written by the build before takeover sessions could open on
/// a familiar user agent (format 10) loads too: `tollgate replay
/// --model-dir` of commit cdede0c over the same 20,000 events.
#[test]
fn a_format_9_snapshot_is_upgraded_not_dropped() {
    upgraded_model(
        include_bytes!("fixtures/hooli-000.v9.tgdm"),
        "hooli-000",
        9,
        7_223,
    );
}
