//! `tmp-kit load`: throughput and latency of a spawned kit, each as a ratio of its
//! ceiling measured in the same run (docs/performance.md).
//!
//! For each scenario: the peak (the highest open-loop rate answered at ≥ 95% with no error,
//! found by doubling then bisecting), then latency percentiles at half of that peak.
//! Request bodies are made before the clock starts where they need JWE encryption (a pool of
//! payloads), so the generator's own crypto does not limit what it measures.

pub mod ceilings;
pub mod cpu;
pub mod footprint;
pub mod open_loop;
pub mod peer;
pub mod report;
pub mod scale;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tmp_edge::client::{ClientOptions, HttpClient, Request};

use crate::test_kit::{KitOptions, TestKit};
use open_loop::{RunStats, Send};
use tmp_conformance::case::Approach;
use tmp_conformance::catalogue::{notification_body, token_event_body, verify_body};
use tmp_conformance::client::{Call, Prepared, Signer};
use tmp_conformance::payload::PayloadSpec;
use tmp_conformance::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `POST /issuer-api/v1/cards/verify` (a JWE to decrypt per request) vs the RSA ceiling.
    VerifyCard,
    /// `POST /issuer-api/v1/tokens/events` vs the HTTP ceiling.
    TokenEvents,
    /// `POST /issuer-api/v1/notifications` (TOKEN_ACTIVATED) vs the HTTP ceiling.
    Notifications,
    /// `POST /processor/v1/events` until delivery at mock-tmp vs the database commit ceiling.
    Ingest,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::VerifyCard => "verify-card",
            Scenario::TokenEvents => "token-events",
            Scenario::Notifications => "notifications",
            Scenario::Ingest => "ingest→delivery",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The scenarios to run (all when omitted).
    #[arg(long = "scenario", value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// A PostgreSQL server (a fresh database is made and dropped); SQLite otherwise.
    #[arg(long, env = "TMP_KIT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Seconds per step of the peak search.
    #[arg(long, default_value_t = 4)]
    pub step_seconds: u64,
    /// Seconds of the run at half of peak (the latency figures).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds each ceiling is measured for.
    #[arg(long, default_value_t = 5)]
    pub ceiling_seconds: u64,
    /// The first rate of the peak search (requests per second).
    #[arg(long, default_value_t = 100.0, value_parser = rate)]
    pub start_rate: f64,
    /// Never offer more than this.
    #[arg(long, default_value_t = 50_000.0, value_parser = rate)]
    pub max_rate: f64,
    /// Bisection steps after the doubling.
    #[arg(long, default_value_t = 3)]
    pub refine: u32,
    /// Offer this fixed rate instead of searching for the peak (latency at a given load).
    #[arg(long, value_parser = rate)]
    pub rate: Option<f64>,
    /// Also write the figures as JSON to this file, and a chart of latency against offered
    /// rate per scenario next to it (the same name with `.svg`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
}

/// A rate option of the load commands (requests or messages per second): a finite number above
/// zero, or a usage error naming the option (a zero rate has no time between requests).
pub fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("`{value}` is not a rate: give a number of requests per second above 0")),
    }
}

/// The peak search and the run at half of peak of the commands that count each message when it
/// arrives at a receiver (`compare-svix`, `scale-out`).
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Seconds per step of the peak search.
    #[arg(long, default_value_t = 4)]
    pub step_seconds: u64,
    /// Seconds of the run at half of peak (the latency figures).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// The first rate of the peak search (messages per second).
    #[arg(long, default_value_t = 50.0, value_parser = rate)]
    pub start_rate: f64,
    /// Never offer more than this.
    #[arg(long, default_value_t = 20_000.0, value_parser = rate)]
    pub max_rate: f64,
    /// Bisection steps after the doubling.
    #[arg(long, default_value_t = 3)]
    pub refine: u32,
    /// Seconds each database ceiling is measured for.
    #[arg(long, default_value_t = 5)]
    pub ceiling_seconds: u64,
}

/// One scenario's figures.
struct Row {
    name: &'static str,
    peak: f64,
    ceiling_name: &'static str,
    ceiling: f64,
    half: RunStats,
    /// Every step of the peak search.
    steps: Vec<report::Point>,
}

