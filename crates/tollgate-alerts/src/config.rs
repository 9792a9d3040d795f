//! The alert output's configuration: one serde struct (the service embeds it
//! as `[alerts]`), unknown keys rejected at every level, sinks chosen by a
//! `type` key, humantime-style durations, secrets in [`Secret`] (redacted
//! `Debug`), then [`AlertsConfig::check`] reports every problem at once and
//! returns the [`CheckedAlerts`] the dispatcher runs with. Nothing here opens
//! files or sockets.
//!
//! ```toml
//! [alerts]
//! spool_dir = "/var/lib/tollgate/alert-spool"  # optional: without it, undelivered
//!                                              # updates wait in memory (acks held)
//! admin_base_url = "http://tollgate.internal:9898"  # for links back to an alert
//! default_sinks = ["log"]                      # when no route matches; default: all sinks
//! delivery = { queue_capacity = 1024, backoff_initial = "500ms", backoff_max = "1m" }
//!
//! [alerts.sinks.am]
//! type = "alertmanager"
//! urls = ["http://am-0:9093", "http://am-1:9093"]  # an HA pair: each gets every alert
//! resend_interval = "1m"
//!
//! [alerts.sinks.oncall]
//! type = "pagerduty"
//! routing_key = "R0UTINGKEY"                   # default; optional when every tenant has one
//! routing_keys = { acme = "ACMEKEY" }
//!
//! [alerts.sinks.hook]
//! type = "webhook"
//! url = "https://hooks.example.com/tollgate"
//! headers = { Authorization = "Bearer abc" }
//! secret = "shared-hmac-secret"                # X-Tollgate-Signature: sha256=<hex>
//!
//! [alerts.sinks.log]
//! type = "file"
//! path = "/var/log/tollgate/alerts.ndjson"     # "-" = stdout
//!
//! [alerts.sinks.topic]
//! type = "kafka"
//! bootstrap_servers = "kafka:9092"
//! topic = "tollgate-alerts"
//! delivery = { batch_max = 512 }               # per-sink overrides of [alerts.delivery]
//!
//! [[alerts.routes]]
//! tenants = ["acme", "globex-*", "re:^bank[0-9]+$"]   # exact, glob (* ?), or regex
//! min_severity = "high"
//! sinks = ["oncall", "am"]
//! ```
//!
//! Routing: an update goes to the union of the sinks of every route whose
//! tenant pattern matches and whose `min_severity` the alert reaches; when no
//! route matches, to `default_sinks` (all sinks when unset; `[]` drops it).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tollgate_detect::{Dur, Severity};
use tollgate_events::TenantId;

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A value that must not appear in logs or `Debug` output (routing keys,
/// HMAC secrets, header values, Kafka properties).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[alerts]`: the root of the alert output's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where each sink keeps its on-disk spool (one subdirectory per sink
    /// target). Without it, updates a sink cannot take wait in memory with
    /// their acks held, up to `queue_capacity`, and then `send` blocks.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// The service's admin API base URL; alerts link to
    /// `{admin_base_url}/api/v1/alerts/{id}`.
    #[serde(default)]
    pub admin_base_url: Option<String>,
    /// Defaults for every sink's queue, retries and spool.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Sinks by name (the name is used in metrics and as a directory name).
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Where an update goes when no route matches; `None` = every sink.
    #[serde(default)]
    pub default_sinks: Option<Vec<String>>,
}

/// Queue, retry and spool settings of a sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Bounded queue between `send` and the sink's worker (per target).
    pub queue_capacity: usize,
    /// Most updates per write for sinks that batch (file, Kafka).
    pub batch_max: usize,
    /// Time limit of one delivery attempt.
    pub timeout: Dur,
    /// First retry delay; doubles per failure up to `backoff_max`, with jitter.
    pub backoff_initial: Dur,
    pub backoff_max: Dur,
    /// Spool size cap; past it the oldest entries are dropped (counted).
    pub spool_max_bytes: u64,
    /// A spool segment file is closed and a new one started past this size.
    pub spool_segment_bytes: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: 1024,
            batch_max: 256,
            timeout: Dur(Duration::from_secs(10)),
            backoff_initial: Dur(Duration::from_millis(500)),
            backoff_max: Dur(Duration::from_secs(60)),
            spool_max_bytes: 256 << 20,
            spool_segment_bytes: 4 << 20,
        }
    }
}

