//! Property tests for the decoder: no input panics, and decoding is a pure
//! function of the record (same bytes, same config → same items).
//!
//! Inputs: arbitrary bytes; arbitrary JSON built from the vendors' key names
//! and awkward values; the golden corpus's records with bytes flipped,
//! inserted, deleted or cut; gzip of all of these (whole and truncated). Each
//! runs under every `Format`. Beyond not panicking, every event must carry a
//! valid tenant and a time inside 1990–2200, and a logged JWT must never
//! reach the output.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use proptest::prelude::*;
use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, RecordMeta, TenantId, TenantRule};

const FORMATS: [Format; 7] = [
    Format::Auto,
    Format::Apigw,
    Format::Cloudwatch,
    Format::ZscalerWeb,
    Format::ZscalerFw,
    Format::ZscalerDns,
    Format::Zpa,
];

fn decoder(format: Format) -> Decoder {
    let p = |s: &str| TenantRule::Pointer {
        pointer: s.to_owned(),
    };
    let rule = TenantRule::FirstOf {
        rules: vec![
            p("/tenant"),
            p("/company"),
            TenantRule::Regex {
                over: tollgate_events::NameSource::LogGroup,
                regex: "^/t/(?P<tenant>[^/]*)".into(),
            },
            TenantRule::Static {
                tenant: "default".parse().unwrap(),
            },
        ],
    };
    let mut cfg = DecodeConfig::new(format, rule);
    cfg.limits.max_record_bytes = 64 << 10;
    cfg.limits.max_decompressed_bytes = 256 << 10;
    cfg.limits.max_batch_events = 64;
    cfg.limits.max_depth = 8;
    Decoder::new(&cfg).unwrap()
}

fn decode(format: Format, bytes: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    decoder(format).decode(bytes, &RecordMeta::default(), &mut out);
    out
}

/// Decodes with a fresh decoder and again with the same one; checks the
/// invariants every output must keep and returns the items.
fn check(format: Format, bytes: &[u8]) -> Result<Vec<Decoded>, TestCaseError> {
    let first = decode(format, bytes);
    let mut dec = decoder(format);
    let mut again = Vec::new();
    dec.decode(bytes, &RecordMeta::default(), &mut again);
    prop_assert_eq!(&first, &again, "a fresh decoder gave different items");
    let mut third = Vec::new();
    dec.decode(bytes, &RecordMeta::default(), &mut third);
    prop_assert_eq!(&first, &third, "a used decoder gave different items");
    let lo = chrono::DateTime::parse_from_rfc3339("1990-01-01T00:00:00Z").unwrap();
    let hi = chrono::DateTime::parse_from_rfc3339("2200-01-01T00:00:00Z").unwrap();
    for item in &first {
        if let Decoded::Event(ev) = item {
            prop_assert!(TenantId::new(ev.tenant.as_str()).is_ok());
            prop_assert!(ev.ts >= lo && ev.ts < hi, "time out of range: {}", ev.ts);
            prop_assert!(ev.status.is_none_or(|s| s > 0));
        }
    }
    Ok(first)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b).unwrap();
    enc.finish().unwrap()
}

/// Every record line of the golden corpus, as mutation seeds.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                (n.ends_with(".ndjson") || n.ends_with(".json"))
                    && !n.ends_with(".expected.ndjson")
                    && !n.ends_with(".config.json")
            })
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read(&f).unwrap();
            if f.extension().is_some_and(|e| e == "json") {
                out.push(text);
            } else {
                out.extend(
                    text.split(|&b| b == b'\n')
                        .filter(|l| l.len() > 2)
                        .map(<[u8]>::to_vec),
                );
            }
        }
        assert!(out.len() > 100, "corpus seeds missing");
        out
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"\"".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"\\u0000".to_vec()),
        Just(b"\"-\"".to_vec()),
        Just(b"null".to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"%".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"\x1f\x8b".to_vec()),
        Just(b"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":1}}}}}}}}".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), token).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = b.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if !b.is_empty() {
                    let i = i % b.len();
                    b[i] ^= x;
                }
            }
            Mutation::Insert(i, t) => {
                let i = i % (b.len() + 1);
                b.splice(i..i, t.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = i % len;
                let end = (i + n).min(b.len());
                if i < end {
                    b.drain(i..end);
                }
            }
            Mutation::Truncate(i) => b.truncate(i % len),
        }
    }
    b
}

/// Key names from every format (and the envelope), so that arbitrary JSON
/// reaches the per-format code rather than stopping at `unknown_format`.
const KEYS: &[&str] = &[
    "requestId",
    "extendedRequestId",
    "requestTime",
    "requestTimeEpoch",
    "ip",
    "user",
    "caller",
    "httpMethod",
    "resourcePath",
    "routeKey",
    "status",
    "protocol",
    "responseLength",
    "eventType",
    "connectionId",
    "authorizer",
    "claims",
    "iss",
    "sub",
    "principalId",
    "custom:tenant_id",
    "authorization",
    "jwt",
    "tenant",
    "company",
    "Customer",
    "sourcetype",
    "event",
    "version",
    "datetime",
    "epochtime",
    "tz",
    "time",
    "login",
    "url",
    "eurl",
    "b64url",
    "hostname",
    "ClientIP",
    "serverip",
    "requestsize",
    "responsesize",
    "urlcategory",
    "csip",
    "cdip",
    "cdport",
    "inbytes",
    "outbytes",
    "duration",
    "durationms",
    "dns_req",
    "dns_reqtype",
    "clt_sip",
    "srv_dip",
    "srv_dport",
    "LogTimestamp",
    "ConnectionID",
    "Username",
    "ClientPublicIP",
    "ServerPort",
    "TimestampConnectionStart",
    "ZENTotalBytesTxClient",
    "messageType",
    "logEvents",
    "logGroup",
    "message",
    "timestamp",
    "id",
    "authorizer.claims.iss",
];

