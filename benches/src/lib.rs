//! Shared fixtures for the benchmarks: deterministic, realistic records of
//! each format Tollgate decodes, so every bench measures the same bytes.

use std::io::Write;

/// `n` API Gateway REST access-log lines with Cognito claims (≈ 560 bytes each).
pub fn apigw_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"requestId":"c6af9ac6-7b61-11e6-9a41-{i:012x}","extendedRequestId":"Ab{i:010}=","ip":"198.51.{}.{}","caller":"-","user":"-","requestTime":"10/Jun/2023:15:{:02}:{:02} +0000","requestTimeEpoch":"{}","httpMethod":"GET","resourcePath":"/pets/{{id}}","status":"200","protocol":"HTTP/1.1","responseLength":"{}","responseLatency":"{}","userAgent":"okhttp/4.9.3","stage":"prod","apiId":"a1b2c3d4e5","authorizer.claims.iss":"https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34","authorizer.claims.sub":"3f1b8c2e-0d4e-4a1b-9f00-{i:012x}","authorizer.claims.client_id":"4q2kd8s7f1g0h9j3k5l6m7n8o","authorizer.claims.custom:tenant_id":"tenant-{}"}}"#,
                i % 250,
                i % 200,
                (i / 60) % 60,
                i % 60,
                1_686_411_388_000u64 + i as u64,
                100 + i % 5000,
                5 + i % 300,
                i % 50
            )
            .into_bytes()
        })
        .collect()
}

/// `n` API Gateway REST lines in the console's default JSON template
/// (`requestId, ip, caller, user, requestTime, httpMethod, resourcePath,
/// status, protocol, responseLength`; ≈ 250 bytes each).
pub fn apigw_default_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"requestId":"c6af9ac6-7b61-11e6-9a41-{i:012x}","ip":"198.51.{}.{}","caller":"-","user":"-","requestTime":"10/Jun/2023:15:{:02}:{:02} +0000","httpMethod":"GET","resourcePath":"/pets/{{id}}","status":"200","protocol":"HTTP/1.1","responseLength":"{}"}}"#,
                i % 250,
                i % 200,
                (i / 60) % 60,
                i % 60,
                100 + i % 5000,
            )
            .into_bytes()
        })
        .collect()
}

/// `n` Zscaler ZIA web records, SIEM-wrapped, Splunk-style keys (≈ 1 KB each).
pub fn zscaler_web_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"sourcetype":"zscalernss-web","event":{{"datetime":"Mon Oct 16 22:{:02}:{:02} 2023","reason":"Allowed","event_id":"72123{i:08}","protocol":"HTTPS","action":"Allowed","transactionsize":"{}","responsesize":"{}","requestsize":"{}","urlcategory":"Professional Services","serverip":"203.0.113.{}","requestmethod":"GET","refererURL":"None","useragent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36","product":"NSS","location":"HQ%20Office","ClientIP":"10.1.{}.{}","status":"200","user":"user{}%40example.com","url":"www.site{}.example.com/path/to/resource?q={i}","vendor":"Zscaler","hostname":"www.site{}.example.com","clientpublicIP":"198.51.100.20","threatcategory":"None","threatname":"None","filetype":"None","appname":"General Browsing","pagerisk":"0","department":"Engineering","urlsupercategory":"Business and Economy","appclass":"General Browsing","dlpengine":"None","urlclass":"Business Use","threatclass":"None","fileclass":"None","contenttype":"text/html","deviceowner":"jdoe","devicehostname":"LAPTOP-{}","company":"tenant-{}"}}}}"#,
                (i / 60) % 60,
                i % 60,
                900 + i % 10_000,
                400 + i % 9_000,
                500 + i % 1_000,
                i % 250,
                i % 250,
                i % 200,
                i % 1000,
                i % 300,
                i % 300,
                i % 1000,
                i % 50
            )
            .into_bytes()
        })
        .collect()
}

