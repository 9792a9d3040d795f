//! The service end to end, in-process (`tollgate_service::run`), on inputs
//! that need no broker: files, and Kinesis served by ferrokinesis on
//! loopback. (The Kafka service against a real broker is tested by
//! `tests/kafka_service.rs`.)
//!
//! - a file input: every event is scored, every bad line is dead-lettered
//!   with its reason, models are snapshotted and a second run loads them;
//! - admission: a flooding tenant is shed (dead-lettered as
//!   `admission_limit`) while the other tenant's events are all scored;
//! - a Kinesis input: CloudWatch-gzip envelopes put on two shards are all
//!   scored and the checkpoint file names both shards.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_service::{Hooks, Metrics, ServiceConfig};
use tollgate_sim::{SimConfig, Simulation};

fn sim_lines(seed: u64, events: u64, tenants: usize) -> Vec<tollgate_sim::SimRecord> {
    Simulation::new(SimConfig {
        seed,
        tenants,
        events,
        duration: Duration::from_secs(6 * 3600),
        warmup: Duration::from_secs(3600),
        incidents_per_scenario: 0,
        scenarios: Vec::new(),
        ..SimConfig::default()
    })
    .expect("valid simulation")
    .collect()
}

/// The value of a metric summed over its label sets.
fn metric(m: &Metrics, name: &str) -> f64 {
    m.registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .map(|x| {
            if x.get_counter().get_value() != 0.0 {
                x.get_counter().get_value()
            } else {
                x.get_gauge().get_value()
            }
        })
        .sum()
}

fn lines_of(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect()
}

fn run_blocking(cfg: ServiceConfig, metrics: &Metrics) -> tollgate_service::RunReport {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(tollgate_service::run(
        cfg,
        std::future::pending(),
        Hooks {
            metrics: Some(metrics.clone()),
            ..Hooks::default()
        },
    ))
    .expect("service run")
}

#[test]
fn a_file_input_scores_everything_dead_letters_the_rest_and_keeps_models() {
    let dir = tempfile::tempdir().unwrap();
    let recs = sim_lines(3, 4_000, 4);
    let input = dir.path().join("in.ndjson");
    {
        let mut f = std::fs::File::create(&input).unwrap();
        for (i, r) in recs.iter().enumerate() {
            writeln!(f, "{}", r.line).unwrap();
            if i == 10 {
                writeln!(f, "not json at all").unwrap();
            }
            if i == 20 {
                writeln!(f, r#"{{"some":"object","nobody":"knows"}}"#).unwrap();
            }
        }
    }
    let text = format!(
        r#"
[service]
workers = 2
model_dir = "{dir}/models"
[alerts]
path = "{dir}/alerts.ndjson"
[dead_letter]
path = "{dir}/dead.ndjson"
[admin]
addr = "127.0.0.1:0"
[[inputs]]
name = "files"
source = "file"
decode = {{ format = "auto", tenant = {{ type = "pointer", pointer = "/tenant" }} }}
file = {{ paths = ["{input}"] }}
"#,
        dir = dir.path().display(),
        input = input.display()
    );
    // The simulator marks tenants differently per format; use the common rule.
    let mut cfg = ServiceConfig::parse(&text, "test", Vec::new()).expect("valid config");
    cfg.inputs[0].decode.tenant = tollgate_events::TenantRule::common_fields();

    let m1 = Metrics::new();
    let report = run_blocking(cfg.clone(), &m1);
    assert_eq!(report.events_scored(), recs.len() as u64);
    assert_eq!(
        report.records,
        vec![("files".to_owned(), recs.len() as u64 + 2)]
    );
    let dead = lines_of(&dir.path().join("dead.ndjson"));
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["not_json", "unknown_format"], "{dead:?}");
    assert_eq!(dead[0]["payload"], "not json at all");
    assert_eq!(dead[0]["input"], "files");
    assert_eq!(metric(&m1, "tollgate_decode_rejections_total"), 2.0);
    // (the directory also holds the feedback audit log)
    let snapshots = std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "tgdm")
        })
        .count();
    let names: Vec<_> = std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // One per tenant: the simulator's four, plus `default` for records whose
    // tenant marker the common rule does not read.
    assert!(snapshots >= 4, "one snapshot per tenant: {names:?}");
    assert_eq!(metric(&m1, "tollgate_tenants_loaded"), 0.0);

    // A second run over the same file starts from the saved models.
    let m2 = Metrics::new();
    let report = run_blocking(cfg, &m2);
    assert_eq!(report.events_scored(), recs.len() as u64);
    assert_eq!(metric(&m2, "tollgate_tenants_loaded"), snapshots as f64);
    assert_eq!(metric(&m2, "tollgate_tenants_created"), 0.0);
}

