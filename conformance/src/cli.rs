//! The `tmp-conformance` command line: `run`, `list`, and the two helpers a failure's
//! reproduction calls, `encrypt` and `sign`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::case::{Approach, Case};
use crate::client::{Client, Secrets, Signing};
use crate::mock_api::MockApi;
use crate::payload::PayloadSpec;
use crate::profile::Profile;
use crate::runner::Capabilities;
use crate::session::Session;

#[derive(Debug, Parser)]
#[command(name = "tmp-conformance", version, about = "The TMP Issuer API contract as an executable suite")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the cases against a target.
    Run(RunArgs),
    /// Prints the catalogue: id, area, approaches, needs, title.
    List {
        /// Only the cases whose id matches (`*` wildcards, comma-separated).
        #[arg(long = "case")]
        pattern: Option<String>,
        /// The whole catalogue as the Markdown table of docs/conformance.md.
        #[arg(long, conflicts_with = "pattern")]
        markdown: bool,
    },
    /// Prints a compact JWE of a profile payload for the target's published key
    /// (what a reproduction puts in `encryptedPayload`).
    Encrypt {
        #[arg(long)]
        target: String,
        #[arg(long)]
        profile: PathBuf,
        /// e.g. `card=active`, `card=active;cvc=wrong`, `otp=482913`, `card=active;key=tampered`.
        #[arg(long)]
        payload: String,
    },
    /// A local proxy in front of the target that encrypts every `encryptedPayload` to the
    /// target's key (a profile card, a test code) and signs every POST, so a schema-driven
    /// fuzzer (schemathesis) reaches the target's validation (docs/conformance.md).
    SignProxy {
        #[arg(long)]
        target: String,
        #[arg(long)]
        profile: PathBuf,
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8181")]
        listen: std::net::SocketAddr,
    },
    /// Prints Standard-Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
    /// for a body, one per line, for `curl -H @file`.
    Sign {
        /// The environment variable holding the `whsec_…` secret.
        #[arg(long, default_value = crate::profile::DEFAULT_SECRET_ENV)]
        secret_env: String,
        #[arg(long)]
        body: String,
        /// Sign with a random secret instead (an invalid signature).
        #[arg(long)]
        wrong_secret: bool,
        /// Move the timestamp by this many seconds (e.g. -600: stale).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        skew: i64,
        /// Replace the signature with something that is not one.
        #[arg(long)]
        malformed: bool,
        /// Use this `webhook-id` (a replay when it was used before).
        #[arg(long)]
        id: Option<String>,
        /// Put an entry by another secret and one of another version before the valid one.
        #[arg(long)]
        several_entries: bool,
    },
    #[command(flatten)]
    Docs(tmp_edge::cli_docs::DocsCommand),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The Issuer API's base URL.
    #[arg(long)]
    pub target: String,
    /// The target's test cards and settings (docs/conformance.md).
    #[arg(long)]
    pub profile: PathBuf,
    /// The mock-tmp the target forwards to; enables the forwarding and journey cases
    /// (with the processor secret in the variable the profile names).
    #[arg(long)]
    pub mock: Option<String>,
    /// How long a forwarding case waits for a delivery through the failures it injects. By
    /// default the profile's `forwarding.retry_schedule_ms` gives it (the cases that inject
    /// failures are skipped when the profile declares no schedule).
    #[arg(long, value_name = "SECONDS")]
    pub delivery_within: Option<u64>,
    #[command(flatten)]
    pub selection: Selection,
}

