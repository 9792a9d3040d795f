//! Which vendor key feeds which normalized field, per format, and how `auto`
//! tells the formats apart.
//!
//! Each table maps a flattened key (see [`crate::scan`]) to a [`Slot`] and a
//! rank; when a record has several keys for one slot, the lowest rank wins
//! (`extendedRequestId` over `requestId`, say). Tables are `match`
//! statements: the compiler turns them into length-then-bytes comparisons.
//! A decoder looks each distinct key up once: [`KeyInfo`] is everything a
//! key means to it (slot and rank per format, `auto` votes, tenant path), and
//! [`KeyMemo`] remembers it for the keys met since (the scanner also keeps it
//! for the root keys of the last record's shape).

use crate::scan::words;

/// A place a vendor value can go. Most map one-to-one onto [`crate::Event`]
/// fields; the others are read and converted (`Url`, `Token`, the time slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Slot {
    Id,
    /// Epoch number (s / ms by magnitude).
    TsEpoch,
    /// The format's own text shape (CLF for API Gateway, Zscaler local time).
    TsText,
    /// RFC 3339.
    TsIso,
    /// Any of the above, tried in turn (used by operator field mappings).
    TsAny,
    /// A per-record time zone for `TsText` (Zscaler `tz`).
    Tz,
    Principal,
    ClientIp,
    UserAgent,
    Issuer,
    Subject,
    ClientId,
    /// A raw JWT or bearer token: read, never kept.
    Token,
    Method,
    Route,
    /// A URL: destination host and route (path) are taken from it.
    Url,
    /// The concrete request path (API Gateway `$context.path`): the route
    /// when the template has none or only a catch-all (`/{proxy+}`, `$default`).
    Path,
    /// A base64-encoded URL (newer Zscaler web templates).
    B64Url,
    Status,
    BytesIn,
    BytesOut,
    LatencyMs,
    /// Seconds, converted to milliseconds.
    DurationS,
    DestHost,
    DestIp,
    DestPort,
    UrlCategory,
    App,
    Action,
    Threat,
    Protocol,
    ContentType,
    Stage,
}

pub const SLOTS: usize = Slot::Stage as usize + 1;

/// The formats a single (non-envelope) record can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Apigw,
    ZscalerWeb,
    ZscalerFw,
    ZscalerDns,
    Zpa,
}

impl RecordFormat {
    pub fn source(self) -> crate::Source {
        use crate::Source;
        match self {
            RecordFormat::Apigw => Source::Apigw,
            RecordFormat::ZscalerWeb => Source::ZscalerWeb,
            RecordFormat::ZscalerFw => Source::ZscalerFw,
            RecordFormat::ZscalerDns => Source::ZscalerDns,
            RecordFormat::Zpa => Source::Zpa,
        }
    }

    /// Whether identity and label fields may carry feed percent-escapes.
    pub fn percent_escaped(self) -> bool {
        !matches!(self, RecordFormat::Apigw)
    }

    pub fn slot(self, key: &str) -> Option<(Slot, u8)> {
        match self {
            RecordFormat::Apigw => apigw(key),
            RecordFormat::ZscalerWeb => zscaler_web(key),
            RecordFormat::ZscalerFw => zscaler_fw(key),
            RecordFormat::ZscalerDns => zscaler_dns(key),
            RecordFormat::Zpa => zpa(key),
        }
    }

    /// The format a Zscaler SIEM `sourcetype` names.
    pub fn from_sourcetype(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s.contains("web") {
            Some(RecordFormat::ZscalerWeb)
        } else if s.contains("fw") || s.contains("firewall") {
            Some(RecordFormat::ZscalerFw)
        } else if s.contains("dns") {
            Some(RecordFormat::ZscalerDns)
        } else if s.contains("zpa") || s.contains("lss") {
            Some(RecordFormat::Zpa)
        } else {
            None
        }
    }
}

use Slot::*;

