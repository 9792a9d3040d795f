//! The simulated customers: tenants with their APIs, identity providers,
//! users, networks and browsing habits, all drawn once from the seed.
//!
//! Everything per-record is looked up by index into these tables, so the hot
//! path allocates nothing but the output line. This module decides *what
//! exists*; how often it appears is `traffic`'s business and how it is written
//! is `render`'s.

use tollgate_events::TenantId;

use crate::config::{SimConfig, SimFormat};
use crate::rng::{Cdf, Rng};

/// How a tenant's API Gateway access-log template is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApigwTemplate {
    /// REST v1, flat `"authorizer.claims.iss"` keys, tenant claim
    /// `custom:tenant_id`, compact spacing.
    RestFlat,
    /// REST v1, nested `{"authorizer":{"claims":{…}}}`, tenant known by
    /// `apiId` only, `": "` spacing.
    RestNested,
    /// HTTP API v2, flat dotted claim keys, tenant claim `custom:tenant_id`.
    HttpFlat,
    /// HTTP API v2, nested claims, tenant known by `apiId` only.
    HttpNested,
}

impl ApigwTemplate {
    pub(crate) fn is_rest(self) -> bool {
        matches!(self, ApigwTemplate::RestFlat | ApigwTemplate::RestNested)
    }
    pub(crate) fn nested(self) -> bool {
        matches!(self, ApigwTemplate::RestNested | ApigwTemplate::HttpNested)
    }
    pub(crate) fn tenant_claim(self) -> bool {
        !self.nested()
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            ApigwTemplate::RestFlat => "rest_flat_claims",
            ApigwTemplate::RestNested => "rest_nested_claims",
            ApigwTemplate::HttpFlat => "http_flat_claims",
            ApigwTemplate::HttpNested => "http_nested_claims",
        }
    }
}

/// How a tenant's Zscaler NSS feeds are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZscalerTemplate {
    /// `{"sourcetype":"zscalernss-web","event":{…}}` rather than a bare object.
    pub wrapped: bool,
    /// Adds `"version":"v2"` to the wrapper.
    pub versioned: bool,
    /// Splunk-style key names (`ClientIP`, `urlcategory`) rather than raw feed
    /// tokens (`cip`, `urlcat`). Applies to the web feed.
    pub splunk_keys: bool,
    /// Numbers written as JSON strings (`"inbytes":"10000"`).
    pub numbers_as_strings: bool,
    /// Day of month space-padded (`Mon Oct  6`) rather than zero-padded.
    pub space_padded_day: bool,
}

impl ZscalerTemplate {
    pub(crate) fn name(&self) -> String {
        format!(
            "{}{}_{}_{}",
            if self.wrapped { "wrapped" } else { "bare" },
            if self.versioned { "_v2" } else { "" },
            if self.splunk_keys {
                "splunk_keys"
            } else {
                "raw_tokens"
            },
            if self.numbers_as_strings {
                "string_numbers"
            } else {
                "int_numbers"
            }
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Issuer {
    pub url: String,
    pub clients: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    /// `first.last`; the Zscaler login is `name@email_domain`.
    pub name: String,
    /// Token subject (a UUID).
    pub sub: String,
    pub issuer: u8,
    pub client: u8,
    pub network: u8,
    pub host: u8,
    /// Index into [`BROWSER_UAS`] / [`API_UAS`].
    pub ua: u8,
    pub dept: u8,
    pub location: u8,
    pub device: String,
    pub internal_ip: [u8; 4],
    /// Admins are the only users who call admin routes in normal traffic.
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub method: &'static str,
    /// Resource template, e.g. `/orders/{id}`.
    pub resource: &'static str,
    pub resp_median: f64,
    pub latency_median: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub id: String,
    pub stage: &'static str,
    pub domain: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub id: TenantId,
    /// Share of background traffic (Zipf).
    pub weight: f64,
    /// Local time offset from UTC in minutes; drives the diurnal cycle.
    pub tz_minutes: i32,
    pub apigw: ApigwTemplate,
    pub zscaler: ZscalerTemplate,
    /// Per-format share among the enabled sources (index = SimFormat).
    pub formats: Cdf,
    pub issuers: Vec<Issuer>,
    pub users: Vec<User>,
    /// Zipf activity over users.
    pub user_activity: Cdf,
    /// Office / VPN `/24` prefixes the users call from.
    pub networks: Vec<[u8; 3]>,
    pub apis: Vec<Api>,
    pub routes: Vec<Route>,
    /// Popularity over non-admin routes (admin routes are drawn separately).
    pub route_popularity: Cdf,
    pub admin_routes: Vec<usize>,
    pub login_route: usize,
    pub email_domain: String,
    pub egress_ip: [u8; 4],
    /// Indices into [`DOMAINS`] this tenant browses, with Zipf popularity.
    pub domains: Vec<u16>,
    pub domain_popularity: Cdf,
}

/// Browser user agents (Zscaler web and human API callers).
pub(crate) const BROWSER_UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36 Edg/121.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:122.0) Gecko/20100101 Firefox/122.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
];

/// Programmatic API clients.
pub(crate) const API_UAS: &[&str] = &[
    "okhttp/4.12.0",
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 7 Build/UQ1A.240105.004)",
    "AcmeMobile/5.3.1 (iPhone; iOS 17.2; Scale/3.00)",
    "aws-sdk-java/2.21.10 Linux/5.10.205 OpenJDK_64-Bit_Server_VM/17.0.9",
    "axios/1.6.2",
    "Go-http-client/2.0",
];