/// `n` Zscaler ZIA firewall records, bare, numbers as JSON integers.
pub fn zscaler_fw_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"datetime":"Mon Oct 16 22:55:48 2023","user":"svc{}%40example.com","department":"IT","locationname":"DC1","csip":"10.0.{}.{}","csport":{},"cdip":"203.0.113.{}","cdport":443,"ssip":"0.0.0.0","ssport":0,"sdip":"203.0.113.{}","sdport":443,"tsip":"198.51.100.2","tuntype":"GRE","action":"Allow","dnat":"No","stateful":"Yes","nwsvc":"HTTPS","nwapp":"ssl","proto":"TCP","ipcat":"Miscellaneous","destcountry":"United States","rulelabel":"Default","inbytes":{},"outbytes":{},"duration":2,"durationms":{},"numsessions":1,"threatcat":"None","threatname":"None","epochtime":{},"recordid":"{i}","company":"tenant-{}"}}"#,
                i % 100,
                i % 250,
                i % 200,
                40_000 + i % 20_000,
                i % 250,
                i % 250,
                1000 + i % 50_000,
                500 + i % 9_000,
                10 + i % 3000,
                1_697_496_948 + i,
                i % 50
            )
            .into_bytes()
        })
        .collect()
}

/// `n` Zscaler ZIA DNS records.
pub fn zscaler_dns_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"datetime":"2023-10-16 22:55:48","user":"user{}%40example.com","dns_req":"host{}.example.org","dns_reqtype":"A","dns_resp":"203.0.113.{}","restype":"IPv4","clt_sip":"10.1.{}.{}","srv_dip":"8.8.8.8","srv_dport":"53","reqaction":"REQ_ALLOW","resaction":"RES_ALLOW","category":"Professional Services","dnsapp":"None","durationms":"{}","recordid":"{i}","company":"tenant-{}"}}"#,
                i % 1000,
                i % 5000,
                i % 250,
                i % 250,
                i % 200,
                i % 40,
                i % 50
            )
            .into_bytes()
        })
        .collect()
}

/// `n` ZPA LSS user-activity records.
pub fn zpa_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"LogTimestamp":"Fri May 31 17:35:42 2019","Customer":"tenant-{}","SessionID":"8A64Qwj9zCkfYgHUgMNhl{i}","ConnectionID":"8A64Qwj9zCkfYgHUgMNhl,Q+EJYNpI{i}","ConnectionStatus":"active","Username":"user{}@example.com","ClientPublicIP":"198.51.100.{}","ClientPrivateIP":"10.0.0.{}","Policy":"Engineering","Connector":"conn-01","Host":"git{}.internal","Application":"Git","AppGroup":"Engineering Apps","ServerIP":"10.20.0.{}","ServerPort":22,"ZENTotalBytesRxClient":{},"ZENTotalBytesTxClient":{},"Idp":"Okta"}}"#,
                i % 50,
                i % 1000,
                i % 250,
                i % 250,
                i % 20,
                i % 250,
                1000 + i % 90_000,
                4000 + i % 900_000
            )
            .into_bytes()
        })
        .collect()
}

/// CloudWatch Logs DATA_MESSAGE envelopes, gzip'd as a subscription filter
/// writes them to Kinesis, each carrying `per` API Gateway lines.
pub fn cloudwatch_records(n: usize, per: usize) -> Vec<Vec<u8>> {
    let lines = apigw_lines(n * per);
    lines
        .chunks(per)
        .enumerate()
        .map(|(r, chunk)| {
            let events: Vec<serde_json::Value> = chunk
                .iter()
                .enumerate()
                .map(|(j, l)| {
                    serde_json::json!({
                        "id": format!("{:056}", r * per + j),
                        "timestamp": 1_686_411_388_000u64 + (r * per + j) as u64,
                        "message": String::from_utf8_lossy(l),
                    })
                })
                .collect();
            let env = serde_json::json!({
                "messageType": "DATA_MESSAGE",
                "owner": "111111111111",
                "logGroup": "/aws/apigateway/tenant-1/access",
                "logStream": "stream-1",
                "subscriptionFilters": ["to-kinesis"],
                "logEvents": events,
            });
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(env.to_string().as_bytes())
                .expect("in-memory write");
            enc.finish().expect("in-memory write")
        })
        .collect()
}