fn apigw(key: &str) -> Option<(Slot, u8)> {
    Some(match key {
        "extendedRequestId" => (Id, 0),
        "requestId" => (Id, 1),
        "requestTimeEpoch" => (TsEpoch, 0),
        "requestTime" => (TsText, 0),
        "user" => (Principal, 0),
        "caller" => (Principal, 1),
        "principalId" | "authorizer.principalId" | "authorizerPrincipalId" => (Principal, 2),
        "username"
        | "cognito:username"
        | "authorizer.claims.username"
        | "authorizer.claims.cognito:username"
        | "claims.username"
        | "claims.cognito:username"
        | "authorizer.jwt.claims.username" => (Principal, 3),
        "ip" | "sourceIp" | "identity.sourceIp" | "sourceIP" => (ClientIp, 0),
        "clientIp" => (ClientIp, 1),
        "userAgent" | "identity.userAgent" | "user_agent" => (UserAgent, 0),
        "iss"
        | "issuer"
        | "tokenIssuer"
        | "authorizerIss"
        | "jwtIssuer"
        | "authorizer.claims.iss"
        | "authorizer.iss"
        | "authorizer.jwt.claims.iss"
        | "claims.iss" => (Issuer, 0),
        "sub"
        | "subject"
        | "tokenSubject"
        | "authorizerSub"
        | "jwtSubject"
        | "authorizer.claims.sub"
        | "authorizer.sub"
        | "authorizer.jwt.claims.sub"
        | "claims.sub" => (Subject, 0),
        "client_id"
        | "clientId"
        | "authorizer.claims.client_id"
        | "authorizer.client_id"
        | "authorizer.clientId"
        | "authorizer.jwt.claims.client_id"
        | "claims.client_id" => (ClientId, 0),
        "azp" | "authorizer.claims.azp" | "authorizer.jwt.claims.azp" | "claims.azp" => {
            (ClientId, 1)
        }
        "token"
        | "jwt"
        | "authorization"
        | "Authorization"
        | "bearer"
        | "bearerToken"
        | "accessToken"
        | "access_token"
        | "idToken"
        | "authToken"
        | "authorizationHeader" => (Token, 0),
        "httpMethod" => (Method, 0),
        "method" => (Method, 1),
        "routeKey" | "resourcePath" => (Route, 0),
        "resource" => (Route, 1),
        "path" => (Path, 0),
        "status" => (Status, 0),
        "statusCode" => (Status, 1),
        "responseLength" => (BytesOut, 0),
        "requestLength" => (BytesIn, 0),
        "responseLatency" => (LatencyMs, 0),
        "integrationLatency" => (LatencyMs, 1),
        "domainName" => (DestHost, 0),
        "apiId" => (App, 0),
        "eventType" => (Action, 0),
        "protocol" => (Protocol, 0),
        "stage" => (Stage, 0),
        _ => return None,
    })
}

/// Keys shared by the three ZIA feeds.
fn zia_common(key: &str) -> Option<(Slot, u8)> {
    Some(match key {
        "recordid" => (Id, 1),
        "epochtime" => (TsEpoch, 0),
        "datetime" | "time" => (TsText, 0),
        "tz" => (Tz, 0),
        "user" => (Principal, 0),
        "login" => (Principal, 1),
        "action" => (Action, 0),
        _ => return None,
    })
}

fn zscaler_web(key: &str) -> Option<(Slot, u8)> {
    Some(match key {
        "event_id" | "eventid" => (Id, 0),
        "ClientIP" | "cip" => (ClientIp, 0),
        "cintip" => (ClientIp, 1),
        "clientpublicIP" | "cpubip" => (ClientIp, 2),
        "useragent" | "ua" => (UserAgent, 0),
        "requestmethod" | "reqmethod" => (Method, 0),
        "url" | "eurl" => (Url, 0),
        "b64url" => (B64Url, 0),
        "status" | "respcode" => (Status, 0),
        "requestsize" | "reqsize" => (BytesOut, 0),
        "responsesize" | "respsize" => (BytesIn, 0),
        "hostname" | "ehost" | "host" => (DestHost, 0),
        "serverip" | "sip" => (DestIp, 0),
        "urlcategory" | "urlcat" => (UrlCategory, 0),
        "appname" => (App, 0),
        "threatname" => (Threat, 0),
        "malwarecat" | "threatcategory" => (Threat, 1),
        "protocol" | "proto" => (Protocol, 0),
        "contenttype" => (ContentType, 0),
        _ => return zia_common(key),
    })
}

