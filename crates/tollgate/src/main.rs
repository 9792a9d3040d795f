//! The `tollgate` binary: command-line parsing and the wiring of the library
//! crates. Each subcommand lives in its own module; this file only parses
//! arguments, builds configuration and dispatches.

mod decode_cmd;
mod demo;
mod eval;
mod events_in;
mod replay;
mod run_cmd;

use std::path::PathBuf;
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
    /// Run Tollgate on an embedded Kafka: simulated multi-tenant traffic through decode → detect, alerts as they fire, then a scorecard.
    Demo {
        /// Events to generate.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Seed of the traffic generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 10)]
        tenants: usize,
        /// Days of event time (the first is warm-up).
        #[arg(long, default_value_t = 2)]
        days: u64,
        /// Partitions of the demo topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Keep consuming after the generated traffic, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Address of the metrics and health endpoint.
        #[arg(long, default_value = "127.0.0.1:9464")]
        admin_addr: std::net::SocketAddr,
    },
    /// Run the service: the inputs, pipeline and outputs of a configuration file, until SIGTERM/SIGINT.
    Run {
        /// The configuration (TOML); `TOLLGATE_SECTION__KEY` environment variables override it.
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Check a configuration file (and the environment's overrides) without starting anything.
    CheckConfig { config: std::path::PathBuf },
    /// Decode records (NDJSON, a JSON array, or gzip of either) into normalized events on stdout.
    Decode {
        #[command(flatten)]
        decode: DecodeArgs,
        /// Input files; `-` or none for stdin.
        inputs: Vec<String>,
    },
    /// Replay recorded logs through decode → detect in event-time order; alerts as NDJSON.
    Replay {
        /// TOML file with `[decode]` (an input's decode settings) and `[detect]` (engine tuning).
        #[arg(long)]
        config: Option<String>,
        #[command(flatten)]
        decode: DecodeArgs,
        /// Where alerts go (NDJSON); default stdout.
        #[arg(long)]
        alerts_out: Option<String>,
        /// Load and save tenant models in this directory (default: in memory only).
        #[arg(long)]
        model_dir: Option<String>,
        /// Events buffered per input to restore event-time order.
        #[arg(long, default_value_t = 100_000)]
        reorder_window: usize,
        /// Input files (NDJSON, plain or gzip); `-` for stdin.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Evaluate detection quality.
    Eval {
        #[command(subcommand)]
        what: EvalCmd,
    },
}

#[derive(Subcommand)]
enum EvalCmd {
    /// The labelled scenario suite: recall, delay, false alerts, AUROC/AUPRC per seed.
    Scenarios {
        #[command(flatten)]
        args: ScenarioArgs,
        /// List missed incidents and false alerts by detector, with examples.
        #[arg(long)]
        explain: bool,
        /// Write an HTML report to DIR/scenarios.html (plots of the first seed).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// NAB: the 58 series through the volume detector, scored with NAB's rules beside the published scoreboard.
    Nab {
        /// The NAB folder (data/, labels/, config/).
        #[arg(long, default_value = "../shared/data/nab")]
        data: PathBuf,
        /// Only series whose name contains this (repeatable; default all).
        #[arg(long = "series")]
        series: Vec<String>,
        /// Write DIR/<category>/<file>.csv (timestamp,value,anomaly_score) per series.
        #[arg(long, value_name = "DIR")]
        results_out: Option<PathBuf>,
        /// Write an HTML report to DIR/nab.html.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Exit 1 if the standard-profile bar is missed.
        #[arg(long)]
        check: bool,
    },
    /// ODDS http/smtp/shuttle streamed through the numeric model: AUROC/AUPRC beside published figures.
    Odds {
        /// The folder holding <set>.csv.
        #[arg(long, default_value = "../shared/data/odds")]
        data: PathBuf,
        /// Data sets to run (repeatable).
        #[arg(long = "set", default_values_t = ["http".to_string(), "smtp".into(), "shuttle".into()])]
        sets: Vec<String>,
        /// Only the first N rows of each set (for smoke tests).
        #[arg(long)]
        max_rows: Option<usize>,
        /// Write DIR/<set>.csv (score,label) per set.
        #[arg(long, value_name = "DIR")]
        results_out: Option<PathBuf>,
        /// Write an HTML report to DIR/odds.html.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Exit 1 if an AUROC bar is missed.
        #[arg(long)]
        check: bool,
    },
    /// NAB, ODDS and the scenario suite in one run, with one report (DIR/index.html).
    All {
        #[arg(long, default_value = "../shared/data/nab")]
        nab_data: PathBuf,
        #[arg(long, default_value = "../shared/data/odds")]
        odds_data: PathBuf,
        #[command(flatten)]
        args: ScenarioArgs,
        /// Where the report goes.
        #[arg(long, value_name = "DIR")]
        report: PathBuf,
    },
}

/// The scenario suite's settings.
#[derive(Args)]
struct ScenarioArgs {
    /// Seeds to run (repeatable).
    #[arg(long = "seed", default_values_t = [1u64, 2])]
    seeds: Vec<u64>,
    /// Benign events per seed.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Days of event time.
    #[arg(long, default_value_t = 7)]
    days: u64,
    /// Incidents injected per scenario.
    #[arg(long, default_value_t = 4)]
    incidents: usize,
    /// TOML file with a `[detect]` table.
    #[arg(long)]
    config: Option<String>,
    /// Exit 1 if a bar is missed.
    #[arg(long)]
    check: bool,
}

impl ScenarioArgs {
    fn options(self, explain: bool, report: Option<PathBuf>) -> anyhow::Result<eval::Options> {
        let detect = match &self.config {
            Some(p) => replay::ReplayConfig::load(p)?.detect,
            None => tollgate_detect::DetectConfig::default(),
        };
        Ok(eval::Options {
            seeds: self.seeds,
            events: self.events,
            tenants: self.tenants,
            days: self.days,
            incidents_per_scenario: self.incidents,
            detect,
            check: self.check,
            explain,
            report,
        })
    }
}

/// How records are decoded; shared by the commands that read records.
#[derive(Args)]
struct DecodeArgs {
    /// Record format [default: auto].
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
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

impl DecodeArgs {
    /// The decoder: `base` (from a config file) if given, overridden by flags.
    fn decoder(&self, base: Option<DecodeConfig>) -> anyhow::Result<Decoder> {
        let tenant = match (&self.tenant, &self.tenant_pointer) {
            (Some(t), _) => Some(TenantRule::Static {
                tenant: t
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--tenant {t:?}: {e}"))?,
            }),
            (None, Some(p)) => Some(TenantRule::Pointer { pointer: p.clone() }),
            (None, None) => None,
        };
        let from_file = base.is_some();
        let mut cfg =
            base.unwrap_or_else(|| DecodeConfig::new(Format::Auto, TenantRule::common_fields()));
        if let Some(t) = tenant {
            cfg.tenant = t;
        }
        if let Some(f) = self.format {
            cfg.format = f;
        }
        if !from_file {
            cfg.feed_time_zone = self.feed_time_zone.clone();
            cfg.limits.max_record_bytes = self.max_record_bytes;
            cfg.limits.max_decompressed_bytes = self.max_decompressed_bytes;
        }
        for f in &self.fields {
            let (k, v) = f
                .split_once('=')
                .with_context(|| format!("--field {f:?}: expected NAME=POINTER"))?;
            cfg.fields.insert(k.to_owned(), v.to_owned());
        }
        if let Some(k) = &self.subject_key {
            cfg.subject_key = SubjectKey::from_hex(k).map_err(anyhow::Error::msg)?;
        }
        Decoder::new(&cfg).map_err(|e| anyhow::anyhow!("invalid decode configuration: {e}"))
    }
}

fn run_eval(what: EvalCmd) -> anyhow::Result<i32> {
    match what {
        EvalCmd::Scenarios {
            args,
            explain,
            report,
        } => eval::run(args.options(explain, report)?),
        EvalCmd::Nab {
            data,
            series,
            results_out,
            report,
            check,
        } => eval::run_nab(&eval::NabOptions {
            data,
            series,
            results_out,
            report,
            check,
        })
        .map(|r| r.0),
        EvalCmd::Odds {
            data,
            sets,
            max_rows,
            results_out,
            report,
            check,
        } => eval::run_odds(&eval::OddsOptions {
            data,
            sets,
            max_rows,
            results_out,
            report,
            check,
        })
        .map(|r| r.0),
        EvalCmd::All {
            nab_data,
            odds_data,
            args,
            report,
        } => {
            let check = args.check;
            let (a, nab) = eval::run_nab(&eval::NabOptions {
                data: nab_data,
                series: vec![],
                results_out: None,
                report: None,
                check,
            })?;
            println!();
            let (b, odds) = eval::run_odds(&eval::OddsOptions {
                data: odds_data,
                sets: vec!["http".into(), "smtp".into(), "shuttle".into()],
                max_rows: None,
                results_out: None,
                report: None,
                check,
            })?;
            println!();
            let opts = args.options(false, Some(report.clone()))?;
            let (c, scen) = eval::run_scenarios(&opts)?;
            eval::write_report(&report, "index", &[nab, odds, scen])?;
            Ok(a.max(b).max(c))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Demo {
            events,
            seed,
            tenants,
            days,
            partitions,
            keep_running,
            admin_addr,
        } => demo::run(demo::Options {
            events,
            seed,
            tenants,
            days,
            partitions,
            keep_running,
            admin_addr,
        }),
        Cmd::Run { config } => run_cmd::run(&config),
        Cmd::CheckConfig { config } => run_cmd::check(&config),
        Cmd::Decode { decode, inputs } => decode
            .decoder(None)
            .and_then(|d| decode_cmd::run(d, decode_cmd::Options { inputs })),
        Cmd::Replay {
            config,
            decode,
            alerts_out,
            model_dir,
            reorder_window,
            inputs,
        } => (|| {
            let cfg = match &config {
                Some(p) => replay::ReplayConfig::load(p)?,
                None => replay::ReplayConfig::default(),
            };
            let dec = decode.decoder(cfg.decode)?;
            replay::run(
                dec,
                replay::Options {
                    inputs,
                    alerts_out,
                    model_dir,
                    reorder_window,
                    detect: cfg.detect,
                },
            )
        })(),
        Cmd::Eval { what } => run_eval(what),
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
