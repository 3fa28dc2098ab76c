//! The `tmp-conformance` command line: `run`, `list`, and the two helpers a failure's
//! reproduction calls, `encrypt` and `sign`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::case::{Approach, Case};
use crate::client::{Client, Secrets, Signing};
use crate::mock_api::MockApi;
use crate::payload::PayloadSpec;
use crate::profile::Profile;
use crate::runner::Capabilities;
use crate::session::Session;
use crate::spawn::{Kit, SpawnOptions};

#[derive(Debug, Parser)]
#[command(name = "tmp-conformance", version, about = "The TMP Issuer API contract as an executable suite")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the cases against a target (or against a kit it starts itself with --spawn).
    Run(RunArgs),
    /// Throughput of a spawned kit as ratios of its ceilings, and latency at half of peak.
    Load(crate::load::LoadArgs),
    /// The real tmp-adapter binary: time to ready, memory idle and under load.
    Footprint(crate::load::footprint::FootprintArgs),
    /// Sustained events under faults and restarts; checks none lost, misordered or doubled.
    Soak(crate::soak::SoakArgs),
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
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The Issuer API's base URL (not with --spawn).
    #[arg(long, required_unless_present = "spawn", conflicts_with = "spawn")]
    pub target: Option<String>,
    #[arg(long, value_enum, default_value_t = Approach::External)]
    pub approach: Approach,
    /// The target's test cards and settings (docs/conformance.md; not with --spawn).
    #[arg(long, required_unless_present = "spawn", conflicts_with = "spawn")]
    pub profile: Option<PathBuf>,
    /// The mock-tmp the target forwards to; enables the forwarding and journey cases
    /// (with the processor secret in the variable the profile names).
    #[arg(long, conflicts_with = "spawn")]
    pub mock: Option<String>,
    /// Start mock-tmp and tmp-adapter in this process and check them.
    #[arg(long)]
    pub spawn: bool,
    /// With --spawn: a PostgreSQL server (a fresh database is made and dropped); SQLite otherwise.
    #[arg(long, requires = "spawn", env = "TMP_CONFORMANCE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Only the cases whose id matches (`*` wildcards, comma-separated), e.g. `ISS-VERIFY-*`.
    #[arg(long = "case")]
    pub pattern: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Shuffle the case order with this seed (0: the catalogue's order). The seed is printed,
    /// so an order that fails can be run again.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Load(args) => crate::load::run(args).await,
        Command::Footprint(args) => crate::load::footprint::run(args).await,
        Command::Soak(args) => crate::soak::run(args).await,
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
        Command::Sign { secret_env, body, wrong_secret, skew, malformed, id } => {
            let value = std::env::var(&secret_env).with_context(|| format!("set {secret_env}"))?;
            let secret = tmp_protocol::webhook::WebhookSecret::parse(&value)
                .map_err(|e| anyhow::anyhow!("{secret_env}: {e}"))?;
            let signing = match (wrong_secret, skew, malformed, id) {
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
    println!("{:<16} {:<14} {:<18} {:<10} title", "id", "area", "approaches", "needs");
    for case in &cases {
        let approaches: Vec<_> = case.approaches.iter().map(|a| a.as_str()).collect();
        let needs = match case.needs {
            crate::case::Needs::IssuerApi => "issuer-api",
            crate::case::Needs::Mock => "mock",
            crate::case::Needs::Spawn => "spawn",
        };
        println!(
            "{:<16} {:<14} {:<18} {:<10} {}",
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
    let mut cases = crate::catalogue::select(args.approach, args.pattern.as_deref());
    anyhow::ensure!(!cases.is_empty(), "no case matches {:?} for approach {}", args.pattern, args.approach.as_str());
    shuffle(&mut cases, args.seed);

    let (session, kit) = if args.spawn {
        eprintln!(
            "starting mock-tmp and tmp-adapter ({}) …",
            args.database_url.as_deref().map_or("SQLite", |_| "PostgreSQL")
        );
        let kit = Arc::new(
            Kit::start(&SpawnOptions {
                approach: args.approach,
                database_url: args.database_url.clone(),
                mock_journal_capacity: None,
            })
            .await?,
        );
        let session = spawned_session(&kit, &kit.adapter_url, args.approach, args.seed).await?;
        eprintln!("adapter {} · mock {}", kit.adapter_url, kit.mock_url);
        (session, Some(kit))
    } else {
        let target = args.target.clone().expect("clap requires --target without --spawn");
        let path = args.profile.clone().expect("clap requires --profile without --spawn");
        let profile = Profile::load(&path)?;
        let secrets = Secrets {
            tmp: Some(profile.secret()?),
            processor: profile.processor_secret(),
            issuer: std::env::var(crate::report::repro::ISSUER_SECRET_ENV)
                .ok()
                .and_then(|v| tmp_protocol::webhook::WebhookSecret::parse(&v).ok()),
        };
        let client = Client::new(profile, &target, secrets)?;
        let mut session = Session::new(client, &target, args.approach, args.seed);
        session.profile_path = Some(path.display().to_string());
        if let Some(mock) = &args.mock {
            session.mock = Some(MockApi::new(mock)?);
        }
        (session, None)
    };
    let caps =
        Capabilities { mock: session.mock.is_some() && session.client.has_processor_secret(), spawn: kit.is_some() };
    let session = Arc::new(session);
    let result = crate::runner::run(session, cases, &caps, &mut std::io::stdout()).await;
    if let Some(kit) = kit {
        kit.stop().await;
    }
    crate::report::summary(&result, &mut std::io::stdout())?;
    if let Some(path) = &args.junit {
        std::fs::write(path, crate::report::junit::render(&result))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, crate::report::json::render(&result))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if result.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A session against a spawned kit: its profile and secrets, its mock, its fixture cards
/// loaded. `target` is the kit's adapter, or something in front of it (tests put a broken
/// proxy there).
pub async fn spawned_session(kit: &Arc<Kit>, target: &str, approach: Approach, seed: u64) -> anyhow::Result<Session> {
    let client = Client::new(kit.profile.clone(), target, kit.secrets.clone())?;
    // The fixtures go to the adapter itself, whatever stands in front of it.
    let mut session = Session::new(client, &kit.adapter_url, approach, seed);
    session.mock = Some(MockApi::new(&kit.mock_url)?);
    session.kit = Some(kit.clone());
    load_fixtures(&session).await.context("loading the fixture cards into the spawned kit")?;
    session.target = target.trim_end_matches('/').to_owned();
    Ok(session)
}

/// Puts the spawned kit's fixture cards in through processor ingest, and (datacore) waits
/// until DataCore holds them in their states.
async fn load_fixtures(session: &Session) -> anyhow::Result<()> {
    let run = session.id("run");
    for (name, event) in crate::spawn::fixture_events(&run) {
        let mut call = crate::catalogue::ingest_call(session, event);
        if call.body_mentions_payload() {
            call = call.payload(PayloadSpec::card_data(&name));
        }
        let answer = session.client.send(call).await?;
        anyhow::ensure!(answer.status == 202, "fixture {name}: HTTP {} {}", answer.status, answer.text());
    }
    if session.approach == Approach::Datacore {
        let mock = session.mock.as_ref().expect("spawned");
        for (name, status) in
            [("active", "ACTIVE"), ("blocked", "BLOCKED"), ("closed", "CLOSED"), ("expired", "ACTIVE")]
        {
            let card_id = format!("card-{name}");
            let mut ready = false;
            for _ in 0..200 {
                // A closed card leaves DataCore (DELETE): gone is its final state.
                let card = mock.card(&card_id).await?;
                ready = match (&card, status) {
                    (None, "CLOSED") => true,
                    (Some(card), _) => card["status"] == status,
                    _ => false,
                };
                if ready {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            anyhow::ensure!(ready, "the fixture card {card_id} did not reach DataCore as {status}");
        }
    }
    Ok(())
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