fn zscaler_fw(key: &str) -> Option<(Slot, u8)> {
    Some(match key {
        "csip" => (ClientIp, 0),
        "tsip" => (ClientIp, 1),
        "cdip" => (DestIp, 0),
        "sdip" => (DestIp, 1),
        "cdport" => (DestPort, 0),
        "sdport" => (DestPort, 1),
        "cltdomain" | "cdfqdn" => (DestHost, 0),
        "outbytes" => (BytesOut, 0),
        "inbytes" => (BytesIn, 0),
        "durationms" => (LatencyMs, 0),
        "duration" => (DurationS, 0),
        "nwapp" => (App, 0),
        "nwsvc" => (App, 1),
        "proto" => (Protocol, 0),
        "ipcat" => (UrlCategory, 0),
        "threatname" => (Threat, 0),
        "threatcat" => (Threat, 1),
        _ => return zia_common(key),
    })
}

fn zscaler_dns(key: &str) -> Option<(Slot, u8)> {
    Some(match key {
        "clt_sip" => (ClientIp, 0),
        "dns_req" => (DestHost, 0),
        "dns_reqtype" => (Method, 0),
        "srv_dip" => (DestIp, 0),
        "srv_dport" => (DestPort, 0),
        "reqaction" => (Action, 0),
        "resaction" => (Action, 1),
        "category" => (UrlCategory, 0),
        "dnsapp" => (App, 0),
        "durationms" => (LatencyMs, 0),
        "protocol" => (Protocol, 0),
        _ => return zia_common(key),
    })
}

fn zpa(key: &str) -> Option<(Slot, u8)> {
    Some(match key {
        "ConnectionID" => (Id, 0),
        "SessionID" => (Id, 1),
        "LogTimestamp" => (TsText, 0),
        "TimestampConnectionStart" => (TsIso, 0),
        "TimestampRequestReceiveStart" => (TsIso, 1),
        "Username" => (Principal, 0),
        "ClientPublicIP" => (ClientIp, 0),
        "ClientPrivateIP" => (ClientIp, 1),
        "Idp" => (Issuer, 0),
        "Host" => (DestHost, 0),
        "ServerIP" => (DestIp, 0),
        "ServerPort" => (DestPort, 0),
        "Application" => (App, 0),
        "ConnectionStatus" => (Action, 0),
        "ZENTotalBytesTxClient" => (BytesOut, 0),
        "ZENTotalBytesRxClient" => (BytesIn, 0),
        // Not `ClientToClient`: that is a client-to-client flag ("0"), not a protocol.
        "ClientProtocol" => (Protocol, 0),
        _ => return None,
    })
}

