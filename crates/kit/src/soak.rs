//! `tmp-kit soak`: sustained processor events through a spawned kit while mock-tmp
//! injects latency, 503s and dropped connections on the forwarding route and the adapter is
//! stopped abruptly (or gracefully) and started again. At the end, with the faults removed
//! and the outbox drained, every acknowledged (202) event must have reached mock-tmp once in
//! effect and in per-card order; the counts are printed and any loss, misorder or double
//! application fails the run.
//!
//! Each card has a sequence of status changes `k = 0, 1, 2, …` alternating BLOCKED / ACTIVE,
//! with `reason: "soak-<k>"` so that a delivery names its event. The card's sender posts event
//! `k + 1` only once `k` is acknowledged, retrying `k` (same id, same body: a duplicate to the
//! adapter) through failures: the acknowledged order is the processor's order.
//! "Applied twice" means mock-tmp applied one event under two idempotency keys: a retry with
//! the same key is answered from mock-tmp's idempotency record without effect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::test_kit::{KitOptions, TestKit};
use tmp_conformance::case::Approach;
use tmp_conformance::client::{Call, Prepared, Signer};
use tmp_conformance::mock_api::MockApi;
use tmp_conformance::session::Session;

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the load runs, in seconds (the drain and the checks come after).
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// A PostgreSQL server (a fresh database is made and dropped); SQLite otherwise.
    #[arg(long, env = "TMP_KIT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Cards with a sequence of their own.
    #[arg(long, default_value_t = 40)]
    pub cards: u32,
    /// Events per second per card (at most; a card waits for each acknowledgement).
    #[arg(long, default_value_t = 1.0)]
    pub card_rate: f64,
    /// Seconds between adapter restarts.
    #[arg(long, default_value_t = 30)]
    pub restart_every: u64,
}

const STATUS_ROUTE: &str = "POST /tmp-api/v1/cards/{cardId}/status";

