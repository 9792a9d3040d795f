//! Writes one vendor record as one JSON line, exactly as the vendor's template
//! would: API Gateway access logs (four tenant templates) and Zscaler NSS web,
//! firewall and DNS records (wrapped or bare, Splunk-style or raw-token keys,
//! numbers as strings or integers).
//!
//! Renderers take a fully decided request (`*Req`) and only format it: no
//! randomness except filler the decoder ignores or that needs no coordination
//! (REST request UUIDs, port numbers), and no allocation beyond the output
//! line. Deciding what happens lives in `traffic` and `incident`.

use crate::rng::{permute, Rng};
use crate::timefmt::{push_clf, push_nss};
use crate::world::{Api, ApigwTemplate, Tenant, User, ZscalerTemplate, DEPARTMENTS, LOCATIONS};

/// A JSON key pre-rendered with its quotes and colon for both spacing styles,
/// so writing it is one fixed-size copy. Build it with [`k!`].
#[derive(Clone, Copy)]
pub(crate) struct Key {
    compact: &'static str,
    spaced: &'static str,
}

/// `k!("name")`: the [`Key`] for `"name":` / `"name": `.
macro_rules! k {
    ($name:literal) => {
        Key {
            compact: concat!("\"", $name, "\":"),
            spaced: concat!("\"", $name, "\": "),
        }
    };
}

/// A JSON object being written into a line.
pub(crate) struct Obj<'a> {
    out: &'a mut String,
    first: bool,
    spaced: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn begin(out: &'a mut String, spaced: bool) -> Self {
        out.push('{');
        Obj {
            out,
            first: true,
            spaced,
        }
    }

    #[inline(always)]
    fn key(&mut self, k: Key) {
        if self.spaced {
            if !self.first {
                self.out.push_str(", ");
            }
            self.out.push_str(k.spaced);
        } else {
            if !self.first {
                self.out.push(',');
            }
            self.out.push_str(k.compact);
        }
        self.first = false;
    }

    #[inline]
    pub(crate) fn str(&mut self, k: Key, v: &str) {
        self.key(k);
        push_json_str(self.out, v);
    }

    /// A value, or the API Gateway `"-"` for a missing one.
    pub(crate) fn str_or_dash(&mut self, k: Key, v: Option<&str>) {
        self.str(k, v.unwrap_or("-"));
    }

    /// A number, written as a JSON string when the template quotes it.
    pub(crate) fn num(&mut self, k: Key, v: u64, quoted: bool) {
        self.key(k);
        if quoted {
            self.out.push('"');
        }
        self.out.push_str(itoa::Buffer::new().format(v));
        if quoted {
            self.out.push('"');
        }
    }

    /// A string value assembled by `f`, which must write nothing that needs
    /// JSON escaping (timestamps, addresses, ids).
    pub(crate) fn with(&mut self, k: Key, f: impl FnOnce(&mut String)) {
        self.key(k);
        self.out.push('"');
        f(self.out);
        self.out.push('"');
    }

    pub(crate) fn ip(&mut self, k: Key, ip: [u8; 4]) {
        self.with(k, |o| push_ip(o, ip));
    }

    pub(crate) fn nested(&mut self, k: Key, f: impl FnOnce(&mut Obj<'_>)) {
        self.key(k);
        let mut inner = Obj::begin(self.out, self.spaced);
        f(&mut inner);
        inner.end();
    }

    pub(crate) fn end(self) {
        self.out.push('}');
    }
}

/// Writes `v` as a JSON string. Every value the simulator writes comes from
/// its own tables and needs no escaping, so the check is cheap and the slow
/// path exists only to keep the output valid JSON whatever a table holds.
#[inline]
pub(crate) fn push_json_str(out: &mut String, v: &str) {
    out.push('"');
    // A non-short-circuiting fold, so the check vectorises.
    let needs_escape = v.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.push_str(v);
    } else {
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

pub(crate) fn push_ip(out: &mut String, ip: [u8; 4]) {
    let mut b = itoa::Buffer::new();
    for (k, octet) in ip.iter().enumerate() {
        if k > 0 {
            out.push('.');
        }
        out.push_str(b.format(*octet));
    }
}

fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for k in (0..digits).rev() {
        out.push(HEX[((v >> (4 * k)) & 0xf) as usize] as char);
    }
}