/// Votes a key casts for the formats it is distinctive of, as a bit set
/// indexed like [`AUTO_ORDER`].
pub fn hint(key: &str) -> u8 {
    const A: u8 = 1;
    const W: u8 = 2;
    const F: u8 = 4;
    const D: u8 = 8;
    const Z: u8 = 16;
    match key {
        "requestId" | "extendedRequestId" | "httpMethod" | "resourcePath" | "routeKey"
        | "requestTime" | "requestTimeEpoch" | "responseLength" | "apiId" | "connectionId"
        | "integrationLatency" | "responseLatency" | "domainName" | "integrationStatus"
        | "wafResponseCode" | "error.message" => A,
        "urlcategory" | "urlcat" | "transactionsize" | "requestsize" | "reqsize"
        | "responsesize" | "respsize" | "requestmethod" | "reqmethod" | "eurl" | "ehost"
        | "useragent" | "refererURL" | "urlsupercategory" | "urlsupercat" | "urlclass"
        | "pagerisk" | "riskscore" | "b64url" | "contenttype" | "respcode" | "ClientIP"
        | "appclass" | "malwarecat" | "threatcategory" | "ereferer" | "url" => W,
        "csip" | "csport" | "cdip" | "cdport" | "sdip" | "sdport" | "ssip" | "ssport" | "tsip"
        | "nwsvc" | "nwapp" | "inbytes" | "outbytes" | "ipcat" | "destcountry" | "tuntype"
        | "dnat" | "stateful" | "numsessions" | "cltdomain" => F,
        "dns_req" | "dns_reqtype" | "dns_resp" | "restype" | "clt_sip" | "srv_dip"
        | "srv_dport" | "reqaction" | "resaction" | "dnsapp" => D,
        "LogTimestamp"
        | "SessionID"
        | "ConnectionID"
        | "ConnectionStatus"
        | "ClientPublicIP"
        | "ClientPrivateIP"
        | "ZENTotalBytesRxClient"
        | "ZENTotalBytesTxClient"
        | "AppGroup"
        | "Connector"
        | "Customer"
        | "Idp"
        | "ServerIP"
        | "Application" => Z,
        _ => 0,
    }
}

/// Bit `i` of [`hint`] votes for `AUTO_ORDER[i]`; ties go to the earlier one.
pub const AUTO_ORDER: [RecordFormat; 5] = [
    RecordFormat::Apigw,
    RecordFormat::ZscalerWeb,
    RecordFormat::ZscalerFw,
    RecordFormat::ZscalerDns,
    RecordFormat::Zpa,
];

/// What one flattened key means to a decoder: its slot and rank in each
/// format (operator mappings applied), its `auto` votes, and whether it is
/// one of the tenant rule's paths. A pure function of the
/// key for a given decoder, so it can be remembered ([`KeyMemo`], and the
/// scanner's shape). Packed in one word, as it is handed along with every
/// pair: per format 9 bits (slot index, and rank × 64; all ones: no slot),
/// then the votes (5 bits) and the tenant path's index + 1 (14 bits; 0:
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo(u64);

const FORMAT_BITS: u32 = 9;
const NO_SLOT: u64 = (1 << FORMAT_BITS) - 1;
const HINT_AT: u32 = 5 * FORMAT_BITS;
const TENANT_AT: u32 = HINT_AT + 5;
/// Tenant paths a [`KeyInfo`] can name (the index + 1 must fit 14 bits).
pub const MAX_TENANT_PATHS: usize = (1 << (64 - TENANT_AT)) - 1;

impl KeyInfo {
    /// Looks `key` up in the tables. Operator mappings (`mapped`, first
    /// match wins) outrank every table entry. `tenant_paths` has at most
    /// [`MAX_TENANT_PATHS`] entries.
    pub fn of(key: &str, mapped: &[(String, Slot)], tenant_paths: &[String]) -> KeyInfo {
        let mut packed = 0u64;
        for (i, fmt) in AUTO_ORDER.into_iter().enumerate() {
            let hit = if mapped.is_empty() {
                fmt.slot(key)
            } else {
                match mapped.iter().find(|(p, _)| p == key) {
                    Some((_, slot)) => Some((*slot, 0)),
                    None => fmt.slot(key).map(|(s, r)| (s, r.saturating_add(1))),
                }
            };
            let bits = match hit {
                Some((slot, rank)) => {
                    // There are fewer than 63 slots, and the tables' ranks
                    // are 0 to 3 (4 with a mapping).
                    assert!(
                        SLOTS < 63 && rank < 7,
                        "rank {rank} of {key:?} does not fit"
                    );
                    slot as u64 | u64::from(rank) << 6
                }
                None => NO_SLOT,
            };
            packed |= bits << (FORMAT_BITS * i as u32);
        }
        packed |= u64::from(hint(key)) << HINT_AT;
        if let Some(i) = tenant_paths.iter().position(|p| p == key) {
            debug_assert!(i < MAX_TENANT_PATHS);
            packed |= ((i as u64 + 1) & MAX_TENANT_PATHS as u64) << TENANT_AT;
        }
        KeyInfo(packed)
    }