/// Per-sink overrides of [`DeliveryConfig`]; unset fields come from
/// `[alerts.delivery]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryOverrides {
    pub queue_capacity: Option<usize>,
    pub batch_max: Option<usize>,
    pub timeout: Option<Dur>,
    pub backoff_initial: Option<Dur>,
    pub backoff_max: Option<Dur>,
    pub spool_max_bytes: Option<u64>,
    pub spool_segment_bytes: Option<u64>,
}

impl DeliveryOverrides {
    pub fn apply(&self, base: &DeliveryConfig) -> DeliveryConfig {
        DeliveryConfig {
            queue_capacity: self.queue_capacity.unwrap_or(base.queue_capacity),
            batch_max: self.batch_max.unwrap_or(base.batch_max),
            timeout: self.timeout.unwrap_or(base.timeout),
            backoff_initial: self.backoff_initial.unwrap_or(base.backoff_initial),
            backoff_max: self.backoff_max.unwrap_or(base.backoff_max),
            spool_max_bytes: self.spool_max_bytes.unwrap_or(base.spool_max_bytes),
            spool_segment_bytes: self.spool_segment_bytes.unwrap_or(base.spool_segment_bytes),
        }
    }
}

/// One sink, chosen by its `type` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    Alertmanager(AlertmanagerConfig),
    Pagerduty(PagerDutyConfig),
    Webhook(WebhookConfig),
    File(FileConfig),
    Kafka(KafkaConfig),
}

impl SinkConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Alertmanager(_) => "alertmanager",
            SinkConfig::Pagerduty(_) => "pagerduty",
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::File(_) => "file",
            SinkConfig::Kafka(_) => "kafka",
        }
    }

    pub fn delivery(&self) -> &DeliveryOverrides {
        match self {
            SinkConfig::Alertmanager(c) => &c.delivery,
            SinkConfig::Pagerduty(c) => &c.delivery,
            SinkConfig::Webhook(c) => &c.delivery,
            SinkConfig::File(c) => &c.delivery,
            SinkConfig::Kafka(c) => &c.delivery,
        }
    }
}

/// Alertmanager API v2 (`POST {url}/api/v2/alerts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of every Alertmanager of the cluster; each gets every alert,
    /// with its own queue, retries and spool.
    pub urls: Vec<String>,
    /// Active alerts are re-sent this often until resolved (Alertmanager
    /// resolves an alert it has not heard of past its `endsAt`).
    #[serde(default = "default_resend")]
    pub resend_interval: Dur,
    #[serde(default)]
    pub delivery: DeliveryOverrides,
}

fn default_resend() -> Dur {
    Dur(Duration::from_secs(60))
}

/// PagerDuty Events API v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    /// The integration key for tenants without their own.
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// Integration keys by tenant.
    #[serde(default)]
    pub routing_keys: BTreeMap<String, Secret>,
    #[serde(default)]
    pub delivery: DeliveryOverrides,
}

fn default_pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_string()
}

/// A generic HTTP POST of each update as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Extra request headers (values are treated as secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// When set, `X-Tollgate-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub delivery: DeliveryOverrides,
}

/// NDJSON of the updates, to a file (appended) or stdout (`"-"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub delivery: DeliveryOverrides,
}

/// A Kafka topic (key = tenant, value = the update as JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    /// librdkafka properties (values may hold credentials: redacted in `Debug`).
    #[serde(default)]
    pub properties: BTreeMap<String, Secret>,
    #[serde(default)]
    pub delivery: DeliveryOverrides,
}

/// One routing rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Tenant patterns: exact, glob (`*`, `?`) or `re:<regex>` (anchored by
    /// the writer). Default: every tenant.
    #[serde(default = "all_tenants")]
    pub tenants: Vec<String>,
    /// Fired alerts below this severity do not match. Resolved updates follow
    /// their episode's Fired.
    #[serde(default = "lowest")]
    pub min_severity: Severity,
    pub sinks: Vec<String>,
}

fn all_tenants() -> Vec<String> {
    vec!["*".to_string()]
}

fn lowest() -> Severity {
    Severity::Low
}

/// One problem found by [`AlertsConfig::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("sink name {0:?} must be 1-64 characters of [A-Za-z0-9_.-]")]
    SinkName(String),
    #[error("sinks.{sink}: {problem}")]
    Sink { sink: String, problem: String },
    #[error("{at}: {problem}")]
    Delivery { at: String, problem: String },
    #[error("routes[{index}]: {problem}")]
    Route { index: usize, problem: String },
    #[error("default_sinks: unknown sink {0:?}")]
    DefaultSink(String),
    #[error("admin_base_url {0:?} is not an http(s) URL")]
    AdminBaseUrl(String),
}