fn push_uuid(out: &mut String, rng: &mut Rng) {
    let a = rng.next_u64();
    let b = rng.next_u64();
    push_hex(out, a >> 32, 8);
    out.push('-');
    push_hex(out, a >> 16, 4);
    out.push_str("-4");
    push_hex(out, a, 3);
    out.push('-');
    push_hex(out, (b >> 48) & 0x3fff | 0x8000, 4);
    out.push('-');
    push_hex(out, b, 12);
}

/// Record-id material: a keyed bijection of the record's position in the
/// stream, so ids are unique within a simulation and differ across seeds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdKey(pub u64);

/// A short id as text (at most 24 bytes, so it is stored inline).
pub(crate) struct IdBuf {
    buf: [u8; 24],
    len: usize,
}

impl IdBuf {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("ids are ASCII")
    }
}

impl IdKey {
    /// API Gateway `extendedRequestId`, shaped like `GQIVriFLIAMEMsA=`.
    pub(crate) fn apigw(self, seq: u64) -> IdBuf {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let v = permute(seq, self.0, 62);
        let mut buf = [0u8; 24];
        for (k, slot) in buf.iter_mut().take(8).enumerate() {
            *slot = B64[((v >> (6 * k)) & 63) as usize];
        }
        buf[8..11].copy_from_slice(b"IAM");
        buf[11] = b"EFGH"[((v >> 48) & 3) as usize];
        buf[12] = B64[((v >> 50) & 63) as usize];
        buf[13] = B64[((v >> 56) & 63) as usize];
        buf[14..16].copy_from_slice(b"A=");
        IdBuf { buf, len: 16 }
    }

    /// Zscaler `recordid` / `event_id`: a 19-digit decimal.
    pub(crate) fn zscaler(self, seq: u64) -> IdBuf {
        let v = permute(seq, self.0.rotate_left(32), 62) + 1_000_000_000_000_000_000;
        let mut buf = [0u8; 24];
        let mut b = itoa::Buffer::new();
        let s = b.format(v).as_bytes();
        buf[..s.len()].copy_from_slice(s);
        IdBuf { buf, len: s.len() }
    }
}

/// Token claims carried by an authenticated API Gateway request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub client_id: &'a str,
    pub username: &'a str,
}

/// How to print `$context.path` for a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathSpec<'a> {
    /// Fill the resource template's `{id}` placeholders with this number.
    Fill(u64),
    /// A literal path (probes that matched a greedy `{proxy+}` route).
    Literal(&'a str),
}

/// One API Gateway request, fully decided.
pub(crate) struct ApigwReq<'a> {
    pub ts_ms: i64,
    pub api: &'a Api,
    pub ip: [u8; 4],
    pub ua: &'a str,
    pub method: &'a str,
    /// Resource template (`/orders/{id}`); the HTTP API route key is
    /// `METHOD resource`, except for `$default`.
    pub resource: &'a str,
    pub path: PathSpec<'a>,
    pub status: u16,
    pub response_length: u64,
    pub latency_ms: u64,
    pub claims: Option<Claims<'a>>,
    /// Lambda-authorizer principal (login route).
    pub principal_id: Option<&'a str>,
    /// `$context.error.message`.
    pub error: Option<&'a str>,
    /// Whether the integration ran (gateway-originated 401/403/429 do not).
    pub integrated: bool,
}

fn push_path(out: &mut String, stage: Option<&str>, resource: &str, path: PathSpec<'_>) {
    if let Some(stage) = stage {
        out.push('/');
        out.push_str(stage);
    }
    match path {
        PathSpec::Literal(p) => out.push_str(p),
        PathSpec::Fill(n) => {
            let mut rest = resource;
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                out.push_str(itoa::Buffer::new().format(n));
                let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
                rest = &rest[close..];
            }
            out.push_str(rest);
        }
    }
}

