//! `tmp-kit compare-svix`: the kit's processor ingest → delivery beside the closest open-source
//! peer for that path, the Svix webhook server (Rust, PostgreSQL), measured in one run with the
//! same generator, the same PostgreSQL server and the same receiving endpoint
//! (docs/performance.md, "A peer side by side").
//!
//! Both carry the same messages: a status change of one of `--cards` cards, `reason` naming
//! the message (`{run}-{i}`). The kit takes them as signed processor events and delivers each to
//! the TMP API; Svix takes them as messages of one application and delivers each to its one
//! endpoint. The receiver, in this process, answers 200 at once and notes when each message
//! first arrived. Latency is from the message's due time (open loop) to that arrival; the order
//! check counts, per card, a message that arrived after a later one of the same card.
//!
//! Svix runs as its own process, started by whoever runs this command (the command it was
//! measured with is in docs/performance.md); only its HTTP API is used here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tmp_conformance::case::Approach;
use tmp_conformance::client::{Call, Signer};
use tmp_conformance::session::Session;
use tmp_edge::client::{HttpClient, Request};

use super::open_loop::{self, RunStats, Send};
use super::{Steps, ceilings, print_step, send_json};
use crate::test_kit::{KitOptions, TestKit};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The Svix server's base URL (`http://127.0.0.1:8071`).
    #[arg(long, default_value = "http://127.0.0.1:8071")]
    pub svix_url: String,
    /// An API token of that server (`svix-server jwt generate`).
    #[arg(long, env = "SVIX_TOKEN", hide_env_values = true)]
    pub svix_token: String,
    /// The PostgreSQL server the kit's adapter uses (a fresh database, dropped afterwards):
    /// the one Svix's database is on.
    #[arg(long, env = "TMP_KIT_DATABASE_URL")]
    pub database_url: String,
    /// Cards the messages are spread over (per-card order is checked).
    #[arg(long, default_value_t = 100)]
    pub cards: u64,
    #[command(flatten)]
    pub search: super::SearchArgs,
}