/// Every problem of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid [alerts] configuration:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A tenant pattern of a route.
#[derive(Debug, Clone)]
pub enum TenantPattern {
    Exact(String),
    Glob(String),
    Regex(regex::Regex),
}

impl TenantPattern {
    pub fn parse(s: &str) -> Result<TenantPattern, String> {
        if let Some(re) = s.strip_prefix("re:") {
            return regex::Regex::new(re)
                .map(TenantPattern::Regex)
                .map_err(|e| format!("tenant pattern {s:?}: {e}"));
        }
        if s.is_empty() {
            return Err("empty tenant pattern".into());
        }
        if s.contains(['*', '?']) {
            Ok(TenantPattern::Glob(s.to_string()))
        } else {
            TenantId::new(s)
                .map(|_| TenantPattern::Exact(s.to_string()))
                .map_err(|_| format!("tenant {s:?} is not a valid tenant id"))
        }
    }

    pub fn matches(&self, tenant: &str) -> bool {
        match self {
            TenantPattern::Exact(t) => t == tenant,
            TenantPattern::Glob(g) => glob_match(g.as_bytes(), tenant.as_bytes()),
            TenantPattern::Regex(r) => r.is_match(tenant),
        }
    }
}

/// `*` (any run) and `?` (any one byte) glob, iterative with one backtrack
/// point (linear in practice, no recursion).
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A checked route: sink indices into [`CheckedAlerts::sinks`].
#[derive(Debug, Clone)]
pub struct CheckedRoute {
    pub tenants: Vec<TenantPattern>,
    pub min_severity: Severity,
    pub sinks: Vec<usize>,
}

/// A checked sink: its name, config and effective delivery settings.
#[derive(Debug, Clone)]
pub struct CheckedSink {
    pub name: String,
    pub config: SinkConfig,
    pub delivery: DeliveryConfig,
}

