//! Which vendor key feeds which normalized field, per format, and how `auto`
//! tells the formats apart.
//!
//! Each table maps a flattened key (see [`crate::scan`]) to a [`Slot`] and a
//! rank; when a record has several keys for one slot, the lowest rank wins
//! (`extendedRequestId` over `requestId`, say). Tables are `match`
//! statements: the compiler turns them into length-then-bytes comparisons,
//! which is what keeps decoding at a microsecond a record.

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

    #[test]
    fn zpa_client_to_client_is_not_a_protocol() {
        assert_eq!(RecordFormat::Zpa.slot("ClientToClient"), None);
    }
}