/// User agents no tenant uses in normal traffic (stolen-token replays, scanners).
pub(crate) const ATTACKER_UAS: &[&str] = &[
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "Wget/1.21.4",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Go-http-client/1.1",
];

/// A destination: host, URL category, super-category, cloud app, app class.
pub(crate) struct Domain {
    pub host: &'static str,
    pub category: &'static str,
    pub supercategory: &'static str,
    pub app: &'static str,
    pub appclass: &'static str,
    pub ip: [u8; 4],
}

macro_rules! dom {
    ($h:expr, $c:expr, $s:expr, $a:expr, $k:expr, $ip:expr) => {
        Domain {
            host: $h,
            category: $c,
            supercategory: $s,
            app: $a,
            appclass: $k,
            ip: $ip,
        }
    };
}

/// Popular destinations, roughly in order of popularity.
pub(crate) const DOMAINS: &[Domain] = &[
    dom!(
        "outlook.office365.com",
        "Web Mail",
        "Internet Communication",
        "Outlook",
        "Webmail",
        [52, 97, 146, 2]
    ),
    dom!(
        "www.google.com",
        "Web Search",
        "Information Technology",
        "Google Search",
        "General Browsing",
        [142, 250, 72, 4]
    ),
    dom!(
        "teams.microsoft.com",
        "Professional Services",
        "Business and Economy",
        "Microsoft Teams",
        "Collaboration and Online Meetings",
        [52, 113, 194, 132]
    ),
    dom!(
        "login.microsoftonline.com",
        "Corporate Marketing",
        "Business and Economy",
        "Microsoft Login",
        "Business",
        [20, 190, 160, 3]
    ),
    dom!(
        "slack.com",
        "Professional Services",
        "Business and Economy",
        "Slack",
        "Collaboration and Online Meetings",
        [34, 192, 0, 17]
    ),
    dom!(
        "www.youtube.com",
        "Streaming Media",
        "Internet Communication",
        "YouTube",
        "Streaming Media",
        [142, 250, 80, 14]
    ),
    dom!(
        "github.com",
        "Online Storage",
        "Information Technology",
        "GitHub",
        "IT Services",
        [140, 82, 112, 3]
    ),
    dom!(
        "api.github.com",
        "Online Storage",
        "Information Technology",
        "GitHub",
        "IT Services",
        [140, 82, 112, 5]
    ),
    dom!(
        "d1.awsstatic.com",
        "Content Server",
        "Information Technology",
        "Amazon Web Services",
        "IT Services",
        [13, 224, 3, 81]
    ),
    dom!(
        "console.aws.amazon.com",
        "Professional Services",
        "Business and Economy",
        "Amazon Web Services",
        "IT Services",
        [54, 239, 28, 85]
    ),
    dom!(
        "www.linkedin.com",
        "Social Networking",
        "Social and Family",
        "LinkedIn",
        "Social Networking",
        [13, 107, 42, 14]
    ),
    dom!(
        "zoom.us",
        "Professional Services",
        "Business and Economy",
        "Zoom",
        "Collaboration and Online Meetings",
        [170, 114, 52, 2]
    ),
    dom!(
        "drive.google.com",
        "Online Storage",
        "Information Technology",
        "Google Drive",
        "Consumer",
        [142, 250, 64, 110]
    ),
    dom!(
        "www.salesforce.com",
        "Professional Services",
        "Business and Economy",
        "Salesforce",
        "Sales and Marketing",
        [104, 109, 10, 129]
    ),
    dom!(
        "app.hubspot.com",
        "Corporate Marketing",
        "Business and Economy",
        "HubSpot",
        "Sales and Marketing",
        [104, 16, 252, 55]
    ),
    dom!(
        "www.wikipedia.org",
        "Reference Sites",
        "Education",
        "General Browsing",
        "General Browsing",
        [208, 80, 154, 224]
    ),
    dom!(
        "www.bbc.co.uk",
        "News and Media",
        "News and Media",
        "General Browsing",
        "General Browsing",
        [151, 101, 0, 81]
    ),
    dom!(
        "www.nytimes.com",
        "News and Media",
        "News and Media",
        "General Browsing",
        "General Browsing",
        [151, 101, 1, 164]
    ),
    dom!(
        "stackoverflow.com",
        "Professional Services",
        "Information Technology",
        "General Browsing",
        "General Browsing",
        [172, 64, 155, 249]
    ),
    dom!(
        "www.dropbox.com",
        "Online Storage",
        "Information Technology",
        "Dropbox",
        "Consumer",
        [162, 125, 19, 131]
    ),
    dom!(
        "update.googleapis.com",
        "Content Server",
        "Information Technology",
        "Google Update",
        "IT Services",
        [142, 250, 65, 99]
    ),
    dom!(
        "ctldl.windowsupdate.com",
        "Content Server",
        "Information Technology",
        "Windows Update",
        "IT Services",
        [93, 184, 221, 240]
    ),
    dom!(
        "www.amazon.com",
        "Online Shopping",
        "Shopping and Auctions",
        "Amazon",
        "General Browsing",
        [54, 239, 28, 85]
    ),
    dom!(
        "www.reddit.com",
        "Social Networking",
        "Social and Family",
        "Reddit",
        "Social Networking",
        [151, 101, 65, 140]
    ),
    dom!(
        "cdn.jsdelivr.net",
        "Content Server",
        "Information Technology",
        "General Browsing",
        "General Browsing",
        [151, 101, 1, 229]
    ),
    dom!(
        "fonts.gstatic.com",
        "Content Server",
        "Information Technology",
        "General Browsing",
        "General Browsing",
        [142, 250, 72, 3]
    ),
    dom!(
        "www.atlassian.com",
        "Professional Services",
        "Business and Economy",
        "Atlassian",
        "IT Services",
        [18, 184, 99, 150]
    ),
    dom!(
        "acme.atlassian.net",
        "Professional Services",
        "Business and Economy",
        "Jira",
        "IT Services",
        [18, 184, 99, 151]
    ),
    dom!(
        "www.zendesk.com",
        "Professional Services",
        "Business and Economy",
        "Zendesk",
        "Sales and Marketing",
        [104, 16, 51, 111]
    ),
    dom!(
        "open.spotify.com",
        "Streaming Media",
        "Entertainment/Recreation",
        "Spotify",
        "Streaming Media",
        [35, 186, 224, 25]
    ),
    dom!(
        "www.weather.com",
        "News and Media",
        "News and Media",
        "General Browsing",
        "General Browsing",
        [23, 45, 121, 10]
    ),
    dom!(
        "www.booking.com",
        "Travel",
        "Travel",
        "General Browsing",
        "General Browsing",
        [23, 45, 122, 11]
    ),
];