/// The steps of a peak search, as they are run.
type Steps = std::sync::Mutex<Vec<report::Point>>;

pub async fn run(args: LoadArgs) -> anyhow::Result<std::process::ExitCode> {
    let scenarios = if args.scenarios.is_empty() {
        vec![Scenario::VerifyCard, Scenario::TokenEvents, Scenario::Notifications, Scenario::Ingest]
    } else {
        args.scenarios.clone()
    };
    let database = args.database_url.as_deref().map_or("SQLite", |_| "PostgreSQL");
    // The generator, the echo ceiling, mock-tmp and the adapter share this process's descriptors:
    // a ceiling that stops at the soft limit would measure the limit, not the machine.
    match tmp_edge::limits::raise_open_files() {
        Ok(limit) => eprintln!("open-file limit: {}", limit.map_or("unlimited".to_owned(), |l| l.to_string())),
        Err(error) => eprintln!("cannot raise the open-file limit: {error}"),
    }
    eprintln!("starting mock-tmp and tmp-adapter ({database}) …");
    let kit = Arc::new(
        TestKit::start(&KitOptions {
            database_url: args.database_url.clone(),
            mock_journal_capacity: Some(2_000_000),
            decision_engine: false,
            ..KitOptions::new(tmp_adapter::config::Approach::External)
        })
        .await?,
    );
    let result = measure(&kit, &args, &scenarios, database).await;
    kit.stop().await;
    result?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn measure(kit: &Arc<TestKit>, args: &LoadArgs, scenarios: &[Scenario], database: &str) -> anyhow::Result<()> {
    let session = Arc::new(crate::harness::spawned_session(kit, &kit.adapter_url, Approach::External, 0).await?);
    let step = Duration::from_secs(args.step_seconds);
    let ceiling_time = Duration::from_secs(args.ceiling_seconds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# tmp-kit load · {database} · {cores} cores · release={}", !cfg!(debug_assertions));

    // The ceilings, in this process, on these cores.
    let mut ceilings: HashMap<&'static str, f64> = HashMap::new();
    if scenarios.contains(&Scenario::VerifyCard) {
        let keys = Arc::new(tmp_adapter::keys::KeyMaterial::load(kit.settings())?.jwe);
        let jwe = session.client.prepare(verify_call(&session, 0, "x")).await?;
        let body: Value = serde_json::from_slice(&jwe.bytes)?;
        let jwe = body["encryptedPayload"].as_str().context("a JWE")?.to_owned();
        let bits = keys.keys()[0].bits();
        let rate =
            tokio::task::spawn_blocking(move || ceilings::rsa_decrypts_per_sec(keys, jwe, cores, ceiling_time)).await?;
        println!("ceiling  rsa-oaep-256 JWE decrypt, shipped implementation ({cores} threads): {rate:.0}/s");
        ceilings.insert("rsa", rate);
        let seconds = args.ceiling_seconds;
        match tokio::task::spawn_blocking(move || ceilings::openssl_rsa_private_ops_per_sec(bits, cores, seconds))
            .await?
        {
            Some(openssl) => {
                println!(
                    "ceiling  OpenSSL rsa{bits} private-key ops ({cores} processes): {openssl:.0}/s \
                     (shipped implementation at {:.0}% of it)",
                    100.0 * rate / openssl
                );
                ceilings.insert("openssl-rsa", openssl);
            }
            None => println!("ceiling  OpenSSL rsa{bits}: `openssl speed` not available, not measured"),
        }
    }
    if scenarios.iter().any(|s| matches!(s, Scenario::TokenEvents | Scenario::Notifications)) {
        let echo = ceilings::EchoServer::start(cores).await?;
        let body = token_event_body(&session, "ACTIVE", Some("INACTIVE")).to_string().into_bytes();
        let client = session.client.http.clone();
        let url = echo.url.clone();
        let send: Send = Arc::new(move |_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            Box::pin(async move {
                let answer = client.send(Request::post(url).json_body(body)).await?;
                anyhow::ensure!(answer.is_success(), "HTTP {}", answer.status);
                Ok(())
            })
        });
        let peak = peak_of("http echo", args, step, send, &Steps::default()).await;
        echo.stop().await;
        println!("ceiling  actix-web JSON echo ({cores} workers, same generator): {peak:.0}/s");
        ceilings.insert("http", peak);
    }
    if scenarios.contains(&Scenario::Ingest) {
        let connections = kit.settings().database.max_connections;
        let rate = match &args.database_url {
            Some(url) => ceilings::postgres_commits_per_sec(url, connections, ceiling_time).await?,
            None => {
                let dir = tempfile::tempdir()?;
                ceilings::sqlite_commits_per_sec(dir.path(), connections, ceiling_time).await?
            }
        };
        println!("ceiling  {database} single-row insert commits ({connections} connections): {rate:.0}/s");
        ceilings.insert("db", rate);
    }

    let mut rows = Vec::new();
    for &scenario in scenarios {
        let steps = Steps::default();
        let (ceiling_name, ceiling) = match scenario {
            Scenario::VerifyCard => ("rsa", ceilings["rsa"]),
            Scenario::TokenEvents | Scenario::Notifications => ("http", ceilings["http"]),
            Scenario::Ingest => ("db", ceilings["db"]),
        };
        let (peak, half) = if scenario == Scenario::Ingest {
            let mock = tmp_conformance::mock_api::MockApi::new(&kit.mock_url)?;
            let mock = Arc::new(mock);
            let mut n = 0u32;
            let mut step_fn = |rate: f64, duration: Duration| {
                n += 1;
                let (session, mock) = (session.clone(), mock.clone());
                let tag = format!("{}-{n}", session.id("ld"));
                async move { ingest_step(&session, &mock, &tag, rate, duration).await }
            };
            drain_outbox(kit).await;
            let peak = match args.rate {
                Some(rate) => rate * 2.0,
                None => search(scenario.name(), args, step, &mut step_fn, &steps).await,
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            drain_outbox(kit).await;
            let threads = ThreadCpu::start();
            let half = step_fn(peak / 2.0, Duration::from_secs(args.duration)).await;
            threads.print(scenario.name(), &half);
            (peak, half)
        } else {
            let send = request_sender(&session, scenario).await?;
            let peak = match args.rate {
                Some(rate) => rate * 2.0,
                None => peak_of(scenario.name(), args, step, send.clone(), &steps).await,
            };
            tokio::time::sleep(Duration::from_secs(1)).await;
            drain_outbox(kit).await;
            let threads = ThreadCpu::start();
            let half = open_loop::run(peak / 2.0, Duration::from_secs(args.duration), send).await;
            threads.print(scenario.name(), &half);
            (peak, half)
        };
        print_step(&format!("{} @ half peak", scenario.name()), &half);
        let steps = steps.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.push(Row { name: scenario.name(), peak, ceiling_name, ceiling, half, steps });
    }

    println!();
    println!("| scenario | peak /s | ceiling | ceiling /s | ratio | p50 ms | p99 ms | p99.9 ms | @ rate /s | errors |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {:.0} | {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
            row.name,
            row.peak,
            row.ceiling_name,
            row.ceiling,
            100.0 * row.peak / row.ceiling,
            row.half.percentile_ms(0.50),
            row.half.percentile_ms(0.99),
            row.half.percentile_ms(0.999),
            row.half.offered_rate,
            row.half.errors,
        );
    }
    if let (Some(row), Some(openssl)) = (rows.iter().find(|r| r.ceiling_name == "rsa"), ceilings.get("openssl-rsa")) {
        println!(
            "{}: {:.0}% of OpenSSL's RSA private-key rate on the same cores ({openssl:.0}/s)",
            row.name,
            100.0 * row.peak / openssl
        );
    }
    let rss = rss_mb("self")?;
    println!("process RSS after the run (generator + mock + adapter in one process): {rss} MB");
    if let Some(path) = &args.json {
        let report = report::Report {
            database: database.to_owned(),
            cores,
            release: !cfg!(debug_assertions),
            ceilings: ceilings.iter().map(|(name, rate)| ((*name).to_owned(), *rate)).collect(),
            scenarios: rows
                .iter()
                .map(|row| report::ScenarioReport {
                    name: row.name.to_owned(),
                    peak: row.peak,
                    ceiling_name: row.ceiling_name.to_owned(),
                    ceiling_rate: row.ceiling,
                    ratio: row.peak / row.ceiling,
                    half_peak: report::Point::of(&row.half),
                    steps: row.steps.clone(),
                })
                .collect(),
            rss_mb: rss,
        };
        let chart = report::write(&report, path).with_context(|| format!("writing {}", path.display()))?;
        println!("figures: {} · chart: {}", path.display(), chart.display());
    }
    Ok(())
}

/// Where this process's CPU went during a run at half of peak, per request answered, by kind
/// of thread ([`cpu::ThreadSample`]): the figures "Where the time goes" in docs/performance.md
/// reads.
struct ThreadCpu {
    before: Option<cpu::ThreadSample>,
    started: std::time::Instant,
}

impl ThreadCpu {
    fn start() -> ThreadCpu {
        ThreadCpu { before: cpu::ThreadSample::take().ok(), started: std::time::Instant::now() }
    }

    fn print(self, name: &str, run: &RunStats) {
        let (Some(before), Ok(after)) = (self.before, cpu::ThreadSample::take()) else { return };
        if run.ok == 0 {
            return;
        }
        let spent = after.since(&before, self.started.elapsed().as_secs_f64());
        let per_request = |seconds: f64| 1e3 * seconds / run.ok as f64;
        let all: f64 = spent.iter().map(|(_, seconds)| seconds).sum();
        let threads: Vec<String> = spent
            .iter()
            .filter(|(_, seconds)| per_request(*seconds) >= 0.005)
            .map(|(thread, seconds)| format!("{thread} {:.2}", per_request(*seconds)))
            .collect();
        eprintln!(
            "  {name:<24} CPU per request at half peak, ms, by thread of this process: {} · all {:.2}",
            threads.join(" · "),
            per_request(all)
        );
    }
}

/// Waits until the adapter's outbox holds nothing pending (at most 120 s): the deliveries an
/// overloaded step of the peak search left behind would otherwise share the cores with the
/// next measurement and show up in its latency.
async fn drain_outbox(kit: &TestKit) {
    let Some(ops) = &kit.ops else { return };
    let url = format!("{}/ops/v1/outbox?status=pending&limit=1", ops.url);
    let Ok(client) = HttpClient::plain(ClientOptions::with_timeout(Duration::from_secs(5))) else { return };
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let pending = async {
            let request = Request::get(url.clone()).header("authorization", &format!("Bearer {}", ops.key.as_str()));
            let answer = client.send(request).await.ok()?;
            let list: Value = answer.json().ok()?;
            Some(list["items"].as_array().is_some_and(|items| !items.is_empty()))
        }
        .await;
        if pending == Some(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("  the outbox still had pending rows after 120 s; measuring anyway");
}

async fn peak_of(name: &str, args: &LoadArgs, step: Duration, send: Send, steps: &Steps) -> f64 {
    let mut step_fn = |rate: f64, duration: Duration| open_loop::run(rate, duration, send.clone());
    search(name, args, step, &mut step_fn, steps).await
}

/// The peak search of [`open_loop::find_peak`] over any step function.
async fn search<F, Fut>(name: &str, args: &LoadArgs, step: Duration, step_fn: &mut F, steps: &Steps) -> f64
where
    F: FnMut(f64, Duration) -> Fut,
    Fut: std::future::Future<Output = RunStats>,
{
    search_with(name, args.start_rate, args.max_rate, args.refine, step, step_fn, steps).await
}

/// [`search`] with its bounds given.
async fn search_with<F, Fut>(
    name: &str,
    start_rate: f64,
    max_rate: f64,
    refine: u32,
    step: Duration,
    step_fn: &mut F,
    steps: &Steps,
) -> f64
where
    F: FnMut(f64, Duration) -> Fut,
    Fut: std::future::Future<Output = RunStats>,
{
    open_loop::find_peak(
        start_rate,
        max_rate,
        refine,
        |rate| step_fn(rate, step),
        |stats| {
            print_step(name, stats);
            steps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(report::Point::of(stats));
        },
    )
    .await
}

fn print_step(name: &str, stats: &RunStats) {
    eprintln!(
        "  {name:<24} offered {:>7.0}/s achieved {:>7.0}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  p99.9 {:>8.2} ms  errors {}{}",
        stats.offered_rate,
        stats.achieved_rate,
        stats.percentile_ms(0.5),
        stats.percentile_ms(0.99),
        stats.percentile_ms(0.999),
        stats.errors,
        stats
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {})", tmp_conformance::client::truncate(e, 160)))
            .unwrap_or_default(),
    );
}

/// A verify-card request with its own tokenization id and a payload from the pool.
fn verify_call(session: &Session, i: u64, jwe: &str) -> Call {
    let mut body = verify_body(session);
    body["tokenizationId"] = json!(format!("{}-{i}", session.id("ld-tkz")));
    if jwe != "x" {
        body["encryptedPayload"] = json!(jwe);
    }
    let call = session.post(tmp_protocol::issuer_api::VERIFY_CARD_PATH, body);
    if jwe == "x" { call.payload(PayloadSpec::card("active")) } else { call }
}

/// How many distinct JWEs verify-card cycles through (made before the clock starts).
const PAYLOAD_POOL: usize = 256;

async fn request_sender(session: &Arc<Session>, scenario: Scenario) -> anyhow::Result<Send> {
    let pool: Arc<Vec<String>> = Arc::new(if scenario == Scenario::VerifyCard {
        let mut pool = Vec::with_capacity(PAYLOAD_POOL);
        for i in 0..PAYLOAD_POOL {
            let prepared = session.client.prepare(verify_call(session, i as u64, "x")).await?;
            let body: Value = serde_json::from_slice(&prepared.bytes)?;
            pool.push(body["encryptedPayload"].as_str().context("a JWE")?.to_owned());
        }
        pool
    } else {
        Vec::new()
    });
    let session = session.clone();
    Ok(Arc::new(move |i| {
        let (session, pool) = (session.clone(), pool.clone());
        Box::pin(async move {
            let call = match scenario {
                Scenario::VerifyCard => verify_call(&session, i, &pool[i as usize % pool.len()]),
                Scenario::TokenEvents => session
                    .post(tmp_protocol::issuer_api::TOKEN_EVENTS_PATH, token_event_body(&session, "ACTIVE", None)),
                Scenario::Notifications => session
                    .post(tmp_protocol::issuer_api::NOTIFICATIONS_PATH, notification_body(&session, "TOKEN_ACTIVATED")),
                Scenario::Ingest => unreachable!("ingest has its own step"),
            };
            send_json(&session, call).await
        })
    }))
}

/// Sends a call whose body has no payload slot (bytes as they are, signed at sending).
async fn send_json(session: &Session, call: Call) -> anyhow::Result<()> {
    let bytes = match &call.body {
        tmp_conformance::client::Body::Json(value) => value.to_string().into_bytes(),
        _ => Vec::new(),
    };
    let answer = session.client.send_prepared(&Prepared { call, bytes }).await?;
    anyhow::ensure!((200..300).contains(&answer.status), "HTTP {} {}", answer.status, answer.text());
    Ok(())
}

/// One ingest step: processor events (a status change per card, cards of their own) at `rate`,
/// acknowledged (202) by the adapter; then the deliveries of those events at mock-tmp, read
/// from its journal. Latency and throughput are the deliveries', from each event's due time.
async fn ingest_step(
    session: &Arc<Session>,
    mock: &tmp_conformance::mock_api::MockApi,
    tag: &str,
    rate: f64,
    duration: Duration,
) -> RunStats {
    let send: Send = {
        let (session, tag) = (session.clone(), tag.to_owned());
        Arc::new(move |i| {
            let (session, tag) = (session.clone(), tag.clone());
            Box::pin(async move {
                let event = json!({"id": format!("{tag}-e{i}"), "cardId": format!("{tag}-c{i}"),
                    "type": "card.status_changed", "occurredAt": tmp_conformance::catalogue::now_rfc3339(),
                    "data": {"status": "BLOCKED", "reason": "LOST"}});
                let call = Call::post(&session.target, tmp_protocol::processor::EVENTS_PATH, event)
                    .signer(Some(Signer::Processor))
                    .idempotency_key(None);
                send_json(&session, call).await
            })
        })
    };
    let acked = open_loop::run(rate, duration, send).await;
    let prefix = format!("/tmp-api/v1/cards/{tag}-c");
    let delivered = wait_for_arrivals(acked.ok, || async { deliveries(mock, &prefix).await.unwrap_or_default() }).await;
    let _ = mock.clear_requests().await;
    arrival_stats(&acked, rate, delivered)
}

/// What `arrived` returns once it holds `expected` messages, or at most 60 s after the last
/// acknowledgement, polled every 250 ms.
pub(crate) async fn wait_for_arrivals<T, F, Fut>(expected: u64, mut arrived: F) -> Vec<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let arrivals = arrived().await;
        if arrivals.len() as u64 >= expected || std::time::Instant::now() >= deadline {
            return arrivals;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The figures of a step that counts a message once it arrives at its receiver: `acked` as the
/// generator saw the step at `rate`, `first_arrivals` each message's index and first arrival.
/// Latency runs from the message's due time (open loop) to its arrival, the rate is what
/// arrived over the time it took, and a message acknowledged but never arrived is an error.
pub(crate) fn arrival_stats(
    acked: &RunStats,
    rate: f64,
    first_arrivals: impl IntoIterator<Item = (u64, OffsetDateTime)>,
) -> RunStats {
    let mut stats = RunStats { latency_us: open_loop::histogram(), ok: 0, achieved_rate: 0.0, ..acked.clone() };
    let mut last = acked.started_at;
    for (i, at) in first_arrivals {
        let due = acked.started_at + Duration::from_secs_f64(i as f64 / rate);
        let latency = (at - due).whole_microseconds().max(1);
        stats.latency_us.saturating_record(latency as u64);
        last = last.max(at);
        stats.ok += 1;
    }
    if stats.ok < acked.ok {
        stats.errors += acked.ok - stats.ok;
        stats.first_error.get_or_insert(format!("{} acknowledged messages not delivered", acked.ok - stats.ok));
    }
    let schedule = (acked.sent.saturating_sub(1)) as f64 / rate;
    let elapsed = (last - acked.started_at).as_seconds_f64().max(schedule);
    stats.achieved_rate = if elapsed > 0.0 { stats.ok as f64 / elapsed } else { stats.ok as f64 };
    stats
}

/// `(event index, first successful delivery time)` of the status changes under `prefix`.
async fn deliveries(
    mock: &tmp_conformance::mock_api::MockApi,
    prefix: &str,
) -> anyhow::Result<Vec<(u64, OffsetDateTime)>> {
    let mut first: HashMap<u64, OffsetDateTime> = HashMap::new();
    for entry in mock.requests().await? {
        if entry["direction"] != "received" || entry["status"] != 200 {
            continue;
        }
        let Some(rest) = entry["path"].as_str().and_then(|p| p.strip_prefix(prefix)) else { continue };
        let Some(i) = rest.strip_suffix("/status").and_then(|n| n.parse::<u64>().ok()) else { continue };
        let Some(at) = entry["at"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        else {
            continue;
        };
        first.entry(i).and_modify(|t| *t = (*t).min(at)).or_insert(at);
    }
    Ok(first.into_iter().collect())
}

/// Resident memory of `/proc/<pid>` in MB.
pub fn rss_mb(pid: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kb / 1024.0)
}

/// The most resident memory any one of a set of processes reached, sampled every 50 ms from
/// [`RssPeak::start`] until [`RssPeak::stop`].
pub(crate) struct RssPeak {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<f64>,
    pids: Vec<String>,
}

impl RssPeak {
    pub(crate) fn start(pids: Vec<String>) -> RssPeak {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (stop, pids) = (stop.clone(), pids.clone());
            async move {
                let mut peak: f64 = 0.0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = pids.iter().filter_map(|pid| rss_mb(pid).ok()).fold(peak, f64::max);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            }
        });
        RssPeak { stop, task, pids }
    }

    /// The peak in MB, a last sample included.
    pub(crate) async fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let last = self.pids.iter().filter_map(|pid| rss_mb(pid).ok()).fold(0.0, f64::max);
        self.task.await.unwrap_or(0.0).max(last)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rate_is_a_finite_number_above_zero() {
        assert_eq!(super::rate("250"), Ok(250.0));
        assert_eq!(super::rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "abc", "inf", "NaN", ""] {
            assert!(super::rate(bad).unwrap_err().contains("is not a rate"), "{bad}");
        }
    }
}