pub(crate) fn apigw(
    out: &mut String,
    tenant: &Tenant,
    req: &ApigwReq<'_>,
    id: &str,
    rng: &mut Rng,
) {
    let t = tenant.apigw;
    let rest = t.is_rest();
    let mut o = Obj::begin(out, t == ApigwTemplate::RestNested);
    if rest {
        o.with(k!("requestId"), |s| push_uuid(s, rng));
    } else {
        o.str(k!("requestId"), id);
    }
    o.str(k!("extendedRequestId"), id);
    o.ip(k!("ip"), req.ip);
    if rest {
        o.str(k!("caller"), "-");
        o.str(k!("user"), "-");
    }
    o.with(k!("requestTime"), |s| push_clf(s, req.ts_ms));
    o.with(k!("requestTimeEpoch"), |s| {
        s.push_str(itoa::Buffer::new().format(req.ts_ms))
    });
    o.str(k!("httpMethod"), req.method);
    if rest {
        o.str(k!("resourcePath"), req.resource);
    } else if req.resource == "$default" {
        o.str(k!("routeKey"), "$default");
    } else {
        o.with(k!("routeKey"), |s| {
            s.push_str(req.method);
            s.push(' ');
            s.push_str(req.resource);
        });
    }
    o.with(k!("path"), |s| {
        push_path(s, rest.then_some(req.api.stage), req.resource, req.path)
    });
    o.num(k!("status"), req.status.into(), true);
    o.str(k!("protocol"), "HTTP/1.1");
    o.num(k!("responseLength"), req.response_length, true);
    o.str(k!("stage"), req.api.stage);
    o.str(k!("apiId"), &req.api.id);
    o.str(k!("domainName"), &req.api.domain);
    o.str(k!("userAgent"), req.ua);
    o.num(k!("responseLatency"), req.latency_ms, true);
    if req.integrated {
        o.num(
            k!("integrationLatency"),
            req.latency_ms.saturating_sub(3 + req.latency_ms / 20),
            true,
        );
        o.num(k!("integrationStatus"), req.status.into(), true);
    } else {
        o.str(k!("integrationLatency"), "-");
        o.str(k!("integrationStatus"), "-");
    }
    if rest {
        o.str(k!("wafResponseCode"), "-");
    }
    let tenant_claim = t.tenant_claim().then_some(tenant.id.as_str());
    let c = req.claims;
    if t.nested() {
        o.nested(k!("error"), |e| e.str_or_dash(k!("message"), req.error));
        o.nested(k!("authorizer"), |a| {
            a.str_or_dash(k!("principalId"), req.principal_id);
            a.nested(k!("claims"), |cl| {
                cl.str_or_dash(k!("iss"), c.map(|c| c.iss));
                cl.str_or_dash(k!("sub"), c.map(|c| c.sub));
                cl.str_or_dash(k!("client_id"), c.map(|c| c.client_id));
                cl.str_or_dash(k!("username"), c.map(|c| c.username));
            });
        });
    } else {
        o.str_or_dash(k!("error.message"), req.error);
        o.str_or_dash(k!("authorizer.principalId"), req.principal_id);
        o.str_or_dash(k!("authorizer.claims.iss"), c.map(|c| c.iss));
        o.str_or_dash(k!("authorizer.claims.sub"), c.map(|c| c.sub));
        o.str_or_dash(k!("authorizer.claims.client_id"), c.map(|c| c.client_id));
        o.str_or_dash(k!("authorizer.claims.username"), c.map(|c| c.username));
        o.str_or_dash(
            k!("authorizer.claims.custom:tenant_id"),
            c.and(tenant_claim),
        );
    }
    o.end();
}