const TENANT_WORDS: &[&str] = &[
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "wonka",
    "oscorp",
    "massive",
    "aperture",
    "blackmesa",
    "gringotts",
    "monarch",
    "nakatomi",
    "oceanic",
    "pied-piper",
    "sterling",
    "wernham",
    "dunder",
    "prestige",
];
const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara", "zoe",
    "amir", "bea", "chen", "dara", "emeka", "fatima", "goran", "hana", "ines", "jonas", "kemal",
];
const LAST: &[&str] = &[
    "smith", "jones", "garcia", "miller", "davis", "martin", "lee", "walker", "hall", "young",
    "king", "wright", "lopez", "hill", "scott", "green", "adams", "baker", "nelson", "carter",
    "mitchell", "perez", "roberts", "turner", "phillips", "campbell", "parker", "evans", "edwards",
];
pub(crate) const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Human Resources",
    "Support",
    "Legal",
    "IT%20Operations",
];
pub(crate) const LOCATIONS: &[&str] = &[
    "HQ",
    "Branch%20Office",
    "Remote%20Users",
    "Datacenter%201",
    "Road%20Warrior",
];
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
];
const TZ_MINUTES: &[i32] = &[-480, -300, -300, 0, 60, 60, 120, 330, 540, 600];

/// (method, resource, response median bytes, latency median ms)
const ROUTE_POOL: &[(&str, &str, f64, f64)] = &[
    ("GET", "/orders", 4200.0, 60.0),
    ("GET", "/orders/{id}", 900.0, 35.0),
    ("POST", "/orders", 350.0, 120.0),
    ("PUT", "/orders/{id}", 320.0, 90.0),
    ("DELETE", "/orders/{id}", 0.0, 70.0),
    ("GET", "/customers", 6100.0, 80.0),
    ("GET", "/customers/{id}", 1100.0, 30.0),
    ("PATCH", "/customers/{id}", 400.0, 85.0),
    ("GET", "/products", 12_000.0, 45.0),
    ("GET", "/products/{id}", 1500.0, 25.0),
    ("GET", "/invoices", 5200.0, 110.0),
    ("GET", "/invoices/{id}", 2300.0, 50.0),
    ("GET", "/invoices/{id}/pdf", 84_000.0, 260.0),
    ("POST", "/payments", 420.0, 310.0),
    ("GET", "/payments/{id}", 610.0, 40.0),
    ("GET", "/v1/items", 3800.0, 55.0),
    ("GET", "/v1/items/{id}", 700.0, 22.0),
    ("POST", "/v1/items", 300.0, 95.0),
    ("GET", "/reports/{id}", 22_000.0, 420.0),
    ("POST", "/reports", 260.0, 180.0),
    ("GET", "/me", 480.0, 18.0),
    ("GET", "/health", 20.0, 3.0),
    ("GET", "/search", 7400.0, 140.0),
    ("POST", "/uploads", 180.0, 650.0),
    ("GET", "/export/{id}", 150_000.0, 900.0),
];
const ADMIN_ROUTES: &[(&str, &str, f64, f64)] = &[
    ("GET", "/admin/users", 9000.0, 90.0),
    ("POST", "/admin/users", 300.0, 140.0),
    ("DELETE", "/admin/users/{id}", 0.0, 110.0),
    ("PUT", "/admin/settings", 250.0, 120.0),
    ("GET", "/admin/audit-log", 31_000.0, 380.0),
    ("POST", "/admin/api-keys", 210.0, 160.0),
];
pub(crate) const LOGIN_ROUTE: (&str, &str, f64, f64) = ("POST", "/auth/login", 620.0, 180.0);