    /// The slot (as an index of [`Slot`]) and rank `fmt` gives the key.
    #[inline(always)]
    pub fn slot(self, fmt: RecordFormat) -> Option<(usize, u8)> {
        let b = self.0 >> (FORMAT_BITS * fmt as u32) & NO_SLOT;
        (b != NO_SLOT).then_some(((b & 63) as usize, (b >> 6) as u8))
    }

    /// [`hint`] of the key.
    #[inline(always)]
    pub fn hint(self) -> u8 {
        (self.0 >> HINT_AT) as u8 & 31
    }

    /// Index of the tenant path the key is, if any.
    #[inline(always)]
    pub fn tenant(self) -> Option<usize> {
        (self.0 >> TENANT_AT).checked_sub(1).map(|i| i as usize)
    }
}

/// Remembers the [`KeyInfo`] of the keys a decoder has met. A feed's records
/// repeat the same few dozen keys, and a lookup here (a multiply, a probe,
/// and for keys of up to 16 bytes no byte comparison at all: the first and
/// last eight bytes and the length are the key) costs a fraction of the
/// `match` tables' string comparisons. Bounded: past [`KeyMemo::MAX_KEYS`]
/// keys it starts over, and keys longer than [`KeyMemo::MAX_KEY_LEN`] are
/// not kept.
#[derive(Debug, Clone)]
pub struct KeyMemo {
    entries: Vec<Entry>,
    /// The bytes of kept keys longer than 16 bytes.
    long: String,
    used: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// `words` of the key.
    a: u64,
    b: u64,
    /// Key length; `u32::MAX` for an empty entry.
    len: u32,
    /// Where a key longer than 16 bytes starts in `long`.
    at: u32,
    info: KeyInfo,
}

const EMPTY: Entry = Entry {
    a: 0,
    b: 0,
    len: u32::MAX,
    at: 0,
    info: KeyInfo(0),
};

/// Empty, and allocates nothing until the first key is kept (a decoder's
/// buffers are swapped out for a default one per record).
impl Default for KeyMemo {
    fn default() -> Self {
        KeyMemo {
            entries: Vec::new(),
            long: String::new(),
            used: 0,
        }
    }
}

impl KeyMemo {
    /// Table size (a power of two) and how far a lookup probes.
    const ENTRIES: usize = 256;
    const PROBES: usize = 8;
    /// Keys kept before the memo starts over (half the table).
    pub const MAX_KEYS: usize = Self::ENTRIES / 2;
    pub const MAX_KEY_LEN: usize = 256;

