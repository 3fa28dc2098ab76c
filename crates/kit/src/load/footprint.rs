//! `tmp-kit footprint`: the real `tmp-adapter` binary as a child process — time from
//! process start to `/readyz` 200, resident memory idle and under load (`/proc/<pid>/status`).
//! It runs with the repository's `local` configuration (development keys generated in a
//! temporary directory) and the development secret that configuration accepts.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tmp_edge::client::{ClientOptions, HttpClient, Request};

use crate::test_kit::ScratchDatabase;

use tmp_conformance::case::Approach;
use tmp_conformance::client::{Client, Secrets};
use tmp_conformance::profile::Profile;
use tmp_conformance::session::Session;

#[derive(Debug, clap::Args)]
pub struct FootprintArgs {
    /// The `tmp-adapter` binary (default: beside this one).
    #[arg(long)]
    pub adapter_bin: Option<PathBuf>,
    /// The adapter's configuration directory (base.yaml, local.yaml).
    #[arg(long, default_value = "config")]
    pub config_dir: PathBuf,
    /// A PostgreSQL server (a fresh database is made and dropped); SQLite otherwise.
    #[arg(long, env = "TMP_KIT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Token events per second for the loaded figure.
    #[arg(long, default_value_t = 1000.0, value_parser = super::rate)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

pub async fn run(args: FootprintArgs) -> anyhow::Result<std::process::ExitCode> {
    tmp_edge::tls::install_crypto_provider();
    let (bin, config_dir) = adapter_paths(args.adapter_bin.as_ref(), &args.config_dir)?;
    let dir = tempfile::Builder::new().prefix("tmp-footprint-").tempdir()?;
    let scratch = match &args.database_url {
        Some(admin_url) => Some(ScratchDatabase::create(admin_url, "tmp_footprint").await?),
        None => None,
    };
    let database_url = match &scratch {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", dir.path().join("adapter.db").display()),
    };
    let database = if scratch.is_some() { "PostgreSQL" } else { "SQLite" };
    let result = measure(&bin, &config_dir, dir.path(), &database_url, &args, database).await;
    if let Some(scratch) = scratch {
        scratch.drop_now().await;
    }
    result?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The `tmp-adapter` binary (`bin`, or the one beside this program) and the configuration
/// directory, made absolute.
pub(super) fn adapter_paths(bin: Option<&PathBuf>, config_dir: &PathBuf) -> anyhow::Result<(PathBuf, PathBuf)> {
    let bin = match bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("tmp-adapter"),
    };
    anyhow::ensure!(bin.exists(), "{} not found (cargo build --release -p tmp-adapter)", bin.display());
    // The processes start in a directory of their own: a relative path would name nothing there.
    let bin = std::fs::canonicalize(&bin)?;
    let config_dir = std::fs::canonicalize(config_dir)
        .with_context(|| format!("the configuration directory {}", config_dir.display()))?;
    Ok((bin, config_dir))
}

/// A running `tmp-adapter` process (killed when dropped).
pub(super) struct Child {
    pub(super) process: tokio::process::Child,
    pub(super) pid: String,
    pub(super) url: String,
    ready_after: Duration,
}

/// Starts `bin` in `dir` with the `local` configuration of `config_dir` on `database_url`, the
/// settings `env` adds (`TMP_ADAPTER__…` pairs) on top; returns once `/readyz` answers 200.
/// Processes started in one `dir` share the development keys the first one generated there.
pub(super) async fn start(
    bin: &PathBuf,
    config_dir: &PathBuf,
    dir: &std::path::Path,
    database_url: &str,
    env: &[(&str, String)],
) -> anyhow::Result<Child> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let started = Instant::now();
    let process = tokio::process::Command::new(bin)
        .current_dir(dir)
        .env("TMP_ADAPTER_CONFIG_DIR", config_dir)
        .env("TMP_ADAPTER_ENV", "local")
        .env("TMP_ADAPTER__SERVER__HOST", "127.0.0.1")
        .env("TMP_ADAPTER__SERVER__PORT", port.to_string())
        .env("TMP_ADAPTER__DATABASE__URL", database_url)
        .env("TMP_ADAPTER__LOG__LEVEL", "warn")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = process.id().context("the child has a pid")?.to_string();
    let url = format!("http://127.0.0.1:{port}");
    let http = HttpClient::plain(ClientOptions::with_timeout(Duration::from_secs(2)))?;
    let ready_url = format!("{url}/readyz");
    loop {
        if let Ok(answer) = http.send(Request::get(ready_url.clone())).await
            && answer.is_success()
        {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "the adapter was not ready within 120 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Child { process, pid, url, ready_after: started.elapsed() })
}

async fn measure(
    bin: &PathBuf,
    config_dir: &PathBuf,
    dir: &std::path::Path,
    database_url: &str,
    args: &FootprintArgs,
    database: &str,
) -> anyhow::Result<()> {
    // The first start generates the development keys and creates the schema.
    let mut first = start(bin, config_dir, dir, database_url, &[]).await?;
    first.process.kill().await?;
    let mut child = start(bin, config_dir, dir, database_url, &[]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = super::rss_mb(&child.pid)?;

    let session = Arc::new(dev_session(&child.url)?);
    let send = super::request_sender(&session, super::Scenario::TokenEvents).await?;
    let rss = super::RssPeak::start(vec![child.pid.clone()]);
    let stats = super::open_loop::run(args.rate, Duration::from_secs(args.duration), send).await;
    let peak = rss.stop().await;
    let _ = child.process.kill().await;

    println!("# tmp-kit footprint · {database} · {}", bin.display());
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| time to ready, first start (key generation, schema) | {:.0} ms |",
        first.ready_after.as_secs_f64() * 1e3
    );
    println!("| time to ready, restart | {:.0} ms |", child.ready_after.as_secs_f64() * 1e3);
    println!("| RSS idle (2 s after ready) | {idle:.1} MB |");
    println!(
        "| peak RSS during {} s of token events at {:.0}/s (achieved {:.0}/s, {} errors) | {peak:.1} MB |",
        args.duration, args.rate, stats.achieved_rate, stats.errors
    );
    Ok(())
}

/// A conformance session against a spawned adapter of the `local` configuration: TMP's and the
/// processor's requests signed with the development secret it accepts
/// ([`tmp_adapter::config::DEVELOPMENT_HMAC_SECRETS`], refused in production).
pub(super) fn dev_session(url: &str) -> anyhow::Result<Session> {
    let secret = tmp_protocol::webhook::WebhookSecret::parse(tmp_adapter::config::DEVELOPMENT_HMAC_SECRETS[0])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let profile = Profile {
        secret_env: tmp_conformance::profile::DEFAULT_SECRET_ENV.into(),
        processor_secret_env: tmp_conformance::profile::DEFAULT_PROCESSOR_SECRET_ENV.into(),
        issuer_secret_env: tmp_conformance::profile::DEFAULT_ISSUER_SECRET_ENV.into(),
        deadline_ms: 2000,
        latency_requests: 0,
        cvc_max_attempts: 3,
        cvc_lockout_window_secs: None,
        body_limit_bytes: 65536,
        policy: Default::default(),
        forwarding: Default::default(),
        token_event_card_id: None,
        tls: None,
        cards: Default::default(),
    };
    let secrets = Secrets { tmp: Some(secret.clone()), processor: Some(secret), ..Secrets::default() };
    let client = Client::new(profile, url, secrets)?;
    Ok(Session::new(client, url, Approach::External, 0))
}
