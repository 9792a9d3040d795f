//! Injected incidents: choosing where and when each one happens (after the
//! warm-up, inside the window) and writing its malicious records.
//!
//! Every incident is planned completely before the first record is written:
//! its record times are fixed, so [`Incident::malicious_records`] is exact
//! and known up front. Each incident draws from its own random stream, so
//! adding a scenario does not change the records of another.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_events::TenantId;

use crate::config::{Scenario, SimConfig};
use crate::render::{self, ApigwReq, Claims, DnsAnswer, DnsReq, PathSpec, WebReq};
use crate::rng::Rng;
use crate::traffic::{self, Background};
use crate::world::{alnum, Tenant, ATTACKER_UAS, LOWER_ALNUM};

/// What [`Incident::entity`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A token issuer URL (`Event::token_issuer`).
    Issuer,
    /// A user name (`Event::principal`).
    Principal,
    /// A caller address (`Event::client_ip`).
    ClientIp,
    /// A destination host or DNS domain (`Event::destination_host`, suffix).
    DestinationHost,
    /// The whole tenant.
    Tenant,
}

/// One labelled, injected incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `inc-0003-credential_stuffing`: unique within a simulation.
    pub id: String,
    pub scenario: Scenario,
    pub tenant: TenantId,
    /// What a detector should point at; its kind is [`Incident::entity_kind`].
    pub entity: String,
    pub entity_kind: EntityKind,
    /// Event time of the first malicious record.
    pub start: DateTime<Utc>,
    /// Event time of the last malicious record.
    pub end: DateTime<Utc>,
    /// How many records of the stream belong to this incident.
    pub malicious_records: u64,
}

/// Hours of post-warm-up window a scenario needs to fit.
pub(crate) fn window_hours_needed(s: Scenario) -> u64 {
    match s {
        Scenario::OffHoursAdmin => 30,
        Scenario::Beaconing => 7,
        _ => 2,
    }
}

/// Scenario-specific actors and targets.
#[derive(Debug, Clone)]
enum Actor {
    NewIssuer {
        user: usize,
        issuer: String,
        client: String,
    },
    StolenToken {
        user: usize,
        ip: [u8; 4],
        ua: &'static str,
    },
    Stuffing {
        ip: [u8; 4],
        ua: &'static str,
    },
    Enumeration {
        ip: [u8; 4],
        ua: &'static str,
        order: Vec<u16>,
    },
    Exfiltration {
        user: usize,
        host: String,
        ip: [u8; 4],
    },
    Beaconing {
        user: usize,
        host: String,
        ip: [u8; 4],
        size: u64,
    },
    DnsTunnel {
        user: usize,
        domain: String,
    },
    OffHoursAdmin {
        user: usize,
    },
    Surge,
}

/// An incident while it is being written.
pub(crate) struct Active {
    pub tenant: usize,
    actor: Actor,
    /// Sorted event times of the malicious records.
    pub times: Vec<i64>,
    /// Next record to write.
    pub next: usize,
    pub rng: Rng,
}

const PROBE_PREFIXES: &[&str] = &[
    "",
    "/api",
    "/v2",
    "/internal",
    "/old",
    "/admin",
    "/debug",
    "/backup",
];
const PROBE_WORDS: &[&str] = &[
    "/.env",
    "/.git/config",
    "/config.json",
    "/backup.zip",
    "/swagger.json",
    "/actuator/health",
    "/graphql",
    "/phpinfo.php",
    "/wp-login.php",
    "/server-status",
    "/users/export",
    "/console",
    "/metrics",
    "/debug/pprof",
    "/.aws/credentials",
    "/api-docs",
    "/login.bak",
    "/db.sql",
    "/admin.php",
    "/test",
    "/v3/api-docs",
    "/.DS_Store",
];
const RARE_TLDS: &[&str] = &["xyz", "top", "io", "cc", "ru", "su", "click", "info"];
const LEAKED_FIRST: &[&str] = &[
    "john", "mike", "sarah", "admin", "test", "info", "jessica", "david", "lisa", "kevin", "anna",
    "mark",
];

fn ms(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_millis()
}

