//! Benign background traffic: when records happen (diurnal and weekly cycles
//! in each tenant's local time, spread over one-minute buckets) and what each
//! one is (tenant by Zipf size, then feed, user, route or destination, status,
//! bytes and latency).
//!
//! Bucket counts are fixed up front by cumulative rounding, so the number of
//! background records is exactly `SimConfig::events`; within a bucket the
//! offsets are uniform and sorted. Only one bucket's offsets are held at a
//! time, which is what lets a simulation stream ten million records in
//! constant memory.

use crate::config::SimFormat;
use crate::render::{self, ApigwReq, Claims, DnsAnswer, DnsReq, FwReq, PathSpec, WebReq};
use crate::rng::{Cdf, Rng};
use crate::world::{Tenant, DOMAINS};

pub(crate) const BUCKET_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// Relative activity at a local wall-clock time: a business-day hump on
/// weekdays, a third of it on weekends, and a low floor at night.
pub(crate) fn activity(local_ms: i64) -> f64 {
    let day = local_ms.div_euclid(DAY_MS);
    let hour = local_ms.rem_euclid(DAY_MS) as f64 / 3_600_000.0;
    // 1970-01-01 was a Thursday: day % 7 == 2 is Saturday, 3 is Sunday.
    let weekend = matches!(day.rem_euclid(7), 2 | 3);
    let hump = if (7.0..20.0).contains(&hour) {
        let x = (std::f64::consts::PI * (hour - 7.0) / 13.0).sin();
        x * x
    } else {
        0.0
    };
    0.05 + 0.95 * hump * if weekend { 0.3 } else { 1.0 }
}

/// Tenants that share a UTC offset share a diurnal curve.
struct Zone {
    tz_minutes: i32,
    weight: f64,
    tenants: Vec<usize>,
    pick: Cdf,
}

/// The background record clock and sampler.
pub(crate) struct Background {
    rng: Rng,
    start_ms: i64,
    end_ms: i64,
    /// Cumulative activity per bucket; fixes each bucket's record count.
    cum: Vec<f64>,
    events: u64,
    /// Records allocated to buckets before `next_bucket`.
    allocated: u64,
    next_bucket: usize,
    bucket_start: i64,
    /// Sorted millisecond offsets of the current bucket's records.
    offsets: Vec<u32>,
    pos: usize,
    zones: Vec<Zone>,
    zone_pick: Vec<f64>,
}

impl Background {
    pub(crate) fn new(
        seed: u64,
        tenants: &[Tenant],
        start_ms: i64,
        end_ms: i64,
        events: u64,
    ) -> Self {
        let mut zones: Vec<Zone> = Vec::new();
        for (i, t) in tenants.iter().enumerate() {
            match zones.iter_mut().find(|z| z.tz_minutes == t.tz_minutes) {
                Some(z) => z.tenants.push(i),
                None => zones.push(Zone {
                    tz_minutes: t.tz_minutes,
                    weight: 0.0,
                    tenants: vec![i],
                    pick: Cdf::new([]),
                }),
            }
        }
        for z in &mut zones {
            z.weight = z.tenants.iter().map(|&i| tenants[i].weight).sum();
            z.pick = Cdf::new(z.tenants.iter().map(|&i| tenants[i].weight));
        }
        let n_buckets = ((end_ms - start_ms) + BUCKET_MS - 1) / BUCKET_MS;
        let mut acc = 0.0;
        let cum = (0..n_buckets)
            .map(|b| {
                let lo = start_ms + b * BUCKET_MS;
                let hi = (lo + BUCKET_MS).min(end_ms);
                let mid = (lo + hi) / 2;
                let w: f64 = zones
                    .iter()
                    .map(|z| z.weight * activity(mid + z.tz_minutes as i64 * 60_000))
                    .sum();
                acc += w * (hi - lo) as f64 / BUCKET_MS as f64;
                acc
            })
            .collect();
        let zone_pick = vec![0.0; zones.len()];
        Background {
            rng: Rng::new(seed, 0xB6),
            start_ms,
            end_ms,
            cum,
            events,
            allocated: 0,
            next_bucket: 0,
            bucket_start: start_ms,
            offsets: Vec::new(),
            pos: 0,
            zones,
            zone_pick,
        }
    }

