//! The service configuration (`tollgate.toml`): inputs, pipeline, dead
//! letters, alert output, admin endpoint and the detection engine.
//!
//! Loading is three steps, each reporting every problem it finds at once:
//! parse the TOML; apply environment overrides (`TOLLGATE_…`, see
//! [`apply_env`]); deserialize (unknown keys are errors, with their path)
//! and [`ServiceConfig::check`] the values against each other (an input's
//! decoder compiles, its source section matches its `source`, names are
//! unique, limits are positive). `tollgate check-config FILE` runs exactly
//! this and nothing else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tollgate_detect::{DetectConfig, Dur};
use tollgate_events::{DecodeConfig, Decoder};
use tollgate_kafka::KafkaInputConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default)]
    pub service: PipelineConfig,
    #[serde(default)]
    pub admission: AdmissionConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub alerts: AlertOutputConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub detect: DetectConfig,
    #[serde(default)]
    pub inputs: Vec<InputConfig>,
}

/// The pipeline: workers, queues, model persistence, shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Worker threads that own tenant models (0 = one per core).
    pub workers: usize,
    /// Threads that decode each Kafka input's records (0 = one per two
    /// cores, at least one). The consumer only copies records to them, by
    /// partition, so a partition's records keep their order. Decoding an
    /// event costs about what scoring it does, and the workers take one
    /// thread per core: on two cores, one decode thread ran 338 k events/s
    /// (median of 6) against 309 k for two, interleaved
    /// (`TOLLGATE_SERVICE__DECODE_THREADS=1|2 STEPS=2 benches/load-kafka.sh`).
    pub decode_threads: usize,
    /// Batches (of up to 128 events, ≈ 84 KiB) each worker's queue holds
    /// before inputs wait (backpressure). The queues are most of the
    /// service's memory besides the models when scoring is the bottleneck:
    /// with 10,000 tenants, 256 kept the resident set at 744–747 MiB where
    /// 1,024 took 965 MiB, at the same throughput
    /// (`benches/load-kafka.sh`, steps 2 and 4).
    pub queue_capacity: usize,
    /// Where tenant models are saved and loaded. Without it models live in
    /// memory only and a restart starts every tenant cold.
    pub model_dir: Option<PathBuf>,
    /// How often (wall time) every resident model is snapshotted.
    pub snapshot_interval: Dur,
    /// How long a graceful shutdown may take: stop fetching, drain, flush
    /// alerts, snapshot models, commit — then exit.
    pub shutdown_deadline: Dur,
    /// How often an idle worker advances event time by the wall time that
    /// passed (so episodes resolve and volume intervals close when traffic stops).
    pub idle_tick: Dur,
    /// How far behind the newest event time a worker keeps its engine's
    /// clock, so events that arrive slightly out of order (several
    /// partitions, several inputs) still land in open volume intervals.
    pub allowed_lateness: Dur,
    /// An audit trail of scoring (default: none): every worker appends one
    /// JSON line per event it scored to this file,
    /// `{"tenant":…,"id":…,"input":…,"partition":…,"offset":…,"at_ms":…}`
    /// (`id`, `partition`, `offset` are strings or `null`; `at_ms` is the
    /// wall-clock time of scoring in Unix milliseconds). A batch's lines are
    /// written with one append before the batch's records are acknowledged,
    /// so a committed offset implies its events are in the file (a crash may
    /// leave lines for events that are scored again after the restart:
    /// at-least-once). Meant for tests and audits, not for high volume:
    /// it costs a write per batch.
    pub scored_log: Option<PathBuf>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            decode_threads: 0,
            queue_capacity: 256,
            model_dir: None,
            snapshot_interval: Dur(Duration::from_secs(300)),
            shutdown_deadline: Dur(Duration::from_secs(30)),
            idle_tick: Dur(Duration::from_secs(1)),
            allowed_lateness: Dur(Duration::from_secs(120)),
            scored_log: None,
        }
    }
}

