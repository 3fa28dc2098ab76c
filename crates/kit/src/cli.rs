//! The `tmp-kit` command line: `up` (the kit for local work), `prepare` (the running kit made a
//! conformance target), `check` (the conformance suite against a kit it starts), `load`, `soak` and `footprint` (evidence of speed and resilience,
//! docs/performance.md), and `conformance` (the suite's own command line).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::harness::{adapter_approach, spawned_session};
use crate::test_kit::{KitOptions, TestKit};

#[derive(Debug, Parser)]
#[command(name = "tmp-kit", version, about = "The TMP Issuer Kit composed: run it locally, check it, measure it")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs tmp-adapter (embedded SQLite) and mock-tmp wired to each other, for local work.
    Up(crate::up::UpArgs),
    /// Makes the running `tmp-kit up` (or another development adapter) a conformance target:
    /// loads fresh test cards through its processor ingest (damaging one in its database, for the
    /// card-source cases) and writes the profile and secrets `tmp-conformance run` needs.
    Prepare(crate::prepare::PrepareArgs),
    /// Starts mock-tmp and tmp-adapter in this process and runs the conformance suite against
    /// them, with this kit as the suite's harness (restart, activation codes, ops API).
    Check(CheckArgs),
    /// Throughput of a started kit as ratios of its ceilings, and latency at half of peak.
    Load(crate::load::LoadArgs),
    /// The adapter's ingest → delivery beside a running Svix webhook server's message →
    /// delivery: same generator, PostgreSQL server and receiving endpoint, one run.
    CompareSvix(crate::load::peer::CompareArgs),
    /// Processor ingest → delivery through one, then several adapter processes sharing one
    /// PostgreSQL database: peak, latency, order and where the CPU went, per count.
    ScaleOut(crate::load::scale::ScaleArgs),
    /// The real tmp-adapter binary: time to ready, memory idle and under load.
    Footprint(crate::load::footprint::FootprintArgs),
    /// Sustained events under faults and restarts; checks none lost, misordered or doubled.
    Soak(crate::soak::SoakArgs),
    /// The conformance suite's own command line (`tmp-kit conformance run --target …` is
    /// `tmp-conformance run --target …`), for a machine that has only this binary.
    #[command(disable_help_flag = true)]
    Conformance {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    #[command(flatten)]
    Docs(tmp_edge::cli_docs::DocsCommand),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A PostgreSQL server for the adapter (a fresh database is made and dropped); SQLite
    /// otherwise.
    #[arg(long, env = "TMP_KIT_DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub selection: tmp_conformance::cli::Selection,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Conformance { args } => {
            // Before this command line's runtime and logging: the suite's sets up its own.
            return tmp_conformance::cli::main_from(std::iter::once("tmp-conformance".into()).chain(args));
        }
        Command::Docs(docs) => return docs.run(Cli::command()),
        _ => {}
    }
    if !matches!(cli.command, Command::Up(_)) {
        // `up` logs as the adapter is configured to; the rest report on stdout and keep the
        // kit's own log to errors.
        let filter = EnvFilter::try_from_env("RUST_LOG")
            .unwrap_or_else(|_| EnvFilter::new("error,actix_http::h1::dispatcher=off"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => crate::up::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Check(args) => check(args).await,
            Command::Prepare(args) => crate::prepare::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Load(args) => crate::load::run(args).await,
            Command::Footprint(args) => crate::load::footprint::run(args).await,
            Command::CompareSvix(args) => crate::load::peer::run(args).await,
            Command::ScaleOut(args) => crate::load::scale::run(args).await,
            Command::Soak(args) => crate::soak::run(args).await,
            Command::Conformance { .. } | Command::Docs(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tmp-kit: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let approach = args.selection.approach;
    eprintln!(
        "starting mock-tmp and tmp-adapter ({}) …",
        args.database_url.as_deref().map_or("SQLite", |_| "PostgreSQL")
    );
    let kit = Arc::new(
        TestKit::start(&KitOptions {
            database_url: args.database_url.clone(),
            ..KitOptions::new(adapter_approach(approach))
        })
        .await?,
    );
    eprintln!("adapter {} · mock {}", kit.adapter_url, kit.mock_url);
    let result = match spawned_session(&kit, &kit.adapter_url, approach, args.selection.seed).await {
        Ok(session) => tmp_conformance::cli::execute(session, &args.selection).await,
        Err(e) => Err(e),
    };
    kit.stop().await;
    result
}