#[test]
fn a_flooding_tenant_is_shed_while_the_others_are_all_scored() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let flood = 30_000;
    let quiet = 200;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let line = |tenant: &str, i: usize| {
            format!(
                r#"{{"tenant":"{tenant}","requestId":"{tenant}-{i}","ip":"198.51.100.7","requestTime":"10/Jun/2023:15:36:28 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200","protocol":"HTTP/1.1","responseLength":"184"}}"#
            )
        };
        for i in 0..flood {
            writeln!(f, "{}", line("flood", i)).unwrap();
            if i % (flood / quiet) == 0 {
                writeln!(f, "{}", line("quiet", i)).unwrap();
            }
        }
    }
    let text = format!(
        r#"
[service]
workers = 1
queue_capacity = 2
[admission]
events_per_second = 1000
burst = 1000
[alerts]
path = "{dir}/alerts.ndjson"
[dead_letter]
path = "{dir}/dead.ndjson"
[admin]
addr = "127.0.0.1:0"
[[inputs]]
name = "files"
source = "file"
decode = {{ format = "apigw", tenant = {{ type = "pointer", pointer = "/tenant" }} }}
file = {{ paths = ["{input}"] }}
"#,
        dir = dir.path().display(),
        input = input.display()
    );
    let cfg = ServiceConfig::parse(&text, "test", Vec::new()).expect("valid config");
    let m = Metrics::new();
    let report = run_blocking(cfg, &m);
    let dead = lines_of(&dir.path().join("dead.ndjson"));
    let shed = dead.len() as u64;
    assert!(shed > 0, "the flood was never shed");
    for d in &dead {
        assert!(
            d["reason"] == "admission_limit" && d["tenant"] == "flood",
            "{d}"
        );
    }
    // Nothing vanished: scored + shed = everything, and every quiet event scored.
    let total = flood as u64 + quiet as u64;
    assert_eq!(report.events_scored() + shed, total);
    assert_eq!(metric(&m, "tollgate_admission_shed_total") as u64, shed);
    let quiet_shed = dead.iter().filter(|d| d["tenant"] == "quiet").count();
    assert_eq!(quiet_shed, 0);
}

mod kinesis {
    use super::*;
    use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::Client;