/// Opens a Zscaler record (wrapper if the tenant's template has one) and
/// passes the event object to `f`.
fn zscaler_record(
    out: &mut String,
    z: &ZscalerTemplate,
    sourcetype: &str,
    f: impl FnOnce(&mut Obj<'_>),
) {
    if z.wrapped {
        let mut w = Obj::begin(out, false);
        w.str(k!("sourcetype"), sourcetype);
        if z.versioned {
            w.str(k!("version"), "v2");
        }
        w.nested(k!("event"), f);
        w.end();
    } else {
        let mut o = Obj::begin(out, false);
        f(&mut o);
        o.end();
    }
}

fn push_login(out: &mut String, user: &User, tenant: &Tenant, escaped: bool) {
    out.push_str(&user.name);
    out.push_str(if escaped { "%40" } else { "@" });
    out.push_str(&tenant.email_domain);
}

/// One Zscaler web transaction, fully decided.
pub(crate) struct WebReq<'a> {
    pub ts_ms: i64,
    pub user: &'a User,
    pub host: &'a str,
    pub path: &'a str,
    pub server_ip: [u8; 4],
    pub category: &'a str,
    pub supercategory: &'a str,
    pub app: &'a str,
    pub appclass: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub blocked: bool,
    pub req_size: u64,
    pub resp_size: u64,
    pub content_type: &'a str,
    pub ua: &'a str,
    pub urlclass: &'a str,
    pub riskscore: u64,
}

pub(crate) fn zscaler_web(out: &mut String, tenant: &Tenant, r: &WebReq<'_>, id: &str) {
    let z = &tenant.zscaler;
    let q = z.numbers_as_strings;
    let u = r.user;
    let action = if r.blocked { "Blocked" } else { "Allowed" };
    let secs = r.ts_ms.div_euclid(1000);
    zscaler_record(out, z, "zscalernss-web", |o| {
        if z.splunk_keys {
            o.with(k!("datetime"), |s| push_nss(s, r.ts_ms, z.space_padded_day));
            o.str(
                k!("reason"),
                if r.blocked {
                    "Not allowed to browse this category"
                } else {
                    "Allowed"
                },
            );
            o.str(k!("event_id"), id);
            o.str(k!("protocol"), "HTTPS");
            o.str(k!("action"), action);
            o.num(k!("transactionsize"), r.req_size + r.resp_size, q);
            o.num(k!("responsesize"), r.resp_size, q);
            o.num(k!("requestsize"), r.req_size, q);
            o.str(k!("urlcategory"), r.category);
            o.ip(k!("serverip"), r.server_ip);
            o.str(k!("requestmethod"), r.method);
            o.str(k!("refererURL"), "None");
            o.str(k!("useragent"), r.ua);
            o.str(k!("product"), "NSS");
            o.str(k!("location"), LOCATIONS[u.location as usize]);
            o.ip(k!("ClientIP"), u.internal_ip);
            o.num(k!("status"), r.status.into(), q);
            o.with(k!("user"), |s| push_login(s, u, tenant, false));
            o.with(k!("url"), |s| {
                s.push_str(r.host);
                s.push_str(r.path);
            });
            o.str(k!("vendor"), "Zscaler");
            o.str(k!("hostname"), r.host);
            o.ip(k!("clientpublicIP"), tenant.egress_ip);
            o.str(k!("threatcategory"), "None");
            o.str(k!("threatname"), "None");
            o.str(k!("filetype"), "None");
            o.str(k!("appname"), r.app);
            o.num(k!("pagerisk"), r.riskscore, q);
            o.str(k!("department"), DEPARTMENTS[u.dept as usize]);
            o.str(k!("urlsupercategory"), r.supercategory);
            o.str(k!("appclass"), r.appclass);
            o.str(k!("dlpengine"), "None");
            o.str(k!("urlclass"), r.urlclass);
            o.str(k!("threatclass"), "None");
            o.str(k!("fileclass"), "None");
            o.str(k!("contenttype"), r.content_type);
            o.str(k!("deviceowner"), &u.name);
            o.str(k!("devicehostname"), &u.device);
            o.str(k!("company"), tenant.id.as_str());
            o.num(k!("epochtime"), secs as u64, q);
        } else {
            o.with(k!("time"), |s| push_nss(s, r.ts_ms, z.space_padded_day));
            o.str(k!("recordid"), id);
            o.with(k!("login"), |s| push_login(s, u, tenant, true));
            o.str(k!("proto"), "HTTPS");
            o.with(k!("eurl"), |s| {
                s.push_str(r.host);
                s.push_str(r.path);
            });
            o.str(k!("ehost"), r.host);
            o.str(k!("action"), action);
            o.str(k!("appname"), r.app);
            o.str(k!("appclass"), r.appclass);
            o.num(k!("reqsize"), r.req_size, q);
            o.num(k!("respsize"), r.resp_size, q);
            o.num(k!("stime"), (r.resp_size / 4000).min(900), q);
            o.num(k!("ctime"), 2 + r.req_size / 8000, q);
            o.str(k!("urlclass"), r.urlclass);
            o.str(k!("urlsupercat"), r.supercategory);
            o.str(k!("urlcat"), r.category);
            o.str(k!("malwarecat"), "None");
            o.str(k!("threatname"), "None");
            o.num(k!("riskscore"), r.riskscore, q);
            o.str(k!("dlpeng"), "None");
            o.str(k!("location"), LOCATIONS[u.location as usize]);
            o.str(k!("dept"), DEPARTMENTS[u.dept as usize]);
            o.ip(k!("cip"), u.internal_ip);
            o.ip(k!("sip"), r.server_ip);
            o.ip(k!("cintip"), u.internal_ip);
            o.str(k!("reqmethod"), r.method);
            o.num(k!("respcode"), r.status.into(), q);
            o.str(k!("ua"), r.ua);
            o.str(k!("ereferer"), "None");
            o.str(
                k!("ruletype"),
                if r.blocked { "URL Filtering" } else { "None" },
            );
            o.str(
                k!("rulelabel"),
                if r.blocked {
                    "Block%20Uncategorized"
                } else {
                    "None"
                },
            );
            o.str(k!("contenttype"), r.content_type);
            o.str(k!("deviceowner"), &u.name);
            o.str(k!("devicehostname"), &u.device);
            o.str(k!("company"), tenant.id.as_str());
            o.num(k!("epochtime"), secs as u64, q);
        }
    });
}