#[derive(Default)]
struct Counters {
    acknowledged: AtomicU64,
    resent: AtomicU64,
    duplicates_answered: AtomicU64,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<std::process::ExitCode> {
    let database = args.database_url.as_deref().map_or("SQLite", |_| "PostgreSQL");
    eprintln!("soak: starting mock-tmp and tmp-adapter ({database}) for {} s …", args.seconds);
    let kit = Arc::new(
        TestKit::start(&KitOptions {
            database_url: args.database_url.clone(),
            mock_journal_capacity: Some(5_000_000),
            decision_engine: false,
            ..KitOptions::new(tmp_adapter::config::Approach::External)
        })
        .await?,
    );
    let result = soak(&kit, &args, database).await;
    kit.stop().await;
    result
}

async fn soak(kit: &Arc<TestKit>, args: &SoakArgs, database: &str) -> anyhow::Result<std::process::ExitCode> {
    let session = Arc::new(crate::harness::spawned_session(kit, &kit.adapter_url, Approach::External, 0).await?);
    let mock = Arc::new(MockApi::new(&kit.mock_url)?);
    mock.clear_requests().await?;
    let run = session.id("soak");
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    // One sender per card; each answers how many of its events were acknowledged.
    let mut senders = tokio::task::JoinSet::new();
    for c in 0..args.cards {
        let (session, counters, stop) = (session.clone(), counters.clone(), stop.clone());
        let card_id = format!("{run}-c{c}");
        let interval = Duration::from_secs_f64(1.0 / args.card_rate);
        senders.spawn(async move {
            let mut k: u64 = 0;
            // Spread the cards' phases over the interval.
            tokio::time::sleep(interval.mul_f64(f64::from(c) / 40.0 % 1.0)).await;
            while !stop.load(Ordering::Relaxed) {
                let next = Instant::now() + interval;
                let prepared = event(&session, &card_id, k);
                let mut attempt = 0u32;
                loop {
                    attempt += 1;
                    if attempt > 1 {
                        counters.resent.fetch_add(1, Ordering::Relaxed);
                    }
                    match session.client.send_prepared(&prepared).await {
                        Ok(answer) if answer.status == 202 => {
                            if answer.json().is_some_and(|v| v["duplicates"].as_u64().unwrap_or(0) > 0) {
                                counters.duplicates_answered.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                    anyhow::ensure!(attempt < 3000, "event {k} of {card_id} was never acknowledged");
                }
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                k += 1;
                tokio::time::sleep_until(next.into()).await;
            }
            anyhow::Ok((card_id, k))
        });
    }

    // Faults and restarts until the time is up.
    let faults = [
        json!({"route": STATUS_ROUTE, "latency_ms": 20, "latency_max_ms": 400, "rate": 0.3}),
        json!({"route": STATUS_ROUTE, "error_status": 503, "rate": 0.2}),
        json!({"route": STATUS_ROUTE, "drop_connection": true, "rate": 0.1}),
        json!({"route": STATUS_ROUTE, "error_status": 500, "rate": 0.05}),
    ];
    let end = started + Duration::from_secs(args.seconds);
    let mut phase = 0usize;
    let mut restarts = 0u32;
    let mut kills = 0u32;
    let mut next_restart = started + Duration::from_secs(args.restart_every);
    let mut active: Option<u64> = None;
    while Instant::now() < end {
        if let Some(id) = active.take() {
            mock.remove_fault(id).await?;
        }
        // Every fourth phase runs without a fault.
        if phase % 5 != 4 {
            active = Some(mock.add_fault(faults[phase % 5 % faults.len()].clone()).await?);
        }
        phase += 1;
        let phase_end = (Instant::now() + Duration::from_secs(7)).min(end);
        while Instant::now() < phase_end {
            if Instant::now() >= next_restart {
                if restarts.is_multiple_of(2) {
                    kit.kill_adapter().await;
                    kills += 1;
                } else {
                    kit.stop_adapter().await?;
                }
                tokio::time::sleep(Duration::from_millis(500 + u64::from(restarts % 3) * 500)).await;
                kit.start_adapter().await?;
                restarts += 1;
                next_restart = Instant::now() + Duration::from_secs(args.restart_every);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "  {:>4} s  acknowledged {}  restarts {restarts}",
            started.elapsed().as_secs(),
            counters.acknowledged.load(Ordering::Relaxed)
        );
    }
    if let Some(id) = active.take() {
        mock.remove_fault(id).await?;
    }
    stop.store(true, Ordering::Relaxed);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(sender) = senders.join_next().await {
        let (card_id, count) = sender??;
        expected.insert(card_id, count);
    }
    let acknowledged: u64 = expected.values().sum();
    eprintln!(
        "soak: load stopped after {} s; {acknowledged} events acknowledged; draining …",
        started.elapsed().as_secs()
    );

    // Drain: wait until every acknowledged event has been applied (or 180 s).
    let deadline = Instant::now() + Duration::from_secs(180);
    let report = loop {
        let report = check(&mock, &expected).await?;
        if report.lost == 0 || Instant::now() >= deadline {
            break report;
        }
        eprintln!("  draining: {} of {acknowledged} applied", report.applied);
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let final_state = final_states(&mock, &expected).await?;

    println!("# tmp-kit soak · {database} · {} s of load", args.seconds);
    println!("cards                      {}", args.cards);
    println!("events acknowledged (202)  {acknowledged}");
    println!(
        "requests resent by the processor {} (answered as duplicates: {})",
        counters.resent.load(Ordering::Relaxed),
        counters.duplicates_answered.load(Ordering::Relaxed)
    );
    println!("adapter restarts           {restarts} ({kills} abrupt)");
    println!("deliveries seen at mock    {} (answered 200: {})", report.attempts, report.ok_responses);
    println!("events applied             {}", report.applied);
    println!("lost                       {}", report.lost);
    println!("out of order               {}", report.out_of_order);
    println!("applied twice              {}", report.applied_twice);
    println!("unexpected (never acknowledged) {}", report.unexpected);
    println!("cards in the wrong final state  {final_state}");
    let clean = report.lost == 0
        && report.out_of_order == 0
        && report.applied_twice == 0
        && report.unexpected == 0
        && final_state == 0;
    println!("result                     {}", if clean { "PASS" } else { "FAIL" });
    Ok(if clean { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// Event `k` of `card_id`, prepared (its body fixed: a resend is byte-identical).
fn event(session: &Session, card_id: &str, k: u64) -> Prepared {
    let body = json!({
        "id": format!("{card_id}-e{k}"),
        "cardId": card_id,
        "type": "card.status_changed",
        "occurredAt": tmp_conformance::catalogue::now_rfc3339(),
        "data": {"status": status_of(k), "reason": format!("soak-{k}")},
    });
    let call = Call::post(&session.target, tmp_protocol::processor::EVENTS_PATH, body.clone())
        .signer(Some(Signer::Processor))
        .idempotency_key(None);
    Prepared { call, bytes: body.to_string().into_bytes() }
}

fn status_of(k: u64) -> &'static str {
    if k.is_multiple_of(2) { "BLOCKED" } else { "ACTIVE" }
}

#[derive(Debug, Default)]
pub struct Report {
    pub attempts: u64,
    pub ok_responses: u64,
    pub applied: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub applied_twice: u64,
    pub unexpected: u64,
}

/// Reads mock-tmp's journal and checks the deliveries against `expected` (card → events
/// acknowledged, `0..n`).
async fn check(mock: &MockApi, expected: &BTreeMap<String, u64>) -> anyhow::Result<Report> {
    let entries = mock.requests().await?;
    Ok(check_entries(&entries, expected))
}

/// The check itself, on journal entries (oldest first).
pub fn check_entries(entries: &[Value], expected: &BTreeMap<String, u64>) -> Report {
    let mut report = Report::default();
    // card → events in the order they were first applied; event → idempotency keys applied.
    let mut applied_order: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut keys: HashMap<(&str, u64), HashSet<&str>> = HashMap::new();
    for entry in entries {
        if entry["direction"] != "received" || entry["method"] != "POST" {
            continue;
        }
        let Some(card_id) = entry["path"]
            .as_str()
            .and_then(|p| p.strip_prefix("/tmp-api/v1/cards/"))
            .and_then(|p| p.strip_suffix("/status"))
        else {
            continue;
        };
        let Some((card_id, _)) = expected.get_key_value(card_id) else { continue };
        report.attempts += 1;
        if entry["status"] != 200 {
            continue;
        }
        report.ok_responses += 1;
        let Some(k) =
            entry["body"]["reason"].as_str().and_then(|r| r.strip_prefix("soak-")).and_then(|k| k.parse().ok())
        else {
            report.unexpected += 1;
            continue;
        };
        let key = entry["idempotencyKey"].as_str().unwrap_or("");
        let seen = keys.entry((card_id.as_str(), k)).or_default();
        if seen.is_empty() {
            applied_order.entry(card_id.as_str()).or_default().push(k);
        }
        seen.insert(key);
    }
    for (card_id, &count) in expected {
        let order = applied_order.get(card_id.as_str()).cloned().unwrap_or_default();
        report.applied += order.len() as u64;
        let in_range: HashSet<u64> = order.iter().copied().filter(|&k| k < count).collect();
        report.lost += count - in_range.len() as u64;
        report.unexpected += order.iter().filter(|&&k| k >= count).count() as u64;
        report.out_of_order += order.windows(2).filter(|w| w[1] <= w[0]).count() as u64;
    }
    report.applied_twice = keys.values().filter(|k| k.len() > 1).count() as u64;
    report
}

/// Cards whose final status at mock-tmp is not their last acknowledged event's.
async fn final_states(mock: &MockApi, expected: &BTreeMap<String, u64>) -> anyhow::Result<u64> {
    let mut wrong = 0;
    let cards = mock.cards().await?;
    for (card_id, &count) in expected {
        if count == 0 {
            continue;
        }
        let status = cards.iter().find(|c| c["cardId"] == card_id.as_str()).map(|c| c["status"].clone());
        if status != Some(json!(status_of(count - 1))) {
            wrong += 1;
        }
    }
    Ok(wrong)
}
