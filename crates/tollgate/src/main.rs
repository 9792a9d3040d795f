//! The `tollgate` binary: command-line parsing and the wiring of the library
//! crates. Each subcommand lives in its own module; this file only parses
//! arguments, builds configuration and dispatches.

mod decode_cmd;
mod input;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tollgate_events::{DecodeConfig, Decoder, Format, SubjectKey, TenantRule};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Real-time anomaly detection for API Gateway and Zscaler traffic"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Decode records (NDJSON, a JSON array, or gzip of either) into normalized events on stdout.
    Decode {
        #[command(flatten)]
        decode: DecodeArgs,
        /// Input files; `-` or none for stdin.
        inputs: Vec<String>,
    },
}

/// How records are decoded; shared by the commands that read records.
#[derive(Args)]
struct DecodeArgs {
    /// Record format.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    format: Format,
    /// Every record belongs to this tenant.
    #[arg(long, conflicts_with = "tenant_pointer")]
    tenant: Option<String>,
    /// JSON pointer to the tenant inside each record (e.g. /authorizer/claims/custom:tenant_id).
    #[arg(long)]
    tenant_pointer: Option<String>,
    /// Map a normalized field to a JSON pointer, e.g. --field principal=/detail/userName (repeatable).
    #[arg(long = "field", value_name = "NAME=POINTER")]
    fields: Vec<String>,
    /// Time zone of naive Zscaler/ZPA times (the NSS feed's zone).
    #[arg(long, default_value = "UTC")]
    feed_time_zone: String,
    /// Largest record accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_record_bytes: usize,
    /// Largest inflated gzip payload, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_decompressed_bytes: usize,
    /// Key for token-subject hashes, 64 hex characters.
    #[arg(long, env = "TOLLGATE_SUBJECT_KEY", hide_env_values = true)]
    subject_key: Option<String>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Without `--tenant` or `--tenant-pointer`: the common tenant fields, then `default`.
fn default_tenant_rule() -> TenantRule {
    let p = |s: &str| TenantRule::Pointer {
        pointer: s.to_owned(),
    };
    TenantRule::FirstOf {
        rules: vec![
            p("/tenant"),
            p("/authorizer/claims/custom:tenant_id"),
            p("/custom:tenant_id"),
            p("/company"),
            p("/Customer"),
            TenantRule::Static {
                tenant: "default".parse().expect("valid"),
            },
        ],
    }
}

impl DecodeArgs {
    fn decoder(&self) -> anyhow::Result<Decoder> {
        let tenant = match (&self.tenant, &self.tenant_pointer) {
            (Some(t), _) => TenantRule::Static {
                tenant: t
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--tenant {t:?}: {e}"))?,
            },
            (None, Some(p)) => TenantRule::Pointer { pointer: p.clone() },
            (None, None) => default_tenant_rule(),
        };
        let mut cfg = DecodeConfig::new(self.format, tenant);
        cfg.feed_time_zone = self.feed_time_zone.clone();
        cfg.limits.max_record_bytes = self.max_record_bytes;
        cfg.limits.max_decompressed_bytes = self.max_decompressed_bytes;
        let mut fields = BTreeMap::new();
        for f in &self.fields {
            let (k, v) = f
                .split_once('=')
                .with_context(|| format!("--field {f:?}: expected NAME=POINTER"))?;
            fields.insert(k.to_owned(), v.to_owned());
        }
        cfg.fields = fields;
        if let Some(k) = &self.subject_key {
            cfg.subject_key = SubjectKey::from_hex(k).map_err(anyhow::Error::msg)?;
        }
        Decoder::new(&cfg).map_err(|e| anyhow::anyhow!("invalid decode configuration: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Decode { decode, inputs } => decode
            .decoder()
            .and_then(|d| decode_cmd::run(d, decode_cmd::Options { inputs })),
    };
    match res {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