impl PipelineConfig {
    /// Workers to start.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => cores(),
            n => n,
        }
    }

    /// Decode threads per Kafka input.
    pub fn decode_thread_count(&self) -> usize {
        match self.decode_threads {
            0 => (cores() / 2).max(1),
            n => n,
        }
    }
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Per-tenant admission: the fairness guard. A tenant above its rate is
/// shed (dead-lettered with reason `admission_limit`, counted) only while
/// its worker's queue is at least half full — that is, only when its flood
/// would delay other tenants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Sustained events per second per tenant (0 turns admission off).
    pub events_per_second: f64,
    /// Bucket size: events a tenant may send at once above the rate.
    pub burst: f64,
    /// Tenants tracked per input; the least recently seen are forgotten
    /// beyond it (bounded memory under a flood of tenant ids).
    pub max_tenants: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            events_per_second: 20_000.0,
            burst: 100_000.0,
            max_tenants: 100_000,
        }
    }
}

/// Where rejected and shed records go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// NDJSON file, appended to (`-` = stderr).
    pub path: Option<PathBuf>,
    /// A Kafka topic instead of (or as well as) the file.
    pub kafka: Option<KafkaSinkConfig>,
    /// Payload bytes kept per dead letter (the rest is cut, and marked so).
    pub max_payload_bytes: usize,
    /// Dead letters queued before the pipeline waits for the writer.
    pub queue_capacity: usize,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            path: Some(PathBuf::from("tollgate-dead-letters.ndjson")),
            kafka: None,
            max_payload_bytes: 64 << 10,
            queue_capacity: 4096,
        }
    }
}

/// A Kafka topic to produce to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    /// librdkafka producer properties (TLS, SASL, …), as for inputs.
    #[serde(default, deserialize_with = "string_map")]
    pub properties: BTreeMap<String, String>,
}

/// Where alert updates go (NDJSON, one `fired`/`resolved` object per line).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertOutputConfig {
    /// File appended to; `-` = stdout.
    pub path: Option<PathBuf>,
    /// Alert updates queued before workers wait for the writer.
    pub queue_capacity: usize,
    /// Routing to on-call (`tollgate_alerts`): Alertmanager, PagerDuty,
    /// webhooks, files, a Kafka topic, each with retries and an on-disk
    /// spool. `[alerts.dispatch]` with `[alerts.dispatch.sinks.NAME]` tables.
    pub dispatch: Option<tollgate_alerts::AlertsConfig>,
}

impl Default for AlertOutputConfig {
    fn default() -> Self {
        AlertOutputConfig {
            path: Some(PathBuf::from("-")),
            queue_capacity: 65_536,
            dispatch: None,
        }
    }
}

/// The admin endpoint: metrics, health, the tenants and alerts API, and
/// on-call feedback.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address; loopback by default. `None` turns it off.
    pub addr: Option<SocketAddr>,
    /// Bearer token every state-changing endpoint requires
    /// (`Authorization: Bearer …`). Without one (here, in `token_file` or in
    /// `TOLLGATE_ADMIN__TOKEN`) those endpoints answer 403. Never logged.
    pub token: Option<String>,
    /// A file holding the token (a mounted Kubernetes Secret), read at
    /// start-up; surrounding whitespace is ignored.
    pub token_file: Option<PathBuf>,
    /// The feedback audit log (NDJSON, appended and fsynced per verdict).
    /// Default: `feedback-audit.ndjson` in `service.model_dir`; with
    /// neither, feedback is refused (its lesson would not survive a restart).
    pub audit_log: Option<PathBuf>,
    /// Alert updates kept for `GET /api/v1/alerts` (a ring buffer).
    pub recent_alerts: usize,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("audit_log", &self.audit_log)
            .field("recent_alerts", &self.recent_alerts)
            .finish()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            token: None,
            token_file: None,
            audit_log: None,
            recent_alerts: 10_000,
        }
    }
}

impl AdminConfig {
    /// The bearer token, from `token` or `token_file`.
    pub fn bearer(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_owned()));
        }
        match &self.token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("admin.token_file {}: {e}", p.display()))?;
                Ok(Some(t.trim().to_owned()))
            }
            None => Ok(None),
        }
    }
}