    /// The info of `key`: remembered, or computed by `of` (and remembered).
    #[inline(always)]
    pub fn get(&mut self, key: &str, of: impl FnOnce(&str) -> KeyInfo) -> KeyInfo {
        let k = key.as_bytes();
        let (a, b) = words(k);
        let h = (a ^ b.rotate_left(29) ^ k.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let start = (h >> 56) as usize;
        for p in 0..Self::PROBES {
            let Some(e) = self.entries.get((start + p) & (Self::ENTRIES - 1)) else {
                break;
            };
            if e.len == u32::MAX {
                break;
            }
            if e.a == a && e.b == b && e.len as usize == k.len() {
                let at = e.at as usize;
                if k.len() <= 16 || self.long.as_bytes().get(at..at + k.len()) == Some(k) {
                    return e.info;
                }
            }
        }
        let info = of(key);
        self.insert(key, a, b, start, info);
        info
    }

    #[cold]
    fn insert(&mut self, key: &str, a: u64, b: u64, start: usize, info: KeyInfo) {
        if key.len() > Self::MAX_KEY_LEN {
            return;
        }
        if self.entries.is_empty() {
            self.entries = vec![EMPTY; Self::ENTRIES];
        }
        if self.used >= Self::MAX_KEYS {
            self.entries.fill(EMPTY);
            self.long.clear();
            self.used = 0;
        }
        for p in 0..Self::PROBES {
            let i = (start + p) & (Self::ENTRIES - 1);
            if self.entries[i].len == u32::MAX {
                let at = self.long.len();
                if key.len() > 16 {
                    self.long.push_str(key);
                }
                self.entries[i] = Entry {
                    a,
                    b,
                    len: key.len() as u32,
                    at: at as u32,
                    info,
                };
                self.used += 1;
                return;
            }
        }
    }
}

/// Normalized field names an operator can map with a JSON pointer.
pub fn mappable(name: &str) -> Option<Slot> {
    Some(match name {
        "id" => Id,
        "ts" => TsAny,
        "principal" => Principal,
        "client_ip" => ClientIp,
        "user_agent" => UserAgent,
        "token_issuer" => Issuer,
        "token_subject" => Subject,
        "token" => Token,
        "client_id" => ClientId,
        "method" => Method,
        "route" => Route,
        "path" => Path,
        "url" => Url,
        "status" => Status,
        "bytes_in" => BytesIn,
        "bytes_out" => BytesOut,
        "latency_ms" => LatencyMs,
        "destination_host" => DestHost,
        "destination_ip" => DestIp,
        "destination_port" => DestPort,
        "url_category" => UrlCategory,
        "app" => App,
        "action" => Action,
        "threat" => Threat,
        "protocol" => Protocol,
        "content_type" => ContentType,
        "stage" => Stage,
        _ => return None,
    })
}

/// The names [`mappable`] accepts, for error messages.
pub const MAPPABLE_NAMES: &str = "id, ts, principal, client_ip, user_agent, token_issuer, \
token_subject, token, client_id, method, route, path, url, status, bytes_in, bytes_out, latency_ms, \
destination_host, destination_ip, destination_port, url_category, app, action, threat, protocol, \
content_type, stage";

/// A JSON pointer (`/authorizer/claims/iss`) as a flattened path
/// (`authorizer.claims.iss`), with `~1` and `~0` unescaped.
pub fn pointer_to_path(ptr: &str) -> Result<String, String> {
    let rest = ptr
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {ptr:?} must start with '/'"))?;
    if rest.is_empty() {
        return Err("JSON pointer must name a field, not the whole record".into());
    }
    let parts: Vec<String> = rest
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    Ok(parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_are_not_record_ids() {
        // A WebSocket connectionId is shared by every message on the
        // connection; as an event id it would make them look like duplicates.
        assert_eq!(RecordFormat::Apigw.slot("connectionId"), None);
        assert_eq!(RecordFormat::Apigw.slot("requestId"), Some((Id, 1)));
        assert_eq!(hint("connectionId"), 1);
    }

    /// Keys of every table.
    const KEYS_FOR_TESTS: &[&str] = &[
        "extendedRequestId",
        "requestId",
        "requestTimeEpoch",
        "requestTime",
        "user",
        "caller",
        "principalId",
        "authorizer.claims.username",
        "ip",
        "clientIp",
        "userAgent",
        "iss",
        "authorizer.jwt.claims.sub",
        "client_id",
        "azp",
        "token",
        "httpMethod",
        "method",
        "routeKey",
        "resource",
        "path",
        "status",
        "statusCode",
        "responseLength",
        "requestLength",
        "responseLatency",
        "integrationLatency",
        "domainName",
        "apiId",
        "eventType",
        "protocol",
        "stage",
        "recordid",
        "epochtime",
        "datetime",
        "tz",
        "login",
        "action",
        "event_id",
        "cip",
        "cintip",
        "cpubip",
        "ua",
        "reqmethod",
        "eurl",
        "b64url",
        "respcode",
        "reqsize",
        "respsize",
        "ehost",
        "sip",
        "urlcat",
        "appname",
        "threatname",
        "malwarecat",
        "proto",
        "contenttype",
        "csip",
        "tsip",
        "cdip",
        "sdip",
        "cdport",
        "sdport",
        "cltdomain",
        "outbytes",
        "inbytes",
        "durationms",
        "duration",
        "nwapp",
        "nwsvc",
        "ipcat",
        "threatcat",
        "clt_sip",
        "dns_req",
        "dns_reqtype",
        "srv_dip",
        "srv_dport",
        "reqaction",
        "resaction",
        "category",
        "dnsapp",
        "ConnectionID",
        "SessionID",
        "LogTimestamp",
        "TimestampConnectionStart",
        "TimestampRequestReceiveStart",
        "Username",
        "ClientPublicIP",
        "ClientPrivateIP",
        "Idp",
        "Host",
        "ServerIP",
        "ServerPort",
        "Application",
        "ConnectionStatus",
        "ZENTotalBytesTxClient",
        "ZENTotalBytesRxClient",
        "ClientProtocol",
        "nothing",
    ];

    #[test]
    fn the_memo_answers_like_the_tables() {
        let mapped = vec![("x.user".to_owned(), Principal)];
        let tenants = vec!["company".to_owned(), "a.b".to_owned()];
        let of = |k: &str| KeyInfo::of(k, &mapped, &tenants);
        let mut memo = KeyMemo::default();
        // Keys of every length class, near-misses that share first and last
        // bytes, and more keys than the memo keeps.
        let mut keys: Vec<String> = [
            "",
            "a",
            "ab",
            "abc",
            "user",
            "users",
            "x.user",
            "status",
            "statusCode",
            "company",
            "a.b",
            "messageType",
            "messageTypes",
            "authorizer.claims.iss",
            "authorizer.claims.sub",
            "authorizer.xxxxxx.iss",
            "requestTime",
            "requestTimeEpoch",
            "ClientIP",
            "clientIP",
            "cip",
            "cpi",
            "epochtime",
            "datetime",
            "time",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        keys.extend((0..300).map(|i| format!("k{i}")));
        keys.extend((0..50).map(|i| format!("a.rather.long.key.{i}.with.the.same.ends")));
        keys.push("é".repeat(200));
        keys.push("z".repeat(KeyMemo::MAX_KEY_LEN + 1));
        for round in 0..3 {
            for k in &keys {
                assert_eq!(memo.get(k, of), of(k), "{k} in round {round}");
            }
        }
        assert_eq!(of("company").tenant(), Some(0));
        assert_eq!(of("a.b").tenant(), Some(1));
        assert_eq!(of("user").tenant(), None);
        assert_eq!(
            of("x.user").slot(RecordFormat::Apigw),
            Some((Principal as usize, 0))
        );
        assert_eq!(
            of("user").slot(RecordFormat::Apigw),
            Some((Principal as usize, 1))
        );
        assert_eq!(
            of("user").slot(RecordFormat::ZscalerWeb),
            Some((Principal as usize, 1))
        );
        assert_eq!(
            of("x.user").slot(RecordFormat::Zpa),
            Some((Principal as usize, 0))
        );
        assert_eq!(of("nothing").slot(RecordFormat::Zpa), None);
        assert_eq!(of("Customer").hint(), 16);
        assert_eq!(of("requestId").hint(), 1);
        // Every slot index and rank survives the packing.
        for fmt in AUTO_ORDER {
            for k in KEYS_FOR_TESTS {
                let no_map = KeyInfo::of(k, &[], &[]);
                assert_eq!(
                    no_map.slot(fmt),
                    fmt.slot(k).map(|(s, r)| (s as usize, r)),
                    "{k}"
                );
            }
        }
        assert!(memo.used <= KeyMemo::MAX_KEYS);
    }

    #[test]
    fn zpa_client_to_client_is_not_a_protocol() {
        assert_eq!(RecordFormat::Zpa.slot("ClientToClient"), None);
    }
}