/// The only form [`crate::Dispatcher::start`] runs with.
#[derive(Debug, Clone)]
pub struct CheckedAlerts {
    pub spool_dir: Option<PathBuf>,
    pub admin_base_url: Option<String>,
    pub sinks: Vec<CheckedSink>,
    pub routes: Vec<CheckedRoute>,
    /// Sink indices for updates no route matched.
    pub default_sinks: Vec<usize>,
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn http_url(s: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(u)
}

fn check_delivery(at: &str, d: &DeliveryConfig, errs: &mut Vec<ConfigError>) {
    let mut bad = |problem: String| {
        errs.push(ConfigError::Delivery {
            at: at.to_string(),
            problem,
        })
    };
    if d.queue_capacity == 0 {
        bad("queue_capacity must be at least 1".into());
    }
    if d.batch_max == 0 {
        bad("batch_max must be at least 1".into());
    }
    if d.timeout.0.is_zero() {
        bad("timeout must be positive".into());
    }
    if d.backoff_initial.0.is_zero() {
        bad("backoff_initial must be positive".into());
    }
    if d.backoff_max < d.backoff_initial {
        bad(format!(
            "backoff_max ({}) must be at least backoff_initial ({})",
            d.backoff_max, d.backoff_initial
        ));
    }
    if d.spool_segment_bytes < 512 {
        bad("spool_segment_bytes must be at least 512".into());
    }
    if d.spool_max_bytes < d.spool_segment_bytes {
        bad(format!(
            "spool_max_bytes ({}) must be at least spool_segment_bytes ({})",
            d.spool_max_bytes, d.spool_segment_bytes
        ));
    }
}

impl AlertsConfig {
    /// Validates every field at once.
    pub fn check(&self) -> Result<CheckedAlerts, ConfigErrors> {
        let mut errs = Vec::new();
        if let Some(u) = &self.admin_base_url {
            if http_url(u).is_err() {
                errs.push(ConfigError::AdminBaseUrl(u.clone()));
            }
        }
        check_delivery("delivery", &self.delivery, &mut errs);
        let mut sinks = Vec::new();
        for (name, cfg) in &self.sinks {
            if !valid_name(name) {
                errs.push(ConfigError::SinkName(name.clone()));
            }
            let mut bad = |problem: String| {
                errs.push(ConfigError::Sink {
                    sink: name.clone(),
                    problem,
                })
            };
            match cfg {
                SinkConfig::Alertmanager(c) => {
                    if c.urls.is_empty() {
                        bad("urls must name at least one Alertmanager".into());
                    }
                    for (i, u) in c.urls.iter().enumerate() {
                        if let Err(e) = http_url(u) {
                            bad(format!("urls[{i}]: {e}"));
                        }
                    }
                    if c.resend_interval.0 < Duration::from_secs(1) {
                        bad("resend_interval must be at least 1s".into());
                    }
                }
                SinkConfig::Pagerduty(c) => {
                    if let Err(e) = http_url(&c.url) {
                        bad(format!("url: {e}"));
                    }
                    if c.routing_key.is_none() && c.routing_keys.is_empty() {
                        bad("needs routing_key or routing_keys".into());
                    }
                    for (t, k) in &c.routing_keys {
                        if TenantId::new(t).is_err() {
                            bad(format!("routing_keys: {t:?} is not a valid tenant id"));
                        }
                        if k.expose().is_empty() {
                            bad(format!("routing_keys.{t} is empty"));
                        }
                    }
                    if c.routing_key
                        .as_ref()
                        .is_some_and(|k| k.expose().is_empty())
                    {
                        bad("routing_key is empty".into());
                    }
                }
                SinkConfig::Webhook(c) => {
                    if let Err(e) = http_url(&c.url) {
                        bad(format!("url: {e}"));
                    }
                    for (h, v) in &c.headers {
                        if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                            bad(format!("headers: {h:?} is not a valid header name"));
                        }
                        if reqwest::header::HeaderValue::from_str(v.expose()).is_err() {
                            bad(format!("headers.{h}: not a valid header value"));
                        }
                    }
                    if c.secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
                        bad("secret is empty".into());
                    }
                }
                SinkConfig::File(c) => {
                    if c.path.as_os_str().is_empty() {
                        bad("path is empty (use \"-\" for stdout)".into());
                    }
                }
                SinkConfig::Kafka(c) => {
                    if c.bootstrap_servers.trim().is_empty() {
                        bad("bootstrap_servers is empty".into());
                    }
                    if c.topic.trim().is_empty() {
                        bad("topic is empty".into());
                    }
                }
            }
            let delivery = cfg.delivery().apply(&self.delivery);
            check_delivery(&format!("sinks.{name}.delivery"), &delivery, &mut errs);
            sinks.push(CheckedSink {
                name: name.clone(),
                config: cfg.clone(),
                delivery,
            });
        }
        let index_of = |n: &str| sinks.iter().position(|s| s.name == n);
        let mut routes = Vec::new();
        for (index, r) in self.routes.iter().enumerate() {
            let mut tenants = Vec::new();
            if r.tenants.is_empty() {
                errs.push(ConfigError::Route {
                    index,
                    problem: "tenants is empty".into(),
                });
            }
            for t in &r.tenants {
                match TenantPattern::parse(t) {
                    Ok(p) => tenants.push(p),
                    Err(problem) => errs.push(ConfigError::Route { index, problem }),
                }
            }
            if r.sinks.is_empty() {
                errs.push(ConfigError::Route {
                    index,
                    problem: "sinks is empty".into(),
                });
            }
            let mut idx = Vec::new();
            for s in &r.sinks {
                match index_of(s) {
                    Some(i) => idx.push(i),
                    None => errs.push(ConfigError::Route {
                        index,
                        problem: format!("unknown sink {s:?}"),
                    }),
                }
            }
            routes.push(CheckedRoute {
                tenants,
                min_severity: r.min_severity,
                sinks: idx,
            });
        }
        let default_sinks = match &self.default_sinks {
            None => (0..sinks.len()).collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| {
                    let i = index_of(n);
                    if i.is_none() {
                        errs.push(ConfigError::DefaultSink(n.clone()));
                    }
                    i
                })
                .collect(),
        };
        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        Ok(CheckedAlerts {
            spool_dir: self.spool_dir.clone(),
            admin_base_url: self
                .admin_base_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            sinks,
            routes,
            default_sinks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the module docs, which is also the documented shape.
    fn doc_example() -> &'static str {
        let src = include_str!("config.rs");
        let start = src.find("//! ```toml\n").expect("example") + "//! ```toml\n".len();
        let end = start + src[start..].find("//! ```\n").expect("end");
        Box::leak(
            src[start..end]
                .lines()
                .map(|l| {
                    l.strip_prefix("//! ")
                        .or(l.strip_prefix("//!"))
                        .unwrap_or(l)
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into_boxed_str(),
        )
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        alerts: AlertsConfig,
    }

    #[test]
    fn the_documented_example_parses_and_checks() {
        let root: Root = toml::from_str(doc_example()).unwrap();
        let c = root.alerts.check().unwrap();
        assert_eq!(c.sinks.len(), 5);
        let names: Vec<_> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["am", "hook", "log", "oncall", "topic"]);
        assert_eq!(c.default_sinks, vec![2]);
        assert_eq!(c.routes[0].sinks, vec![3, 0]);
        assert_eq!(c.routes[0].min_severity, Severity::High);
        let topic = &c.sinks[4];
        assert_eq!(topic.delivery.batch_max, 512);
        assert_eq!(topic.delivery.queue_capacity, 1024);
        match &c.sinks[0].config {
            SinkConfig::Alertmanager(a) => {
                assert_eq!(a.urls.len(), 2);
                assert_eq!(a.resend_interval, Dur(Duration::from_secs(60)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        for bad in [
            "[alerts]\nspool_dirr = \"x\"",
            "[alerts.sinks.a]\ntype = \"file\"\npath = \"-\"\ncolour = 1",
            "[alerts.sinks.a]\ntype = \"file\"\npath = \"-\"\ndelivery = { queue = 1 }",
            "[alerts.sinks.a]\ntype = \"smtp\"",
            "[alerts]\ndelivery = { retries = 3 }",
            "[[alerts.routes]]\nsinks = []\ntenant = \"a\"",
        ] {
            assert!(toml::from_str::<Root>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_reports_every_problem_at_once() {
        let src = r#"
            [alerts]
            admin_base_url = "ftp://x"
            default_sinks = ["nope"]
            delivery = { queue_capacity = 0 }
            [alerts.sinks."bad name"]
            type = "file"
            path = ""
            [alerts.sinks.am]
            type = "alertmanager"
            urls = []
            resend_interval = "10ms"
            [alerts.sinks.pd]
            type = "pagerduty"
            [alerts.sinks.hook]
            type = "webhook"
            url = "not a url"
            headers = { "bad header" = "x" }
            [[alerts.routes]]
            tenants = ["re:(", "bad/tenant"]
            sinks = ["missing"]
        "#;
        let root: Root = toml::from_str(src).unwrap();
        let errs = root.alerts.check().unwrap_err().0;
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let all = text.join("\n");
        for needle in [
            "admin_base_url",
            "default_sinks: unknown sink \"nope\"",
            "delivery: queue_capacity",
            "sink name \"bad name\"",
            "path is empty",
            "urls must name",
            "resend_interval",
            "needs routing_key",
            "sinks.hook: url",
            "not a valid header name",
            "routes[0]: tenant pattern \"re:(\"",
            "\"bad/tenant\" is not a valid tenant id",
            "routes[0]: unknown sink \"missing\"",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let src = r#"
            [alerts.sinks.pd]
            type = "pagerduty"
            routing_key = "TOPSECRETKEY"
            routing_keys = { acme = "ACMESECRET" }
            [alerts.sinks.hook]
            type = "webhook"
            url = "http://127.0.0.1:1/x"
            headers = { Authorization = "Bearer HEADERSECRET" }
            secret = "HMACSECRET"
            [alerts.sinks.k]
            type = "kafka"
            bootstrap_servers = "b:9092"
            topic = "t"
            properties = { "sasl.password" = "KAFKASECRET" }
        "#;
        let root: Root = toml::from_str(src).unwrap();
        let dbg = format!("{:?} {:?}", root.alerts, root.alerts.check().unwrap());
        for s in [
            "TOPSECRETKEY",
            "ACMESECRET",
            "HEADERSECRET",
            "HMACSECRET",
            "KAFKASECRET",
        ] {
            assert!(!dbg.contains(s), "{s} leaked: {dbg}");
        }
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn tenant_patterns() {
        let m = |p: &str, t: &str| TenantPattern::parse(p).unwrap().matches(t);
        assert!(m("acme", "acme"));
        assert!(!m("acme", "acme2"));
        assert!(m("globex-*", "globex-eu"));
        assert!(m("globex-*", "globex-"));
        assert!(!m("globex-*", "globe"));
        assert!(m("*a*b?", "xxaYYbZ"));
        assert!(!m("*a*b?", "xxaYYb"));
        assert!(m("*", "anything"));
        assert!(m("re:^bank[0-9]+$", "bank12"));
        assert!(!m("re:^bank[0-9]+$", "bank12x"));
    }
}