/// Tenant-labelled metric series: bounded so that a flood of tenant ids
/// cannot blow up Prometheus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Tenants that always get their own series.
    pub tenants: Vec<String>,
    /// Besides those, the busiest tenants (by events, re-ranked every
    /// `rerank_interval`) get their own series; all others are summed under
    /// `tenant="_other"`.
    pub top_tenants: usize,
    pub rerank_interval: Dur,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            tenants: Vec::new(),
            top_tenants: 20,
            rerank_interval: Dur(Duration::from_secs(60)),
        }
    }
}

/// Where an input's records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Kafka,
    Kinesis,
    File,
    Stdin,
}

/// One input: a source, how its records decode, and its tenant rule (inside
/// `decode`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Unique; carried on every event and in metrics.
    pub name: String,
    pub source: SourceKind,
    pub decode: DecodeConfig,
    pub kafka: Option<KafkaSection>,
    pub kinesis: Option<tollgate_kinesis::KinesisInputConfig>,
    pub file: Option<FileSection>,
}

/// `[inputs.kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    pub bootstrap_servers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    #[serde(default = "default_queued_kbytes")]
    pub queued_max_messages_kbytes: u32,
    /// librdkafka consumer properties passed through (`session.timeout.ms`,
    /// `security.protocol`, `sasl.*`, `ssl.*`, …). Numbers and booleans are
    /// taken as their text (`6000` = `"6000"`).
    #[serde(default, deserialize_with = "string_map")]
    pub properties: BTreeMap<String, String>,
}

/// A map of librdkafka properties: values may be written (or overridden
/// from the environment) as numbers or booleans; librdkafka wants text.
fn string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => Ok((k, s)),
            toml::Value::Integer(i) => Ok((k, i.to_string())),
            toml::Value::Float(f) => Ok((k, f.to_string())),
            toml::Value::Boolean(b) => Ok((k, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "property {k:?}: expected text, a number or a boolean, not {}",
                other.type_str()
            ))),
        })
        .collect()
}

fn default_queued_kbytes() -> u32 {
    16 * 1024
}

impl KafkaSection {
    pub fn input_config(&self, revoke_timeout: Duration) -> KafkaInputConfig {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let mut c = KafkaInputConfig::new(&self.bootstrap_servers, &topics, &self.group_id);
        c.queued_max_messages_kbytes = self.queued_max_messages_kbytes;
        c.properties = self.properties.clone();
        c.revoke_timeout = revoke_timeout;
        c
    }
}

/// `[inputs.file]`: NDJSON files, plain or gzip.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    pub paths: Vec<PathBuf>,
    /// Keep reading as the (last) file grows, like `tail -f`.
    #[serde(default)]
    pub follow: bool,
    /// How often a followed file is checked for new data.
    #[serde(default = "default_poll")]
    pub poll_interval: Dur,
}

fn default_poll() -> Dur {
    Dur(Duration::from_millis(200))
}

/// Everything wrong with a configuration, one problem per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigProblems(pub Vec<String>);

