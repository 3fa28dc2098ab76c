//! `tmp-kit scale-out`: processor ingest → delivery through one, then several `tmp-adapter`
//! processes sharing one PostgreSQL database — how far replicas take it on this machine and
//! what stops them (docs/performance.md, "Scale-out").
//!
//! Each process count gets a fresh database and its own processes: the real binary, the
//! `local` configuration with its shipped relay settings, forwarding to "TMP's API" at a
//! receiver in this process that answers 200 at once. The generator sends each card's events
//! to one process (`card % processes`, as a load balancer with per-card affinity would — the
//! order of a card's events is then the order they are sent in); every process's relay
//! delivers any card's rows from the shared outbox. Per count: the peak (as `load`'s search,
//! counted at the receiver), latency at half of it, messages lost and misordered, and where the
//! machine's CPU went at half of peak — per delivered event, the figure the scale model uses —
//! and the most memory one adapter process held, peak search included. It fails (exit 1) when a
//! message at half of peak was refused, lost or delivered out of its card's order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cpu::{CpuSample, CpuUse};
use super::footprint::{self, Child};
use super::open_loop::RunStats;
use super::peer::{Receiver, kit_sender, step};
use super::{Steps, ceilings, print_step};
use crate::test_kit::ScratchDatabase;

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The PostgreSQL server the processes share (a fresh database per count, dropped after).
    #[arg(long, env = "TMP_KIT_DATABASE_URL")]
    pub database_url: String,
    /// The process counts to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub processes: Vec<usize>,
    /// Cards the events are spread over (per-card order is checked).
    #[arg(long, default_value_t = 1000)]
    pub cards: u64,
    /// The `tmp-adapter` binary (default: beside this one).
    #[arg(long)]
    pub adapter_bin: Option<PathBuf>,
    /// The adapter's configuration directory (base.yaml, local.yaml).
    #[arg(long, default_value = "config")]
    pub config_dir: PathBuf,
    /// Offer this fixed rate instead of searching for the peak (the CPU per event of two builds
    /// compared at the same load; the peak column then shows twice this rate).
    #[arg(long, value_parser = super::rate)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub search: super::SearchArgs,
}

/// One process count's figures.
struct Measured {
    processes: usize,
    peak: f64,
    commits: f64,
    half: RunStats,
    misordered: u64,
    /// Acknowledged by an adapter, never delivered.
    undelivered: u64,
    cpu: CpuUse,
    /// The most resident memory one adapter process reached over the whole count's run.
    rss_mb: f64,
}