fn to_dt(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

fn ip_text(ip: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

fn sorted_uniform(rng: &mut Rng, n: usize, lo: i64, hi: i64) -> Vec<i64> {
    let span = (hi - lo).max(1) as u64;
    let mut v: Vec<i64> = (0..n).map(|_| lo + rng.below(span) as i64).collect();
    v.sort_unstable();
    v
}

/// A user of the tenant who is not an admin.
fn ordinary_user(rng: &mut Rng, t: &Tenant) -> usize {
    loop {
        let u = t.user_activity.sample(rng);
        if !t.users[u].admin {
            return u;
        }
    }
}

/// Plans every incident of the config. Incident `k` of scenario `s` draws
/// from its own stream; tenants are drawn with weight √size so that small
/// tenants are hit too.
pub(crate) fn plan(
    cfg: &SimConfig,
    tenants: &[Tenant],
    bg: &Background,
) -> (Vec<Incident>, Vec<Active>) {
    let start = ms(cfg.start);
    let end = start + cfg.duration.as_millis() as i64;
    let warm_end = start + cfg.warmup.as_millis() as i64;
    let tenant_pick = crate::rng::Cdf::new(tenants.iter().map(|t| t.weight.sqrt()));
    let mut incidents = Vec::new();
    let mut active = Vec::new();
    for &scenario in &cfg.scenarios {
        for k in 0..cfg.incidents_per_scenario {
            let idx = incidents.len();
            let mut rng = Rng::new(cfg.seed, 0x1C1D_0000 + ((scenario as u64) << 16) + k as u64);
            let ti = tenant_pick.sample(&mut rng);
            let t = &tenants[ti];
            let (inc, act) = plan_one(scenario, idx, ti, t, &mut rng, warm_end, end, bg);
            incidents.push(inc);
            active.push(Active { rng, ..act });
        }
    }
    (incidents, active)
}

#[allow(clippy::too_many_arguments)]
fn plan_one(
    scenario: Scenario,
    idx: usize,
    ti: usize,
    t: &Tenant,
    rng: &mut Rng,
    warm_end: i64,
    end: i64,
    bg: &Background,
) -> (Incident, Active) {
    const MIN: i64 = 60_000;
    let len_min = |rng: &mut Rng, lo: u64, hi: u64| rng.range(lo, hi) as i64 * MIN;
    let place = |rng: &mut Rng, len: i64| -> i64 {
        let latest = (end - len - MIN).max(warm_end);
        warm_end + rng.below((latest - warm_end) as u64 + 1) as i64
    };
    let rare_host = |rng: &mut Rng, stem: &str| {
        format!(
            "{stem}-{}.{}",
            alnum(rng, 6, LOWER_ALNUM),
            rng.pick(RARE_TLDS)
        )
    };
    let attacker_ip = |rng: &mut Rng| {
        let p = [
            *rng.pick(&[45u8, 91, 185, 193, 194]),
            rng.range(1, 254) as u8,
            rng.range(0, 255) as u8,
        ];
        [p[0], p[1], p[2], rng.range(2, 250) as u8]
    };
    let (actor, times, entity, entity_kind): (Actor, Vec<i64>, String, EntityKind) = match scenario
    {
        Scenario::NewIssuer => {
            let len = len_min(rng, 30, 90);
            let s = place(rng, len);
            let user = ordinary_user(rng, t);
            let issuer = format!(
                "https://{}.auth-portal.{}/",
                alnum(rng, 8, LOWER_ALNUM),
                rng.pick(RARE_TLDS)
            );
            let n = rng.range(20, 60) as usize;
            let client = alnum(rng, 26, LOWER_ALNUM);
            (
                Actor::NewIssuer {
                    user,
                    issuer: issuer.clone(),
                    client,
                },
                sorted_uniform(rng, n, s, s + len),
                issuer,
                EntityKind::Issuer,
            )
        }
        Scenario::StolenToken => {
            let len = len_min(rng, 20, 60);
            let s = place(rng, len);
            let user = ordinary_user(rng, t);
            let ip = attacker_ip(rng);
            let ua = *rng.pick(ATTACKER_UAS);
            let n = rng.range(30, 120) as usize;
            let name = t.users[user].name.clone();
            (
                Actor::StolenToken { user, ip, ua },
                sorted_uniform(rng, n, s, s + len),
                name,
                EntityKind::Principal,
            )
        }
        Scenario::CredentialStuffing => {
            let len = len_min(rng, 5, 20);
            let s = place(rng, len);
            let ip = attacker_ip(rng);
            let n = rng.range(150, 500) as usize;
            (
                Actor::Stuffing {
                    ip,
                    ua: ATTACKER_UAS[rng.index(ATTACKER_UAS.len())],
                },
                sorted_uniform(rng, n, s, s + len),
                ip_text(ip),
                EntityKind::ClientIp,
            )
        }
        Scenario::RouteEnumeration => {
            let len = len_min(rng, 3, 15);
            let s = place(rng, len);
            let ip = attacker_ip(rng);
            let total = PROBE_PREFIXES.len() * PROBE_WORDS.len();
            let mut order: Vec<u16> = (0..total as u16).collect();
            for i in (1..order.len()).rev() {
                let j = rng.index(i + 1);
                order.swap(i, j);
            }
            let n = rng.range(60, total as u64) as usize;
            order.truncate(n);
            (
                Actor::Enumeration {
                    ip,
                    ua: ATTACKER_UAS[rng.index(ATTACKER_UAS.len())],
                    order,
                },
                sorted_uniform(rng, n, s, s + len),
                ip_text(ip),
                EntityKind::ClientIp,
            )
        }
        Scenario::Exfiltration => {
            let len = len_min(rng, 10, 40);
            let s = place(rng, len);
            let user = ordinary_user(rng, t);
            let host = rare_host(rng, "files");
            let ip = attacker_ip(rng);
            let n = rng.range(15, 60) as usize;
            (
                Actor::Exfiltration {
                    user,
                    host: host.clone(),
                    ip,
                },
                sorted_uniform(rng, n, s, s + len),
                host,
                EntityKind::DestinationHost,
            )
        }
        Scenario::Beaconing => {
            let len = len_min(rng, 120, 360);
            let s = place(rng, len);
            let user = rng.index(t.users.len());
            let host = rare_host(rng, "cdn-update");
            let ip = attacker_ip(rng);
            let period = rng.range(30, 300) as i64 * 1000;
            let n = ((len / period) as usize).clamp(20, 1000);
            let times = (0..n as i64)
                // Up to 6% late against a fixed period (never before the start).
                .map(|k| s + k * period + (rng.f64() * 0.06 * period as f64) as i64)
                .collect();
            let size = rng.range(180, 420);
            (
                Actor::Beaconing {
                    user,
                    host: host.clone(),
                    ip,
                    size,
                },
                times,
                host,
                EntityKind::DestinationHost,
            )
        }
        Scenario::DnsTunnelling => {
            let len = len_min(rng, 10, 30);
            let s = place(rng, len);
            let user = rng.index(t.users.len());
            let domain = format!("{}.{}", alnum(rng, 7, LOWER_ALNUM), rng.pick(RARE_TLDS));
            let n = rng.range(300, 1200) as usize;
            (
                Actor::DnsTunnel {
                    user,
                    domain: domain.clone(),
                },
                sorted_uniform(rng, n, s, s + len),
                domain,
                EntityKind::DestinationHost,
            )
        }
        Scenario::OffHoursAdmin => {
            let len = len_min(rng, 10, 40);
            // A time in the tenant's local night, 01:00–03:30.
            let tz = t.tz_minutes as i64 * MIN;
            let latest = (end - 29 * 3_600_000).max(warm_end);
            let from = warm_end + rng.below((latest - warm_end) as u64 + 1) as i64;
            let local_midnight = (from + tz).div_euclid(86_400_000) * 86_400_000 + 86_400_000 - tz;
            let s = local_midnight + 3_600_000 + rng.below(150 * MIN as u64) as i64;
            let user = ordinary_user(rng, t);
            let n = rng.range(15, 60) as usize;
            let name = t.users[user].name.clone();
            (
                Actor::OffHoursAdmin { user },
                sorted_uniform(rng, n, s, s + len),
                name,
                EntityKind::Principal,
            )
        }
        Scenario::VolumeSurge => {
            let len = len_min(rng, 15, 45);
            let s = place(rng, len);
            let share = t.formats.weight(0) / t.formats.total().max(f64::MIN_POSITIVE);
            let normal = bg.expected(t, s, s + len) * share;
            let mult = 5.0 + 5.0 * rng.f64();
            let n = ((normal * mult) as usize).clamp(200, 100_000);
            (
                Actor::Surge,
                sorted_uniform(rng, n, s, s + len),
                t.id.as_str().to_owned(),
                EntityKind::Tenant,
            )
        }
    };
    let mut times = times;
    times.sort_unstable();
    let incident = Incident {
        id: format!("inc-{idx:04}-{}", scenario.as_str()),
        scenario,
        tenant: t.id.clone(),
        entity,
        entity_kind,
        start: to_dt(times[0]),
        end: to_dt(*times.last().expect("incidents have records")),
        malicious_records: times.len() as u64,
    };
    let act = Active {
        tenant: ti,
        actor,
        times,
        next: 0,
        rng: Rng::new(0, 0),
    };
    (incident, act)
}

/// Writes the next malicious record of an incident into `out`.
pub(crate) fn render_next(a: &mut Active, t: &Tenant, out: &mut String, id: &str) {
    let ts = a.times[a.next];
    let k = a.next;
    a.next += 1;
    let rng = &mut a.rng;
    let api = &t.apis[0];
    match &a.actor {
        Actor::NewIssuer {
            user,
            issuer,
            client,
        } => {
            let u = &t.users[*user];
            let route = &t.routes[t.route_popularity.sample(rng)];
            let claims = Claims {
                iss: issuer,
                sub: &u.sub,
                client_id: client,
                username: &u.name,
            };
            let status = if rng.chance(0.9) { 200 } else { 404 };
            api_req(
                out,
                t,
                api,
                ts,
                t.user_ip(u),
                t.user_ua(u),
                route,
                Some(claims),
                None,
                status,
                rng,
                id,
            );
        }
        Actor::StolenToken { user, ip, ua } => {
            let u = &t.users[*user];
            let iss = &t.issuers[u.issuer as usize];
            let claims = Claims {
                iss: &iss.url,
                sub: &u.sub,
                client_id: &iss.clients[u.client as usize],
                username: &u.name,
            };
            // Bulk reads: the most data-rich routes the tenant has.
            let route = t.routes[..t.admin_routes[0]]
                .iter()
                .filter(|r| r.method == "GET")
                .max_by(|a, b| a.resp_median.total_cmp(&b.resp_median))
                .unwrap_or(&t.routes[0]);
            api_req(
                out,
                t,
                api,
                ts,
                *ip,
                ua,
                route,
                Some(claims),
                None,
                200,
                rng,
                id,
            );
        }
        Actor::Stuffing { ip, ua } => {
            let real = rng.chance(0.1);
            let name = if real {
                t.users[rng.index(t.users.len())].name.clone()
            } else {
                format!(
                    "{}.{}{}",
                    rng.pick(LEAKED_FIRST),
                    alnum(rng, 5, b"abcdefghijklmnopqrstuvwxyz"),
                    rng.below(100)
                )
            };
            let status = if real && rng.chance(0.05) {
                200
            } else if rng.chance(0.7) {
                403
            } else {
                401
            };
            let route = &t.routes[t.login_route];
            api_req(
                out,
                t,
                api,
                ts,
                *ip,
                ua,
                route,
                None,
                Some(&name),
                status,
                rng,
                id,
            );
        }
        Actor::Enumeration { ip, ua, order } => {
            let o = order[k] as usize;
            let path = format!(
                "{}{}",
                PROBE_PREFIXES[o / PROBE_WORDS.len()],
                PROBE_WORDS[o % PROBE_WORDS.len()]
            );
            let greedy = if t.apigw.is_rest() {
                "/{proxy+}"
            } else {
                "$default"
            };
            let req = ApigwReq {
                ts_ms: ts,
                api,
                ip: *ip,
                ua,
                method: "GET",
                resource: greedy,
                path: PathSpec::Literal(&path),
                status: 404,
                response_length: rng.range(20, 60),
                latency_ms: rng.range(8, 40),
                claims: None,
                principal_id: None,
                error: None,
                integrated: true,
            };
            render::apigw(out, t, &req, id, rng);
        }
        Actor::Exfiltration { user, host, ip } => {
            let u = &t.users[*user];
            let req = WebReq {
                ts_ms: ts,
                user: u,
                host,
                path: "/upload",
                server_ip: *ip,
                category: "Miscellaneous or Unknown",
                supercategory: "Miscellaneous or Unknown",
                app: "General Browsing",
                appclass: "General Browsing",
                method: "POST",
                status: 200,
                blocked: false,
                req_size: rng.lognormal(30_000_000.0, 0.5) as u64,
                resp_size: rng.range(200, 900),
                content_type: "application/json",
                ua: t.user_ua(u),
                urlclass: "Bandwidth Loss",
                riskscore: rng.range(40, 80),
            };
            render::zscaler_web(out, t, &req, id);
        }
        Actor::Beaconing {
            user,
            host,
            ip,
            size,
        } => {
            let u = &t.users[*user];
            let req = WebReq {
                ts_ms: ts,
                user: u,
                host,
                path: "/api/v2/ping",
                server_ip: *ip,
                category: "Miscellaneous or Unknown",
                supercategory: "Miscellaneous or Unknown",
                app: "General Browsing",
                appclass: "General Browsing",
                method: "POST",
                status: 200,
                blocked: false,
                req_size: size + rng.below(16),
                resp_size: rng.range(90, 140),
                content_type: "application/octet-stream",
                ua: "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1)",
                urlclass: "Bandwidth Loss",
                riskscore: rng.range(20, 60),
            };
            render::zscaler_web(out, t, &req, id);
        }
        Actor::DnsTunnel { user, domain } => {
            let u = &t.users[*user];
            let first_len = 30 + rng.index(20);
            let label = format!(
                "{}.{}.t",
                alnum(rng, first_len, b"abcdefghijklmnopqrstuvwxyz234567"),
                alnum(rng, 12, b"abcdefghijklmnopqrstuvwxyz234567")
            );
            let req = DnsReq {
                ts_ms: ts,
                user: u,
                label: Some(&label),
                domain,
                qtype: if rng.chance(0.8) { "TXT" } else { "CNAME" },
                answer: DnsAnswer::Text("None"),
                error: "None",
                duration_ms: rng.range(20, 90),
                category: "Miscellaneous or Unknown",
                dnsapp: "None",
            };
            render::zscaler_dns(out, t, &req, id);
        }
        Actor::OffHoursAdmin { user } => {
            let u = &t.users[*user];
            let iss = &t.issuers[u.issuer as usize];
            let claims = Claims {
                iss: &iss.url,
                sub: &u.sub,
                client_id: &iss.clients[u.client as usize],
                username: &u.name,
            };
            let route = &t.routes[t.admin_routes[rng.index(t.admin_routes.len())]];
            api_req(
                out,
                t,
                api,
                ts,
                t.user_ip(u),
                t.user_ua(u),
                route,
                Some(claims),
                None,
                200,
                rng,
                id,
            );
        }
        Actor::Surge => traffic::benign_apigw(out, t, ts, rng, id),
    }
}

#[allow(clippy::too_many_arguments)]
fn api_req(
    out: &mut String,
    t: &Tenant,
    api: &crate::world::Api,
    ts: i64,
    ip: [u8; 4],
    ua: &str,
    route: &crate::world::Route,
    claims: Option<Claims<'_>>,
    principal: Option<&str>,
    status: u16,
    rng: &mut Rng,
    id: &str,
) {
    let (error, integrated) = traffic::api_error(status);
    let req = ApigwReq {
        ts_ms: ts,
        api,
        ip,
        ua,
        method: route.method,
        resource: route.resource,
        path: PathSpec::Fill(rng.range(1000, 99_999)),
        status,
        response_length: traffic::api_length(rng, status, route.resp_median),
        latency_ms: traffic::api_latency(rng, status, route.latency_median),
        claims,
        principal_id: principal,
        error,
        integrated,
    };
    render::apigw(out, t, &req, id, rng);
}