impl ServiceConfig {
    /// Parses `text` (from `origin`, for messages), applies `env` overrides
    /// and checks the result.
    pub fn parse(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigProblems> {
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| ConfigProblems(vec![format!("{origin}: {}", e.to_string().trim())]))?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        let env_key = env
            .iter()
            .find(|(k, _)| k == "TOLLGATE_SUBJECT_KEY")
            .map(|(_, v)| v.clone());
        let mut problems = apply_env(&mut value, env);
        let cfg: Option<ServiceConfig> = match ServiceConfig::deserialize(value) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("{origin}: {}", e.to_string().trim()));
                None
            }
        };
        let Some(mut cfg) = cfg else {
            return Err(ConfigProblems(problems));
        };
        // `TOLLGATE_SUBJECT_KEY` (as for `decode` and `replay`) is the key of
        // every input that does not set its own.
        if let Some(hex) = env_key {
            match tollgate_events::SubjectKey::from_hex(&hex) {
                Ok(k) => {
                    for i in &mut cfg.inputs {
                        if i.decode.subject_key == tollgate_events::SubjectKey::INSECURE_DEFAULT {
                            i.decode.subject_key = k.clone();
                        }
                    }
                }
                Err(e) => problems.push(format!("TOLLGATE_SUBJECT_KEY: {e}")),
            }
        }
        problems.extend(cfg.problems());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigProblems(problems))
        }
    }

    /// Reads and checks a file, with the process environment's overrides.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigProblems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigProblems(vec![format!("cannot read {}: {e}", path.display())]))?;
        Self::parse(&text, &path.display().to_string(), std::env::vars())
    }

    /// Cross-field checks; every problem found.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.inputs.is_empty() {
            p.push("inputs: at least one [[inputs]] is needed".to_owned());
        }
        let mut names = std::collections::BTreeSet::new();
        let mut stdin = 0;
        for (i, input) in self.inputs.iter().enumerate() {
            let at = format!("inputs[{i}] ({:?})", input.name);
            if input.name.is_empty() {
                p.push(format!("{at}: name must not be empty"));
            }
            if !names.insert(input.name.as_str()) {
                p.push(format!("{at}: name is used by another input"));
            }
            if let Err(e) = Decoder::new(&input.decode) {
                p.push(format!("{at}.decode: {e}"));
            }
            let sections = [
                ("kafka", input.kafka.is_some(), SourceKind::Kafka),
                ("kinesis", input.kinesis.is_some(), SourceKind::Kinesis),
                ("file", input.file.is_some(), SourceKind::File),
            ];
            for (name, present, kind) in sections {
                if present && kind != input.source {
                    p.push(format!(
                        "{at}: has an [inputs.{name}] section but source = {:?}",
                        input.source
                    ));
                }
                if !present && kind == input.source {
                    p.push(format!(
                        "{at}: source = {name:?} needs an [inputs.{name}] section"
                    ));
                }
            }
            match input.source {
                SourceKind::Kafka => {
                    if let Some(k) = &input.kafka {
                        for e in k.input_config(Duration::from_secs(1)).problems() {
                            p.push(format!("{at}.kafka: {e}"));
                        }
                    }
                }
                SourceKind::Kinesis => {
                    if let Some(k) = &input.kinesis {
                        if let Err(e) = k.check() {
                            for e in e.0 {
                                p.push(format!("{at}.kinesis: {e}"));
                            }
                        }
                    }
                }
                SourceKind::File => {
                    if let Some(f) = &input.file {
                        if f.paths.is_empty() {
                            p.push(format!("{at}.file: paths must name at least one file"));
                        }
                    }
                }
                SourceKind::Stdin => stdin += 1,
            }
        }
        if stdin > 1 {
            p.push("inputs: stdin can be read by one input only".to_owned());
        }
        if self.service.queue_capacity == 0 {
            p.push("service.queue_capacity must be positive".to_owned());
        }
        if self.service.snapshot_interval.0.is_zero() {
            p.push("service.snapshot_interval must be positive".to_owned());
        }
        if self.service.idle_tick.0.is_zero() {
            p.push("service.idle_tick must be positive".to_owned());
        }
        let a = &self.admission;
        if !(a.events_per_second >= 0.0 && a.events_per_second.is_finite()) {
            p.push("admission.events_per_second must be a number ≥ 0".to_owned());
        }
        if a.events_per_second > 0.0 && !(a.burst >= 1.0 && a.burst.is_finite()) {
            p.push("admission.burst must be ≥ 1".to_owned());
        }
        if a.max_tenants == 0 {
            p.push("admission.max_tenants must be positive".to_owned());
        }
        let d = &self.dead_letter;
        if d.path.is_none() && d.kafka.is_none() {
            p.push(
                "dead_letter: set path or kafka — rejected records need somewhere to go".to_owned(),
            );
        }
        if d.queue_capacity == 0 || self.alerts.queue_capacity == 0 {
            p.push(
                "dead_letter.queue_capacity and alerts.queue_capacity must be positive".to_owned(),
            );
        }
        if let Some(k) = &d.kafka {
            if k.topic.is_empty() || k.bootstrap_servers.is_empty() {
                p.push("dead_letter.kafka: topic and bootstrap_servers must be set".to_owned());
            }
        }
        if self.alerts.path.is_none() && self.alerts.dispatch.is_none() {
            p.push("alerts: set path (`-` for stdout) or [alerts.dispatch] sinks".to_owned());
        }
        if let Some(d) = &self.alerts.dispatch {
            if let Err(e) = d.check() {
                for e in e.0 {
                    p.push(format!("alerts.dispatch: {e}"));
                }
            }
        }
        if let Err(e) = self.detect.clone().check() {
            p.push(format!("detect: {e}"));
        }
        if self.admin.token.is_some() && self.admin.token_file.is_some() {
            p.push("admin: set token or token_file, not both".to_owned());
        }
        if let Some(t) = &self.admin.token {
            if t.trim().len() < 16 {
                p.push("admin.token must be at least 16 characters".to_owned());
            }
        }
        if self.admin.recent_alerts == 0 {
            p.push("admin.recent_alerts must be positive".to_owned());
        }
        if self.metrics.rerank_interval.0.is_zero() {
            p.push("metrics.rerank_interval must be positive".to_owned());
        }
        for t in &self.metrics.tenants {
            if tollgate_events::TenantId::new(t).is_err() {
                p.push(format!("metrics.tenants: {t:?} is not a valid tenant id"));
            }
        }
        p
    }

    /// Where feedback verdicts are recorded (see [`AdminConfig::audit_log`]).
    pub fn audit_log(&self) -> Option<PathBuf> {
        self.admin.audit_log.clone().or_else(|| {
            self.service
                .model_dir
                .as_ref()
                .map(|d| d.join("feedback-audit.ndjson"))
        })
    }
}