pub async fn run(args: ScaleArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(args.database_url.starts_with("postgres"), "--database-url must be a postgres:// URL");
    anyhow::ensure!(args.cards > 0, "--cards must be at least 1");
    anyhow::ensure!(
        !args.processes.is_empty() && args.processes.iter().all(|n| *n > 0),
        "--processes must list counts of at least 1"
    );
    tmp_edge::tls::install_crypto_provider();
    if let Err(error) = tmp_edge::limits::raise_open_files() {
        eprintln!("cannot raise the open-file limit: {error}");
    }
    let (bin, config_dir) = footprint::adapter_paths(args.adapter_bin.as_ref(), &args.config_dir)?;
    // The processes' own configuration (the same files and `TMP_ADAPTER__…` variables): a
    // count's commit ceiling is measured with as many connections as its processes' pools hold.
    let pool =
        tmp_adapter::config::Settings::load_with(&config_dir, "local", config::Environment::with_prefix("TMP_ADAPTER"))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .database
            .max_connections;
    let receiver = Receiver::start().await?;
    let postmaster = super::cpu::postmaster_of(&args.database_url).await;
    if postmaster.is_none() {
        eprintln!("the PostgreSQL server is not a process of this machine: its CPU is not counted");
    }
    let setup = Setup { bin, config_dir, postmaster, pool };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# tmp-kit scale-out · PostgreSQL · {cores} cores · {}", setup.bin.display());
    let mut measured = Vec::new();
    for &processes in &args.processes {
        let database = ScratchDatabase::create(&args.database_url, "tmp_scale").await?;
        let result = measure(&setup, &database.url, &receiver, &args, processes).await;
        database.drop_now().await;
        measured.push(result?);
    }
    receiver.handle.stop(false).await;

    println!();
    println!(
        "| processes | peak /s | PostgreSQL commits /s (same connections) | of commits | p50 ms | p99 ms | p99.9 ms \
         | @ rate /s | failed requests | acknowledged, not delivered | misordered | CPU at half peak: adapters / PostgreSQL / generator+receiver / idle \
         | CPU ms per event: adapters / PostgreSQL | peak RSS of one adapter MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|");
    for m in &measured {
        let per_event = |share: f64| 1e3 * share * m.cpu.capacity_secs / m.half.ok.max(1) as f64;
        println!(
            "| {} | {:.0} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {:.0}% / {:.0}% / {:.0}% / {:.0}% | {:.3} / {:.3} | {:.1} |",
            m.processes,
            m.peak,
            m.commits,
            100.0 * m.peak / m.commits,
            m.half.percentile_ms(0.50),
            m.half.percentile_ms(0.99),
            m.half.percentile_ms(0.999),
            m.half.offered_rate,
            m.half.errors - m.undelivered,
            m.undelivered,
            m.misordered,
            100.0 * m.cpu.adapters,
            100.0 * m.cpu.postgres,
            100.0 * m.cpu.this,
            100.0 * m.cpu.idle,
            per_event(m.cpu.adapters),
            per_event(m.cpu.postgres),
            m.rss_mb,
        );
    }
    // A message lost, misordered or refused at half of peak is a fault, not a figure.
    let faults: u64 = measured.iter().map(|m| m.half.errors + m.misordered).sum();
    if faults > 0 {
        eprintln!("{faults} messages failed, were lost or arrived out of their card's order at half of peak");
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What every count of a run shares.
struct Setup {
    /// The `tmp-adapter` binary and its configuration directory.
    bin: PathBuf,
    config_dir: PathBuf,
    /// The PostgreSQL server's main process, when it runs on this machine (see [`CpuSample`]).
    postmaster: Option<u32>,
    /// Each process's database pool (`database.max_connections`).
    pool: u32,
}

async fn measure(
    setup: &Setup,
    database_url: &str,
    receiver: &Receiver,
    args: &ScaleArgs,
    processes: usize,
) -> anyhow::Result<Measured> {
    let Setup { bin, config_dir, postmaster, pool } = setup;
    let connections = pool * processes as u32;
    let commits =
        ceilings::print_postgres_commits(&args.database_url, connections, args.search.ceiling_seconds).await?;

    let dir = tempfile::Builder::new().prefix("tmp-scale-").tempdir()?;
    let env = [
        ("TMP_ADAPTER__FORWARDING__APPROACH", "external".to_owned()),
        ("TMP_ADAPTER__FORWARDING__TMP_API__BASE_URL", receiver.url.clone()),
    ];
    // One after the other: the first generates the development keys the others read, and the
    // schema; each is given a free port just before it starts.
    let mut children: Vec<Child> = Vec::with_capacity(processes);
    for _ in 0..processes {
        children.push(footprint::start(bin, config_dir, dir.path(), database_url, &env).await?);
    }
    let sessions = children
        .iter()
        .map(|child| footprint::dev_session(&child.url).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pids: Vec<String> = children.iter().map(|child| child.pid.clone()).collect();
    let outbox = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(database_url).await?;
    let name = format!("{processes} process{}", if processes == 1 { "" } else { "es" });

    let rss = super::RssPeak::start(pids.clone());
    let mut n = 0u32;
    let mut step_fn = |rate: f64, duration: Duration| {
        n += 1;
        let tag = format!("{}-p{processes}s{n}", sessions[0].id("scale"));
        let send = kit_sender(&sessions, &tag, args.cards);
        let outbox = outbox.clone();
        async move {
            // What an overloaded step left behind would share the cores with this one.
            drain(&outbox).await;
            step(receiver, &tag, args.cards, rate, duration, send).await
        }
    };
    let mut stats_only = |rate: f64, duration: Duration| {
        let step = step_fn(rate, duration);
        async move { step.await.0 }
    };
    let steps = Steps::default();
    let step_time = Duration::from_secs(args.search.step_seconds);
    let peak = match args.rate {
        Some(rate) => rate * 2.0,
        None => {
            super::search_with(
                &name,
                args.search.start_rate,
                args.search.max_rate,
                args.search.refine,
                step_time,
                &mut stats_only,
                &steps,
            )
            .await
        }
    };

    drain(&outbox).await;
    let before = CpuSample::take(&pids, *postmaster)?;
    let started = Instant::now();
    let (half, misordered, undelivered) = step_fn(peak / 2.0, Duration::from_secs(args.search.duration)).await;
    let cpu = CpuSample::take(&pids, *postmaster)?.since(&before, started.elapsed().as_secs_f64());
    print_step(&format!("{name} @ half peak"), &half);
    let rss_mb = rss.stop().await;
    outbox.close().await;

    for mut child in children {
        let _ = child.process.kill().await;
    }
    Ok(Measured { processes, peak, commits, half, misordered, undelivered, cpu, rss_mb })
}

/// Waits until the outbox holds nothing pending, at most 120 s.
async fn drain(outbox: &sqlx::PgPool) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let pending: Result<bool, _> =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE status = 'pending')").fetch_one(outbox).await;
        if matches!(pending, Ok(false)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("  the outbox still had pending rows after 120 s; measuring anyway");
}