    /// Expected background records of `tenant` between two times.
    pub(crate) fn expected(&self, tenant: &Tenant, from_ms: i64, to_ms: i64) -> f64 {
        let total = self.cum.last().copied().unwrap_or(0.0);
        if total <= 0.0 {
            return 0.0;
        }
        let mut w = 0.0;
        let mut t = from_ms;
        while t < to_ms {
            w += tenant.weight * activity(t + tenant.tz_minutes as i64 * 60_000);
            t += BUCKET_MS;
        }
        self.events as f64 * w / total
    }

    /// Event time of the next background record, if any remain.
    pub(crate) fn peek(&mut self) -> Option<i64> {
        while self.pos >= self.offsets.len() {
            if self.next_bucket >= self.cum.len() {
                return None;
            }
            self.fill_bucket();
        }
        Some(self.bucket_start + self.offsets[self.pos] as i64)
    }

    fn fill_bucket(&mut self) {
        let b = self.next_bucket;
        let total = *self.cum.last().expect("at least one bucket");
        let upto = if b + 1 == self.cum.len() {
            self.events
        } else {
            (self.events as f64 * self.cum[b] / total + 0.5) as u64
        }
        .max(self.allocated);
        let count = (upto - self.allocated) as usize;
        self.allocated = upto;
        self.next_bucket += 1;
        self.bucket_start = self.start_ms + b as i64 * BUCKET_MS;
        let span = (self.end_ms - self.bucket_start).min(BUCKET_MS) as u64;
        self.offsets.clear();
        self.offsets
            .extend((0..count).map(|_| self.rng.below(span) as u32));
        self.offsets.sort_unstable();
        self.pos = 0;
        let mid = self.bucket_start + span as i64 / 2;
        let mut acc = 0.0;
        for (slot, z) in self.zone_pick.iter_mut().zip(&self.zones) {
            acc += z.weight * activity(mid + z.tz_minutes as i64 * 60_000);
            *slot = acc;
        }
    }