pub async fn run(args: CompareArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(args.database_url.starts_with("postgres"), "--database-url must be a postgres:// URL");
    anyhow::ensure!(args.cards > 0, "--cards must be at least 1");
    let receiver = Receiver::start().await?;
    let url = receiver.url.clone();
    eprintln!("starting mock-tmp and tmp-adapter (PostgreSQL), delivering to {url} …");
    let options = KitOptions {
        database_url: Some(args.database_url.clone()),
        decision_engine: false,
        ..KitOptions::new(tmp_adapter::config::Approach::External)
    };
    let kit = Arc::new(TestKit::start_with(&options, |s| s.forwarding.tmp_api.base_url = url, |_| {}).await?);
    let result = compare(&kit, &receiver, &args).await;
    kit.stop().await;
    receiver.handle.stop(false).await;
    result?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// One path's figures.
struct Measured {
    name: &'static str,
    peak: f64,
    half: RunStats,
    misordered: u64,
}

async fn compare(kit: &Arc<TestKit>, receiver: &Receiver, args: &CompareArgs) -> anyhow::Result<()> {
    let session = Arc::new(crate::harness::spawned_session(kit, &kit.adapter_url, Approach::External, 0).await?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# tmp-kit compare-svix · PostgreSQL · {cores} cores · release={}", !cfg!(debug_assertions));
    let connections = kit.settings().database.max_connections;
    let commits =
        ceilings::print_postgres_commits(&args.database_url, connections, args.search.ceiling_seconds).await?;

    let svix = Svix::connect(&session.client.http, args, receiver).await?;
    let mut results = Vec::new();
    for path in [Path::Kit, Path::Svix] {
        let mut n = 0u32;
        let mut step_fn = |rate: f64, duration: Duration| {
            n += 1;
            let tag = format!("{}-{}{n}", session.id("cmp"), path.letter());
            let send = match path {
                Path::Kit => kit_sender(std::slice::from_ref(&session), &tag, args.cards),
                Path::Svix => svix.sender(&session.client.http, &tag, args.cards),
            };
            async move { step(receiver, &tag, args.cards, rate, duration, send).await }
        };
        let steps = Steps::default();
        let mut stats_only = |rate: f64, duration: Duration| {
            let step = step_fn(rate, duration);
            async move { step.await.0 }
        };
        let peak = super::search_with(
            path.name(),
            args.search.start_rate,
            args.search.max_rate,
            args.search.refine,
            Duration::from_secs(args.search.step_seconds),
            &mut stats_only,
            &steps,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (half, misordered, _) = step_fn(peak / 2.0, Duration::from_secs(args.search.duration)).await;
        print_step(&format!("{} @ half peak", path.name()), &half);
        results.push(Measured { name: path.name(), peak, half, misordered });
    }

    println!();
    println!("| path | peak /s | of PostgreSQL commits | p50 ms | p99 ms | p99.9 ms | @ rate /s | lost | misordered |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
            m.name,
            m.peak,
            100.0 * m.peak / commits,
            m.half.percentile_ms(0.50),
            m.half.percentile_ms(0.99),
            m.half.percentile_ms(0.999),
            m.half.offered_rate,
            m.half.errors,
            m.misordered,
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Path {
    Kit,
    Svix,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Kit => "tmp-adapter ingest→delivery",
            Path::Svix => "svix message→delivery",
        }
    }

    fn letter(self) -> char {
        match self {
            Path::Kit => 'k',
            Path::Svix => 's',
        }
    }
}

/// The message `i` of a run tagged `tag`: a status change of card `i % cards`.
fn message(tag: &str, i: u64, cards: u64) -> (String, Value) {
    let card = format!("{tag}-c{}", i % cards);
    // Alternating per card, so every message is a change.
    let status = if (i / cards).is_multiple_of(2) { "BLOCKED" } else { "ACTIVE" };
    (card, json!({"status": status, "reason": format!("{tag}-{i}")}))
}

/// Processor events to the adapter, signed as the processor signs them. With several
/// sessions (adapter processes), a card's events all go to one of them (`card % sessions`): the
/// order a card's events are sent in is then the order they are committed in, which the order
/// check takes as given.
pub(super) fn kit_sender(sessions: &[Arc<Session>], tag: &str, cards: u64) -> Send {
    let (sessions, tag) = (sessions.to_vec(), tag.to_owned());
    Arc::new(move |i| {
        let (session, tag) = (sessions[((i % cards) % sessions.len() as u64) as usize].clone(), tag.clone());
        Box::pin(async move {
            let (card, data) = message(&tag, i, cards);
            let event = json!({"id": format!("{tag}-e{i}"), "cardId": card, "type": "card.status_changed",
                "occurredAt": tmp_conformance::catalogue::now_rfc3339(), "data": data});
            let call = Call::post(&session.target, tmp_protocol::processor::EVENTS_PATH, event)
                .signer(Some(Signer::Processor))
                .idempotency_key(None);
            send_json(&session, call).await
        })
    })
}

/// One step: the messages at `rate` for `duration`, acknowledged by the path under test, then
/// their arrivals at the receiver (at most 60 s after the last acknowledgement). Also returns
/// how many arrived out of their card's order, and how many were acknowledged but never arrived
/// (the step's errors count those and the requests that failed).
pub(super) async fn step(
    receiver: &Receiver,
    tag: &str,
    cards: u64,
    rate: f64,
    duration: Duration,
    send: Send,
) -> (RunStats, u64, u64) {
    let acked = open_loop::run(rate, duration, send).await;
    let prefix = format!("{tag}-");
    let arrivals = super::wait_for_arrivals(acked.ok, || async { receiver.arrivals(&prefix) }).await;
    // Per card, the order the messages first came in.
    let mut latest: HashMap<u64, u64> = HashMap::new();
    let mut misordered = 0;
    for (i, _) in &arrivals {
        let card = i % cards;
        match latest.get(&card) {
            Some(&later) if later > *i => misordered += 1,
            _ => {
                latest.insert(card, *i);
            }
        }
    }
    receiver.forget(&prefix);
    let undelivered = acked.ok.saturating_sub(arrivals.len() as u64);
    (super::arrival_stats(&acked, rate, arrivals), misordered, undelivered)
}

/// Each message's reason and when it arrived, in arrival order.
type Arrivals = Arc<Mutex<Vec<(String, OffsetDateTime)>>>;

/// The receiving endpoint of both paths: answers 200 to any POST and notes, by the `reason`
/// the body carries, when each message arrived, in arrival order.
pub(super) struct Receiver {
    pub(super) url: String,
    pub(super) handle: ServerHandle,
    arrived: Arrivals,
}

impl Receiver {
    pub(super) async fn start() -> anyhow::Result<Receiver> {
        let arrived: Arrivals = Arc::default();
        let data = Data::new(arrived.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(2)
            .listen(listener)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Receiver { url, handle, arrived })
    }

    /// `(message index, first arrival)` of the messages whose reason starts with `prefix`, in
    /// the order they first arrived (a message delivered twice counts once).
    fn arrivals(&self, prefix: &str) -> Vec<(u64, OffsetDateTime)> {
        let arrived = self.arrived.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        arrived
            .iter()
            .filter_map(|(reason, at)| Some((reason.strip_prefix(prefix)?.parse().ok()?, *at)))
            .filter(|(i, _)| seen.insert(*i))
            .collect()
    }

    fn forget(&self, prefix: &str) {
        let mut arrived = self.arrived.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        arrived.retain(|(reason, _)| !reason.starts_with(prefix));
    }
}

async fn receive(arrived: Data<Arrivals>, body: Bytes) -> HttpResponse {
    let at = OffsetDateTime::now_utc();
    if let Some(reason) =
        serde_json::from_slice::<Value>(&body).ok().and_then(|b| b["reason"].as_str().map(String::from))
    {
        arrived.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((reason, at));
    }
    HttpResponse::Ok().finish()
}

/// The Svix application and endpoint the messages go through.
struct Svix {
    base: String,
    token: Arc<String>,
    app_id: String,
}

impl Svix {
    async fn connect(http: &HttpClient, args: &CompareArgs, receiver: &Receiver) -> anyhow::Result<Svix> {
        let base = args.svix_url.trim_end_matches('/').to_owned();
        let token = Arc::new(args.svix_token.clone());
        let svix = Svix { base, token, app_id: String::new() };
        let app = svix.post(http, "/api/v1/app/", json!({"name": "tmp-kit compare"})).await.context("Svix: app")?;
        let app_id = app["id"].as_str().context("Svix: the app's id")?.to_owned();
        let svix = Svix { app_id, ..svix };
        let endpoint = json!({"url": format!("{}/svix", receiver.url), "description": "tmp-kit receiver"});
        svix.post(http, &format!("/api/v1/app/{}/endpoint/", svix.app_id), endpoint).await.context("Svix: endpoint")?;
        Ok(svix)
    }

    async fn post(&self, http: &HttpClient, path: &str, body: Value) -> anyhow::Result<Value> {
        let request = Request::post(format!("{}{path}", self.base))
            .header("authorization", &format!("Bearer {}", self.token))
            .json_body(body.to_string());
        let answer = http.send(request).await?;
        anyhow::ensure!(answer.is_success(), "HTTP {} {}", answer.status, String::from_utf8_lossy(&answer.body));
        Ok(serde_json::from_slice(&answer.body).unwrap_or_default())
    }

    /// Messages to the application, as Svix's API takes them (its answer: 202).
    fn sender(&self, http: &HttpClient, tag: &str, cards: u64) -> Send {
        let (http, tag) = (http.clone(), tag.to_owned());
        let (url, token) = (format!("{}/api/v1/app/{}/msg/", self.base, self.app_id), self.token.clone());
        Arc::new(move |i| {
            let (http, tag, url, token) = (http.clone(), tag.clone(), url.clone(), token.clone());
            Box::pin(async move {
                let (_, payload) = message(&tag, i, cards);
                let body = json!({"eventType": "card.status_changed", "payload": payload});
                let request = Request::post(url)
                    .header("authorization", &format!("Bearer {token}"))
                    .json_body(body.to_string())
                    .ignore_success_body();
                let answer = http.send(request).await?;
                anyhow::ensure!(answer.is_success(), "HTTP {}", answer.status);
                Ok(())
            })
        })
    }
}