/// One Zscaler firewall session, fully decided.
pub(crate) struct FwReq<'a> {
    pub ts_ms: i64,
    pub user: &'a User,
    pub dest_ip: [u8; 4],
    pub dest_port: u16,
    pub src_port: u16,
    pub nwsvc: &'a str,
    pub nwapp: &'a str,
    pub proto: &'a str,
    pub ipcat: &'a str,
    pub country: &'a str,
    pub inbytes: u64,
    pub outbytes: u64,
    pub duration_ms: u64,
}

pub(crate) fn zscaler_fw(out: &mut String, tenant: &Tenant, r: &FwReq<'_>, id: &str) {
    let z = &tenant.zscaler;
    let q = z.numbers_as_strings;
    let u = r.user;
    zscaler_record(out, z, "zscalernss-fw", |o| {
        o.with(k!("datetime"), |s| push_nss(s, r.ts_ms, z.space_padded_day));
        o.with(k!("user"), |s| push_login(s, u, tenant, !z.splunk_keys));
        o.str(k!("department"), DEPARTMENTS[u.dept as usize]);
        o.str(k!("locationname"), LOCATIONS[u.location as usize]);
        o.ip(k!("csip"), u.internal_ip);
        o.num(k!("csport"), r.src_port.into(), q);
        o.ip(k!("cdip"), r.dest_ip);
        o.num(k!("cdport"), r.dest_port.into(), q);
        o.ip(k!("ssip"), tenant.egress_ip);
        o.num(k!("ssport"), (r.src_port as u64 * 7) % 40_000 + 1024, q);
        o.ip(k!("sdip"), r.dest_ip);
        o.num(k!("sdport"), r.dest_port.into(), q);
        o.str(k!("tsip"), "165.225.72.38");
        o.str(k!("tuntype"), "GRE");
        o.str(k!("action"), "Allow");
        o.str(k!("dnat"), "No");
        o.str(k!("stateful"), "Yes");
        o.str(k!("nwsvc"), r.nwsvc);
        o.str(k!("nwapp"), r.nwapp);
        o.str(k!("proto"), r.proto);
        o.str(k!("ipcat"), r.ipcat);
        o.str(k!("destcountry"), r.country);
        o.str(k!("rulelabel"), "Default%20Firewall%20Filtering%20Rule");
        o.num(k!("inbytes"), r.inbytes, q);
        o.num(k!("outbytes"), r.outbytes, q);
        o.num(k!("duration"), r.duration_ms / 1000, q);
        o.num(k!("durationms"), r.duration_ms, q);
        o.num(k!("numsessions"), 1, q);
        o.str(k!("threatcat"), "None");
        o.str(k!("threatname"), "None");
        o.str(k!("deviceowner"), &u.name);
        o.str(k!("devicehostname"), &u.device);
        o.num(k!("epochtime"), r.ts_ms.div_euclid(1000) as u64, q);
        o.str(k!("tz"), "GMT");
        o.str(k!("recordid"), id);
        o.with(k!("login"), |s| push_login(s, u, tenant, !z.splunk_keys));
        o.str(k!("company"), tenant.id.as_str());
    });
}