/// Which cases to run, in what order, and where to write the reports.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    #[arg(long, value_enum, default_value_t = Approach::External)]
    pub approach: Approach,
    /// Only the cases whose id matches (`*` wildcards, comma-separated), e.g. `ISS-VERIFY-*`.
    #[arg(long = "case")]
    pub pattern: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report here (scores per contract section, each failure with
    /// its rules, the answer and the reproduction).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Shuffle the case order with this seed (0: the catalogue's order). The seed is printed,
    /// so an order that fails can be run again.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// The command line from `args` (the first is the program's name): `tmp-kit conformance …`
/// runs the same.
pub fn main_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("error,actix_http::h1::dispatcher=off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tmp-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Docs(docs) => Ok(docs.run(Cli::command())),
        Command::List { pattern, markdown } => {
            if markdown {
                print!("{}", crate::catalogue::markdown());
                return Ok(ExitCode::SUCCESS);
            }
            list(pattern.as_deref());
            Ok(ExitCode::SUCCESS)
        }
        Command::Encrypt { target, profile, payload } => {
            let profile = Profile::load(&profile)?;
            let spec: PayloadSpec = payload.parse()?;
            let client = Client::new(profile, &target, Secrets::default())?;
            let keys = client.keys(false).await?;
            println!("{}", spec.encrypt(&client.profile, &keys)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::SignProxy { target, profile, listen } => {
            let profile = Profile::load(&profile)?;
            let secrets = Secrets { tmp: Some(profile.secret()?), processor: profile.processor_secret(), issuer: None };
            let client = Client::new(profile, &target, secrets)?;
            crate::sign_proxy::run(client, &target, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign { secret_env, body, wrong_secret, skew, malformed, id, several_entries } => {
            let value = std::env::var(&secret_env).with_context(|| format!("set {secret_env}"))?;
            let secret = tmp_protocol::webhook::WebhookSecret::parse(&value)
                .map_err(|e| anyhow::anyhow!("{secret_env}: {e}"))?;
            let signing = match (wrong_secret, skew, malformed, id) {
                _ if several_entries => Signing::SeveralEntries,
                (true, _, _, _) => Signing::WrongSecret,
                (_, _, true, _) => Signing::MalformedHeader,
                (_, _, _, Some(id)) => Signing::WithId(id),
                (_, s, _, _) if s < 0 => Signing::Stale,
                (_, s, _, _) if s > 0 => Signing::Future,
                _ => Signing::Valid,
            };
            if let Some((_, pairs)) = crate::client::signature_headers(&signing, &secret, body.as_bytes())? {
                for (name, value) in pairs {
                    println!("{name}: {value}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(pattern: Option<&str>) {
    let cases: Vec<Case> =
        crate::catalogue::all().into_iter().filter(|c| crate::catalogue::matches(pattern, c.id)).collect();
    println!("{:<16} {:<14} {:<18} {:<22} title", "id", "area", "approaches", "needs");
    for case in &cases {
        let approaches: Vec<_> = case.approaches.iter().map(|a| a.as_str()).collect();
        let needs = case.needs.as_str();
        println!(
            "{:<16} {:<14} {:<18} {:<22} {}",
            case.id,
            case.area.as_str(),
            approaches.join(","),
            needs,
            case.title
        );
    }
    println!("{} cases", cases.len());
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let profile = Profile::load(&args.profile)?;
    let secrets = Secrets {
        tmp: Some(profile.secret()?),
        processor: profile.processor_secret(),
        issuer: profile.issuer_secret(),
    };
    let client = Client::new(profile, &args.target, secrets)?;
    let mut session = Session::new(client, &args.target, args.selection.approach, args.selection.seed);
    session.profile_path = Some(args.profile.display().to_string());
    session.delivery_within_override = args.delivery_within.map(std::time::Duration::from_secs);
    if let Some(mock) = &args.mock {
        session.mock = Some(MockApi::new(mock)?);
    }
    execute(session, &args.selection).await
}

/// Runs the selected cases in `session`, prints the summary and writes the reports: the one
/// path of every run, whoever built the session (`run --target`, or `tmp-kit check` with its
/// harness).
pub async fn execute(session: Session, selection: &Selection) -> anyhow::Result<ExitCode> {
    let mut cases = crate::catalogue::select(selection.approach, selection.pattern.as_deref());
    anyhow::ensure!(
        !cases.is_empty(),
        "no case matches {:?} for approach {}",
        selection.pattern,
        selection.approach.as_str()
    );
    let scope = crate::runner::Scope {
        catalogue: crate::catalogue::all().len(),
        for_approach: crate::catalogue::select(selection.approach, None).len(),
        selected: cases.len(),
    };
    shuffle(&mut cases, selection.seed);
    let caps = Capabilities {
        mock: session.mock.is_some() && session.client.has_processor_secret(),
        harness: session.harness.as_ref().map(|h| h.capabilities().to_vec()).unwrap_or_default(),
    };
    let mut result = crate::runner::run(Arc::new(session), cases, &caps, &mut std::io::stdout()).await;
    result.scope = scope;
    crate::report::summary(&result, &mut std::io::stdout())?;
    if let Some(path) = &selection.junit {
        std::fs::write(path, crate::report::junit::render(&result))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &selection.json {
        std::fs::write(path, crate::report::json::render(&result))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &selection.html {
        std::fs::write(path, crate::report::html::render(&result))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if result.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A seeded Fisher–Yates shuffle (seed 0 keeps the order). xorshift64*: enough to vary an order.
fn shuffle(cases: &mut [Case], seed: u64) {
    if seed == 0 {
        return;
    }
    let mut state = seed;
    for i in (1..cases.len()).rev() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let j = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize;
        cases.swap(i, j);
    }
}
