//! End-to-end properties of generated simulations: determinism, exact
//! incident injection, unique joinable ids, well-formed vendor lines with
//! tenant markers, event-time order, warm-up, and the shape of each
//! scenario's malicious records.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use tollgate_sim::{
    EntityKind, Scenario, SimConfig, SimConfigError, SimFormat, SimRecord, Simulation,
};

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        tenants: 12,
        events: 30_000,
        start: Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap(),
        duration: Duration::from_secs(3 * 86_400),
        warmup: Duration::from_secs(86_400),
        incidents_per_scenario: 2,
        ..SimConfig::default()
    }
}

fn run(cfg: SimConfig) -> (Simulation, Vec<SimRecord>) {
    let sim = Simulation::new(cfg.clone()).unwrap();
    let records = Simulation::new(cfg).unwrap().collect();
    (sim, records)
}

/// The record's event object (unwrapping a Zscaler SIEM wrapper).
fn event(v: &Value) -> &Value {
    v.get("event").unwrap_or(v)
}

/// A field of an API Gateway line, flat dotted or nested.
fn apigw_field<'a>(v: &'a Value, dotted: &str) -> Option<&'a str> {
    if let Some(s) = v.get(dotted).and_then(Value::as_str) {
        return Some(s);
    }
    let mut cur = v;
    let parts: Vec<&str> = dotted.split('.').collect();
    // `custom:tenant_id` contains no dot, so a plain split works.
    for p in parts {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn zs_str(v: &Value, key: &str) -> Option<String> {
    match event(v).get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn zs_u64(v: &Value, key: &str) -> u64 {
    zs_str(v, key)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn same_seed_gives_byte_identical_output_and_different_seeds_differ() {
    let a: Vec<SimRecord> = Simulation::new(config(7)).unwrap().collect();
    let b: Vec<SimRecord> = Simulation::new(config(7)).unwrap().collect();
    assert_eq!(a, b);
    let c: Vec<SimRecord> = Simulation::new(config(8)).unwrap().collect();
    let lines_a: HashSet<&str> = a.iter().map(|r| r.line.as_str()).collect();
    let shared = c
        .iter()
        .filter(|r| lines_a.contains(r.line.as_str()))
        .count();
    assert_eq!(shared, 0, "different seeds share lines");
    assert_ne!(
        Simulation::new(config(7)).unwrap().labels().incidents,
        Simulation::new(config(8)).unwrap().labels().incidents
    );
}

#[test]
fn every_scenario_is_injected_with_the_requested_count_and_record_totals() {
    let (sim, records) = run(config(11));
    let incidents = sim.incidents();
    for s in Scenario::ALL {
        assert_eq!(
            incidents.iter().filter(|i| i.scenario == s).count(),
            2,
            "{s}"
        );
    }
    let ids: HashSet<&str> = incidents.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), incidents.len());

    assert_eq!(records.len() as u64, sim.total_records());
    let mut per_incident = vec![0u64; incidents.len()];
    let mut background = 0;
    for r in &records {
        match r.incident {
            Some(i) => {
                let inc = &incidents[i as usize];
                per_incident[i as usize] += 1;
                assert_eq!(r.tenant, inc.tenant);
                assert_eq!(r.format, inc.scenario.format());
                assert!(
                    r.ts >= inc.start && r.ts <= inc.end,
                    "{} outside {}",
                    r.ts,
                    inc.id
                );
            }
            None => background += 1,
        }
    }
    assert_eq!(background, 30_000);
    for (inc, n) in incidents.iter().zip(per_incident) {
        assert_eq!(inc.malicious_records, n, "{}", inc.id);
        assert!(n > 0);
    }
}

#[test]
fn incidents_start_after_warm_up_and_end_inside_the_window() {
    for seed in 1..6 {
        let cfg = config(seed);
        let sim = Simulation::new(cfg.clone()).unwrap();
        let labels = sim.labels();
        for i in sim.incidents() {
            assert!(
                i.start >= labels.warmup_end,
                "{} starts {} in warm-up",
                i.id,
                i.start
            );
            assert!(
                i.end < labels.end,
                "{} ends {} after the window",
                i.id,
                i.end
            );
            assert!(i.start <= i.end);
        }
    }
}

#[test]
fn ids_are_unique_and_match_the_line_and_lines_carry_tenant_markers() {
    let (sim, records) = run(config(3));
    let tenants: HashMap<String, _> = sim
        .tenants()
        .into_iter()
        .map(|t| (t.tenant.as_str().to_owned(), t))
        .collect();
    let mut ids = HashSet::new();
    let mut seen_claim_marker = 0;
    for r in &records {
        assert!(ids.insert(r.id.clone()), "duplicate id {}", r.id);
        assert!(!r.line.contains('\n'));
        let v: Value = serde_json::from_str(&r.line).unwrap_or_else(|e| panic!("{e}: {}", r.line));
        let info = &tenants[r.tenant.as_str()];
        match r.format {
            SimFormat::Apigw => {
                assert_eq!(v["extendedRequestId"].as_str(), Some(r.id.as_str()));
                assert!(info.api_ids.iter().any(|a| v["apiId"].as_str() == Some(a)));
                for key in [
                    "requestTime",
                    "requestTimeEpoch",
                    "status",
                    "responseLength",
                    "ip",
                    "userAgent",
                ] {
                    assert!(v[key].is_string(), "{key} not a string in {}", r.line);
                }
                let epoch: i64 = v["requestTimeEpoch"].as_str().unwrap().parse().unwrap();
                assert_eq!(epoch, r.ts.timestamp_millis());
                assert_eq!(
                    v["requestTime"].as_str().unwrap(),
                    r.ts.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
                );
                let claim = apigw_field(&v, "authorizer.claims.custom:tenant_id");
                if info.apigw_tenant_claim && apigw_field(&v, "authorizer.claims.iss") != Some("-")
                {
                    assert_eq!(claim, Some(r.tenant.as_str()));
                    seen_claim_marker += 1;
                } else {
                    assert!(claim.is_none() || claim == Some("-"));
                }
            }
            _ => {
                let id_key = if event(&v).get("event_id").is_some() {
                    "event_id"
                } else {
                    "recordid"
                };
                assert_eq!(zs_str(&v, id_key).as_deref(), Some(r.id.as_str()));
                assert_eq!(zs_str(&v, "company").as_deref(), Some(r.tenant.as_str()));
                assert_eq!(zs_u64(&v, "epochtime") as i64, r.ts.timestamp());
                if let Some(st) = v.get("sourcetype") {
                    let want = match r.format {
                        SimFormat::ZscalerWeb => "zscalernss-web",
                        SimFormat::ZscalerFw => "zscalernss-fw",
                        _ => "zscalernss-dns",
                    };
                    assert_eq!(st, want);
                }
                let dt = zs_str(&v, "datetime")
                    .or_else(|| zs_str(&v, "time"))
                    .unwrap();
                let parsed = chrono::NaiveDateTime::parse_from_str(
                    &dt.replace("  ", " "),
                    "%a %b %e %H:%M:%S %Y",
                )
                .unwrap();
                assert_eq!(parsed.and_utc().timestamp(), r.ts.timestamp(), "{dt}");
            }
        }
    }
    assert!(
        seen_claim_marker > 0,
        "no tenant uses a flat claim template"
    );
}

#[test]
fn records_are_in_event_time_order_within_the_window() {
    let cfg = config(5);
    let records: Vec<SimRecord> = Simulation::new(cfg.clone()).unwrap().collect();
    assert!(records.windows(2).all(|w| w[0].ts <= w[1].ts));
    let end = cfg.start + chrono::Duration::from_std(cfg.duration).unwrap();
    assert!(records.first().unwrap().ts >= cfg.start);
    assert!(records.last().unwrap().ts < end);
}

#[test]
fn background_has_cycles_zipf_tenants_and_realistic_status_mix() {
    let mut cfg = config(9);
    cfg.incidents_per_scenario = 0;
    cfg.duration = Duration::from_secs(7 * 86_400);
    cfg.events = 60_000;
    let sim = Simulation::new(cfg).unwrap();
    let tenants = sim.tenants();
    let records: Vec<SimRecord> = sim.collect();
    let biggest = records
        .iter()
        .filter(|r| r.tenant == tenants[0].tenant)
        .count();
    let smallest = records
        .iter()
        .filter(|r| r.tenant == tenants[11].tenant)
        .count();
    assert!(biggest > 5 * smallest, "{biggest} vs {smallest}");

    // Weekly cycle: Saturday and Sunday (2024-03-09/10) are quieter than Wednesday.
    let per_day = |d: u32| {
        records
            .iter()
            .filter(|r| r.ts.date_naive() == chrono::NaiveDate::from_ymd_opt(2024, 3, d).unwrap())
            .count()
    };
    assert!(
        per_day(6) > 2 * per_day(10),
        "wed {} sun {}",
        per_day(6),
        per_day(10)
    );

    let mut statuses = HashMap::<u16, usize>::new();
    for r in records.iter().filter(|r| r.format == SimFormat::Apigw) {
        let v: Value = serde_json::from_str(&r.line).unwrap();
        *statuses
            .entry(v["status"].as_str().unwrap().parse().unwrap())
            .or_default() += 1;
    }
    let total: usize = statuses.values().sum();
    let class = |c: u16| {
        statuses
            .iter()
            .filter(|(s, _)| **s / 100 == c)
            .map(|(_, n)| n)
            .sum::<usize>() as f64
            / total as f64
    };
    assert!(class(2) > 0.9 && class(2) < 0.99, "2xx {}", class(2));
    assert!(class(4) > 0.01, "4xx {}", class(4));
    assert!(class(5) > 0.002, "5xx {}", class(5));
}

fn malicious(records: &[SimRecord], sim: &Simulation, s: Scenario) -> Vec<(usize, Value)> {
    records
        .iter()
        .filter_map(|r| {
            let i = r.incident? as usize;
            (sim.incidents()[i].scenario == s).then(|| (i, serde_json::from_str(&r.line).unwrap()))
        })
        .collect()
}

#[test]
fn scenario_records_have_their_signatures() {
    let (sim, records) = run(config(21));
    let benign_uas: HashSet<String> = records
        .iter()
        .filter(|r| r.incident.is_none() && r.format == SimFormat::Apigw)
        .map(|r| {
            serde_json::from_str::<Value>(&r.line).unwrap()["userAgent"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let benign_iss: HashSet<String> = records
        .iter()
        .filter(|r| r.incident.is_none() && r.format == SimFormat::Apigw)
        .filter_map(|r| {
            apigw_field(
                &serde_json::from_str(&r.line).unwrap(),
                "authorizer.claims.iss",
            )
            .map(str::to_owned)
        })
        .collect();

    for (i, v) in malicious(&records, &sim, Scenario::NewIssuer) {
        let iss = apigw_field(&v, "authorizer.claims.iss").unwrap();
        assert_eq!(iss, sim.incidents()[i].entity);
        assert!(!benign_iss.contains(iss));
    }
    for (i, v) in malicious(&records, &sim, Scenario::StolenToken) {
        assert_eq!(
            apigw_field(&v, "authorizer.claims.username"),
            Some(sim.incidents()[i].entity.as_str())
        );
        assert!(!benign_uas.contains(v["userAgent"].as_str().unwrap()));
    }
    for inc in sim
        .incidents()
        .iter()
        .filter(|i| i.scenario == Scenario::CredentialStuffing)
    {
        assert_eq!(inc.entity_kind, EntityKind::ClientIp);
    }
    let stuffing = malicious(&records, &sim, Scenario::CredentialStuffing);
    let denied = stuffing
        .iter()
        .filter(|(_, v)| matches!(v["status"].as_str(), Some("401" | "403")))
        .count();
    assert!(denied * 10 >= stuffing.len() * 9);
    let principals: HashSet<&str> = stuffing
        .iter()
        .filter_map(|(_, v)| apigw_field(v, "authorizer.principalId"))
        .collect();
    assert!(
        principals.len() * 2 > stuffing.len(),
        "{} principals",
        principals.len()
    );
    for (i, v) in &stuffing {
        assert_eq!(v["ip"].as_str(), Some(sim.incidents()[*i].entity.as_str()));
    }

    let enumeration = malicious(&records, &sim, Scenario::RouteEnumeration);
    assert!(enumeration.iter().all(|(_, v)| v["status"] == "404"));
    let paths: HashSet<(usize, &str)> = enumeration
        .iter()
        .map(|(i, v)| (*i, v["path"].as_str().unwrap()))
        .collect();
    assert_eq!(paths.len(), enumeration.len(), "probes repeat a path");

    for (i, v) in malicious(&records, &sim, Scenario::Exfiltration) {
        let host = zs_str(&v, "hostname")
            .or_else(|| zs_str(&v, "ehost"))
            .unwrap();
        assert_eq!(host, sim.incidents()[i].entity);
        let out = zs_str(&v, "requestsize")
            .or_else(|| zs_str(&v, "reqsize"))
            .unwrap();
        assert!(out.parse::<u64>().unwrap() > 5_000_000);
    }

    for inc_idx in 0..sim.incidents().len() {
        let inc = &sim.incidents()[inc_idx];
        if inc.scenario != Scenario::Beaconing {
            continue;
        }
        let times: Vec<i64> = records
            .iter()
            .filter(|r| r.incident == Some(inc_idx as u32))
            .map(|r| r.ts.timestamp_millis())
            .collect();
        let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<i64>() as f64 / gaps.len() as f64;
        assert!(
            gaps.iter().all(|&g| (g as f64 - mean).abs() < 0.1 * mean),
            "not periodic: {gaps:?}"
        );
    }

    let tunnel = malicious(&records, &sim, Scenario::DnsTunnelling);
    let queries: HashSet<String> = tunnel
        .iter()
        .map(|(_, v)| zs_str(v, "dns_req").unwrap())
        .collect();
    assert_eq!(queries.len(), tunnel.len());
    for (i, v) in &tunnel {
        let q = zs_str(v, "dns_req").unwrap();
        assert!(q.ends_with(&format!(".{}", sim.incidents()[*i].entity)));
        assert!(q.len() > 45);
    }

    for (i, v) in malicious(&records, &sim, Scenario::OffHoursAdmin) {
        let inc = &sim.incidents()[i];
        assert!(v["path"].as_str().unwrap().contains("/admin/"));
        assert_eq!(
            apigw_field(&v, "authorizer.claims.username"),
            Some(inc.entity.as_str())
        );
        let info = sim
            .tenants()
            .into_iter()
            .find(|t| t.tenant == inc.tenant)
            .unwrap();
        let ms: i64 = v["requestTimeEpoch"].as_str().unwrap().parse().unwrap();
        let local_h =
            (ms + info.utc_offset_minutes as i64 * 60_000).rem_euclid(86_400_000) as f64 / 3.6e6;
        assert!((1.0..5.0).contains(&local_h), "admin at local {local_h}");
    }

    for inc in sim
        .incidents()
        .iter()
        .filter(|i| i.scenario == Scenario::VolumeSurge)
    {
        let span = inc.end - inc.start;
        let before = records
            .iter()
            .filter(|r| {
                r.tenant == inc.tenant && r.format == SimFormat::Apigw && r.incident.is_none()
            })
            .filter(|r| {
                r.ts >= inc.start - chrono::Duration::days(1)
                    && r.ts <= inc.end - chrono::Duration::days(1)
            })
            .count();
        assert!(
            inc.malicious_records as usize >= 3 * before.max(1) || inc.malicious_records == 200,
            "{} surge over {before} in {span}",
            inc.malicious_records
        );
    }
}

#[test]
fn bad_configs_report_every_problem() {
    let cfg = SimConfig {
        tenants: 0,
        duration: Duration::from_secs(600),
        warmup: Duration::from_secs(600),
        sources: vec![SimFormat::Apigw],
        ..SimConfig::default()
    };
    let problems = cfg.problems();
    assert!(problems.contains(&SimConfigError::Tenants {
        got: 0,
        max: SimConfig::MAX_TENANTS
    }));
    assert!(problems.contains(&SimConfigError::DurationTooShort));
    assert!(problems.contains(&SimConfigError::ScenarioNeedsSource {
        scenario: Scenario::DnsTunnelling,
        format: SimFormat::ZscalerDns
    }));
    assert!(problems.iter().any(|p| matches!(
        p,
        SimConfigError::WindowTooShort {
            scenario: Scenario::OffHoursAdmin,
            ..
        }
    )));
    assert!(Simulation::new(cfg).is_err());

    let apigw_only = SimConfig {
        events: 3_000,
        ..SimConfig::default()
    }
    .with_sources(&[SimFormat::Apigw]);
    let mut sim = Simulation::new(apigw_only).unwrap();
    assert_eq!(sim.incidents().len(), 6);
    assert!(sim.all(|r| r.format == SimFormat::Apigw));
    assert_eq!(
        "dns_tunnelling".parse::<Scenario>().unwrap(),
        Scenario::DnsTunnelling
    );
}

#[test]
fn write_dir_splits_feeds_and_exports_joinable_labels() {
    let dir = std::env::temp_dir().join(format!("tollgate-sim-test-{}", std::process::id()));
    let cfg = SimConfig {
        events: 4_000,
        tenants: 6,
        ..config(4)
    };
    let sim = Simulation::new(cfg.clone()).unwrap();
    let total = sim.total_records();
    let summary = tollgate_sim::write_dir(sim, &dir).unwrap();
    let mut lines = 0;
    for (format, path, n) in &summary.files {
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count() as u64, *n, "{format}");
        lines += n;
    }
    assert_eq!(lines, total);
    let labels: tollgate_sim::Labels =
        serde_json::from_slice(&std::fs::read(&summary.labels).unwrap()).unwrap();
    // Floats may not round-trip through JSON bit for bit; everything else must.
    let expected = Simulation::new(cfg).unwrap().labels();
    assert_eq!(labels.incidents, expected.incidents);
    assert_eq!(labels.total_records, expected.total_records);
    let api_ids = |l: &tollgate_sim::Labels| {
        l.tenants
            .iter()
            .map(|t| t.api_ids.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(api_ids(&labels), api_ids(&expected));
    let malicious = std::fs::read_to_string(&summary.malicious).unwrap();
    assert_eq!(
        malicious.lines().count() as u64,
        labels
            .incidents
            .iter()
            .map(|i| i.malicious_records)
            .sum::<u64>()
    );
    let first: Value = serde_json::from_str(malicious.lines().next().unwrap()).unwrap();
    assert!(labels
        .incidents
        .iter()
        .any(|i| first["incident"] == i.id.as_str()));
    std::fs::remove_dir_all(&dir).unwrap();
}