    async fn ferrokinesis() -> String {
        let opts = ferrokinesis::store::StoreOptions {
            create_stream_ms: 0,
            update_stream_ms: 0,
            delete_stream_ms: 0,
            ..Default::default()
        };
        let (app, _store) = ferrokinesis::create_app(opts);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn cloudwatch_envelopes_on_two_shards_are_all_scored_and_checkpointed() {
        // The default credential chain reads these (test values only).
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let endpoint = ferrokinesis().await;
            let client = Client::from_conf(
                aws_sdk_kinesis::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .endpoint_url(&endpoint)
                    .credentials_provider(Credentials::for_tests())
                    .build(),
            );
            client
                .create_stream()
                .stream_name("gw")
                .shard_count(2)
                .send()
                .await
                .unwrap();
            // API Gateway lines only, 25 per envelope, partition key = tenant.
            let recs: Vec<_> = sim_lines(5, 3_000, 3)
                .into_iter()
                .filter(|r| r.line.contains("requestId"))
                .collect();
            let mut expected = 0u64;
            for chunk in recs.chunks(25) {
                let tenant = chunk[0].tenant.as_str();
                let events: Vec<serde_json::Value> = chunk
                    .iter()
                    .filter(|r| r.tenant.as_str() == tenant)
                    .enumerate()
                    .map(|(i, r)| {
                        expected += 1;
                        serde_json::json!({
                            "id": format!("{i}"),
                            "timestamp": r.ts.timestamp_millis(),
                            "message": r.line,
                        })
                    })
                    .collect();
                let envelope = serde_json::json!({
                    "messageType": "DATA_MESSAGE",
                    "owner": "123456789012",
                    "logGroup": "/aws/apigateway/gw-access-logs",
                    "logStream": "s",
                    "subscriptionFilters": ["f"],
                    "logEvents": events,
                });
                client
                    .put_record()
                    .stream_name("gw")
                    .partition_key(tenant)
                    .data(Blob::new(gzip(envelope.to_string().as_bytes())))
                    .send()
                    .await
                    .unwrap();
            }
            let text = format!(
                r#"
[service]
workers = 2
[alerts]
path = "{dir}/alerts.ndjson"
[dead_letter]
path = "{dir}/dead.ndjson"
[admin]
addr = "127.0.0.1:0"
[[inputs]]
name = "kinesis-gw"
source = "kinesis"
decode = {{ format = "apigw", tenant = {{ type = "partition_key" }} }}
kinesis = {{ stream_name = "gw", region = "us-east-1", endpoint_url = "{endpoint}", checkpoint_dir = "{dir}/ckpt", poll_interval = "200ms", checkpoint_interval = "100ms", shard_refresh_interval = "500ms" }}
"#,
                dir = dir.path().display(),
            );
            let cfg = ServiceConfig::parse(&text, "test", Vec::new()).expect("valid config");
            let m = Metrics::new();
            let m2 = m.clone();
            let all_scored = async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                while metric(&m2, "tollgate_events_scored_total") < expected as f64 {
                    assert!(
                        Instant::now() < deadline,
                        "not all {expected} events were scored:\n{}",
                        m2.render()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            let report = tollgate_service::run(
                cfg,
                all_scored,
                Hooks {
                    metrics: Some(m.clone()),
                    ..Hooks::default()
                },
            )
            .await
            .expect("service run");
            assert_eq!(report.events_scored(), expected);
            assert!(lines_of(&dir.path().join("dead.ndjson")).is_empty());
            let ckpt: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join("ckpt/gw.checkpoint.json")).unwrap(),
            )
            .unwrap();
            let shards = ckpt["shards"].as_object().unwrap();
            assert_eq!(shards.len(), 2, "{ckpt}");
            assert!(shards.values().all(|s| s["sequence_number"].is_string()));
        });
    }
}

/// `[alerts.dispatch]`: alert updates reach the dispatcher's sinks (here a
/// file sink with a spool), as well as the NDJSON output, and the sinks'
/// counters are exported.
#[test]
fn alerts_are_dispatched_to_the_configured_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let t0 = 1_686_400_000_000u64;
        for i in 0..2_001u64 {
            // Every token from one issuer, then one from a new issuer.
            let iss = if i == 2_000 {
                "https://evil.example/"
            } else {
                "https://login.acme.example/"
            };
            writeln!(
                f,
                r#"{{"requestId":"r{i}","ip":"198.51.100.7","requestTimeEpoch":"{}","httpMethod":"GET","resourcePath":"/pets","status":"200","authorizer":{{"claims":{{"iss":"{iss}","sub":"u{}"}}}}}}"#,
                t0 + i * 3_000,
                i % 7
            )
            .unwrap();
        }
    }
    let text = format!(
        r#"
[service]
workers = 1
[alerts]
path = "{dir}/alerts.ndjson"
[alerts.dispatch]
spool_dir = "{dir}/spool"
[alerts.dispatch.sinks.oncall]
type = "file"
path = "{dir}/oncall.ndjson"
[dead_letter]
path = "{dir}/dead.ndjson"
[admin]
addr = "127.0.0.1:0"
[detect]
warmup_events = 100
warmup = "10m"
[[inputs]]
name = "files"
source = "file"
decode = {{ format = "apigw", tenant = {{ type = "static", tenant = "acme" }} }}
file = {{ paths = ["{input}"] }}
"#,
        dir = dir.path().display(),
        input = input.display()
    );
    let cfg = ServiceConfig::parse(&text, "test", Vec::new()).expect("valid config");
    let m = Metrics::new();
    let report = run_blocking(cfg, &m);
    assert_eq!(report.events_scored(), 2_001);
    let out = lines_of(&dir.path().join("alerts.ndjson"));
    let sink = lines_of(&dir.path().join("oncall.ndjson"));
    let issuer = |v: &Vec<serde_json::Value>| {
        v.iter()
            .filter(|a| a["type"] == "fired" && a["detector"] == "issuer")
            .count()
    };
    assert_eq!(issuer(&out), 1, "{out:?}");
    assert_eq!(issuer(&sink), 1, "the sink got the alert: {sink:?}");
    assert_eq!(sink.len(), out.len(), "every update reached the sink");
}