    /// Takes the record `peek` announced: its time, tenant and feed.
    pub(crate) fn take(&mut self, tenants: &[Tenant]) -> (i64, usize, SimFormat) {
        let ts = self.bucket_start + self.offsets[self.pos] as i64;
        self.pos += 1;
        let total = self.zone_pick.last().copied().unwrap_or(0.0);
        let x = self.rng.f64() * total;
        let zi = self
            .zone_pick
            .partition_point(|&c| c <= x)
            .min(self.zones.len() - 1);
        let zone = &self.zones[zi];
        let tenant = zone.tenants[zone.pick.sample(&mut self.rng)];
        let format = SimFormat::ALL[tenants[tenant].formats.sample(&mut self.rng)];
        (ts, tenant, format)
    }

    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

/// Benign status code for a request that reached its route.
fn api_status(rng: &mut Rng, method: &str) -> u16 {
    let p = rng.f64();
    if p < 0.955 {
        match method {
            "POST" if rng.chance(0.7) => 201,
            "DELETE" => 204,
            _ => 200,
        }
    } else if p < 0.988 {
        *rng.pick(&[400, 400, 400, 404, 404, 404, 403, 401, 401, 429, 429, 409])
    } else {
        *rng.pick(&[500, 500, 502, 503, 504])
    }
}

/// `(error message, integration ran)` for a status.
pub(crate) fn api_error(status: u16) -> (Option<&'static str>, bool) {
    match status {
        401 => (Some("Unauthorized"), false),
        403 => (
            Some("User is not authorized to access this resource"),
            false,
        ),
        429 => (Some("Too Many Requests"), false),
        502 => (Some("Internal server error"), true),
        503 => (Some("Service Unavailable"), true),
        504 => (Some("Endpoint request timed out"), true),
        _ => (None, true),
    }
}

/// Response length for a status, given the route's typical success size.
pub(crate) fn api_length(rng: &mut Rng, status: u16, median: f64) -> u64 {
    match status {
        204 => 0,
        200..=299 if median > 0.0 => rng.lognormal(median, 0.5) as u64 + 2,
        200..=299 => 0,
        _ => rng.range(24, 160),
    }
}

pub(crate) fn api_latency(rng: &mut Rng, status: u16, median: f64) -> u64 {
    match status {
        504 => rng.range(29_000, 29_100),
        401 | 403 | 429 => rng.range(1, 12),
        _ => rng.lognormal(median, 0.55) as u64 + 1,
    }
}

/// A benign API Gateway request of `tenant`'s users at `ts`.
pub(crate) fn benign_apigw(out: &mut String, t: &Tenant, ts: i64, rng: &mut Rng, id: &str) {
    let user = &t.users[t.user_activity.sample(rng)];
    let api = &t.apis[if t.apis.len() > 1 && rng.chance(0.25) {
        1
    } else {
        0
    }];
    let roaming = rng.chance(0.03);
    let ip = if roaming {
        // The user's home connection: stable per user, outside the offices.
        let h = crate::rng::permute(
            user.host as u64 | (user.ua as u64) << 8 | (user.dept as u64) << 16,
            t.egress_ip[3] as u64 + 1,
            32,
        );
        [
            [73, 98, 24, 86][(h & 3) as usize],
            (h >> 8) as u8,
            (h >> 16) as u8,
            (h >> 24).max(2) as u8,
        ]
    } else {
        t.user_ip(user)
    };
    let issuer = &t.issuers[user.issuer as usize];
    let claims = Claims {
        iss: &issuer.url,
        sub: &user.sub,
        client_id: &issuer.clients[user.client as usize],
        username: &user.name,
    };
    let p = rng.f64();
    let (route, claims, principal, status) = if p < 0.03 {
        // Sign-in through the Lambda-authorized login route.
        let status = if rng.chance(0.06) { 403 } else { 200 };
        (
            &t.routes[t.login_route],
            None,
            Some(user.name.as_str()),
            status,
        )
    } else {
        let r = if user.admin && p < 0.09 {
            &t.routes[t.admin_routes[rng.index(t.admin_routes.len())]]
        } else {
            &t.routes[t.route_popularity.sample(rng)]
        };
        (r, Some(claims), None, api_status(rng, r.method))
    };
    let (error, integrated) = api_error(status);
    let req = ApigwReq {
        ts_ms: ts,
        api,
        ip,
        ua: t.user_ua(user),
        method: route.method,
        resource: route.resource,
        path: PathSpec::Fill(rng.range(1000, 99_999)),
        status,
        response_length: api_length(rng, status, route.resp_median),
        latency_ms: api_latency(rng, status, route.latency_median),
        claims,
        principal_id: principal,
        error,
        integrated,
    };
    render::apigw(out, t, &req, id, rng);
}

const WEB_PATHS: &[(&str, &str)] = &[
    ("/", "text/html"),
    ("/index.html", "text/html"),
    ("/api/v1/messages", "application/json"),
    ("/mail/inbox", "text/html"),
    ("/assets/app.js", "application/javascript"),
    ("/search", "text/html"),
    ("/static/css/main.css", "text/css"),
    ("/v1/events", "application/json"),
    ("/images/logo.png", "image/png"),
    ("/feed", "application/json"),
];

pub(crate) fn benign_web(out: &mut String, t: &Tenant, ts: i64, rng: &mut Rng, id: &str) {
    let user = &t.users[t.user_activity.sample(rng)];
    let d = &DOMAINS[t.domains[t.domain_popularity.sample(rng)] as usize];
    let (path, content_type) = *rng.pick(WEB_PATHS);
    let p = rng.f64();
    let method = if p < 0.84 {
        "GET"
    } else if p < 0.97 {
        "POST"
    } else if p < 0.985 {
        "CONNECT"
    } else {
        "PUT"
    };
    let blocked =
        d.supercategory == "Entertainment/Recreation" && rng.chance(0.3) || rng.chance(0.004);
    let status = if blocked {
        403
    } else {
        *rng.pick(&[
            200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 204, 304, 302, 404,
        ])
    };
    let req_size = if method == "POST" || method == "PUT" {
        rng.lognormal(2400.0, 1.0) as u64 + 200
    } else {
        rng.lognormal(650.0, 0.4) as u64 + 120
    };
    let resp_size = match status {
        200 => rng.lognormal(9000.0, 1.6) as u64 + 300,
        403 => rng.range(1200, 1800),
        _ => rng.range(150, 600),
    };
    let req = WebReq {
        ts_ms: ts,
        user,
        host: d.host,
        path,
        server_ip: d.ip,
        category: d.category,
        supercategory: d.supercategory,
        app: d.app,
        appclass: d.appclass,
        method,
        status,
        blocked,
        req_size,
        resp_size,
        content_type: if status == 200 {
            content_type
        } else {
            "text/html"
        },
        ua: crate::world::BROWSER_UAS[user.ua as usize % crate::world::BROWSER_UAS.len()],
        urlclass: "Business Use",
        riskscore: rng.below(12),
    };
    render::zscaler_web(out, t, &req, id);
}

pub(crate) fn benign_fw(out: &mut String, t: &Tenant, ts: i64, rng: &mut Rng, id: &str) {
    let user = &t.users[t.user_activity.sample(rng)];
    let d = &DOMAINS[t.domains[t.domain_popularity.sample(rng)] as usize];
    let p = rng.f64();
    let (port, svc, proto, app, ip, ipcat) = if p < 0.72 {
        (443, "HTTPS", "TCP", d.app, d.ip, d.category)
    } else if p < 0.80 {
        (80, "HTTP", "TCP", d.app, d.ip, d.category)
    } else if p < 0.90 {
        (53, "DNS", "UDP", "dns", [8, 8, 8, 8], "Web Search")
    } else if p < 0.95 {
        (
            123,
            "NTP",
            "UDP",
            "ntp",
            [162, 159, 200, 1],
            "Miscellaneous or Unknown",
        )
    } else if p < 0.98 {
        (993, "IMAPS", "TCP", "imaps", [52, 97, 146, 2], "Web Mail")
    } else {
        (22, "SSH", "TCP", "ssh", [140, 82, 112, 3], "Online Storage")
    };
    let (outbytes, inbytes, dur) = match port {
        53 | 123 => (rng.range(60, 90), rng.range(60, 300), rng.range(1, 40)),
        _ => (
            rng.lognormal(1800.0, 1.1) as u64 + 60,
            rng.lognormal(24_000.0, 1.6) as u64 + 60,
            rng.lognormal(4000.0, 1.4) as u64 + 5,
        ),
    };
    let req = FwReq {
        ts_ms: ts,
        user,
        dest_ip: ip,
        dest_port: port,
        src_port: rng.range(49_152, 65_535) as u16,
        nwsvc: svc,
        nwapp: app,
        proto,
        ipcat,
        country: "United States",
        inbytes,
        outbytes,
        duration_ms: dur,
    };
    render::zscaler_fw(out, t, &req, id);
}

pub(crate) fn benign_dns(out: &mut String, t: &Tenant, ts: i64, rng: &mut Rng, id: &str) {
    let user = &t.users[t.user_activity.sample(rng)];
    let d = &DOMAINS[t.domains[t.domain_popularity.sample(rng)] as usize];
    let p = rng.f64();
    let qtype = if p < 0.68 {
        "A"
    } else if p < 0.88 {
        "AAAA"
    } else if p < 0.98 {
        "HTTPS"
    } else {
        "TXT"
    };
    let failed = rng.chance(0.008);
    let answer = match (failed, qtype) {
        (true, _) => DnsAnswer::Text("None"),
        (false, "A") => DnsAnswer::Ip(d.ip),
        (false, "AAAA") => DnsAnswer::Text("2606:4700::6810:84e5"),
        (false, "HTTPS") => DnsAnswer::Text("1 . alpn=h2,h3"),
        (false, _) => DnsAnswer::Text("v=spf1 include:_spf.example.net ~all"),
    };
    let req = DnsReq {
        ts_ms: ts,
        user,
        label: None,
        domain: d.host,
        qtype,
        answer,
        error: if failed { "NXDOMAIN" } else { "None" },
        duration_ms: rng.lognormal(9.0, 0.8) as u64 + 1,
        category: d.category,
        dnsapp: d.app,
    };
    render::zscaler_dns(out, t, &req, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_afternoons_are_busier_than_nights_and_weekends() {
        // 2024-03-06 was a Wednesday, 2024-03-09 a Saturday.
        let wed = 1_709_683_200_000i64;
        let sat = 1_709_942_400_000i64;
        let h = 3_600_000;
        assert!(activity(wed + 13 * h) > 10.0 * activity(wed + 3 * h));
        assert!(activity(wed + 13 * h) > 2.5 * activity(sat + 13 * h));
        assert!(activity(sat + 3 * h) > 0.0);
    }
}