/// Applies `TOLLGATE_…` overrides to the parsed file. The variable name is
/// the key path in upper case with `__` between levels and array indices as
/// numbers: `TOLLGATE_SERVICE__MODEL_DIR=/data/models`,
/// `TOLLGATE_INPUTS__0__KAFKA__BOOTSTRAP_SERVERS=broker:9092`. Within a
/// level, `_` stays `_` (keys are snake_case). Values parse as TOML scalars
/// where they can (`8`, `true`, `2.5`) and are strings otherwise; a value
/// that is an inline TOML array or table (`["a","b"]`) is parsed as such.
/// Under a `properties` table (librdkafka settings) `_` stands for `.`:
/// `TOLLGATE_INPUTS__0__KAFKA__PROPERTIES__SASL_PASSWORD` sets
/// `sasl.password`. Variables that name no level (`TOLLGATE_SUBJECT_KEY`,
/// one segment `TOLLGATE_X`) are left to whoever reads them. Returns problems (an index
/// past an array's end, a path through a scalar).
pub fn apply_env(
    root: &mut toml::Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("TOLLGATE_") && k.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let mut path: Vec<String> = name["TOLLGATE_".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        // librdkafka property names use dots, which variable names cannot:
        // under a `properties` table, `_` stands for `.`.
        for i in 1..path.len() {
            if path[i - 1] == "properties" {
                path[i] = path[i].replace('_', ".");
            }
        }
        if path.iter().any(String::is_empty) {
            problems.push(format!("{name}: empty key segment"));
            continue;
        }
        let value = parse_env_value(&raw);
        if let Err(e) = set_path(root, &path, value) {
            problems.push(format!("{name}: {e}"));
        }
    }
    problems
}

fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| raw.into()),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(node: &mut toml::Value, path: &[String], value: toml::Value) -> Result<(), String> {
    let (head, rest) = path.split_first().expect("non-empty path");
    match node {
        toml::Value::Table(t) => {
            if rest.is_empty() {
                t.insert(head.clone(), value);
                return Ok(());
            }
            let next_is_index = rest[0].parse::<usize>().is_ok();
            let child = t.entry(head.clone()).or_insert_with(|| {
                if next_is_index {
                    toml::Value::Array(Vec::new())
                } else {
                    toml::Value::Table(toml::Table::new())
                }
            });
            set_path(child, rest, value).map_err(|e| format!("{head}.{e}"))
        }
        toml::Value::Array(a) => {
            let i: usize = head
                .parse()
                .map_err(|_| format!("{head}: an array needs a numeric index"))?;
            if i > a.len() {
                return Err(format!("index {i} skips entries (array has {})", a.len()));
            }
            if i == a.len() {
                a.push(toml::Value::Table(toml::Table::new()));
            }
            if rest.is_empty() {
                a[i] = value;
                return Ok(());
            }
            set_path(&mut a[i], rest, value).map_err(|e| format!("{i}.{e}"))
        }
        _ => Err(format!("{head}: cannot descend into a scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[inputs]]
name = "gw"
source = "stdin"
decode = { format = "apigw", tenant = { type = "static", tenant = "acme" } }
"#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn minimal_config_has_safe_defaults() {
        let c = ServiceConfig::parse(MINIMAL, "t", env(&[])).expect("valid");
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(
            c.admin.addr.unwrap().ip(),
            std::net::IpAddr::from([127, 0, 0, 1])
        );
        assert!(c.dead_letter.path.is_some());
    }

    #[test]
    fn environment_overrides_nested_keys_and_array_entries() {
        let c = ServiceConfig::parse(
            MINIMAL,
            "t",
            env(&[
                ("TOLLGATE_SERVICE__WORKERS", "3"),
                ("TOLLGATE_SERVICE__MODEL_DIR", "/tmp/models"),
                ("TOLLGATE_INPUTS__0__NAME", "renamed"),
                ("TOLLGATE_ADMISSION__EVENTS_PER_SECOND", "0"),
                (
                    "TOLLGATE_SUBJECT_KEY",
                    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                ),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.service.workers, 3);
        assert_eq!(
            c.service.model_dir.as_deref(),
            Some(std::path::Path::new("/tmp/models"))
        );
        assert_eq!(c.inputs[0].name, "renamed");
        assert_eq!(c.admission.events_per_second, 0.0);
        assert_ne!(
            c.inputs[0].decode.subject_key,
            tollgate_events::SubjectKey::INSECURE_DEFAULT,
            "TOLLGATE_SUBJECT_KEY applies to inputs without their own key"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = r#"
[service]
queue_capacity = 0
[[inputs]]
name = "a"
source = "kafka"
decode = { tenant = { type = "regex", over = "topic", regex = "(" } }
[[inputs]]
name = "a"
source = "file"
decode = { tenant = { type = "kafka_key" } }
kafka = { bootstrap_servers = "", topics = [], group_id = "g" }
"#;
        let e = ServiceConfig::parse(text, "t", env(&[])).unwrap_err().0;
        let all = e.join("\n");
        for needle in [
            "queue_capacity",
            "inputs[0] (\"a\").decode",
            "needs an [inputs.kafka] section",
            "inputs[1] (\"a\"): name is used",
            "has an [inputs.kafka] section but source = File",
            "needs an [inputs.file] section",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn kafka_properties_accept_numbers_from_the_file_and_the_environment() {
        let text = r#"
[[inputs]]
name = "k"
source = "kafka"
decode = { tenant = { type = "kafka_key" } }
kafka = { bootstrap_servers = "b:9092", topics = ["t"], group_id = "g", properties = { "session.timeout.ms" = 6000 } }
"#;
        let c = ServiceConfig::parse(
            text,
            "t",
            env(&[(
                "TOLLGATE_INPUTS__0__KAFKA__PROPERTIES__SASL_PASSWORD",
                "12345",
            )]),
        )
        .expect("valid");
        let p = &c.inputs[0].kafka.as_ref().unwrap().properties;
        assert_eq!(p["session.timeout.ms"], "6000");
        assert_eq!(p["sasl.password"], "12345");
    }

    #[test]
    fn unknown_keys_and_bad_env_paths_are_errors() {
        let e = ServiceConfig::parse(
            &format!("{MINIMAL}\n[service]\nworkerz = 2\n"),
            "t",
            env(&[]),
        )
        .unwrap_err()
        .0
        .join("\n");
        assert!(e.contains("workerz"), "{e}");
        let e = ServiceConfig::parse(MINIMAL, "t", env(&[("TOLLGATE_INPUTS__5__NAME", "x")]))
            .unwrap_err()
            .0
            .join("\n");
        assert!(e.contains("TOLLGATE_INPUTS__5__NAME"), "{e}");
    }
}

#[cfg(test)]
mod deploy_examples {
    use super::*;

    /// The example configurations under `deploy/config/` stay valid.
    #[test]
    fn every_example_config_checks_out() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("deploy/config exists") {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if let Err(e) = ServiceConfig::parse(&text, &p.display().to_string(), Vec::new()) {
                    panic!("{}:\n{e}", p.display());
                }
                n += 1;
            }
        }
        assert!(n >= 3, "expected the kafka, kinesis and files examples");
    }
}