/// Draws a UUID-shaped string.
pub(crate) fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

pub(crate) fn alnum(rng: &mut Rng, len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rng.index(alphabet.len())] as char)
        .collect()
}

pub(crate) const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub(crate) const MIXED_ALNUM: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A public /24 from ranges used by ISPs and offices (never reserved space).
pub(crate) fn public_prefix(rng: &mut Rng) -> [u8; 3] {
    const FIRST_OCTETS: &[u8] = &[
        24, 50, 63, 68, 71, 73, 81, 82, 86, 92, 98, 109, 151, 173, 176, 195, 203, 212,
    ];
    [
        *rng.pick(FIRST_OCTETS),
        rng.range(1, 254) as u8,
        rng.range(0, 255) as u8,
    ]
}

fn make_issuer(rng: &mut Rng, tenant_word: &str, kind: usize) -> Issuer {
    let url = match kind % 4 {
        0 => {
            let region = rng.pick(REGIONS);
            format!(
                "https://cognito-idp.{region}.amazonaws.com/{region}_{}",
                alnum(rng, 9, MIXED_ALNUM)
            )
        }
        1 => format!("https://{tenant_word}.okta.com/oauth2/default"),
        2 => format!("https://{tenant_word}.eu.auth0.com/"),
        _ => format!("https://login.microsoftonline.com/{}/v2.0", uuid(rng)),
    };
    let clients = (0..rng.range(1, 3))
        .map(|_| alnum(rng, 26, LOWER_ALNUM))
        .collect();
    Issuer { url, clients }
}