/// The scenario generator's benchmark traffic: `n` records of every feed
/// for `tenants` tenants over `days` days, no incidents, in event-time
/// order (the Kafka load benchmark produces it; the engine benchmarks
/// score it decoded).
pub fn sim(n: usize, tenants: usize, days: u64, seed: u64) -> tollgate_sim::Simulation {
    tollgate_sim::Simulation::new(tollgate_sim::SimConfig {
        seed,
        tenants,
        events: n as u64,
        duration: std::time::Duration::from_secs(days * 86_400),
        scenarios: Vec::new(),
        ..tollgate_sim::SimConfig::default()
    })
    .expect("valid simulation")
}

/// [`sim`] over two days, as the Kafka load benchmark sends it (every feed
/// interleaved on one topic), each record with its tenant (the record's
/// Kafka key there).
pub fn mixed_records(n: usize, tenants: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    sim(n, tenants, 2, seed)
        .map(|r| (r.tenant.as_str().to_owned(), r.line.into_bytes()))
        .collect()
}

/// `n` decoded events of [`sim`]'s traffic: realistic input for engine
/// benchmarks.
pub fn sim_events(n: usize, tenants: usize, days: u64, seed: u64) -> Vec<tollgate_events::Event> {
    use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, RecordMeta, TenantRule};
    let sim = sim(n, tenants, days, seed);
    let mut dec = Decoder::new(&DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {}))
        .expect("valid decoder");
    let mut out = Vec::with_capacity(n);
    let mut items = Vec::new();
    for rec in sim {
        let meta = RecordMeta {
            key: Some(rec.tenant.as_str().as_bytes()),
            ..RecordMeta::default()
        };
        dec.decode(rec.line.as_bytes(), &meta, &mut items);
        for d in items.drain(..) {
            if let Decoded::Event(ev) = d {
                out.push(ev);
            }
        }
    }
    out
}

/// `events` again, `passes` spans later (a span: from the first event's time
/// to just past the last one's), for measuring the same traffic more than
/// once without sending a model events older than ones it has seen: a
/// replayed window would otherwise travel back in time, which no live
/// stream does (intervals would not close, first-seen facts would be
/// stale, and episodes would reopen).
pub fn shifted(events: &[tollgate_events::Event], passes: u32) -> Vec<tollgate_events::Event> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Vec::new();
    };
    let span = (last.ts - first.ts) + chrono::Duration::seconds(1);
    let by = span * passes as i32;
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.ts += by;
            e
        })
        .collect()
}

/// The detect benchmark's setup: 400,000 events of 20 tenants' simulated
/// traffic over a week; an engine with the default configuration, on a
/// thread made a one-thread rayon pool as every scoring thread of the
/// service is (keep the returned pool while measuring), has processed all
/// but the last 50,000, which are returned for measuring. Every tenant of
/// those is resident (asserted).
pub fn warm_detect() -> (
    tollgate_detect::Engine,
    Vec<tollgate_events::Event>,
    Option<tollgate_detect::RefitPool>,
) {
    use tollgate_detect::{DetectConfig, Engine, MemStore};
    let mut events = sim_events(400_000, 20, 7, 1);
    let hot = events.split_off(events.len() - 50_000);
    let pool = tollgate_detect::refits_on_this_thread();
    let cfg = DetectConfig::default()
        .check()
        .expect("default config is valid");
    let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
    let mut updates = Vec::new();
    for ev in &events {
        engine.process(ev, &mut updates);
        updates.clear();
    }
    let resident = hot
        .iter()
        .filter(|e| engine.tenant(&e.tenant).is_some())
        .count();
    assert_eq!(
        resident,
        hot.len(),
        "every measured event's tenant is resident"
    );
    (engine, hot, pool)
}