const STRINGS: &[&str] = &[
    "",
    "-",
    "None",
    "NA",
    "N/A",
    "0.0.0.0",
    "::",
    "2001:db8::1",
    "[2001:db8::1]",
    "198.51.100.7",
    "10/Jun/2023:15:36:28 +0000",
    "31/Feb/2023:15:36:28 +0000",
    "10/Jun/1970:15:36:28 +0000",
    "Mon Oct 16 22:55:48 2023",
    "Tue Dec  31 02:22:22 2022",
    "2021-12-31 08:08:08",
    "2019-05-31T17:35:42.397Z",
    "1686411388",
    "1686411388123",
    "99999999999999999999",
    "1e308",
    "-5",
    "GMT-07:00",
    "America/New_York",
    "Mars/Olympus",
    "DATA_MESSAGE",
    "CONTROL_MESSAGE",
    "zscalernss-web",
    "zscalernss-fw",
    "zscalernss-dns",
    "zpa",
    "jdoe%40example.com",
    "%",
    "%zz",
    "%ff%fe",
    "Bearer abc",
    "Bearer a.b.c",
    "eyJ.eyJ.x",
    "API-Gateway-Execution-Logs_x/y",
    "/t/acme",
    "/t/",
    "/t/a b",
    "../etc",
    "aGVsbG8=",
    "!!!",
    "www.example.com/a?b#c",
    "https://u:p@[::1]:8443/x",
    "\u{2013}",
    "\u{0}",
];

fn json_value() -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), ".{0,8}"],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A record: a JSON object, or an array / envelope of them.
fn json_record() -> impl Strategy<Value = serde_json::Value> {
    let obj = prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..12)
        .prop_map(|kv| {
            serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        })
        .boxed();
    prop_oneof![
        4 => obj.clone(),
        1 => prop::collection::vec(obj.clone(), 0..4).prop_map(serde_json::Value::Array),
        1 => (prop::sample::select(STRINGS), prop::collection::vec(obj, 0..4)).prop_map(|(g, evs)| {
            serde_json::json!({
                "messageType": "DATA_MESSAGE",
                "logGroup": g,
                "logEvents": evs.into_iter().map(|e| serde_json::json!({
                    "id": "1", "timestamp": 1686411388000u64, "message": e.to_string()
                })).collect::<Vec<_>>(),
            })
        }),
        1 => json_value(),
    ]
}

fn format() -> impl Strategy<Value = Format> {
    prop::sample::select(FORMATS.as_slice())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(f in format(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(f, &bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(f in format(), v in json_record(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_vec_pretty(&v).unwrap()
        } else {
            serde_json::to_vec(&v).unwrap()
        };
        check(f, &text)?;
    }

    #[test]
    fn mutated_corpus_records_never_panic(
        f in format(),
        seed in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let s = seeds();
        let rec = mutate(s[seed.index(s.len())].clone(), &muts);
        check(f, &rec)?;
    }

    #[test]
    fn gzip_of_anything_never_panics(
        f in format(),
        seed in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 0..3),
        noise in prop::collection::vec(any::<u8>(), 0..256),
        use_noise in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let s = seeds();
        let plain = if use_noise { noise } else { mutate(s[seed.index(s.len())].clone(), &muts) };
        let mut gz = gzip(&plain);
        if truncate {
            gz.truncate(cut.index(gz.len()).max(2));
        }
        let items = check(f, &gz)?;
        if truncate {
            // A truncated stream is bad gzip, never a partial decode.
            prop_assert!(items.iter().all(|d| matches!(d, Decoded::Rejected(r) if r.reason.as_str() == "bad_gzip")));
        }
    }

    #[test]
    fn logged_tokens_never_reach_the_output(
        iss in "[ -~]{0,40}",
        sub in "[ -~]{0,40}",
        sig in "[A-Za-z0-9_-]{20,40}",
        key in prop::sample::select(&["authorization", "jwt", "token", "accessToken", "bearer"][..]),
        bearer in any::<bool>(),
    ) {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = e.encode(serde_json::json!({"iss": iss, "sub": sub}).to_string());
        let jwt = format!("{}.{payload}.{sig}", e.encode(r#"{"alg":"RS256"}"#));
        let value = if bearer { format!("Bearer {jwt}") } else { jwt.clone() };
        let rec = serde_json::json!({
            "requestId": "r1", "requestTime": "10/Jun/2023:15:36:28 +0000",
            "httpMethod": "GET", "status": "200", key: value,
        });
        let items = check(Format::Auto, rec.to_string().as_bytes())?;
        let Decoded::Event(ev) = &items[0] else {
            return Err(TestCaseError::fail(format!("not an event: {items:?}")));
        };
        let text = serde_json::to_string(ev).unwrap();
        prop_assert!(!text.contains(&payload) && !text.contains(&sig));
        if !["", "-", "None", "NA", "N/A"].contains(&sub.trim()) {
            // The subject is kept only as its keyed hash.
            let hash = ev.token_subject.as_deref();
            prop_assert!(hash.is_some_and(|h| h.len() >= 16 && h.bytes().all(|b| b.is_ascii_hexdigit()) && h != sub));
        }
    }
}