/// The tenants of a simulation, tenant 0 being the largest.
pub(crate) fn build_tenants(cfg: &SimConfig) -> Vec<Tenant> {
    let total = Cdf::zipf(cfg.tenants, ZIPF_TENANTS).total();
    (0..cfg.tenants)
        .map(|i| {
            let weight = 1.0 / ((i + 1) as f64).powf(ZIPF_TENANTS) / total;
            build_tenant(cfg, i, weight)
        })
        .collect()
}

/// Zipf exponent of tenant sizes.
const ZIPF_TENANTS: f64 = 1.1;

fn build_tenant(cfg: &SimConfig, i: usize, weight: f64) -> Tenant {
    let mut rng = Rng::new(cfg.seed, 0x7E4A_0000 + i as u64);
    let word = TENANT_WORDS[(i + rng.index(TENANT_WORDS.len())) % TENANT_WORDS.len()];
    let id = TenantId::new(&format!("{word}-{i:03}")).expect("tenant names are label-safe");
    let email_domain = format!("{word}{i}.example.com");
    let tz_minutes = *rng.pick(TZ_MINUTES);
    let apigw = match rng.below(4) {
        0 => ApigwTemplate::RestFlat,
        1 => ApigwTemplate::RestNested,
        2 => ApigwTemplate::HttpFlat,
        _ => ApigwTemplate::HttpNested,
    };
    let zscaler = ZscalerTemplate {
        wrapped: rng.chance(0.5),
        versioned: rng.chance(0.5),
        splunk_keys: rng.chance(0.5),
        numbers_as_strings: rng.chance(0.5),
        space_padded_day: rng.chance(0.3),
    };
    // Format shares: API-heavy or browsing-heavy tenants.
    let api_share = 0.2 + 0.6 * rng.f64();
    let share = |f: SimFormat| -> f64 {
        if !cfg.sources.contains(&f) {
            return 0.0;
        }
        match f {
            SimFormat::Apigw => api_share,
            SimFormat::ZscalerWeb => (1.0 - api_share) * 0.55,
            SimFormat::ZscalerDns => (1.0 - api_share) * 0.30,
            SimFormat::ZscalerFw => (1.0 - api_share) * 0.15,
        }
    };
    let formats = Cdf::new(SimFormat::ALL.iter().map(|&f| share(f)));

    let first_issuer_kind = rng.index(4);
    let issuers: Vec<Issuer> = (0..rng.range(1, 3) as usize)
        .map(|k| make_issuer(&mut rng, &format!("{word}{i}"), first_issuer_kind + k))
        .collect();
    let networks: Vec<[u8; 3]> = (0..rng.range(2, 6))
        .map(|_| public_prefix(&mut rng))
        .collect();

    // Bigger tenants have more users: 8 .. ~1500.
    let n_users = (8.0 + 4000.0 * weight.sqrt() * (0.5 + rng.f64())).min(1500.0) as usize;
    let users: Vec<User> = (0..n_users)
        .map(|u| {
            // `u % FIRST.len()` and the suffix `u / FIRST.len()` make names unique.
            let name = format!(
                "{}.{}{}",
                FIRST[u % FIRST.len()],
                LAST[rng.index(LAST.len())],
                if u >= FIRST.len() {
                    (u / FIRST.len()).to_string()
                } else {
                    String::new()
                }
            );
            let issuer = rng.index(issuers.len()) as u8;
            User {
                sub: uuid(&mut rng),
                client: rng.index(issuers[issuer as usize].clients.len()) as u8,
                issuer,
                network: rng.index(networks.len()) as u8,
                host: rng.range(2, 250) as u8,
                ua: rng.index(BROWSER_UAS.len() + API_UAS.len()) as u8,
                dept: rng.index(DEPARTMENTS.len()) as u8,
                location: rng.index(LOCATIONS.len()) as u8,
                device: format!(
                    "{}-{}",
                    ["LAPTOP", "DESKTOP", "MBP"][u % 3],
                    alnum(&mut rng, 7, b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                ),
                internal_ip: [
                    10,
                    (i % 250) as u8 + 1,
                    rng.below(256) as u8,
                    rng.range(2, 254) as u8,
                ],
                admin: u % 17 == 0,
                name,
            }
        })
        .collect();
    let user_activity = Cdf::zipf(users.len(), 0.8);

    let n_apis = rng.range(1, 2) as usize;
    let apis: Vec<Api> = (0..n_apis)
        .map(|k| Api {
            id: alnum(&mut rng, 10, LOWER_ALNUM),
            stage: ["prod", "v1", "live"][rng.index(3)],
            domain: format!(
                "api{}.{word}{i}.example.com",
                if k == 0 { String::new() } else { k.to_string() }
            ),
        })
        .collect();

    let mut routes: Vec<Route> = Vec::new();
    let n_routes = rng.range(8, 18) as usize;
    let offset = rng.index(ROUTE_POOL.len());
    for k in 0..n_routes {
        let (method, resource, resp, lat) = ROUTE_POOL[(offset + k * 7) % ROUTE_POOL.len()];
        if routes
            .iter()
            .any(|r| r.method == method && r.resource == resource)
        {
            continue;
        }
        routes.push(Route {
            method,
            resource,
            resp_median: resp,
            latency_median: lat,
        });
    }
    let n_ordinary = routes.len();
    let mut admin_routes = Vec::new();
    for &(method, resource, resp, lat) in ADMIN_ROUTES {
        admin_routes.push(routes.len());
        routes.push(Route {
            method,
            resource,
            resp_median: resp,
            latency_median: lat,
        });
    }
    let login_route = routes.len();
    let (method, resource, resp, lat) = LOGIN_ROUTE;
    routes.push(Route {
        method,
        resource,
        resp_median: resp,
        latency_median: lat,
    });
    // Popularity covers only the ordinary routes; admin and login routes are
    // drawn on purpose.
    let route_popularity = Cdf::new((0..routes.len()).map(|k| {
        if k < n_ordinary {
            1.0 / (k + 1) as f64
        } else {
            0.0
        }
    }));

    // Each tenant browses most popular domains, in a slightly shuffled order.
    let mut domains: Vec<u16> = (0..DOMAINS.len() as u16).collect();
    for k in (1..domains.len()).rev() {
        if rng.chance(0.3) {
            let j = rng.index(k + 1);
            domains.swap(k, j);
        }
    }
    let domain_popularity = Cdf::zipf(domains.len(), 1.0);
    let egress = public_prefix(&mut rng);

    Tenant {
        id,
        weight,
        tz_minutes,
        apigw,
        zscaler,
        formats,
        issuers,
        users,
        user_activity,
        networks,
        apis,
        routes,
        route_popularity,
        admin_routes,
        login_route,
        email_domain,
        egress_ip: [egress[0], egress[1], egress[2], rng.range(2, 250) as u8],
        domains,
        domain_popularity,
    }
}

impl Tenant {
    pub(crate) fn user_ua(&self, user: &User) -> &'static str {
        let k = user.ua as usize;
        if k < BROWSER_UAS.len() {
            BROWSER_UAS[k]
        } else {
            API_UAS[k - BROWSER_UAS.len()]
        }
    }

    pub(crate) fn user_ip(&self, user: &User) -> [u8; 4] {
        let p = self.networks[user.network as usize];
        [p[0], p[1], p[2], user.host]
    }
}