/// A DNS answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DnsAnswer<'a> {
    Ip([u8; 4]),
    Text(&'a str),
}

/// One Zscaler DNS transaction, fully decided.
pub(crate) struct DnsReq<'a> {
    pub ts_ms: i64,
    pub user: &'a User,
    /// The query name is `label` + `.` + `domain` when `label` is set.
    pub label: Option<&'a str>,
    pub domain: &'a str,
    pub qtype: &'a str,
    pub answer: DnsAnswer<'a>,
    pub error: &'a str,
    pub duration_ms: u64,
    pub category: &'a str,
    pub dnsapp: &'a str,
}

pub(crate) fn zscaler_dns(out: &mut String, tenant: &Tenant, r: &DnsReq<'_>, id: &str) {
    let z = &tenant.zscaler;
    let q = z.numbers_as_strings;
    let u = r.user;
    zscaler_record(out, z, "zscalernss-dns", |o| {
        o.with(k!("datetime"), |s| push_nss(s, r.ts_ms, z.space_padded_day));
        o.with(k!("user"), |s| push_login(s, u, tenant, !z.splunk_keys));
        o.with(k!("login"), |s| push_login(s, u, tenant, !z.splunk_keys));
        o.with(k!("dns_req"), |s| {
            if let Some(label) = r.label {
                s.push_str(label);
                s.push('.');
            }
            s.push_str(r.domain);
        });
        o.str(k!("dns_reqtype"), r.qtype);
        match r.answer {
            DnsAnswer::Ip(ip) => o.ip(k!("dns_resp"), ip),
            DnsAnswer::Text(t) => o.str(k!("dns_resp"), t),
        }
        o.str(
            k!("restype"),
            match r.answer {
                DnsAnswer::Ip(_) => "IPv4",
                DnsAnswer::Text(_) => r.qtype,
            },
        );
        o.str(k!("error"), r.error);
        o.num(k!("durationms"), r.duration_ms, q);
        o.ip(k!("clt_sip"), u.internal_ip);
        o.str(k!("srv_dip"), "185.46.212.88");
        o.num(k!("srv_dport"), 53, q);
        o.str(k!("reqaction"), "REQ_ALLOW");
        o.str(k!("resaction"), "RES_ALLOW");
        o.str(k!("category"), r.category);
        o.str(k!("dnsapp"), r.dnsapp);
        o.str(k!("company"), tenant.id.as_str());
        o.str(k!("cloudname"), "zscalertwo.net");
        o.num(k!("epochtime"), r.ts_ms.div_euclid(1000) as u64, q);
        o.str(k!("tz"), "GMT");
        o.str(k!("recordid"), id);
        o.str(k!("devicehostname"), &u.device);
    });
}
